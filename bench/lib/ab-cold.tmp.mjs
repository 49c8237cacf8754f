// temporary: cold start A/B between two packages, alternating loads
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { buildHarness } from "./build.mjs";
import { startPageServer } from "./servers.mjs";
import { startIdp } from "../../tests/idp/server.mjs";
import { launchBrowser } from "../../tests/e2e/support/browser.mjs";
import { loginTab } from "../../tests/e2e/support/session.mjs";
import { COLD_DONE } from "../harness/cold-done.js";
const BENCH = join(dirname(fileURLToPath(import.meta.url)), "..");
const storage = process.argv[2] ?? "indexeddb";
const built = await buildHarness(BENCH, join(BENCH, "../dist/latchkey"));
const pkgs = { A: process.env.PKG_A ?? "/tmp/oldpkg/dist/latchkey", B: built.pkgDir };
const pages = {};
for (const k of Object.keys(pkgs)) pages[k] = await startPageServer({ lib: "latchkey", harnessFile: built.harness.latchkey, pkgDir: pkgs[k] });
const idp = await startIdp({ spaOrigins: Object.values(pages).map((p) => p.origin) });
for (const p of Object.values(pages)) p.setConfig({ issuer: idp.issuer, clientId: idp.clientId, whoami: idp.whoamiUrl, auth0Domain: "http://127.0.0.1:1" });
idp.setAccessTokenTtl(3600);
const browser = await launchBrowser();
const res = { A: [], B: [] };
try {
  const tabs = {};
  for (const k of Object.keys(pkgs)) {
    const context = await browser.newContext();
    const h = { issuer: idp.issuer, clientId: idp.clientId, whoamiUrl: idp.whoamiUrl, spaOrigin: pages[k].origin, refreshSessionUrl: idp.refreshSessionUrl };
    tabs[k] = await loginTab(context, h, { storage });
  }
  for (let i = 0; i < 2 * (+process.argv[3] || 20); i++) {
    for (const k of i % 2 ? ["A", "B"] : ["B", "A"]) {
      const page = tabs[k];
      const done = page.waitForEvent("console", { predicate: (m) => m.text() === COLD_DONE, timeout: 15000 });
      await page.goto(`${pages[k].origin}/?cold=${storage}`);
      await done;
      const r = await page.evaluate(() => window.coldResult);
      if (r.error) throw new Error(JSON.stringify(r));
      if (i > 1) res[k].push({ total: r.requestSent - r.createStart, wasm: r.wasmReady - r.createStart });
    }
  }
} finally { await browser.close(); await idp.close(); for (const p of Object.values(pages)) await p.close(); }
const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(2); };
for (const k of ["A", "B"]) console.log(k, pkgs[k], "create→sent", med(res[k].map((x) => x.total)), "wasm", med(res[k].map((x) => x.wasm)), "after wasm", med(res[k].map((x) => x.total - x.wasm)), `n=${res[k].length}`);
