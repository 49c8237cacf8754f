// `scripts/demo --atproto`: the demo page signs in with Bluesky against the local AT Protocol
// network (PDS + PLC) it starts. Runs `scripts/demo --no-build --atproto` (the package is built
// and staged already), goes through the PDS's sign-in and consent pages with the account the
// page shows, calls the PDS with fetchWithAuth, and stops the demo with SIGTERM: every server
// is gone afterwards. Leaves a screenshot in tests/e2e/artifacts/demo-atproto.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import path from "node:path";

import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { ROOT, requireStagedWww } from "./support/project.mjs";

const START_TIMEOUT_MS = 90_000; // the network starts in 3-6 s, more on a cold, busy machine
const WAIT = { timeout: 20_000 };
const SCREENSHOT = path.join(ROOT, "tests/e2e/artifacts/demo-atproto.png");

// Resolves with the first JSON line the demo prints (the page's and the network's URLs).
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

const refused = (url) => fetch(url).then(() => false, () => true);

test("scripts/demo --atproto: Sign in with Bluesky on the local PDS, call the PDS, stop everything", { timeout: 150_000 }, async () => {
  requireStagedWww();
  const child = spawn(path.join(ROOT, "scripts/demo"), ["--no-build", "--atproto"], {
    cwd: ROOT,
    env: { ...process.env, LATCHKEY_DEMO_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let browser;
  let urls;
  try {
    urls = await firstJsonLine(child);
    assert.match(urls.spaOrigin, /^http:\/\/127\.0\.0\.1:\d+$/, "a loopback client's redirect URI is on 127.0.0.1");
    const { handle, did, password } = urls.account;

    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = collectPageErrors(page);
    await page.goto(`${urls.spaOrigin}/`);
    await page.waitForSelector('body[data-ready="true"][data-session="signed-out"][data-profile="atproto"]', { state: "attached", ...WAIT });
    // The page shows the local account and the network it found by itself.
    assert.equal(await page.textContent("#demo-handle"), handle);
    assert.equal(await page.textContent("#demo-password"), password);
    assert.equal(await page.inputValue("#handle"), handle);
    assert.equal(await page.textContent("#issuer"), urls.pdsUrl);
    assert.equal(await page.textContent("#client-id"), urls.clientId);
    assert.equal(await page.textContent("#sign-in"), "Sign in with Bluesky");

    // The PDS's own pages: handle prefilled (login_hint), password, "Sign in", "Authorize".
    await page.click("#sign-in");
    await page.waitForURL((url) => url.origin === urls.pdsUrl, WAIT);
    await page.locator('input[type="password"]').fill(password, WAIT);
    await page.getByRole("button", { name: "Sign in" }).click(WAIT);
    await page.getByRole("button", { name: "Authorize" }).click(WAIT);

    await page.waitForSelector('body[data-ready="true"][data-session="signed-in"]', { state: "attached", ...WAIT });
    assert.equal(new URL(page.url()).origin, urls.spaOrigin);
    await page.waitForSelector('#log li[data-event="tokens"][data-source="login"]', WAIT);
    await page.waitForFunction((d) => document.getElementById("user-did").textContent === d, did, WAIT);
    assert.equal(await page.textContent("#user-handle"), handle);
    assert.equal(await page.textContent("#user-pds"), urls.pdsUrl);

    // fetchWithAuth to the account's PDS (DPoP): com.atproto.server.getSession.
    await page.click("#call-api");
    await page.waitForSelector('#api-status[data-status="200"]', WAIT);
    const session = JSON.parse(await page.textContent("#api-body"));
    assert.equal(session.did, did);
    assert.equal(session.handle, handle);

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // The DPoP nonce refusals (PAR and token 400, XRPC 401) are logged by Chromium; nothing else.
    assert.deepEqual(errors.filter((e) => !/^console: Failed to load resource: the server responded with a status of 40[01]\b/.test(e)), []);
  } finally {
    await browser?.close();
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      assert.equal(code, 0, "the demo exits 0 on SIGTERM");
    }
  }
  // Nothing is left listening: not the page, not the PDS, not the PLC directory.
  for (const url of [`${urls.spaOrigin}/`, `${urls.pdsUrl}/xrpc/_health`, `${urls.plcUrl}/_health`]) {
    assert.ok(await refused(url), `${url} still answers after the demo stopped`);
  }
});
