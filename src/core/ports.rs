//! The session-level ports: where a session is stored, the lock, the
//! channel to the other tabs, how a refresh is sent, background work.
//!
//! Each has a browser implementation in `browser/` and a fake for native
//! tests (`core::fakes`), following gloo's "trait + browser impl + memory
//! impl" pattern. The traits are not `Send`: wasm in a tab is single-threaded.
#![allow(async_fn_in_trait)]

use crate::core::atproto::Account;
use crate::core::authorize::PendingTransaction;
use crate::core::error::Error;
use crate::core::message::{EndRecord, SessionMessage};
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::secret::AccessToken;
use crate::core::token::TokenSet;

// The basic services and the keys' ports, where they are defined; named
// here too so that code above the protocol finds every port in one place.
pub use crate::core::dpop::{DpopKey, DpopKeys};
pub use crate::core::jose::SignatureVerifier;
pub use crate::core::platform::{Clock, Crypto, Http, HttpReply, Json, Timer};

/// Where one client's session lives (namespaced by issuer + client id).
pub trait SessionStore {
    /// The stored token set, if any. A corrupt or foreign record is cleared
    /// and reported as `Error::CorruptRecord`.
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error>;
    /// Replaces the stored token set in one write.
    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error>;
    /// Removes the stored token set, and keeps why the session ended and
    /// which logins it ended: a tab that still held a copy and finds the
    /// store empty (before the ending tab's broadcast reached it) tells its
    /// app the same, or writes back a later login's set.
    async fn clear_tokens(&self, end: EndRecord) -> Result<(), Error>;
    /// The stored session's last end, if the store kept it.
    async fn end_record(&self) -> Option<EndRecord>;
    /// Stores the pending login transaction (one per client, per tab).
    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error>;
    /// Removes and returns the pending transaction: it is single-use.
    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error>;
    /// Whether a pending transaction survives this page (a redirect away and
    /// back): not where the browser's `sessionStorage` is unavailable.
    fn keeps_transactions_across_pages(&self) -> bool {
        true
    }
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
    /// Sends `request` (its set's refresh token exchanged for a token
    /// response) and hands back the answer as it came ([`RefreshAnswer`]:
    /// the core reads it).
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error>;

    /// Whether the sessions of an AT Protocol account are checked again
    /// before each refresh ([`check_account`](Self::check_account)): only a
    /// client with the `atproto` profile does.
    fn checks_accounts(&self) -> bool {
        false
    }

    /// Checks that `account` is still one its authorization server may
    /// sign in (its DID document names a PDS that names the server). Asked
    /// only where [`checks_accounts`](Self::checks_accounts) says so; a
    /// transport that cannot check refuses (never a silent pass).
    async fn check_account(&self, _account: &Account) -> Result<(), Error> {
        Err(Error::DidResolution {
            reason: "this client cannot check an account".into(),
        })
    }
}

/// One refresh request, as the core decided it
/// ([`RefreshMachine`](crate::core::refresh_machine::RefreshMachine)).
#[derive(Debug)]
pub struct RefreshRequest {
    /// The set whose refresh token is exchanged.
    pub base: TokenSet,
    /// Where: the AT Protocol account's own token endpoint, or `None` for
    /// the client's.
    pub endpoint: Option<String>,
    /// When the transport aborts the request (ms from now): only after the
    /// core has given up on it ([`RefreshPolicy::abort_after_ms`] from the
    /// refresh's first request, a resend's included), since a late answer
    /// still carries the rotated refresh token.
    ///
    /// [`RefreshPolicy::abort_after_ms`]: crate::core::session::RefreshPolicy::abort_after_ms
    pub abort_after_ms: u32,
}

/// Work the core hands off to run on its own, past the call that started it.
pub trait Background {
    /// Runs this tab's refresh of `held` ([`Refresher::lead`]) to its end on
    /// a task of its own: no caller that stops waiting may cancel a request
    /// the server may already have answered (and rotated on).
    ///
    /// [`Refresher::lead`]: crate::core::refresher::Refresher::lead
    fn refresh(&self, held: AccessToken);
    /// Revokes `tokens` best effort and deletes their DPoP key: a set the
    /// server issued that the session will not use (it ended meanwhile, or
    /// its ID token names someone else), so its refresh token is not left
    /// alive, or the set of a session that expired here (its key is
    /// nobody's any more).
    fn revoke(&self, tokens: TokenSet);
}
