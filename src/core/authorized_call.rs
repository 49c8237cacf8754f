//! `fetchWithAuth`'s decisions as a deterministic state machine, free of
//! I/O: the binding reports what happened ([`Event`]) and does what the
//! machine says next ([`Step`]) — send, ask the app's "expired?" predicate,
//! get a replacement token, resend — so every rule of the pipeline is
//! tested natively, one test per branch.
//!
//! The rules, in order:
//! 1. A request to the token endpoint is sent untouched and never
//!    refreshed: a refresh can never trigger a refresh.
//! 2. A request to an origin the app did not allow is refused before
//!    anything is sent or refreshed.
//! 3. The token goes where the origin's placement says.
//! 4. An answer is final when the request cannot be replayed (a stream
//!    body) or came through a redirect (it is another URL's answer).
//! 5. Otherwise, when the API says the token expired, a replacement is
//!    asked for (one refresh at most, shared by the tab), and the request is
//!    resent once with it — unless there is nothing better to send.
//! 6. A replacement the API rejects on that very retry is marked so: it is
//!    not refreshed again (one reactive refresh per token).
//! 7. With DPoP, an answer refusing the proof's nonce (`use_dpop_nonce`) is
//!    not an answer about the token: the same request is sent again once,
//!    with the API's new nonce; refused again, the call fails with
//!    `dpop_nonce_failed` rather than loop.
//!
//! The fast path ([`AuthorizedCall::fast_path`]) is the same machine's first
//! step taken without a round trip through the driver: when the call only
//! needs the Bearer token already in memory, the package's JavaScript sends
//! it and comes back with the answer only when [`answer_is_final`] says the
//! answer may mean "expired"; the machine then goes on from `Answered`.

use crate::core::dpop::Role;
use crate::core::drive::{Machine, Next};
use crate::core::origin::TokenPlacement;
use crate::core::www_authenticate::{challenges, Challenge};
use crate::core::Error;

/// What happened, as the binding reports it.
#[derive(Debug)]
pub enum Event {
    /// A call begins.
    Start {
        /// The URL is the token endpoint's.
        token_endpoint: bool,
        /// Where the token goes for the URL's origin, or why it may not.
        placement: Result<TokenPlacement, Error>,
    },
    /// The API answered.
    Answered {
        /// The answer's status.
        status: u16,
        /// The answer came through a redirect.
        redirected: bool,
        /// The request can be sent again (its body is not a stream).
        replayable: bool,
        /// The answer refuses the DPoP proof's nonce and gives a new one.
        nonce_refused: bool,
    },
    /// The answer says the token expired, or not.
    Expired(bool),
    /// A replacement for the rejected token was obtained; `same` when it is
    /// the rejected token itself (nothing better to send).
    Replacement {
        /// The replacement is the rejected token.
        same: bool,
    },
    /// Performing the last need failed (a request that could not be built
    /// or sent, a refresh that failed, the app's predicate that threw).
    Failed,
}

/// What the binding does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    /// Get a token (fast path or refresh) and send with it, placed so.
    Send(TokenPlacement),
    /// Ask whether the answer says the token expired, by this test.
    AskExpired(ExpiryTest),
    /// Get a replacement for the rejected token.
    Replace,
    /// Send the request again with the replacement.
    Resend,
    /// Send the request again with the token it carried and a new proof
    /// (the API gave a new nonce).
    ResendForNonce {
        /// It carried the replacement (a resend), not the first token.
        replacement: bool,
    },
}

/// Which test says whether an answer means the token expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryTest {
    /// The app's `isTokenExpired`, for error statuses only
    /// ([`may_say_expired`]).
    App,
    /// RFC 6750's ([`rfc6750_says_expired`]): the default.
    Rfc6750,
}

/// How a call ends.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Send the request as the app made it; its answer is the result.
    SendUntouched,
    /// Reject the call with this error; nothing (more) is sent.
    Refuse(Error),
    /// The last answer is the result.
    Return,
    /// The last answer is the result, and the replacement is marked as
    /// rejected at once (not refreshed again).
    ReturnMarkingRejected,
    /// Performing the last need failed ([`Event::Failed`]): the call fails
    /// with that failure, which the driver holds.
    Failed,
}

/// The call's next step: a need to perform, or its end.
pub type Step = Next<Need, End>;

/// Whether an answer with `status` may say the token expired, so the
/// machine must look at it: RFC 6750's 401 by default; the app's
/// `isTokenExpired` is asked about error statuses (400 and above) only.
pub fn may_say_expired(status: u16, app_predicate: bool) -> bool {
    match app_predicate {
        true => status >= 400,
        false => status == 401,
    }
}

/// The default "expired" test
/// ([RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)):
/// a 401, unless its `WWW-Authenticate` `challenge`, when readable, names an
/// error other than `invalid_token` (e.g. `insufficient_scope`, which a
/// refresh cannot fix). Of the header's challenges, those of the `scheme`
/// the call sent (`Bearer`, `DPoP`) decide, when there are any: an API that
/// accepts both answers with both. Cross-origin APIs must expose the header
/// for it to be readable; without it every 401 counts as expired. The
/// header is read (`challenge()`) only for a 401: every answer of a
/// full-path call is asked.
pub fn rfc6750_says_expired(
    status: u16,
    scheme: &str,
    challenge: impl FnOnce() -> Option<String>,
) -> bool {
    if !may_say_expired(status, false) {
        return false;
    }
    let Some(header) = challenge() else {
        return true;
    };
    let all = challenges(&header);
    let sent = |c: &Challenge| c.scheme.eq_ignore_ascii_case(scheme);
    let any_sent = all.iter().any(sent);
    let expired = |c: &Challenge| {
        c.error
            .as_deref()
            .is_none_or(|error| error.eq_ignore_ascii_case("invalid_token"))
    };
    all.is_empty() || all.iter().filter(|c| !any_sent || sent(c)).any(expired)
}

/// Whether the first answer of a fast-path call is the call's result as is:
/// it came through a redirect (rule 4), or it cannot say the token expired.
/// The answers this says no to go back to the machine.
pub fn answer_is_final(status: u16, redirected: bool, app_predicate: bool) -> bool {
    redirected || !may_say_expired(status, app_predicate)
}

/// Where a call's URL points, as the binding finds it.
pub struct Destination<L, P> {
    /// The URL is the token endpoint in use.
    pub token_endpoint: bool,
    /// The URL is the UserInfo endpoint.
    pub userinfo: bool,
    /// The placement `allowedOrigins` gives the URL's origin, or why it
    /// refuses it; asked only when it matters.
    pub listed: L,
    /// Whether the URL is on the signed-in atproto account's PDS origin;
    /// asked only when the origin is not listed.
    pub account_pds: P,
}

impl<L, P> Destination<L, P>
where
    L: FnOnce() -> Result<TokenPlacement, Error>,
    P: FnOnce() -> bool,
{
    /// A call's first event, and whose DPoP nonces its proofs carry:
    /// UserInfo is the authorization server's (its token goes in the
    /// header, listed or not); the account's own PDS needs no listing
    /// (atproto); any other origin is placed as `allowedOrigins` says.
    pub fn start(self) -> (Event, Role) {
        let (placement, role) = match self.userinfo {
            true => (Ok(TokenPlacement::Header), Role::AuthorizationServer),
            false => {
                let placement = (self.listed)().or_else(|refused| match (self.account_pds)() {
                    true => Ok(TokenPlacement::Header),
                    false => Err(refused),
                });
                (placement, Role::Resource)
            }
        };
        let start = Event::Start {
            token_endpoint: self.token_endpoint,
            placement,
        };
        (start, role)
    }
}

/// Where a call is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Idle,
    Sent,
    Asked,
    Replacing,
    Resent,
    AskedAgain,
    Done,
}

/// One `fetchWithAuth` call's progress.
#[derive(Debug, Default)]
pub struct AuthorizedCall {
    state: State,
    /// The current send was already repeated for a nonce.
    nonce_retried: bool,
    /// The app gave `isTokenExpired`: its test replaces RFC 6750's.
    app_predicate: bool,
}

impl AuthorizedCall {
    /// A call of a client whose app gave `isTokenExpired` or not
    /// (`app_predicate`).
    pub fn new(app_predicate: bool) -> AuthorizedCall {
        AuthorizedCall {
            app_predicate,
            ..AuthorizedCall::default()
        }
    }

    /// The test that says whether an answer means "expired": the app's
    /// when it gave one.
    fn test(&self) -> ExpiryTest {
        match self.app_predicate {
            true => ExpiryTest::App,
            false => ExpiryTest::Rfc6750,
        }
    }

    /// Whether a call starting with `start` can take the fast path: its
    /// first step sends the token in the `Authorization` header, and the
    /// session's token needs no proof (`dpop_bound` false). The caller adds
    /// the third condition: a token that needs no refresh now.
    pub fn fast_path(start: Event, dpop_bound: bool) -> bool {
        let first = AuthorizedCall::default().advance(start);
        !dpop_bound && first == Step::Do(Need::Send(TokenPlacement::Header))
    }

    /// The next step after `event`. An event the current state does not
    /// expect is a bug in the driver: the call ends with what it has
    /// (`Return`), and debug builds panic.
    pub fn advance(&mut self, event: Event) -> Step {
        if let Event::Failed = event {
            self.state = State::Done;
            return Step::Done(End::Failed);
        }
        if let (
            State::Sent | State::Resent,
            Event::Answered {
                nonce_refused: true,
                redirected,
                replayable,
                ..
            },
        ) = (self.state, &event)
        {
            if self.nonce_retried {
                self.state = State::Done;
                return Step::Done(End::Refuse(Error::DpopNonceFailed));
            }
            if !redirected && *replayable {
                self.nonce_retried = true;
                return Step::Do(Need::ResendForNonce {
                    replacement: self.state == State::Resent,
                });
            }
        }
        let (state, step) = match (self.state, event) {
            (
                State::Idle,
                Event::Start {
                    token_endpoint: true,
                    ..
                },
            ) => (State::Done, Step::Done(End::SendUntouched)),
            (State::Idle, Event::Start { placement, .. }) => match placement {
                Ok(placement) => (State::Sent, Step::Do(Need::Send(placement))),
                Err(error) => (State::Done, Step::Done(End::Refuse(error))),
            },
            (
                State::Sent,
                Event::Answered {
                    redirected,
                    replayable,
                    status,
                    ..
                },
            ) => {
                if redirected || !replayable || !may_say_expired(status, self.app_predicate) {
                    (State::Done, Step::Done(End::Return))
                } else {
                    (State::Asked, Step::Do(Need::AskExpired(self.test())))
                }
            }
            (State::Asked, Event::Expired(false)) => (State::Done, Step::Done(End::Return)),
            (State::Asked, Event::Expired(true)) => (State::Replacing, Step::Do(Need::Replace)),
            (State::Replacing, Event::Replacement { same: true }) => {
                (State::Done, Step::Done(End::Return))
            }
            (State::Replacing, Event::Replacement { same: false }) => {
                // The resend is a new request: it may meet a new nonce too.
                self.nonce_retried = false;
                (State::Resent, Step::Do(Need::Resend))
            }
            (
                State::Resent,
                Event::Answered {
                    redirected: true, ..
                },
            ) => (State::Done, Step::Done(End::Return)),
            (State::Resent, Event::Answered { status, .. })
                if !may_say_expired(status, self.app_predicate) =>
            {
                (State::Done, Step::Done(End::Return))
            }
            (State::Resent, Event::Answered { .. }) => {
                (State::AskedAgain, Step::Do(Need::AskExpired(self.test())))
            }
            (State::AskedAgain, Event::Expired(true)) => {
                (State::Done, Step::Done(End::ReturnMarkingRejected))
            }
            (State::AskedAgain, Event::Expired(false)) => (State::Done, Step::Done(End::Return)),
            (state, event) => {
                debug_assert!(false, "unexpected {event:?} in {state:?}");
                (State::Done, Step::Done(End::Return))
            }
        };
        self.state = state;
        step
    }
}

impl Machine for AuthorizedCall {
    type Need = Need;
    type Fed = Event;
    type Done = End;
    type With<'a> = ();

    fn on(&mut self, event: Event, (): ()) -> Step {
        self.advance(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<TokenPlacement, Error> {
        Err(Error::OriginNotAllowed {
            origin: "https://other.example".into(),
        })
    }

    fn unasked() -> Result<TokenPlacement, Error> {
        panic!("the listing is not asked")
    }

    fn destination(
        userinfo: bool,
        listed: fn() -> Result<TokenPlacement, Error>,
        account_pds: fn() -> bool,
    ) -> (Event, Role) {
        let token_endpoint = false;
        Destination {
            token_endpoint,
            userinfo,
            listed,
            account_pds,
        }
        .start()
    }

    fn placement(event: Event) -> Result<TokenPlacement, Error> {
        match event {
            Event::Start { placement, .. } => placement,
            other => panic!("not a start: {other:?}"),
        }
    }

    #[test]
    fn the_apps_test_replaces_rfc_6750s_when_it_gave_one_on_the_first_answer_and_the_resend() {
        let mut call = AuthorizedCall::new(true);
        let first = call.advance(Event::Start {
            token_endpoint: false,
            placement: Ok(TokenPlacement::Header),
        });
        assert_eq!(first, Step::Do(Need::Send(TokenPlacement::Header)));
        let app = Step::Do(Need::AskExpired(ExpiryTest::App));
        assert_eq!(call.advance(answered(false, true)), app);
        assert_eq!(call.advance(Event::Expired(true)), Step::Do(Need::Replace));
        let replaced = Event::Replacement { same: false };
        assert_eq!(call.advance(replaced), Step::Do(Need::Resend));
        assert_eq!(call.advance(answered(false, true)), app);
    }

    fn with_status(status: u16) -> Event {
        Event::Answered {
            status,
            redirected: false,
            replayable: true,
            nonce_refused: false,
        }
    }

    #[test]
    fn an_answer_whose_status_cannot_mean_expired_is_the_result_without_asking() {
        let start = || Event::Start {
            token_endpoint: false,
            placement: Ok(TokenPlacement::Header),
        };
        let asked = |app: bool, status: u16| {
            let mut call = AuthorizedCall::new(app);
            call.advance(start());
            call.advance(with_status(status))
        };
        // RFC 6750: a 401 only.
        assert_eq!(asked(false, 200), Step::Done(End::Return));
        assert_eq!(asked(false, 403), Step::Done(End::Return));
        let rfc = Step::Do(Need::AskExpired(ExpiryTest::Rfc6750));
        assert_eq!(asked(false, 401), rfc);
        // The app's test: any error status.
        assert_eq!(asked(true, 204), Step::Done(End::Return));
        assert_eq!(
            asked(true, 403),
            Step::Do(Need::AskExpired(ExpiryTest::App))
        );
        // The resend's answer likewise.
        let mut call = AuthorizedCall::new(false);
        call.advance(start());
        call.advance(with_status(401));
        call.advance(Event::Expired(true));
        call.advance(Event::Replacement { same: false });
        assert_eq!(call.advance(with_status(500)), Step::Done(End::Return));
    }

    #[test]
    fn a_failed_need_ends_the_call_with_that_failure_in_any_state() {
        let sent = || start(false, Ok(TokenPlacement::Header)).0;
        assert_eq!(sent().advance(Event::Failed), Step::Done(End::Failed));
        let mut asked = sent();
        assert_eq!(
            asked.advance(answered(false, true)),
            Step::Do(Need::AskExpired(ExpiryTest::Rfc6750))
        );
        assert_eq!(asked.advance(Event::Failed), Step::Done(End::Failed));
        let mut replacing = sent();
        replacing.advance(answered(false, true));
        assert_eq!(
            replacing.advance(Event::Expired(true)),
            Step::Do(Need::Replace)
        );
        assert_eq!(replacing.advance(Event::Failed), Step::Done(End::Failed));
    }

    #[test]
    fn userinfo_is_the_authorization_servers_and_needs_no_listing() {
        let (event, role) = destination(true, unasked, || panic!("not asked"));
        assert_eq!(placement(event), Ok(TokenPlacement::Header));
        assert_eq!(role, Role::AuthorizationServer);
    }

    #[test]
    fn a_listed_origin_is_placed_as_listed() {
        let (event, role) =
            destination(false, || Ok(TokenPlacement::Query), || panic!("not asked"));
        assert_eq!(placement(event), Ok(TokenPlacement::Query));
        assert_eq!(role, Role::Resource);
    }

    #[test]
    fn the_accounts_pds_needs_no_listing() {
        let (event, _) = destination(false, refused, || true);
        assert_eq!(placement(event), Ok(TokenPlacement::Header));
    }

    #[test]
    fn any_other_origin_is_refused() {
        let (event, _) = destination(false, refused, || false);
        assert_eq!(placement(event).unwrap_err().code(), "origin_not_allowed");
    }

    #[test]
    fn the_token_endpoint_is_reported_as_such() {
        let destination = Destination {
            token_endpoint: true,
            userinfo: false,
            listed: refused,
            account_pds: || false,
        };
        let (event, _) = destination.start();
        assert!(matches!(
            event,
            Event::Start {
                token_endpoint: true,
                ..
            }
        ));
    }

    fn start(
        token_endpoint: bool,
        placement: Result<TokenPlacement, Error>,
    ) -> (AuthorizedCall, Step) {
        let mut call = AuthorizedCall::default();
        let step = call.advance(Event::Start {
            token_endpoint,
            placement,
        });
        (call, step)
    }

    fn answered(redirected: bool, replayable: bool) -> Event {
        Event::Answered {
            status: 401,
            redirected,
            replayable,
            nonce_refused: false,
        }
    }

    fn nonce_refused() -> Event {
        Event::Answered {
            status: 401,
            redirected: false,
            replayable: true,
            nonce_refused: true,
        }
    }

    #[test]
    fn a_refused_nonce_resends_the_same_request_once() {
        let mut call = sent();
        assert_eq!(
            call.advance(nonce_refused()),
            Step::Do(Need::ResendForNonce { replacement: false })
        );
        assert_eq!(
            call.advance(answered(false, true)),
            Step::Do(Need::AskExpired(ExpiryTest::Rfc6750))
        );
        assert_eq!(call.advance(Event::Expired(false)), Step::Done(End::Return));
    }

    #[test]
    fn a_nonce_refused_twice_fails_the_call_instead_of_looping() {
        let mut call = sent();
        call.advance(nonce_refused());
        assert_eq!(
            call.advance(nonce_refused()),
            Step::Done(End::Refuse(Error::DpopNonceFailed))
        );
    }

    #[test]
    fn a_refused_nonce_on_a_stream_body_is_the_result() {
        let mut call = sent();
        let event = Event::Answered {
            status: 401,
            redirected: false,
            replayable: false,
            nonce_refused: true,
        };
        assert_eq!(call.advance(event), Step::Done(End::Return));
    }

    #[test]
    fn the_resend_after_a_refresh_may_meet_a_new_nonce_once_more() {
        let mut call = sent();
        call.advance(nonce_refused());
        call.advance(answered(false, true));
        call.advance(Event::Expired(true));
        assert_eq!(
            call.advance(Event::Replacement { same: false }),
            Step::Do(Need::Resend)
        );
        assert_eq!(
            call.advance(nonce_refused()),
            Step::Do(Need::ResendForNonce { replacement: true })
        );
        assert_eq!(
            call.advance(answered(false, true)),
            Step::Do(Need::AskExpired(ExpiryTest::Rfc6750))
        );
        assert_eq!(
            call.advance(Event::Expired(true)),
            Step::Done(End::ReturnMarkingRejected)
        );
    }

    /// A call that was sent with a header token.
    fn sent() -> AuthorizedCall {
        let (call, step) = start(false, Ok(TokenPlacement::Header));
        assert_eq!(step, Step::Do(Need::Send(TokenPlacement::Header)));
        call
    }

    #[test]
    fn the_token_endpoint_is_sent_untouched_whatever_the_origin_rules() {
        let refused = Err(Error::invalid_option("x", "y"));
        assert_eq!(start(true, refused).1, Step::Done(End::SendUntouched));
    }

    #[test]
    fn an_origin_not_allowed_is_refused_before_anything_is_sent() {
        let error = Error::invalid_option("allowedOrigins", "not listed");
        assert_eq!(
            start(false, Err(error.clone())).1,
            Step::Done(End::Refuse(error))
        );
    }

    #[test]
    fn the_token_goes_where_the_origin_says() {
        assert_eq!(
            start(false, Ok(TokenPlacement::Query)).1,
            Step::Do(Need::Send(TokenPlacement::Query))
        );
    }

    #[test]
    fn an_answer_that_is_not_expired_is_the_result() {
        let mut call = sent();
        assert_eq!(
            call.advance(answered(false, true)),
            Step::Do(Need::AskExpired(ExpiryTest::Rfc6750))
        );
        assert_eq!(call.advance(Event::Expired(false)), Step::Done(End::Return));
    }

    #[test]
    fn a_redirected_answer_is_final_without_asking() {
        let mut call = sent();
        assert_eq!(call.advance(answered(true, true)), Step::Done(End::Return));
    }

    #[test]
    fn a_request_that_cannot_be_replayed_is_final_without_asking() {
        let mut call = sent();
        assert_eq!(
            call.advance(answered(false, false)),
            Step::Done(End::Return)
        );
    }

    #[test]
    fn expired_gets_a_replacement_and_one_resend() {
        let mut call = sent();
        call.advance(answered(false, true));
        assert_eq!(call.advance(Event::Expired(true)), Step::Do(Need::Replace));
        assert_eq!(
            call.advance(Event::Replacement { same: false }),
            Step::Do(Need::Resend)
        );
        assert_eq!(
            call.advance(answered(false, true)),
            Step::Do(Need::AskExpired(ExpiryTest::Rfc6750))
        );
        assert_eq!(call.advance(Event::Expired(false)), Step::Done(End::Return));
    }

    #[test]
    fn nothing_better_to_send_returns_the_first_answer() {
        let mut call = sent();
        call.advance(answered(false, true));
        call.advance(Event::Expired(true));
        assert_eq!(
            call.advance(Event::Replacement { same: true }),
            Step::Done(End::Return)
        );
    }

    #[test]
    fn a_replacement_rejected_on_its_own_retry_is_marked_and_not_retried_again() {
        let mut call = sent();
        call.advance(answered(false, true));
        call.advance(Event::Expired(true));
        call.advance(Event::Replacement { same: false });
        call.advance(answered(false, true));
        assert_eq!(
            call.advance(Event::Expired(true)),
            Step::Done(End::ReturnMarkingRejected)
        );
    }

    #[test]
    fn a_redirected_retry_is_the_result_and_marks_nothing() {
        let mut call = sent();
        call.advance(answered(false, true));
        call.advance(Event::Expired(true));
        call.advance(Event::Replacement { same: false });
        assert_eq!(call.advance(answered(true, true)), Step::Done(End::Return));
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn an_event_out_of_order_ends_the_call() {
        let mut call = AuthorizedCall::default();
        assert_eq!(call.advance(Event::Expired(true)), Step::Done(End::Return));
    }

    #[test]
    #[should_panic(expected = "unexpected")]
    #[cfg(debug_assertions)]
    fn an_event_out_of_order_is_a_driver_bug() {
        let mut call = AuthorizedCall::default();
        call.advance(Event::Expired(true));
    }

    fn start_event(token_endpoint: bool, placement: Result<TokenPlacement, Error>) -> Event {
        Event::Start {
            token_endpoint,
            placement,
        }
    }

    #[test]
    fn the_fast_path_takes_a_bearer_token_in_the_header() {
        let header = start_event(false, Ok(TokenPlacement::Header));
        assert!(AuthorizedCall::fast_path(header, false));
    }

    #[test]
    fn the_fast_path_leaves_a_dpop_bound_token_to_the_driver() {
        let header = start_event(false, Ok(TokenPlacement::Header));
        assert!(!AuthorizedCall::fast_path(header, true));
    }

    #[test]
    fn the_fast_path_leaves_a_token_in_the_query_to_the_driver() {
        let query = start_event(false, Ok(TokenPlacement::Query));
        assert!(!AuthorizedCall::fast_path(query, false));
    }

    #[test]
    fn the_fast_path_leaves_a_refused_origin_to_the_driver() {
        let refused = start_event(
            false,
            Err(Error::OriginNotAllowed {
                origin: "https://elsewhere.example".into(),
            }),
        );
        assert!(!AuthorizedCall::fast_path(refused, false));
    }

    #[test]
    fn the_fast_path_leaves_the_token_endpoint_to_the_driver() {
        let token = start_event(true, Ok(TokenPlacement::Header));
        assert!(!AuthorizedCall::fast_path(token, false));
    }

    #[test]
    fn by_default_only_a_401_may_say_expired() {
        assert!(may_say_expired(401, false));
        for status in [200, 304, 400, 403, 500] {
            assert!(!may_say_expired(status, false), "{status}");
        }
    }

    #[test]
    fn the_app_predicate_is_asked_about_error_statuses_only() {
        for status in [400, 401, 403, 500] {
            assert!(may_say_expired(status, true), "{status}");
        }
        for status in [200, 204, 302, 399] {
            assert!(!may_say_expired(status, true), "{status}");
        }
    }

    /// The default test of a Bearer call with the answer's `challenge`, if
    /// it has one.
    fn expired(status: u16, challenge: Option<&str>) -> bool {
        rfc6750_says_expired(status, "Bearer", || challenge.map(str::to_owned))
    }

    #[test]
    fn the_challenges_of_the_scheme_the_call_sent_decide() {
        let dpop = |challenge: &str| rfc6750_says_expired(401, "DPoP", || Some(challenge.into()));
        // An API accepting both schemes answers with both challenges.
        let both = r#"Bearer realm="api", DPoP error="use_dpop_nonce", algs="ES256""#;
        assert!(!dpop(both), "a nonce, not an expiry");
        assert!(
            expired(401, Some(both)),
            "the Bearer challenge names no error"
        );
        assert!(dpop(
            r#"Bearer error="insufficient_scope", DPoP error="invalid_token""#
        ));
        assert!(!dpop(r#"DPoP error = "insufficient_scope", Bearer"#));
        // No challenge of the scheme sent: the others decide.
        assert!(!dpop(r#"Bearer error="insufficient_scope""#));
        assert!(dpop(r#"Bearer error="invalid_token""#));
        // Nothing that parses as a challenge names an error.
        assert!(dpop(r#""garbage""#));
    }

    #[test]
    fn by_default_a_401_says_expired_unless_it_names_another_error() {
        assert!(expired(401, None));
        assert!(expired(401, Some(r#"Bearer realm="api""#)));
        assert!(expired(401, Some(r#"Bearer error="invalid_token""#)));
        assert!(expired(401, Some(r#"Bearer ERROR="INVALID_TOKEN""#)));
        assert!(!expired(401, Some(r#"Bearer error="insufficient_scope""#)));
        assert!(!expired(401, Some(r#"DPoP error="use_dpop_nonce""#)));
        assert!(!expired(403, None));
        assert!(!expired(200, Some(r#"Bearer error="invalid_token""#)));
    }

    #[test]
    fn only_a_401s_challenge_is_read() {
        let unread = || -> Option<String> { panic!("the header of a 200 was read") };
        assert!(!rfc6750_says_expired(200, "Bearer", unread));
    }

    #[test]
    fn a_redirected_first_answer_is_final_even_as_a_401() {
        assert!(answer_is_final(401, true, false));
        assert!(!answer_is_final(401, false, false));
        assert!(answer_is_final(200, false, true));
        assert!(!answer_is_final(400, false, true));
    }
}
