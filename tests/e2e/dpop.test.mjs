// DPoP (RFC 9449) end to end: latchkey with `dpop: true` in headless
// Chromium against the test IdP's DPoP-bound, PAR-required client `spa-dpop`
// and its API, which verifies every proof for real. The login binds the
// tokens to a non-extractable key kept in IndexedDB; every API call,
// refresh, UserInfo request and revocation is signed with it; stolen tokens
// are worth nothing; the servers' nonces are followed (once) and shared
// between tabs; sign-out deletes the key; a Bearer downgrade is refused.
import { test as nodeTest, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, loginViaRedirect, rawRecord, withClient } from "./support/app.mjs";
import {
  loginTab,
  openTab,
  installClient,
  freshContext,
  signedInTabs,
  call,
  accessToken,
  burst,
  eventsOf,
  named,
  sleep,
  listenOn,
  heardOn,
  until,
  within,
  SHORT_TTL,
  EXPIRED_MS,
  LONG_TTL,
} from "./support/session.mjs";
import { dpopOptions, keyRecords, keyPrefix, recordRequests, decodeJws, openTabWithDpopRefresh } from "./support/dpop.mjs";
import { logoutIn } from "./support/nothing-lost.mjs";
import { startApp, stopApp } from "./support/suite.mjs";
import { createDpopKey, createProof, dpopResourceRequest } from "../idp/dpop-client.mjs";
import { accessTokenHash, jwkThumbprint } from "../idp/dpop-proof.mjs";

let idp;
let browser;

// Every test is bounded: a hang fails it instead of holding the file.
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

// Every test may change any of these; put them all back.
afterEach(() => {
  idp.setTokenFaults({});
  idp.setApiNonceChurn(false);
  idp.setAccessTokenTtl(3600);
  idp.resetCounters();
});

// Runs `body(context, errors)` in a fresh browser context, closed afterwards;
// the pages must not have thrown.
async function inContext(body) {
  const { context, errors } = await freshContext(browser);
  try {
    await body(context);
    assert.deepEqual(errors, [], "no uncaught page errors");
  } finally {
    await context.close();
  }
}

// One fetchWithAuth of the whoami API in `tab`, body read.
const whoami = (tab) => within(call(tab, idp.whoamiUrl, undefined, { readBody: true }), 20_000, "fetchWithAuth(whoami)");

const WWW_DPOP = (error) => new RegExp(`^DPoP error="${error}"`);
const asForm = (body) => Object.fromEntries(new URLSearchParams(body ?? ""));

test("login with PAR + DPoP: the browser carries only client_id and request_uri; the API sees the stored, non-extractable key", async () => {
  await inContext(async (context) => {
    const sent = recordRequests(context, idp.issuer);
    const tab = await loginTab(context, idp, dpopOptions(idp));

    // The front channel: only the client and the pushed request.
    const authorize = sent.filter((r) => r.method === "GET" && new URL(r.url).pathname === "/auth");
    assert.equal(authorize.length, 1, "one authorization request");
    const params = new URL(authorize[0].url).searchParams;
    assert.deepEqual([...params.keys()].sort(), ["client_id", "request_uri"]);
    assert.equal(params.get("client_id"), idp.dpopClientId);
    assert.match(params.get("request_uri"), /^urn:ietf:params:oauth:request_uri:/);

    // The stored key: one record, named by its thumbprint, non-extractable.
    const keys = await keyRecords(tab, idp);
    assert.equal(keys.length, 1, JSON.stringify(keys));
    const [key] = keys;
    assert.equal(key.name, `${keyPrefix(idp)}${key.thumbprint}`, "the record is named by the RFC 7638 thumbprint of its x, y");
    assert.equal(key.type, "private");
    assert.equal(key.extractable, false);
    assert.deepEqual(key.algorithm, { name: "ECDSA", namedCurve: "P-256" });
    assert.deepEqual(key.usages, ["sign"]);
    assert.equal(key.exported, "InvalidAccessError", "the private key cannot be exported");
    const jkt = key.thumbprint;

    // The push and the code exchange were signed with it, and the push bound the code to it.
    const pushes = sent.filter((r) => r.method === "POST" && new URL(r.url).pathname === "/request");
    assert.ok(pushes.length >= 1, "a pushed authorization request");
    for (const push of pushes) {
      assert.equal(asForm(push.body).dpop_jkt, jkt, "dpop_jkt names the stored key");
      assert.equal(jwkThumbprint(decodeJws(push.headers.dpop).header.jwk), jkt, "the push's proof is signed with it");
    }
    const exchanges = sent.filter((r) => r.method === "POST" && new URL(r.url).pathname === "/token");
    assert.ok(exchanges.length >= 1);
    for (const exchange of exchanges) {
      assert.equal(asForm(exchange.body).grant_type, "authorization_code");
      const { header, payload } = decodeJws(exchange.headers.dpop);
      assert.equal(header.typ, "dpop+jwt");
      assert.equal(header.alg, "ES256");
      assert.equal(header.jwk.d, undefined, "no private member in the proof");
      assert.equal(jwkThumbprint(header.jwk), jkt);
      assert.equal(payload.htm, "POST");
      assert.equal(payload.htu, `${idp.issuer}/token`);
    }

    const api = await whoami(tab);
    assert.equal(api.status, 200, JSON.stringify(api));
    assert.equal(api.body.dpop, true);
    assert.equal(api.body.jkt, jkt, "the access token is bound to the stored key");
    assert.equal(api.body.client_id, idp.dpopClientId);
    assert.equal(idp.counters().token.succeeded.authorization_code, 1);
  });
});

test("API calls carry DPoP: every fetchWithAuth is 200 with a fresh, correct proof; one nonce refusal at first, no proof refused", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    const [{ thumbprint: jkt }] = await keyRecords(tab, idp);
    const token = await accessToken(tab);
    const sent = recordRequests(context, idp.whoamiUrl);
    idp.resetCounters();

    // The first call learns the API's nonce (which is not the authorization server's).
    assert.equal((await whoami(tab)).status, 200);
    assert.equal(idp.counters().dpop.apiNonceRefusals, 1, "the first call is resent once with the API's nonce");
    for (let i = 0; i < 4; i++) assert.equal((await whoami(tab)).status, 200, `sequential call ${i}`);
    assert.deepEqual(await within(burst(tab, idp.whoamiUrl, 5), 20_000, "the burst"), Array(5).fill(200));

    const { dpop, api } = idp.counters();
    assert.deepEqual(dpop, { asNonceRefusals: 0, apiNonceRefusals: 1, apiProofRefusals: 0, apiAccepted: 10, apiReplays: 0 });
    assert.deepEqual(api.byStatus, { 200: 10, 401: 1 });

    const gets = sent.filter((r) => r.method === "GET");
    assert.equal(gets.length, 11, "10 calls and one resend");
    const jtis = new Set();
    for (const [i, request] of gets.entries()) {
      assert.equal(request.headers.authorization, `DPoP ${token}`, `request ${i}: Authorization: DPoP`);
      const { header, payload } = decodeJws(request.headers.dpop);
      assert.equal(header.typ, "dpop+jwt");
      assert.equal(jwkThumbprint(header.jwk), jkt);
      assert.equal(payload.htm, "GET");
      assert.equal(payload.htu, idp.whoamiUrl);
      assert.equal(payload.ath, accessTokenHash(token));
      jtis.add(payload.jti);
      if (i > 0) assert.equal(payload.nonce, idp.apiNonce(), `request ${i} carries the API's nonce`);
    }
    assert.equal(jtis.size, gets.length, "a new jti for every request");
  });
});

test("a stolen access token is refused without the key: as Bearer and with another key's proof", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    assert.equal((await whoami(tab)).status, 200);
    const stolen = await accessToken(tab);
    idp.resetCounters();

    const asBearer = await fetch(idp.whoamiUrl, { headers: { Authorization: `Bearer ${stolen}` } });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get("www-authenticate"), WWW_DPOP("invalid_token"));

    const thief = await createDpopKey();
    const withOtherKey = await dpopResourceRequest(idp.whoamiUrl, stolen, { key: thief, nonce: idp.apiNonce() });
    assert.equal(withOtherKey.status, 401);
    assert.match(withOtherKey.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));

    // A proof of the thief's key claiming the owner's thumbprint does not help either.
    const [{ thumbprint: jkt }] = await keyRecords(tab, idp);
    const forged = await createProof(thief, { htm: "GET", htu: idp.whoamiUrl, nonce: idp.apiNonce(), accessToken: stolen, header: { kid: jkt } });
    const withForged = await dpopResourceRequest(idp.whoamiUrl, stolen, { key: thief, proof: forged });
    assert.equal(withForged.status, 401);
    assert.match(withForged.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));

    assert.equal(idp.counters().dpop.apiAccepted, 0, "nothing was accepted");
    // The owner still gets in.
    assert.equal((await whoami(tab)).status, 200);
    assert.equal(idp.counters().dpop.apiAccepted, 1);
  });
});

test("a reloaded tab and a second tab sign with the same key: same jkt, no new login, one key record", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    const before = await whoami(tab);
    assert.equal(before.status, 200);
    const token = await accessToken(tab);
    idp.resetCounters();

    await tab.reload();
    await tab.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 15_000 });
    await installClient(tab, idp, dpopOptions(idp));
    const reloaded = await whoami(tab);
    assert.equal(reloaded.status, 200, JSON.stringify(reloaded));
    assert.equal(reloaded.body.jkt, before.body.jkt, "the reloaded tab signs with the login's key");

    const second = await openTab(context, idp, dpopOptions(idp));
    const other = await whoami(second);
    assert.equal(other.status, 200, JSON.stringify(other));
    assert.equal(other.body.jkt, before.body.jkt, "the second tab signs with the login's key");
    assert.equal(await accessToken(second), token, "the same session");

    const { token: tokenCounters, dpop } = idp.counters();
    assert.equal(tokenCounters.byGrantType.authorization_code, 0, "no new login");
    assert.equal(tokenCounters.byGrantType.refresh_token, 0, "no refresh either");
    assert.equal(dpop.apiProofRefusals, 0);
    const keys = await keyRecords(second, idp);
    assert.deepEqual(
      keys.map((k) => k.thumbprint),
      [before.body.jkt],
      "exactly one key record for the client",
    );
  });
});

// The token is bound to the key whatever the app's options say now: sent as Bearer it is refused,
// and its refresh must be signed. An app that turns `dpop` off keeps the session it has.
test("a bound session outlives dpop turned off: calls and the refresh still sign with its key", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    const before = await whoami(tab);
    assert.equal(before.status, 200);
    idp.resetCounters();

    await tab.reload();
    await tab.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 15_000 });
    await installClient(tab, idp, dpopOptions(idp, { dpop: false }));
    const after = await whoami(tab);
    assert.equal(after.status, 200, JSON.stringify(after));
    assert.deepEqual([after.body.dpop, after.body.jkt], [true, before.body.jkt], "signed with the login's key");
    const refreshed = await tab.evaluate(() => window.auth.getAccessToken({ forceRefresh: true }).then(() => "ok", (e) => e.code));
    assert.equal(refreshed, "ok");
    const again = await whoami(tab);
    assert.equal(again.status, 200, JSON.stringify(again));
    assert.equal(again.body.jkt, before.body.jkt);
    const { token, dpop } = idp.counters();
    assert.equal(token.succeeded.refresh_token, 1, `one refresh grant: ${JSON.stringify(token)}`);
    // The reloaded tab learns the server's nonce from its first refusal.
    assert.deepEqual(token.errorsByCode, { use_dpop_nonce: 1 }, "no invalid_grant");
    assert.equal(token.byGrantType.authorization_code ?? 0, 0, "no new login");
    assert.equal(dpop.apiProofRefusals, 0);
  });
});

test("API nonce rotated: the next call is resent once and ends 200; a second tab then needs no resend (nonces shared)", async () => {
  await inContext(async (context) => {
    const [a, b] = await signedInTabs(context, idp, dpopOptions(idp), { more: 1 });
    // Both tabs hold the API's current nonce.
    assert.equal((await whoami(a)).status, 200);
    assert.equal((await whoami(b)).status, 200);
    idp.resetCounters();
    assert.equal((await whoami(b)).status, 200);
    assert.equal(idp.counters().dpop.apiNonceRefusals, 0, "tab B knew the nonce");

    // Tab B listens on the client's nonce channel as its latchkey does.
    await listenOn(b, `latchkey:${idp.issuer}:${idp.dpopClientId}:dpop-nonces`);
    idp.rotateApiNonce();
    idp.resetCounters();
    const first = await whoami(a);
    assert.equal(first.status, 200, JSON.stringify(first));
    assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 1, apiProofRefusals: 0, apiAccepted: 1, apiReplays: 0 });

    // Tab A's new nonce reaches tab B (BroadcastChannel): once B's own
    // listener has it, and a moment for latchkey's listener beside it.
    await heardOn(b, 5_000, "tab B to hear the new nonce");
    const second = await whoami(b);
    assert.equal(second.status, 200, JSON.stringify(second));
    assert.deepEqual(
      idp.counters().dpop,
      { asNonceRefusals: 0, apiNonceRefusals: 1, apiProofRefusals: 0, apiAccepted: 2, apiReplays: 0 },
      "tab B sent the new nonce at once",
    );
  });
});

// The resend after an API's nonce refusal signs for the token it resends, with the key that token
// is bound to: read when the token was, not from the session a round trip later (here emptied by a
// sign-out in another tab while the first request was out). A bound token never goes as Bearer.
test("a call resent for the API's nonce after a sign-out elsewhere is never sent as Bearer", async () => {
  await inContext(async (context) => {
    const [a, b] = await signedInTabs(context, idp, dpopOptions(idp), { more: 1 });
    assert.equal((await whoami(a)).status, 200);
    idp.rotateApiNonce();
    const sent = recordRequests(context, idp.whoamiUrl);
    // Tab A's first send is held at the browser until B has signed out and A heard it.
    let release;
    const held = new Promise((resolve) => (release = resolve));
    let firstSeen = false;
    await a.route(idp.whoamiUrl, async (route) => {
      if (!firstSeen) {
        firstSeen = true;
        await held;
      }
      await route.continue();
    });
    await listenOn(a, `latchkey:${idp.issuer}:${idp.dpopClientId}`, "ended");
    const calling = call(a, idp.whoamiUrl);
    await until(async () => firstSeen, 10_000, "tab A's first send");
    assert.equal((await logoutIn(b)).revocation, "revoked");
    await heardOn(a, 5_000, "tab A to hear the sign-out");
    release();
    const out = await within(calling, 20_000, "tab A's call");
    const schemes = sent.map((request) => request.headers.authorization?.split(" ")[0]);
    assert.ok(schemes.length >= 2, `the first send and its resend: ${JSON.stringify({ schemes, out })}`);
    assert.deepEqual([...new Set(schemes)], ["DPoP"], JSON.stringify({ schemes, out }));
  });
});

// The first send too: a token kept after a refresh that failed for a transient reason goes only
// with its own set's key. Here the set was signed out in another tab while the refresh was out: the
// call is not authenticated, and nothing is sent (before, the bound token went as Bearer).
test("a token kept after a failed refresh is not sent once another tab signed out meanwhile", async () => {
  await inContext(async (context) => {
    // Tokens of 10 s, due for refresh past half their lifetime (the leeway's cap) and valid till
    // the end of it.
    const extra = { ...dpopOptions(idp), refreshLeewaySeconds: 600 };
    const [a, b] = await signedInTabs(context, idp, extra, { more: 1, ttl: 10 });
    idp.setAccessTokenTtl(LONG_TTL);
    await sleep(5_500);
    const sent = recordRequests(context, idp.whoamiUrl);
    idp.setTokenFaults({ delayMs: 1_500, next: [{ kind: "status", status: 503 }] });
    await listenOn(a, `latchkey:${idp.issuer}:${idp.dpopClientId}`, "ended");
    const calling = call(a, idp.whoamiUrl);
    await sleep(300); // the refresh is out
    assert.equal((await logoutIn(b)).revocation, "revoked");
    await heardOn(a, 5_000, "tab A to hear the sign-out");
    const out = await within(calling, 20_000, "tab A's call");
    const schemes = sent.map((request) => request.headers.authorization?.split(" ")[0]);
    assert.ok(!schemes.includes("Bearer"), JSON.stringify({ schemes, out }));
    assert.equal(out.code, "not_authenticated", JSON.stringify({ schemes, out }));
  });
});

// An API accepting both schemes challenges with both (RFC 9449 §7.2), on two header lines the
// browser joins into "Bearer realm=\"api\", DPoP error=...": the DPoP challenge still decides.
test("API nonce rotated behind a Bearer challenge too: the call is resent once, no refresh", async () => {
  await inContext(async (context) => {
    const [a] = await signedInTabs(context, idp, dpopOptions(idp));
    assert.equal((await whoami(a)).status, 200);
    idp.setApiBothChallenges(true);
    try {
      idp.rotateApiNonce();
      idp.resetCounters();
      const call = await whoami(a);
      assert.equal(call.status, 200, JSON.stringify(call));
      assert.deepEqual(idp.counters().dpop, { asNonceRefusals: 0, apiNonceRefusals: 1, apiProofRefusals: 0, apiAccepted: 1, apiReplays: 0 });
      assert.equal(idp.counters().token.byGrantType.refresh_token ?? 0, 0, "a nonce is not an expiry");
    } finally {
      idp.setApiBothChallenges(false);
    }
  });
});

test("AS nonce rotated, then a refresh: one use_dpop_nonce refusal, one successful refresh grant, nothing revoked", async () => {
  await inContext(async (context) => {
    const [tab] = await signedInTabs(context, idp, dpopOptions(idp), { ttl: SHORT_TTL });
    idp.setAccessTokenTtl(LONG_TTL);
    const [{ thumbprint: jkt }] = await keyRecords(tab, idp);
    await sleep(EXPIRED_MS);
    idp.resetCounters();
    idp.rotateAuthorizationServerNonce();

    const after = await whoami(tab);
    assert.equal(after.status, 200, JSON.stringify(after));
    assert.equal(after.body.jkt, jkt, "the refreshed token is bound to the same key");

    const { token, grants, dpop } = idp.counters();
    assert.equal(token.succeeded.refresh_token, 1, `one refresh grant: ${JSON.stringify(token)}`);
    assert.equal(token.byGrantType.refresh_token, 2, "the refused request and its resend");
    assert.deepEqual(token.errorsByCode, { use_dpop_nonce: 1 }, "no invalid_grant");
    assert.equal(dpop.asNonceRefusals, 1);
    assert.equal(grants.revoked, 0);
    const events = await eventsOf(tab);
    assert.deepEqual(named(events, "tokens").map((e) => e.source), ["refresh"]);
    assert.deepEqual(named(events, "sessionExpired"), []);
  });
});

test("a refresh answered Bearer after the server rotated: unsupported_token_type, but the rotated refresh token is kept; the next call refreshes with it, nothing revoked", async () => {
  await inContext(async (context) => {
    const [tab] = await signedInTabs(context, idp, dpopOptions(idp), { ttl: SHORT_TTL });
    idp.setAccessTokenTtl(LONG_TTL);
    const [{ thumbprint: jkt }] = await keyRecords(tab, idp);
    await sleep(EXPIRED_MS);
    idp.resetCounters();
    idp.setTokenFaults({ next: [{ kind: "bearer_downgrade" }] });

    const refused = await whoami(tab);
    assert.equal(refused.code, "unsupported_token_type", JSON.stringify(refused));
    assert.equal(idp.counters().token.succeeded.refresh_token, 1, "the server rotated");
    assert.equal(idp.counters().api.byStatus["200"], undefined, "the downgraded token was not used");

    const after = await whoami(tab);
    assert.equal(after.status, 200, JSON.stringify(after));
    assert.equal(after.body.jkt, jkt, "still bound to the same key");
    const { token, grants } = idp.counters();
    assert.equal(token.succeeded.refresh_token, 2, `one more refresh grant: ${JSON.stringify(token)}`);
    assert.equal(token.errorsByCode.invalid_grant, undefined, "the rotated-away refresh token was never presented");
    assert.equal(grants.revoked, 0);
    assert.deepEqual(named(await eventsOf(tab), "sessionExpired"), []);
  });
});

test("sign-out revokes with a proof, deletes the key, and the old access token is refused", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    assert.equal((await whoami(tab)).status, 200);
    const token = await accessToken(tab);
    assert.equal((await keyRecords(tab, idp)).length, 1);
    const thief = await createDpopKey();
    // Live, the token is refused for the thief's key (the binding is checked last).
    const live = await dpopResourceRequest(idp.whoamiUrl, token, { key: thief, nonce: idp.apiNonce() });
    assert.match(live.headers.get("www-authenticate"), WWW_DPOP("invalid_dpop_proof"));
    assert.ok(await idp.provider.AccessToken.find(token), "the server knows the token");
    const sent = recordRequests(context, `${idp.issuer}/token/revocation`);
    idp.resetCounters();

    assert.deepEqual(await within(logoutIn(tab), 20_000, "logout"), { revocation: "revoked", error: undefined });

    assert.deepEqual(await keyRecords(tab, idp), [], "the key record is gone");
    const { revocation, grants } = idp.counters();
    assert.deepEqual(revocation.byHint, { refresh_token: 1, access_token: 1 });
    assert.equal(revocation.succeeded, 2);
    assert.deepEqual(grants, { revoked: 1, byReason: { revocation: 1 } }, "the login's grant, by the revocation");
    const posts = sent.filter((r) => r.method === "POST");
    assert.equal(posts.length, 2, "two revocation requests");
    for (const post of posts) {
      assert.equal(asForm(post.body).client_id, idp.dpopClientId);
      assert.ok(post.headers.dpop, "the revocation carries a proof");
      assert.equal(decodeJws(post.headers.dpop).payload.htu, `${idp.issuer}/token/revocation`);
    }

    assert.equal(await idp.provider.AccessToken.find(token), undefined, "the server forgot the token");
    const dead = await dpopResourceRequest(idp.whoamiUrl, token, { key: thief, nonce: idp.apiNonce() });
    assert.equal(dead.status, 401);
    assert.match(dead.headers.get("www-authenticate"), WWW_DPOP("invalid_token"));
    const asBearer = await fetch(idp.whoamiUrl, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(asBearer.status, 401);
    assert.equal(await tab.evaluate(() => window.auth.isAuthenticated()), false);
  });
});

// Logs in to spa-dpop in a new page of `context` with the code exchange's
// answer downgraded to token_type Bearer; resolves with the page, the
// options, what handleRedirectCallback did ({ value } or { error }) and the
// server's live refresh tokens before the code exchange.
async function downgradedLogin(context) {
  const page = await context.newPage();
  const options = clientOptions(idp, dpopOptions(idp));
  await loginViaRedirect(page, idp, options);
  const liveBefore = idp.liveRefreshTokens();
  idp.resetCounters();
  idp.setTokenFaults({ next: [{ kind: "bearer_downgrade" }] });
  const done = await within(
    withClient(page, options, async (client) => {
      await client.handleRedirectCallback();
      return "logged in";
    }),
    20_000,
    "handleRedirectCallback",
  );
  return { page, options, done, liveBefore };
}

test("a Bearer token_type answered to the DPoP code exchange: unsupported_token_type, nothing stored, the issued tokens revoked", async () => {
  await inContext(async (context) => {
    const { page, options, done, liveBefore } = await downgradedLogin(context);
    assert.equal(done.value, undefined, JSON.stringify(done));
    assert.equal(done.error.code, "unsupported_token_type", JSON.stringify(done.error));
    const { token, revocation } = idp.counters();
    assert.equal(token.succeeded.authorization_code, 1, "the server did exchange the code");
    assert.equal(token.faultsInjected, 1, "and the answer was downgraded");
    assert.equal(revocation.succeeded, 2, `the refresh and access tokens revoked: ${JSON.stringify(revocation)}`);
    assert.equal(idp.liveRefreshTokens(), liveBefore, "the issued refresh token is dead at the server");

    assert.equal(await rawRecord(page, idp, "indexeddb", idp.dpopClientId), null, "no token record");
    const after = await withClient(page, options, async (client) => ({
      authenticated: await client.isAuthenticated(),
      token: await client.getAccessToken().then(
        () => "ok",
        (e) => e.code,
      ),
    }));
    assert.deepEqual(after.value, { authenticated: false, token: "not_authenticated" });
  });
});

test("a login refused for a Bearer downgrade leaves no DPoP key behind", async () => {
  await inContext(async (context) => {
    const { page, done } = await downgradedLogin(context);
    assert.equal(done.error?.code, "unsupported_token_type", JSON.stringify(done));
    // The key was made for this login only; nothing bound to it was kept,
    // and the next login makes a new one: nothing will ever use or delete it.
    assert.deepEqual(
      (await keyRecords(page, idp)).map((k) => k.name),
      [],
      "the refused login's key record is deleted",
    );
  });
});

test("an API that refuses every nonce: fetchWithAuth rejects with dpop_nonce_failed after exactly 2 requests", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    assert.equal((await whoami(tab)).status, 200, "the API's nonce is known");
    const sent = recordRequests(context, idp.whoamiUrl);
    idp.resetCounters();
    idp.setApiNonceChurn(true);

    const refused = await whoami(tab);
    assert.equal(refused.code, "dpop_nonce_failed", JSON.stringify(refused));
    assert.equal(sent.filter((r) => r.method === "GET").length, 2, "the request and one resend");
    const { dpop, api } = idp.counters();
    assert.equal(dpop.apiNonceRefusals, 2);
    assert.equal(dpop.apiAccepted, 0);
    assert.deepEqual(api.byStatus, { 401: 2 });
    await sleep(500);
    assert.equal(sent.length, 2, "nothing more was sent afterwards");

    // The session is untouched: with the churn over, the last nonce named works.
    idp.setApiNonceChurn(false);
    idp.resetCounters();
    assert.equal((await whoami(tab)).status, 200);
    assert.equal(idp.counters().dpop.apiNonceRefusals, 0);
    assert.equal(idp.counters().token.byGrantType.refresh_token, 0);
  });
});

test("getUser({ userinfo: true }) with a DPoP-bound token: UserInfo answers a signed request, also after an AS nonce rotation", async () => {
  await inContext(async (context) => {
    const tab = await loginTab(context, idp, dpopOptions(idp));
    const token = await accessToken(tab);
    const sent = recordRequests(context, `${idp.issuer}/me`);
    idp.resetCounters();
    const getUser = () =>
      within(
        tab.evaluate(() =>
          window.auth.getUser({ userinfo: true }).then(
            (claims) => ({ sub: claims?.sub, iss: claims?.iss }),
            (e) => ({ code: e.code, error: e.error, status: e.status }),
          ),
        ),
        20_000,
        "getUser",
      );

    assert.deepEqual(await getUser(), { sub: "alice", iss: idp.issuer });
    assert.ok(idp.counters().userinfo.requests >= 1);
    const gets = sent.filter((r) => r.method !== "OPTIONS");
    assert.ok(gets.length >= 1);
    for (const request of gets) {
      assert.equal(request.headers.authorization, `DPoP ${token}`);
      const { payload } = decodeJws(request.headers.dpop);
      assert.equal(payload.htu, `${idp.issuer}/me`);
      assert.equal(payload.ath, accessTokenHash(token));
    }

    idp.rotateAuthorizationServerNonce();
    idp.resetCounters();
    assert.deepEqual(await getUser(), { sub: "alice", iss: idp.issuer });
    const { userinfo, dpop } = idp.counters();
    assert.equal(userinfo.requests, 2, "refused once for the nonce, then answered");
    assert.equal(dpop.asNonceRefusals, 1);
  });
});

test("a custom refresh of a bound session gets ctx.dpopProof and refreshes with it, following a use_dpop_nonce", async () => {
  await inContext(async (context) => {
    const [login] = await signedInTabs(context, idp, dpopOptions(idp), { ttl: SHORT_TTL });
    idp.setAccessTokenTtl(LONG_TTL);
    const [{ thumbprint: jkt }] = await keyRecords(login, idp);
    const tab = await openTabWithDpopRefresh(context, idp, dpopOptions(idp));
    await login.close();
    await sleep(EXPIRED_MS);
    idp.resetCounters();
    const nonce = idp.rotateAuthorizationServerNonce();

    const after = await whoami(tab);
    const log = await tab.evaluate(() => window.appRefresh);
    assert.equal(after.status, 200, `${JSON.stringify(after)} ${JSON.stringify(log)}`);
    assert.equal(after.body.jkt, jkt, "the refreshed token is bound to the session's key");

    assert.equal(log.calls, 1);
    assert.deepEqual(log.proofTypes, ["function"]);
    assert.equal(log.elsewhere, "invalid_option", "no proof for another URL");
    assert.equal(log.nonceRetries, 1);
    assert.deepEqual(log.statuses, [400, 200]);
    for (const proof of log.proofs) {
      const { header, payload } = decodeJws(proof);
      assert.equal(jwkThumbprint(header.jwk), jkt, "signed with the session's key");
      assert.equal(payload.htm, "POST");
      assert.equal(payload.htu, `${idp.issuer}/token`);
      assert.equal(payload.ath, undefined);
    }
    assert.equal(decodeJws(log.proofs[1]).payload.nonce, nonce, "the resend carries the nonce given");

    const { token, grants } = idp.counters();
    assert.equal(token.succeeded.refresh_token, 1, `one refresh grant: ${JSON.stringify(token)}`);
    assert.deepEqual(token.errorsByCode, { use_dpop_nonce: 1 });
    assert.equal(grants.revoked, 0);
    assert.deepEqual(named(await eventsOf(tab), "tokens").map((e) => e.source), ["refresh"]);
  });
});

test("storage: memory: the login's key is in IndexedDB only until the callback, then in memory; the session signs with it", async () => {
  await inContext(async (context) => {
    const page = await context.newPage();
    const options = clientOptions(idp, dpopOptions(idp, { storage: "memory" }));
    await loginViaRedirect(page, idp, options);
    assert.equal((await keyRecords(page, idp)).length, 1, "the key survived the redirect in IndexedDB");
    const done = await withClient(
      page,
      options,
      async (client, url) => {
        await client.handleRedirectCallback();
        const res = await client.fetchWithAuth(url);
        return { status: res.status, body: await res.json() };
      },
      idp.whoamiUrl,
    );
    assert.equal(done.value?.status, 200, JSON.stringify(done));
    assert.equal(done.value.body.dpop, true);
    assert.deepEqual(await keyRecords(page, idp), [], "no key record once the memory session holds the key");
  });
});

test("a bound session that expires (the server revoked its grant) leaves no DPoP key behind", async () => {
  await inContext(async (context) => {
    const [tab] = await signedInTabs(context, idp, dpopOptions(idp), { ttl: SHORT_TTL });
    idp.setAccessTokenTtl(LONG_TTL);
    assert.equal((await keyRecords(tab, idp)).length, 1, "the session's key is stored");
    assert.ok(idp.revokeAllGrants() >= 1, "the grant is revoked at the server");
    await sleep(EXPIRED_MS);
    idp.resetCounters();

    const refused = await whoami(tab);
    assert.equal(refused.code, "session_expired", JSON.stringify(refused));
    const { errorsByCode } = idp.counters().token;
    assert.equal(errorsByCode.invalid_grant, 1, `one refused refresh: ${JSON.stringify(errorsByCode)}`);
    assert.equal(named(await eventsOf(tab), "sessionExpired").length, 1);
    // The key is deleted in the background, after the session ended.
    await within(
      (async () => {
        while ((await keyRecords(tab, idp)).length > 0) await sleep(50);
      })(),
      5_000,
      "the expired session's key record to be deleted",
    );
    assert.equal(await rawRecord(tab, idp, "indexeddb", idp.dpopClientId), null, "no token record");
  });
});
