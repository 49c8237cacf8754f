// The README's demo command serves a page that loads the release wasm.
// Runs `scripts/demo --no-build` (the test command has just built and staged
// the package), opens the URL it prints, and stops it with SIGTERM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";

import { launchBrowser } from "./support/browser.mjs";
import { ROOT, crateVersion, requireStagedWww } from "./support/project.mjs";

const START_TIMEOUT_MS = 30_000;

// Resolves with the first JSON line the demo prints (the test IdP's URLs).
function firstJsonLine(child) {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`demo printed no URL within ${START_TIMEOUT_MS} ms:\n${buffered}`)), START_TIMEOUT_MS);
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      const line = buffered.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`demo exited early with ${code}:\n${buffered}`));
    });
  });
}

test("scripts/demo serves the demo page with the release wasm, and stops cleanly", async () => {
  requireStagedWww();
  const child = spawn(path.join(ROOT, "scripts/demo"), ["--no-build"], {
    cwd: ROOT,
    env: { ...process.env, LATCHKEY_DEMO_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let browser;
  try {
    const urls = await firstJsonLine(child);
    assert.match(urls.spaOrigin, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(urls.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);

    browser = await launchBrowser();
    const page = await browser.newPage();
    await page.goto(`${urls.spaOrigin}/`);
    await page.waitForSelector("body[data-ready]", { timeout: 15_000 });
    assert.equal(await page.getAttribute("body", "data-ready"), "true");
    assert.equal(await page.textContent("#version"), crateVersion());
    // The page found the authorization server by itself (./demo-config.json) and offers a sign-in.
    assert.equal(await page.textContent("#issuer"), urls.issuer);
    assert.equal(await page.textContent("#session"), "Signed out");
    assert.equal(await page.isVisible("#sign-in"), true);

    // The authorization server answers too.
    const discovery = await fetch(`${urls.issuer}/.well-known/openid-configuration`);
    assert.equal(discovery.status, 200);
  } finally {
    await browser?.close();
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      assert.equal(code, 0, "the demo exits 0 on SIGTERM");
    }
  }
});
