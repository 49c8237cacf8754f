// Fault matrix row 9, browser half: every error the public API rejects with
// on the bad day, every event detail and every console line, rendered every
// way an app or an error reporter would (String(), message, stack,
// JSON.stringify with all own properties), and searched for the tokens,
// code, PKCE verifier, state and nonce this session really used.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, loginViaRedirect } from "./support/app.mjs";
import { freshContext, installClient, sleep } from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

// Collects, from the wire, every secret the session uses: the state and
// nonce sent to the authorization endpoint, the code that came back, the
// verifier and refresh tokens sent to the token endpoint, and every token
// it answered with.
function recordSecrets(context, idp) {
  const secrets = new Set();
  const add = (value) => {
    if (typeof value === "string" && value.length >= 8) secrets.add(value);
  };
  context.on("request", (request) => {
    const url = new URL(request.url());
    for (const name of ["state", "nonce", "code", "code_verifier"]) add(url.searchParams.get(name));
    if (request.method() === "POST" && url.origin === new URL(idp.issuer).origin) {
      const form = new URLSearchParams(request.postData() ?? "");
      for (const name of ["code", "code_verifier", "refresh_token", "token"]) add(form.get(name));
    }
  });
  context.on("response", async (response) => {
    if (!response.url().startsWith(idp.issuer) || response.request().method() !== "POST") return;
    try {
      const body = await response.json();
      for (const name of ["access_token", "refresh_token", "id_token"]) add(body[name]);
    } catch {
      // not JSON (injected garbage): nothing to learn
    }
  });
  return secrets;
}

// Renders a rejection every way it may be shown or shipped.
const RENDER = `(e) => [
  String(e),
  e?.message,
  e?.stack,
  JSON.stringify(e),
  JSON.stringify(Object.fromEntries(Object.getOwnPropertyNames(Object(e)).map((k) => [k, String(e[k])]))),
].join("\\n")`;

// Runs `body(auth, arg)` in the page and returns the rendering of what it
// rejected with.
function failure(page, body, arg) {
  return page.evaluate(
    async ([body, render, arg]) => {
      const run = new Function("auth", "arg", `return (${body})(auth, arg);`);
      try {
        await run(window.auth, arg);
        return "(resolved)";
      } catch (e) {
        return new Function(`return ${render}`)()(e);
      }
    },
    [body.toString(), RENDER, arg],
  );
}

test("no token, code, verifier, state or nonce in any error, event or console line on the bad day", { timeout: 120_000 }, async () => {
  const { context, errors } = await freshContext(browser);
  const secrets = recordSecrets(context, idp);
  const rendered = [];
  context.on("console", (message) => rendered.push(`console: ${message.text()}`));
  try {
    idp.setAccessTokenTtl(2);
    const page = await context.newPage();
    const options = clientOptions(idp);
    const callbackUrl = await loginViaRedirect(page, idp, options);

    // A tampered callback (it carries the real code and the real state's
    // neighbour), then the real one.
    const forged = new URL(callbackUrl);
    forged.searchParams.set("state", `${forged.searchParams.get("state")}x`);
    await page.evaluate(async ([options, url, render]) => {
      const client = await window.latchkey.AuthClient.create(options);
      try {
        await client.handleRedirectCallback(url);
      } catch (e) {
        window.firstFailure = new Function(`return ${render}`)()(e);
      }
    }, [options, forged.href, RENDER]);
    rendered.push(await page.evaluate(() => window.firstFailure));
    // The forged attempt consumed the pending login, as it must: log in again.
    await loginViaRedirect(page, idp, options);
    await page.evaluate((options) => window.latchkey.AuthClient.create(options).then((c) => c.handleRedirectCallback()), options);
    await installClient(page, idp);
    await page.evaluate(() => {
      window.details = [];
      for (const name of ["tokens", "sessionExpired", "signedOut", "storage"]) {
        // A tokens event hands the app its access token by design (as
        // getAccessToken does); everything else in it must be clean.
        window.auth.on(name, (detail) => {
          const shown = detail && "accessToken" in detail ? { ...detail, accessToken: "(by design)" } : detail;
          window.details.push(`${name}: ${JSON.stringify(shown)}`);
        });
      }
    });
    // The replayed callback.
    rendered.push(await failure(page, (auth, url) => auth.handleRedirectCallback(url), callbackUrl));

    // Token endpoint faults on an expired token, one after another.
    await sleep(2_800);
    idp.setAccessTokenTtl(60);
    const faults = [
      { kind: "status", status: 500 },
      { kind: "status", status: 503, headers: { "Retry-After": "1" } },
      { kind: "garbage" },
      { kind: "no_access_token" },
    ];
    for (const fault of faults) {
      idp.setTokenFaults({ next: [fault] });
      rendered.push(await failure(page, (auth, url) => auth.fetchWithAuth(url), idp.whoamiUrl));
      await sleep(1_100); // past any Retry-After
    }
    idp.setTokenFaults({});
    // A working refresh (its tokens join the secrets), then the server kills the grant.
    rendered.push(await failure(page, (auth) => auth.getAccessToken().then(() => auth.getUser({ userinfo: true }))));
    idp.revokeAllGrants();
    await sleep(2_800);
    idp.setAccessTokenTtl(2);
    rendered.push(await failure(page, (auth) => auth.getAccessToken()));
    await sleep(300);
    rendered.push(await failure(page, (auth) => auth.getAccessToken()));
    rendered.push(await failure(page, (auth) => auth.getUser({ userinfo: true })));
    rendered.push(await failure(page, (auth) => auth.logout({ revoke: "yes" })));
    rendered.push(await failure(page, (auth) => auth.on("tokenz", () => {})));
    rendered.push(...(await page.evaluate(() => window.details)));
    rendered.push(...errors);

    const codes = rendered.join("\n").match(/"code":"\w+"/g) ?? [];
    assert.ok(new Set(codes).size >= 6, `enough distinct failures were rendered: ${[...new Set(codes)]}`);
    assert.ok(secrets.size >= 8, `the secrets were recorded from the wire (${secrets.size})`);
    const text = rendered.join("\n");
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 4)}…) appears in:\n${text}`);
      // Nor a long piece of it (a truncated quote).
      const middle = secret.slice(Math.floor(secret.length / 2) - 6, Math.floor(secret.length / 2) + 6);
      assert.ok(!text.includes(middle), `part of a secret (${middle.slice(0, 3)}…) appears`);
    }
  } finally {
    await context.close();
  }
});
