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
//! not be used).

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
pub enum Body<'a> {
    /// Not JSON.
    NotJson,
    /// JSON, but not an object (an array, a string, …).
    NotObject,
    /// A JSON object, with its `sub` when that is a string.
    Object {
        /// The `sub` member.
        sub: Option<&'a str>,
    },
}

/// Checks the body of a 200 answer against the ID token's `sub`.
pub fn check_body(body: Body<'_>, id_sub: &str) -> Result<(), Error> {
    match body {
        Body::NotJson => Err(failed(200, "the body is not JSON")),
        Body::NotObject => Err(failed(200, "the body is not a JSON object")),
        Body::Object { sub } if sub == Some(id_sub) => Ok(()),
        Body::Object { .. } => Err(Error::UserinfoSubMismatch),
    }
}

/// A UserInfo answer's checks, in their order: the head first
/// ([`check_head`]); only an answer whose head passes has its body read and
/// checked ([`CheckAnswer::body`], [`check_body`]). The browser's
/// `read_userinfo` drives it.
#[derive(Debug)]
pub struct CheckAnswer<'a> {
    id_sub: &'a str,
}

impl<'a> CheckAnswer<'a> {
    /// The head of an answer with `status` and `content_type`, for the ID
    /// token's `id_sub`: `Ok` means read the body next; `Err`, refused
    /// without reading it.
    pub fn head(id_sub: &'a str, status: u16, content_type: &str) -> Result<Self, Error> {
        check_head(status, content_type)?;
        Ok(CheckAnswer { id_sub })
    }

    /// The body read, checked; consumes the check (one body per answer).
    pub fn body(self, body: Body<'_>) -> Result<(), Error> {
        check_body(body, self.id_sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_whose_head_passes_has_its_body_read() {
        let check = CheckAnswer::head("u1", 200, "application/json").expect("read the body");
        assert_eq!(check.body(Body::Object { sub: Some("u1") }), Ok(()));
        let refused = CheckAnswer::head("u1", 401, "application/json").unwrap_err();
        assert!(matches!(
            refused,
            Error::UserinfoFailed {
                status: Some(401),
                ..
            }
        ));
    }

    #[test]
    fn the_body_is_checked_against_the_id_tokens_sub() {
        let check = || CheckAnswer::head("u1", 200, "").expect("read the body");
        let other = check().body(Body::Object { sub: Some("u2") });
        assert_eq!(other, Err(Error::UserinfoSubMismatch));
        assert!(check().body(Body::NotJson).is_err());
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
            let error = check_body(Body::Object { sub }, "u1").unwrap_err();
            assert_eq!(error, Error::UserinfoSubMismatch);
        }
    }

    #[test]
    fn the_same_sub_passes() {
        assert_eq!(check_body(Body::Object { sub: Some("u1") }, "u1"), Ok(()));
    }
}
