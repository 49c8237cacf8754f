//! The refresh under the lock as a state machine that does no I/O: every
//! decision of one tab's refresh, from taking the lock to the refreshed ID
//! token's check, is a transition here. It is fed what happened (the lock
//! taken, a record read, the server's answer, the time) and answers with a
//! [`Step`] ([`crate::core::steps`]). The driver
//! ([`crate::core::refresher::Refresher`]) performs it and decides nothing;
//! the tests feed inputs by hand, one per transition.
//!
//! The rule it keeps: once the server answered with a rotated refresh
//! token, that set *is* the session — it is written before its new ID
//! token is checked, and only a sign-out or a later login stops it. An
//! answer refused for anything else it carries still gives its refresh
//! token to the session ([`TokenSet::rotation_in_refused`]).

use crate::core::atproto::Account;
use crate::core::ports::RefreshRequest;
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::session::{
    is_newer, needs_refresh, EndReason, EndRecord, RefreshPolicy, Session, SessionMessage,
    TokenSource, BROADCAST_GRACE_MS, MAX_RETRY_AFTER_MS,
};
use crate::core::steps::{Act, Input, SessionMachine, Step, Wait};
use crate::core::{AccessToken, Error, IdToken, RefreshToken, TokenSet};

/// What a written set was written for, and so what follows the write.
#[allow(clippy::large_enum_variant)] // one per refresh, as `Wait`
#[derive(Debug)]
enum Written {
    /// The refreshed set (its new ID token, if any, checked next), or
    /// with `refused` the rotation kept from an answer refused otherwise:
    /// the refresh then fails with that error.
    Refreshed {
        base: TokenSet,
        id_token: Option<IdToken>,
        refused: Option<Error>,
    },
    /// A later login's set, put back over the refreshed one.
    PutBack,
    /// The refreshed set with its verified ID token.
    Verified,
}

/// A set the server's answer gave, on its way to the store.
#[derive(Debug)]
struct Unwritten {
    /// The set the refresh presented.
    base: TokenSet,
    /// The set to write.
    fresh: TokenSet,
    /// Its new ID token, checked after the write.
    id_token: Option<IdToken>,
    /// The answer was refused but carried a rotation (`fresh`): the
    /// refresh fails with this once `fresh` is written.
    refused: Option<Error>,
}

#[derive(Debug)]
enum Stage {
    Locking,
    /// `now` is the time the lock was taken, `mine` this tab's set then:
    /// every check of the base is made as of that moment.
    ReadingBase {
        now: u64,
        mine: Option<TokenSet>,
    },
    /// The session is over; the store says why. `at`: the latest login
    /// the end covers (a later one this tab holds stays). `mine`: this
    /// tab's set, when it found the store empty: one the store's end does
    /// not cover was lost from the store, not ended.
    ReadingEndReason {
        at: u64,
        mine: Option<TokenSet>,
    },
    /// An AT Protocol account checked again before its refresh: the
    /// callers' wait covers the check and the request.
    CheckingAccount {
        base: TokenSet,
    },
    Sending {
        base: TokenSet,
    },
    /// Refused for its DPoP nonce, unprocessed: the base read again before
    /// the one resend, with this tab's newest set as of the read's end.
    RereadingBase,
    /// `invalid_grant`: a tab without the lock may have rotated already.
    Rechecking {
        base: TokenSet,
    },
    /// The refused set's store was found empty: a sign-out (which revokes
    /// the refresh token) whose word has not arrived, or an expiry; the
    /// store's end record tells which.
    ReadingEndAfterRefusal {
        base: TokenSet,
    },
    /// Read right before the write (compare-and-swap).
    ReadingBeforeWrite(Unwritten),
    /// The store was found empty right before the write: its end record
    /// says whether that ended this session or lost its set.
    ReadingEndBeforeWrite(Unwritten),
    Saving {
        tokens: TokenSet,
        then: Written,
    },
    /// The broadcast of a set that could not be written is given time to
    /// arrive before the lock is let go.
    Grace {
        tokens: TokenSet,
        then: Written,
    },
    Checking {
        fresh: TokenSet,
        candidate: TokenSet,
    },
    /// `fresh`, a rotation of a session that ended while it was out or
    /// being written, is about to be retired: the store is read first, and
    /// cleared if it still holds `fresh` or the refresh token `spent` it
    /// replaced, so that no tab takes either from there.
    Discarding {
        fresh: TokenSet,
        spent: Option<RefreshToken>,
    },
    /// The ended session's spent or retired set being cleared.
    ClearingSpent {
        fresh: TokenSet,
    },
    Ending {
        reason: EndReason,
        /// The ended session's login time ([`SessionMessage::Ended`]).
        login_at_ms: u64,
        then_revoke: Option<TokenSet>,
        error: Error,
    },
    Over,
}

/// One tab's refresh of the token it holds, under the lock.
#[derive(Debug)]
pub struct RefreshMachine {
    held: AccessToken,
    policy: RefreshPolicy,
    keeps_id_tokens: bool,
    /// AT Protocol: an account's session is refreshed at its own server,
    /// once the account is checked again.
    checks_accounts: bool,
    /// The session's end count when the refresh began: a change means it
    /// ended (signed out, expired) while the refresh was out.
    ends_before: u64,
    /// Whether the read under the lock found a set of the session in the
    /// store: only then does an empty store before the write mean that
    /// someone cleared it (a sign-out). A record this tab removed as
    /// corrupt, or a set that never reached the store, leaves it empty.
    found_stored: bool,
    /// When the first request went out (the account's check, or the
    /// refresh): the callers' wait, the settle cap and the transport's
    /// abort all count from it, a resend's too, so that no request of this
    /// refresh outlives the lock by more than the first one would have
    /// (another tab may present the same refresh token once it is let go).
    started_ms: Option<u64>,
    /// The time of the input being handled: requests are timed from it.
    input_at: u64,
    /// Whether the callers were told `refresh_timeout`.
    told_timed_out: bool,
    /// Whether the request was sent again after a refusal for its nonce:
    /// a second refusal is `dpop_nonce_failed`.
    resent_for_nonce: bool,
    /// The AT Protocol account checked by this refresh: a resend from a
    /// set of the same account is not checked again.
    checked_account: Option<Account>,
    stage: Stage,
}

impl RefreshMachine {
    /// A refresh of `held`, the access token this tab found stale or
    /// rejected, and its first step: the lock. Without `keeps_id_tokens`
    /// (no `openid`) no ID token is kept; with `checks_accounts` (the
    /// `atproto` profile) an account's session is refreshed at the
    /// account's own server once the account is checked again.
    pub fn start(
        held: AccessToken,
        policy: RefreshPolicy,
        keeps_id_tokens: bool,
        checks_accounts: bool,
        session: &Session,
    ) -> (Self, Step) {
        let machine = RefreshMachine {
            held,
            policy,
            keeps_id_tokens,
            checks_accounts,
            ends_before: session.ends(),
            found_stored: false,
            started_ms: None,
            input_at: 0,
            told_timed_out: false,
            resent_for_nonce: false,
            checked_account: None,
            stage: Stage::Locking,
        };
        let first = Step::wait(Wait::Lock {
            ms: policy.lock_wait_ms,
        });
        (machine, first)
    }
}

impl SessionMachine for RefreshMachine {
    /// An input out of turn ends the refresh with `refresh_timeout`.
    fn on(&mut self, input: Input, session: &Session, now: u64) -> Step {
        self.input_at = now;
        let stage = std::mem::replace(&mut self.stage, Stage::Over);
        match (stage, input) {
            (Stage::Locking, Input::Locked(Ok(()))) => {
                let mine = session.tokens();
                self.stage = Stage::ReadingBase { now, mine };
                Step::wait(Wait::Load)
            }
            (Stage::Locking, Input::Locked(Err(error))) => Step::done(vec![], Err(error)),
            (Stage::ReadingBase { now, mine }, Input::Loaded(stored)) => {
                self.base_read(stored, mine, session, now)
            }
            (Stage::RereadingBase, Input::Loaded(stored)) => {
                // As of now: a sibling's set heard during the read counts.
                self.base_read(stored, session.tokens(), session, now)
            }
            (Stage::ReadingEndReason { at, mine }, Input::EndReason(end)) => {
                // Unless its end was heard meanwhile.
                let lost = mine.filter(|mine| lost_from_store(mine, end, session));
                if let Some(mine) = lost {
                    // A sign-out's first clear, made without the lock,
                    // removed this later login's set just after its write:
                    // it is the session, written back by its refresh (the
                    // store found empty is not a sign-out: `found_stored`).
                    return self.refresh_from(mine, session, now);
                }
                ended_by_store(end, at)
            }
            (Stage::CheckingAccount { base }, Input::AccountChecked(checked)) => {
                match checked {
                    Ok(()) => {
                        self.checked_account = base.atproto.as_deref().cloned();
                        self.send(base)
                    }
                    // Not sent (or, before a resend, not sent again): a
                    // failed check is the call's error, and the session
                    // stays as it is.
                    Err(error) => Step::done(vec![], Err(error)),
                }
            }
            (Stage::Sending { base }, Input::Slow) => {
                // Past the timeout the callers stop waiting, but the request
                // is not abandoned: the server may already have rotated, and
                // its answer is the session. It is awaited, holding the lock,
                // up to the settle cap.
                self.stage = Stage::Sending { base };
                let rest = self.left(self.policy.settle_cap_ms);
                let told = std::mem::replace(&mut self.told_timed_out, true);
                Step {
                    acts: if told {
                        vec![]
                    } else {
                        vec![Act::TellWaitersTimedOut]
                    },
                    wait: Wait::KeepWaiting { ms: rest },
                }
            }
            (Stage::Sending { base }, Input::Answer(answer)) => {
                self.answered(base, answer, session, now)
            }
            (Stage::Rechecking { base }, Input::Loaded(latest)) => match latest {
                // Only a newer set may hold a live refresh token: an older
                // one (left by this tab's failed write) is spent, or of the
                // grant the server just refused.
                Ok(Some(latest)) if is_newer(&latest, &base) && !session.has_ended(&latest) => {
                    Step::done(
                        vec![Act::Adopt(latest.clone(), TokenSource::Sync)],
                        Ok(latest),
                    )
                }
                // Refused because the session ended while the request was
                // out (a sign-out revokes the refresh token): the tab that
                // ended it cleared the store and told everyone why.
                _ if session.has_ended(&base) => self.over(base.login_at_ms),
                Ok(None) => {
                    self.stage = Stage::ReadingEndAfterRefusal { base };
                    Step::wait(Wait::EndReason)
                }
                _ => self.expire(base, vec![], session),
            },
            (Stage::ReadingEndAfterRefusal { base }, Input::EndReason(end)) => match end {
                // Ended by that end, whose record stays as it is: an expiry's
                // would name only this set's login, and call it expired.
                Some(end) if end.covers(&base) => ended_by_store(Some(end), base.login_at_ms),
                _ => self.expire(base, vec![], session),
            },
            (Stage::Discarding { fresh, spent }, Input::Loaded(stored)) => {
                let holds_dead = |stored: &TokenSet| {
                    session.has_ended(stored)
                        && (!other_tokens(stored, &fresh)
                            || (spent.is_some() && stored.refresh_token == spent))
                };
                match (stored, session.last_end()) {
                    (Ok(Some(stored)), Some(end)) if holds_dead(&stored) => {
                        self.stage = Stage::ClearingSpent { fresh };
                        Step::wait(Wait::Clear(end))
                    }
                    _ => self.revoked(fresh, None, vec![]),
                }
            }
            (Stage::ClearingSpent { fresh }, Input::Cleared(_)) => {
                self.revoked(fresh, None, vec![])
            }
            (Stage::ReadingBeforeWrite(unwritten), Input::Loaded(stored)) => {
                self.before_write(unwritten, stored, session)
            }
            (Stage::ReadingEndBeforeWrite(unwritten), Input::EndReason(end)) => {
                if lost_from_store(&unwritten.base, end, session) {
                    return self.save_refreshed(unwritten);
                }
                // Cleared meanwhile: a sign-out in a tab that did not wait
                // for the lock. It cannot be undone.
                let end = Act::End {
                    reason: EndReason::SignedOut,
                    at: ended_until(end, now),
                };
                self.revoked(unwritten.fresh, Some(end), vec![])
            }
            (Stage::Saving { tokens, then }, Input::Saved(saved)) => {
                let unsaved = saved.is_err();
                let mut acts = Vec::with_capacity(3);
                if let Err(error) = saved {
                    acts.push(Act::PersistFailed(error));
                }
                acts.push(Act::Unsaved(unsaved));
                acts.push(Act::Publish(SessionMessage::Tokens {
                    tokens: tokens.clone(),
                    unsaved,
                }));
                if unsaved {
                    // Only this message carries the set to the other tabs:
                    // the next tab to take the lock must have heard it, or it
                    // would refresh with the stored, spent refresh token.
                    self.stage = Stage::Grace { tokens, then };
                    return Step {
                        acts,
                        wait: Wait::Sleep(BROADCAST_GRACE_MS),
                    };
                }
                self.written(tokens, then, false, acts, session)
            }
            (Stage::Grace { tokens, then }, Input::Slept) => {
                self.written(tokens, then, session.is_unsaved(), vec![], session)
            }
            (Stage::Checking { fresh, candidate }, Input::Checked(checked)) => {
                self.checked(fresh, candidate, checked, session)
            }
            (
                Stage::Ending {
                    reason,
                    login_at_ms,
                    then_revoke,
                    error,
                },
                // A failed clear still ends the session (see `Wait::Clear`).
                Input::Cleared(_),
            ) => Step::done(ended(reason, login_at_ms, then_revoke, vec![]), Err(error)),
            _ => Step::done(vec![], Err(Error::RefreshTimeout)),
        }
    }
}

impl RefreshMachine {
    /// The refresh was answered (by the token endpoint, or the app's own
    /// `refresh`), or the request failed.
    fn answered(
        &mut self,
        base: TokenSet,
        answer: Result<RefreshAnswer, Error>,
        session: &Session,
        now: u64,
    ) -> Step {
        // A failed request is the call's error as it is: only an answer can
        // say `invalid_grant` or `Retry-After`.
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => return Step::done(vec![], Err(error)),
        };
        if base.dpop_jkt.is_some() && answer.wants_nonce() {
            return self.resend_for_nonce();
        }
        let rotated = answer.rotation_in_refused(now, &base);
        let fresh = match (answer.token_set(now, &base), rotated) {
            (Ok(fresh), _) => fresh,
            (Err(error), _) if error.code() == "invalid_grant" => {
                self.stage = Stage::Rechecking { base };
                return Step::wait(Wait::Load);
            }
            // Refused, but the server rotated: its new refresh token is the
            // session, written as any refresh's set; then the call fails.
            (Err(error), Some(kept)) => {
                return self.persist(base, kept, None, Some(error), session)
            }
            (Err(error), None) => {
                let acts = match back_off(&error, now) {
                    Some((until, told)) => vec![
                        Act::HoldOff {
                            until,
                            error: error.clone(),
                        },
                        Act::Publish(told),
                    ],
                    None => vec![],
                };
                return Step::done(acts, Err(error));
            }
        };
        // The server has rotated: from here on `fresh` is the session.
        // Persist it first; its new ID token is checked after.
        let (fresh, id_token) = self.set_aside_id_token(&base, fresh);
        self.persist(base, fresh, id_token, None, session)
    }

    /// The request was refused for its proof's nonce, unprocessed: it is
    /// sent once more with the nonce the answer brought, from the base read
    /// again. A sibling's rotation heard while it was out (one whose write
    /// failed, its tab closed before the broadcast arrived) is newer than
    /// the set it was sent from, whose refresh token is spent by then.
    fn resend_for_nonce(&mut self) -> Step {
        if std::mem::replace(&mut self.resent_for_nonce, true) {
            return Step::done(vec![], Err(Error::DpopNonceFailed));
        }
        self.stage = Stage::RereadingBase;
        Step::wait(Wait::Load)
    }

    /// Writes `fresh`, the set the server's answer to the refresh of `base`
    /// gave (`refused`: a rotation kept from an answer refused otherwise),
    /// after the store is read again.
    fn persist(
        &mut self,
        base: TokenSet,
        fresh: TokenSet,
        id_token: Option<IdToken>,
        refused: Option<Error>,
        session: &Session,
    ) -> Step {
        let acts = vec![Act::ResumeRequests];
        if self.ended_since_start(&fresh, session) {
            // Signed out (or expired) while the request was out, possibly
            // without a shared lock: persisting would bring the session back.
            let spent = base.refresh_token;
            return self.discard(fresh, spent, acts);
        }
        self.stage = Stage::ReadingBeforeWrite(Unwritten {
            base,
            fresh,
            id_token,
            refused,
        });
        Step {
            acts,
            wait: Wait::Load,
        }
    }

    /// Retires `fresh`, a rotation of a session that ended while it was out
    /// or being written, once the store no longer holds it or the refresh
    /// token `spent` it replaced. The ending tab clears the store, but its
    /// first clear is made without the lock and may not take effect, and
    /// its second waits for the lock behind other tabs: one of those would
    /// read the stored set before hearing the end and present a refresh
    /// token the server has rotated (reuse) or is about to revoke.
    fn discard(&mut self, fresh: TokenSet, spent: Option<RefreshToken>, acts: Vec<Act>) -> Step {
        self.stage = Stage::Discarding { fresh, spent };
        Step {
            acts,
            wait: Wait::Load,
        }
    }

    /// Fails with `not_authenticated` after retiring `fresh` (a set
    /// refreshed for a session that ended), ending the session here first
    /// when `end` says so.
    fn revoked(&mut self, fresh: TokenSet, end: Option<Act>, mut acts: Vec<Act>) -> Step {
        acts.push(Act::Revoke(fresh));
        acts.extend(end);
        Step::done(acts, Err(Error::NotAuthenticated))
    }

    /// Whether the session `set` belongs to ended since this machine
    /// started: a sign-out, or an expiry of its login (or a later one). An
    /// expiry of an older session, heard while this tab already held a
    /// later login's set, is not this set's end.
    fn ended_since_start(&self, set: &TokenSet, session: &Session) -> bool {
        session.ends() != self.ends_before && session.has_ended(set)
    }

    /// `fresh` with the ID token it can be used with now (the previous,
    /// verified one), and the new one that still has to be verified.
    /// Without `openid` no ID token is kept at all.
    fn set_aside_id_token(&self, base: &TokenSet, fresh: TokenSet) -> (TokenSet, Option<IdToken>) {
        if !self.keeps_id_tokens {
            let fresh = TokenSet {
                id_token: None,
                ..fresh
            };
            return (fresh, None);
        }
        if fresh.id_token == base.id_token {
            return (fresh, None);
        }
        let id_token = fresh.id_token.clone();
        let fresh = TokenSet {
            id_token: base.id_token.clone(),
            ..fresh
        };
        (fresh, id_token)
    }

    /// The store read right before writing `fresh` (compare-and-swap: it
    /// must still hold `base`, an older set, or nothing because `base`
    /// never reached it).
    fn before_write(
        &mut self,
        unwritten: Unwritten,
        stored: Result<Option<TokenSet>, Error>,
        session: &Session,
    ) -> Step {
        match stored {
            Ok(Some(stored))
                if other_tokens(&stored, &unwritten.base)
                    && !is_newer(&unwritten.base, &stored) =>
            {
                // Replaced meanwhile (a new login, a tab without the lock):
                // the newer set wins. `fresh` is not revoked: it may belong
                // to the same grant as the winner (a sibling's refresh), and
                // revoking a refresh token may end its whole grant.
                return Step::done(
                    vec![Act::Adopt(stored.clone(), TokenSource::Sync)],
                    Ok(stored),
                );
            }
            Ok(None) if session.is_unsaved() || self.found_stored => {
                // Cleared meanwhile, by a sign-out in a tab that did not wait
                // for the lock, unless its end is of earlier logins only.
                self.stage = Stage::ReadingEndBeforeWrite(unwritten);
                return Step::wait(Wait::EndReason);
            }
            _ => {}
        }
        self.save_refreshed(unwritten)
    }

    /// Writes the refreshed set.
    fn save_refreshed(&mut self, unwritten: Unwritten) -> Step {
        let Unwritten {
            base,
            fresh,
            id_token,
            refused,
        } = unwritten;
        self.stage = Stage::Saving {
            tokens: fresh.clone(),
            then: Written::Refreshed {
                base,
                id_token,
                refused,
            },
        };
        Step::wait(Wait::Save(fresh))
    }

    /// `tokens` was written (or `unsaved`) and broadcast.
    fn written(
        &mut self,
        tokens: TokenSet,
        then: Written,
        unsaved: bool,
        acts: Vec<Act>,
        session: &Session,
    ) -> Step {
        // The set with its verified ID token goes through the same checks
        // as the refreshed set did: a sign-out or a new login may have come
        // while it was written.
        let (base, id_token, refused) = match then {
            Written::PutBack => return Step::done(acts, Ok(tokens)),
            Written::Verified => (None, None, None),
            Written::Refreshed {
                base,
                id_token,
                refused,
            } => (Some(base), id_token, refused),
        };
        let fresh = tokens;
        if self.ended_since_start(&fresh, session) {
            // Signed out while the set was being written: every tab ignores
            // this set's broadcast (its login is older than the sign-out).
            let spent = base.and_then(|base| base.refresh_token);
            return self.discard(fresh, spent, acts);
        }
        if let Some(later) = session
            .tokens()
            .filter(|held| held.login_at_ms > fresh.login_at_ms)
        {
            // A new login arrived while this set of the older session was
            // being written (from a tab that stopped waiting for the lock):
            // the login wins, and its ID token is not this refresh's to
            // check. Where this write replaced it in the store, it is put
            // back (the lock is still held).
            if unsaved {
                return Step::done(acts, Ok(later));
            }
            self.stage = Stage::Saving {
                tokens: later.clone(),
                then: Written::PutBack,
            };
            return Step {
                acts,
                wait: Wait::Save(later),
            };
        }
        let mut acts = acts;
        acts.push(Act::Adopt(fresh.clone(), TokenSource::Refresh));
        if let Some(error) = refused {
            return Step::done(acts, Err(error));
        }
        let (Some(base), Some(id_token)) = (base, id_token) else {
            return Step::done(acts, Ok(fresh));
        };
        let candidate = TokenSet {
            id_token: Some(id_token),
            ..fresh.clone()
        };
        self.stage = Stage::Checking {
            fresh,
            candidate: candidate.clone(),
        };
        Step {
            acts,
            wait: Wait::Check { base, candidate },
        }
    }

    /// The refreshed set's new ID token was checked. When it verifies it
    /// replaces the previous one; when it cannot be checked now (keys
    /// unreachable, a clock check) the previous verified one stays, and the
    /// next refresh's ID token is checked again; when it is definitely not
    /// this user's from this issuer the session ends and the new tokens are
    /// retired.
    fn checked(
        &mut self,
        fresh: TokenSet,
        candidate: TokenSet,
        checked: Result<(), Error>,
        session: &Session,
    ) -> Step {
        match checked {
            Ok(()) if session.tokens().as_ref() != Some(&fresh) => {
                // Replaced or ended while the keys were fetched.
                Step::done(vec![], Ok(fresh))
            }
            Ok(()) if session.is_unsaved() => {
                // The set's write failed a moment ago, and said so; the
                // other tabs still get the verified ID token.
                let acts = vec![
                    Act::Publish(SessionMessage::Tokens {
                        tokens: candidate.clone(),
                        unsaved: true,
                    }),
                    Act::Adopt(candidate.clone(), TokenSource::Refresh),
                ];
                Step::done(acts, Ok(candidate))
            }
            Ok(()) => {
                self.stage = Stage::Saving {
                    tokens: candidate.clone(),
                    then: Written::Verified,
                };
                Step::wait(Wait::Save(candidate))
            }
            Err(error) if is_identity_failure(&error) => {
                let login_at_ms = fresh.login_at_ms;
                let acts = vec![Act::Revoke(fresh)];
                self.end(EndReason::Expired, login_at_ms, None, error, acts, session)
            }
            Err(_) => Step::done(vec![], Ok(fresh)),
        }
    }

    /// The set to refresh from, read inside the lock: the newer of the
    /// stored set and this tab's. An empty store means the session ended in
    /// another tab, unless this tab's set never reached it.
    fn base_read(
        &mut self,
        stored: Result<Option<TokenSet>, Error>,
        mine: Option<TokenSet>,
        session: &Session,
        now: u64,
    ) -> Step {
        let stored = match stored {
            Ok(stored) => stored,
            // The unreadable record was removed, or is a newer latchkey's and
            // left alone: this tab's copy is sound.
            Err(Error::CorruptRecord { .. } | Error::NewerRecord { .. }) => match mine {
                Some(mine) => return self.refresh_from(mine, session, now),
                None => return Step::done(vec![], Err(Error::NotAuthenticated)),
            },
            Err(error) => return Step::done(vec![], Err(error)),
        };
        // A set of a login this tab heard end is not the session, neither
        // the stored one (it stays only until the ending tab's clear: a
        // sign-out's second clear comes after a refresh that was out at the
        // time wrote) nor this tab's as of the lock (the end may have been
        // heard since).
        let stored_ended = stored
            .as_ref()
            .filter(|set| session.has_ended(set))
            .map(|set| set.login_at_ms);
        let stored = stored.filter(|_| stored_ended.is_none());
        self.found_stored = stored.is_some();
        let mine = mine.filter(|set| !session.has_ended(set));
        let base = match (stored, mine) {
            // A set that never reached the store (a failed write here, or in
            // the tab whose broadcast this one adopted) is newer than what
            // the store holds: refreshing the stored one would present a
            // spent refresh token.
            (Some(stored), Some(mine)) if is_newer(&mine, &stored) => mine,
            (Some(stored), _) => stored,
            // This tab's later login, whose write has not replaced the ended
            // one's set (or failed).
            (None, Some(mine)) if stored_ended.is_some() => mine,
            // Cleared by another tab while this one held a copy (its
            // broadcast not heard yet), unless the store's end is of
            // earlier logins only.
            (None, Some(mine)) => {
                self.stage = Stage::ReadingEndReason {
                    at: now,
                    mine: Some(mine),
                };
                return Step::wait(Wait::EndReason);
            }
            // Only an ended login's set left (refreshing it would sign this
            // tab back in): never refresh a session that has ended.
            _ => return self.over(stored_ended.unwrap_or(now)),
        };
        self.refresh_from(base, session, now)
    }

    /// Adopt a sibling's set, use one that cannot be refreshed while it
    /// lasts, answer a held `Retry-After`, or send the request.
    fn refresh_from(&mut self, base: TokenSet, session: &Session, now: u64) -> Step {
        if base.access_token != self.held && !needs_refresh(&base, now, self.policy.leeway_ms) {
            return Step::done(vec![Act::Adopt(base.clone(), TokenSource::Sync)], Ok(base));
        }
        if !base.can_refresh(now) {
            if !base.is_stale(now, 0) {
                // Nothing to refresh with, but still valid: use it while it lasts.
                return Step::done(vec![], Ok(base));
            }
            return self.expire(base, vec![], session);
        }
        if let Some(error) = session.backing_off(now) {
            return Step::done(vec![], Err(error));
        }
        let unchecked = self
            .account_checked_for(&base)
            .filter(|account| self.checked_account.as_ref() != Some(*account));
        if let Some(account) = unchecked {
            // The account may have moved to another server, or its
            // document may no longer name this one: checked before its
            // refresh token is presented anywhere.
            let account = account.clone();
            let ms = self.left(self.policy.timeout_ms);
            self.stage = Stage::CheckingAccount { base };
            return Step::wait(Wait::CheckAccount { account, ms });
        }
        self.send(base)
    }

    /// The AT Protocol account whose own server refreshes `base`, once
    /// checked again: only for a client that checks accounts.
    fn account_checked_for<'b>(&self, base: &'b TokenSet) -> Option<&'b Account> {
        base.atproto.as_deref().filter(|_| self.checks_accounts)
    }

    /// Sends the refresh of `base`: to its account's own token endpoint
    /// (AT Protocol), else to the client's. The callers wait for the
    /// answer what is left of the refresh timeout (the account's check, or
    /// the request refused for its nonce, came out of it); past it they are
    /// told `refresh_timeout`, and the request is still awaited up to the
    /// settle cap.
    fn send(&mut self, base: TokenSet) -> Step {
        let endpoint = self
            .account_checked_for(&base)
            .map(|account| account.token_endpoint.clone());
        let settle = self.left(self.policy.settle_cap_ms);
        if settle == 0 {
            // A resend past the settle cap: nothing was processed, and the
            // lock is let go now.
            return Step::done(vec![], Err(Error::RefreshTimeout));
        }
        let request = RefreshRequest {
            base: base.clone(),
            endpoint,
            abort_after_ms: self.left(self.policy.abort_after_ms()),
        };
        let ms = self.left(self.policy.timeout_ms);
        self.stage = Stage::Sending { base };
        Step::wait(Wait::Send { request, ms })
    }

    /// What is left of `after_ms` from the first request, which is now
    /// (the input's time, not the time the base was decided as of) if none
    /// went out yet.
    fn left(&mut self, after_ms: u32) -> u32 {
        let now = self.input_at;
        let started = *self.started_ms.get_or_insert(now);
        let until = started.saturating_add(u64::from(after_ms));
        u32::try_from(until.saturating_sub(now)).unwrap_or(u32::MAX)
    }

    /// Ends the session because the server will not refresh `ended`, then
    /// retires it.
    fn expire(&mut self, ended: TokenSet, acts: Vec<Act>, session: &Session) -> Step {
        let login_at_ms = ended.login_at_ms;
        self.end(
            EndReason::Expired,
            login_at_ms,
            Some(ended),
            Error::SessionExpired,
            acts,
            session,
        )
    }

    /// The session ended before this refresh could use it: the store says
    /// whether it was a sign-out or an expiry, and the end covers logins
    /// until `at`.
    fn over(&mut self, at: u64) -> Step {
        self.stage = Stage::ReadingEndReason { at, mine: None };
        Step::wait(Wait::EndReason)
    }

    /// Ends the session of the login at `login_at_ms` everywhere: the store
    /// cleared (awaited), then the other tabs told and this tab's copy
    /// dropped, then `then_revoke` retired; the refresh fails with `error`.
    /// When this tab already holds a later login (completed here, or heard
    /// from the tab that completed it) that reached the store, the store is
    /// that login's and is not cleared; one whose write failed left the
    /// refused set there, which is cleared.
    fn end(
        &mut self,
        reason: EndReason,
        login_at_ms: u64,
        then_revoke: Option<TokenSet>,
        error: Error,
        acts: Vec<Act>,
        session: &Session,
    ) -> Step {
        let later_login = session
            .tokens()
            .is_some_and(|held| held.login_at_ms > login_at_ms);
        if later_login && !session.is_unsaved() {
            return Step::done(ended(reason, login_at_ms, then_revoke, acts), Err(error));
        }
        self.stage = Stage::Ending {
            reason,
            login_at_ms,
            then_revoke,
            error,
        };
        Step {
            acts,
            wait: Wait::Clear(EndRecord::new(reason, login_at_ms)),
        }
    }
}

/// `acts`, then the end of the login at `login_at_ms` told to the other tabs
/// and applied here (a later login, here or in another tab, stays), then
/// `then_revoke` retired.
fn ended(
    reason: EndReason,
    login_at_ms: u64,
    then_revoke: Option<TokenSet>,
    mut acts: Vec<Act>,
) -> Vec<Act> {
    acts.push(Act::Publish(SessionMessage::Ended {
        reason,
        login_at_ms: Some(login_at_ms),
    }));
    acts.push(Act::End {
        reason,
        at: login_at_ms,
    });
    acts.extend(then_revoke.map(Act::Revoke));
    acts
}

/// A token endpoint's `Retry-After` carried by `error`, at `now_ms`: until
/// when no request is made (capped at [`MAX_RETRY_AFTER_MS`]) and the
/// message that tells the other tabs.
pub fn back_off(error: &Error, now_ms: u64) -> Option<(u64, SessionMessage)> {
    let seconds = error.retry_after_s()?;
    let wait = seconds.saturating_mul(1000).min(MAX_RETRY_AFTER_MS);
    let until = now_ms.saturating_add(wait);
    let message = SessionMessage::BackOff {
        until,
        status: error.status().unwrap_or_default(),
        error: error.server_error().unwrap_or_default().to_owned(),
        seconds,
    };
    Some((until, message))
}

/// Whether `set`, missing from a store found empty, was lost from it rather
/// than ended: the store's `end` names only earlier logins (a sign-out
/// called before `set`'s login, whose first clear came after its write),
/// and no end of it was heard here.
fn lost_from_store(set: &TokenSet, end: Option<EndRecord>, session: &Session) -> bool {
    end.map_or(session.is_unsaved(), |end| !end.covers(set)) && !session.has_ended(set)
}

/// The logins an end found in the store ends here: until `at`, or until the
/// record's own end when that is earlier (a later login, removed from the
/// store by a sign-out's lockless first clear and heard after, is not this
/// end's).
fn ended_until(end: Option<EndRecord>, at: u64) -> u64 {
    end.and_then(|end| end.until_ms)
        .map_or(at, |until| until.min(at))
}

/// The session ended for the store's `end` (an expiry when there is none),
/// here for the logins [`ended_until`] `at`.
fn ended_by_store(end: Option<EndRecord>, at: u64) -> Step {
    let reason = end.map_or(EndReason::Expired, |end| end.reason);
    let at = ended_until(end, at);
    let error = match reason {
        EndReason::SignedOut => Error::NotAuthenticated,
        EndReason::Expired => Error::SessionExpired,
    };
    Step::done(vec![Act::End { reason, at }], Err(error))
}

/// Whether `a` holds a token `b` does not: another set, not `b` as it
/// was stored. Both tokens count: a rotation kept from a refused answer
/// has its base's access token.
fn other_tokens(a: &TokenSet, b: &TokenSet) -> bool {
    a.access_token != b.access_token || a.refresh_token != b.refresh_token
}

/// Whether a refreshed ID token's refusal is definite — it is not the
/// issuer's (signature, algorithm, shape) or not this user's at this
/// client — as opposed to one that may pass later (keys unreachable, a
/// clock check).
///
/// A `kid` missing from the key set even after its refetch may pass later:
/// a cache in front of `jwks_uri` can serve the set from before a key
/// rollover for as long as its lifetime, while the token came straight from
/// the token endpoint over TLS (OIDC Core §3.1.3.7, 6). Ending the session
/// there would end it in every tab for a stale cache.
pub fn is_identity_failure(error: &Error) -> bool {
    matches!(
        error,
        Error::IdTokenMalformed { .. }
            | Error::IdTokenUnsupportedAlg { .. }
            | Error::IdTokenInvalidSignature
            | Error::IdTokenIssMismatch
            | Error::IdTokenAudMismatch
            | Error::IdTokenAzpMismatch
            | Error::IdTokenSubMismatch
    )
}

#[cfg(test)]
#[path = "refresh_machine_tests.rs"]
mod tests;
