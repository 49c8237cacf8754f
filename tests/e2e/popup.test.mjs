// Popup login (loginWithPopup) against the real test IdP in headless
// Chromium. The popup's redirect page is tests/e2e/app/callback.html, an
// ordinary redirect page (create + handleRedirectCallback): it hands the
// response back to the opening tab, which validates, exchanges and stores.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";

import { listen, closeServer } from "../idp/server.mjs";
import { openApp, rawRecord } from "./support/app.mjs";
import { launchBrowser } from "./support/browser.mjs";
import { installClient, openTab, eventsOf, named, until, isAuthenticated } from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;
let front;

before(async () => {
  front = await startFront();
  const edits = EDITS.map(({ param }) => `${front.origin}/edit/${param}`);
  ({ idp, browser } = await startApp({ redirectUris: edits }));
  front.target = { issuer: idp.issuer, callback: `${idp.spaOrigin}/callback.html` };
});
after(async () => {
  await front?.close();
  await stopApp({ idp, browser });
});

beforeEach(() => idp.resetCounters());

// The popup's callback, rewritten on its way to the redirect page.
const EDITS = [
  { param: "state", code: "state_mismatch", value: "forged-state" },
  { param: "iss", code: "iss_mismatch", value: "http://127.0.0.1:9/evil" },
];

// A server around the IdP for what the test IdP cannot do itself
// (tests/idp is not ours to change); `front.target` says where the IdP is:
//   /coop/auth  a page sent with `Cross-Origin-Opener-Policy: same-origin`,
//               which severs the popup from its opener (and clears its
//               window.name), then forwards to the IdP's /auth unchanged
//   /form/auth  a login form nobody submits: a popup the user is still in
//   /coop/form  that form sent with `Cross-Origin-Opener-Policy: same-origin`
//   /edit/<p>   a registered redirect URI that sets the callback's <p> to a
//               bad value (EDITS) and redirects to the real redirect page
async function startFront() {
  const front = {};
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const { issuer, callback } = front.target;
    const edit = EDITS.find(({ param }) => url.pathname === `/edit/${param}`);
    const html = (headers, body) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", ...headers });
      res.end(`<!doctype html><html><head><link rel="icon" href="data:,"><title>IdP</title></head><body>${body}</body></html>`);
    };
    if (url.pathname === "/coop/auth") {
      const target = JSON.stringify(`${issuer}/auth${url.search}`);
      html({ "Cross-Origin-Opener-Policy": "same-origin" }, `<script>location.replace(${target})</script>`);
    } else if (edit) {
      url.searchParams.set(edit.param, edit.value);
      res.writeHead(302, { Location: `${callback}${url.search}` }).end();
    } else if (url.pathname === "/form/auth" || url.pathname === "/coop/form") {
      const coop = url.pathname === "/coop/form" ? { "Cross-Origin-Opener-Policy": "same-origin" } : {};
      html(coop, `<form><input name="user"><button>Sign in</button></form>`);
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listen(server);
  return Object.assign(front, { origin: `http://127.0.0.1:${port}`, close: () => closeServer(server) });
}

const callbackUri = () => `${idp.spaOrigin}/callback.html`;
const exchanges = () => idp.counters().token.byGrantType.authorization_code ?? 0;

// The opening tab: the app page with a client at window.auth whose redirect
// URI is the redirect page.
async function openerTab(context, extra = {}) {
  const page = await context.newPage();
  await openApp(page, `${idp.spaOrigin}/`);
  await installClient(page, idp, { redirectUri: callbackUri(), ...extra });
  return page;
}

// Starts loginWithPopup in `page` without waiting for it; window.outcome
// gets { value } or { code, message } when it settles.
function startPopupLogin(page, options = {}) {
  return page.evaluate((options) => {
    window.outcome = null;
    window.auth.loginWithPopup(options).then(
      (value) => {
        window.outcome = { value };
      },
      (e) => {
        window.outcome = { code: e.code, name: e.name, message: e.message };
        window.outcomeAt = Date.now();
      },
    );
  }, options);
}

const outcomeOf = (page, ms) => until(() => page.evaluate(() => window.outcome), ms, "loginWithPopup to settle");

// latchkey's popup marks left in localStorage (none once a login settled).
const marksLeft = (page) =>
  page.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith("latchkey:popup:")));

// Runs a test body in a fresh context, closed afterwards.
async function inContext(body, on = browser) {
  const context = await on.newContext();
  try {
    await body(context);
  } finally {
    await context.close();
  }
}

test("popup login resolves with appState, keeps the page, stores the session; another tab hears it", () =>
  inContext(async (context) => {
    const opener = await openerTab(context);
    const other = await openTab(context, idp);
    // In-memory state a redirect login would throw away; the marks of two
    // earlier popup logins: one whose opening tab was closed mid-login
    // (expired, removed now), one still in progress elsewhere (kept).
    await opener.evaluate(() => {
      window.draft = "half-written";
      localStorage.setItem("latchkey:popup:abandoned", String(Date.now() - 1));
      localStorage.setItem("latchkey:popup:elsewhere", String(Date.now() + 60_000));
    });
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener, { appState: { returnTo: "/editor" }, extraParams: { prompt: "consent" } });
    const popup = await opened;

    const outcome = await outcomeOf(opener, 15_000);
    assert.deepEqual(outcome, { value: { appState: { returnTo: "/editor" } } });
    await until(() => popup.isClosed(), 5_000, "the popup to close");
    assert.equal(opener.url(), `${idp.spaOrigin}/`, "the opening page never navigated");
    assert.equal(await opener.evaluate(() => window.draft), "half-written");
    assert.equal(await isAuthenticated(opener), true);
    assert.ok(await rawRecord(opener, idp), "the session is stored");
    assert.equal(exchanges(), 1, "one code exchange, by the opening tab");
    assert.deepEqual(named(await eventsOf(opener), "tokens").map((e) => e.source), ["login"]);

    await until(async () => named(await eventsOf(other), "tokens").some((e) => e.source === "sync"), 5_000, "the other tab to hear the login");
    assert.equal(await isAuthenticated(other), true);
    assert.equal(await opener.evaluate(() => localStorage.getItem("e2e:callback-opener")), "present");
    assert.match(await opener.evaluate(() => localStorage.getItem("e2e:callback-name")), /^latchkey-popup:[\w-]{36}$/);
    assert.deepEqual(await marksLeft(opener), ["latchkey:popup:elsewhere"]);
  }));

test("without sessionStorage a redirect login is refused before leaving the page (storage_error); a popup login still signs in", () =>
  inContext(async (context) => {
    // Storage blocked for the site's session storage, as some privacy
    // settings do: reading window.sessionStorage throws.
    await context.addInitScript(() => {
      Object.defineProperty(window, "sessionStorage", {
        configurable: true,
        get() {
          throw new DOMException("The operation is insecure.", "SecurityError");
        },
      });
    });
    const opener = await openerTab(context);
    const refused = await opener.evaluate(() =>
      window.auth.login({ appState: { to: "/x" } }).then(
        () => ({ went: true }),
        (e) => ({ code: e.code, message: e.message }),
      ),
    );
    assert.equal(refused.code, "storage_error");
    assert.match(refused.message, /pending login.*loginWithPopup/);
    const url = await opener.evaluate(() =>
      window.auth.createLoginUrl().then(
        () => "made",
        (e) => e.code,
      ),
    );
    assert.equal(url, "storage_error");
    assert.equal(opener.url(), `${idp.spaOrigin}/`, "the page never navigated");

    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener, { appState: { returnTo: "/editor" } });
    await opened;
    const outcome = await outcomeOf(opener, 15_000);
    assert.deepEqual(outcome, { value: { appState: { returnTo: "/editor" } } });
    assert.equal(await isAuthenticated(opener), true);
    assert.equal(exchanges(), 1, "only the popup's login reached the token endpoint");
  }));

test("a popup the app opened itself in its click handler is used and named for the hand-over", () =>
  inContext(async (context) => {
    const opener = await openerTab(context);
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await opener.evaluate(() => {
      window.outcome = null;
      const popup = window.open("", "_blank", "popup");
      window.auth.loginWithPopup({ popup, appState: "mine" }).then(
        (value) => (window.outcome = { value }),
        (e) => (window.outcome = { code: e.code, message: e.message }),
      );
    });
    const popup = await opened;
    assert.deepEqual(await outcomeOf(opener, 15_000), { value: { appState: "mine" } });
    await until(() => popup.isClosed(), 5_000, "the popup to close");
    assert.equal(context.pages().length, 1, "no second window was opened");
    assert.match(await opener.evaluate(() => localStorage.getItem("e2e:callback-name")), /^latchkey-popup:[\w-]{36}$/);
    assert.ok(await rawRecord(opener, idp), "the session is stored");
  }));

// A double click: the second call joins the first (one window, one login),
// instead of replacing its pending login (both then failed).
test("two loginWithPopup calls in one click share one popup and one login: the same promise, the first call's result", () =>
  inContext(async (context) => {
    const opener = await openerTab(context);
    let windows = 0;
    context.on("page", () => (windows += 1));
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await opener.evaluate(() => {
      window.outcomes = [];
      const first = window.auth.loginWithPopup({ appState: "first" });
      const second = window.auth.loginWithPopup({ appState: "second" });
      window.samePromise = first === second;
      for (const call of [first, second]) {
        call.then(
          (value) => window.outcomes.push({ value }),
          (e) => window.outcomes.push({ code: e.code, message: e.message }),
        );
      }
    });
    const popup = await opened;
    const outcomes = await until(
      () => opener.evaluate(() => window.outcomes.length === 2 && window.outcomes),
      15_000,
      "both calls to settle",
    );
    assert.deepEqual(outcomes, [{ value: { appState: "first" } }, { value: { appState: "first" } }]);
    assert.equal(await opener.evaluate(() => window.samePromise), true, "the second call returned the first's promise");
    assert.equal(windows, 1, "one popup");
    await until(() => popup.isClosed(), 5_000, "the popup to close");
    assert.equal(exchanges(), 1);
    assert.ok(await rawRecord(opener, idp), "the session is stored");
    assert.deepEqual(await marksLeft(opener), []);
  }));

test("a double click where the app opens its own window each time: the second window is closed at once, both calls share the first's outcome", () =>
  inContext(async (context) => {
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/form/auth` });
    await opener.evaluate(() => {
      window.outcomes = [];
      const click = () => {
        const popup = window.open("", "_blank", "popup");
        return [popup, window.auth.loginWithPopup({ popup })];
      };
      const [, first] = click();
      const [second, joined] = click();
      window.secondClosed = second.closed;
      for (const call of [first, joined]) {
        call.then(
          (value) => window.outcomes.push({ value }),
          (e) => window.outcomes.push({ code: e.code, message: e.message }),
        );
      }
    });
    assert.equal(await opener.evaluate(() => window.secondClosed), true, "the window that was not needed is closed");
    const popup = await until(
      () => context.pages().find((page) => new URL(page.url()).pathname === "/form/auth"),
      10_000,
      "the first window to reach the IdP",
    );
    await popup.close();
    const outcomes = await until(
      () => opener.evaluate(() => window.outcomes.length === 2 && window.outcomes),
      3_000,
      "both calls to settle",
    );
    assert.deepEqual(outcomes.map((o) => o.code), ["popup_closed", "popup_closed"], JSON.stringify(outcomes));
    assert.equal(context.pages().length, 1, "no window left");
    assert.deepEqual(await marksLeft(opener), []);
  }));

// Whoever opened it, the window of a login that fails is closed, also when
// the failure comes before it was navigated (createLoginRequest rejected:
// here a reserved extra parameter), as when it comes later (awaitCallback).
test("a login refused before the popup was navigated closes the window, whether latchkey or the app opened it", () =>
  inContext(async (context) => {
    const page = await openerTab(context);
    for (const appOpensIt of [false, true]) {
      const opened = context.waitForEvent("page", { timeout: 10_000 });
      const outcome = await page.evaluate((appOpensIt) => {
        const popup = appOpensIt ? window.open("", "_blank", "popup") : undefined;
        return window.auth.loginWithPopup({ popup, extraParams: { state: "mine" } }).then(
          () => ({ ok: true }),
          (e) => ({ code: e.code }),
        );
      }, appOpensIt);
      const popup = await opened;
      assert.deepEqual(outcome, { code: "invalid_option" });
      await until(() => popup.isClosed(), 3_000, `the popup ${appOpensIt ? "the app" : "latchkey"} opened to be closed`);
    }
    assert.deepEqual(await marksLeft(page), []);
  }));

test("the user closes the popup: popup_closed within a second, nothing stored", () =>
  inContext(async (context) => {
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/form/auth` });
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener);
    const popup = await opened;
    await popup.waitForURL((url) => url.pathname === "/form/auth", { timeout: 10_000 });
    const closed = Date.now();
    await popup.close();
    const outcome = await outcomeOf(opener, 3_000);
    // Timed in the page, when the call rejected: not this test's polling.
    const ms = (await opener.evaluate(() => window.outcomeAt)) - closed;
    assert.equal(outcome.code, "popup_closed", JSON.stringify(outcome));
    assert.equal(outcome.name, "LatchkeyError");
    assert.ok(ms < 1_000, `noticed after ${ms} ms`);
    assert.equal(await rawRecord(opener, idp), null);
    assert.equal(await isAuthenticated(opener), false);
    assert.deepEqual(await marksLeft(opener), []);
  }));

test("a popup left open past timeoutSeconds: popup_timeout, and latchkey closes it", () =>
  inContext(async (context) => {
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/form/auth` });
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    const started = Date.now();
    await startPopupLogin(opener, { timeoutSeconds: 1 });
    const popup = await opened;
    const outcome = await outcomeOf(opener, 5_000);
    assert.equal(outcome.code, "popup_timeout", JSON.stringify(outcome));
    assert.ok(Date.now() - started >= 1_000, "not before the timeout");
    await until(() => popup.isClosed(), 3_000, "latchkey to close the popup");
    assert.deepEqual(await marksLeft(opener), []);
  }));

test("the opening tab reloaded mid-login takes its popup with it", () =>
  inContext(async (context) => {
    // An IdP page that waits for the user: the login is still at the IdP.
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/form/auth` });
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener);
    const popup = await opened;
    await popup.waitForURL(`${front.origin}/form/auth**`, { timeout: 10_000 });
    await opener.reload();
    await until(() => popup.isClosed(), 5_000, "the popup to close with the page that opened it");
    assert.equal(exchanges(), 0);
  }));

test("a login popup's response that no tab takes: popup_opener_gone in the popup, which stays open", () =>
  inContext(async (context) => {
    // A popup whose opening tab is gone (a severed popup its page could not
    // close): named as latchkey names its popups, nobody listening.
    const page = await context.newPage();
    await page.addInitScript(() => {
      window.name = "latchkey-popup:00000000-0000-4000-8000-000000000000";
    });
    const started = Date.now();
    await page.goto(`${idp.spaOrigin}/callback.html?code=c-1&state=s-1`);
    await until(() => page.evaluate(() => document.body.dataset.error ?? document.body.dataset.done), 10_000, "the redirect page to finish");
    assert.equal(await page.evaluate(() => document.body.dataset.error), "popup_opener_gone");
    assert.ok(Date.now() - started >= 2_000, "after waiting for a tab to take it");
    assert.equal(page.isClosed(), false, "the window is left open for the page to say so");
    assert.equal(exchanges(), 0);
  }));

test("a blocked popup: popup_blocked, no window, nothing stored", async () => {
  // Playwright turns Chromium's popup blocker off; this browser keeps it on.
  const blocking = await launchBrowser({ popupBlocking: true });
  try {
    await inContext(async (context) => {
      const opener = await openerTab(context);
      let windows = 0;
      context.on("page", () => (windows += 1));
      // Past the user activation Playwright's evaluate grants (about 5 s in
      // Chromium), as after a long await in a click handler.
      const outcome = await opener.evaluate(async () => {
        while (navigator.userActivation.isActive) await new Promise((resolve) => setTimeout(resolve, 100));
        return window.auth.loginWithPopup().then(
          () => ({ ok: true }),
          (e) => ({ code: e.code, name: e.name }),
        );
      });
      assert.deepEqual(outcome, { code: "popup_blocked", name: "LatchkeyError" });
      assert.equal(windows, 0, "no window opened");
      assert.equal(await rawRecord(opener, idp), null);
      assert.deepEqual(await marksLeft(opener), []);
    }, blocking);
  } finally {
    await blocking.close();
  }
});

for (const { param, code, value } of EDITS) {
  test(`a popup callback with a bad ${param}: ${code} in the opening tab, nothing stored, no code sent`, () =>
    inContext(async (context) => {
      const opener = await openerTab(context, { redirectUri: `${front.origin}/edit/${param}` });
      const opened = context.waitForEvent("page", { timeout: 10_000 });
      await startPopupLogin(opener);
      const popup = await opened;
      const landed = [];
      popup.on("framenavigated", (frame) => landed.push(frame.url()));
      const outcome = await outcomeOf(opener, 15_000);
      assert.equal(outcome.code, code, JSON.stringify(outcome));
      assert.ok(
        landed.some((url) => url.startsWith(`${idp.spaOrigin}/callback.html`) && new URL(url).searchParams.get(param) === value),
        `the redirect page got the bad ${param}: ${landed}`,
      );
      await until(() => popup.isClosed(), 5_000, "the popup to close");
      assert.equal(await rawRecord(opener, idp), null, "nothing stored");
      assert.equal(await isAuthenticated(opener), false);
      assert.equal(exchanges(), 0, "no code exchange");
      assert.deepEqual(await marksLeft(opener), []);
    }));
}

test("an IdP sending COOP same-origin severs the popup; with closeDetection 'timeout' the login completes", () =>
  inContext(async (context) => {
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/coop/auth` });
    const other = await openTab(context, idp);
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener, { closeDetection: "timeout", appState: 7 });
    const popup = await opened;
    const outcome = await outcomeOf(opener, 15_000);
    assert.deepEqual(outcome, { value: { appState: 7 } });
    assert.equal(
      await opener.evaluate(() => localStorage.getItem("e2e:callback-opener")),
      "null",
      "the redirect page had no window.opener: the hand-over did not need it",
    );
    assert.equal(
      await opener.evaluate(() => localStorage.getItem("e2e:callback-name")),
      "",
      "COOP cleared window.name: the state mark routed the callback",
    );
    await until(() => popup.isClosed(), 5_000, "the severed popup to close itself");
    assert.ok(await rawRecord(opener, idp), "the session is stored");
    assert.equal(exchanges(), 1);
    await until(async () => named(await eventsOf(other), "tokens").some((e) => e.source === "sync"), 5_000, "the other tab to hear the login");
    assert.deepEqual(await marksLeft(opener), []);
  }));

test("closeDetection 'timeout': a new call after the popup was closed opens a new one; the first login ends popup_closed", () =>
  inContext(async (context) => {
    // The IdP's sign-in page sends COOP and waits for the user.
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/coop/form` });
    let opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener, { closeDetection: "timeout", timeoutSeconds: 60 });
    const first = await opened;
    await first.waitForURL(`${front.origin}/coop/form**`, { timeout: 10_000 });
    await first.close();
    opened = context.waitForEvent("page", { timeout: 10_000 });
    await opener.evaluate(() => {
      window.second = null;
      window.auth.loginWithPopup({ closeDetection: "timeout", timeoutSeconds: 60 }).catch((e) => {
        window.second = e.code;
      });
    });
    const second = await opened;
    const outcome = await outcomeOf(opener, 5_000);
    assert.equal(outcome.code, "popup_closed", JSON.stringify(outcome));
    assert.match(outcome.message, /replaced/);
    await second.waitForURL(`${front.origin}/coop/form**`, { timeout: 10_000 });
    assert.equal(await opener.evaluate(() => window.second), null, "the second login is under way");
    assert.equal(exchanges(), 0);
  }));

test("PAR behind an IdP sending COOP same-origin: the URL has no state, the login's state still routes the callback", () =>
  inContext(async (context) => {
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/coop/auth`, par: true });
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener, { closeDetection: "timeout", appState: 8 });
    const popup = await opened;
    const outcome = await outcomeOf(opener, 15_000);
    assert.deepEqual(outcome, { value: { appState: 8 } });
    assert.equal(await opener.evaluate(() => localStorage.getItem("e2e:callback-name")), "", "COOP cleared window.name");
    await until(() => popup.isClosed(), 5_000, "the severed popup to close itself");
    assert.ok(await rawRecord(opener, idp), "the session is stored");
    assert.equal(exchanges(), 1);
    assert.deepEqual(await marksLeft(opener), []);
  }));

// The user still signing in on a COOP page (a form nobody submits): not an IdP that redirects
// back at once, which may finish before the first poll sees the severed popup.
test("an IdP sending COOP same-origin, default closeDetection: the severed popup reads as closed while the user signs in (documented)", () =>
  inContext(async (context) => {
    const opener = await openerTab(context, { authorizationEndpoint: `${front.origin}/coop/form` });
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await startPopupLogin(opener);
    await opened;
    const outcome = await outcomeOf(opener, 15_000);
    // What README and index.d.ts say: COOP hides the popup, so "poll"
    // cannot tell it from a closed one. This test fails if that changes.
    assert.equal(outcome.code, "popup_closed", JSON.stringify(outcome));
  }));

test("a misspelt option (timeout for timeoutSeconds) is refused, not ignored, and the popup closed", () =>
  inContext(async (context) => {
    const page = await openerTab(context);
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    const outcome = await page.evaluate(() =>
      window.auth.loginWithPopup({ timeout: 30 }).then(
        () => ({ ok: true }),
        (e) => ({ code: e.code, message: e.message }),
      ),
    );
    const popup = await opened;
    assert.equal(outcome.code, "invalid_option");
    assert.match(outcome.message, /timeout/);
    await until(() => popup.isClosed(), 3_000, "the popup to be closed");
    assert.equal(exchanges(), 0);
  }));

test("a window the app opened for a call refused before the login begins is closed (bad options, a disposed client)", () =>
  inContext(async (context) => {
    const opener = await openerTab(context);
    const opened = [];
    context.on("page", (page) => opened.push(page));
    const codes = await opener.evaluate(async () => {
      const attempt = (options) => window.auth.loginWithPopup(options).then(() => "resolved", (e) => e.code);
      const first = await attempt({ popup: window.open("", "_blank", "popup"), timeoutSeconds: 0 });
      window.auth.dispose();
      const second = await attempt({ popup: window.open("", "_blank", "popup") });
      return [first, second];
    });
    assert.deepEqual(codes, ["invalid_option", "client_disposed"]);
    assert.equal(opened.length, 2, "the app opened two windows");
    for (const page of opened) {
      if (!page.isClosed()) await page.waitForEvent("close", { timeout: 5_000 }).catch(() => {});
    }
    assert.deepEqual(opened.map((page) => page.isClosed()), [true, true], "both closed");
  }));

test("loginWithPopup refuses bad options (and a null popup) before opening anything", () =>
  inContext(async (context) => {
    const opener = await openerTab(context);
    let windows = 0;
    context.on("page", () => (windows += 1));
    const codes = await opener.evaluate(async () => {
      const attempt = (options) => window.auth.loginWithPopup(options).then(() => "resolved", (e) => e.code);
      return [
        await attempt({ timeoutSeconds: 0 }),
        await attempt({ timeoutSeconds: 601 }),
        await attempt({ timeoutSeconds: "60" }),
        await attempt({ closeDetection: "never" }),
        await attempt({ popup: {} }),
        // Options that are not an object would read as none.
        await attempt("prompt=consent"),
        await attempt(42),
        // The app's own window.open was refused.
        await attempt({ popup: null }),
      ];
    });
    assert.deepEqual(codes, [
      ...Array(7).fill("invalid_option"),
      "popup_blocked",
    ]);
    assert.equal(windows, 0);
  }));

test("without BroadcastChannel loginWithPopup is unsupported_environment before opening anything", () =>
  inContext(async (context) => {
    const opener = await openerTab(context);
    let windows = 0;
    context.on("page", () => (windows += 1));
    const outcome = await opener.evaluate(() => {
      delete window.BroadcastChannel;
      return window.auth.loginWithPopup().then(() => "resolved", (e) => [e.name, e.code]);
    });
    assert.deepEqual(outcome, ["LatchkeyError", "unsupported_environment"]);
    assert.equal(windows, 0);
  }));
