//! Token revocation at sign-out
//! ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)).
//!
//! The refresh token goes first: it is the long-lived credential, and many
//! servers revoke the access tokens of its grant with it
//! ([§2.1](https://www.rfc-editor.org/rfc/rfc7009#section-2.1)). The access
//! token follows for servers that do not. Both are attempted even when the
//! first fails; each is bounded in time.

use serde::Deserialize;

use crate::core::ports::{Http, HttpReply, Timer};
use crate::core::race::within;
use crate::core::{Error, TokenSet};

/// An RFC 7009 error body (the fields latchkey reports).
#[derive(Debug, Default, Deserialize)]
struct RevocationErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Where and as whom tokens are revoked.
pub struct Revocation<'a, P> {
    /// How requests are sent, and the timer bounding them.
    pub platform: &'a P,
    /// The revocation endpoint.
    pub endpoint: &'a str,
    /// The public client's id, sent in the body
    /// ([§2.1](https://www.rfc-editor.org/rfc/rfc7009#section-2.1)).
    pub client_id: &'a str,
    /// The longest one request may take.
    pub timeout_ms: u32,
}

impl<P: Http + Timer> Revocation<'_, P> {
    /// Revokes `tokens`' refresh token, then its access token. Returns the
    /// first failure, after attempting both.
    pub async fn revoke_all(&self, tokens: &TokenSet) -> Result<(), Error> {
        let refresh = match &tokens.refresh_token {
            Some(token) => self.revoke(token.secret(), "refresh_token").await,
            None => Ok(()),
        };
        let access = self
            .revoke(tokens.access_token.secret(), "access_token")
            .await;
        refresh.and(access)
    }

    /// `POST endpoint` with `token`, `token_type_hint` and `client_id`
    /// ([§2.1](https://www.rfc-editor.org/rfc/rfc7009#section-2.1)).
    /// A 200 means revoked, or already invalid: both are success
    /// ([§2.2](https://www.rfc-editor.org/rfc/rfc7009#section-2.2)).
    async fn revoke(&self, token: &str, hint: &'static str) -> Result<(), Error> {
        let form = [
            ("token".to_owned(), token.to_owned()),
            ("token_type_hint".to_owned(), hint.to_owned()),
            ("client_id".to_owned(), self.client_id.to_owned()),
        ];
        let request = self
            .platform
            .post_form::<RevocationErrorBody>(self.endpoint, &form);
        let reply = within(request, self.platform.sleep(self.timeout_ms))
            .await
            .ok_or_else(|| Error::RevocationFailed {
                status: None,
                reason: format!("revoking the {hint} timed out"),
            })?
            .map_err(|error| Error::RevocationFailed {
                status: None,
                reason: format!("revoking the {hint}: {error}"),
            })?;
        outcome(reply, hint)
    }
}

fn outcome(reply: HttpReply<RevocationErrorBody>, hint: &str) -> Result<(), Error> {
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
    use crate::core::RefreshToken;

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

    fn revoke(platform: &FakePlatform, set: &TokenSet) -> Result<(), Error> {
        let revocation = Revocation {
            platform,
            endpoint: URL,
            client_id: "spa",
            timeout_ms: 5_000,
        };
        block_on(revocation.revoke_all(set))
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
