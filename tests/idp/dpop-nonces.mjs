// The two DPoP nonces of the test IdP (RFC 9449 §8 and §9): the authorization server's and the
// protected resource's. They are kept apart on purpose although both servers share one origin,
// so a client that mixes them up is caught.
//
// The authorization server's nonce must satisfy two checkers. oidc-provider verifies the nonce
// of every proof itself and accepts only values it derives from features.dPoP.nonceSecret and the
// clock (lib/helpers/challenge.js in oidc-provider 9): HKDF-SHA256 of the secret with the
// 60-second step number as salt (8 bytes, big-endian) and "DPoP" as info, 32 bytes, base64url;
// the values of the steps now-2 … now+2 are accepted. Tests must also be able to make the nonce
// stale at will, which oidc-provider cannot do. So the layer in front of oidc-provider keeps its
// own current nonce, always one of the values oidc-provider accepts, and refuses every other
// nonce before oidc-provider sees the request.

import { hkdfSync, randomBytes } from "node:crypto";

const STEP_SECONDS = 60;
// oidc-provider accepts the values of steps now-ACCEPTED_STEPS … now+ACCEPTED_STEPS.
const ACCEPTED_STEPS = 2;

const stepAt = (ms) => Math.floor(ms / 1000 / STEP_SECONDS);

/** oidc-provider's DPoP nonce for `step` under `secret` (see the comment at the top). */
export function derivedNonce(secret, step) {
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64BE(BigInt(step));
  return Buffer.from(hkdfSync("sha256", secret, salt, "DPoP", 32)).toString("base64url");
}

/**
 * The authorization server's nonce, derived from `secret` (the 32-byte features.dPoP.nonceSecret)
 * so that oidc-provider accepts it too. `now` is injectable for tests of this module.
 *
 * It renews itself once its step is past (every two to three minutes): the previous value then
 * stays accepted for as long as oidc-provider accepts it (at least one more minute), so a
 * client that keeps talking to the server follows the DPoP-Nonce headers without a refusal.
 * rotate() has no such grace: the old value is refused from then on.
 */
export function createAuthorizationServerNonce(secret, now = Date.now) {
  const at = (step) => ({ step, value: derivedNonce(secret, step) });
  // The newest value oidc-provider accepts: it stays acceptable the longest.
  let current = at(stepAt(now()) + ACCEPTED_STEPS);
  let previous = null;
  // Values made stale by rotate(), by step, so a rotation avoids bringing one back.
  const retired = new Map();

  function renew() {
    const step = stepAt(now());
    if (step > current.step) {
      previous = current;
      current = at(step + ACCEPTED_STEPS);
    }
    if (previous && step > previous.step + ACCEPTED_STEPS) previous = null;
    for (const [value, s] of retired) if (s < step - ACCEPTED_STEPS) retired.delete(value);
    return step;
  }

  return {
    /** The nonce to hand out now. */
    current() {
      renew();
      return current.value;
    },
    /** Whether a proof carrying `nonce` may go on to oidc-provider. */
    accepts(nonce) {
      renew();
      return typeof nonce === "string" && (nonce === current.value || nonce === previous?.value);
    },
    /**
     * Makes the current nonce stale at once and returns the new one: a value oidc-provider
     * accepts for at least another minute (steps now … now+2), not used before if one is left —
     * more than two rotations within a minute bring back a value used earlier in that minute.
     */
    rotate() {
      const step = renew();
      retired.set(current.value, current.step);
      if (previous) retired.set(previous.value, previous.step);
      previous = null;
      const candidates = [step + 2, step + 1, step].filter((s) => s !== current.step).map(at);
      current = candidates.find((c) => !retired.has(c.value)) ?? candidates[0];
      return current.value;
    },
  };
}

/** The protected resource's nonce: random, changed only by rotate(). */
export function createApiNonce() {
  const fresh = () => randomBytes(16).toString("base64url");
  let value = fresh();
  return {
    current: () => value,
    accepts: (nonce) => nonce === value,
    /** Makes the current nonce stale at once; returns the new one. */
    rotate() {
      value = fresh();
      return value;
    },
  };
}
