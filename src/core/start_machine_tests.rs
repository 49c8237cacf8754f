//! `StartLogin`'s transitions, fed by hand: one test per branch. The same
//! machine driven against the fake server is tested through
//! `Logins::start` in `login.rs`, `login_profile_tests.rs` and
//! `atproto_login_tests.rs`.

use super::*;
use crate::core::atproto_login::tests::{as_metadata, base, AS};
use crate::core::fakes::{client_config, IDP};

const NOW: u64 = 1_700_000_000_000;
const PAR: &str = "https://idp.example/par";

fn config(dpop: bool, par: bool) -> ClientConfig {
    ClientConfig {
        par,
        dpop,
        ..client_config()
    }
}

fn value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let found = query.iter().find(|(k, _)| k == name);
    found.map(|(_, v)| v.as_str())
}

fn drawn() -> Begun {
    Begun::Drawn(Ok([
        Random32([1; 32]),
        Random32([2; 32]),
        Random32([3; 32]),
    ]))
}

/// A login of `config` fed up to its digest; with DPoP its key is `jkt-1`.
fn digested(config: ClientConfig, extra: &[(&str, &str)]) -> (StartLogin, Step) {
    let dpop = config.dpop;
    let extra = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (mut machine, mut step) =
        StartLogin::start(config, None, extra, Some("{}".into()), Departure::Stays);
    if dpop {
        assert!(matches!(step, Step::Do(Need::MakeKey)), "{step:?}");
        step = machine.on(Begun::KeyMade(Ok("jkt-1".into())), NOW);
    }
    assert!(matches!(step, Step::Do(Need::Draw)), "{step:?}");
    let step = machine.on(drawn(), NOW);
    assert!(matches!(step, Step::Do(Need::Digest)), "{step:?}");
    let verifier = machine.verifier().expect("the verifier to digest");
    assert_eq!(
        verifier.secret(),
        PkceVerifier::from_random_bytes(&[1; 32]).secret()
    );
    let step = machine.on(Begun::Digest(Ok([9; 32])), NOW + 7);
    (machine, step)
}

fn failed_with(step: Step) -> String {
    match step {
        Step::Done(Err(error)) => error.code().to_owned(),
        other => panic!("not a failure: {other:?}"),
    }
}

/// Feeds the replaced login and the store's write; the started login.
fn stored(machine: &mut StartLogin, replaced: Option<PendingTransaction>) -> (String, LoginStart) {
    let step = machine.on(Begun::Replaced(Ok(replaced)), NOW);
    assert!(matches!(step, Step::Do(Need::Store(_))), "{step:?}");
    match machine.on(Begun::Stored(Ok(())), NOW) {
        Step::Done(Ok(started)) => started,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_openid_login_sends_its_challenge_and_stores_the_pending_login() {
    let (mut machine, step) = digested(config(false, false), &[("prompt", "login")]);
    assert!(matches!(step, Step::Do(Need::TakeReplaced)), "{step:?}");
    let step = machine.on(Begun::Replaced(Ok(None)), NOW);
    let Step::Do(Need::Store(transaction)) = step else {
        panic!("{step:?}");
    };
    assert_eq!(transaction.created_at_ms, NOW + 7);
    assert_eq!(
        transaction.state.secret(),
        State::from_random_bytes(&[2; 32]).secret()
    );
    assert_eq!(
        transaction.nonce.unwrap().secret(),
        Nonce::from_random_bytes(&[3; 32]).secret()
    );
    assert_eq!(transaction.app_state.as_deref(), Some("{}"));
    let Step::Done(Ok((endpoint, start))) = machine.on(Begun::Stored(Ok(())), NOW) else {
        panic!("not started");
    };
    assert_eq!(endpoint, format!("{IDP}/auth"));
    let challenge = PkceChallenge::from_sha256_digest([9; 32]);
    assert_eq!(
        value(&start.query, "code_challenge"),
        Some(challenge.as_str())
    );
    assert_eq!(value(&start.query, "state"), Some(start.state.secret()));
    assert_eq!(value(&start.query, "prompt"), Some("login"));
    assert_eq!(value(&start.query, "dpop_jkt"), None);
}

#[test]
fn a_dpop_login_makes_its_key_first_and_names_it() {
    let (mut machine, _) = digested(config(true, false), &[]);
    let (_, start) = stored(&mut machine, None);
    assert_eq!(value(&start.query, "dpop_jkt"), Some("jkt-1"));
}

#[test]
fn a_key_that_cannot_be_made_fails_with_nothing_to_delete() {
    let (mut machine, _) =
        StartLogin::start(config(true, false), None, vec![], None, Departure::Stays);
    let error = Error::DpopKeyUnavailable {
        reason: "no WebCrypto".into(),
    };
    assert_eq!(
        failed_with(machine.on(Begun::KeyMade(Err(error)), NOW)),
        "dpop_key_unavailable"
    );
}

#[test]
fn a_failure_after_the_key_was_made_deletes_it() {
    let (mut machine, _) =
        StartLogin::start(config(true, false), None, vec![], None, Departure::Stays);
    machine.on(Begun::KeyMade(Ok("jkt-1".into())), NOW);
    let error = Error::Crypto {
        reason: "no randomness".into(),
    };
    let step = machine.on(Begun::Drawn(Err(error)), NOW);
    assert!(
        matches!(step, Step::Do(Need::DeleteKey(ref k)) if k == "jkt-1"),
        "{step:?}"
    );
    assert_eq!(failed_with(machine.on(Begun::Deleted, NOW)), "crypto_error");
}

#[test]
fn a_reserved_extra_parameter_is_refused_and_the_key_deleted() {
    let (mut machine, step) = digested(config(true, false), &[("state", "mine")]);
    assert!(matches!(step, Step::Do(Need::DeleteKey(_))), "{step:?}");
    assert_eq!(
        failed_with(machine.on(Begun::Deleted, NOW)),
        "invalid_option"
    );
}

fn pushed(status: u16, json: &str) -> Begun {
    let body: RawParResponse = serde_json::from_str(json).unwrap();
    Begun::Pushed(Ok(HttpReply {
        status,
        body: Ok(body),
        retry_after_s: None,
        dpop_nonce: None,
        oauth_error: None,
    }))
}

const REQUEST_URI: &str =
    r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r1","expires_in":60}"#;

#[test]
fn a_pushed_request_is_signed_and_leaves_its_nonce_with_the_pending_login() {
    let (mut machine, step) = digested(config(true, true), &[]);
    let Step::Do(Need::Push {
        endpoint,
        form,
        signed,
    }) = step
    else {
        panic!("{step:?}");
    };
    assert_eq!((endpoint.as_str(), signed), (PAR, true));
    assert_eq!(value(&form, "dpop_jkt"), Some("jkt-1"));
    let step = machine.on(pushed(201, REQUEST_URI), NOW);
    assert!(
        matches!(step, Step::Do(Need::ReadNonce { ref endpoint }) if endpoint == PAR),
        "{step:?}"
    );
    let step = machine.on(Begun::Nonce(Some("n-9".into())), NOW);
    assert!(matches!(step, Step::Do(Need::TakeReplaced)), "{step:?}");
    let step = machine.on(Begun::Replaced(Ok(None)), NOW);
    let Step::Do(Need::Store(transaction)) = step else {
        panic!("{step:?}");
    };
    assert_eq!(transaction.dpop_nonce.as_deref(), Some("n-9"));
    let Step::Done(Ok((_, start))) = machine.on(Begun::Stored(Ok(())), NOW) else {
        panic!("not started");
    };
    let query: Vec<(&str, &str)> = start.query.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        query,
        [
            ("client_id", "spa"),
            ("request_uri", "urn:ietf:params:oauth:request_uri:r1")
        ]
    );
}

#[test]
fn a_pushed_request_without_a_key_is_sent_unsigned_and_reads_no_nonce() {
    let (mut machine, step) = digested(config(false, true), &[]);
    assert!(
        matches!(step, Step::Do(Need::Push { signed: false, .. })),
        "{step:?}"
    );
    let step = machine.on(pushed(201, REQUEST_URI), NOW);
    assert!(matches!(step, Step::Do(Need::TakeReplaced)), "{step:?}");
}

#[test]
fn a_refused_push_deletes_the_key_and_leaves_the_tabs_pending_login() {
    let (mut machine, _) = digested(config(true, true), &[]);
    let step = machine.on(pushed(400, r#"{"error":"invalid_request"}"#), NOW);
    assert!(matches!(step, Step::Do(Need::DeleteKey(_))), "{step:?}");
    assert_eq!(failed_with(machine.on(Begun::Deleted, NOW)), "par_failed");
}

#[test]
fn par_asked_for_without_an_endpoint_is_refused_before_anything_is_sent() {
    let mut without = config(false, true);
    without.endpoints.par = None;
    let (_, step) = digested(without, &[]);
    assert_eq!(failed_with(step), "invalid_option");
}

#[test]
fn the_replaced_logins_key_is_deleted_before_the_new_login_is_stored() {
    let (mut replaced_machine, _) = digested(config(true, false), &[]);
    let step = replaced_machine.on(Begun::Replaced(Ok(None)), NOW);
    let Step::Do(Need::Store(mut old)) = step else {
        panic!("{step:?}");
    };
    old.dpop_jkt = Some("jkt-old".into());
    let (mut machine, _) = digested(config(true, false), &[]);
    let step = machine.on(Begun::Replaced(Ok(Some(old))), NOW);
    assert!(
        matches!(step, Step::Do(Need::DeleteKey(ref k)) if k == "jkt-old"),
        "{step:?}"
    );
    let step = machine.on(Begun::Deleted, NOW);
    assert!(matches!(step, Step::Do(Need::Store(_))), "{step:?}");
}

#[test]
fn a_pending_login_that_cannot_be_read_is_simply_replaced() {
    let (mut machine, _) = digested(config(false, false), &[]);
    let error = Error::CorruptRecord { reason: "x".into() };
    let step = machine.on(Begun::Replaced(Err(error)), NOW);
    assert!(matches!(step, Step::Do(Need::Store(_))), "{step:?}");
}

#[test]
fn a_login_that_cannot_be_stored_deletes_its_key() {
    let (mut machine, _) = digested(config(true, false), &[]);
    machine.on(Begun::Replaced(Ok(None)), NOW);
    let error = Error::Storage {
        reason: "full".into(),
    };
    let step = machine.on(Begun::Stored(Err(error)), NOW);
    assert!(
        matches!(step, Step::Do(Need::DeleteKey(ref k)) if k == "jkt-1"),
        "{step:?}"
    );
    assert_eq!(
        failed_with(machine.on(Begun::Deleted, NOW)),
        "storage_error"
    );
}

#[test]
fn an_atproto_login_resolves_its_account_first_and_hints_the_server() {
    let handle = (false, "alice.test".to_owned());
    let (mut machine, step) =
        StartLogin::start(base(), Some(handle), vec![], None, Departure::Stays);
    assert!(
        matches!(step, Step::Do(Need::ResolveAccount { ref handle }) if handle == "alice.test")
    );
    let metadata = serde_json::from_str(&as_metadata()).unwrap();
    let step = machine.on(Begun::Resolved(Ok(metadata)), NOW);
    assert!(
        matches!(step, Step::Do(Need::MakeKey)),
        "the profile always uses DPoP: {step:?}"
    );
    assert_eq!(machine.config().issuer, AS);
    assert!(machine.config().par);
    machine.on(Begun::KeyMade(Ok("jkt-1".into())), NOW);
    machine.on(drawn(), NOW);
    let step = machine.on(Begun::Digest(Ok([9; 32])), NOW);
    let Step::Do(Need::Push { form, .. }) = step else {
        panic!("{step:?}");
    };
    assert_eq!(value(&form, "login_hint"), Some("alice.test"));
}

#[test]
fn an_atproto_login_refuses_a_login_hint_of_its_own() {
    let handle = (false, "alice.test".to_owned());
    let extra = vec![("Login_Hint".to_owned(), "bob.test".to_owned())];
    let (_, step) = StartLogin::start(base(), Some(handle), extra, None, Departure::Stays);
    assert_eq!(failed_with(step), "invalid_option");
}

#[test]
fn an_account_that_cannot_be_resolved_fails_with_nothing_made() {
    let handle = (false, "alice.test".to_owned());
    let (mut machine, _) = StartLogin::start(base(), Some(handle), vec![], None, Departure::Stays);
    let error = Error::HandleNotFound {
        reason: "no such handle".into(),
    };
    assert_eq!(
        failed_with(machine.on(Begun::Resolved(Err(error)), NOW)),
        "handle_not_found"
    );
}

#[test]
fn an_input_the_stage_does_not_expect_ends_the_login_and_deletes_no_key() {
    let (mut machine, _) =
        StartLogin::start(config(false, false), None, vec![], None, Departure::Stays);
    assert!(matches!(
        machine.on(Begun::Deleted, NOW),
        Step::Done(Err(_))
    ));
    // A login already stored keeps its key, whatever a buggy driver feeds.
    let (mut machine, _) = digested(config(true, false), &[]);
    stored(&mut machine, None);
    let step = machine.on(Begun::Deleted, NOW);
    assert!(matches!(step, Step::Done(Err(_))), "{step:?}");
    let (mut machine, _) = digested(config(true, false), &[]);
    machine.on(Begun::Replaced(Ok(None)), NOW);
    let step = machine.on(Begun::Nonce(None), NOW);
    assert!(
        matches!(step, Step::Done(Err(_))),
        "while storing: {step:?}"
    );
}

#[test]
fn a_clean_up_ends_with_the_error_that_began_it() {
    let (mut machine, _) = digested(config(true, false), &[("state", "mine")]);
    assert_eq!(
        failed_with(machine.on(Begun::Nonce(None), NOW)),
        "invalid_option"
    );
}

const LEAVES_KEEPING_ALL: Departure = Departure::Leaves {
    pending_kept: true,
    key_kept: true,
};

#[test]
fn a_redirect_whose_pending_login_would_be_lost_is_refused_before_anything_is_sent() {
    let lost = Departure::Leaves {
        pending_kept: false,
        key_kept: true,
    };
    let (_, step) = StartLogin::start(config(false, false), None, vec![], None, lost);
    let error = match step {
        Step::Done(Err(error)) => error,
        other => panic!("not refused at once: {other:?}"),
    };
    assert_eq!(error.code(), "storage_error");
    assert!(error.to_string().contains("pending login"), "{error}");
    // An atproto login is refused before its handle is resolved.
    let handle = (false, "alice.test".to_owned());
    let (_, step) = StartLogin::start(base(), Some(handle), vec![], None, lost);
    assert_eq!(failed_with(step), "storage_error");
}

#[test]
fn a_dpop_redirect_whose_key_would_be_lost_is_refused_before_a_key_is_made() {
    let lost = Departure::Leaves {
        pending_kept: true,
        key_kept: false,
    };
    let (_, step) = StartLogin::start(config(true, false), None, vec![], None, lost);
    let error = match step {
        Step::Done(Err(error)) => error,
        other => panic!("not refused at once: {other:?}"),
    };
    assert!(error.to_string().contains("DPoP key"), "{error}");
    // Without DPoP there is no key to lose.
    let (_, step) = StartLogin::start(config(false, false), None, vec![], None, lost);
    assert!(matches!(step, Step::Do(Need::Draw)), "{step:?}");
    // An atproto login learns it uses DPoP from its account's server.
    let handle = (false, "alice.test".to_owned());
    let (mut machine, _) = StartLogin::start(base(), Some(handle), vec![], None, lost);
    let metadata = serde_json::from_str(&as_metadata()).unwrap();
    let step = machine.on(Begun::Resolved(Ok(metadata)), NOW);
    assert_eq!(failed_with(step), "storage_error");
}

#[test]
fn a_redirect_that_keeps_what_its_return_needs_and_a_popup_go_ahead() {
    // A popup's login keeps both in this page's memory.
    for departure in [LEAVES_KEEPING_ALL, Departure::Stays] {
        let (_, step) = StartLogin::start(config(true, false), None, vec![], None, departure);
        assert!(matches!(step, Step::Do(Need::MakeKey)), "{step:?}");
    }
}

#[test]
fn a_push_to_another_server_leaves_no_nonce_for_the_code_exchange() {
    let mut other = config(true, true);
    other.endpoints.par = Some("https://par.other.example/par".into());
    let (mut machine, step) = digested(other, &[]);
    assert!(matches!(step, Step::Do(Need::Push { .. })), "{step:?}");
    // The answer's nonce is that server's: not read for the token endpoint.
    let step = machine.on(pushed(201, REQUEST_URI), NOW);
    assert!(matches!(step, Step::Do(Need::TakeReplaced)), "{step:?}");
    let step = machine.on(Begun::Replaced(Ok(None)), NOW);
    let Step::Do(Need::Store(transaction)) = step else {
        panic!("{step:?}");
    };
    assert_eq!(transaction.dpop_nonce, None);
}
