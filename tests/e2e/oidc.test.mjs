// OpenID Connect against the real authorization server: the login's ID token
// (RS256, signed with a key the server generated at start-up) is verified
// with WebCrypto against the server's JWKS; getUser() returns its claims and,
// on request, UserInfo's. A token response whose ID token was tampered with,
// or is unsigned, is refused and nothing is stored, as is one whose key the
// issuer's key set does not hold.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { startIdp, TEST_USER } from "../idp/server.mjs";
import { launchBrowser } from "./support/browser.mjs";
import { clientOptions, loginViaRedirect, withClient } from "./support/app.mjs";
import { requireStagedApp } from "./support/project.mjs";
import { eventsOf, named, signedInTabs, sleep, until } from "./support/session.mjs";

let idp;
let browser;
let jwksUri;

before(async () => {
  idp = await startIdp({ serveSpa: { root: requireStagedApp() } });
  browser = await launchBrowser();
  jwksUri = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()).jwks_uri;
});

after(async () => {
  await browser?.close();
  await idp?.close();
});

const b64url = (text) => Buffer.from(text).toString("base64url");
const fromB64url = (segment) => Buffer.from(segment, "base64url").toString();

// Logs in through the real redirect, `rewriteIdToken` rewriting the token
// response's id_token and `routes` installing more interception; completes the callback and reads back the outcome.
async function loginWith(context, { rewriteIdToken, routes = async () => {}, scope } = {}) {
  const page = await context.newPage();
  await routes(page);
  if (rewriteIdToken) {
    await page.route(`${idp.issuer}/token`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      body.id_token = rewriteIdToken(body.id_token);
      await route.fulfill({ response, body: JSON.stringify(body) });
    });
  }
  const options = clientOptions(idp, scope ? { scope } : {});
  await loginViaRedirect(page, idp, options);
  const outcome = await withClient(page, options, async (client) => {
    try {
      await client.handleRedirectCallback();
    } catch (e) {
      return { code: e.code, authenticated: await client.isAuthenticated() };
    }
    return { user: await client.getUser(), withInfo: await client.getUser({ userinfo: true }) };
  });
  return { page, outcome: outcome.value ?? outcome };
}

test("the real ID token verifies; getUser returns its claims, and UserInfo's on request", async () => {
  const context = await browser.newContext();
  try {
    let jwksFetches = 0;
    const { outcome } = await loginWith(context, {
      scope: "openid offline_access api profile email",
      routes: (page) =>
        page.route(jwksUri, (route) => {
          jwksFetches += 1;
          return route.continue();
        }),
    });
    const { user, withInfo } = outcome;
    assert.equal(user.iss, idp.issuer);
    assert.equal(user.sub, TEST_USER.sub);
    assert.equal(user.aud, idp.clientId);
    assert.equal(typeof user.exp, "number");
    assert.equal(typeof user.nonce, "string", "the nonce the login sent, checked");
    assert.equal(withInfo.sub, TEST_USER.sub);
    assert.equal(withInfo.name, TEST_USER.name, "profile claims come from UserInfo");
    assert.equal(withInfo.email, TEST_USER.email);
    assert.equal(jwksFetches, 1, "the key set was fetched (and the signature checked) once");
  } finally {
    await context.close();
  }
});

for (const [name, rewrite, code] of [
  [
    "a tampered payload (sub changed)",
    (token) => {
      const [header, payload, signature] = token.split(".");
      const claims = JSON.parse(fromB64url(payload));
      claims.sub = "mallory";
      return `${header}.${b64url(JSON.stringify(claims))}.${signature}`;
    },
    "id_token_invalid_signature",
  ],
  [
    "an unsigned token (alg none)",
    (token) => {
      const [, payload] = token.split(".");
      return `${b64url(JSON.stringify({ alg: "none" }))}.${payload}.`;
    },
    "id_token_malformed",
  ],
  [
    "an HS256 token (the classic key-confusion attack)",
    (token) => {
      const [, payload, signature] = token.split(".");
      return `${b64url(JSON.stringify({ alg: "HS256" }))}.${payload}.${signature}`;
    },
    "id_token_unsupported_alg",
  ],
]) {
  test(`${name} is refused with ${code}, nothing is stored, and the issued tokens are revoked`, async () => {
    const context = await browser.newContext();
    try {
      const liveBefore = idp.liveRefreshTokens();
      const { outcome } = await loginWith(context, { rewriteIdToken: rewrite });
      assert.deepEqual(outcome, { code, authenticated: false });
      assert.equal(idp.liveRefreshTokens(), liveBefore, "the refresh token issued for the refused login is dead at the server");
    } finally {
      await context.close();
    }
  });
}

// (A cached key set that lacks a new kid is fetched again once: the native
// tests cover it; the test server cannot rotate its signing key.)
test("a key set that does not hold the signing key: id_token_key_not_found, nothing stored", async () => {
  const context = await browser.newContext();
  try {
    let jwksFetches = 0;
    const { outcome } = await loginWith(context, {
      routes: (page) =>
        page.route(jwksUri, async (route) => {
          jwksFetches += 1;
          const response = await route.fetch();
          const jwks = await response.json();
          jwks.keys = jwks.keys.map((key) => ({ ...key, kid: "someone-else" }));
          await route.fulfill({ response, body: JSON.stringify(jwks) });
        }),
    });
    assert.deepEqual(outcome, { code: "id_token_key_not_found", authenticated: false });
    assert.equal(jwksFetches, 1, "a set fetched just now is not fetched again");
  } finally {
    await context.close();
  }
});

// A refresh saves and tells its tokens first and checks its new ID token after: the `user` event
// says when that check is done, in every tab, so an app (useAuth()'s user) that reads getUser()
// then shows the refreshed ID token's claims rather than the previous one's.
test("a refreshed ID token: every tab hears `tokens` once, then `user`, when getUser() has its claims", async () => {
  const context = await browser.newContext();
  try {
    const [a, b] = await signedInTabs(context, idp, {}, { more: 1 });
    const before = await a.evaluate(() => window.auth.getUser());
    const listen = (page) =>
      page.evaluate(() => {
        window.heardUser = [];
        window.auth.on("user", async () => window.heardUser.push((await window.auth.getUser()).iat));
      });
    await listen(a);
    await listen(b);
    let refreshedIdToken;
    await a.route(`${idp.issuer}/token`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      refreshedIdToken = body.id_token;
      await route.fulfill({ response, body: JSON.stringify(body) });
    });
    await sleep(1_100); // a later second: the new ID token's iat differs from the login's
    await a.evaluate(() => window.auth.getAccessToken({ forceRefresh: true }));
    assert.ok(refreshedIdToken, "the refresh answered a new ID token");
    const { iat } = JSON.parse(fromB64url(refreshedIdToken.split(".")[1]));
    assert.ok(iat > before.iat, `${iat} after ${before.iat}`);
    for (const [tab, source] of [[a, "refresh"], [b, "sync"]]) {
      await until(async () => (await tab.evaluate(() => window.heardUser.length)) > 0, 5_000, `${source}: the user event`);
      await sleep(300); // room for a second event, which must not come
      assert.deepEqual(await tab.evaluate(() => window.heardUser), [iat], `${source}: one user event, after which getUser() has the new claims`);
      assert.deepEqual(named(await eventsOf(tab), "tokens").map((e) => e.source), [source], "one tokens event");
      assert.equal((await tab.evaluate(() => window.auth.getUser())).iat, iat);
    }
  } finally {
    await context.close();
  }
});
