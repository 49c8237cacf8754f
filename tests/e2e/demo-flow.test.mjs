// The demo page (www/) does what it says: it finds the test IdP by itself, signs in through the
// real redirect, calls the API, and a refresh made by a second tab shows up in the first tab's
// event log. Leaves a screenshot in tests/e2e/artifacts/demo.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { startIdp } from "../idp/server.mjs";
import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { ROOT, crateVersion, requireStagedWww } from "./support/project.mjs";

const TOKEN_TTL = 4; // seconds: the token goes stale within the test
const WAIT = { timeout: 15_000 };
const SCREENSHOT = path.join(ROOT, "tests/e2e/artifacts/demo.png");

let idp;
let browser;

before(async () => {
  idp = await startIdp({ serveSpa: { root: requireStagedWww() }, accessTokenTtl: TOKEN_TTL });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await idp?.close();
});

const signedIn = (page) => page.waitForSelector('body[data-ready="true"][data-session="signed-in"]', { state: "attached", ...WAIT });

async function callApi(page) {
  await page.click("#call-api");
  await page.waitForSelector('#api-status[data-status="200"]', WAIT);
  return JSON.parse(await page.textContent("#api-body"));
}

test("demo page: sign in, call the API, see a second tab's refresh in the first tab's log, sign out in both", { timeout: 40_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  context.on("page", (page) => errors.push(collectPageErrors(page)));
  try {
    const tab1 = await context.newPage();
    await tab1.goto(`${idp.spaOrigin}/`);
    await tab1.waitForSelector('body[data-ready="true"][data-session="signed-out"]', { state: "attached", ...WAIT });
    assert.equal(await tab1.textContent("#version"), crateVersion());
    assert.equal(await tab1.textContent("#issuer"), idp.issuer, "the page found the issuer by itself");
    assert.equal(await tab1.textContent("#storage"), "indexeddb");
    assert.equal(await tab1.textContent("#session"), "Signed out");

    // Sign in: a real redirect to the IdP (which signs alice in) and back with ?code=.
    await tab1.click("#sign-in");
    await signedIn(tab1);
    assert.equal(await tab1.textContent("#session"), "Signed in");
    assert.equal(new URL(tab1.url()).search, "", "the callback parameters are gone from the address bar");
    await tab1.waitForSelector('#log li[data-event="tokens"][data-source="login"]', WAIT);
    assert.match(await tab1.textContent("#expiry"), /^expires in \d+ s/);

    const who = await callApi(tab1);
    assert.equal(who.sub, "alice");
    assert.equal(typeof who.exp, "number");
    assert.match(await tab1.textContent("#api-status"), /^200 /);

    // A second tab, opened from the page's own link, shares the session.
    const [tab2] = await Promise.all([context.waitForEvent("page"), tab1.click("#second-tab")]);
    await signedIn(tab2);

    // Wait until the token tab 1 knows of is past its expiry, then call from tab 2: tab 2
    // refreshes, tab 1 hears about it.
    const expiry = Date.parse(await tab1.getAttribute("#expiry", "datetime"));
    assert.ok(Number.isFinite(expiry), "tab 1 shows the expiry as a datetime");
    await sleep(Math.max(0, expiry - Date.now()) + 300);
    assert.match(await tab1.textContent("#expiry"), /^expired \d+ s ago/);

    assert.equal((await callApi(tab2)).sub, "alice");
    await tab2.waitForSelector('#log li[data-event="tokens"][data-source="refresh"]', WAIT);
    const synced = await tab1.waitForSelector('#log li[data-event="tokens"][data-source="sync"]', WAIT);
    assert.match(await synced.textContent(), /from another tab/);
    assert.equal(await tab1.locator('#log li[data-source="refresh"]').count(), 0, "tab 1 refreshed nothing itself");
    assert.ok(idp.counters().token.byGrantType.refresh_token >= 1);
    // Tab 1's countdown follows the new token.
    await tab1.waitForFunction((old) => Date.parse(document.getElementById("expiry").dateTime) > old, expiry, WAIT);

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await tab1.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000, "the screenshot is not blank");

    // Sign out in tab 2: both tabs show it, the tokens are revoked at the server.
    await tab2.click("#sign-out");
    await tab2.waitForSelector('#log li[data-event="logout"][data-revocation="revoked"]', WAIT);
    for (const tab of [tab1, tab2]) {
      await tab.waitForSelector('body[data-session="signed-out"] #log li[data-event="signedOut"]', { state: "attached", ...WAIT });
      assert.equal(await tab.textContent("#session"), "Signed out");
      assert.equal(await tab.isVisible("#sign-in"), true);
      assert.equal(await tab.isVisible("#sign-out"), false);
    }
    assert.deepEqual(idp.counters().revocation.byHint, { refresh_token: 1, access_token: 1 });

    assert.deepEqual(errors.flat(), [], "no page errors");
  } finally {
    await context.close();
  }
});

test("demo page: 'Sign in with a popup' signs in without leaving the page", { timeout: 30_000 }, async () => {
  const context = await browser.newContext();
  const errors = [];
  context.on("page", (page) => errors.push(collectPageErrors(page)));
  try {
    const tab = await context.newPage();
    await tab.goto(`${idp.spaOrigin}/`);
    await tab.waitForSelector('body[data-ready="true"][data-session="signed-out"]', { state: "attached", ...WAIT });
    const [popup] = await Promise.all([context.waitForEvent("page", WAIT), tab.click("#sign-in-popup")]);
    await signedIn(tab);
    await tab.waitForSelector('#log li[data-event="tokens"][data-source="login"]', WAIT);
    assert.equal(tab.url(), `${idp.spaOrigin}/`, "the page never navigated");
    if (!popup.isClosed()) await popup.waitForEvent("close", WAIT).catch(() => {});
    assert.equal(popup.isClosed(), true, "the popup closed itself");
    assert.equal(await tab.isVisible("#error"), false);
    const who = await callApi(tab);
    assert.equal(who.sub, "alice");
    assert.deepEqual(errors.flat(), []);
  } finally {
    await context.close();
  }
});
