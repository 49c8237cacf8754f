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
// their defaults. This is the "reactive" storm (stormRep); the "proactive" one (proactiveRep, at
// the end of this file) gives each library a truthful lifetime compensated for its own leeway.
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

// `reset: false` (proactive storms) keeps the IdP's counters running from wherever the caller
// reset them, so refreshes a library starts on its own clock before the burst are counted too.
async function round(env, tabs, perTab, notBefore, { dpop = false, reset = true } = {}) {
  await sleep(Math.max(0, notBefore - Date.now()));
  if (reset) env.idp.resetCounters();
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
    // The burst instant (ms since the epoch).
    burstAt: startAt,
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

// --- The proactive storm: lifetimes compensated for each library's leeway ----------------------
//
// Here the IdP tells the truth (advertised expires_in = the real lifetime) and each library
// refreshes before expiry on its own clock, with the leeway its recommended configuration gives
// it. A library with leeway L considers a token expiring L before its end, so it is issued
// tokens that live T + L: every library then considers its token expiring T after issue, and the
// server still accepts the old token until T + L. The burst fires just after T; a library that
// refreshes proactively meets no "expired" answer from the API.
//
//   auth0-spa-js    getTokenSilently() treats a cached token within 60 s of its expiry as
//                   expired (fixed: cache-manager get(key, 60)); in whole seconds.
//                   Lifetime T + 60.
//   oidc-client-ts  automaticSilentRenew (default true) calls signinSilent() from a timer
//                   accessTokenExpiringNotificationTimeInSeconds (default 60) before the
//                   expiry, in every tab that has a UserManager, whether or not the app is
//                   making calls; its timers count whole seconds and look every min(left, 5) s.
//                   The harness's call() itself renews only when user.expired (no leeway) or
//                   when the API says expired. Lifetime T + 60.
//   latchkey        refreshLeewaySeconds at its default, 30 (+ a per-tab jitter of up to 5 s),
//                   never more than half the token's lifetime (documented). With T ≤ 30 the
//                   half-lifetime cap is what applies: a 2T-second token is stale exactly T
//                   after issue in every tab, jitter or not, so its leeway is T. (A T + 30
//                   token would be capped at (T + 30) / 2 and refreshed well after T.)
//                   Lifetime 2T.
//
// Counting: the IdP's counters run from the end of the setup (the last tab opened) to the end of
// round 1, then from there to the end of round 2, so a refresh a library starts by itself before
// the burst (oidc-client-ts's timers) is counted with the round it prepares. The refresh grants'
// times come from oidc-provider's grant.success events.

/** Effective lifetime (s) of the login's access token in the proactive storm. */
export const PROACTIVE_T = 5;
// oidc-client-ts's expiring timer looks every min(time left, 5) s, so its renewal comes at the
// first look at or after T: with more than 5 s left, on a 5-second grid from when the tab
// loaded the token. The proactive storm's effective lifetimes are multiples of 5 s (PROACTIVE_T,
// and round 1's tokens: the reactive storm's `ttl` rounded up), so that grid falls on T.
const TIMER_GRID_S = 5;
// The baselines count whole seconds (auth0-spa-js: floor(now) > floor(saved) + T; oidc-client-ts
// timers: floor(now) ≥ floor(loaded) + …), so their "expiring" can come up to 1 s off T
// (auth0-spa-js's after it, oidc-client-ts's timers before it): the burst waits that second.
const WHOLE_SECOND_MS = 1000;

/**
 * The leeway (s) that `lib`'s recommended configuration applies to a token that is to be
 * considered expiring `t` seconds after issue, and why.
 */
export function proactiveLeeway(lib, t) {
  switch (lib) {
    case "auth0":
      return { seconds: 60, rule: "getTokenSilently: 60 s, fixed" };
    case "oidc":
      return { seconds: 60, rule: "automaticSilentRenew: accessTokenExpiringNotificationTimeInSeconds, default 60 s" };
    case "latchkey":
      if (t > 30) throw new RangeError("latchkey's compensation assumes T ≤ 30 s (its default 30 s leeway capped at half the lifetime)");
      return { seconds: t, rule: "refreshLeewaySeconds default 30 s (+ ≤ 5 s jitter), capped at half the lifetime" };
    default:
      throw new RangeError(`no leeway known for ${lib}`);
  }
}

const lifetimeFor = (lib, t) => t + proactiveLeeway(lib, t).seconds;

/**
 * One proactive repetition: fresh context, sign in with a token living T + leeway, open the
 * other tabs, round 1 just after T (and after the baselines' whole second), round 2 just after
 * the effective expiry of the newest token round 1 obtained (effective lifetime `ttl` rounded up
 * to 5 s, lifetime that + leeway).
 */
export async function proactiveRep(env, { lib, tabs: tabCount, calls, ttl: reactiveTtl, secondRoundCalls }) {
  const { idp, browser } = env;
  const t = PROACTIVE_T;
  const ttl = Math.ceil(reactiveTtl / TIMER_GRID_S) * TIMER_GRID_S;
  const loginLifetime = lifetimeFor(lib, t);
  const stormLifetime = lifetimeFor(lib, ttl);
  idp.setMode("rfc6750");
  idp.setAdvertisedExpiresIn(null);
  idp.setAccessTokenTtl(loginLifetime);
  idp.setTokenFaults({});
  idp.resetCounters();
  // oidc-provider's events, timed: grants carried out, token requests refused (error code), and
  // grants revoked (a used refresh token presented again revokes the whole grant).
  const grants = [];
  const onGrant = (ctx) => grants.push({ type: ctx.oidc?.params?.grant_type ?? "(none)", at: Date.now() });
  const onGrantError = (ctx, err) => grants.push({ type: `error:${ctx.oidc?.params?.grant_type ?? "(none)"}`, error: err?.error ?? String(err), at: Date.now() });
  const onRevoked = () => grants.push({ type: "revoked", at: Date.now() });
  idp.provider.on("grant.success", onGrant);
  idp.provider.on("grant.error", onGrantError);
  idp.provider.on("grant.revoked", onRevoked);
  const context = await browser.newContext();
  const pageErrors = [];
  context.on("page", (page) => page.on("pageerror", (e) => pageErrors.push(e.message)));
  // Events of `type` in [from, to), as ms after `base`.
  const eventsIn = (type, from, to, base) => grants.filter((g) => g.type === type && g.at >= from && g.at < to).map((g) => g.at - base);
  const refreshesIn = (from, to, base) => eventsIn("refresh_token", from, to, base);
  try {
    // Every library with its defaults (latchkey: no refreshLeewaySeconds, i.e. 30 s).
    const opts = { mode: "rfc6750" };
    const first = await signIn(env, lib, context, opts);
    const issuedAt = grants.filter((g) => g.type === "authorization_code").at(-1)?.at ?? Date.now();
    const tabs = [first];
    for (let i = 1; i < tabCount; i += 1) tabs.push(await openClientTab(env, lib, context, opts));
    const setup = idp.counters().token.byGrantType;
    const setupDoneAt = Date.now();
    idp.setAccessTokenTtl(stormLifetime);
    idp.resetCounters();

    const round1 = await round(env, tabs, calls, issuedAt + t * 1000 + WHOLE_SECOND_MS + MARGIN_MS, { reset: false });
    const round1End = Date.now();
    idp.resetCounters();
    const r1Refreshes = refreshesIn(setupDoneAt, round1End, issuedAt);
    const r1Events = { failedAt: eventsIn("error:refresh_token", setupDoneAt, round1End, issuedAt), revokedAt: eventsIn("revoked", setupDoneAt, round1End, issuedAt) };
    // Round 2 just after the effective expiry of the newest token round 1 obtained (or, when it
    // got none, of the one it would have had).
    const newest = r1Refreshes.length ? issuedAt + Math.max(...r1Refreshes) : round1End;
    const round2 = await round(env, tabs, secondRoundCalls, newest + ttl * 1000 + WHOLE_SECOND_MS + MARGIN_MS, { reset: false });
    const round2End = Date.now();
    const r2Refreshes = refreshesIn(round1End, round2End, newest);
    const r2Events = { failedAt: eventsIn("error:refresh_token", round1End, round2End, newest), revokedAt: eventsIn("revoked", round1End, round2End, newest) };
    const timing = (r, refreshes, events, base, lifetime, effective) => ({
      ...r,
      // Refresh grants as ms after the issue of the token they replace; how many of them came
      // before the burst; the API's "expired" answers (a library that refreshed in time meets none).
      refreshAtMs: refreshes,
      refreshesBeforeBurst: refreshes.filter((ms) => base + ms < r.burstAt).length,
      // Refresh requests refused (any error) and grants revoked, ms after the same issue, and
      // how many of the refusals came before the burst.
      refreshFailedAtMs: events.failedAt,
      refreshFailedBeforeBurst: events.failedAt.filter((ms) => base + ms < r.burstAt).length,
      grantRevokedAtMs: events.revokedAt,
      apiExpiredAnswers: r.apiByStatus["401"] ?? 0,
      burstAfterIssueMs: r.burstAt - base,
      effectiveExpiryMs: effective * 1000,
      serverExpiryMs: lifetime * 1000,
    });
    return {
      setupRefreshGrants: setup.refresh_token ?? 0,
      // When the last tab was open, ms after the login's token was issued (after T: a library
      // with a background timer may have refreshed during the setup, which round 1 does not count).
      setupDoneAfterIssueMs: setupDoneAt - issuedAt,
      lifetimes: { t, ttl, login: loginLifetime, storm: stormLifetime, rule: proactiveLeeway(lib, t).rule },
      round1: timing(round1, r1Refreshes, r1Events, issuedAt, loginLifetime, t),
      round2: timing(round2, r2Refreshes, r2Events, newest, stormLifetime, ttl),
      pageErrors: pageErrors.slice(0, 5),
    };
  } catch (err) {
    return { error: String(err?.message ?? err).split("\n")[0] };
  } finally {
    idp.provider.off("grant.success", onGrant);
    idp.provider.off("grant.error", onGrantError);
    idp.provider.off("grant.revoked", onRevoked);
    await context.close().catch(() => {});
    idp.setMode("rfc6750");
    idp.setAccessTokenTtl(3600);
    idp.setAdvertisedExpiresIn(null);
    idp.resetCounters();
  }
}
