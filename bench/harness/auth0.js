// auth0-spa-js's harness page, configured the way its documentation recommends for an SPA
// that uses refresh tokens:
// - createAuth0Client({ domain, clientId, authorizationParams: { redirect_uri } }) once per
//   page; loginWithRedirect() to sign in and handleRedirectCallback() on the way back.
// - useRefreshTokens: true — the SDK then asks for offline_access by itself and renews through
//   the token endpoint's refresh_token grant instead of a hidden iframe (Auth0's "Use Refresh
//   Token Rotation" page).
// - cacheLocation: "localstorage" — the tokens survive reloads and are shared by the tabs of
//   the origin; the default, memory, would give each tab its own session.
// - An API call goes through the SDK's own fetch wrapper (createFetcher().fetchWithAuth), which
//   asks getTokenSilently() for the token; getTokenSilently refreshes under the SDK's
//   cross-tab lock (navigator.locks when the browser has it, as this one does).
// - The SDK does not look at API responses. When the API says the token expired, the app forces
//   a renewal with getTokenSilently({ cacheMode: "off" }) (the documented way to bypass the
//   cache) and sends the request once more.
//
// `domain` is the bench's Auth0 façade (bench/lib/servers.mjs), which serves /authorize and
// /oauth/token from the test IdP.
import { createAuth0Client } from "@auth0/auth0-spa-js";

import { installBench, saysExpired } from "./common.js";

const config = window.BENCH_CONFIG;

const create = () =>
  createAuth0Client({
    domain: config.auth0Domain,
    clientId: config.clientId,
    useRefreshTokens: true,
    cacheLocation: "localstorage",
    authorizationParams: {
      redirect_uri: `${location.origin}/`,
      // openid and offline_access are added by the SDK.
      scope: "api",
      // The test IdP (oidc-provider) keeps offline_access in the grant only with
      // prompt=consent (OIDC Core §11); the SDK sends the cached scope with every refresh, so
      // without it the refresh grant asks for more than was granted.
      prompt: "consent",
    },
  });

let client;
let fetcher;
let mode = "rfc6750";

installBench({
  async login() {
    client = await create();
    await client.loginWithRedirect();
  },
  async completeLogin() {
    client = await create();
    await client.handleRedirectCallback();
  },
  async init(opts = {}) {
    mode = opts.mode ?? "rfc6750";
    client ??= await create();
    fetcher = client.createFetcher();
    window.benchClient = client;
  },
  async call(url) {
    let response = await fetcher.fetchWithAuth(url);
    if (await saysExpired(mode, response)) {
      await client.getTokenSilently({ cacheMode: "off" });
      response = await fetcher.fetchWithAuth(url);
    }
    return response;
  },
  accessToken: () => client.getTokenSilently(),
  // The fetcher keeps the window.fetch it found when it was made.
  rebind() {
    fetcher = client.createFetcher();
  },
});
