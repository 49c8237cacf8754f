//! The one driver of the session's machines ([`RefreshMachine`],
//! [`SignIn`], [`SignOut`]): performs each step they ask for over the ports
//! (lock, store, channel, the refresh request, the ID-token check, the
//! background) and feeds the outcomes back. Also the fast path
//! ([`Refresher::access_token`]: a usable token, no machine) and the tab's
//! single flight. The decisions are in the machines and in
//! [`crate::core::session`]; this file only waits and carries.

use std::cell::{OnceCell, RefCell};
use std::future::Future;
use std::pin::Pin;

use crate::core::dpop::DpopKeys;
use crate::core::drive::{drive, Next, Perform};
use crate::core::message::SessionMessage;
use crate::core::ports::{
    Background, Broadcast, Clock, RefreshRequest, RefreshTransport, SessionLock, SessionStore,
    Timer,
};
use crate::core::race::within;
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::refresh_machine::RefreshMachine;
use crate::core::retirement::keys_after_login;
use crate::core::session::{after_failed_refresh, RefreshPolicy, Session};
use crate::core::sign_in_out::{SignIn, SignOut};
use crate::core::single_flight::SingleFlight;
use crate::core::steps::{Act, Input, Performed, SessionMachine, SessionSteps, Step, Wait};
use crate::core::{AccessToken, Error, TokenSet};

/// The refresh request in flight, kept across steps.
type Request<'s> = Pin<Box<dyn Future<Output = Result<RefreshAnswer, Error>> + 's>>;

/// One wait of a machine, performed.
type Operation<'s> = Pin<Box<dyn Future<Output = Input> + 's>>;

/// The check of a refreshed set's new ID token (OpenID Connect: it must
/// verify and name the same user). It runs after the set is persisted: the
/// server has rotated the refresh token by then, and the new one is the
/// session whatever the check says.
#[allow(async_fn_in_trait)]
pub trait CheckRefreshed {
    /// `Err` refuses `fresh`'s ID token;
    /// [`is_identity_failure`](crate::core::refresh_machine::is_identity_failure) tells a
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
            Err(error) => after_failed_refresh(held, error, self.platform.now_ms()),
        }
    }

    /// A token newer than the one this tab holds now
    /// (`getAccessToken({ forceRefresh: true })`: the app knows the token
    /// no longer says what it should). Refreshed under the lock unless
    /// another call, in this tab or another, already replaced it: forced
    /// calls holding the same token cost one refresh in all. A session
    /// that cannot refresh (no refresh token) gives the token it has while
    /// it lasts; a failed refresh is the caller's error, never the old
    /// token.
    pub async fn forced_access_token(&self) -> Result<AccessToken, Error> {
        let held = self.session.tokens().ok_or(Error::NotAuthenticated)?;
        Ok(self.refresh(&held.access_token).await?.access_token)
    }

    /// A replacement for `rejected`, which the API refused as expired. If
    /// this tab already holds another token (a concurrent call refreshed),
    /// that one is returned without a refresh. `rejected` itself comes back
    /// (the caller returns the API's answer as is) when it was
    /// [rejected at once](Self::rejected_at_once): at most one reactive
    /// refresh per token.
    pub async fn after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, Error> {
        let held = self.session.tokens().ok_or(Error::NotAuthenticated)?;
        let refused = self.session.refuses(rejected, self.platform.now_ms());
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
    /// The other tabs are told which set it is: one that adopted it would
    /// otherwise refresh on its own first refusal.
    pub fn rejected_at_once(&self, fresh: &AccessToken) {
        self.session.refuse(fresh.clone(), self.platform.now_ms());
        let held = self.session.tokens();
        if let Some(held) = held.filter(|held| held.access_token == *fresh) {
            self.broadcast.publish(&SessionMessage::Refused {
                login_at_ms: held.login_at_ms,
                rotation: held.rotation,
            });
        }
    }

    /// Waits for the tab's single in-flight refresh, starting it (on a task
    /// of its own, see [`Refresher::lead`]) if none is running.
    async fn refresh(&self, held: &AccessToken) -> Result<TokenSet, Error> {
        if self.session.flight().begin() {
            self.background.refresh(held.clone());
        }
        self.session
            .flight()
            .wait()
            .await
            .unwrap_or(Err(Error::RefreshTimeout))
    }

    /// Runs the refresh that `Refresher::refresh` began, to its end, and
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
        let abandoned = Abandoned(self.session.flight());
        let outcome = self.refresh_in_lock(&held).await;
        std::mem::forget(abandoned);
        self.session.flight().finish(Some(outcome));
    }

    /// This tab's refresh of `held` under the lock ([`RefreshMachine`]).
    async fn refresh_in_lock(&self, held: &AccessToken) -> Result<TokenSet, Error> {
        let keeps_id_tokens = self.check.keeps_id_tokens();
        let checks_accounts = self.transport.checks_accounts();
        let (mut machine, first) = RefreshMachine::start(
            held.clone(),
            self.policy,
            keeps_id_tokens,
            checks_accounts,
            self.session,
        );
        self.drive(&mut machine, first)
            .await?
            .ok_or(Error::NotAuthenticated)
    }

    /// Runs a session machine to its end under the one driver loop. The
    /// lock, once taken, is held until `Unlock` or the end; the request,
    /// once sent, is awaited across [`Input::Slow`] and never dropped
    /// early.
    async fn drive(
        &self,
        machine: &mut dyn SessionMachine,
        first: Step,
    ) -> Result<Option<TokenSet>, Error> {
        let sent = [OnceCell::new(), OnceCell::new()];
        let mut performer = Performer {
            refresher: self,
            sent: &sent,
            lock: RefCell::new(None),
            request: RefCell::new(None),
        };
        drive(&mut SessionSteps(machine), Next::Do(first), &mut performer).await
    }

    /// What `wait` does, as one future (one type, so the wait and its bound
    /// are compiled once), and its bound: the longest it is awaited and how
    /// to make the input it gives past that (only then). `Err`: the machine is done, with this.
    ///
    /// The lock's guard goes to `lock`; the refresh request to `request`,
    /// where it stays across [`Input::Slow`] and is never dropped early.
    /// Store operations are bounded by the refresh timeout: a storage that
    /// never answers (a wedged IndexedDB) would otherwise hold the lock,
    /// and every caller waiting on this tab's refresh, for ever; past the
    /// bound it fails like any failed operation, and the machine already
    /// says what each failure means (a read: no refresh, every token kept;
    /// a write: the set kept in memory and broadcast).
    // `Err` hands back the outcome, not an error: its size is a token set's.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    fn operation<'s, 'r: 's>(
        &'r self,
        wait: Wait,
        sent: &'r Sent,
        request: &'s RefCell<Option<Request<'r>>>,
        lock: &'s RefCell<Option<L::Guard>>,
    ) -> Result<(Operation<'s>, Option<(u32, fn() -> Input)>), Result<Option<TokenSet>, Error>>
    {
        let store_bound = self.policy.store_wait_ms();
        fn stalled() -> Error {
            Error::Storage {
                reason: "the store did not answer in time".into(),
            }
        }
        // Held across the await on purpose: `drive` awaits one operation at
        // a time, and nothing else touches `request` while it runs.
        #[allow(clippy::await_holding_refcell_ref)]
        let answer = async {
            let mut request = request.borrow_mut();
            match request.as_mut() {
                Some(sending) => Input::Answer(sending.as_mut().await),
                None => Input::Answer(Err(Error::RefreshTimeout)),
            }
        };
        Ok(match wait {
            Wait::Lock { ms } => (
                Box::pin(async move {
                    let taken = self.lock.acquire().await;
                    Input::Locked(taken.map(|guard| drop(lock.replace(Some(guard)))))
                }),
                Some((ms, || Input::Locked(Err(Error::LockUnavailable)))),
            ),
            Wait::Load => (
                Box::pin(async { Input::Loaded(self.store.load_tokens().await) }),
                Some((store_bound, || Input::Loaded(Err(stalled())))),
            ),
            Wait::EndReason => (
                Box::pin(async { Input::EndReason(self.store.end_record().await) }),
                Some((store_bound, || Input::EndReason(None))),
            ),
            Wait::CheckAccount { account, ms } => (
                Box::pin(async move {
                    Input::AccountChecked(self.transport.check_account(&account).await)
                }),
                Some((ms, || Input::AccountChecked(Err(Error::RefreshTimeout)))),
            ),
            Wait::Send {
                request: sending,
                ms,
            } => {
                // A cell of its own: the request before it may still be
                // borrowed by its future until this one replaces it.
                let Some(cell) = sent.iter().find(|cell| cell.get().is_none()) else {
                    return Err(Err(Error::DpopNonceFailed));
                };
                let sending: &RefreshRequest = cell.get_or_init(|| sending);
                *request.borrow_mut() = Some(Box::pin(self.transport.refresh(sending)));
                (Box::pin(answer), Some((ms, || Input::Slow)))
            }
            Wait::KeepWaiting { ms } => (
                Box::pin(answer),
                Some((ms, || Input::Answer(Err(Error::RefreshTimeout)))),
            ),
            Wait::Save(tokens) => (
                Box::pin(async move { Input::Saved(self.store.save_tokens(&tokens).await) }),
                Some((store_bound, || Input::Saved(Err(stalled())))),
            ),
            Wait::Clear(reason) => (
                Box::pin(async move { Input::Cleared(self.store.clear_tokens(reason).await) }),
                Some((store_bound, || Input::Cleared(Err(stalled())))),
            ),
            Wait::Sleep(ms) => (
                Box::pin(async move {
                    self.platform.sleep(ms).await;
                    Input::Slept
                }),
                None,
            ),
            Wait::Check { base, candidate } => (
                Box::pin(async move { Input::Checked(self.check.check(&base, &candidate).await) }),
                None,
            ),
            Wait::Done(outcome) => return Err(outcome),
        })
    }

    /// Performs one of the machine's acts.
    fn act(&self, act: Act, lock: &RefCell<Option<L::Guard>>) {
        let session = self.session;
        match act {
            Act::Publish(message) => self.broadcast.publish(&message),
            Act::Revoke(tokens) => self.background.revoke(tokens),
            Act::Adopt(tokens, source) => drop(session.adopt(tokens, source)),
            Act::End { reason, at } => drop(session.end(reason, at)),
            Act::PersistFailed(error) => session.persist_failed(&error),
            Act::Unsaved(unsaved) => session.set_unsaved(unsaved),
            Act::HoldOff { until, error } => session.hold_off(until, error),
            Act::ResumeRequests => session.resume_requests(),
            Act::TellWaitersTimedOut => session.flight().notice(Err(Error::RefreshTimeout)),
            Act::Unlock => drop(lock.take()),
        }
    }

    /// Signs out in every tab ([`SignOut`]). Returns the newest set seen —
    /// stored or in this tab's memory — to revoke and for `id_token_hint`.
    pub async fn sign_out(&self) -> Option<TokenSet> {
        let (mut machine, first) = SignOut::start(&self.policy, self.platform.now_ms());
        self.drive(&mut machine, first).await.ok().flatten()
    }

    /// Completes a login: its `tokens` put in place ([`Refresher::sign_in`]),
    /// then the DPoP keys it leaves behind handled
    /// ([`keys_after_login`]): the replaced session's key deleted only once
    /// the new set is in use and stored (a failed write leaves the store
    /// holding the replaced session, which a reload starts with: its key
    /// stays), and the new key kept in this tab's memory only when the
    /// session is (`memory_storage`). Returns why the write failed, if it
    /// did.
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
        if let (Some(old), None) = (&plan.delete, &failed) {
            keys.delete(old).await;
        }
        if let Some(jkt) = &plan.memory_only {
            keys.keep_in_memory_only(jkt).await;
        }
        failed
    }

    /// Puts a completed login's `tokens` in place ([`SignIn`]). Returns why
    /// the write failed, if it did (the tab keeps the set in memory).
    pub async fn sign_in(&self, tokens: TokenSet) -> Option<Error> {
        let (mut machine, first) = SignIn::start(tokens, &self.policy);
        self.drive(&mut machine, first).await.err()
    }
}

/// The requests a refresh sends: the request, and its one resend after a
/// refusal for its DPoP nonce
/// ([`RefreshMachine`](crate::core::refresh_machine::RefreshMachine)).
type Sent = [OnceCell<RefreshRequest>; 2];

/// Performs a session machine's steps: each act at once, in order, then
/// the wait, bounded. It decides nothing.
struct Performer<'r, 'a, P, S, L: SessionLock, B, R, C> {
    refresher: &'r Refresher<'a, P, S, L, B, R, C>,
    /// The requests sent, each kept while it is out.
    sent: &'r Sent,
    /// The lock's guard, once taken (let go before the request on drop).
    lock: RefCell<Option<L::Guard>>,
    /// The refresh request, once sent: kept across steps.
    request: RefCell<Option<Request<'r>>>,
}

impl<P, S, L, B, R, C> Perform<SessionSteps<'_>> for Performer<'_, '_, P, S, L, B, R, C>
where
    P: Clock + Timer,
    S: SessionStore,
    L: SessionLock,
    B: Broadcast,
    R: RefreshTransport,
    C: CheckRefreshed,
{
    async fn perform(&mut self, step: Step, _: &SessionSteps<'_>) -> Performed {
        let refresher = self.refresher;
        for act in step.acts {
            refresher.act(act, &self.lock);
        }
        let (operation, bound) =
            match refresher.operation(step.wait, self.sent, &self.request, &self.lock) {
                Ok(operation) => operation,
                Err(outcome) => return Performed::Finished(outcome),
            };
        Performed::Input(match bound {
            Some((ms, past)) => within(operation, refresher.platform.sleep(ms))
                .await
                .unwrap_or_else(past),
            None => operation.await,
        })
    }

    fn with(&self) -> (&Session, u64) {
        (self.refresher.session, self.refresher.platform.now_ms())
    }
}
