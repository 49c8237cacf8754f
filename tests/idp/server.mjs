// The latchkey test IdP: a real authorization server (node oidc-provider 9) plus a protected
// resource and test-control routes, on one 127.0.0.1 HTTP server. Optionally a second server
// serves the SPA under test from its own origin.
//
// Layout of the main server (one plain node http server dispatching by path):
//   /api/*           protected resource (Bearer), answers like RFC 6750 or like Bluesky XRPC
//   /__test/*        control routes: counters, mode, TTL, token-endpoint faults, grant revocation
//   /interaction/:id completes every login/consent automatically as the test user "alice"
//   everything else  oidc-provider (discovery, /auth, /token, /token/revocation, /me, /session/end)

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

import Provider from "oidc-provider";

import { startStaticServer } from "./static.mjs";
import { createStore } from "./store.mjs";

export const CLIENT_ID = "spa";
export const TEST_USER = Object.freeze({
  sub: "alice",
  name: "Alice Example",
  email: "alice@example.test",
  email_verified: true,
});
export const MODES = Object.freeze(["rfc6750", "bluesky"]);
const FAULT_KINDS = new Set(["status", "drop", "hang", "garbage", "no_access_token"]);

// oidc-provider's default route paths (we do not change them).
const TOKEN_PATH = "/token";
const REVOCATION_PATH = "/token/revocation";

function freshCounters() {
  return {
    token: { byGrantType: { authorization_code: 0, refresh_token: 0 }, errorsByCode: {}, faultsInjected: 0 },
    api: { byStatus: {} },
    revocation: { requests: 0 },
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
  }
  return { delayMs, next: next.map((f) => ({ ...f })) };
}

function originOf(uri) {
  return new URL(uri).origin;
}

function listen(server, port) {
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", fail);
      ok(server.address().port);
    });
  });
}

function closeServer(server) {
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
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new RangeError("request body too large");
    chunks.push(chunk);
  }
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
    faults: normaliseFaults(),
    counters: freshCounters(),
  };
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

    const store = createStore();
    const provider = createProvider({ issuer, state, store, origins, redirectUris });
    provider.use(tokenEndpointMiddleware({ state, origins, signal: closing.signal }));
    const koa = provider.callback();

    const cors = corsFor(origins);
    const api = apiHandler({ provider, state, cors });
    const control = controlHandler({ state, store, cors });
    const interaction = interactionHandler(provider);

    dispatch = (req, res) => {
      const { pathname } = new URL(req.url, issuer);
      let handler = koa;
      if (pathname === "/api" || pathname.startsWith("/api/")) handler = api;
      else if (pathname.startsWith("/__test/")) handler = control;
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
      setTokenFaults: (spec = {}) => {
        state.faults = normaliseFaults(spec);
      },
      revokeAllGrants: () => store.revokeAllGrants(),
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

  const provider = new Provider(issuer, {
    adapter: store.Adapter,
    clients: [client],
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

// --- CORS for our own routes ------------------------------------------------------------------

function corsFor(origins) {
  return {
    /** Response headers for a non-preflight request (empty for unknown origins). */
    headers(req) {
      const origin = req.headers.origin;
      if (!origin || !origins.has(origin)) return origin ? { Vary: "Origin" } : {};
      return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "WWW-Authenticate",
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
          "Access-Control-Allow-Headers": req.headers["access-control-request-headers"] || "Authorization, Content-Type",
          "Access-Control-Max-Age": "600",
        });
      }
      res.writeHead(204, headers).end();
      return true;
    },
  };
}

// --- token endpoint: counting, delay, faults (koa middleware inside oidc-provider) ---------------

function tokenEndpointMiddleware({ state, origins, signal }) {
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

    if (ctx.method === "POST" && ctx.path === REVOCATION_PATH) state.counters.revocation.requests += 1;
    if (ctx.method !== "POST" || ctx.path !== TOKEN_PATH) return next();

    // Consumed on arrival, so concurrent requests take faults in the order they came in.
    const fault = state.faults.next.shift();
    const { delayMs } = state.faults;
    if (delayMs > 0) {
      try {
        await sleep(delayMs, undefined, { signal });
      } catch {
        ctx.respond = false; // server closing
        return;
      }
    }

    if (fault) return injectFault(ctx, fault, { state, origins, signal });

    try {
      await next();
    } finally {
      // Counted once the outcome is known but before the response is written, so a client that
      // reads the counters after its response always sees its own request.
      bump(state.counters.token.byGrantType, ctx.oidc?.body?.grant_type ?? "(none)");
      if (ctx.status >= 400 && typeof ctx.body?.error === "string") bump(state.counters.token.errorsByCode, ctx.body.error);
    }
  };
}

async function injectFault(ctx, fault, { state, origins, signal }) {
  const counters = state.counters.token;
  // The real handler never sees this request, so read the body ourselves to count it.
  let grantType = "(none)";
  try {
    grantType = new URLSearchParams(await readBody(ctx.req)).get("grant_type") ?? "(none)";
  } catch {
    // unreadable body: counted as (none)
  }
  bump(counters.byGrantType, grantType);
  counters.faultsInjected += 1;

  const origin = ctx.get("Origin");
  ctx.vary("Origin");
  if (origin && origins.has(origin)) {
    // Without these the browser would report a CORS failure instead of the injected response.
    ctx.set("Access-Control-Allow-Origin", origin);
    ctx.set("Access-Control-Expose-Headers", "WWW-Authenticate");
  }
  ctx.set("Cache-Control", "no-store");

  switch (fault.kind) {
    case "drop":
      ctx.req.socket.destroy();
      ctx.respond = false;
      return;
    case "hang": {
      // Never answer; finish when the client goes away or the server closes.
      const socket = ctx.req.socket;
      await new Promise((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          socket.off("close", done);
          resolve();
        };
        signal.addEventListener("abort", done);
        socket.on("close", done);
        if (signal.aborted || socket.destroyed) done();
      });
      ctx.respond = false;
      return;
    }
    case "garbage":
      ctx.status = 200;
      ctx.type = "application/json"; // lies on purpose: the client must not trust it
      ctx.body = "<html><body>502 upstream garbage</body></html>";
      return;
    case "no_access_token":
      ctx.status = 200;
      ctx.body = { token_type: "Bearer", expires_in: state.accessTokenTtl, scope: "openid api" };
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

function apiHandler({ provider, state, cors }) {
  return async function api(req, res, pathname) {
    if (cors.preflight(req, res)) return;
    const headers = cors.headers(req);
    // Drain any request body so keep-alive connections stay usable.
    await readBody(req).catch(() => {});

    const reply = (status, body, extra = {}) => {
      bump(state.counters.api.byStatus, String(status));
      sendJson(res, status, body, { ...headers, ...extra });
    };

    const match = /^Bearer +([^\s]+) *$/i.exec(req.headers.authorization ?? "");
    if (!match) {
      // RFC 6750 §3.1: no credentials → no error code. Bluesky says AuthMissing.
      if (state.mode === "bluesky") return reply(401, { error: "AuthMissing", message: "Authentication Required" });
      return reply(401, { error: "unauthorized" }, { "WWW-Authenticate": "Bearer" });
    }

    // ignoreExpiration: tell "expired" apart from "unknown or revoked" in the description.
    const token = await provider.AccessToken.find(match[1], { ignoreExpiration: true });
    const problem = !token ? "The access token is unknown or revoked" : token.isExpired ? "The access token expired" : null;
    if (problem) {
      if (state.mode === "bluesky") return reply(400, { error: "ExpiredToken", message: "Token has expired" });
      return reply(
        401,
        { error: "invalid_token", error_description: problem },
        { "WWW-Authenticate": `Bearer error="invalid_token", error_description="${problem}"` },
      );
    }

    reply(200, {
      sub: token.accountId,
      scope: token.scope,
      client_id: token.clientId,
      exp: token.exp,
      method: req.method,
      path: pathname,
    });
  };
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
      if (body.accessTokenTtl !== undefined) state.accessTokenTtl = assertSeconds("accessTokenTtl", body.accessTokenTtl);
      if (body.refreshTokenTtl !== undefined) state.refreshTokenTtl = assertSeconds("refreshTokenTtl", body.refreshTokenTtl);
      return { ok: true, accessTokenTtl: state.accessTokenTtl, refreshTokenTtl: state.refreshTokenTtl };
    },
    "POST /__test/token-faults": (body) => {
      state.faults = normaliseFaults(body);
      return { ok: true, ...state.faults };
    },
    "POST /__test/revoke-grants": () => ({ ok: true, revokedGrants: store.revokeAllGrants() }),
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
