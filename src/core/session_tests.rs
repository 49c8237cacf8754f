//! The refresh protocol's decisions, with a fake clock, fake HTTP (exact
//! requests, failing when unused), a counting lock and a recording channel.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::core::fakes::{block_on, join_all, FakeBroadcast, FakeLock, FakePlatform, FullStore};
use crate::core::memory_store::MemorySessionStore;
use crate::core::refresh_grant::RefreshGrant;
use crate::core::RefreshToken;
use crate::platform::HttpReply;

const NOW: u64 = 1_700_000_000_000;
const TOKEN_URL: &str = "https://idp.example/token";
const HOUR_MS: u64 = 3_600_000;
const POLICY: RefreshPolicy = RefreshPolicy {
    leeway_ms: 30_000,
    timeout_ms: 10_000,
    lock_wait_ms: 20_000,
};

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
                RefreshGrant<'_, FakePlatform>,
            >,
        ) -> T,
    ) -> T {
        self.run_with(&self.grant(), call)
    }

    /// The standard refresh request, against the fake server.
    fn grant(&self) -> RefreshGrant<'_, FakePlatform> {
        RefreshGrant {
            http: &self.platform,
            token_endpoint: TOKEN_URL,
            client_id: "spa",
        }
    }

    /// This tab's refresher with the given store, lock and transport.
    fn refresher<'a, S, L, R>(
        &'a self,
        store: &'a S,
        lock: &'a L,
        transport: &'a R,
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
        }
    }

    fn run_with<R: RefreshTransport, T>(
        &self,
        transport: &R,
        call: impl AsyncFnOnce(
            &Refresher<'_, FakePlatform, MemorySessionStore, FakeLock, FakeBroadcast, R>,
        ) -> T,
    ) -> T {
        let refresher = self.refresher(&self.platform.store, &self.lock, transport);
        let out = block_on(call(&refresher));
        assert!(!self.lock.held.get(), "the lock is released on every path");
        out
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
    assert_eq!(tab.sent(), vec![SessionMessage::Tokens { tokens: stored }]);
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
        let calls = (0..5)
            .map(|_| {
                Box::pin(r.access_token())
                    as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
            })
            .collect();
        join_all(calls)
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
    // Any number of later calls: the API's answer is returned as is (the
    // same token comes back).
    for _ in 0..5 {
        tab.platform.now_ms.set(tab.platform.now_ms.get() + 60_000);
        assert_eq!(tab.reject("at-2"), "at-2");
    }
    assert_eq!(tab.lock.acquired.get(), 1);
    assert_eq!(tab.heard(), vec!["tokens Refresh at-2"]);
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
    assert_eq!(
        tab.sent(),
        vec![SessionMessage::Ended {
            reason: EndReason::Expired
        }]
    );
    assert_eq!(tab.heard(), vec!["ended Expired"]);
}

/// A refresh request during which a sibling tab without the lock rotates
/// first, so the server answers `invalid_grant`.
struct SiblingRotatesFirst<'a> {
    store: &'a MemorySessionStore,
    sibling: TokenSet,
}

impl RefreshTransport for SiblingRotatesFirst<'_> {
    async fn refresh(
        &self,
        current: &TokenSet,
    ) -> Result<HttpReply<crate::core::RawTokenResponse>, Error> {
        assert_eq!(current.refresh_token.as_ref().unwrap().secret(), "rt-1");
        self.store.save_tokens(&self.sibling).await?;
        Ok(HttpReply {
            status: 400,
            body: Ok(crate::core::RawTokenResponse {
                error: Some("invalid_grant".into()),
                ..Default::default()
            }),
            retry_after_s: None,
        })
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
    tab.platform.now_ms.set(NOW + 30_000);
    tab.platform
        .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    assert_eq!(tab.access_token().unwrap(), "at-2");
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
    let refresher = tab.refresher(&tab.platform.store, &LockNeverGranted, &grant);
    assert_eq!(
        block_on(refresher.access_token()).unwrap_err(),
        Error::LockUnavailable
    );
}

#[test]
fn an_expired_token_without_refresh_token_ends_the_session() {
    let tab = Tab::with(expiring("at-1", None, 0));
    assert_eq!(tab.access_token().unwrap_err(), Error::SessionExpired);
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.heard(), vec!["ended Expired"]);
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
    let refresher = tab.refresher(&store, &tab.lock, &grant);
    assert_eq!(block_on(refresher.access_token()).unwrap().secret(), "at-2");
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
    assert_eq!(block_on(refresher.access_token()).unwrap().secret(), "at-3");
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
    let refresher = tab.refresher(&store, &tab.lock, &grant);
    assert_eq!(block_on(refresher.access_token()).unwrap().secret(), "at-2");
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
        },
        NOW,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-2"));
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-3", Some("rt-3"), NOW + 1, HOUR_MS),
        },
        NOW,
    );
    assert_eq!(tab.in_memory().as_deref(), Some("at-3"));
    // The same set twice is one change.
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-3", Some("rt-3"), NOW + 1, HOUR_MS),
        },
        NOW,
    );
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::Expired,
        },
        NOW,
    );
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::Expired,
        },
        NOW,
    );
    assert_eq!(tab.heard(), vec!["tokens Sync at-3", "ended Expired"]);
}

#[test]
fn session_messages_round_trip_through_serde() {
    let message = SessionMessage::Tokens {
        tokens: tokens("at-1", Some("rt-1"), NOW, HOUR_MS),
    };
    let json = serde_json::to_string(&message).unwrap();
    assert!(json.starts_with(r#"{"type":"tokens","tokens":{"#), "{json}");
    assert_eq!(
        serde_json::from_str::<SessionMessage>(&json).unwrap(),
        message
    );
    let ended = serde_json::to_string(&SessionMessage::Ended {
        reason: EndReason::SignedOut,
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
            reason: EndReason::SignedOut
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
    let refresher = tab.refresher(&tab.platform.store, &LockNeverGranted, &grant);
    let latest = block_on(refresher.sign_out());
    assert!(latest.is_some());
    assert_eq!(tab.stored(), None);
    assert_eq!(tab.heard(), vec!["ended SignedOut"]);
}

#[test]
fn a_broadcast_set_issued_before_a_sign_out_does_not_bring_the_session_back() {
    // A sibling's refresh finished just before another tab signed out, but
    // its message arrives after the sign-out's.
    let tab = Tab::with(tokens("at-1", Some("rt-1"), NOW - 5, HOUR_MS));
    tab.session.receive(
        SessionMessage::Ended {
            reason: EndReason::SignedOut,
        },
        NOW,
    );
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-2", Some("rt-2"), NOW - 1, HOUR_MS),
        },
        NOW + 1,
    );
    assert_eq!(tab.in_memory(), None);
    // A later login in another tab is adopted.
    tab.session.receive(
        SessionMessage::Tokens {
            tokens: tokens("at-3", Some("rt-3"), NOW + 10, HOUR_MS),
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
    async fn refresh(
        &self,
        _current: &TokenSet,
    ) -> Result<HttpReply<crate::core::RawTokenResponse>, Error> {
        self.store.clear_tokens().await?;
        self.session.end(EndReason::SignedOut, NOW);
        Ok(HttpReply {
            status: 200,
            body: Ok(serde_json::from_str(ROTATED).unwrap()),
            retry_after_s: None,
        })
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

/// A check that refuses every refreshed set (as a forged or foreign ID
/// token would be refused).
struct RefuseEverything;

impl CheckRefreshed for RefuseEverything {
    async fn check(&self, _previous: &TokenSet, _fresh: &TokenSet) -> Result<(), Error> {
        Err(Error::IdTokenSubMismatch)
    }
}

#[test]
fn a_refreshed_set_that_fails_its_check_is_neither_stored_nor_broadcast() {
    let tab = Tab::with(expiring("at-1", Some("rt-1"), 10_000));
    // Two refreshes, each refused: the proactive one and the one after a rejection.
    for _ in 0..2 {
        tab.platform
            .expect_post(TOKEN_URL, REFRESH_FORM, 200, ROTATED);
    }
    let grant = tab.grant();
    let refresher = Refresher {
        session: &tab.session,
        platform: &tab.platform,
        store: &tab.platform.store,
        lock: &tab.lock,
        broadcast: &tab.broadcast,
        transport: &grant,
        policy: POLICY,
        check: RefuseEverything,
    };
    // The token in hand is still valid, so the call goes on with it.
    assert_eq!(block_on(refresher.access_token()).unwrap().secret(), "at-1");
    assert_eq!(
        block_on(refresher.after_rejection(&AccessToken::new("at-1".into()))),
        Err(Error::IdTokenSubMismatch)
    );
    assert_eq!(tab.stored().unwrap().access_token.secret(), "at-1");
    assert_eq!(tab.in_memory().as_deref(), Some("at-1"));
    assert!(tab.sent().is_empty());
    assert!(tab.heard().is_empty());
    assert!(!tab.lock.held.get());
}
