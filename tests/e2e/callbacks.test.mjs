// Fault matrix row 6: bad callbacks. Each one fails with its own error
// code, stores nothing, leaves no code/state/iss in the address bar, and
// sends a code to the token endpoint only when the callback itself was sound.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, openApp, withClient, loginViaRedirect, rawRecord } from "./support/app.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

beforeEach(() => idp.resetCounters());

const exchanges = () => idp.counters().token.byGrantType.authorization_code ?? 0;

// Runs handleRedirectCallback on `page`'s current address; what it rejected
// with, where the address bar ended up, and whether the client is signed in.
async function handleCallback(page, options) {
  const outcome = await withClient(page, options, async (client) => {
    try {
      await client.handleRedirectCallback();
      return { ok: true, href: location.href };
    } catch (e) {
      return { code: e.code, error: e.error, href: location.href, authed: await client.isAuthenticated() };
    }
  });
  return outcome.value;
}

// Logs in as far as the redirect back, rewrites the callback URL with
// `edit`, and hands it to handleRedirectCallback through the address bar.
async function editedCallback(edit) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp);
    const callbackUrl = new URL(await loginViaRedirect(page, idp, options));
    edit(callbackUrl.searchParams);
    await openApp(page, callbackUrl.href);
    const outcome = await handleCallback(page, options);
    return { ...outcome, stored: await rawRecord(page, idp) };
  } finally {
    await context.close();
  }
}

// Every failed callback: its code, nothing stored, signed out, address bar
// back to the redirect URI without the callback parameters.
function assertRefused(outcome, code) {
  assert.equal(outcome.code, code, JSON.stringify(outcome));
  assert.equal(outcome.stored, null, "nothing stored");
  assert.equal(outcome.authed, false, "not signed in");
  assert.equal(outcome.href, `${idp.spaOrigin}/`, "address bar cleaned");
}

const EDITS = [
  { name: "a tampered state", code: "state_mismatch", edit: (p) => p.set("state", "forged-state") },
  { name: "a missing state", code: "state_missing", edit: (p) => p.delete("state") },
  // A mix-up attack: the response claims another issuer.
  { name: "an iss from another issuer", code: "iss_mismatch", edit: (p) => p.set("iss", "http://127.0.0.1:9/evil") },
  {
    name: "error=access_denied",
    code: "access_denied",
    error: "access_denied",
    edit: (p) => {
      p.delete("code");
      p.set("error", "access_denied");
      p.set("error_description", "the user said no");
    },
  },
  {
    name: "error=login_required (prompt=none with no session at the server)",
    code: "login_required",
    error: "login_required",
    edit: (p) => {
      p.delete("code");
      p.set("error", "login_required");
    },
  },
];

for (const { name, code, error, edit } of EDITS) {
  test(`${name} is refused with ${code}, stores nothing, sends no code`, async () => {
    const outcome = await editedCallback(edit);
    assertRefused(outcome, code);
    if (error) assert.equal(outcome.error, error, "the server's error is carried");
    assert.equal(exchanges(), 0, "no code exchange was attempted");
  });
}

test("a callback with no pending transaction (another browser's redirect) is refused with no_transaction", async () => {
  const started = await browser.newContext();
  const victim = await browser.newContext();
  try {
    const options = clientOptions(idp);
    const callbackUrl = await loginViaRedirect(await started.newPage(), idp, options);
    // The attacker's callback URL, opened in a browser that started no login.
    const page = await victim.newPage();
    await openApp(page, callbackUrl);
    const outcome = await handleCallback(page, options);
    assertRefused({ ...outcome, stored: await rawRecord(page, idp) }, "no_transaction");
    assert.equal(exchanges(), 0, "the code was not sent");
  } finally {
    await started.close();
    await victim.close();
  }
});

test("a replayed callback is refused with no_transaction and leaves the session as it was", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp, { storage: "localstorage" });
    const callbackUrl = await loginViaRedirect(page, idp, options);
    assert.equal((await handleCallback(page, options)).ok, true);
    const before = await rawRecord(page, idp, "localstorage");
    await openApp(page, callbackUrl);
    const replay = await handleCallback(page, options);
    assert.equal(replay.code, "no_transaction", JSON.stringify(replay));
    assert.equal(replay.href, `${idp.spaOrigin}/`, "address bar cleaned");
    assert.equal(replay.authed, true, "the existing session is kept");
    assert.equal(await rawRecord(page, idp, "localstorage"), before, "the stored session is untouched");
    assert.equal(exchanges(), 1, "the code was not sent again");
  } finally {
    await context.close();
  }
});

test("a code that was already used is refused with invalid_grant and stores nothing", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp);
    const callbackUrl = await loginViaRedirect(page, idp, options);
    // Keep the pending transaction so the same callback can be presented
    // again as if it were the first time.
    const pending = await page.evaluate(() => Object.entries(sessionStorage));
    assert.ok(pending.length > 0, "a pending transaction is in sessionStorage");
    assert.equal((await handleCallback(page, options)).ok, true, "the first exchange succeeds");
    const signedOut = await withClient(page, options, (client) => client.logout({ revoke: false }));
    assert.deepEqual(signedOut.error, undefined);
    assert.equal(await rawRecord(page, idp), null);

    await page.evaluate((entries) => entries.forEach(([k, v]) => sessionStorage.setItem(k, v)), pending);
    await openApp(page, callbackUrl);
    const outcome = await handleCallback(page, options);
    assertRefused({ ...outcome, stored: await rawRecord(page, idp) }, "invalid_grant");
    assert.equal(exchanges(), 2, "the used code went to the token endpoint once more, and was refused");
    assert.equal(idp.counters().token.errorsByCode.invalid_grant, 1);
  } finally {
    await context.close();
  }
});

// The pending login is taken once: two calls at once (app code calling
// handleRedirectCallback from two places, StrictMode effects without
// latchkey/react) redeem the code once, or the server could revoke the
// tokens the first call stored (RFC 6749 §4.1.2).
test("two handleRedirectCallback calls at once: one completes the login, the other gets no_transaction, one code exchange", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp);
    const callbackUrl = await loginViaRedirect(page, idp, options);
    const outcome = await withClient(
      page,
      options,
      async (client, url) => {
        const settled = await Promise.allSettled([client.handleRedirectCallback(url), client.handleRedirectCallback(url)]);
        return { calls: settled.map((r) => (r.status === "fulfilled" ? "ok" : r.reason.code)).sort(), authed: await client.isAuthenticated() };
      },
      callbackUrl,
    );
    assert.deepEqual(outcome.value, { calls: ["no_transaction", "ok"], authed: true }, JSON.stringify(outcome));
    assert.equal(exchanges(), 1, "the code was redeemed once");
    assert.notEqual(await rawRecord(page, idp), null, "the login is stored");
  } finally {
    await context.close();
  }
});

// Cleaning the address bar changes the URL only: a router's state in the
// history entry (React Router's `idx`, Next.js's own) stays.
test("a completed callback keeps the history entry's state", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp);
    const callbackUrl = await loginViaRedirect(page, idp, options);
    await openApp(page, callbackUrl);
    await page.evaluate(() => history.replaceState({ router: 7 }, "", location.href));
    const outcome = await withClient(page, options, async (client) => {
      await client.handleRedirectCallback();
      return { href: location.href, state: history.state };
    });
    assert.deepEqual(outcome.value, { href: `${idp.spaOrigin}/`, state: { router: 7 } });
  } finally {
    await context.close();
  }
});
