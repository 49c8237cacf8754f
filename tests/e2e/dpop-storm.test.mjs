// Refresh storms with DPoP (RFC 9449): storm.test.mjs's procedure — many
// tabs of one browser context fire fetchWithAuth at once just after the
// access token expired — for a session bound to a DPoP key (client
// `spa-dpop`: PAR required, DPoP-bound tokens), while both servers change
// their nonces under the storm. Across all tabs the authorization server
// must carry out exactly one refresh grant (its one `use_dpop_nonce` refusal
// aside), no call may fail, no proof may be refused or replayed, and the
// session must survive the next expiry too.
//
// The nonces of each round:
// - the authorization server's is rotated just before the burst, so the
//   refresh's first token request carries a stale nonce (or none) and is
//   refused `use_dpop_nonce` once;
// - round 1: the API's is rotated at the very moment the server carries out
//   the refresh grant (oidc-provider's `grant.success`, in this process).
//   In the reactive cases that is mid-burst: the calls sent with the old
//   token and the nonce every tab knew (a warm-up call per tab made sure)
//   are in flight, some answered with the old nonce, some refused for it,
//   and the resends with the new token meet a stale nonce. In the proactive
//   cases no call has gone out yet (all wait for the refresh).
// - round 2: the API's is rotated just before the burst too, so every tab
//   starts the burst with a stale API nonce.
// Neither way can one request legitimately meet two rotations: a call may
// be refused for its nonce once per send, and resent once with the new one
// (a second refusal would be `dpop_nonce_failed`, a failed call here).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { startIdp } from "../idp/server.mjs";
import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { requireStagedApp } from "./support/project.mjs";
import { loginTab, openTab, sleep, within } from "./support/session.mjs";
import { burstAt, assertOneSetPerTab } from "./support/storm.mjs";

// The IdP's state between tests; every test restores it in `finally`.
const BASELINE = { mode: "rfc6750", accessTokenTtl: 3600, advertisedExpiresIn: null };
// Calls per tab in the second round (after the next expiry).
const SECOND_ROUND_CALLS = 5;
// Past an expiry by this much before a round starts.
const MARGIN_MS = 400;
// Node sets the instant every tab fires at this far ahead.
const LEAD_MS = 250;
// A burst that has not settled by then fails the test (bounded wait).
const BURST_TIMEOUT_MS = 45_000;
// Proactive cases: the client refreshes 1 s before its token's expiry, so a
// fresh token serves the whole burst without a second proactive refresh.
const PROACTIVE_LEEWAY_S = 1;

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

// Rotates the API's nonce once, synchronously, when oidc-provider carries
// out the next refresh_token grant (before its answer is written). `stop()`
// removes the hook and says when (ms since epoch) it rotated, or null.
function rotateApiNonceAtRefresh() {
  let rotatedAt = null;
  const onGrant = (ctx) => {
    if (rotatedAt !== null || ctx.oidc?.params?.grant_type !== "refresh_token") return;
    idp.rotateApiNonce();
    rotatedAt = Date.now();
  };
  idp.provider.on("grant.success", onGrant);
  return {
    stop() {
      idp.provider.off("grant.success", onGrant);
      return rotatedAt;
    },
  };
}

// One call per tab, in turn, while the token is valid: every tab then knows
// the API's current nonce (from its own answer, or another tab's broadcast).
async function warmUp(tabs) {
  const before = idp.counters();
  const statuses = [];
  for (const tab of tabs) {
    statuses.push(await tab.evaluate((url) => window.auth.fetchWithAuth(url).then((r) => r.status), idp.whoamiUrl));
  }
  return { statuses, before, after: idp.counters() };
}

// Fires one round of `perTab` calls in every tab once `notBefore` (ms since
// epoch) has passed, with the nonce rotations described at the top, and
// checks the servers' counters, the statuses and the tabs' events. Resolves
// with when (ms since epoch) the newest token a call used expires, and the
// key thumbprints the API named.
async function stormRound(t, kase, tabs, round, perTab, notBefore) {
  const label = `round ${round}`;
  await sleep(Math.max(0, notBefore - Date.now()));
  idp.resetCounters();

  idp.rotateAuthorizationServerNonce();
  const hook = round === 1 ? rotateApiNonceAtRefresh() : null;
  if (round !== 1) idp.rotateApiNonce();
  const startAt = Date.now() + LEAD_MS;
  let results;
  let rotatedAt = null;
  try {
    results = await within(
      Promise.all(tabs.map((tab) => burstAt(tab, idp.whoamiUrl, perTab, startAt))),
      BURST_TIMEOUT_MS,
      `${label}: the burst`,
    );
  } finally {
    rotatedAt = hook?.stop() ?? null;
  }
  const elapsedMs = Date.now() - startAt;
  const statuses = results.map((r) => r.statuses);
  const expiresAt = Math.max(...results.map((r) => r.exp)) * 1000;

  const total = tabs.length * perTab;
  const counters = idp.counters();
  const { dpop } = counters;
  const when = round === 1 ? `at the refresh, ${rotatedAt === null ? "never" : `${rotatedAt - startAt} ms into the burst`}` : "before the burst";
  t.diagnostic(
    `${label}: ${tabs.length} × ${perTab} calls took ${elapsedMs} ms; API nonce rotated ${when}: ` +
      `${dpop.apiNonceRefusals} API use_dpop_nonce refusals, ${dpop.asNonceRefusals} at the authorization server`,
  );

  const dump = `${label} (${elapsedMs} ms): ${JSON.stringify(counters)}`;
  const tally = {};
  for (const s of statuses.flat()) tally[s] = (tally[s] ?? 0) + 1;
  assert.deepEqual(tally, { 200: total }, `${label}: every call ends 200 (statuses tallied) — ${dump}`);
  assert.equal(statuses.flat().length, total);

  // One refresh grant carried out; the token endpoint also saw its first
  // request, refused for the stale nonce (and not carried out).
  assert.equal(counters.token.succeeded.refresh_token, 1, `${label}: exactly one refresh grant — ${dump}`);
  assert.deepEqual(counters.token.errorsByCode, { use_dpop_nonce: 1 }, `${label}: the only token error is one use_dpop_nonce — ${dump}`);
  assert.equal(counters.token.byGrantType.refresh_token, 2, `${label}: the refresh, sent twice (stale nonce, then the new one) — ${dump}`);
  assert.equal(counters.token.byGrantType.authorization_code, 0, dump);
  assert.equal(dpop.asNonceRefusals, 1, `${label}: the authorization server refused one nonce — ${dump}`);
  assert.equal(counters.grants.revoked, 0, `${label}: no grant revoked — ${dump}`);
  assert.equal(counters.revocation.requests, 0, dump);

  // The API: every proof valid (iat, htu, ath, signature) and never replayed
  // (jti unique), every call accepted as DPoP, with the session's one key.
  assert.equal(dpop.apiProofRefusals, 0, `${label}: no proof refused — ${dump}`);
  assert.equal(dpop.apiReplays, 0, `${label}: no proof replayed — ${dump}`);
  assert.equal(dpop.apiAccepted, total, `${label}: every call accepted as DPoP — ${dump}`);
  assert.equal(results.reduce((n, r) => n + r.dpop, 0), total, `${label}: every answer says dpop — ${dump}`);
  const jkts = [...new Set(results.flatMap((r) => r.jkts))];
  assert.equal(jkts.length, 1, `${label}: all tabs sign with one key — ${JSON.stringify(jkts)}`);
  // The calls did meet the rotated nonce, and only the nonce and (reactive)
  // the expired token were refused: one 401 invalid_token per call.
  assert.ok(dpop.apiNonceRefusals >= 1, `${label}: the API's rotated nonce was met — ${dump}`);
  const refusedTokens = kase.reactive ? total : 0;
  assert.deepEqual(counters.api.byStatus, { 200: total, 401: refusedTokens + dpop.apiNonceRefusals }, `${label}: API statuses — ${dump}`);
  if (round === 1) assert.ok(rotatedAt !== null, `${label}: the API nonce was rotated at the refresh`);

  await assertOneSetPerTab(tabs, round, label);
  return { expiresAt, jkts, apiNonceRefusals: dpop.apiNonceRefusals, elapsedMs };
}

async function runStorm(t, kase) {
  const { tabs: tabCount, calls, loginTtl, ttl, reactive } = kase;
  idp.setMode("rfc6750");
  idp.setAccessTokenTtl(loginTtl);
  // Reactive: the client believes the token lives an hour, so only the
  // API's 401 invalid_token can tell it to refresh.
  idp.setAdvertisedExpiresIn(reactive ? 3600 : null);
  idp.resetCounters();

  const context = await browser.newContext();
  const errors = [];
  context.on("page", (page) => errors.push(collectPageErrors(page)));
  try {
    const extra = {
      clientId: idp.dpopClientId,
      dpop: true,
      par: true,
      refreshLeewaySeconds: reactive ? 0 : PROACTIVE_LEEWAY_S,
    };
    const first = await loginTab(context, idp, extra);
    // The login's token was issued before this point.
    const loggedInAt = Date.now();
    // The other tabs open side by side (they only read the stored session):
    // half the time of one after the other.
    const others = await Promise.all(Array.from({ length: tabCount - 1 }, () => openTab(context, idp, extra)));
    const tabs = [first, ...others];
    const setup = idp.counters();
    assert.equal(setup.token.succeeded.authorization_code, 1);
    assert.equal(setup.token.byGrantType.refresh_token, 0, "no refresh while the tabs opened");

    if (reactive) {
      // Round 1 rotates the API's nonce mid-burst: every tab must start it
      // knowing the current one, or its first send would be refused before
      // the rotation and its resend might meet the rotation too.
      const warm = await warmUp(tabs);
      const took = `the tabs opened and warmed up ${Date.now() - loggedInAt} ms after the login, its token lived ${loginTtl} s`;
      assert.deepEqual(warm.statuses, tabs.map(() => 200), `warm-up calls (${took})`);
      assert.equal(warm.after.token.byGrantType.refresh_token, 0, `no refresh in the warm-up (${took})`);
      t.diagnostic(
        `setup: ${tabCount} tabs open and warmed up ${Date.now() - loggedInAt} ms after the login ` +
          `(${warm.after.dpop.apiNonceRefusals - warm.before.dpop.apiNonceRefusals} API nonce refusals)`,
      );
    } else {
      t.diagnostic(`setup: ${tabCount} tabs open ${Date.now() - loggedInAt} ms after the login`);
    }

    // Tokens from the refreshes live `ttl` seconds: long enough to outlast the storm.
    idp.setAccessTokenTtl(ttl);
    // Round 1: the login's token has expired on the server (and, proactive, for the client).
    const r1 = await stormRound(t, kase, tabs, 1, calls, loggedInAt + loginTtl * 1000 + MARGIN_MS);
    // Round 2: the token from round 1's refresh has expired too.
    const r2 = await stormRound(t, kase, tabs, 2, SECOND_ROUND_CALLS, r1.expiresAt + MARGIN_MS);
    assert.deepEqual(r2.jkts, r1.jkts, "the refreshed session keeps its key");

    const pageErrors = errors.flat().filter((e) => e.startsWith("pageerror:"));
    assert.deepEqual(pageErrors, []);
    // The only console errors allowed are the failed loads DPoP and the
    // reactive path produce by design: the token endpoint's 400
    // use_dpop_nonce, the API's 401s (use_dpop_nonce, invalid_token).
    const unexpected = errors
      .flat()
      .filter((e) => !/^console: Failed to load resource: the server responded with a status of 40[01]\b/.test(e));
    assert.deepEqual(unexpected, []);
  } finally {
    await context.close();
    restoreIdp();
  }
}

// loginTtl: lifetime (s) of the login's access token: the tabs open (and,
// reactive, warm up) before it expires (8 tabs: 3–6 s at a load average of
// 7 on 2 cores). ttl: lifetime (s) of the tokens the storms' refreshes
// issue: the burst must end before it (minus the proactive leeway). At that
// load 4 × 25 took 3–4 s, 8 × 50 14 s (proactive) to 19 s (reactive, where
// each call is sent about three times: refused for the nonce, refused as
// expired, accepted). Round 2 waits for that expiry, so these lifetimes are
// most of the file's run time.
const CASES = [
  { tabs: 4, calls: 25, loginTtl: 3, ttl: 8, reactive: false },
  { tabs: 4, calls: 25, loginTtl: 5, ttl: 8, reactive: true },
  { tabs: 8, calls: 50, loginTtl: 5, ttl: 25, reactive: false },
  { tabs: 8, calls: 50, loginTtl: 8, ttl: 25, reactive: true },
];

for (const kase of CASES) {
  const how = kase.reactive ? "reactive (401 invalid_token)" : "proactive";
  const name = `DPoP: ${kase.tabs} tabs × ${kase.calls} calls, ${how}, both nonces rotated: one refresh, all 200, twice`;
  test(name, { timeout: 90_000 }, (t) => runStorm(t, kase));
}
