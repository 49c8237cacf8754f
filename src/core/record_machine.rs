//! One operation of the record policy ([`record_store`]'s rules) as a
//! machine that does no I/O ([`RecordOp`]): a read, a write, a clear or the
//! take of the pending login, fed each backend's and the sealer's outcome
//! ([`Fed`]), says what to do next ([`Need`]). The driver
//! ([`RecordStore`]) performs each need and decides nothing.
//!
//! [`record_store`]: crate::core::record_store
//! [`RecordStore`]: crate::core::record_store::RecordStore

use crate::core::drive::{Machine, Next};
use crate::core::envelope::associated_data;
use crate::core::secret::RecordText;
use crate::core::Error;

/// Which backend a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The tokens, kept metadata and end reason.
    Records,
    /// The pending login (it must survive the redirect).
    Transactions,
}

/// What the driver does next; its outcome is fed back as the matching
/// [`Fed`].
#[derive(Debug)]
pub enum Need {
    /// The value at `key` → [`Fed::Got`].
    Get {
        /// Where.
        backend: Backend,
        /// The record's key.
        key: String,
    },
    /// Open a stored record → [`Fed::Opened`].
    Open {
        /// Its associated data (issuer, client, kind).
        aad: Vec<u8>,
        /// As stored (plaintext in memory: redacted in `Debug`).
        stored: RecordText,
    },
    /// Read the opened text as the operation's type, keeping the value →
    /// [`Fed::Parsed`].
    Parse(RecordText),
    /// Remember that a newer latchkey's record was read (rule 3) →
    /// [`Fed::Marked`].
    MarkNewer(u32),
    /// Seal a record's text → [`Fed::Sealed`].
    Seal {
        /// Its associated data.
        aad: Vec<u8>,
        /// The plaintext.
        text: RecordText,
    },
    /// Put `value` at `key` → [`Fed::Written`].
    Set {
        /// Where.
        backend: Backend,
        /// The record's key.
        key: String,
        /// As stored (plaintext in memory: redacted in `Debug`).
        value: RecordText,
    },
    /// Remove `key` → [`Fed::Removed`].
    Remove {
        /// Where.
        backend: Backend,
        /// The record's key.
        key: String,
    },
}

/// The operation's next step: something to do, or its end — for a read,
/// whether a record was found (its value kept by the driver at
/// [`Need::Parse`]).
pub type Step = Next<Need, Result<bool, Error>>;

/// What happened, fed to [`RecordOp::on`].
#[derive(Debug)]
pub enum Fed {
    /// The stored value, if any.
    Got(Result<Option<RecordText>, Error>),
    /// The plaintext.
    Opened(Result<RecordText, Error>),
    /// Whether the text was a record of the operation's type.
    Parsed(bool),
    /// The newer record was remembered.
    Marked,
    /// The sealed record.
    Sealed(Result<RecordText, Error>),
    /// The write's outcome.
    Written(Result<(), Error>),
    /// The removal's outcome.
    Removed(Result<(), Error>),
}

/// What the operation is.
#[derive(Debug, PartialEq, Eq)]
enum Goal {
    /// A read of a record.
    Read,
    /// The pending login's take: the record removed as soon as it is
    /// found, then read; removed whatever the read found (rule 5).
    Take,
    /// A write of a record.
    Write,
    /// A clear: the end reason written (best effort), then the tokens
    /// removed (rule 4).
    Clear,
}

/// Where the operation is.
#[derive(Debug)]
enum Stage {
    Getting,
    Opening,
    Parsing,
    /// Removing an unreadable record; the error that made it unreadable.
    Discarding(Error),
    MarkingNewer(u32),
    /// The take's removal of the record it found, before anything awaits
    /// the sealer: a second take running meanwhile finds nothing.
    Claiming(RecordText),
    /// The take's removal when it found nothing to claim; the read's
    /// outcome.
    Taking(Result<bool, Error>),
    Sealing,
    Setting,
    /// Clearing: the end reason's seal, its write (or, when that failed,
    /// the removal of an earlier end's), the tokens' removal.
    SealingReason,
    SettingReason,
    RemovingEarlierReason,
    RemovingTokens,
    Over,
}

/// One operation on one kind of record (see the rules of
/// [`record_store`](crate::core::record_store)).
#[derive(Debug)]
pub struct RecordOp {
    goal: Goal,
    backend: Backend,
    kind: &'static str,
    issuer: String,
    client_id: String,
    stage: Stage,
    /// A take's record, removed before it was read.
    claimed: bool,
}

/// The backend key of `issuer` and `client_id`'s record of `kind`.
pub fn record_key(issuer: &str, client_id: &str, kind: &str) -> String {
    format!("latchkey:{issuer}:{client_id}:{kind}")
}

/// The kind of the tokens record: the one a newer latchkey's record
/// protects (rule 3).
pub const TOKENS: &str = "tokens";

impl RecordOp {
    fn new(
        goal: Goal,
        backend: Backend,
        kind: &'static str,
        issuer: &str,
        client_id: &str,
    ) -> Self {
        RecordOp {
            goal,
            backend,
            kind,
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            stage: Stage::Over,
            claimed: false,
        }
    }

    /// Reads `issuer` and `client_id`'s record of `kind` from `backend`.
    pub fn read(
        backend: Backend,
        kind: &'static str,
        issuer: &str,
        client_id: &str,
    ) -> (Self, Step) {
        let mut op = RecordOp::new(Goal::Read, backend, kind, issuer, client_id);
        let step = op.get();
        (op, step)
    }

    /// Takes the pending login of `kind` from `backend`: read, then removed.
    pub fn take(
        backend: Backend,
        kind: &'static str,
        issuer: &str,
        client_id: &str,
    ) -> (Self, Step) {
        let mut op = RecordOp::new(Goal::Take, backend, kind, issuer, client_id);
        let step = op.get();
        (op, step)
    }

    /// Writes `text` (`None`: the value could not be serialised) as the
    /// record of `kind`; `newer` is the version of a newer latchkey's record
    /// read earlier, which leaves the tokens record alone (rule 3).
    pub fn write(
        backend: Backend,
        kind: &'static str,
        text: Option<RecordText>,
        newer: Option<u32>,
        issuer: &str,
        client_id: &str,
    ) -> (Self, Step) {
        let mut op = RecordOp::new(Goal::Write, backend, kind, issuer, client_id);
        let step = match (newer.filter(|_| kind == TOKENS), text) {
            (Some(version), _) => Step::Done(Err(Error::NewerRecord { version })),
            (None, None) => Step::Done(Err(unserialisable())),
            (None, Some(text)) => op.seal(text, Stage::Sealing),
        };
        (op, step)
    }

    /// Clears the tokens: `reason` (the end reason record of `kind`, `None`
    /// when it could not be serialised) is written first, best effort, then
    /// the tokens go — unless a newer latchkey's record was read (`newer`).
    pub fn clear(
        reason_kind: &'static str,
        reason: Option<RecordText>,
        newer: Option<u32>,
        issuer: &str,
        client_id: &str,
    ) -> (Self, Step) {
        let mut op = RecordOp::new(
            Goal::Clear,
            Backend::Records,
            reason_kind,
            issuer,
            client_id,
        );
        let step = match (newer, reason) {
            (Some(version), _) => Step::Done(Err(Error::NewerRecord { version })),
            (None, Some(reason)) => op.seal(reason, Stage::SealingReason),
            (None, None) => op.remove_earlier_reason(),
        };
        (op, step)
    }

    /// The step after `fed`. An outcome the stage does not expect (a driver
    /// bug) ends the operation with a storage error, removing nothing.
    pub fn on(&mut self, fed: Fed) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            // A read: rule 6 — a failed read removes nothing.
            (Stage::Getting, Fed::Got(Ok(None))) => self.read_ends(Ok(false)),
            (Stage::Getting, Fed::Got(Err(error))) => self.read_ends(Err(error)),
            // Rule 5: the pending login is claimed before it is read.
            (Stage::Getting, Fed::Got(Ok(Some(stored)))) if self.goal == Goal::Take => {
                self.stage = Stage::Claiming(stored);
                Step::Do(Need::Remove {
                    backend: self.backend,
                    key: self.key(self.kind),
                })
            }
            (Stage::Claiming(stored), Fed::Removed(Ok(()))) => {
                self.claimed = true;
                self.open(stored)
            }
            (Stage::Claiming(_), Fed::Removed(Err(error))) => Step::Done(Err(error)),
            (Stage::Getting, Fed::Got(Ok(Some(stored)))) => self.open(stored),
            (Stage::Opening, Fed::Opened(Ok(text))) => {
                self.stage = Stage::Parsing;
                Step::Do(Need::Parse(text))
            }
            // Rule 3: a newer latchkey's record stays.
            (Stage::Opening, Fed::Opened(Err(Error::NewerRecord { version }))) => {
                self.stage = Stage::MarkingNewer(version);
                Step::Do(Need::MarkNewer(version))
            }
            (Stage::MarkingNewer(version), Fed::Marked) => {
                self.read_ends(Err(Error::NewerRecord { version }))
            }
            // Rule 2: what does not open or parse is removed.
            (Stage::Opening, Fed::Opened(Err(error @ Error::CorruptRecord { .. }))) => {
                self.discard(error)
            }
            // Rule 6: a sealer that failed (not the record) removes nothing.
            (Stage::Opening, Fed::Opened(Err(error))) => self.read_ends(Err(error)),
            (Stage::Parsing, Fed::Parsed(true)) => self.read_ends(Ok(true)),
            (Stage::Parsing, Fed::Parsed(false)) => self.discard(Error::CorruptRecord {
                reason: format!("the {} record has an unknown shape", self.kind),
            }),
            (Stage::Discarding(error), Fed::Removed(removed)) => {
                self.read_ends(Err(removed.err().unwrap_or(error)))
            }
            // Rule 5: the take's removal; its failure wins.
            (Stage::Taking(read), Fed::Removed(removed)) => Step::Done(removed.and(read)),
            // A write.
            (Stage::Sealing, Fed::Sealed(Ok(value))) => {
                self.stage = Stage::Setting;
                Step::Do(Need::Set {
                    backend: self.backend,
                    key: self.key(self.kind),
                    value,
                })
            }
            (Stage::Sealing, Fed::Sealed(Err(error))) => Step::Done(Err(error)),
            (Stage::Setting, Fed::Written(written)) => Step::Done(written.map(|()| true)),
            // A clear: the reason is best effort; the tokens' removal is
            // the outcome.
            (Stage::SealingReason, Fed::Sealed(Ok(value))) => {
                self.stage = Stage::SettingReason;
                Step::Do(Need::Set {
                    backend: Backend::Records,
                    key: self.key(self.kind),
                    value,
                })
            }
            (Stage::SettingReason, Fed::Written(Ok(()))) => self.remove_tokens(),
            (Stage::SealingReason, Fed::Sealed(Err(_)))
            | (Stage::SettingReason, Fed::Written(Err(_))) => self.remove_earlier_reason(),
            (Stage::RemovingEarlierReason, Fed::Removed(_)) => self.remove_tokens(),
            (Stage::RemovingTokens, Fed::Removed(removed)) => Step::Done(removed.map(|()| true)),
            (_, _) => Step::Done(Err(Error::Storage {
                reason: "the record store was fed out of order".into(),
            })),
        }
    }

    fn key(&self, kind: &str) -> String {
        record_key(&self.issuer, &self.client_id, kind)
    }

    fn aad(&self, kind: &str) -> Vec<u8> {
        associated_data(&self.issuer, &self.client_id, kind)
    }

    fn get(&mut self) -> Step {
        self.stage = Stage::Getting;
        Step::Do(Need::Get {
            backend: self.backend,
            key: self.key(self.kind),
        })
    }

    fn seal(&mut self, text: RecordText, stage: Stage) -> Step {
        self.stage = stage;
        Step::Do(Need::Seal {
            aad: self.aad(self.kind),
            text,
        })
    }

    /// Rule 2: removes an unreadable record; `error` says why it was
    /// unreadable, or the removal's failure does.
    fn open(&mut self, stored: RecordText) -> Step {
        self.stage = Stage::Opening;
        Step::Do(Need::Open {
            aad: self.aad(self.kind),
            stored,
        })
    }

    fn discard(&mut self, error: Error) -> Step {
        if self.claimed {
            return Step::Done(Err(error));
        }
        self.stage = Stage::Discarding(error);
        Step::Do(Need::Remove {
            backend: self.backend,
            key: self.key(self.kind),
        })
    }

    /// A read's end; a take that claimed nothing then removes the record.
    fn read_ends(&mut self, read: Result<bool, Error>) -> Step {
        match self.goal {
            Goal::Take if !self.claimed => {
                self.stage = Stage::Taking(read);
                Step::Do(Need::Remove {
                    backend: self.backend,
                    key: self.key(self.kind),
                })
            }
            _ => Step::Done(read),
        }
    }

    /// The reason could not be kept: an earlier end's record, left, would
    /// name only the logins until that end, and a tab holding this
    /// session's set would take the empty store for a lost write and
    /// refresh it back. Best effort, as the reason's write.
    fn remove_earlier_reason(&mut self) -> Step {
        self.stage = Stage::RemovingEarlierReason;
        Step::Do(Need::Remove {
            backend: Backend::Records,
            key: self.key(self.kind),
        })
    }

    fn remove_tokens(&mut self) -> Step {
        self.stage = Stage::RemovingTokens;
        Step::Do(Need::Remove {
            backend: Backend::Records,
            key: self.key(TOKENS),
        })
    }
}

fn unserialisable() -> Error {
    Error::Storage {
        reason: "could not serialise the record".into(),
    }
}

impl Machine for RecordOp {
    type Need = Need;
    type Fed = Fed;
    type Done = Result<bool, Error>;
    type With<'a> = ();

    fn on(&mut self, fed: Fed, (): ()) -> Step {
        RecordOp::on(self, fed)
    }
}

#[cfg(test)]
#[path = "record_machine_tests.rs"]
mod tests;
