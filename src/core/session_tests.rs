//! The refresh protocol's decisions, with a fake clock, fake HTTP (exact
//! requests, failing when unused), a counting lock and a recording channel.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::*;
use crate::core::dpop::DpopKeys;
use crate::core::fakes::POLICY;
use crate::core::fakes::{
    block_on, FakeBroadcast, FakeDpopKeys, FakeLock, FakePlatform, FullStore, Task, Tasks,
};
use crate::core::memory_store::MemorySessionStore;
use crate::core::ports::{
    Background, HttpReply, RefreshRequest, RefreshTransport, SessionLock, SessionStore,
};
use crate::core::race::both;
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::refresh_grant::RefreshGrant;
use crate::core::refresher::*;
use crate::core::RefreshToken;

const NOW: u64 = 1_700_000_000_000;
const TOKEN_URL: &str = "https://idp.example/token";
const HOUR_MS: u64 = 3_600_000;

fn tokens(access: &str, refresh: Option<&str>, issued_at_ms: u64, lifetime_ms: u64) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(access.into()),
        token_type: "Bearer".into(),
        expires_at_ms: Some(issued_at_ms + lifetime_ms),
        refresh_token: refresh.map(|r| RefreshToken::new(r.into())),
        scope: Some("openid api".into()),
        id_token: None,
        refresh_expires_at_ms: None,
        issued_at_ms,
        login_at_ms: issued_at_ms,
        rotation: 0,
        dpop_jkt: None,
        atproto: None,
    }
}

/// A set issued an hour ago that expires in `left_ms`.
fn expiring(access: &str, refresh: Option<&str>, left_ms: u64) -> TokenSet {
    tokens(access, refresh, NOW + left_ms - HOUR_MS, HOUR_MS)
}

const REFRESH_FORM: &[(&str, &str)] = &[
    ("grant_type", "refresh_token"),
    ("refresh_token", "rt-1"),
    ("client_id", "spa"),
];
const ROTATED: &str =
    r#"{"access_token":"at-2","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-2"}"#;

/// One tab: its session, fakes, and a log of what its listener heard.
struct Tab {
    platform: FakePlatform,
    lock: FakeLock,
    broadcast: FakeBroadcast,
    session: Session,
    heard: Rc<RefCell<Vec<String>>>,
    /// The sets handed to [`Background::revoke`].
    revoked: RefCell<Vec<TokenSet>>,
}

/// The test's [`Background`]: refreshes run as tasks beside the test's
/// future, revocations are recorded.
struct TestBackground<'a> {
    tasks: Tasks<'a>,
    lead: Box<dyn Fn(AccessToken) -> Task<'a> + 'a>,
    revoked: &'a RefCell<Vec<TokenSet>>,
}

impl Background for TestBackground<'_> {
    fn refresh(&self, held: AccessToken) {
        self.tasks.spawn((self.lead)(held));
    }

    fn revoke(&self, tokens: TokenSet) {
        self.revoked.borrow_mut().push(tokens);
    }
}

/// The background inside a refresh: it never starts another, and records
/// revocations.
struct RevokeInto<'a>(&'a RefCell<Vec<TokenSet>>);

impl Background for RevokeInto<'_> {
    fn refresh(&self, _held: AccessToken) {
        unreachable!("a refresh never starts another");
    }

    fn revoke(&self, tokens: TokenSet) {
        self.0.borrow_mut().push(tokens);
    }
}

impl Tab {
    fn new(memory: Option<TokenSet>, stored: Option<TokenSet>) -> Tab {
        let platform = FakePlatform::at(NOW);
        if let Some(stored) = &stored {
            block_on(platform.store.save_tokens(stored)).unwrap();
        }
        let session = Session::new(memory);
        let heard = Rc::<RefCell<Vec<String>>>::default();
        let log = Rc::clone(&heard);
        session.set_observer(move |change| {
            log.borrow_mut().push(match change {
                SessionChange::Tokens { tokens, source } => {
                    format!("tokens {source:?} {}", tokens.access_token.secret())
                }
                SessionChange::User => "user".to_owned(),
                SessionChange::Ended(reason) => format!("ended {reason:?}"),
                SessionChange::PersistFailed(error) => format!("persist failed {}", error.code()),
            })
        });
        Tab {
            platform,
            lock: FakeLock::default(),
            broadcast: FakeBroadcast::default(),
            session,
            heard,
            revoked: RefCell::default(),
        }
    }

    /// A tab whose memory and store hold the same set.
    fn with(set: TokenSet) -> Tab {
        Tab::new(Some(set.clone()), Some(set))
    }

    fn run<T>(
        &self,
        call: impl AsyncFnOnce(
            &Refresher<
                '_,
                FakePlatform,
                MemorySessionStore,
                FakeLock,
                FakeBroadcast,
                RefreshGrant<'_, FakePlatform, FakeDpopKeys>,
            >,
        ) -> T,
    ) -> T {
        self.run_with(&self.grant(), call)
    }

    /// The standard refresh request, against the fake server.
    fn grant(&self) -> RefreshGrant<'_, FakePlatform, FakeDpopKeys> {
        RefreshGrant {
            http: &self.platform,
            token_endpoint: TOKEN_URL,
            client_id: "spa",
            dpop: self.platform.dpop(),
        }
    }

    /// The background the refresher hands its refresh to: a task on the
    /// test executor running [`Refresher::lead`] over the same parts, as
    /// `spawn_local` does in the browser. Revocations are recorded.
    fn background<'a, S, L, R, C>(
        &'a self,
        store: &'a S,
        lock: &'a L,
        transport: &'a R,
        check: impl Fn() -> C + 'a,
    ) -> TestBackground<'a>
    where
        S: SessionStore,
        L: SessionLock,
        R: RefreshTransport,
        C: CheckRefreshed + 'a,
    {
        let revoked = &self.revoked;
        TestBackground {
            tasks: Tasks::default(),
            revoked,
            lead: Box::new(move |held| {
                let check = check();
                Box::pin(async move {
                    let only_revokes = RevokeInto(revoked);
                    let refresher = Refresher {
                        session: &self.session,
                        platform: &self.platform,
                        store,
                        lock,
                        broadcast: &self.broadcast,
                        transport,
                        policy: POLICY,
                        check,
                        background: &only_revokes,
                    };
                    refresher.lead(held).await;
                })
            }),
        }
    }

    /// This tab's refresher with the given store, lock and transport.
    fn refresher<'a, S, L, R>(
        &'a self,
        store: &'a S,
        lock: &'a L,
        transport: &'a R,
        background: &'a dyn Background,
    ) -> Refresher<'a, FakePlatform, S, L, FakeBroadcast, R> {
        Refresher {
            session: &self.session,
            platform: &self.platform,
            store,
            lock,
            broadcast: &self.broadcast,
            transport,
            policy: POLICY,
            check: NoCheck,
            background,
        }
    }

    fn run_with<R: RefreshTransport, T>(
        &self,
        transport: &R,
        call: impl AsyncFnOnce(
            &Refresher<'_, FakePlatform, MemorySessionStore, FakeLock, FakeBroadcast, R>,
        ) -> T,
    ) -> T {
        let store = &self.platform.store;
        let background = self.background(store, &self.lock, transport, || NoCheck);
        let refresher = self.refresher(store, &self.lock, transport, &background);
        let out = background.tasks.run(call(&refresher));
        assert!(!self.lock.held.get(), "the lock is released on every path");
        out
    }

    fn revoked(&self) -> Vec<String> {
        self.revoked
            .borrow()
            .iter()
            .map(|t| t.access_token.secret().to_owned())
            .collect()
    }

    fn access_token(&self) -> Result<String, Error> {
        self.run(async |r| r.access_token().await)
            .map(|t| t.secret().to_owned())
    }

    fn stored(&self) -> Option<TokenSet> {
        block_on(self.platform.store.load_tokens()).unwrap()
    }

    fn in_memory(&self) -> Option<String> {
        self.session
            .tokens()
            .map(|t| t.access_token.secret().to_owned())
    }

    fn heard(&self) -> Vec<String> {
        self.heard.borrow().clone()
    }

    fn sent(&self) -> Vec<SessionMessage> {
        self.broadcast.sent.borrow().clone()
    }
}

#[test]
fn fast_path_uses_the_token_in_memory_without_lock_or_storage() {
    // The store holds a different set: reading it would show.
    let tab = Tab::new(
        Some(expiring("at-1", Some("rt-1"), HOUR_MS / 2)),
        Some(expiring("at-other", Some("rt-other"), HOUR_MS)),
    );
    assert_eq!(tab.access_token().unwrap(), "at-1");
    assert_eq!(tab.lock.acquired.get(), 0);
    assert!(tab.heard().is_empty());
}

#[test]
fn no_session_is_not_authenticated_without_a_lock() {
    let tab = Tab::new(None, None);
    assert_eq!(tab.access_token().unwrap_err(), Error::NotAuthenticated);
    assert_eq!(tab.lock.acquired.get(), 0);
}

#[test]
fn stale_token_is_refreshed_in_the_lock_persisted_then_broadcast() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
    assert_eq!(tab.lock.acquired.get(), 1);
    let stored = tab.stored().unwrap();
    assert_eq!(stored.access_token.secret(), "at-2");
    assert_eq!(stored.refresh_token.as_ref().unwrap().secret(), "rt-2");
    assert_eq!(stored.expires_at_ms, Some(NOW + HOUR_MS));
    assert_eq!(
        tab.sent(),
        vec![SessionMessage::Tokens {
            tokens: stored,
            unsaved: false
        }]
    );
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
}

#[test]
fn a_set_another_tab_stored_is_adopted_without_a_request() {
    let tab = Tab::new(
        Some(expiring("at-1", Some("rt-1"), 10_000)),
        Some(tokens("at-2", Some("rt-2"), NOW - 1_000, HOUR_MS)),
    );
    assert_eq!(tab.access_token().unwrap(), "at-2");
    assert_eq!(tab.in_memory().as_deref(), Some("at-2"));
    assert!(tab.sent().is_empty(), "the tab that refreshed broadcast it");
    assert_eq!(tab.heard(), vec!["tokens Sync at-2"]);
}

#[test]
fn a_stored_set_that_is_itself_stale_is_refreshed_with_its_refresh_token() {
    let tab = Tab::new(
        Some(expiring("at-0", Some("rt-0"), 5_000)),
        Some(expiring("at-1", Some("rt-1"), 5_000)),
    );
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
}

#[test]
fn concurrent_calls_in_a_tab_share_one_refresh() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let outcomes: Vec<Result<AccessToken, Error>> = tab.run(async |r| {
        let pair = || both(r.access_token(), r.access_token());
        let ((a, b), (c, d)) = both(pair(), pair()).await;
        vec![a, b, c, d]
    });
    for outcome in outcomes {
        assert_eq!(outcome.unwrap().secret(), "at-2");
    }
    assert_eq!(tab.lock.acquired.get(), 1);
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
}

#[test]
fn a_rejection_of_a_token_already_replaced_needs_no_refresh() {
    let tab = Tab::with(expiring("at-2", Some("rt-2"), HOUR_MS));
    let rejected = AccessToken::new("at-1".into());
    let token = tab
        .run(async |r| r.after_rejection(&rejected).await)
        .unwrap();
    assert_eq!(token.secret(), "at-2");
    assert_eq!(tab.lock.acquired.get(), 0);
}

#[test]
fn a_rejection_refreshes_even_when_the_clock_says_valid() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), HOUR_MS / 2));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let rejected = AccessToken::new("at-1".into());
    let token = tab
        .run(async |r| r.after_rejection(&rejected).await)
        .unwrap();
    assert_eq!(token.secret(), "at-2");
}

#[test]
fn a_forced_refresh_replaces_a_token_the_clock_says_is_valid() {
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW, HOUR_MS));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let token = tab.run(async |r| r.forced_access_token().await).unwrap();
    assert_eq!(token.secret(), "at-2");
    let stored = tab.stored().map(|t| t.access_token.secret().to_owned());
    assert_eq!(stored.as_deref(), Some("at-2"));
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
}

#[test]
fn concurrent_forced_refreshes_in_a_tab_share_one() {
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW, HOUR_MS));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let outcomes = tab.run(async |r| {
        let (a, b) = both(r.forced_access_token(), r.forced_access_token()).await;
        vec![a, b]
    });
    for outcome in outcomes {
        assert_eq!(outcome.unwrap().secret(), "at-2");
    }
    assert_eq!(tab.lock.acquired.get(), 1);
}

#[test]
fn a_forced_refresh_of_a_token_another_tab_already_replaced_adopts_its_set() {
    // This tab holds at-1; another tab's forced refresh stored at-2.
    let tab = Tab::new(
        Some(tokens("at-1", Some("rt-1"), NOW, HOUR_MS)),
        Some(tokens("at-2", Some("rt-2"), NOW, HOUR_MS)),
    );
    let token = tab.run(async |r| r.forced_access_token().await).unwrap();
    assert_eq!(token.secret(), "at-2");
    assert_eq!(tab.heard(), vec!["tokens Sync at-2"]);
}

#[test]
fn a_forced_refresh_that_fails_is_the_caller_s_error() {
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW, HOUR_MS));
    tab.platform.expect_post(
        TOKEN_URL,
        REFRESH_FORM,
        503,
        r#"{"error":"temporarily_unavailable"}"#,
    );
    let error = tab
        .run(async |r| r.forced_access_token().await)
        .unwrap_err();
    assert_eq!(error.code(), "token_error");
    assert_eq!(tab.in_memory().as_deref(), Some("at-1"), "every token kept");
}

#[test]
fn a_forced_refresh_without_a_session_is_not_authenticated() {
    let tab = Tab::new(None, None);
    let error = tab
        .run(async |r| r.forced_access_token().await)
        .unwrap_err();
    assert_eq!(error, Error::NotAuthenticated);
    assert_eq!(tab.lock.acquired.get(), 0);
}

const ROTATED_AGAIN: &str =
    r#"{"access_token":"at-3","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-3"}"#;
const SECOND_REFRESH_FORM: &[(&str, &str)] = &[
    ("grant_type", "refresh_token"),
    ("refresh_token", "rt-2"),
    ("client_id", "spa"),
];

impl Tab {
    /// The token `after_rejection` hands back for a rejected `token`.
    fn reject(&self, token: &str) -> String {
        let rejected = AccessToken::new(token.into());
        self.run(async |r| r.after_rejection(&rejected).await)
            .unwrap()
            .secret()
            .to_owned()
    }
}

#[test]
fn a_replacement_rejected_on_its_own_retry_is_not_refreshed_again() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), HOUR_MS / 2));
    // One refresh in all: the fake server fails on a second request.
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.reject("at-1"), "at-2");
    // The retry with at-2 was rejected too.
    tab.run(async |r| r.rejected_at_once(&AccessToken::new("at-2".into())));
    let refused_at = tab.platform.now_ms.get();
    // Any number of later calls within the hold: the API's answer is
    // returned as is (the same token comes back).
    for _ in 0..5 {
        tab.platform.now_ms.set(tab.platform.now_ms.get() + 11_000);
        assert_eq!(tab.reject("at-2"), "at-2");
    }
    tab.platform.now_ms.set(refused_at + REFUSAL_HOLD_MS - 1);
    assert_eq!(tab.reject("at-2"), "at-2");
    assert_eq!(tab.lock.acquired.get(), 1);
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
    // The other tabs are told which set (not which token) it was.
    let held = tab.session.tokens().unwrap();
    assert_eq!(held.rotation, 1);
    let told = SessionMessage::Refused {
        login_at_ms: held.login_at_ms,
        rotation: 1,
    };
    assert_eq!(tab.sent().last(), Some(&told));
    // After the hold, a rejection is one refresh again (a token that did
    // work elsewhere and died since is replaced before it goes stale).
    tab.platform
        .expect_post(TOKEN_URL, SECOND_REFRESH_FORM, 200, ROTATED_AGAIN);
    tab.platform.now_ms.set(refused_at + REFUSAL_HOLD_MS);
    assert_eq!(tab.reject("at-2"), "at-3");
    assert_eq!(tab.lock.acquired.get(), 2);
}

#[test]
fn a_set_another_tab_found_refused_at_once_is_not_refreshed_here() {
    let set = expiring("at-2", Some("rt-2"), HOUR_MS / 2);
    let tab = Tab::with(set.clone());
    // A refusal of another set of the session says nothing of this one.
    let others = [
        (set.login_at_ms, set.rotation + 1),
        (set.login_at_ms + 1, set.rotation),
    ];
    for (login_at_ms, rotation) in others {
        let other = SessionMessage::Refused {
            login_at_ms,
            rotation,
        };
        tab.session.receive(other, NOW);
    }
    assert!(!tab.session.refuses(&set.access_token, NOW));
    let this = SessionMessage::Refused {
        login_at_ms: set.login_at_ms,
        rotation: set.rotation,
    };
    tab.session.receive(this, NOW);
    // The API's refusal of at-2 is answered as is: no lock, no request
    // (the fake server fails on any).
    assert_eq!(tab.reject("at-2"), "at-2");
    assert_eq!(tab.lock.acquired.get(), 0);
    assert!(tab.sent().is_empty());
}

#[test]
fn a_replacement_the_api_accepted_is_refreshed_when_it_dies_later() {
    // Reactive expiry round after round (tokens shorter-lived than the
    // server says): each rejection of a token that worked costs one refresh.
    let tab = Tab::with(expiring("at-1", Some("rt-1"), HOUR_MS / 2));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    tab.platform
        .expect_post(TOKEN_URL, SECOND_REFRESH_FORM, 200, ROTATED_AGAIN);
    assert_eq!(tab.reject("at-1"), "at-2");
    tab.platform.now_ms.set(NOW + 4_000);
    assert_eq!(tab.reject("at-2"), "at-3");
    assert_eq!(tab.lock.acquired.get(), 2);
}

#[test]
fn the_refusal_is_of_that_token_only() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), HOUR_MS / 2));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    tab.platform
        .expect_post(TOKEN_URL, SECOND_REFRESH_FORM, 200, ROTATED_AGAIN);
    assert_eq!(tab.reject("at-1"), "at-2");
    // An older token's refusal says nothing about the one now held.
    tab.run(async |r| r.rejected_at_once(&AccessToken::new("at-1".into())));
    assert_eq!(tab.reject("at-2"), "at-3");
    // A stale call's token that was refused is answered with the held one.
    tab.run(async |r| r.rejected_at_once(&AccessToken::new("at-2".into())));
    assert_eq!(tab.reject("at-2"), "at-3");
    assert_eq!(tab.lock.acquired.get(), 2);
}

#[test]
fn invalid_grant_ends_the_session_everywhere() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    tab.platform.expect_post(
        TOKEN_URL,
        REFRESH_FORM,
        400,
        r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
    );
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.in_memory(), None);
    // The other tabs end this login's session, not a later login's.
    let login_at_ms = expiring("at-1", Some("rt-1"), 10_000).login_at_ms;
    assert_eq!(
        tab.sent(),
        vec![SessionMessage::Ended {
            reason: EndReason::Expired,
            login_at_ms: Some(login_at_ms),
        }]
    );
    assert_eq!(tab.heard(), vec!["ended Expired"]);
    // The refused set is retired: its access token revoked, its key deleted.
    assert_eq!(tab.revoked(), vec!["at-1"]);
}

/// A refresh request during which a sibling tab without the lock rotates
/// first, so the server answers `invalid_grant`.
struct SiblingRotatesFirst<'a> {
    store: &'a MemorySessionStore,
    sibling: TokenSet,
}

impl RefreshTransport for SiblingRotatesFirst<'_> {
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        assert_eq!(
            request.base.refresh_token.as_ref().unwrap().secret(),
            "rt-1"
        );
        self.store.save_tokens(&self.sibling).await?;
        Ok(RefreshAnswer::Server(HttpReply {
            status: 400,
            body: Ok(crate::core::RawTokenResponse {
                error: Some("invalid_grant".into()),
                ..Default::default()
            }),
            retry_after_s: None,
            dpop_nonce: None,
            oauth_error: None,
        }))
    }
}

#[test]
fn invalid_grant_after_a_sibling_rotated_adopts_the_siblings_tokens() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    let transport = SiblingRotatesFirst {
        store: &tab.platform.store,
        sibling: tokens("at-9", Some("rt-9"), NOW, HOUR_MS),
    };
    let token = tab
        .run_with(&transport, async |r| r.access_token().await)
        .unwrap();
    assert_eq!(token.secret(), "at-9");
    assert_eq!(tab.in_memory().as_deref(), Some("at-9"));
    assert!(tab.sent().is_empty(), "no sign-out broadcast");
    assert_eq!(tab.heard(), vec!["tokens Sync at-9"]);
    assert!(
        tab.revoked().is_empty(),
        "the session goes on: nothing retired"
    );
}

#[test]
fn a_server_error_keeps_every_token() {
    let before = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::with(before.clone());
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 500, r#"{"error":"server_error"}"#);
    assert_eq!(tab.access_token().unwrap_err().code(), "token_error");
    assert_eq!(tab.stored(), Some(before.clone()));
    assert_eq!(tab.session.tokens(), Some(before));
    assert!(tab.sent().is_empty());
    assert!(tab.heard().is_empty());
}

#[test]
fn a_retry_after_is_honoured_without_requests_then_the_refresh_goes_out() {
    let before = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::with(before.clone());
    tab.platform.expect_post_retry_after(
        TOKEN_URL,
        REFRESH_FORM,
        503,
        r#"{"error":"temporarily_unavailable"}"#,
        30,
    );
    let first = tab.access_token().unwrap_err();
    assert_eq!(
        (first.code(), first.status(), first.retry_after_s()),
        ("token_error", Some(503), Some(30))
    );
    // Within the 30 s: the same error, and no request (the fake server
    // fails the test on any request it was not told to expect).
    tab.platform.now_ms.set(NOW + 29_999);
    assert_eq!(tab.access_token().unwrap_err(), first);
    assert_eq!(tab.stored(), Some(before.clone()));
    assert_eq!(tab.session.tokens(), Some(before));
    // Once it has passed, the next call refreshes.
    refreshes_at(&tab, NOW + 30_000);
}

#[test]
fn a_retry_after_is_told_to_the_other_tabs() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform.expect_post_retry_after(
        TOKEN_URL,
        REFRESH_FORM,
        503,
        r#"{"error":"temporarily_unavailable"}"#,
        30,
    );
    tab.access_token().unwrap_err();
    assert_eq!(
        tab.sent(),
        vec![SessionMessage::BackOff {
            until: NOW + 30_000,
            status: 503,
            error: "temporarily_unavailable".into(),
            seconds: 30,
        }]
    );
}

/// The message a tab sends after a 503 with `Retry-After: 30` at `NOW`.
fn back_off_for_30_s(error: &str) -> SessionMessage {
    SessionMessage::BackOff {
        until: NOW + 30_000,
        status: 503,
        error: error.into(),
        seconds: 30,
    }
}

#[test]
fn a_tab_told_of_a_retry_after_sends_nothing_before_it_passes() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.session
        .receive(back_off_for_30_s("temporarily_unavailable"), NOW);
    // No request (the fake server fails the test on any it was not told
    // to expect): the other tab's answer.
    let error = tab.access_token().unwrap_err();
    assert_eq!(
        (error.code(), error.status(), error.retry_after_s()),
        ("token_error", Some(503), Some(30))
    );
    assert_eq!(error.server_error(), Some("temporarily_unavailable"));
    refreshes_at(&tab, NOW + 30_000);
}

/// At `now_ms`, the next call refreshes (the fake server expects it).
fn refreshes_at(tab: &Tab, now_ms: u64) {
    tab.platform.now_ms.set(now_ms);
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
}

#[test]
fn a_told_retry_after_is_capped_never_shortens_one_held_and_never_ends_a_session() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    // Capped like a tab's own.
    tab.session.receive(
        SessionMessage::BackOff {
            until: u64::MAX,
            status: 429,
            error: String::new(),
            seconds: u64::MAX,
        },
        NOW,
    );
    tab.platform.now_ms.set(NOW + MAX_RETRY_AFTER_MS - 1);
    assert_eq!(tab.access_token().unwrap_err().status(), Some(429));
    // An earlier one does not shorten it.
    tab.session.receive(back_off_for_30_s(""), NOW);
    assert_eq!(tab.access_token().unwrap_err().status(), Some(429));
    tab.platform.now_ms.set(NOW + MAX_RETRY_AFTER_MS);
    // Told as `invalid_grant`: ignored (the session goes on, and refreshes).
    tab.session.receive(
        SessionMessage::BackOff {
            until: NOW + MAX_RETRY_AFTER_MS + 30_000,
            status: 400,
            error: "invalid_grant".into(),
            seconds: 30,
        },
        NOW + MAX_RETRY_AFTER_MS,
    );
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
}

#[test]
fn an_absurd_retry_after_is_capped() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform
        .expect_post_retry_after(TOKEN_URL, REFRESH_FORM, 429, "{}", 86_400);
    assert_eq!(
        tab.access_token().unwrap_err().retry_after_s(),
        Some(86_400)
    );
    tab.platform.now_ms.set(NOW + MAX_RETRY_AFTER_MS - 1);
    assert_eq!(tab.access_token().unwrap_err().status(), Some(429));
    tab.platform.now_ms.set(NOW + MAX_RETRY_AFTER_MS);
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
}

#[test]
fn a_malformed_success_keeps_every_token() {
    let before = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::with(before.clone());
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, r#"{"token_type":"Bearer"}"#);
    assert_eq!(
        tab.access_token().unwrap_err().code(),
        "malformed_token_response"
    );
    assert_eq!(tab.stored(), Some(before));
}

#[test]
fn a_transient_failure_of_a_proactive_refresh_still_uses_a_valid_token() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    tab.platform
        .expect_post_network_error(TOKEN_URL, REFRESH_FORM);
    assert_eq!(tab.access_token().unwrap(), "at-1");
    // The next call tries again.
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
}

#[test]
fn a_transient_failure_with_an_expired_token_is_reported() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform
        .expect_post_network_error(TOKEN_URL, REFRESH_FORM);
    assert_eq!(tab.access_token().unwrap_err().code(), "network_error");
    assert!(tab.session.tokens().is_some());
}

#[test]
fn a_hanging_refresh_times_out_and_releases_the_lock() {
    let before = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::with(before.clone());
    tab.platform.deadlines_pass.set(true);
    tab.platform.expect_post_hang(TOKEN_URL, REFRESH_FORM);
    assert_eq!(tab.access_token().unwrap_err(), Error::RefreshTimeout);
    assert_eq!(tab.stored(), Some(before));
}

/// A lock some other tab never gives up.
struct LockNeverGranted;

impl SessionLock for LockNeverGranted {
    type Guard = ();
    async fn acquire(&self) -> Result<(), Error> {
        std::future::pending().await
    }
}

#[test]
fn waiting_for_the_lock_is_bounded() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform.deadlines_pass.set(true);
    let grant = tab.grant();
    let background = tab.background(&tab.platform.store, &LockNeverGranted, &grant, || NoCheck);
    let refresher = tab.refresher(&tab.platform.store, &LockNeverGranted, &grant, &background);
    assert_eq!(
        background.tasks.run(refresher.access_token()).unwrap_err(),
        Error::LockUnavailable
    );
}

/// A store whose reads, or whose writes, never answer (a wedged
/// IndexedDB), or whose first `clears` clears do not; everything else
/// works.
struct Stalled {
    reads: bool,
    writes: bool,
    clears: Cell<u8>,
    store: MemorySessionStore,
}

impl Stalled {
    fn new(reads: bool) -> Self {
        Stalled {
            reads,
            writes: !reads,
            clears: Cell::new(0),
            store: MemorySessionStore::default(),
        }
    }

    fn clears(clears: u8) -> Self {
        Stalled {
            reads: false,
            writes: false,
            clears: Cell::new(clears),
            store: MemorySessionStore::default(),
        }
    }
}

impl SessionStore for Stalled {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        if self.reads {
            std::future::pending::<()>().await;
        }
        self.store.load_tokens().await
    }
    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        if self.writes {
            std::future::pending::<()>().await;
        }
        self.store.save_tokens(tokens).await
    }
    async fn clear_tokens(&self, end: EndRecord) -> Result<(), Error> {
        if let Some(left) = self.clears.get().checked_sub(1) {
            self.clears.set(left);
            std::future::pending::<()>().await;
        }
        self.store.clear_tokens(end).await
    }
    async fn end_record(&self) -> Option<EndRecord> {
        self.store.end_record().await
    }
    async fn put_transaction(&self, t: crate::core::PendingTransaction) -> Result<(), Error> {
        self.store.put_transaction(t).await
    }
    async fn take_transaction(&self) -> Result<Option<crate::core::PendingTransaction>, Error> {
        self.store.take_transaction().await
    }
}

#[test]
fn a_store_read_that_never_answers_fails_the_refresh_and_lets_the_lock_go() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform.deadlines_pass.set(true);
    let store = Stalled::new(true);
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    let error = background.tasks.run(refresher.access_token()).unwrap_err();
    assert_eq!(error.code(), "storage_error");
    assert!(!tab.lock.held.get(), "the lock was let go");
    assert_eq!(tab.session.tokens().unwrap().access_token.secret(), "at-1");
    assert!(tab.heard().is_empty(), "nothing ended, nothing sent");
}

#[test]
fn a_store_write_that_never_answers_keeps_the_rotation_in_memory_and_broadcasts_it() {
    let before = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::with(before.clone());
    // Deadlines pass: the write's bound (and the grace after it) is over at once.
    tab.platform.deadlines_pass.set(true);
    let store = Stalled::new(false);
    block_on(store.store.save_tokens(&before)).unwrap();
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    let token = background.tasks.run(refresher.access_token()).unwrap();
    assert_eq!(token.secret(), "at-2");
    assert_eq!(
        tab.heard(),
        vec!["persist failed storage_error", "tokens Refresh at-2"]
    );
    assert_eq!(tab.sent().len(), 1, "the other tabs get the set");
    assert!(!tab.lock.held.get(), "the lock was let go");
}

/// An AT Protocol client's transport whose account check never answers
/// (a PLC directory that hangs); its refresh must never be sent.
struct AccountCheckHangs<'a>(RefreshGrant<'a, FakePlatform, FakeDpopKeys>);

impl RefreshTransport for AccountCheckHangs<'_> {
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        self.0.refresh(request).await
    }

    fn checks_accounts(&self) -> bool {
        true
    }

    async fn check_account(&self, _account: &crate::core::atproto::Account) -> Result<(), Error> {
        std::future::pending().await
    }
}

#[test]
fn an_account_check_that_never_answers_is_refresh_timeout_and_sends_nothing() {
    let mut held = expiring("at-1", Some("rt-1"), 0);
    held.atproto = Some(Box::new(crate::core::atproto_login::tests::account()));
    let tab = Tab::with(held.clone());
    // Deadlines pass: the check's bound is over at once. The platform is
    // scripted with no request: a refresh sent would fail the test.
    tab.platform.deadlines_pass.set(true);
    let transport = AccountCheckHangs(tab.grant());
    let background = tab.background(&tab.platform.store, &tab.lock, &transport, || NoCheck);
    let refresher = tab.refresher(&tab.platform.store, &tab.lock, &transport, &background);
    let error = background.tasks.run(refresher.access_token()).unwrap_err();
    assert_eq!(error, Error::RefreshTimeout);
    assert!(!tab.lock.held.get(), "the lock was let go");
    assert_eq!(tab.stored(), Some(held), "the session is kept");
    assert!(tab.heard().is_empty(), "nothing ended, nothing adopted");
}

#[test]
fn an_expired_token_without_refresh_token_ends_the_session() {
    let tab = Tab::with(expiring("at-1", None, 0));
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.heard(), vec!["ended Expired"]);
    assert_eq!(tab.revoked(), vec!["at-1"], "the ended set is retired");
}

#[test]
fn a_valid_token_without_refresh_token_is_used_while_it_lasts() {
    let tab = Tab::with(expiring("at-1", None, 10_000));
    assert_eq!(tab.access_token().unwrap(), "at-1");
    assert!(tab.stored().is_some());
}

#[test]
fn a_session_cleared_by_another_tab_is_never_refreshed() {
    let tab = Tab::new(Some(expiring("at-1", Some("rt-1"), 0)), None);
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
    assert_eq!(tab.in_memory(), None);
    assert!(tab.sent().is_empty(), "whoever cleared it told the others");
    assert!(tab.revoked().is_empty(), "and retired its set");
    assert_eq!(
        tab.heard(),
        vec!["ended Expired"],
        "no reason kept: an expiry"
    );
}

#[test]
fn a_session_another_tab_signed_out_reads_as_signed_out_before_its_message_arrives() {
    let tab = Tab::new(Some(expiring("at-1", Some("rt-1"), 0)), None);
    let signed_out = EndRecord::new(EndReason::SignedOut, NOW);
    block_on(tab.platform.store.clear_tokens(signed_out)).unwrap();
    assert_eq!(tab.access_token().unwrap_err(), Error::NotAuthenticated);
    assert_eq!(tab.in_memory(), None);
    assert_eq!(tab.heard(), vec!["ended SignedOut"]);
    assert!(tab.sent().is_empty(), "whoever signed out told the others");
}

#[test]
fn a_later_login_the_store_lost_to_an_earlier_sign_out_is_refreshed_and_written_back() {
    // Another tab's sign-out, called before this login, cleared the store
    // just after the login's write (its first clear is made without the
    // lock): every tab holds the login, the store does not.
    let login = expiring("at-1", Some("rt-1"), 10_000);
    let tab = Tab::new(Some(login.clone()), None);
    let earlier = EndRecord::new(EndReason::SignedOut, login.login_at_ms - 1);
    block_on(tab.platform.store.clear_tokens(earlier)).unwrap();
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
    let stored = tab.stored().expect("written back");
    assert_eq!(stored.refresh_token.as_ref().unwrap().secret(), "rt-2");
    assert_eq!(stored.login_at_ms, login.login_at_ms);
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
}

#[test]
fn an_end_kept_without_its_logins_ends_the_session_held_here() {
    // An earlier latchkey's record, or a clear whose end record was lost:
    // the store cannot say the login was not ended.
    let tab = Tab::new(Some(expiring("at-1", Some("rt-1"), 0)), None);
    let unnamed = EndRecord {
        reason: EndReason::SignedOut,
        until_ms: None,
    };
    block_on(tab.platform.store.clear_tokens(unnamed)).unwrap();
    assert_eq!(tab.access_token().unwrap_err(), Error::NotAuthenticated);
    assert_eq!(tab.in_memory(), None);
}

#[test]
fn a_session_another_tab_found_expired_reads_as_expired() {
    let tab = Tab::new(Some(expiring("at-1", Some("rt-1"), 0)), None);
    let expired = EndRecord::new(EndReason::Expired, NOW);
    block_on(tab.platform.store.clear_tokens(expired)).unwrap();
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
    assert_eq!(tab.heard(), vec!["ended Expired"]);
}

#[test]
fn a_sign_out_and_an_expiry_keep_why_the_store_was_cleared() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 400, r#"{"error":"invalid_grant"}"#);
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
    let store = &tab.platform.store;
    assert_eq!(
        block_on(store.end_record()).map(|end| end.reason),
        Some(EndReason::Expired)
    );
    block_on(store.save_tokens(&expiring("at-2", Some("rt-2"), HOUR_MS))).unwrap();
    tab.run(async |r| r.sign_out().await);
    assert_eq!(
        block_on(store.end_record()).map(|end| end.reason),
        Some(EndReason::SignedOut)
    );
}

#[test]
fn leeway_is_capped_at_half_the_lifetime() {
    // A 20 s token with the default 30 s leeway: not refreshed on every use.
    let set = tokens("at-1", Some("rt-1"), NOW - 5_000, 20_000);
    assert!(!needs_refresh(&set, NOW, 30_000));
    assert!(needs_refresh(&set, NOW + 5_000, 30_000));
    // A long-lived token gets the full leeway.
    let long = tokens("at-1", Some("rt-1"), NOW - HOUR_MS, HOUR_MS + 29_000);
    assert!(needs_refresh(&long, NOW, 30_000));
}

#[test]
fn a_set_without_expiry_is_only_refreshed_when_rejected() {
    let mut set = expiring("at-1", Some("rt-1"), 0);
    set.expires_at_ms = None;
    assert!(!needs_refresh(&set, NOW, 30_000));
}

#[test]
fn a_failed_write_is_reported_and_the_new_tokens_still_used() {
    let before = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::new(Some(before.clone()), None);
    let store = FullStore(MemorySessionStore::default());
    block_on(store.0.save_tokens(&before)).unwrap();
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    assert_eq!(
        background
            .tasks
            .run(refresher.access_token())
            .unwrap()
            .secret(),
        "at-2"
    );
    assert_eq!(
        tab.heard(),
        vec!["persist failed storage_error", "tokens Refresh at-2"]
    );
    assert_eq!(tab.sent().len(), 1, "the other tabs still get the new set");

    // The next refresh starts from this tab's rt-2, not the stored (spent) rt-1.
    tab.platform.now_ms.set(NOW + HOUR_MS);
    tab.platform.expect_post(
        TOKEN_URL,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-2"),
            ("client_id", "spa"),
        ],
        200,
        r#"{"access_token":"at-3","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-3"}"#,
    );
    assert_eq!(
        background
            .tasks
            .run(refresher.access_token())
            .unwrap()
            .secret(),
        "at-3"
    );
}

#[test]
fn a_login_that_could_not_be_stored_refreshes_from_memory_not_as_signed_out() {
    let login = expiring("at-1", Some("rt-1"), 0);
    let tab = Tab::new(Some(login), None);
    tab.session.persist_failed(&Error::Storage {
        reason: "QuotaExceededError".into(),
    });
    let store = FullStore(MemorySessionStore::default());
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    assert_eq!(
        background
            .tasks
            .run(refresher.access_token())
            .unwrap()
            .secret(),
        "at-2"
    );
    assert_eq!(
        tab.heard(),
        vec![
            "persist failed storage_error",
            "persist failed storage_error",
            "tokens Refresh at-2"
        ]
    );
}

#[test]
fn broadcasts_are_adopted_when_newer_and_ignored_when_older() {
    let tab = Tab::new(Some(tokens("at-2", Some("rt-2"), NOW, HOUR_MS)), None);
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-1", Some("rt-1"), NOW - 1, HOUR_MS),
            unsaved: false,
        },
        NOW,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-2"));
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-3", Some("rt-3"), NOW + 1, HOUR_MS),
            unsaved: false,
        },
        NOW,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-3"));
    // The same set twice is one change.
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-3", Some("rt-3"), NOW + 1, HOUR_MS),
            unsaved: false,
        },
        NOW,
    );
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::Expired,
            login_at_ms: None,
        },
        NOW,
    );
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::Expired,
            login_at_ms: None,
        },
        NOW,
    );
    assert_eq!(tab.heard(), vec!["tokens Sync at-3", "ended Expired"]);
}

#[test]
fn session_messages_round_trip_through_serde() {
    let message = SessionMessage::Tokens {
        tokens: tokens("at-1", Some("rt-1"), NOW, HOUR_MS),
        unsaved: false,
    };
    let json = serde_json::to_string(&message).unwrap();
    assert!(json.starts_with(r#"{"type":"tokens","tokens":{"#), "{json}");
    assert_eq!(
        serde_json::from_str::<SessionMessage>(&json).unwrap(),
        message
    );
    let ended = serde_json::to_string(&SessionMessage::Ended {
        reason: EndReason::SignedOut,
        login_at_ms: None,
    })
    .unwrap();
    assert_eq!(ended, r#"{"type":"ended","reason":"signedOut"}"#);
}

#[test]
fn sign_out_clears_the_store_tells_every_tab_and_returns_the_latest_set() {
    // Another tab rotated: the store holds a newer set than this tab's memory.
    let tab = Tab::new(
        Some(expiring("at-1", Some("rt-1"), 10_000)),
        Some(tokens("at-2", Some("rt-2"), NOW, HOUR_MS)),
    );
    let latest = tab.run(async |r| r.sign_out().await).expect("a session");
    assert_eq!(
        latest.access_token.secret(),
        "at-2",
        "the set to revoke is the latest"
    );
    assert_eq!(tab.lock.acquired.get(), 1, "under the lock");
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.in_memory(), None);
    assert_eq!(
        tab.sent(),
        vec![SessionMessage::Ended {
            reason: EndReason::SignedOut,
            login_at_ms: Some(NOW),
        }]
    );
    assert_eq!(tab.heard(), vec!["ended SignedOut"]);
}

#[test]
fn sign_out_without_a_stored_set_uses_the_one_in_memory() {
    let tab = Tab::new(Some(tokens("at-1", Some("rt-1"), NOW, HOUR_MS)), None);
    let latest = tab.run(async |r| r.sign_out().await);
    assert_eq!(
        latest
            .map(|t| t.access_token.secret().to_owned())
            .as_deref(),
        Some("at-1")
    );
    assert_eq!(tab.heard(), vec!["ended SignedOut"]);
}

#[test]
fn sign_out_is_not_stopped_by_a_lock_that_never_comes() {
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW, HOUR_MS));
    tab.platform.deadlines_pass.set(true);
    let grant = tab.grant();
    let background = tab.background(&tab.platform.store, &LockNeverGranted, &grant, || NoCheck);
    let refresher = tab.refresher(&tab.platform.store, &LockNeverGranted, &grant, &background);
    let latest = background.tasks.run(refresher.sign_out());
    assert!(latest.is_some());
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.heard(), vec!["ended SignedOut"]);
}

#[test]
fn a_sign_out_clears_again_when_the_store_did_not_answer_in_time() {
    // The clear at once and the first under the lock never finish: the
    // set would be there for a reload to adopt.
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW, HOUR_MS));
    tab.platform.deadlines_pass.set(true);
    let store = Stalled::clears(2);
    let stored = tokens("at-2", Some("rt-2"), NOW, HOUR_MS);
    block_on(store.store.save_tokens(&stored)).unwrap();
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    let latest = background.tasks.run(refresher.sign_out()).expect("a set");
    assert_eq!(latest.access_token.secret(), "at-2");
    assert_eq!(store.clears.get(), 0, "both stalled clears were tried");
    assert_eq!(block_on(store.store.load_tokens()).unwrap(), None);
    assert!(!tab.lock.held.get(), "the lock was let go");
}

/// `set` as logged in at `login_at_ms`.
fn logged_in_at(set: TokenSet, login_at_ms: u64) -> TokenSet {
    TokenSet { login_at_ms, ..set }
}

#[test]
fn an_expiry_of_an_older_session_leaves_a_later_login_alone() {
    let later = logged_in_at(tokens("at-9", Some("rt-9"), NOW - 5, HOUR_MS), NOW - 5);
    let tab = Tab::with(later);
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::Expired,
            login_at_ms: Some(NOW - HOUR_MS),
        },
        NOW,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-9"));
    assert_eq!(tab.heard(), Vec::<String>::new());
}

#[test]
fn after_an_older_session_expired_a_login_completed_before_the_news_is_adopted() {
    // Another tab logged in again while this session's refresh was being
    // refused; the expiry's message arrives first.
    let older = logged_in_at(
        tokens("at-1", Some("rt-1"), NOW - 5, HOUR_MS),
        NOW - HOUR_MS,
    );
    let tab = Tab::with(older);
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::Expired,
            login_at_ms: Some(NOW - HOUR_MS),
        },
        NOW,
    );
    assert_eq!(tab.in_memory(), None);
    let later = logged_in_at(
        tokens("at-9", Some("rt-9"), NOW - 60_000, HOUR_MS),
        NOW - 60_000,
    );
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: later,
            unsaved: false,
        },
        NOW + 1,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-9"));
}

#[test]
fn before_any_end_a_sibling_s_set_from_before_logins_were_timed_is_adopted() {
    // Records written before `login_at_ms` existed read as login 0: nothing
    // has ended yet, so nothing is from an ended login.
    let session = Session::new(None);
    let old = logged_in_at(tokens("at-1", Some("rt-1"), NOW - 5, HOUR_MS), 0);
    assert!(!session.has_ended(&old));
    assert!(session.adopt(old.clone(), TokenSource::Sync));
    session.end(EndReason::SignedOut, NOW);
    assert!(session.has_ended(&old));
}

#[test]
fn a_sign_out_ends_every_login_until_it_arrived() {
    let older = logged_in_at(
        tokens("at-1", Some("rt-1"), NOW - 5, HOUR_MS),
        NOW - HOUR_MS,
    );
    let tab = Tab::with(older);
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::SignedOut,
            login_at_ms: None,
        },
        NOW,
    );
    let before = logged_in_at(
        tokens("at-9", Some("rt-9"), NOW - 60_000, HOUR_MS),
        NOW - 60_000,
    );
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: before,
            unsaved: false,
        },
        NOW + 1,
    );
    assert_eq!(tab.in_memory(), None);
}

#[test]
fn a_broadcast_set_issued_before_a_sign_out_does_not_bring_the_session_back() {
    // A sibling's refresh finished just before another tab signed out, but
    // its message arrives after the sign-out's.
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW - 5, HOUR_MS));
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::SignedOut,
            login_at_ms: None,
        },
        NOW,
    );
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-2", Some("rt-2"), NOW - 1, HOUR_MS),
            unsaved: false,
        },
        NOW + 1,
    );
    assert_eq!(tab.in_memory(), None);
    // A later login in another tab is adopted.
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-3", Some("rt-3"), NOW + 10, HOUR_MS),
            unsaved: false,
        },
        NOW + 10,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-3"));
    assert_eq!(tab.heard(), vec!["ended SignedOut", "tokens Sync at-3"]);
}

/// A refresh request during which the user signs out in this tab (no shared
/// lock serialises them, as in a browser without Web Locks).
struct SignOutMidRequest<'a> {
    session: &'a Session,
    store: &'a MemorySessionStore,
}

impl RefreshTransport for SignOutMidRequest<'_> {
    async fn refresh(&self, _request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        self.store
            .clear_tokens(EndRecord::new(EndReason::SignedOut, NOW))
            .await?;
        self.session.end(EndReason::SignedOut, NOW);
        Ok(RefreshAnswer::Server(HttpReply {
            status: 200,
            body: Ok(serde_json::from_str(ROTATED).unwrap()),
            retry_after_s: None,
            dpop_nonce: None,
            oauth_error: None,
        }))
    }
}

#[test]
fn a_refresh_that_outlives_a_sign_out_persists_nothing() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    let transport = SignOutMidRequest {
        session: &tab.session,
        store: &tab.platform.store,
    };
    let result = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(result.unwrap_err(), Error::NotAuthenticated);
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.in_memory(), None);
    assert!(tab.sent().is_empty(), "nothing broadcast: {:?}", tab.sent());
    assert_eq!(tab.heard(), vec!["ended SignedOut"]);
}

/// An ID-token check with a fixed verdict.
struct Verdict(Result<(), Error>);

impl CheckRefreshed for Verdict {
    async fn check(&self, _previous: &TokenSet, fresh: &TokenSet) -> Result<(), Error> {
        assert_eq!(fresh.id_token.as_ref().unwrap().secret(), "id-2");
        self.0.clone()
    }
}

const ROTATED_WITH_ID_TOKEN: &str = r#"{"access_token":"at-2","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-2","id_token":"id-2"}"#;

/// A tab holding a verified ID token `id-1` whose refresh brings `id-2`,
/// checked by `verdict`: the call's outcome.
fn refresh_with_id_token(tab: &Tab, verdict: Result<(), Error>) -> Result<AccessToken, Error> {
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED_WITH_ID_TOKEN);
    let grant = tab.grant();
    let store = &tab.platform.store;
    let background = tab.background(store, &tab.lock, &grant, || Verdict(verdict.clone()));
    let refresher = Refresher {
        session: &tab.session,
        platform: &tab.platform,
        store,
        lock: &tab.lock,
        broadcast: &tab.broadcast,
        transport: &grant,
        policy: POLICY,
        check: Verdict(Ok(())),
        background: &background,
    };
    let out = background.tasks.run(refresher.access_token());
    assert!(!tab.lock.held.get());
    out
}

fn with_id_token(mut set: TokenSet, id_token: &str) -> TokenSet {
    set.id_token = Some(crate::core::IdToken::new(id_token.into()));
    set
}

fn id_token_of(set: Option<TokenSet>) -> Option<String> {
    set?.id_token.map(|t| t.secret().to_owned())
}

#[test]
fn a_refreshed_id_token_that_verifies_replaces_the_previous_one_after_the_save() {
    let tab = Tab::with(with_id_token(expiring("at-1", Some("rt-1"), 0), "id-1"));
    assert_eq!(
        refresh_with_id_token(&tab, Ok(())).unwrap().secret(),
        "at-2"
    );
    assert_eq!(id_token_of(tab.stored()).as_deref(), Some("id-2"));
    assert_eq!(id_token_of(tab.session.tokens()).as_deref(), Some("id-2"));
    // First the set with the previous ID token, then the verified one.
    let sent: Vec<_> = tab
        .sent()
        .into_iter()
        .map(|m| match m {
            SessionMessage::Tokens {
                tokens,
                unsaved: false,
            } => id_token_of(Some(tokens)).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sent, vec!["id-1", "id-2"]);
    // The app hears the new access token at once, then that the new ID
    // token is verified: `getUser()` says something new only then.
    assert_eq!(
        tab.heard(),
        vec!["tokens Refresh at-2", "user"],
        "the set, then its verified ID token"
    );
}

#[test]
fn another_tabs_verified_id_token_is_heard_and_the_same_set_again_is_not() {
    let tab = Tab::with(with_id_token(expiring("at-1", Some("rt-1"), 0), "id-1"));
    let fresh = expiring("at-2", Some("rt-2"), 600);
    let sync = |set: TokenSet| {
        tab.session.receive(
            SessionMessage::Tokens {
                tokens: set,
                unsaved: false,
            },
            NOW,
        )
    };
    sync(with_id_token(fresh.clone(), "id-1"));
    sync(with_id_token(fresh.clone(), "id-2"));
    sync(with_id_token(fresh, "id-2"));
    assert_eq!(id_token_of(tab.session.tokens()).as_deref(), Some("id-2"));
    assert_eq!(tab.heard(), vec!["tokens Sync at-2", "user"]);
}

#[test]
fn keys_out_of_reach_keep_the_rotated_tokens_and_the_previous_id_token() {
    let tab = Tab::with(with_id_token(expiring("at-1", Some("rt-1"), 0), "id-1"));
    let outage = Error::JwksUnavailable {
        reason: "HTTP 503".into(),
    };
    assert_eq!(
        refresh_with_id_token(&tab, Err(outage)).unwrap().secret(),
        "at-2"
    );
    let stored = tab.stored().unwrap();
    assert_eq!(
        stored.refresh_token.unwrap().secret(),
        "rt-2",
        "the rotated token is the session"
    );
    assert_eq!(id_token_of(tab.stored()).as_deref(), Some("id-1"));
    assert_eq!(id_token_of(tab.session.tokens()).as_deref(), Some("id-1"));
    assert!(tab.revoked().is_empty());
}

#[test]
fn a_clock_check_that_fails_is_not_an_identity_failure() {
    let tab = Tab::with(with_id_token(expiring("at-1", Some("rt-1"), 0), "id-1"));
    let result = refresh_with_id_token(&tab, Err(Error::IdTokenExpired));
    assert_eq!(result.unwrap().secret(), "at-2");
    assert_eq!(tab.stored().unwrap().access_token.secret(), "at-2");
}

#[test]
fn an_id_token_naming_someone_else_ends_the_session_and_revokes_the_new_tokens() {
    let tab = Tab::with(with_id_token(expiring("at-1", Some("rt-1"), 0), "id-1"));
    let result = refresh_with_id_token(&tab, Err(Error::IdTokenSubMismatch));
    assert_eq!(result.unwrap_err(), Error::IdTokenSubMismatch);
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.in_memory(), None);
    assert_eq!(
        tab.revoked(),
        vec!["at-2"],
        "the new refresh token is not leaked"
    );
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2", "ended Expired"]);
}

#[test]
fn without_openid_no_id_token_is_kept() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED_WITH_ID_TOKEN);
    assert_eq!(tab.access_token().unwrap(), "at-2");
    assert_eq!(tab.stored().unwrap().id_token, None);
}

/// A refresh request answered with `ROTATED` after `yields` turns of the
/// executor, with `during` run first (what happens elsewhere while the
/// request is out). Records whether the lock was still held when the answer
/// came.
struct SlowAnswer<'a> {
    yields: usize,
    during: Box<dyn Fn() + 'a>,
    lock: &'a FakeLock,
    lock_held_at_answer: std::cell::Cell<Option<bool>>,
}

impl<'a> SlowAnswer<'a> {
    fn new(tab: &'a Tab, yields: usize, during: impl Fn() + 'a) -> Self {
        SlowAnswer {
            yields,
            during: Box::new(during),
            lock: &tab.lock,
            lock_held_at_answer: Default::default(),
        }
    }
}

impl RefreshTransport for SlowAnswer<'_> {
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        assert_eq!(
            request.base.refresh_token.as_ref().unwrap().secret(),
            "rt-1"
        );
        (self.during)();
        for _ in 0..self.yields {
            crate::core::fakes::yield_now().await;
        }
        self.lock_held_at_answer.set(Some(self.lock.held.get()));
        Ok(RefreshAnswer::Server(HttpReply {
            status: 200,
            body: Ok(serde_json::from_str(ROTATED).unwrap()),
            retry_after_s: None,
            dpop_nonce: None,
            oauth_error: None,
        }))
    }
}

#[test]
fn an_answer_after_the_timeout_is_kept_and_the_lock_held_until_it_came() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    // The callers' 10 s pass; the 60 s cap does not.
    tab.platform.short_deadlines_ms.set(POLICY.timeout_ms);
    let transport = SlowAnswer::new(&tab, 5, || {});
    let result = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(
        result.unwrap_err(),
        Error::RefreshTimeout,
        "the caller stops waiting"
    );
    assert_eq!(transport.lock_held_at_answer.get(), Some(true));
    let stored = tab.stored().unwrap();
    assert_eq!(
        stored.refresh_token.unwrap().secret(),
        "rt-2",
        "the late answer is the session"
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-2"));
    assert_eq!(tab.sent().len(), 1, "and the other tabs hear it");
    // The next call uses it: the fake server fails on any request.
    assert_eq!(tab.access_token().unwrap(), "at-2");
}

#[test]
fn callers_arriving_while_a_late_refresh_is_out_get_the_timeout_not_a_second_request() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    tab.platform.short_deadlines_ms.set(POLICY.timeout_ms);
    let transport = SlowAnswer::new(&tab, 20, || {});
    let (first, second) = tab.run_with(&transport, async |r| {
        let later = async {
            for _ in 0..5 {
                crate::core::fakes::yield_now().await;
            }
            r.access_token().await
        };
        both(r.access_token(), later).await
    });
    assert_eq!(first.unwrap_err(), Error::RefreshTimeout);
    assert_eq!(second.unwrap_err(), Error::RefreshTimeout);
    assert_eq!(tab.lock.acquired.get(), 1, "one request in all");
    assert_eq!(tab.in_memory().as_deref(), Some("at-2"));
}

#[test]
fn a_refresh_that_settles_after_a_sign_out_elsewhere_stores_nothing_and_is_revoked() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    // Another tab signs out without waiting for the lock: the store is
    // cleared while this tab's request is out; its broadcast is not here yet.
    let store = &tab.platform.store;
    let transport = SlowAnswer::new(&tab, 1, || {
        block_on(store.clear_tokens(EndRecord::new(EndReason::SignedOut, NOW))).unwrap()
    });
    let result = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(result.unwrap_err(), Error::NotAuthenticated);
    assert_eq!(tab.stored(), None, "sign-out cannot be undone");
    assert_eq!(tab.in_memory(), None);
    assert!(tab.sent().is_empty());
    assert_eq!(tab.revoked(), vec!["at-2"]);
}

#[test]
fn a_login_saved_while_a_refresh_was_out_wins_over_it() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 0));
    let store = &tab.platform.store;
    let login = tokens("bob-1", Some("bob-rt"), NOW, HOUR_MS);
    let saved = login.clone();
    let transport = SlowAnswer::new(&tab, 1, move || {
        block_on(store.save_tokens(&saved)).unwrap()
    });
    let result = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(result.unwrap().secret(), "bob-1");
    assert_eq!(tab.stored(), Some(login));
    assert_eq!(tab.in_memory().as_deref(), Some("bob-1"));
    // Not revoked: a set that replaced this one may share its grant.
    assert!(tab.revoked().is_empty());
}

#[test]
fn a_set_adopted_from_a_tab_whose_write_failed_is_refreshed_not_the_older_stored_one() {
    // The store holds at-0/rt-0; a sibling refreshed to at-1/rt-1 but could
    // not write it, and this tab adopted it from the broadcast.
    let stored = tokens("at-0", Some("rt-0"), NOW - 2 * HOUR_MS, HOUR_MS);
    let tab = Tab::new(Some(stored.clone()), Some(stored));
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: expiring("at-1", Some("rt-1"), 0),
            unsaved: false,
        },
        NOW,
    );
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
    assert_eq!(tab.stored().unwrap().access_token.secret(), "at-2");
}

#[test]
fn sign_out_returns_the_newest_set_known_to_revoke() {
    let stored = tokens("at-0", Some("rt-0"), NOW - HOUR_MS, HOUR_MS);
    let tab = Tab::new(
        Some(tokens("at-1", Some("rt-1"), NOW, HOUR_MS)),
        Some(stored),
    );
    let latest = tab.run(async |r| r.sign_out().await).unwrap();
    assert_eq!(latest.refresh_token.unwrap().secret(), "rt-1");
}

#[test]
fn a_login_is_saved_under_the_lock_broadcast_and_put_in_use() {
    let tab = Tab::new(None, None);
    let login = tokens("at-1", Some("rt-1"), NOW, HOUR_MS);
    let error = tab.run(async |r| r.sign_in(login.clone()).await);
    assert_eq!(error, None);
    assert_eq!(tab.lock.acquired.get(), 1);
    assert_eq!(tab.stored(), Some(login));
    assert_eq!(tab.sent().len(), 1);
    assert_eq!(tab.heard(), vec!["tokens Login at-1"]);
}

#[test]
fn broadcast_sets_are_checked_like_input() {
    let tab = Tab::new(Some(tokens("at-1", Some("rt-1"), NOW, HOUR_MS)), None);
    let mut no_expiry = tokens("at-x", Some("rt-x"), NOW + 1, HOUR_MS);
    no_expiry.expires_at_ms = None;
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: no_expiry,
            unsaved: false,
        },
        NOW + 1,
    );
    assert_eq!(
        tab.in_memory().as_deref(),
        Some("at-x"),
        "no expiry (RFC 6749 §5.1 lets a server leave it out): taken"
    );
    // An issue time far in the future is taken as the time it arrived, so a
    // genuinely newer set still wins over it afterwards.
    let future = tokens("at-f", Some("rt-f"), NOW + 100 * HOUR_MS, HOUR_MS);
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: future,
            unsaved: false,
        },
        NOW + 1,
    );
    assert_eq!(tab.session.tokens().unwrap().issued_at_ms, NOW + 1);
    let newer = tokens("at-n", Some("rt-n"), NOW + 2, HOUR_MS);
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: newer,
            unsaved: false,
        },
        NOW + 2,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-n"));
}

#[test]
fn a_login_that_cannot_be_written_is_kept_in_memory_and_says_why() {
    let tab = Tab::new(None, None);
    let store = FullStore(MemorySessionStore::default());
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    let login = tokens("at-1", Some("rt-1"), NOW, HOUR_MS);
    let error = background.tasks.run(refresher.sign_in(login));
    assert_eq!(error.map(|e| e.code()), Some("storage_error"));
    assert_eq!(tab.in_memory().as_deref(), Some("at-1"));
    assert_eq!(
        tab.heard(),
        vec!["tokens Login at-1", "persist failed storage_error"]
    );
}

#[test]
fn a_set_another_tab_could_not_write_is_refreshed_from_memory_when_the_store_is_empty() {
    // The sibling's login could not be written (disk full): the store is
    // empty, which is not a sign-out for a tab that adopted its broadcast.
    let tab = Tab::new(None, None);
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: expiring("at-1", Some("rt-1"), 0),
            unsaved: true,
        },
        NOW,
    );
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
    assert_eq!(tab.stored().unwrap().access_token.secret(), "at-2");
}

#[test]
fn an_empty_store_after_a_saved_broadcast_is_a_sign_out() {
    let tab = Tab::new(None, None);
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: expiring("at-1", Some("rt-1"), 0),
            unsaved: false,
        },
        NOW,
    );
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
}

#[test]
fn a_login_finished_before_an_older_sessions_refresh_answered_still_wins() {
    // The login's set was issued (code exchange answered) before the old
    // session's refresh answer came: by issue time alone the refresh would
    // look newer. The login is from a later login, so it wins.
    let old = tokens("at-1", Some("rt-1"), NOW - HOUR_MS + 1_000, HOUR_MS);
    let mut old_session = old.clone();
    old_session.login_at_ms = NOW - 2 * HOUR_MS;
    let tab = Tab::with(old_session);
    let store = &tab.platform.store;
    let login = tokens("bob-1", Some("bob-rt"), NOW - 5_000, HOUR_MS);
    let saved = login.clone();
    tab.platform.now_ms.set(NOW);
    let transport = SlowAnswer::new(&tab, 1, move || {
        block_on(store.save_tokens(&saved)).unwrap()
    });
    let result = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(result.unwrap().secret(), "bob-1");
    assert_eq!(tab.stored(), Some(login.clone()));

    // A tab that already holds the old session's refreshed set adopts the
    // login's broadcast although its issue time is earlier.
    let mut refreshed = tokens("at-2", Some("rt-2"), NOW, HOUR_MS);
    refreshed.login_at_ms = NOW - 2 * HOUR_MS;
    let other = Tab::new(Some(refreshed), None);
    other.session.receive(
        SessionMessage::Tokens {
            tokens: login,
            unsaved: false,
        },
        NOW,
    );
    assert_eq!(other.in_memory().as_deref(), Some("bob-1"));
}

#[test]
fn a_login_heard_while_an_older_sessions_refresh_was_out_wins_and_is_stored() {
    // The new login's own write failed (it came as an unsaved broadcast), so
    // the store still holds the old session when the refresh's answer is
    // saved over it: the login, held in memory, wins and is written back in
    // its place. (Found by the simulation: a tab ended on the old login.)
    let mut old = expiring("at-1", Some("rt-1"), 0);
    old.login_at_ms = NOW - 2 * HOUR_MS;
    let tab = Tab::with(old);
    let login = tokens("bob-1", Some("bob-rt"), NOW - 5_000, HOUR_MS);
    let heard = login.clone();
    let session = &tab.session;
    let transport = SlowAnswer::new(&tab, 1, move || {
        let tokens = heard.clone();
        session.receive(
            SessionMessage::Tokens {
                tokens,
                unsaved: true,
            },
            NOW,
        );
    });
    let result = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(result.unwrap().secret(), "bob-1");
    assert_eq!(tab.in_memory().as_deref(), Some("bob-1"));
    assert_eq!(tab.stored(), Some(login));
}

#[test]
fn of_one_logins_sets_the_one_more_refreshes_from_it_is_newer_whatever_the_clock_says() {
    let earlier = tokens("at-2", Some("rt-2"), NOW, HOUR_MS);
    let mut later = tokens("at-3", Some("rt-3"), NOW, HOUR_MS);
    later.login_at_ms = earlier.login_at_ms;
    later.rotation = 1;
    assert!(is_newer(&later, &earlier), "the same millisecond");
    later.issued_at_ms = NOW - 1_000;
    assert!(is_newer(&later, &earlier), "a clock stepped back");
    let mut relogin = tokens("bob-1", Some("bob-rt"), NOW - 500, HOUR_MS);
    relogin.login_at_ms = later.login_at_ms + 1;
    assert!(
        is_newer(&relogin, &later),
        "a later login wins whatever its count"
    );
}

#[test]
fn the_policy_adds_up_to_a_fifth_of_the_leeway_as_jitter() {
    assert_eq!(RefreshPolicy::of(20, 10, 0).leeway_ms, 20_000);
    assert_eq!(RefreshPolicy::of(20, 10, 255).leeway_ms, 24_000);
    assert_eq!(RefreshPolicy::of(20, 10, 51).leeway_ms, 20_800);
}

#[test]
fn the_jitter_is_at_most_five_seconds() {
    assert_eq!(RefreshPolicy::of(30, 10, 255).leeway_ms, 35_000);
    assert_eq!(RefreshPolicy::of(600, 10, 255).leeway_ms, 605_000);
    assert_eq!(RefreshPolicy::of(0, 10, 255).leeway_ms, 0);
}

#[test]
fn a_refresh_is_awaited_a_minute_or_twice_its_timeout() {
    let short = RefreshPolicy::of(30, 10, 0);
    assert_eq!((short.timeout_ms, short.settle_cap_ms), (10_000, 60_000));
    let long = RefreshPolicy::of(30, 45, 0);
    assert_eq!((long.timeout_ms, long.settle_cap_ms), (45_000, 90_000));
}

#[test]
fn a_store_operation_may_take_a_marked_read_s_wait_whatever_the_timeout() {
    // With the shortest timeout, a mark that never agrees would otherwise
    // fail every refresh instead of being repaired by the first read past
    // its bound.
    let shortest = RefreshPolicy::of(30, REFRESH_TIMEOUT.min, 0);
    let marked_read = crate::core::marked_values::MARK_WAIT_MS + 2_000;
    assert_eq!(u64::from(shortest.store_wait_ms()), marked_read);
    assert_eq!(RefreshPolicy::of(30, 45, 0).store_wait_ms(), 45_000);
}

#[test]
fn a_tab_waits_three_timeouts_for_the_lock() {
    assert_eq!(RefreshPolicy::of(30, 10, 0).lock_wait_ms, 30_000);
    // Or three store waits, when those are longer: a holder may spend one
    // on a marked read before its request.
    let shortest = RefreshPolicy::of(30, REFRESH_TIMEOUT.min, 0);
    assert_eq!(shortest.lock_wait_ms, 3 * shortest.store_wait_ms());
}

#[test]
fn each_client_has_its_own_cross_tab_session() {
    let name = Session::name("https://idp.example", "spa");
    assert_eq!(name, "latchkey:https://idp.example:spa");
    assert_ne!(name, Session::name("https://idp.example", "admin"));
}

/// A set bound to the DPoP key `jkt`.
fn bound(access: &str, issued_at_ms: u64, jkt: &str) -> TokenSet {
    let mut set = tokens(access, Some("rt"), issued_at_ms, HOUR_MS);
    set.dpop_jkt = Some(jkt.to_owned());
    set
}

/// Keys 1 and 2, made.
fn two_keys() -> FakeDpopKeys {
    let keys = FakeDpopKeys::default();
    block_on(keys.create()).unwrap();
    block_on(keys.create()).unwrap();
    keys
}

fn has(keys: &FakeDpopKeys, n: u8) -> bool {
    block_on(keys.load(&FakeDpopKeys::jkt(n))).is_ok()
}

#[test]
fn a_login_replacing_a_bound_session_deletes_the_old_key_once_in_use() {
    let tab = Tab::with(bound("at-0", NOW - 1, &FakeDpopKeys::jkt(1)));
    let keys = two_keys();
    let login = bound("at-1", NOW, &FakeDpopKeys::jkt(2));
    let failed = tab.run(async |r| r.complete_login(&keys, login.clone(), false).await);
    assert_eq!(failed, None);
    assert_eq!(tab.stored(), Some(login));
    assert!(!has(&keys, 1), "the replaced session's key is deleted");
    assert!(has(&keys, 2));
    assert!(keys.memory_only.borrow().is_empty());
}

#[test]
fn a_login_that_cannot_be_written_keeps_the_stored_session_s_key() {
    // The store still holds the replaced session, which a reload starts
    // with: its key must still sign.
    let old = bound("at-0", NOW - 1, &FakeDpopKeys::jkt(1));
    let tab = Tab::new(Some(old.clone()), None);
    let store = FullStore(MemorySessionStore::default());
    block_on(store.0.save_tokens(&old)).unwrap();
    let keys = two_keys();
    let login = bound("at-1", NOW, &FakeDpopKeys::jkt(2));
    let grant = tab.grant();
    let background = tab.background(&store, &tab.lock, &grant, || NoCheck);
    let refresher = tab.refresher(&store, &tab.lock, &grant, &background);
    let failed = background
        .tasks
        .run(refresher.complete_login(&keys, login, false));
    assert_eq!(failed.map(|e| e.code()), Some("storage_error"));
    assert_eq!(block_on(store.load_tokens()).unwrap(), Some(old));
    assert!(has(&keys, 1), "the stored session's key is kept");
    assert!(has(&keys, 2));
}

#[test]
fn a_login_bound_to_the_same_key_keeps_it() {
    let tab = Tab::with(bound("at-0", NOW - 1, &FakeDpopKeys::jkt(1)));
    let keys = two_keys();
    let login = bound("at-1", NOW, &FakeDpopKeys::jkt(1));
    tab.run(async |r| r.complete_login(&keys, login, false).await);
    assert!(has(&keys, 1));
}

#[test]
fn a_login_kept_in_memory_keeps_its_key_in_memory_only() {
    let tab = Tab::new(None, None);
    let keys = two_keys();
    let login = bound("at-1", NOW, &FakeDpopKeys::jkt(2));
    tab.run(async |r| r.complete_login(&keys, login, true).await);
    assert_eq!(*keys.memory_only.borrow(), vec![FakeDpopKeys::jkt(2)]);
    assert!(has(&keys, 1), "nothing replaced, nothing deleted");
}

#[test]
fn a_call_proves_the_sessions_key_when_the_set_in_use_is_bound() {
    let bound = TokenSet {
        dpop_jkt: Some("jkt-1".into()),
        ..tokens("at-1", Some("rt-1"), NOW, HOUR_MS)
    };
    let session = Session::new(Some(bound));
    assert_eq!(session.proof_key().as_deref(), Some("jkt-1"));
    assert!(session.needs_proof());
    let bearer = Session::new(Some(tokens("at-1", Some("rt-1"), NOW, HOUR_MS)));
    assert_eq!(bearer.proof_key(), None);
    assert!(!bearer.needs_proof());
    assert_eq!(Session::new(None).proof_key(), None);
}

#[test]
fn seconds_options_default_when_absent_and_take_whole_numbers_in_range() {
    use crate::core::session::{REFRESH_LEEWAY, REFRESH_TIMEOUT};
    assert_eq!(REFRESH_LEEWAY.value("refreshLeewaySeconds", None), Ok(30));
    assert_eq!(REFRESH_TIMEOUT.value("refreshTimeoutSeconds", None), Ok(10));
    assert_eq!(
        REFRESH_LEEWAY.value("refreshLeewaySeconds", Some(Some(0.0))),
        Ok(0)
    );
    assert_eq!(
        REFRESH_LEEWAY.value("refreshLeewaySeconds", Some(Some(86_400.0))),
        Ok(86_400)
    );
    assert_eq!(
        REFRESH_TIMEOUT.value("refreshTimeoutSeconds", Some(Some(300.0))),
        Ok(300)
    );
    for refused in [Some(0.0), Some(301.0), Some(1.5), Some(f64::NAN), None] {
        let error = REFRESH_TIMEOUT
            .value("refreshTimeoutSeconds", Some(refused))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid option refreshTimeoutSeconds: must be a whole number of seconds from 1 to 300",
            "{refused:?}"
        );
    }
    assert!(REFRESH_LEEWAY
        .value("refreshLeewaySeconds", Some(Some(-1.0)))
        .is_err());
}

/// The standard grant, with a sibling's rotation heard (unsaved: its write
/// failed) while the first request is out.
struct HearsWhileOut<'a> {
    grant: RefreshGrant<'a, FakePlatform, FakeDpopKeys>,
    session: &'a Session,
    sibling: RefCell<Option<TokenSet>>,
}

impl RefreshTransport for HearsWhileOut<'_> {
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        let answer = self.grant.refresh(request).await;
        if let Some(tokens) = self.sibling.take() {
            let heard = SessionMessage::Tokens {
                tokens,
                unsaved: true,
            };
            self.session.receive(heard, NOW);
        }
        answer
    }
}

/// `expiring(access, refresh, 10 s)` bound to the key the platform makes
/// first.
fn stale_bound(access: &str, refresh: &str) -> TokenSet {
    TokenSet {
        token_type: "DPoP".into(),
        dpop_jkt: Some(FakeDpopKeys::jkt(1)),
        ..expiring(access, Some(refresh), 10_000)
    }
}

#[test]
fn a_bound_refresh_refused_for_its_nonce_is_sent_again_from_the_newest_set() {
    let tab = Tab::with(stale_bound("at-1", "rt-1"));
    let (jkt, _) = block_on(tab.platform.dpop_keys.create()).unwrap();
    assert_eq!(jkt, FakeDpopKeys::jkt(1));
    let transport = HearsWhileOut {
        grant: tab.grant(),
        session: &tab.session,
        sibling: RefCell::new(Some(TokenSet {
            rotation: 2,
            ..stale_bound("at-2", "rt-2")
        })),
    };
    let wants_nonce = r#"{"error":"use_dpop_nonce"}"#;
    let rotated =
        r#"{"access_token":"at-3","token_type":"DPoP","expires_in":3600,"refresh_token":"rt-3"}"#;
    // Through the driver: the refused request, then the machine's resend
    // from the base read again, each proved and sent once; the resend
    // presents the sibling's `rt-2` (`rt-1` is spent), with the new nonce.
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 400, wants_nonce);
    tab.platform.with_proof(&[("nonce", "")], Some("n-1"));
    let resent: &[(&str, &str)] = &[
        ("grant_type", "refresh_token"),
        ("refresh_token", "rt-2"),
        ("client_id", "spa"),
    ];
    tab.platform.expect_post(TOKEN_URL, resent, 200, rotated);
    tab.platform.with_proof(&[("nonce", "n-1")], None);
    let token = tab.run_with(&transport, async |r| r.access_token().await);
    assert_eq!(token.unwrap().secret(), "at-3");
    assert_eq!(tab.lock.acquired.get(), 1);
    assert_eq!(tab.stored().unwrap().access_token.secret(), "at-3");
}
