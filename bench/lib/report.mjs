// Renders a result (see main.mjs) as markdown: the targets first, then one table per section.
import { max, median, min } from "./stats.mjs";

const NAMES = { latchkey: "latchkey", auth0: "auth0-spa-js", oidc: "oidc-client-ts", "latchkey-dpop": "latchkey, DPoP" };
const MODE_NAMES = { rfc6750: "401 (RFC 6750)", bluesky: "400 ExpiredToken (Bluesky)" };

const kB = (bytes) => `${(bytes / 1000).toFixed(1)} kB`;
const ms = (x, digits = 0) => (x == null ? "–" : `${x.toFixed(digits)} ms`);
const us = (x) => (x == null ? "–" : `${Math.round(x)} µs`);

/** "v" when every rep agrees, else "median (min–max)". */
function spread(values) {
  const lo = min(values);
  const hi = max(values);
  if (lo == null) return "–";
  if (lo === hi) return String(lo);
  return `${median(values)} (${lo}–${hi})`;
}

function table(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function okReps(c) {
  return c.reps.filter((r) => !r.error);
}

function stormRows(cases) {
  return cases.map((c) => {
    const reps = okReps(c);
    const r1 = reps.map((r) => r.round1);
    const errors = c.reps.length - reps.length;
    const durations = r1.map((r) => r.durationMs);
    return [
      `${c.tabs} × ${c.calls}`,
      MODE_NAMES[c.mode],
      c.dpop ? `${NAMES[c.lib]}, DPoP` : NAMES[c.lib],
      c.dpop
        ? `${spread(r1.map((r) => r.refreshGrants))} (+${spread(r1.map((r) => r.tokenNonceRefusals))} use_dpop_nonce)`
        : spread(r1.map((r) => r.refreshGrants)),
      spread(r1.map((r) => r.invalidGrant)),
      `${spread(r1.map((r) => r.failedCalls))} / ${c.tabs * c.calls}`,
      `${spread(reps.map((r) => r.round2.tabsWorking))} / ${c.tabs}`,
      `${ms(median(durations))} / ${ms(max(durations))}`,
      `${reps.length}${errors ? ` (+${errors} failed to run)` : ""}`,
    ];
  });
}

const seconds = (x) => (x == null ? "–" : `${(x / 1000).toFixed(1)} s`);

// The proactive storm: per case, the compensation, the counts, and when the refreshes happened.
function proactiveRows(cases) {
  return cases.map((c) => {
    const reps = okReps(c);
    const r1 = reps.map((r) => r.round1);
    const errors = c.reps.length - reps.length;
    const durations = r1.map((r) => r.durationMs);
    const lt = reps[0]?.lifetimes;
    const firsts = r1.map((r) => (r.refreshAtMs.length ? Math.min(...r.refreshAtMs) : null));
    return [
      `${c.tabs} × ${c.calls}`,
      NAMES[c.lib],
      lt ? `${lt.login - lt.t} s → ${lt.login} s (${lt.storm} s)` : "–",
      `${spread(r1.map((r) => r.refreshGrants))} (${spread(r1.map((r) => r.refreshesBeforeBurst))} before)`,
      firsts.some((x) => x != null) ? `${seconds(median(firsts))} (burst ${seconds(median(r1.map((r) => r.burstAfterIssueMs)))})` : "none",
      `${spread(r1.map((r) => r.invalidGrant))}${r1.some((r) => r.refreshFailedBeforeBurst) ? ` (${spread(r1.map((r) => r.refreshFailedBeforeBurst))} before)` : ""}`,
      `${spread(r1.map((r) => r.apiExpiredAnswers))} / ${spread(reps.map((r) => r.round2.apiExpiredAnswers))}`,
      `${spread(r1.map((r) => r.failedCalls))} / ${c.tabs * c.calls}`,
      `${spread(reps.map((r) => r.round2.refreshGrants))} (${spread(reps.map((r) => r.round2.refreshesBeforeBurst))} before), ${spread(reps.map((r) => r.round2.invalidGrant))} invalid_grant`,
      `${reps.filter((r) => r.round1.grantRevokedAtMs.length + r.round2.grantRevokedAtMs.length > 0).length} of ${reps.length} reps`,
      `${spread(reps.map((r) => r.round2.tabsWorking))} / ${c.tabs}`,
      `${ms(median(durations))} / ${ms(max(durations))}`,
      `${reps.length}${errors ? ` (+${errors} failed to run)` : ""}`,
    ];
  });
}

function targets(result) {
  const rows = [];
  const { storm, fastpath, size, cold } = result.sections;
  if (storm) {
    const lk = storm.filter((c) => c.lib === "latchkey" && !c.dpop);
    if (lk.length) {
      const all = lk.flatMap((c) => c.reps);
      const clean = all.filter((r) => !r.error && r.round1.refreshGrants === 1 && r.round1.invalidGrant === 0 && r.round1.failedCalls === 0);
      const worst = all
        .filter((r) => !r.error)
        .map((r) => `${r.round1.refreshGrants}/${r.round1.invalidGrant}/${r.round1.failedCalls}`)
        .filter((s) => s !== "1/0/0");
      rows.push([
        "Storm: exactly 1 refresh grant, 0 invalid_grant, 0 failed calls, every rep, both modes",
        `${clean.length} of ${all.length} reps clean${worst.length ? ` (others grants/invalid_grant/failed: ${worst.join(", ")})` : ""}`,
        clean.length === all.length && all.length > 0 ? "met" : "**missed**",
      ]);
      for (const c of lk) {
        const base = storm.find((b) => b.lib === "auth0" && b.mode === c.mode && b.tabs === c.tabs && b.calls === c.calls);
        if (!base) continue;
        const ours = median(okReps(c).map((r) => r.round1.durationMs));
        const theirs = median(okReps(base).map((r) => r.round1.durationMs));
        if (ours == null || theirs == null) continue;
        const ratio = ours / theirs;
        rows.push([
          `Burst completion ≤ 0.8 × auth0-spa-js's (${c.tabs} × ${c.calls}, ${MODE_NAMES[c.mode]})`,
          `${ms(ours)} vs ${ms(theirs)} = ${ratio.toFixed(2)} ×`,
          ratio <= 0.8 ? "met" : "**missed**",
        ]);
      }
    }
  }
  if (fastpath?.latchkey && !fastpath.latchkey.error) {
    // Issue 20: ≤ 50 µs, goal 30 µs. Judged on both measurements: the library's own work
    // (fetch stubbed) and the loopback figure's 95 % interval. The loopback median alone drowns
    // in a busy machine's noise (it can even come out negative): met only when the whole
    // interval is under the limit, missed when the whole interval is above it (or the stubbed
    // figure is), and otherwise not shown either way.
    const f = fastpath.latchkey;
    const ci = f.overheadInterval;
    const interval = ci ? `, ${Math.round(ci.confidence * 100)} % interval ${us(ci.low)} to ${us(ci.high)}` : "";
    const measured = `${us(f.overheadUs)} over loopback fetch (ratio ${f.ratio.toFixed(3)}${interval}); ${us(f.stubbed.overheadUs)} with fetch stubbed (quietest batches: ${us(f.stubbed.bestOverheadUs)})`;
    for (const limit of [50, 30]) {
      const verdict =
        f.stubbed.overheadUs > limit || (ci && ci.low > limit)
          ? "**missed**"
          : ci && ci.high <= limit
            ? "met"
            : "**not shown** (the interval spans the limit)";
      rows.push([`Fast path overhead ≤ ${limit} µs per call over plain fetch${limit === 30 ? " (goal)" : ""}`, measured, verdict]);
    }
  }
  if (size) {
    // Issue 20: ≤ 54 kB (smaller than auth0-spa-js when filed; this run's auth0 bundle shown for
    // reference), goal 40 kB.
    const b = size.latchkey.published.brotli;
    const auth0 = size.auth0?.bundled?.brotli;
    const reference = auth0 != null ? `; auth0-spa-js bundled in this run: ${kB(auth0)}` : "";
    rows.push([`Size ≤ 54 kB brotli, wasm + JS as published${reference}`, kB(b), b <= 54_000 ? "met" : "**missed**"]);
    rows.push(["Size ≤ 40 kB brotli, wasm + JS as published (goal)", kB(b), b <= 40_000 ? "met" : "**missed**"]);
  }
  if (cold) {
    // Issue 20: ≤ 15 ms and ≤ 2 × oidc-client-ts's in the same run.
    const oidc = cold.find((x) => x.lib === "oidc" && !x.error)?.createToSentMs;
    for (const c of cold.filter((x) => x.lib === "latchkey")) {
      const label = `Cold start ≤ 15 ms${oidc != null ? ` and ≤ 2 × oidc-client-ts's (${ms(oidc, 1)})` : ""}, create → first request sent (${coldCase(c)})`;
      if (c.error) {
        rows.push([label, `error: ${c.error}`, "**missed**"]);
        continue;
      }
      const ratio = oidc != null ? ` (${(c.createToSentMs / oidc).toFixed(1)} ×)` : "";
      // The issue judges against oidc-client-ts in the same run: without it, no verdict.
      const verdict = oidc == null ? "not judged (no oidc-client-ts figure in this run)" : c.createToSentMs <= 15 && c.createToSentMs <= 2 * oidc ? "met" : "**missed**";
      rows.push([label, `${ms(c.createToSentMs, 1)}${ratio}`, verdict]);
    }
  }
  return rows;
}

/** A cold-start case's storage, and whether latchkey's page went without its preload link. */
const coldCase = (c) => (c.preload === false ? `${c.storage}, no preload link` : c.storage);

/** Median of `f` over the clean reps of storm case `c` (round 1). */
const stormMedian = (c, f) => (c ? median(okReps(c).map((r) => f(r.round1))) : null);

/**
 * latchkey with a DPoP-bound session next to latchkey with Bearer tokens: the storm (same sizes,
 * RFC 6750 expiry) and the fast path. Null when the run has no DPoP rows.
 */
function dpopSection({ storm, fastpath }) {
  const rows = [];
  const ratio = (a, b) => (a == null || b == null || b === 0 ? "–" : `${(a / b).toFixed(2)} ×`);
  for (const d of (storm ?? []).filter((c) => c.dpop)) {
    const b = storm.find((c) => c.lib === "latchkey" && !c.dpop && c.mode === d.mode && c.tabs === d.tabs && c.calls === d.calls);
    const size = `${d.tabs} × ${d.calls}`;
    const counts = (c) => {
      const reps = c ? okReps(c) : [];
      if (!reps.length) return "–";
      const r1 = reps.map((r) => r.round1);
      return `${spread(r1.map((r) => r.refreshGrants))} / ${spread(r1.map((r) => r.invalidGrant))} / ${spread(r1.map((r) => r.failedCalls))} / ${spread(reps.map((r) => r.round2.tabsWorking))} of ${c.tabs}`;
    };
    rows.push([`Storm ${size}: refresh grants carried out / invalid_grant / failed calls / tabs working after the next expiry`, counts(b), counts(d), ""]);
    const bt = stormMedian(b, (r) => r.durationMs);
    const dt = stormMedian(d, (r) => r.durationMs);
    rows.push([`Storm ${size}: burst → last response`, ms(bt), ms(dt), ratio(dt, bt)]);
    const nonces = okReps(d).map((r) => r.round1);
    rows.push([
      `Storm ${size}: DPoP refusals — token endpoint use_dpop_nonce / API use_dpop_nonce / proofs refused / replays`,
      "–",
      nonces.length
        ? `${spread(nonces.map((r) => r.tokenNonceRefusals))} / ${spread(nonces.map((r) => r.apiNonceRefusals))} of ${d.tabs * d.calls} calls / ${spread(nonces.map((r) => r.apiProofRefusals))} / ${spread(nonces.map((r) => r.apiReplays))}`
        : "–",
      "",
    ]);
  }
  const fb = fastpath?.latchkey;
  const fd = fastpath?.["latchkey-dpop"];
  if (fd) {
    const ok = (f) => f && !f.error;
    const val = (f, pick) => (ok(f) ? pick(f) : null);
    const line = (what, pick) => {
      const a = val(fb, pick);
      const c = val(fd, pick);
      return [what, us(a), fd.error ? `error: ${fd.error}` : us(c), ratio(c, a)];
    };
    rows.push(line("Fast path: authorized call, loopback", (f) => f.medianAuthUs));
    rows.push(line("Fast path: overhead per call over plain fetch, loopback", (f) => f.overheadUs));
    rows.push(line("Fast path: library's own work per call (fetch stubbed)", (f) => f.stubbed.overheadUs));
    const a = val(fb, (f) => f.stubbed.overheadUs);
    const c = val(fd, (f) => f.stubbed.overheadUs);
    if (a != null && c != null) rows.push(["Fast path: DPoP's added cost per call (proof built and signed), fetch stubbed", "", us(c - a), ""]);
  }
  if (!rows.length) return null;
  return [
    "### DPoP",
    "",
    "latchkey with a session bound to a DPoP key (RFC 9449; the IdP's `spa-dpop` client, PAR) next to latchkey with Bearer tokens. " +
      "Storm: the same procedure (RFC 6750 expiry), with both the authorization server's and the API's nonces rotated just before each burst, " +
      "so the refresh meets one `use_dpop_nonce` (resent, not a second grant) and the calls meet the API's new nonce. " +
      "Fast path: every call builds and signs a proof (ES256, non-extractable WebCrypto key); /ping gives no nonce. Medians.",
    "",
    table(["", "Bearer", "DPoP", "DPoP / Bearer"], rows),
    "",
  ].join("\n");
}

export function renderReport(result) {
  const out = [];
  const m = result.machine ?? {};
  const v = result.versions;
  out.push(`## latchkey benchmarks — ${result.date.slice(0, 10)}${result.options.quick ? " (quick mode)" : ""}`);
  out.push("");
  out.push(
    `Machine: ${m.cpuModel ?? "?"}, ${m.cores ?? "?"} cores, ${m.os ?? "?"}; Node ${m.node ?? "?"}, headless Chromium ${m.chromium ?? "?"}; ` +
      `load average ${m.loadAverageAtStart?.[0] ?? "?"} at start, ${m.loadAverageAtEnd?.[0] ?? "?"} at end (a shared machine: expect noise).`,
  );
  out.push(
    `Versions: latchkey ${v.latchkey ?? "?"}${v.commit ? ` (${v.commit})` : ""}, @auth0/auth0-spa-js ${v.auth0 ?? "?"}, oidc-client-ts ${v.oidc ?? "?"}. ` +
      `Storm reps: ${result.options.reps}. Figures are medians unless marked. Run time ${result.durationSeconds ?? "?"} s.`,
  );
  out.push("");

  const t = targets(result);
  if (t.length) {
    out.push("### Targets");
    out.push("");
    out.push(table(["target", "measured", ""], t));
    out.push("");
  }

  const { storm, stormProactive, fastpath, size, cold } = result.sections;
  if (storm) {
    out.push("### Storm, reactive (the API's answer is the only expiry signal)");
    out.push("");
    out.push(
      "M tabs × N concurrent calls right after the access token expired (the IdP advertises an hour, the API rejects after 4 s), " +
        "then 5 calls per tab after the next expiry. Per rep: refresh grants and invalid_grant seen by the IdP, failed calls (not 200) in the burst, " +
        "tabs whose calls all succeed after the next expiry; burst start → last response, median / max over reps. " +
        "One value = every rep agreed; else median (min–max).",
    );
    out.push("");
    out.push(
      table(
        ["tabs × calls", "expiry says", "library", "refresh grants", "invalid_grant", "failed calls", "tabs working after next expiry", "burst → last response", "reps"],
        stormRows(storm),
      ),
    );
    const failures = storm.flatMap((c) => c.reps.filter((r) => r.error).map((r) => `${NAMES[c.lib]} ${c.tabs}×${c.calls} ${c.mode}: ${r.error}`));
    if (failures.length) out.push("", `Reps that failed to run: ${failures.join("; ")}`);
    out.push("");
  }

  if (stormProactive) {
    const t = stormProactive.flatMap((c) => okReps(c))[0]?.lifetimes?.t ?? "T";
    out.push("### Storm, proactive (lifetimes compensated for each library's leeway)");
    out.push("");
    out.push(
      `The same M tabs × N calls, but the IdP tells the truth about lifetimes and each library refreshes before expiry on its own clock, configured as documented: ` +
        `auth0-spa-js's fixed 60 s, oidc-client-ts's automaticSilentRenew timer (accessTokenExpiringNotificationTimeInSeconds 60; its calls themselves renew only when the token has expired or the API says so), ` +
        `latchkey's default refreshLeewaySeconds (30 s, never more than half the lifetime: for a short token, half of it). ` +
        `Each library gets tokens living ${t} s + its leeway, so every one considers its token expiring ${t} s after issue while the API accepts it until the end of the lifetime; ` +
        `the burst fires just after ${t} s (after the baselines' whole second), round 2 (5 calls per tab) likewise after the next effective expiry (the newest refresh + ${stormProactive.flatMap((c) => okReps(c)).map((r) => `${r.lifetimes.ttl} s`).filter((x, i, a) => a.indexOf(x) === i).join(" or ") || "its T"}). 401 style. ` +
        `Refresh grants (refresh_token requests, as above) are counted from the end of the setup, so those a library starts by itself before the burst count too; "before": grants carried out before the burst. ` +
        `"API expired" = 401 answers, which a library that refreshed in time does not get; ` +
        `"grant revoked": reps in which a used refresh token was presented again, which makes the IdP revoke the whole login (every token of the session, in every tab). "First refresh": s after the login token was issued, median.`,
    );
    out.push("");
    out.push(
      table(
        [
          "tabs × calls",
          "library",
          "leeway → lifetime (round 2)",
          "refresh grants",
          "first refresh",
          "invalid_grant",
          "API expired (round 1 / 2)",
          "failed calls",
          "next expiry: refresh grants",
          "grant revoked",
          "tabs working after next expiry",
          "burst → last response",
          "reps",
        ],
        proactiveRows(stormProactive),
      ),
    );
    const failures = stormProactive.flatMap((c) => c.reps.filter((r) => r.error).map((r) => `${NAMES[c.lib]} ${c.tabs}×${c.calls}: ${r.error}`));
    if (failures.length) out.push("", `Reps that failed to run: ${failures.join("; ")}`);
    const late = stormProactive.flatMap((c) => okReps(c).filter((r) => r.setupDoneAfterIssueMs > r.lifetimes.t * 1000).map(() => `${NAMES[c.lib]} ${c.tabs}×${c.calls}`));
    if (late.length) out.push("", `Reps whose tabs were not all open by the effective expiry (a background refresh may have run during the setup, uncounted): ${late.join("; ")}`);
    out.push("");
  }

  if (fastpath) {
    out.push("### Fast path");
    out.push("");
    out.push(
      "Valid token; sequential calls to a same-origin loopback endpoint that answers at once. Per call: plain `fetch` with the bearer token vs the library's authorized call " +
        "(latchkey `fetchWithAuth`; auth0-spa-js `createFetcher().fetchWithAuth`; oidc-client-ts `getUser()` + `fetch`), alternating batches; overhead = median over batch pairs, with its distribution-free 95 % interval (order statistics of the pairs' differences). " +
        "\"Stubbed\": the same with `window.fetch` replaced in the page by one that answers at once, so only the library's own work per call is left; in brackets the difference between the quietest batch of each kind.",
    );
    out.push("");
    const rows = Object.entries(fastpath).map(([lib, r]) =>
      r.error
        ? [NAMES[lib], "–", "–", `error: ${r.error}`, "–", "–", "–", "–"]
        : [
            NAMES[lib],
            us(r.medianPlainUs),
            us(r.medianAuthUs),
            r.overheadInterval ? `${us(r.overheadUs)} (${us(r.overheadInterval.low)} to ${us(r.overheadInterval.high)})` : us(r.overheadUs),
            `${r.ratio.toFixed(3)} ×`,
            `${us(r.stubbed.medianPlainUs)} → ${us(r.stubbed.medianAuthUs)}`,
            `${us(r.stubbed.overheadUs)} (${us(r.stubbed.bestOverheadUs)})`,
            `${r.batches} × ${r.perBatch} (stubbed ${r.stubbed.batches} × ${r.stubbed.perBatch})`,
          ],
    );
    out.push(
      table(["library", "plain fetch", "authorized call", "overhead per call (95 % interval)", "ratio", "stubbed: plain → authorized", "stubbed overhead (quietest batches)", "batch pairs × calls"], rows),
    );
    out.push("");
  }

  const dpop = dpopSection(result.sections);
  if (dpop) out.push(dpop);

  if (size) {
    out.push("### Size");
    out.push("");
    out.push(
      "kB = 1000 bytes. gzip -9 and brotli -q 11 with node:zlib. latchkey as published: the wasm and every JS file `index.js` loads. Baselines: esbuild --bundle --minify of a minimal import (what an app's bundler ships), and the package's own minified browser build.",
    );
    out.push("");
    const row = (name, what, s) => [name, what, kB(s.raw), kB(s.gzip), kB(s.brotli)];
    const lk = size.latchkey;
    const js = Object.keys(lk.files).filter((f) => f.endsWith(".js"));
    const jsSum = { raw: 0, gzip: 0, brotli: 0 };
    for (const f of js) for (const k of Object.keys(jsSum)) jsSum[k] += lk.files[f][k];
    const rows = [
      row("latchkey", `published: latchkey_bg.wasm + ${js.join(" + ")}`, lk.published),
      row("latchkey", "  of which latchkey_bg.wasm", lk.files["latchkey_bg.wasm"]),
      row("latchkey", `  of which ${js.join(" + ")}`, jsSum),
      row("latchkey", "wasm + JS bundled and minified by esbuild", lk.bundled),
      row("auth0-spa-js", "`createAuth0Client`, minified bundle", size.auth0.bundled),
      row("oidc-client-ts", "`UserManager` + `WebStorageStateStore`, minified bundle", size.oidc.bundled),
    ];
    if (size.auth0.published) rows.push(row("auth0-spa-js", "published browser build (`auth0-spa-js.production.js`)", size.auth0.published));
    if (size.oidc.published) rows.push(row("oidc-client-ts", "published browser build (`oidc-client-ts.min.js`)", size.oidc.published));
    out.push(table(["library", "what", "raw", "gzip -9", "brotli -q 11"], rows));
    out.push("");
  }

  if (cold) {
    out.push("### Cold start");
    out.push("");
    out.push(
      "A page load with a stored session, straight to the first authorized request; milliseconds since navigation start (Resource Timing for the request), " +
        "median of the measured loads, the cases' loads interleaved (one of each case per round, the order rotating). latchkey's create includes loading its wasm (column in brackets) and reading its encrypted store (a returning tab starts from the metadata kept with the session and revalidates it later, off this window); its page has the preload link its README advises unless the row says otherwise.",
    );
    out.push("");
    const rows = cold.map((c) =>
      c.error
        ? [NAMES[c.lib], coldCase(c), "–", "–", "–", "–", `error: ${c.error}`]
        : [
            NAMES[c.lib],
            coldCase(c),
            ms(c.navToCreateDoneMs, 1),
            `${ms(c.createMs, 1)}${c.wasmMs != null ? ` (${ms(c.wasmMs, 1)})` : ""}`,
            ms(c.createDoneToSentMs, 1),
            ms(c.createToSentMs, 1),
            `${ms(c.navToSentMs, 1)} (${c.runs} loads)`,
          ],
    );
    out.push(table(["library", "storage", "nav → create done", "create (wasm)", "create done → request sent", "create → request sent", "nav → request sent"], rows));
    out.push("");
  }
  return `${out.join("\n")}\n`;
}
