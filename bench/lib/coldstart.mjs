// Cold start: a page load with a session already stored goes straight to the first authorized
// request. The page (bench/harness/common.js, `?cold=<storage>`) records, in ms since
// navigation start: when its module started, when the client was created (create called /
// resolved), and the Resource Timing startTime of the first authorized request. One warm-up
// load, then `runs` measured loads of the same tab. Static files are revalidated (ETag, 304)
// on every load, as for a returning visitor.
import { signIn } from "./session.mjs";
import { median } from "./stats.mjs";

export async function coldStart(env, lib, storage, { runs }) {
  const { idp, browser } = env;
  idp.setAccessTokenTtl(3600);
  idp.setAdvertisedExpiresIn(null);
  idp.setMode("rfc6750");
  const context = await browser.newContext();
  try {
    const page = await signIn(env, lib, context, { mode: "rfc6750", storage });
    const samples = [];
    for (let i = 0; i <= runs; i += 1) {
      await page.goto(`${env.pages[lib].origin}/?cold=${storage}`);
      await page.waitForFunction(() => window.coldResult, null, { timeout: 15_000 });
      const r = await page.evaluate(() => window.coldResult);
      if (r.error || r.status !== 200 || r.requestSent == null) throw new Error(`cold load ${i}: ${JSON.stringify(r)}`);
      if (i > 0) samples.push(r);
    }
    const grants = idp.counters().token.byGrantType.refresh_token ?? 0;
    const pick = (f) => median(samples.map(f));
    return {
      runs,
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
