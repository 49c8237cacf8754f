// Fault matrix row 8: the device clock 5 minutes fast or slow. Login (with
// its ID token checks) still works, a valid token is used without refreshing
// (no storm: expiry is computed from expires_in on receipt, not from the
// device's idea of the server's time), and a token the server already
// rejects is replaced through the reactive path with one refresh.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { eventsOf, sleep, freshContext, signedInTabs, call, named, burst } from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

afterEach(() => {
  idp.setAccessTokenTtl(3600);
  idp.setAdvertisedExpiresIn(null);
  idp.resetCounters();
});

const refreshGrants = () => idp.counters().token.byGrantType.refresh_token ?? 0;

// Every page of the context sees Date (and so Date.now) shifted by `offsetMs`;
// timers and performance.now keep real time, as on a device whose wall
// clock is simply set wrong.
function skewClock(offsetMs) {
  return `(() => {
    const RealDate = Date;
    const offset = ${offsetMs};
    class SkewedDate extends RealDate {
      constructor(...args) {
        if (args.length === 0) super(RealDate.now() + offset);
        else super(...args);
      }
      static now() {
        return RealDate.now() + offset;
      }
    }
    globalThis.Date = SkewedDate;
  })();`;
}

const FIVE_MINUTES = 5 * 60 * 1000;

for (const [name, offset] of [
  ["5 minutes fast", FIVE_MINUTES],
  ["5 minutes slow", -FIVE_MINUTES],
]) {
  test(`device clock ${name}: login verifies, no refresh storm, a token the server rejects is replaced once`, async () => {
    const { context, errors } = await freshContext(browser, { initScript: skewClock(offset) });
    try {
      // The server lets access tokens live 2 s but tells the client an hour:
      // only the server's 401 can reveal that the token is dead.
      idp.setAdvertisedExpiresIn(3600);
      const [tab] = await signedInTabs(context, idp, {}, { ttl: 2 });
      const skew = await tab.evaluate(() => Date.now() - performance.timeOrigin - performance.now());
      assert.ok(Math.abs(skew - offset) < 5_000, `the page's clock is off by ${Math.round(skew)} ms`);
      const claims = await tab.evaluate(() => window.auth.getUser());
      assert.equal(claims?.sub, "alice", "the ID token verified at login despite the skew");

      const fresh = await burst(tab, idp.whoamiUrl, 20);
      assert.deepEqual(fresh, Array(20).fill(200));
      assert.equal(refreshGrants(), 0, "a valid token is used as is: no refresh");

      await sleep(2_800); // dead at the server, valid as far as the client knows
      idp.setAccessTokenTtl(60);
      const rejected = await burst(tab, idp.whoamiUrl, 10);
      assert.deepEqual(rejected, Array(10).fill(200), "401s answered by one refresh and a retry");
      assert.equal(refreshGrants(), 1, "one refresh for the burst");
      assert.equal(idp.counters().api.byStatus["401"] >= 1, true, "the server did reject the old token");

      const after = await burst(tab, idp.whoamiUrl, 10);
      assert.deepEqual(after, Array(10).fill(200));
      assert.equal(refreshGrants(), 1, "the refreshed token (and its ID token) is used without another refresh");
      const events = await eventsOf(tab);
      assert.deepEqual(named(events, "tokens").map((e) => e.source), ["refresh"]);
      assert.deepEqual(named(events, "sessionExpired"), []);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}
