//! The small traits the core needs from its environment.
//!
//! Each has a browser implementation in `browser/` and a fake for native
//! tests (`core::fakes`), following gloo's "trait + browser impl + memory
//! impl" pattern. The traits are not `Send`: wasm in a tab is single-threaded.
#![allow(async_fn_in_trait)]

use serde::de::DeserializeOwned;

use crate::core::dpop::DpopPublicKey;
use crate::core::jose::{Jwk, JwsAlgorithm};
use crate::core::secret::DpopProof;
use crate::core::session::SessionMessage;
use crate::core::{AccessToken, Error, PendingTransaction, RawTokenResponse, TokenSet};

/// Milliseconds since the Unix epoch.
pub trait Clock {
    /// The current time.
    fn now_ms(&self) -> u64;
}

/// Waiting without blocking the tab.
pub trait Timer {
    /// Resolves after about `ms` milliseconds.
    async fn sleep(&self, ms: u32);
}

/// A cryptographically secure random source and SHA-256.
pub trait Crypto {
    /// 32 fresh random bytes (verifiers, state, nonce).
    fn random_32(&self) -> Result<[u8; 32], Error>;
    /// SHA-256 of `data` ([RFC 7636 §4.2](https://www.rfc-editor.org/rfc/rfc7636#section-4.2) S256).
    async fn sha256(&self, data: &[u8]) -> Result<[u8; 32], Error>;
}

/// An HTTP answer whose JSON body was decoded as `T`, or not.
#[derive(Debug)]
pub struct HttpReply<T> {
    /// The HTTP status code.
    pub status: u16,
    /// The decoded body; `Err` carries why it was not a `T` (not JSON,
    /// wrong shape). Never contains the body itself.
    pub body: Result<T, String>,
    /// The `Retry-After` header in seconds from now
    /// ([RFC 9110 §10.2.3](https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3)),
    /// when the response carried a readable one.
    pub retry_after_s: Option<u64>,
    /// The `DPoP-Nonce` header, when the server sent one
    /// ([RFC 9449 §8](https://www.rfc-editor.org/rfc/rfc9449#section-8)).
    pub dpop_nonce: Option<String>,
    /// An error answer's OAuth `error` member (status 400 and above), read
    /// whatever `T` is, so a DPoP nonce refusal is recognised for any body.
    pub oauth_error: Option<String>,
}

/// The two kinds of request the protocol makes. Network failures are
/// `Error::Network`; any HTTP status is a reply.
pub trait Http {
    /// `GET url` with `Accept: application/json` (discovery).
    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<HttpReply<T>, Error>;
    /// `POST url` with an `application/x-www-form-urlencoded` body (token endpoint).
    async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<HttpReply<T>, Error> {
        self.post_form_with_proof(url, form, None).await
    }
    /// [`Http::post_form`] with a `DPoP` header carrying `proof`, when given.
    async fn post_form_with_proof<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<T>, Error>;
}

/// Where the session's DPoP keys live (IndexedDB next to the session, or
/// the tab's memory), by thumbprint, so every tab signs with the same key.
pub trait DpopKeys {
    /// One key.
    type Key: DpopKey;
    /// A fresh non-extractable key pair for a new login, kept under its
    /// thumbprint; returns the thumbprint and the key.
    async fn create(&self) -> Result<(String, Self::Key), Error>;
    /// The key whose thumbprint is `jkt`; `dpop_key_unavailable` when it is
    /// gone (deleted by a sign-out, or its storage was cleared).
    async fn load(&self, jkt: &str) -> Result<Self::Key, Error>;
    /// Deletes the key `jkt`, best effort: the tokens bound to it are over.
    async fn delete(&self, jkt: &str);
}

/// A DPoP key the browser holds and cannot export
/// ([RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)): the core builds
/// proofs, the key only signs them.
pub trait DpopKey {
    /// The public half, which goes into every proof.
    fn public_key(&self) -> &DpopPublicKey;
    /// The ES256 signature of `signing_input` in JWS form (`r || s`, 64 bytes).
    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, Error>;
}

/// Where one client's session lives (namespaced by issuer + client id).
pub trait SessionStore {
    /// The stored token set, if any. A corrupt or foreign record is cleared
    /// and reported as `Error::CorruptRecord`.
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error>;
    /// Replaces the stored token set in one write.
    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error>;
    /// Removes the stored token set.
    async fn clear_tokens(&self) -> Result<(), Error>;
    /// Stores the pending login transaction (one per client, per tab).
    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error>;
    /// Removes and returns the pending transaction: it is single-use.
    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error>;
}

/// The lock that serialises refreshes of one session: shared by every tab
/// of the origin where the browser has Web Locks. Holding the guard holds
/// the lock; dropping it releases the lock on every path.
pub trait SessionLock {
    /// Proof of holding the lock.
    type Guard;
    /// Waits for the lock.
    async fn acquire(&self) -> Result<Self::Guard, Error>;
}

/// Tells this session's other tabs what changed (BroadcastChannel). A tab
/// does not hear its own messages.
pub trait Broadcast {
    /// Sends `message` to the other tabs; best effort.
    fn publish(&self, message: &SessionMessage);
}

/// How a refresh is performed: the standard refresh-token grant or the
/// app's own request. Locking, persisting and broadcasting stay the core's.
pub trait RefreshTransport {
    /// Exchanges `current`'s refresh token for a token response.
    async fn refresh(&self, current: &TokenSet) -> Result<HttpReply<RawTokenResponse>, Error>;
}

/// Work the core hands off to run on its own, past the call that started it.
pub trait Background {
    /// Runs this tab's refresh of `held` ([`Refresher::lead`]) to its end on
    /// a task of its own: no caller that stops waiting may cancel a request
    /// the server may already have answered (and rotated on).
    ///
    /// [`Refresher::lead`]: crate::core::session::Refresher::lead
    fn refresh(&self, held: AccessToken);
    /// Revokes `tokens` best effort: a set the server issued that the
    /// session will not use (it ended meanwhile, or its ID token names
    /// someone else), so its refresh token is not left alive.
    fn revoke(&self, tokens: TokenSet);
}

/// JSON text to a typed value. The platform parses (`JSON.parse` in the
/// browser) so the wasm carries no JSON parser of its own.
pub trait Json {
    /// Parses `text` as a `T`; `Err` says why not, without quoting `text`.
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String>;
}

/// Verifies JWS signatures with the platform's cryptography (WebCrypto).
pub trait SignatureVerifier {
    /// Whether `signature` is `alg`'s signature of `signing_input` under the
    /// public key `key`. `Ok(false)` for a wrong signature; `Err` when the
    /// key cannot be used for `alg` (wrong type or curve, bad encoding).
    async fn verify_signature(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error>;
}
