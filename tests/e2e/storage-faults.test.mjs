// Fault matrix row 22 (a store read that never answers inside the lock) and
// row 7, the cases login.test.mjs does not cover (it has the
// corrupt record and IndexedDB refusing to open): a record copied from
// another client, a record of a format version this build does not read,
// and a full disk on save. Never a crash, never a silent loss of a valid
// session: a record that cannot be used is cleared with a storage event,
// and tokens that cannot be written are kept in memory with one. Row 23: a
// tab whose localStorage copy lags behind another tab's write reads the
// last write (the marks), never a spent refresh token.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { clientOptions, openApp, withClient, loginViaRedirect, rawRecord, putRawRecord } from "./support/app.mjs";
import {
  freshContext,
  signedInTabs,
  installClient,
  call,
  eventsOf,
  named,
  sleep,
  isAuthenticated,
  openTab,
  within,
  until,
  SHORT_TTL,
  EXPIRED_MS,
  LONG_TTL,
} from "./support/session.mjs";
import { startApp, stopApp } from "./support/suite.mjs";

let idp;
let browser;

before(async () => ({ idp, browser } = await startApp()));
after(() => stopApp({ idp, browser }));

afterEach(() => {
  idp.setAccessTokenTtl(3600);
  idp.resetCounters();
});

const OTHER_CLIENT = "another-app";

// A client for `clientId` created on `page`: the storage events it emitted
// at start-up and whether it is signed in.
function startUp(page, clientId) {
  return withClient(page, clientOptions(idp, { clientId }), async (client) => {
    const events = [];
    client.on("storage", (detail) => events.push(detail));
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { events, authed: await client.isAuthenticated(), kind: client.storageKind };
  });
}

test("a record copied from another client is cleared with a storage event; the real session is untouched", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const [tab] = await signedInTabs(context, idp);
    const ours = await rawRecord(tab, idp);
    // Someone copies this client's encrypted record to another client's key.
    await putRawRecord(tab, idp, ours, { clientId: OTHER_CLIENT });

    const other = await startUp(tab, OTHER_CLIENT);
    assert.deepEqual(other.error, undefined);
    assert.equal(other.value.authed, false, "the copy does not sign the other client in");
    assert.equal(other.value.events.length, 1, JSON.stringify(other.value.events));
    assert.equal(other.value.events[0].type, "cleared");
    assert.match(other.value.events[0].reason, /^corrupt_record/);
    const copy = await rawRecord(tab, idp, "indexeddb", OTHER_CLIENT);
    assert.equal(copy, null, "the copy is gone");

    assert.equal(await rawRecord(tab, idp), ours, "the original record is untouched");
    const still = await call(tab, idp.whoamiUrl);
    assert.equal(still.status, 200, "the real session still works");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a record of an unknown format version is cleared with a storage event naming it; no crash", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    // Format 0 never existed; envelope 1 is the first. A record this build
    // cannot read is reported and removed, so the next login starts clean.
    const empty = await startUp(page, idp.clientId); // creates latchkey's database
    assert.deepEqual(empty.value.events, []);
    await putRawRecord(page, idp, '{"v":0,"iv":"AAAAAAAAAAAAAAAA","data":"AAAA"}');
    const started = await startUp(page, idp.clientId);
    assert.deepEqual(started.error, undefined);
    assert.equal(started.value.authed, false);
    assert.equal(started.value.events.length, 1, JSON.stringify(started.value.events));
    assert.equal(started.value.events[0].type, "cleared");
    assert.match(started.value.events[0].reason, /^corrupt_record.*version 0/);
    assert.equal(await rawRecord(page, idp), null);

    // The app carries on: a login works and is stored.
    const [tab] = await signedInTabs(context, idp);
    assert.equal((await call(tab, idp.whoamiUrl)).status, 200);
    assert.ok(await rawRecord(tab, idp), "the new session is stored");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a record from a newer latchkey is left alone: the old tab works from memory, never overwrites or signs it out", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const page = await context.newPage();
    await openApp(page, `${idp.spaOrigin}/`);
    await startUp(page, idp.clientId); // creates latchkey's database
    const newer = '{"v":2,"iv":"AAAAAAAAAAAAAAAA","data":"AAAA"}';
    await putRawRecord(page, idp, newer);
    const started = await startUp(page, idp.clientId);
    assert.deepEqual(started.error, undefined);
    assert.equal(started.value.authed, false, "this build cannot read it");
    assert.equal(started.value.events.length, 1, JSON.stringify(started.value.events));
    assert.equal(started.value.events[0].type, "newer_record");
    assert.match(started.value.events[0].reason, /^newer_record.*version 2/);
    assert.equal(await rawRecord(page, idp), newer, "not removed");

    // A login in this old tab works from memory and leaves the record as is;
    // so does its sign-out.
    const options = clientOptions(idp);
    await loginViaRedirect(page, idp, options);
    const session = await withClient(
      page,
      options,
      async (client, url) => {
        await client.handleRedirectCallback();
        const status = (await client.fetchWithAuth(url)).status;
        const authed = await client.isAuthenticated();
        await client.logout({ revoke: false });
        return { status, authed, after: await client.isAuthenticated() };
      },
      idp.whoamiUrl,
    );
    assert.deepEqual(session.value, { status: 200, authed: true, after: false }, JSON.stringify(session));
    assert.equal(await rawRecord(page, idp), newer, "neither overwritten by the login nor cleared by the sign-out");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// Every write to latchkey's records store fails as a full disk does.
const DISK_FULL = () => {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    if (this.name === "records") throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    return put.apply(this, args);
  };
};

test("quota exceeded on save: login and refresh keep their tokens in memory, each with a storage event", async () => {
  const { context, errors } = await freshContext(browser, { initScript: DISK_FULL });
  try {
    idp.setAccessTokenTtl(2);
    const page = await context.newPage();
    const options = clientOptions(idp);
    await loginViaRedirect(page, idp, options);
    await installClient(page, idp);
    await page.evaluate(() => window.auth.handleRedirectCallback());
    const atLogin = await eventsOf(page);
    const login = { events: named(atLogin, "storage"), authed: await isAuthenticated(page) };
    assert.equal(login.authed, true, "the login succeeded from memory");
    assert.equal(login.events.length, 1, JSON.stringify(login.events));
    assert.deepEqual([login.events[0].type, login.events[0].storage], ["write_failed", "indexeddb"]);
    assert.match(login.events[0].reason, /^storage_error.*QuotaExceededError/);
    assert.equal(await rawRecord(page, idp), null, "nothing could be written");
    assert.equal((await call(page, idp.whoamiUrl)).status, 200);

    await sleep(2_800);
    idp.setAccessTokenTtl(60);
    // Counted from here: on a slow machine the call above may already
    // have needed a refresh of the 2 s token.
    idp.resetCounters();
    const before = await eventsOf(page);
    const refreshed = await call(page, idp.whoamiUrl);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed));
    assert.equal(idp.counters().token.byGrantType.refresh_token, 1);
    const events = (await eventsOf(page)).slice(before.length);
    assert.deepEqual(named(events, "storage").map((e) => e.type), ["write_failed"], "the refresh's write failed too, and said so");
    assert.deepEqual(named(events, "tokens").length, 1);
    assert.deepEqual(named(events, "sessionExpired"), []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// Reads of latchkey's records store never answer while the page says so
// (window.stallRecords): a wedged IndexedDB.
const STALLED_READS = () => {
  const get = IDBObjectStore.prototype.get;
  IDBObjectStore.prototype.get = function (...args) {
    if (this.name === "records" && window.stallRecords) return new EventTarget(); // never settles
    return get.apply(this, args);
  };
};

test("a store read that never answers inside the lock fails the call with storage_error and lets the lock go", { timeout: 60_000 }, async () => {
  const { context, errors } = await freshContext(browser, { initScript: STALLED_READS });
  try {
    const [tab] = await signedInTabs(context, idp, { refreshTimeoutSeconds: 2 }, { ttl: 2 });
    await sleep(2_500);
    idp.setAccessTokenTtl(60);
    await tab.evaluate(() => (window.stallRecords = true));
    // The token has expired: the refresh reads the store inside the lock,
    // and the read never answers. Before the bound, this call never settled.
    const stalled = await call(tab, idp.whoamiUrl);
    assert.equal(stalled.code, "storage_error", JSON.stringify(stalled));
    assert.equal(idp.counters().token.byGrantType.refresh_token ?? 0, 0, "nothing was sent");
    assert.deepEqual(named(await eventsOf(tab), "sessionExpired"), [], "the session did not end");

    await tab.evaluate(() => (window.stallRecords = false));
    const after = await call(tab, idp.whoamiUrl);
    assert.equal(after.status, 200, "the lock was let go: " + JSON.stringify(after));
    assert.equal(idp.counters().token.byGrantType.refresh_token, 1);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("a store read that never answers at start: create() settles within the timeout, signed out with read_failed, the record kept", { timeout: 60_000 }, async () => {
  const { context, errors } = await freshContext(browser, { initScript: STALLED_READS });
  try {
    const [tab] = await signedInTabs(context, idp);
    const ours = await rawRecord(tab, idp);
    await tab.evaluate(() => (window.stallRecords = true));
    const started = Date.now();
    const stalled = await within(
      withClient(tab, clientOptions(idp, { refreshTimeoutSeconds: 2 }), async (client) => {
        const events = [];
        client.on("storage", (detail) => events.push(detail));
        await new Promise((resolve) => setTimeout(resolve, 50));
        return { events, authed: await client.isAuthenticated() };
      }),
      20_000,
      "create() with a wedged store",
    );
    const took = Date.now() - started;
    assert.equal(stalled.error, undefined, JSON.stringify(stalled));
    assert.ok(took < 8_000, `settled after ${took} ms (timeout 2 s per wait)`);
    assert.equal(stalled.value.authed, false);
    assert.equal(stalled.value.events.length, 1, JSON.stringify(stalled.value.events));
    assert.equal(stalled.value.events[0].type, "read_failed");
    // Reads wait as long as under the lock: the 2 s timeout, but at least a marked
    // localStorage read's wait (1 s) plus a hidden tab's timers (2 s).
    assert.match(stalled.value.events[0].reason, /did not answer within 3000 ms/);

    await tab.evaluate(() => (window.stallRecords = false));
    assert.equal(await rawRecord(tab, idp), ours, "nothing was removed");
    const next = await startUp(tab, idp.clientId);
    assert.equal(next.value.authed, true, "the next start signs in from the kept record");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// Opening latchkey's keys database (the storage key and the DPoP keys)
// never settles while the page says so (window.stallKeys).
const STALLED_KEYS_OPEN = () => {
  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function (name, ...rest) {
    if (name === "latchkey-keys" && window.stallKeys) return new EventTarget(); // never settles
    return open.call(this, name, ...rest);
  };
};

test("a DPoP client whose keys database never opens: create() settles within the timeout, in memory", { timeout: 60_000 }, async () => {
  const { context, errors } = await freshContext(browser, { initScript: STALLED_KEYS_OPEN });
  try {
    const tab = await context.newPage();
    await openApp(tab, `${idp.spaOrigin}/`);
    await tab.evaluate(() => (window.stallKeys = true));
    const started = Date.now();
    const stalled = await within(
      withClient(tab, clientOptions(idp, { dpop: true, refreshTimeoutSeconds: 2 }), async (client) => ({
        storage: client.storageKind,
        fallback: client.storageFallbackReason,
        authed: await client.isAuthenticated(),
      })),
      20_000,
      "create() with the keys database wedged",
    );
    const took = Date.now() - started;
    assert.equal(stalled.error, undefined, JSON.stringify(stalled));
    assert.ok(took < 8_000, `settled after ${took} ms (timeout 2 s per wait)`);
    assert.equal(stalled.value.storage, "memory");
    assert.match(stalled.value.fallback, /did not answer within 2000 ms/);
    assert.equal(stalled.value.authed, false);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// Reads of latchkey's records store fail while the page says so
// (window.failRecords): a storage backend that refuses reads.
const FAILING_READS = () => {
  const get = IDBObjectStore.prototype.get;
  IDBObjectStore.prototype.get = function (...args) {
    if (this.name === "records" && window.failRecords) {
      throw new DOMException("the read was refused", "UnknownError");
    }
    return get.apply(this, args);
  };
};

test("a stored session that cannot be read at start: signed out with storage read_failed, the record kept for the next start", async () => {
  const { context, errors } = await freshContext(browser, { initScript: FAILING_READS });
  try {
    const [tab] = await signedInTabs(context, idp);
    const ours = await rawRecord(tab, idp);
    await tab.evaluate(() => (window.failRecords = true));
    const failed = await startUp(tab, idp.clientId);
    assert.deepEqual(failed.error, undefined);
    assert.equal(failed.value.authed, false);
    assert.equal(failed.value.events.length, 1, JSON.stringify(failed.value.events));
    assert.equal(failed.value.events[0].type, "read_failed");
    assert.match(failed.value.events[0].reason, /^storage_error/);
    await tab.evaluate(() => (window.failRecords = false));

    assert.equal(await rawRecord(tab, idp), ours, "nothing was removed");
    const next = await startUp(tab, idp.clientId);
    assert.deepEqual(next.value.events, []);
    assert.equal(next.value.authed, true, "the next start signs in from the kept record");
    assert.equal(idp.counters().token.byGrantType.refresh_token ?? 0, 0);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// How late a lagging tab sees another tab's write to the tokens record, and
// its broadcasts.
const LAG_MS = 300;

// Init script: this tab's copy of localStorage answers another tab's new
// tokens record only LAG_MS after the tab first could have read it, and its
// BroadcastChannel messages arrive LAG_MS late, as Chromium's per-process
// copy of localStorage and its messages do when they trail the Web Lock's
// grant (measured: four tabs incrementing a localStorage counter under one
// lock lost 230 of 1,200 increments). Its own writes it reads at once.
// `window.laggedReads` counts the reads that answered the older value.
const lagging = (lagMs) => {
  const getItem = Storage.prototype.getItem;
  const setItem = Storage.prototype.setItem;
  const removeItem = Storage.prototype.removeItem;
  const shown = new Map();
  const arrived = new Map();
  const tracked = (storage, key) => storage === window.localStorage && String(key).endsWith(":tokens");
  window.laggedReads = 0;
  Storage.prototype.getItem = function (key) {
    const now = getItem.call(this, key);
    if (!tracked(this, key)) return now;
    if (!shown.has(key) || shown.get(key) === now) {
      shown.set(key, now);
      arrived.delete(key);
      return now;
    }
    const since = arrived.get(key);
    if (since?.value !== now) arrived.set(key, { value: now, at: performance.now() });
    if (performance.now() - arrived.get(key).at >= lagMs) {
      shown.set(key, now);
      return now;
    }
    window.laggedReads += 1;
    return shown.get(key);
  };
  Storage.prototype.setItem = function (key, value) {
    setItem.call(this, key, value);
    if (tracked(this, key)) shown.set(key, String(value));
  };
  Storage.prototype.removeItem = function (key) {
    removeItem.call(this, key);
    if (tracked(this, key)) shown.set(key, null);
  };
  const onmessage = Object.getOwnPropertyDescriptor(BroadcastChannel.prototype, "onmessage");
  Object.defineProperty(BroadcastChannel.prototype, "onmessage", {
    configurable: true,
    get() {
      return onmessage.get.call(this);
    },
    set(listener) {
      const late = listener && ((event) => setTimeout(() => listener.call(this, event), lagMs));
      onmessage.set.call(this, late);
    },
  });
};

test("localStorage: a tab whose copy lags behind another tab's rotation waits for it, and presents no spent refresh token", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const extra = { storage: "localstorage" };
    const [first] = await signedInTabs(context, idp, extra, { ttl: SHORT_TTL });
    const behind = await openTab(context, idp, extra, { initScript: { content: `(${lagging})(${LAG_MS})` } });
    idp.setAccessTokenTtl(LONG_TTL);
    await sleep(EXPIRED_MS);
    idp.resetCounters();

    // The first tab refreshes and lets the lock go; the lagging tab takes it
    // while its copy of the record and the broadcast are still on their way.
    const refreshed = await call(first, idp.whoamiUrl);
    const synced = await call(behind, idp.whoamiUrl);
    const counters = idp.counters();
    const dump = JSON.stringify(counters);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed));
    assert.equal(synced.status, 200, JSON.stringify(synced));
    assert.ok((await behind.evaluate(() => window.laggedReads)) > 0, "the lagging tab read the older record");
    assert.equal(counters.token.byGrantType.refresh_token, 1, `one refresh — ${dump}`);
    assert.deepEqual(counters.token.errorsByCode, {}, `no invalid_grant — ${dump}`);
    assert.equal(counters.grants.revoked, 0, dump);
    const sources = named(await eventsOf(behind), "tokens").map((e) => e.source);
    assert.deepEqual(sources, ["sync"], "the lagging tab adopted the rotated set");
    // The record's mark is kept where the copy cannot lag.
    const mark = await first.evaluate(
      ([key]) =>
        new Promise((resolve, reject) => {
          const open = indexedDB.open("latchkey-keys");
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const get = open.result.transaction("keys").objectStore("keys").get(`${key}:mark`);
            get.onsuccess = () => resolve(get.result ?? null);
            get.onerror = () => reject(get.error);
          };
        }),
      [`latchkey:${idp.issuer}:${idp.clientId}:tokens`],
    );
    assert.match(String(mark), /^[0-9a-f]{16}$/);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("localStorage: a tab whose copy lags behind another tab's sign-out sends no refresh and hears signedOut", async () => {
  const { context, errors } = await freshContext(browser);
  try {
    const extra = { storage: "localstorage" };
    const [first] = await signedInTabs(context, idp, extra, { ttl: SHORT_TTL });
    const behind = await openTab(context, idp, extra, { initScript: { content: `(${lagging})(${LAG_MS})` } });
    await sleep(EXPIRED_MS);
    idp.resetCounters();

    const signedOut = await first.evaluate(() => window.auth.logout().then((r) => r.revocation));
    assert.equal(signedOut, "revoked");
    // Its token stale, the lagging tab takes the lock while its copy still
    // holds the signed-out session and the broadcast is on its way.
    const refused = await call(behind, idp.whoamiUrl);
    const counters = idp.counters();
    assert.ok((await behind.evaluate(() => window.laggedReads)) > 0, "the lagging tab read the older record");
    assert.equal(refused.code, "not_authenticated", JSON.stringify(refused));
    assert.equal(counters.token.byGrantType.refresh_token ?? 0, 0, `no refresh — ${JSON.stringify(counters)}`);
    // The late broadcast tells it nothing new: once it has arrived, and a
    // little longer for strays, the tab has heard one sign-out only.
    const heard = async () => named(await eventsOf(behind), "signedOut").length > 0;
    await until(heard, 5_000, "the lagging tab to hear the sign-out");
    await sleep(200);
    assert.deepEqual(
      (await eventsOf(behind)).map((e) => e.name),
      ["signedOut"],
    );
    assert.equal(await isAuthenticated(behind), false);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
