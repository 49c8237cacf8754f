// DPoP (RFC 9449) at the test IdP: the spa-dpop client, the authorization server's nonce layer,
// the protected resource's proof checks, the bearer_downgrade fault. Run with
// `node --test tests/idp/`. One server for the whole file (each test resets what it relies on);
// the nonce and replay-cache unit tests need none.

import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, test as nodeTest } from "node:test";

import {
  callApiWithDpop,
  createDpopKey,
  createProof,
  dpopLogin,
  dpopRefresh,
  dpopResourceRequest,
  dpopTokenRequest,
  pushAuthorizationRequest,
} from "./dpop-client.mjs";
import { createAuthorizationServerNonce, derivedNonce } from "./dpop-nonces.mjs";
import { accessTokenHash, createReplayCache, jwkThumbprint } from "./dpop-proof.mjs";
import { authorize, callApi, createPkce, discover, exchangeCode, login } from "./flow.mjs";
import { startIdp } from "./server.mjs";

const SPA = "http://127.0.0.1:5173"; // registered but never contacted
const REDIRECT = `${SPA}/callback`;
const WWW_DPOP = (error) => new RegExp(`^DPoP error="${error}", error_description="[^"]+"$`);

const test = (name, fn) => nodeTest(name, { timeout: 30_000 }, fn);

let idp;
before(async () => {
  idp = await startIdp({ spaOrigins: [SPA] });
});
after(() => idp?.close());

/** A clean slate on the shared server: counters zero, no faults, default reuse policy. */
function fresh() {
  idp.resetCounters();
  idp.setTokenFaults({});
  idp.clearEndpointFaults();
  idp.setReusePolicy("revoke-grant");
  idp.setMode("rfc6750");
  idp.setApiNonceChurn(false);
}

async function post(url, body) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** A DPoP login with a fresh key; `nonces` already holds the AS nonce afterwards. */
async function dpopSession() {
  const key = await createDpopKey();
  const nonces = {};
  const tokens = await dpopLogin(idp.issuer, { key, nonces, redirectUri: REDIRECT });
  return { key, nonces, tokens };
}

/** A GET with two DPoP header lines (fetch would join them into one). */
function getWithTwoProofs(url, accessToken, proofs) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET" }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.setHeader("authorization", `DPoP ${accessToken}`);
    req.setHeader("dpop", proofs);
    req.end();
  });
}

test("discovery: PAR endpoint and DPoP algorithms; the handle names the client and the nonces", async () => {
  const meta = await discover(idp.issuer);
  assert.equal(meta.pushed_authorization_request_endpoint, `${idp.issuer}/request`);
  assert.ok(meta.dpop_signing_alg_values_supported.includes("ES256"));
  assert.equal(idp.dpopClientId, "spa-dpop");
  assert.equal(idp.clientId, "spa");
  const nonces = await (await fetch(`${idp.issuer}/__test/dpop/nonces`)).json();
  assert.deepEqual(nonces, { authorizationServer: idp.authorizationServerNonce(), api: idp.apiNonce() });
  assert.notEqual(nonces.authorizationServer, nonces.api, "two servers, two nonces, one origin");
});

test("spa-dpop: PAR with proof and dpop_jkt, nonce challenge first, then DPoP-bound access and refresh tokens", async () => {
  fresh();
  const key = await createDpopKey();
  const nonces = {};
  const pkce = createPkce();
  const state = "par-state";
  const par = await pushAuthorizationRequest(idp.issuer, { key, nonces, redirectUri: REDIRECT, pkce, state });
  assert.equal(par.status, 201);
  assert.equal(par.retried, true, "the first proof had no nonce and was answered use_dpop_nonce");
  assert.equal(nonces.as, idp.authorizationServerNonce());
  assert.equal(par.headers.get("dpop-nonce"), idp.authorizationServerNonce(), "the answer names the AS nonce");
  assert.match(par.body.request_uri, /^urn:ietf:params:oauth:request_uri:/);
  assert.equal(idp.counters().dpop.asNonceRefusals, 1);

  const flow = await authorize(idp.issuer, { redirectUri: REDIRECT, clientId: "spa-dpop", requestUri: par.body.request_uri, pkce, state });
  assert.equal(flow.params.state, state);
  assert.equal(flow.params.iss, idp.issuer);
  const form = { grant_type: "authorization_code", code: flow.params.code, redirect_uri: REDIRECT, client_id: "spa-dpop", code_verifier: pkce.verifier };

  // Without a proof the code is refused and stays usable.
  const bare = await exchangeCode(idp.issuer, { code: flow.params.code, redirectUri: REDIRECT, verifier: pkce.verifier, clientId: "spa-dpop" });
  assert.equal(bare.status, 400);
  assert.equal(bare.body.error, "invalid_grant");

  const res = await dpopTokenRequest(idp.issuer, form, { key, nonces });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.retried, false, "the nonce learned at PAR is the token endpoint's too");
  assert.equal(res.body.token_type, "DPoP");
  assert.ok(res.body.refresh_token);
  const at = await idp.provider.AccessToken.find(res.body.access_token);
  const rt = await idp.provider.RefreshToken.find(res.body.refresh_token);
  assert.equal(at.jkt, key.jkt, "cnf.jkt of the access token");
  assert.equal(rt.jkt, key.jkt, "the refresh token of the public client is bound too");
  assert.equal(at.clientId, "spa-dpop");

  const me = await callApiWithDpop(idp.whoamiUrl, res.body.access_token, { key, nonces });
  assert.equal(me.status, 200);
  assert.equal(me.body.jkt, key.jkt);
  assert.equal(me.body.dpop, true);
  assert.equal(me.body.client_id, "spa-dpop");

  const c = idp.counters();
  assert.deepEqual(c.token.succeeded, { authorization_code: 1, refresh_token: 0 }, "grant counters count spa-dpop");
  assert.deepEqual(c.token.errorsByCode, { invalid_grant: 1 });
});

test("spa-dpop: no PAR → invalid_request; a code exchanged with another key than dpop_jkt is refused", async () => {
  fresh();
  const plain = await authorize(idp.issuer, { redirectUri: REDIRECT, clientId: "spa-dpop" });
  assert.equal(plain.params.error, "invalid_request");

  const key = await createDpopKey();
  const thief = await createDpopKey();
  const nonces = {};
  const pkce = createPkce();
  const par = await pushAuthorizationRequest(idp.issuer, { key, nonces, redirectUri: REDIRECT, pkce, state: "s" });
  const flow = await authorize(idp.issuer, { redirectUri: REDIRECT, clientId: "spa-dpop", requestUri: par.body.request_uri, pkce, state: "s" });
  const stolen = await dpopTokenRequest(
    idp.issuer,
    { grant_type: "authorization_code", code: flow.params.code, redirect_uri: REDIRECT, client_id: "spa-dpop", code_verifier: pkce.verifier },
    { key: thief, nonces },
  );
  assert.equal(stolen.status, 400);
  assert.equal(stolen.body.error, "invalid_grant");
});

test("API: stale nonce → use_dpop_nonce with the new one, and the retry succeeds; every answer carries the nonce", async () => {
  const { key, nonces, tokens } = await dpopSession();
  fresh();
  // The first call has no API nonce yet (the client only knows the AS's).
  const first = await callApiWithDpop(idp.whoamiUrl, tokens.access_token, { key, nonces });
  assert.equal(first.status, 200);
  assert.equal(first.retried, true);
  assert.equal(nonces.api, idp.apiNonce());
  assert.equal(first.headers.get("dpop-nonce"), idp.apiNonce());

  const rotated = await post(`${idp.issuer}/__test/dpop/rotate-api-nonce`);
  assert.equal(rotated.status, 200);
  assert.equal(rotated.body.nonce, idp.apiNonce());
  assert.notEqual(rotated.body.nonce, nonces.api);

  const stale = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce: nonces.api });
  assert.equal(stale.status, 401);
  assert.match(stale.headers.get("www-authenticate"), WWW_DPOP("use_dpop_nonce"));
  assert.equal(stale.headers.get("dpop-nonce"), rotated.body.nonce);
  assert.equal(stale.body.error, "use_dpop_nonce");

  const retry = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce: stale.headers.get("dpop-nonce") });
  assert.equal(retry.status, 200);
  assert.equal(retry.headers.get("dpop-nonce"), idp.apiNonce());

  // The AS nonce is not the API's, although the origin is the same.
  const asNonce = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce: idp.authorizationServerNonce() });
  assert.match(asNonce.headers.get("www-authenticate"), WWW_DPOP("use_dpop_nonce"));

  const newer = idp.rotateApiNonce();
  assert.equal(idp.apiNonce(), newer);
  const echo = await callApiWithDpop(idp.echoUrl, tokens.access_token, { key, nonces, method: "POST", body: "hello", contentType: "text/plain" });
  assert.equal(echo.status, 200);
  assert.equal(echo.retried, true);
  assert.equal(echo.body.body, "hello", "the resent request carried its body");

  assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 4, apiProofRefusals: 0, apiAccepted: 3, apiReplays: 0 });
  assert.deepEqual(idp.counters().api.byStatus, { 200: 3, 401: 4 });
});

test("API: a stolen DPoP token is refused without its key — as Bearer and with another key's proof", async () => {
  const { key, nonces, tokens } = await dpopSession();
  fresh();
  const asBearer = await callApi(idp.whoamiUrl, tokens.access_token);
  assert.equal(asBearer.status, 401);
  assert.match(asBearer.headers.get("www-authenticate"), WWW_DPOP("invalid_token"));
  assert.equal(asBearer.headers.get("dpop-nonce"), idp.apiNonce());

  idp.setMode("bluesky");
  assert.match((await callApi(idp.whoamiUrl, tokens.access_token)).headers.get("www-authenticate"), WWW_DPOP("invalid_token"), "in either mode");
  idp.setMode("rfc6750");

  const thief = await createDpopKey();
  const other = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key: thief, nonce: idp.apiNonce() });
  assert.equal(other.status, 401);
  assert.match(other.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));

  // The owner still gets in.
  assert.equal((await callApiWithDpop(idp.whoamiUrl, tokens.access_token, { key, nonces })).status, 200);
  const c = idp.counters().dpop;
  assert.equal(c.apiProofRefusals, 1);
  assert.equal(c.apiAccepted, 1);
});

test("API: a replayed proof (same jti) is refused", async () => {
  const { key, tokens } = await dpopSession();
  fresh();
  const ok = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce: idp.apiNonce() });
  assert.equal(ok.status, 200);
  const replay = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, proof: ok.proof });
  assert.equal(replay.status, 401);
  assert.match(replay.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));
  assert.match(replay.body.error_description, /replay/);
  assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 0, apiProofRefusals: 1, apiAccepted: 1, apiReplays: 1 });
});

test("API: nonce churn refuses every nonce, each answer naming a fresh one; off again, the last one named works", async () => {
  const { key, nonces, tokens } = await dpopSession();
  fresh();
  assert.equal((await callApiWithDpop(idp.whoamiUrl, tokens.access_token, { key, nonces })).status, 200);
  fresh();
  const on = await post(`${idp.issuer}/__test/dpop/api-nonce-churn`, { on: true });
  assert.deepEqual(on, { status: 200, body: { ok: true, on: true } });

  const named = [];
  let nonce = nonces.api;
  for (let i = 0; i < 3; i++) {
    const refused = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce });
    assert.equal(refused.status, 401, `request ${i}`);
    assert.match(refused.headers.get("www-authenticate"), WWW_DPOP("use_dpop_nonce"));
    nonce = refused.headers.get("dpop-nonce");
    assert.ok(nonce, "a new nonce is named");
    named.push(nonce);
  }
  assert.equal(new Set([nonces.api, ...named]).size, 4, "a fresh nonce each time");
  // A bad proof is still refused for itself, before the nonce.
  const bad = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce, claims: { htm: "POST" } });
  assert.match(bad.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));
  assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 3, apiProofRefusals: 1, apiAccepted: 0, apiReplays: 0 });

  const bogus = await post(`${idp.issuer}/__test/dpop/api-nonce-churn`, { on: "yes" });
  assert.equal(bogus.status, 400);
  idp.setApiNonceChurn(false);
  assert.throws(() => idp.setApiNonceChurn(1), TypeError);
  assert.equal((await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce })).status, 200, "the last nonce named");
});

test("API: proofs with a wrong ath, htm, htu, iat, typ, alg, a private jwk, a bad signature or two headers are refused", async () => {
  const { key, tokens } = await dpopSession();
  fresh();
  const nonce = idp.apiNonce();
  const at = tokens.access_token;
  const refused = async (label, opts) => {
    const res = await dpopResourceRequest(idp.whoamiUrl, at, { key, nonce, ...opts });
    assert.equal(res.status, 401, label);
    assert.match(res.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"), label);
    assert.equal(res.headers.get("dpop-nonce"), nonce, label);
    return res;
  };
  const proof = (opts) => createProof(key, { htm: "GET", htu: idp.whoamiUrl, nonce, accessToken: at, ...opts });

  await refused("ath of another token", { claims: { ath: accessTokenHash(`${at}x`) } });
  await refused("no ath", { proof: await proof({ accessToken: undefined }) });
  await refused("htm", { proof: await proof({ htm: "POST" }) });
  await refused("htu", { proof: await proof({ htu: `${idp.issuer}/api/other` }) });
  await refused("iat 2 minutes ago", { claims: { iat: Math.floor(Date.now() / 1000) - 120 } });
  await refused("no jti", { claims: { jti: undefined } });
  await refused("typ", { proof: await proof({ header: { typ: "JWT" } }) });
  await refused("private jwk", { proof: await proof({ header: { jwk: { ...key.publicJwk, d: "AAAA" } } }) });
  const signed = await proof({});
  await refused("signature", { proof: `${signed.slice(0, -4)}${signed.endsWith("AAAA") ? "BBBB" : "AAAA"}` });
  await refused("not a JWS", { proof: "not-a-jws" });
  const alg = await refused("alg", { proof: await proof({ header: { alg: "RS256" } }) });
  assert.match(alg.body.error_description, /ES256/);

  const two = await getWithTwoProofs(idp.whoamiUrl, at, [await proof({}), await proof({})]);
  assert.equal(two.status, 401);
  assert.match(two.headers["www-authenticate"], WWW_DPOP("invalid_dpop_proof"));

  // A query string is not part of htu; the proof made for the bare URL passes.
  const query = await dpopResourceRequest(`${idp.whoamiUrl}?x=1`, at, { key, proof: await proof({}) });
  assert.equal(query.status, 200);
  assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 0, apiProofRefusals: 12, apiAccepted: 1, apiReplays: 0 });
});

test("API: unknown, revoked and Bearer-only tokens with a good proof → invalid_token; no proof → invalid_dpop_proof", async () => {
  const { key, tokens } = await dpopSession();
  fresh();
  const nonce = idp.apiNonce();
  const unknown = await dpopResourceRequest(idp.whoamiUrl, "not-a-token", { key, nonce });
  assert.equal(unknown.status, 401);
  assert.match(unknown.headers.get("www-authenticate"), WWW_DPOP("invalid_token"));

  const bearerTokens = await login(idp.issuer, { redirectUri: REDIRECT });
  const unbound = await dpopResourceRequest(idp.whoamiUrl, bearerTokens.access_token, { key, nonce });
  assert.match(unbound.headers.get("www-authenticate"), WWW_DPOP("invalid_token"));
  assert.equal((await callApi(idp.whoamiUrl, bearerTokens.access_token)).status, 200, "spa's Bearer tokens work as before");

  const noProof = await fetch(idp.whoamiUrl, { headers: { authorization: `DPoP ${tokens.access_token}` } });
  assert.equal(noProof.status, 401);
  assert.match(noProof.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));

  // RFC 7009 revocation of the DPoP-bound access token (a DPoP header is allowed and ignored).
  const { revocation_endpoint } = await discover(idp.issuer);
  const rev = await fetch(revocation_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: SPA, dpop: await createProof(key, { htm: "POST", htu: revocation_endpoint }) },
    body: new URLSearchParams({ token: tokens.access_token, token_type_hint: "access_token", client_id: "spa-dpop" }),
  });
  assert.equal(rev.status, 200);
  assert.equal(rev.headers.get("dpop-nonce"), idp.authorizationServerNonce());
  assert.match(rev.headers.get("access-control-expose-headers"), /DPoP-Nonce/);
  const revoked = await dpopResourceRequest(idp.whoamiUrl, tokens.access_token, { key, nonce });
  assert.match(revoked.headers.get("www-authenticate"), WWW_DPOP("invalid_token"));
  assert.equal(idp.counters().dpop.apiAccepted, 0);
});

test("refresh with a proof rotates; a stale AS nonce is refused before oidc-provider, the refresh token survives", async () => {
  const { key, nonces, tokens } = await dpopSession();
  fresh();
  const r1 = await dpopRefresh(idp.issuer, tokens.refresh_token, { key, nonces });
  assert.equal(r1.status, 200);
  assert.equal(r1.retried, false);
  assert.equal(r1.body.token_type, "DPoP");
  assert.notEqual(r1.body.refresh_token, tokens.refresh_token, "rotated");
  assert.equal((await idp.provider.RefreshToken.find(r1.body.refresh_token)).jkt, key.jkt);

  const old = nonces.as;
  const rotated = await post(`${idp.issuer}/__test/dpop/rotate-as-nonce`);
  assert.equal(rotated.status, 200);
  assert.notEqual(rotated.body.nonce, old);
  assert.equal(rotated.body.nonce, idp.authorizationServerNonce());

  const { token_endpoint } = await discover(idp.issuer);
  const staleProof = await createProof(key, { htm: "POST", htu: token_endpoint, nonce: old });
  const stale = await fetch(token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", dpop: staleProof, origin: SPA },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: r1.body.refresh_token, client_id: "spa-dpop" }),
  });
  assert.equal(stale.status, 400);
  assert.equal((await stale.json()).error, "use_dpop_nonce");
  assert.equal(stale.headers.get("dpop-nonce"), rotated.body.nonce);
  assert.equal(stale.headers.get("access-control-allow-origin"), SPA);
  assert.match(stale.headers.get("access-control-expose-headers"), /DPoP-Nonce/);
  assert.equal(idp.liveRefreshTokens() >= 1, true);
  assert.equal((await idp.provider.RefreshToken.find(r1.body.refresh_token)).consumed, undefined, "not consumed");

  const r2 = await dpopRefresh(idp.issuer, r1.body.refresh_token, { key, nonces });
  assert.equal(r2.status, 200, JSON.stringify(r2.body));
  assert.equal(r2.retried, true, "the client's nonce was stale too");
  assert.equal(nonces.as, rotated.body.nonce);

  // The bound refresh token is useless with another key (and that does not end the session).
  const thief = await createDpopKey();
  const stolen = await dpopRefresh(idp.issuer, r2.body.refresh_token, { key: thief, nonces });
  assert.equal(stolen.body.error, "invalid_grant");

  // A few rotations in a row: every nonce handed out is one oidc-provider accepts.
  let current = r2.body.refresh_token;
  for (let i = 0; i < 3; i += 1) {
    idp.rotateAuthorizationServerNonce();
    const r = await dpopRefresh(idp.issuer, current, { key, nonces });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.retried, true);
    current = r.body.refresh_token;
  }

  const c = idp.counters();
  assert.equal(c.dpop.asNonceRefusals, 5, "the hand-made stale request, the client's stale nonce and three rotations");
  assert.equal(c.token.errorsByCode.use_dpop_nonce, 5);
  assert.equal(c.token.errorsByCode.invalid_grant, 1);
  assert.deepEqual(c.token.succeeded, { authorization_code: 0, refresh_token: 5 });
  assert.equal(c.token.byGrantType.refresh_token, 11);
  assert.equal(c.grants.revoked, 0);
});

test("userinfo: DPoP token with proof and the AS nonce; a stale nonce → 401 use_dpop_nonce", async () => {
  const { key, nonces, tokens } = await dpopSession();
  fresh();
  const url = `${idp.issuer}/me`;
  const me = await callApiWithDpop(url, tokens.access_token, { key, nonces, server: "as" });
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal(me.retried, false);
  assert.equal(me.body.sub, "alice");

  idp.rotateAuthorizationServerNonce();
  const stale = await dpopResourceRequest(url, tokens.access_token, { key, nonce: nonces.as, origin: SPA });
  assert.equal(stale.status, 401);
  assert.match(stale.headers.get("www-authenticate"), WWW_DPOP("use_dpop_nonce"));
  assert.equal(stale.headers.get("dpop-nonce"), idp.authorizationServerNonce());
  assert.match(stale.headers.get("access-control-expose-headers"), /DPoP-Nonce/);
  const retry = await dpopResourceRequest(url, tokens.access_token, { key, nonce: stale.headers.get("dpop-nonce"), origin: SPA });
  assert.equal(retry.status, 200);
  assert.match(retry.headers.get("access-control-expose-headers"), /DPoP-Nonce/);
  assert.equal((await callApi(url, tokens.access_token)).status, 401, "not as Bearer");
  assert.equal(idp.counters().dpop.asNonceRefusals, 1);

  // Signing out: revoking the bound refresh token ends the session.
  const { revocation_endpoint } = await discover(idp.issuer);
  const rev = await fetch(revocation_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: tokens.refresh_token, token_type_hint: "refresh_token", client_id: "spa-dpop" }),
  });
  assert.equal(rev.status, 200);
  assert.equal((await dpopRefresh(idp.issuer, tokens.refresh_token, { key, nonces })).body.error, "invalid_grant");
  assert.deepEqual(idp.counters().grants, { revoked: 1, byReason: { revocation: 1 } });
});

test("bearer_downgrade: the real grant is done, the answer says Bearer; a nonce refusal takes no fault", async () => {
  const { key, nonces, tokens } = await dpopSession();
  fresh();
  idp.rotateAuthorizationServerNonce(); // the first refresh below is answered use_dpop_nonce
  const set = await post(`${idp.issuer}/__test/token-faults`, { next: [{ kind: "bearer_downgrade" }] });
  assert.equal(set.status, 200);
  const res = await dpopRefresh(idp.issuer, tokens.refresh_token, { key, nonces });
  assert.equal(res.status, 200);
  assert.equal(res.retried, true);
  assert.equal(res.body.token_type, "Bearer", "the retry took the fault");
  assert.equal((await idp.provider.AccessToken.find(res.body.access_token)).jkt, key.jkt, "the token is still DPoP-bound");
  const c = idp.counters();
  assert.equal(c.token.faultsInjected, 1);
  assert.equal(c.token.succeeded.refresh_token, 1);
  assert.equal(c.dpop.asNonceRefusals, 1);

  // Spent: the next refresh answers the truth.
  const next = await dpopRefresh(idp.issuer, res.body.refresh_token, { key, nonces });
  assert.equal(next.body.token_type, "DPoP");
  assert.equal((await post(`${idp.issuer}/__test/token-faults`, { next: [{ kind: "nope" }] })).status, 400);
});

test("CORS: the DPoP header may be sent to PAR, token, revocation, userinfo and the API; DPoP-Nonce is readable", async () => {
  const meta = await discover(idp.issuer);
  const preflight = (url, method, origin = SPA) =>
    fetch(url, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization, dpop, content-type" } });
  for (const [url, method] of [
    [meta.pushed_authorization_request_endpoint, "POST"],
    [meta.token_endpoint, "POST"],
    [meta.revocation_endpoint, "POST"],
    [meta.userinfo_endpoint, "GET"],
    [idp.whoamiUrl, "GET"],
  ]) {
    const res = await preflight(url, method);
    assert.ok(res.status >= 200 && res.status < 300, `${url}: ${res.status}`);
    assert.equal(res.headers.get("access-control-allow-origin"), SPA, url);
    assert.match(res.headers.get("access-control-allow-headers"), /dpop/i, url);
  }
  for (const url of [meta.pushed_authorization_request_endpoint, idp.whoamiUrl]) {
    const evil = await preflight(url, "POST", "http://evil.test");
    assert.equal(evil.headers.get("access-control-allow-origin"), null, url);
  }

  // Real requests: the PAR answer and the API's expose DPoP-Nonce to the SPA origin.
  const key = await createDpopKey();
  const nonces = {};
  const par = await pushAuthorizationRequest(idp.issuer, { key, nonces, redirectUri: REDIRECT, pkce: createPkce(), state: "c", origin: SPA });
  assert.equal(par.status, 201);
  assert.equal(par.headers.get("access-control-allow-origin"), SPA);
  assert.match(par.headers.get("access-control-expose-headers"), /DPoP-Nonce/);
  const api = await dpopResourceRequest(idp.whoamiUrl, "x", { key, nonce: undefined, origin: SPA });
  assert.equal(api.headers.get("access-control-allow-origin"), SPA);
  assert.match(api.headers.get("access-control-expose-headers"), /WWW-Authenticate/);
  assert.match(api.headers.get("access-control-expose-headers"), /DPoP-Nonce/);
});

test("counters: reset zeroes dpop; control routes answer the new nonces", async () => {
  const { key, nonces, tokens } = await dpopSession();
  await callApiWithDpop(idp.whoamiUrl, tokens.access_token, { key, nonces });
  assert.ok(idp.counters().dpop.apiAccepted >= 1);
  assert.equal((await post(`${idp.issuer}/__test/reset`)).status, 200);
  assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 0, apiProofRefusals: 0, apiAccepted: 0, apiReplays: 0 });
  const as = await post(`${idp.issuer}/__test/dpop/rotate-as-nonce`);
  assert.deepEqual(as.body, { ok: true, nonce: idp.authorizationServerNonce() });
  const api = await post(`${idp.issuer}/__test/dpop/rotate-api-nonce`);
  assert.deepEqual(api.body, { ok: true, nonce: idp.apiNonce() });
});

// --- the modules on their own -------------------------------------------------------------------

test("AS nonce: oidc-provider's values; renews itself with a grace; rotate() refuses the old one at once", () => {
  const secret = Buffer.alloc(32, 7);
  let now = Date.UTC(2026, 0, 1, 0, 0, 10);
  const step = Math.floor(now / 60_000);
  const nonce = createAuthorizationServerNonce(secret, () => now);
  const first = nonce.current();
  assert.equal(first, derivedNonce(secret, step + 2), "the newest value oidc-provider accepts");
  assert.notEqual(derivedNonce(secret, step), derivedNonce(secret, step + 1));

  now += 2 * 60_000; // still step+2 at most: unchanged
  assert.equal(nonce.current(), first);
  now += 60_000; // step+3: renewed, the old value still accepted (oidc-provider accepts it this minute)
  const second = nonce.current();
  assert.notEqual(second, first);
  assert.ok(nonce.accepts(first) && nonce.accepts(second));
  now += 60_000; // step+4: the last minute oidc-provider accepts the first value
  assert.ok(nonce.accepts(first));
  now += 60_000; // step+5: past it
  assert.ok(!nonce.accepts(first));
  assert.ok(nonce.accepts(second));
  assert.equal(nonce.current(), second);

  const third = nonce.rotate();
  assert.ok(!nonce.accepts(second), "rotated away at once");
  assert.ok(nonce.accepts(third));
  const fourth = nonce.rotate();
  assert.ok(![second, third].includes(fourth), "not brought back while a fresh value is left");
  assert.equal(typeof nonce.accepts(undefined), "boolean");
  assert.ok(!nonce.accepts(undefined));
});

test("replay cache: a jti is refused once seen, forgotten after its proof expires, bounded", () => {
  const cache = createReplayCache({ limit: 3 });
  assert.equal(cache.add("a", 1000, 1000), true);
  assert.equal(cache.add("a", 1000, 1000), false);
  assert.equal(cache.add("a", 1000, 1061), true, "the proof of iat 1000 is too old at 1061 anyway");
  for (const id of ["b", "c", "d", "e"]) cache.add(id, 1061, 1061);
  assert.ok(cache.size() <= 3);
  assert.equal(jwkThumbprint({ kty: "EC", crv: "P-256", x: "x", y: "y", kid: "ignored" }), jwkThumbprint({ y: "y", x: "x", crv: "P-256", kty: "EC" }));
});
