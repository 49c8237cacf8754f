// Helpers for the DPoP (RFC 9449) end-to-end tests: the client options of a
// DPoP session, the keys latchkey keeps in IndexedDB (read past latchkey),
// the requests the browser sent, and proofs taken apart.
import { openApp } from "./app.mjs";
import { installClient } from "./session.mjs";

// The options (for clientOptions / loginTab / openTab) of a client of the
// test IdP's DPoP-bound, PAR-required client `spa-dpop`.
export const dpopOptions = (idp, extra = {}) => ({ clientId: idp.dpopClientId, dpop: true, par: true, ...extra });

// Runs in the page: every DPoP key record whose name starts with `prefix`,
// as { name, x, y, thumbprint (RFC 7638, computed here from x and y),
// type, extractable, algorithm, usages, exported (what exportKey of the
// private key did: "ok" or the error's name) }. Never creates the database.
async function readKeyRecords(prefix) {
  const known = await indexedDB.databases();
  if (!known.some((d) => d.name === "latchkey-keys")) return [];
  const db = await new Promise((resolve, reject) => {
    const request = indexedDB.open("latchkey-keys");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  let entries;
  try {
    if (!db.objectStoreNames.contains("keys")) return [];
    entries = await new Promise((resolve, reject) => {
      const store = db.transaction("keys", "readonly").objectStore("keys");
      const keys = store.getAllKeys();
      const values = store.getAll();
      values.onsuccess = () => resolve(keys.result.map((k, i) => [k, values.result[i]]));
      values.onerror = () => reject(values.error);
    });
  } finally {
    db.close();
  }
  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const out = [];
  for (const [name, value] of entries) {
    if (typeof name !== "string" || !name.startsWith(prefix)) continue;
    const { privateKey, x, y } = value ?? {};
    // RFC 7638: the required members, lexicographic order, no whitespace.
    const canonical = JSON.stringify({ crv: "P-256", kty: "EC", x, y });
    const thumbprint = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)));
    const exported = await crypto.subtle.exportKey("jwk", privateKey).then(
      () => "ok",
      (e) => e.name,
    );
    out.push({
      name,
      x,
      y,
      thumbprint,
      type: privateKey?.type,
      extractable: privateKey?.extractable,
      algorithm: { name: privateKey?.algorithm?.name, namedCurve: privateKey?.algorithm?.namedCurve },
      usages: privateKey?.usages,
      exported,
    });
  }
  return out;
}

// The name prefix of `clientId`'s DPoP key records.
export const keyPrefix = (idp, clientId = idp.dpopClientId) => `dpop:${idp.issuer}:${clientId}:`;

// The DPoP key records of `clientId` in the page's origin (see readKeyRecords).
export function keyRecords(page, idp, clientId = idp.dpopClientId) {
  return page.evaluate(readKeyRecords, keyPrefix(idp, clientId));
}

// Records every request the pages of `context` send whose URL starts with
// `prefix` (CORS preflights are not reported by the browser): { method, url,
// headers, body }. Returns the (live) array.
export function recordRequests(context, prefix) {
  const seen = [];
  context.on("request", (request) => {
    if (!request.url().startsWith(prefix)) return;
    seen.push({ method: request.method(), url: request.url(), headers: request.headers(), body: request.postData() });
  });
  return seen;
}

// A compact JWS taken apart, nothing verified: { header, payload }.
export function decodeJws(compact) {
  const [header, payload] = compact.split(".").slice(0, 2).map((part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8")));
  return { header, payload };
}

// Opens the app in a new tab of `context` whose client (window.auth)
// refreshes with an app-side `refresh(ctx)` that performs the standard
// refresh_token grant itself, signed with `ctx.dpopProof`: a use_dpop_nonce
// answer is resent once with the nonce its DPoP-Nonce names. What it did is
// in window.appRefresh: { calls, proofTypes (typeof ctx.dpopProof per call),
// statuses, proofs, nonceRetries }.
export async function openTabWithDpopRefresh(context, idp, extra = {}) {
  const page = await context.newPage();
  await openApp(page, `${idp.spaOrigin}/`);
  await page.evaluate(() => {
    const log = { calls: 0, proofTypes: [], statuses: [], proofs: [], nonceRetries: 0 };
    window.appRefresh = log;
    const refresh = async (ctx) => {
      log.calls += 1;
      log.proofTypes.push(typeof ctx.dpopProof);
      // The key signs the refresh's own request only.
      log.elsewhere = await ctx.dpopProof({ url: new URL("/me", ctx.tokenEndpoint).href, method: "GET" }).then(
        () => "signed",
        (e) => e.code,
      );
      const send = async (nonce) => {
        const proof = await ctx.dpopProof(nonce === undefined ? { url: ctx.tokenEndpoint } : { url: ctx.tokenEndpoint, nonce });
        log.proofs.push(proof);
        const res = await fetch(ctx.tokenEndpoint, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json", DPoP: proof },
          body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: ctx.refreshToken, client_id: ctx.clientId }),
        });
        log.statuses.push(res.status);
        return { res, json: await res.json() };
      };
      let { res, json } = await send();
      const nonce = res.headers.get("DPoP-Nonce");
      if (json.error === "use_dpop_nonce" && nonce) {
        log.nonceRetries += 1;
        ({ json } = await send(nonce));
      }
      return json;
    };
    // installClient creates the client with AuthClient.create: hand it the
    // option here (functions cannot cross evaluate()).
    const { AuthClient } = window.latchkey;
    const create = AuthClient.create.bind(AuthClient);
    AuthClient.create = (options) => create({ ...options, refresh });
  });
  await installClient(page, idp, extra);
  return page;
}
