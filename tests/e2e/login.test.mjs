// Login with the Authorization Code flow + PKCE against the real test
// authorization server and tokens persisted per storage kind. Bad callbacks
// are in callbacks.test.mjs, storage faults in storage-faults.test.mjs.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";

import { collectPageErrors } from "./support/browser.mjs";
import { clientOptions, openApp, withClient, loginViaRedirect, rawRecord, putRawRecord } from "./support/app.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

beforeEach(() => idp.resetCounters());

const isAuthenticated = (page, options) => withClient(page, options, (client) => client.isAuthenticated());


for (const storage of ["indexeddb", "localstorage"]) {
  test(`${storage}: login, reload, and a second tab share the encrypted session`, async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors = collectPageErrors(page);
      const options = clientOptions(idp, { storage });
      const callbackUrl = await loginViaRedirect(page, idp, options, {
        appState: { returnTo: "/inbox" },
        extraParams: { prompt: "consent" },
      });
      const url = new URL(callbackUrl);
      assert.ok(url.searchParams.get("code"), "redirected back with a code");
      assert.equal(url.searchParams.get("iss"), idp.issuer);

      const done = await withClient(page, options, async (client) => {
        const result = await client.handleRedirectCallback();
        return { result, href: location.href, kind: client.storageKind, authed: await client.isAuthenticated() };
      });
      assert.deepEqual(done.error, undefined);
      assert.deepEqual(done.value.result, { appState: { returnTo: "/inbox" } });
      assert.equal(done.value.kind, storage);
      assert.equal(done.value.authed, true);
      assert.equal(done.value.href, `${idp.spaOrigin}/`, "code, state and iss removed from the address bar");
      assert.equal(idp.counters().token.byGrantType.authorization_code, 1);

      const record = await rawRecord(page, idp, storage);
      assert.match(record, /^\{"v":1,"iv":"[\w-]+","data":"[\w-]+"\}$/, "stored as an encrypted envelope");
      assert.doesNotMatch(record, /access_token|refresh_token|Bearer/);
      if (storage === "localstorage") {
        // What a localStorage dump reveals (SECURITY.md): every key and value
        // of the origin, as a disk image or a script would read them.
        const dump = await page.evaluate(() => JSON.stringify(Object.entries(localStorage)));
        const token = await withClient(page, options, (client) => client.getAccessToken());
        assert.equal(typeof token.value, "string");
        assert.ok(!dump.includes(token.value), "no access token in the dump");
        assert.doesNotMatch(dump, /eyJ[\w-]+\.eyJ/, "no JWT (ID token) in the dump");
        assert.match(dump, new RegExp(`latchkey:${idp.issuer.replace(/[.:/]/g, "\\$&")}:${idp.clientId}:tokens`), "only that a session exists, for which issuer and client");
      }

      await page.reload();
      await page.waitForSelector("body[data-ready=true]", { state: "attached" });
      assert.deepEqual(await isAuthenticated(page, options), { value: true }, "still signed in after reload");

      const second = await context.newPage();
      await openApp(second, `${idp.spaOrigin}/`);
      assert.deepEqual(await isAuthenticated(second, options), { value: true }, "a second tab sees the session");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

test("memory: login works and nothing survives a reload", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp, { storage: "memory" });
    await loginViaRedirect(page, idp, options);
    const done = await withClient(page, options, async (client) => {
      await client.handleRedirectCallback();
      return [client.storageKind, await client.isAuthenticated()];
    });
    assert.deepEqual(done, { value: ["memory", true] });
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", { state: "attached" });
    assert.deepEqual(await isAuthenticated(page, options), { value: false });
  } finally {
    await context.close();
  }
});

test("create() validates options with errors naming the field", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const base = clientOptions(idp);
    const cases = [
      [{ ...base, clientId: undefined }, "invalid_option", /clientId/],
      [{ ...base, storage: "cookies" }, "invalid_option", /storage/],
      [{ ...base, redirectUri: "callback.html" }, "invalid_option", /redirectUri/],
      [{ ...base, clientld: "typo" }, "invalid_option", /clientld/],
      // (Without the API's http origin, which would be refused first as an allowedOrigins entry.)
      [{ ...base, allowInsecureLoopback: false, allowedOrigins: undefined }, "insecure_endpoint", /issuer/],
      [{ ...base, allowInsecureLoopback: false }, "invalid_option", /allowedOrigins/],
      [{ ...base, issuer: `${idp.issuer}/other` }, "discovery_failed", /./],
    ];
    for (const [options, code, mentions] of cases) {
      const result = await withClient(page, options, () => "created");
      assert.equal(result.error?.code, code, JSON.stringify(result));
      assert.match(result.error.message, mentions);
    }
  } finally {
    await context.close();
  }
});

test("handleRedirectCallback and isLoginResponse take a URL object as its address", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp);
    await loginViaRedirect(page, idp, options);
    const done = await withClient(page, options, async (client) => {
      const here = new URL(location.href);
      const elsewhere = new URL("/elsewhere.html?code=c&state=s", location.href);
      const seen = [client.isLoginResponse(here), client.isLoginResponse(elsewhere), client.isLoginResponse(location.href)];
      await client.handleRedirectCallback(here);
      return [...seen, await client.isAuthenticated()];
    });
    assert.deepEqual(done, { value: [true, false, true, true] });
  } finally {
    await context.close();
  }
});

test("login() and createLoginUrl() refuse options that are not theirs instead of ignoring them", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const outcome = await withClient(page, clientOptions(idp), async (client) => {
      const refusal = (call) => call.then(() => "accepted", (e) => [e.code, e.message]);
      return {
        misspelt: await refusal(client.createLoginUrl({ extraparams: { prompt: "consent" } })),
        query: await refusal(client.createLoginUrl("prompt=consent")),
        number: await refusal(client.createLoginUrl(42)),
        appstate: await refusal(client.login({ appstate: { returnTo: "/x" } })),
        known: typeof (await client.createLoginUrl({ extraParams: { prompt: "consent" }, appState: 1 })),
        at: location.href,
      };
    });
    const { misspelt, query, number, appstate, known, at } = outcome.value;
    assert.deepEqual(misspelt[0], "invalid_option");
    assert.match(misspelt[1], /extraparams/);
    assert.deepEqual([query[0], number[0]], ["invalid_option", "invalid_option"]);
    assert.deepEqual(appstate[0], "invalid_option");
    assert.match(appstate[1], /appstate/);
    assert.equal(known, "string");
    assert.equal(at, `${idp.spaOrigin}/`, "login() did not leave the page");
  } finally {
    await context.close();
  }
});

// Creates a client in a fresh page and collects the `storage` events it
// emits right after creation.
async function storageEventsAtCreate(page, options) {
  return withClient(page, options, async (client) => {
    const events = [];
    client.on("storage", (detail) => events.push(detail));
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { events, kind: client.storageKind, reason: client.storageFallbackReason };
  });
}

test("IndexedDB refusing to open falls back to memory and says so in a storage event", async () => {
  const context = await browser.newContext();
  try {
    // Private-mode style failure: every open throws.
    await context.addInitScript(() => {
      IDBFactory.prototype.open = () => {
        throw new DOMException("IndexedDB is disabled", "InvalidStateError");
      };
    });
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const { value } = await storageEventsAtCreate(page, clientOptions(idp, { storage: "indexeddb" }));
    assert.equal(value.kind, "memory");
    assert.match(value.reason, /IndexedDB is disabled/);
    assert.equal(value.events.length, 1);
    assert.equal(value.events[0].type, "fallback");
    assert.equal(value.events[0].storage, "indexeddb");
  } finally {
    await context.close();
  }
});

test("a corrupt stored record is cleared at start-up with a storage event, signed out", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    const options = clientOptions(idp, { storage: "localstorage" });
    await putRawRecord(page, idp, '{"v":1,"iv":"AAAA","data":"garbage"}', { storage: "localstorage" });
    const { value } = await storageEventsAtCreate(page, options);
    assert.equal(value.kind, "localstorage");
    assert.equal(value.events.length, 1);
    assert.equal(value.events[0].type, "cleared");
    assert.match(value.events[0].reason, /^corrupt_record/);
    assert.equal(await rawRecord(page, idp, "localstorage"), null, "the corrupt record is gone");
    assert.deepEqual(await isAuthenticated(page, options), { value: false });
    const wrongEvent = await withClient(page, options, (client) => client.on("sesionExpired", () => {}));
    assert.equal(wrongEvent.error.code, "invalid_option");
  } finally {
    await context.close();
  }
});

/** A new browser context with a session stored by a completed redirect login. */
async function signedIn() {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const options = clientOptions(idp);
    await loginViaRedirect(page, idp, options);
    const done = await withClient(page, options, (client) => client.handleRedirectCallback());
    assert.deepEqual(done.error, undefined);
    await page.close();
    return { context, options };
  } catch (error) {
    await context.close();
    throw error;
  }
}

test("a returning tab starts from the kept metadata while discovery is unreachable, and tries it again later in the background", async () => {
  const { context, options } = await signedIn();
  try {
    // The tab cannot reach the discovery documents (as offline, or a
    // refused connection): the page's fetch rejects them at once. The
    // metadata kept with the session starts it, its first request goes
    // out before any discovery request, and discovery is tried later
    // (both documents) without disturbing the client.
    const second = await context.newPage();
    await openApp(second, `${idp.spaOrigin}/`);
    await second.evaluate(() => {
      const real = window.fetch.bind(window);
      window.refusedDiscoveries = 0;
      window.fetch = (input, init) => {
        const url = typeof input === "string" ? input : input.url;
        if (!url.includes("/.well-known/")) return real(input, init);
        window.refusedDiscoveries += 1;
        return Promise.reject(new TypeError("Failed to fetch"));
      };
    });
    const started = await withClient(
      second,
      options,
      async (client, url) => {
        const first = { status: (await client.fetchWithAuth(url)).status, refused: window.refusedDiscoveries };
        // Bounded: the revalidation is due 2 s after create().
        for (let i = 0; i < 100 && window.refusedDiscoveries < 2; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const later = { status: (await client.fetchWithAuth(url)).status, refused: window.refusedDiscoveries };
        return { first, later };
      },
      idp.whoamiUrl,
    );
    assert.deepEqual(
      started.value,
      { first: { status: 200, refused: 0 }, later: { status: 200, refused: 2 } },
      JSON.stringify(started),
    );
  } finally {
    await context.close();
  }
});

test("a returning tab keeps the metadata it revalidated in the background for the next start", async () => {
  const { context, options } = await signedIn();
  try {
    const second = await context.newPage();
    await openApp(second, `${idp.spaOrigin}/`);
    const before = await rawRecord(second, idp, "indexeddb", idp.clientId, "metadata");
    assert.ok(before, "the first start kept the metadata");
    idp.resetCounters();
    const started = await withClient(second, options, async (client, url) => (await client.fetchWithAuth(url)).status, idp.whoamiUrl);
    assert.equal(started.value, 200, JSON.stringify(started));
    // The revalidation is due 2 s after create(); a save re-seals the
    // record under a fresh IV, so any save changes it. Bounded wait.
    let after = before;
    for (let i = 0; i < 50 && after === before; i += 1) {
      await second.waitForTimeout(100);
      after = await rawRecord(second, idp, "indexeddb", idp.clientId, "metadata");
    }
    assert.notEqual(after, before, "the revalidated metadata was kept");
    assert.ok(idp.counters().discovery.requests >= 1, JSON.stringify(idp.counters().discovery));
  } finally {
    await context.close();
  }
});

test("a returning tab starts from the metadata kept with the session, without waiting for discovery, and revalidates it in the background", async () => {
  const { context, options } = await signedIn();
  try {

    // Discovery now hangs: a returning tab must not wait for it.
    idp.setEndpointFault("discovery", { kind: "hang" });
    try {
      const second = await context.newPage();
      await openApp(second, `${idp.spaOrigin}/`);
      const started = await withClient(
        second,
        { ...options, refreshTimeoutSeconds: 5 },
        async (client, url) => {
          const t0 = performance.now();
          const status = (await client.fetchWithAuth(url)).status;
          return { status, ms: performance.now() - t0 };
        },
        idp.whoamiUrl,
      );
      assert.equal(started.value?.status, 200, JSON.stringify(started));
      // The revalidation is due 2 s after create(): bounded wait for it.
      for (let i = 0; i < 100 && idp.counters().discovery.faultsInjected < 1; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const held = idp.counters().discovery.faultsInjected;
      assert.ok(held >= 1, "discovery was asked for in the background");
    } finally {
      idp.setEndpointFault("discovery", null);
    }
  } finally {
    await context.close();
  }
});
