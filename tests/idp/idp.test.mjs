// Tests of the test IdP itself: run with `node --test tests/idp/`.
// Every test starts its own server on a free port and closes it, even when it fails.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test as nodeTest } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { authorize, callApi, CookieJar, createPkce, discover, exchangeCode, jwtPayload, login, refresh, tokenRequest } from "./flow.mjs";
import { startIdp } from "./server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const SPA = "http://127.0.0.1:5173"; // registered but never contacted
const REDIRECT = `${SPA}/callback`;
const SCOPE = "openid offline_access api";

// Every test is bounded: a hang fails the test instead of stalling the run.
const test = (name, fn) => nodeTest(name, { timeout: 30_000 }, fn);

async function withIdp(options, fn) {
  const idp = await startIdp({ spaOrigins: [SPA], ...options });
  try {
    return await fn(idp);
  } finally {
    await idp.close();
  }
}

async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** Polls `check` every `everyMs` until it returns a truthy value or `withinMs` passes. */
async function eventually(check, { withinMs, everyMs = 100 }) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await check();
    if (value || Date.now() >= deadline) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

test("discovery advertises what latchkey relies on", () =>
  withIdp({}, async (idp) => {
    const meta = await discover(idp.issuer);
    assert.equal(meta.issuer, idp.issuer);
    assert.equal(meta.authorization_response_iss_parameter_supported, true);
    assert.deepEqual(meta.code_challenge_methods_supported, ["S256"]);
    assert.ok(meta.revocation_endpoint);
    assert.ok(meta.end_session_endpoint);
    assert.ok(meta.grant_types_supported.includes("refresh_token"));
    assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  }));

test("(a) code flow without prompt=consent yields access, refresh and ID tokens; callback has iss", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT, scope: SCOPE });
    assert.equal(tokens.callback.iss, idp.issuer, "RFC 9207 iss in the callback");
    assert.ok(tokens.callback.code);
    assert.equal(tokens.token_type, "Bearer");
    assert.equal(tokens.expires_in, 3600);
    assert.ok(tokens.access_token);
    assert.ok(tokens.refresh_token, "refresh token issued without prompt=consent");
    // oidc-provider drops offline_access from the granted scope (no prompt=consent), yet the
    // refresh token is issued: the response says so.
    assert.deepEqual(tokens.scope.split(" ").sort(), ["api", "openid"]);
    const id = jwtPayload(tokens.id_token);
    assert.equal(id.sub, "alice");
    assert.equal(id.iss, idp.issuer);
    assert.equal(id.aud, "spa");

    const me = await callApi(idp.whoamiUrl, tokens.access_token);
    assert.equal(me.status, 200);
    assert.equal(me.body.sub, "alice");
    assert.equal(me.body.client_id, "spa");
    assert.ok(me.body.scope.split(" ").includes("api"));

    // A second login in the same browser (session + grant exist) needs no interaction at all.
    const jar = new CookieJar();
    await authorize(idp.issuer, { redirectUri: REDIRECT, jar });
    const again = await authorize(idp.issuer, { redirectUri: `${SPA}/`, jar });
    assert.ok(again.params.code);

    // The userinfo endpoint serves the test user's claims.
    const info = await callApi(`${idp.issuer}/me`, (await login(idp.issuer, { redirectUri: REDIRECT, scope: "openid profile email" })).access_token);
    assert.equal(info.status, 200);
    assert.deepEqual(
      { sub: info.body.sub, name: info.body.name, email: info.body.email },
      { sub: "alice", name: "Alice Example", email: "alice@example.test" },
    );
  }));

test("(b) PKCE is mandatory and S256 only", () =>
  withIdp({}, async (idp) => {
    // wrong verifier
    let flow = await authorize(idp.issuer, { redirectUri: REDIRECT });
    let res = await exchangeCode(idp.issuer, { code: flow.params.code, redirectUri: REDIRECT, verifier: createPkce().verifier });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, "invalid_grant");

    // no verifier
    flow = await authorize(idp.issuer, { redirectUri: REDIRECT });
    res = await tokenRequest(idp.issuer, { grant_type: "authorization_code", code: flow.params.code, redirect_uri: REDIRECT, client_id: "spa" });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, "invalid_grant");

    // the right verifier still works
    flow = await authorize(idp.issuer, { redirectUri: REDIRECT });
    res = await exchangeCode(idp.issuer, { code: flow.params.code, redirectUri: REDIRECT, verifier: flow.pkce.verifier });
    assert.equal(res.status, 200);

    // method "plain" is refused at the authorization endpoint
    const plain = "x".repeat(43);
    flow = await authorize(idp.issuer, { redirectUri: REDIRECT, pkce: { verifier: plain, challenge: plain, method: "plain" } });
    assert.equal(flow.params.error, "invalid_request");
    assert.equal(flow.params.code, undefined);

    // and so is no code_challenge at all
    flow = await authorize(idp.issuer, { redirectUri: REDIRECT, pkce: { verifier: plain, challenge: undefined, method: undefined } });
    assert.equal(flow.params.error, "invalid_request");
    assert.match(flow.params.error_description, /PKCE/);
  }));

test("(c) every refresh rotates the refresh token; the old one is rejected", () =>
  withIdp({}, async (idp) => {
    const first = await login(idp.issuer, { redirectUri: REDIRECT });
    const r1 = await refresh(idp.issuer, first.refresh_token);
    assert.equal(r1.status, 200);
    assert.ok(r1.body.access_token);
    assert.ok(r1.body.refresh_token);
    assert.notEqual(r1.body.refresh_token, first.refresh_token);
    assert.notEqual(r1.body.access_token, first.access_token);

    const r2 = await refresh(idp.issuer, r1.body.refresh_token);
    assert.equal(r2.status, 200);
    assert.notEqual(r2.body.refresh_token, r1.body.refresh_token);

    const stale = await refresh(idp.issuer, first.refresh_token);
    assert.equal(stale.status, 400);
    assert.equal(stale.body.error, "invalid_grant");
  }));

test("(d) presenting a rotated refresh token revokes the whole grant", () =>
  withIdp({}, async (idp) => {
    const first = await login(idp.issuer, { redirectUri: REDIRECT });
    const newest = await refresh(idp.issuer, first.refresh_token);
    assert.equal(newest.status, 200);
    assert.equal((await callApi(idp.whoamiUrl, newest.body.access_token)).status, 200);

    const reuse = await refresh(idp.issuer, first.refresh_token);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, "invalid_grant");

    const afterReuse = await refresh(idp.issuer, newest.body.refresh_token);
    assert.equal(afterReuse.status, 400, "the newest refresh token died with the grant");
    assert.equal(afterReuse.body.error, "invalid_grant");

    const me = await callApi(idp.whoamiUrl, newest.body.access_token);
    assert.equal(me.status, 401, "the newest access token died with the grant");
    assert.match(me.headers.get("www-authenticate"), /error="invalid_token"/);

    // Reuse ends the session's grant, not the IdP: a fresh login gets a fresh grant.
    const fresh = await login(idp.issuer, { redirectUri: REDIRECT });
    assert.equal((await refresh(idp.issuer, fresh.refresh_token)).status, 200);
  }));

test("(g) lose_response: the refresh is done (token rotated), the answer never arrives", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    idp.setTokenFaults({ next: [{ kind: "lose_response" }] });
    await assert.rejects(refresh(idp.issuer, tokens.refresh_token), "the connection closes without an answer");
    assert.equal(idp.counters().token.faultsInjected, 1);
    assert.equal(idp.counters().token.byGrantType.refresh_token, 1, "the real handler ran");
    const again = await refresh(idp.issuer, tokens.refresh_token);
    assert.equal(again.status, 400, "the refresh token was rotated: presenting it again is reuse");
    assert.equal(again.body.error, "invalid_grant");
  }));

test("reuse policy refuse: a rotated-away refresh token gets invalid_grant and the grant lives on", () =>
  withIdp({}, async (idp) => {
    idp.setReusePolicy("refuse");
    const first = await login(idp.issuer, { redirectUri: REDIRECT });
    const newest = await refresh(idp.issuer, first.refresh_token);
    assert.equal(newest.status, 200);
    const reuse = await refresh(idp.issuer, first.refresh_token);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, "invalid_grant");
    assert.equal((await callApi(idp.whoamiUrl, newest.body.access_token)).status, 200, "the grant was not revoked");
    assert.equal((await refresh(idp.issuer, newest.body.refresh_token)).status, 200);
    assert.deepEqual(idp.counters().token.byGrantType, { authorization_code: 1, refresh_token: 3 });
    assert.deepEqual(idp.counters().token.errorsByCode, { invalid_grant: 1 });
    assert.throws(() => idp.setReusePolicy("forgive"), RangeError);
  }));

test("late_response holds a real answer back; pass lets a request through untouched", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    idp.setTokenFaults({ next: [{ kind: "pass" }, { kind: "late_response", ms: 400 }] });
    const started = Date.now();
    const first = await refresh(idp.issuer, tokens.refresh_token);
    const quick = Date.now() - started;
    const second = await refresh(idp.issuer, first.body.refresh_token);
    const late = Date.now() - started - quick;
    assert.deepEqual([first.status, second.status], [200, 200]);
    assert.ok(late >= 400, `the second answer came ${late} ms later`);
    assert.equal(idp.counters().token.faultsInjected, 1);
    assert.throws(() => idp.setTokenFaults({ next: [{ kind: "late_response" }] }), RangeError);
  }));

test("(d) two concurrent refreshes with one token: one wins, then the grant is revoked", () =>
  withIdp({}, async (idp) => {
    // This is the multi-tab bug latchkey must prevent: the IdP has to punish it, or the
    // end-to-end tests could not catch a missing cross-tab lock.
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const both = await Promise.all([refresh(idp.issuer, tokens.refresh_token), refresh(idp.issuer, tokens.refresh_token)]);
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 400]);
    const winner = both.find((r) => r.status === 200);
    assert.equal((await refresh(idp.issuer, winner.body.refresh_token)).body.error, "invalid_grant");
    assert.deepEqual(idp.counters().token.byGrantType, { authorization_code: 1, refresh_token: 3 });
  }));

test("(e) /api/whoami: valid, missing, unknown, expired; rfc6750 and bluesky modes", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    assert.equal((await callApi(idp.whoamiUrl, tokens.access_token)).status, 200);

    const missing = await callApi(idp.whoamiUrl, undefined);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get("www-authenticate"), "Bearer");

    const unknown = await callApi(idp.whoamiUrl, "not-a-token");
    assert.equal(unknown.status, 401);
    assert.match(unknown.headers.get("www-authenticate"), /^Bearer error="invalid_token", error_description="[^"]+"$/);

    // Shorten the TTL over HTTP; it applies to tokens issued from now on.
    const cfg = await post(`${idp.issuer}/__test/config`, { accessTokenTtl: 1 });
    assert.equal(cfg.status, 200);
    const short = await refresh(idp.issuer, tokens.refresh_token);
    assert.equal(short.body.expires_in, 1);
    assert.equal((await callApi(idp.whoamiUrl, tokens.access_token)).status, 200, "earlier token keeps its TTL");

    const expired = await eventually(
      async () => {
        const r = await callApi(idp.whoamiUrl, short.body.access_token);
        return r.status === 401 ? r : undefined;
      },
      { withinMs: 4000, everyMs: 200 },
    );
    assert.ok(expired, "token expired within 4 s");
    assert.equal(expired.headers.get("www-authenticate"), 'Bearer error="invalid_token", error_description="The access token expired"');
    assert.equal(expired.body.error, "invalid_token");

    const mode = await post(`${idp.issuer}/__test/mode`, { mode: "bluesky" });
    assert.equal(mode.status, 200);
    for (const token of [short.body.access_token, "not-a-token"]) {
      const bsky = await callApi(idp.whoamiUrl, token);
      assert.equal(bsky.status, 400);
      assert.match(bsky.headers.get("content-type"), /^application\/json/);
      assert.deepEqual(bsky.body, { error: "ExpiredToken", message: "Token has expired" });
      assert.equal(bsky.headers.get("www-authenticate"), null);
    }
    assert.equal((await callApi(idp.whoamiUrl, tokens.access_token)).status, 200, "valid tokens still work in bluesky mode");

    idp.setMode("rfc6750");
    assert.equal((await callApi(idp.whoamiUrl, short.body.access_token)).status, 401);
    assert.equal((await post(`${idp.issuer}/__test/mode`, { mode: "nope" })).status, 400);
  }));

test("bluesky mode can be chosen at start", () =>
  withIdp({ mode: "bluesky", accessTokenTtl: 1 }, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    assert.equal(tokens.expires_in, 1);
    const res = await eventually(
      async () => {
        const r = await callApi(idp.whoamiUrl, tokens.access_token);
        return r.status === 400 ? r : undefined;
      },
      { withinMs: 4000, everyMs: 200 },
    );
    assert.deepEqual(res?.body, { error: "ExpiredToken", message: "Token has expired" });
  }));

test("(f) counters: token requests by grant type, errors by code, API by status; reset", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const r1 = await refresh(idp.issuer, tokens.refresh_token);
    await refresh(idp.issuer, "bogus"); // invalid_grant
    await tokenRequest(idp.issuer, { grant_type: "password", client_id: "spa" }); // unsupported_grant_type
    await callApi(idp.whoamiUrl, r1.body.access_token); // 200
    await callApi(idp.whoamiUrl, r1.body.access_token); // 200
    await callApi(idp.whoamiUrl, "bogus"); // 401
    const rev = await fetch(`${idp.issuer}/token/revocation`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: r1.body.refresh_token, client_id: "spa" }),
    });
    assert.equal(rev.status, 200);

    const expected = {
      token: {
        byGrantType: { authorization_code: 1, refresh_token: 2, password: 1 },
        succeeded: { authorization_code: 1, refresh_token: 1 },
        errorsByCode: { invalid_grant: 1, unsupported_grant_type: 1 },
        faultsInjected: 0,
      },
      api: { byStatus: { 200: 2, 401: 1 } },
      revocation: { requests: 1, byHint: { "(none)": 1 }, succeeded: 1, faultsInjected: 0 },
      // flow.mjs discovers each issuer once (it caches the metadata)
      discovery: { requests: 1, faultsInjected: 0 },
      jwks: { requests: 0, faultsInjected: 0 },
      userinfo: { requests: 0, faultsInjected: 0 },
      endSession: { requests: 0, withIdTokenHint: 0 },
      // Revoking a refresh token (RFC 7009) revokes its grant.
      grants: { revoked: 1, byReason: { revocation: 1 } },
      atproto: { refreshSession: 0 },
      dpop: { asNonceRefusals: 0, apiNonceRefusals: 0, apiProofRefusals: 0, apiAccepted: 0, apiReplays: 0 },
    };
    assert.deepEqual(idp.counters(), expected);
    const overHttp = await (await fetch(`${idp.issuer}/__test/counters`)).json();
    assert.deepEqual(overHttp, expected);

    // The revoked refresh token is gone.
    assert.equal((await refresh(idp.issuer, r1.body.refresh_token)).body.error, "invalid_grant");

    assert.equal((await post(`${idp.issuer}/__test/reset`)).status, 200);
    const zero = {
      token: {
        byGrantType: { authorization_code: 0, refresh_token: 0 },
        succeeded: { authorization_code: 0, refresh_token: 0 },
        errorsByCode: {},
        faultsInjected: 0,
      },
      api: { byStatus: {} },
      revocation: { requests: 0, byHint: {}, succeeded: 0, faultsInjected: 0 },
      discovery: { requests: 0, faultsInjected: 0 },
      jwks: { requests: 0, faultsInjected: 0 },
      userinfo: { requests: 0, faultsInjected: 0 },
      endSession: { requests: 0, withIdTokenHint: 0 },
      grants: { revoked: 0, byReason: {} },
      atproto: { refreshSession: 0 },
      dpop: { asNonceRefusals: 0, apiNonceRefusals: 0, apiProofRefusals: 0, apiAccepted: 0, apiReplays: 0 },
    };
    assert.deepEqual(idp.counters(), zero);
    await refresh(idp.issuer, "bogus");
    idp.resetCounters();
    assert.deepEqual(idp.counters(), zero);
  }));

test("revocation faults: 503 and drop revoke nothing; cleared, revocation works; live refresh tokens counted", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    assert.equal(idp.liveRefreshTokens(), 1);
    const revoke = () =>
      fetch(`${idp.issuer}/token/revocation`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: tokens.refresh_token, token_type_hint: "refresh_token", client_id: "spa" }),
      });
    const set = await post(`${idp.issuer}/__test/revocation-fault`, { fault: { status: 503 } });
    assert.deepEqual(set.body, { ok: true, fault: { kind: "status", status: 503 } });
    assert.equal((await revoke()).status, 503);
    idp.setRevocationFault({ kind: "drop" });
    await assert.rejects(revoke());
    assert.equal(idp.liveRefreshTokens(), 1, "a faulted revocation revokes nothing");
    assert.throws(() => idp.setRevocationFault({ status: 200 }), RangeError);

    idp.setRevocationFault(null);
    assert.equal((await revoke()).status, 200);
    assert.equal(idp.liveRefreshTokens(), 0);
    assert.deepEqual(idp.counters().revocation, {
      requests: 3,
      byHint: { refresh_token: 1 },
      succeeded: 1,
      faultsInjected: 2,
    });
    assert.deepEqual((await (await fetch(`${idp.issuer}/__test/live-refresh-tokens`)).json()), { count: 0 });
  }));

test("(g) token faults: status once then real, garbage, no_access_token, drop, delay", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    let rt = tokens.refresh_token;
    const set = await post(`${idp.issuer}/__test/token-faults`, {
      next: [
        { kind: "status", status: 500 },
        { kind: "status", status: 503, body: "busy", headers: { "retry-after": "1" } },
        { kind: "garbage" },
        { kind: "no_access_token" },
      ],
    });
    assert.equal(set.status, 200);

    let res = await refresh(idp.issuer, rt, { origin: SPA });
    assert.equal(res.status, 500);
    assert.equal(res.body.error, "server_error");
    assert.equal(res.headers.get("access-control-allow-origin"), SPA, "faults keep CORS so browsers see them");

    res = await refresh(idp.issuer, rt);
    assert.equal(res.status, 503);
    assert.equal(res.body, "busy");
    assert.equal(res.headers.get("retry-after"), "1");

    res = await refresh(idp.issuer, rt);
    assert.equal(res.status, 200);
    assert.equal(typeof res.body, "string", "garbage is not JSON");

    res = await refresh(idp.issuer, rt);
    assert.equal(res.status, 200);
    assert.equal(res.body.access_token, undefined);
    assert.equal(res.body.token_type, "Bearer");

    // Faults never reached oidc-provider: the refresh token is still the live one.
    res = await refresh(idp.issuer, rt);
    assert.equal(res.status, 200);
    assert.ok(res.body.access_token);
    rt = res.body.refresh_token;

    idp.setTokenFaults({ next: [{ kind: "drop" }] });
    await assert.rejects(refresh(idp.issuer, rt), TypeError);
    assert.equal((await refresh(idp.issuer, rt)).status, 200, "drop consumed one request only");

    const c = idp.counters().token;
    assert.equal(c.faultsInjected, 5);
    assert.equal(c.byGrantType.refresh_token, 7);
    assert.equal(c.errorsByCode.server_error, 1);

    // delay applies to every token request while set
    await post(`${idp.issuer}/__test/token-faults`, { delayMs: 400 });
    const t0 = Date.now();
    res = await refresh(idp.issuer, "bogus");
    assert.ok(Date.now() - t0 >= 380, "delayed");
    assert.equal(res.body.error, "invalid_grant");
    await post(`${idp.issuer}/__test/token-faults`, {});
    const t1 = Date.now();
    await refresh(idp.issuer, "bogus");
    assert.ok(Date.now() - t1 < 380, "cleared");

    assert.equal((await post(`${idp.issuer}/__test/token-faults`, { next: [{ kind: "nope" }] })).status, 400);
  }));

test("(g) strip_access_token: the real refresh rotates, and the answer carries the new refresh token without an access token", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    idp.setTokenFaults({ next: [{ kind: "strip_access_token" }] });
    const stripped = await refresh(idp.issuer, tokens.refresh_token);
    assert.equal(stripped.status, 200);
    assert.equal(stripped.body.access_token, undefined);
    assert.equal(stripped.body.token_type, "Bearer");
    assert.ok(stripped.body.refresh_token, "the rotated refresh token");
    assert.notEqual(stripped.body.refresh_token, tokens.refresh_token);
    assert.equal(idp.counters().token.faultsInjected, 1);
    assert.equal(idp.counters().token.succeeded.refresh_token, 1, "oidc-provider carried out the grant");

    // The rotated refresh token is the live one.
    const next = await refresh(idp.issuer, stripped.body.refresh_token);
    assert.equal(next.status, 200);
    assert.ok(next.body.access_token);
  }));

// Sends `send()` into a "hang" fault and closes the server while it is pending: close() must
// finish promptly, and the orphaned request then fails. (close() may be called again after.)
// By default the hang is a token-endpoint fault; `endpoint` names an outage endpoint instead.
async function closeDespiteHungRequest(idp, send, { endpoint } = {}) {
  const injected = () => (endpoint && endpoint !== "code_exchange" ? idp.counters()[endpoint] : idp.counters().token).faultsInjected;
  const before = injected();
  if (endpoint) idp.setEndpointFault(endpoint, { kind: "hang" });
  else idp.setTokenFaults({ next: [{ kind: "hang" }] });
  const orphan = send();
  await eventually(() => injected() === before + 1, { withinMs: 2000, everyMs: 20 });
  const t0 = Date.now();
  await idp.close();
  assert.ok(Date.now() - t0 < 2000, "close() did not wait for the hung request");
  await assert.rejects(orphan);
}

test("(g) a hung token request stays unanswered and does not stop close()", async () => {
  const idp = await startIdp({ spaOrigins: [SPA] });
  try {
    idp.setTokenFaults({ next: [{ kind: "hang" }] });
    const { token_endpoint } = await discover(idp.issuer);
    const pending = fetch(token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=refresh_token&refresh_token=x&client_id=spa",
      signal: AbortSignal.timeout(500),
    });
    await assert.rejects(pending, (err) => err.name === "TimeoutError");
    assert.equal(idp.counters().token.faultsInjected, 1);

    // Another hang, left pending while the server closes: close() must still finish promptly.
    await closeDespiteHungRequest(idp, () =>
      fetch(token_endpoint, { method: "POST", body: "grant_type=refresh_token", headers: { "content-type": "application/x-www-form-urlencoded" } }),
    );
  } finally {
    await idp.close();
  }
});

const get = (url, opts = {}) => fetch(url, opts);

test("JWKS outage: 503, drop and hang while set, counted; cleared, the keys are served again", () =>
  withIdp({}, async (idp) => {
    const { jwks_uri } = await discover(idp.issuer);
    assert.equal(new URL(jwks_uri).pathname, "/jwks");
    assert.equal((await get(jwks_uri)).status, 200, "no fault yet");

    idp.setEndpointFault("jwks", { status: 503 });
    for (let i = 0; i < 2; i++) {
      const res = await get(jwks_uri, { headers: { origin: SPA } });
      assert.equal(res.status, 503, "every request while set, not just one");
      assert.equal(res.headers.get("access-control-allow-origin"), SPA, "a browser sees the status");
      assert.equal((await res.json()).error, "temporarily_unavailable");
    }

    // Over HTTP too, like the other control routes.
    const set = await post(`${idp.issuer}/__test/endpoint-fault`, { endpoint: "jwks", fault: { kind: "drop" } });
    assert.deepEqual(set.body, { ok: true, endpoint: "jwks", fault: { kind: "drop" } });
    await assert.rejects(get(jwks_uri), TypeError, "drop: a network error");

    idp.setEndpointFault("jwks", { kind: "hang" });
    await assert.rejects(get(jwks_uri, { signal: AbortSignal.timeout(300) }), (err) => err.name === "TimeoutError");
    assert.deepEqual((await (await get(`${idp.issuer}/__test/endpoint-faults`)).json()).jwks, { kind: "hang" });

    const cleared = await post(`${idp.issuer}/__test/endpoint-fault`, { endpoint: "jwks", fault: null });
    assert.deepEqual(cleared.body, { ok: true, endpoint: "jwks", fault: null });
    const keys = await (await get(jwks_uri)).json();
    assert.equal(keys.keys.length, 1);
    assert.deepEqual(idp.counters().jwks, { requests: 6, faultsInjected: 4 });
    // Other endpoints were never affected.
    assert.equal((await get(`${idp.issuer}/.well-known/openid-configuration`)).status, 200);

    for (const bad of [{ status: 200 }, { kind: "garbage" }, { kind: "status" }]) {
      assert.throws(() => idp.setEndpointFault("jwks", bad), RangeError, JSON.stringify(bad));
    }
    assert.throws(() => idp.setEndpointFault("token", { kind: "hang" }), RangeError);
    const badRoute = await post(`${idp.issuer}/__test/endpoint-fault`, { endpoint: "nope", fault: { kind: "hang" } });
    assert.equal(badRoute.status, 400);
    assert.equal(idp.endpointFaults().jwks, null, "a refused setting changes nothing");
  }));

test("a hanging endpoint holds the socket until the fault is cleared, then closes it unanswered", () =>
  withIdp({}, async (idp) => {
    const { jwks_uri } = await discover(idp.issuer);
    idp.setEndpointFault("jwks", { kind: "hang" });
    const held = get(jwks_uri).then(
      (res) => `answered ${res.status}`,
      (err) => `closed: ${err.name}`,
    );
    await eventually(() => idp.counters().jwks.faultsInjected === 1, { withinMs: 2000, everyMs: 20 });
    const raced = await Promise.race([held, sleep(500).then(() => "still held")]);
    assert.equal(raced, "still held", "no answer while the fault is set");
    const t0 = Date.now();
    idp.setEndpointFault("jwks", null);
    assert.equal(await held, "closed: TypeError", "clearing ends the held request without an answer");
    assert.ok(Date.now() - t0 < 1000, "promptly");
    assert.equal((await get(jwks_uri)).status, 200);
  }));

test("hanging discovery: both well-known documents hang while set; close() is not held up", async () => {
  const idp = await startIdp({ spaOrigins: [SPA] });
  try {
    idp.setEndpointFault("discovery", { kind: "hang" });
    for (const path of ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]) {
      await assert.rejects(get(`${idp.issuer}${path}`, { signal: AbortSignal.timeout(300) }), (err) => err.name === "TimeoutError", path);
    }
    assert.deepEqual(idp.counters().discovery, { requests: 2, faultsInjected: 2 });
    // The rest of the server answers: an outage takes out one endpoint only.
    assert.equal((await callApi(idp.whoamiUrl)).status, 401);
    // A 503 outage, then none.
    idp.setEndpointFault("discovery", { status: 503 });
    assert.equal((await get(`${idp.issuer}/.well-known/openid-configuration`)).status, 503);
    idp.clearEndpointFaults();
    assert.equal((await get(`${idp.issuer}/.well-known/oauth-authorization-server`)).status, 200);

    await closeDespiteHungRequest(idp, () => get(`${idp.issuer}/.well-known/openid-configuration`), { endpoint: "discovery" });
  } finally {
    await idp.close();
  }
});

test("a hanging JWKS request does not stop close()", async () => {
  const idp = await startIdp({ spaOrigins: [SPA] });
  try {
    await closeDespiteHungRequest(idp, () => get(`${idp.issuer}/jwks`), { endpoint: "jwks" });
  } finally {
    await idp.close();
  }
});

test("code_exchange outage: the authorization_code grant hangs or fails while set, refreshes pass; the code stays usable", async () => {
  const idp = await startIdp({ spaOrigins: [SPA] });
  try {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const flow = await authorize(idp.issuer, { redirectUri: REDIRECT });
    const exchange = (opts) =>
      exchangeCode(idp.issuer, { code: flow.params.code, redirectUri: REDIRECT, verifier: flow.pkce.verifier }, opts);
    idp.resetCounters();

    idp.setEndpointFault("code_exchange", { kind: "hang" });
    const { token_endpoint } = await discover(idp.issuer);
    const hung = fetch(token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: flow.params.code, redirect_uri: REDIRECT, client_id: "spa", code_verifier: flow.pkce.verifier }),
      signal: AbortSignal.timeout(400),
    });
    await assert.rejects(hung, (err) => err.name === "TimeoutError");
    // The refresh grant is not the code exchange: it passes, and rotates.
    const refreshed = await refresh(idp.issuer, tokens.refresh_token);
    assert.equal(refreshed.status, 200);

    idp.setEndpointFault("code_exchange", { status: 503 });
    const refused = await exchange({ origin: SPA });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("access-control-allow-origin"), SPA);

    idp.setEndpointFault("code_exchange", null);
    const done = await exchange();
    assert.equal(done.status, 200, "the faulted requests never reached oidc-provider: the code is unused");
    assert.ok(done.body.refresh_token);
    const c = idp.counters().token;
    assert.deepEqual(c.byGrantType, { authorization_code: 3, refresh_token: 1 });
    assert.deepEqual(c.succeeded, { authorization_code: 1, refresh_token: 1 });
    assert.equal(c.faultsInjected, 2);
    assert.deepEqual(idp.counters().grants, { revoked: 0, byReason: {} }, "no code was reused");

    await closeDespiteHungRequest(idp, () => exchange(), { endpoint: "code_exchange" });
  } finally {
    await idp.close();
  }
});

test("userinfo outage: /me fails while set", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    idp.setEndpointFault("userinfo", { status: 502 });
    assert.equal((await callApi(`${idp.issuer}/me`, tokens.access_token)).status, 502);
    idp.setEndpointFault("userinfo", null);
    assert.equal((await callApi(`${idp.issuer}/me`, tokens.access_token)).status, 200);
    assert.deepEqual(idp.counters().userinfo, { requests: 2, faultsInjected: 1 });
  }));

test("late_response rotates at once and answers late: the old refresh token is spent before the answer arrives", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    idp.resetCounters();
    assert.equal(idp.liveRefreshTokens(), 1);
    idp.setTokenFaults({ next: [{ kind: "late_response", ms: 1500 }] });
    const started = Date.now();
    const late = refresh(idp.issuer, tokens.refresh_token);
    // The rotation is done (counted, the old token consumed, the new one live) while the answer
    // is still held.
    assert.ok(await eventually(() => idp.counters().token.succeeded.refresh_token === 1, { withinMs: 1000, everyMs: 20 }));
    assert.ok(Date.now() - started < 1000, "rotated well before the answer");
    assert.equal(idp.liveRefreshTokens(), 1, "the old token consumed, the new one live");
    const answer = await late;
    assert.ok(Date.now() - started >= 1500, "answered after the delay");
    assert.equal(answer.status, 200);
    assert.notEqual(answer.body.refresh_token, tokens.refresh_token);
    assert.equal((await refresh(idp.issuer, answer.body.refresh_token)).status, 200, "the late answer's token is the live one");
    assert.deepEqual(idp.counters().grants, { revoked: 0, byReason: {} });
  }));

test("grant counters: reuse, revocation and revoke-grants are counted by reason; rotations as succeeded refresh grants", () =>
  withIdp({}, async (idp) => {
    // Reuse of a rotated refresh token revokes the grant: reason "reuse".
    const a = await login(idp.issuer, { redirectUri: REDIRECT });
    const a2 = await refresh(idp.issuer, a.refresh_token);
    assert.equal((await refresh(idp.issuer, a.refresh_token)).body.error, "invalid_grant");
    assert.equal((await refresh(idp.issuer, a2.body.refresh_token)).body.error, "invalid_grant", "the grant is gone");
    // A used authorization code presented again: reuse too.
    const flow = await authorize(idp.issuer, { redirectUri: REDIRECT });
    const codeArgs = { code: flow.params.code, redirectUri: REDIRECT, verifier: flow.pkce.verifier };
    assert.equal((await exchangeCode(idp.issuer, codeArgs)).status, 200);
    assert.equal((await exchangeCode(idp.issuer, codeArgs)).body.error, "invalid_grant");
    // RFC 7009 revocation of a refresh token: reason "revocation".
    const b = await login(idp.issuer, { redirectUri: REDIRECT });
    const rev = await fetch(`${idp.issuer}/token/revocation`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: b.refresh_token, token_type_hint: "refresh_token", client_id: "spa" }),
    });
    assert.equal(rev.status, 200);
    // The test's own revoke-grants: reason "test" (one live grant left: b's is gone).
    await login(idp.issuer, { redirectUri: REDIRECT });
    assert.equal(idp.liveGrants().length, 1);
    assert.equal((await post(`${idp.issuer}/__test/revoke-grants`)).body.revokedGrants, 1);

    assert.equal(idp.liveGrants().length, 0, "every grant is gone");
    const c = idp.counters();
    assert.deepEqual(c.grants, { revoked: 4, byReason: { reuse: 2, revocation: 1, test: 1 } });
    assert.deepEqual(c.token.succeeded, { authorization_code: 4, refresh_token: 1 });
    assert.equal(c.token.errorsByCode.invalid_grant, 3);
    idp.resetCounters();
    assert.deepEqual(idp.counters().grants, { revoked: 0, byReason: {} });
  }));

test("revoke-grants kills every grant: refresh → invalid_grant, access tokens → 401", () =>
  withIdp({}, async (idp) => {
    const a = await login(idp.issuer, { redirectUri: REDIRECT });
    const b = await login(idp.issuer, { redirectUri: REDIRECT });
    const res = await post(`${idp.issuer}/__test/revoke-grants`);
    assert.equal(res.status, 200);
    assert.equal(res.body.revokedGrants, 2);
    for (const t of [a, b]) {
      assert.equal((await refresh(idp.issuer, t.refresh_token)).body.error, "invalid_grant");
      assert.equal((await callApi(idp.whoamiUrl, t.access_token)).status, 401);
    }
    // and logging in again works
    const c = await login(idp.issuer, { redirectUri: REDIRECT });
    assert.equal((await callApi(idp.whoamiUrl, c.access_token)).status, 200);
  }));

test("RP-initiated logout confirms itself and redirects; refresh tokens need revocation", () =>
  withIdp({}, async (idp) => {
    const jar = new CookieJar();
    const flow = await authorize(idp.issuer, { redirectUri: REDIRECT, jar });
    const tokens = (await exchangeCode(idp.issuer, { code: flow.params.code, redirectUri: REDIRECT, verifier: flow.pkce.verifier })).body;
    const { end_session_endpoint } = await discover(idp.issuer);
    const url = new URL(end_session_endpoint);
    url.searchParams.set("id_token_hint", tokens.id_token);
    url.searchParams.set("post_logout_redirect_uri", `${SPA}/`);
    url.searchParams.set("state", "bye");

    const page = await fetch(url, { headers: { cookie: jar.header(url.href) } });
    jar.store(page, url.href);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /\.submit\(\)/, "the page submits itself");
    const action = /<form[^>]*action="([^"]+)"/.exec(html)[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)[1];

    const confirm = await fetch(action, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: jar.header(action) },
      body: new URLSearchParams({ xsrf, logout: "yes" }),
    });
    assert.equal(confirm.status, 303);
    const to = new URL(confirm.headers.get("location"));
    assert.equal(`${to.origin}${to.pathname}`, `${SPA}/`);
    assert.equal(to.searchParams.get("state"), "bye");

    // Refresh tokens outlive the IdP session (like offline_access): ending the session does not
    // revoke them; the revocation endpoint does.
    const after = await refresh(idp.issuer, tokens.refresh_token);
    assert.equal(after.status, 200, "refresh token survives end_session");
    const rev = await fetch(`${idp.issuer}/token/revocation`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: after.body.refresh_token, token_type_hint: "refresh_token", client_id: "spa" }),
    });
    assert.equal(rev.status, 200);
    assert.equal((await refresh(idp.issuer, after.body.refresh_token)).body.error, "invalid_grant");
  }));

test("(h) CORS: SPA origin allowed on token, revocation and API; unknown origin gets no ACAO", () =>
  withIdp({}, async (idp) => {
    const preflight = (url, origin, method = "POST", headers = "content-type") =>
      fetch(url, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers },
      });
    const { token_endpoint, revocation_endpoint } = await discover(idp.issuer);

    for (const url of [token_endpoint, revocation_endpoint]) {
      const ok = await preflight(url, SPA);
      assert.ok(ok.status >= 200 && ok.status < 300, `${url} preflight status ${ok.status}`);
      assert.equal(ok.headers.get("access-control-allow-origin"), SPA);
      assert.match(ok.headers.get("access-control-allow-methods"), /POST/);
      const bad = await preflight(url, "http://evil.test");
      assert.equal(bad.headers.get("access-control-allow-origin"), null);
    }

    const api = await preflight(idp.whoamiUrl, SPA, "GET", "authorization");
    assert.equal(api.status, 204);
    assert.equal(api.headers.get("access-control-allow-origin"), SPA);
    assert.match(api.headers.get("access-control-allow-headers"), /authorization/i);
    const apiBad = await preflight(idp.whoamiUrl, "http://evil.test", "GET", "authorization");
    assert.equal(apiBad.headers.get("access-control-allow-origin"), null);

    const ctl = await preflight(`${idp.issuer}/__test/reset`, SPA, "POST", "content-type");
    assert.equal(ctl.headers.get("access-control-allow-origin"), SPA);

    // Actual requests
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const good = await refresh(idp.issuer, tokens.refresh_token, { origin: SPA });
    assert.equal(good.status, 200);
    assert.equal(good.headers.get("access-control-allow-origin"), SPA);
    const evil = await refresh(idp.issuer, good.body.refresh_token, { origin: "http://evil.test" });
    assert.equal(evil.headers.get("access-control-allow-origin"), null);
    assert.equal(evil.body.error, "invalid_request");

    const denied = await callApi(idp.whoamiUrl, "bogus", { origin: SPA });
    assert.equal(denied.headers.get("access-control-allow-origin"), SPA);
    assert.match(denied.headers.get("access-control-expose-headers"), /WWW-Authenticate/i);
    const deniedEvil = await callApi(idp.whoamiUrl, "bogus", { origin: "http://evil.test" });
    assert.equal(deniedEvil.headers.get("access-control-allow-origin"), null);
  }));

test("advertisedExpiresIn: token responses claim it while the API enforces the real TTL", () =>
  withIdp({ accessTokenTtl: 2 }, async (idp) => {
    const config = `${idp.issuer}/__test/config`;
    const cfg = await post(config, { advertisedExpiresIn: 3600 });
    assert.equal(cfg.status, 200);
    assert.deepEqual(cfg.body, { ok: true, accessTokenTtl: 2, refreshTokenTtl: 86400, advertisedExpiresIn: 3600 });

    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const issuedBy = Date.now();
    assert.equal(tokens.expires_in, 3600, "authorization_code response");
    const me = await callApi(idp.whoamiUrl, tokens.access_token);
    assert.equal(me.status, 200);
    assert.ok(me.body.exp <= issuedBy / 1000 + 2, "the real lifetime is still 2 s");
    const refreshed = await refresh(idp.issuer, tokens.refresh_token);
    assert.equal(refreshed.body.expires_in, 3600, "refresh_token response");

    // The client would believe in another hour; the API says no after the real 2 s.
    await sleep(Math.max(0, issuedBy + 2500 - Date.now()));
    const late = await callApi(idp.whoamiUrl, tokens.access_token);
    assert.equal(late.status, 401);
    assert.equal(late.body.error_description, "The access token expired");

    // null restores the truth.
    idp.setAdvertisedExpiresIn(null);
    assert.equal((await refresh(idp.issuer, refreshed.body.refresh_token)).body.expires_in, 2);

    // A bad value is refused and changes nothing, not even the valid fields next to it.
    for (const bad of [0, -5, 1.5, "3600"]) {
      assert.equal((await post(config, { accessTokenTtl: 7, advertisedExpiresIn: bad })).status, 400, `advertisedExpiresIn ${bad}`);
    }
    assert.deepEqual((await post(config, {})).body, { ok: true, accessTokenTtl: 2, refreshTokenTtl: 86400, advertisedExpiresIn: null });
    assert.throws(() => idp.setAdvertisedExpiresIn(0), RangeError);
  }));

const bearerPost = (url, token, opts = {}) => callApi(url, token, { method: "POST", ...opts });

test("atproto refreshSession rotates; a reused refreshJwt answers ExpiredToken and kills the grant", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    idp.resetCounters();

    const s1 = await bearerPost(idp.refreshSessionUrl, tokens.refresh_token);
    assert.equal(s1.status, 200);
    assert.deepEqual(Object.keys(s1.body).sort(), ["accessJwt", "did", "expiresIn", "refreshJwt"]);
    assert.equal(s1.body.did, "did:plc:alice");
    assert.equal(s1.body.expiresIn, 3600);
    assert.notEqual(s1.body.refreshJwt, tokens.refresh_token);
    assert.notEqual(s1.body.accessJwt, tokens.access_token);
    assert.equal((await callApi(idp.whoamiUrl, s1.body.accessJwt)).status, 200);

    // expiresIn is the token endpoint's expires_in, advertised override included.
    idp.setAdvertisedExpiresIn(60);
    const s2 = await bearerPost(idp.refreshSessionUrl, s1.body.refreshJwt);
    assert.equal(s2.status, 200);
    assert.equal(s2.body.expiresIn, 60);
    assert.notEqual(s2.body.refreshJwt, s1.body.refreshJwt);

    const reuse = await bearerPost(idp.refreshSessionUrl, s1.body.refreshJwt);
    assert.equal(reuse.status, 400);
    assert.deepEqual(reuse.body, { error: "ExpiredToken", message: "Token has expired" });
    const newest = await bearerPost(idp.refreshSessionUrl, s2.body.refreshJwt);
    assert.equal(newest.status, 400, "the newest refreshJwt died with the grant");
    assert.equal(newest.body.error, "ExpiredToken");
    assert.equal((await callApi(idp.whoamiUrl, s2.body.accessJwt)).status, 401, "and so did its accessJwt");

    // Each call is also a real refresh_token grant at the token endpoint, and counted there.
    const c = idp.counters();
    assert.equal(c.atproto.refreshSession, 4);
    assert.deepEqual(c.token.byGrantType, { authorization_code: 0, refresh_token: 4 });
    assert.deepEqual(c.token.errorsByCode, { invalid_grant: 2 });
  }));

test("atproto refreshSession: missing bearer is AuthMissing, POST only, CORS for the SPA origin", () =>
  withIdp({}, async (idp) => {
    const url = idp.refreshSessionUrl;
    const missing = await bearerPost(url, undefined, { origin: SPA });
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error, "AuthMissing");
    assert.equal(missing.headers.get("access-control-allow-origin"), SPA);
    assert.equal((await callApi(url, "whatever")).status, 405, "GET");

    const preflight = (origin) =>
      fetch(url, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization" },
      });
    const ok = await preflight(SPA);
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get("access-control-allow-origin"), SPA);
    assert.match(ok.headers.get("access-control-allow-methods"), /POST/);
    assert.match(ok.headers.get("access-control-allow-headers"), /authorization/i);
    assert.equal((await preflight("http://evil.test")).headers.get("access-control-allow-origin"), null);

    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const good = await bearerPost(url, tokens.refresh_token, { origin: SPA });
    assert.equal(good.status, 200);
    assert.equal(good.headers.get("access-control-allow-origin"), SPA);
    assert.equal(idp.counters().atproto.refreshSession, 3, "preflights are not counted");
  }));

test("atproto refreshSession passes token-endpoint faults on; faulted calls keep the token live", () =>
  withIdp({}, async (idp) => {
    const url = idp.refreshSessionUrl;
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const rt = tokens.refresh_token;
    const busy = JSON.stringify({ error: "temporarily_unavailable", error_description: "busy" });
    idp.setTokenFaults({
      next: [
        { kind: "status", status: 503, body: busy, headers: { "retry-after": "2" } },
        { kind: "status", status: 500, body: "oops" },
        { kind: "garbage" },
        { kind: "no_access_token" },
        { kind: "drop" },
        { kind: "hang" },
      ],
    });

    let res = await bearerPost(url, rt, { origin: SPA });
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { error: "InternalServerError", message: "busy" });
    assert.equal(res.headers.get("retry-after"), "2");
    assert.equal(res.headers.get("access-control-allow-origin"), SPA);

    res = await bearerPost(url, rt);
    assert.equal(res.status, 500);
    assert.equal(res.body, "oops", "a text body is passed on unchanged");

    res = await bearerPost(url, rt);
    assert.equal(res.status, 200);
    assert.equal(typeof res.body, "string", "garbage stays garbage");

    res = await bearerPost(url, rt);
    assert.equal(res.status, 200);
    assert.equal(res.body.accessJwt, undefined);

    await assert.rejects(bearerPost(url, rt), TypeError, "drop: the client sees a network error");

    const hung = fetch(url, { method: "POST", headers: { authorization: `Bearer ${rt}` }, signal: AbortSignal.timeout(300) });
    await assert.rejects(hung, (err) => err.name === "TimeoutError");

    res = await bearerPost(url, rt);
    assert.equal(res.status, 200);
    assert.ok(res.body.accessJwt, "no fault reached oidc-provider: the refresh token was still live");
    assert.equal(idp.counters().token.faultsInjected, 6);
  }));

test("a hung refreshSession does not stop close()", async () => {
  const idp = await startIdp({ spaOrigins: [SPA] });
  try {
    await closeDespiteHungRequest(idp, () => bearerPost(idp.refreshSessionUrl, "x"));
  } finally {
    await idp.close();
  }
});

test("/api/echo sends back the request body and its content type", () =>
  withIdp({}, async (idp) => {
    const tokens = await login(idp.issuer, { redirectUri: REDIRECT });
    const send = async (url, method, body, headers = {}) => {
      const res = await fetch(url, { method, body, headers: { authorization: `Bearer ${tokens.access_token}`, ...headers } });
      return { status: res.status, body: await res.json() };
    };

    const json = JSON.stringify({ n: 1, s: "héllo" });
    let res = await send(idp.echoUrl, "POST", json, { "content-type": "application/json" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      sub: "alice",
      scope: res.body.scope,
      client_id: "spa",
      exp: res.body.exp,
      method: "POST",
      path: "/api/echo",
      body: json,
      contentType: "application/json",
    });

    res = await send(idp.echoUrl, "PUT", "plain words", { "content-type": "text/plain" });
    assert.deepEqual([res.body.method, res.body.body, res.body.contentType], ["PUT", "plain words", "text/plain"]);
    res = await send(idp.echoUrl, "GET");
    assert.deepEqual([res.body.body, res.body.contentType], ["", null]);

    // Other paths read the body too (keeping the connection usable) but do not echo it.
    res = await send(idp.whoamiUrl, "POST", "ignored");
    assert.equal(res.status, 200);
    assert.equal(res.body.body, undefined);

    // No echo without a valid token; too large a body is refused, not truncated.
    res = await fetch(idp.echoUrl, { method: "POST", body: "secret", headers: { authorization: "Bearer bogus" } });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).body, undefined);
    res = await send(idp.echoUrl, "POST", "x".repeat(65 * 1024));
    assert.equal(res.status, 413);
    assert.equal((await send(idp.echoUrl, "POST", "after")).body.body, "after", "the server still answers");
  }));

/** GET with a raw, unnormalised request path (fetch would resolve `..` itself). */
function rawGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET", timeout: 5000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

test("(i) serveSpa: content types, clean URLs, no traversal, origin registered", async () => {
  const base = await mkdtemp(join(tmpdir(), "latchkey-idp-"));
  try {
    const root = join(base, "www");
    await mkdir(join(root, "pkg"), { recursive: true });
    await writeFile(join(base, "secret.txt"), "top secret");
    await writeFile(join(root, "index.html"), "<!doctype html><title>spa</title>");
    await writeFile(join(root, "callback.html"), "<!doctype html><title>cb</title>");
    await writeFile(join(root, "pkg", "latchkey_bg.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await writeFile(join(root, "pkg", "latchkey.mjs"), "export {};");
    await writeFile(join(root, "app.js"), "1;");

    await withIdp({ spaOrigins: [], serveSpa: { root } }, async (idp) => {
      assert.match(idp.spaOrigin, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(idp.spaOrigin, idp.issuer);
      const get = (p) => fetch(`${idp.spaOrigin}${p}`);

      let res = await get("/");
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type"), /^text\/html/);
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.match(await res.text(), /<title>spa<\/title>/);

      res = await get("/pkg/latchkey_bg.wasm");
      assert.equal(res.headers.get("content-type"), "application/wasm");
      assert.equal((await res.arrayBuffer()).byteLength, 8);
      assert.match((await get("/pkg/latchkey.mjs")).headers.get("content-type"), /^text\/javascript/);
      assert.match((await get("/app.js")).headers.get("content-type"), /^text\/javascript/);
      assert.match(await (await get("/callback")).text(), /<title>cb<\/title>/);
      assert.equal((await get("/missing.js")).status, 404);

      // The page learns where the authorization server is without configuration.
      res = await get("/demo-config.json");
      assert.match(res.headers.get("content-type"), /^application\/json/);
      assert.deepEqual(await res.json(), { issuer: idp.issuer, clientId: "spa", whoami: idp.whoamiUrl });

      const port = new URL(idp.spaOrigin).port;
      for (const path of ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/pkg/../../secret.txt", "/..\\secret.txt"]) {
        const status = await rawGet(port, path);
        assert.ok(status === 403 || status === 400, `${path} → ${status}`);
      }

      // Its origin is a registered redirect URI and a CORS origin.
      const flow = await authorize(idp.issuer, { redirectUri: `${idp.spaOrigin}/callback` });
      assert.ok(flow.params.code);
      const pre = await fetch(idp.whoamiUrl, {
        method: "OPTIONS",
        headers: { origin: idp.spaOrigin, "access-control-request-method": "GET" },
      });
      assert.equal(pre.headers.get("access-control-allow-origin"), idp.spaOrigin);
    });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test("unregistered redirect URIs are refused", () =>
  withIdp({ redirectUris: ["http://127.0.0.1:9/extra"] }, async (idp) => {
    const ok = await authorize(idp.issuer, { redirectUri: "http://127.0.0.1:9/extra" });
    assert.ok(ok.params.code);
    await assert.rejects(authorize(idp.issuer, { redirectUri: "http://127.0.0.1:9/other" }), /HTTP 400/);
  }));

test("(j) CLI prints its JSON line and exits 0 on SIGTERM", async () => {
  const args = ["--port", "0", "--access-token-ttl", "5", "--advertised-expires-in", "60"];
  const child = spawn(process.execPath, [join(HERE, "cli.mjs"), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  try {
    let out = "";
    child.stdout.setEncoding("utf8");
    const firstLine = new Promise((resolve, reject) => {
      child.stdout.on("data", (chunk) => {
        out += chunk;
        if (out.includes("\n")) resolve(out.split("\n")[0]);
      });
      child.once("exit", () => reject(new Error(`cli exited early; stdout: ${out}`)));
      setTimeout(() => reject(new Error("cli printed nothing within 15 s")), 15000).unref();
    });
    const info = JSON.parse(await firstLine);
    assert.match(info.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(info.whoami, `${info.issuer}/api/whoami`);
    assert.equal(info.refreshSession, `${info.issuer}/xrpc/com.atproto.server.refreshSession`);
    assert.equal(info.clientId, "spa");
    assert.equal((await callApi(info.whoami)).status, 401, "the server is up");
    const tokens = await login(info.issuer, { redirectUri: `${info.spaOrigins[0]}/callback` });
    assert.equal(tokens.expires_in, 60, "--advertised-expires-in");
    const me = await callApi(info.whoami, tokens.access_token);
    assert.ok(me.body.exp - Date.now() / 1000 <= 5, "--access-token-ttl is the real lifetime");

    child.kill("SIGTERM");
    const result = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 10000).unref())]);
    assert.deepEqual(result, { code: 0, signal: null });
    await assert.rejects(fetch(info.whoami), "the port is closed");
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  }
});
