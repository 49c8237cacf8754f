// Cold start: a page load with a session already stored goes straight to the first authorized
// request. The page (bench/harness/common.js, `?cold=<storage>`) records, in ms since
// navigation start: when its module started, when the client was created (create called /
// resolved), and the Resource Timing startTime of the first authorized request; the page says it
// is done with a console message, so nothing is evaluated in it until then. Static files are
// revalidated (ETag, 304) on every load, as for a returning visitor.
//
// Every case (library × storage × preload link) signs in once in a tab of its own; then one
// warm-up load per case, and `runs` rounds of one load per case, the order rotating each round,
// so that a drift in the machine's load falls on every library alike (as in the storms). After
// each load the tab goes to about:blank: an idle case's page does no work during another's.
import { signIn } from "./session.mjs";
import { median } from "./stats.mjs";
import { COLD_DONE } from "../harness/cold-done.js";

/** One measured load of `page`; throws when the page reports an error. */
async function load(env, { lib, storage, preload }, page, i) {
  // Waits for the page's console message, not with waitForFunction: polling injects
  // Playwright's script into the page during the load being measured.
  const done = page.waitForEvent("console", { predicate: (m) => m.text() === COLD_DONE, timeout: 15_000 });
  await page.goto(`${env.pages[lib].origin}/?cold=${storage}${preload ? "" : "&preload=0"}`);
  await done;
  const r = await page.evaluate(() => window.coldResult);
  // Leaves the page, so that nothing it does afterwards (latchkey revalidates its kept metadata
  // 2 s after create(), the baselines run their timers) lands in another case's measured load.
  await page.goto("about:blank");
  if (r.error || r.status !== 200 || r.requestSent == null) throw new Error(`cold load ${i}: ${JSON.stringify(r)}`);
  return r;
}

function summary(runs, preload, samples, grants) {
  const pick = (f) => median(samples.map(f));
  return {
    runs,
    preload,
    navToCreateDoneMs: pick((s) => s.createDone),
    createMs: pick((s) => s.createDone - s.createStart),
    createDoneToSentMs: pick((s) => s.requestSent - s.createDone),
    createToSentMs: pick((s) => s.requestSent - s.createStart),
    navToSentMs: pick((s) => s.requestSent),
    wasmMs: samples.every((s) => s.wasmReady != null) ? pick((s) => s.wasmReady - s.createStart) : null,
    refreshesDuring: grants,
    samples,
  };
}

/**
 * Measures every case of `cases` ({ lib, storage, preload }) with `runs` loads each,
 * interleaved. Resolves with one result per case, in the order given: the summary, or
 * { error } for a case that could not sign in or whose page failed (the others go on).
 * `refreshesDuring` is the refresh grants the IdP saw during the whole section (tokens live
 * an hour: it should be 0).
 */
export async function coldStarts(env, cases, { runs }) {
  const { idp, browser } = env;
  idp.setAccessTokenTtl(3600);
  idp.setAdvertisedExpiresIn(null);
  idp.setMode("rfc6750");
  const state = cases.map((c) => ({ ...c, context: null, page: null, samples: [], error: null }));
  const fail = (s, err) => {
    s.error = String(err?.message ?? err).split("\n")[0];
  };
  try {
    for (const s of state) {
      try {
        s.context = await browser.newContext();
        s.page = await signIn(env, s.lib, s.context, { mode: "rfc6750", storage: s.storage });
        await load(env, s, s.page, 0);
      } catch (err) {
        fail(s, err);
      }
    }
    for (let round = 1; round <= runs; round += 1) {
      for (let k = 0; k < state.length; k += 1) {
        const s = state[(round + k) % state.length];
        if (s.error) continue;
        try {
          s.samples.push(await load(env, s, s.page, round));
        } catch (err) {
          fail(s, err);
        }
      }
    }
    const grants = idp.counters().token.byGrantType.refresh_token ?? 0;
    return state.map((s) => (s.error ? { error: s.error } : summary(runs, s.preload, s.samples, grants)));
  } finally {
    for (const s of state) await s.context?.close().catch(() => {});
    idp.resetCounters();
  }
}
