//! The sign-in and sign-out machines, one test per transition, fed by hand.

use super::*;
use crate::core::fakes::POLICY;
use crate::core::{AccessToken, RefreshToken};

const NOW: u64 = 1_700_000_000_000;

/// Set `at-N` (refresh token `rt-N`) from a login at `login_at_ms`,
/// refreshed `n` times.
fn set(n: u32, login_at_ms: u64) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(format!("at-{n}")),
        token_type: "Bearer".into(),
        expires_at_ms: Some(login_at_ms + 3_600_000),
        refresh_token: Some(RefreshToken::new(format!("rt-{n}"))),
        scope: None,
        id_token: None,
        refresh_expires_at_ms: None,
        issued_at_ms: login_at_ms,
        login_at_ms,
        rotation: n.into(),
        dpop_jkt: None,
        atproto: None,
    }
}

fn show(step: &Step) -> String {
    crate::core::steps::shown::show(step, NOW)
}

fn run(machine: &mut dyn SessionMachine, session: &Session, inputs: Vec<Input>) -> Vec<String> {
    inputs
        .into_iter()
        .map(|input| show(&machine.on(input, session, NOW)))
        .collect()
}

/// The message of a sign-out called at `at`.
fn signed_out_at(at: u64) -> SessionMessage {
    SessionMessage::Ended {
        reason: EndReason::SignedOut,
        login_at_ms: Some(at),
    }
}

fn quota() -> Error {
    Error::Storage {
        reason: "quota".into(),
    }
}

#[test]
fn a_login_is_written_under_the_lock_then_used() {
    let session = Session::new(None);
    let (mut machine, first) = SignIn::start(set(9, NOW), &POLICY);
    assert_eq!(show(&first), "lock 20000");
    let inputs = vec![
        Input::Locked(Ok(())),
        Input::EndReason(None),
        Input::Saved(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "end reason",
            "save at-9 -",
            "publish at-9 - unsaved=false; unlock; unsaved=false; adopt at-9 - Login; done"
        ]
    );
}

#[test]
fn a_login_completes_when_it_is_written_after_a_sign_out_heard_meanwhile() {
    // Tab B exchanged its code at NOW - 100 and checked the ID token while
    // tab A signed out at NOW - 50; B and C heard it. B writes at NOW.
    let (b, c) = (Session::new(None), Session::new(None));
    let ended = signed_out_at(NOW - 50);
    b.receive(ended.clone(), NOW - 40);
    c.receive(ended, NOW - 40);
    let (mut machine, _) = SignIn::start(set(0, NOW - 100), &POLICY);
    machine.on(Input::Locked(Ok(())), &b, NOW);
    let kept = EndRecord::new(EndReason::SignedOut, NOW - 50);
    let Wait::Save(written) = machine.on(Input::EndReason(Some(kept)), &b, NOW).wait else {
        panic!("a login is written once the lock is taken");
    };
    assert_eq!(written.login_at_ms, NOW, "the login's time is its write's");
    let step = machine.on(Input::Saved(Ok(())), &b, NOW);
    let told = step.acts.iter().find_map(|act| match act {
        Act::Publish(SessionMessage::Tokens { tokens, .. }) => Some(tokens.clone()),
        _ => None,
    });
    assert_eq!(
        told,
        Some(written.clone()),
        "the other tabs are told the set written"
    );
    c.receive(
        SessionMessage::Tokens {
            tokens: written.clone(),
            unsaved: false,
        },
        NOW + 1,
    );
    assert_eq!(c.tokens(), Some(written.clone()), "C signs in with B");
    assert!(
        !b.has_ended(&written),
        "B's own refreshes will not take it as ended"
    );
}

#[test]
fn a_sign_out_heard_while_the_login_is_written_ends_it_here_too() {
    // B took the lock at NOW (the login's time); A signed out at NOW + 10,
    // which B and C heard while B's write was under way.
    let (b, c) = (Session::new(None), Session::new(None));
    let ended = signed_out_at(NOW + 10);
    let (mut machine, _) = SignIn::start(set(0, NOW - 100), &POLICY);
    machine.on(Input::Locked(Ok(())), &b, NOW);
    machine.on(Input::EndReason(None), &b, NOW);
    b.receive(ended.clone(), NOW + 15);
    c.receive(ended, NOW + 15);
    // The set just written is cleared under the lock, with the end that
    // covers it: the sign-out may be past its own clear (called in the
    // millisecond this lock was taken).
    let step = machine.on(Input::Saved(Ok(())), &b, NOW + 20);
    assert_eq!(show(&step), "clear SignedOut logins to 1700000000010");
    let step = machine.on(Input::Cleared(Ok(())), &b, NOW + 21);
    assert_eq!(show(&step), "unlock; revoke at-0 -; fail not_authenticated");
    assert_eq!((b.tokens(), c.tokens()), (None, None), "every tab agrees");
}

#[test]
fn a_sign_out_heard_while_an_unsaved_login_is_told_ends_it_here_too() {
    let b = Session::new(None);
    let (mut machine, _) = SignIn::start(set(0, NOW - 100), &POLICY);
    machine.on(Input::Locked(Ok(())), &b, NOW);
    machine.on(Input::EndReason(None), &b, NOW);
    let told = machine.on(Input::Saved(Err(quota())), &b, NOW + 5);
    assert_eq!(show(&told), "publish at-0 - unsaved=true; sleep 250");
    b.receive(signed_out_at(NOW + 10), NOW + 15);
    let step = machine.on(Input::Slept, &b, NOW + 255);
    assert_eq!(show(&step), "unlock; revoke at-0 -; fail not_authenticated");
    assert_eq!(b.tokens(), None);
}

#[test]
fn a_login_whose_lock_follows_a_sign_out_in_the_same_millisecond_is_later_than_it() {
    // A signed out at NOW (its first clear left {SignedOut, NOW}); B's lock
    // came in the same millisecond, before B heard it.
    let (b, c) = (Session::new(None), Session::new(None));
    let (mut machine, _) = SignIn::start(set(0, NOW - 100), &POLICY);
    machine.on(Input::Locked(Ok(())), &b, NOW);
    let kept = EndRecord::new(EndReason::SignedOut, NOW);
    // The clock is let pass the end, never stamped ahead of it.
    let step = machine.on(Input::EndReason(Some(kept)), &b, NOW);
    assert_eq!(show(&step), "sleep 1");
    let Wait::Save(written) = machine.on(Input::Slept, &b, NOW + 1).wait else {
        panic!("a login is written once the lock is taken");
    };
    assert_eq!(written.login_at_ms, NOW + 1);
    machine.on(Input::Saved(Ok(())), &b, NOW + 1);
    for tab in [&b, &c] {
        tab.receive(
            SessionMessage::Tokens {
                tokens: written.clone(),
                unsaved: false,
            },
            NOW + 1,
        );
        tab.receive(signed_out_at(NOW), NOW + 2);
        assert_eq!(
            tab.tokens(),
            Some(written.clone()),
            "not ended by the sign-out"
        );
    }
}

#[test]
fn a_login_keeps_a_time_later_than_its_write_s() {
    let (mut machine, _) = SignIn::start(set(0, NOW + 5), &POLICY);
    let session = Session::new(None);
    machine.on(Input::Locked(Ok(())), &session, NOW);
    let Wait::Save(written) = machine.on(Input::EndReason(None), &session, NOW).wait else {
        panic!("a login is written once the lock is taken");
    };
    assert_eq!(written.login_at_ms, NOW + 5);
}

#[test]
fn a_sign_out_tells_the_end_of_the_logins_until_its_call_only() {
    // A login B completed while the first message travelled stays in C.
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let first = run(
        &mut machine,
        &Session::new(None),
        vec![Input::Loaded(Ok(None)), Input::Cleared(Ok(()))],
    );
    assert_eq!(
        first[1],
        "publish ended SignedOut logins to 1700000000000; end SignedOut; lock 70000"
    );
    let c = Session::new(Some(set(0, NOW + 5)));
    c.receive(signed_out_at(NOW), NOW + 20);
    assert_eq!(c.tokens(), Some(set(0, NOW + 5)));
}

#[test]
fn a_login_goes_on_without_the_lock() {
    let session = Session::new(None);
    let (mut machine, _) = SignIn::start(set(9, NOW), &POLICY);
    let step = machine.on(Input::Locked(Err(Error::LockUnavailable)), &session, NOW);
    // The store's end is read all the same: a login without the lock is
    // later than an end it finds too.
    assert_eq!(show(&step), "end reason");
    let step = machine.on(Input::EndReason(None), &session, NOW);
    assert_eq!(show(&step), "save at-9 -");
}

#[test]
fn a_login_does_not_wait_for_an_end_the_clock_has_passed_or_far_ahead_of_it() {
    let ends = [
        EndRecord::new(EndReason::SignedOut, NOW - 1),
        EndRecord::new(EndReason::SignedOut, NOW + 5_000),
        EndRecord {
            reason: EndReason::SignedOut,
            until_ms: None,
        },
    ];
    for end in ends {
        let session = Session::new(None);
        let (mut machine, _) = SignIn::start(set(9, NOW), &POLICY);
        machine.on(Input::Locked(Ok(())), &session, NOW);
        let step = machine.on(Input::EndReason(Some(end)), &session, NOW);
        assert_eq!(show(&step), "save at-9 -", "{end:?}");
    }
}

#[test]
fn a_login_that_cannot_be_written_is_broadcast_held_then_used_from_memory() {
    let session = Session::new(None);
    let (mut machine, _) = SignIn::start(set(9, NOW), &POLICY);
    let inputs = vec![
        Input::Locked(Ok(())),
        Input::EndReason(None),
        Input::Saved(Err(quota())),
        Input::Slept,
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "end reason",
            "save at-9 -",
            "publish at-9 - unsaved=true; sleep 250",
            "unlock; unsaved=false; adopt at-9 - Login; persist failed storage_error; \
             fail storage_error"
        ]
    );
}

#[test]
fn a_sign_out_clears_at_once_then_again_under_the_lock() {
    // This tab holds rotation 1; a sibling's refresh wrote rotation 2
    // while the sign-out waited for the lock.
    let login = NOW - 60_000;
    let session = Session::new(Some(set(1, login)));
    let (mut machine, first) = SignOut::start(&POLICY, NOW);
    assert_eq!(show(&first), "load");
    let inputs = vec![
        Input::Loaded(Ok(Some(set(0, login)))),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(Some(set(2, login)))),
        Input::Cleared(Ok(())),
    ];
    assert_eq!(
        run(&mut machine, &session, inputs),
        [
            "clear SignedOut logins to 1700000000000",
            "publish ended SignedOut logins to 1700000000000; end SignedOut; lock 70000",
            "load",
            "clear SignedOut logins to 1700000000000",
            "publish ended SignedOut logins to 1700000000000; done at-2 -"
        ]
    );
}

#[test]
fn a_later_login_found_under_the_lock_is_left_alone() {
    let session = Session::new(Some(set(1, NOW - 60_000)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(Some(set(7, NOW + 1)))),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(steps[3], "done at-1 -");
}

#[test]
fn a_later_login_found_by_the_first_read_is_not_revoked() {
    // Completed after the call and written before the sign-out's first
    // read: the sign-out hands only this tab's set to revoke.
    let session = Session::new(Some(set(1, NOW - 60_000)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(Some(set(7, NOW + 1)))),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(None)),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(steps[3], "done at-1 -");
}

#[test]
fn a_sign_out_without_the_lock_still_reads_the_store_again() {
    let session = Session::new(Some(set(1, NOW - 60_000)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Err(Error::LockUnavailable)),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(steps[2], "load");
}

#[test]
fn an_unreadable_store_is_cleared_both_times_and_this_tab_s_set_is_the_one_seen() {
    let session = Session::new(Some(set(1, NOW - 60_000)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Err(quota())),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Err(quota())),
        Input::Cleared(Ok(())),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(steps[0], "clear SignedOut logins to 1700000000000");
    assert_eq!(steps[3], "clear SignedOut logins to 1700000000000");
    assert_eq!(
        steps[4],
        "publish ended SignedOut logins to 1700000000000; done at-1 -"
    );
}

#[test]
fn a_sign_out_with_no_session_anywhere_has_nothing_to_revoke() {
    let session = Session::new(None);
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(None)),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(steps[3], "done");
}

#[test]
fn a_failed_first_clear_goes_on_to_the_lock() {
    let session = Session::new(Some(set(1, NOW - 60_000)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![Input::Loaded(Ok(None)), Input::Cleared(Err(quota()))];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(
        steps[1],
        "publish ended SignedOut logins to 1700000000000; end SignedOut; lock 70000"
    );
}

#[test]
fn a_clear_under_the_lock_that_failed_is_read_and_tried_again() {
    // A store that did not answer in time, then did.
    let login = NOW - 60_000;
    let session = Session::new(Some(set(1, login)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(Some(set(2, login)))),
        Input::Cleared(Err(quota())),
        Input::Loaded(Ok(Some(set(2, login)))),
        Input::Cleared(Ok(())),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(
        steps[3..],
        [
            "clear SignedOut logins to 1700000000000",
            "load",
            "clear SignedOut logins to 1700000000000",
            "publish ended SignedOut logins to 1700000000000; done at-2 -"
        ]
    );
}

#[test]
fn a_clear_that_timed_out_but_took_effect_is_not_tried_again() {
    let login = NOW - 60_000;
    let session = Session::new(Some(set(1, login)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(Some(set(2, login)))),
        Input::Cleared(Err(quota())),
        Input::Loaded(Ok(None)),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(
        steps[5],
        "publish ended SignedOut logins to 1700000000000; done at-2 -"
    );
}

#[test]
fn a_later_login_written_while_a_clear_failed_is_left_alone() {
    // Another tab's login gave up waiting for the lock and wrote its set.
    let login = NOW - 60_000;
    let session = Session::new(Some(set(1, login)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
        Input::Loaded(Ok(Some(set(2, login)))),
        Input::Cleared(Err(quota())),
        Input::Loaded(Ok(Some(set(7, NOW + 1)))),
    ];
    let steps = run(&mut machine, &session, inputs);
    assert_eq!(
        steps[5],
        "publish ended SignedOut logins to 1700000000000; done at-2 -"
    );
}

#[test]
fn a_clear_under_the_lock_is_tried_a_bounded_number_of_times() {
    let login = NOW - 60_000;
    let session = Session::new(Some(set(1, login)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let mut inputs = vec![
        Input::Loaded(Ok(None)),
        Input::Cleared(Ok(())),
        Input::Locked(Ok(())),
    ];
    for _ in 0..CLEAR_TRIES {
        inputs.push(Input::Loaded(Ok(Some(set(2, login)))));
        inputs.push(Input::Cleared(Err(quota())));
    }
    let steps = run(&mut machine, &session, inputs);
    let clears = steps
        .iter()
        .filter(|s| *s == "clear SignedOut logins to 1700000000000")
        .count();
    assert_eq!(clears, 1 + usize::from(CLEAR_TRIES));
    assert_eq!(
        steps.last().unwrap(),
        "publish ended SignedOut logins to 1700000000000; done at-2 -"
    );
}

#[test]
fn a_login_completed_after_the_sign_out_was_called_is_left_alone() {
    // The first clear took 5 s; another tab's login completed meanwhile.
    let session = Session::new(Some(set(1, NOW - 60_000)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    let later = NOW + 5_000;
    machine.on(Input::Loaded(Ok(None)), &session, NOW);
    machine.on(Input::Cleared(Ok(())), &session, later);
    machine.on(Input::Locked(Ok(())), &session, later);
    let found = Input::Loaded(Ok(Some(set(7, NOW + 1))));
    assert_eq!(show(&machine.on(found, &session, later)), "done at-1 -");
}

#[test]
fn a_rotation_adopted_while_the_first_clear_was_out_is_the_one_revoked() {
    // A sibling's refresh wrote rotation 2 after this sign-out's read and
    // told it; this tab adopted it while its clear was out.
    let login = NOW - 60_000;
    let session = Session::new(Some(set(1, login)));
    let (mut machine, _) = SignOut::start(&POLICY, NOW);
    machine.on(Input::Loaded(Ok(Some(set(1, login)))), &session, NOW);
    session.receive(
        SessionMessage::Tokens {
            tokens: set(2, login),
            unsaved: false,
        },
        NOW,
    );
    let steps = run(
        &mut machine,
        &session,
        vec![
            Input::Cleared(Ok(())),
            Input::Locked(Ok(())),
            Input::Loaded(Ok(None)),
        ],
    );
    assert_eq!(steps.last().unwrap(), "done at-2 -");
}
