// Cold start: a page load with a session already stored goes straight to the first authorized
// request. The page (bench/harness/common.js, `?cold=<storage>`) records, in ms since
// navigation start: when its module started, when the client was created (create called /
// resolved), and the Resource Timing startTime of the first authorized request; the page says it
// is done with a console message, so nothing is evaluated in it until then. One warm-up
// load, then `runs` measured loads of the same tab. Static files are revalidated (ETag, 304)
// on every load, as for a returning visitor.
import { signIn } from "./session.mjs";
import { median } from "./stats.mjs";
import { COLD_DONE } from "../harness/cold-done.js";

export async function coldStart(env, lib, storage, { runs, preload = true }) {
  const { idp, browser } = env;
  idp.setAccessTokenTtl(3600);
  idp.setAdvertisedExpiresIn(null);
  idp.setMode("rfc6750");
  const context = await browser.newContext();
  try {
    const page = await signIn(env, lib, context, { mode: "rfc6750", storage });
    const samples = [];
    for (let i = 0; i <= runs; i += 1) {
      // Waits for the page's console message, not with waitForFunction: polling injects
      // Playwright's script into the page during the load being measured.
      const done = page.waitForEvent("console", { predicate: (m) => m.text() === COLD_DONE, timeout: 15_000 });
      await page.goto(`${env.pages[lib].origin}/?cold=${storage}${preload ? "" : "&preload=0"}`);
      await done;
      const r = await page.evaluate(() => window.coldResult);
      if (r.error || r.status !== 200 || r.requestSent == null) throw new Error(`cold load ${i}: ${JSON.stringify(r)}`);
      if (i > 0) samples.push(r);
    }
    const grants = idp.counters().token.byGrantType.refresh_token ?? 0;
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
  } catch (err) {
    return { error: String(err?.message ?? err).split("\n")[0] };
  } finally {
    await context.close().catch(() => {});
    idp.resetCounters();
  }
}
