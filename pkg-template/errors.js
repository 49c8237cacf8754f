// LatchkeyErrors raised by the JS entry itself (popup login, environment
// checks), shaped like the ones the wasm throws (src/browser/js_error.rs):
// an Error named "LatchkeyError" with a stable `code`, so isLatchkeyError()
// and apps' `switch (e.code)` treat both alike. Their codes are the
// `JsErrorCode` union of index.d.ts.
export function latchkeyError(code, message) {
  const error = new Error(message);
  error.name = "LatchkeyError";
  error.code = code;
  return error;
}

/** Whether `value` is an error latchkey rejected with. */
export function isLatchkeyError(value) {
  return value instanceof Error && value.name === "LatchkeyError" && typeof value.code === "string";
}

// create() needs a browser window: the wasm reaches for window, IndexedDB,
// WebCrypto and Web Locks. Checked at call time, never at import time, so
// server-side rendering can import the package.
export function assertBrowser() {
  if (typeof window === "undefined" || typeof document === "undefined") {
    throw latchkeyError(
      "unsupported_environment",
      "latchkey needs a browser window (no window/document here, e.g. server-side rendering or a worker); create the client in the browser",
    );
  }
}
