// Where a cold start's time goes: one latchkey cold load (bench/lib/coldstart.mjs's page, a
// stored session, straight to the first authorized request) recorded with Chrome's tracing,
// printed as a timeline around the measured window: network requests, scripts evaluated,
// and every main-thread slice of 0.3 ms or more, in ms since navigation start.
//
//   node bench/lib/trace-cold.mjs [indexeddb|localstorage] [--no-preload]
//
// A diagnostic, not a benchmark: one load, on whatever else the machine is doing.
import { join } from "node:path";

import { COLD_DONE } from "../harness/cold-done.js";
import { buildHarness } from "./build.mjs";
import { startEnv } from "./env.mjs";
import { signIn } from "./session.mjs";

const ROOT = join(import.meta.dirname, "../..");
const CATEGORIES = [
  "devtools.timeline",
  "disabled-by-default-devtools.timeline",
  "v8",
  "v8.wasm",
  "disabled-by-default-v8.compile",
  "IndexedDB",
  "loading",
  "blink.user_timing", // navigationStart, the timeline's zero
];
const storage = process.argv.slice(2).find((a) => !a.startsWith("--")) ?? "indexeddb";
const preload = !process.argv.includes("--no-preload");

const built = await buildHarness(join(ROOT, "bench"), join(ROOT, "dist/latchkey"));
const env = await startEnv(built);
try {
  env.idp.setAccessTokenTtl(3600);
  const context = await env.browser.newContext();
  const page = await signIn(env, "latchkey", context, { mode: "rfc6750", storage });
  const url = `${env.pages.latchkey.origin}/?cold=${storage}${preload ? "" : "&preload=0"}`;
  const load = async () => {
    const done = page.waitForEvent("console", { predicate: (m) => m.text() === COLD_DONE, timeout: 15_000 });
    await page.goto(url);
    await done;
  };
  for (let i = 0; i < 3; i += 1) await load(); // warm: HTTP cache, compiled code cache
  await env.browser.startTracing(page, { categories: CATEGORIES });
  await load();
  const result = await page.evaluate(() => window.coldResult);
  const events = JSON.parse((await env.browser.stopTracing()).toString()).traceEvents;
  console.log(JSON.stringify(result));
  const nav = events.find((e) => e.name === "navigationStart");
  const at = (e) => (e.ts - nav.ts) / 1000;
  const threads = new Map(events.filter((e) => e.name === "thread_name").map((e) => [`${e.pid}:${e.tid}`, e.args.name]));
  const from = result.moduleStart - 60;
  const to = result.requestSent + 2;
  const inWindow = (e) => at(e) >= from && at(e) <= to;
  for (const e of events.filter((e) => /^Resource(SendRequest|ReceiveResponse)$/.test(e.name) && inWindow(e))) {
    const data = e.args?.data ?? {};
    console.log(`${at(e).toFixed(1).padStart(7)} net  ${e.name} ${data.url ?? data.requestId} ${data.statusCode ?? ""}`);
  }
  const slices = events.filter((e) => e.ph === "X" && e.dur >= 300 && inWindow(e) && /CrRendererMain|ThreadPool/.test(threads.get(`${e.pid}:${e.tid}`) ?? ""));
  for (const e of slices.sort((a, b) => a.ts - b.ts)) {
    const thread = threads.get(`${e.pid}:${e.tid}`).slice(0, 20);
    const url = e.args?.data?.url ?? "";
    console.log(`${at(e).toFixed(1).padStart(7)} ${(e.dur / 1000).toFixed(2).padStart(6)} ${thread.padEnd(20)} ${e.name} ${url}`);
  }
} finally {
  await env.close();
}
