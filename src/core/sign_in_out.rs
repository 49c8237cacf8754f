//! A login's set put in place ([`SignIn`]) and a sign-out in every tab
//! ([`SignOut`]), as machines that do no I/O, run by the same driver as
//! the refresh ([`crate::core::refresher::Refresher`]).

use crate::core::message::EndRecord;
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
///
/// The login completes when it is written: its time is taken again then.
/// A sign-out called between the code exchange and the write (while the ID
/// token was checked) ends every login until its call in every tab that
/// heard it; stamped at the exchange, this login would be written and used
/// here, and ignored by those tabs.
#[derive(Debug)]
pub struct SignIn {
    tokens: TokenSet,
    stage: SignInStage,
}

/// Where a sign-in is.
#[derive(Debug)]
enum SignInStage {
    Locking,
    /// Reading the store's end record.
    ReadingEnd,
    /// Waiting for the clock to pass the end found in the store.
    PassingEnd,
    Saving,
    /// Clearing the set just written: a sign-out heard meanwhile ended it.
    Clearing,
    /// The unsaved set's broadcast given time to arrive.
    Telling(Result<(), Error>),
}

/// The longest a login waits for the clock to pass an end the store keeps
/// (an end later than that is a clock that moved back: not waited for).
const PASS_END_MAX_MS: u32 = 1_000;

impl SignIn {
    /// Signing in with `tokens`; the first step takes the lock.
    pub fn start(tokens: TokenSet, policy: &RefreshPolicy) -> (SignIn, Step) {
        let machine = SignIn {
            tokens,
            stage: SignInStage::Locking,
        };
        let wait = Wait::Lock {
            ms: policy.lock_wait_ms,
        };
        (machine, Step::wait(wait))
    }

    /// The login must complete after any end the store keeps: that
    /// sign-out cleared the store before this read, so it was called before
    /// this login completes — possibly in this very millisecond, which its
    /// end covers. The clock is let pass it, never stamped ahead of it (a
    /// time ahead of the clock would be later than a sign-out called in
    /// the rest of this millisecond).
    fn passed(&mut self, end: Option<EndRecord>, now: u64) -> Step {
        let ahead = end
            .and_then(|end| end.until_ms)
            .and_then(|until| until.checked_sub(now))
            .and_then(|ahead| u32::try_from(ahead).ok());
        match ahead {
            Some(ahead) if ahead < PASS_END_MAX_MS => {
                self.stage = SignInStage::PassingEnd;
                Step::wait(Wait::Sleep(ahead + 1))
            }
            _ => self.save(now),
        }
    }

    /// Completes the login now and writes it.
    fn save(&mut self, now: u64) -> Step {
        self.tokens.login_at_ms = self.tokens.login_at_ms.max(now);
        self.stage = SignInStage::Saving;
        Step::wait(Wait::Save(self.tokens.clone()))
    }

    /// Ended by a sign-out called after it completed: the lock let go,
    /// nothing put in use, the login's tokens revoked (and its DPoP key
    /// deleted), and the login reported as not signed in. The sign-out
    /// revokes it too when its locked reread finds it; when its reads came
    /// before this write and after this clear, only this does.
    fn ended(&self) -> Step {
        Step {
            acts: vec![Act::Unlock, Act::Revoke(self.tokens.clone())],
            wait: Wait::Done(Err(Error::NotAuthenticated)),
        }
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
    fn on(&mut self, input: Input, session: &Session, now: u64) -> Step {
        match (
            std::mem::replace(&mut self.stage, SignInStage::Saving),
            input,
        ) {
            // Taken or not (the login goes on without the lock), the store's
            // end is read first: see `passed`.
            (SignInStage::Locking, Input::Locked(_)) => {
                self.stage = SignInStage::ReadingEnd;
                Step::wait(Wait::EndReason)
            }
            (SignInStage::ReadingEnd, Input::EndReason(end)) => self.passed(end, now),
            (SignInStage::PassingEnd, Input::Slept) => self.save(now),
            // A sign-out called after the login completed (its write
            // under the lock began) was heard while the set was written:
            // it ends this login too, here as in every tab that heard it.
            // The set is not put in use nor told, and is revoked (`ended`).
            // It is cleared from the store here too,
            // with the end that covers it, in case that sign-out is past
            // its own clear.
            (SignInStage::Saving, Input::Saved(_)) if session.has_ended(&self.tokens) => {
                match session.last_end() {
                    Some(end) => {
                        self.stage = SignInStage::Clearing;
                        Step::wait(Wait::Clear(end))
                    }
                    None => self.ended(),
                }
            }
            (SignInStage::Clearing, Input::Cleared(_)) => self.ended(),
            (SignInStage::Saving, Input::Saved(saved)) => {
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
                self.stage = SignInStage::Telling(saved);
                Step {
                    acts: vec![told],
                    wait: Wait::Sleep(BROADCAST_GRACE_MS),
                }
            }
            // Heard while the unsaved set's message was given time.
            (SignInStage::Telling(_), Input::Slept) if session.has_ended(&self.tokens) => {
                self.ended()
            }
            (SignInStage::Telling(saved), _) => self.finish(saved),
            (_, _) => self.finish(Ok(())),
        }
    }
}

/// How many times a sign-out clears, under the lock, a set written
/// meanwhile before it gives up (each try bounded by the store's wait, and
/// preceded by a read).
pub const CLEAR_TRIES: u8 = 2;

/// Signs out in every tab. First at once, without waiting for anyone: the
/// store is cleared, the other tabs told, and this tab's copy dropped (each
/// tab emits `signedOut`, and a refresh still out in any tab stores nothing
/// when it settles). Then under the lock, so that no refresh is between
/// reading and writing: whatever a refresh of this session wrote meanwhile
/// is cleared too (a set whose login is not later than the sign-out, or a
/// store that cannot be read), and the end told again. A set from a later
/// login is left alone. A clear that failed or did not finish in time
/// would leave the set for a reload to adopt: the store is read again and,
/// if that set is still there, cleared again, up to [`CLEAR_TRIES`] clears.
///
/// The sign-out's moment is when it was called: a login completed later,
/// in any tab, is not ended by it.
///
/// The wait for the lock is bounded by the longest a refresh may hold it
/// ([`RefreshPolicy::settle_cap_ms`] after its timeout). Done with the
/// newest set seen — stored or in this tab's memory — to revoke and for
/// `id_token_hint`.
#[derive(Debug)]
pub struct SignOut {
    lock_wait_ms: u32,
    /// When the sign-out was called.
    at: u64,
    latest: Option<TokenSet>,
    stage: SignOutStage,
}

/// `cleared`: the clears tried under the lock so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignOutStage {
    Reading,
    Clearing,
    Locking,
    Rereading { cleared: u8 },
    ClearingAgain { cleared: u8 },
}

impl SignOut {
    /// A sign-out called at `now`; the first step reads the stored set.
    pub fn start(policy: &RefreshPolicy, now: u64) -> (SignOut, Step) {
        let machine = SignOut {
            lock_wait_ms: policy.settle_cap_ms.saturating_add(policy.timeout_ms),
            at: now,
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

    /// Done, the end told again when anything was cleared under the lock:
    /// what was written meanwhile may have reached a tab that did not hear
    /// the first message (one opened since, reading the store). Told for
    /// the logins until the sign-out, also when every clear failed.
    fn done_telling(&mut self, cleared: u8) -> Step {
        let told = (cleared > 0).then_some(Act::Publish(SessionMessage::Ended {
            reason: EndReason::SignedOut,
            login_at_ms: Some(self.at),
        }));
        self.done(told.into_iter().collect())
    }

    /// The next clear under the lock.
    fn clear_again(&mut self, cleared: u8) -> Step {
        self.stage = SignOutStage::ClearingAgain {
            cleared: cleared + 1,
        };
        Step::wait(Wait::Clear(self.end_record()))
    }

    /// The store's record of this sign-out: every login until its call.
    fn end_record(&self) -> EndRecord {
        EndRecord::new(EndReason::SignedOut, self.at)
    }
}

impl SessionMachine for SignOut {
    /// An input out of turn finishes the sign-out with what it has seen.
    fn on(&mut self, input: Input, session: &Session, _now: u64) -> Step {
        let signed_out = EndReason::SignedOut;
        match (self.stage, input) {
            (SignOutStage::Reading, Input::Loaded(stored)) => {
                // An unreadable store is cleared like any other.
                // A later login's set (completed after the call, written
                // before this read) is not this sign-out's to revoke.
                let record = self.end_record();
                let ended = |set: &TokenSet| record.covers(set);
                let stored = stored.ok().flatten().filter(ended);
                self.latest = newest(stored, session.tokens().filter(ended));
                self.stage = SignOutStage::Clearing;
                Step::wait(Wait::Clear(self.end_record()))
            }
            // A failed first clear is made good under the lock.
            (SignOutStage::Clearing, Input::Cleared(_)) => {
                // A set this tab adopted while the clear was out (a sibling's
                // rotation, written after the read) is the one to revoke:
                // the end drops it here, and the store no longer holds it.
                let record = self.end_record();
                let held = session.tokens().filter(|set| record.covers(set));
                self.latest = newest(self.latest.take(), held);
                self.stage = SignOutStage::Locking;
                Step {
                    acts: vec![
                        // The logins until the call: one a tab completes
                        // while this message travels is not ended by it.
                        Act::Publish(SessionMessage::Ended {
                            reason: signed_out,
                            login_at_ms: Some(self.at),
                        }),
                        Act::End {
                            reason: signed_out,
                            at: self.at,
                        },
                    ],
                    wait: Wait::Lock {
                        ms: self.lock_wait_ms,
                    },
                }
            }
            // Taken or not (a tab holding it past every bound), the store is
            // read again.
            (SignOutStage::Locking, Input::Locked(_)) => {
                self.stage = SignOutStage::Rereading { cleared: 0 };
                Step::wait(Wait::Load)
            }
            (SignOutStage::Rereading { cleared }, Input::Loaded(Ok(Some(written))))
                if written.login_at_ms <= self.at =>
            {
                self.latest = newest(self.latest.take(), Some(written));
                self.clear_again(cleared)
            }
            // Whatever it holds may be this session's.
            (SignOutStage::Rereading { cleared }, Input::Loaded(Err(_))) => {
                self.clear_again(cleared)
            }
            // Nothing of this session's left (or a later login's set).
            (SignOutStage::Rereading { cleared }, Input::Loaded(Ok(_))) => {
                self.done_telling(cleared)
            }
            (SignOutStage::ClearingAgain { cleared }, Input::Cleared(Err(_)))
                if cleared < CLEAR_TRIES =>
            {
                self.stage = SignOutStage::Rereading { cleared };
                Step::wait(Wait::Load)
            }
            (SignOutStage::ClearingAgain { cleared }, Input::Cleared(_)) => {
                self.done_telling(cleared)
            }
            _ => self.done(vec![]),
        }
    }
}

#[cfg(test)]
#[path = "sign_in_out_tests.rs"]
mod tests;
