//! A login's set put in place ([`SignIn`]) and a sign-out in every tab
//! ([`SignOut`]), as machines that do no I/O, run by the same driver as
//! the refresh ([`crate::core::refresher::Refresher`]).

use crate::core::session::{
    newest, EndReason, RefreshPolicy, Session, SessionMessage, TokenSource, BROADCAST_GRACE_MS,
};
use crate::core::steps::{Act, Input, SessionMachine, Step, Wait};
use crate::core::{Error, TokenSet};

/// Puts a completed login's set in place: written under the lock (so no
/// refresh of an earlier session is between reading and writing),
/// broadcast, then — the lock let go — put in use. A lock that never comes
/// does not stop it. Done with the write's error, if it failed (the tab
/// keeps the set in memory and says so).
#[derive(Debug)]
pub struct SignIn {
    tokens: TokenSet,
    saved: Option<Result<(), Error>>,
}

impl SignIn {
    /// Signing in with `tokens`; the first step takes the lock.
    pub fn start(tokens: TokenSet, policy: &RefreshPolicy) -> (SignIn, Step) {
        let machine = SignIn {
            tokens,
            saved: None,
        };
        let wait = Wait::Lock {
            ms: policy.lock_wait_ms,
        };
        (machine, Step::wait(wait))
    }

    /// The lock let go, the set put in use, a failed write told.
    fn finish(&mut self, saved: Result<(), Error>) -> Step {
        let mut acts = vec![
            Act::Unlock,
            Act::Unsaved(false),
            Act::Adopt(self.tokens.clone(), TokenSource::Login),
        ];
        let failed = saved.err();
        acts.extend(failed.clone().map(Act::PersistFailed));
        Step {
            acts,
            wait: Wait::Done(failed.map_or(Ok(None), Err)),
        }
    }
}

impl SessionMachine for SignIn {
    /// An input out of turn finishes the sign-in as written.
    fn on(&mut self, input: Input, _session: &Session, _now: u64) -> Step {
        match (input, self.saved.take()) {
            // Taken or not, the login goes on.
            (Input::Locked(_), None) => Step::wait(Wait::Save(self.tokens.clone())),
            (Input::Saved(saved), None) => {
                let unsaved = saved.is_err();
                let told = Act::Publish(SessionMessage::Tokens {
                    tokens: self.tokens.clone(),
                    unsaved,
                });
                if !unsaved {
                    let mut step = self.finish(saved);
                    step.acts.insert(0, told);
                    return step;
                }
                // Only the message carries the set: it is given time to
                // arrive before the lock is let go.
                self.saved = Some(saved);
                Step {
                    acts: vec![told],
                    wait: Wait::Sleep(BROADCAST_GRACE_MS),
                }
            }
            (Input::Slept, Some(saved)) => self.finish(saved),
            (_, saved) => self.finish(saved.unwrap_or(Ok(()))),
        }
    }
}

/// How many times a sign-out clears, under the lock, a set written
/// meanwhile before it gives up (each try bounded by the store's wait).
pub const CLEAR_TRIES: u8 = 3;

/// Signs out in every tab. First at once, without waiting for anyone: the
/// store is cleared, the other tabs told, and this tab's copy dropped (each
/// tab emits `signedOut`, and a refresh still out in any tab stores nothing
/// when it settles). Then under the lock, so that no refresh is between
/// reading and writing: whatever a refresh of this session wrote meanwhile
/// is cleared too (a set whose login is not later than the sign-out), and
/// the end told again. A set from a later login is left alone. That clear
/// is tried up to [`CLEAR_TRIES`] times: one that failed or did not finish
/// in time would leave the set a reload adopts.
///
/// The wait for the lock is bounded by the longest a refresh may hold it
/// ([`RefreshPolicy::settle_cap_ms`] after its timeout). Done with the
/// newest set seen — stored or in this tab's memory — to revoke and for
/// `id_token_hint`.
#[derive(Debug)]
pub struct SignOut {
    lock_wait_ms: u32,
    latest: Option<TokenSet>,
    stage: SignOutStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignOutStage {
    Reading,
    Clearing,
    Locking { at: u64 },
    Rereading { at: u64 },
    ClearingAgain { at: u64, tries: u8 },
}

impl SignOut {
    /// A sign-out; the first step reads the stored set.
    pub fn start(policy: &RefreshPolicy) -> (SignOut, Step) {
        let machine = SignOut {
            lock_wait_ms: policy.settle_cap_ms.saturating_add(policy.timeout_ms),
            latest: None,
            stage: SignOutStage::Reading,
        };
        (machine, Step::wait(Wait::Load))
    }

    fn done(&mut self, acts: Vec<Act>) -> Step {
        Step {
            acts,
            wait: Wait::Done(Ok(self.latest.take())),
        }
    }
}

impl SessionMachine for SignOut {
    /// An input out of turn finishes the sign-out with what it has seen.
    fn on(&mut self, input: Input, session: &Session, now: u64) -> Step {
        let signed_out = EndReason::SignedOut;
        match (self.stage, input) {
            (SignOutStage::Reading, Input::Loaded(stored)) => {
                // An unreadable store is cleared like any other.
                self.latest = newest(stored.ok().flatten(), session.tokens());
                self.stage = SignOutStage::Clearing;
                Step::wait(Wait::Clear(signed_out))
            }
            // A failed first clear is made good under the lock.
            (SignOutStage::Clearing, Input::Cleared(_)) => {
                self.stage = SignOutStage::Locking { at: now };
                Step {
                    acts: vec![
                        Act::Publish(SessionMessage::Ended {
                            reason: signed_out,
                            login_at_ms: None,
                        }),
                        Act::End {
                            reason: signed_out,
                            at: now,
                        },
                    ],
                    wait: Wait::Lock {
                        ms: self.lock_wait_ms,
                    },
                }
            }
            // Taken or not (a tab holding it past every bound), the store is
            // read again.
            (SignOutStage::Locking { at }, Input::Locked(_)) => {
                self.stage = SignOutStage::Rereading { at };
                Step::wait(Wait::Load)
            }
            (SignOutStage::Rereading { at }, Input::Loaded(Ok(Some(written))))
                if written.login_at_ms <= at =>
            {
                self.latest = newest(self.latest.take(), Some(written));
                self.stage = SignOutStage::ClearingAgain { at, tries: 1 };
                Step::wait(Wait::Clear(signed_out))
            }
            (SignOutStage::ClearingAgain { at, tries }, Input::Cleared(Err(_)))
                if tries < CLEAR_TRIES =>
            {
                self.stage = SignOutStage::ClearingAgain {
                    at,
                    tries: tries + 1,
                };
                Step::wait(Wait::Clear(signed_out))
            }
            // What was written meanwhile may have reached a tab that did not
            // hear the first message (one opened since, reading the store):
            // the end is told again, for the logins until the sign-out,
            // also when every clear failed.
            (SignOutStage::ClearingAgain { at, .. }, Input::Cleared(_)) => {
                let told = Act::Publish(SessionMessage::Ended {
                    reason: signed_out,
                    login_at_ms: Some(at),
                });
                self.done(vec![told])
            }
            _ => self.done(vec![]),
        }
    }
}

#[cfg(test)]
#[path = "sign_in_out_tests.rs"]
mod tests;
