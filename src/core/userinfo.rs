//! UserInfo ([OIDC Core §5.3](https://openid.net/specs/openid-connect-core-1_0.html#UserInfo)):
//! the checks of `getUser({ userinfo: true })`, in one fixed order, one
//! branch at a time. Sans-IO: the binding sends the request through
//! `fetchWithAuth`'s pipeline (refresh and one resend included) and hands
//! what it read here; the claims stay the browser's object, laid over the
//! ID token's once these checks pass.
//!
//! The order (the answer's part of it is [`CheckAnswer`]): an endpoint to
//! ask ([`endpoint`]); then, on the answer's
//! head, status 200 and not a signed or encrypted (`application/jwt`)
//! response ([`check_head`]); then, on its body, JSON, an object, and the
//! ID token's `sub` ([`check_body`], §5.3.2: otherwise the response must
//! not be used). What the answer may add to the ID token's claims:
//! [`userinfo_may_set`].

use crate::core::drive::{Machine, Next};
use crate::core::Error;

/// The UserInfo endpoint to ask, or why there is none.
pub fn endpoint(configured: Option<&str>) -> Result<&str, Error> {
    configured.ok_or_else(|| {
        Error::invalid_option(
            "userinfo",
            "the issuer has no userinfo_endpoint (give userinfoEndpoint)",
        )
    })
}

fn failed(status: u16, reason: &str) -> Error {
    Error::UserinfoFailed {
        status: Some(status),
        reason: reason.into(),
    }
}

/// Checks an answer's status and `Content-Type` before its body is read.
pub fn check_head(status: u16, content_type: &str) -> Result<(), Error> {
    if status != 200 {
        return Err(Error::UserinfoFailed {
            status: Some(status),
            reason: format!("HTTP {status}"),
        });
    }
    if content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/jwt")
    {
        return Err(failed(
            status,
            "signed UserInfo responses are not supported",
        ));
    }
    Ok(())
}

/// What the binding read from a 200 answer's body.
#[derive(Debug)]
pub enum Body {
    /// Not read whole: the connection failed, or it was over the bound on
    /// a body's size; why.
    Unread {
        /// Why, as the HTTP adapter says it.
        reason: String,
    },
    /// Not JSON.
    NotJson,
    /// JSON, but not an object (an array, a string, …).
    NotObject,
    /// A JSON object, with its `sub` when that is a string.
    Object {
        /// The `sub` member.
        sub: Option<String>,
    },
}

/// Checks the body of a 200 answer against the ID token's `sub`.
pub fn check_body(body: Body, id_sub: &str) -> Result<(), Error> {
    match body {
        Body::Unread { reason } => Err(failed(200, &reason)),
        Body::NotJson => Err(failed(200, "the body is not JSON")),
        Body::NotObject => Err(failed(200, "the body is not a JSON object")),
        Body::Object { sub } if sub.as_deref() == Some(id_sub) => Ok(()),
        Body::Object { .. } => Err(Error::UserinfoSubMismatch),
    }
}

/// The claims only the verified ID token speaks for: who issued it, for
/// whom, when, and how the user signed in. A UserInfo answer is not signed
/// (signed ones are refused), so it adds and refreshes profile claims but
/// never replaces these ([OIDC Core §5.3.2](https://openid.net/specs/openid-connect-core-1_0.html#UserInfoResponse):
/// only its `sub` is checked, and it equals the ID token's).
pub const ID_TOKEN_ONLY: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "auth_time",
    "acr",
    "amr",
    "sid",
    "at_hash",
    "c_hash",
    "s_hash",
    "cnf",
];

/// Whether a checked UserInfo answer's claim `name` is laid over the ID
/// token's claims in `getUser({ userinfo: true })`.
pub fn userinfo_may_set(name: &str) -> bool {
    !ID_TOKEN_ONLY.contains(&name)
}

/// Read the answer's body → [`Body`].
#[derive(Debug, PartialEq, Eq)]
pub struct ReadBody;

/// A UserInfo answer's checks, in their order: the head first
/// ([`check_head`]); only an answer whose head passes has its body read
/// ([`ReadBody`]) and checked ([`check_body`]). The browser's
/// `read_userinfo` performs the read.
#[derive(Debug)]
pub struct CheckAnswer<'a> {
    /// The ID token's `sub`; `None` once the body was checked.
    id_sub: Option<&'a str>,
}

impl<'a> CheckAnswer<'a> {
    /// The check of an answer with `status` and `content_type`, for the ID
    /// token's `id_sub`; its first step: read the body, or refused without
    /// reading it.
    pub fn start(
        id_sub: &'a str,
        status: u16,
        content_type: &str,
    ) -> (Self, Next<ReadBody, Result<(), Error>>) {
        let step = match check_head(status, content_type) {
            Ok(()) => Next::Do(ReadBody),
            Err(error) => Next::Done(Err(error)),
        };
        (
            CheckAnswer {
                id_sub: Some(id_sub),
            },
            step,
        )
    }
}

impl Machine for CheckAnswer<'_> {
    type Need = ReadBody;
    type Fed = Body;
    type Done = Result<(), Error>;
    type With<'a> = ();

    /// The body read, checked: one body per answer (a second is refused).
    fn on(&mut self, body: Body, (): ()) -> Next<ReadBody, Result<(), Error>> {
        Next::Done(match self.id_sub.take() {
            Some(id_sub) => check_body(body, id_sub),
            None => Err(failed(200, "the body was read twice")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(sub: &str) -> Body {
        Body::Object {
            sub: Some(sub.into()),
        }
    }

    #[test]
    fn only_an_answer_whose_head_passes_has_its_body_read() {
        let (mut check, step) = CheckAnswer::start("u1", 200, "application/json");
        assert_eq!(step, Next::Do(ReadBody));
        assert_eq!(check.on(object("u1"), ()), Next::Done(Ok(())));
        let (_, refused) = CheckAnswer::start("u1", 401, "application/json");
        assert!(matches!(
            refused,
            Next::Done(Err(Error::UserinfoFailed {
                status: Some(401),
                ..
            }))
        ));
    }

    #[test]
    fn the_body_is_checked_against_the_id_tokens_sub() {
        let check = || CheckAnswer::start("u1", 200, "").0;
        let other = check().on(object("u2"), ());
        assert_eq!(other, Next::Done(Err(Error::UserinfoSubMismatch)));
        assert!(matches!(check().on(Body::NotJson, ()), Next::Done(Err(_))));
    }

    #[test]
    fn a_second_body_is_refused() {
        let (mut check, _) = CheckAnswer::start("u1", 200, "");
        assert_eq!(check.on(object("u1"), ()), Next::Done(Ok(())));
        let again = check.on(object("u1"), ());
        assert!(matches!(
            again,
            Next::Done(Err(Error::UserinfoFailed { .. }))
        ));
    }

    fn reason(error: Error) -> String {
        match error {
            Error::UserinfoFailed { reason, .. } => reason,
            other => panic!("not userinfo_failed: {other:?}"),
        }
    }

    #[test]
    fn without_an_endpoint_the_option_is_refused() {
        let error = endpoint(None).unwrap_err();
        assert_eq!(error.code(), "invalid_option");
        assert_eq!(
            endpoint(Some("https://i.example/me")),
            Ok("https://i.example/me")
        );
    }

    #[test]
    fn a_status_other_than_200_fails_with_it() {
        let error = check_head(401, "application/json").unwrap_err();
        assert!(matches!(
            error,
            Error::UserinfoFailed {
                status: Some(401),
                ..
            }
        ));
        assert_eq!(reason(error), "HTTP 401");
    }

    #[test]
    fn a_signed_answer_is_refused() {
        let error = check_head(200, "Application/JWT; charset=utf-8").unwrap_err();
        assert!(reason(error).contains("signed"));
    }

    #[test]
    fn a_json_head_passes() {
        assert_eq!(check_head(200, "application/json"), Ok(()));
        assert_eq!(check_head(200, ""), Ok(()));
    }

    #[test]
    fn a_body_that_was_not_read_whole_fails_with_why() {
        let unread = Body::Unread {
            reason: "the answer's body is over 1048576 bytes".to_owned(),
        };
        let error = check_body(unread, "u1").unwrap_err();
        assert_eq!(reason(error), "the answer's body is over 1048576 bytes");
    }

    #[test]
    fn a_body_that_is_not_json_fails() {
        assert!(reason(check_body(Body::NotJson, "u1").unwrap_err()).contains("not JSON"));
    }

    #[test]
    fn a_body_that_is_not_an_object_fails() {
        let error = check_body(Body::NotObject, "u1").unwrap_err();
        assert!(reason(error).contains("not a JSON object"));
    }

    #[test]
    fn another_or_no_sub_is_a_mismatch() {
        for sub in [Some("u2"), None] {
            let sub = sub.map(str::to_owned);
            let error = check_body(Body::Object { sub }, "u1").unwrap_err();
            assert_eq!(error, Error::UserinfoSubMismatch);
        }
    }

    #[test]
    fn the_same_sub_passes() {
        assert_eq!(check_body(object("u1"), "u1"), Ok(()));
    }

    #[test]
    fn userinfo_adds_and_refreshes_profile_claims() {
        for claim in ["name", "email", "email_verified", "picture", "updated_at"] {
            assert!(userinfo_may_set(claim), "{claim}");
        }
    }

    #[test]
    fn userinfo_never_replaces_what_the_id_token_speaks_for() {
        for claim in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nonce",
            "auth_time",
            "acr",
            "amr",
        ] {
            assert!(!userinfo_may_set(claim), "{claim}");
        }
    }
}
