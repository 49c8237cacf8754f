//! What a refresh brought back, as its transport got it: the token
//! endpoint's HTTP reply (the standard grant), or what the app's own
//! `refresh` resolved with, which has no status or headers. Both are read
//! into a token set here, so the transports only carry answers and the
//! rules for an app's answer are the core's, tested natively.

use crate::core::platform::HttpReply;
use crate::core::token::token_set_from_reply;
use crate::core::{Error, RawTokenResponse, TokenSet};

/// A refresh's answer.
#[derive(Debug)]
pub enum RefreshAnswer {
    /// The token endpoint's reply.
    Server(HttpReply<RawTokenResponse>),
    /// What the app's `refresh` resolved with: a token response (an object
    /// with `error` is the server's refusal), or why it is not one.
    App(Result<RawTokenResponse, String>),
}

impl RefreshAnswer {
    /// The refreshed set from `base` at `now_ms`, or the refusal:
    /// - a server's reply: [`token_set_from_reply`];
    /// - an app's refusal: a token endpoint error with the status RFC 6749
    ///   §5.2 gives error responses (400), so `invalid_grant` ends the
    ///   session as the server's would;
    /// - an app's token response without `token_type` (custom endpoints
    ///   rarely say): the session's own kind, `DPoP` for a bound set;
    /// - anything else the app resolved with: `malformed_token_response`.
    pub fn token_set(self, now_ms: u64, base: &TokenSet) -> Result<TokenSet, Error> {
        let jkt = base.dpop_jkt.as_deref();
        let raw = match self {
            RefreshAnswer::Server(reply) => {
                return token_set_from_reply(reply, now_ms, Some(base), jkt)
            }
            RefreshAnswer::App(Err(reason)) => {
                return Err(Error::MalformedTokenResponse { reason })
            }
            RefreshAnswer::App(Ok(raw)) => raw,
        };
        let status = if raw.error.is_some() { 400 } else { 200 };
        let kind = if jkt.is_some() { "DPoP" } else { "Bearer" };
        let raw = RawTokenResponse {
            token_type: raw.token_type.or_else(|| Some(kind.to_owned())),
            ..raw
        };
        TokenSet::from_response(status, raw, now_ms, Some(base), jkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::bearer_set;

    const NOW: u64 = 1_700_000_000_000;

    fn base(jkt: Option<&str>) -> TokenSet {
        TokenSet {
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" }.into(),
            dpop_jkt: jkt.map(Into::into),
            ..bearer_set("at-1")
        }
    }

    fn app(json: serde_json::Value) -> RefreshAnswer {
        RefreshAnswer::App(Ok(serde_json::from_value(json).unwrap()))
    }

    #[test]
    fn an_apps_answer_without_a_token_type_is_the_sessions_kind() {
        let answer = app(serde_json::json!({"access_token": "at-2", "refresh_token": "rt-2"}));
        let fresh = answer.token_set(NOW, &base(Some("jkt-1"))).unwrap();
        assert_eq!(fresh.token_type, "DPoP");
        assert_eq!(fresh.refresh_token.unwrap().secret(), "rt-2");
        let answer = app(serde_json::json!({"access_token": "at-2"}));
        let fresh = answer.token_set(NOW, &base(None)).unwrap();
        assert_eq!(fresh.token_type, "Bearer");
        assert_eq!(fresh.refresh_token.unwrap().secret(), "rt-1");
    }

    #[test]
    fn an_apps_stated_token_type_is_checked_against_the_session() {
        let answer = app(serde_json::json!({"access_token": "at-2", "token_type": "Bearer"}));
        let error = answer.token_set(NOW, &base(Some("jkt-1"))).unwrap_err();
        assert_eq!(error.code(), "unsupported_token_type");
    }

    #[test]
    fn an_apps_refusal_reads_as_the_servers_error_response() {
        let answer = app(serde_json::json!({"error": "invalid_grant"}));
        let error = answer.token_set(NOW, &base(None)).unwrap_err();
        assert_eq!(error.code(), "invalid_grant");
        assert!(matches!(error, Error::TokenEndpoint { status: 400, .. }));
    }

    #[test]
    fn an_apps_unreadable_answer_is_malformed() {
        let answer = RefreshAnswer::App(Err("not a token response".into()));
        let error = answer.token_set(NOW, &base(None)).unwrap_err();
        assert_eq!(error.code(), "malformed_token_response");
    }

    #[test]
    fn a_servers_reply_is_read_with_its_status_and_retry_after() {
        let reply = HttpReply {
            status: 503,
            body: Err("<html>".into()),
            retry_after_s: Some(30),
            dpop_nonce: None,
            oauth_error: None,
        };
        let error = RefreshAnswer::Server(reply).token_set(NOW, &base(None));
        let error = error.unwrap_err();
        assert!(matches!(
            error,
            Error::TokenEndpoint {
                status: 503,
                retry_after_s: Some(30),
                ..
            }
        ));
    }
}
