// Popup login: the opening tab's side (loginWithPopup) and the popup's side
// (handOverIfPopup, run by handleRedirectCallback).
//
// The pending transaction lives in the opening tab's sessionStorage
// (src/browser/store.rs), so the popup never completes the login: its
// redirect page hands the callback URL back, and the opening tab runs
// handleRedirectCallback(url) itself: the same validation, in the same fixed
// order, with the same codes as a redirect login.
//
// The hand-over goes over a BroadcastChannel, not window.opener: an IdP page
// sending `Cross-Origin-Opener-Policy: same-origin` severs the opener
// relation (and clears window.name). The popup finds its address in its
// window.name ("latchkey-popup:<random id>"), or, when that was cleared, in
// a localStorage mark keyed by a SHA-256 of the request's `state`. Only the
// callback URL crosses the channel, never a token: its code is useless
// without the PKCE verifier, which never leaves the opening tab.
import { latchkeyError } from "./errors.js";

const NAME_PREFIX = "latchkey-popup:";
const CHANNEL = "latchkey:popup";
const MARK_PREFIX = "latchkey:popup:";
// Closure is noticed within this, well under the one second users notice.
const POLL_MS = 250;
const DEFAULT_TIMEOUT_S = 300;
// How long a popup waits for the opening tab to confirm before closing anyway.
const ACK_MS = 2_000;

// The popup login in progress, per client. A call made while one runs (a
// double click) joins it: a login of its own would replace the pending one
// in sessionStorage, and both would fail (state_mismatch, no_transaction).
const inProgress = new WeakMap();

/**
 * Opens the authorization request in a popup and completes the login in this
 * tab. The popup is opened before the first await: browsers allow
 * window.open only during the click's user activation. Not async, so that a
 * call joining a login in progress returns that login's own promise.
 */
export function loginWithPopup(client, options) {
  try {
    return begin(client, options);
  } catch (error) {
    // A window the app opened for this call is closed on any refusal, as at
    // the end of a login (index.d.ts: "whatever the outcome").
    closeGiven(options);
    return Promise.reject(error);
  }
}

/** Closes the window `options.popup` when it is one; for calls refused before the login began. */
export function closeGiven(options) {
  const given = options?.popup;
  if (given && typeof given === "object" && typeof given.close === "function") closeWindow(given);
}

// The synchronous part: checks, joining, window.open. Throws its refusals.
function begin(client, options = {}) {
  // A string or a number would read as no options at all.
  if (options !== null && typeof options !== "object") throw latchkeyError("invalid_option", "loginWithPopup's options must be an object");
  // The hand-over needs both; without them the popup would open and hang.
  if (typeof BroadcastChannel !== "function" || typeof globalThis.crypto?.randomUUID !== "function") {
    throw latchkeyError("unsupported_environment", "a popup login needs BroadcastChannel and crypto.randomUUID; use login() (a redirect) here");
  }
  // The rest are login()'s options, which the client checks (an unknown
  // one, e.g. a misspelt `timeoutSeconds`, is refused and the popup closed).
  const { popup: given, timeoutSeconds = DEFAULT_TIMEOUT_S, closeDetection = "poll", ...login } = options ?? {};
  checkOptions(given, timeoutSeconds, closeDetection);
  const current = inProgress.get(client);
  if (current && !replaceable(current)) return join(current, given);
  const id = crypto.randomUUID();
  // `popup: null` is the app's own window.open refused: blocked too.
  const popup = given === undefined ? window.open("", NAME_PREFIX + id, features()) : given;
  if (!popup) throw latchkeyError("popup_blocked", "the browser blocked the login popup; call loginWithPopup from a click handler, or open the window yourself and pass it as `popup`");
  current?.stop.reject?.(latchkeyError("popup_closed", "the login popup was closed (or severed by its page) and a new popup login replaced it"));
  const stop = {};
  const entry = { popup, closeDetection, stop, promise: complete(client, { popup, given, id, login, timeoutSeconds, closeDetection, stop }) };
  inProgress.set(client, entry);
  const settled = () => {
    if (inProgress.get(client) === entry) inProgress.delete(client);
  };
  entry.promise.then(settled, settled);
  return entry.promise;
}

// With closeDetection "timeout" a closed popup reads like a severed one, so
// its login waits for the timeout; a new call made while it waits for the
// popup's response replaces it (joining it
// would leave the user clicking with nothing happening for minutes). A
// severed popup still open is left without a tab to take its response
// (popup_opener_gone there).
function replaceable({ popup, closeDetection, stop }) {
  return closeDetection === "timeout" && stop.reject !== undefined && popup.closed;
}

// No second window: the one in use comes to the front, and a window the app
// opened for this call is not needed.
function join({ popup, promise }, given) {
  if (given && given !== popup) closeWindow(given);
  try {
    popup.focus();
  } catch {
    // closed or severed: nothing to bring forward
  }
  return promise;
}

async function complete(client, { popup, given, id, login, timeoutSeconds, closeDetection, stop }) {
  let url;
  let mark;
  try {
    if (given) nameWindow(popup, id);
    // The state comes with the URL: a pushed request (PAR) keeps it out of it.
    const request = await client.createLoginRequest(login);
    url = request.url;
    mark = MARK_PREFIX + (await stateHash(request.state));
  } catch (error) {
    // The window is this login's, whoever opened it: closed on every
    // outcome, as awaitCallback does.
    closeWindow(popup);
    throw error;
  }
  const callbackUrl = await awaitCallback({ popup, url, id, mark, timeoutSeconds, closeDetection, stop });
  closeWindow(popup);
  return client.handleRedirectCallback(callbackUrl);
}

function closeWindow(popup) {
  try {
    popup.close();
  } catch {
    // a severed or already closed popup: it closes itself
  }
}

function checkOptions(popup, timeoutSeconds, closeDetection) {
  if (popup !== undefined && popup !== null && (typeof popup !== "object" || !("closed" in popup))) {
    throw latchkeyError("invalid_option", "popup must be a window opened with window.open");
  }
  // At most the pending login's lifetime (10 minutes): a login finished later
  // at the IdP would come back to transaction_expired.
  if (typeof timeoutSeconds !== "number" || !(timeoutSeconds >= 1 && timeoutSeconds <= 600)) {
    throw latchkeyError("invalid_option", "timeoutSeconds must be a number from 1 to 600");
  }
  if (closeDetection !== "poll" && closeDetection !== "timeout") {
    throw latchkeyError("invalid_option", 'closeDetection must be "poll" or "timeout"');
  }
}

// Centred over this window, sized for a login form.
function features() {
  const width = 500;
  const height = 650;
  const left = Math.max(0, window.screenX + (window.outerWidth - width) / 2);
  const top = Math.max(0, window.screenY + (window.outerHeight - height) / 2);
  return `popup=yes,width=${width},height=${height},left=${Math.round(left)},top=${Math.round(top)}`;
}

// The app's own popup is still about:blank (same origin) when it hands it
// over; if it is not, the state mark alone routes the callback.
function nameWindow(popup, id) {
  try {
    popup.name = NAME_PREFIX + id;
  } catch {
    // cross-origin already
  }
}

async function stateHash(state) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(state));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Navigates the popup to `url` and resolves with the callback URL its
// redirect page sends back; rejects with popup_closed or popup_timeout, or
// with what `stop.reject` is given (a new login replacing this one). Every
// path removes the mark, the channel and the timers.
function awaitCallback({ popup, url, id, mark, timeoutSeconds, closeDetection, stop }) {
  const channel = new BroadcastChannel(CHANNEL);
  const address = mark.slice(MARK_PREFIX.length);
  let poll;
  let timer;
  // This page going away (a reload, a navigation, the tab closed) ends the
  // login it holds: its popup goes with it, rather than staying open at the
  // IdP for a response nobody will take.
  const leave = () => closeWindow(popup);
  window.addEventListener("pagehide", leave);
  return new Promise((resolve, reject) => {
    stop.reject = reject;
    channel.onmessage = ({ data }) => {
      if (data?.type !== "callback" || typeof data.url !== "string" || (data.to !== id && data.to !== address)) return;
      channel.postMessage({ type: "received", to: data.to });
      resolve(data.url);
    };
    try {
      removeExpiredMarks();
      localStorage.setItem(mark, String(Date.now() + timeoutSeconds * 1000));
    } catch {
      // no localStorage: only window.name routes the callback
    }
    if (popup.closed) {
      reject(latchkeyError("popup_closed", "the login popup was closed before the login started"));
      return;
    }
    popup.location.href = url;
    // With closeDetection "timeout" (an IdP whose COOP severs the opener:
    // then `closed` reads true while the popup is still open), only the
    // timeout ends a popup the user closed.
    if (closeDetection === "poll") {
      poll = setInterval(() => {
        if (popup.closed) reject(latchkeyError("popup_closed", "the login popup was closed before the login finished"));
      }, POLL_MS);
    }
    timer = setTimeout(
      () => reject(latchkeyError("popup_timeout", `the login popup did not finish within ${timeoutSeconds} s`)),
      timeoutSeconds * 1000,
    );
  }).finally(() => {
    // Settled: past here the login is completing, not to be replaced.
    stop.reject = undefined;
    window.removeEventListener("pagehide", leave);
    clearInterval(poll);
    clearTimeout(timer);
    channel.close();
    try {
      localStorage.removeItem(mark);
    } catch {
      // nothing was marked
    }
  }).catch((error) => {
    closeWindow(popup);
    throw error;
  });
}

/**
 * Run first by handleRedirectCallback: when this window is a latchkey login
 * popup, sends `url` to the opening tab, closes this window and resolves
 * true; otherwise resolves false and the callback is handled here. When no
 * tab takes it (the opening tab was reloaded, left or closed, and its page
 * could not close this window), rejects with popup_opener_gone and leaves
 * the window open, so that its page can say so: the login cannot be
 * finished here (the opening tab held it).
 */
export async function handOverIfPopup(url) {
  if (typeof BroadcastChannel === "undefined") return false;
  const to = await popupAddress(url);
  if (!to) return false;
  const channel = new BroadcastChannel(CHANNEL);
  const received = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ACK_MS);
    channel.onmessage = ({ data }) => {
      if (data?.type === "received" && data.to === to) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    channel.postMessage({ type: "callback", to, url });
  });
  channel.close();
  if (!received) {
    throw latchkeyError(
      "popup_opener_gone",
      "no tab took this login popup's response (the tab that opened it was reloaded, left or closed): sign in again from the app",
    );
  }
  window.close();
  return true;
}

// Marks whose login ended without removing them (the opening tab was
// closed or crashed mid-login): each holds its expiry time.
function removeExpiredMarks() {
  const now = Date.now();
  const expired = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (key?.startsWith(MARK_PREFIX) && !(Number(localStorage.getItem(key)) > now)) expired.push(key);
  }
  for (const key of expired) localStorage.removeItem(key);
}

async function popupAddress(url) {
  if (window.name.startsWith(NAME_PREFIX) && window.name.length > NAME_PREFIX.length) {
    return window.name.slice(NAME_PREFIX.length);
  }
  let state;
  try {
    state = new URL(url).searchParams.get("state");
  } catch {
    return null;
  }
  if (!state) return null;
  const hash = await stateHash(state);
  try {
    return Number(localStorage.getItem(MARK_PREFIX + hash)) > Date.now() ? hash : null;
  } catch {
    return null;
  }
}
