// Helpers for the Sign in with Bluesky end-to-end tests (tests/e2e/atproto.test.mjs): latchkey
// with `profile: "atproto"` in headless Chromium against the AT Protocol test network
// (tests/atproto/network.mjs: the reference PDS, its own sign-in and consent pages, a PLC
// directory). The app page is the e2e app served at `idp.spaOrigin` (http://127.0.0.1:<port>),
// which is also the redirect URI; the client id is the PDS's loopback form.
import { loopbackClientId } from "../../atproto/oauth-client.mjs";
import { openApp } from "./app.mjs";

export { loopbackClientId };

// How long any single wait on the PDS's pages or a redirect may take.
export const PAGE_WAIT_MS = 20_000;

// Where latchkey keeps an atproto client's records: "atproto" stands in for the issuer
// (src/core/login_profile.rs, ATPROTO_NAMESPACE). For support/app.mjs's rawRecord and
// support/dpop.mjs's keyRecords, which take `{ issuer }`.
export const ATPROTO_STORE = { issuer: "atproto" };

// AuthClient.create options of an atproto client of the e2e app against `net`.
export function atprotoOptions(idp, net, extra = {}) {
  const redirectUri = `${idp.spaOrigin}/`;
  return {
    profile: "atproto",
    clientId: loopbackClientId(redirectUri),
    redirectUri,
    handleResolver: net.handleResolver,
    plcDirectoryUrl: net.plcUrl,
    allowInsecureLoopback: true,
    ...extra,
  };
}

// Creates window.auth with `options` in `page` (the app already open) and records every event
// in window.events as { name, source?, type? }. Rejects with the create error, if any.
export async function installAtprotoClient(page, options) {
  const result = await page.evaluate(async (options) => {
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
  }, options);
  if (result.error) throw new Error(`create failed: ${JSON.stringify(result.error)}`);
}

// Opens the app in a new tab of `context` and creates its client (window.auth).
export async function openAtprotoTab(context, options) {
  const page = await context.newPage();
  await openApp(page, options.redirectUri);
  await installAtprotoClient(page, options);
  return page;
}

// Starts `login({ handle })` in `page` (the app open, window.auth created) and waits until the
// browser is on the PDS's sign-in page (`pdsUrl`). Resolves with null, or with the login's
// rejection { code, message, error, status } when it rejected before navigating away.
export async function startLogin(page, pdsUrl, handle) {
  const atPds = page.waitForURL((url) => url.origin === new URL(pdsUrl).origin, { timeout: PAGE_WAIT_MS }).then(
    () => null,
    (e) => ({ code: "no_navigation", message: e.message }),
  );
  // Not awaited inside: the page navigates away while login() runs.
  const refused = page.evaluate(
    (handle) =>
      window.auth.login({ handle }).then(
        () => new Promise(() => {}),
        (e) => ({ code: e.code, message: e.message, error: e.error, status: e.status }),
      ),
    handle,
  );
  // One of the two settles: the navigation, or login()'s rejection (then the page stays).
  return Promise.race([atPds, refused.catch(() => new Promise(() => {}))]);
}

// On the PDS's sign-in page: the handle is prefilled from login_hint (read-only). Types the
// password, "Sign in", then "Authorize" on the consent page, and waits until the browser is
// back at `redirectUri` with the callback's parameters. Resolves with the callback URL.
export async function signInAtPds(page, { password, expectedHandle, redirectUri }) {
  const username = page.locator('input[name="username"]');
  await username.waitFor({ state: "visible", timeout: PAGE_WAIT_MS });
  if (expectedHandle !== undefined) {
    const prefilled = await username.inputValue({ timeout: PAGE_WAIT_MS });
    if (prefilled !== expectedHandle) throw new Error(`the sign-in page shows ${JSON.stringify(prefilled)}, not ${expectedHandle}`);
  }
  await page.locator('input[name="password"]').fill(password, { timeout: PAGE_WAIT_MS });
  const back = backAtApp(page, redirectUri);
  await page.getByRole("button", { name: "Sign in", exact: true }).click({ timeout: PAGE_WAIT_MS });
  await page.getByRole("button", { name: "Authorize", exact: true }).click({ timeout: PAGE_WAIT_MS });
  return back.landed();
}

// On the PDS's sign-in page of a login hinted for one account, signs in as another one
// (`username`, `password`) and consents, through the page's own API from the page itself (the
// same requests its "Sign in" and "Authorize" make, with its CSRF cookie): the page offers no
// other account once hinted, but the server does not bind the sign-in to login_hint. Then
// follows the consent's redirect back to `redirectUri`. Resolves with the callback URL.
export async function signInAtPdsAs(page, { username, password, redirectUri }) {
  await page.locator('input[name="username"]').waitFor({ state: "visible", timeout: PAGE_WAIT_MS });
  const answer = await page.evaluate(
    async ([username, password]) => {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrf-token="))?.slice("csrf-token=".length) ?? "";
      const api = async (endpoint, body, bearer) => {
        const res = await fetch(`/@atproto/oauth-provider/~api${endpoint}`, {
          method: "POST",
          // The API wants Sec-Fetch-Mode: same-origin, as the page's own requests send it.
          mode: "same-origin",
          headers: { "content-type": "application/json", "x-csrf-token": csrf, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: await res.json().catch(() => null) };
      };
      const signIn = await api("/sign-in", { locale: "en", username, password, remember: false });
      if (signIn.status !== 200) return { step: "sign-in", ...signIn };
      const consent = await api("/consent", { did: signIn.body.account.did }, signIn.body.ephemeralToken);
      if (consent.status !== 200 || typeof consent.body?.url !== "string") return { step: "consent", ...consent };
      return { url: consent.body.url };
    },
    [username, password],
  );
  if (!answer.url) throw new Error(`signing in as ${username} failed: ${JSON.stringify(answer)}`);
  const back = backAtApp(page, redirectUri);
  // As the page does it: a same-origin navigation (the redirect endpoint checks Sec-Fetch-Site).
  await page.evaluate((url) => window.location.assign(url), answer.url);
  return back.landed();
}

// Waits (bounded) for the browser to come back at `redirectUri` with a callback. Started before
// the action that leads there; `landed()` resolves with the callback URL once the app is ready.
function backAtApp(page, redirectUri) {
  const waiting = page.waitForURL((url) => url.href.startsWith(redirectUri) && (url.searchParams.has("code") || url.searchParams.has("error")), {
    timeout: PAGE_WAIT_MS,
  });
  // Handled even if the action before landed() throws first.
  waiting.catch(() => {});
  return {
    async landed() {
      await waiting;
      const url = page.url();
      await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: PAGE_WAIT_MS });
      return url;
    },
  };
}

// Completes the callback in `page` with a fresh client; resolves with { value } or
// { error: { code, message } }.
export function completeCallback(page, options) {
  return page.evaluate(async (options) => {
    try {
      const client = await window.latchkey.AuthClient.create(options);
      return { value: await client.handleRedirectCallback() };
    } catch (e) {
      return { error: { code: e.code, message: e.message } };
    }
  }, options);
}

// A whole login of `account` ({ handle, password }) in a new tab of `context`: login by handle,
// the PDS's pages, the callback. Resolves with the tab (its client at window.auth, created
// after the callback) and the callback URL.
export async function loginAtproto(context, net, options, account) {
  const page = await context.newPage();
  await openApp(page, options.redirectUri);
  await installAtprotoClient(page, options);
  const refused = await startLogin(page, net.pdsUrl, account.handle);
  if (refused) throw new Error(`login refused: ${JSON.stringify(refused)}`);
  const landed = await signInAtPds(page, { password: account.password, expectedHandle: account.handle, redirectUri: options.redirectUri });
  const done = await completeCallback(page, options);
  if (done.error) throw new Error(`callback failed: ${JSON.stringify(done.error)}`);
  await installAtprotoClient(page, options);
  return { page, landed };
}

// Runs in the page: keeps (at window.keptKey) the CryptoKey of the one DPoP key record whose
// name starts with `prefix`, with its public x, y: a test can then sign proofs for a token
// after latchkey has deleted the record. Resolves with the record's name, or null.
export function keepDpopKey(page, prefix) {
  return page.evaluate(async (prefix) => {
    const db = await new Promise((resolve, reject) => {
      const request = indexedDB.open("latchkey-keys");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    try {
      const entries = await new Promise((resolve, reject) => {
        const store = db.transaction("keys", "readonly").objectStore("keys");
        const keys = store.getAllKeys();
        const values = store.getAll();
        values.onsuccess = () => resolve(keys.result.map((k, i) => [k, values.result[i]]));
        values.onerror = () => reject(values.error);
      });
      const mine = entries.filter(([name]) => typeof name === "string" && name.startsWith(prefix));
      if (mine.length !== 1) return null;
      const [name, { privateKey, x, y }] = mine[0];
      window.keptKey = { privateKey, jwk: { kty: "EC", crv: "P-256", x, y } };
      return name;
    } finally {
      db.close();
    }
  }, prefix);
}

// Runs in the page: a GET of `url` with `Authorization: DPoP <accessToken>` and a proof signed
// with window.keptKey, made here rather than by latchkey; a use_dpop_nonce answer is sent once
// more with its nonce. Resolves with { status, wwwAuthenticate, body, nonceRetried, requests }.
export function handMadeDpopGet(page, url, accessToken) {
  return page.evaluate(
    async ([url, accessToken]) => {
      const b64url = (bytes) =>
        btoa(String.fromCharCode(...new Uint8Array(bytes)))
          .replace(/\+/g, "-")
          .replace(/\//g, "_")
          .replace(/=+$/, "");
      const b64json = (value) => b64url(new TextEncoder().encode(JSON.stringify(value)));
      const { privateKey, jwk } = window.keptKey;
      const ath = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken)));
      const target = new URL(url);
      const htu = `${target.origin}${target.pathname}`;
      const proof = async (nonce) => {
        const payload = { htm: "GET", htu, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID(), ath, ...(nonce ? { nonce } : {}) };
        const input = `${b64json({ typ: "dpop+jwt", alg: "ES256", jwk })}.${b64json(payload)}`;
        const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, new TextEncoder().encode(input));
        return `${input}.${b64url(signature)}`;
      };
      const send = async (nonce) => {
        const res = await fetch(url, { headers: { Authorization: `DPoP ${accessToken}`, DPoP: await proof(nonce) } });
        const text = await res.text();
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        return { status: res.status, wwwAuthenticate: res.headers.get("WWW-Authenticate"), nonce: res.headers.get("DPoP-Nonce"), body };
      };
      let answer = await send();
      let nonceRetried = false;
      if (answer.status === 401 && /use_dpop_nonce/.test(answer.wwwAuthenticate ?? "") && answer.nonce) {
        nonceRetried = true;
        answer = await send(answer.nonce);
      }
      return { status: answer.status, wwwAuthenticate: answer.wwwAuthenticate, body: answer.body, nonceRetried, requests: nonceRetried ? 2 : 1 };
    },
    [url, accessToken],
  );
}

// The pending login transaction latchkey keeps in sessionStorage for `clientId` (an atproto
// client), read past latchkey: its raw text, or null.
export function pendingTransaction(page, clientId) {
  return page.evaluate((key) => sessionStorage.getItem(key), `latchkey:${ATPROTO_STORE.issuer}:${clientId}:transaction`);
}
