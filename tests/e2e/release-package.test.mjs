// The release package (wasm-opt'd, as published) loads in headless Chromium,
// in several tabs of one browser context.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";

import { startIdp } from "../idp/server.mjs";
import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { ROOT, crateVersion, requireStagedWww } from "./support/project.mjs";

let idp;
let browser;

before(async () => {
  idp = await startIdp({ serveSpa: { root: requireStagedWww() } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await idp?.close();
});

test("the staged wasm is the optimised release build", () => {
  const wasm = readFileSync(path.join(requireStagedWww(), "latchkey/latchkey_bg.wasm"));
  assert.equal(wasm.subarray(0, 4).toString("latin1"), "\0asm");
  // Debug builds carry a `name` custom section (and DWARF); the release
  // profile strips symbols and wasm-opt drops names.
  assert.equal(wasm.includes(Buffer.from("\x04name", "latin1")), false, "release wasm has no name section");
});

test("three tabs of one context each load the wasm module and show its version", async () => {
  const context = await browser.newContext();
  try {
    const pages = await Promise.all([1, 2, 3].map(() => context.newPage()));
    const errors = pages.map(collectPageErrors);
    await Promise.all(pages.map((page) => page.goto(`${idp.spaOrigin}/`)));
    for (const [i, page] of pages.entries()) {
      await page.waitForSelector("body[data-ready]", { timeout: 15_000 });
      assert.equal(await page.getAttribute("body", "data-ready"), "true", `tab ${i}: ${await page.textContent("#status")}`);
      assert.equal(await page.textContent("#version"), crateVersion());
      assert.deepEqual(errors[i], []);
    }
  } finally {
    await context.close();
  }
});

test("a wasm load that failed rejects with wasm_load_failed, and the next call loads it", async () => {
  const context = await browser.newContext();
  // The wasm is refused until the first call has failed, then served. The
  // page imports nothing itself (the demo page would start its own loads at
  // times the test does not control), so every load is the test's.
  let refusing = true;
  let refused = 0;
  let served = 0;
  await context.route("**/latchkey/latchkey_bg.wasm", (route) => {
    if (refusing) {
      refused += 1;
      return route.fulfill({ status: 503, body: "unavailable" });
    }
    served += 1;
    return route.continue();
  });
  await context.route("**/blank.html", (route) => route.fulfill({ contentType: "text/html", body: "<!doctype html><title>blank</title>" }));
  try {
    const page = await context.newPage();
    await page.goto(`${idp.spaOrigin}/blank.html`);
    // The import starts the preload; the call meets its failure (or its own).
    const first = await page.evaluate(async () => {
      const latchkey = await import("./latchkey/index.js");
      return latchkey.version().then(
        () => null,
        (e) => ({ name: e.name, code: e.code, typed: latchkey.isLatchkeyError(e), cause: Boolean(e.cause) }),
      );
    });
    assert.deepEqual(first, { name: "LatchkeyError", code: "wasm_load_failed", typed: true, cause: true });
    assert.ok(refused >= 1 && refused <= 2, `refused ${refused}`);
    refusing = false;
    const second = await page.evaluate(async () => (await import("./latchkey/index.js")).version());
    assert.equal(second, crateVersion());
    assert.equal(served, 1, "the failed load was not kept: the next call fetched the wasm once");
  } finally {
    await context.close();
  }
});

test("the packed tarball holds exactly the allow-listed files, typed entry first", () => {
  const tarball = path.join(ROOT, "dist", `latchkey-${crateVersion()}.tgz`);
  const files = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" }).trim().split("\n").sort();
  assert.deepEqual(files, [
    "package/README.md",
    "package/errors.js",
    "package/index.d.ts",
    "package/index.js",
    "package/latchkey.js",
    "package/latchkey_bg.wasm",
    "package/package.json",
    "package/popup.js",
    "package/react.d.ts",
    "package/react.js",
  ]);
  const manifest = JSON.parse(execFileSync("tar", ["xzfO", tarball, "package/package.json"], { encoding: "utf8" }));
  assert.equal(manifest.version, crateVersion());
  assert.deepEqual(Object.keys(manifest.exports["."]), ["types", "default"], "types first");
  assert.deepEqual(Object.keys(manifest.exports["./react"]), ["types", "default"], "types first");
  assert.deepEqual(manifest.peerDependenciesMeta, { react: { optional: true } }, "React only for apps that use latchkey/react");
  assert.equal(manifest.dependencies, undefined);
  assert.equal(manifest.sideEffects, false);
});
