//! [`RecordOp`] fed by hand: each rule of the record policy as the needs an
//! operation asks for, in order.

use super::*;

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "spa";

fn key(kind: &str) -> String {
    record_key(ISSUER, CLIENT, kind)
}

fn text(json: &str) -> RecordText {
    RecordText::new(json.into())
}

fn need(step: Step) -> Need {
    match step {
        Step::Do(need) => need,
        Step::Done(outcome) => panic!("expected a need, got the end: {outcome:?}"),
    }
}

fn done(step: Step) -> Result<bool, Error> {
    match step {
        Step::Done(outcome) => outcome,
        Step::Do(need) => panic!("expected the end, got {need:?}"),
    }
}

fn removes(step: Step, backend: Backend, kind: &str) {
    match need(step) {
        Need::Remove { backend: b, key: k } => {
            assert_eq!((b, k), (backend, key(kind)));
        }
        other => panic!("expected {kind} removed, got {other:?}"),
    }
}

fn corrupt() -> Error {
    Error::CorruptRecord {
        reason: "does not open".into(),
    }
}

fn failed() -> Error {
    Error::Storage {
        reason: "backend down".into(),
    }
}

/// A read of the tokens record that found `stored` and asked to open it.
fn opening() -> RecordOp {
    let (mut op, step) = RecordOp::read(Backend::Records, TOKENS, ISSUER, CLIENT);
    match need(step) {
        Need::Get { backend, key: k } => assert_eq!((backend, k), (Backend::Records, key(TOKENS))),
        other => panic!("expected the get, got {other:?}"),
    }
    match need(op.on(Fed::Got(Ok(Some(text("sealed")))))) {
        Need::Open { aad, stored } => {
            assert_eq!(aad, associated_data(ISSUER, CLIENT, TOKENS));
            assert_eq!(stored.secret(), "sealed");
        }
        other => panic!("expected the open, got {other:?}"),
    }
    op
}

#[test]
fn a_missing_record_reads_as_none() {
    let (mut op, _) = RecordOp::read(Backend::Records, TOKENS, ISSUER, CLIENT);
    assert_eq!(done(op.on(Fed::Got(Ok(None)))), Ok(false));
}

#[test]
fn a_record_is_opened_then_parsed() {
    let mut op = opening();
    match need(op.on(Fed::Opened(Ok(text(r#"{"a":1}"#))))) {
        Need::Parse(parsed) => assert_eq!(parsed.secret(), r#"{"a":1}"#),
        other => panic!("expected the parse, got {other:?}"),
    }
    assert_eq!(done(op.on(Fed::Parsed(true))), Ok(true));
}

#[test]
fn rule_2_a_record_that_does_not_open_is_removed_and_reported() {
    let mut op = opening();
    removes(op.on(Fed::Opened(Err(corrupt()))), Backend::Records, TOKENS);
    assert_eq!(done(op.on(Fed::Removed(Ok(())))), Err(corrupt()));
}

#[test]
fn rule_2_a_failed_removal_is_what_is_reported() {
    let mut op = opening();
    op.on(Fed::Opened(Err(corrupt())));
    assert_eq!(done(op.on(Fed::Removed(Err(failed())))), Err(failed()));
}

#[test]
fn rule_2_a_record_of_an_unknown_shape_is_removed() {
    let mut op = opening();
    op.on(Fed::Opened(Ok(text("[]"))));
    removes(op.on(Fed::Parsed(false)), Backend::Records, TOKENS);
    let error = done(op.on(Fed::Removed(Ok(())))).unwrap_err();
    assert_eq!(error.code(), "corrupt_record");
    assert!(error.to_string().contains("tokens record"), "{error}");
}

#[test]
fn rule_3_a_newer_record_is_remembered_and_left_alone() {
    let mut op = opening();
    let newer = Error::NewerRecord { version: 9 };
    assert!(matches!(
        need(op.on(Fed::Opened(Err(newer.clone())))),
        Need::MarkNewer(9)
    ));
    assert_eq!(done(op.on(Fed::Marked)), Err(newer));
}

#[test]
fn rule_3_after_a_newer_record_the_tokens_are_neither_written_nor_cleared() {
    let (_, step) = RecordOp::write(
        Backend::Records,
        TOKENS,
        Some(text("{}")),
        Some(9),
        ISSUER,
        CLIENT,
    );
    assert_eq!(done(step), Err(Error::NewerRecord { version: 9 }));
    let (_, step) = RecordOp::clear("ended", Some(text("{}")), Some(9), ISSUER, CLIENT);
    assert_eq!(done(step), Err(Error::NewerRecord { version: 9 }));
}

#[test]
fn rule_3_other_records_are_still_written() {
    let (_, step) = RecordOp::write(
        Backend::Records,
        "metadata",
        Some(text("{}")),
        Some(9),
        ISSUER,
        CLIENT,
    );
    assert!(matches!(need(step), Need::Seal { .. }));
}

#[test]
fn a_write_seals_then_sets_under_the_records_key() {
    let (mut op, step) = RecordOp::write(
        Backend::Transactions,
        "transaction",
        Some(text("{}")),
        None,
        ISSUER,
        CLIENT,
    );
    match need(step) {
        Need::Seal { aad, text } => {
            assert_eq!(aad, associated_data(ISSUER, CLIENT, "transaction"));
            assert_eq!(text.secret(), "{}");
        }
        other => panic!("expected the seal, got {other:?}"),
    }
    match need(op.on(Fed::Sealed(Ok(text("sealed"))))) {
        Need::Set {
            backend,
            key: k,
            value,
        } => {
            assert_eq!(
                (backend, k, value.secret()),
                (Backend::Transactions, key("transaction"), "sealed")
            );
        }
        other => panic!("expected the set, got {other:?}"),
    }
    assert_eq!(done(op.on(Fed::Written(Ok(())))), Ok(true));
}

#[test]
fn a_write_that_cannot_be_sealed_or_serialised_writes_nothing() {
    let (mut op, _) = RecordOp::write(
        Backend::Records,
        TOKENS,
        Some(text("{}")),
        None,
        ISSUER,
        CLIENT,
    );
    assert_eq!(done(op.on(Fed::Sealed(Err(failed())))), Err(failed()));
    let (_, step) = RecordOp::write(Backend::Records, TOKENS, None, None, ISSUER, CLIENT);
    assert_eq!(done(step).unwrap_err().code(), "storage_error");
}

#[test]
fn rule_4_a_clear_keeps_why_before_the_tokens_go() {
    let (mut op, step) = RecordOp::clear(
        "ended",
        Some(text(r#"{"reason":"logout"}"#)),
        None,
        ISSUER,
        CLIENT,
    );
    assert!(matches!(need(step), Need::Seal { .. }));
    match need(op.on(Fed::Sealed(Ok(text("sealed"))))) {
        Need::Set { key: k, .. } => assert_eq!(k, key("ended")),
        other => panic!("expected the reason written, got {other:?}"),
    }
    removes(op.on(Fed::Written(Ok(()))), Backend::Records, TOKENS);
    assert_eq!(done(op.on(Fed::Removed(Ok(())))), Ok(true));
}

#[test]
fn rule_4_the_reason_is_best_effort_an_earlier_one_goes_then_the_tokens() {
    // An earlier end's record left would name only the logins until then.
    let (mut op, _) = RecordOp::clear("ended", Some(text("{}")), None, ISSUER, CLIENT);
    removes(op.on(Fed::Sealed(Err(failed()))), Backend::Records, "ended");
    removes(op.on(Fed::Removed(Ok(()))), Backend::Records, TOKENS);
    let (mut op, _) = RecordOp::clear("ended", Some(text("{}")), None, ISSUER, CLIENT);
    op.on(Fed::Sealed(Ok(text("sealed"))));
    removes(
        op.on(Fed::Written(Err(failed()))),
        Backend::Records,
        "ended",
    );
    // That removal is best effort too.
    removes(op.on(Fed::Removed(Err(failed()))), Backend::Records, TOKENS);
    assert_eq!(done(op.on(Fed::Removed(Err(failed())))), Err(failed()));
}

#[test]
fn rule_5_the_pending_login_is_removed_whatever_the_read_found() {
    let (mut op, _) = RecordOp::take(Backend::Transactions, "transaction", ISSUER, CLIENT);
    removes(
        op.on(Fed::Got(Err(failed()))),
        Backend::Transactions,
        "transaction",
    );
    assert_eq!(done(op.on(Fed::Removed(Ok(())))), Err(failed()));

    // Found: removed first (claimed), then opened and read.
    let (mut op, _) = RecordOp::take(Backend::Transactions, "transaction", ISSUER, CLIENT);
    removes(
        op.on(Fed::Got(Ok(Some(text("sealed"))))),
        Backend::Transactions,
        "transaction",
    );
    assert!(matches!(
        need(op.on(Fed::Removed(Ok(())))),
        Need::Open { .. }
    ));
    op.on(Fed::Opened(Ok(text("{}"))));
    assert_eq!(done(op.on(Fed::Parsed(true))), Ok(true));
}

#[test]
fn rule_5_a_pending_login_that_cannot_be_claimed_is_not_read() {
    let (mut op, _) = RecordOp::take(Backend::Transactions, "transaction", ISSUER, CLIENT);
    op.on(Fed::Got(Ok(Some(text("sealed")))));
    assert_eq!(done(op.on(Fed::Removed(Err(failed())))), Err(failed()));
}

#[test]
fn rule_5_a_failed_removal_of_the_pending_login_wins() {
    let (mut op, _) = RecordOp::take(Backend::Transactions, "transaction", ISSUER, CLIENT);
    op.on(Fed::Got(Ok(None)));
    assert_eq!(done(op.on(Fed::Removed(Err(failed())))), Err(failed()));
}

#[test]
fn rule_6_a_failed_read_removes_nothing() {
    let (mut op, _) = RecordOp::read(Backend::Records, TOKENS, ISSUER, CLIENT);
    assert_eq!(done(op.on(Fed::Got(Err(failed())))), Err(failed()));
}

#[test]
fn rule_6_a_sealer_that_failed_removes_nothing() {
    // WebCrypto failing for its own reasons says nothing of the record.
    let mut op = opening();
    let crypto = Error::Crypto {
        reason: "NotSupportedError".into(),
    };
    assert_eq!(done(op.on(Fed::Opened(Err(crypto.clone())))), Err(crypto));
}

#[test]
fn an_unexpected_outcome_ends_it_removing_nothing() {
    let mut op = opening();
    let error = done(op.on(Fed::Written(Ok(())))).unwrap_err();
    assert_eq!(error.code(), "storage_error");
}

#[test]
fn the_records_text_never_shows_in_debug() {
    // In memory a "sealed" record is its plaintext: every value is redacted.
    let secret = r#"{"access_token":"at-secret"}"#;
    let fed = [
        Fed::Got(Ok(Some(text(secret)))),
        Fed::Opened(Ok(text(secret))),
        Fed::Sealed(Ok(text(secret))),
    ];
    let mut op = opening();
    let parse = op.on(Fed::Opened(Ok(text(secret))));
    let (mut write, seal) = RecordOp::write(
        Backend::Records,
        TOKENS,
        Some(text(secret)),
        None,
        ISSUER,
        CLIENT,
    );
    let set = write.on(Fed::Sealed(Ok(text(secret))));
    let (mut read, _) = RecordOp::read(Backend::Records, TOKENS, ISSUER, CLIENT);
    let open = read.on(Fed::Got(Ok(Some(text(secret)))));
    let shown = format!("{fed:?} {parse:?} {seal:?} {set:?} {open:?} {op:?}");
    assert!(!shown.contains("at-secret"), "{shown}");
}

#[test]
fn rule_3_and_5_a_newer_pending_login_is_remembered_and_removed_all_the_same() {
    let (mut op, _) = RecordOp::take(Backend::Transactions, "transaction", ISSUER, CLIENT);
    op.on(Fed::Got(Ok(Some(text("sealed")))));
    op.on(Fed::Removed(Ok(())));
    let newer = Error::NewerRecord { version: 9 };
    assert!(matches!(
        need(op.on(Fed::Opened(Err(newer.clone())))),
        Need::MarkNewer(9)
    ));
    // Already removed when it was claimed.
    assert_eq!(done(op.on(Fed::Marked)), Err(newer));
}

#[test]
fn rule_2_and_5_a_corrupt_pending_login_was_removed_by_the_take_already() {
    let (mut op, _) = RecordOp::take(Backend::Transactions, "transaction", ISSUER, CLIENT);
    op.on(Fed::Got(Ok(Some(text("sealed")))));
    op.on(Fed::Removed(Ok(())));
    // Already removed when it was claimed: nothing more to remove.
    assert_eq!(done(op.on(Fed::Opened(Err(corrupt())))), Err(corrupt()));
}

#[test]
fn rule_4_a_reason_that_cannot_be_serialised_still_clears_the_tokens() {
    let (mut op, step) = RecordOp::clear("ended", None, None, ISSUER, CLIENT);
    removes(step, Backend::Records, "ended");
    removes(op.on(Fed::Removed(Ok(()))), Backend::Records, TOKENS);
    assert_eq!(done(op.on(Fed::Removed(Ok(())))), Ok(true));
}

#[test]
fn a_failed_write_is_the_outcome() {
    let (mut op, _) = RecordOp::write(
        Backend::Records,
        TOKENS,
        Some(text("{}")),
        None,
        ISSUER,
        CLIENT,
    );
    op.on(Fed::Sealed(Ok(text("sealed"))));
    assert_eq!(done(op.on(Fed::Written(Err(failed())))), Err(failed()));
}
