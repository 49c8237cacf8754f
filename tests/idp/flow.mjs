// A small OAuth 2.0 client for Node tests against the test IdP: PKCE S256, the authorization
// code flow followed redirect by redirect (with a cookie jar, as a browser would), and token
// endpoint calls. It is deliberately independent of latchkey, so it can check the IdP alone.

import { createHash, randomBytes } from "node:crypto";

const MAX_REDIRECTS = 10;

/** RFC 7636 §4.1–4.2: a fresh verifier and its S256 challenge. */
export function createPkce() {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  return { verifier, challenge, method: "S256" };
}

/**
 * Just enough of a cookie jar for one host: name + path, Max-Age/Expires deletion.
 * (Domain is ignored: everything here is 127.0.0.1.)
 */
export class CookieJar {
  #cookies = new Map(); // `${path}\n${name}` -> { name, value, path }

  /** Stores the Set-Cookie headers of `response` (a fetch Response). */
  store(response, requestUrl) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(";").map((s) => s.trim());
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = defaultPath(new URL(requestUrl).pathname);
      let expired = false;
      for (const attr of attrs) {
        const [k, v = ""] = attr.split("=");
        const key = k.toLowerCase();
        if (key === "path" && v.startsWith("/")) path = v;
        if (key === "max-age" && Number(v) <= 0) expired = true;
        if (key === "expires" && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${path}\n${name}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  /** The Cookie header value for a request to `url` ("" if none). */
  header(url) {
    const { pathname } = new URL(url);
    return [...this.#cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }
}

function defaultPath(pathname) {
  const i = pathname.lastIndexOf("/");
  return i <= 0 ? "/" : pathname.slice(0, i);
}

const metadataCache = new Map();

/** OIDC discovery document of `issuer` (cached per issuer). */
export async function discover(issuer) {
  if (!metadataCache.has(issuer)) {
    const res = await fetch(`${issuer}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`discovery failed: ${res.status}`);
    metadataCache.set(issuer, await res.json());
  }
  return metadataCache.get(issuer);
}

/**
 * Runs the front-channel part of the code flow: builds the authorization URL, then follows
 * redirects (the IdP's interactions complete themselves) until one goes to `redirectUri`.
 * With `requestUri` (from a pushed authorization request, RFC 9126) the URL carries only
 * `client_id` and `request_uri`: the other parameters were pushed, so pass the same `pkce` and
 * `state` here to get them back in the result.
 *
 * @returns {{ params: Record<string,string>, pkce, state, url: string }} `params` are the
 *   callback's query parameters (code, state, iss — or error, error_description).
 */
export async function authorize(
  issuer,
  {
    redirectUri,
    clientId = "spa",
    scope = "openid offline_access api",
    pkce = createPkce(),
    state = randomBytes(16).toString("base64url"),
    extraParams = {},
    jar = new CookieJar(),
    requestUri,
  },
) {
  if (!redirectUri) throw new TypeError("redirectUri is required");
  const { authorization_endpoint } = await discover(issuer);
  const url = new URL(authorization_endpoint);
  const query = requestUri
    ? { client_id: clientId, request_uri: requestUri }
    : {
        client_id: clientId,
        response_type: "code",
        redirect_uri: redirectUri,
        scope,
        state,
        code_challenge: pkce.challenge,
        code_challenge_method: pkce.method,
        ...extraParams,
      };
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);

  const target = new URL(redirectUri);
  let next = url.href;
  for (let hop = 0; hop < MAX_REDIRECTS; hop += 1) {
    const res = await fetch(next, { redirect: "manual", headers: { cookie: jar.header(next) } });
    jar.store(res, next);
    const location = res.headers.get("location");
    if (res.status < 300 || res.status > 399 || !location) {
      const text = await res.text();
      throw new Error(`authorization flow stopped at ${next}: HTTP ${res.status} ${text.slice(0, 300)}`);
    }
    await res.body?.cancel();
    const to = new URL(location, next);
    if (to.origin === target.origin && to.pathname === target.pathname) {
      return { params: Object.fromEntries(to.searchParams), pkce, state, url: to.href, jar };
    }
    next = to.href;
  }
  throw new Error(`authorization flow did not reach ${redirectUri} within ${MAX_REDIRECTS} redirects`);
}

/**
 * POSTs form `params` to the token endpoint. Never throws on an HTTP error: returns
 * `{ status, headers, body }` with `body` parsed as JSON when possible (else the text).
 */
export async function tokenRequest(issuer, params, { origin } = {}) {
  const { token_endpoint } = await discover(issuer);
  const headers = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  if (origin) headers.origin = origin;
  const res = await fetch(token_endpoint, { method: "POST", headers, body: new URLSearchParams(params) });
  return readReply(res);
}

/** Exchanges an authorization code (RFC 6749 §4.1.3 with the PKCE verifier). */
export function exchangeCode(issuer, { code, redirectUri, verifier, clientId = "spa" }, opts) {
  return tokenRequest(
    issuer,
    { grant_type: "authorization_code", code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier },
    opts,
  );
}

/** Refresh grant (RFC 6749 §6). */
export function refresh(issuer, refreshToken, { clientId = "spa", ...opts } = {}) {
  return tokenRequest(issuer, { grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId }, opts);
}

/**
 * The whole flow: authorize, check state, exchange the code. Resolves to the token response
 * body (access_token, refresh_token, id_token, ...) plus `callback` (the callback params).
 */
export async function login(issuer, options) {
  const flow = await authorize(issuer, options);
  const { params } = flow;
  if (params.error) throw new Error(`authorization error: ${params.error} ${params.error_description ?? ""}`);
  if (params.state !== flow.state) throw new Error("state mismatch");
  const res = await exchangeCode(issuer, {
    code: params.code,
    redirectUri: options.redirectUri,
    verifier: flow.pkce.verifier,
    clientId: options.clientId,
  });
  if (res.status !== 200) throw new Error(`code exchange failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { ...res.body, callback: params };
}

/** GET `url` with a Bearer token; resolves to `{ status, headers, body }` (JSON parsed if possible). */
export async function callApi(url, accessToken, { origin, method = "GET" } = {}) {
  const headers = {};
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  if (origin) headers.origin = origin;
  const res = await fetch(url, { method, headers });
  return readReply(res);
}

/** `{ status, headers, body }` of a response, `body` parsed as JSON when it is JSON, else the text. */
export async function readReply(res) {
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: leave the text
  }
  return { status: res.status, headers: res.headers, body };
}

/** Decodes a JWT's payload without verifying it (tests only look at claims). */
export function jwtPayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
}
