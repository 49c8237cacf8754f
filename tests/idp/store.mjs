// A per-instance in-memory storage adapter for oidc-provider.
//
// Why not oidc-provider's bundled MemoryAdapter: its storage is one module-global LRU capped
// at 1000 entries, shared by every provider in the process. Long end-to-end runs (many logins,
// many rotations) could silently evict a live refresh token and produce an `invalid_grant`
// the client never caused. This store has no size cap, is private to one server, and lets the
// control routes enumerate and revoke grants.

// Models whose records belong to a grant (revoked together by revokeByGrantId).
const GRANTABLE = new Set([
  "AccessToken",
  "AuthorizationCode",
  "RefreshToken",
  "DeviceCode",
  "BackchannelAuthenticationRequest",
  "PreAuthorizedCode",
]);

// Records stay readable this long after they expire, so that the resource server can tell
// "expired" from "unknown" (oidc-provider's models still refuse expired records themselves).
const GRACE_MS = 5 * 60 * 1000;

export function createStore() {
  /** key `${model}:${id}` -> { model, id, payload, expiresAt } */
  const records = new Map();

  const key = (model, id) => `${model}:${id}`;

  function live(k) {
    const rec = records.get(k);
    if (!rec) return undefined;
    if (rec.expiresAt !== undefined && rec.expiresAt + GRACE_MS <= Date.now()) {
      records.delete(k);
      return undefined;
    }
    return rec;
  }

  function sweep() {
    for (const k of records.keys()) live(k);
  }

  function deleteWhere(predicate) {
    for (const [k, rec] of records) if (predicate(rec)) records.delete(k);
  }

  // The class oidc-provider instantiates once per model name.
  class Adapter {
    constructor(model) {
      this.model = model;
    }

    async upsert(id, payload, expiresIn) {
      // Sweeping on write keeps memory bounded without a timer that would keep the process alive.
      if (records.size % 256 === 0) sweep();
      const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : undefined;
      records.set(key(this.model, id), { model: this.model, id, payload: structuredClone(payload), expiresAt });
    }

    async find(id) {
      const rec = live(key(this.model, id));
      return rec ? structuredClone(rec.payload) : undefined;
    }

    async findByUid(uid) {
      for (const [k, rec] of records) {
        if (rec.model === this.model && rec.payload.uid === uid && live(k)) return structuredClone(rec.payload);
      }
      return undefined;
    }

    async findByUserCode(userCode) {
      for (const [k, rec] of records) {
        if (rec.model === this.model && rec.payload.userCode === userCode && live(k)) {
          return structuredClone(rec.payload);
        }
      }
      return undefined;
    }

    async consume(id) {
      const rec = live(key(this.model, id));
      if (rec) rec.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      records.delete(key(this.model, id));
    }

    async revokeByGrantId(grantId) {
      deleteWhere((rec) => rec.model === this.model && rec.payload.grantId === grantId);
    }
  }

  return {
    Adapter,
    /** Whether `value` is a refresh token that was already used (rotated away). */
    isConsumedRefreshToken(value) {
      return Boolean(live(key("RefreshToken", value))?.payload.consumed);
    },
    /** How many refresh tokens could still be used: unexpired and neither consumed nor revoked. */
    liveRefreshTokens() {
      let count = 0;
      for (const [k, rec] of records) {
        const expired = rec.expiresAt !== undefined && rec.expiresAt <= Date.now();
        if (rec.model === "RefreshToken" && live(k) && !expired && !rec.payload.consumed) count += 1;
      }
      return count;
    },
    /** The ids of the grants (logins) that exist: neither revoked nor expired. */
    liveGrantIds() {
      const ids = [];
      for (const [k, rec] of records) {
        const expired = rec.expiresAt !== undefined && rec.expiresAt <= Date.now();
        if (rec.model === "Grant" && live(k) && !expired) ids.push(rec.id);
      }
      return ids;
    },
    /** Destroys every grant and every token/code issued under any grant. */
    revokeAllGrants() {
      let grants = 0;
      deleteWhere((rec) => {
        if (rec.model === "Grant") {
          grants += 1;
          return true;
        }
        return GRANTABLE.has(rec.model) && rec.payload.grantId !== undefined;
      });
      return grants;
    },
  };
}
