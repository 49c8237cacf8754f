// The token goes only where the app said (issue 15): the page's own origin
// by default, the origins in allowedOrigins otherwise, never anywhere a
// `<base href>` injection points; `tokenIn: "query"` puts it in
// `?access_token=` with the same refresh and retry; a redirected answer is
// not retried; an API that refuses every token costs one refresh, not one
// per call, also with several tabs calling it.
//
// Two small servers of this file's own stand in for the app and an API:
// `app` serves the staged e2e page and an API on the page's origin, `api`
// is the same API on a second loopback origin. Both record every request
// and check the token by asking the test IdP's /api/whoami, so "expired"
// means what the authorization server says.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";

import { openApp, withClient, clientOptions } from "./support/app.mjs";
import { accessToken, freshContext, signedInTabs, sleep, until, listenOn, heardOn, EXPIRED_MS, LONG_TTL } from "./support/session.mjs";
import { launchBrowser } from "./support/browser.mjs";
import { requireStagedApp } from "./support/project.mjs";
import { startIdp } from "../idp/server.mjs";

let idp;
let site; // the IdP handle, with the page served by `app`
let browser;
let app;
let api;

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

// A server on 127.0.0.1 recording every request but preflights:
//   /api/*         the token (Authorization or ?access_token=) checked at the IdP's /api/whoami
//   /redirect      302 to /api/whoami
//   /always401     401 Bearer error="invalid_token", whatever the token
//   anything else  a file of `root` (when given), / being index.html
async function startServer(root) {
  const requests = [];
  const preflights = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const cors = {
      "access-control-allow-origin": req.headers.origin ?? "*",
      "access-control-expose-headers": "WWW-Authenticate",
      "cache-control": "no-store",
    };
    if (req.method === "OPTIONS") {
      preflights.push(url.pathname);
      res.writeHead(204, {
        ...cors,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": req.headers["access-control-request-headers"] ?? "",
      });
      return res.end();
    }
    const isApi = url.pathname.startsWith("/api/") || url.pathname === "/redirect" || url.pathname === "/always401";
    if (isApi) {
      requests.push({
        path: url.pathname,
        query: [...url.searchParams],
        authorization: req.headers.authorization ?? null,
      });
    }
    if (url.pathname === "/redirect") {
      res.writeHead(302, { ...cors, location: "/api/whoami" });
      return res.end();
    }
    if (url.pathname === "/always401") {
      res.writeHead(401, { ...cors, "www-authenticate": 'Bearer error="invalid_token"' });
      return res.end();
    }
    if (url.pathname.startsWith("/api/")) {
      const bearer = req.headers.authorization?.replace(/^Bearer /, "");
      const token = url.searchParams.get("access_token") ?? bearer;
      const upstream = await fetch(idp.whoamiUrl, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      const headers = { ...cors, "content-type": "application/json" };
      const challenge = upstream.headers.get("www-authenticate");
      if (challenge) headers["www-authenticate"] = challenge;
      res.writeHead(upstream.status, headers);
      return res.end(await upstream.text());
    }
    const file = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
    if (!root || file.split("/").includes("..")) {
      res.writeHead(404, cors);
      return res.end();
    }
    try {
      const body = await readFile(path.join(root, file));
      res.writeHead(200, { ...cors, "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404, cors);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    requests,
    preflights,
    reset() {
      requests.length = 0;
      preflights.length = 0;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

before(async () => {
  app = await startServer(requireStagedApp());
  api = await startServer(null);
  idp = await startIdp({ spaOrigins: [app.origin] });
  // The session helpers open `spaOrigin`: here, the page `app` serves.
  site = Object.create(idp, { spaOrigin: { value: app.origin } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await idp?.close();
  await app?.close();
  await api?.close();
});

afterEach(() => {
  idp.setAccessTokenTtl(3600);
  idp.setAdvertisedExpiresIn(null);
  idp.resetCounters();
  app.reset();
  api.reset();
});

const refreshGrants = () => idp.counters().token.byGrantType.refresh_token ?? 0;

// One fetchWithAuth in the tab: { status, redirected } or { code, message }.
function attempt(page, input, init) {
  return page.evaluate(
    async ([input, init]) => {
      try {
        const res = await window.auth.fetchWithAuth(input, init ?? undefined);
        return { status: res.status, redirected: res.redirected };
      } catch (e) {
        return { code: e.code, message: e.message, name: e.name };
      }
    },
    [input, init ?? null],
  );
}

// Logs in with `extra` options; with `deadAtServer`, the access token lives
// 2 s at the server but the client is told an hour, and the test waits until
// it has died: only the API's 401 can tell (the reactive path).
async function signIn(context, extra, { deadAtServer = false } = {}) {
  if (deadAtServer) idp.setAdvertisedExpiresIn(3600);
  const [tab] = await signedInTabs(context, site, extra, { ttl: deadAtServer ? 2 : LONG_TTL });
  const token = await accessToken(tab);
  if (deadAtServer) {
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(LONG_TTL);
  }
  app.reset();
  api.reset();
  idp.resetCounters();
  return { tab, token };
}

test("default: the page's own origin gets the token; another origin gets nothing, not even a preflight", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(context, { allowedOrigins: undefined });
    assert.deepEqual(await attempt(tab, `${app.origin}/api/whoami`), { status: 200, redirected: false });
    assert.deepEqual(await attempt(tab, "/api/whoami"), { status: 200, redirected: false });
    assert.deepEqual(
      app.requests.map((r) => r.authorization),
      [`Bearer ${token}`, `Bearer ${token}`],
    );

    for (const url of [`${api.origin}/api/whoami`, idp.whoamiUrl]) {
      const refused = await attempt(tab, url);
      assert.equal(refused.code, "origin_not_allowed", url);
      assert.equal(refused.name, "LatchkeyError");
      assert.ok(refused.message.includes(new URL(url).origin), refused.message);
      assert.ok(!refused.message.includes(token), "the message never carries the token");
      assert.ok(!refused.message.includes("whoami"), "only the origin is named, not the URL");
    }
    const asRequest = await tab.evaluate(async (url) => {
      const request = new Request(url, { method: "POST", body: "x" });
      const outcome = await window.auth.fetchWithAuth(request).then(
        () => "sent",
        (e) => e.code,
      );
      return { outcome, bodyUsed: request.bodyUsed };
    }, `${api.origin}/api/echo`);
    assert.deepEqual(asRequest, { outcome: "origin_not_allowed", bodyUsed: false });
    assert.deepEqual(api.requests, [], "the other origin received no request");
    assert.deepEqual(api.preflights, []);
    assert.equal(refreshGrants(), 0, "a refused call costs no refresh");

    // latchkey's own call to the issuer's UserInfo endpoint is not the app's.
    const user = await tab.evaluate(() => window.auth.getUser({ userinfo: true }));
    assert.equal(user.sub, "alice");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a no-cors call cannot carry the token: invalid_option before anything is sent, no refresh; a blob: URL is never an API", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    // The page's origin listed too: a blob: URL's origin reads as it.
    const { tab } = await signIn(context, { allowedOrigins: [api.origin, app.origin] }, { deadAtServer: true });
    for (const [what, input] of [
      ["a URL", `${api.origin}/api/whoami`],
      ["a Request", { request: `${api.origin}/api/whoami` }],
    ]) {
      const refused = await tab.evaluate(async (input) => {
        const call = typeof input === "string"
          ? window.auth.fetchWithAuth(input, { mode: "no-cors" })
          : window.auth.fetchWithAuth(new Request(input.request, { mode: "no-cors" }));
        return call.then((r) => ({ status: r.status, type: r.type }), (e) => ({ code: e.code, message: e.message }));
      }, input);
      assert.equal(refused.code, "invalid_option", `${what}: ${JSON.stringify(refused)}`);
      assert.match(refused.message, /no-cors/);
    }
    assert.deepEqual(api.requests, [], "nothing was sent");
    assert.equal(refreshGrants(), 0, "no refresh was spent");

    // A blob: URL's origin reads as the page's: it takes the full way, which refuses it.
    const blob = await tab.evaluate(async () => {
      const url = URL.createObjectURL(new Blob(["{}"], { type: "application/json" }));
      return window.auth.fetchWithAuth(url).then((r) => ({ status: r.status }), (e) => ({ code: e.code }));
    });
    assert.deepEqual(blob, { code: "origin_not_allowed" });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('tokenIn "query": a no-cors call is refused too (it would have to follow redirects, token and all)', async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab } = await signIn(context, { allowedOrigins: [{ origin: api.origin, tokenIn: "query" }] });
    const refused = await attempt(tab, `${api.origin}/api/whoami`, { mode: "no-cors" });
    assert.equal(refused.code, "invalid_option", JSON.stringify(refused));
    assert.deepEqual(api.requests, [], "nothing was sent");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a <base href> injected into the page does not take a relative call to its origin", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(context, { allowedOrigins: undefined });
    await tab.evaluate((href) => {
      const base = document.createElement("base");
      base.href = href;
      document.head.prepend(base);
    }, `${api.origin}/`);
    assert.equal(await tab.evaluate(() => document.baseURI), `${api.origin}/`);
    const refused = await attempt(tab, "api/whoami");
    assert.equal(refused.code, "origin_not_allowed");
    assert.ok(refused.message.includes(api.origin), refused.message);
    assert.ok(!refused.message.includes(token));
    assert.deepEqual(api.requests, [], "nothing reached the injected origin");
    assert.deepEqual(api.preflights, []);
    assert.deepEqual(app.requests, []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a listed origin gets the token in the header, with refresh and one retry; the list replaces the default", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(context, { allowedOrigins: [`${api.origin}/`] }, { deadAtServer: true });
    assert.deepEqual(await attempt(tab, `${api.origin}/api/whoami`), { status: 200, redirected: false });
    assert.equal(refreshGrants(), 1);
    const fresh = await accessToken(tab);
    assert.notEqual(fresh, token);
    assert.deepEqual(api.requests, [
      { path: "/api/whoami", query: [], authorization: `Bearer ${token}` },
      { path: "/api/whoami", query: [], authorization: `Bearer ${fresh}` },
    ]);

    const own = await attempt(tab, `${app.origin}/api/whoami`);
    assert.equal(own.code, "origin_not_allowed", "the page's origin is not listed");
    assert.deepEqual(app.requests, []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('tokenIn "query": ?access_token= (replacing one in the URL), no header, one refresh and a retry with the new token', async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(
      context,
      { allowedOrigins: [{ origin: api.origin, tokenIn: "query" }] },
      { deadAtServer: true },
    );
    const url = `${api.origin}/api/whoami?x=1&access_token=planted`;
    assert.deepEqual(await attempt(tab, url), { status: 200, redirected: false });
    assert.equal(refreshGrants(), 1, "exactly one refresh");
    const fresh = await accessToken(tab);
    assert.notEqual(fresh, token);
    assert.deepEqual(api.requests, [
      { path: "/api/whoami", query: [["x", "1"], ["access_token", token]], authorization: null },
      { path: "/api/whoami", query: [["x", "1"], ["access_token", fresh]], authorization: null },
    ]);
    assert.deepEqual(api.preflights, [], "no Authorization header, so no preflight either");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('tokenIn "query": a redirect is not followed, so the token in the query goes nowhere else', async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(context, { allowedOrigins: [{ origin: api.origin, tokenIn: "query" }] });
    const answer = await tab.evaluate(async (url) => {
      const res = await window.auth.fetchWithAuth(url);
      return { type: res.type, status: res.status };
    }, `${api.origin}/redirect`);
    assert.deepEqual(answer, { type: "opaqueredirect", status: 0 });
    assert.deepEqual(api.requests, [{ path: "/redirect", query: [["access_token", token]], authorization: null }], "only the request the app made");
    // With the header, the browser follows (and would strip the header
    // across origins): the placement alone decides.
    api.reset();
    assert.deepEqual(await attempt(tab, `${api.origin}/api/whoami`), { status: 200, redirected: false });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a response that came through a redirect is not retried", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(context, { allowedOrigins: [api.origin] }, { deadAtServer: true });
    assert.deepEqual(await attempt(tab, `${api.origin}/redirect`), { status: 401, redirected: true });
    assert.equal(refreshGrants(), 0, "no refresh for a redirected answer");
    assert.deepEqual(
      api.requests.map((r) => [r.path, r.authorization]),
      [
        ["/redirect", `Bearer ${token}`],
        ["/api/whoami", `Bearer ${token}`],
      ],
    );
    // The same token, asked directly: refreshed and retried as usual.
    api.reset();
    assert.deepEqual(await attempt(tab, `${api.origin}/api/whoami`), { status: 200, redirected: false });
    assert.equal(refreshGrants(), 1);
    assert.equal(api.requests.length, 2);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("an API that answers 401 to every token costs one refresh, whatever the number of calls", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const { tab, token } = await signIn(context, { allowedOrigins: [api.origin] });
    const CALLS = 8;
    for (let i = 0; i < CALLS; i++) {
      assert.deepEqual(await attempt(tab, `${api.origin}/always401`), { status: 401, redirected: false }, `call ${i}`);
    }
    assert.equal(refreshGrants(), 1, "one reactive refresh for the first call only");
    const fresh = await accessToken(tab);
    assert.notEqual(fresh, token);
    assert.deepEqual(
      api.requests.map((r) => r.authorization),
      [`Bearer ${token}`, ...Array(CALLS).fill(`Bearer ${fresh}`)],
      "the first call is retried once; the later ones are answered as is",
    );
    // The token itself is good: other endpoints take it, with no refresh.
    assert.deepEqual(await attempt(tab, `${api.origin}/api/whoami`), { status: 200, redirected: false });
    assert.equal(refreshGrants(), 1);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("an API that answers 401 to every token, called from 2 tabs in turn, costs one refresh in all", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const extra = { allowedOrigins: [api.origin] };
    const [a, b] = await signedInTabs(context, site, extra, { more: 1, ttl: LONG_TTL });
    const token = await accessToken(a);
    app.reset();
    api.reset();
    idp.resetCounters();
    // Tab B listens on the session's channel as its latchkey does.
    await listenOn(b, `latchkey:${site.issuer}:${site.clientId}`, "refused");
    assert.deepEqual(await attempt(a, `${api.origin}/always401`), { status: 401, redirected: false });
    assert.equal(refreshGrants(), 1, "tab A's first call refreshed once");
    const fresh = await accessToken(a);
    assert.notEqual(fresh, token);
    // Tab B adopts A's set from its broadcast; A's word that the API refused
    // it at once follows on the same channel: once B's own listener has
    // it, and a moment for latchkey's listener beside it.
    await until(async () => (await accessToken(b)) === fresh, 5000, "tab B to adopt the refreshed set");
    await heardOn(b, 5_000, "tab B to hear the refusal");
    const ROUNDS = 3;
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, tab] of [["B", b], ["A", a]]) {
        assert.deepEqual(await attempt(tab, `${api.origin}/always401`), { status: 401, redirected: false }, `${name} ${i}`);
      }
    }
    assert.equal(refreshGrants(), 1, "no tab refreshed the set the API refused at once");
    assert.equal(await accessToken(b), fresh);
    assert.equal(api.requests.length, 2 + 2 * ROUNDS, "A's first call and its retry, then one request per call");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("invalid allowedOrigins entries are refused at create() with invalid_option naming the entry", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await openApp(page, `${app.origin}/`);
    const cases = [
      ["https://api.example/v1", "https://api.example/v1"],
      ["https://user@api.example", "https://user@api.example"],
      ["http://api.example", "http://api.example"],
      ["https://127.1", "https://127.1"],
      [{ origin: "https://api.example", tokenIn: "body" }, "tokenIn"],
      [{ origin: "https://api.example", tokenin: "query" }, "tokenin"],
      [42, "entry 0"],
    ];
    for (const [entry, named] of cases) {
      const options = clientOptions(site, { allowedOrigins: [entry] });
      const result = await withClient(page, options, () => "created");
      assert.equal(result.error?.code, "invalid_option", JSON.stringify(entry));
      assert.ok(result.error.message.includes("allowedOrigins"), result.error.message);
      assert.ok(result.error.message.includes(named), result.error.message);
    }
    const notAList = await withClient(page, clientOptions(site, { allowedOrigins: "https://api.example" }), () => 1);
    assert.equal(notAList.error?.code, "invalid_option");
    const tokenRequests = Object.values(idp.counters().token.byGrantType).reduce((a, b) => a + b, 0);
    assert.equal(tokenRequests, 0, "no token request");
  } finally {
    await context.close();
  }
});
