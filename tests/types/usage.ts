// What an app writes: every line here must type-check under --strict.
import {
  AuthClient,
  isLatchkeyError,
  type AllowedOrigin,
  type AtprotoUser,
  type JsErrorCode,
  type LatchkeyErrorCode,
  type TokensEvent,
  type TokenResponse,
} from "../../pkg-template/index.js";

export async function app(): Promise<void> {
  const auth = await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa",
    redirectUri: "https://app.example/",
    scope: "openid offline_access api",
    storage: "localstorage",
    refreshLeewaySeconds: 30,
    refreshTimeoutSeconds: 10,
    allowedOrigins: ["https://api.example", { origin: "https://legacy.example", tokenIn: "query" }, { origin: "https://b.example" }],
    isTokenExpired: async (res) => res.status === 400 && (await res.json()).error === "ExpiredToken",
    refresh: async ({ refreshToken, tokenEndpoint }): Promise<TokenResponse> => {
      const res = await fetch(tokenEndpoint, { headers: { Authorization: `Bearer ${refreshToken}` } });
      const body = (await res.json()) as { accessJwt: string; refreshJwt: string };
      return { access_token: body.accessJwt, refresh_token: body.refreshJwt, expires_in: 3600 };
    },
  });

  // DPoP + PAR; a custom refresh signs its own request with the session's key.
  await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa-dpop",
    redirectUri: "https://app.example/",
    dpop: true,
    par: true,
    refresh: async ({ refreshToken, tokenEndpoint, clientId, dpopProof }): Promise<TokenResponse> => {
      const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
      if (dpopProof) headers.DPoP = await dpopProof({ url: tokenEndpoint });
      const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId });
      const res = await fetch(tokenEndpoint, { method: "POST", headers, body });
      return (await res.json()) as TokenResponse;
    },
  });
  const dpopCodes: LatchkeyErrorCode[] = ["dpop_nonce_failed", "dpop_key_unavailable"];

  // Sign in with Bluesky: no issuer; the handle picks the server.
  const bsky = await AuthClient.create({
    profile: "atproto",
    clientId: "https://app.example/client-metadata.json",
    redirectUri: "https://app.example/",
    handleResolver: "https://bsky.social",
    allowedOrigins: ["https://api.example"],
  });
  await bsky.login({ handle: "alice.bsky.social" });
  const account = await bsky.getUser<AtprotoUser>();
  const did: string | undefined = account?.sub;
  const handle: string | null | undefined = account?.handle;
  const atprotoCodes: LatchkeyErrorCode[] = ["handle_not_found", "did_resolution_failed", "pds_metadata_invalid"];

  const kind: "indexeddb" | "localstorage" | "memory" = auth.storageKind;
  const why: string | null = auth.storageFallbackReason;

  await auth.login({ extraParams: { prompt: "consent" }, appState: { returnTo: "/inbox" } });
  const url: string = await auth.createLoginUrl();
  const { appState } = await auth.handleRedirectCallback<{ returnTo: string }>();
  const returnTo: string | undefined = appState?.returnTo;

  const signedIn: boolean = await auth.isAuthenticated();
  const token: string = await auth.getAccessToken();
  const res: Response = await auth.fetchWithAuth("/api/me", { method: "POST", body: "{}" });
  await auth.fetchWithAuth(new URL("https://api.example/x"));
  await auth.fetchWithAuth(new Request("https://api.example/x"));

  const off: () => void = auth.on("tokens", (e: TokensEvent) => {
    const at: string = e.accessToken;
    const exp: number | null = e.expiresAt;
    const source: "login" | "refresh" | "sync" = e.source;
    void [at, exp, source];
  });
  off();
  auth.on("storage", (e) => {
    const type: "fallback" | "cleared" | "newer_record" | "write_failed" | "read_failed" = e.type;
    void type;
  });
  auth.on("sessionExpired", () => {});
  auth.on("signedOut", () => {});
  auth.on("user", (detail) => {
    const empty: Record<string, never> = detail;
    void empty;
  });

  const out = await auth.logout({ revoke: true, endSession: true, postLogoutRedirectUri: "https://app.example/" });
  if (out.revocation === "failed") {
    const failed: LatchkeyErrorCode = out.error.code;
    void failed;
  }
  await auth.logout();

  const user = await auth.getUser({ userinfo: true });
  if (user) {
    const sub: string = user.sub;
    const name: string | undefined = user.name;
    const other: unknown = user["https://example.com/roles"];
    void [sub, name, other];
  }

  const origins: readonly AllowedOrigin[] = [location.origin, { origin: "https://api.example", tokenIn: "header" }];
  await AuthClient.create({ issuer: "https://idp.example", clientId: "spa", redirectUri: "https://app.example/", allowedOrigins: origins });
  try {
    await auth.fetchWithAuth("https://elsewhere.example/");
  } catch (e) {
    if (isLatchkeyError(e) && e.code === "origin_not_allowed") {
      const message: string = e.message;
      void message;
    }
  }

  try {
    await auth.getAccessToken();
  } catch (e) {
    if (isLatchkeyError(e)) {
      const code: LatchkeyErrorCode = e.code;
      const status: number | undefined = e.status;
      const retryAfter: number | undefined = e.retryAfter;
      void [code, status, retryAfter];
    }
  }
  // Popup login: the app may open the window itself in its click handler.
  const popup = window.open("", "_blank", "popup");
  const result = await auth.loginWithPopup<{ draft: number }>({
    appState: { draft: 3 },
    extraParams: { prompt: "login" },
    timeoutSeconds: 120,
    closeDetection: "timeout",
    popup,
  });
  const draft: number | undefined = result.appState?.draft;
  await auth.loginWithPopup();
  try {
    await auth.loginWithPopup({ closeDetection: "poll" });
  } catch (e) {
    if (isLatchkeyError(e) && (e.code === "popup_closed" || e.code === "popup_blocked")) {
      const js: JsErrorCode = e.code;
      void js;
    }
  }

  const fresher: string = await auth.getAccessToken({ forceRefresh: true });
  void fresher;

  // A client no longer needed stops hearing; later calls say client_disposed.
  const done: void = auth.dispose();
  try {
    await auth.getAccessToken();
  } catch (e) {
    if (isLatchkeyError(e) && e.code === "client_disposed") {
      const js: JsErrorCode = e.code;
      void js;
    }
  }

  void [kind, why, url, returnTo, signedIn, token, res, draft, done];
}
