// latchkey/react in a real app: examples/react (React 19, StrictMode on),
// with the packed tarball installed the way a user installs it, type-checked
// with `tsc --strict`, built with Vite 7, and driven in headless Chromium
// against the test IdP: redirect and popup sign-in, the user shown, an API
// call through fetchWithAuth, and re-renders when another tab signs out and
// when the server ends the session (sessionExpired).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import path from "node:path";

import { startIdp, TEST_USER } from "../idp/server.mjs";
import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { ROOT, crateVersion } from "./support/project.mjs";
import { clientOptions } from "./support/app.mjs";
import { until } from "./support/session.mjs";

const run = promisify(execFile);
const TARBALL = path.join(ROOT, "dist", `latchkey-${crateVersion()}.tgz`);
const EXAMPLE = path.join(ROOT, "examples/react");
// Under the repository, so react, react-dom and their types resolve from
// its node_modules (dev dependencies) and only the tarball is installed.
const APP = path.join(ROOT, "target/react-app");
const BIN = path.join(ROOT, "node_modules/.bin");

let idp;
let browser;

// Copies the example, installs the tarball offline, type-checks and builds.
async function buildApp() {
  rmSync(APP, { recursive: true, force: true });
  cpSync(EXAMPLE, APP, { recursive: true });
  writeFileSync(path.join(APP, "package.json"), JSON.stringify({ name: "latchkey-react-app", private: true, type: "module" }) + "\n");
  // The one change to the example: the test can unmount the app
  // (window.unmountApp), hide it in an <Activity> (window.setAppMode), and
  // reach useAuth()'s values through a probe (window.reactAuth, the latest;
  // window.reactAuthFirst, the first render's; window.sawDisposedClient, set
  // when a render was handed a disposed client; window.callOnShow, a URL the
  // probe fetches from an unguarded mount effect).
  const main = path.join(APP, "src/main.tsx");
  const edits = [
    [
      'createRoot(document.getElementById("root")!).render(',
      [
        'const root = createRoot(document.getElementById("root")!);',
        "(window as unknown as { unmountApp: () => void }).unmountApp = () => root.unmount();",
        "root.render(",
      ].join("\n"),
    ],
    ['import { StrictMode } from "react";', 'import { Activity, StrictMode, useState, type ReactNode } from "react";'],
    ["  <StrictMode>\n", "  <StrictMode>\n    <Hideable>\n"],
    ["  </StrictMode>,", "    </Hideable>\n  </StrictMode>,"],
    ["      <ApiOnMount />\n", "      <ApiOnMount />\n      <Probe />\n"],
    ['import { AuthProvider } from "latchkey/react";', 'import { AuthProvider, useAuth } from "latchkey/react";\nimport { useEffect } from "react";'],
  ];
  let source = readFileSync(main, "utf8");
  for (const [from, to] of edits) {
    if (!source.includes(from)) throw new Error(`examples/react/src/main.tsx no longer has ${from}`);
    source = source.replace(from, to);
  }
  source += [
    "function Hideable({ children }: { children: ReactNode }) {",
    '  const [mode, setMode] = useState<"visible" | "hidden">("visible");',
    "  (window as unknown as { setAppMode: typeof setMode }).setAppMode = setMode;",
    "  return <Activity mode={mode}>{children}</Activity>;",
    "}",
    "function Probe() {",
    "  const auth = useAuth();",
    "  const w = window as unknown as Record<string, unknown>;",
    "  w.reactAuthFirst ??= auth;",
    "  w.renders = ((w.renders as number | undefined) ?? 0) + 1;",
    "  w.reactAuth = auth;",
    "  try {",
    "    void auth.client?.storageKind;",
    "  } catch (e) {",
    "    w.sawDisposedClient = (e as { code?: string }).code;",
    "  }",
    "  useEffect(() => {",
    "    if (typeof w.callOnShow === \"string\") auth.fetchWithAuth(w.callOnShow).catch(() => {});",
    "  }, []);",
    "  return null;",
    "}",
    "",
  ].join("\n");
  writeFileSync(main, source);
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", TARBALL], { cwd: APP });
  // React's development build: only it runs StrictMode's double mount.
  const env = { ...process.env, NODE_ENV: "development" };
  for (const [tool, args] of [
    ["tsc", ["-p", ".", "--strict"]],
    ["vite", ["build"]],
  ]) {
    try {
      await run(path.join(BIN, tool), args, { cwd: APP, env });
    } catch (error) {
      throw new Error(`${tool} failed:\n${error.stdout}\n${error.stderr}`);
    }
  }
  return path.join(APP, "dist");
}

before(async () => {
  if (!existsSync(TARBALL)) throw new Error(`${TARBALL} is missing: run scripts/build-pkg`);
  idp = await startIdp({ serveSpa: { root: await buildApp() } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await idp?.close();
});

const text = (page, selector) => page.textContent(selector, { timeout: 10_000 });
const statusIs = (page, value) =>
  page.waitForFunction((value) => document.getElementById("status")?.textContent === value, value, { timeout: 10_000 });
const exchanges = () => idp.counters().token.byGrantType.authorization_code ?? 0;
const refreshes = () => idp.counters().token.byGrantType.refresh_token ?? 0;

// A fresh context whose pages get the app's configuration (the test IdP),
// with `extra` options.
async function appContext(extra = {}) {
  const context = await browser.newContext();
  await context.addInitScript((config) => {
    window.latchkeyExample = config;
  }, {
    // The API lives on the IdP's origin, not the page's.
    options: { ...clientOptions(idp), ...extra },
    apiUrl: idp.whoamiUrl,
  });
  return context;
}

test("redirect and popup sign-in, the user, fetchWithAuth, and a sign-out in another tab re-render the app", async () => {
  const context = await appContext();
  try {
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "signed out");
    // StrictMode mounts twice; one client means one discovery request.
    const discoveries = () =>
      page.evaluate(() => performance.getEntriesByType("resource").filter((e) => e.name.includes("/.well-known/")).length);
    assert.equal(await discoveries(), 1, "one client for StrictMode's double mount");

    // Redirect sign-in: back on the app, the response is handled once (no
    // no_transaction from StrictMode's second mount) and appState used.
    await page.click("#sign-in");
    await page.waitForURL((url) => url.pathname === "/after-login", { timeout: 15_000 });
    await statusIs(page, "signed in");
    assert.equal(await text(page, "#user"), TEST_USER.sub);
    assert.equal(await page.$("#callback-error"), null);
    assert.equal(exchanges(), 1);
    // Here the client starts from the metadata kept by the first page and
    // revalidates it 2 s later: one client, one revalidation (bounded wait,
    // then a grace for a second client's, due at the same moment).
    for (let i = 0; i < 50 && (await discoveries()) < 1; i += 1) await page.waitForTimeout(100);
    await page.waitForTimeout(300);
    assert.equal(await discoveries(), 1, "one client on the redirect page too");

    await page.click("#call-api");
    assert.equal(await text(page, "#api"), `200 ${TEST_USER.sub}`);

    // A page of the app at another path than the redirect URI's (`/`), with
    // its own `code` and `state`, is not a login response: nothing is handed
    // to handleRedirectCallback (which would fail with no_transaction), and
    // the session stays. (The static server serves files only: the app's
    // page at another path is /index.html.)
    const invited = await context.newPage();
    const invitedErrors = collectPageErrors(invited);
    await invited.goto(`${idp.spaOrigin}/index.html?code=team-42&state=from-the-app`);
    await statusIs(invited, "signed in");
    assert.equal(await invited.$("#callback-error"), null);
    assert.equal(new URL(invited.url()).search, "?code=team-42&state=from-the-app", "its address is left alone");
    assert.equal(exchanges(), 1);
    assert.deepEqual(invitedErrors, []);
    await invited.close();

    // Another tab signs out: this one re-renders signed out.
    const other = await context.newPage();
    const otherErrors = collectPageErrors(other);
    await other.goto(`${idp.spaOrigin}/`);
    await statusIs(other, "signed in");
    await other.click("#sign-out");
    await statusIs(other, "signed out");
    await statusIs(page, "signed out");

    // Popup sign-in: the page stays where it is; the other tab hears it.
    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await page.click("#sign-in-popup");
    const popup = await opened;
    await statusIs(page, "signed in");
    assert.equal(new URL(page.url()).pathname, "/after-login", "no navigation");
    if (!popup.isClosed()) await popup.waitForEvent("close", { timeout: 5_000 }).catch(() => {});
    assert.equal(popup.isClosed(), true, "the popup closed itself");
    assert.equal(await text(page, "#user"), TEST_USER.sub);
    await statusIs(other, "signed in");
    assert.equal(exchanges(), 2);
    assert.equal(await page.$("#failure"), null);
    assert.deepEqual([...errors, ...otherErrors], []);

    // The server ends the session: the API call fails, the refresh gets
    // invalid_grant, and both tabs re-render signed out (sessionExpired).
    idp.revokeAllGrants();
    await page.click("#call-api");
    assert.equal(await text(page, "#failure"), "session_expired");
    await statusIs(page, "signed out");
    await statusIs(other, "signed out");
    // Only the browser's own lines for the 401 and the refused refresh.
    const unexpected = [...errors, ...otherErrors].filter((e) => !e.startsWith("console: Failed to load resource"));
    assert.deepEqual(unexpected, []);
  } finally {
    await context.close();
  }
});

// examples/react's <ApiOnMount> calls fetchWithAuth in its mount effect,
// which React runs before <AuthProvider>'s own (children first): the call
// must wait for the client, and on the redirect page for the login response
// to be completed, not fail because the provider's effect has not run yet.
test("a descendant's mount effect runs before AuthProvider's: its fetchWithAuth waits for the client and the login response", async () => {
  const context = await appContext();
  try {
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "signed out");
    assert.equal(await text(page, "#on-mount"), "not_authenticated", "a LatchkeyError, not a provider-not-ready Error");

    const before = exchanges();
    await page.click("#sign-in");
    await page.waitForURL((url) => url.pathname === "/after-login", { timeout: 15_000 });
    await statusIs(page, "signed in");
    assert.equal(await text(page, "#on-mount"), `200 ${TEST_USER.sub}`, "the call on the redirect page went out signed in");
    assert.equal(exchanges() - before, 1, "the login response was completed once");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// The app's own onRedirectCallback throwing is the app's error, not the
// login's: the session stands, `error` stays null, and the exception is
// reported like one thrown by an event listener (the page's `error` event).
// Here the example's callback throws because history.replaceState does for
// its `returnTo`.
test("an exception thrown by the app's onRedirectCallback is reported as uncaught, not as the login's error", async () => {
  const context = await appContext();
  try {
    await context.addInitScript(() => {
      const replaceState = History.prototype.replaceState;
      History.prototype.replaceState = function (state, unused, url) {
        if (url === "/after-login") throw new Error("the app's onRedirectCallback failed");
        return replaceState.call(this, state, unused, url);
      };
    });
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "signed out");
    const back = page.waitForURL((url) => url.origin === idp.spaOrigin && url.searchParams.has("code"), { timeout: 15_000 });
    await page.click("#sign-in");
    await back;
    await statusIs(page, "signed in");
    assert.equal(await page.$("#callback-error"), null, "the login did not fail");
    assert.equal(await text(page, "#user"), TEST_USER.sub);
    assert.equal(new URL(page.url()).pathname, "/", "the callback did not navigate");
    await until(() => errors.length > 0, 5_000, "the app's exception to be reported");
    assert.deepEqual(errors, ["pageerror: the app's onRedirectCallback failed"]);
  } finally {
    await context.close();
  }
});

// Unmounted for good (not StrictMode's rehearsal, which every test above
// goes through), the provider disposes its client: a stale token is not
// refreshed when the tab becomes visible, where a mounted app's client, in
// the same state, refreshes it.
test("an unmounted AuthProvider disposes its client; StrictMode's rehearsal does not", async () => {
  const context = await appContext();
  try {
    idp.setAccessTokenTtl(2);
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "signed out");
    await page.click("#sign-in");
    await page.waitForURL((url) => url.pathname === "/after-login", { timeout: 15_000 });
    await statusIs(page, "signed in");
    const mounted = await context.newPage();
    await mounted.goto(`${idp.spaOrigin}/`);
    await statusIs(mounted, "signed in");

    await page.evaluate(() => window.unmountApp());
    assert.equal(await page.$("#status"), null, "unmounted");
    // Every token issued so far has expired.
    await page.waitForTimeout(2_800);
    idp.setAccessTokenTtl(3600);
    const before = refreshes();
    await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await page.waitForTimeout(1_500);
    assert.equal(refreshes() - before, 0, "the unmounted provider's client did not refresh");

    await mounted.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await until(() => refreshes() - before === 1, 5_000, "the mounted app's refresh");
    assert.deepEqual(errors, []);
  } finally {
    idp.setAccessTokenTtl(3600);
    await context.close();
  }
});

// React's <Activity mode="hidden"> runs the cleanups of the subtree it
// hides, as an unmount does: the provider's client is disposed. Shown
// again, the provider starts a new client and the app works as before.
test("an AuthProvider hidden in an <Activity> and shown again works with a new client", async () => {
  const context = await appContext();
  try {
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "signed out");
    await page.click("#sign-in");
    await page.waitForURL((url) => url.pathname === "/after-login", { timeout: 15_000 });
    await statusIs(page, "signed in");

    await page.evaluate(() => window.setAppMode("hidden"));
    // Past the provider's deferred disposal.
    await page.waitForTimeout(200);
    await page.evaluate(() => window.setAppMode("visible"));
    await statusIs(page, "signed in");
    await page.click("#call-api");
    assert.equal(await text(page, "#api"), `200 ${TEST_USER.sub}`);
    assert.equal(await page.$("#failure"), null);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// Signs in with the redirect in a new page of `context`; resolves with the page, signed in.
async function signedInPage(context) {
  const page = await context.newPage();
  await page.goto(`${idp.spaOrigin}/`);
  await statusIs(page, "signed out");
  await page.click("#sign-in");
  await page.waitForURL((url) => url.pathname === "/after-login", { timeout: 15_000 });
  await statusIs(page, "signed in");
  return page;
}

// fetch() reads its arguments when it is called, and so does the client's
// fetchWithAuth; useAuth()'s must too, also while the client is starting.
test("useAuth().fetchWithAuth called before the client is ready sends what it was given at the call", async () => {
  const context = await appContext();
  try {
    const page = await signedInPage(context);
    const errors = collectPageErrors(page);
    // A new load: window.reactAuthFirst is the loading render's value.
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "signed in");
    const out = await page.evaluate(async (url) => {
      const init = { method: "POST", body: "first" };
      const answer = window.reactAuthFirst.fetchWithAuth(url, init);
      init.body = "changed";
      return (await (await answer).json()).body;
    }, idp.echoUrl);
    assert.equal(out, "first");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("useAuth().error from a failed login response clears once a later login succeeds", async () => {
  const context = await appContext();
  try {
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/?code=forged&state=forged`);
    await statusIs(page, "signed out");
    assert.equal(await text(page, "#callback-error"), "no_transaction");

    const opened = context.waitForEvent("page", { timeout: 10_000 });
    await page.click("#sign-in-popup");
    await opened;
    await statusIs(page, "signed in");
    assert.equal(await page.$("#callback-error"), null, "the old failure is no longer shown");
    assert.equal(await page.evaluate(() => window.reactAuth.error), null);
    assert.deepEqual(errors.filter((e) => !e.startsWith("console: Failed to load resource")), []);
  } finally {
    await context.close();
  }
});

// An action called after the provider unmounted (an async handler that
// finishes late) gets its answer from a client that is disposed after it:
// nothing is left listening to the tab's visibility.
test("an action called after AuthProvider unmounted gets its answer, and its client is disposed after it", async () => {
  const context = await appContext();
  try {
    idp.setAccessTokenTtl(2);
    const page = await signedInPage(context);
    const errors = collectPageErrors(page);
    await page.evaluate(() => window.unmountApp());
    await page.waitForTimeout(100);
    const late = await page.evaluate(async () => {
      const response = await window.reactAuth.getAccessToken().then(
        () => "token",
        (e) => e.code,
      );
      return response;
    });
    assert.equal(late, "token");
    // Every token issued so far has expired.
    await page.waitForTimeout(2_800);
    idp.setAccessTokenTtl(3600);
    const before = refreshes();
    await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await page.waitForTimeout(1_500);
    assert.equal(refreshes() - before, 0, "no client left behind refreshes");
    assert.deepEqual(errors, []);
  } finally {
    idp.setAccessTokenTtl(3600);
    await context.close();
  }
});

// Shown again, a descendant's unguarded mount effect starts the new client
// before the provider's effect runs; until it is ready, useAuth()'s value
// must not hand out the client disposed at the hide.
test("an <Activity> shown again with a child calling an action on mount never hands out the disposed client", async () => {
  const context = await appContext();
  try {
    const page = await signedInPage(context);
    const errors = collectPageErrors(page);
    await page.evaluate((url) => {
      window.callOnShow = url;
    }, idp.whoamiUrl);
    await page.evaluate(() => window.setAppMode("hidden"));
    await page.waitForTimeout(200);
    const right = await page.evaluate(() => {
      window.setAppMode("visible");
      // At once, while the new client is starting.
      return new Promise((resolve) =>
        setTimeout(() => window.reactAuth.loginWithPopup({ timeoutSeconds: 1 }).then(() => "resolved", (e) => e.code).then(resolve)),
      );
    });
    assert.notEqual(right, "client_disposed");
    assert.equal(await page.evaluate(() => window.sawDisposedClient), undefined);
    await page.waitForFunction(() => window.reactAuth?.isLoading === false && window.reactAuth.client !== null, null, {
      timeout: 10_000,
    });
    assert.equal(await page.evaluate(() => window.reactAuth.client.storageKind), "indexeddb", "the client in use is live");
    await statusIs(page, "signed in");
    await page.click("#call-api");
    assert.equal(await text(page, "#api"), `200 ${TEST_USER.sub}`);
    assert.deepEqual(errors.filter((e) => !e.startsWith("console: Failed to load resource")), []);
  } finally {
    await context.close();
  }
});

// An effect that lists an action as a dependency, as the hooks lint rule
// asks, runs again whenever the action's identity changes: if a token event
// changed it, an effect that refreshes would loop against the token endpoint.
test("useAuth()'s actions keep their identity while the session changes", async () => {
  const context = await appContext();
  try {
    const page = await signedInPage(context);
    const errors = collectPageErrors(page);
    const before = refreshes();
    const same = await page.evaluate(async () => {
      const first = window.reactAuth;
      await first.getAccessToken({ forceRefresh: true });
      // The tokens event re-renders the provider with a new value.
      for (let i = 0; i < 100 && window.reactAuth === first; i += 1) await new Promise((r) => setTimeout(r, 20));
      const now = window.reactAuth;
      if (now === first) return "no re-render";
      const names = ["login", "loginWithPopup", "logout", "getAccessToken", "fetchWithAuth"];
      return names.filter((name) => now[name] !== first[name]);
    });
    assert.deepEqual(same, []);
    assert.equal(refreshes() - before, 1);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// A refresh's new ID token is checked after its tokens are in use; the `user`
// event that follows the check re-renders the provider with its claims.
test("useAuth().user follows a refreshed ID token's claims", async () => {
  const context = await appContext();
  try {
    const page = await signedInPage(context);
    let refreshedIdToken;
    await page.route(`${idp.issuer}/token`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      refreshedIdToken = body.id_token;
      await route.fulfill({ response, body: JSON.stringify(body) });
    });
    const before = await page.evaluate(() => window.reactAuth.user.iat);
    await new Promise((r) => setTimeout(r, 1_100)); // a later second: a later iat
    await page.evaluate(() => window.reactAuth.getAccessToken({ forceRefresh: true }));
    assert.ok(refreshedIdToken, "the refresh answered a new ID token");
    const { iat } = JSON.parse(Buffer.from(refreshedIdToken.split(".")[1], "base64url").toString());
    assert.ok(iat > before, `${iat} after ${before}`);
    await until(async () => (await page.evaluate(() => window.reactAuth.user.iat)) === iat, 5_000, "the user re-rendered with the new claims");
  } finally {
    await context.close();
  }
});

// create() failing (here its discovery request, as when the page loads
// offline) is not for good: the next action starts the client again, and
// the provider follows it.
test("a client that could not be created is created again by the next action", async () => {
  const context = await appContext();
  try {
    let offline = true;
    await context.route("**/.well-known/**", (route) => (offline ? route.abort() : route.continue()));
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "failed: discovery_failed");
    offline = false;
    const code = await page.evaluate(() => window.reactAuth.getAccessToken().then(() => "token", (e) => e.code));
    assert.equal(code, "not_authenticated", "the call reached a client");
    await statusIs(page, "signed out");
    await page.click("#sign-in");
    await page.waitForURL((url) => url.pathname === "/after-login", { timeout: 15_000 });
    await statusIs(page, "signed in");
    assert.deepEqual(errors.filter((e) => !e.startsWith("console: Failed to load resource")), []);
  } finally {
    await context.close();
  }
});

// The provider's effect only shows a failed create(); an action tries it
// again. Were the effect to retry too, a create() that fails at once (bad
// options) would re-run it without end once an action ran outside a click.
test("a create() that fails at once, tried again by an action, does not loop", async () => {
  const context = await appContext({ storage: "cookies" });
  try {
    const page = await context.newPage();
    await page.goto(`${idp.spaOrigin}/`);
    await statusIs(page, "failed: invalid_option");
    const code = await page.evaluate(
      () => new Promise((resolve) => setTimeout(() => window.reactAuth.getAccessToken().then(() => "token", (e) => resolve(e.code)))),
    );
    assert.equal(code, "invalid_option");
    const before = await page.evaluate(() => window.renders);
    await page.waitForTimeout(1_000);
    const after = await page.evaluate(() => window.renders);
    assert.ok(after - before <= 4, `renders kept coming: ${before} then ${after}`);
    await statusIs(page, "failed: invalid_option");
  } finally {
    await context.close();
  }
});
