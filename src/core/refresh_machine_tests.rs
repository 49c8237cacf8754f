//! One test per transition of the refresh machine, fed by hand: no driver,
//! no fakes, no clock — each step written out as the driver would see it.

use super::*;
use crate::core::atproto_login::tests::account;
use crate::core::fakes::POLICY;
use crate::core::platform::HttpReply;
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::RawTokenResponse;
use crate::core::{IdToken, RefreshToken};

const NOW: u64 = 1_700_000_000_000;
const HOUR_MS: u64 = 3_600_000;

/// A set named by its access token `at-N` and refresh token `rt-N`,
/// issued `age_ms` before `NOW` for an hour.
fn set(n: u32, age_ms: u64) -> TokenSet {
    let issued_at_ms = NOW - age_ms;
    TokenSet {
        access_token: AccessToken::new(format!("at-{n}")),
        token_type: "Bearer".into(),
        expires_at_ms: Some(issued_at_ms + HOUR_MS),
        refresh_token: Some(RefreshToken::new(format!("rt-{n}"))),
        scope: Some("openid api".into()),
        id_token: Some(IdToken::new("id-1".into())),
        refresh_expires_at_ms: None,
        issued_at_ms,
        login_at_ms: NOW - 2 * HOUR_MS,
        rotation: n.into(),
        dpop_jkt: None,
        atproto: None,
    }
}

/// The set this tab holds: `at-1`, stale (10 s left).
fn stale() -> TokenSet {
    set(1, HOUR_MS - 10_000)
}

/// `at-9`, from a login completed just now (in this tab or another).
fn new_login() -> TokenSet {
    TokenSet {
        login_at_ms: NOW,
        ..set(9, 0)
    }
}

/// A write refused for a full disk.
fn quota_exceeded() -> Error {
    Error::Storage {
        reason: "quota".into(),
    }
}

fn show(step: &Step) -> String {
    crate::core::steps::shown::show(step, NOW)
}

/// The token endpoint's answer with `json` as its body.
fn answer(status: u16, json: serde_json::Value, retry_after_s: Option<u64>) -> Input {
    let body: RawTokenResponse = serde_json::from_value(json).unwrap();
    Input::Answer(Ok(RefreshAnswer::Server(HttpReply {
        status,
        oauth_error: body.error.clone(),
        body: Ok(body),
        retry_after_s,
        dpop_nonce: None,
    })))
}

/// A rotation to `at-2`/`rt-2`, with a new ID token when `id` is given.
fn rotated(id: Option<&str>) -> Input {
    let mut json = serde_json::json!({
        "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-2",
    });
    if let Some(id) = id {
        json["id_token"] = id.into();
    }
    answer(200, json, None)
}

/// A machine for `held` and the session it reads, already in the lock
/// and asked for the stored set.
fn in_lock(held: &TokenSet, session: &Session) -> RefreshMachine {
    let (mut machine, first) =
        RefreshMachine::start(held.access_token.clone(), POLICY, true, false, session);
    assert_eq!(show(&first), "lock 20000");
    assert_eq!(
        show(&on(&mut machine, Input::Locked(Ok(())), session)),
        "load"
    );
    machine
}

fn on(machine: &mut RefreshMachine, input: Input, session: &Session) -> Step {
    machine.on(input, session, NOW)
}

/// Feeds `inputs` in turn and shows the step after each.
fn run(machine: &mut RefreshMachine, session: &Session, inputs: Vec<Input>) -> Vec<String> {
    inputs
        .into_iter()
        .map(|input| show(&on(machine, input, session)))
        .collect()
}

/// A machine that sent `stale()`'s refresh token and waits for the answer.
fn sent(session: &Session) -> RefreshMachine {
    let held = stale();
    let mut machine = in_lock(&held, session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(held))), session);
    assert_eq!(show(&step), "send rt-1 10000");
    machine
}

#[test]
fn no_lock_fails_with_why() {
    let session = Session::new(Some(stale()));
    let (mut machine, _) =
        RefreshMachine::start(stale().access_token, POLICY, true, false, &session);
    let step = on(
        &mut machine,
        Input::Locked(Err(Error::LockUnavailable)),
        &session,
    );
    assert_eq!(show(&step), "fail lock_unavailable");
}

#[test]
fn the_stored_set_is_refreshed() {
    let session = Session::new(Some(stale()));
    sent(&session);
}

#[test]
fn a_sibling_s_fresh_set_is_adopted_without_a_request() {
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(set(2, 0)))), &session);
    assert_eq!(show(&step), "adopt at-2 id-1 Sync; done at-2 id-1");
}

#[test]
fn this_tab_s_newer_set_wins_over_the_stored_one() {
    let mine = stale();
    let session = Session::new(Some(mine.clone()));
    let mut machine = in_lock(&mine, &session);
    let older = TokenSet {
        rotation: 0,
        access_token: AccessToken::new("at-0".into()),
        refresh_token: Some(RefreshToken::new("rt-0".into())),
        ..stale()
    };
    let step = on(&mut machine, Input::Loaded(Ok(Some(older))), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn an_unreadable_record_refreshes_this_tab_s_copy() {
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let corrupt = Error::CorruptRecord {
        reason: "bad".into(),
    };
    let step = on(&mut machine, Input::Loaded(Err(corrupt)), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn an_unreadable_record_without_a_copy_is_not_a_session() {
    let session = Session::new(None);
    let mut machine = in_lock(&stale(), &session);
    let corrupt = Error::CorruptRecord {
        reason: "bad".into(),
    };
    let step = on(&mut machine, Input::Loaded(Err(corrupt)), &session);
    assert_eq!(show(&step), "fail not_authenticated");
}

#[test]
fn a_failed_read_fails_the_refresh_and_keeps_the_tokens() {
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let failed = Error::Storage {
        reason: "gone".into(),
    };
    let step = on(&mut machine, Input::Loaded(Err(failed)), &session);
    assert_eq!(show(&step), "fail storage_error");
}

#[test]
fn an_empty_store_after_a_failed_write_refreshes_this_tab_s_copy() {
    let session = Session::new(Some(stale()));
    session.set_unsaved(true);
    let mut machine = in_lock(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    // Empty because the write failed, or because of a sign-out's first
    // clear: the store's end record tells (here there is none).
    assert_eq!(show(&step), "end reason");
    let step = on(&mut machine, Input::EndReason(None), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn an_empty_store_ends_the_session_for_the_reason_it_keeps() {
    for (reason, expected) in [
        (
            Some(EndReason::SignedOut),
            "end SignedOut; fail not_authenticated",
        ),
        (
            Some(EndReason::Expired),
            "end Expired; fail session_expired",
        ),
        (None, "end Expired; fail session_expired"),
    ] {
        let session = Session::new(Some(stale()));
        let mut machine = in_lock(&stale(), &session);
        let end = reason.map(|reason| EndRecord::new(reason, NOW));
        let inputs = vec![Input::Loaded(Ok(None)), Input::EndReason(end)];
        assert_eq!(
            run(&mut machine, &session, inputs),
            ["end reason", expected]
        );
    }
}

#[test]
fn an_empty_store_whose_end_is_of_earlier_logins_refreshes_this_tab_s_later_login() {
    // A sign-out called before this login cleared the store just after the
    // login's write: the login is the session, missing from the store.
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let earlier = EndRecord::new(EndReason::SignedOut, stale().login_at_ms - 1);
    let inputs = vec![Input::Loaded(Ok(None)), Input::EndReason(Some(earlier))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["end reason", "send rt-1 10000"]
    );
}

#[test]
fn an_end_heard_while_the_end_record_was_read_is_not_undone() {
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    assert_eq!(show(&step), "end reason");
    session.end(EndReason::SignedOut, NOW);
    let earlier = EndRecord::new(EndReason::SignedOut, stale().login_at_ms - 1);
    let step = on(&mut machine, Input::EndReason(Some(earlier)), &session);
    assert_eq!(show(&step), "end SignedOut; fail not_authenticated");
}

#[test]
fn an_empty_store_whose_end_covers_this_tab_s_login_ends_it() {
    for until_ms in [Some(stale().login_at_ms), None] {
        let session = Session::new(Some(stale()));
        let mut machine = in_lock(&stale(), &session);
        let end = EndRecord {
            reason: EndReason::SignedOut,
            until_ms,
        };
        let inputs = vec![Input::Loaded(Ok(None)), Input::EndReason(Some(end))];
        assert_eq!(
            run(&mut machine, &session, inputs)[1],
            "end SignedOut; fail not_authenticated"
        );
    }
}

#[test]
fn a_valid_set_without_a_refresh_token_is_used_while_it_lasts() {
    let held = TokenSet {
        refresh_token: None,
        ..stale()
    };
    let session = Session::new(Some(held.clone()));
    let mut machine = in_lock(&held, &session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(held))), &session);
    assert_eq!(show(&step), "done at-1 id-1");
}

#[test]
fn an_expired_set_without_a_refresh_token_ends_and_is_retired() {
    let held = TokenSet {
        refresh_token: None,
        ..set(1, HOUR_MS + 1)
    };
    let session = Session::new(Some(held.clone()));
    let mut machine = in_lock(&held, &session);
    let inputs = vec![Input::Loaded(Ok(Some(held))), Input::Cleared(Ok(()))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "clear Expired logins to 1699992800000",
            "publish ended Expired logins to 1699992800000; end Expired; revoke at-1 id-1; fail session_expired"
        ]
    );
}

#[test]
fn a_held_retry_after_answers_without_a_request() {
    let session = Session::new(Some(stale()));
    let busy = Error::TokenEndpoint {
        status: 503,
        error: "temporarily_unavailable".into(),
        error_description: None,
        error_uri: None,
        retry_after_s: Some(30),
    };
    session.hold_off(NOW + 30_000, busy);
    let mut machine = in_lock(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(stale()))), &session);
    assert_eq!(show(&step), "fail token_error");
}

#[test]
fn past_the_timeout_the_waiters_go_and_the_request_is_awaited_to_the_cap() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let step = machine.on(Input::Slow, &session, NOW + 10_000);
    let steps = [
        show(&step),
        show(&on(&mut machine, rotated(None), &session)),
    ];
    assert_eq!(steps[0], "waiters timed out; keep waiting 50000");
    // The late answer is the session: it is written like any other.
    assert_eq!(steps[1], "resume requests; load");
}

/// `set(n, age_ms)` bound to a DPoP key.
fn bound(n: u32, age_ms: u64) -> TokenSet {
    TokenSet {
        token_type: "DPoP".into(),
        dpop_jkt: Some("jkt-1".into()),
        ..set(n, age_ms)
    }
}

/// The token endpoint refusing a proof's nonce (RFC 9449 §8), with a new one.
fn wants_nonce() -> Input {
    let body: RawTokenResponse =
        serde_json::from_value(serde_json::json!({"error": "use_dpop_nonce"})).unwrap();
    Input::Answer(Ok(RefreshAnswer::Server(HttpReply {
        status: 400,
        oauth_error: body.error.clone(),
        body: Ok(body),
        retry_after_s: None,
        dpop_nonce: Some("n-2".into()),
    })))
}

/// A machine that sent the bound `held`'s refresh token.
fn sent_bound(held: &TokenSet, session: &Session) -> RefreshMachine {
    let mut machine = in_lock(held, session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(held.clone()))), session);
    assert_eq!(show(&step), "send rt-1 10000");
    machine
}

#[test]
fn a_refusal_for_the_nonce_is_sent_again_from_a_sibling_s_rotation_heard_meanwhile() {
    let held = bound(1, HOUR_MS - 10_000);
    let session = Session::new(Some(held.clone()));
    let mut machine = sent_bound(&held, &session);
    // A sibling rotated, failed its write and closed before its broadcast
    // arrived; this tab read the older stored set. The broadcast arrives
    // while the request is out: `rt-1` is spent.
    let sibling = bound(2, HOUR_MS - 10_000);
    let heard = SessionMessage::Tokens {
        tokens: sibling,
        unsaved: true,
    };
    session.receive(heard, NOW);
    let step = machine.on(wants_nonce(), &session, NOW + 3_000);
    assert_eq!(show(&step), "load");
    // The store still holds `rt-1`; the resend presents `rt-2`, within
    // what is left of the callers' wait.
    let step = machine.on(Input::Loaded(Ok(Some(held))), &session, NOW + 3_000);
    assert_eq!(show(&step), "send rt-2 7000");
}

#[test]
fn a_refusal_for_the_nonce_is_sent_again_once() {
    let held = bound(1, HOUR_MS - 10_000);
    let session = Session::new(Some(held.clone()));
    let mut machine = sent_bound(&held, &session);
    let inputs = vec![wants_nonce(), Input::Loaded(Ok(Some(held))), wants_nonce()];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["load", "send rt-1 10000", "fail dpop_nonce_failed"]
    );
}

#[test]
fn a_sibling_s_rotation_heard_during_the_reread_is_the_resend_s_base() {
    let held = bound(1, HOUR_MS - 10_000);
    let session = Session::new(Some(held.clone()));
    let mut machine = sent_bound(&held, &session);
    assert_eq!(
        show(&machine.on(wants_nonce(), &session, NOW + 3_000)),
        "load"
    );
    let sibling = SessionMessage::Tokens {
        tokens: bound(2, HOUR_MS - 10_000),
        unsaved: true,
    };
    session.receive(sibling, NOW + 3_000);
    let step = machine.on(Input::Loaded(Ok(Some(held))), &session, NOW + 3_010);
    assert_eq!(show(&step), "send rt-2 6990");
}

/// The resend's bounds: the callers' wait, and when the transport aborts it.
fn resend_bounds(step: &Step) -> (u32, u32) {
    match &step.wait {
        Wait::Send { request, ms } => (*ms, request.abort_after_ms),
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn a_resend_keeps_the_first_request_s_settle_cap_and_abort() {
    let held = bound(1, HOUR_MS - 10_000);
    let session = Session::new(Some(held.clone()));
    let mut machine = sent_bound(&held, &session); // at NOW
    let step = machine.on(Input::Slow, &session, NOW + 10_000);
    assert_eq!(show(&step), "waiters timed out; keep waiting 50000");
    // Refused just before the cap: resent with what is left of the first
    // request's abort (61 s from NOW), the lock held to the same cap, and
    // the callers not told twice.
    machine.on(wants_nonce(), &session, NOW + 59_000);
    let step = machine.on(
        Input::Loaded(Ok(Some(held.clone()))),
        &session,
        NOW + 59_000,
    );
    assert_eq!(resend_bounds(&step), (0, 2_000));
    let step = machine.on(Input::Slow, &session, NOW + 59_000);
    assert_eq!(show(&step), "keep waiting 1000");
    // Refused at the cap: nothing is sent again.
    let mut machine = sent_bound(&held, &session);
    machine.on(wants_nonce(), &session, NOW + 60_000);
    let step = machine.on(Input::Loaded(Ok(Some(held))), &session, NOW + 60_000);
    assert_eq!(show(&step), "fail refresh_timeout");
}

#[test]
fn the_request_s_bounds_count_from_when_it_is_sent_not_from_the_lock() {
    let held = stale();
    let session = Session::new(Some(held.clone()));
    let mut machine = in_lock(&held, &session); // the lock at NOW
                                                // The store took 4 s to answer: the request goes out at NOW + 4 s
                                                // with the whole wait and its whole abort.
    let step = machine.on(Input::Loaded(Ok(Some(held))), &session, NOW + 4_000);
    assert_eq!(resend_bounds(&step), (10_000, 61_000));
    let step = machine.on(Input::Slow, &session, NOW + 14_000);
    assert_eq!(show(&step), "waiters timed out; keep waiting 50000");
}

#[test]
fn an_account_s_resend_is_not_checked_again() {
    let held = TokenSet {
        token_type: "DPoP".into(),
        dpop_jkt: Some("jkt-1".into()),
        ..account_set()
    };
    let session = Session::new(Some(held.clone()));
    let mut machine = checking_accounts(&held, &session);
    let inputs = vec![
        Input::Loaded(Ok(Some(held.clone()))),
        Input::AccountChecked(Ok(())),
        wants_nonce(),
        Input::Loaded(Ok(Some(held))),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert!(steps[0].starts_with("check account"), "{}", steps[0]);
    assert_eq!(
        steps[3],
        "send rt-1 10000 to https://auth.example/oauth/token"
    );
}

#[test]
fn a_nonce_refusal_of_an_unbound_set_is_the_server_s_error() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    assert_eq!(
        show(&on(&mut machine, wants_nonce(), &session)),
        "fail token_error"
    );
}

#[test]
fn a_failed_request_fails_the_refresh() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let step = on(
        &mut machine,
        Input::Answer(Err(Error::RefreshTimeout)),
        &session,
    );
    assert_eq!(show(&step), "fail refresh_timeout");
}

#[test]
fn invalid_grant_adopts_what_a_tab_without_the_lock_stored() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
    let inputs = vec![refused, Input::Loaded(Ok(Some(set(2, 0))))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["load", "adopt at-2 id-1 Sync; done at-2 id-1"]
    );
}

#[test]
fn invalid_grant_with_nothing_newer_ends_the_session() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
    let inputs = vec![
        refused,
        Input::Loaded(Ok(Some(stale()))),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "load",
            "clear Expired logins to 1699992800000",
            "publish ended Expired logins to 1699992800000; end Expired; revoke at-1 id-1; fail session_expired"
        ]
    );
}

#[test]
fn retry_after_holds_this_tab_and_tells_the_others() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let busy = serde_json::json!({"error": "temporarily_unavailable"});
    let step = on(&mut machine, answer(503, busy, Some(30)), &session);
    assert_eq!(
        show(&step),
        "hold off +30000 token_error; publish back off +30000; fail token_error"
    );
}

#[test]
fn another_error_keeps_every_token_and_holds_nothing() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let step = on(
        &mut machine,
        answer(500, serde_json::json!({}), None),
        &session,
    );
    assert_eq!(show(&step), "fail token_error");
}

#[test]
fn a_rotation_is_written_then_broadcast_then_used() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let inputs = vec![
        rotated(None),
        Input::Loaded(Ok(Some(stale()))),
        Input::Saved(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "resume requests; load",
            "save at-2 id-1",
            "unsaved=false; publish at-2 id-1 unsaved=false; adopt at-2 id-1 Refresh; done at-2 id-1"
        ]
    );
}

/// `stale()`'s refresh, sent, then its session signed out at `ended_at`,
/// then rotated and `after` fed in turn: the steps after the rotation's.
fn rotated_after_a_sign_out(ended_at: u64, after: Vec<Input>) -> Vec<String> {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    session.end(EndReason::SignedOut, ended_at);
    let step = on(&mut machine, rotated(None), &session);
    assert_eq!(show(&step), "resume requests; load");
    run(&mut machine, &session, after)
}

#[test]
fn a_rotation_for_a_session_that_ended_while_out_clears_the_spent_set_and_is_retired() {
    // The sign-out's first clear did not take effect, and its second waits
    // for the lock: a tab that has not heard the end yet and takes the lock
    // next must not find the refresh token the server just rotated.
    let after = vec![Input::Loaded(Ok(Some(stale()))), Input::Cleared(Ok(()))];
    assert_eq!(
        rotated_after_a_sign_out(NOW, after),
        [
            "clear SignedOut logins to 1700000000000",
            "revoke at-2 id-1; fail not_authenticated"
        ]
    );
}

#[test]
fn a_rotation_for_an_ended_session_is_retired_even_when_the_clear_fails() {
    let after = vec![
        Input::Loaded(Ok(Some(stale()))),
        Input::Cleared(Err(quota_exceeded())),
    ];
    assert_eq!(
        rotated_after_a_sign_out(NOW, after)[1],
        "revoke at-2 id-1; fail not_authenticated"
    );
}

#[test]
fn a_rotation_for_an_ended_session_leaves_an_emptied_store_alone() {
    assert_eq!(
        rotated_after_a_sign_out(NOW, vec![Input::Loaded(Ok(None))]),
        ["revoke at-2 id-1; fail not_authenticated"]
    );
}

#[test]
fn a_rotation_for_an_ended_session_leaves_a_later_login_s_set_alone() {
    let after = vec![Input::Loaded(Ok(Some(new_login())))];
    assert_eq!(
        rotated_after_a_sign_out(NOW - 1, after),
        ["revoke at-2 id-1; fail not_authenticated"]
    );
}

#[test]
fn a_rotation_for_an_ended_session_leaves_another_set_of_it_alone() {
    // Neither the spent set nor the rotation: not this refresh's to clear
    // (the ending tab's second clear takes it).
    assert_eq!(
        rotated_after_a_sign_out(NOW, vec![Input::Loaded(Ok(Some(set(5, 0))))]),
        ["revoke at-2 id-1; fail not_authenticated"]
    );
}

#[test]
fn a_rotation_for_an_ended_session_is_retired_when_the_store_cannot_be_read() {
    let unreadable = Input::Loaded(Err(Error::Storage {
        reason: "gone".into(),
    }));
    assert_eq!(
        rotated_after_a_sign_out(NOW, vec![unreadable]),
        ["revoke at-2 id-1; fail not_authenticated"]
    );
}

#[test]
fn a_newer_stored_set_wins_over_the_rotation_which_is_not_revoked() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let newer = TokenSet {
        login_at_ms: NOW,
        ..set(5, 0)
    };
    let inputs = vec![rotated(Some("id-2")), Input::Loaded(Ok(Some(newer)))];
    // The newer set keeps its own ID token: the refreshed one is not its to
    // check.
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "resume requests; load",
            "adopt at-5 id-1 Sync; done at-5 id-1"
        ]
    );
}

#[test]
fn a_store_cleared_while_out_is_a_sign_out_that_stays() {
    // Its end covers this login; an end record an earlier latchkey wrote,
    // or none, covers every login.
    let ends = [
        Some(EndRecord::new(EndReason::SignedOut, NOW)),
        Some(EndRecord {
            reason: EndReason::SignedOut,
            until_ms: None,
        }),
        None,
    ];
    for end in ends {
        let session = Session::new(Some(stale()));
        let mut machine = sent(&session);
        let inputs = vec![
            rotated(None),
            Input::Loaded(Ok(None)),
            Input::EndReason(end),
        ];
        assert_eq!(
            run(&mut machine, &session, inputs),
            [
                "resume requests; load",
                "end reason",
                "revoke at-2 id-1; end SignedOut; fail not_authenticated"
            ]
        );
    }
}

#[test]
fn a_store_emptied_by_an_earlier_sign_out_while_out_gets_the_rotation_written() {
    // A sign-out called before this login cleared the store after the
    // login's write: the rotation is the session, not revoked.
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let earlier = EndRecord::new(EndReason::SignedOut, stale().login_at_ms - 1);
    let inputs = vec![
        rotated(None),
        Input::Loaded(Ok(None)),
        Input::EndReason(Some(earlier)),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["resume requests; load", "end reason", "save at-2 id-1"]
    );
}

#[test]
fn a_failed_write_keeps_the_set_in_use_and_holds_the_lock_for_the_broadcast() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let full = quota_exceeded();
    let inputs = vec![
        rotated(None),
        Input::Loaded(Ok(Some(stale()))),
        Input::Saved(Err(full)),
        Input::Slept,
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "resume requests; load",
            "save at-2 id-1",
            "persist failed storage_error; unsaved=true; publish at-2 id-1 unsaved=true; sleep 250",
            "adopt at-2 id-1 Refresh; done at-2 id-1"
        ]
    );
}

#[test]
fn a_sign_out_during_the_write_retires_the_set() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let inputs = vec![rotated(None), Input::Loaded(Ok(Some(stale())))];
    run(&mut machine, &session, inputs);
    session.end(EndReason::SignedOut, NOW);
    let inputs = vec![
        Input::Saved(Ok(())),
        Input::Loaded(Ok(Some(set(2, 0)))),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "unsaved=false; publish at-2 id-1 unsaved=false; load",
            "clear SignedOut logins to 1700000000000",
            "revoke at-2 id-1; fail not_authenticated"
        ]
    );
}

#[test]
fn a_sign_out_during_a_failed_write_clears_the_spent_set_left_stored() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let inputs = vec![rotated(None), Input::Loaded(Ok(Some(stale())))];
    run(&mut machine, &session, inputs);
    let failed = on(&mut machine, Input::Saved(Err(quota_exceeded())), &session);
    assert!(show(&failed).ends_with("sleep 250"), "{}", show(&failed));
    session.end(EndReason::SignedOut, NOW);
    let inputs = vec![
        Input::Slept,
        Input::Loaded(Ok(Some(stale()))),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "load",
            "clear SignedOut logins to 1700000000000",
            "revoke at-2 id-1; fail not_authenticated"
        ]
    );
}

#[test]
fn a_login_during_the_write_wins_and_is_written_back() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let inputs = vec![rotated(Some("id-2")), Input::Loaded(Ok(Some(stale())))];
    run(&mut machine, &session, inputs);
    let login = new_login();
    session.adopt(login, TokenSource::Login);
    let inputs = vec![Input::Saved(Ok(())), Input::Saved(Ok(()))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "unsaved=false; publish at-2 id-1 unsaved=false; save at-9 id-1",
            "unsaved=false; publish at-9 id-1 unsaved=false; done at-9 id-1"
        ]
    );
}

#[test]
fn a_login_during_a_failed_write_wins_without_a_second_write() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let inputs = vec![rotated(None), Input::Loaded(Ok(Some(stale())))];
    run(&mut machine, &session, inputs);
    let login = new_login();
    session.adopt(login, TokenSource::Login);
    let full = quota_exceeded();
    let failed = on(&mut machine, Input::Saved(Err(full)), &session);
    assert_eq!(
        show(&failed),
        "persist failed storage_error; unsaved=true; publish at-2 id-1 unsaved=true; sleep 250"
    );
    session.set_unsaved(true); // as the driver does with the acts above
    let step = on(&mut machine, Input::Slept, &session);
    assert_eq!(show(&step), "done at-9 id-1");
}

#[test]
fn an_expiry_of_an_older_session_heard_while_waiting_does_not_discard_this_rotation() {
    // This tab waited for the lock with the old session's set; meanwhile
    // that session expired elsewhere and a new login (at-9) came: the
    // rotation of the new login's set is the session, and is written.
    let session = Session::new(Some(stale()));
    let (mut machine, _) =
        RefreshMachine::start(stale().access_token, POLICY, true, false, &session);
    session.end(EndReason::Expired, stale().login_at_ms);
    let login = TokenSet {
        login_at_ms: NOW - HOUR_MS,
        ..set(9, HOUR_MS - 10_000)
    };
    session.adopt(login.clone(), TokenSource::Sync);
    on(&mut machine, Input::Locked(Ok(())), &session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(login))), &session);
    assert_eq!(show(&step), "send rt-9 10000");
    let step = on(&mut machine, rotated(None), &session);
    assert_eq!(show(&step), "resume requests; load");
}

#[test]
fn a_rotation_out_when_the_session_expired_elsewhere_is_revoked() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    session.end(EndReason::Expired, stale().login_at_ms);
    let inputs = vec![
        rotated(None),
        Input::Loaded(Ok(Some(stale()))),
        Input::Cleared(Ok(())),
    ];
    // The store keeps the end's own reason.
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "resume requests; load",
            "clear Expired logins to 1699992800000",
            "revoke at-2 id-1; fail not_authenticated"
        ]
    );
}

#[test]
fn the_base_is_decided_as_of_the_moment_the_lock_was_taken() {
    // A sign-out heard while the store is read does not change which set
    // the read is weighed against: this tab's, as it was when locked.
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    session.end(EndReason::SignedOut, NOW);
    let corrupt = Error::CorruptRecord {
        reason: "bad".into(),
    };
    let step = on(&mut machine, Input::Loaded(Err(corrupt)), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn a_session_found_ended_ends_here_as_of_the_moment_the_lock_was_taken() {
    // A login another tab completes while the store is read is later than
    // this end, so its broadcast is still adopted here.
    let session = Session::new(Some(stale()));
    let held = stale().access_token;
    let (mut machine, _) = RefreshMachine::start(held, POLICY, true, false, &session);
    machine.on(Input::Locked(Ok(())), &session, NOW);
    machine.on(Input::Loaded(Ok(None)), &session, NOW + 4_000);
    let step = machine.on(Input::EndReason(None), &session, NOW + 8_000);
    let [Act::End { at, .. }] = step.acts.as_slice() else {
        panic!("{}", show(&step));
    };
    assert_eq!(*at, NOW);
}

/// A machine that wrote `at-2` with the previous ID token and now asks
/// for the new one (`id-2`) to be checked.
fn checking(session: &Session) -> RefreshMachine {
    let mut machine = sent(session);
    let inputs = vec![
        rotated(Some("id-2")),
        Input::Loaded(Ok(Some(stale()))),
        Input::Saved(Ok(())),
    ];
    let steps = run(&mut machine, session, inputs);
    assert_eq!(
        steps[2],
        "unsaved=false; publish at-2 id-1 unsaved=false; adopt at-2 id-1 Refresh; \
         check at-2 id-2 for at-1 id-1"
    );
    // The driver performs the adoption before the check's answer comes.
    session.adopt(set_2_with("id-1"), TokenSource::Refresh);
    machine
}

/// `at-2` as the rotation above made it, with ID token `id`.
fn set_2_with(id: &str) -> TokenSet {
    TokenSet {
        id_token: Some(IdToken::new(id.into())),
        ..set(2, 0)
    }
}

#[test]
fn a_verified_id_token_is_written_and_used() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    let inputs = vec![Input::Checked(Ok(())), Input::Saved(Ok(()))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "save at-2 id-2",
            "unsaved=false; publish at-2 id-2 unsaved=false; adopt at-2 id-2 Refresh; done at-2 id-2"
        ]
    );
}

#[test]
fn a_login_during_the_verified_write_wins_and_is_written_back() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    let step = on(&mut machine, Input::Checked(Ok(())), &session);
    assert_eq!(show(&step), "save at-2 id-2");
    let login = new_login();
    session.adopt(login, TokenSource::Login);
    let inputs = vec![Input::Saved(Ok(())), Input::Saved(Ok(()))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "unsaved=false; publish at-2 id-2 unsaved=false; save at-9 id-1",
            "unsaved=false; publish at-9 id-1 unsaved=false; done at-9 id-1"
        ]
    );
}

#[test]
fn a_login_during_a_failed_verified_write_wins_without_a_second_write() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    on(&mut machine, Input::Checked(Ok(())), &session);
    let login = new_login();
    session.adopt(login, TokenSource::Login);
    let full = quota_exceeded();
    let failed = on(&mut machine, Input::Saved(Err(full)), &session);
    assert_eq!(
        show(&failed),
        "persist failed storage_error; unsaved=true; publish at-2 id-2 unsaved=true; sleep 250"
    );
    session.set_unsaved(true); // as the driver does with the acts above
    let step = on(&mut machine, Input::Slept, &session);
    assert_eq!(show(&step), "done at-9 id-1");
}

#[test]
fn a_sign_out_during_the_verified_write_is_not_undone_here() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    on(&mut machine, Input::Checked(Ok(())), &session);
    session.end(EndReason::SignedOut, NOW);
    let inputs = vec![
        Input::Saved(Ok(())),
        Input::Loaded(Ok(Some(set_2_with("id-2")))),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "unsaved=false; publish at-2 id-2 unsaved=false; load",
            "clear SignedOut logins to 1700000000000",
            "revoke at-2 id-2; fail not_authenticated"
        ]
    );
}

#[test]
fn a_verified_id_token_after_a_failed_write_is_broadcast_only() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    session.set_unsaved(true);
    let step = on(&mut machine, Input::Checked(Ok(())), &session);
    assert_eq!(
        show(&step),
        "publish at-2 id-2 unsaved=true; adopt at-2 id-2 Refresh; done at-2 id-2"
    );
}

#[test]
fn a_verified_id_token_for_a_set_replaced_meanwhile_is_dropped() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    session.adopt(set(3, 0), TokenSource::Sync);
    let step = on(&mut machine, Input::Checked(Ok(())), &session);
    assert_eq!(show(&step), "done at-2 id-1");
}

#[test]
fn an_id_token_that_is_not_this_user_s_ends_the_session() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    let inputs = vec![
        Input::Checked(Err(Error::IdTokenSubMismatch)),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "revoke at-2 id-1; clear Expired logins to 1699992800000",
            "publish ended Expired logins to 1699992800000; end Expired; fail id_token_sub_mismatch"
        ]
    );
}

#[test]
fn an_id_token_that_cannot_be_checked_now_keeps_the_previous_one() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    let unreachable = Error::JwksUnavailable {
        reason: "offline".into(),
    };
    let step = on(&mut machine, Input::Checked(Err(unreachable)), &session);
    assert_eq!(show(&step), "done at-2 id-1");
}

#[test]
fn an_id_token_whose_key_is_not_published_yet_keeps_the_previous_one() {
    // A stale cached key set during a rollover: the refreshed set stays
    // the session, the previous verified ID token with it.
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    let step = on(
        &mut machine,
        Input::Checked(Err(Error::IdTokenKeyNotFound)),
        &session,
    );
    assert_eq!(show(&step), "done at-2 id-1");
}

#[test]
fn an_id_token_with_a_bad_signature_ends_the_session() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    let inputs = vec![
        Input::Checked(Err(Error::IdTokenInvalidSignature)),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "revoke at-2 id-1; clear Expired logins to 1699992800000",
            "publish ended Expired logins to 1699992800000; end Expired; fail id_token_invalid_signature"
        ]
    );
}

#[test]
fn without_openid_no_id_token_is_kept_or_checked() {
    let session = Session::new(Some(stale()));
    let held = stale();
    let (mut machine, _) =
        RefreshMachine::start(held.access_token.clone(), POLICY, false, false, &session);
    let inputs = vec![
        Input::Locked(Ok(())),
        Input::Loaded(Ok(Some(held.clone()))),
        rotated(Some("id-2")),
        Input::Loaded(Ok(Some(held))),
        Input::Saved(Ok(())),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(
        steps[4],
        "unsaved=false; publish at-2 - unsaved=false; adopt at-2 - Refresh; done at-2 -"
    );
}

#[test]
fn a_failed_clear_still_ends_the_session() {
    // Its record holds a refresh token the server no longer takes.
    let held = TokenSet {
        refresh_token: None,
        ..set(1, HOUR_MS + 1)
    };
    let session = Session::new(Some(held.clone()));
    let mut machine = in_lock(&held, &session);
    let stalled = Error::Storage {
        reason: "stalled".into(),
    };
    let inputs = vec![Input::Loaded(Ok(Some(held))), Input::Cleared(Err(stalled))];
    let steps = run(&mut machine, &session, inputs);
    assert!(steps[1].ends_with("fail session_expired"), "{}", steps[1]);
    assert!(steps[1].contains("end Expired"), "{}", steps[1]);
}

#[test]
fn an_input_out_of_turn_ends_the_refresh_instead_of_hanging() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let step = on(&mut machine, Input::Cleared(Ok(())), &session);
    assert_eq!(show(&step), "fail refresh_timeout");
}

#[test]
fn retry_after_is_capped() {
    let error = Error::TokenEndpoint {
        status: 429,
        error: "slow_down".into(),
        error_description: None,
        error_uri: None,
        retry_after_s: Some(86_400),
    };
    let (until, _) = back_off(&error, NOW).unwrap();
    assert_eq!(until, NOW + MAX_RETRY_AFTER_MS);
    assert!(back_off(&Error::RefreshTimeout, NOW).is_none());
}

/// `stale()` of an AT Protocol account whose own server is `AS`.
fn account_set() -> TokenSet {
    TokenSet {
        atproto: Some(Box::new(account())),
        ..stale()
    }
}

/// A machine for `held` that checks accounts (the `atproto` profile), in
/// the lock and asked for the stored set.
fn checking_accounts(held: &TokenSet, session: &Session) -> RefreshMachine {
    let (mut machine, _) =
        RefreshMachine::start(held.access_token.clone(), POLICY, true, true, session);
    assert_eq!(
        show(&on(&mut machine, Input::Locked(Ok(())), session)),
        "load"
    );
    machine
}

#[test]
fn an_account_is_checked_again_then_refreshed_at_its_own_server() {
    let held = account_set();
    let session = Session::new(Some(held.clone()));
    let mut machine = checking_accounts(&held, &session);
    let steps = run(
        &mut machine,
        &session,
        vec![Input::Loaded(Ok(Some(held))), Input::AccountChecked(Ok(()))],
    );
    assert_eq!(
        steps,
        [
            "check account did:plc:ewvi7nxzyoun6zhxrhs64oiz 10000",
            "send rt-1 10000 to https://auth.example/oauth/token",
        ]
    );
}

#[test]
fn an_account_that_fails_its_check_sends_nothing_and_keeps_its_session() {
    let held = account_set();
    let session = Session::new(Some(held.clone()));
    let mut machine = checking_accounts(&held, &session);
    let moved = Error::DidResolution {
        reason: "the account's PDS names another server".into(),
    };
    let steps = run(
        &mut machine,
        &session,
        vec![
            Input::Loaded(Ok(Some(held))),
            Input::AccountChecked(Err(moved)),
        ],
    );
    // No `clear`, no `end`: only the call fails.
    assert_eq!(
        steps,
        [
            "check account did:plc:ewvi7nxzyoun6zhxrhs64oiz 10000",
            "fail did_resolution_failed"
        ]
    );
}

#[test]
fn a_set_without_an_account_is_refreshed_at_once_by_a_client_that_checks_accounts() {
    let session = Session::new(Some(stale()));
    let mut machine = checking_accounts(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(stale()))), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn without_the_profile_an_account_s_set_refreshes_at_the_client_s_endpoint() {
    let held = account_set();
    let session = Session::new(Some(held.clone()));
    let mut machine = in_lock(&held, &session);
    let step = on(&mut machine, Input::Loaded(Ok(Some(held))), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn the_callers_wait_covers_the_account_s_check_and_the_request() {
    let held = account_set();
    let session = Session::new(Some(held.clone()));
    let mut machine = checking_accounts(&held, &session);
    on(&mut machine, Input::Loaded(Ok(Some(held))), &session);
    // The check took 4 s of the 10 s timeout: 6 s are left for the answer.
    let step = machine.on(Input::AccountChecked(Ok(())), &session, NOW + 4_000);
    assert_eq!(
        show(&step),
        "send rt-1 6000 to https://auth.example/oauth/token"
    );
}

/// This tab heard a sign-out (logins until `NOW`) and holds nothing.
fn signed_out_here() -> Session {
    let session = Session::new(Some(stale()));
    session.end(EndReason::SignedOut, NOW);
    session
}

#[test]
fn an_ended_login_s_set_still_in_the_store_is_neither_refreshed_nor_used() {
    // A refresh out at the sign-out wrote its rotation after the sign-out's
    // first clear; the signing-out tab clears it again once it has the lock.
    // A call of this tab made with the token it held before hearing the end
    // must not sign the tab back in with it.
    for stored in [stale(), set(2, 0)] {
        let session = signed_out_here();
        let mut machine = in_lock(&stale(), &session);
        let inputs = vec![
            Input::Loaded(Ok(Some(stored))),
            Input::EndReason(Some(EndRecord::new(EndReason::SignedOut, NOW))),
        ];
        assert_eq!(
            run(&mut machine, &session, inputs),
            ["end reason", "end SignedOut; fail not_authenticated"]
        );
    }
}

#[test]
fn invalid_grant_after_a_sign_out_ends_for_the_kept_reason_heard_or_not() {
    // The sign-out (at NOW, after this set's login) revoked the refresh
    // token in flight: its tab cleared the store and told everyone why.
    // Heard here while the request was out or not yet, nothing is cleared
    // or told again, and the store's record stays the sign-out's (an
    // expiry's would name only this set's login).
    for heard in [true, false] {
        let session = Session::new(Some(stale()));
        let mut machine = sent(&session);
        if heard {
            session.end(EndReason::SignedOut, NOW);
        }
        let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
        let inputs = vec![
            refused,
            Input::Loaded(Ok(None)),
            Input::EndReason(Some(EndRecord::new(EndReason::SignedOut, NOW))),
        ];
        assert_eq!(
            run(&mut machine, &session, inputs),
            [
                "load",
                "end reason",
                "end SignedOut; fail not_authenticated"
            ],
            "heard: {heard}"
        );
    }
}

#[test]
fn invalid_grant_with_an_empty_store_and_no_end_covering_it_expires() {
    // No record, or one of earlier logins only: the server refused this
    // set, which is over everywhere.
    let earlier = EndRecord::new(EndReason::SignedOut, stale().login_at_ms - 1);
    for end in [None, Some(earlier)] {
        let session = Session::new(Some(stale()));
        let mut machine = sent(&session);
        let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
        let inputs = vec![refused, Input::Loaded(Ok(None)), Input::EndReason(end)];
        assert_eq!(
            run(&mut machine, &session, inputs),
            [
                "load",
                "end reason",
                "clear Expired logins to 1699992800000"
            ],
            "{end:?}"
        );
    }
}

#[test]
fn invalid_grant_with_a_later_login_held_here_leaves_the_store_to_it() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    session.adopt(new_login(), TokenSource::Sync);
    let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
    let inputs = vec![refused, Input::Loaded(Ok(Some(stale())))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "load",
            "publish ended Expired logins to 1699992800000; end Expired; revoke at-1 id-1; fail session_expired"
        ]
    );
}

#[test]
fn an_id_token_refused_after_a_later_login_came_leaves_the_store_to_it() {
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    session.adopt(new_login(), TokenSource::Login);
    let inputs = vec![Input::Checked(Err(Error::IdTokenSubMismatch))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["revoke at-2 id-1; publish ended Expired logins to 1699992800000; end Expired; fail id_token_sub_mismatch"]
    );
}

#[test]
fn this_tab_s_set_as_of_the_lock_is_not_refreshed_once_its_end_was_heard() {
    // The sign-out's message arrived between the lock and the read: this
    // tab's newer set (its write failed) is the ended login's too.
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    session.end(EndReason::SignedOut, NOW);
    let inputs = vec![
        Input::Loaded(Ok(Some(set(0, HOUR_MS)))),
        Input::EndReason(Some(EndRecord::new(EndReason::SignedOut, NOW))),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["end reason", "end SignedOut; fail not_authenticated"]
    );
}

#[test]
fn a_later_login_heard_here_is_refreshed_over_an_ended_login_s_stored_set() {
    let later = TokenSet {
        login_at_ms: NOW - HOUR_MS,
        rotation: 0,
        ..stale()
    };
    let session = Session::new(Some(later.clone()));
    session.end(EndReason::SignedOut, NOW - HOUR_MS - 1);
    let mut machine = in_lock(&later, &session);
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    assert_eq!(show(&step), "end reason", "a cleared store: over");
    let mut machine = in_lock(&later, &session);
    let ended = set(5, HOUR_MS - 10_000);
    let step = on(&mut machine, Input::Loaded(Ok(Some(ended))), &session);
    assert_eq!(show(&step), "send rt-1 10000");
}

#[test]
fn an_ended_login_s_stored_set_ends_only_that_login_here() {
    // Nothing held at the lock; a later login heard before the read stays.
    let session = signed_out_here();
    let mut machine = in_lock(&stale(), &session);
    session.adopt(
        TokenSet {
            login_at_ms: NOW + 1,
            ..new_login()
        },
        TokenSource::Sync,
    );
    on(&mut machine, Input::Loaded(Ok(Some(stale()))), &session);
    let step = on(
        &mut machine,
        Input::EndReason(Some(EndRecord::new(EndReason::SignedOut, NOW))),
        &session,
    );
    let at = step.acts.iter().find_map(|act| match act {
        Act::End { at, .. } => Some(*at),
        _ => None,
    });
    assert_eq!(at, Some(stale().login_at_ms));
}

#[test]
fn a_refused_set_is_cleared_when_the_later_login_held_here_never_reached_the_store() {
    // The new login's write failed: the store still holds the refused set,
    // which a reload would otherwise start from.
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    session.adopt(new_login(), TokenSource::Sync);
    session.set_unsaved(true);
    let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
    let steps = run(
        &mut machine,
        &session,
        vec![refused, Input::Loaded(Ok(Some(stale())))],
    );
    assert_eq!(steps[1], "clear Expired logins to 1699992800000");
    let session = Session::new(Some(stale()));
    let mut machine = checking(&session);
    session.adopt(new_login(), TokenSource::Login);
    session.set_unsaved(true);
    let inputs = vec![Input::Checked(Err(Error::IdTokenSubMismatch))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["revoke at-2 id-1; clear Expired logins to 1699992800000"]
    );
}

/// The set a step writes.
fn saved(step: &Step) -> &TokenSet {
    match &step.wait {
        Wait::Save(tokens) => tokens,
        _ => panic!("not a write: {}", show(step)),
    }
}

/// Answers the server may rotate with and latchkey must still refuse:
/// each carries the new refresh token `rt-2`.
fn refused_rotations() -> Vec<(&'static str, serde_json::Value)> {
    let rotation = serde_json::json!({
        "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-2", "id_token": "id-2",
    });
    let with = |field: &str, value: serde_json::Value| {
        let mut json = rotation.clone();
        json[field] = value;
        json
    };
    let mut no_access_token = rotation.clone();
    no_access_token
        .as_object_mut()
        .unwrap()
        .remove("access_token");
    vec![
        ("malformed_token_response", no_access_token),
        ("unsupported_token_type", with("token_type", "mac".into())),
        (
            "malformed_token_response",
            with("expires_in", "soon".into()),
        ),
    ]
}

#[test]
fn a_refused_answer_that_rotated_is_written_and_the_refresh_fails() {
    for (code, json) in refused_rotations() {
        let session = Session::new(Some(stale()));
        let mut machine = sent(&session);
        let step = on(&mut machine, answer(200, json, None), &session);
        assert_eq!(show(&step), "resume requests; load", "{code}");
        let step = on(&mut machine, Input::Loaded(Ok(Some(stale()))), &session);
        let kept = saved(&step).clone();
        // The new refresh token with everything else of the set it
        // replaces: the refused access token and ID token are never used.
        assert_eq!(kept.refresh_token, Some(RefreshToken::new("rt-2".into())));
        assert_eq!(
            kept,
            TokenSet {
                refresh_token: kept.refresh_token.clone(),
                issued_at_ms: NOW,
                rotation: stale().rotation + 1,
                ..stale()
            },
            "{code}"
        );
        let step = on(&mut machine, Input::Saved(Ok(())), &session);
        assert_eq!(
            show(&step),
            format!(
                "unsaved=false; publish at-1 id-1 unsaved=false; adopt at-1 id-1 Refresh; fail {code}"
            )
        );
    }
}

#[test]
fn a_refused_answer_that_rotated_then_a_failed_write_is_broadcast_and_held() {
    let (_, json) = refused_rotations().remove(0);
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let inputs = vec![
        answer(200, json, None),
        Input::Loaded(Ok(Some(stale()))),
        Input::Saved(Err(quota_exceeded())),
        Input::Slept,
    ];
    assert_eq!(
        run(&mut machine, &session, inputs)[2..],
        [
            format!("persist failed storage_error; unsaved=true; publish at-1 id-1 unsaved=true; sleep {BROADCAST_GRACE_MS}"),
            "adopt at-1 id-1 Refresh; fail malformed_token_response".into(),
        ]
    );
}

#[test]
fn a_refused_answer_without_a_new_refresh_token_keeps_the_session_as_it_was() {
    for refresh_token in [None, Some("rt-1"), Some("")] {
        let mut json = serde_json::json!({"token_type": "Bearer", "expires_in": 3600});
        if let Some(rt) = refresh_token {
            json["refresh_token"] = rt.into();
        }
        let session = Session::new(Some(stale()));
        let mut machine = sent(&session);
        let step = on(&mut machine, answer(200, json, None), &session);
        assert_eq!(
            show(&step),
            "fail malformed_token_response",
            "{refresh_token:?}"
        );
    }
}

#[test]
fn an_error_answer_carrying_a_refresh_token_is_not_a_rotation() {
    let json = serde_json::json!({"error": "server_error", "refresh_token": "rt-2"});
    for status in [200, 500] {
        let session = Session::new(Some(stale()));
        let mut machine = sent(&session);
        let step = on(&mut machine, answer(status, json.clone(), None), &session);
        assert_eq!(show(&step), "fail token_error", "{status}");
    }
}

#[test]
fn invalid_grant_adopts_a_kept_rotation_with_the_same_access_token() {
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let kept = TokenSet {
        refresh_token: Some(RefreshToken::new("rt-2".into())),
        rotation: 2,
        ..stale()
    };
    let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
    let inputs = vec![refused, Input::Loaded(Ok(Some(kept)))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["load", "adopt at-1 id-1 Sync; done at-1 id-1"]
    );
}

#[test]
fn an_unreadable_record_removed_then_an_empty_store_before_the_write_is_no_sign_out() {
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let corrupt = Error::CorruptRecord {
        reason: "bad".into(),
    };
    let inputs = vec![
        Input::Loaded(Err(corrupt)),
        rotated(None),
        // The record machine removed the corrupt record: the store is empty.
        Input::Loaded(Ok(None)),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["send rt-1 10000", "resume requests; load", "save at-2 id-1"]
    );
}

#[test]
fn invalid_grant_with_only_an_older_set_stored_ends_the_session() {
    // This tab's write of set 1 failed: the store still holds set 0, whose
    // refresh token was spent by set 1's refresh.
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let refused = answer(400, serde_json::json!({"error": "invalid_grant"}), None);
    let older = set(0, HOUR_MS);
    let inputs = vec![refused, Input::Loaded(Ok(Some(older)))];
    assert_eq!(
        run(&mut machine, &session, inputs),
        ["load", "clear Expired logins to 1699992800000"]
    );
}

#[test]
fn an_unsaved_tab_reads_the_end_record_before_writing_to_an_empty_store() {
    // Tab A holds at-1/rt-1 from a sibling's unsaved broadcast; the store
    // holds the older at-0/rt-0. A sends rt-1; tab B signs out (first clear,
    // no lock: record {SignedOut, NOW}); the answer reaches A before B's
    // Ended broadcast.
    let session = Session::new(Some(stale()));
    session.set_unsaved(true);
    let mut machine = in_lock(&stale(), &session);
    let step = on(
        &mut machine,
        Input::Loaded(Ok(Some(set(0, HOUR_MS)))),
        &session,
    );
    assert_eq!(show(&step), "send rt-1 10000");
    let step = on(&mut machine, rotated(None), &session);
    assert_eq!(show(&step), "resume requests; load");
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    // The store may be empty because of a sign-out's first clear, not of
    // the failed write: its end record is read before anything is written.
    assert_eq!(
        show(&step),
        "end reason",
        "the rotation is written over the sign-out"
    );
    let end = EndRecord::new(EndReason::SignedOut, NOW);
    let step = on(&mut machine, Input::EndReason(Some(end)), &session);
    assert!(show(&step).starts_with("revoke"), "{}", show(&step));
    assert!(!show(&step).contains("save"), "{}", show(&step));
}

#[test]
fn an_unsaved_tab_finding_the_store_empty_reads_its_end_record_before_refreshing() {
    // Tab A's own write failed (unsaved). Tab B signs out (first clear);
    // A takes the lock before hearing B's Ended broadcast.
    let session = Session::new(Some(stale()));
    session.set_unsaved(true);
    let mut machine = in_lock(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    // The store's end record {SignedOut, NOW} covers rt-1's login: rt-1 is
    // not presented after the sign-out.
    assert_eq!(show(&step), "end reason", "refreshed over the sign-out");
    let end = EndRecord::new(EndReason::SignedOut, NOW);
    let step = on(&mut machine, Input::EndReason(Some(end)), &session);
    assert_eq!(show(&step), "end SignedOut; fail not_authenticated");
}

#[test]
fn an_end_found_before_the_write_does_not_end_a_later_login_heard_after() {
    // The refresh was out when tab B signed out (record {SignedOut,
    // NOW - 1_000}) and cleared the store; a login C completed after it
    // arrives here after this tab's answer.
    let session = Session::new(Some(stale()));
    let mut machine = sent(&session);
    let step = on(&mut machine, rotated(None), &session);
    assert_eq!(show(&step), "resume requests; load");
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    assert_eq!(show(&step), "end reason");
    let end = EndRecord::new(EndReason::SignedOut, NOW - 1_000);
    let step = on(&mut machine, Input::EndReason(Some(end)), &session);
    let ends: Vec<_> = step
        .acts
        .iter()
        .filter_map(|act| match act {
            Act::End { reason, at } => Some((*reason, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [(EndReason::SignedOut, NOW - 1_000)]);
    for (reason, at) in ends {
        session.end(reason, at);
    }
    let later = TokenSet {
        login_at_ms: NOW - 500,
        issued_at_ms: NOW - 500,
        ..set(9, 0)
    };
    let told = SessionMessage::Tokens {
        tokens: later.clone(),
        unsaved: false,
    };
    session.receive(told, NOW + 10);
    assert_eq!(
        session.tokens().map(|t| t.access_token),
        Some(later.access_token)
    );
}

#[test]
fn an_end_found_in_the_store_does_not_end_a_later_login_heard_after() {
    // Tab B signed out at NOW - 1_000 (its record {SignedOut, NOW - 1_000});
    // its first clear removed tab C's login at NOW - 500, written just
    // before (C holds that login and broadcast it). This tab (A), still on
    // the older login, takes the lock at NOW before C's broadcast arrives.
    let signed_out_at = NOW - 1_000;
    let later = TokenSet {
        login_at_ms: NOW - 500,
        issued_at_ms: NOW - 500,
        ..set(9, 0)
    };
    let session = Session::new(Some(stale()));
    let mut machine = in_lock(&stale(), &session);
    let step = on(&mut machine, Input::Loaded(Ok(None)), &session);
    assert_eq!(show(&step), "end reason");
    let end = EndRecord::new(EndReason::SignedOut, signed_out_at);
    let step = on(&mut machine, Input::EndReason(Some(end)), &session);
    assert_eq!(show(&step), "end SignedOut; fail not_authenticated");
    for act in step.acts {
        if let Act::End { reason, at } = act {
            session.end(reason, at);
        }
    }
    // C's broadcast of its later login arrives.
    session.receive(
        SessionMessage::Tokens {
            tokens: later.clone(),
            unsaved: false,
        },
        NOW + 10,
    );
    assert_eq!(
        session.tokens().map(|t| t.access_token),
        Some(later.access_token),
        "the later login, after the sign-out, is ignored in this tab"
    );
}
