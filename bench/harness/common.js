// Page-side measurement code shared by every library's harness page.
//
// A harness gives `installBench` an adapter with one shape for every library:
//   login()          starts the redirect login (the page navigates away)
//   completeLogin()  handles the redirect back (the page URL carries code, state, iss)
//   init({ mode, storage })  creates this tab's client
//   call(url)        an authorized GET the way the library's docs say an app makes one,
//                    including what the app does when the API says "expired"
//   accessToken()    the access token in use (for the plain-fetch comparison)
// and the page gets `window.bench`, which the node side drives.

import { COLD_DONE } from "./cold-done.js";

const config = window.BENCH_CONFIG;

/**
 * Whether an API response says "the access token expired", in the two styles the test API
 * speaks: RFC 6750 (401) and Bluesky XRPC (400 {"error":"ExpiredToken"}). The baselines' apps
 * use this; latchkey is given the equivalent predicate as its isTokenExpired option.
 */
export async function saysExpired(mode, response) {
  if (mode === "bluesky") {
    if (response.status !== 400) return false;
    const body = await response
      .clone()
      .json()
      .catch(() => ({}));
    return body.error === "ExpiredToken";
  }
  return response.status === 401;
}

// Cold start: this page load was asked to go straight from loading to the first authorized
// request (`?cold=<storage>`), with a session already stored. Marks are performance.now()
// values, i.e. milliseconds since navigation start; "sent" is the Resource Timing startTime of
// that request (when fetch() handed it to the network stack).
async function coldStart(adapter, storage) {
  const result = { moduleStart: performance.now() };
  try {
    result.createStart = performance.now();
    await adapter.init({ mode: "rfc6750", storage });
    result.createDone = performance.now();
    // Extra marks an adapter took inside init (latchkey: when its wasm module was ready).
    Object.assign(result, adapter.marks ?? {});
    const url = `${location.origin}/ping?cold=${Date.now()}-${Math.random()}`;
    const response = await adapter.call(url);
    result.responseDone = performance.now();
    result.status = response.status;
    // The Resource Timing entry is queued once the body has been read.
    await response.arrayBuffer();
    let entry;
    for (let i = 0; i < 50 && !entry; i += 1) {
      entry = performance.getEntriesByName(url, "resource")[0];
      if (!entry) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    result.requestSent = entry ? entry.startTime : null;
  } catch (e) {
    result.error = `${e?.code ?? e?.name ?? "Error"}: ${e?.message ?? e}`;
  }
  window.coldResult = result;
  // Tells the bench without it polling the page: Playwright's waitForFunction injects and
  // compiles its own script in the page (15-20 ms of main-thread work here), which would land
  // inside the window being measured.
  console.log(COLD_DONE);
}

export function installBench(adapter) {
  const bench = {
    lib: config.lib,
    config,
    ready: true,
    login: () => adapter.login(),
    completeLogin: () => adapter.completeLogin(),
    init: (options) => adapter.init(options),
    call: (url) => adapter.call(url),

    /**
     * Waits for the wall-clock instant `startAt` (ms since the epoch; every tab of the browser
     * shares the clock), then fires `count` concurrent authorized calls. Resolves with the
     * statuses ("error:<code>" for rejections), the newest `exp` the API reported, and when
     * (ms since the epoch) the last call of this tab settled.
     */
    async burstAt(url, count, startAt) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
      let exp = 0;
      let lastAt = 0;
      const one = async () => {
        let status;
        try {
          const response = await adapter.call(url);
          status = response.status;
          if (response.ok) exp = Math.max(exp, (await response.json()).exp ?? 0);
        } catch (e) {
          status = `error:${e?.code ?? e?.error ?? e?.name ?? "Error"}`;
        }
        lastAt = Math.max(lastAt, performance.timeOrigin + performance.now());
        return status;
      };
      const statuses = await Promise.all(Array.from({ length: count }, one));
      return { statuses, exp, lastAt };
    },

    /**
     * Fast path: `batches` pairs of batches, each `perBatch` sequential calls of plain fetch
     * with the current bearer token and `perBatch` sequential authorized calls. Resolves with
     * the per-call time (µs) of every batch.
     */
    async fastPath(url, perBatch, batches, { stub = false, warmup = 50 } = {}) {
      const token = await adapter.accessToken();
      // With `stub`, window.fetch answers at once without any network, so what is left of the
      // difference is the library's own work per call. Clients that captured fetch when they
      // were made (auth0-spa-js's fetcher) are made again around the swap.
      const realFetch = window.fetch;
      if (stub) {
        window.fetch = () => Promise.resolve(new Response('{"ok":true}', { status: 200, headers: { "Content-Type": "application/json" } }));
        await adapter.rebind?.();
      }
      try {
        return await measureFastPath(adapter, url, token, perBatch, batches, warmup);
      } finally {
        if (stub) {
          window.fetch = realFetch;
          await adapter.rebind?.();
        }
      }
    },
  };
  window.bench = bench;

  const cold = new URLSearchParams(location.search).get("cold");
  if (cold) coldStart(adapter, cold);
  return bench;
}

// Batches of `perBatch` sequential calls, plain fetch vs authorized, `batches` pairs; which
// of a pair goes first alternates. Per-call times in µs.
async function measureFastPath(adapter, url, token, perBatch, batches, warmup) {
  const headers = { Authorization: `Bearer ${token}` };
  const plain = async () => {
    const response = await fetch(url, { headers });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`plain fetch: ${response.status}`);
  };
  const authorized = async () => {
    const response = await adapter.call(url);
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`authorized call: ${response.status}`);
  };
  for (let i = 0; i < warmup; i += 1) {
    await plain();
    await authorized();
  }
  const plainUs = [];
  const authUs = [];
  const batch = async (fn, into) => {
    const t0 = performance.now();
    for (let i = 0; i < perBatch; i += 1) await fn();
    into.push(((performance.now() - t0) * 1000) / perBatch);
  };
  for (let b = 0; b < batches; b += 1) {
    if (b % 2 === 0) {
      await batch(plain, plainUs);
      await batch(authorized, authUs);
    } else {
      await batch(authorized, authUs);
      await batch(plain, plainUs);
    }
  }
  return { plainUs, authUs };
}
