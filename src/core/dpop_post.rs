//! A form post to the authorization server with a DPoP proof
//! ([RFC 9449 §8](https://www.rfc-editor.org/rfc/rfc9449#section-8)) as a
//! machine that does no I/O ([`ProofPost`]): the PAR request, the code
//! exchange, the refresh grant and the revocations all go through it. The
//! driver ([`DpopHttp`](crate::core::dpop::DpopHttp)'s `post`) performs
//! each [`Need`] and decides nothing.
//!
//! The rule: the proof carries the server's last nonce; the answer's nonce
//! is kept; a post refused with `use_dpop_nonce` is sent once more — with a
//! new proof carrying the nonce now kept — only when the answer brought a
//! nonce other than the one sent (otherwise a resend would be refused
//! again). A second refusal is `dpop_nonce_failed`: never a loop. A post
//! started with [`NonceRefusal::HandOn`] hands that first refusal on
//! instead (the nonce kept), for a caller that decides itself what to send
//! again: the refresh, whose refresh token may have been rotated by a
//! sibling tab while the refused request was out.

use crate::core::drive::{Machine, Next};
use crate::core::platform::HttpReply;
use crate::core::secret::DpopProof;
use crate::core::Error;

/// Whether a token-endpoint style answer refuses the proof's nonce
/// ([§8](https://www.rfc-editor.org/rfc/rfc9449#section-8)): `400` with
/// `error: "use_dpop_nonce"`.
pub fn token_reply_wants_nonce<T>(reply: &HttpReply<T>) -> bool {
    reply.status == 400 && reply.oauth_error.as_deref() == Some("use_dpop_nonce")
}

/// What the driver does next.
#[derive(Debug)]
pub enum Need {
    /// Make a proof for the request carrying `nonce` → [`Fed::Proved`].
    Prove {
        /// The server's nonce to carry, if any.
        nonce: Option<String>,
    },
    /// Post the form with this proof → [`Fed::Answered`].
    Post(DpopProof),
    /// Keep the answer's nonce for the server → [`Fed::Learned`].
    Learn(String),
}

/// The machine's next step: something to do, or the server's answer to
/// hand on (or why there is none).
pub type Step<B> = Next<Need, Result<HttpReply<B>, Error>>;

/// What happened, fed to [`ProofPost::on`].
pub enum Fed<B> {
    /// The proof, or why it could not be made.
    Proved(Result<DpopProof, Error>),
    /// The server's answer, or why there is none.
    Answered(Result<HttpReply<B>, Error>),
    /// The nonce was offered to the book; the nonce it now holds for the
    /// server (a malformed one is not kept).
    Learned(Option<String>),
}

enum Stage<B> {
    Proving {
        sent: Option<String>,
        resent: bool,
    },
    Posting {
        sent: Option<String>,
        resent: bool,
    },
    Learning {
        reply: HttpReply<B>,
        fresh: bool,
        resent: bool,
    },
    Over,
}

/// What a post does with a refusal that brings a new nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRefusal {
    /// Sends the same request again, once, with the new nonce.
    Resend,
    /// Hands the refusal on as the answer (the nonce kept): the caller
    /// decides what to send again.
    HandOn,
}

/// One form post with a proof, and at most one resend for a nonce.
pub struct ProofPost<B> {
    stage: Stage<B>,
    on_refusal: NonceRefusal,
}

impl<B> ProofPost<B> {
    /// A post whose first proof carries `known`, the server's nonce the
    /// tab holds, and what it does `on_refusal`; its first step.
    pub fn start(known: Option<String>, on_refusal: NonceRefusal) -> (ProofPost<B>, Step<B>) {
        let machine = ProofPost {
            stage: Stage::Proving {
                sent: known.clone(),
                resent: false,
            },
            on_refusal,
        };
        (machine, Step::Do(Need::Prove { nonce: known }))
    }

    /// The step after `fed`. An input the stage does not expect (a driver
    /// bug) ends the post with `dpop_nonce_failed`.
    pub fn on(&mut self, fed: Fed<B>) -> Step<B> {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            (Stage::Proving { sent, resent }, Fed::Proved(Ok(proof))) => {
                self.stage = Stage::Posting { sent, resent };
                Step::Do(Need::Post(proof))
            }
            (Stage::Posting { sent, resent }, Fed::Answered(Ok(reply))) => {
                match reply.dpop_nonce.clone() {
                    Some(nonce) => {
                        // New to this request, whoever kept it first.
                        let fresh = sent.as_deref() != Some(nonce.as_str());
                        self.stage = Stage::Learning {
                            reply,
                            fresh,
                            resent,
                        };
                        Step::Do(Need::Learn(nonce))
                    }
                    None => self.answered(reply, false, resent, None),
                }
            }
            (
                Stage::Learning {
                    reply,
                    fresh,
                    resent,
                },
                Fed::Learned(held),
            ) => self.answered(reply, fresh, resent, held),
            (Stage::Proving { .. }, Fed::Proved(Err(error)))
            | (Stage::Posting { .. }, Fed::Answered(Err(error))) => Step::Done(Err(error)),
            (_, _) => Step::Done(Err(Error::DpopNonceFailed)),
        }
    }

    /// The answer handed on, or — refused for its nonce, once, with a new
    /// one — the same request again with the nonce `held` now.
    fn answered(
        &mut self,
        reply: HttpReply<B>,
        fresh: bool,
        resent: bool,
        held: Option<String>,
    ) -> Step<B> {
        if !token_reply_wants_nonce(&reply) {
            return Step::Done(Ok(reply));
        }
        if resent || !fresh {
            return Step::Done(Err(Error::DpopNonceFailed));
        }
        if self.on_refusal == NonceRefusal::HandOn {
            return Step::Done(Ok(reply));
        }
        self.stage = Stage::Proving {
            sent: held.clone(),
            resent: true,
        };
        Step::Do(Need::Prove { nonce: held })
    }
}

impl<B> Machine for ProofPost<B> {
    type Need = Need;
    type Fed = Fed<B>;
    type Done = Result<HttpReply<B>, Error>;
    type With<'a> = ();

    fn on(&mut self, fed: Fed<B>, (): ()) -> Step<B> {
        ProofPost::on(self, fed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::raw_reply;

    const WANTS_NONCE: &str = r#"{"error":"use_dpop_nonce"}"#;

    fn proof() -> DpopProof {
        DpopProof::new("h.p.s".into())
    }

    fn proves(step: Step<String>) -> Option<String> {
        match step {
            Step::Do(Need::Prove { nonce }) => nonce,
            Step::Do(other) => panic!("expected a proof asked for, got {other:?}"),
            Step::Done(_) => panic!("expected a proof asked for, got the end"),
        }
    }

    fn learns(step: Step<String>) -> String {
        match step {
            Step::Do(Need::Learn(nonce)) => nonce,
            Step::Do(other) => panic!("expected a nonce kept, got {other:?}"),
            Step::Done(_) => panic!("expected a nonce kept, got the end"),
        }
    }

    fn done(step: Step<String>) -> Result<HttpReply<String>, Error> {
        match step {
            Step::Done(outcome) => outcome,
            Step::Do(other) => panic!("expected the end, got {other:?}"),
        }
    }

    /// A post started with `known`, proved and sent: the machine waiting
    /// for the answer.
    fn sent(known: Option<&str>) -> ProofPost<String> {
        let (mut machine, step) = ProofPost::start(known.map(str::to_owned), NonceRefusal::Resend);
        assert_eq!(proves(step).as_deref(), known);
        let step = machine.on(Fed::Proved(Ok(proof())));
        assert!(matches!(step, Step::Do(Need::Post(_))));
        machine
    }

    #[test]
    fn an_answer_without_a_nonce_is_handed_on() {
        let mut machine = sent(None);
        let reply = done(machine.on(Fed::Answered(Ok(raw_reply(200, "{}", None)))));
        assert_eq!(reply.unwrap().status, 200);
    }

    #[test]
    fn the_answers_nonce_is_kept_before_the_answer_is_handed_on() {
        let mut machine = sent(Some("n-1"));
        let answer = raw_reply(200, "{}", Some("n-2".into()));
        assert_eq!(learns(machine.on(Fed::Answered(Ok(answer)))), "n-2");
        let reply = done(machine.on(Fed::Learned(Some("n-2".into()))));
        assert_eq!(reply.unwrap().status, 200);
    }

    #[test]
    fn a_refusal_with_a_new_nonce_is_resent_once_with_the_nonce_kept() {
        let mut machine = sent(Some("stale"));
        let refused = raw_reply(400, WANTS_NONCE, Some("fresh".into()));
        learns(machine.on(Fed::Answered(Ok(refused))));
        let again = machine.on(Fed::Learned(Some("fresh".into())));
        assert_eq!(proves(again).as_deref(), Some("fresh"));
        assert!(matches!(
            machine.on(Fed::Proved(Ok(proof()))),
            Step::Do(Need::Post(_))
        ));
        let reply = done(machine.on(Fed::Answered(Ok(raw_reply(200, "{}", None)))));
        assert_eq!(reply.unwrap().status, 200);
    }

    #[test]
    fn a_post_sent_once_hands_on_a_refusal_with_a_new_nonce_once_kept() {
        let (mut machine, step) = ProofPost::start(Some("stale".into()), NonceRefusal::HandOn);
        assert_eq!(proves(step).as_deref(), Some("stale"));
        machine.on(Fed::Proved(Ok(proof())));
        let refused = raw_reply(400, WANTS_NONCE, Some("fresh".into()));
        assert_eq!(learns(machine.on(Fed::Answered(Ok(refused)))), "fresh");
        let reply = done(machine.on(Fed::Learned(Some("fresh".into()))));
        assert!(token_reply_wants_nonce(&reply.unwrap()));
        // One repeating the nonce sent is still no nonce to send again.
        let (mut machine, _) = ProofPost::start(Some("n-1".into()), NonceRefusal::HandOn);
        machine.on(Fed::Proved(Ok(proof())));
        let repeated = raw_reply(400, WANTS_NONCE, Some("n-1".into()));
        learns(machine.on(Fed::Answered(Ok(repeated))));
        let outcome = done(machine.on(Fed::Learned(Some("n-1".into()))));
        assert_eq!(outcome.unwrap_err(), Error::DpopNonceFailed);
    }

    #[test]
    fn a_second_refusal_is_dpop_nonce_failed_not_a_loop() {
        let mut machine = sent(None);
        learns(machine.on(Fed::Answered(Ok(raw_reply(
            400,
            WANTS_NONCE,
            Some("n-1".into()),
        )))));
        proves(machine.on(Fed::Learned(Some("n-1".into()))));
        machine.on(Fed::Proved(Ok(proof())));
        let refused_again = raw_reply(400, WANTS_NONCE, Some("n-2".into()));
        learns(machine.on(Fed::Answered(Ok(refused_again))));
        let outcome = done(machine.on(Fed::Learned(Some("n-2".into()))));
        assert_eq!(outcome.unwrap_err(), Error::DpopNonceFailed);
    }

    #[test]
    fn a_refusal_repeating_the_nonce_sent_is_not_resent() {
        let mut machine = sent(Some("n-1"));
        learns(machine.on(Fed::Answered(Ok(raw_reply(
            400,
            WANTS_NONCE,
            Some("n-1".into()),
        )))));
        let outcome = done(machine.on(Fed::Learned(Some("n-1".into()))));
        assert_eq!(outcome.unwrap_err(), Error::DpopNonceFailed);
    }

    #[test]
    fn only_a_400_naming_use_dpop_nonce_refuses_the_nonce() {
        for status in [200, 401, 500] {
            let mut machine = sent(None);
            let answer = raw_reply(status, WANTS_NONCE, None);
            let reply = done(machine.on(Fed::Answered(Ok(answer))));
            assert_eq!(reply.unwrap().status, status);
        }
    }

    #[test]
    fn a_refusal_without_a_nonce_is_not_resent() {
        let mut machine = sent(None);
        let outcome = done(machine.on(Fed::Answered(Ok(raw_reply(400, WANTS_NONCE, None)))));
        assert_eq!(outcome.unwrap_err(), Error::DpopNonceFailed);
    }

    #[test]
    fn the_resend_carries_the_nonce_the_book_holds_not_a_malformed_one() {
        let mut machine = sent(Some("n-1"));
        let malformed = raw_reply(400, WANTS_NONCE, Some("bad\"nonce".into()));
        learns(machine.on(Fed::Answered(Ok(malformed))));
        // The book refused it and still holds n-1: the resend carries n-1.
        let again = machine.on(Fed::Learned(Some("n-1".into())));
        assert_eq!(proves(again).as_deref(), Some("n-1"));
    }

    #[test]
    fn a_failed_proof_or_request_on_the_resend_is_the_outcome() {
        let resending = || {
            let mut machine = sent(None);
            let refused = raw_reply(400, WANTS_NONCE, Some("n-1".into()));
            learns(machine.on(Fed::Answered(Ok(refused))));
            proves(machine.on(Fed::Learned(Some("n-1".into()))));
            machine
        };
        let gone = Error::DpopKeyUnavailable {
            reason: "gone".into(),
        };
        let outcome = done(resending().on(Fed::Proved(Err(gone.clone()))));
        assert_eq!(outcome.unwrap_err(), gone);
        let mut machine = resending();
        machine.on(Fed::Proved(Ok(proof())));
        let network = Error::Network {
            reason: "offline".into(),
        };
        let outcome = done(machine.on(Fed::Answered(Err(network.clone()))));
        assert_eq!(outcome.unwrap_err(), network);
    }

    #[test]
    fn a_failed_proof_or_request_is_the_outcome() {
        let (mut machine, _) = ProofPost::<String>::start(None, NonceRefusal::Resend);
        let unavailable = Error::DpopKeyUnavailable {
            reason: "gone".into(),
        };
        let outcome = done(machine.on(Fed::Proved(Err(unavailable.clone()))));
        assert_eq!(outcome.unwrap_err(), unavailable);
        let mut machine = sent(None);
        let network = Error::Network {
            reason: "offline".into(),
        };
        let outcome = done(machine.on(Fed::Answered(Err(network.clone()))));
        assert_eq!(outcome.unwrap_err(), network);
    }

    #[test]
    fn other_errors_are_handed_on_without_a_resend() {
        let mut machine = sent(None);
        let refused = raw_reply(400, r#"{"error":"invalid_grant"}"#, Some("n-1".into()));
        learns(machine.on(Fed::Answered(Ok(refused))));
        let reply = done(machine.on(Fed::Learned(Some("n-1".into()))));
        assert_eq!(reply.unwrap().oauth_error.as_deref(), Some("invalid_grant"));
    }

    #[test]
    fn an_unexpected_input_ends_it() {
        let (mut machine, _) = ProofPost::<String>::start(None, NonceRefusal::Resend);
        let outcome = done(machine.on(Fed::Learned(None)));
        assert_eq!(outcome.unwrap_err(), Error::DpopNonceFailed);
    }
}
