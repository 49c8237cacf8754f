//! Putting a session out of use as machines that do no I/O: one token set's
//! retirement ([`Retire`]) and `logout()` ([`LogOut`]). Fed what happened
//! ([`Fed`], [`LogoutFed`]), each says what to do next ([`Step`],
//! [`LogoutStep`]); the driver
//! ([`Retirer`](crate::core::retirer::Retirer)) performs each [`Need`] and
//! decides nothing. What is retired and where is planned in
//! [`retirement`](crate::core::retirement); these machines hold the order.
//!
//! A set's retirement, in order:
//! 1. A bound set's DPoP key is loaded first: its revocations are signed
//!    with it (a key that cannot be loaded fails the revocation, not the
//!    retirement).
//! 2. The refresh token is revoked (RFC 7009), then the access token — both
//!    attempted, each bounded in time; the first failure is the outcome.
//! 3. Then the key is deleted: it must outlive the revocation.
//!
//! A logout, in order: the local sign-out first (a slow or failing server
//! never leaves the user signed in here), then the retirement of the set it
//! ended, then — with `endSession` — the end-session address, for the
//! caller to navigate to last.

use crate::core::drive::{Machine, Next};
use crate::core::platform::HttpReply;
use crate::core::retirement::{
    plan_logout, LoggedOut, LogoutChoices, Retirement, RevocationOutcome,
};
use crate::core::revocation::{revocation_answer, revocation_form, Hint, RevocationErrorBody};
use crate::core::secret::Form;
use crate::core::{AccessToken, Error, RefreshToken, TokenSet};

/// What the driver does next; its outcome is fed back as the matching
/// [`Fed`].
#[derive(Debug)]
pub enum Need {
    /// Load the set's DPoP key (by thumbprint), kept by the driver to sign
    /// the revocations → [`Fed::Key`].
    LoadKey(String),
    /// Post `form` to `endpoint`, signed with the loaded key when `signed`,
    /// waiting at most `ms` → [`Fed::Answered`].
    Revoke {
        /// The revocation endpoint.
        endpoint: String,
        /// The form (its token redacted in `Debug`).
        form: Form,
        /// Whether the request carries a proof of the set's key.
        signed: bool,
        /// The longest wait for the answer.
        ms: u32,
    },
    /// Delete the DPoP key (by thumbprint) → [`Fed::Deleted`].
    DeleteKey(String),
}

/// The machine's next step: something to do, or its end — the
/// revocation's outcome (`None`: nothing was revoked).
pub type Step = Next<Need, Option<Result<(), Error>>>;

/// What happened, fed to [`Retire::on`].
#[derive(Debug)]
pub enum Fed {
    /// The key was loaded, or why not.
    Key(Result<(), Error>),
    /// The revocation endpoint's answer, or why there is none; `None`: the
    /// wait passed first.
    Answered(Option<Result<HttpReply<RevocationErrorBody>, Error>>),
    /// The key was deleted (best effort: a key that is gone is deleted).
    Deleted,
}

/// Where the machine is.
#[derive(Debug)]
enum Stage {
    LoadingKey,
    Revoking { hint: Hint, signed: bool },
    Deleting,
    Over,
}

/// One token set's retirement (see the module's order).
#[derive(Debug)]
pub struct Retire {
    revoke_at: Option<String>,
    delete_key: Option<String>,
    refresh_token: Option<RefreshToken>,
    access_token: AccessToken,
    client_id: String,
    timeout_ms: u32,
    stage: Stage,
    /// The revocation's outcome so far (`None`: nothing sent yet).
    outcome: Option<Result<(), Error>>,
}

impl Retire {
    /// The retirement of `tokens` by `plan`, each revocation naming
    /// `client_id` and bounded by `timeout_ms`; its first step.
    pub fn start(
        tokens: &TokenSet,
        plan: Retirement,
        client_id: &str,
        timeout_ms: u32,
    ) -> (Retire, Step) {
        let mut machine = Retire {
            revoke_at: plan.revoke_at,
            delete_key: plan.delete_key,
            refresh_token: tokens.refresh_token.clone(),
            access_token: tokens.access_token.clone(),
            client_id: client_id.to_owned(),
            timeout_ms,
            stage: Stage::Over,
            outcome: None,
        };
        let step = match (&machine.revoke_at, &tokens.dpop_jkt) {
            (None, _) => machine.delete(),
            (Some(_), Some(jkt)) => {
                machine.stage = Stage::LoadingKey;
                Step::Do(Need::LoadKey(jkt.clone()))
            }
            (Some(_), None) => machine.revoke_first(false),
        };
        (machine, step)
    }

    /// The step after `fed`. An input the stage does not expect (a driver
    /// bug) still deletes the key the plan names, then ends with an error.
    pub fn on(&mut self, fed: Fed) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            (Stage::LoadingKey, Fed::Key(Ok(()))) => self.revoke_first(true),
            (Stage::LoadingKey, Fed::Key(Err(error))) => {
                self.outcome = Some(Err(error));
                self.delete()
            }
            (Stage::Revoking { hint, signed }, Fed::Answered(answer)) => {
                let answered = revocation_answer(hint, answer);
                // Both are attempted; the first failure is the outcome.
                self.outcome = Some(match self.outcome.take() {
                    Some(Err(first)) => Err(first),
                    _ => answered,
                });
                match hint {
                    Hint::RefreshToken => self.revoke(Hint::AccessToken, signed),
                    Hint::AccessToken => self.delete(),
                }
            }
            (Stage::Deleting, Fed::Deleted) => Step::Done(self.outcome.take()),
            (_, _) => self.abandon(),
        }
    }

    /// Ends the retirement early (an input out of order: a driver bug):
    /// nothing more is revoked, the planned key is still deleted, and the
    /// outcome is the first failure — this one, unless one came before.
    pub fn abandon(&mut self) -> Step {
        let out_of_order = Error::RevocationFailed {
            status: None,
            reason: "the retirement was fed out of order".into(),
        };
        self.outcome = Some(match self.outcome.take() {
            Some(Err(first)) => Err(first),
            _ => Err(out_of_order),
        });
        self.delete()
    }

    /// Rule 2: the refresh token first when the set has one.
    fn revoke_first(&mut self, signed: bool) -> Step {
        match self.refresh_token {
            Some(_) => self.revoke(Hint::RefreshToken, signed),
            None => self.revoke(Hint::AccessToken, signed),
        }
    }

    fn revoke(&mut self, hint: Hint, signed: bool) -> Step {
        let (Some(endpoint), Some(token)) = (&self.revoke_at, self.token(hint)) else {
            return self.delete();
        };
        let form = revocation_form(token, hint, &self.client_id);
        let endpoint = endpoint.clone();
        self.stage = Stage::Revoking { hint, signed };
        Step::Do(Need::Revoke {
            endpoint,
            form,
            signed,
            ms: self.timeout_ms,
        })
    }

    fn token(&self, hint: Hint) -> Option<&str> {
        match hint {
            Hint::RefreshToken => self.refresh_token.as_ref().map(RefreshToken::secret),
            // Empty for a refused answer that carried none.
            Hint::AccessToken => Some(self.access_token.secret()).filter(|t| !t.is_empty()),
        }
    }

    /// Rule 3: the key last, when the plan names one.
    fn delete(&mut self) -> Step {
        match self.delete_key.take() {
            Some(jkt) => {
                self.stage = Stage::Deleting;
                Step::Do(Need::DeleteKey(jkt))
            }
            None => Step::Done(self.outcome.take()),
        }
    }
}

/// What the logout's driver does next.
#[derive(Debug)]
pub enum LogoutNeed {
    /// The local sign-out → [`LogoutFed::SignedOut`].
    SignOut,
    /// A need of the ended set's retirement → [`LogoutFed::Retire`].
    Retire(Need),
}

/// The logout's next step: something to do, or logged out — what the
/// revocation did, and where to go last.
pub type LogoutStep = Next<LogoutNeed, LoggedOut>;

/// What happened, fed to [`LogOut::on`].
#[derive(Debug)]
pub enum LogoutFed {
    /// The local sign-out ended this set (the newest it saw), if any.
    SignedOut(Option<TokenSet>),
    /// The outcome of a retirement's need.
    Retire(Fed),
}

/// Where a logout is.
#[derive(Debug)]
enum LogoutStage {
    SigningOut,
    Retiring(Box<Retire>),
    Over,
}

/// `logout()` (see the module's order).
#[derive(Debug)]
pub struct LogOut<'a> {
    choices: &'a LogoutChoices<'a>,
    timeout_ms: u32,
    stage: LogoutStage,
    /// The end-session address, once the ended set is known.
    end_session: Option<(String, Form)>,
}

impl<'a> LogOut<'a> {
    /// A logout with `choices`, each revocation bounded by `timeout_ms`;
    /// its first step, the local sign-out.
    pub fn start(choices: &'a LogoutChoices<'a>, timeout_ms: u32) -> (LogOut<'a>, LogoutStep) {
        let machine = LogOut {
            choices,
            timeout_ms,
            stage: LogoutStage::SigningOut,
            end_session: None,
        };
        (machine, LogoutStep::Do(LogoutNeed::SignOut))
    }

    /// The step after `fed`. An input the stage does not expect (a driver
    /// bug) ends the logout with the revocation failed — while retiring,
    /// once the retirement has deleted the key it planned to; before the
    /// sign-out's end, with no end-session address.
    pub fn on(&mut self, fed: LogoutFed) -> LogoutStep {
        match (std::mem::replace(&mut self.stage, LogoutStage::Over), fed) {
            (LogoutStage::SigningOut, LogoutFed::SignedOut(ended)) => {
                let plan = plan_logout(ended.as_ref(), self.choices);
                self.end_session = plan.end_session;
                match (ended, plan.retire) {
                    (Some(tokens), Some(plan)) => {
                        let client_id = self.choices.client_id;
                        let (machine, step) =
                            Retire::start(&tokens, plan, client_id, self.timeout_ms);
                        self.retiring(Box::new(machine), step)
                    }
                    _ => self.done(None),
                }
            }
            (LogoutStage::Retiring(mut machine), LogoutFed::Retire(fed)) => {
                let step = machine.on(fed);
                self.retiring(machine, step)
            }
            // Out of order while retiring: the retirement still deletes the
            // key it planned to.
            (LogoutStage::Retiring(mut machine), LogoutFed::SignedOut(_)) => {
                let step = machine.abandon();
                self.retiring(machine, step)
            }
            (_, _) => LogoutStep::Done(LoggedOut {
                outcome: RevocationOutcome::Failed(Error::RevocationFailed {
                    status: None,
                    reason: "the logout was fed out of order".into(),
                }),
                end_session: None,
            }),
        }
    }

    fn retiring(&mut self, machine: Box<Retire>, step: Step) -> LogoutStep {
        match step {
            Step::Do(need) => {
                self.stage = LogoutStage::Retiring(machine);
                LogoutStep::Do(LogoutNeed::Retire(need))
            }
            Step::Done(revoked) => self.done(revoked),
        }
    }

    fn done(&mut self, revoked: Option<Result<(), Error>>) -> LogoutStep {
        LogoutStep::Done(LoggedOut {
            outcome: RevocationOutcome::of(revoked),
            end_session: self.end_session.take(),
        })
    }
}

impl Machine for Retire {
    type Need = Need;
    type Fed = Fed;
    type Done = Option<Result<(), Error>>;
    type With<'a> = ();

    fn on(&mut self, fed: Fed, (): ()) -> Step {
        Retire::on(self, fed)
    }
}

impl Machine for LogOut<'_> {
    type Need = LogoutNeed;
    type Fed = LogoutFed;
    type Done = LoggedOut;
    type With<'a> = ();

    fn on(&mut self, fed: LogoutFed, (): ()) -> LogoutStep {
        LogOut::on(self, fed)
    }
}

#[cfg(test)]
#[path = "retire_machine_tests.rs"]
mod tests;
