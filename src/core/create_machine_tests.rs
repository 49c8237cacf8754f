//! [`CreateClient`] fed by hand: where each kind of client's endpoints come
//! from, which metadata a start uses and what is kept, and the session it
//! starts with.

use super::*;
use crate::core::atproto::Account;
use crate::core::fakes::bearer_set;
use crate::core::startup::tests::{both_given, parsed, ISSUER, NOW};

fn opened(loaded: Result<Option<TokenSet>, Error>, kept: Option<KeptMetadata>) -> Fed {
    Fed::Opened { loaded, kept }
}

fn kept(fetched_at_ms: u64) -> KeptMetadata {
    KeptMetadata {
        fetched_at_ms,
        metadata: parsed(ISSUER),
    }
}

fn discovering() -> CreateClient {
    let (machine, open) =
        CreateClient::start(false, ISSUER, EndpointOverrides::default(), false, false);
    assert!(
        matches!(open, Step::Do(Need::Open)),
        "the store is read first, nothing sent before"
    );
    machine
}

fn started(step: Step) -> Started {
    match step {
        Step::Done(Ok(started)) => started,
        other => panic!("expected the start, got {other:?}"),
    }
}

fn failed(step: Step) -> Error {
    match step {
        Step::Done(Err(error)) => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn explicit_endpoints_need_no_discovery() {
    let (mut machine, open) = CreateClient::start(false, ISSUER, both_given(), false, false);
    assert!(matches!(open, Step::Do(Need::Open)));
    let start = started(machine.on(opened(Ok(Some(bearer_set("at-1"))), None), NOW));
    assert_eq!(start.endpoints.token, format!("{ISSUER}/t"));
    assert_eq!(
        start.tokens.expect("the stored set").access_token.secret(),
        "at-1"
    );
    assert!(start.storage_problem.is_none());
}

#[test]
fn explicit_endpoints_that_are_not_usable_fail_create_after_the_store_was_read() {
    let insecure = EndpointOverrides {
        token: Some("http://idp.example/t".into()),
        ..both_given()
    };
    let (mut machine, _) = CreateClient::start(false, ISSUER, insecure, false, false);
    let error = failed(machine.on(opened(Ok(None), None), NOW));
    assert_eq!(error.code(), "insecure_endpoint");
}

#[test]
fn an_atproto_client_uses_the_stored_accounts_server() {
    let (mut machine, open) =
        CreateClient::start(true, "", EndpointOverrides::default(), false, false);
    assert!(matches!(open, Step::Do(Need::Open)));
    let mut set = bearer_set("at-1");
    set.atproto = Some(Box::new(Account {
        did: "did:plc:abc".into(),
        handle: None,
        pds: "https://pds.example".into(),
        issuer: "https://pds.example".into(),
        token_endpoint: "https://pds.example/oauth/token".into(),
        revocation_endpoint: None,
    }));
    let start = started(machine.on(opened(Ok(Some(set)), None), NOW));
    assert_eq!(start.endpoints.token, "https://pds.example/oauth/token");
}

#[test]
fn kept_metadata_is_used_at_once_and_revalidated_later_in_the_background() {
    let mut machine = discovering();
    let step = machine.on(opened(Ok(None), Some(kept(NOW - 1_000))), NOW);
    match step {
        Step::Do(Need::Revalidate { after_ms }) => assert_eq!(after_ms, REVALIDATE_AFTER_MS),
        other => panic!("expected a revalidation, got {other:?}"),
    }
    let start = started(machine.on(Fed::Done, NOW));
    assert_eq!(start.endpoints.authorization, format!("{ISSUER}/auth"));
}

#[test]
fn without_usable_metadata_the_start_discovers_and_keeps_it_first() {
    let unusable = [
        None,
        Some(kept(NOW - crate::core::startup::METADATA_MAX_AGE_MS - 1)),
        Some(KeptMetadata {
            fetched_at_ms: NOW,
            metadata: parsed("https://other.example"),
        }),
    ];
    for kept in unusable {
        let mut machine = discovering();
        let step = machine.on(opened(Ok(None), kept.clone()), NOW);
        assert!(
            matches!(step, Step::Do(Need::Discover)),
            "{kept:?}: {step:?}"
        );
        let step = machine.on(Fed::Discovered(Ok(parsed(ISSUER))), NOW + 5);
        match step {
            Step::Do(Need::Keep(kept)) => {
                assert_eq!(kept.fetched_at_ms, NOW + 5, "when it was fetched");
                assert_eq!(kept.metadata, parsed(ISSUER));
            }
            other => panic!("expected the metadata kept, got {other:?}"),
        }
        let start = started(machine.on(Fed::Done, NOW + 6));
        assert_eq!(start.endpoints.token, format!("{ISSUER}/token"));
    }
}

#[test]
fn a_discovery_that_fails_with_nothing_usable_kept_fails_create() {
    let mut machine = discovering();
    machine.on(opened(Ok(None), None), NOW);
    let down = Error::Discovery {
        reason: "HTTP 503".into(),
    };
    assert_eq!(
        failed(machine.on(Fed::Discovered(Err(down.clone())), NOW)),
        down
    );
}

#[test]
fn a_failed_load_starts_signed_out_with_the_storage_problem() {
    let cases = [
        (
            Error::CorruptRecord {
                reason: "does not open".into(),
            },
            StorageProblem::Cleared,
            "corrupt_record: ",
        ),
        (
            Error::NewerRecord { version: 9 },
            StorageProblem::NewerRecord,
            "newer_record: ",
        ),
        (
            Error::Storage {
                reason: "refused".into(),
            },
            StorageProblem::ReadFailed,
            "storage_error: ",
        ),
    ];
    for (error, problem, prefix) in cases {
        let (mut machine, _) = CreateClient::start(false, ISSUER, both_given(), false, false);
        let start = started(machine.on(opened(Err(error), None), NOW));
        assert!(start.tokens.is_none());
        let (reported, reason) = start.storage_problem.expect("reported");
        assert_eq!(reported, problem);
        assert!(reason.starts_with(prefix), "{reason}");
    }
}

#[test]
fn an_atproto_client_without_a_stored_account_has_no_token_endpoint_yet() {
    let (mut machine, _) =
        CreateClient::start(true, "", EndpointOverrides::default(), false, false);
    let start = started(machine.on(opened(Ok(None), None), NOW));
    assert_eq!(start.endpoints.token, "", "known at its login");
}

#[test]
fn the_apps_endpoints_win_over_discovered_ones() {
    let overrides = EndpointOverrides {
        token: Some(format!("{ISSUER}/my-token")),
        ..EndpointOverrides::default()
    };
    let (mut machine, _) = CreateClient::start(false, ISSUER, overrides, false, false);
    machine.on(opened(Ok(None), None), NOW);
    machine.on(Fed::Discovered(Ok(parsed(ISSUER))), NOW);
    let start = started(machine.on(Fed::Done, NOW));
    assert_eq!(start.endpoints.token, format!("{ISSUER}/my-token"));
    assert_eq!(start.endpoints.authorization, format!("{ISSUER}/auth"));
}

#[test]
fn an_input_out_of_order_fails_create() {
    let mut machine = discovering();
    let error = failed(machine.on(Fed::Done, NOW));
    assert_eq!(error.code(), "discovery_failed");
}

#[test]
fn an_issuer_that_is_not_a_usable_url_fails_create_before_anything_is_opened() {
    for issuer in ["http://idp.example", "not a url"] {
        let (_, step) = CreateClient::start(false, issuer, both_given(), false, false);
        let error = failed(step);
        assert!(
            ["insecure_endpoint", "invalid_option"].contains(&error.code()),
            "{issuer}: {error:?}"
        );
    }
    // An atproto client has no issuer of its own to check.
    let (_, step) =
        CreateClient::start(true, "atproto", EndpointOverrides::default(), false, false);
    assert!(matches!(step, Step::Do(Need::Open)), "{step:?}");
}

#[test]
fn par_asked_for_without_an_endpoint_fails_create_once_the_endpoints_are_known() {
    let (mut machine, _) = CreateClient::start(false, ISSUER, both_given(), false, true);
    let error = failed(machine.on(opened(Ok(None), None), NOW));
    assert_eq!(error.code(), "invalid_option");
    // With the endpoint given, it starts.
    let with_par = EndpointOverrides {
        par: Some(format!("{ISSUER}/par")),
        ..both_given()
    };
    let (mut machine, _) = CreateClient::start(false, ISSUER, with_par, false, true);
    let start = started(machine.on(opened(Ok(None), None), NOW));
    assert_eq!(start.endpoints.par, Some(format!("{ISSUER}/par")));
    // An atproto client's servers are each account's: checked at its login.
    let (mut machine, _) =
        CreateClient::start(true, "atproto", EndpointOverrides::default(), false, true);
    started(machine.on(opened(Ok(None), None), NOW));
}

#[test]
fn a_discovered_server_that_requires_par_without_an_endpoint_fails_create_and_is_not_kept() {
    let mut requiring = parsed(ISSUER);
    requiring.require_pushed_authorization_requests = true;
    let mut machine = discovering();
    machine.on(opened(Ok(None), None), NOW);
    // Kept, the document would be used without discovery at the next
    // start, failing it again after the server was fixed.
    let error = failed(machine.on(Fed::Discovered(Ok(requiring)), NOW));
    assert_eq!(error.code(), "invalid_option");
}
