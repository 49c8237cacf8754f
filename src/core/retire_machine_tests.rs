//! The retirement machines fed by hand, one transition at a time: every
//! need they ask for, in order, and what each outcome leads to.

use super::*;
use crate::core::fakes::{bearer_set, raw_reply, read_body};
use crate::core::IdToken;

const REVOKE: &str = "https://idp.example/revoke";
const END: &str = "https://idp.example/end";
const MS: u32 = 5_000;

fn bound_set() -> TokenSet {
    TokenSet {
        token_type: "DPoP".into(),
        dpop_jkt: Some("jkt-1".into()),
        id_token: Some(IdToken::new("h.p.s".into())),
        ..bearer_set("at-1")
    }
}

fn plan(tokens: &TokenSet, revoke: bool) -> Retirement {
    Retirement {
        revoke_at: revoke.then(|| REVOKE.to_owned()),
        delete_key: tokens.dpop_jkt.clone(),
    }
}

fn answer(status: u16, body: &str) -> Fed {
    Fed::Answered(Some(Ok(raw_reply(status, body, None).read_body(read_body))))
}

/// Asserts `step` is the revocation of `token` as `hint`, signed or not.
fn assert_revokes(step: Step, token: &str, hint: &str, signed: bool) {
    match step {
        Step::Do(Need::Revoke {
            endpoint,
            form,
            signed: was_signed,
            ms,
        }) => {
            assert_eq!(endpoint, REVOKE);
            assert_eq!(
                form,
                vec![
                    ("token".to_owned(), token.to_owned()),
                    ("token_type_hint".to_owned(), hint.to_owned()),
                    ("client_id".to_owned(), "spa".to_owned()),
                ]
            );
            assert_eq!(was_signed, signed, "signed");
            assert_eq!(ms, MS);
        }
        other => panic!("expected the {hint}'s revocation, got {other:?}"),
    }
}

fn assert_deletes(step: Step, jkt: &str) {
    match step {
        Step::Do(Need::DeleteKey(deleted)) => assert_eq!(deleted, jkt),
        other => panic!("expected {jkt} deleted, got {other:?}"),
    }
}

fn done(step: Step) -> Option<Result<(), Error>> {
    match step {
        Step::Done(outcome) => outcome,
        other => panic!("expected the end, got {other:?}"),
    }
}

#[test]
fn a_bearer_set_revokes_its_refresh_token_then_its_access_token() {
    let tokens = bearer_set("at-1");
    let (mut machine, step) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    assert_revokes(step, "rt-1", "refresh_token", false);
    assert_revokes(machine.on(answer(200, "")), "at-1", "access_token", false);
    assert_eq!(done(machine.on(answer(200, ""))), Some(Ok(())));
}

#[test]
fn a_bound_set_loads_its_key_revokes_signed_then_deletes_the_key() {
    let tokens = bound_set();
    let (mut machine, step) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    assert!(
        matches!(step, Step::Do(Need::LoadKey(ref jkt)) if jkt == "jkt-1"),
        "{step:?}"
    );
    assert_revokes(machine.on(Fed::Key(Ok(()))), "rt-1", "refresh_token", true);
    assert_revokes(machine.on(answer(200, "")), "at-1", "access_token", true);
    assert_deletes(machine.on(answer(200, "")), "jkt-1");
    assert_eq!(done(machine.on(Fed::Deleted)), Some(Ok(())));
}

#[test]
fn a_key_that_cannot_be_loaded_fails_the_revocation_and_is_still_deleted() {
    let tokens = bound_set();
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    let gone = Error::DpopKeyUnavailable {
        reason: "no such key".into(),
    };
    assert_deletes(machine.on(Fed::Key(Err(gone.clone()))), "jkt-1");
    assert_eq!(done(machine.on(Fed::Deleted)), Some(Err(gone)));
}

#[test]
fn without_a_revocation_a_bound_set_only_loses_its_key() {
    let tokens = bound_set();
    let (mut machine, step) = Retire::start(&tokens, plan(&tokens, false), "spa", MS);
    assert_deletes(step, "jkt-1");
    assert_eq!(done(machine.on(Fed::Deleted)), None, "nothing was revoked");
}

#[test]
fn without_a_revocation_or_a_key_there_is_nothing_to_do() {
    let tokens = bearer_set("at-1");
    let (_, step) = Retire::start(&tokens, plan(&tokens, false), "spa", MS);
    assert_eq!(done(step), None);
}

#[test]
fn a_set_without_a_refresh_token_revokes_its_access_token_only() {
    let tokens = TokenSet {
        refresh_token: None,
        ..bearer_set("at-1")
    };
    let (mut machine, step) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    assert_revokes(step, "at-1", "access_token", false);
    assert_eq!(done(machine.on(answer(200, ""))), Some(Ok(())));
}

#[test]
fn a_refused_answers_refresh_token_without_an_access_token_is_revoked_alone() {
    let tokens = bearer_set("");
    let (mut machine, step) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    assert_revokes(step, "rt-1", "refresh_token", false);
    assert_eq!(done(machine.on(answer(200, ""))), Some(Ok(())));
}

#[test]
fn a_failed_refresh_token_revocation_still_revokes_the_access_token_and_is_the_outcome() {
    let tokens = bearer_set("at-1");
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    assert_revokes(
        machine.on(answer(503, "down")),
        "at-1",
        "access_token",
        false,
    );
    let outcome = done(machine.on(answer(401, r#"{"error":"invalid_client"}"#)));
    let error = outcome.expect("sent").unwrap_err();
    assert_eq!(error.status(), Some(503), "the first failure: {error}");
    assert_eq!(
        error.to_string(),
        "token revocation failed: revoking the refresh_token: HTTP 503"
    );
}

#[test]
fn a_failed_access_token_revocation_is_the_outcome_when_the_first_succeeded() {
    let tokens = bearer_set("at-1");
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    machine.on(answer(200, ""));
    let outcome = done(machine.on(Fed::Answered(None)));
    let error = outcome.expect("sent").unwrap_err();
    assert_eq!(
        error.to_string(),
        "token revocation failed: revoking the access_token timed out"
    );
}

#[test]
fn an_access_token_the_server_cannot_revoke_is_no_failure() {
    let tokens = TokenSet {
        refresh_token: None,
        ..bearer_set("at-1")
    };
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    let unsupported = answer(400, r#"{"error":"unsupported_token_type"}"#);
    assert_eq!(done(machine.on(unsupported)), Some(Ok(())));
}

#[test]
fn an_unexpected_input_still_deletes_the_planned_key_and_ends_with_an_error() {
    let tokens = bound_set();
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    assert_deletes(machine.on(Fed::Deleted), "jkt-1");
    let outcome = done(machine.on(Fed::Deleted));
    assert_eq!(
        outcome.expect("an outcome").unwrap_err().code(),
        "revocation_failed"
    );
    // Over: anything more ends at once, asking for nothing.
    assert!(matches!(
        machine.on(answer(200, "")),
        Step::Done(Some(Err(_)))
    ));
}

#[test]
fn the_needs_never_show_a_token() {
    let tokens = bound_set();
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    let step = machine.on(Fed::Key(Ok(())));
    let shown = format!("{step:?} {machine:?}");
    assert!(
        !shown.contains("rt-1") && !shown.contains("at-1"),
        "{shown}"
    );
}

fn choices(revoke: bool, end_session: Option<&'static str>) -> LogoutChoices<'static> {
    LogoutChoices {
        revoke,
        end_session_endpoint: end_session,
        post_logout_redirect_uri: None,
        client_id: "spa",
        revocation_endpoint: Some(REVOKE),
    }
}

fn logged_out(step: LogoutStep) -> LoggedOut {
    match step {
        LogoutStep::Done(done) => done,
        other => panic!("expected the logout's end, got {other:?}"),
    }
}

fn retire_need(step: LogoutStep) -> Step {
    match step {
        LogoutStep::Do(LogoutNeed::Retire(need)) => Step::Do(need),
        other => panic!("expected a retirement's need, got {other:?}"),
    }
}

#[test]
fn a_logout_signs_out_first_then_retires_the_set_it_ended_then_ends_the_session() {
    let choices = choices(true, Some(END));
    let (mut machine, step) = LogOut::start(&choices, MS);
    assert!(
        matches!(step, LogoutStep::Do(LogoutNeed::SignOut)),
        "{step:?}"
    );
    let step = machine.on(LogoutFed::SignedOut(Some(bound_set())));
    assert!(matches!(retire_need(step), Step::Do(Need::LoadKey(_))));
    let step = machine.on(LogoutFed::Retire(Fed::Key(Ok(()))));
    assert_revokes(retire_need(step), "rt-1", "refresh_token", true);
    let step = machine.on(LogoutFed::Retire(answer(200, "")));
    assert_revokes(retire_need(step), "at-1", "access_token", true);
    let step = machine.on(LogoutFed::Retire(answer(200, "")));
    assert_deletes(retire_need(step), "jkt-1");
    let done = logged_out(machine.on(LogoutFed::Retire(Fed::Deleted)));
    assert_eq!(done.outcome, RevocationOutcome::Revoked);
    let (endpoint, params) = done.end_session.expect("the end-session address");
    assert_eq!(endpoint, END);
    assert_eq!(
        params,
        vec![
            ("id_token_hint".to_owned(), "h.p.s".to_owned()),
            ("client_id".to_owned(), "spa".to_owned()),
        ]
    );
}

#[test]
fn a_logout_without_a_session_retires_nothing_and_says_skipped() {
    let choices = choices(true, None);
    let (mut machine, _) = LogOut::start(&choices, MS);
    let done = logged_out(machine.on(LogoutFed::SignedOut(None)));
    assert_eq!(done.outcome, RevocationOutcome::Skipped);
    assert_eq!(done.end_session, None);
}

#[test]
fn a_logout_without_revoke_still_deletes_the_key_and_says_skipped() {
    let choices = choices(false, None);
    let (mut machine, _) = LogOut::start(&choices, MS);
    let step = machine.on(LogoutFed::SignedOut(Some(bound_set())));
    assert_deletes(retire_need(step), "jkt-1");
    let done = logged_out(machine.on(LogoutFed::Retire(Fed::Deleted)));
    assert_eq!(done.outcome, RevocationOutcome::Skipped);
}

#[test]
fn a_failed_revocation_is_reported_and_the_logout_still_ends_the_session() {
    let choices = choices(true, Some(END));
    let (mut machine, _) = LogOut::start(&choices, MS);
    machine.on(LogoutFed::SignedOut(Some(TokenSet {
        refresh_token: None,
        ..bearer_set("at-1")
    })));
    let done = logged_out(machine.on(LogoutFed::Retire(answer(503, ""))));
    assert!(
        matches!(&done.outcome, RevocationOutcome::Failed(error) if error.status() == Some(503)),
        "{:?}",
        done.outcome
    );
    let (_, params) = done.end_session.expect("the end-session address");
    assert_eq!(params, vec![("client_id".to_owned(), "spa".to_owned())]);
}

#[test]
fn an_unexpected_input_ends_the_logout_with_the_revocation_failed_and_nowhere_to_go() {
    let choices = choices(true, Some(END));
    let (mut machine, _) = LogOut::start(&choices, MS);
    let done = logged_out(machine.on(LogoutFed::Retire(Fed::Deleted)));
    assert!(
        matches!(done.outcome, RevocationOutcome::Failed(_)),
        "{:?}",
        done.outcome
    );
    assert_eq!(done.end_session, None);
}

#[test]
fn an_unexpected_input_while_retiring_still_deletes_the_key() {
    let choices = choices(true, Some(END));
    let (mut machine, _) = LogOut::start(&choices, MS);
    machine.on(LogoutFed::SignedOut(Some(bound_set())));
    let step = machine.on(LogoutFed::SignedOut(None));
    assert_deletes(retire_need(step), "jkt-1");
    let done = logged_out(machine.on(LogoutFed::Retire(Fed::Deleted)));
    assert!(
        matches!(&done.outcome, RevocationOutcome::Failed(error) if error.code() == "revocation_failed"),
        "{:?}",
        done.outcome
    );
}

#[test]
fn an_unexpected_input_keeps_the_first_failure() {
    let tokens = bearer_set("at-1");
    let (mut machine, _) = Retire::start(&tokens, plan(&tokens, true), "spa", MS);
    machine.on(answer(503, ""));
    let outcome = done(machine.on(Fed::Deleted));
    assert_eq!(outcome.expect("sent").unwrap_err().status(), Some(503));
}

#[test]
fn the_end_session_address_never_shows_the_id_token_in_debug() {
    let choices = choices(false, Some(END));
    let (mut machine, _) = LogOut::start(&choices, MS);
    let step = machine.on(LogoutFed::SignedOut(Some(bearer_set_with_id_token())));
    let shown = format!("{step:?}");
    assert!(shown.contains("id_token_hint"), "{shown}");
    assert!(!shown.contains("h.p.s"), "{shown}");
}

fn bearer_set_with_id_token() -> TokenSet {
    TokenSet {
        id_token: Some(IdToken::new("h.p.s".into())),
        ..bearer_set("at-1")
    }
}
