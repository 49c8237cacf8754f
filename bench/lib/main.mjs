#!/usr/bin/env node
// latchkey's benchmark harness: storm, fast path, size and cold start, for latchkey and the
// baselines (auth0-spa-js, oidc-client-ts) against the same test IdP in the same run. Started
// by bench/run (which installs what is missing); see bench/README.md.
//
// stdout: the markdown report. stderr: progress. Files: bench/results/latest.json, a dated
// copy, and latest.md.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { buildHarness, LIBS } from "./build.mjs";
import { coldStarts } from "./coldstart.mjs";
import { startEnv } from "./env.mjs";
import { fastPath } from "./fastpath.mjs";
import { renderReport } from "./report.mjs";
import { sizes } from "./size.mjs";
import { proactiveRep, stormRep } from "./storm.mjs";

const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = resolve(BENCH, "..");
const SECTIONS = ["size", "fastpath", "cold", "storm"];
const MODES = ["rfc6750", "bluesky"];
// The storm's two procedures: the API's answer as the only expiry signal, and each library
// refreshing on its own clock with lifetimes compensated for its leeway (see storm.mjs).
const STORM_MODES = ["reactive", "proactive"];
// The fast-path row of latchkey with a DPoP-bound session.
const DPOP_ROW = "latchkey-dpop";

const USAGE = `usage: bench/run [options]

  --quick              development mode: 1 rep, storm 4×25 only, short fast path, 5 cold loads
  --reps R             storm repetitions (default 3; env BENCH_REPS)
  --sections LIST      comma-separated, of ${SECTIONS.join(",")} (default all)
  --libs LIST          comma-separated, of ${LIBS.join(",")} (default all)
  --storm LIST         storm sizes as TABSxCALLS, e.g. 4x25,8x50 (default 4x25,8x50)
  --storm-modes LIST   comma-separated, of ${STORM_MODES.join(",")} (default both): reactive = the
                       API's "expired" is the only signal (both expiry styles, + DPoP); proactive =
                       truthful lifetimes compensated for each library's leeway (401 style)
  --fast K,BATCHES     fast path batch size and batch pairs (default 200,40)
  --cold-runs N        measured page loads per cold-start case (default 11)
  --no-dpop            leave out latchkey's DPoP rows (storm and fast path with a DPoP-bound session)
  --rebuild            rebuild the package first (scripts/build-pkg), handled by bench/run
  --out DIR            where results go (default bench/results)
`;

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: process.env.BENCH_QUICK === "1" },
      reps: { type: "string" },
      sections: { type: "string" },
      libs: { type: "string" },
      storm: { type: "string" },
      "storm-modes": { type: "string" },
      fast: { type: "string" },
      "cold-runs": { type: "string" },
      "no-dpop": { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const list = (value, allowed, name) => {
    const items = value.split(",").map((s) => s.trim()).filter(Boolean);
    for (const i of items) if (!allowed.includes(i)) throw new Error(`--${name}: unknown ${i} (one of ${allowed.join(", ")})`);
    return items;
  };
  const int = (value, name, lo, hi) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be an integer in ${lo}..${hi}`);
    return n;
  };
  const quick = values.quick;
  const o = {
    quick,
    reps: int(values.reps ?? process.env.BENCH_REPS ?? (quick ? 1 : 3), "reps", 1, 50),
    sections: values.sections ? list(values.sections, SECTIONS, "sections") : SECTIONS,
    libs: values.libs ? list(values.libs, LIBS, "libs") : LIBS,
    storms: (values.storm ?? (quick ? "4x25" : "4x25,8x50")).split(",").map((s) => {
      const m = /^(\d+)x(\d+)$/.exec(s.trim());
      if (!m) throw new Error(`--storm: ${s} is not TABSxCALLS`);
      const tabs = int(m[1], "storm tabs", 1, 16);
      const calls = int(m[2], "storm calls", 1, 200);
      // Lifetime of the storm's fresh tokens: long enough to outlast the slowest library's
      // storm, short enough to keep the wait for the second round bounded.
      // DPoP storms take two to three times as long (a proof signed per send, and each call
      // meets the API's rotated nonce once), so their fresh tokens live longer.
      return { tabs, calls, ttl: tabs * calls > 100 ? 12 : 6, dpopTtl: tabs * calls > 100 ? 30 : 12, secondRoundCalls: 5 };
    }),
    fast: (() => {
      const [k, n] = (values.fast ?? (quick ? "100,6" : "200,40")).split(",");
      return { perBatch: int(k, "fast K", 1, 5000), batches: int(n, "fast BATCHES", 1, 200) };
    })(),
    coldRuns: int(values["cold-runs"] ?? (quick ? 5 : 11), "cold-runs", 1, 100),
    stormModes: values["storm-modes"] ? list(values["storm-modes"], STORM_MODES, "storm-modes") : STORM_MODES,
    dpop: !values["no-dpop"],
    out: resolve(values.out ?? join(BENCH, "results")),
  };
  return o;
}

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

async function packageVersion(dir) {
  try {
    return JSON.parse(await readFile(join(dir, "package.json"), "utf8")).version;
  } catch {
    return null;
  }
}

function gitCommit() {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return null;
  }
}

async function machine(browser) {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    chromium: browser ? browser.version() : null,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

async function main() {
  const opts = options();
  const pkgDir = join(ROOT, "dist/latchkey");
  const startedAt = new Date();
  const result = {
    date: startedAt.toISOString(),
    options: { ...opts, out: undefined },
    versions: {
      latchkey: await packageVersion(pkgDir),
      auth0: await packageVersion(join(BENCH, "node_modules/@auth0/auth0-spa-js")),
      oidc: await packageVersion(join(BENCH, "node_modules/oidc-client-ts")),
      commit: gitCommit(),
    },
    sections: {},
  };

  log("bundling the harness pages");
  const built = await buildHarness(BENCH, pkgDir);
  let env;
  // Set by Ctrl-C / SIGTERM: the servers and the browser are closed, nothing is written.
  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    await env?.close();
    process.exit(130);
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));

  try {
    if (opts.sections.includes("size")) {
      log("size");
      result.sections.size = await sizes(BENCH, built.pkgDir);
    }
    const needBrowser = opts.sections.some((s) => s !== "size");
    if (needBrowser) {
      env = await startEnv(built);
      log(`IdP ${env.idp.issuer}; pages ${LIBS.map((l) => `${l} ${env.pages[l].origin}`).join(", ")}; auth0 façade ${env.adapter.origin}`);
    }
    result.machine = await machine(env?.browser);

    if (opts.sections.includes("fastpath")) {
      result.sections.fastpath = {};
      for (const lib of opts.libs) {
        log(`fast path: ${lib} (${opts.fast.batches} × 2 batches of ${opts.fast.perBatch})`);
        result.sections.fastpath[lib] = await fastPath(env, lib, opts.fast);
      }
      if (opts.dpop && opts.libs.includes("latchkey")) {
        log(`fast path: latchkey with DPoP (${opts.fast.batches} × 2 batches of ${opts.fast.perBatch})`);
        result.sections.fastpath[DPOP_ROW] = await fastPath(env, "latchkey", opts.fast, { dpop: true });
      }
    }

    if (opts.sections.includes("cold")) {
      // latchkey as its README advises (a preload link for the wasm), and IndexedDB without it;
      // the baselines with localStorage. Interleaved load by load (coldstart.mjs).
      const cases = opts.libs.flatMap((lib) =>
        lib === "latchkey"
          ? [
              { lib, storage: "indexeddb", preload: true },
              { lib, storage: "localstorage", preload: true },
              { lib, storage: "indexeddb", preload: false },
            ]
          : [{ lib, storage: "localstorage", preload: true }],
      );
      log(`cold start: ${cases.length} cases, ${opts.coldRuns} loads each, interleaved`);
      const measured = await coldStarts(env, cases, { runs: opts.coldRuns });
      result.sections.cold = cases.map(({ lib, storage, preload }, i) => ({ lib, storage, preload, ...measured[i] }));
    }

    if (opts.sections.includes("storm")) {
      // Interleaved (rep → size → storm mode → expiry style → library) so slow drifts of the
      // machine's load spread over every library alike.
      const reactive = [];
      const proactive = [];
      const cases = [];
      for (const { dpopTtl, ...size } of opts.storms) {
        if (opts.stormModes.includes("reactive")) {
          for (const mode of MODES) for (const lib of opts.libs) reactive.push({ lib, mode, ...size, reps: [] });
          // DPoP: latchkey only, RFC 6750 expiry (a DPoP API answers 401 in either mode).
          if (opts.dpop && opts.libs.includes("latchkey")) reactive.push({ lib: "latchkey", mode: "rfc6750", dpop: true, ...size, ttl: dpopTtl, reps: [] });
        }
        // Proactive: RFC 6750 expiry only (a library that refreshes in time meets no "expired").
        if (opts.stormModes.includes("proactive")) {
          for (const lib of opts.libs) proactive.push({ lib, mode: "rfc6750", timing: "proactive", ...size, reps: [] });
        }
      }
      // Per size, the reactive cases then the proactive ones.
      for (const { tabs, calls } of opts.storms) {
        const same = (c) => c.tabs === tabs && c.calls === calls;
        cases.push(...reactive.filter(same), ...proactive.filter(same));
      }
      if (opts.stormModes.includes("reactive")) result.sections.storm = reactive;
      if (opts.stormModes.includes("proactive")) result.sections.stormProactive = proactive;
      for (let rep = 1; rep <= opts.reps && !stopping; rep += 1) {
        for (const c of cases) {
          if (stopping) break;
          const t0 = Date.now();
          const proactiveCase = c.timing === "proactive";
          const r = proactiveCase ? await proactiveRep(env, c) : await stormRep(env, c);
          c.reps.push(r);
          const nonces = c.dpop && !r.error ? ` (use_dpop_nonce: token ${r.round1.tokenNonceRefusals}, API ${r.round1.apiNonceRefusals})` : "";
          const early = proactiveCase && !r.error
            ? ` (${r.round1.refreshesBeforeBurst} before the burst, at ${r.round1.refreshAtMs.map((x) => (x / 1000).toFixed(2)).join("/") || "–"} s after issue` +
              `${r.round1.refreshFailedAtMs.length ? `; refused at ${r.round1.refreshFailedAtMs.slice(0, 4).map((x) => (x / 1000).toFixed(2)).join("/")}${r.round1.refreshFailedAtMs.length > 4 ? "/…" : ""} s` : ""}` +
              `${r.round1.grantRevokedAtMs.length ? `; grant revoked at ${(r.round1.grantRevokedAtMs[0] / 1000).toFixed(2)} s` : ""}; API 401 ${r.round1.apiExpiredAnswers})`
            : "";
          const summary = r.error
            ? `error: ${r.error}`
            : `grants ${r.round1.refreshGrants}${nonces}${early}, invalid_grant ${r.round1.invalidGrant}, failed ${r.round1.failedCalls}/${r.round1.calls}, ${Math.round(r.round1.durationMs)} ms; next expiry: ` +
              `${proactiveCase ? `grants ${r.round2.refreshGrants} (${r.round2.refreshesBeforeBurst} before the burst), invalid_grant ${r.round2.invalidGrant}, ` : ""}${r.round2.tabsWorking}/${c.tabs} tabs work`;
          const what = proactiveCase ? `proactive (lifetime ${r.lifetimes?.login ?? "?"} s)` : c.mode;
          log(`storm ${c.tabs}×${c.calls} ${what} ${c.lib}${c.dpop ? " DPoP" : ""} rep ${rep}/${opts.reps}: ${summary} (${Math.round((Date.now() - t0) / 1000)} s)`);
        }
      }
    }
  } finally {
    await env?.close();
  }

  if (stopping) return;
  result.durationSeconds = Math.round((Date.now() - startedAt.getTime()) / 1000);
  if (result.machine) result.machine.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const markdown = renderReport(result);
  process.stdout.write(markdown);

  await mkdir(opts.out, { recursive: true });
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const stamp = result.date.replace(/[:.]/g, "-");
  await writeFile(join(opts.out, "latest.json"), json);
  await writeFile(join(opts.out, `${stamp}${opts.quick ? "-quick" : ""}.json`), json);
  await writeFile(join(opts.out, "latest.md"), markdown);
  log(`wrote ${join(opts.out, "latest.json")} (and a dated copy) in ${result.durationSeconds} s`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err?.stack ?? err}\n`);
  process.exit(1);
});
