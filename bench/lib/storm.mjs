// Storm: M tabs of one browser context (shared storage, Web Locks, BroadcastChannel) fire N
// concurrent authorized calls each at one wall-clock instant just after the access token
// expired; then, after the next expiry, a second smaller round shows which tabs still work.
//
// The same procedure as tests/e2e/storm.test.mjs's reactive cases: the IdP claims tokens live
// an hour (advertisedExpiresIn) but really expires them after a few seconds, so the only signal
// is the API's answer — 401 invalid_token (RFC 6750) or 400 {"error":"ExpiredToken"}
// (Bluesky) — and every library meets the expiry the same way. (A truthful short lifetime would
// not be comparable: auth0-spa-js treats any token within 60 s of its expiry as expired.)
// latchkey runs with refreshLeewaySeconds: 0 as in the e2e reactive cases; the baselines keep
// their defaults.
//
// DPoP (latchkey only, `dpop: true`): the session is bound to a DPoP key (client `spa-dpop`,
// PAR), every call carries a freshly signed proof, and — as in tests/e2e/dpop-storm.test.mjs's
// second round — both the authorization server's and the API's nonces are rotated just before
// each burst, so every tab starts it with stale nonces: the refresh is refused
// `use_dpop_nonce` once and resent, and each call meets the API's new nonce (one more round
// trip per call at most). "Refresh grants" are then the grants carried out (the refused request
// is counted apart), and the API's nonce refusals, proof refusals and replays are recorded.

import { sleep } from "../../tests/e2e/support/session.mjs";

import { openClientTab, signIn } from "./session.mjs";

// Lifetime (s) of the login's access token.
const LOGIN_TTL = 4;
// A round starts this long after the expiry it is about.
const MARGIN_MS = 400;
// Node sets the instant every tab fires at this far ahead, so all tabs are waiting for it.
const LEAD_MS = 300;
// A round that has not settled by then counts every unsettled call as failed.
const ROUND_TIMEOUT_MS = 90_000;

const NEVER = Symbol("timeout");

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms, NEVER)))]).finally(() => clearTimeout(timer));
}

async function round(env, tabs, perTab, notBefore, { dpop = false } = {}) {
  await sleep(Math.max(0, notBefore - Date.now()));
  env.idp.resetCounters();
  if (dpop) {
    env.idp.rotateAuthorizationServerNonce();
    env.idp.rotateApiNonce();
  }
  const reusedBefore = env.adapter.stats.reusedRefreshTokens;
  const startAt = Date.now() + LEAD_MS;
  const results = await Promise.all(
    tabs.map(async (tab) => {
      const r = await withTimeout(
        tab.evaluate(([url, count, at]) => window.bench.burstAt(url, count, at), [env.idp.whoamiUrl, perTab, startAt]).catch((e) => ({
          statuses: Array(perTab).fill(`error:evaluate ${e.message.split("\n")[0]}`),
          exp: 0,
          lastAt: Date.now(),
        })),
        ROUND_TIMEOUT_MS,
      );
      return r === NEVER ? { statuses: Array(perTab).fill("error:timeout"), exp: 0, lastAt: Date.now() } : r;
    }),
  );
  // Let stragglers (a refresh answered after its caller gave up) reach the counters.
  await sleep(100);
  const counters = env.idp.counters();
  const statuses = results.map((r) => r.statuses);
  const failed = statuses.flat().filter((s) => s !== 200);
  const dpopFigures = dpop
    ? {
        // refresh_token requests refused for their nonce (not carried out, resent)
        tokenNonceRefusals: counters.token.errorsByCode.use_dpop_nonce ?? 0,
        refreshRequests: counters.token.byGrantType.refresh_token ?? 0,
        apiNonceRefusals: counters.dpop.apiNonceRefusals,
        apiProofRefusals: counters.dpop.apiProofRefusals,
        apiReplays: counters.dpop.apiReplays,
        apiAccepted: counters.dpop.apiAccepted,
      }
    : {};
  const tokenErrors = { ...counters.token.errorsByCode };
  // With DPoP the one use_dpop_nonce refusal of the refresh is expected: not an error.
  if (dpop) delete tokenErrors.use_dpop_nonce;
  return {
    durationMs: Math.max(...results.map((r) => r.lastAt)) - startAt,
    // Bearer: refresh_token requests (each is a grant unless refused); DPoP: grants carried out.
    refreshGrants: dpop ? (counters.token.succeeded.refresh_token ?? 0) : (counters.token.byGrantType.refresh_token ?? 0),
    invalidGrant: counters.token.errorsByCode.invalid_grant ?? 0,
    tokenErrors,
    ...dpopFigures,
    apiByStatus: counters.api.byStatus,
    calls: statuses.flat().length,
    failedCalls: failed.length,
    failureKinds: tally(failed),
    tabsWorking: statuses.filter((list) => list.every((s) => s === 200)).length,
    maxExp: Math.max(0, ...results.map((r) => r.exp)),
    // auth0-spa-js only (its token requests pass the bench's façade): requests that presented
    // an already used refresh token.
    auth0ReusedRefreshTokens: env.adapter.stats.reusedRefreshTokens - reusedBefore,
  };
}

function tally(values) {
  const out = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/**
 * One repetition: fresh context, sign in, open the other tabs, round 1 after the login token's
 * expiry, round 2 after the expiry of the newest token round 1 obtained.
 */
export async function stormRep(env, { lib, mode, dpop = false, tabs: tabCount, calls, ttl, secondRoundCalls }) {
  const { idp, browser } = env;
  idp.setMode(mode);
  idp.setAccessTokenTtl(LOGIN_TTL);
  idp.setAdvertisedExpiresIn(3600);
  idp.setTokenFaults({});
  idp.resetCounters();
  const context = await browser.newContext();
  const pageErrors = [];
  context.on("page", (page) => page.on("pageerror", (e) => pageErrors.push(e.message)));
  try {
    const opts = { mode };
    if (lib === "latchkey") opts.refreshLeewaySeconds = 0;
    if (dpop) opts.dpop = true;
    const first = await signIn(env, lib, context, opts);
    const loggedInAt = Date.now();
    const tabs = [first];
    for (let i = 1; i < tabCount; i += 1) tabs.push(await openClientTab(env, lib, context, opts));
    const setup = idp.counters().token.byGrantType;
    // Tokens from the storm's refreshes live `ttl` seconds: long enough to outlast the storm.
    idp.setAccessTokenTtl(ttl);

    const round1 = await round(env, tabs, calls, loggedInAt + LOGIN_TTL * 1000 + MARGIN_MS, { dpop });
    // Round 2 after the newest token round 1 obtained has expired too (or, when round 1 got
    // none, after the lifetime one would have had).
    const nextExpiry = round1.maxExp ? round1.maxExp * 1000 : Date.now() + ttl * 1000;
    const round2 = await round(env, tabs, secondRoundCalls, nextExpiry + MARGIN_MS, { dpop });
    return {
      setupRefreshGrants: setup.refresh_token ?? 0,
      round1,
      round2,
      pageErrors: pageErrors.slice(0, 5),
    };
  } catch (err) {
    return { error: String(err?.message ?? err).split("\n")[0] };
  } finally {
    await context.close().catch(() => {});
    idp.setMode("rfc6750");
    idp.setAccessTokenTtl(3600);
    idp.setAdvertisedExpiresIn(null);
    idp.resetCounters();
  }
}
