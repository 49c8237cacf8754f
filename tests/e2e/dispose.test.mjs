// AuthClient.dispose() against the real authorization server: a disposed
// client hears nothing more (events, other tabs, the tab becoming visible)
// and its calls say client_disposed, while what was in flight runs to its
// end: a rotation the server answered is still saved and told to the other
// tabs.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, rawRecord } from "./support/app.mjs";
import {
  accessToken,
  call,
  eventsOf,
  freshContext,
  named,
  signedInTabs,
  sleep,
  until,
  within,
  EXPIRED_MS,
  LONG_TTL,
  SHORT_TTL,
} from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

afterEach(() => {
  idp.setTokenFaults({});
  idp.setAccessTokenTtl(3600);
  idp.resetCounters();
});

const BOUNDED = { timeout: 60_000 };
const refreshGrants = () => idp.counters().token.byGrantType.refresh_token ?? 0;
const rotations = () => idp.counters().token.succeeded.refresh_token ?? 0;

// A second client in the tab, its events recorded in window.otherEvents: it
// shows what the disposed one would have heard.
const addOtherClient = (page) =>
  page.evaluate(async (options) => {
    window.other = await window.latchkey.AuthClient.create(options);
    window.otherEvents = [];
    for (const name of ["tokens", "signedOut", "sessionExpired"]) {
      window.other.on(name, () => window.otherEvents.push(name));
    }
  }, clientOptions(idp));

test("a disposed client hears no other tab, emits nothing, and every call says client_disposed", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [a, b] = await signedInTabs(context, idp, {}, { more: 1 });
    await addOtherClient(b);
    await b.evaluate(() => window.auth.dispose());

    const out = await within(a.evaluate(() => window.auth.logout({ revoke: false }).then((r) => r.revocation)), 15_000, "A's logout");
    assert.equal(out, "skipped");
    await until(() => b.evaluate(() => window.otherEvents.includes("signedOut")), 5_000, "B's other client to hear the sign-out");
    assert.deepEqual(named(await eventsOf(b), "signedOut"), [], "the disposed client emitted nothing");

    const outcomes = await b.evaluate(async () => {
      const code = async (run) => {
        try {
          await run();
          return "ok";
        } catch (e) {
          return e.code ?? String(e);
        }
      };
      const auth = window.auth;
      return {
        getAccessToken: await code(() => auth.getAccessToken()),
        isAuthenticated: await code(() => auth.isAuthenticated()),
        fetchWithAuth: await code(() => auth.fetchWithAuth("/anything")),
        login: await code(() => auth.login()),
        createLoginUrl: await code(() => auth.createLoginUrl()),
        loginWithPopup: await code(() => auth.loginWithPopup()),
        handleRedirectCallback: await code(() => auth.handleRedirectCallback()),
        getUser: await code(() => auth.getUser()),
        logout: await code(() => auth.logout()),
        on: await code(() => auth.on("tokens", () => {})),
        isLoginResponse: await code(() => auth.isLoginResponse()),
        storageKind: await code(() => auth.storageKind),
        // Promise-returning methods reject rather than throw.
        rejectsNotThrows: auth.getAccessToken().catch(() => {}) instanceof Promise,
        disposeAgain: await code(() => auth.dispose()),
      };
    });
    const disposed = "client_disposed";
    assert.deepEqual(outcomes, {
      getAccessToken: disposed,
      isAuthenticated: disposed,
      fetchWithAuth: disposed,
      login: disposed,
      createLoginUrl: disposed,
      loginWithPopup: disposed,
      handleRedirectCallback: disposed,
      getUser: disposed,
      logout: disposed,
      on: disposed,
      isLoginResponse: disposed,
      storageKind: disposed,
      rejectsNotThrows: true,
      disposeAgain: "ok",
    });
    assert.equal(await rawRecord(a, idp), null, "signed out");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a disposed client does not refresh when its tab becomes visible; a live one in the same state does", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [, b, c] = await signedInTabs(context, idp, {}, { more: 2, ttl: SHORT_TTL });
    await b.evaluate(() => window.auth.dispose());
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(LONG_TTL);
    idp.resetCounters();

    await b.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await sleep(1_500);
    assert.equal(refreshGrants(), 0, "the disposed client did not refresh");

    // The same stale token in a tab whose client is live: the dispatch
    // alone is enough for it to refresh.
    await c.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await until(() => refreshGrants() === 1, 5_000, "the live client's refresh");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a call in flight when its client is disposed runs to its end: the rotation is saved and told, once", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [a, b] = await signedInTabs(context, idp, {}, { more: 1, ttl: SHORT_TTL });
    const stored = await rawRecord(a, idp);
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(LONG_TTL);
    idp.resetCounters();
    // Answered 1.5 s after the server rotated: within the refresh timeout.
    idp.setTokenFaults({ next: [{ kind: "late_response", ms: 1_500 }] });

    const aCall = call(a, idp.whoamiUrl);
    await until(() => rotations() === 1, 5_000, "the server's rotation");
    await a.evaluate(() => window.auth.dispose());
    const aOut = await within(aCall, 20_000, "A's call");
    assert.equal(aOut.status, 200, `A's call: ${JSON.stringify(aOut)}`);

    assert.notEqual(await rawRecord(a, idp), stored, "the rotation was saved");
    await until(async () => named(await eventsOf(b), "tokens").length === 1, 5_000, "B to hear the rotation");
    const bOut = await call(b, idp.whoamiUrl);
    assert.equal(bOut.status, 200, `B's call: ${JSON.stringify(bOut)}`);
    assert.equal(refreshGrants(), 1, "B used the rotation: one refresh in all");
    assert.equal(idp.counters().grants.revoked, 0, "no refresh token presented twice");
    assert.deepEqual(named(await eventsOf(a), "tokens"), [], "the disposed client emitted nothing");
    assert.ok(await accessToken(b));
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a fast-path call in flight when its client is disposed still gets its answer", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [a] = await signedInTabs(context, idp);
    const out = await a.evaluate(async (url) => {
      // The API answers slowly: the client is disposed while the request is out.
      const send = window.fetch;
      window.fetch = (...args) => new Promise((resolve) => setTimeout(resolve, 300)).then(() => send(...args));
      const pending = window.auth.fetchWithAuth(url);
      window.auth.dispose();
      try {
        return (await pending).status;
      } catch (e) {
        return e.code ?? String(e);
      } finally {
        window.fetch = send;
      }
    }, idp.whoamiUrl);
    assert.equal(out, 200);
    assert.equal(idp.counters().api.byStatus["200"], 1, "sent once, on the fast path");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a listener that disposes the client stops the event's other listeners, as removing them would", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [a] = await signedInTabs(context, idp);
    const heard = await a.evaluate(async () => {
      const heard = [];
      window.auth.on("tokens", () => {
        heard.push("first");
        window.auth.dispose();
      });
      window.auth.on("tokens", () => heard.push("second"));
      // A refresh in this tab emits `tokens`.
      await window.auth.getAccessToken({ forceRefresh: true });
      await new Promise((resolve) => setTimeout(resolve, 100));
      return heard;
    });
    assert.deepEqual(heard, ["first"]);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a listener that throws is reported as uncaught and the event's other listeners still run; on() refuses a non-function", BOUNDED, async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [a] = await signedInTabs(context, idp);
    const out = await a.evaluate(async () => {
      const heard = [];
      window.auth.on("tokens", () => {
        throw new Error("the app's tokens listener failed");
      });
      window.auth.on("tokens", () => heard.push("second"));
      let refused;
      try {
        window.auth.on("tokens");
      } catch (e) {
        refused = e.code;
      }
      await window.auth.getAccessToken({ forceRefresh: true });
      await new Promise((resolve) => setTimeout(resolve, 100));
      return { heard, refused };
    });
    assert.deepEqual(out, { heard: ["second"], refused: "invalid_option" });
    await until(() => errors.length > 0, 5_000, "the listener's exception to be reported");
    assert.deepEqual(errors, ["the app's tokens listener failed"]);
  } finally {
    await context.close();
  }
});
