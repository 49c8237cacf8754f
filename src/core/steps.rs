//! The vocabulary shared by the session's machines ([`RefreshMachine`],
//! [`SignIn`], [`SignOut`]) and their one driver
//! ([`Refresher`](crate::core::refresher::Refresher)): what a machine asks
//! for ([`Step`]: [`Act`]s done at once, in order, then one [`Wait`]) and
//! what it is fed ([`Input`]). A machine reads this tab's [`Session`] to
//! decide and never changes it: every change is an [`Act`], so the app's
//! listeners and the other tabs hear of changes in the order they are made.
//!
//! [`RefreshMachine`]: crate::core::refresh_machine::RefreshMachine
//! [`SignIn`]: crate::core::sign_in_out::SignIn
//! [`SignOut`]: crate::core::sign_in_out::SignOut

use crate::core::atproto::Account;
use crate::core::drive::{Machine, Next};
use crate::core::message::EndRecord;
use crate::core::ports::RefreshRequest;
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::session::{EndReason, Session, SessionMessage, TokenSource};
use crate::core::{Error, TokenSet};

/// A machine of the session: fed what happened at `now` (ms), it answers
/// with what to do next. An input its stage does not expect (a driver bug)
/// ends it with an error, holding nothing: never a hang.
pub trait SessionMachine {
    /// The step after `input`.
    fn on(&mut self, input: Input, session: &Session, now: u64) -> Step;
}

/// Something the driver does at once, in the order given.
#[derive(Debug)]
pub enum Act {
    /// Tells the other tabs.
    Publish(SessionMessage),
    /// Retires a set in the background (its access token revoked, its DPoP
    /// key deleted); never awaited.
    Revoke(TokenSet),
    /// Puts a set in use in this tab ([`Session::adopt`]).
    Adopt(TokenSet, TokenSource),
    /// Ends the session in this tab ([`Session::end`]).
    End {
        /// Why.
        reason: EndReason,
        /// When (ms): sets from logins until then, heard later, are from the
        /// ended session.
        at: u64,
    },
    /// The set in use could not be written ([`Session::persist_failed`]).
    PersistFailed(Error),
    /// Whether the set in use is missing from the store.
    Unsaved(bool),
    /// Lets go of the session lock before the machine is done.
    Unlock,
    /// Makes no request before `until` (a token endpoint's `Retry-After`).
    HoldOff {
        /// Until when, in ms.
        until: u64,
        /// What refreshes answer meanwhile.
        error: Error,
    },
    /// The token endpoint answered: any `Retry-After` held is over.
    ResumeRequests,
    /// The callers waiting for this refresh stop waiting with
    /// `refresh_timeout`; the request goes on.
    TellWaitersTimedOut,
}

/// What the driver waits for next; its outcome is the next [`Input`].
// One per step and short-lived: boxing the sets would cost an allocation per
// step to save bytes on the small variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Wait {
    /// The session lock, for at most `ms` → [`Input::Locked`].
    Lock {
        /// The longest wait.
        ms: u32,
    },
    /// The stored set → [`Input::Loaded`].
    Load,
    /// Why the store was cleared, and which logins that ended →
    /// [`Input::EndReason`].
    EndReason,
    /// An AT Protocol account checked again before its session is
    /// refreshed, for at most `ms` → [`Input::AccountChecked`]
    /// (`refresh_timeout` when `ms` passed first).
    CheckAccount {
        /// The account of the set about to be refreshed.
        account: Account,
        /// The longest wait.
        ms: u32,
    },
    /// `request` sent, awaited for at most `ms` → [`Input::Answer`] or,
    /// when `ms` passed first, [`Input::Slow`] (the request is not
    /// dropped).
    Send {
        /// The request.
        request: RefreshRequest,
        /// The longest wait before [`Input::Slow`].
        ms: u32,
    },
    /// The request already sent, for at most `ms` more → [`Input::Answer`]
    /// (`refresh_timeout` when `ms` passed first).
    KeepWaiting {
        /// The longest wait.
        ms: u32,
    },
    /// The set written → [`Input::Saved`].
    Save(TokenSet),
    /// The store cleared, keeping why and which logins ended →
    /// [`Input::Cleared`] (a failed clear still ends the session: its
    /// record holds a refresh token the server rejects; only a sign-out
    /// tries again).
    Clear(EndRecord),
    /// A pause of `ms` → [`Input::Slept`].
    Sleep(u32),
    /// `candidate`'s new ID token checked against `base`'s →
    /// [`Input::Checked`].
    Check {
        /// The set refreshed from.
        base: TokenSet,
        /// The refreshed set with its new ID token.
        candidate: TokenSet,
    },
    /// The machine is done (the lock, if held, is let go): the refresh's
    /// set, the sign-out's newest set seen, or a sign-in's failed write.
    Done(Result<Option<TokenSet>, Error>),
}

/// What happened, fed to [`SessionMachine::on`].
#[derive(Debug)]
pub enum Input {
    /// The lock, or why not (`lock_unavailable` past the wait).
    Locked(Result<(), Error>),
    /// The stored set.
    Loaded(Result<Option<TokenSet>, Error>),
    /// Why the store was cleared and which logins that ended, if it says.
    EndReason(Option<EndRecord>),
    /// The account's check before the refresh.
    AccountChecked(Result<(), Error>),
    /// The refresh's answer (the token endpoint's, or the app's `refresh`'s),
    /// or why there is none.
    Answer(Result<RefreshAnswer, Error>),
    /// The request's timeout passed without an answer.
    Slow,
    /// The write's outcome.
    Saved(Result<(), Error>),
    /// The clear's outcome (`Err` also when the store did not answer in
    /// time).
    Cleared(Result<(), Error>),
    /// The pause is over.
    Slept,
    /// The new ID token's check.
    Checked(Result<(), Error>),
}

/// One transition's effects: `acts` at once, in order, then `wait`.
#[derive(Debug)]
pub struct Step {
    /// Done at once, in order.
    pub acts: Vec<Act>,
    /// Then awaited.
    pub wait: Wait,
}

impl Step {
    pub(crate) fn wait(wait: Wait) -> Step {
        Step {
            acts: Vec::new(),
            wait,
        }
    }

    pub(crate) fn done(acts: Vec<Act>, result: Result<TokenSet, Error>) -> Step {
        Step {
            acts,
            wait: Wait::Done(result.map(Some)),
        }
    }
}

/// A session machine under the one driver loop
/// ([`drive`](crate::core::drive::drive)): each [`Step`] — its acts, then its
/// wait — is one need, and the performer says what its wait gave
/// ([`Performed`]). The adapter decides nothing.
pub struct SessionSteps<'m>(pub &'m mut dyn SessionMachine);

/// What performing a [`Step`] gave.
#[derive(Debug)]
pub enum Performed {
    /// Its wait's outcome, the machine's next input.
    Input(Input),
    /// It was [`Wait::Done`]: its acts are done, and so is the machine.
    Finished(Result<Option<TokenSet>, Error>),
}

impl Machine for SessionSteps<'_> {
    type Need = Step;
    type Fed = Performed;
    type Done = Result<Option<TokenSet>, Error>;
    type With<'a> = (&'a Session, u64);

    fn on(&mut self, fed: Performed, (session, now): (&Session, u64)) -> Next<Step, Self::Done> {
        match fed {
            Performed::Input(input) => Next::Do(self.0.on(input, session, now)),
            Performed::Finished(outcome) => Next::Done(outcome),
        }
    }
}

/// Steps written out for the machines' tests.
#[cfg(test)]
pub(crate) mod shown {
    use super::*;

    /// What a step says, in the driver's words: sets by their access and ID
    /// tokens, times from `now`.
    pub(crate) fn show(step: &Step, now: u64) -> String {
        let mut out: Vec<String> = step.acts.iter().map(|act| show_act(act, now)).collect();
        out.push(show_wait(&step.wait));
        out.join("; ")
    }

    fn name(tokens: &TokenSet) -> String {
        let id = tokens.id_token.as_ref().map_or("-", |t| t.secret());
        format!("{} {id}", tokens.access_token.secret())
    }

    fn show_act(act: &Act, now: u64) -> String {
        match act {
            Act::Publish(SessionMessage::Tokens { tokens, unsaved }) => {
                format!("publish {} unsaved={unsaved}", name(tokens))
            }
            Act::Publish(SessionMessage::Ended {
                reason,
                login_at_ms: None,
            }) => format!("publish ended {reason:?}"),
            Act::Publish(SessionMessage::Ended {
                reason,
                login_at_ms: Some(at),
            }) => format!("publish ended {reason:?} logins to {at}"),
            Act::Publish(SessionMessage::Refused {
                login_at_ms,
                rotation,
            }) => format!("publish refused {login_at_ms}/{rotation}"),
            Act::Publish(SessionMessage::BackOff { until, .. }) => {
                format!("publish back off +{}", until - now)
            }
            Act::Revoke(tokens) => format!("revoke {}", name(tokens)),
            Act::Adopt(tokens, source) => format!("adopt {} {source:?}", name(tokens)),
            Act::End { reason, .. } => format!("end {reason:?}"),
            Act::PersistFailed(error) => format!("persist failed {}", error.code()),
            Act::Unsaved(unsaved) => format!("unsaved={unsaved}"),
            Act::HoldOff { until, error } => format!("hold off +{} {}", until - now, error.code()),
            Act::ResumeRequests => "resume requests".into(),
            Act::TellWaitersTimedOut => "waiters timed out".into(),
            Act::Unlock => "unlock".into(),
        }
    }

    fn show_wait(wait: &Wait) -> String {
        match wait {
            Wait::Lock { ms } => format!("lock {ms}"),
            Wait::Load => "load".into(),
            Wait::EndReason => "end reason".into(),
            Wait::CheckAccount { account, ms } => format!("check account {} {ms}", account.did),
            Wait::Send { request, ms } => {
                let base = &request.base;
                let refresh = base.refresh_token.as_ref().map_or("-", |t| t.secret());
                match &request.endpoint {
                    Some(endpoint) => format!("send {refresh} {ms} to {endpoint}"),
                    None => format!("send {refresh} {ms}"),
                }
            }
            Wait::KeepWaiting { ms } => format!("keep waiting {ms}"),
            Wait::Save(tokens) => format!("save {}", name(tokens)),
            Wait::Clear(EndRecord { reason, until_ms }) => match until_ms {
                Some(until) => format!("clear {reason:?} logins to {until}"),
                None => format!("clear {reason:?}"),
            },
            Wait::Sleep(ms) => format!("sleep {ms}"),
            Wait::Check { base, candidate } => {
                format!("check {} for {}", name(candidate), name(base))
            }
            Wait::Done(Ok(Some(tokens))) => format!("done {}", name(tokens)),
            Wait::Done(Ok(None)) => "done".into(),
            Wait::Done(Err(error)) => format!("fail {}", error.code()),
        }
    }
}
