//! One tab's session: its state, and the rules of how it is kept fresh.
//! Each rule below is decided in [`crate::core::refresh_machine`] (the
//! refresh under the lock) and [`crate::core::sign_in_out`], and carried
//! out by [`crate::core::refresher::Refresher`]; this file holds what they
//! read and what their acts change.
//!
//! 1. Fast path: a token in memory that is not stale is used as is — no
//!    lock, no storage read, no await.
//! 2. Stale (within the leeway) or rejected by the API → one shared
//!    in-flight refresh per tab ([`SingleFlight`]), which takes the
//!    [`SessionLock`](crate::core::ports::SessionLock) (every tab of the
//!    origin, with Web Locks).
//! 3. Inside the lock the stored set is read again. If another tab already
//!    replaced the token this tab holds, it is adopted without a request.
//!    Otherwise the refresh request is made, the new set (rotated refresh
//!    token included) is persisted in one write, then broadcast.
//! 4. The lock is released on every path (the guard is dropped) and the
//!    refresh is bounded by [`RefreshPolicy::timeout_ms`].
//! 5. `invalid_grant` → the store is read once more (a tab without the lock
//!    may have rotated); otherwise the session is over: cleared, broadcast,
//!    [`SessionChange::Ended`] — unless its end was already heard here (the
//!    ending tab cleared and told), or this tab holds a later login that
//!    reached the store (the store is that login's). A set of a login whose
//!    end this tab heard is never refreshed or adopted
//!    ([`Session::has_ended`]). Any other failure keeps every token; one
//!    carrying the token endpoint's `Retry-After` is returned again, without
//!    a request, until that time (at most [`MAX_RETRY_AFTER_MS`]) has passed.
//! 6. A set that could not be written ([`Session::persist_failed`]) is
//!    refreshed from this tab's copy: the store then holds an older set or
//!    none, and neither means the session ended elsewhere.

use std::cell::{Cell, RefCell};

use crate::core::atproto::Account;
use crate::core::single_flight::SingleFlight;
use crate::core::{AccessToken, Error, TokenSet};

pub use crate::core::message::{EndReason, EndRecord, SessionMessage};

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
    /// The set in use has a newly verified ID token (a refresh's, checked
    /// after the set was put in use): the user's claims changed.
    User,
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

/// An option given in whole seconds: its default and its accepted range.
#[derive(Debug, Clone, Copy)]
pub struct SecondsOption {
    /// When the app gives none.
    pub default: u32,
    /// The smallest accepted.
    pub min: u32,
    /// The largest accepted.
    pub max: u32,
}

/// `refreshLeewaySeconds`: how long before expiry a token counts as stale.
pub const REFRESH_LEEWAY: SecondsOption = SecondsOption {
    default: 30,
    min: 0,
    max: 86_400,
};

/// `refreshTimeoutSeconds`: how long callers wait for a refresh (and the
/// bound of every request latchkey makes).
pub const REFRESH_TIMEOUT: SecondsOption = SecondsOption {
    default: 10,
    min: 1,
    max: 300,
};

impl SecondsOption {
    /// The value of the option `name`: the default when absent (`None`),
    /// else `given` when it is a whole number in range (`invalid_option`
    /// otherwise; `Some(None)`: given, but not a number).
    pub fn value(self, name: &'static str, given: Option<Option<f64>>) -> Result<u32, Error> {
        let Some(given) = given else {
            return Ok(self.default);
        };
        let range = f64::from(self.min)..=f64::from(self.max);
        match given {
            Some(n) if range.contains(&n) && n.fract() == 0.0 => Ok(n as u32),
            _ => Err(Error::invalid_option(
                name,
                format!(
                    "must be a whole number of seconds from {} to {}",
                    self.min, self.max
                ),
            )),
        }
    }
}

impl RefreshPolicy {
    /// The policy of a client created with `refreshLeewaySeconds` and
    /// `refreshTimeoutSeconds`, in a tab that drew `jitter` at random: the
    /// leeway grows by up to a fifth of itself (at most 5 s), so tabs that
    /// loaded together do not all find the token stale at the same moment.
    pub fn of(leeway_seconds: u32, timeout_seconds: u32, jitter: u8) -> RefreshPolicy {
        let leeway_ms = u64::from(leeway_seconds) * 1000;
        let max_jitter = (leeway_ms / 5).min(5_000);
        let timeout_ms = Self::timeout_ms_of(timeout_seconds);
        RefreshPolicy {
            leeway_ms: leeway_ms + max_jitter * u64::from(jitter) / 255,
            timeout_ms,
            settle_cap_ms: SETTLE_CAP_MS.max(timeout_ms.saturating_mul(2)),
            lock_wait_ms: timeout_ms
                .max(Self::store_wait_ms_of(timeout_ms))
                .saturating_mul(LOCK_WAIT_TIMEOUTS),
        }
    }

    /// `refreshTimeoutSeconds` in ms: a refresh's wait, and the deadline of
    /// every other request latchkey makes (discovery, code exchange, keys,
    /// UserInfo, revocation), so that `create()` and a login cannot hang.
    pub fn timeout_ms_of(timeout_seconds: u32) -> u32 {
        timeout_seconds.saturating_mul(1000)
    }

    /// How long one store operation under the lock may take before the
    /// refresh gives up on it: the refresh timeout, but never less than a
    /// localStorage read may wait for its mark to agree
    /// ([`MARK_WAIT_MS`](crate::core::marked_values::MARK_WAIT_MS)), with a
    /// hidden tab's timers (once a second) on top. Shorter, a mark that
    /// never agrees would fail every refresh instead of being repaired by
    /// the first read past its bound.
    pub fn store_wait_ms(&self) -> u32 {
        Self::store_wait_ms_of(self.timeout_ms)
    }

    /// [`Self::store_wait_ms`] of a policy whose timeout is `timeout_ms`.
    pub fn store_wait_ms_of(timeout_ms: u32) -> u32 {
        let marked_read = crate::core::marked_values::MARK_WAIT_MS + 2_000;
        timeout_ms.max(u32::try_from(marked_read).unwrap_or(u32::MAX))
    }

    /// When the transport aborts a refresh request: a little past the
    /// settle cap, so that the core, which gives up at the cap, names the
    /// failure (`refresh_timeout`); aborting then frees the connection.
    pub fn abort_after_ms(&self) -> u32 {
        self.settle_cap_ms.saturating_add(1_000)
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
    /// The latest end heard or decided here: the latest login it ended and
    /// why (`None` before any end). A set of that login or an earlier one — a sibling's
    /// refresh whose message arrived after the sign-out's, or the store
    /// before the signing-out tab's second clear — must not bring the
    /// session back ([`Session::has_ended`]).
    last_end: Cell<Option<EndRecord>>,
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
    /// ([`Refresher::rejected_at_once`]), and until when it is not
    /// refreshed again on a rejection ([`REFUSAL_HOLD_MS`]).
    refused: RefCell<Option<(AccessToken, u64)>>,
}

/// How long a tab keeps the lock after broadcasting a set it could not
/// write, so the message reaches the other tabs before any of them can take
/// the lock and refresh from the older stored set. BroadcastChannel
/// delivers between same-origin tabs within milliseconds; this is a wide
/// margin, paid only when a write failed.
pub const BROADCAST_GRACE_MS: u32 = 250;

/// How long a token the API rejected on the very retry it was obtained for
/// is not refreshed again on a rejection: an API that refuses every token
/// costs one refresh per minute at most, not one per call; a token that
/// works for a while (another endpoint's) and dies later is refreshed on
/// its next rejection after that, not only once it goes stale.
pub const REFUSAL_HOLD_MS: u64 = 60_000;

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

    /// Makes no refresh request before `until` (this tab's token endpoint
    /// answered with `Retry-After`); refreshes answer `error` meanwhile.
    pub(crate) fn hold_off(&self, until: u64, error: Error) {
        *self.backoff.borrow_mut() = Some((until, error));
    }

    /// The token endpoint answered: no `Retry-After` holds any more.
    pub(crate) fn resume_requests(&self) {
        self.backoff.take();
    }

    /// How many times the session has ended in this tab.
    pub(crate) fn ends(&self) -> u64 {
        self.ends.get()
    }

    /// Whether this tab's set is missing from the store (a failed write).
    pub(crate) fn is_unsaved(&self) -> bool {
        self.unsaved.get()
    }

    /// Records whether this tab's set is missing from the store.
    pub(crate) fn set_unsaved(&self, unsaved: bool) {
        self.unsaved.set(unsaved);
    }

    /// The tab's single in-flight refresh.
    pub(crate) fn flight(&self) -> &SingleFlight<Result<TokenSet, Error>> {
        &self.flight
    }

    /// Whether `token` was rejected as expired on the retry it was obtained
    /// for ([`Refresher::rejected_at_once`](crate::core::refresher::Refresher::rejected_at_once)),
    /// less than [`REFUSAL_HOLD_MS`] before `now_ms`.
    pub(crate) fn refuses(&self, token: &AccessToken, now_ms: u64) -> bool {
        matches!(&*self.refused.borrow(), Some((refused, until)) if refused == token && now_ms < *until)
    }

    /// Records at `now_ms` that `token` was rejected as expired on its very
    /// retry.
    pub(crate) fn refuse(&self, token: AccessToken, now_ms: u64) {
        *self.refused.borrow_mut() = Some((token, now_ms.saturating_add(REFUSAL_HOLD_MS)));
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
    pub(crate) fn backing_off(&self, now_ms: u64) -> Option<Error> {
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

    /// The key a call with this session's token must prove possession of
    /// (its thumbprint): `Some` when the set in use is bound to a key,
    /// `None` for a Bearer call. The set decides, not the client's `dpop`
    /// option: a bound token is refused as Bearer, so a session bound
    /// before an app turned DPoP off still signs its calls (as its refresh
    /// does) until its next login.
    pub fn proof_key(&self) -> Option<String> {
        let tokens = self.tokens.borrow();
        tokens.as_ref().and_then(|t| t.dpop_jkt.clone())
    }

    /// Whether a call needs a DPoP proof ([`Session::proof_key`] is
    /// `Some`), without copying the thumbprint.
    pub fn needs_proof(&self) -> bool {
        let tokens = self.tokens.borrow();
        tokens.as_ref().is_some_and(|t| t.dpop_jkt.is_some())
    }

    /// Puts `tokens` in use and tells the listener, unless it is the set
    /// already in use; whether a new access token was put in use. From
    /// another tab (`Sync`), a set older than the one in use is ignored:
    /// broadcasts can arrive late.
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
                    // put in use (a refresh saves and broadcasts its tokens
                    // first). The latter changes what `getUser()` says, so
                    // the app hears of it, in every tab; the former is
                    // nothing new.
                    let new_claims = held.id_token != tokens.id_token;
                    *current = Some(tokens);
                    drop(current);
                    if new_claims {
                        self.notify(&SessionChange::User);
                    }
                    return false;
                }
            } else if source == TokenSource::Sync && self.has_ended(&tokens) {
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

    /// Ends the session of every login until `at_ms` (a sign-out: now; an
    /// expiry: the refused set's login): drops the tokens held, unless they
    /// are from a later login, and tells the listener if there were any.
    /// Sets from those logins that arrive later from other tabs are
    /// ignored.
    pub fn end(&self, reason: EndReason, at_ms: u64) -> bool {
        let latest = match self.last_end.get() {
            Some(end) if end.until_ms > Some(at_ms) => end,
            _ => EndRecord::new(reason, at_ms),
        };
        self.last_end.set(Some(latest));
        let later = self
            .tokens
            .borrow()
            .as_ref()
            .is_some_and(|held| held.login_at_ms > at_ms);
        if later {
            // A login after the ended session's: not this end's to end.
            return false;
        }
        self.ends.set(self.ends.get() + 1);
        self.unsaved.set(false);
        if self.tokens.borrow_mut().take().is_none() {
            return false;
        }
        self.notify(&SessionChange::Ended(reason));
        true
    }

    /// Whether `set` belongs to a login that has ended here: only a later
    /// login brings a session back. Nothing has ended before the first end
    /// (a record from before logins were timed reads as login 0).
    pub fn has_ended(&self, set: &TokenSet) -> bool {
        self.last_end.get().is_some_and(|end| end.covers(set))
    }

    /// The latest end heard or decided here (`None` before any end).
    pub fn last_end(&self) -> Option<EndRecord> {
        self.last_end.get()
    }

    /// Applies what another tab broadcast, received at `now_ms`. Checked
    /// like any input: an issue time in the future is taken as now (it
    /// would otherwise win every later comparison), and a set older than
    /// the one held is ignored ([`Session::adopt`]). A set without an
    /// expiry is taken like any other: servers may leave `expires_in` out
    /// (RFC 6749 §5.1), and after a failed write this message alone carries
    /// the rotation.
    pub fn receive(&self, message: SessionMessage, now_ms: u64) {
        match message {
            SessionMessage::Tokens {
                mut tokens,
                unsaved,
            } => {
                tokens.issued_at_ms = tokens.issued_at_ms.min(now_ms);
                tokens.login_at_ms = tokens.login_at_ms.min(now_ms);
                if self.adopt(tokens, TokenSource::Sync) {
                    self.unsaved.set(unsaved);
                }
            }
            SessionMessage::Ended {
                reason,
                login_at_ms,
            } => {
                let until = login_at_ms.map_or(now_ms, |at| at.min(now_ms));
                self.end(reason, until);
            }
            SessionMessage::Refused {
                login_at_ms,
                rotation,
            } => {
                let held = self.tokens.borrow().as_ref().and_then(|held| {
                    let named = (held.login_at_ms, held.rotation) == (login_at_ms, rotation);
                    named.then(|| held.access_token.clone())
                });
                if let Some(token) = held {
                    self.refuse(token, now_ms);
                }
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

/// Whether `a` is newer than `b`: from a later login, or from the same
/// login and more refreshes from it ([`TokenSet::rotation`]), or (records
/// from before the count) issued later. A login completed while a refresh of an earlier
/// session was out is newer than that refresh's set, whenever the
/// refresh's answer came.
pub fn is_newer(a: &TokenSet, b: &TokenSet) -> bool {
    (a.login_at_ms, a.rotation, a.issued_at_ms) > (b.login_at_ms, b.rotation, b.issued_at_ms)
}

/// The newer of two sets ([`is_newer`]).
pub(crate) fn newest(a: Option<TokenSet>, b: Option<TokenSet>) -> Option<TokenSet> {
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

/// What a call sends after a proactive refresh of `held` failed with
/// `error` at `now`: the token in hand while it is still valid and the
/// failure is transient (the request can still succeed), else the failure.
pub fn after_failed_refresh(held: TokenSet, error: Error, now: u64) -> Result<AccessToken, Error> {
    if ends_session(&error) || held.is_stale(now, 0) {
        return Err(error);
    }
    Ok(held.access_token)
}

#[cfg(test)]
mod fallback_tests {
    use super::*;
    use crate::core::fakes::bearer_set;

    fn held(expires_at_ms: u64) -> TokenSet {
        TokenSet {
            expires_at_ms: Some(expires_at_ms),
            ..bearer_set("at-1")
        }
    }

    #[test]
    fn a_transient_failure_sends_the_token_in_hand_while_it_is_valid() {
        let token = after_failed_refresh(held(2_000), Error::RefreshTimeout, 1_000);
        assert_eq!(token.unwrap().secret(), "at-1");
    }

    #[test]
    fn an_expired_token_in_hand_is_not_sent() {
        let failed = after_failed_refresh(held(2_000), Error::RefreshTimeout, 2_000);
        assert_eq!(failed.unwrap_err(), Error::RefreshTimeout);
    }

    #[test]
    fn a_failure_that_ends_the_session_is_the_outcome() {
        for error in [Error::SessionExpired, Error::NotAuthenticated] {
            let failed = after_failed_refresh(held(2_000), error.clone(), 1_000);
            assert_eq!(failed.unwrap_err(), error);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
