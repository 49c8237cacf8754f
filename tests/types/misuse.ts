// Misuse the types must refuse: each @ts-expect-error fails the compile if
// the line below it type-checks.
import { AuthClient, type JsErrorCode, type LatchkeyErrorCode } from "../../pkg-template/index.js";

export async function misuse(auth: AuthClient): Promise<void> {
  // @ts-expect-error an atproto client has no issuer: it comes from the account
  await AuthClient.create({
    profile: "atproto",
    clientId: "https://app.example/client-metadata.json",
    redirectUri: "https://app.example/",
    handleResolver: "https://bsky.social",
    issuer: "https://bsky.social",
  });

  // @ts-expect-error an atproto client needs a handle resolver
  await AuthClient.create({ profile: "atproto", clientId: "c", redirectUri: "https://app.example/" });

  // @ts-expect-error clientId is required
  await AuthClient.create({ issuer: "https://idp.example", redirectUri: "https://app.example/" });

  await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa",
    redirectUri: "https://app.example/",
    // @ts-expect-error unknown storage kind
    storage: "cookies",
  });

  await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa",
    redirectUri: "https://app.example/",
    // @ts-expect-error unknown option (typo)
    refreshLeeway: 30,
  });

  await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa",
    redirectUri: "https://app.example/",
    // @ts-expect-error tokenIn is "header" or "query"
    allowedOrigins: [{ origin: "https://api.example", tokenIn: "body" }],
  });

  await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa",
    redirectUri: "https://app.example/",
    // @ts-expect-error allowedOrigins is a list, not one origin
    allowedOrigins: "https://api.example",
  });

  await AuthClient.create({
    issuer: "https://idp.example",
    clientId: "spa",
    redirectUri: "https://app.example/",
    // @ts-expect-error an object entry needs its origin
    allowedOrigins: [{ tokenIn: "query" }],
  });

  // @ts-expect-error unknown event name
  auth.on("token", () => {});

  // @ts-expect-error the tokens event detail has no refreshToken
  auth.on("tokens", (e) => e.refreshToken);

  // @ts-expect-error not an error code
  const code: LatchkeyErrorCode = "expired";

  // @ts-expect-error instances come from AuthClient.create
  new AuthClient();

  // @ts-expect-error getAccessToken resolves with a string
  const n: number = await auth.getAccessToken();

  // @ts-expect-error revoke is a boolean
  await auth.logout({ revoke: "yes" });

  // @ts-expect-error forceRefresh is a boolean
  await auth.getAccessToken({ forceRefresh: "yes" });

  // @ts-expect-error dispose() returns nothing to await on
  (auth.dispose()).then;

  // @ts-expect-error only a failed revocation has an error
  (await auth.logout()).error;

  // @ts-expect-error getUser may resolve with null
  const sub: string = (await auth.getUser()).sub;

  // @ts-expect-error closeDetection is "poll" or "timeout"
  await auth.loginWithPopup({ closeDetection: "never" });

  // @ts-expect-error timeoutSeconds is a number
  await auth.loginWithPopup({ timeoutSeconds: "60" });

  // @ts-expect-error popup is a Window
  await auth.loginWithPopup({ popup: "about:blank" });

  // @ts-expect-error loginWithPopup resolves with { appState }, not a token
  const t: string = await auth.loginWithPopup();

  // @ts-expect-error not a JS-side code
  const js: JsErrorCode = "state_mismatch";

  void [code, n, sub, t, js];
}
