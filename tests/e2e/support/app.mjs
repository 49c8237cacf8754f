// Helpers for driving the e2e app page (tests/e2e/app) against the test IdP.

// Options for AuthClient.create pointing at `idp`. The API (/api/*) is on
// the IdP's origin, which fetchWithAuth must be allowed to send tokens to;
// `allowedOrigins: undefined` in `extra` restores the default (page only).
export function clientOptions(idp, extra = {}) {
  return {
    issuer: idp.issuer,
    clientId: idp.clientId,
    redirectUri: `${idp.spaOrigin}/`,
    scope: "openid offline_access api",
    allowInsecureLoopback: true,
    allowedOrigins: [new URL(idp.whoamiUrl).origin],
    ...extra,
  };
}

export async function openApp(page, url) {
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 15_000 });
}

// Runs `AuthClient.create(options)` then `body(client, arg)` in the page;
// a rejection comes back as { error: { code, message, error, status } }.
export async function withClient(page, options, body, arg) {
  return page.evaluate(
    async ([options, source, arg]) => {
      try {
        const client = await window.latchkey.AuthClient.create(options);
        // eslint-disable-next-line no-new-func
        const run = new Function("client", "arg", `return (${source})(client, arg);`);
        return { value: await run(client, arg) };
      } catch (e) {
        return { error: { code: e.code, message: e.message, error: e.error, status: e.status } };
      }
    },
    [options, body.toString(), arg],
  );
}

// Logs in through the real redirect: login() navigates to the IdP, which
// signs "alice" in without UI and redirects back with code, state and iss.
// Resolves with the callback URL the browser landed on.
export async function loginViaRedirect(page, idp, options, loginOptions = {}) {
  await openApp(page, `${idp.spaOrigin}/`);
  const landed = page.waitForURL((url) => url.searchParams.has("code") || url.searchParams.has("error"), {
    timeout: 15_000,
  });
  // Not awaited inside: the page navigates away while login() runs.
  await page.evaluate(
    ([options, loginOptions]) => {
      window.latchkey.AuthClient.create(options).then((client) => client.login(loginOptions));
    },
    [options, loginOptions],
  );
  await landed;
  await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 15_000 });
  return page.url();
}

const recordKey = (idp, clientId, kind = "tokens") => `latchkey:${idp.issuer}:${clientId}:${kind}`;

// Runs in the page: reads (`value` undefined) or writes the record `key` of
// `storage`, past latchkey. A read of a missing record is null.
async function accessRecord([storage, key, value]) {
  if (storage === "localstorage") {
    if (value === undefined) return localStorage.getItem(key);
    return localStorage.setItem(key, value);
  }
  const db = await new Promise((resolve, reject) => {
    const request = indexedDB.open("latchkey", 1);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  try {
    return await new Promise((resolve, reject) => {
      const records = db.transaction("records", value === undefined ? "readonly" : "readwrite").objectStore("records");
      const request = value === undefined ? records.get(key) : records.put(value, key);
      request.onsuccess = () => resolve(value === undefined ? (request.result ?? null) : undefined);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

// The raw stored token record (`storage`: "indexeddb" or "localstorage") of
// `clientId` (or its record of another `kind`: "metadata"), read past latchkey, for checking what is at rest; null when
// there is none.
export function rawRecord(page, idp, storage = "indexeddb", clientId = idp.clientId, kind = "tokens") {
  return page.evaluate(accessRecord, [storage, recordKey(idp, clientId, kind)]);
}

// Writes `value` as `clientId`'s raw record, past latchkey (a forged,
// copied or outdated record). latchkey's database must exist already.
export function putRawRecord(page, idp, value, { storage = "indexeddb", clientId = idp.clientId } = {}) {
  return page.evaluate(accessRecord, [storage, recordKey(idp, clientId), value]);
}
