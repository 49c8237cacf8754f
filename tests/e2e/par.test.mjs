// Pushed authorization requests (RFC 9126) against the test authorization
// server (oidc-provider, PAR enabled): with `par: true` the browser carries
// only client_id and a request_uri, the login completes, and a refused push
// is `par_failed` with the server's error.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, openApp, withClient, loginViaRedirect } from "./support/app.mjs";
import { freshContext } from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

// The authorization URL a client with `extra` options would send the browser to.
async function loginUrl(page, extra, loginOptions = {}) {
  return withClient(page, clientOptions(idp, extra), (client, options) => client.createLoginUrl(options), loginOptions);
}

test("par: true: the authorization URL carries only client_id and request_uri; the login completes", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const made = await loginUrl(page, { par: true });
    assert.deepEqual(made.error, undefined);
    const url = new URL(made.value);
    assert.equal(`${url.origin}${url.pathname}`, `${idp.issuer}/auth`);
    assert.deepEqual([...url.searchParams.keys()].sort(), ["client_id", "request_uri"]);
    assert.equal(url.searchParams.get("client_id"), idp.clientId);
    assert.match(url.searchParams.get("request_uri"), /^urn:ietf:params:oauth:request_uri:/);

    const options = clientOptions(idp, { par: true });
    const landed = new URL(await loginViaRedirect(page, idp, options, { extraParams: { prompt: "consent" } }));
    assert.ok(landed.searchParams.get("code"), "redirected back with a code");
    const done = await withClient(
      page,
      options,
      async (client, api) => {
        await client.handleRedirectCallback();
        return { authed: await client.isAuthenticated(), status: (await client.fetchWithAuth(api)).status };
      },
      idp.whoamiUrl,
    );
    assert.deepEqual(done.value, { authed: true, status: 200 }, JSON.stringify(done));
    assert.equal(idp.counters().token.byGrantType.authorization_code >= 1, true);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("without par the request travels in the URL as before", async () => {
  const { context } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const made = await loginUrl(page, {});
    const params = new URL(made.value).searchParams;
    assert.equal(params.get("code_challenge_method"), "S256");
    assert.equal(params.get("request_uri"), null);
  } finally {
    await context.close();
  }
});

test("a push the server refuses is par_failed with its error, and no URL", async () => {
  const { context } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const made = await loginUrl(page, { par: true }, { extraParams: { prompt: "no-such-prompt" } });
    assert.equal(made.value, undefined);
    assert.equal(made.error.code, "par_failed", JSON.stringify(made.error));
    assert.equal(made.error.error, "invalid_request");
    assert.equal(made.error.status, 400);
  } finally {
    await context.close();
  }
});

test("par: true with an explicit configuration that has no PAR endpoint is refused at create()", async () => {
  const { context } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const refused = await withClient(
      page,
      {
        ...clientOptions(idp, { par: true }),
        authorizationEndpoint: `${idp.issuer}/auth`,
        tokenEndpoint: `${idp.issuer}/token`,
      },
      () => "created",
    );
    assert.equal(refused.error?.code, "invalid_option", JSON.stringify(refused));
    assert.match(refused.error.message, /par/);
  } finally {
    await context.close();
  }
});
