// Helpers for the "nothing lost under faults" tests (issue 14): what the
// server says about the session, and a tab whose app refreshes on its own.
import assert from "node:assert/strict";

import { openApp } from "./app.mjs";
import { installClient } from "./session.mjs";

// Asserts that the server never saw the session broken: no invalid_grant
// answered, no grant revoked (oidc-provider revokes the whole grant when a
// rotated-away refresh token comes back). `why` prefixes the messages. With
// `revocations`, that many grants may have been revoked on purpose through
// the revocation endpoint (RFC 7009), none for reuse.
export function assertNothingLost(idp, why = "", { revocations = 0 } = {}) {
  const { token, grants } = idp.counters();
  const at = why ? `${why}: ` : "";
  assert.equal(token.errorsByCode.invalid_grant ?? 0, 0, `${at}no invalid_grant (${JSON.stringify(token)})`);
  assert.equal(grants.byReason.reuse ?? 0, 0, `${at}no grant revoked for reuse (${JSON.stringify(grants)})`);
  assert.ok(
    grants.revoked === 0 || (grants.revoked <= revocations && grants.revoked === grants.byReason.revocation),
    `${at}no grant revoked${revocations ? ` but ${revocations} by revocation` : ""} (${JSON.stringify(grants)})`,
  );
}

// The grant (login) an access token belongs to, asked of the server
// itself; undefined for a token it does not know.
export async function grantOf(idp, accessToken) {
  return (await idp.provider.AccessToken.find(accessToken, { ignoreExpiration: true }))?.grantId;
}

// Opens the app in a new tab of `context` whose client refreshes with the
// app's own `refresh()` option: a page-side function that POSTs the
// refresh_token grant to the token endpoint itself and resolves with the
// endpoint's JSON (success or error). window.refreshCalls counts its calls,
// window.refreshAnswers the answers it got. The client is at window.auth,
// with its events recorded, as installClient does.
export async function openTabWithAppRefresh(context, idp, extra = {}) {
  const page = await context.newPage();
  await openApp(page, `${idp.spaOrigin}/`);
  await page.evaluate(() => {
    window.refreshCalls = 0;
    window.refreshAnswers = 0;
    const refresh = async ({ refreshToken, tokenEndpoint, clientId }) => {
      window.refreshCalls += 1;
      const res = await fetch(tokenEndpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId }),
      });
      const json = await res.json();
      window.refreshAnswers += 1;
      return json;
    };
    // installClient creates the client with AuthClient.create: hand it the option here
    // (functions cannot cross evaluate()).
    const { AuthClient } = window.latchkey;
    const create = AuthClient.create.bind(AuthClient);
    AuthClient.create = (options) => create({ ...options, refresh });
  });
  await installClient(page, idp, extra);
  return page;
}

// An init script: every write to latchkey's records store fails as a full
// disk does (QuotaExceededError), in the pages it is added to.
export function diskFull() {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    if (this.name === "records") throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    return put.apply(this, args);
  };
}

// Signs out in `page` (window.auth.logout); resolves with what logout
// resolved with ({ revocation, error? }) or { rejected: { code } }.
export function logoutIn(page, options) {
  return page.evaluate(async (options) => {
    try {
      const result = await window.auth.logout(options);
      return { revocation: result.revocation, error: result.error ? { code: result.error.code, status: result.error.status } : undefined };
    } catch (e) {
      return { rejected: { code: e.code, message: e.message } };
    }
  }, options);
}

// What a tab's client says about its session: signed in?, and the code
// getAccessToken rejects with (or "ok").
export function sessionState(page) {
  return page.evaluate(async () => ({
    authenticated: await window.auth.isAuthenticated(),
    token: await window.auth.getAccessToken().then(
      () => "ok",
      (e) => e.code,
    ),
  }));
}
