// Sign in with Bluesky end to end: latchkey's `profile: "atproto"` in headless Chromium against
// a real AT Protocol network on loopback (tests/atproto/network.mjs: the reference PDS, which is
// also the authorization server with its own sign-in and consent pages, and a PLC directory).
// The app is the e2e app page at http://127.0.0.1:<port>/ (also the redirect URI), with the PDS's
// loopback client id. Login by handle (resolveHandle → DID document → PDS → authorization
// server → PAR + DPoP → the PDS's pages → callback → the sub check), DPoP calls to the PDS
// without listing it, a reload that resolves nothing, a refresh storm at expiry across tabs,
// sign-out with revocation, and the wrong network's refusals.
//
// One network, one app server and one Chromium for the file; every test uses a fresh browser
// context (so no PDS sign-in cookie carries over) and bounds its waits.
import { test as nodeTest, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { startAtprotoNetwork } from "../atproto/network.mjs";
import { startApp, stopApp } from "./support/suite.mjs";
import { openApp, rawRecord } from "./support/app.mjs";
import { call, eventsOf, named, isAuthenticated, accessToken, sleep, within, freshContext } from "./support/session.mjs";
import { keyRecords, keyPrefix, recordRequests, decodeJws } from "./support/dpop.mjs";
import { burstAt, assertOneSetPerTab } from "./support/storm.mjs";
import { jwkThumbprint } from "../idp/dpop-proof.mjs";
import {
  ATPROTO_STORE,
  atprotoOptions,
  installAtprotoClient,
  openAtprotoTab,
  loginAtproto,
  startLogin,
  signInAtPds,
  signInAtPdsAs,
  completeCallback,
  keepDpopKey,
  handMadeDpopGet,
  pendingTransaction,
} from "./support/atproto.mjs";

// Lifetime of the access tokens outside the storm: long enough that nothing refreshes (the
// reload test counts resolution requests, and latchkey re-verifies the account before each
// refresh).
const LONG_TTL = 3600;
// The storm's access-token lifetime (seconds): set with net.setAccessTokenTtl right before its
// login, so the login's tokens and those of every refresh after it expire this soon; put back
// to LONG_TTL afterwards. (The PDS has no setting for it: the harness sets the OAuth provider's
// token lifetime; see tests/atproto/README.md.)
const STORM_TTL = 20;
// The storm's clients refresh this many seconds before expiry (plus latchkey's jitter of up to
// a fifth): small, so that a round's calls, which begin after the expiry, are all made with the
// one token its refresh brings and a slow round does not reach the next refresh window.
const STORM_LEEWAY = 2;
// A round starts this long after the server's expiry of the token in use.
const PAST_EXPIRY_MS = 1_000;

let net;
let idp;
let browser;

// Every test is bounded: a hang fails it instead of holding the file.
const test = (name, fn, timeout = 90_000) => nodeTest(name, { timeout }, fn);

before(async () => {
  // The network (3-6 s) and the app server + Chromium start side by side.
  const [started, app] = await Promise.allSettled([startAtprotoNetwork({ accessTokenTtlSeconds: LONG_TTL }), startApp()]);
  net = started.value;
  ({ idp, browser } = app.value ?? {});
  if (started.status === "rejected") throw started.reason;
  if (app.status === "rejected") throw app.reason;
});

after(async () => {
  await Promise.allSettled([stopApp({ idp, browser }), net?.close()]);
});

afterEach(async () => {
  await net.setAccessTokenTtl(LONG_TTL);
});

// Runs `body(context)` in a fresh browser context, closed afterwards; its pages must not have
// thrown.
async function inContext(body) {
  const { context, errors } = await freshContext(browser);
  try {
    await body(context);
    assert.deepEqual(errors, [], "no uncaught page errors");
  } finally {
    await context.close();
  }
}

const options = (extra) => atprotoOptions(idp, net, extra);
const xrpc = (method, query = "") => `${net.pdsUrl}/xrpc/${method}${query}`;
const getSessionUrl = () => xrpc("com.atproto.server.getSession");
// One fetchWithAuth in `tab`, bounded, body read.
const xrpcCall = (tab, url) => within(call(tab, url, undefined, { readBody: true }), 20_000, `fetchWithAuth(${url})`);
const alice = () => net.accounts.alice;
const asForm = (body) => Object.fromEntries(new URLSearchParams(body ?? ""));
const pathOf = (url) => new URL(url).pathname;
// The access token's claims (a JWT at this PDS), nothing verified.
const claimsOf = (token) => decodeJws(token).payload;
// The stored token record and DPoP keys of the atproto client, read past latchkey.
const storedRecord = (page, opts) => rawRecord(page, ATPROTO_STORE, "indexeddb", opts.clientId);
const storedKeys = (page, opts) => keyRecords(page, ATPROTO_STORE, opts.clientId);

// Starts login({ handle }) in a fresh app tab and expects it to be refused before leaving the
// app: resolves with the tab and the rejection ({ code, message }).
async function refusedLogin(context, opts, handle) {
  const page = await context.newPage();
  await openApp(page, opts.redirectUri);
  await installAtprotoClient(page, opts);
  const refused = await within(startLogin(page, net.pdsUrl, handle), 25_000, `login(${handle})`);
  assert.ok(refused, `login({ handle: ${handle} }) is refused, not sent to the PDS (${page.url()})`);
  assert.equal(new URL(page.url()).origin, new URL(opts.redirectUri).origin, "the tab stays on the app");
  return { page, refused };
}

test("login by handle through the PDS's own pages: PAR + DPoP, getUser is the DID, handle and PDS; DPoP calls to the PDS without listing it", async () => {
  await inContext(async (context) => {
    const opts = options();
    const sent = recordRequests(context, net.pdsUrl);
    await net.resetCounters();
    const { page, landed } = await loginAtproto(context, net, opts, alice());

    // The callback named the PDS as issuer.
    assert.equal(new URL(landed).searchParams.get("iss"), net.issuer);
    const user = await page.evaluate(() => window.auth.getUser());
    assert.deepEqual(user, { sub: alice().did, handle: "alice.test", pds: net.pdsUrl });
    assert.equal(await isAuthenticated(page), true);

    // The resolution went through the network, and the login through PAR with DPoP.
    const c = await net.counters();
    const dump = JSON.stringify(c);
    // Twice: what was typed, then (after the code exchange) the handle the
    // account's document claims, which must name the DID back to be shown.
    assert.deepEqual(c.resolveHandle.byHandle, { "alice.test": 2 }, dump);
    assert.ok(c.plc.documentFetchesByDid[alice().did] >= 1, `alice's DID document was read — ${dump}`);
    assert.ok(c.protectedResourceMetadata >= 1, dump);
    assert.equal(c.par.byOutcome.success, 1, `one PAR accepted — ${dump}`);
    assert.ok((c.par.byOutcome.use_dpop_nonce ?? 0) <= 1, `at most the one nonce refusal — ${dump}`);
    assert.deepEqual(Object.keys(c.par.byOutcome).filter((k) => k !== "success" && k !== "use_dpop_nonce"), [], `no other PAR outcome — ${dump}`);
    assert.equal(c.token.byGrantTypeAndOutcome.authorization_code?.success, 1, `one code exchange — ${dump}`);
    assert.equal(c.token.byGrantTypeAndOutcome.refresh_token, undefined, dump);

    // Every PAR and token request carried a DPoP proof of the stored key, and the push bound
    // the code to it; the front channel carried only client_id and request_uri.
    const [key] = await storedKeys(page, opts);
    assert.ok(key, "a DPoP key is stored");
    assert.equal(key.extractable, false);
    const pushes = sent.filter((r) => r.method === "POST" && pathOf(r.url) === "/oauth/par");
    assert.ok(pushes.length >= 1, "a pushed authorization request");
    for (const push of pushes) {
      assert.ok(push.headers.dpop, "the push carries a DPoP proof");
      assert.equal(jwkThumbprint(decodeJws(push.headers.dpop).header.jwk), key.thumbprint);
      const form = asForm(push.body);
      assert.equal(form.dpop_jkt, key.thumbprint, "dpop_jkt names the stored key");
      assert.equal(form.login_hint, "alice.test", "the handle is the login_hint");
      assert.equal(form.client_id, opts.clientId);
      assert.equal(form.redirect_uri, opts.redirectUri);
      assert.equal(form.code_challenge_method, "S256");
      assert.deepEqual(form.scope.split(" ").sort(), ["atproto", "transition:generic"]);
    }
    const authorize = sent.filter((r) => r.method === "GET" && pathOf(r.url) === "/oauth/authorize");
    assert.equal(authorize.length, 1);
    assert.deepEqual([...new URL(authorize[0].url).searchParams.keys()].sort(), ["client_id", "request_uri"]);
    const exchanges = sent.filter((r) => r.method === "POST" && pathOf(r.url) === "/oauth/token");
    assert.ok(exchanges.length >= 1);
    for (const exchange of exchanges) {
      assert.equal(asForm(exchange.body).grant_type, "authorization_code");
      const { header, payload } = decodeJws(exchange.headers.dpop);
      assert.equal(jwkThumbprint(header.jwk), key.thumbprint);
      assert.equal(payload.htu, `${net.issuer}/oauth/token`);
    }

    // Authenticated XRPC at the PDS, which allowedOrigins does not list (default: the page only).
    sent.length = 0;
    await net.resetCounters();
    const session = await xrpcCall(page, getSessionUrl());
    assert.equal(session.status, 200, JSON.stringify(session));
    assert.equal(session.body.did, alice().did);
    assert.equal(session.body.handle, "alice.test");
    const repo = await xrpcCall(page, xrpc("com.atproto.repo.describeRepo", `?repo=${encodeURIComponent(alice().did)}`));
    assert.equal(repo.status, 200, JSON.stringify(repo));
    assert.equal(repo.body.did, alice().did);
    assert.equal(repo.body.handle, "alice.test");
    const token = await accessToken(page);
    assert.equal(claimsOf(token).sub, alice().did);
    const calls = sent.filter((r) => r.url.startsWith(`${net.pdsUrl}/xrpc/`));
    assert.ok(calls.length >= 2, JSON.stringify(calls.map((r) => r.url)));
    for (const r of calls) {
      assert.equal(r.headers.authorization, `DPoP ${token}`, `${r.url}: the token travels as DPoP`);
      const { header, payload } = decodeJws(r.headers.dpop);
      assert.equal(jwkThumbprint(header.jwk), key.thumbprint, `${r.url}: signed with the stored key`);
      assert.equal(payload.htm, "GET");
      assert.equal(payload.htu, `${net.pdsUrl}${pathOf(r.url)}`);
      assert.ok(payload.ath, "the proof is bound to the token");
    }
    const x = await net.counters();
    assert.equal(x.pds.outcomes["/xrpc/com.atproto.server.getSession"]?.success, 1, JSON.stringify(x.pds.outcomes));
    assert.equal(x.pds.outcomes["/xrpc/com.atproto.repo.describeRepo"]?.success, 1, JSON.stringify(x.pds.outcomes));
    assert.equal(x.token.requests, 0, "no refresh");

    // The allowance is the account's PDS only: the PLC directory gets no token.
    const plc = await call(page, `${net.plcUrl}/${alice().did}`);
    assert.equal(plc.code, "origin_not_allowed", JSON.stringify(plc));
  });
});

test("reload and a second tab: the first call is made without any resolution request", async () => {
  await inContext(async (context) => {
    const opts = options();
    const { page } = await loginAtproto(context, net, opts, alice());
    const first = await xrpcCall(page, getSessionUrl());
    assert.equal(first.status, 200, JSON.stringify(first));

    const sent = recordRequests(context, "http://");
    await net.resetCounters();
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 15_000 });
    await installAtprotoClient(page, opts);
    assert.equal(await isAuthenticated(page), true, "the reloaded tab is signed in");
    const reloaded = await xrpcCall(page, getSessionUrl());
    assert.equal(reloaded.status, 200, JSON.stringify(reloaded));
    assert.equal(reloaded.body.did, alice().did);
    assert.deepEqual(await page.evaluate(() => window.auth.getUser()), { sub: alice().did, handle: "alice.test", pds: net.pdsUrl });

    const second = await openAtprotoTab(context, opts);
    const fromSecond = await xrpcCall(second, getSessionUrl());
    assert.equal(fromSecond.status, 200, JSON.stringify(fromSecond));

    const c = await net.counters();
    const dump = JSON.stringify(c);
    assert.equal(c.resolveHandle.requests, 0, `no resolveHandle — ${dump}`);
    assert.equal(c.plc.documentFetches, 0, `no PLC document fetch — ${dump}`);
    assert.equal(c.protectedResourceMetadata, 0, `no protected-resource metadata — ${dump}`);
    assert.equal(c.authorizationServerMetadata, 0, `no authorization-server metadata — ${dump}`);
    assert.equal(c.token.requests, 0, `no token request — ${dump}`);
    // What the browser asked for (cache hits included): the app's files and the XRPC calls only.
    const resolution = sent.filter((r) => r.url.startsWith(net.plcUrl) || /\/\.well-known\/|resolveHandle/.test(r.url));
    assert.deepEqual(resolution.map((r) => r.url), [], "the browser requested nothing for resolution");
    const toPds = sent.filter((r) => r.url.startsWith(net.pdsUrl)).map((r) => pathOf(r.url));
    assert.ok(toPds.length >= 2 && toPds.every((p) => p === "/xrpc/com.atproto.server.getSession"), JSON.stringify(toPds));
  });
});

test("the storm at expiry: 4 tabs × 25 calls to the PDS → one refresh grant, no invalid_grant, all 200; again after the next expiry", async (t) => {
  await inContext(async (context) => {
    // Short-lived tokens for this login and every refresh after it (afterEach puts it back).
    assert.equal(await net.setAccessTokenTtl(STORM_TTL), STORM_TTL);
    const opts = options({ refreshLeewaySeconds: STORM_LEEWAY });
    const { page } = await loginAtproto(context, net, opts, alice());
    const tabs = [page];
    for (let i = 0; i < 3; i++) tabs.push(await openAtprotoTab(context, opts));
    const loginClaims = claimsOf(await accessToken(page));
    assert.equal(loginClaims.exp - loginClaims.iat, STORM_TTL, "the login's token lives STORM_TTL");
    // One call per tab before the expiry: every tab knows the PDS's resource nonce, so the
    // rounds measure the refresh, not a first contact (where every call of a burst goes out
    // before any nonce comes back and pays one resend: a known limitation, CHANGELOG.md).
    for (const tab of tabs) assert.equal((await xrpcCall(tab, getSessionUrl())).status, 200);
    assert.ok(Date.now() < loginClaims.exp * 1000 - 3_000, "the warm-up ended before the login's token went stale (a slow login: raise STORM_TTL)");

    const round = async (n, perTab, expSeconds) => {
      const label = `round ${n}`;
      await sleep(Math.max(0, expSeconds * 1000 + PAST_EXPIRY_MS - Date.now()));
      await net.resetCounters();
      const startAt = Date.now() + 300;
      const results = await within(Promise.all(tabs.map((tab) => burstAt(tab, getSessionUrl(), perTab, startAt))), 45_000, `${label}'s calls`);
      const elapsed = Date.now() - startAt;
      const c = await net.counters();
      const dump = `${label} (${elapsed} ms): ${JSON.stringify({ token: c.token, par: c.par, revoke: c.revoke, xrpc: c.pds.outcomes["/xrpc/com.atproto.server.getSession"], plc: c.plc.documentFetches, prm: c.protectedResourceMetadata })}`;
      const statuses = results.map((r) => r.statuses);
      const bad = statuses.flatMap((list, i) => list.map((s) => [i, s])).filter(([, s]) => s !== 200);
      assert.deepEqual(bad, [], `${label}: every call ends 200 ([tab, status]) — ${dump}`);
      assert.equal(statuses.flat().length, tabs.length * perTab);

      const refresh = c.token.byGrantTypeAndOutcome.refresh_token ?? {};
      const nonceRefusals = refresh.use_dpop_nonce ?? 0;
      t.diagnostic(`${label}: ${tabs.length} × ${perTab} calls in ${elapsed} ms; refresh_token outcomes ${JSON.stringify(refresh)} (use_dpop_nonce refusals: ${nonceRefusals}); getSession outcomes ${JSON.stringify(c.pds.outcomes["/xrpc/com.atproto.server.getSession"])}`);
      assert.equal(refresh.success, 1, `${label}: exactly one refresh grant — ${dump}`);
      assert.ok(nonceRefusals <= 1, `${label}: at most one nonce refusal, answered once — ${dump}`);
      assert.deepEqual(Object.keys(refresh).filter((k) => k !== "success" && k !== "use_dpop_nonce"), [], `${label}: no other refresh outcome (no invalid_grant) — ${dump}`);
      assert.equal(c.token.byOutcome.invalid_grant ?? 0, 0, dump);
      assert.equal(c.token.byGrantType.authorization_code ?? 0, 0, dump);
      assert.equal(c.revoke.requests, 0, dump);
      assert.deepEqual(c.pds.outcomes["/xrpc/com.atproto.server.getSession"], { success: tabs.length * perTab }, `${label}: the PDS answered every call 200, none refused (expired token or nonce) — ${dump}`);
      await assertOneSetPerTab(tabs, n, label);

      // Every tab holds the new token, which the PDS issued with the short lifetime.
      const tokens = await Promise.all(tabs.map(accessToken));
      assert.equal(new Set(tokens).size, 1, `${label}: every tab holds the same token`);
      const claims = claimsOf(tokens[0]);
      assert.ok(claims.exp > expSeconds, `${label}: a newer token`);
      assert.equal(claims.exp - claims.iat, STORM_TTL, `${label}: the refreshed token lives STORM_TTL too`);
      return claims.exp;
    };

    const next = await round(1, 25, loginClaims.exp);
    await round(2, 5, next);
  });
}, 150_000);

test("logout revokes at the PDS, deletes the key and signs out every tab", async () => {
  await inContext(async (context) => {
    const opts = options();
    const { page } = await loginAtproto(context, net, opts, alice());
    const other = await openAtprotoTab(context, opts);
    assert.equal((await xrpcCall(other, getSessionUrl())).status, 200);

    // Kept aside, past latchkey: the old token and (a handle to) its key, to try them afterwards.
    const oldToken = await accessToken(page);
    const keyName = await keepDpopKey(page, keyPrefix(ATPROTO_STORE, opts.clientId));
    assert.ok(keyName, "one DPoP key record");
    const before = await handMadeDpopGet(page, getSessionUrl(), oldToken);
    assert.equal(before.status, 200, `the old token and key work before logout — ${JSON.stringify(before)}`);

    await net.resetCounters();
    const result = await within(
      page.evaluate(() => window.auth.logout().then((r) => ({ revocation: r.revocation, code: r.error?.code }))),
      20_000,
      "logout()",
    );
    assert.deepEqual(result, { revocation: "revoked", code: undefined });
    const c = await net.counters();
    assert.ok(c.revoke.byOutcome.success >= 1, `the PDS revoked — ${JSON.stringify(c.revoke)}`);
    assert.deepEqual(Object.keys(c.revoke.byOutcome).filter((k) => k !== "success" && k !== "use_dpop_nonce"), [], JSON.stringify(c.revoke));

    // The old token is dead at the PDS, even with a valid proof of its key.
    const afterwards = await handMadeDpopGet(page, getSessionUrl(), oldToken);
    assert.equal(afterwards.status, 401, `the revoked token is refused — ${JSON.stringify(afterwards)}`);
    assert.match(afterwards.wwwAuthenticate ?? "", /invalid_token/, JSON.stringify(afterwards));

    // Nothing left: no token record, no key.
    assert.equal(await storedRecord(page, opts), null, "no token record");
    assert.deepEqual(await storedKeys(page, opts), [], "the DPoP key is deleted");

    // Every tab is signed out, and sends nothing.
    for (const [i, tab] of [page, other].entries()) {
      await within(
        (async () => {
          while (named(await eventsOf(tab), "signedOut").length === 0) await sleep(50);
        })(),
        5_000,
        `tab ${i}'s signedOut event`,
      );
      assert.equal(await isAuthenticated(tab), false, `tab ${i} is signed out`);
      const refused = await call(tab, getSessionUrl());
      assert.ok(refused.code, `tab ${i}: fetchWithAuth rejects — ${JSON.stringify(refused)}`);
      assert.ok(["not_authenticated", "origin_not_allowed"].includes(refused.code), JSON.stringify(refused));
      const user = await tab.evaluate(() => window.auth.getUser().then(() => "resolved", (e) => e.code));
      assert.equal(user, "not_authenticated");
    }
    const x = await net.counters();
    assert.equal(x.pds.requests["/xrpc/com.atproto.server.getSession"], afterwards.requests, `only the hand-made call after logout reached the PDS — ${JSON.stringify(x.pds.requests)}`);
  });
});

// Creates window.auth with `opts` and an app `refresh` that performs the refresh-token grant
// itself, as an app doing its own networking would: at the `tokenEndpoint` it is given, signed
// with `dpopProof` (once more with the server's nonce when it asks for one). Every context it
// receives is recorded, secrets left out, in window.refreshContexts.
async function installCustomRefreshClient(page, opts) {
  const result = await page.evaluate(async (options) => {
    window.refreshContexts = [];
    options.refresh = async (ctx) => {
      window.refreshContexts.push({
        tokenEndpoint: ctx.tokenEndpoint,
        clientId: ctx.clientId,
        scope: ctx.scope,
        hasRefreshToken: typeof ctx.refreshToken === "string" && ctx.refreshToken.length > 0,
        hasProofFactory: typeof ctx.dpopProof === "function",
      });
      const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: ctx.refreshToken, client_id: ctx.clientId });
      const send = async (nonce) =>
        fetch(ctx.tokenEndpoint, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded", DPoP: await ctx.dpopProof({ url: ctx.tokenEndpoint, nonce }) },
          body,
        });
      let res = await send(undefined);
      let answer = await res.json();
      if (res.status === 400 && answer.error === "use_dpop_nonce") {
        res = await send(res.headers.get("DPoP-Nonce") ?? undefined);
        answer = await res.json();
      }
      return answer;
    };
    try {
      window.auth = await window.latchkey.AuthClient.create(options);
    } catch (e) {
      return { error: { code: e.code, message: e.message } };
    }
    window.events = [];
    window.auth.on("tokens", (detail) => window.events.push({ name: "tokens", source: detail?.source }));
    return { ok: true };
  }, opts);
  if (result.error) throw new Error(`create failed: ${JSON.stringify(result.error)}`);
}

test("before each refresh the account is checked again: moved to another server, no refresh token is sent and the valid token stays in use; moved back, it refreshes at its own server", async () => {
  await inContext(async (context) => {
    // Stale at half its lifetime (this leeway), valid for the other half:
    // long enough for the moves and checks below on a busy machine.
    const ttl = 16;
    assert.equal(await net.setAccessTokenTtl(ttl), ttl);
    const mover = await net.createAccount("mover.test", "mover-password");
    const opts = options({ refreshLeewaySeconds: 600 });
    const { page } = await loginAtproto(context, net, opts, mover);
    const first = await accessToken(page);
    await sleep(Math.max(0, (claimsOf(first).iat + ttl / 2) * 1000 + 700 - Date.now()));

    // The account's document now names a server that names another authorization server.
    await net.movePds(mover.did, net.wrong.elsewhere.pdsUrl);
    await net.resetCounters();
    const held = await within(accessToken(page), 15_000, "getAccessToken() with the account moved");
    assert.equal(held, first, "the token in hand, still valid, is used");
    let c = await net.counters();
    assert.equal(c.token.byGrantType.refresh_token ?? 0, 0, `no refresh token presented — ${JSON.stringify(c.token)}`);
    assert.ok((c.plc.documentFetchesByDid[mover.did] ?? 0) >= 1, "the account's document was read again first");
    assert.equal(await isAuthenticated(page), true, "a failed check ends no session");

    // Back at its own server: the next call refreshes there.
    await net.movePds(mover.did, net.pdsUrl);
    await net.resetCounters();
    const refreshed = await within(accessToken(page), 15_000, "getAccessToken() with the account back");
    assert.notEqual(refreshed, first, "a new access token");
    c = await net.counters();
    assert.equal(c.token.byGrantTypeAndOutcome.refresh_token?.success, 1, JSON.stringify(c.token));
    assert.ok((c.plc.documentFetchesByDid[mover.did] ?? 0) >= 1, "checked again before this refresh too");
  });
});

test("an app's own refresh of an atproto session is given the account's token endpoint and a proof factory; the refreshed token works at the PDS", async () => {
  await inContext(async (context) => {
    // Tokens that go stale (half their lifetime, with this leeway) a few seconds after login.
    const ttl = 6;
    assert.equal(await net.setAccessTokenTtl(ttl), ttl);
    const opts = options({ refreshLeewaySeconds: 600 });
    // One client for the whole visit, as an SPA has: created on the callback page before any
    // session exists (so nothing configured names a token endpoint), it finishes the login,
    // then refreshes with the app's function.
    const page = await context.newPage();
    await openApp(page, opts.redirectUri);
    await installAtprotoClient(page, opts);
    const refused = await startLogin(page, net.pdsUrl, alice().handle);
    assert.equal(refused, null, JSON.stringify(refused));
    await signInAtPds(page, { password: alice().password, expectedHandle: alice().handle, redirectUri: opts.redirectUri });
    await installCustomRefreshClient(page, opts);
    const done = await page.evaluate(() => window.auth.handleRedirectCallback().then(() => "ok", (e) => e.code));
    assert.equal(done, "ok");
    const before = await accessToken(page);
    await sleep((ttl / 2) * 1000 + 500);

    await net.resetCounters();
    const after = await within(accessToken(page), 20_000, "getAccessToken() through the app's refresh");
    assert.notEqual(after, before, "a new access token");
    const contexts = await page.evaluate(() => window.refreshContexts);
    assert.deepEqual(contexts, [
      {
        tokenEndpoint: `${net.issuer}/oauth/token`,
        clientId: opts.clientId,
        scope: contexts[0]?.scope,
        hasRefreshToken: true,
        hasProofFactory: true,
      },
    ], "one refresh, at the account's own token endpoint");
    assert.ok(contexts[0].scope.split(" ").includes("atproto"), JSON.stringify(contexts));
    const c = await net.counters();
    const refresh = c.token.byGrantTypeAndOutcome.refresh_token ?? {};
    assert.equal(refresh.success, 1, `one refresh grant at the PDS — ${JSON.stringify(c.token)}`);
    assert.deepEqual(Object.keys(refresh).filter((k) => k !== "success" && k !== "use_dpop_nonce"), [], JSON.stringify(c.token));
    assert.deepEqual(named(await eventsOf(page), "tokens").map((e) => e.source), ["login", "refresh"]);

    // The refreshed token is still bound to the session's key: DPoP calls to the PDS work.
    const session = await xrpcCall(page, getSessionUrl());
    assert.equal(session.status, 200, JSON.stringify(session));
    assert.equal(session.body.did, alice().did);
  });
});

// The handle as typed ("@" and capitals allowed) is resolved as its canonical form, and that
// form is the login_hint: the reference server refuses a hint that is not a handle or a DID.
test("login by a handle typed with @ and capitals: resolved and hinted as the handle", async () => {
  await inContext(async (context) => {
    const opts = options();
    const page = await context.newPage();
    await openApp(page, opts.redirectUri);
    await installAtprotoClient(page, opts);
    const typed = `@${alice().handle.toUpperCase()}`;
    const refused = await within(startLogin(page, net.pdsUrl, typed), 25_000, `login(${typed})`);
    assert.equal(refused, null, JSON.stringify(refused));
    await signInAtPds(page, { password: alice().password, expectedHandle: alice().handle, redirectUri: opts.redirectUri });
    const done = await completeCallback(page, opts);
    assert.equal(done.error, undefined, JSON.stringify(done.error));
    await installAtprotoClient(page, opts);
    assert.deepEqual(await page.evaluate(() => window.auth.getUser()), { sub: alice().did, handle: "alice.test", pds: net.pdsUrl });
  });
});

test("a handle that does not resolve: login rejects handle_not_found; nothing pushed or stored", async () => {
  await inContext(async (context) => {
    const opts = options();
    await net.resetCounters();
    const { page, refused } = await refusedLogin(context, opts, net.wrong.unknownHandle);
    assert.equal(refused.code, "handle_not_found", JSON.stringify(refused));
    const url = await page.evaluate((handle) => window.auth.createLoginUrl({ handle }).then((u) => u, (e) => `error:${e.code}`), net.wrong.unknownHandle);
    assert.equal(url, "error:handle_not_found");
    const c = await net.counters();
    assert.equal(c.resolveHandle.byOutcome.HandleNotFound, 2, JSON.stringify(c.resolveHandle));
    assert.equal(c.par.requests, 0);
    assert.equal(c.plc.documentFetches, 0);
    assert.equal(await storedRecord(page, opts), null);
    assert.deepEqual(await storedKeys(page, opts), []);
    assert.equal(await pendingTransaction(page, opts.clientId), null);
  });
});

test("a DID whose PDS names another server, by handle: the login goes to that server (its PAR refused: par_failed), nothing pushed here, nothing left behind", async () => {
  const { elsewhere } = net.wrong;
  await inContext(async (context) => {
    const opts = options();
    await net.resetCounters();
    const { page, refused } = await refusedLogin(context, opts, elsewhere.handle);
    assert.equal(refused.code, "par_failed", JSON.stringify(refused));
    assert.equal(refused.error, "invalid_request", "its server's answer");
    assert.equal(refused.status, 400);
    const c = await net.counters();
    assert.ok(c.elsewhere.requests["/oauth/par"] >= 1, `the push went to its server — ${JSON.stringify(c.elsewhere)}`);
    assert.equal(c.par.requests, 0, "nothing pushed here");
    assert.equal(await storedRecord(page, opts), null, "no token record");
    // A login that can never finish keeps nothing: neither its DPoP key nor its pending
    // transaction (as a login refused at the callback does).
    const left = {
      dpopKeys: (await storedKeys(page, opts)).map((k) => k.name),
      transaction: (await pendingTransaction(page, opts.clientId)) === null ? null : "present",
    };
    assert.deepEqual(left, { dpopKeys: [], transaction: null }, "the refused login leaves no DPoP key and no pending transaction");
  });
});

test("a DID whose PDS names another server, signed in at this issuer: the sub check refuses it (issuer_mismatch), tokens revoked, nothing stored", async () => {
  const { elsewhere } = net.wrong;
  await inContext(async (context) => {
    const opts = options();
    // A login started for alice at this issuer; the account signed in at its pages is
    // elsewhere.test (through the page's own sign-in and consent API: the page offers no other
    // account once hinted, the server does not bind the sign-in to login_hint). The code
    // exchange succeeds; the token's sub names a DID whose PDS names another authorization
    // server.
    const page = await context.newPage();
    await openApp(page, opts.redirectUri);
    await installAtprotoClient(page, opts);
    assert.equal(await within(startLogin(page, net.pdsUrl, alice().handle), 25_000, "login(alice)"), null);
    await net.resetCounters();
    const landed = await signInAtPdsAs(page, { username: elsewhere.handle, password: elsewhere.password, redirectUri: opts.redirectUri });
    assert.equal(new URL(landed).searchParams.get("iss"), net.issuer, "the callback comes from this issuer");
    const done = await within(completeCallback(page, opts), 25_000, "handleRedirectCallback()");
    assert.equal(done.error?.code, "issuer_mismatch", JSON.stringify(done));

    const c = await net.counters();
    const dump = JSON.stringify(c);
    assert.equal(c.token.byGrantTypeAndOutcome.authorization_code?.success, 1, `the code was exchanged — ${dump}`);
    assert.ok(c.plc.documentFetchesByDid[elsewhere.did] >= 1, `the sub's DID document was read — ${dump}`);
    assert.ok(c.elsewhere.requests["/.well-known/oauth-protected-resource"] >= 1, `its PDS was asked for its server — ${dump}`);
    assert.ok(c.revoke.byOutcome.success >= 1, `the issued tokens were revoked — ${dump}`);
    assert.equal(await storedRecord(page, opts), null, "no token record");
    assert.deepEqual(await storedKeys(page, opts), [], "the key is deleted");
    assert.equal(await pendingTransaction(page, opts.clientId), null, "the transaction was consumed");
    await installAtprotoClient(page, opts);
    assert.equal(await isAuthenticated(page), false);
    assert.equal(await page.evaluate(() => window.auth.getUser().then(() => "resolved", (e) => e.code)), "not_authenticated");
  });
});

test("a PDS whose server's metadata names another issuer: issuer_mismatch before any PAR, nothing stored", async () => {
  const { misissued } = net.wrong;
  await inContext(async (context) => {
    const opts = options();
    await net.resetCounters();
    const { page, refused } = await refusedLogin(context, opts, misissued.handle);
    assert.equal(refused.code, "issuer_mismatch", JSON.stringify(refused));
    const c = await net.counters();
    const dump = JSON.stringify(c);
    assert.ok(c.misissuer.requests["/.well-known/oauth-authorization-server"] >= 1, `its metadata was read — ${dump}`);
    assert.equal(c.par.requests, 0, `no PAR — ${dump}`);
    assert.deepEqual(Object.keys(c.misissuer.requests).filter((p) => p.startsWith("/oauth/")), [], dump);
    assert.equal(await storedRecord(page, opts), null);
    assert.deepEqual(await storedKeys(page, opts), []);
    assert.equal(await pendingTransaction(page, opts.clientId), null);
  });
});
