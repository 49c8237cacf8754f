// Sign-out across tabs against the real authorization server: every tab drops
// its tokens and emits signedOut, the store is emptied, the tokens are revoked
// at the server (its counters and its store say so), a refresh running in
// another tab cannot bring the session back, a failing revocation still signs
// out and is reported, and RP-initiated logout reaches the server.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, loginViaRedirect, openApp, rawRecord, withClient } from "./support/app.mjs";
import { loginTab, openTab, burst, eventsOf, sleep, freshContext, installClient, isAuthenticated, until, within } from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

afterEach(() => {
  idp.setTokenFaults({});
  idp.setRevocationFault(null);
  idp.setAccessTokenTtl(3600);
  idp.resetCounters();
});

// A logged-in tab plus `more` tabs on the same session, in a fresh context
// whose uncaught page errors are collected.
async function session({ more = 2, ttl = 3600 } = {}) {
  const { context, errors } = await freshContext(browser);
  idp.setAccessTokenTtl(ttl);
  const tabs = [await loginTab(context, idp)];
  for (let i = 0; i < more; i++) tabs.push(await openTab(context, idp));
  return { context, tabs, errors };
}

// Polls `check` every 100 ms until it returns a truthy value or `withinMs` passes.
async function waitFor(check, { withinMs = 5_000 } = {}) {
  for (let waited = 0; waited <= withinMs; waited += 100) {
    const value = await check();
    if (value) return value;
    await sleep(100);
  }
  return check();
}

const logout = (page, options) =>
  page.evaluate(async (options) => {
    try {
      const result = await window.auth.logout(options);
      if (!result.error) return { revocation: result.revocation };
      return { revocation: result.revocation, error: { code: result.error.code, status: result.error.status } };
    } catch (e) {
      return { rejected: { code: e.code, message: e.message } };
    }
  }, options);

// What a tab's client says about its session: signed in?, and the code
// getAccessToken rejects with (or "ok").
const state = (page) =>
  page.evaluate(async () => ({
    authenticated: await window.auth.isAuthenticated(),
    token: await window.auth.getAccessToken().then(
      () => "ok",
      (e) => e.code,
    ),
  }));


const signedOutCount = async (page) => (await eventsOf(page)).filter((e) => e.name === "signedOut").length;

async function whoamiStatus(accessToken) {
  const res = await fetch(idp.whoamiUrl, { headers: { Authorization: `Bearer ${accessToken}` } });
  return res.status;
}

test("logout in one of 3 tabs signs out all 3, empties the store and revokes both tokens", async () => {
  const { context, tabs, errors } = await session();
  try {
    const liveBefore = idp.liveRefreshTokens();
    const accessToken = await tabs[0].evaluate(() => window.auth.getAccessToken());
    assert.equal(await whoamiStatus(accessToken), 200);
    assert.notEqual(await rawRecord(tabs[2], idp), null);
    idp.resetCounters();

    assert.deepEqual(await logout(tabs[1]), { revocation: "revoked" });

    for (const [i, tab] of tabs.entries()) {
      assert.equal(await waitFor(() => signedOutCount(tab).then((n) => n === 1)), true, `tab ${i} heard signedOut`);
      assert.deepEqual(await state(tab), { authenticated: false, token: "not_authenticated" }, `tab ${i}`);
      assert.equal((await eventsOf(tab)).filter((e) => e.name === "sessionExpired").length, 0, `tab ${i}`);
    }
    assert.equal(await rawRecord(tabs[0], idp), null, "the stored session is gone");

    const { revocation, token } = idp.counters();
    assert.deepEqual(revocation.byHint, { refresh_token: 1, access_token: 1 });
    assert.equal(revocation.succeeded, 2);
    assert.equal(token.byGrantType.refresh_token, 0, "signing out refreshed nothing");
    assert.equal(idp.liveRefreshTokens(), liveBefore - 1, "the refresh token is dead at the server");
    assert.equal(await whoamiStatus(accessToken), 401, "the access token is dead at the server");

    // A new tab (a reload) finds no session.
    const fresh = await openTab(context, idp);
    assert.deepEqual(await state(fresh), { authenticated: false, token: "not_authenticated" });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// A tab hears the others from before it reads the store: a sign-out told
// while its create() reads and discovers is not missed (it would keep, and
// send, the signed-out session's access token until it needed a refresh).
test("a tab whose create() read the session just before another tab signed out ends signed out", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const a = await loginTab(context, idp);
    const n = await context.newPage();
    await openApp(n, `${idp.spaOrigin}/`);
    // No kept metadata, so create() discovers after reading the store; the
    // discovery held back until the test lets it go.
    await n.evaluate(async (key) => {
      const db = await new Promise((resolve, reject) => {
        const open = indexedDB.open("latchkey", 1);
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
      await new Promise((resolve, reject) => {
        const tx = db.transaction("records", "readwrite");
        tx.objectStore("records").delete(key);
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
      });
      db.close();
      const real = window.fetch.bind(window);
      window.discovering = false;
      let release;
      window.releaseDiscovery = new Promise((resolve) => (release = resolve));
      window.letDiscoveryGo = release;
      window.fetch = async (input, init) => {
        const url = typeof input === "string" ? input : input.url;
        if (url.includes("/.well-known/")) {
          window.discovering = true;
          await window.releaseDiscovery;
        }
        return real(input, init);
      };
    }, `latchkey:${idp.issuer}:${idp.clientId}:metadata`);
    const installing = installClient(n, idp);
    await until(() => n.evaluate(() => window.discovering), 10_000, "N's create() to have read the store and begun discovery");
    assert.deepEqual(await logout(a), { revocation: "revoked" });
    await sleep(200); // the sign-out's message on its way to N
    await n.evaluate(() => window.letDiscoveryGo());
    await installing;
    assert.deepEqual(await state(n), { authenticated: false, token: "not_authenticated" });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a refresh running in another tab at the moment of logout does not bring the session back", async () => {
  // Expired access tokens and a slow token endpoint: tab B's refresh holds
  // the lock while tab A signs out.
  const { context, tabs, errors } = await session({ more: 1, ttl: 2 });
  try {
    const [a, b] = tabs;
    const liveBefore = idp.liveRefreshTokens();
    await sleep(2_800);
    idp.resetCounters();
    idp.setTokenFaults({ delayMs: 1_500 });

    const calls = burst(b, idp.whoamiUrl, 5);
    const locked = await waitFor(async () => (await b.evaluate(() => navigator.locks.query())).held.length > 0, { withinMs: 3_000 });
    assert.ok(locked, "B's refresh holds the lock before the sign-out");
    const signedOut = await logout(a);
    const statuses = await calls;

    assert.deepEqual(signedOut, { revocation: "revoked" });
    assert.equal(idp.counters().token.byGrantType.refresh_token, 1, "one refresh, before the sign-out");
    // B's calls were refused (signed out while waiting) or, at most, got
    // through before: never a crash, never a second refresh.
    for (const status of statuses) assert.ok([200, 401, "error:not_authenticated"].includes(status), String(status));

    // Every tab heard the sign-out, then a little longer for any late
    // broadcast; nobody is signed in.
    for (const tab of tabs) assert.ok(await waitFor(async () => (await signedOutCount(tab)) >= 1), "every tab hears the sign-out");
    await sleep(500);
    for (const [i, tab] of tabs.entries()) {
      assert.deepEqual(await state(tab), { authenticated: false, token: "not_authenticated" }, `tab ${i}`);
      assert.equal(await signedOutCount(tab), 1, `tab ${i}`);
    }
    // The sign-out is immediate: B's refresh settles after it, so B stores
    // and adopts nothing (no tokens event) and revokes what it received.
    const bNames = (await eventsOf(b)).map((e) => (e.source ? `${e.name}:${e.source}` : e.name));
    assert.deepEqual(bNames, ["signedOut"]);
    assert.equal(await rawRecord(a, idp), null);
    // The rotated refresh token (the one B's refresh received) is revoked.
    assert.equal(idp.liveRefreshTokens(), liveBefore - 1);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a sign-out called while another tab's login checks its ID token: the login completes after it, and every tab signs in with it", async () => {
  // Tabs A and C on a session; tab B logs in again, and its callback's key
  // fetch is held until A's sign-out has reached C. The login completes
  // when it is written, after the sign-out: no tab may take it as ended.
  const { context, tabs, errors } = await session({ more: 1 });
  try {
    const [a, c] = tabs;
    const { jwks_uri } = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json();
    let release;
    const held = new Promise((resolve) => (release = resolve));
    let reached;
    const atKeys = new Promise((resolve) => (reached = resolve));
    await context.route(jwks_uri, async (route) => {
      reached();
      await held;
      await route.continue();
    });
    const b = await context.newPage();
    const options = clientOptions(idp);
    await loginViaRedirect(b, idp, options);
    const callback = withClient(b, options, (client) => client.handleRedirectCallback().then(() => client.isAuthenticated()));
    await within(atKeys, 15_000, "B's callback fetching the keys");
    assert.deepEqual(await logout(a), { revocation: "revoked" });
    assert.equal(await waitFor(() => signedOutCount(c).then((n) => n === 1)), true, "C heard the sign-out");
    release();
    assert.deepEqual(await within(callback, 15_000, "B's callback"), { value: true });
    await context.unrouteAll({ behavior: "wait" });

    for (const [name, tab] of [["A", a], ["C", c]]) {
      assert.equal(await waitFor(() => isAuthenticated(tab)), true, `${name} signed in with B's login`);
      assert.deepEqual(await state(tab), { authenticated: true, token: "ok" }, name);
    }
    assert.equal(await a.evaluate(() => window.auth.getAccessToken()), await c.evaluate(() => window.auth.getAccessToken()));
    const reloaded = await openTab(context, idp);
    assert.equal(await isAuthenticated(reloaded), true, "a reload finds B's login stored");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

for (const [name, fault, status] of [
  ["HTTP 503", { status: 503 }, 503],
  ["a dropped connection", { kind: "drop" }, undefined],
]) {
  test(`a revocation failure (${name}) still signs out everywhere and is reported`, async () => {
    const { context, tabs, errors } = await session({ more: 1 });
    try {
      const liveBefore = idp.liveRefreshTokens();
      idp.setRevocationFault(fault);
      const result = await logout(tabs[0]);
      assert.equal(result.revocation, "failed");
      assert.equal(result.error.code, "revocation_failed");
      assert.equal(result.error.status, status);
      for (const tab of tabs) {
        assert.equal(await waitFor(() => signedOutCount(tab).then((n) => n === 1)), true);
        assert.deepEqual(await state(tab), { authenticated: false, token: "not_authenticated" });
      }
      assert.equal(await rawRecord(tabs[1], idp), null);
      assert.equal(idp.liveRefreshTokens(), liveBefore, "the server still holds it: that is what was reported");
      assert.ok(idp.counters().revocation.faultsInjected >= 2, "both tokens were attempted");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

test("endSession goes to the issuer's end_session_endpoint with id_token_hint and comes back", async () => {
  const { context, tabs, errors } = await session({ more: 0 });
  try {
    const [tab] = tabs;
    // A registered address other than the page's own, so arriving there proves the round trip.
    const back = `${idp.spaOrigin}/index.html`;
    // logout() navigates away, so its promise may never settle in this page.
    await tab.evaluate((back) => {
      window.auth.logout({ endSession: true, postLogoutRedirectUri: back });
    }, back);
    await tab.waitForURL((url) => url.href === back, { timeout: 15_000 });
    assert.deepEqual(idp.counters().endSession, { requests: 2, withIdTokenHint: 1 });
    assert.deepEqual(idp.counters().revocation.byHint, { refresh_token: 1, access_token: 1 });
    // Back on the app: signed out.
    const again = await openTab(context, idp);
    assert.deepEqual(await state(again), { authenticated: false, token: "not_authenticated" });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("invalid logout options reject with invalid_option and change nothing", async () => {
  const { context, tabs } = await session({ more: 0 });
  try {
    const [tab] = tabs;
    for (const options of [{ revokee: true }, { revoke: "yes" }, { postLogoutRedirectUri: `${idp.spaOrigin}/` }, { endSession: true, postLogoutRedirectUri: "/relative" }]) {
      const result = await logout(tab, options);
      assert.equal(result.rejected?.code, "invalid_option", JSON.stringify(options));
    }
    assert.deepEqual(await state(tab), { authenticated: true, token: "ok" });
    assert.equal(idp.counters().revocation.requests, 0);
    assert.equal(await signedOutCount(tab), 0);
  } finally {
    await context.close();
  }
});
