// oidc-client-ts's harness page, configured the way its documentation recommends for a
// public SPA client with refresh tokens:
// - one UserManager({ authority, client_id, redirect_uri, scope }); the code flow with PKCE is
//   its default. signinRedirect() to sign in, signinCallback() on the redirect page.
// - scope includes offline_access, so the IdP issues a refresh token; signinSilent() then
//   renews with the refresh_token grant (it only falls back to an iframe without one).
// - userStore: new WebStorageStateStore({ store: window.localStorage }) — the documented way
//   to keep the user across reloads and share it between tabs (the default, sessionStorage,
//   is per tab). automaticSilentRenew keeps its default (true): it renews shortly before the
//   expiry the token response announced (accessTokenExpiringNotificationTimeInSeconds, default
//   60 s, before it), from a timer in every tab's UserManager, whether or not calls are made.
// - An API call reads the user with getUser(), renews with signinSilent() if the user says it
//   expired (user.expired: no leeway), sends the bearer token, and when the API says the token expired renews with
//   signinSilent() and sends the request once more.
import { UserManager, WebStorageStateStore } from "oidc-client-ts";

import { installBench, saysExpired } from "./common.js";

const config = window.BENCH_CONFIG;

const create = () =>
  new UserManager({
    authority: config.issuer,
    client_id: config.clientId,
    redirect_uri: `${location.origin}/`,
    scope: "openid offline_access api",
    userStore: new WebStorageStateStore({ store: window.localStorage }),
  });

let manager;
let mode = "rfc6750";

const send = (url, user) => fetch(url, { headers: { Authorization: `Bearer ${user.access_token}` } });

installBench({
  async login() {
    manager = create();
    await manager.signinRedirect();
  },
  async completeLogin() {
    manager = create();
    await manager.signinCallback();
  },
  async init(opts = {}) {
    mode = opts.mode ?? "rfc6750";
    manager ??= create();
    window.benchClient = manager;
  },
  async call(url) {
    let user = await manager.getUser();
    if (!user) throw Object.assign(new Error("no user"), { code: "not_authenticated" });
    if (user.expired) user = await manager.signinSilent();
    let response = await send(url, user);
    if (await saysExpired(mode, response)) {
      user = await manager.signinSilent();
      response = await send(url, user);
    }
    return response;
  },
  async accessToken() {
    return (await manager.getUser()).access_token;
  },
});
