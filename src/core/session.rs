//! The refresh protocol: one tab's session and how it is kept fresh.
//!
//! 1. Fast path: a token in memory that is not stale is used as is — no
//!    lock, no storage read, no await.
//! 2. Stale (within the leeway) or rejected by the API → one shared
//!    in-flight refresh per tab ([`SingleFlight`]), which takes the
//!    [`SessionLock`] (every tab of the origin, with Web Locks).
//! 3. Inside the lock the stored set is read again. If another tab already
//!    replaced the token this tab holds, it is adopted without a request.
//!    Otherwise the refresh request is made, the new set (rotated refresh
//!    token included) is persisted in one write, then broadcast.
//! 4. The lock is released on every path (the guard is dropped) and the
//!    refresh is bounded by [`RefreshPolicy::timeout_ms`].
//! 5. `invalid_grant` → the store is read once more (a tab without the lock
//!    may have rotated); otherwise the session is over: cleared, broadcast,
//!    [`SessionChange::Ended`]. Any other failure keeps every token; one
//!    carrying the token endpoint's `Retry-After` is returned again, without
//!    a request, until that time (at most [`MAX_RETRY_AFTER_MS`]) has passed.
//! 6. A set that could not be written ([`Session::persist_failed`]) is
//!    refreshed from this tab's copy: the store then holds an older set or
//!    none, and neither means the session ended elsewhere.

use std::cell::{Cell, RefCell};

use serde::{Deserialize, Serialize};

use crate::core::client::token_set_from_reply;
use crate::core::race::within;
use crate::core::single_flight::SingleFlight;
use crate::core::{AccessToken, Error, TokenSet};
use crate::platform::{Broadcast, Clock, RefreshTransport, SessionLock, SessionStore, Timer};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// The refresh token was rejected or has expired.
    Expired,
    /// The user signed out.
    SignedOut,
}

/// What one tab tells the others about the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SessionMessage {
    /// A new token set was persisted (refresh or login).
    Tokens {
        /// The new set.
        tokens: TokenSet,
    },
    /// The session was cleared.
    Ended {
        /// Why.
        reason: EndReason,
    },
}

/// Where a tab's new token set came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// This tab completed a login.
    Login,
    /// This tab made the refresh request.
    Refresh,
    /// Another tab refreshed or logged in (adopted from storage or from its
    /// broadcast).
    Sync,
}

/// A change to this tab's session, for the app's event listeners.
#[derive(Debug)]
pub enum SessionChange<'a> {
    /// The token set in use changed.
    Tokens {
        /// The new set.
        tokens: &'a TokenSet,
        /// Where it came from.
        source: TokenSource,
    },
    /// The session ended.
    Ended(EndReason),
    /// A refreshed set is in use but could not be persisted; other tabs got
    /// it through the broadcast, a reload will not find it.
    PersistFailed(&'a Error),
}

/// How eagerly and for how long a refresh may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh when the token expires within this many milliseconds (the
    /// app's leeway plus this tab's jitter). Capped at half the token's
    /// lifetime, so a short-lived token is not refreshed on every use.
    pub leeway_ms: u64,
    /// The longest a refresh request may take while holding the lock.
    pub timeout_ms: u32,
    /// The longest a tab waits for the lock before giving up.
    pub lock_wait_ms: u32,
}

/// Whether `tokens` should be refreshed before use at `now_ms`.
pub fn needs_refresh(tokens: &TokenSet, now_ms: u64, leeway_ms: u64) -> bool {
    let lifetime = tokens
        .expires_at_ms
        .map(|at| at.saturating_sub(tokens.issued_at_ms));
    let leeway = lifetime.map_or(leeway_ms, |l| leeway_ms.min(l / 2));
    tokens.is_stale(now_ms, leeway)
}

/// The listener told about every change to a tab's session.
type Observer = Box<dyn Fn(&SessionChange)>;

/// This tab's session: the in-memory token set, the in-flight refresh, and
/// the listener told about every change.
#[derive(Default)]
pub struct Session {
    tokens: RefCell<Option<TokenSet>>,
    flight: SingleFlight<Result<TokenSet, Error>>,
    observer: RefCell<Option<Observer>>,
    /// When the session last ended here. A broadcast set issued before then
    /// is from the ended session (a sibling's refresh whose message arrived
    /// after the sign-out's) and must not bring it back.
    ended_at_ms: Cell<u64>,
    /// How many times the session has ended here. A refresh that sees it
    /// change while its request was out belongs to an ended session and
    /// drops its result instead of persisting it.
    ends: Cell<u64>,
    /// Until when (ms) the token endpoint asked for no new request
    /// (`Retry-After`), and the error it answered with, which refreshes
    /// before then return without sending anything.
    backoff: RefCell<Option<(u64, Error)>>,
    /// This tab's set could not be written (quota exceeded, storage gone),
    /// so the store holds an older set or none. It is not a sign-out: the
    /// tab's own copy is the one to refresh with.
    unsaved: Cell<bool>,
    /// A token obtained by a reactive refresh that the API rejected as
    /// expired on the very retry it was obtained for
    /// ([`Refresher::rejected_at_once`]): it is not refreshed again.
    refused: RefCell<Option<AccessToken>>,
}

/// The longest `Retry-After` honoured, in ms: a server asking for hours
/// would otherwise leave a user with a valid refresh token unable to use the
/// API for that long.
pub const MAX_RETRY_AFTER_MS: u64 = 5 * 60 * 1000;

impl Session {
    /// A session starting from the stored set, if any.
    pub fn new(tokens: Option<TokenSet>) -> Self {
        Session {
            tokens: RefCell::new(tokens),
            ..Session::default()
        }
    }

    /// Sets the one listener told about every change (the JS event emitter).
    pub fn set_observer(&self, observer: impl Fn(&SessionChange) + 'static) {
        *self.observer.borrow_mut() = Some(Box::new(observer));
    }

    /// Remembers a token endpoint's `Retry-After` carried by `error`.
    fn back_off(&self, error: &Error, now_ms: u64) {
        if let Some(seconds) = error.retry_after_s() {
            let wait = seconds.saturating_mul(1000).min(MAX_RETRY_AFTER_MS);
            *self.backoff.borrow_mut() = Some((now_ms.saturating_add(wait), error.clone()));
        }
    }

    /// The error to answer with instead of a request, while the token
    /// endpoint's `Retry-After` has not passed.
    fn backing_off(&self, now_ms: u64) -> Option<Error> {
        match &*self.backoff.borrow() {
            Some((until, error)) if now_ms < *until => Some(error.clone()),
            _ => None,
        }
    }

    /// Records that the set in use could not be persisted, and tells the
    /// listener why (a login's or a refresh's failed write).
    pub fn persist_failed(&self, error: &Error) {
        self.unsaved.set(true);
        self.notify(&SessionChange::PersistFailed(error));
    }

    fn notify(&self, change: &SessionChange) {
        // No borrow of `tokens` is held here: a listener may read the session.
        if let Some(observer) = &*self.observer.borrow() {
            observer(change);
        }
    }

    /// A copy of the token set in use.
    pub fn tokens(&self) -> Option<TokenSet> {
        self.tokens.borrow().clone()
    }

    /// The fast path: the access token, if there is one that needs no
    /// refresh at `now_ms`.
    pub fn usable_token(&self, now_ms: u64, leeway_ms: u64) -> Option<AccessToken> {
        let tokens = self.tokens.borrow();
        let tokens = tokens.as_ref()?;
        (!needs_refresh(tokens, now_ms, leeway_ms)).then(|| tokens.access_token.clone())
    }

    /// Puts `tokens` in use and tells the listener, unless it is the set
    /// already in use. From another tab (`Sync`), a set older than the one
    /// in use is ignored: broadcasts can arrive late.
    pub fn adopt(&self, tokens: TokenSet, source: TokenSource) -> bool {
        {
            let mut current = self.tokens.borrow_mut();
            if let Some(held) = &*current {
                let same = held.access_token == tokens.access_token;
                let older = source == TokenSource::Sync && tokens.issued_at_ms < held.issued_at_ms;
                if same || older {
                    return false;
                }
            } else if source == TokenSource::Sync && tokens.issued_at_ms <= self.ended_at_ms.get() {
                return false;
            }
            *current = Some(tokens.clone());
        }
        self.notify(&SessionChange::Tokens {
            tokens: &tokens,
            source,
        });
        true
    }

    /// Drops the tokens at `now_ms` and tells the listener, if there were
    /// any. Sets issued until now that arrive later from other tabs are
    /// ignored.
    pub fn end(&self, reason: EndReason, now_ms: u64) -> bool {
        self.ended_at_ms.set(self.ended_at_ms.get().max(now_ms));
        self.ends.set(self.ends.get() + 1);
        self.unsaved.set(false);
        if self.tokens.borrow_mut().take().is_none() {
            return false;
        }
        self.notify(&SessionChange::Ended(reason));
        true
    }

    /// Applies what another tab broadcast, received at `now_ms`.
    pub fn receive(&self, message: SessionMessage, now_ms: u64) {
        match message {
            SessionMessage::Tokens { tokens } => {
                self.adopt(tokens, TokenSource::Sync);
            }
            SessionMessage::Ended { reason } => {
                self.end(reason, now_ms);
            }
        }
    }
}

/// A check of a refreshed set before it is persisted (OpenID Connect: a
/// new ID token must verify and name the same user).
#[allow(async_fn_in_trait)]
pub trait CheckRefreshed {
    /// `Err` refuses `fresh`: nothing is persisted or broadcast.
    async fn check(&self, previous: &TokenSet, fresh: &TokenSet) -> Result<(), Error>;
}

/// No check: a plain OAuth 2.0 session.
pub struct NoCheck;

impl CheckRefreshed for NoCheck {
    async fn check(&self, _previous: &TokenSet, _fresh: &TokenSet) -> Result<(), Error> {
        Ok(())
    }
}

/// Everything a refresh needs, borrowed for one call.
pub struct Refresher<'a, P, S, L, B, R, C = NoCheck> {
    /// This tab's session.
    pub session: &'a Session,
    /// Clock and timer.
    pub platform: &'a P,
    /// Where the session is persisted.
    pub store: &'a S,
    /// The lock serialising refreshes.
    pub lock: &'a L,
    /// The other tabs.
    pub broadcast: &'a B,
    /// How the refresh request is made.
    pub transport: &'a R,
    /// Leeway and bounds.
    pub policy: RefreshPolicy,
    /// What a refreshed set must pass before it is persisted.
    pub check: C,
}

impl<P, S, L, B, R, C> Refresher<'_, P, S, L, B, R, C>
where
    P: Clock + Timer,
    S: SessionStore,
    L: SessionLock,
    B: Broadcast,
    R: RefreshTransport,
    C: CheckRefreshed,
{
    /// An access token to send now: the one in memory when it needs no
    /// refresh (no lock, no storage), else a refreshed one. If a proactive
    /// refresh fails for a transient reason while the token in hand is still
    /// valid, that token is returned: the request can still succeed.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        let now = self.platform.now_ms();
        if let Some(token) = self.session.usable_token(now, self.policy.leeway_ms) {
            return Ok(token);
        }
        let held = self.session.tokens().ok_or(Error::NotAuthenticated)?;
        match self.refresh(&held.access_token).await {
            Ok(tokens) => Ok(tokens.access_token),
            Err(error) if !ends_session(&error) && !held.is_stale(self.platform.now_ms(), 0) => {
                Ok(held.access_token)
            }
            Err(error) => Err(error),
        }
    }

    /// A replacement for `rejected`, which the API refused as expired. If
    /// this tab already holds another token (a concurrent call refreshed),
    /// that one is returned without a refresh. `rejected` itself comes back
    /// (the caller returns the API's answer as is) when it was
    /// [rejected at once](Self::rejected_at_once): at most one reactive
    /// refresh per token.
    pub async fn after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, Error> {
        let held = self.session.tokens().ok_or(Error::NotAuthenticated)?;
        let refused = self.session.refused.borrow().as_ref() == Some(rejected);
        if held.access_token != *rejected || refused {
            return Ok(held.access_token);
        }
        Ok(self.refresh(rejected).await?.access_token)
    }

    /// Records that `fresh`, just returned by [`after_rejection`](Self::after_rejection),
    /// was rejected as expired by the retry it was obtained for. The API
    /// refuses tokens as soon as they are issued (a wrong audience, a clock
    /// far off at the API, an endpoint that always answers 401): refreshing
    /// again would cost one refresh per call and fix nothing. `fresh` is
    /// replaced when it goes stale, like any token.
    pub fn rejected_at_once(&self, fresh: &AccessToken) {
        *self.session.refused.borrow_mut() = Some(fresh.clone());
    }

    /// The tab's single in-flight refresh, replacing `held`.
    async fn refresh(&self, held: &AccessToken) -> Result<TokenSet, Error> {
        self.session
            .flight
            .run(|| self.refresh_in_lock(held))
            .await
            .unwrap_or(Err(Error::RefreshTimeout))
    }

    async fn refresh_in_lock(&self, held: &AccessToken) -> Result<TokenSet, Error> {
        let ends_before = self.session.ends.get();
        let wait = self.platform.sleep(self.policy.lock_wait_ms);
        let _guard = within(self.lock.acquire(), wait)
            .await
            .ok_or(Error::LockUnavailable)??;
        // Everything below runs holding the lock; `_guard` releases it on
        // every return.
        let now = self.platform.now_ms();
        let base = match self.store.load_tokens().await {
            // This tab's newer set never reached the store: refreshing the
            // stored one would present a spent refresh token (reuse), and an
            // empty store does not mean another tab signed out.
            Ok(stored) if self.session.unsaved.get() => {
                let mine = self.session.tokens().ok_or(Error::NotAuthenticated)?;
                match stored {
                    Some(stored) if stored.issued_at_ms > mine.issued_at_ms => stored,
                    _ => mine,
                }
            }
            Ok(Some(stored)) => stored,
            // Cleared by another tab (sign-out or expiry) while this one
            // held a copy: never refresh a session that has ended.
            Ok(None) => {
                self.session.end(EndReason::Expired, now);
                return Err(Error::SessionExpired);
            }
            // The unreadable record was removed; this tab's copy is sound.
            Err(Error::CorruptRecord { .. }) => {
                self.session.tokens().ok_or(Error::NotAuthenticated)?
            }
            Err(error) => return Err(error),
        };
        if base.access_token != *held && !needs_refresh(&base, now, self.policy.leeway_ms) {
            self.session.adopt(base.clone(), TokenSource::Sync);
            return Ok(base);
        }
        if !base.can_refresh(now) {
            if !base.is_stale(now, 0) {
                // Nothing to refresh with, but still valid: use it while it lasts.
                return Ok(base);
            }
            return Err(self.end(EndReason::Expired).await);
        }

        if let Some(error) = self.session.backing_off(now) {
            return Err(error);
        }
        let deadline = self.platform.sleep(self.policy.timeout_ms);
        let reply = within(self.transport.refresh(&base), deadline)
            .await
            .ok_or(Error::RefreshTimeout)?;
        if self.session.ends.get() != ends_before {
            // Signed out (or expired) while the request was out, possibly
            // without a shared lock: persisting would bring the session back.
            return Err(Error::NotAuthenticated);
        }
        let outcome = reply
            .and_then(|reply| token_set_from_reply(reply, self.platform.now_ms(), Some(&base)));
        let outcome = match outcome {
            Ok(fresh) => self.check.check(&base, &fresh).await.map(|()| fresh),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(fresh) => {
                self.session.backoff.take();
                match self.store.save_tokens(&fresh).await {
                    Ok(()) => self.session.unsaved.set(false),
                    Err(error) => self.session.persist_failed(&error),
                }
                self.broadcast.publish(&SessionMessage::Tokens {
                    tokens: fresh.clone(),
                });
                self.session.adopt(fresh.clone(), TokenSource::Refresh);
                Ok(fresh)
            }
            Err(error) if error.code() == "invalid_grant" => {
                // A tab without the lock may have rotated the token already.
                if let Ok(Some(latest)) = self.store.load_tokens().await {
                    if latest.access_token != base.access_token {
                        self.session.adopt(latest.clone(), TokenSource::Sync);
                        return Ok(latest);
                    }
                }
                Err(self.end(EndReason::Expired).await)
            }
            Err(error) => {
                self.session.back_off(&error, self.platform.now_ms());
                Err(error)
            }
        }
    }

    /// Ends the session everywhere: the store cleared, the other tabs told,
    /// this tab's copy dropped. Returns the error the caller rejects with.
    async fn end(&self, reason: EndReason) -> Error {
        // A failed clear still ends the session here and in the other tabs;
        // the leftover record holds a refresh token the server rejects.
        let _ = self.store.clear_tokens().await;
        self.broadcast.publish(&SessionMessage::Ended { reason });
        self.session.end(reason, self.platform.now_ms());
        Error::SessionExpired
    }

    /// Signs out in every tab: under the lock (so no tab is between reading
    /// and persisting a refresh), the latest stored set is read, the store
    /// cleared, the other tabs told, and this tab's copy dropped. A tab
    /// that refreshed just before finds the store empty when it gets the
    /// lock, and its late broadcast is ignored (see [`Session::end`]).
    ///
    /// The wait for the lock is bounded and its failure does not stop the
    /// sign-out: nothing may keep the user signed in. Returns the set that
    /// was in use (to revoke, and for `id_token_hint`).
    pub async fn sign_out(&self) -> Option<TokenSet> {
        let wait = self.platform.sleep(self.policy.lock_wait_ms);
        let guard = within(self.lock.acquire(), wait).await;
        let latest = match self.store.load_tokens().await {
            Ok(Some(stored)) => Some(stored),
            _ => self.session.tokens(),
        };
        self.end(EndReason::SignedOut).await;
        drop(guard);
        latest
    }
}

/// Whether `error` means there is no session any more (as opposed to a
/// transient failure that keeps the tokens).
pub fn ends_session(error: &Error) -> bool {
    matches!(error, Error::SessionExpired | Error::NotAuthenticated)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
