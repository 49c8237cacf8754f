// A minimal AT Protocol OAuth client for Node tests against the test network, independent of
// latchkey: a DPoP key (ES256, WebCrypto), proofs, PAR, a sign-in that does what the PDS's
// sign-in page does (so no browser is needed), the code exchange and the refresh grant. Each
// request answered use_dpop_nonce is sent once more with the nonce the answer names.
//
// Runs under the system Node (20+). It checks nothing on the client side (no issuer or `sub`
// verification): it is a tool to reach the server, not a reference client.

import { createHash, randomBytes, webcrypto } from "node:crypto";
import { request as httpRequest } from "node:http";

const { subtle } = webcrypto;
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const b64json = (value) => b64url(Buffer.from(JSON.stringify(value)));

/** The loopback client id the PDS accepts in development (see README.md). */
export function loopbackClientId(redirectUri, scope = "atproto transition:generic") {
  const query = new URLSearchParams({ redirect_uri: redirectUri, scope });
  return `http://localhost?${query.toString().replace(/\+/g, "%20")}`;
}

/** A fresh DPoP key: `{ privateKey, publicJwk }`. */
export async function createDpopKey() {
  const { privateKey, publicKey } = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const { kty, crv, x, y } = await subtle.exportKey("jwk", publicKey);
  return { privateKey, publicJwk: { kty, crv, x, y } };
}

/** A DPoP proof (RFC 9449) for `htm htu`, with `nonce` and `ath` when given. */
export async function dpopProof(key, { htm, htu, nonce, accessToken }) {
  const payload = {
    htm,
    htu,
    iat: Math.floor(Date.now() / 1000),
    jti: b64url(randomBytes(16)),
    ...(nonce ? { nonce } : {}),
    ...(accessToken ? { ath: b64url(createHash("sha256").update(accessToken).digest()) } : {}),
  };
  const input = `${b64json({ typ: "dpop+jwt", alg: "ES256", jwk: key.publicJwk })}.${b64json(payload)}`;
  const signature = await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, Buffer.from(input));
  return `${input}.${b64url(signature)}`;
}

/**
 * A request through node:http: fetch (undici) always sends its own `Sec-Fetch-Mode: cors`, and
 * the authorization page and its API check the Sec-Fetch-* headers a browser would send.
 * Resolves to `{ status, headers, body, setCookies }` (`body` parsed when it is JSON).
 */
function browserLikeRequest(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, family: 4 }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // left as text
        }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed, setCookies: res.headers["set-cookie"] ?? [] });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function reply(res) {
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // left as text
  }
  return { status: res.status, headers: res.headers, body };
}

/**
 * A client session against one authorization server: keeps the DPoP key and the server's nonce.
 * `issuer` is the PDS's issuer (http://localhost:<port>).
 */
export function createOAuthClient({ issuer, clientId, redirectUri, scope = "atproto transition:generic", key }) {
  let nonce;
  const state = { issuer, clientId, redirectUri, scope, key, nonce: () => nonce };

  /** POSTs a form with a DPoP proof; on use_dpop_nonce, once more with the new nonce. */
  async function postWithDpop(path, form) {
    const url = `${issuer}${path}`;
    const send = async () => {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          dpop: await dpopProof(state.key, { htm: "POST", htu: url, nonce }),
        },
        body: new URLSearchParams(form),
      });
      const answer = await reply(res);
      const next = res.headers.get("dpop-nonce");
      const renewed = Boolean(next) && next !== nonce;
      if (next) nonce = next;
      return { answer, renewed };
    };
    const first = await send();
    if (first.answer.status === 400 && first.answer.body?.error === "use_dpop_nonce" && first.renewed) {
      return { ...(await send()).answer, retried: true };
    }
    return { ...first.answer, retried: false };
  }

  return {
    ...state,
    /** Pushes an authorization request; resolves to `{ requestUri, verifier, state, reply }`. */
    async par({ loginHint } = {}) {
      state.key ??= await createDpopKey();
      const verifier = b64url(randomBytes(32));
      const oauthState = b64url(randomBytes(16));
      const answer = await postWithDpop("/oauth/par", {
        client_id: clientId,
        redirect_uri: redirectUri,
        response_type: "code",
        scope,
        state: oauthState,
        code_challenge: b64url(createHash("sha256").update(verifier).digest()),
        code_challenge_method: "S256",
        ...(loginHint ? { login_hint: loginHint } : {}),
      });
      if (answer.status !== 201) throw new Error(`PAR: ${answer.status} ${JSON.stringify(answer.body)}`);
      return { requestUri: answer.body.request_uri, verifier, state: oauthState, reply: answer };
    },

    /**
     * Signs in and consents as the PDS's authorization page does (its API, with its cookies and
     * CSRF token); resolves to the callback parameters `{ code, state, iss }`.
     */
    async signIn(requestUri, { identifier, password }) {
      const cookies = new Map();
      const keep = (answer) => {
        for (const line of answer.setCookies) {
          const [pair] = line.split(";");
          const eq = pair.indexOf("=");
          cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
        }
      };
      const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
      const page = new URL(`${issuer}/oauth/authorize`);
      page.searchParams.set("client_id", clientId);
      page.searchParams.set("request_uri", requestUri);
      const pageAnswer = await browserLikeRequest(page, {
        headers: { "sec-fetch-mode": "navigate", "sec-fetch-dest": "document", "sec-fetch-site": "cross-site" },
      });
      keep(pageAnswer);
      if (pageAnswer.status !== 200) throw new Error(`authorization page: ${pageAnswer.status}`);
      const api = async (endpoint, body, bearer) => {
        const payload = JSON.stringify(body);
        const answer = await browserLikeRequest(`${issuer}/@atproto/oauth-provider/~api${endpoint}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(payload),
            origin: issuer,
            referer: page.href,
            "sec-fetch-mode": "same-origin",
            "sec-fetch-site": "same-origin",
            "sec-fetch-dest": "empty",
            "x-csrf-token": cookies.get("csrf-token") ?? "",
            cookie: cookieHeader(),
            ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          },
          body: payload,
        });
        keep(answer);
        if (answer.status !== 200) throw new Error(`${endpoint}: ${answer.status} ${JSON.stringify(answer.body)}`);
        return answer.body;
      };
      const { account, ephemeralToken } = await api("/sign-in", { locale: "en", username: identifier, password, remember: false });
      const { url } = await api("/consent", { did: account.did }, ephemeralToken);
      const params = new URL(url).searchParams;
      if (!params.get("code")) throw new Error(`consent: no code in ${url}`);
      return { code: params.get("code"), state: params.get("state"), iss: params.get("iss"), did: account.did };
    },

    /** The authorization_code grant; resolves to the reply (`body` is the token response). */
    exchangeCode(code, verifier) {
      return postWithDpop("/oauth/token", {
        grant_type: "authorization_code",
        client_id: clientId,
        redirect_uri: redirectUri,
        code,
        code_verifier: verifier,
      });
    },

    /** The refresh_token grant; resolves to the reply. */
    refresh(refreshToken) {
      return postWithDpop("/oauth/token", { grant_type: "refresh_token", client_id: clientId, refresh_token: refreshToken });
    },

    /** Sends a raw form to the token endpoint with a proof (for requests that must fail). */
    token(form) {
      return postWithDpop("/oauth/token", { client_id: clientId, ...form });
    },

    /** A GET to an XRPC method of `pdsUrl` with the DPoP-bound access token (one nonce retry). */
    async xrpc(pdsUrl, nsid, accessToken, { nonce: resourceNonce } = {}) {
      const url = `${pdsUrl}/xrpc/${nsid}`;
      let rsNonce = resourceNonce;
      const send = async () => {
        const res = await fetch(url, {
          headers: {
            authorization: `DPoP ${accessToken}`,
            dpop: await dpopProof(state.key, { htm: "GET", htu: url, nonce: rsNonce, accessToken }),
          },
        });
        const answer = await reply(res);
        const next = res.headers.get("dpop-nonce");
        const renewed = Boolean(next) && next !== rsNonce;
        if (next) rsNonce = next;
        return { answer, renewed };
      };
      const first = await send();
      const challenge = first.answer.headers.get("www-authenticate") ?? "";
      if (first.answer.status === 401 && /use_dpop_nonce/.test(challenge) && first.renewed) {
        return { ...(await send()).answer, retried: true, nonce: rsNonce };
      }
      return { ...first.answer, retried: false, nonce: rsNonce };
    },
  };
}

/** PAR, sign-in and code exchange in one: resolves to `{ client, tokens, did, reply }`. */
export async function signInWithOAuth({ issuer, identifier, password, redirectUri = "http://127.0.0.1/callback" }) {
  const client = createOAuthClient({ issuer, clientId: loopbackClientId(redirectUri), redirectUri, key: await createDpopKey() });
  const { requestUri, verifier, state } = await client.par({ loginHint: identifier });
  const callback = await client.signIn(requestUri, { identifier, password });
  if (callback.state !== state) throw new Error("state mismatch");
  const answer = await client.exchangeCode(callback.code, verifier);
  if (answer.status !== 200) throw new Error(`token: ${answer.status} ${JSON.stringify(answer.body)}`);
  return { client, tokens: answer.body, did: callback.did, callback, reply: answer };
}
