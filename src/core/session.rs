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
use std::pin::pin;

use crate::core::atproto::Account;
use crate::core::dpop::DpopKeys;
use crate::core::ports::{
    Background, Broadcast, Clock, HttpReply, RefreshTransport, SessionLock, SessionStore, Timer,
};
use crate::core::race::within;
use crate::core::retirement::keys_after_login;
use crate::core::single_flight::SingleFlight;
use crate::core::token::token_set_from_reply;
use crate::core::{AccessToken, Error, IdToken, RawTokenResponse, TokenSet};

pub use crate::core::message::{EndReason, SessionMessage};

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

impl TokenSource {
    /// The source's name in a `tokens` event.
    pub fn name(self) -> &'static str {
        crate::core::public_api::TOKEN_SOURCES[self as usize]
    }
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
    /// How long callers wait for a refresh request before they get
    /// `refresh_timeout`. The request itself goes on (see `settle_cap_ms`).
    pub timeout_ms: u32,
    /// The longest a refresh request is awaited, holding the lock, before
    /// it is given up: past `timeout_ms` the server may still answer with a
    /// rotated refresh token, which must not be lost.
    pub settle_cap_ms: u32,
    /// The longest a tab waits for the lock before giving up.
    pub lock_wait_ms: u32,
}

/// How long a tab waits for the lock, in refresh timeouts: enough for the
/// tabs queued ahead to adopt or make one bounded refresh each.
const LOCK_WAIT_TIMEOUTS: u32 = 3;

/// The longest a refresh request is awaited (holding the lock) after its
/// callers stopped waiting, unless twice the timeout is longer: an answer
/// that comes this late still carries the session's rotated refresh token.
const SETTLE_CAP_MS: u32 = 60_000;

impl RefreshPolicy {
    /// The policy of a client created with `refreshLeewaySeconds` and
    /// `refreshTimeoutSeconds`, in a tab that drew `jitter` at random: the
    /// leeway grows by up to a fifth of itself (at most 5 s), so tabs that
    /// loaded together do not all find the token stale at the same moment.
    pub fn of(leeway_seconds: u32, timeout_seconds: u32, jitter: u8) -> RefreshPolicy {
        let leeway_ms = u64::from(leeway_seconds) * 1000;
        let max_jitter = (leeway_ms / 5).min(5_000);
        let timeout_ms = timeout_seconds.saturating_mul(1000);
        RefreshPolicy {
            leeway_ms: leeway_ms + max_jitter * u64::from(jitter) / 255,
            timeout_ms,
            settle_cap_ms: SETTLE_CAP_MS.max(timeout_ms.saturating_mul(2)),
            lock_wait_ms: timeout_ms.saturating_mul(LOCK_WAIT_TIMEOUTS),
        }
    }
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

/// How long a tab keeps the lock after broadcasting a set it could not
/// write, so the message reaches the other tabs before any of them can take
/// the lock and refresh from the older stored set. BroadcastChannel
/// delivers between same-origin tabs within milliseconds; this is a wide
/// margin, paid only when a write failed.
pub const BROADCAST_GRACE_MS: u32 = 250;

/// The longest `Retry-After` honoured, in ms: a server asking for hours
/// would otherwise leave a user with a valid refresh token unable to use the
/// API for that long.
pub const MAX_RETRY_AFTER_MS: u64 = 5 * 60 * 1000;

impl Session {
    /// The name of the session of `client_id` at `issuer` across tabs: its
    /// Web Lock and BroadcastChannel. One per client, so two apps on one
    /// origin never wait for each other.
    pub fn name(issuer: &str, client_id: &str) -> String {
        format!("latchkey:{issuer}:{client_id}")
    }

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

    /// Remembers a token endpoint's `Retry-After` carried by `error`; the
    /// message that tells the other tabs, when there is one.
    fn back_off(&self, error: &Error, now_ms: u64) -> Option<SessionMessage> {
        let seconds = error.retry_after_s()?;
        let wait = seconds.saturating_mul(1000).min(MAX_RETRY_AFTER_MS);
        let until = now_ms.saturating_add(wait);
        *self.backoff.borrow_mut() = Some((until, error.clone()));
        Some(SessionMessage::BackOff {
            until,
            status: error.status().unwrap_or_default(),
            error: error.server_error().unwrap_or_default().to_owned(),
            seconds,
        })
    }

    /// Another tab's `Retry-After`: this tab makes no request before
    /// `until` either (capped like its own; a later one it already has
    /// stays). Never an `invalid_grant`: that ends a session, it does not
    /// pause it.
    fn heard_back_off(&self, until: u64, error: Error, now_ms: u64) {
        let until = until.min(now_ms.saturating_add(MAX_RETRY_AFTER_MS));
        let later = match &*self.backoff.borrow() {
            Some((current, _)) => *current < until,
            None => until > now_ms,
        };
        if later && error.code() == "token_error" {
            *self.backoff.borrow_mut() = Some((until, error));
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
        self.with_usable_token(now_ms, leeway_ms, AccessToken::clone)
    }

    /// `f` of the access token, if there is one that needs no refresh at
    /// `now_ms` (the fast path, without copying the token).
    pub fn with_usable_token<T>(
        &self,
        now_ms: u64,
        leeway_ms: u64,
        f: impl FnOnce(&AccessToken) -> T,
    ) -> Option<T> {
        let tokens = self.tokens.borrow();
        let tokens = tokens.as_ref()?;
        (!needs_refresh(tokens, now_ms, leeway_ms)).then(|| f(&tokens.access_token))
    }

    /// The atproto account the session's tokens belong to, if any (without
    /// copying the tokens: the fast path asks).
    pub fn account(&self) -> Option<Account> {
        let tokens = self.tokens.borrow();
        tokens.as_ref()?.atproto.as_deref().cloned()
    }

    /// Whether the session's tokens are bound to a DPoP key (a send needs
    /// a proof).
    pub fn is_dpop_bound(&self) -> bool {
        let tokens = self.tokens.borrow();
        tokens.as_ref().is_some_and(|t| t.dpop_jkt.is_some())
    }

    /// Puts `tokens` in use and tells the listener, unless it is the set
    /// already in use. From another tab (`Sync`), a set older than the one
    /// in use is ignored: broadcasts can arrive late.
    pub fn adopt(&self, tokens: TokenSet, source: TokenSource) -> bool {
        {
            let mut current = self.tokens.borrow_mut();
            if let Some(held) = &*current {
                let older = source == TokenSource::Sync && is_newer(held, &tokens);
                if older {
                    return false;
                }
                if held.access_token == tokens.access_token {
                    // The same set, or its ID token verified after it was
                    // put in use: nothing the app hears about.
                    *current = Some(tokens);
                    return false;
                }
            } else if source == TokenSource::Sync && tokens.login_at_ms <= self.ended_at_ms.get() {
                // From the ended session (even if a late refresh issued it
                // after the end): only a later login brings a session back.
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

    /// Applies what another tab broadcast, received at `now_ms`. Checked
    /// like any input: a set without an expiry is refused (every set a tab
    /// stores has one or is never proactively refreshed, so it cannot be
    /// told apart from a forged one), an issue time in the future is taken
    /// as now (it would otherwise win every later comparison), and a set
    /// older than the one held is ignored ([`Session::adopt`]).
    pub fn receive(&self, message: SessionMessage, now_ms: u64) {
        match message {
            SessionMessage::Tokens {
                mut tokens,
                unsaved,
            } => {
                if tokens.expires_at_ms.is_none() {
                    return;
                }
                tokens.issued_at_ms = tokens.issued_at_ms.min(now_ms);
                tokens.login_at_ms = tokens.login_at_ms.min(now_ms);
                if self.adopt(tokens, TokenSource::Sync) {
                    self.unsaved.set(unsaved);
                }
            }
            SessionMessage::Ended { reason } => {
                self.end(reason, now_ms);
            }
            SessionMessage::BackOff {
                until,
                status,
                error,
                seconds,
            } => {
                let error = Error::TokenEndpoint {
                    status,
                    error,
                    error_description: None,
                    error_uri: None,
                    retry_after_s: Some(seconds),
                };
                self.heard_back_off(until, error, now_ms);
            }
        }
    }
}

/// The check of a refreshed set's new ID token (OpenID Connect: it must
/// verify and name the same user). It runs after the set is persisted: the
/// server has rotated the refresh token by then, and the new one is the
/// session whatever the check says.
#[allow(async_fn_in_trait)]
pub trait CheckRefreshed {
    /// `Err` refuses `fresh`'s ID token; [`is_identity_failure`] tells a
    /// definite refusal from one that may pass later.
    async fn check(&self, previous: &TokenSet, fresh: &TokenSet) -> Result<(), Error>;
    /// Whether ID tokens are kept at all: without `openid` in the scope the
    /// app did not ask for one, and an unverified one is never stored.
    fn keeps_id_tokens(&self) -> bool {
        true
    }
}

/// No check and no ID tokens: a plain OAuth 2.0 session.
pub struct NoCheck;

impl CheckRefreshed for NoCheck {
    async fn check(&self, _previous: &TokenSet, _fresh: &TokenSet) -> Result<(), Error> {
        Ok(())
    }

    fn keeps_id_tokens(&self) -> bool {
        false
    }
}

/// An OpenID Connect session's check, or none.
impl<C: CheckRefreshed> CheckRefreshed for Option<C> {
    async fn check(&self, previous: &TokenSet, fresh: &TokenSet) -> Result<(), Error> {
        match self {
            Some(check) => check.check(previous, fresh).await,
            None => NoCheck.check(previous, fresh).await,
        }
    }

    fn keeps_id_tokens(&self) -> bool {
        self.as_ref().is_some_and(CheckRefreshed::keeps_id_tokens)
    }
}

/// Whether a refreshed ID token's refusal is definite — it is not the
/// issuer's (signature, key, algorithm, shape) or not this user's at this
/// client — as opposed to one that may pass later (keys unreachable, a
/// clock check).
pub fn is_identity_failure(error: &Error) -> bool {
    matches!(
        error,
        Error::IdTokenMalformed { .. }
            | Error::IdTokenUnsupportedAlg { .. }
            | Error::IdTokenKeyNotFound
            | Error::IdTokenInvalidSignature
            | Error::IdTokenIssMismatch
            | Error::IdTokenAudMismatch
            | Error::IdTokenAzpMismatch
            | Error::IdTokenSubMismatch
    )
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
    /// What a refreshed set's ID token must pass.
    pub check: C,
    /// Runs the refresh itself, and revocations, past the calls waiting.
    pub background: &'a dyn Background,
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

    /// Waits for the tab's single in-flight refresh, starting it (on a task
    /// of its own, see [`Refresher::lead`]) if none is running.
    async fn refresh(&self, held: &AccessToken) -> Result<TokenSet, Error> {
        if self.session.flight.begin() {
            self.background.refresh(held.clone());
        }
        self.session
            .flight
            .wait()
            .await
            .unwrap_or(Err(Error::RefreshTimeout))
    }

    /// Runs the refresh that [`Refresher::refresh`] began, to its end, and
    /// gives every waiting caller its outcome. Meant for a task of its own
    /// ([`Background::refresh`]): it is never cancelled by a caller.
    pub async fn lead(&self, held: AccessToken) {
        /// Finishes the flight as abandoned if this future is dropped.
        struct Abandoned<'f>(&'f SingleFlight<Result<TokenSet, Error>>);
        impl Drop for Abandoned<'_> {
            fn drop(&mut self) {
                self.0.finish(None);
            }
        }
        let abandoned = Abandoned(&self.session.flight);
        let outcome = self.refresh_in_lock(&held).await;
        std::mem::forget(abandoned);
        self.session.flight.finish(Some(outcome));
    }

    /// The set to refresh from, read inside the lock: the newer (by issue
    /// time) of the stored set and this tab's. An empty store means the
    /// session ended in another tab, unless this tab's set never reached it.
    async fn base(&self, now: u64) -> Result<TokenSet, Error> {
        let mine = self.session.tokens();
        let stored = match self.store.load_tokens().await {
            Ok(stored) => stored,
            // The unreadable record was removed, or is a newer latchkey's and
            // left alone: this tab's copy is sound.
            Err(Error::CorruptRecord { .. } | Error::NewerRecord { .. }) => {
                return mine.ok_or(Error::NotAuthenticated);
            }
            Err(error) => return Err(error),
        };
        match (stored, mine) {
            // A set that never reached the store (a failed write here, or in
            // the tab whose broadcast this one adopted) is newer than what
            // the store holds: refreshing the stored one would present a
            // spent refresh token.
            (Some(stored), Some(mine)) if is_newer(&mine, &stored) => Ok(mine),
            (Some(stored), _) => Ok(stored),
            (None, Some(mine)) if self.session.unsaved.get() => Ok(mine),
            // Cleared by another tab while this one held a copy (its
            // broadcast not heard yet): never refresh a session that has
            // ended. The store says whether it was a sign-out or an expiry.
            (None, _) => {
                let reason = self.store.end_reason().await;
                let reason = reason.unwrap_or(EndReason::Expired);
                self.session.end(reason, now);
                Err(match reason {
                    EndReason::SignedOut => Error::NotAuthenticated,
                    EndReason::Expired => Error::SessionExpired,
                })
            }
        }
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
        let base = self.base(now).await?;
        if base.access_token != *held && !needs_refresh(&base, now, self.policy.leeway_ms) {
            self.session.adopt(base.clone(), TokenSource::Sync);
            return Ok(base);
        }
        if !base.can_refresh(now) {
            if !base.is_stale(now, 0) {
                // Nothing to refresh with, but still valid: use it while it lasts.
                return Ok(base);
            }
            return Err(self.expire(base).await);
        }
        if let Some(error) = self.session.backing_off(now) {
            return Err(error);
        }
        let reply = self.send(&base).await?;
        let fresh = match token_set_from_reply(
            reply,
            self.platform.now_ms(),
            Some(&base),
            base.dpop_jkt.as_deref(),
        ) {
            Ok(fresh) => fresh,
            Err(error) if error.code() == "invalid_grant" => {
                // A tab without the lock may have rotated the token already.
                if let Ok(Some(latest)) = self.store.load_tokens().await {
                    if latest.access_token != base.access_token {
                        self.session.adopt(latest.clone(), TokenSource::Sync);
                        return Ok(latest);
                    }
                }
                return Err(self.expire(base).await);
            }
            Err(error) => {
                if let Some(told) = self.session.back_off(&error, self.platform.now_ms()) {
                    self.broadcast.publish(&told);
                }
                return Err(error);
            }
        };
        self.session.backoff.take();
        // The server has rotated: from here on `fresh` is the session.
        // Persist it first; its new ID token is checked after.
        let (fresh, id_token) = self.set_aside_id_token(&base, fresh);
        let fresh = self.persist(&base, fresh, ends_before).await?;
        match id_token {
            Some(id_token) => self.verify_after(&base, fresh, id_token).await,
            None => Ok(fresh),
        }
    }

    /// The refresh request. Past [`RefreshPolicy::timeout_ms`] the waiting
    /// callers get `refresh_timeout`, but the request is not abandoned: the
    /// server may already have rotated, and its answer is the session. It is
    /// awaited, holding the lock, up to [`RefreshPolicy::settle_cap_ms`].
    async fn send(&self, base: &TokenSet) -> Result<HttpReply<RawTokenResponse>, Error> {
        let mut request = pin!(self.transport.refresh(base));
        let deadline = self.platform.sleep(self.policy.timeout_ms);
        if let Some(reply) = within(request.as_mut(), deadline).await {
            return reply;
        }
        self.session.flight.notice(Err(Error::RefreshTimeout));
        let rest = self
            .policy
            .settle_cap_ms
            .saturating_sub(self.policy.timeout_ms);
        within(request, self.platform.sleep(rest))
            .await
            .ok_or(Error::RefreshTimeout)?
    }

    /// `fresh` with the ID token it can be used with now (the previous,
    /// verified one), and the new one that still has to be verified. Without
    /// `openid` no ID token is kept at all.
    fn set_aside_id_token(&self, base: &TokenSet, fresh: TokenSet) -> (TokenSet, Option<IdToken>) {
        if !self.check.keeps_id_tokens() {
            return (
                TokenSet {
                    id_token: None,
                    ..fresh
                },
                None,
            );
        }
        if fresh.id_token == base.id_token {
            return (fresh, None);
        }
        let id_token = fresh.id_token.clone();
        (
            TokenSet {
                id_token: base.id_token.clone(),
                ..fresh
            },
            id_token,
        )
    }

    /// Saves `fresh` (refreshed from `base`), tells the other tabs and puts
    /// it in use — unless the session ended or was replaced while the
    /// request was out. Checked right before the write, against the store
    /// (compare-and-swap: it must still hold `base`, an older set, or
    /// nothing because `base` never reached it). A set refreshed for a
    /// session that ended is revoked.
    async fn persist(
        &self,
        base: &TokenSet,
        fresh: TokenSet,
        ends_before: u64,
    ) -> Result<TokenSet, Error> {
        if self.session.ends.get() != ends_before {
            // Signed out (or expired) while the request was out, possibly
            // without a shared lock: persisting would bring the session back.
            self.background.revoke(fresh);
            return Err(Error::NotAuthenticated);
        }
        match self.store.load_tokens().await {
            Ok(Some(stored))
                if stored.access_token != base.access_token && !is_newer(base, &stored) =>
            {
                // Replaced meanwhile (a new login, a tab without the lock):
                // the newer set wins. `fresh` is not revoked: it may belong
                // to the same grant as the winner (a sibling's refresh), and
                // revoking a refresh token may end its whole grant.
                self.session.adopt(stored.clone(), TokenSource::Sync);
                return Ok(stored);
            }
            Ok(None) if !self.session.unsaved.get() => {
                // Cleared meanwhile: a sign-out in a tab that did not wait for
                // the lock. It cannot be undone.
                self.background.revoke(fresh);
                self.session
                    .end(EndReason::SignedOut, self.platform.now_ms());
                return Err(Error::NotAuthenticated);
            }
            _ => {}
        }
        self.save_and_publish(&fresh).await;
        if self.session.ends.get() != ends_before {
            // Signed out while the set was being written: the sign-out clears
            // the store again once it has the lock, and every tab ignores
            // this set's broadcast (its login is older than the sign-out).
            self.background.revoke(fresh);
            return Err(Error::NotAuthenticated);
        }
        if let Some(later) = self.later_login_than(&fresh) {
            // A new login arrived while this set of the older session was
            // being written (from a tab that stopped waiting for the lock):
            // the login wins. Where this write replaced it in the store, it
            // is put back (the lock is still held).
            if !self.session.unsaved.get() {
                self.save_and_publish(&later).await;
            }
            return Ok(later);
        }
        self.session.adopt(fresh.clone(), TokenSource::Refresh);
        Ok(fresh)
    }

    /// The set this tab holds when it is from a later login than `tokens`.
    fn later_login_than(&self, tokens: &TokenSet) -> Option<TokenSet> {
        let held = self.session.tokens()?;
        (held.login_at_ms > tokens.login_at_ms).then_some(held)
    }

    /// Writes `tokens` and broadcasts them; a failed write keeps them in
    /// use from memory (and says so). Called holding the lock.
    async fn save_and_publish(&self, tokens: &TokenSet) {
        let unsaved = match self.store.save_tokens(tokens).await {
            Ok(()) => false,
            Err(error) => {
                self.session.persist_failed(&error);
                true
            }
        };
        self.session.unsaved.set(unsaved);
        self.publish_tokens(tokens, unsaved).await;
    }

    /// Broadcasts `tokens`, holding the lock. A set that could not be
    /// written reaches the other tabs only through this message, so the
    /// lock is held a little longer ([`BROADCAST_GRACE_MS`]): the next tab to
    /// take it must have heard of the set, or it would refresh with the
    /// stored, spent refresh token.
    async fn publish_tokens(&self, tokens: &TokenSet, unsaved: bool) {
        self.broadcast.publish(&SessionMessage::Tokens {
            tokens: tokens.clone(),
            unsaved,
        });
        if unsaved {
            self.platform.sleep(BROADCAST_GRACE_MS).await;
        }
    }

    /// Checks the refreshed set's new ID token. When it verifies it replaces
    /// the previous one; when it cannot be checked now (keys unreachable, a
    /// clock check) the previous verified one stays, and the next refresh's
    /// ID token is checked again; when it is definitely not this user's
    /// from this issuer the session ends and the new tokens are revoked.
    async fn verify_after(
        &self,
        base: &TokenSet,
        fresh: TokenSet,
        id_token: IdToken,
    ) -> Result<TokenSet, Error> {
        let candidate = TokenSet {
            id_token: Some(id_token),
            ..fresh.clone()
        };
        match self.check.check(base, &candidate).await {
            Ok(()) => {
                if self.session.tokens().as_ref() != Some(&fresh) {
                    // Replaced or ended while the keys were fetched.
                    return Ok(fresh);
                }
                if self.session.unsaved.get() {
                    // The set's write failed a moment ago, and said so; the
                    // other tabs still get the verified ID token.
                    self.broadcast.publish(&SessionMessage::Tokens {
                        tokens: candidate.clone(),
                        unsaved: true,
                    });
                } else {
                    self.save_and_publish(&candidate).await;
                }
                self.session.adopt(candidate.clone(), TokenSource::Refresh);
                Ok(candidate)
            }
            Err(error) if is_identity_failure(&error) => {
                self.background.revoke(fresh);
                self.end(EndReason::Expired).await;
                Err(error)
            }
            Err(_) => Ok(fresh),
        }
    }

    /// Ends the session because the server will not refresh `ended` (no
    /// refresh token left, or `invalid_grant`), then has the set retired
    /// (`Background::revoke`): its access token revoked best effort and its
    /// DPoP key deleted — every login makes its own key, so nothing will
    /// use this one again.
    async fn expire(&self, ended: TokenSet) -> Error {
        let error = self.end(EndReason::Expired).await;
        self.background.revoke(ended);
        error
    }

    /// Ends the session everywhere: the store cleared, the other tabs told,
    /// this tab's copy dropped. Returns the error the caller rejects with.
    async fn end(&self, reason: EndReason) -> Error {
        // A failed clear still ends the session here and in the other tabs;
        // the leftover record holds a refresh token the server rejects.
        let _ = self.store.clear_tokens(reason).await;
        self.broadcast.publish(&SessionMessage::Ended { reason });
        self.session.end(reason, self.platform.now_ms());
        Error::SessionExpired
    }

    /// Signs out in every tab. First at once, without waiting for anyone:
    /// the store is cleared, the other tabs told, and this tab's copy
    /// dropped (each tab emits `signedOut`, and a refresh still out in any
    /// tab stores nothing when it settles). Then under the lock, so that no
    /// refresh is between reading and writing: whatever a refresh of this
    /// session wrote meanwhile is cleared too (a set whose login is not
    /// later than the sign-out). A set from a later login is left alone.
    ///
    /// The wait for the lock is bounded by the longest a refresh may hold it
    /// ([`RefreshPolicy::settle_cap_ms`]). Returns the newest set seen —
    /// stored or in this tab's memory, by issue time — to revoke and for
    /// `id_token_hint`.
    pub async fn sign_out(&self) -> Option<TokenSet> {
        let stored = self.store.load_tokens().await.ok().flatten();
        let mut latest = newest(stored, self.session.tokens());
        self.end(EndReason::SignedOut).await;
        let signed_out_at = self.platform.now_ms();
        let wait = self
            .policy
            .settle_cap_ms
            .saturating_add(self.policy.timeout_ms);
        let guard = within(self.lock.acquire(), self.platform.sleep(wait)).await;
        if let Ok(Some(written)) = self.store.load_tokens().await {
            if written.login_at_ms <= signed_out_at {
                let _ = self.store.clear_tokens(EndReason::SignedOut).await;
                latest = newest(latest, Some(written));
            }
        }
        drop(guard);
        latest
    }

    /// Completes a login: its `tokens` put in place ([`Refresher::sign_in`]),
    /// then the DPoP keys it leaves behind handled
    /// ([`keys_after_login`]): the replaced session's key deleted only once
    /// the new set is in use, and the new key kept in this tab's memory only
    /// when the session is (`memory_storage`). Returns why the write
    /// failed, if it did.
    pub async fn complete_login<K: DpopKeys>(
        &self,
        keys: &K,
        tokens: TokenSet,
        memory_storage: bool,
    ) -> Option<Error> {
        let replaced = self.session.tokens().and_then(|t| t.dpop_jkt);
        let plan = keys_after_login(
            replaced.as_deref(),
            tokens.dpop_jkt.as_deref(),
            memory_storage,
        );
        let failed = self.sign_in(tokens).await;
        if let Some(old) = &plan.delete {
            keys.delete(old).await;
        }
        if let Some(jkt) = &plan.memory_only {
            keys.keep_in_memory_only(jkt).await;
        }
        failed
    }

    /// Puts a completed login's `tokens` in place: written under the lock
    /// (so no refresh of an earlier session is between reading and writing),
    /// broadcast, and put in use. A lock that never comes does not stop it.
    /// Returns why the write failed, if it did (the tab keeps the set in
    /// memory).
    pub async fn sign_in(&self, tokens: TokenSet) -> Option<Error> {
        let wait = self.platform.sleep(self.policy.lock_wait_ms);
        let guard = within(self.lock.acquire(), wait).await;
        let saved = self.store.save_tokens(&tokens).await;
        self.publish_tokens(&tokens, saved.is_err()).await;
        drop(guard);
        self.session.unsaved.set(false);
        self.session.adopt(tokens, TokenSource::Login);
        let error = saved.err()?;
        self.session.persist_failed(&error);
        Some(error)
    }
}

/// Whether `a` is newer than `b`: from a later login, or from the same
/// login and more refreshes from it ([`TokenSet::rotation`]), or (records
/// from before the count) issued later. A login completed while a refresh of an earlier
/// session was out is newer than that refresh's set, whenever the
/// refresh's answer came.
pub fn is_newer(a: &TokenSet, b: &TokenSet) -> bool {
    (a.login_at_ms, a.rotation, a.issued_at_ms) > (b.login_at_ms, b.rotation, b.issued_at_ms)
}

/// The newer of two sets ([`is_newer`]).
fn newest(a: Option<TokenSet>, b: Option<TokenSet>) -> Option<TokenSet> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if is_newer(&b, &a) { b } else { a }),
        (a, b) => a.or(b),
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
