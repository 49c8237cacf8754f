// A small DPoP client (RFC 9449) for Node tests against the test IdP, independent of latchkey
// like flow.mjs: an ES256 key made with WebCrypto, proofs signed with it, and the requests that
// carry them. Nonces are kept per server — the authorization server's and the API's are
// different although they share an origin — and a request answered use_dpop_nonce is sent
// again once, with a fresh proof carrying the new nonce.

import { randomBytes, webcrypto } from "node:crypto";

import { accessTokenHash, jwkThumbprint } from "./dpop-proof.mjs";
import { authorize, createPkce, discover, readReply } from "./flow.mjs";

const { subtle } = webcrypto;

/** A fresh ES256 key pair: `{ privateKey, publicJwk, jkt }` (jkt: its RFC 7638 thumbprint). */
export async function createDpopKey() {
  const { privateKey, publicKey } = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const { kty, crv, x, y } = await subtle.exportKey("jwk", publicKey);
  const publicJwk = { kty, crv, x, y };
  return { privateKey, publicJwk, jkt: jwkThumbprint(publicJwk) };
}

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * A signed proof for a `htm` request to `htu`. `accessToken` adds its `ath`; `nonce` is left out
 * when undefined. `claims` and `header` override or add members, for proofs that must fail.
 */
export async function createProof(key, { htm, htu, nonce, accessToken, claims = {}, header = {} }) {
  const payload = {
    htm,
    htu,
    iat: Math.floor(Date.now() / 1000),
    jti: randomBytes(16).toString("base64url"),
    ...(nonce === undefined ? {} : { nonce }),
    ...(accessToken === undefined ? {} : { ath: accessTokenHash(accessToken) }),
    ...claims,
  };
  const input = `${b64({ typ: "dpop+jwt", alg: "ES256", jwk: key.publicJwk, ...header })}.${b64(payload)}`;
  // WebCrypto's ECDSA signature is r || s: the JWS ES256 format as it is.
  const signature = await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString("base64url")}`;
}

/** Whether `reply` asks for a (new) nonce: 400 JSON from the AS, 401 WWW-Authenticate from a resource. */
export function isNonceChallenge(reply) {
  if (reply.status === 400 && reply.body?.error === "use_dpop_nonce") return true;
  return reply.status === 401 && /^DPoP\b.*error="use_dpop_nonce"/.test(reply.headers.get("www-authenticate") ?? "");
}

/**
 * Sends a request with a proof made by `prove(nonce)`, the nonce being `nonces[server]`, and
 * keeps the DPoP-Nonce the answer names. Answered use_dpop_nonce with a nonce, it sends the
 * request once more with a new proof. Resolves to `{ status, headers, body, retried, proof }`.
 */
export async function withNonce(nonces, server, send) {
  const once = async () => {
    const reply = await send(nonces[server]);
    const next = reply.headers.get("dpop-nonce");
    if (next) nonces[server] = next;
    return { reply, renewed: Boolean(next) };
  };
  const first = await once();
  if (!isNonceChallenge(first.reply) || !first.renewed) return { ...first.reply, retried: false };
  return { ...(await once()).reply, retried: true };
}

/** POSTs `form` with a DPoP proof for `url`; `{ status, headers, body, proof }`. */
async function postForm(url, form, { key, nonce, origin }) {
  const proof = await createProof(key, { htm: "POST", htu: url, nonce });
  const headers = { "content-type": "application/x-www-form-urlencoded", accept: "application/json", dpop: proof };
  if (origin) headers.origin = origin;
  const res = await fetch(url, { method: "POST", headers, body: new URLSearchParams(form) });
  return { ...(await readReply(res)), proof };
}

/**
 * Pushes an authorization request (RFC 9126) with a proof and `dpop_jkt` (RFC 9449 §10): the
 * code will only be exchanged with this key. `nonces.as` is used and kept up to date.
 */
export async function pushAuthorizationRequest(
  issuer,
  { key, nonces, redirectUri, clientId = "spa-dpop", scope = "openid offline_access api", pkce, state, origin },
) {
  const { pushed_authorization_request_endpoint: url } = await discover(issuer);
  const form = {
    client_id: clientId,
    response_type: "code",
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: pkce.challenge,
    code_challenge_method: pkce.method,
    dpop_jkt: key.jkt,
  };
  return withNonce(nonces, "as", (nonce) => postForm(url, form, { key, nonce, origin }));
}

/** A token request with a proof; `nonces.as` is used and kept up to date. */
export async function dpopTokenRequest(issuer, form, { key, nonces, origin }) {
  const { token_endpoint: url } = await discover(issuer);
  return withNonce(nonces, "as", (nonce) => postForm(url, form, { key, nonce, origin }));
}

/** A refresh grant with a proof. */
export function dpopRefresh(issuer, refreshToken, { clientId = "spa-dpop", ...opts }) {
  return dpopTokenRequest(issuer, { grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId }, opts);
}

/**
 * The whole DPoP code flow: PAR, the front channel with the request_uri, the code exchange.
 * Resolves to the token response body plus `callback` (the callback params).
 */
export async function dpopLogin(issuer, { key, nonces, redirectUri, clientId = "spa-dpop", scope }) {
  const pkce = createPkce();
  const state = randomBytes(16).toString("base64url");
  const par = await pushAuthorizationRequest(issuer, { key, nonces, redirectUri, clientId, scope, pkce, state });
  if (par.status !== 201) throw new Error(`pushed authorization request failed: ${par.status} ${JSON.stringify(par.body)}`);
  const flow = await authorize(issuer, { redirectUri, clientId, requestUri: par.body.request_uri, pkce, state });
  const { params } = flow;
  if (params.error) throw new Error(`authorization error: ${params.error} ${params.error_description ?? ""}`);
  if (params.state !== state) throw new Error("state mismatch");
  const res = await dpopTokenRequest(
    issuer,
    { grant_type: "authorization_code", code: params.code, redirect_uri: redirectUri, client_id: clientId, code_verifier: pkce.verifier },
    { key, nonces },
  );
  if (res.status !== 200) throw new Error(`code exchange failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { ...res.body, callback: params };
}

/**
 * A request to a DPoP-protected resource (`Authorization: DPoP`), the proof naming `nonce`
 * (undefined: none). `proof` replaces the one made here; `claims` go into it.
 * Resolves to `{ status, headers, body, proof }`.
 */
export async function dpopResourceRequest(url, accessToken, { key, nonce, method = "GET", body, contentType, origin, proof, claims }) {
  const sent = proof ?? (await createProof(key, { htm: method, htu: url, nonce, accessToken, claims }));
  const headers = { authorization: `DPoP ${accessToken}`, dpop: sent };
  if (contentType) headers["content-type"] = contentType;
  if (origin) headers.origin = origin;
  const res = await fetch(url, { method, headers, body });
  return { ...(await readReply(res)), proof: sent };
}

/** dpopResourceRequest with `nonces[server]` (default "api"), resent once for a new nonce. */
export function callApiWithDpop(url, accessToken, { key, nonces, server = "api", ...opts }) {
  return withNonce(nonces, server, (nonce) => dpopResourceRequest(url, accessToken, { key, nonce, ...opts }));
}
