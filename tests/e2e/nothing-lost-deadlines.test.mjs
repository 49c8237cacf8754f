// Issue 14, "every request latchkey makes has a deadline": a discovery,
// JWKS, code exchange, UserInfo or revocation request that never answers
// fails within refreshTimeoutSeconds with its own code, and nothing is
// stored. The test authorization server holds those requests open (an
// endpoint "hang" outage) until the fault is cleared.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, openApp, withClient, loginViaRedirect, rawRecord } from "./support/app.mjs";
import { eventsOf, freshContext, named, signedInTabs, until, within } from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";
import { logoutIn, sessionState } from "./support/nothing-lost.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

afterEach(() => {
  idp.clearEndpointFaults();
  idp.resetCounters();
});

const BOUNDED = { timeout: 90_000 };
const TIMEOUT_S = 2;
// One request's deadline plus slack for a loaded machine.
const ONE_REQUEST_MS = TIMEOUT_S * 1000 + 2_500;
const options = () => clientOptions(idp, { refreshTimeoutSeconds: TIMEOUT_S });

// Logs in through the redirect in a new page and runs handleRedirectCallback;
// resolves with { page, outcome: { ok } | { code, authenticated }, ms }.
async function loginAndCallback(context) {
  const page = await context.newPage();
  await loginViaRedirect(page, idp, options());
  const result = await within(
    withClient(page, options(), async (client) => {
      const started = performance.now();
      try {
        await client.handleRedirectCallback();
        return { ok: true, ms: performance.now() - started };
      } catch (e) {
        return { code: e.code, ms: performance.now() - started, authenticated: await client.isAuthenticated() };
      }
    }),
    30_000,
    "handleRedirectCallback",
  );
  assert.equal(result.error, undefined, `create() failed: ${JSON.stringify(result.error)}`);
  return { page, outcome: result.value };
}

test("hanging discovery: create() rejects with discovery_failed within its deadline; cleared, create() works", BOUNDED, async (t) => {
  const { context, errors } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    idp.setEndpointFault("discovery", { kind: "hang" });
    const create = () =>
      page.evaluate(async (options) => {
        const started = performance.now();
        try {
          await window.latchkey.AuthClient.create(options);
          return { created: true, ms: performance.now() - started };
        } catch (e) {
          return { code: e.code, ms: performance.now() - started };
        }
      }, options());
    const out = await within(create(), 30_000, "create()");
    t.diagnostic(`create(): ${JSON.stringify(out)}, discovery ${JSON.stringify(idp.counters().discovery)}`);
    assert.equal(out.code, "discovery_failed", JSON.stringify(out));
    const tried = idp.counters().discovery.faultsInjected;
    assert.ok(tried >= 1, "discovery was held");
    // OpenID discovery, then RFC 8414's document: each has its own deadline.
    assert.ok(out.ms < tried * TIMEOUT_S * 1000 + 2_500, `rejected after ${Math.round(out.ms)} ms, ${tried} documents held`);

    idp.setEndpointFault("discovery", null);
    const ok = await within(create(), 30_000, "create() after the outage");
    assert.equal(ok.created, true, JSON.stringify(ok));
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("hanging JWKS at login: handleRedirectCallback rejects within its deadline and stores nothing; cleared, a login works", BOUNDED, async (t) => {
  const { context, errors } = await freshContext(browser);
  try {
    idp.setEndpointFault("jwks", { kind: "hang" });
    const { page, outcome } = await loginAndCallback(context);
    t.diagnostic(`handleRedirectCallback: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.code, "jwks_unavailable", JSON.stringify(outcome));
    assert.ok(outcome.ms < ONE_REQUEST_MS, `rejected after ${Math.round(outcome.ms)} ms`);
    assert.equal(outcome.authenticated, false);
    assert.equal(await rawRecord(page, idp), null, "nothing stored");
    assert.ok(idp.counters().jwks.faultsInjected >= 1, "the key set request was held");
    assert.equal(idp.counters().token.succeeded.authorization_code, 1, "the code had been exchanged");

    idp.setEndpointFault("jwks", null);
    const again = await loginAndCallback(context);
    assert.equal(again.outcome.ok, true, JSON.stringify(again.outcome));
    assert.ok(await rawRecord(again.page, idp), "this login is stored");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("hanging code exchange: handleRedirectCallback rejects with network_error within its deadline and stores nothing", BOUNDED, async (t) => {
  const { context, errors } = await freshContext(browser);
  try {
    idp.setEndpointFault("code_exchange", { kind: "hang" });
    const { page, outcome } = await loginAndCallback(context);
    t.diagnostic(`handleRedirectCallback: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.code, "network_error", JSON.stringify(outcome));
    assert.ok(outcome.ms < ONE_REQUEST_MS, `rejected after ${Math.round(outcome.ms)} ms`);
    assert.equal(outcome.authenticated, false);
    assert.equal(await rawRecord(page, idp), null, "nothing stored");
    const { token } = idp.counters();
    assert.ok(token.faultsInjected >= 1, "the code exchange was held");
    assert.equal(token.succeeded.authorization_code, 0, "no code was exchanged");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("hanging UserInfo: getUser({ userinfo: true }) rejects with network_error within its deadline; the session is untouched", BOUNDED, async (t) => {
  const { context, errors } = await freshContext(browser);
  try {
    const [tab] = await signedInTabs(context, idp, { refreshTimeoutSeconds: TIMEOUT_S });
    idp.setEndpointFault("userinfo", { kind: "hang" });
    const out = await within(
      tab.evaluate(async () => {
        const started = performance.now();
        try {
          await window.auth.getUser({ userinfo: true });
          return { ok: true, ms: performance.now() - started };
        } catch (e) {
          return { code: e.code, ms: performance.now() - started };
        }
      }),
      30_000,
      "getUser",
    );
    t.diagnostic(`getUser: ${JSON.stringify(out)}`);
    assert.equal(out.code, "network_error", JSON.stringify(out));
    assert.ok(out.ms < ONE_REQUEST_MS, `rejected after ${Math.round(out.ms)} ms`);
    assert.ok(idp.counters().userinfo.faultsInjected >= 1, "the UserInfo request was held");
    assert.deepEqual(await sessionState(tab), { authenticated: true, token: "ok" });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("hanging revocation: logout() still signs out every tab and resolves within its deadline, reporting the failure", BOUNDED, async (t) => {
  const { context, errors } = await freshContext(browser);
  try {
    const tabs = await signedInTabs(context, idp, { refreshTimeoutSeconds: TIMEOUT_S }, { more: 1 });
    idp.setEndpointFault("revocation", { kind: "hang" });
    const started = Date.now();
    const result = await within(logoutIn(tabs[0]), 30_000, "logout");
    const ms = Date.now() - started;
    t.diagnostic(`logout: ${JSON.stringify(result)} after ${ms} ms`);
    assert.equal(result.revocation, "failed", JSON.stringify(result));
    // Two tokens (refresh, access), each with its own deadline at most.
    assert.ok(ms < 2 * TIMEOUT_S * 1000 + 2_500, `logout took ${ms} ms`);
    for (const [i, tab] of tabs.entries()) {
      await until(async () => named(await eventsOf(tab), "signedOut").length > 0, 5_000, `signedOut in tab ${i}`);
      assert.deepEqual(await sessionState(tab), { authenticated: false, token: "not_authenticated" }, `tab ${i}`);
    }
    assert.equal(await rawRecord(tabs[1], idp), null);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
