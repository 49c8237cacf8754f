// Fault matrix rows 2 and 3, the cases refresh.test.mjs does not cover:
// a 503 with Retry-After (honoured without hammering the server, tokens
// kept), and the lost rotation response (the server rotated, the answer
// never arrived) ending in one clean sessionExpired per tab, not a loop.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { rawRecord } from "./support/app.mjs";
import {
  eventsOf,
  sleep,
  freshContext,
  signedInTabs,
  call,
  isAuthenticated,
  named,
  until,
  listenOn,
  heardOn,
  SHORT_TTL,
  EXPIRED_MS,
  LONG_TTL,
  IDLE_SOCKETS_CLOSED_MS,
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

const refreshGrants = () => idp.counters().token.byGrantType.refresh_token ?? 0;

test("503 with Retry-After: typed error carrying it, no request from any tab until it passes, tokens kept, then recovery", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [tab, other] = await signedInTabs(context, idp, {}, { ttl: SHORT_TTL, more: 1 });
    const stored = await rawRecord(tab, idp);
    await sleep(EXPIRED_MS);
    idp.setAccessTokenTtl(LONG_TTL);
    idp.resetCounters();
    const unavailable = JSON.stringify({ error: "temporarily_unavailable", error_description: "maintenance" });
    // 4 s: the window must outlast the checks inside it on a busy machine.
    idp.setTokenFaults({ next: [{ kind: "status", status: 503, headers: { "Retry-After": "4" }, body: unavailable }] });
    // The other tab listens on the session's channel as its latchkey does.
    await listenOn(other, `latchkey:${idp.issuer}:${idp.clientId}`, "backOff");

    const first = await call(tab, idp.whoamiUrl);
    assert.deepEqual(
      [first.code, first.status, first.error, first.retryAfter],
      ["token_error", 503, "temporarily_unavailable", 4],
      JSON.stringify(first),
    );
    // Inside the window: the same error at once, and nothing sent.
    const inside = await Promise.all([call(tab, idp.whoamiUrl), call(tab, idp.whoamiUrl), call(tab, idp.whoamiUrl)]);
    for (const r of inside) assert.deepEqual([r.code, r.status, r.retryAfter], ["token_error", 503, 4], JSON.stringify(r));
    // The other tab was told (BroadcastChannel): its calls wait too, without a request of its own.
    await heardOn(other, 3_000, "the other tab to hear the back-off");
    const fromOther = await Promise.all([call(other, idp.whoamiUrl), call(other, idp.whoamiUrl)]);
    for (const r of fromOther) {
      assert.deepEqual([r.code, r.status, r.error, r.retryAfter], ["token_error", 503, "temporarily_unavailable", 4], JSON.stringify(r));
    }
    assert.equal(refreshGrants(), 1, "one request from all tabs: the others waited for Retry-After");
    assert.equal(await rawRecord(tab, idp), stored, "the stored record is untouched");
    assert.equal(await isAuthenticated(tab), true);

    await sleep(4_100);
    const recovered = await call(tab, idp.whoamiUrl);
    assert.equal(recovered.status, 200, JSON.stringify(recovered));
    assert.equal(refreshGrants(), 2, "one refresh once Retry-After had passed");
    assert.notEqual(await rawRecord(tab, idp), stored, "the refreshed set was persisted");
    assert.deepEqual(named(await eventsOf(tab), "sessionExpired"), []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("lost rotation response without a grace window: one network_error, then one clean sessionExpired per tab, no retry loop", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const tabs = await signedInTabs(context, idp, {}, { ttl: SHORT_TTL, more: 1 });
    const stored = await rawRecord(tabs[0], idp);
    await sleep(IDLE_SOCKETS_CLOSED_MS);
    idp.setAccessTokenTtl(LONG_TTL);
    idp.resetCounters();
    idp.setTokenFaults({ next: [{ kind: "lose_response" }] });

    const lost = await call(tabs[0], idp.whoamiUrl);
    assert.equal(lost.code, "network_error", JSON.stringify(lost));
    assert.equal(idp.counters().token.faultsInjected, 1, "the server rotated, then the answer was lost");
    assert.equal(await rawRecord(tabs[0], idp), stored, "the pre-rotation tokens are kept: nothing else is known");
    assert.equal(await isAuthenticated(tabs[0]), true);

    // The only refresh token latchkey has is the rotated-away one. The
    // server (oidc-provider, no grace window) treats it as reuse: the grant
    // is revoked and the session ends, once, everywhere.
    const ended = await call(tabs[1], idp.whoamiUrl);
    assert.equal(ended.code, "session_expired", JSON.stringify(ended));
    for (const [i, tab] of tabs.entries()) {
      await until(async () => named(await eventsOf(tab), "sessionExpired").length > 0, 5_000, `sessionExpired in tab ${i}`);
    }
    // Further calls fail fast without a request: no loop of retries.
    for (const tab of tabs) {
      const after = await call(tab, idp.whoamiUrl);
      assert.equal(after.code, "not_authenticated", JSON.stringify(after));
    }
    await sleep(500);
    assert.equal(refreshGrants(), 2, "the lost refresh and the one that found the token reused; nothing after");
    assert.equal(idp.counters().token.errorsByCode.invalid_grant, 1);
    for (const [i, tab] of tabs.entries()) {
      assert.equal(named(await eventsOf(tab), "sessionExpired").length, 1, `tab ${i}: one sessionExpired`);
      assert.equal(await isAuthenticated(tab), false);
    }
    assert.equal(await rawRecord(tabs[0], idp), null, "the store is empty");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
