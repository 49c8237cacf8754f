// Issue 14, "nothing lost under faults": once the server has answered a
// refresh with a new refresh token, that token is the session. Against the
// test authorization server with rotation and its default reuse policy (a
// rotated-away refresh token presented again revokes the whole grant), each
// fault below must leave the session alive: the server counts no
// invalid_grant and no revoked grant, and every tab's calls succeed, after
// the next expiry too. The sign-out test is the exception: there the
// expected end is signed out everywhere, with nothing brought back.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { openApp, rawRecord } from "./support/app.mjs";
import {
  accessToken,
  burst,
  call,
  eventsOf,
  freshContext,
  installClient,
  isAuthenticated,
  loginTab,
  named,
  openTab,
  signedInTabs,
  sleep,
  until,
  within,
  EXPIRED_MS,
  SHORT_TTL,
} from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";
import {
  assertNothingLost,
  diskFull,
  grantOf,
  logoutIn,
  openTabWithAppRefresh,
  sessionState,
} from "./support/nothing-lost.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

// Every test may change any of these; put them all back.
afterEach(() => {
  idp.setTokenFaults({});
  idp.clearEndpointFaults();
  idp.setAccessTokenTtl(3600);
  idp.resetCounters();
});

// Each test is bounded: a hang fails it instead of stalling the run.
const BOUNDED = { timeout: 120_000 };

// Tokens from the refreshes under test live NEXT_TTL seconds: long enough
// for the checks right after the refresh (latchkey refreshes ahead by at
// most half the lifetime), short enough to wait for the next expiry.
const NEXT_TTL = 6;
// How late the token endpoint answers a refresh it has carried out, with
// refreshTimeoutSeconds: 2.
const TIMEOUT_S = 2;
const LATE_MS = 4_000;

const refreshGrants = () => idp.counters().token.byGrantType.refresh_token ?? 0;
// Refresh grants the server carried out (rotations), counted before any late answer.
const rotations = () => idp.counters().token.succeeded.refresh_token ?? 0;

const getUser = (page) =>
  page.evaluate(() =>
    window.auth.getUser().then(
      (user) => ({ user }),
      (e) => ({ code: e.code }),
    ),
  );

// Resolves once a token set delivered at `deliveredAt` (ms) has expired for
// the client and the server alike.
const untilExpired = (deliveredAt, ttl = NEXT_TTL) => sleep(Math.max(0, deliveredAt + ttl * 1000 + 800 - Date.now()));

// The next expiry: every tab's calls succeed, with exactly one more refresh
// between them all, every tab ends up with the same tokens, and the server
// saw nothing wrong.
async function nextExpiryWorks(tabs, deliveredAt, what, { ttl, ...lost } = {}) {
  await untilExpired(deliveredAt, ttl);
  const grantsBefore = refreshGrants();
  const out = await within(Promise.all(tabs.map((tab) => burst(tab, idp.whoamiUrl, 3))), 30_000, `${what}: calls after the next expiry`);
  for (const [i, statuses] of out.entries()) {
    assert.deepEqual(statuses, [200, 200, 200], `${what}: tab ${i} after the next expiry: ${JSON.stringify(statuses)}`);
  }
  assert.equal(refreshGrants(), grantsBefore + 1, `${what}: one refresh for the next expiry`);
  const tokens = await Promise.all(tabs.map(accessToken));
  assert.equal(new Set(tokens).size, 1, `${what}: every tab uses the same tokens`);
  assertNothingLost(idp, what, lost);
}

// Nobody was signed out or told the session expired.
async function noSignOut(tabs, what) {
  for (const [i, tab] of tabs.entries()) {
    const events = await eventsOf(tab);
    assert.deepEqual([...named(events, "sessionExpired"), ...named(events, "signedOut")], [], `${what}: tab ${i}: ${JSON.stringify(events)}`);
  }
}

// The issuer's keys failing while a freshly loaded tab (its key set cache
// empty) checks a refreshed ID token: unreachable, or served stale from a
// cache during a key rollover (every key's kid replaced, so the set holds
// no key for the token's kid even after the refetch).
const KEY_FAULTS = [
  {
    name: "JWKS unreachable",
    start: () => idp.setEndpointFault("jwks", { kind: "drop" }),
    stop: () => idp.setEndpointFault("jwks", null),
  },
  {
    name: "a stale key set without the signing key's kid",
    start: async (context) => {
      const { jwks_uri } = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json();
      await context.route(jwks_uri, async (route) => {
        const response = await route.fetch();
        const jwks = await response.json();
        jwks.keys = jwks.keys.map((key) => ({ ...key, kid: "before-the-rollover" }));
        await route.fulfill({ response, body: JSON.stringify(jwks) });
      });
    },
    stop: (context) => context.unrouteAll({ behavior: "wait" }),
  },
];

for (const fault of KEY_FAULTS) {
  test(`${fault.name} while a freshly loaded tab refreshes: the new tokens are stored and used, the verified claims stay, nothing lost`, BOUNDED, async () => {
    const { context, errors } = await freshContext(browser);
    try {
      const [a, b] = await signedInTabs(context, idp, {}, { ttl: SHORT_TTL, more: 1 });
      // A reload: a fresh client in A, whose key set cache is empty.
      await openApp(a, `${idp.spaOrigin}/`);
      await installClient(a, idp);
      const verified = await getUser(a);
      assert.equal(verified.user?.sub, "alice", JSON.stringify(verified));
      const stored = await rawRecord(a, idp);
      await sleep(EXPIRED_MS);
      idp.setAccessTokenTtl(NEXT_TTL);
      idp.resetCounters();
      await fault.start(context);

      const first = await within(call(a, idp.whoamiUrl), 30_000, "A's call");
      const deliveredAt = Date.now();
      assert.equal(first.status, 200, `A's call: ${JSON.stringify(first)}`);
      assert.equal(rotations(), 1, "one refresh");
      assert.ok(idp.counters().jwks.requests >= 1, "the refreshed ID token's check asked for the keys");
      assert.notEqual(await rawRecord(a, idp), stored, "the refreshed set was persisted");
      await until(async () => named(await eventsOf(b), "tokens").length > 0, 5_000, "B hearing the new tokens");
      assert.equal(await accessToken(b), await accessToken(a), "B adopted A's new tokens");
      assert.equal((await call(b, idp.whoamiUrl)).status, 200);
      assert.equal(refreshGrants(), 1, "B needed no refresh");
      assert.deepEqual(await getUser(a), verified, "getUser still returns the claims verified before");
      assertNothingLost(idp, `while ${fault.name}`);

      await fault.stop(context);
      await nextExpiryWorks([a, b], deliveredAt, `after ${fault.name} ended`);
      const later = await getUser(a);
      assert.equal(later.user?.sub, "alice", `getUser after ${fault.name} ended: ${JSON.stringify(later)}`);
      await noSignOut([a, b], fault.name);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

// Tabs A and B whose refresh is the standard grant, or the app's own refresh() POSTing it.
const LATE_VARIANTS = [
  {
    name: "standard refresh",
    tabs: (context) => signedInTabs(context, idp, { refreshTimeoutSeconds: TIMEOUT_S }, { ttl: SHORT_TTL, more: 1 }),
  },
  {
    name: "the app's refresh()",
    tabs: async (context) => {
      const [login] = await signedInTabs(context, idp, {}, { ttl: SHORT_TTL });
      const extra = { refreshTimeoutSeconds: TIMEOUT_S };
      const tabs = [await openTabWithAppRefresh(context, idp, extra), await openTabWithAppRefresh(context, idp, extra)];
      await login.close();
      return tabs;
    },
  },
];

for (const variant of LATE_VARIANTS) {
  test(`${variant.name}: the server rotates but answers after the timeout; A gets refresh_timeout and stores the late answer, B waiting on the lock uses it; one refresh`, BOUNDED, async () => {
    const { context, errors } = await freshContext(browser);
    try {
      const [a, b] = await variant.tabs(context);
      const stored = await rawRecord(a, idp);
      await sleep(EXPIRED_MS);
      idp.setAccessTokenTtl(NEXT_TTL);
      idp.resetCounters();
      idp.setTokenFaults({ next: [{ kind: "late_response", ms: LATE_MS }] });

      const aCall = call(a, idp.whoamiUrl);
      await until(() => rotations() === 1, 5_000, "the server's rotation");
      // B's token expired too: its refresh queues on the lock A holds.
      const bCall = call(b, idp.whoamiUrl);
      const aOut = await within(aCall, 30_000, "A's call");
      assert.equal(aOut.code, "refresh_timeout", `A's call: ${JSON.stringify(aOut)}`);
      assert.ok(aOut.ms < TIMEOUT_S * 1000 + 1_500, `A's call rejected after ${Math.round(aOut.ms)} ms (timeout ${TIMEOUT_S} s)`);
      const bOut = await within(bCall, 30_000, "B's call");
      const deliveredAt = Date.now();
      assert.equal(bOut.status, 200, `B's call: ${JSON.stringify(bOut)}`);
      assert.ok(bOut.ms >= LATE_MS - 1_000, `B's call waited for the late answer (${Math.round(bOut.ms)} ms)`);
      assert.equal(refreshGrants(), 1, "one refresh request: B sent none");
      assert.notEqual(await rawRecord(a, idp), stored, "A persisted the late answer");

      const aNext = await call(a, idp.whoamiUrl);
      assert.equal(aNext.status, 200, `A's next call: ${JSON.stringify(aNext)}`);
      assert.equal(refreshGrants(), 1, "A's next call needed no refresh");
      assert.equal(await accessToken(a), await accessToken(b), "both tabs use the late answer's tokens");
      const aSources = named(await eventsOf(a), "tokens").map((e) => e.source);
      assert.deepEqual(aSources, ["refresh"], "A announced the late answer once");
      if (variant.name !== "standard refresh") {
        const calls = await Promise.all([a, b].map((tab) => tab.evaluate(() => [window.refreshCalls, window.refreshAnswers])));
        assert.deepEqual(calls, [[1, 1], [0, 0]], "refresh() ran once, in A, and got its answer");
      }
      assertNothingLost(idp, "late answer");

      await nextExpiryWorks([a, b], deliveredAt, "after the late answer");
      await noSignOut([a, b], "late answer");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

// latchkey's sign-out waits for the cross-tab lock, bounded (3 × refreshTimeoutSeconds): a
// refresh answered within that wait settles first and the sign-out revokes its tokens; one
// answered later settles after the sign-out, and must store and adopt nothing.
const LOCK_WAIT_MS = 3 * TIMEOUT_S * 1000;
const SIGN_OUT_VARIANTS = [
  { name: "answered while the sign-out waits for the lock", late: LATE_MS, settlesAfterSignOut: false },
  { name: "answered after the sign-out", late: LOCK_WAIT_MS + 2_500, settlesAfterSignOut: true },
];

for (const variant of SIGN_OUT_VARIANTS) {
  test(`sign-out in B while A's refresh waits for an answer the server already rotated (${variant.name}): signed out everywhere, nothing comes back`, BOUNDED, async (t) => {
    const { context, errors } = await freshContext(browser);
    try {
      const known = new Set(idp.liveGrants());
      const tabs = await signedInTabs(context, idp, { refreshTimeoutSeconds: TIMEOUT_S }, { ttl: SHORT_TTL, more: 2 });
      const [a, b] = tabs;
      const grants = idp.liveGrants().filter((g) => !known.has(g));
      assert.equal(grants.length, 1, "one login, one grant");
      // When each tab heard the sign-out (page clocks are this machine's clock).
      for (const tab of tabs) await tab.evaluate(() => window.auth.on("signedOut", () => (window.signedOutAt ??= Date.now())));
      await sleep(EXPIRED_MS);
      idp.setAccessTokenTtl(NEXT_TTL);
      idp.resetCounters();
      idp.setTokenFaults({ next: [{ kind: "late_response", ms: variant.late }] });

      const aCall = call(a, idp.whoamiUrl);
      await until(() => rotations() === 1, 5_000, "the server's rotation");
      const rotatedAt = Date.now();
      const signedOut = await within(logoutIn(b), 30_000, "B's logout");
      const signedOutAt = Date.now();
      assert.equal(signedOut.rejected, undefined, `B's logout: ${JSON.stringify(signedOut)}`);
      const aOut = await within(aCall, 30_000, "A's call");
      const heardAt = await Promise.all(tabs.map((tab) => tab.evaluate(() => window.signedOutAt)));
      t.diagnostic(
        `logout() done ${signedOutAt - rotatedAt} ms after the rotation, signedOut heard at ${JSON.stringify(heardAt.map((at) => at && at - rotatedAt))} ms; answer due at ${variant.late} ms; A's call: ${JSON.stringify(aOut)}`,
      );
      // Past the late answer, and long enough for any late broadcast to arrive.
      await sleep(Math.max(0, rotatedAt + variant.late + 1_000 - Date.now()));

      for (const [i, tab] of tabs.entries()) {
        await until(async () => named(await eventsOf(tab), "signedOut").length > 0, 5_000, `signedOut in tab ${i}`);
        assert.deepEqual(await sessionState(tab), { authenticated: false, token: "not_authenticated" }, `tab ${i}`);
        const events = await eventsOf(tab);
        assert.equal(named(events, "signedOut").length, 1, `tab ${i}: ${JSON.stringify(events)}`);
        const after = events.slice(events.findIndex((e) => e.name === "signedOut") + 1);
        assert.deepEqual(named(after, "tokens"), [], `tab ${i}: no tokens after the sign-out: ${JSON.stringify(events)}`);
        assert.deepEqual(named(events, "sessionExpired"), [], `tab ${i}`);
      }
      assert.equal(await rawRecord(a, idp), null, "the store is empty");
      const again = await call(a, idp.whoamiUrl);
      assert.equal(again.code, "not_authenticated", `A's later call: ${JSON.stringify(again)}`);
      await sleep(500);
      assert.equal(await rawRecord(b, idp), null, "the store stays empty");
      // A reload finds no session either.
      const reloaded = await openTab(context, idp);
      assert.deepEqual(await sessionState(reloaded), { authenticated: false, token: "not_authenticated" });

      const counters = idp.counters();
      t.diagnostic(`revocation requests: ${JSON.stringify(counters.revocation)}; grants: ${JSON.stringify(counters.grants)}`);
      assert.equal(counters.token.byGrantType.refresh_token, 1, "no refresh after the sign-out");
      assert.equal(counters.token.errorsByCode.invalid_grant ?? 0, 0, JSON.stringify(counters.token));
      assert.equal(counters.grants.byReason.reuse ?? 0, 0, `no grant revoked for reuse: ${JSON.stringify(counters.grants)}`);
      assert.ok(!idp.liveGrants().includes(grants[0]), "the sign-out's revocation ended the grant, the rotated refresh token with it");
      if (variant.settlesAfterSignOut) {
        // The fault this case is about: every tab was signed out before the answer came.
        for (const [i, at] of heardAt.entries()) {
          assert.ok(at && at < rotatedAt + variant.late, `tab ${i} heard signedOut ${at && at - rotatedAt} ms after the rotation, before the answer (${variant.late} ms)`);
        }
        // B revoked the refresh token it knew; A, once its answer came, the one it had been given.
        assert.equal(counters.revocation.byHint.refresh_token, 2, `A revoked the late answer's refresh token: ${JSON.stringify(counters.revocation)}`);
      }
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

test("the server rotates and answers without an access token: A's call fails with malformed_token_response, but the new refresh token is stored; B refreshes with it; nothing lost", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [a, b] = await signedInTabs(context, idp, {}, { more: 1, ttl: SHORT_TTL });
    const stored = await rawRecord(a, idp);
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(NEXT_TTL);
    idp.resetCounters();
    idp.setTokenFaults({ next: [{ kind: "strip_access_token" }] });

    const refused = await within(call(a, idp.whoamiUrl), 30_000, "A's call");
    assert.equal(refused.code, "malformed_token_response", `A's call: ${JSON.stringify(refused)}`);
    assert.equal(rotations(), 1, "the server rotated");
    assert.equal(idp.counters().token.faultsInjected, 1);
    assert.notEqual(await rawRecord(a, idp), stored, "the rotation was stored");
    assert.equal(await isAuthenticated(a), true);

    // B's token expired too: its refresh presents the refresh token A stored.
    const bOut = await within(call(b, idp.whoamiUrl), 30_000, "B's call");
    const deliveredAt = Date.now();
    assert.equal(bOut.status, 200, `B's call: ${JSON.stringify(bOut)}`);
    assert.equal(refreshGrants(), 2, "one more refresh");
    assertNothingLost(idp, "after the refused answer");
    const aOut = await within(call(a, idp.whoamiUrl), 30_000, "A's next call");
    assert.equal(aOut.status, 200, `A's next call: ${JSON.stringify(aOut)}`);
    assert.equal(refreshGrants(), 2, "A uses B's set");
    assert.equal(await accessToken(a), await accessToken(b));

    await nextExpiryWorks([a, b], deliveredAt, "after the refused answer");
    await noSignOut([a, b], "refused answer");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("disk full in tab A, then B refreshes from the newer set A broadcast, not the stale stored one; both tabs work", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [b] = await signedInTabs(context, idp, {}, { ttl: SHORT_TTL });
    const a = await openTab(context, idp, {}, { initScript: diskFull });
    const stored = await rawRecord(b, idp);
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(NEXT_TTL);
    idp.resetCounters();

    const first = await within(call(a, idp.whoamiUrl), 30_000, "A's call");
    let deliveredAt = Date.now();
    assert.equal(first.status, 200, `A's call: ${JSON.stringify(first)}`);
    const aEvents = await eventsOf(a);
    const aStorage = named(aEvents, "storage").map((e) => e.type);
    // One failed write per save: the refreshed set, and again once its ID token is verified.
    assert.ok(aStorage.length >= 1 && aStorage.every((type) => type === "write_failed"), JSON.stringify(aEvents));
    assert.equal(await rawRecord(b, idp), stored, "A's write failed: the store holds the set A rotated away");
    await until(async () => named(await eventsOf(b), "tokens").length > 0, 5_000, "B hearing A's tokens");
    assert.equal(await accessToken(b), await accessToken(a), "B adopted A's set from the broadcast");
    assert.equal(refreshGrants(), 1);

    // B's next refresh must present the refresh token B holds (A's), not the stored one.
    await untilExpired(deliveredAt);
    const bOut = await within(call(b, idp.whoamiUrl), 30_000, "B's call after the next expiry");
    deliveredAt = Date.now();
    assert.equal(bOut.status, 200, `B's call: ${JSON.stringify(bOut)}`);
    assert.equal(refreshGrants(), 2, "B refreshed once");
    assertNothingLost(idp, "B's refresh");
    assert.notEqual(await rawRecord(b, idp), stored, "B's write worked");
    const aOut = await within(call(a, idp.whoamiUrl), 30_000, "A's call after B's refresh");
    assert.equal(aOut.status, 200, `A's call: ${JSON.stringify(aOut)}`);
    assert.equal(refreshGrants(), 2, "A adopted B's set");
    assert.equal(await accessToken(a), await accessToken(b));

    await nextExpiryWorks([a, b], deliveredAt, "after the disk filled up");
    await noSignOut([a, b], "disk full");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// The re-login's tokens live long enough that no tab refreshes them before the checks: a refresh
// of the new session would hide which set won.
const RELOGIN_TTL = 15;

test("a re-login racing a refresh of the old session: the newer login is what ends up stored and used in every tab", BOUNDED, async (t) => {
  const { context, errors } = await freshContext(browser);
  try {
    const known = new Set(idp.liveGrants());
    const [a, b] = await signedInTabs(context, idp, {}, { ttl: SHORT_TTL, more: 1 });
    const oldGrants = idp.liveGrants().filter((g) => !known.has(g));
    assert.equal(oldGrants.length, 1, "one login, one grant");
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(NEXT_TTL);
    idp.resetCounters();
    // Only A's refresh is late; the re-login's code exchange is not.
    idp.setTokenFaults({ next: [{ kind: "late_response", ms: LATE_MS }] });

    const aCall = call(a, idp.whoamiUrl);
    await until(() => rotations() === 1, 5_000, "the server's rotation of the old session");
    const rotatedAt = Date.now();
    idp.setAccessTokenTtl(RELOGIN_TTL);
    // A fresh login (no IdP session cookie left, so a new grant) in a third tab.
    await context.clearCookies();
    const c = await within(loginTab(context, idp), 30_000, "the re-login");
    const loggedInAt = Date.now();
    const newGrants = idp.liveGrants().filter((g) => !known.has(g) && g !== oldGrants[0]);
    assert.equal(newGrants.length, 1, "the re-login made its own grant");
    const aOut = await within(aCall, 30_000, "A's call");
    assert.notEqual(aOut.code, "session_expired", JSON.stringify(aOut));
    await sleep(Math.max(0, rotatedAt + LATE_MS + 500 - Date.now()));

    const tabs = [a, b, c];
    const reloaded = await openTab(context, idp);
    const inUse = [];
    for (const tab of [...tabs, reloaded]) inUse.push((await grantOf(idp, await accessToken(tab))) === newGrants[0] ? "new" : "old");
    t.diagnostic(
      `re-login done ${loggedInAt - rotatedAt} ms after the rotation (old session's answer due at ${LATE_MS} ms); A's call: ${JSON.stringify(aOut)}; tabs A, B, C and a reloaded tab use the ${inUse.join(", ")} login`,
    );
    assert.equal(refreshGrants(), 1, "only A's refresh so far: nothing else replaced a set");
    for (const [i, tab] of tabs.entries()) {
      assert.equal(inUse[i], "new", `tab ${i} uses the newer login (events: ${JSON.stringify(await eventsOf(tab))})`);
      const out = await call(tab, idp.whoamiUrl);
      assert.equal(out.status, 200, `tab ${i}: ${JSON.stringify(out)}`);
    }
    assert.equal(inUse[3], "new", "the store holds the newer login");
    // latchkey may revoke the old session's rotated tokens (which revokes its grant); the newer
    // login's grant must live, and nothing may be revoked for reuse.
    t.diagnostic(`old session's grant ${idp.liveGrants().includes(oldGrants[0]) ? "still live" : "revoked"}`);
    assertNothingLost(idp, "re-login", { revocations: 1 });
    assert.ok(idp.liveGrants().includes(newGrants[0]), "the newer login's grant lives");

    await nextExpiryWorks([...tabs, reloaded], loggedInAt, "after the re-login", { ttl: RELOGIN_TTL, revocations: 1 });
    assert.equal(await grantOf(idp, await accessToken(a)), newGrants[0], "still the newer login after the next expiry");
    await noSignOut(tabs, "re-login");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
