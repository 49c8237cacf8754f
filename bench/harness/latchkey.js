// latchkey's harness page. The published package is loaded as it ships (served from a copy of
// dist/latchkey at /latchkey/, not bundled), exactly as tests/e2e/app loads it, so the
// end-to-end helpers (tests/e2e/support: loginTab, openTab, installClient) work on this page:
// they use window.latchkey, body[data-ready] and the client they keep at window.auth.
import * as latchkey from "./latchkey/index.js";

import { installBench, saysExpired } from "./common.js";

const config = window.BENCH_CONFIG;
window.latchkey = latchkey;

// The same options as tests/e2e/support/app.mjs clientOptions(): the documented defaults
// (storage "indexeddb", leeway 30 s) unless a case says otherwise.
function options({ mode, storage, refreshLeewaySeconds } = {}) {
  const o = {
    issuer: config.issuer,
    clientId: config.clientId,
    redirectUri: `${location.origin}/`,
    scope: "openid offline_access api",
    allowInsecureLoopback: true,
    // The API is on the authorization server's origin (as in clientOptions());
    // the fast-path and cold-start probes call the page's own origin.
    allowedOrigins: [new URL(config.issuer).origin, location.origin],
  };
  if (storage) o.storage = storage;
  if (refreshLeewaySeconds !== undefined) o.refreshLeewaySeconds = refreshLeewaySeconds;
  // RFC 6750's 401 is latchkey's default trigger; Bluesky's 400 needs the predicate.
  if (mode === "bluesky") o.isTokenExpired = (response) => saysExpired("bluesky", response);
  return o;
}

const marks = {};

installBench({
  marks,
  async login() {
    const client = await latchkey.AuthClient.create(options());
    await client.login();
  },
  async completeLogin() {
    const client = await latchkey.AuthClient.create(options());
    await client.handleRedirectCallback();
  },
  async init(opts) {
    // create() initialises the wasm module itself; doing it first only splits the time.
    await latchkey.initialize();
    marks.wasmReady = performance.now();
    window.auth = await latchkey.AuthClient.create(options(opts));
  },
  call: (url) => window.auth.fetchWithAuth(url),
  accessToken: () => window.auth.getAccessToken(),
});
document.body.dataset.ready = "true";
