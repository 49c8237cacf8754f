// Refresh storms: many tabs of one browser context (shared IndexedDB or
// localStorage, Web Locks, BroadcastChannel) fire fetchWithAuth at once just
// after the access token expired. Across all tabs the authorization server
// must see exactly one refresh_token grant (no reuse, so no invalid_grant),
// every call must end 200, and the session must survive the next expiry too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { startIdp } from "../idp/server.mjs";
import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { requireStagedApp } from "./support/project.mjs";
import { loginTab, openTab, sleep } from "./support/session.mjs";
import { burstAt, assertOneSetPerTab } from "./support/storm.mjs";

// The IdP's state between tests; every test restores it in `finally`.
const BASELINE = { mode: "rfc6750", accessTokenTtl: 3600, advertisedExpiresIn: null };
// Calls per tab in the second round (after the next expiry).
const SECOND_ROUND_CALLS = 5;
// Lifetime (seconds) of the login's access token.
const LOGIN_TTL = 4;
// Past an expiry by this much before a round starts.
const MARGIN_MS = 400;

let idp;
let browser;

before(async () => {
  idp = await startIdp({
    serveSpa: { root: requireStagedApp() },
    mode: BASELINE.mode,
    accessTokenTtl: BASELINE.accessTokenTtl,
    advertisedExpiresIn: BASELINE.advertisedExpiresIn,
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await idp?.close();
});

function restoreIdp() {
  idp.setMode(BASELINE.mode);
  idp.setAccessTokenTtl(BASELINE.accessTokenTtl);
  idp.setAdvertisedExpiresIn(BASELINE.advertisedExpiresIn);
  idp.setTokenFaults({});
  idp.resetCounters();
}

// The 401 (rfc6750) or 400 ExpiredToken (bluesky) each call of a reactive
// round gets before its retry; none in a proactive round.
function expectedApiStatuses(kase, calls) {
  if (!kase.reactive) return { 200: calls };
  return { 200: calls, [kase.mode === "bluesky" ? 400 : 401]: calls };
}

// Fires one round of `perTab` calls in every tab once `notBefore` (ms since
// epoch) has passed and checks the server's counters, the statuses, and that
// every tab heard exactly one new set of tokens: "refresh" in one tab,
// "sync" in all others. Resolves with when (ms since epoch) the newest
// token a call used expires on the server.
async function stormRound(t, kase, tabs, round, perTab, notBefore) {
  const label = `round ${round}`;
  await sleep(Math.max(0, notBefore - Date.now()));
  idp.resetCounters();

  const startAt = Date.now() + 250;
  const results = await Promise.all(tabs.map((tab) => burstAt(tab, idp.whoamiUrl, perTab, startAt)));
  const elapsedMs = Date.now() - startAt;
  const statuses = results.map((r) => r.statuses);
  const expiresAt = Math.max(...results.map((r) => r.exp)) * 1000;
  t.diagnostic(`${label}: ${tabs.length} × ${perTab} calls took ${elapsedMs} ms`);

  const total = tabs.length * perTab;
  const counters = idp.counters();
  const dump = `${label} (${elapsedMs} ms): ${JSON.stringify(counters)}`;
  const bad = statuses.flatMap((list, i) => list.map((s) => [i, s])).filter(([, s]) => s !== 200);
  assert.deepEqual(bad, [], `${label}: every call ends 200 ([tab index, status]) — ${dump}`);
  assert.equal(statuses.flat().length, total);

  assert.equal(counters.token.byGrantType.refresh_token, 1, `${label}: exactly one refresh — ${dump}`);
  assert.equal(counters.token.byGrantType.authorization_code, 0, dump);
  assert.deepEqual(counters.token.errorsByCode, {}, `${label}: no token errors (no invalid_grant) — ${dump}`);
  assert.equal(counters.revocation.requests, 0, dump);
  assert.deepEqual(counters.api.byStatus, expectedApiStatuses(kase, total), `${label}: API statuses — ${dump}`);

  await assertOneSetPerTab(tabs, round, label);

  return expiresAt;
}

async function runStorm(t, kase) {
  const { tabs: tabCount, calls, ttl, mode, reactive, storage } = kase;
  idp.setMode(mode);
  idp.setAccessTokenTtl(LOGIN_TTL);
  // Reactive: the client believes the token lives an hour, so only the
  // server's 401 / 400 ExpiredToken can tell it to refresh.
  idp.setAdvertisedExpiresIn(reactive ? 3600 : null);
  idp.resetCounters();

  const context = await browser.newContext();
  const errors = [];
  context.on("page", (page) => errors.push(collectPageErrors(page)));
  try {
    const extra = { storage };
    if (reactive) extra.refreshLeewaySeconds = 0;
    if (mode === "bluesky") extra.isTokenExpired = "bluesky";

    const first = await loginTab(context, idp, extra);
    // The login's token was issued before this point.
    const loggedInAt = Date.now();
    const tabs = [first];
    for (let i = 1; i < tabCount; i += 1) tabs.push(await openTab(context, idp, extra));
    const setup = idp.counters();
    assert.equal(setup.token.byGrantType.authorization_code, 1);
    assert.equal(setup.token.byGrantType.refresh_token, 0, "no refresh while the tabs opened");
    assert.equal(
      await Promise.all(tabs.map((tab) => tab.evaluate(() => window.auth.storageKind))).then((k) => k.join()),
      tabs.map(() => storage).join(),
    );

    // Tokens from the refreshes live `ttl` seconds: long enough to outlast the storm.
    idp.setAccessTokenTtl(ttl);
    // Round 1: the login's token has expired on the server.
    const refreshedExpiresAt = await stormRound(t, kase, tabs, 1, calls, loggedInAt + LOGIN_TTL * 1000 + MARGIN_MS);
    // Round 2: the token from round 1's refresh has expired too.
    await stormRound(t, kase, tabs, 2, SECOND_ROUND_CALLS, refreshedExpiresAt + MARGIN_MS);

    const pageErrors = errors.flat().filter((e) => e.startsWith("pageerror:"));
    assert.deepEqual(pageErrors, []);
    // The only console errors allowed are the failed loads the reactive path
    // produces by design (the 401 / 400 before each retry).
    const unexpected = errors
      .flat()
      .filter((e) => !/^console: Failed to load resource: the server responded with a status of 40[01]\b/.test(e));
    assert.deepEqual(unexpected, []);
  } finally {
    await context.close();
    restoreIdp();
  }
}

// ttl: lifetime in seconds of the tokens the storms' refreshes issue (the
// login's lives LOGIN_TTL). Proactive cases keep the default leeway (30 s,
// capped at half the lifetime). A big storm takes seconds on two cores (800
// requests over six connections), so its fresh token gets a longer lifetime:
// it must neither expire nor enter its own leeway window before the last
// retry has gone out.
const CASES = [
  { tabs: 4, calls: 25, ttl: 4, mode: "rfc6750", reactive: false, storage: "indexeddb" },
  { tabs: 4, calls: 25, ttl: 4, mode: "rfc6750", reactive: true, storage: "indexeddb" },
  { tabs: 4, calls: 25, ttl: 4, mode: "bluesky", reactive: true, storage: "indexeddb" },
  { tabs: 8, calls: 50, ttl: 10, mode: "rfc6750", reactive: false, storage: "indexeddb" },
  { tabs: 8, calls: 50, ttl: 10, mode: "rfc6750", reactive: true, storage: "indexeddb" },
  { tabs: 8, calls: 50, ttl: 10, mode: "bluesky", reactive: true, storage: "indexeddb" },
  { tabs: 4, calls: 25, ttl: 4, mode: "rfc6750", reactive: false, storage: "localstorage" },
];

for (const kase of CASES) {
  const how = kase.reactive ? `reactive (${kase.mode === "bluesky" ? "400 ExpiredToken" : "401 invalid_token"})` : "proactive";
  const name = `${kase.tabs} tabs × ${kase.calls} calls, ${how}, ${kase.storage}: one refresh, all 200, twice`;
  test(name, { timeout: 60_000 }, (t) => runStorm(t, kase));
}
