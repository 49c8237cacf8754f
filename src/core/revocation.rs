//! Token revocation ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)):
//! one revocation's request and what its answer means. The order is
//! [`Retire`](crate::core::retire_machine::Retire)'s: the refresh token goes
//! first — it is the long-lived credential, and many servers revoke the
//! access tokens of its grant with it
//! ([§2.1](https://www.rfc-editor.org/rfc/rfc7009#section-2.1)) — then the
//! access token for servers that do not; both are attempted even when the
//! first fails, each bounded in time.

use serde::Deserialize;

use crate::core::platform::HttpReply;
use crate::core::secret::Form;
use crate::core::Error;

/// An RFC 7009 error body (the fields latchkey reports).
#[derive(Debug, Default, Deserialize)]
pub struct RevocationErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Which token a revocation names
/// ([§2.1](https://www.rfc-editor.org/rfc/rfc7009#section-2.1)'s
/// `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The refresh token.
    RefreshToken,
    /// The access token.
    AccessToken,
}

impl Hint {
    /// Its `token_type_hint` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Hint::RefreshToken => "refresh_token",
            Hint::AccessToken => "access_token",
        }
    }
}

/// The form that revokes `token`: the token, its hint and the public
/// client's id ([§2.1](https://www.rfc-editor.org/rfc/rfc7009#section-2.1)).
pub fn revocation_form(token: &str, hint: Hint, client_id: &str) -> Form {
    Form(vec![
        ("token".to_owned(), token.to_owned()),
        ("token_type_hint".to_owned(), hint.as_str().to_owned()),
        ("client_id".to_owned(), client_id.to_owned()),
    ])
}

/// What one revocation's answer means: `answer` is the endpoint's reply,
/// or why there is none, or `None` when the wait passed first. A 200 means
/// revoked, or already invalid: both are success
/// ([§2.2](https://www.rfc-editor.org/rfc/rfc7009#section-2.2)).
pub fn revocation_answer(
    hint: Hint,
    answer: Option<Result<HttpReply<RevocationErrorBody>, Error>>,
) -> Result<(), Error> {
    let hint = hint.as_str();
    let reply = answer
        .ok_or_else(|| Error::RevocationFailed {
            status: None,
            reason: format!("revoking the {hint} timed out"),
        })?
        .map_err(|error| Error::RevocationFailed {
            status: None,
            reason: format!("revoking the {hint}: {error}"),
        })?;
    if reply.status == 200 {
        return Ok(());
    }
    let body = reply.body.unwrap_or_default();
    // §2.2.1: a server that cannot revoke this kind of token says so; the
    // token then simply lives out its (short) lifetime.
    if hint == "access_token" && body.error.as_deref() == Some("unsupported_token_type") {
        return Ok(());
    }
    let said = match (body.error, body.error_description) {
        (Some(error), Some(description)) => format!(": {error}: {description}"),
        (Some(error), None) => format!(": {error}"),
        _ => String::new(),
    };
    Err(Error::RevocationFailed {
        status: Some(reply.status),
        reason: format!("revoking the {hint}: HTTP {}{said}", reply.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{block_on, FakePlatform};
    use crate::core::retirement::Retirement;
    use crate::core::retirer::Retirer;
    use crate::core::{RefreshToken, TokenSet};

    const URL: &str = "https://idp.example/token/revocation";
    const REFRESH: &[(&str, &str)] = &[
        ("token", "rt-1"),
        ("token_type_hint", "refresh_token"),
        ("client_id", "spa"),
    ];
    const ACCESS: &[(&str, &str)] = &[
        ("token", "at-1"),
        ("token_type_hint", "access_token"),
        ("client_id", "spa"),
    ];

    fn tokens(refresh: Option<&str>) -> TokenSet {
        TokenSet {
            refresh_token: refresh.map(|r| RefreshToken::new(r.into())),
            scope: None,
            ..crate::core::fakes::bearer_set("at-1")
        }
    }

    /// `set` revoked at [`URL`] through the retirement's machine and
    /// driver (a Bearer set: no key to load or delete).
    fn revoke(platform: &FakePlatform, set: &TokenSet) -> Result<(), Error> {
        let dpop = platform.dpop();
        let retirer = Retirer {
            platform,
            dpop: &dpop,
            client_id: "spa",
            timeout_ms: 5_000,
        };
        let plan = Retirement {
            revoke_at: Some(URL.into()),
            delete_key: None,
        };
        block_on(retirer.retire(set, plan)).expect("a revocation was sent")
    }

    #[test]
    fn revokes_the_refresh_token_then_the_access_token() {
        let platform = FakePlatform::at(0);
        platform.expect_post(URL, REFRESH, 200, "");
        platform.expect_post(URL, ACCESS, 200, "");
        assert_eq!(revoke(&platform, &tokens(Some("rt-1"))), Ok(()));
    }

    #[test]
    fn without_a_refresh_token_only_the_access_token_is_revoked() {
        let platform = FakePlatform::at(0);
        platform.expect_post(URL, ACCESS, 200, "");
        assert_eq!(revoke(&platform, &tokens(None)), Ok(()));
    }

    #[test]
    fn a_server_error_is_reported_and_the_access_token_still_revoked() {
        let platform = FakePlatform::at(0);
        platform.expect_post(URL, REFRESH, 503, "<html>down</html>");
        platform.expect_post(URL, ACCESS, 200, "");
        let error = revoke(&platform, &tokens(Some("rt-1"))).unwrap_err();
        assert_eq!(error.code(), "revocation_failed");
        assert_eq!(error.status(), Some(503));
        assert_eq!(
            error.to_string(),
            "token revocation failed: revoking the refresh_token: HTTP 503"
        );
    }

    #[test]
    fn the_servers_error_code_is_reported() {
        let platform = FakePlatform::at(0);
        platform.expect_post(
            URL,
            REFRESH,
            401,
            r#"{"error":"invalid_client","error_description":"no such client"}"#,
        );
        platform.expect_post(URL, ACCESS, 200, "");
        let error = revoke(&platform, &tokens(Some("rt-1"))).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("HTTP 401: invalid_client: no such client"),
            "{error}"
        );
    }

    #[test]
    fn a_network_failure_is_reported() {
        let platform = FakePlatform::at(0);
        platform.expect_post(URL, REFRESH, 200, "");
        platform.expect_post_network_error(URL, ACCESS);
        let error = revoke(&platform, &tokens(Some("rt-1"))).unwrap_err();
        assert_eq!(error.code(), "revocation_failed");
        assert_eq!(error.status(), None);
    }

    #[test]
    fn a_hanging_request_is_bounded() {
        let platform = FakePlatform::at(0);
        platform.deadlines_pass.set(true);
        platform.expect_post_hang(URL, ACCESS);
        let error = revoke(&platform, &tokens(None)).unwrap_err();
        assert!(error.to_string().contains("timed out"), "{error}");
    }

    #[test]
    fn an_access_token_the_server_cannot_revoke_is_not_a_failure() {
        let platform = FakePlatform::at(0);
        platform.expect_post(URL, ACCESS, 400, r#"{"error":"unsupported_token_type"}"#);
        assert_eq!(revoke(&platform, &tokens(None)), Ok(()));
    }

    #[test]
    fn failures_never_quote_a_token() {
        let platform = FakePlatform::at(0);
        platform.expect_post(URL, REFRESH, 400, r#"{"error":"invalid_request"}"#);
        platform.expect_post_network_error(URL, ACCESS);
        let error = revoke(&platform, &tokens(Some("rt-1"))).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("rt-1") && !shown.contains("at-1"),
            "{shown}"
        );
    }
}
