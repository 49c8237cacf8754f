// DPoP proofs (RFC 9449 §4) as the protected resource checks them (§7.1): structure, key,
// signature and claims, plus the RFC 7638 thumbprint that ties a proof to a token's cnf.jkt and
// a bounded cache of the proof ids seen. Written for the test IdP's /api/*; oidc-provider checks
// the proofs sent to the authorization server itself.

import { createHash, webcrypto } from "node:crypto";

const { subtle } = webcrypto;

// ES256 only: what browsers' WebCrypto offers everywhere, and what latchkey signs with.
const ALG = "ES256";
export const MAX_IAT_SKEW_SECONDS = 60;
// JWK members that only a private key has (RFC 7518 §6): a proof must never carry them.
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** A proof that must be refused with `invalid_dpop_proof`; `message` says why. */
export class ProofError extends Error {}

const b64json = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));

/**
 * Splits a compact JWS and parses its header and payload, verifying nothing.
 * Throws ProofError when it is not a JWS with JSON object header and payload.
 */
export function decodeProof(compact) {
  const parts = typeof compact === "string" ? compact.split(".") : [];
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw new ProofError("the DPoP proof is not a compact JWS");
  let header;
  let payload;
  try {
    header = b64json(parts[0]);
    payload = b64json(parts[1]);
  } catch {
    throw new ProofError("the DPoP proof's header or payload is not JSON");
  }
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObject(header) || !isObject(payload)) throw new ProofError("the DPoP proof's header and payload must be JSON objects");
  return { header, payload, signingInput: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2], "base64url") };
}

/** RFC 7638 thumbprint (SHA-256, base64url) of an EC P-256 public JWK: what cnf.jkt holds. */
export function jwkThumbprint(jwk) {
  // The required members only, in lexicographic order, no whitespace.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash("sha256").update(canonical).digest("base64url");
}

/** The `ath` claim for `accessToken`: base64url(SHA-256(ASCII of the token)). */
export function accessTokenHash(accessToken) {
  return createHash("sha256").update(accessToken, "ascii").digest("base64url");
}

/** The request URL as `htu` must name it: no query, no fragment, normalised by the URL parser. */
function withoutQuery(url) {
  const parsed = new URL(url);
  parsed.search = "";
  parsed.hash = "";
  return parsed.href;
}

function checkHeader(header) {
  if (header.typ !== "dpop+jwt") throw new ProofError("the DPoP proof's typ must be dpop+jwt");
  if (header.alg !== ALG) throw new ProofError(`the DPoP proof's alg must be ${ALG}`);
  const { jwk } = header;
  if (jwk === null || typeof jwk !== "object") throw new ProofError("the DPoP proof has no jwk header");
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) throw new ProofError("the DPoP proof's jwk contains a private key");
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new ProofError("the DPoP proof's jwk is not an EC P-256 public key");
  }
  return jwk;
}

async function checkSignature({ signingInput, signature }, jwk) {
  let key;
  try {
    key = await subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y }, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  } catch {
    throw new ProofError("the DPoP proof's jwk is not a valid P-256 key");
  }
  // JWS ES256 signatures are r || s, 32 bytes each: the format WebCrypto verifies.
  const valid = signature.length === 64 && (await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, Buffer.from(signingInput, "ascii")));
  if (!valid) throw new ProofError("the DPoP proof's signature is invalid");
}

function checkClaims(payload, { method, url, accessToken, nowSeconds }) {
  if (payload.htm !== method) throw new ProofError("the DPoP proof's htm does not match the request method");
  let htu;
  try {
    htu = withoutQuery(payload.htu);
  } catch {
    throw new ProofError("the DPoP proof's htu is not a URL");
  }
  if (htu !== withoutQuery(url)) throw new ProofError("the DPoP proof's htu does not match the request URL");
  if (typeof payload.iat !== "number" || Math.abs(payload.iat - nowSeconds) > MAX_IAT_SKEW_SECONDS) {
    throw new ProofError(`the DPoP proof's iat is not within ${MAX_IAT_SKEW_SECONDS} s of now`);
  }
  if (typeof payload.jti !== "string" || !payload.jti) throw new ProofError("the DPoP proof has no jti");
  if (payload.ath !== accessTokenHash(accessToken)) throw new ProofError("the DPoP proof's ath does not match the access token");
}

/**
 * Verifies a proof presented with `accessToken` on a `method` request to `url` — everything but
 * the nonce, the replay and the binding to the token, which need the server's state. Resolves to
 * `{ payload, jkt }`; rejects with ProofError.
 */
export async function verifyProof(compact, { method, url, accessToken, nowSeconds = Math.floor(Date.now() / 1000) }) {
  const proof = decodeProof(compact);
  const jwk = checkHeader(proof.header);
  await checkSignature(proof, jwk);
  checkClaims(proof.payload, { method, url, accessToken, nowSeconds });
  return { payload: proof.payload, jkt: jwkThumbprint(jwk) };
}

/**
 * The proof ids (jti) seen, each kept until its proof could no longer pass the iat check anyway;
 * at most `limit` of them (the oldest go first beyond that).
 */
export function createReplayCache({ limit = 10_000 } = {}) {
  const seen = new Map(); // jti -> the second after which its proof is refused for its iat
  return {
    /** Records `jti`; false if it was already seen (a replay). */
    add(jti, iat, nowSeconds = Math.floor(Date.now() / 1000)) {
      // Insertion order is roughly expiry order: drop from the front while the entries there
      // have expired or the cache is full.
      for (const [id, until] of seen) {
        if (until >= nowSeconds && seen.size < limit) break;
        seen.delete(id);
      }
      if (seen.has(jti)) return false;
      seen.set(jti, iat + MAX_IAT_SKEW_SECONDS);
      return true;
    },
    size: () => seen.size,
  };
}
