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

// Logs in (access tokens living `ttl` seconds at the server, when given)
// and opens `more` further tabs on the same session. Returns the tabs, login
// tab first.
export async function signedInTabs(context, idp, extra = {}, { more = 0, ttl } = {}) {
  if (ttl !== undefined) idp.setAccessTokenTtl(ttl);
  const tabs = [await loginTab(context, idp, extra)];
  for (let i = 0; i < more; i++) tabs.push(await openTab(context, idp, extra));
  return tabs;
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
// Every event is recorded in window.events as { name, source?, type?,
// storage?, reason? } (the last three from `storage` events).
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
        window.auth.on(name, (detail) =>
          window.events.push({
            name,
            source: detail?.source,
            type: detail?.type,
            storage: detail?.storage,
            reason: detail?.reason,
          }),
        );
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

// One fetchWithAuth in the tab: { status, body? } or { code, status?, error?,
// retryAfter?, name }, plus ms taken.
export function call(page, url, init, { readBody = false } = {}) {
  return page.evaluate(
    async ([url, init, readBody]) => {
      const started = performance.now();
      try {
        const res = await window.auth.fetchWithAuth(url, init ?? undefined);
        const body = readBody ? await res.json() : undefined;
        return { status: res.status, body, ms: performance.now() - started };
      } catch (e) {
        return {
          code: e.code,
          status: e.status,
          error: e.error,
          retryAfter: e.retryAfter,
          name: e.name,
          ms: performance.now() - started,
        };
      }
    },
    [url, init ?? null, readBody],
  );
}

export const isAuthenticated = (page) => page.evaluate(() => window.auth.isAuthenticated());
export const accessToken = (page) => page.evaluate(() => window.auth.getAccessToken());
// The events of one name among a tab's recorded events.
export const named = (events, name) => events.filter((e) => e.name === name);

// Polls `probe` until it returns a truthy value, for at most `ms`.
export async function until(probe, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

// Listens in `page` on latchkey's BroadcastChannel `name`, as latchkey's
// own listener there does, for a message of `type` (any message without
// one); `heardOn` then waits, for at most `ms`, until it came.
export function listenOn(page, name, type) {
  return page.evaluate(
    ({ name, type }) => {
      window.testHeard = false;
      const listener = new BroadcastChannel(name);
      listener.onmessage = ({ data }) => {
        if (type !== undefined && data?.type !== type) return;
        window.testHeard = true;
        listener.close();
      };
    },
    { name, type },
  );
}

// Waits until the message `listenOn` listens for has come to `page`, and a
// moment more for latchkey's own listener beside the test's.
export async function heardOn(page, ms, what) {
  await until(() => page.evaluate(() => window.testHeard), ms, what);
  await sleep(100);
}

// Rejects if `promise` has not settled within `ms`.
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Refresh tests: access tokens issued at login live SHORT_TTL seconds, and
// EXPIRED_MS later the client's clock and the server both consider them
// expired; tokens from the refreshes under test live LONG_TTL, long enough
// not to expire mid-test.
export const SHORT_TTL = 2;
export const EXPIRED_MS = 2_800;
export const LONG_TTL = 60;

// Chromium itself resends a request once when a reused keep-alive
// connection closes without answering, so a dropped or lost answer on a
// reused socket would be retried behind latchkey's back. Such tests wait
// until the IdP has closed its idle connections (Node's keepAliveTimeout,
// 5 s, plus its 1 s buffer; measured: 5.6 s still reused, 6.5 s fresh),
// counted from the tabs' last request to the IdP: a tab started from kept
// metadata revalidates it 2 s after create() (REVALIDATE_AFTER_MS).
export const IDLE_SOCKETS_CLOSED_MS = 2_000 + 7_500;
