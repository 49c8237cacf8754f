// The package entry: a thin, typed layer over the wasm-bindgen module.
// It initialises the wasm once, on first use, from the file next to this
// module, so apps never deal with the wasm themselves. Types and docs:
// index.d.ts.
//
// Importing this module outside a browser touches no window, document or
// wasm (server-side rendering imports it in Node): the glue only defines
// functions at import time. In a browser the import starts fetching and
// compiling the wasm (initialize()), which create() then awaits.
import init, { AuthClient as WasmAuthClient, version as wasmVersion } from "./latchkey.js";
import { assertBrowser, isLatchkeyError, latchkeyError } from "./errors.js";
import { closeGiven, handOverIfPopup, loginWithPopup } from "./popup.js";

export { isLatchkeyError };

let ready;

/**
 * Loads and instantiates the wasm module, once; later calls return the same
 * promise. `AuthClient.create` calls it, so apps only need it to preload.
 * A load that failed (offline, a server's error, a Content-Security-Policy
 * without 'wasm-unsafe-eval') rejects with `wasm_load_failed`, and the next
 * call tries again.
 */
export function initialize() {
  // `new URL(..., import.meta.url)` is what Vite, webpack 5 and static
  // servers all resolve to the wasm file shipped beside this module.
  ready ??= init({ module_or_path: new URL("./latchkey_bg.wasm", import.meta.url) }).then(
    () => undefined,
    (cause) => {
      ready = undefined;
      const error = latchkeyError("wasm_load_failed", `latchkey's wasm module could not be loaded: ${cause?.message ?? cause}`);
      error.cause = cause;
      throw error;
    },
  );
  return ready;
}

// In a browser, the wasm starts downloading and compiling as soon as this
// module is imported, so create() rarely waits for it. Elsewhere (server
// rendering, workers without a window) nothing happens until create(),
// which then says why it cannot run. A failure here is reported by create().
//
// It also wakes IndexedDB: a page's first IndexedDB request pays for
// connecting to the browser's storage backend (about 10 ms here), which
// create() would otherwise pay after the wasm is ready. Listing the
// databases touches none of them.
if (typeof window !== "undefined" && typeof document !== "undefined") {
  initialize().catch(() => {});
  globalThis.indexedDB?.databases?.().catch(() => {});
}

/** The latchkey version. Resolves once the wasm module is loaded. */
export async function version() {
  await initialize();
  return wasmVersion();
}

// An init the fast path can pass to fetch() knowing fetch() will accept it:
// a plain object with only these members, each with a valid value; a body
// that cannot change once the call is made (a string or a Blob: the resend
// after a refresh sends what the call sent, as fetch() would, even if the
// app reuses its buffer or form), on a method that takes one. Anything else
// goes the full way, which copies the request when the call is made and
// whose Request constructor reports a bad init as invalid_option before
// anything is sent (fetch() would reject with a bare TypeError).
const INIT_VALUES = {
  credentials: ["omit", "same-origin", "include"],
  cache: ["default", "no-store", "reload", "no-cache", "force-cache"],
  redirect: ["follow", "error", "manual"],
  mode: ["cors", "same-origin"],
};
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const NO_BODY = /^(get|head)$/i;
const FORBIDDEN_METHOD = /^(connect|trace|track)$/i;
function plainInit(init) {
  const proto = typeof init === "object" ? Object.getPrototypeOf(init) : undefined;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in init) {
    const value = init[key];
    if (value === undefined) continue;
    switch (key) {
      case "headers":
        break;
      case "signal":
        if (value !== null && !(value instanceof AbortSignal)) return false;
        break;
      case "method":
        if (typeof value !== "string" || !METHOD.test(value) || FORBIDDEN_METHOD.test(value)) return false;
        break;
      case "body":
        if (value === null) break;
        if (!(typeof value === "string" || value instanceof Blob) || NO_BODY.test(init.method ?? "GET")) return false;
        break;
      case "keepalive":
        if (typeof value !== "boolean") return false;
        break;
      default:
        // Own keys only: an init member named like an Object.prototype one
        // (`constructor`) must not be looked up there.
        if (!Object.hasOwn(INIT_VALUES, key) || !INIT_VALUES[key].includes(value)) return false;
    }
  }
  return true;
}

// `new URL(input, document.baseURI)`'s origin, pathname and href,
// remembered for the last few inputs (apps call the same URLs again and
// again; parsing is a good part of a fast call). Keyed by the base URL too: a
// relative URL follows the page's as it is when the call is made. Undefined
// for a URL that does not parse or carries credentials.
const urls = new Map();
function parsed(input) {
  const base = document.baseURI;
  const key = `${base} ${input}`;
  let url = urls.get(key);
  if (url === undefined) {
    try {
      const { origin, pathname, href, protocol, username, password } = new URL(input, base);
      // fetch() refuses a URL with credentials: the full way reports it. A
      // blob: or data: URL (whose origin may read as the page's) is never
      // an API: the full way refuses it.
      const web = protocol === "https:" || protocol === "http:";
      url = username || password || !web ? null : { origin, pathname, href };
    } catch {
      url = null;
    }
    if (urls.size >= 64) urls.clear();
    urls.set(key, url);
  }
  return url ?? undefined;
}

// What a disposed client's calls reject (or throw) with.
function disposed() {
  return latchkeyError("client_disposed", "this AuthClient was disposed; create another with AuthClient.create(options)");
}
const rejected = () => Promise.reject(disposed());

// A URL object or `location` as its text: the wasm reads strings only, and
// would take either for an empty, relative address.
function href(url) {
  return typeof url === "object" && url !== null ? String(url) : url;
}

export class AuthClient {
  // The wasm client; null once disposed.
  #client;

  constructor(client) {
    if (!(client instanceof WasmAuthClient)) {
      throw new TypeError("use AuthClient.create(options)");
    }
    this.#client = client;
  }

  static async create(options) {
    assertBrowser();
    await initialize();
    return new AuthClient(await WasmAuthClient.create(options));
  }

  // The wasm client, for a method that returns no promise.
  #live() {
    if (this.#client === null) throw disposed();
    return this.#client;
  }

  get storageKind() {
    return this.#live().storageKind;
  }

  get storageFallbackReason() {
    return this.#live().storageFallbackReason ?? null;
  }

  get storageError() {
    return this.#live().storageError ?? null;
  }

  on(event, listener) {
    const client = this.#live();
    if (typeof listener !== "function") {
      throw latchkeyError("invalid_option", "on(event, listener): listener must be a function");
    }
    return client.on(event, listener);
  }

  createLoginUrl(options) {
    return this.#client?.createLoginUrl(options) ?? rejected();
  }

  login(options) {
    return this.#client?.login(options) ?? rejected();
  }

  // Not async: window.open must run before the first await (popup.js).
  loginWithPopup(options) {
    if (this.#client) return loginWithPopup(this.#client, options);
    closeGiven(options);
    return rejected();
  }

  async handleRedirectCallback(url) {
    const client = this.#live();
    url = href(url);
    // In a login popup the transaction is in the opening tab: hand it the
    // URL (popup.js); it validates and exchanges it.
    if (await handOverIfPopup(url ?? location.href)) return { appState: undefined };
    return client.handleRedirectCallback(url);
  }

  isLoginResponse(url) {
    return this.#live().isLoginResponse(href(url));
  }

  isAuthenticated() {
    return this.#client?.isAuthenticated() ?? rejected();
  }

  getAccessToken(options) {
    return this.#client?.getAccessToken(options) ?? rejected();
  }

  // The fast path: a call that needs nothing but the Bearer token in memory
  // is sent from here, with no trip through the wasm's async driver. The
  // wasm decides (fastAuthorization: origin, token endpoint, placement,
  // DPoP, freshness; answerIsFinal: whether the answer may say "expired")
  // and takes over every other call, and every answer that may mean the
  // token expired (fetchWithAuthAfter: refresh, one resend).
  fetchWithAuth(input, init) {
    // Held for the whole call: one in flight when the client is disposed
    // runs to its end (its refresh and resend included).
    const client = this.#client;
    if (client === null) return rejected();
    const url = this.#fastUrl(input, init);
    const authorization = url && client.fastAuthorization(url.origin, url.pathname);
    if (authorization === undefined) return client.fetchWithAuth(input, init);
    return sendFast(client, url.href, input, init, authorization);
  }

  // The parsed URL when the call may take the fast path, else undefined. A
  // Request, an init that is not a plain object or whose body could change,
  // or an unparsable URL go the full way (which also reports their errors).
  #fastUrl(input, init) {
    if (typeof input !== "string" && !(input instanceof URL)) return undefined;
    if (init != null && !plainInit(init)) return undefined;
    return parsed(input);
  }

  getUser(options) {
    return this.#client?.getUser(options) ?? rejected();
  }

  logout(options) {
    return this.#client?.logout(options) ?? rejected();
  }

  // Stops the client (no events, no refresh on visibility); calls made
  // later reject with client_disposed. What is in flight runs to its end.
  // The wasm object itself is freed by the glue's FinalizationRegistry
  // once nothing in flight holds it (its channel closes then).
  dispose() {
    this.#client?.dispose();
    this.#client = null;
  }
}

// The fast path's send, and the wasm's say on its answer.
async function sendFast(client, href, input, init, authorization) {
  let headers;
  try {
    headers = new Headers(init?.headers);
  } catch {
    return client.fetchWithAuth(input, init);
  }
  headers.set("Authorization", authorization);
  // Kept as sent: a resend after a refresh goes to the same URL with the
  // same members, whatever the app does with `init` or the page meanwhile
  // (its token replaced).
  const sent = { ...init, headers };
  // To the URL that was checked: `input` may be a URL object the app's
  // code (a headers getter, a toString) changed since.
  const response = await fetch(href, sent);
  if (client.answerIsFinal(response.status, response.redirected)) return response;
  return client.fetchWithAuthAfter(href, sent, response, authorization);
}
