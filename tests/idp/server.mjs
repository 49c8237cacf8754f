// The latchkey test IdP: a real authorization server (node oidc-provider 9) plus a protected
// resource and test-control routes, on one 127.0.0.1 HTTP server. Optionally a second server
// serves the SPA under test from its own origin.
//
// Layout of the main server (one plain node http server dispatching by path):
//   /api/*           protected resource: Bearer (answers like RFC 6750 or like Bluesky XRPC) or
//                    DPoP (RFC 9449, proofs verified here, with the resource's own nonce)
//   /xrpc/com.atproto.server.refreshSession
//                    AT-Protocol-style refresh (refresh token as Bearer), backed by /token
//   /__test/*        control routes: counters, mode, TTL, token-endpoint faults, endpoint outages,
//                    grant revocation
//   /interaction/:id completes every login/consent automatically as the test user "alice"
//   everything else  oidc-provider (discovery, /auth, /request (PAR), /token, /token/revocation, /me,
//                    /session/end), behind a layer that counts, injects faults and keeps the
//                    authorization server's DPoP nonce (see dpop-nonces.mjs)

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

import Provider from "oidc-provider";

import { createApiNonce, createAuthorizationServerNonce } from "./dpop-nonces.mjs";
import { createReplayCache, decodeProof, ProofError, verifyProof } from "./dpop-proof.mjs";
import { startStaticServer } from "./static.mjs";
import { createStore } from "./store.mjs";

export const CLIENT_ID = "spa";
// The same SPA registered for DPoP (RFC 9449): its tokens are bound to the client's key, and it
// must push its authorization requests (PAR), where the binding starts (dpop_jkt).
export const DPOP_CLIENT_ID = "spa-dpop";
export const TEST_USER = Object.freeze({
  sub: "alice",
  name: "Alice Example",
  email: "alice@example.test",
  email_verified: true,
});
export const MODES = Object.freeze(["rfc6750", "bluesky"]);
// "lose_response" is the odd one out: the real handler runs (a refresh token is rotated), then
// the connection is closed before the answer is written — the response lost on the way back.
// "pass" is no fault (it keeps a later fault for a later request); "late_response" runs the real
// handler and holds the answer back `ms` milliseconds. "bearer_downgrade" runs the real handler
// and then says token_type "Bearer" in a successful answer: a DPoP client must refuse it.
// "strip_access_token" runs the real handler and drops access_token from a successful answer:
// the rotated refresh token arrives in an answer the client must refuse.
const FAULT_KINDS = new Set([
  "status",
  "drop",
  "hang",
  "garbage",
  "no_access_token",
  "lose_response",
  "pass",
  "late_response",
  "bearer_downgrade",
  "strip_access_token",
]);
// Handled by the real token endpoint (the others answer instead of it).
const PASS_THROUGH = new Set(["lose_response", "pass", "late_response", "bearer_downgrade", "strip_access_token"]);
// Endpoints that can be put out of order while a fault is set (an outage), unlike the token
// endpoint's queued faults, which each take one request. "code_exchange" is the token endpoint for
// the authorization_code grant only (refreshes pass).
export const OUTAGE_ENDPOINTS = Object.freeze(["discovery", "jwks", "userinfo", "revocation", "code_exchange"]);
// What presenting a rotated-away refresh token does: oidc-provider's own behaviour revokes the
// whole grant (OAuth 2.0 Security BCP); "refuse" only answers invalid_grant, as servers with a
// lenient reuse policy do, so the other tabs' rotated tokens stay valid.
const REUSE_POLICIES = new Set(["revoke-grant", "refuse"]);

// oidc-provider's default route paths (we do not change them).
const TOKEN_PATH = "/token";
const PAR_PATH = "/request";
const REVOCATION_PATH = "/token/revocation";
const USERINFO_PATH = "/me";
const JWKS_PATH = "/jwks";
const DISCOVERY_PATHS = new Set(["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]);
const END_SESSION_PATH = "/session/end";
const ECHO_PATH = "/api/echo";
const REFRESH_SESSION_PATH = "/xrpc/com.atproto.server.refreshSession";
const TEST_DID = `did:plc:${TEST_USER.sub}`;

function freshCounters() {
  return {
    // byGrantType: every token request (faulted ones too); succeeded: the grants oidc-provider
    // carried out (for refresh_token: the rotations), counted as soon as they are done, before
    // any late_response delay.
    token: {
      byGrantType: { authorization_code: 0, refresh_token: 0 },
      succeeded: { authorization_code: 0, refresh_token: 0 },
      errorsByCode: {},
      faultsInjected: 0,
    },
    api: { byStatus: {} },
    // byHint/succeeded are counted once oidc-provider has answered (a fault never reaches it).
    revocation: { requests: 0, byHint: {}, succeeded: 0, faultsInjected: 0 },
    discovery: { requests: 0, faultsInjected: 0 },
    jwks: { requests: 0, faultsInjected: 0 },
    userinfo: { requests: 0, faultsInjected: 0 },
    endSession: { requests: 0, withIdTokenHint: 0 },
    // Grants (logins) revoked, by why: "reuse" (a used refresh token or code presented again:
    // the failure latchkey must never cause), "revocation" (RFC 7009, e.g. a sign-out),
    // "end_session", "test" (revokeAllGrants).
    grants: { revoked: 0, byReason: {} },
    atproto: { refreshSession: 0 },
    // asNonceRefusals: use_dpop_nonce answers of the authorization server (PAR, token, userinfo);
    // the others are the API's DPoP answers: use_dpop_nonce, invalid_dpop_proof (replays
    // included), of those the replayed proofs, and the requests accepted.
    dpop: { asNonceRefusals: 0, apiNonceRefusals: 0, apiProofRefusals: 0, apiAccepted: 0, apiReplays: 0 },
  };
}

const bump = (obj, key) => {
  obj[key] = (obj[key] ?? 0) + 1;
};

function assertMode(mode) {
  if (!MODES.includes(mode)) throw new RangeError(`mode must be one of ${MODES.join(", ")}; got ${mode}`);
  return mode;
}

function assertSeconds(name, value) {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer (seconds)`);
  return value;
}

function assertFlag(name, value) {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be true or false`);
  return value;
}

/** null (tell the truth) or a positive number of seconds to claim in token responses. */
function assertAdvertised(value) {
  return value === null ? null : assertSeconds("advertisedExpiresIn", value);
}

/** The token of an `Authorization: Bearer` header, or undefined. */
function bearerToken(req) {
  return /^Bearer +([^\s]+) *$/i.exec(req.headers.authorization ?? "")?.[1];
}

/** The token of an `Authorization: DPoP` header (RFC 9449 §7.1), or undefined. */
function dpopToken(req) {
  return /^DPoP +([^\s]+) *$/i.exec(req.headers.authorization ?? "")?.[1];
}

/** The values of the request's DPoP headers (node keeps repeated ones apart here). */
function dpopHeaders(req) {
  return req.headersDistinct.dpop ?? [];
}

/** Validates a token-faults spec; returns a normalised copy. Throws RangeError when malformed. */
function normaliseFaults(spec = {}) {
  const delayMs = spec.delayMs ?? 0;
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new RangeError("delayMs must be a number >= 0");
  const next = spec.next ?? [];
  if (!Array.isArray(next)) throw new RangeError("next must be an array");
  for (const f of next) {
    if (!f || !FAULT_KINDS.has(f.kind)) throw new RangeError(`unknown fault kind: ${f?.kind}`);
    if (f.kind === "status" && !(Number.isInteger(f.status) && f.status >= 200 && f.status <= 599)) {
      throw new RangeError("a status fault needs an integer status in 200..599");
    }
    if (f.kind === "late_response" && !(Number.isFinite(f.ms) && f.ms >= 0)) {
      throw new RangeError("a late_response fault needs ms >= 0");
    }
  }
  return { delayMs, next: next.map((f) => ({ ...f })) };
}

function originOf(uri) {
  return new URL(uri).origin;
}

/** Listens on 127.0.0.1:`port` (0: any free port); resolves with the port. */
export function listen(server, port = 0) {
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", fail);
      ok(server.address().port);
    });
  });
}

/** Stops `server`, closing kept-alive and hung connections too. */
export function closeServer(server) {
  if (!server.listening) return Promise.resolve();
  return new Promise((ok) => {
    server.close(() => ok());
    // Keep-alive and hung sockets would otherwise hold close() (and the process) open.
    server.closeAllConnections();
  });
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  // Past the limit, keep reading and discard: leaving the loop early destroys the request, and
  // the client would often see a connection reset instead of our error response.
  for await (const chunk of req) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) throw new RangeError("request body too large");
  return Buffer.concat(chunks).toString("utf8");
}

function sendJson(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
  });
  res.end(body);
}

// An RSA signing key generated per server: RS256 is the default ID token algorithm, and our own
// key keeps oidc-provider from warning about its development-only keys.
function signingJwk() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: `test-${randomBytes(4).toString("hex")}`, use: "sig" };
}

// The RP-initiated logout confirmation page submits itself, so a browser test can sign out
// without clicking. The `form` attribute ties the extra input to oidc-provider's form.
async function logoutSource(ctx, form) {
  ctx.type = "html";
  ctx.body = `<!doctype html><html><head><meta charset="utf-8"><title>Signing out</title></head><body>
${form}<input type="hidden" form="op.logoutForm" name="logout" value="yes">
<noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>
<script>document.getElementById("op.logoutForm").submit();</script>
</body></html>`;
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = "html";
  ctx.body = `<!doctype html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><p id="signed-out">Signed out.</p></body></html>`;
}

async function renderError(ctx, out) {
  const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  ctx.type = "html";
  ctx.body = `<!doctype html><html><head><meta charset="utf-8"><title>IdP error</title></head><body><pre id="idp-error">${Object.entries(
    out,
  )
    .map(([k, v]) => `${escape(k)}: ${escape(v)}`)
    .join("\n")}</pre></body></html>`;
}

/**
 * Starts the test IdP. See README.md for the options, the handle and the control routes.
 *
 * @param {object} [options]
 * @param {number} [options.port=0] port for the IdP (0 = any free port); always 127.0.0.1
 * @param {number} [options.accessTokenTtl=3600] access token lifetime, seconds
 * @param {number} [options.refreshTokenTtl=86400] refresh token lifetime, seconds
 * @param {number|null} [options.advertisedExpiresIn=null] expires_in that token responses claim
 *   instead of the real access token lifetime (null = the truth)
 * @param {"rfc6750"|"bluesky"} [options.mode="rfc6750"] how /api/* says a token is bad
 * @param {string[]} [options.spaOrigins=[]] origins allowed by CORS; each gets redirect URIs
 * @param {string[]} [options.redirectUris=[]] extra redirect (and post-logout) URIs
 * @param {{root: string, port?: number}} [options.serveSpa] also serve this directory statically
 */
export async function startIdp(options = {}) {
  const state = {
    mode: assertMode(options.mode ?? "rfc6750"),
    accessTokenTtl: assertSeconds("accessTokenTtl", options.accessTokenTtl ?? 3600),
    refreshTokenTtl: assertSeconds("refreshTokenTtl", options.refreshTokenTtl ?? 86400),
    advertisedExpiresIn: assertAdvertised(options.advertisedExpiresIn ?? null),
    faults: normaliseFaults(),
    reusePolicy: "revoke-grant",
    // DPoP: the authorization server's nonce (derived from nonceSecret, which oidc-provider gets
    // too), the API's own nonce, and the proof ids the API has seen.
    nonceSecret: randomBytes(32),
    apiNonce: createApiNonce(),
    apiReplays: createReplayCache(),
    // While true, /api/* rotates its nonce on every DPoP request before checking the proof's, so
    // every nonce is refused (use_dpop_nonce, naming a fresh one): a client that resends forever
    // is caught.
    apiNonceChurn: false,
    // The API's refusals of a DPoP request also carry a Bearer challenge, on a header line of its
    // own, as an API that accepts both schemes may send (RFC 9449 §7.2): the browser joins them.
    apiBothChallenges: false,
    // Per endpoint: null, or how every request to it fails while set (see createOutages).
    outages: createOutages(),
    counters: freshCounters(),
  };
  state.asNonce = createAuthorizationServerNonce(state.nonceSecret);
  // Aborted by close(): ends token-endpoint delays and "hang" faults.
  const closing = new AbortController();
  const servers = [];
  const closeAll = async () => {
    closing.abort();
    await Promise.all(servers.map(closeServer));
  };

  try {
    // The SPA server starts first: its origin must be known to register the client.
    let spa;
    if (options.serveSpa) {
      spa = await startStaticServer(options.serveSpa);
      servers.push(spa.server);
    }

    const origins = new Set((options.spaOrigins ?? []).map(originOf));
    if (spa) origins.add(spa.origin);
    const redirectUris = [...origins].flatMap((o) => [`${o}/`, `${o}/index.html`, `${o}/callback`, `${o}/callback.html`]);
    for (const uri of options.redirectUris ?? []) {
      redirectUris.push(uri);
      origins.add(originOf(uri));
    }
    if (!redirectUris.length) throw new TypeError("startIdp needs spaOrigins, redirectUris or serveSpa: the client needs a redirect URI");

    // Listen before configuring the provider: the issuer must contain the real port.
    let dispatch = (_req, res) => {
      res.writeHead(503).end();
    };
    const server = createServer((req, res) => dispatch(req, res));
    servers.push(server);
    const port = await listen(server, options.port ?? 0);
    const issuer = `http://127.0.0.1:${port}`;

    // The served page finds its authorization server at /demo-config.json.
    spa?.setDemoConfig({ issuer, clientId: CLIENT_ID, whoami: `${issuer}/api/whoami` });

    const store = createStore();
    const provider = createProvider({ issuer, state, store, origins, redirectUris });
    provider.use(tokenEndpointMiddleware({ state, origins, store, signal: closing.signal }));
    countGrantEvents(provider, state);
    const koa = provider.callback();

    const cors = corsFor(origins);
    const api = apiHandler({ provider, state, cors, issuer });
    const control = controlHandler({ state, store, cors });
    const interaction = interactionHandler(provider);
    const refreshSession = refreshSessionHandler({ issuer, state, cors, signal: closing.signal });

    dispatch = (req, res) => {
      const { pathname } = new URL(req.url, issuer);
      let handler = koa;
      if (pathname === "/api" || pathname.startsWith("/api/")) handler = api;
      else if (pathname.startsWith("/__test/")) handler = control;
      else if (pathname === REFRESH_SESSION_PATH) handler = refreshSession;
      else if (/^\/interaction\/[^/]+$/.test(pathname)) handler = interaction;
      Promise.resolve(handler(req, res, pathname)).catch((err) => {
        process.stderr.write(`test idp: ${req.method} ${pathname}: ${err?.stack ?? err}\n`);
        if (!res.headersSent) sendJson(res, 500, { error: "server_error", error_description: String(err?.message ?? err) });
        else res.destroy();
      });
    };

    return {
      issuer,
      port,
      clientId: CLIENT_ID,
      spaOrigin: spa?.origin,
      spaPort: spa?.port,
      spaOrigins: [...origins],
      redirectUris: [...redirectUris],
      whoamiUrl: `${issuer}/api/whoami`,
      echoUrl: `${issuer}${ECHO_PATH}`,
      refreshSessionUrl: `${issuer}${REFRESH_SESSION_PATH}`,
      dpopClientId: DPOP_CLIENT_ID,
      provider,
      counters: () => structuredClone(state.counters),
      resetCounters: () => {
        state.counters = freshCounters();
      },
      mode: () => state.mode,
      setMode: (mode) => {
        state.mode = assertMode(mode);
      },
      setAccessTokenTtl: (seconds) => {
        state.accessTokenTtl = assertSeconds("accessTokenTtl", seconds);
      },
      setAdvertisedExpiresIn: (seconds) => {
        state.advertisedExpiresIn = assertAdvertised(seconds);
      },
      setTokenFaults: (spec = {}) => {
        state.faults = normaliseFaults(spec);
      },
      setReusePolicy: (policy) => {
        if (!REUSE_POLICIES.has(policy)) throw new RangeError(`reuse policy is one of ${[...REUSE_POLICIES]}`);
        state.reusePolicy = policy;
      },
      setEndpointFault: (endpoint, fault) => {
        state.outages.set(endpoint, fault);
      },
      setRevocationFault: (fault) => {
        state.outages.set("revocation", fault);
      },
      clearEndpointFaults: () => state.outages.clear(),
      endpointFaults: () => state.outages.snapshot(),
      revokeAllGrants: () => revokeAllGrants(state, store),
      liveRefreshTokens: () => store.liveRefreshTokens(),
      liveGrants: () => store.liveGrantIds(),
      authorizationServerNonce: () => state.asNonce.current(),
      rotateAuthorizationServerNonce: () => state.asNonce.rotate(),
      apiNonce: () => state.apiNonce.current(),
      rotateApiNonce: () => state.apiNonce.rotate(),
      setApiNonceChurn: (on) => {
        state.apiNonceChurn = assertFlag("apiNonceChurn", on);
      },
      setApiBothChallenges: (on) => {
        state.apiBothChallenges = assertFlag("apiBothChallenges", on);
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function createProvider({ issuer, state, store, origins, redirectUris }) {
  const client = {
    client_id: CLIENT_ID,
    client_name: "latchkey test SPA",
    application_type: "web",
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: redirectUris,
    post_logout_redirect_uris: redirectUris,
  };
  // oidc-provider binds the access tokens of this client to the proof's key (cnf.jkt) and, the
  // client being public, its refresh tokens too; it refuses token requests without a proof.
  const dpopClient = {
    ...client,
    client_id: DPOP_CLIENT_ID,
    client_name: "latchkey test SPA (DPoP)",
    dpop_bound_access_tokens: true,
    require_pushed_authorization_requests: true,
  };

  const provider = new Provider(issuer, {
    adapter: store.Adapter,
    clients: [client, dpopClient],
    jwks: { keys: [signingJwk()] },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    scopes: ["openid", "offline_access", "api", "profile", "email"],
    claims: { openid: ["sub"], profile: ["name"], email: ["email", "email_verified"] },
    responseTypes: ["code"],
    async findAccount(_ctx, sub) {
      if (sub !== TEST_USER.sub) return undefined;
      return { accountId: sub, claims: async () => ({ ...TEST_USER }) };
    },
    // oidc-provider 9 supports only S256; this makes PKCE mandatory for every client.
    pkce: { required: () => true },
    // oidc-provider strips offline_access from any authorization request without
    // prompt=consent (OIDC Core §11), and by default only issues refresh tokens for
    // offline_access. SPAs (and latchkey) expect a refresh token from the plain code flow, so
    // issue one whenever the client may use the grant, and don't tie it to the IdP session.
    issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed("refresh_token"),
    expiresWithSession: async () => false,
    // Rotate on every use. A consumed refresh token presented again is reuse: oidc-provider
    // then revokes the whole grant (every token of it).
    rotateRefreshToken: true,
    clientBasedCORS: (_ctx, origin) => origins.has(origin),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError,
    features: {
      devInteractions: { enabled: false },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, c, token) => token.clientId === c.clientId,
      },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      userinfo: { enabled: true },
      // oidc-provider verifies every proof sent to PAR, token and userinfo, nonce included (it
      // accepts the values it derives from nonceSecret: our layer hands out one of those, see
      // dpop-nonces.mjs). Requiring a nonce is for spa-dpop only, so spa behaves as before.
      dPoP: {
        enabled: true,
        nonceSecret: state.nonceSecret,
        requireNonce: (ctx) => ctx.oidc.client?.clientId === DPOP_CLIENT_ID,
      },
      // On by default in oidc-provider 9; spa-dpop must use it.
      pushedAuthorizationRequests: { enabled: true },
    },
    ttl: {
      // Read at issue time, so a TTL change applies to tokens issued afterwards.
      AccessToken: () => state.accessTokenTtl,
      RefreshToken: () => state.refreshTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 3600,
      // Long-lived so neither can end a refresh token's life before its own TTL.
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
  });
  return provider;
}

// Counts what oidc-provider reports doing: grants carried out (token.succeeded) and grants
// revoked (grants), read from state.counters at event time (a reset replaces them).
function countGrantEvents(provider, state) {
  provider.on("grant.success", (ctx) => {
    bump(state.counters.token.succeeded, ctx.oidc.params?.grant_type ?? "(none)");
  });
  provider.on("grant.revoked", (ctx) => {
    const route = ctx.oidc?.route ?? "(none)";
    // On the token route a grant is revoked only because a used refresh token or code came back.
    const reason = route === "token" ? "reuse" : route.startsWith("end_session") ? "end_session" : route;
    state.counters.grants.revoked += 1;
    bump(state.counters.grants.byReason, reason);
  });
}

// --- CORS for our own routes ------------------------------------------------------------------

function corsFor(origins) {
  return {
    /** Response headers for a non-preflight request (empty for unknown origins). */
    headers(req) {
      const origin = req.headers.origin;
      if (!origin || !origins.has(origin)) return origin ? { Vary: "Origin" } : {};
      return {
        "Access-Control-Allow-Origin": origin,
        // DPoP-Nonce: the API's nonce (RFC 9449 §9), which a browser client must be able to read.
        "Access-Control-Expose-Headers": "WWW-Authenticate, DPoP-Nonce",
        Vary: "Origin",
      };
    },
    /** Answers a CORS preflight; returns false if `req` is not one. */
    preflight(req, res) {
      if (req.method !== "OPTIONS" || !req.headers["access-control-request-method"]) return false;
      const headers = this.headers(req);
      if (headers["Access-Control-Allow-Origin"]) {
        delete headers["Access-Control-Expose-Headers"];
        Object.assign(headers, {
          "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
          "Access-Control-Allow-Headers": req.headers["access-control-request-headers"] || "Authorization, Content-Type, DPoP",
          "Access-Control-Max-Age": "600",
        });
      }
      res.writeHead(204, headers).end();
      return true;
    },
  };
}

// --- token endpoint: counting, delay, faults (koa middleware inside oidc-provider) ---------------

function tokenEndpointMiddleware({ state, origins, store, signal }) {
  return async function tokenEndpoint(ctx, next) {
    const origin = ctx.get("Origin");

    // oidc-provider answers every CORS preflight positively (it cannot know the client yet);
    // refuse unknown origins here so the browser sees the same policy as for the real request.
    if (ctx.method === "OPTIONS" && origin && !origins.has(origin)) {
      await next();
      for (const h of Object.keys(ctx.response.headers)) {
        if (h.startsWith("access-control-")) ctx.remove(h);
      }
      return;
    }

    if (ctx.method !== "OPTIONS" && ctx.path.startsWith(END_SESSION_PATH)) {
      state.counters.endSession.requests += 1;
      if (ctx.query.id_token_hint) state.counters.endSession.withIdTokenHint += 1;
    }
    const endpoint = outageEndpointOf(ctx);
    if (endpoint) {
      const counters = state.counters[endpoint];
      counters.requests += 1;
      const { fault, released } = state.outages.get(endpoint);
      if (fault) {
        counters.faultsInjected += 1;
        return answerOutage(ctx, fault, { endpoint, origins, released, signal });
      }
      if (endpoint === "revocation") return revocationEndpoint(ctx, next, state);
      if (endpoint === "userinfo") return userinfoEndpoint(ctx, next, { state, origins });
      return next();
    }
    if (ctx.method === "POST" && ctx.path === PAR_PATH) return parEndpoint(ctx, next, { state, origins });
    if (ctx.method !== "POST" || ctx.path !== TOKEN_PATH) return next();

    const exchange = state.outages.get("code_exchange");
    if (exchange.fault && (await grantTypeOf(ctx)) === "authorization_code") {
      bump(state.counters.token.byGrantType, "authorization_code");
      state.counters.token.faultsInjected += 1;
      return answerOutage(ctx, exchange.fault, { endpoint: "code_exchange", origins, released: exchange.released, signal });
    }

    // Judged on arrival, like the faults: a request refused for its DPoP nonce takes no fault.
    const nonceProblem = asNonceProblem(ctx, state);
    // Consumed on arrival, so concurrent requests take faults in the order they came in.
    const fault = nonceProblem ? undefined : state.faults.next.shift();
    const { delayMs } = state.faults;
    if (delayMs > 0) {
      try {
        await sleep(delayMs, undefined, { signal });
      } catch {
        ctx.respond = false; // server closing
        return;
      }
    }

    if (fault && !PASS_THROUGH.has(fault.kind)) return injectFault(ctx, fault, { state, origins, signal });

    try {
      if (nonceProblem) {
        await tokenForm(ctx); // to count it by grant_type
        return refuseAsNonce(ctx, nonceProblem, { state, origins, status: 400 });
      }
      if (state.reusePolicy === "refuse" && (await refuseReuse(ctx, store, origins))) return;
      await next();
      advertiseLifetime(ctx, state);
      if (fault?.kind === "bearer_downgrade") downgradeToBearer(ctx, state);
      if (fault?.kind === "strip_access_token") stripAccessToken(ctx, state);
      if (fault?.kind === "lose_response") {
        state.counters.token.faultsInjected += 1;
        ctx.req.socket.destroy();
        ctx.respond = false;
      }
    } finally {
      stampAsNonce(ctx, state);
      // Counted once the outcome is known but before the response is written, so a client that
      // reads the counters after its response always sees its own request.
      bump(state.counters.token.byGrantType, ctx.oidc?.body?.grant_type ?? ctx.state.grantType ?? "(none)");
      if (ctx.status >= 400 && typeof ctx.body?.error === "string") bump(state.counters.token.errorsByCode, ctx.body.error);
      if (fault?.kind === "late_response") {
        state.counters.token.faultsInjected += 1;
        await sleep(fault.ms, undefined, { signal }).catch(() => {});
      }
    }
  };
}

// The headers oidc-provider would have set on a token-endpoint answer it never gets to give:
// without the CORS ones the browser would report a CORS failure instead of our response.
function answerInsteadOfProvider(ctx, origins) {
  const origin = ctx.get("Origin");
  ctx.vary("Origin");
  if (origin && origins.has(origin)) {
    ctx.set("Access-Control-Allow-Origin", origin);
    ctx.set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After, DPoP-Nonce");
  }
  ctx.set("Cache-Control", "no-store");
}

// --- DPoP at the authorization server: the nonce layer in front of oidc-provider ---------------
//
// oidc-provider verifies the proofs and binds the tokens; this layer only keeps the nonce, so
// that tests can make it stale at will (dpop-nonces.mjs says why it must be done here). A request
// whose proof lacks the current nonce is answered use_dpop_nonce here and never reaches
// oidc-provider, so the code or refresh token it carries stays unused.

/**
 * Why the request's DPoP proof must be refused with use_dpop_nonce, or undefined when it may go
 * on: no proof, or none we can read (several headers, not a JWS), which oidc-provider refuses
 * itself with invalid_dpop_proof.
 */
function asNonceProblem(ctx, state) {
  const proofs = dpopHeaders(ctx.req);
  if (proofs.length !== 1) return undefined;
  let nonce;
  try {
    ({ nonce } = decodeProof(proofs[0]).payload);
  } catch (err) {
    if (err instanceof ProofError) return undefined;
    throw err;
  }
  if (nonce === undefined) return "Authorization server requires nonce in DPoP proof";
  if (!state.asNonce.accepts(nonce)) return "Stale or unknown DPoP nonce";
  return undefined;
}

// The use_dpop_nonce answer (RFC 9449 §8): 400 JSON at PAR and token, 401 with
// WWW-Authenticate at userinfo (a protected resource of the authorization server, §9).
function refuseAsNonce(ctx, problem, { state, origins, status }) {
  answerInsteadOfProvider(ctx, origins);
  state.counters.dpop.asNonceRefusals += 1;
  ctx.status = status;
  if (status === 401) ctx.set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="${problem}"`);
  ctx.set("DPoP-Nonce", state.asNonce.current());
  ctx.body = { error: "use_dpop_nonce", error_description: problem };
}

// Every answer to a request with a DPoP header names the current nonce. It replaces the one
// oidc-provider sets from its own clock, which this layer would refuse.
function stampAsNonce(ctx, state) {
  if (!ctx.get("DPoP")) return;
  ctx.set("DPoP-Nonce", state.asNonce.current());
  exposeHeader(ctx, "DPoP-Nonce");
}

/** Adds `name` to Access-Control-Expose-Headers of a CORS answer that lacks it. */
function exposeHeader(ctx, name) {
  if (!ctx.response.get("Access-Control-Allow-Origin")) return;
  const exposed = ctx.response.get("Access-Control-Expose-Headers");
  const names = exposed ? exposed.split(",").map((h) => h.trim().toLowerCase()) : [];
  if (!names.includes(name.toLowerCase())) ctx.set("Access-Control-Expose-Headers", exposed ? `${exposed}, ${name}` : name);
}

async function parEndpoint(ctx, next, { state, origins }) {
  const problem = asNonceProblem(ctx, state);
  if (problem) return refuseAsNonce(ctx, problem, { state, origins, status: 400 });
  await next();
  stampAsNonce(ctx, state);
}

async function userinfoEndpoint(ctx, next, { state, origins }) {
  const problem = asNonceProblem(ctx, state);
  if (problem) return refuseAsNonce(ctx, problem, { state, origins, status: 401 });
  await next();
  stampAsNonce(ctx, state);
}

// The bearer_downgrade fault: a successful token answer claims token_type "Bearer" although
// oidc-provider bound the token to the client's key.
function downgradeToBearer(ctx, state) {
  state.counters.token.faultsInjected += 1;
  if (ctx.status === 200 && typeof ctx.body?.token_type === "string") ctx.body.token_type = "Bearer";
}

function stripAccessToken(ctx, state) {
  state.counters.token.faultsInjected += 1;
  if (ctx.status === 200 && typeof ctx.body?.access_token === "string") delete ctx.body.access_token;
}

// The form of a token request, read here once (later calls get the same): it is handed on as
// req.body, which oidc-provider's body parser accepts. An unreadable body is an empty form.
async function tokenForm(ctx) {
  if (!ctx.state.form) {
    let body = "";
    try {
      body = await readBody(ctx.req);
    } catch {
      // too large or broken: counted as (none), and oidc-provider sees an empty body
    }
    ctx.req.body = body;
    ctx.state.form = new URLSearchParams(body);
    ctx.state.grantType = ctx.state.form.get("grant_type") ?? undefined;
  }
  return ctx.state.form;
}

const grantTypeOf = async (ctx) => (await tokenForm(ctx)).get("grant_type") ?? undefined;

// The "refuse" reuse policy: a rotated-away refresh token gets invalid_grant here, before
// oidc-provider (which would revoke the grant) sees it. True when it answered.
async function refuseReuse(ctx, store, origins) {
  const form = await tokenForm(ctx);
  if (form.get("grant_type") !== "refresh_token" || !store.isConsumedRefreshToken(form.get("refresh_token") ?? "")) {
    return false;
  }
  answerInsteadOfProvider(ctx, origins);
  ctx.status = 400;
  ctx.body = { error: "invalid_grant", error_description: "refresh token already used" };
  return true;
}

/**
 * Validates an outage fault: null (none), `{ kind: "drop" }`, `{ kind: "hang" }` or
 * `{ kind: "status", status: 400..599 }` (`kind` may be left out when `status` is given).
 * Returns a normalised copy; throws RangeError when malformed.
 */
function normaliseOutage(fault) {
  if (fault === null || fault === undefined) return null;
  if (fault.kind === "drop" || fault.kind === "hang") return { kind: fault.kind };
  const isStatus = fault.kind === "status" || fault.kind === undefined;
  if (isStatus && Number.isInteger(fault.status) && fault.status >= 400 && fault.status <= 599) return { kind: "status", status: fault.status };
  throw new RangeError('an endpoint fault is null, { kind: "drop" }, { kind: "hang" } or { status: 400..599 }');
}

function assertOutageEndpoint(endpoint) {
  if (!OUTAGE_ENDPOINTS.includes(endpoint)) throw new RangeError(`endpoint must be one of ${OUTAGE_ENDPOINTS.join(", ")}; got ${endpoint}`);
  return endpoint;
}

/**
 * The outages: which endpoints fail, and how, while set. Setting or clearing an endpoint's fault
 * ends the requests its "hang" holds (their sockets are closed without an answer).
 */
function createOutages() {
  const faults = Object.fromEntries(OUTAGE_ENDPOINTS.map((e) => [e, null]));
  const releases = Object.fromEntries(OUTAGE_ENDPOINTS.map((e) => [e, new AbortController()]));
  return {
    /** The fault set on `endpoint` and the signal that ends its held requests. */
    get: (endpoint) => ({ fault: faults[endpoint], released: releases[endpoint].signal }),
    set(endpoint, fault) {
      assertOutageEndpoint(endpoint);
      const normalised = normaliseOutage(fault);
      faults[endpoint] = normalised;
      releases[endpoint].abort();
      releases[endpoint] = new AbortController();
      return normalised;
    },
    /** Clears every fault (ending every held request). */
    clear() {
      for (const endpoint of OUTAGE_ENDPOINTS) this.set(endpoint, null);
    },
    snapshot: () => ({ ...faults }),
  };
}

/**
 * Resolves when `socket` closes or any of `signals` aborts: a request held open without an
 * answer, as a server that never answers does.
 */
function holdOpen(socket, signals) {
  return new Promise((resolve) => {
    const done = () => {
      for (const s of signals) s.removeEventListener("abort", done);
      socket.off("close", done);
      resolve();
    };
    for (const s of signals) s.addEventListener("abort", done);
    socket.on("close", done);
    if (socket.destroyed || signals.some((s) => s.aborted)) done();
  });
}

// Answers for an endpoint that is out of order (an outage fault), instead of oidc-provider: a
// status, or no answer at all ("drop" at once, "hang" once released or the server closes).
async function answerOutage(ctx, fault, { endpoint, origins, released, signal }) {
  answerInsteadOfProvider(ctx, origins);
  if (fault.kind === "status") {
    ctx.status = fault.status;
    ctx.body = { error: "temporarily_unavailable", error_description: `injected ${endpoint} fault` };
    return;
  }
  if (fault.kind === "hang") await holdOpen(ctx.req.socket, [signal, released]);
  ctx.req.socket.destroy();
  ctx.respond = false;
}

// Counts revocation requests by token_type_hint and outcome (a fault, answered before
// oidc-provider, revokes nothing).
async function revocationEndpoint(ctx, next, state) {
  await next();
  // oidc-provider does not look at proofs here (RFC 9449 requires none), but a DPoP client may send one.
  stampAsNonce(ctx, state);
  const counters = state.counters.revocation;
  bump(counters.byHint, ctx.oidc?.body?.token_type_hint ?? "(none)");
  if (ctx.status === 200) counters.succeeded += 1;
}

// Which outage endpoint a request to oidc-provider is for (code_exchange is decided later, from
// the body), or undefined.
function outageEndpointOf(ctx) {
  if (ctx.method === "OPTIONS") return undefined; // preflights always pass
  if (ctx.method === "GET" && DISCOVERY_PATHS.has(ctx.path)) return "discovery";
  if (ctx.method === "GET" && ctx.path === JWKS_PATH) return "jwks";
  if (ctx.path === USERINFO_PATH) return "userinfo";
  if (ctx.method === "POST" && ctx.path === REVOCATION_PATH) return "revocation";
  return undefined;
}

// Lets tests exercise purely reactive refresh: the client believes the token lives
// advertisedExpiresIn seconds, while the API rejects it after the real accessTokenTtl.
function advertiseLifetime(ctx, state) {
  const body = ctx.body;
  if (state.advertisedExpiresIn === null || ctx.status !== 200 || typeof body?.expires_in !== "number") return;
  // oidc-provider's body is still an object here; koa serialises it (and sets its length) later.
  body.expires_in = state.advertisedExpiresIn;
}

async function injectFault(ctx, fault, { state, origins, signal }) {
  const counters = state.counters.token;
  // The real handler never sees this request, so read the body ourselves to count it.
  bump(counters.byGrantType, (await grantTypeOf(ctx)) ?? "(none)");
  counters.faultsInjected += 1;

  answerInsteadOfProvider(ctx, origins);

  switch (fault.kind) {
    case "drop":
      ctx.req.socket.destroy();
      ctx.respond = false;
      return;
    case "hang":
      // Never answer; finish when the client goes away or the server closes.
      await holdOpen(ctx.req.socket, [signal]);
      ctx.respond = false;
      return;
    case "garbage":
      ctx.status = 200;
      ctx.type = "application/json"; // lies on purpose: the client must not trust it
      ctx.body = "<html><body>502 upstream garbage</body></html>";
      return;
    case "no_access_token":
      ctx.status = 200;
      ctx.body = { token_type: "Bearer", expires_in: state.advertisedExpiresIn ?? state.accessTokenTtl, scope: "openid api" };
      return;
    case "status": {
      const body = fault.body ?? JSON.stringify({ error: "server_error", error_description: "injected fault" });
      ctx.status = fault.status;
      ctx.type = isJson(body) ? "application/json" : "text/plain";
      for (const [name, value] of Object.entries(fault.headers ?? {})) ctx.set(name, String(value));
      ctx.body = body;
      if (fault.status >= 400 && isJson(body)) {
        const { error } = JSON.parse(body);
        if (typeof error === "string") bump(counters.errorsByCode, error);
      }
      return;
    }
    default:
      throw new Error(`unreachable fault kind ${fault.kind}`);
  }
}

function isJson(text) {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

// --- interactions: log in "alice" and consent to everything, without UI -----------------------

function interactionHandler(provider) {
  return async function interaction(req, res) {
    if (req.method !== "GET") return sendJson(res, 405, { error: "method_not_allowed" });
    let details;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (err) {
      // Missing/expired interaction cookie, e.g. a stale bookmark.
      return sendJson(res, 400, { error: "interaction_not_found", error_description: err.message });
    }

    const { prompt, params, session } = details;
    let result;
    if (prompt.name === "login") {
      result = { login: { accountId: TEST_USER.sub } };
    } else if (prompt.name === "consent") {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(" "));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(" "));
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      result = { error: "access_denied", error_description: `test IdP cannot complete prompt ${prompt.name}` };
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  };
}

// --- the protected resource ---------------------------------------------------------------------

function apiHandler({ provider, state, cors, issuer }) {
  return async function api(req, res, pathname) {
    if (cors.preflight(req, res)) return;
    const headers = cors.headers(req);
    // Read once: this drains the request (keep-alive connections stay usable) and /api/echo
    // sends the text back. null = too large to read.
    const body = await readBody(req).catch(() => null);

    const reply = (status, body, extra = {}) => {
      bump(state.counters.api.byStatus, String(status));
      sendJson(res, status, body, { ...headers, ...extra });
    };
    // A valid request: whoami says who, the echo also sends the body back, so a client can prove
    // that a request retried after a refresh (or a new nonce) resent its body.
    const answer = (identity, extra) => {
      if (pathname !== ECHO_PATH) return reply(200, identity, extra);
      if (body === null) return reply(413, { error: "payload_too_large" }, extra);
      reply(200, { ...identity, body, contentType: req.headers["content-type"] ?? null }, extra);
    };
    const identityOf = (token) => ({
      sub: token.accountId,
      scope: token.scope,
      client_id: token.clientId,
      exp: token.exp,
      method: req.method,
      path: pathname,
    });
    // RFC 9449 §7.1 and §9: a DPoP answer carries the error in WWW-Authenticate and, always,
    // the API's current nonce.
    const nonceHeader = () => ({ "DPoP-Nonce": state.apiNonce.current() });
    const refuseDpop = ({ error, description }) => {
      const quoted = description.replaceAll('"', "'");
      const challenge = `DPoP error="${error}", error_description="${quoted}"`;
      const challenges = state.apiBothChallenges ? ['Bearer realm="api"', challenge] : challenge;
      reply(401, { error, error_description: description }, { ...nonceHeader(), "WWW-Authenticate": challenges });
    };

    const dpop = dpopToken(req);
    if (dpop) {
      const url = new URL(pathname, issuer).href;
      const outcome = await checkDpopRequest({ req, url, accessToken: dpop, provider, state });
      if (outcome.refusal) return refuseDpop(outcome.refusal);
      state.counters.dpop.apiAccepted += 1;
      return answer({ ...identityOf(outcome.token), dpop: true, jkt: outcome.jkt }, nonceHeader());
    }

    const bearer = bearerToken(req);
    if (!bearer) {
      // RFC 6750 §3.1: no credentials → no error code. Bluesky says AuthMissing.
      if (state.mode === "bluesky") return reply(401, { error: "AuthMissing", message: "Authentication Required" });
      return reply(401, { error: "unauthorized" }, { "WWW-Authenticate": "Bearer" });
    }

    // ignoreExpiration: tell "expired" apart from "unknown or revoked" in the description.
    const token = await provider.AccessToken.find(bearer, { ignoreExpiration: true });
    const problem = tokenProblem(token);
    if (problem) {
      if (state.mode === "bluesky") return reply(400, { error: "ExpiredToken", message: "Token has expired" });
      return reply(
        401,
        { error: "invalid_token", error_description: problem },
        { "WWW-Authenticate": `Bearer error="invalid_token", error_description="${problem}"` },
      );
    }
    // A DPoP-bound token is worth nothing without its key: a stolen one replayed as Bearer is
    // refused (RFC 9449 §7.2), in either mode.
    if (token.jkt) {
      return refuseDpop({ error: "invalid_token", description: "The access token is DPoP-bound: send it with the DPoP scheme and a proof" });
    }
    answer(identityOf(token));
  };
}

/** Why the resource refuses `token` (an AccessToken found ignoring expiry), or null. */
function tokenProblem(token) {
  if (!token) return "The access token is unknown or revoked";
  return token.isExpired ? "The access token expired" : null;
}

/**
 * RFC 9449 §7.1: the checks of a request with `Authorization: DPoP`, in the order that tells the
 * client most: the proof itself, its nonce, replay, then the token and its binding to the key.
 * Resolves to `{ token, jkt }` or `{ refusal: { error, description } }` (counted here).
 */
async function checkDpopRequest({ req, url, accessToken, provider, state }) {
  const counters = state.counters.dpop;
  const badProof = (description) => {
    counters.apiProofRefusals += 1;
    return { refusal: { error: "invalid_dpop_proof", description } };
  };
  const proofs = dpopHeaders(req);
  if (proofs.length !== 1) return badProof("Exactly one DPoP header is required");
  let proof;
  try {
    proof = await verifyProof(proofs[0], { method: req.method, url, accessToken });
  } catch (err) {
    if (err instanceof ProofError) return badProof(err.message);
    throw err;
  }
  const { payload, jkt } = proof;
  // Churn: the nonce this proof could know is stale already.
  if (state.apiNonceChurn) state.apiNonce.rotate();
  if (!state.apiNonce.accepts(payload.nonce)) {
    counters.apiNonceRefusals += 1;
    const description = payload.nonce === undefined ? "Resource server requires nonce in DPoP proof" : "Stale or unknown DPoP nonce";
    return { refusal: { error: "use_dpop_nonce", description } };
  }
  // Recorded only now: a proof refused for its nonce was never accepted, so it is no replay.
  if (!state.apiReplays.add(payload.jti, payload.iat)) {
    counters.apiReplays += 1;
    return badProof("The DPoP proof was used before (jti replay)");
  }
  const token = await provider.AccessToken.find(accessToken, { ignoreExpiration: true });
  const problem = tokenProblem(token);
  if (problem) return { refusal: { error: "invalid_token", description: problem } };
  if (!token.jkt) return { refusal: { error: "invalid_token", description: "The access token is not DPoP-bound" } };
  if (token.jkt !== jkt) return badProof("The DPoP proof's key is not the one the access token is bound to");
  return { token, jkt };
}

// --- AT-Protocol-style refresh: com.atproto.server.refreshSession ----------------------------------

/**
 * Bluesky clients refresh by POSTing with the refresh token as Bearer. This performs a real
 * refresh_token grant over HTTP against our own token endpoint, so rotation, reuse detection,
 * advertisedExpiresIn and token faults all apply unchanged. That inner request is therefore
 * also counted under token.byGrantType.refresh_token, as the refresh it really is.
 */
function refreshSessionHandler({ issuer, state, cors, signal }) {
  return async function refreshSession(req, res) {
    if (cors.preflight(req, res)) return;
    const headers = cors.headers(req);
    state.counters.atproto.refreshSession += 1;
    await readBody(req).catch(() => {});
    if (req.method !== "POST") return sendJson(res, 405, { error: "InvalidRequest", message: "XRPC procedures are POST" }, headers);
    const refreshToken = bearerToken(req);
    if (!refreshToken) return sendJson(res, 401, { error: "AuthMissing", message: "Authentication Required" }, headers);

    // A client that gives up must also end the inner request (a "hang" fault would keep it).
    const gone = new AbortController();
    res.once("close", () => gone.abort());
    let upstream;
    try {
      const inner = await fetch(`${issuer}${TOKEN_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: CLIENT_ID }),
        signal: AbortSignal.any([signal, gone.signal]),
      });
      upstream = {
        status: inner.status,
        type: inner.headers.get("content-type"),
        retryAfter: inner.headers.get("retry-after"),
        text: await inner.text(),
      };
    } catch {
      // A "drop" fault (or the server closing): the client sees a network error too.
      res.destroy();
      return;
    }

    if (upstream.retryAfter) headers["Retry-After"] = upstream.retryAfter;
    const reply = sessionReply(upstream);
    if (reply.json) return sendJson(res, reply.status, reply.json, headers);
    // Not a JSON object (a "garbage" or text fault): passed on unchanged, it is the client's problem.
    res.writeHead(reply.status, { ...headers, "Content-Type": upstream.type ?? "text/plain", "Cache-Control": "no-store" }).end(upstream.text);
  };
}

/** Translates a token-endpoint reply into a refreshSession reply: `{ status, json? }`. */
function sessionReply({ status, text }) {
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    return { status };
  }
  if (json === null || typeof json !== "object") return { status };
  if (status === 200) {
    // Missing fields stay missing (JSON drops undefined), so no_access_token still lacks accessJwt.
    const session = { accessJwt: json.access_token, refreshJwt: json.refresh_token, expiresIn: json.expires_in, did: TEST_DID };
    return { status, json: session };
  }
  if (json.error === "invalid_grant") return { status: 400, json: { error: "ExpiredToken", message: "Token has expired" } };
  const error = status === 429 ? "RateLimitExceeded" : status >= 500 ? "InternalServerError" : "InvalidRequest";
  return { status, json: { error, message: json.error_description ?? json.error ?? "token endpoint error" } };
}

/** Revokes every grant (the test's own revocation); counted under grants, reason "test". */
function revokeAllGrants(state, store) {
  const revoked = store.revokeAllGrants();
  state.counters.grants.revoked += revoked;
  if (revoked) state.counters.grants.byReason.test = (state.counters.grants.byReason.test ?? 0) + revoked;
  return revoked;
}

// --- control routes -------------------------------------------------------------------------------

function controlHandler({ state, store, cors }) {
  const routes = {
    "GET /__test/counters": () => state.counters,
    "POST /__test/reset": () => {
      state.counters = freshCounters();
      return { ok: true };
    },
    "POST /__test/mode": (body) => {
      state.mode = assertMode(body.mode);
      return { ok: true, mode: state.mode };
    },
    "POST /__test/config": (body) => {
      // Validate every field before applying any, so a bad request changes nothing.
      const given = (name, check) => (body[name] === undefined ? state[name] : check(body[name]));
      const next = {
        accessTokenTtl: given("accessTokenTtl", (v) => assertSeconds("accessTokenTtl", v)),
        refreshTokenTtl: given("refreshTokenTtl", (v) => assertSeconds("refreshTokenTtl", v)),
        advertisedExpiresIn: given("advertisedExpiresIn", assertAdvertised),
      };
      Object.assign(state, next);
      return { ok: true, ...next };
    },
    "POST /__test/token-faults": (body) => {
      state.faults = normaliseFaults(body);
      return { ok: true, ...state.faults };
    },
    "POST /__test/revoke-grants": () => ({ ok: true, revokedGrants: revokeAllGrants(state, store) }),
    "POST /__test/revocation-fault": (body) => ({ ok: true, fault: state.outages.set("revocation", body.fault ?? null) }),
    "POST /__test/endpoint-fault": (body) => ({
      ok: true,
      endpoint: body.endpoint,
      fault: state.outages.set(body.endpoint, body.fault ?? null),
    }),
    "GET /__test/endpoint-faults": () => state.outages.snapshot(),
    "GET /__test/live-refresh-tokens": () => ({ count: store.liveRefreshTokens() }),
    "GET /__test/dpop/nonces": () => ({ authorizationServer: state.asNonce.current(), api: state.apiNonce.current() }),
    "POST /__test/dpop/rotate-as-nonce": () => ({ ok: true, nonce: state.asNonce.rotate() }),
    "POST /__test/dpop/rotate-api-nonce": () => ({ ok: true, nonce: state.apiNonce.rotate() }),
    "POST /__test/dpop/api-nonce-churn": (body) => {
      state.apiNonceChurn = assertFlag("on", body.on);
      return { ok: true, on: state.apiNonceChurn };
    },
  };

  return async function control(req, res, pathname) {
    if (cors.preflight(req, res)) return;
    const headers = cors.headers(req);
    const route = routes[`${req.method} ${pathname}`];
    if (!route) return sendJson(res, 404, { error: "not_found" }, headers);

    let body = {};
    try {
      const text = await readBody(req);
      if (text.trim()) body = JSON.parse(text);
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw new TypeError("body must be a JSON object");
      sendJson(res, 200, route(body), headers);
    } catch (err) {
      sendJson(res, 400, { error: "bad_request", message: err.message }, headers);
    }
  };
}
