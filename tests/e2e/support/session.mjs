// Multi-tab helpers for the refresh tests: one browser context (so the tabs
// share IndexedDB, Web Locks and BroadcastChannel), a logged-in session, and
// a long-lived client per tab kept at window.auth.
import { clientOptions, openApp, withClient, loginViaRedirect } from "./app.mjs";

// Logs in through the real redirect in a fresh tab of `context` and
// completes the callback. Returns the page (its client at window.auth).
export async function loginTab(context, idp, extra = {}) {
  const page = await context.newPage();
  // The page-side predicates are installed by installClient, not here.
  const { isTokenExpired: _e, refresh: _r, ...plain } = extra;
  const options = clientOptions(idp, plain);
  await loginViaRedirect(page, idp, options);
  const done = await withClient(page, options, (client) => client.handleRedirectCallback());
  if (done.error) throw new Error(`login failed: ${JSON.stringify(done.error)}`);
  await installClient(page, idp, extra);
  return page;
}

// Opens the app in a new tab of `context` and creates its client.
export async function openTab(context, idp, extra = {}, { initScript } = {}) {
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  await openApp(page, `${idp.spaOrigin}/`);
  await installClient(page, idp, extra);
  return page;
}

// Creates window.auth with `clientOptions(idp, extra)` plus `predicates`:
// names of page-side functions (functions cannot cross evaluate()):
//   isTokenExpired: "bluesky" → 400 {"error":"ExpiredToken"} counts as expired
//   refresh: "atproto" → AT Protocol refreshSession at idp.refreshSessionUrl
// Every event is recorded in window.events as { name, source? }.
export async function installClient(page, idp, extra = {}) {
  const { isTokenExpired, refresh, ...rest } = extra;
  const options = clientOptions(idp, rest);
  const result = await page.evaluate(
    async ([options, isTokenExpired, refresh, refreshSessionUrl]) => {
      if (isTokenExpired === "bluesky") {
        options.isTokenExpired = async (response) => {
          if (response.status !== 400) return false;
          const body = await response.json().catch(() => ({}));
          return body.error === "ExpiredToken";
        };
      }
      if (refresh === "atproto") {
        window.refreshCalls = 0;
        options.refresh = async ({ refreshToken }) => {
          window.refreshCalls += 1;
          const res = await fetch(refreshSessionUrl, {
            method: "POST",
            headers: { Authorization: `Bearer ${refreshToken}` },
          });
          const body = await res.json();
          if (!res.ok) return { error: body.error === "ExpiredToken" ? "invalid_grant" : body.error };
          return { access_token: body.accessJwt, refresh_token: body.refreshJwt, expires_in: body.expiresIn };
        };
      }
      try {
        window.auth = await window.latchkey.AuthClient.create(options);
      } catch (e) {
        return { error: { code: e.code, message: e.message } };
      }
      window.events = [];
      for (const name of ["tokens", "sessionExpired", "signedOut", "storage"]) {
        window.auth.on(name, (detail) => window.events.push({ name, source: detail?.source, type: detail?.type }));
      }
      return { ok: true };
    },
    [options, isTokenExpired, refresh, idp.refreshSessionUrl],
  );
  if (result.error) throw new Error(`create failed: ${JSON.stringify(result.error)}`);
}

// Fires `count` concurrent fetchWithAuth(url) in the tab; resolves with the
// statuses (or "error:<code>" for rejections).
export function burst(page, url, count) {
  return page.evaluate(
    async ([url, count]) => {
      const one = () =>
        window.auth.fetchWithAuth(url).then(
          (res) => res.status,
          (e) => `error:${e.code ?? e.name}`,
        );
      return Promise.all(Array.from({ length: count }, one));
    },
    [url, count],
  );
}

// The events this tab's client emitted so far.
export const eventsOf = (page) => page.evaluate(() => window.events);

// Resolves after `ms` milliseconds.
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A fresh browser context whose pages all report uncaught errors to `errors`
// (console "Failed to load resource" lines are expected and not collected).
export async function freshContext(browser, { initScript } = {}) {
  const context = await browser.newContext();
  if (initScript) await context.addInitScript(initScript);
  const errors = [];
  context.on("page", (page) => page.on("pageerror", (error) => errors.push(error.message)));
  return { context, errors };
}
