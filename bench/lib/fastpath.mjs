// Fast path: with a valid token, batches of K sequential authorized calls against batches of K
// sequential plain fetch() calls carrying the same bearer token, alternating (which of a pair
// goes first alternates too), to the page origin's /ping (same origin, so no CORS preflight;
// it answers at once without looking at the token). The overhead per call is the median over
// batch pairs of (authorized − plain), per call, with a 95 % distribution-free interval for it.
//
// DPoP (latchkey only, `dpop: true`): the session is bound to a DPoP key, so every authorized
// call also builds and signs a proof (ES256 with the session's non-extractable WebCrypto key,
// `ath` = SHA-256 of the token) and sends `Authorization: DPoP` + `DPoP`; the plain fetch is
// the same as for Bearer. /ping gives no DPoP nonce, so no call is resent.
import { signIn } from "./session.mjs";
import { median, medianInterval, min } from "./stats.mjs";

function summarise(r, perBatch, batches) {
  const diffs = r.authUs.map((a, i) => a - r.plainUs[i]);
  return {
    perBatch,
    batches,
    plainUs: r.plainUs,
    authUs: r.authUs,
    medianPlainUs: median(r.plainUs),
    medianAuthUs: median(r.authUs),
    overheadUs: median(diffs),
    // How far the median over batch pairs can be trusted: pairs differ by more than the
    // target on a busy machine, so the verdict is judged on this interval, not the median.
    overheadInterval: medianInterval(diffs),
    // The quietest batch of each kind: on a busy machine the least disturbed estimate.
    bestOverheadUs: min(r.authUs) - min(r.plainUs),
    ratio: median(r.authUs) / median(r.plainUs),
  };
}

/**
 * Both measurements for one library: over the loopback endpoint, and with window.fetch
 * stubbed in the page (no network at all), which leaves only the library's own work per call
 * and is far less exposed to a busy machine's noise.
 */
export async function fastPath(env, lib, { perBatch, batches }, { dpop = false } = {}) {
  const { idp, browser } = env;
  idp.setAccessTokenTtl(3600);
  idp.setAdvertisedExpiresIn(null);
  idp.setMode("rfc6750");
  const context = await browser.newContext();
  try {
    const page = await signIn(env, lib, context, { mode: "rfc6750", dpop });
    const url = `${env.pages[lib].origin}/ping`;
    if (dpop) {
      // The IdP's API checks the proof for real: make sure the calls measured are DPoP calls.
      const probe = await page.evaluate((whoami) => window.auth.fetchWithAuth(whoami).then(async (r) => ({ status: r.status, body: await r.json() })), idp.whoamiUrl);
      if (probe.status !== 200 || probe.body.dpop !== true) throw new Error(`DPoP probe: ${JSON.stringify(probe)}`);
    }
    const grantsBefore = idp.counters().token.byGrantType.refresh_token ?? 0;
    const run = (stub, n) => page.evaluate(([url, k, n, stub]) => window.bench.fastPath(url, k, n, { stub }), [url, perBatch, n, stub]);
    const loopback = summarise(await run(false, batches), perBatch, batches);
    // Stubbed calls cost microseconds, so more pairs are cheap and steady the median.
    const stubBatches = Math.max(30, batches * 4);
    const stubbed = summarise(await run(true, stubBatches), perBatch, stubBatches);
    const grantsAfter = idp.counters().token.byGrantType.refresh_token ?? 0;
    return { ...loopback, stubbed, refreshesDuring: grantsAfter - grantsBefore };
  } catch (err) {
    return { error: String(err?.message ?? err).split("\n")[0] };
  } finally {
    await context.close().catch(() => {});
    idp.resetCounters();
  }
}
