//! What a refresh brought back, as its transport got it: the token
//! endpoint's HTTP reply (the standard grant), or what the app's own
//! `refresh` resolved with, which has no status or headers. Both are read
//! into a token set here, so the transports only carry answers and the
//! rules for an app's answer are the core's, tested natively.

use crate::core::dpop_post::token_reply_wants_nonce;
use crate::core::platform::HttpReply;
use crate::core::token::token_set_from_reply;
use crate::core::{AccessToken, Error, RawTokenResponse, RefreshToken, TokenSet};

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
    /// Whether the token endpoint refused the request, unprocessed, for
    /// its DPoP proof's nonce
    /// ([RFC 9449 §8](https://www.rfc-editor.org/rfc/rfc9449#section-8));
    /// the new nonce is kept by then
    /// ([`NonceRefusal::HandOn`](crate::core::dpop_post::NonceRefusal::HandOn)).
    pub fn wants_nonce(&self) -> bool {
        matches!(self, RefreshAnswer::Server(reply) if token_reply_wants_nonce(reply))
    }

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

    /// The rotation this answer carried, should [`RefreshAnswer::token_set`]
    /// refuse it ([`TokenSet::rotation_in_refused`]); an app's answer counts
    /// as the server's, with the status `token_set` gives it.
    pub fn rotation_in_refused(&self, now_ms: u64, base: &TokenSet) -> Option<TokenSet> {
        let (status, raw) = match self {
            RefreshAnswer::Server(HttpReply {
                status,
                body: Ok(raw),
                ..
            }) => (*status, raw),
            RefreshAnswer::App(Ok(raw)) => (200, raw),
            _ => return None,
        };
        TokenSet::rotation_in_refused(base, status, raw, now_ms)
    }
}

/// What the app's `refresh(ctx)` is handed for a set: its tokens, where
/// the session refreshes, the client, the scope, and — for a set bound to a
/// DPoP key — which key signs the proofs its `dpopProof` makes (the app
/// never gets the key).
#[derive(Debug)]
pub struct AppRefreshCall<'a> {
    /// The refresh token.
    pub refresh_token: &'a RefreshToken,
    /// The access token.
    pub access_token: &'a AccessToken,
    /// The session's token endpoint (an atproto account's own server's).
    pub token_endpoint: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// The set's scope.
    pub scope: Option<&'a str>,
    /// The key `dpopProof` signs with, when the set is bound.
    pub proof_key: Option<&'a str>,
}

impl<'a> AppRefreshCall<'a> {
    /// The call for `current`, refreshing at `token_endpoint`; a set
    /// without a refresh token cannot be refreshed (`not_authenticated`).
    pub fn of(
        current: &'a TokenSet,
        token_endpoint: &'a str,
        client_id: &'a str,
    ) -> Result<AppRefreshCall<'a>, Error> {
        Ok(AppRefreshCall {
            refresh_token: current
                .refresh_token
                .as_ref()
                .ok_or(Error::NotAuthenticated)?,
            access_token: &current.access_token,
            token_endpoint,
            client_id,
            scope: current.scope.as_deref(),
            proof_key: current.dpop_jkt.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::bearer_set;

    #[test]
    fn the_apps_refresh_gets_the_sets_tokens_and_the_sessions_endpoint() {
        let set = bearer_set("at-1");
        let call = AppRefreshCall::of(&set, "https://pds.example/token", "spa").unwrap();
        assert_eq!(call.refresh_token.secret(), "rt-1");
        assert_eq!(call.access_token.secret(), "at-1");
        assert_eq!(call.token_endpoint, "https://pds.example/token");
        assert_eq!((call.client_id, call.scope), ("spa", Some("api")));
        assert_eq!(call.proof_key, None, "a Bearer set: no dpopProof");
        let bound = TokenSet {
            dpop_jkt: Some("jkt".into()),
            ..bearer_set("at-1")
        };
        let call = AppRefreshCall::of(&bound, "https://x/token", "spa").unwrap();
        assert_eq!(call.proof_key, Some("jkt"));
    }

    #[test]
    fn a_set_without_a_refresh_token_is_not_refreshed_by_the_app() {
        let set = TokenSet {
            refresh_token: None,
            ..bearer_set("at-1")
        };
        let error = AppRefreshCall::of(&set, "https://x/token", "spa").unwrap_err();
        assert_eq!(error, Error::NotAuthenticated);
    }

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

    /// The rotation a refused answer carried, as `rotation_in_refused`
    /// reads it (`refresh_expires_in` included), for `base(None)`.
    fn kept(answer: RefreshAnswer) -> Option<TokenSet> {
        let kept = answer.rotation_in_refused(NOW, &base(None));
        assert!(answer.token_set(NOW, &base(None)).is_err(), "refused");
        kept
    }

    #[test]
    fn a_refused_answers_new_refresh_token_is_kept_with_the_old_access_token() {
        let previous = TokenSet {
            refresh_expires_at_ms: Some(NOW + 1_000),
            ..base(None)
        };
        let expiring = |lifetime: serde_json::Value| {
            let answer = app(serde_json::json!({
                "refresh_token": "rt-2", "refresh_expires_in": lifetime,
            }));
            let kept = answer.rotation_in_refused(NOW, &previous).unwrap();
            assert_eq!(kept.refresh_token.as_ref().unwrap().secret(), "rt-2");
            assert_eq!(kept.access_token, previous.access_token);
            assert_eq!(kept.expires_at_ms, previous.expires_at_ms);
            assert_eq!(kept.rotation, previous.rotation + 1);
            kept.refresh_expires_at_ms
        };
        assert_eq!(expiring(60.into()), Some(NOW + 60_000));
        assert_eq!(expiring(0.into()), None, "0: does not expire");
        assert_eq!(expiring(serde_json::Value::Null), None, "not said");
        assert_eq!(
            expiring("soon".into()),
            Some(NOW + 1_000),
            "unreadable: the old one's"
        );
    }

    #[test]
    fn only_a_successful_answer_with_a_new_refresh_token_is_a_rotation() {
        let no_access_token = |extra: serde_json::Value| {
            let mut json = serde_json::json!({"token_type": "Bearer"});
            json.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<RawTokenResponse>(json).unwrap()
        };
        let server = |status, extra| {
            RefreshAnswer::Server(HttpReply {
                status,
                body: Ok(no_access_token(extra)),
                retry_after_s: None,
                dpop_nonce: None,
                oauth_error: None,
            })
        };
        let new = serde_json::json!({"refresh_token": "rt-2"});
        assert!(kept(server(200, new.clone())).is_some());
        assert!(kept(server(201, new.clone())).is_some());
        assert!(kept(server(500, new.clone())).is_none(), "an error status");
        let with_error = serde_json::json!({"refresh_token": "rt-2", "error": "x"});
        assert!(kept(server(200, with_error.clone())).is_none(), "an error");
        assert!(kept(app(with_error)).is_none(), "an app's refusal");
        assert!(kept(server(200, serde_json::json!({"refresh_token": "rt-1"}))).is_none());
        assert!(kept(server(200, serde_json::json!({"refresh_token": ""}))).is_none());
        assert!(kept(server(200, serde_json::json!({}))).is_none());
        assert!(kept(app(new)).is_some(), "an app's answer");
        assert!(kept(RefreshAnswer::App(Err("unreadable".into()))).is_none());
    }
}
