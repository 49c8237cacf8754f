// latchkey's public TypeScript surface. Hand-written: the wasm-bindgen
// declarations (latchkey.d.ts) are an implementation detail.

/** Where tokens are kept. */
export type StorageKind = "indexeddb" | "localstorage" | "memory";

/**
 * Every `code` a {@link LatchkeyError} can carry. The quoted codes are
 * checked against the Rust list (`ALL_CODES`) by the test suite; the codes
 * the JavaScript entry raises itself are {@link JsErrorCode}.
 */
export type LatchkeyErrorCode =
  | "invalid_option"
  | "insecure_endpoint"
  | "origin_not_allowed"
  | "discovery_failed"
  | "issuer_mismatch"
  | "no_transaction"
  | "transaction_expired"
  | "iss_missing"
  | "iss_mismatch"
  | "state_missing"
  | "state_mismatch"
  | "authorization_error"
  | "access_denied"
  | "login_required"
  | "interaction_required"
  | "consent_required"
  | "account_selection_required"
  | "code_missing"
  | "invalid_grant"
  | "token_error"
  | "par_failed"
  | "malformed_token_response"
  | "unsupported_token_type"
  | "dpop_nonce_failed"
  | "dpop_key_unavailable"
  | "handle_not_found"
  | "did_resolution_failed"
  | "pds_metadata_invalid"
  | "network_error"
  | "storage_error"
  | "corrupt_record"
  | "newer_record"
  | "crypto_error"
  | "lock_unavailable"
  | "refresh_failed"
  | "refresh_timeout"
  | "not_authenticated"
  | "session_expired"
  | "revocation_failed"
  | "id_token_missing"
  | "id_token_malformed"
  | "id_token_unsupported_alg"
  | "jwks_unavailable"
  | "id_token_key_not_found"
  | "id_token_invalid_signature"
  | "id_token_iss_mismatch"
  | "id_token_aud_mismatch"
  | "id_token_azp_mismatch"
  | "id_token_expired"
  | "id_token_iat_invalid"
  | "nonce_mismatch"
  | "id_token_sub_mismatch"
  | "userinfo_failed"
  | "userinfo_sub_mismatch"
  | JsErrorCode;

/**
 * Codes raised by the package's JavaScript entry rather than the wasm:
 * popup login, the environment check and loading the wasm. Part of
 * {@link LatchkeyErrorCode}, kept out of its quoted list, which mirrors the
 * Rust one.
 */
export type JsErrorCode =
  /** `window.open` returned null: the browser blocked the popup. */
  | "popup_blocked"
  /** The user closed the popup before the login finished. */
  | "popup_closed"
  /** The popup did not come back within `timeoutSeconds`. */
  | "popup_timeout"
  /**
   * In a login popup's redirect page (`handleRedirectCallback`): no tab took
   * the response, because the tab that opened the popup was reloaded, left
   * or closed. The window is left open for the page to say so.
   */
  | "popup_opener_gone"
  /** `create()` called without a browser window (server rendering, a worker). */
  | "unsupported_environment"
  /**
   * The wasm module could not be fetched, compiled or instantiated (offline,
   * a server's error answer, a Content-Security-Policy without
   * `'wasm-unsafe-eval'`), the error's `cause` being the browser's. The next
   * `create()` (or `initialize()`) tries again.
   */
  | "wasm_load_failed"
  /** A call on a client after its {@link AuthClient.dispose}. */
  | "client_disposed";

/**
 * What latchkey rejects with. `name` is `"LatchkeyError"`. Server-reported
 * details are copied when the server sent them
 * ([RFC 6749 §5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)).
 * Messages never contain tokens, codes, verifiers or `state`.
 */
export interface LatchkeyError extends Error {
  readonly name: "LatchkeyError";
  /** Stable machine-readable code. */
  readonly code: LatchkeyErrorCode;
  /** The server's `error`, e.g. `"invalid_grant"` or `"access_denied"`. */
  readonly error?: string;
  /** The server's `error_description`. */
  readonly error_description?: string;
  /** The server's `error_uri`. */
  readonly error_uri?: string;
  /** The HTTP status of the token endpoint's answer. */
  readonly status?: number;
  /**
   * The token endpoint's `Retry-After`, in seconds (the header must be
   * listed in its `Access-Control-Expose-Headers`). Until it passes (at most
   * 5 minutes) this tab sends no refresh and rejects with this same error.
   */
  readonly retryAfter?: number;
}

/** Narrows an unknown rejection to a {@link LatchkeyError}. */
export function isLatchkeyError(value: unknown): value is LatchkeyError;

/** What a custom {@link AuthClientOptions.refresh} receives. */
export interface RefreshContext {
  /** The refresh token to exchange. */
  readonly refreshToken: string;
  /** The access token being replaced. */
  readonly accessToken: string;
  /** The token endpoint (discovered or configured). */
  readonly tokenEndpoint: string;
  /** The client id. */
  readonly clientId: string;
  /** The granted scope, if known. */
  readonly scope: string | undefined;
  /**
   * With `dpop: true`, a session bound to a DPoP key: makes the proof
   * (the `DPoP` header) for the app's refresh request — a `POST` to
   * `tokenEndpoint` (query aside); any other `url` or `method` rejects with
   * `invalid_option`. `nonce` defaults to the authorization server's latest
   * for `url`'s origin. The key itself never leaves latchkey. Absent for
   * Bearer sessions.
   */
  readonly dpopProof?: (request: { url: string; method?: string; nonce?: string }) => Promise<string>;
}

/**
 * A token endpoint response
 * ([RFC 6749 §5.1](https://www.rfc-editor.org/rfc/rfc6749#section-5.1)), as a
 * custom refresh resolves with it. `token_type` defaults to `"Bearer"`
 * (`"DPoP"` for a session bound to a DPoP key);
 * omitted `refresh_token` / `scope` keep the previous ones.
 */
export interface TokenResponse {
  access_token: string;
  token_type?: string;
  /** Seconds (a number or numeric string). */
  expires_in?: number | string;
  refresh_token?: string;
  scope?: string;
  id_token?: string;
}

/**
 * A refusal from the server, as a custom refresh resolves with it
 * ([RFC 6749 §5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)).
 * `"invalid_grant"` ends the session in every tab.
 */
export interface TokenErrorResponse {
  error: string;
  error_description?: string;
  error_uri?: string;
}

/**
 * One entry of {@link AuthClientOptions.allowedOrigins}: an origin
 * (`"https://api.example.com"`: scheme, host and optional port; no path),
 * or an object naming where the token goes for that origin.
 */
export type AllowedOrigin =
  | string
  | {
      /** The origin, e.g. `"https://legacy.example"`. */
      origin: string;
      /**
       * `"header"` (default): `Authorization: Bearer <token>`
       * ([RFC 6750 §2.1](https://www.rfc-editor.org/rfc/rfc6750#section-2.1)).
       * `"query"`: an `access_token` query parameter, replacing any already
       * in the URL ([RFC 6750 §2.3](https://www.rfc-editor.org/rfc/rfc6750#section-2.3)),
       * for APIs that accept nothing else: the token then ends up in server
       * logs, proxies and browser history. Redirects are not followed (one
       * keeping the query would carry the token to wherever it points): the
       * answer is the redirect itself, `type: "opaqueredirect"`.
       */
      tokenIn?: "header" | "query";
    };

/**
 * Options of {@link AuthClient.create}: an OpenID Connect / OAuth client of
 * one issuer, or an AT Protocol client ("Sign in with Bluesky") whose
 * server comes from each user's account. Unknown options are refused.
 */
export type AuthClientOptions = OidcClientOptions | AtprotoClientOptions;

/**
 * `profile: "atproto"`: the AT Protocol OAuth profile. No `issuer`: `login({ handle })`
 * resolves the handle (or DID) to the account's PDS and its authorization
 * server. PAR and DPoP are always on; `scope` must contain `atproto`
 * (default `"atproto transition:generic"`); `fetchWithAuth` may call the
 * account's PDS without listing it in `allowedOrigins`; `getUser()` resolves
 * with {@link AtprotoUser}.
 */
export interface AtprotoClientOptions
  extends Omit<
    OidcClientOptions,
    | "profile"
    | "issuer"
    | "authorizationEndpoint"
    | "tokenEndpoint"
    | "revocationEndpoint"
    | "endSessionEndpoint"
    | "jwksUri"
    | "userinfoEndpoint"
    | "pushedAuthorizationRequestEndpoint"
    | "par"
    | "dpop"
  > {
  profile: "atproto";
  /**
   * The base URL of a service answering `com.atproto.identity.resolveHandle`
   * (a browser cannot query DNS), e.g. `"https://bsky.social"`.
   */
  handleResolver: string;
  /** Where `did:plc` documents are read. Default `"https://plc.directory"`. */
  plcDirectoryUrl?: string;
  issuer?: never;
}

/** An OpenID Connect / OAuth 2.0 client of one issuer. */
export interface OidcClientOptions {
  /** The default profile. */
  profile?: "oidc";
  /**
   * The issuer identifier. Endpoints are discovered from it (OIDC
   * Discovery, then [RFC 8414](https://www.rfc-editor.org/rfc/rfc8414)) unless
   * both `authorizationEndpoint` and `tokenEndpoint` are given.
   */
  issuer: string;
  /** The public client's id. */
  clientId: string;
  /**
   * The exact redirect URI registered for the client: `https`, or plain
   * `http` on the page's own origin, or on a loopback host with
   * `allowInsecureLoopback` (otherwise `insecure_endpoint`).
   */
  redirectUri: string;
  /** Space-separated scopes. Default `"openid"`. */
  scope?: string;
  /** Where tokens are kept. Default `"indexeddb"` (encrypted). */
  storage?: StorageKind;
  /**
   * Refresh when the access token expires within this many seconds (plus a
   * small per-tab jitter; at most half the token's lifetime). 0 to 86400,
   * default 30.
   */
  refreshLeewaySeconds?: number;
  /**
   * How long calls wait for a refresh before they reject with
   * `refresh_timeout` (tokens kept). The request itself is not abandoned:
   * the server may have rotated the refresh token, so it is awaited, holding
   * the cross-tab lock, for up to 60 s (or twice this, if longer). Every
   * other request latchkey makes is bounded by this too. 1 to 300, default 10.
   */
  refreshTimeoutSeconds?: number;
  /**
   * Whether an API response means "the access token expired" (then latchkey
   * refreshes and resends once). Called for responses with status ≥ 400,
   * with a clone, so it may read the body. Default: a 401 whose
   * `WWW-Authenticate` says `invalid_token` or names no error
   * ([RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)).
   */
  isTokenExpired?: (response: Response) => boolean | Promise<boolean>;
  /**
   * Replaces the standard refresh request
   * ([RFC 6749 §6](https://www.rfc-editor.org/rfc/rfc6749#section-6)), e.g. for
   * AT Protocol `refreshSession`. Locking, persisting and broadcasting stay
   * latchkey's. A throw or rejection is a transient `refresh_failed`.
   */
  refresh?: (context: RefreshContext) => Promise<TokenResponse | TokenErrorResponse>;
  /**
   * The origins `fetchWithAuth` sends the access token to. A request to any
   * other origin (after resolving the URL as `fetch` does, against the
   * document's base URL) is not sent and rejects with `origin_not_allowed`.
   * Default: the page's own origin only; a list replaces the default (name
   * `location.origin` too if the app calls its own origin). Entries are
   * compared as scheme, host and port after normalisation, and must be
   * `https`, or `http`
   * on a loopback host with `allowInsecureLoopback`, or the page's own
   * origin; anything else is refused with `invalid_option`. latchkey's own
   * requests (token endpoint, revocation, UserInfo) are not affected.
   */
  allowedOrigins?: readonly AllowedOrigin[];
  /** Allows `http://127.0.0.1` / `http://localhost` endpoints (test servers only). */
  allowInsecureLoopback?: boolean;
  /** Overrides the discovered authorization endpoint. */
  authorizationEndpoint?: string;
  /** Overrides the discovered token endpoint. */
  tokenEndpoint?: string;
  /** Overrides the discovered revocation endpoint ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)). */
  revocationEndpoint?: string;
  /** Overrides the discovered end-session endpoint (OIDC RP-Initiated Logout). */
  endSessionEndpoint?: string;
  /** Overrides the discovered JWKS URI. */
  jwksUri?: string;
  /** Overrides the discovered userinfo endpoint. */
  userinfoEndpoint?: string;
  /**
   * Sends every login through a pushed authorization request
   * ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)): the request's
   * parameters go to the server directly and the browser carries only
   * `client_id` and a short-lived `request_uri`. Used anyway when the server
   * requires it (`require_pushed_authorization_requests`). `create()` rejects
   * with `invalid_option` when the server has no PAR endpoint. Default false.
   */
  par?: boolean;
  /** Overrides the discovered pushed authorization request endpoint. */
  pushedAuthorizationRequestEndpoint?: string;
  /**
   * Binds the tokens to a key this browser cannot export
   * ([DPoP, RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)): each login
   * makes a new ES256 key pair (WebCrypto, non-extractable private key),
   * kept in IndexedDB so every tab signs with it, sent as `dpop_jkt`, and
   * deleted at sign-out. PAR, the code exchange, refreshes, revocation,
   * UserInfo and every `fetchWithAuth` call carry a proof
   * (`Authorization: DPoP <token>` + `DPoP: <proof>`); the servers' nonces
   * are kept per role and origin, and a `use_dpop_nonce` refusal is resent
   * once with the new nonce (`dpop_nonce_failed` if refused again). A
   * `Bearer` answer to a DPoP request is refused (`unsupported_token_type`).
   * DPoP tokens always travel in the `Authorization` header. With
   * `storage: "memory"` the key is in IndexedDB only from `login()` to the
   * callback (it must survive the redirect), then in the tab's memory only.
   * It applies to new logins: a session bound to a key keeps signing with it
   * after `dpop` is turned off (a bound token is refused as `Bearer`), until
   * the next login. Default false.
   */
  dpop?: boolean;
}

/**
 * Options of {@link AuthClient.login} and {@link AuthClient.createLoginUrl}.
 * Any other member, or options that are not an object, are refused
 * (`invalid_option`) rather than ignored.
 */
export interface LoginOptions<AppState = unknown> {
  /**
   * `profile: "atproto"` only, and required there: the account to sign in,
   * a handle (`alice.bsky.social`, a leading `@` allowed) or a DID. Resolved
   * to its PDS and authorization server (`handle_not_found`,
   * `did_resolution_failed`, `pds_metadata_invalid`, `issuer_mismatch`), and
   * sent as `login_hint`.
   */
  handle?: string;
  /**
   * Extra authorization request parameters, e.g. `{ prompt: "consent" }`.
   * Those latchkey sets or reads itself are refused with `invalid_option`:
   * `response_type`, `response_mode`, `request`, `request_uri`,
   * `client_id`, `redirect_uri`, `scope`, `state`, `nonce`,
   * `code_challenge`, `code_challenge_method`, `dpop_jkt`.
   */
  extraParams?: Record<string, string>;
  /** JSON-serialisable state handed back by `handleRedirectCallback`. */
  appState?: AppState;
}

/** Options of {@link AuthClient.loginWithPopup}. */
export interface PopupLoginOptions<AppState = unknown> extends LoginOptions<AppState> {
  /**
   * A window the app opened itself, synchronously in the click handler
   * (`window.open("", "_blank", "popup")`), for browsers that block popups
   * opened after an await. `null` (what a blocked `window.open` returns)
   * rejects with `popup_blocked`. latchkey navigates it and closes it when
   * the login ends, whatever the outcome (also when the login fails before
   * the window was navigated). Default: latchkey opens one, before its
   * first await, so calling `loginWithPopup` straight from a click handler works.
   */
  popup?: Window | null;
  /**
   * Rejects with `popup_timeout` after this many seconds (1 to 600: a pending
   * login lives 10 minutes). Default 300.
   */
  timeoutSeconds?: number;
  /**
   * How a popup the user closed is noticed. `"poll"` (default): `closed` is
   * read every 250 ms, `popup_closed` follows within about a quarter of a
   * second. `"timeout"`: for an IdP whose pages send
   * `Cross-Origin-Opener-Policy: same-origin`, which cuts this tab off from
   * the popup so that `closed` reads `true` while it is still open; a closed
   * popup then ends in `popup_timeout`.
   */
  closeDetection?: "poll" | "timeout";
}

/** What {@link AuthClient.handleRedirectCallback} resolves with. */
export interface RedirectResult<AppState = unknown> {
  /** The `appState` given to `login`, if any. */
  appState: AppState | undefined;
}

/** Detail of the `tokens` event. */
export interface TokensEvent {
  /** The new access token. */
  accessToken: string;
  /** When it expires (ms since the epoch), if the server said. */
  expiresAt: number | null;
  /** The granted scope, if known. */
  scope: string | null;
  /** `login` or `refresh` in this tab, `sync` from another tab. */
  source: "login" | "refresh" | "sync";
}

/** Detail of the `storage` event. */
export interface StorageEvent {
  /**
   * `fallback`: the requested storage could not be used, tokens are in
   * memory; `cleared`: a corrupt or foreign record was removed;
   * `newer_record`: the record was written by a newer latchkey and is left
   * alone (this tab works from memory and never overwrites it);
   * `write_failed`: refreshed tokens could not be persisted;
   * `read_failed`: the stored session could not be read (the storage
   * failed): it is kept, and this tab starts signed out.
   */
  type: "fallback" | "cleared" | "newer_record" | "write_failed" | "read_failed";
  /** The storage kind concerned. */
  storage: StorageKind;
  /** Why, in words. */
  reason: string;
}

/**
 * The verified claims of the signed-in user's ID token
 * ([OIDC Core §2](https://openid.net/specs/openid-connect-core-1_0.html#IDToken),
 * [§5.1](https://openid.net/specs/openid-connect-core-1_0.html#StandardClaims)),
 * with UserInfo's laid over them when asked for. Other claims the issuer
 * sends are present as `unknown`.
 */
export interface UserClaims {
  /** The issuer (checked to be the configured one). */
  iss: string;
  /** The user's stable id at the issuer. */
  sub: string;
  /** The audiences (checked to contain the client id). */
  aud: string | string[];
  /** Expiry of the ID token, in seconds since the epoch. */
  exp: number;
  /** Issue time of the ID token, in seconds since the epoch. */
  iat: number;
  /** Authorized party, when the token has several audiences. */
  azp?: string;
  /** When the user authenticated, in seconds since the epoch. */
  auth_time?: number;
  /** Full name. */
  name?: string;
  /** E-mail address. */
  email?: string;
  /** Whether the issuer verified the e-mail address. */
  email_verified?: boolean;
  /** Any other claim. */
  [claim: string]: unknown;
}

/**
 * The signed-in AT Protocol account (`profile: "atproto"`): its DID, the
 * handle its DID document claims, and its PDS. Checked at login: the DID's
 * PDS names the authorization server that signed it in.
 */
export interface AtprotoUser {
  /** The account's DID. */
  sub: string;
  /**
   * Its handle, or `null` when its document claims none that names the DID
   * back, or when that check could not be made at sign-in (a transient
   * failure): then for the whole session.
   */
  handle: string | null;
  /** Its PDS's URL. */
  pds: string;
}

/** Options of {@link AuthClient.getUser}. */
export interface GetAccessTokenOptions {
  /**
   * Refresh now, whatever the token's expiry says: for when the app knows
   * the token no longer says what it should (roles or claims changed at
   * the server). Under the cross-tab lock, like every refresh: calls in any
   * tab that hold the same token share one refresh, and a call whose token
   * another tab already replaced gets that tab's. A failed refresh rejects
   * (the token held stays in use elsewhere); a session without a refresh
   * token resolves with the token it has while that is valid. Default
   * false.
   */
  forceRefresh?: boolean;
}

export interface GetUserOptions {
  /**
   * Also fetch the UserInfo endpoint
   * ([OIDC Core §5.3](https://openid.net/specs/openid-connect-core-1_0.html#UserInfo))
   * with the access token (refreshed and retried like `fetchWithAuth`); its
   * `sub` must be the ID token's (`userinfo_sub_mismatch`). Its claims are
   * laid over the ID token's, except those only the verified ID token
   * speaks for (`iss`, `sub`, `aud`, `azp`, `exp`, `iat`, `nbf`, `jti`,
   * `nonce`, `auth_time`, `acr`, `amr`, `sid`, `at_hash`, `c_hash`,
   * `s_hash`, `cnf`).
   */
  userinfo?: boolean;
}

/** Options of {@link AuthClient.logout}. */
export interface LogoutOptions {
  /**
   * Revoke the refresh token, then the access token
   * ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)), when the issuer
   * has a revocation endpoint. Default `true`.
   */
  revoke?: boolean;
  /**
   * Then go to the issuer's `end_session_endpoint`
   * ([RP-Initiated Logout](https://openid.net/specs/openid-connect-rpinitiated-1_0.html))
   * with `id_token_hint` and `client_id`. Default `false`. Rejects with
   * `invalid_option` (nothing changed) when the issuer has none.
   */
  endSession?: boolean;
  /** Where the issuer sends the user afterwards (registered with it). Requires `endSession`. */
  postLogoutRedirectUri?: string;
}

/** What {@link AuthClient.logout} resolves with. */
export type LogoutResult =
  | {
      /**
       * `revoked`: both tokens revoked; `skipped`: not asked, no endpoint or
       * no session.
       */
      revocation: "revoked" | "skipped";
    }
  | {
      /** A revocation request failed; the local session is gone regardless. */
      revocation: "failed";
      /** Why (`code` is `revocation_failed`). */
      error: LatchkeyError;
    };

/** The events of {@link AuthClient.on} and their details. */
export interface AuthClientEvents {
  /** The token set changed (login or refresh, in this tab or another). */
  tokens: TokensEvent;
  /**
   * A refreshed ID token was verified, after its tokens were put in use (in
   * this tab or another): `getUser()` now returns its claims. A refresh
   * saves and tells its tokens first; its ID token is checked after.
   */
  user: Record<string, never>;
  /** The refresh token was rejected or expired; the session is cleared everywhere. */
  sessionExpired: Record<string, never>;
  /** The user signed out, in this tab or another. */
  signedOut: Record<string, never>;
  /** Storage problems latchkey recovered from. */
  storage: StorageEvent;
}

/** An OAuth 2.0 / OpenID Connect client for one issuer and client id. */
export declare class AuthClient {
  private constructor();

  /**
   * Loads the wasm module (once), validates the options, resolves the
   * endpoints, opens the storage and loads any stored session. Rejects
   * with `unsupported_environment` without a browser window (server side).
   */
  static create(options: AuthClientOptions): Promise<AuthClient>;

  /** The storage in use: the requested kind, or `"memory"` after a fallback. */
  readonly storageKind: StorageKind;
  /** Why the requested storage could not be used, if it could not. */
  readonly storageFallbackReason: string | null;
  /** The problem found with the stored session at start-up, if any. */
  readonly storageError: string | null;

  /**
   * Subscribes to an event; returns a function that unsubscribes. Throws
   * `invalid_option` when `listener` is not a function. An exception a
   * listener throws is reported as uncaught (`reportError`: the page's
   * `error` event and the console), and the event's other listeners still
   * run, as with a DOM event target.
   */
  on<E extends keyof AuthClientEvents>(
    event: E,
    listener: (detail: AuthClientEvents[E]) => void,
  ): () => void;

  /**
   * The authorization URL of a new login, with the pending transaction
   * stored ([RFC 6749 §4.1.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1),
   * [RFC 7636 §4.3](https://www.rfc-editor.org/rfc/rfc7636#section-4.3)).
   * Meant for a login that leaves the page, like {@link AuthClient.login}:
   * rejects with `storage_error`, before anything is sent, where the pending
   * login (sessionStorage) or, with DPoP, its key (IndexedDB) would not
   * survive that; {@link AuthClient.loginWithPopup} keeps both in the page.
   */
  createLoginUrl<AppState = unknown>(options?: LoginOptions<AppState>): Promise<string>;

  /**
   * Starts a login: stores the transaction and navigates to the
   * authorization endpoint (`storage_error` as {@link AuthClient.createLoginUrl}).
   */
  login<AppState = unknown>(options?: LoginOptions<AppState>): Promise<void>;

  /**
   * Whether `url` (default the current address) is a response to this
   * client's login, for {@link AuthClient.handleRedirectCallback}: at
   * `redirectUri`'s path (with or without a trailing slash), with `state`
   * and a `code` or an `error`
   * ([RFC 6749 §4.1.2](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2)).
   * An app route of its own with such parameters is not one.
   */
  isLoginResponse(url?: string | URL): boolean;

  /**
   * Logs in in a popup, keeping this page (and its in-memory state) as it
   * is: the same authorization request as {@link login}; the popup's
   * redirect page hands the response back (its `handleRedirectCallback()`
   * does it), and this tab validates it exactly as
   * {@link handleRedirectCallback} does (same order, same codes), exchanges
   * the code, stores the tokens (other tabs hear `tokens`) and closes the
   * popup. Rejects with `popup_blocked`, `popup_closed`, `popup_timeout`, or
   * any code of a redirect login.
   *
   * A call made while a popup login of this client is in progress (a double
   * click) opens no second window and starts no second login: once its
   * options are checked, it brings the popup in use to the front and returns
   * the same promise, which settles with the first call's outcome (its own
   * `appState` is not used; a window it passed as `popup` is closed).
   */
  loginWithPopup<AppState = unknown>(options?: PopupLoginOptions<AppState>): Promise<RedirectResult<AppState>>;

  /**
   * Completes a login on the redirect page: validates the callback
   * ([RFC 6749 §4.1.2](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2),
   * [RFC 9207](https://www.rfc-editor.org/rfc/rfc9207)), exchanges the code
   * ([§4.1.3](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3)), stores
   * the tokens and removes the callback parameters from the address bar.
   * In a login popup it instead hands the URL to the tab that opened it,
   * closes the popup and resolves with `appState` undefined. A login
   * completes when its tokens are stored: a `logout()` in any tab called
   * after that, and heard while they were being stored, ends it, and this
   * rejects with `not_authenticated`.
   * @param url The callback URL; default the current address.
   */
  handleRedirectCallback<AppState = unknown>(url?: string | URL): Promise<RedirectResult<AppState>>;

  /** Whether this tab holds a session that is valid now or can be refreshed. */
  isAuthenticated(): Promise<boolean>;

  /**
   * A valid access token, refreshed first when it expires within the
   * leeway. With `{ forceRefresh: true }`, a token newer than the one held
   * now (see {@link GetAccessTokenOptions.forceRefresh}).
   */
  getAccessToken(options?: GetAccessTokenOptions): Promise<string>;

  /**
   * `fetch` with `Authorization: Bearer <token>`
   * ([RFC 6750 §2.1](https://www.rfc-editor.org/rfc/rfc6750#section-2.1)),
   * or the `access_token` query parameter for origins listed with
   * `tokenIn: "query"`: refreshed first when stale; refreshed and resent
   * once when the response says the token expired (not after a redirect,
   * not for a stream body, and at most one such refresh per token). One
   * refresh per expiry across every tab. Only origins in
   * {@link AuthClientOptions.allowedOrigins} get the token — and the
   * issuer's UserInfo endpoint, whose token it is — : any other rejects with
   * `origin_not_allowed` and nothing is sent. A call to the token endpoint
   * is sent as given, without the token. A `no-cors` request cannot carry
   * the token: it rejects with `invalid_option`, before anything is sent. A
   * `Request` input is copied, never consumed. Network failures reject as
   * `fetch` does; latchkey's own with a {@link LatchkeyError}. The request's
   * `signal` also ends a wait for a token or a refresh, at once, with its
   * reason (an `AbortError`); the refresh itself goes on for the others.
   */
  fetchWithAuth(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

  /**
   * The signed-in user's verified ID token claims, or `null` when the
   * session has no ID token (no `openid` in scope). Rejects with
   * `not_authenticated` when nobody is signed in (exactly when
   * {@link AuthClient.isAuthenticated} says `false`). The ID token was verified when
   * it was received: signature against the issuer's keys (RS256, PS256,
   * ES256), `iss`, `aud`/`azp`, `exp`/`iat`, `nonce`, and on refresh the
   * same `sub` ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)).
   * A `profile: "atproto"` client resolves with the account instead:
   * `getUser<AtprotoUser>()`.
   */
  getUser<User extends UserClaims | AtprotoUser = UserClaims>(
    options?: GetUserOptions,
  ): Promise<User | null>;

  /**
   * Signs out in every tab: at once, the store is cleared and every tab
   * (this one too) drops its tokens and emits `signedOut`; the store is
   * cleared again under the cross-tab lock once any refresh in progress has
   * settled (the promise resolves after that, at most about a minute).
   * Then the tokens are revoked ({@link LogoutOptions.revoke}), then with
   * `endSession` the browser goes to the issuer's end-session endpoint.
   * Signing out locally never waits for, or depends on, the server: a
   * failed revocation is reported in the result, not thrown.
   */
  logout(options?: LogoutOptions): Promise<LogoutResult>;

  /**
   * Stops this client: its listeners get no more events (a listener that
   * disposes the client stops the event's other listeners too), and it no
   * longer refreshes when the tab becomes visible. Later calls reject (a
   * method that returns no promise throws) with `client_disposed`. What is
   * in flight runs to its end: a refresh the server answered is still saved
   * and told to the other tabs, a `fetchWithAuth` still resends after it.
   * The session stays stored, for the next client. Calling it again does
   * nothing. `<AuthProvider>` calls it when it unmounts.
   */
  dispose(): void;
}

/**
 * Loads the wasm module once; `AuthClient.create` does it for you. A failed
 * load rejects with `wasm_load_failed`, and the next call tries again.
 */
export function initialize(): Promise<void>;

/** The latchkey version, e.g. `"0.1.0"`. */
export function version(): Promise<string>;
