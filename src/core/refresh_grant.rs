//! The standard refresh request
//! ([RFC 6749 §6](https://www.rfc-editor.org/rfc/rfc6749#section-6)) as a
//! [`RefreshTransport`]: the default when the app brings no `refresh`.

use crate::core::dpop::Dpop;
use crate::core::dpop_post::NonceRefusal::HandOn;
use crate::core::ports::{Clock, Crypto, DpopKeys, Http, RefreshRequest, RefreshTransport};
use crate::core::refresh_answer::RefreshAnswer;
use crate::core::{refresh_params, Error, RawTokenResponse};

/// `POST token_endpoint` with `grant_type=refresh_token`; signed with the
/// session's DPoP key when its tokens are bound to one (a bound refresh
/// token is refused without a proof of the same key).
pub struct RefreshGrant<'a, H, K> {
    /// How requests are sent.
    pub http: &'a H,
    /// The token endpoint.
    pub token_endpoint: &'a str,
    /// The public client's id, sent in the body.
    pub client_id: &'a str,
    /// The client's DPoP keys and nonces.
    pub dpop: Dpop<'a, K>,
}

impl<H: Http + Clock + Crypto, K: DpopKeys> RefreshTransport for RefreshGrant<'_, H, K> {
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        let current = &request.base;
        let refresh_token = current
            .refresh_token
            .as_ref()
            .ok_or(Error::NotAuthenticated)?;
        // No `scope`: the refreshed set keeps the originally granted scope.
        let form = refresh_params(refresh_token, self.client_id, None);
        // A bound refresh token is refused without a proof of its key.
        let bound_to = current.dpop_jkt.as_deref();
        let endpoint = request.endpoint.as_deref().unwrap_or(self.token_endpoint);
        let reply = self
            .dpop
            .post_form::<H, RawTokenResponse>(self.http, bound_to, endpoint, &form, HandOn);
        let reply = reply.await;
        reply.map(RefreshAnswer::Server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{block_on, FakeDpopKeys, FakePlatform};
    use crate::core::secret::{AccessToken, RefreshToken};
    use crate::core::TokenSet;

    const TOKEN_URL: &str = "https://idp.example/token";
    const FORM: &[(&str, &str)] = &[
        ("grant_type", "refresh_token"),
        ("refresh_token", "rt-1"),
        ("client_id", "spa"),
    ];
    const BODY: &str = r#"{"access_token":"at-2","token_type":"DPoP","refresh_token":"rt-2"}"#;

    fn set(dpop_jkt: Option<String>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at-1".into()),
            token_type: "DPoP".into(),
            expires_at_ms: None,
            refresh_token: Some(RefreshToken::new("rt-1".into())),
            scope: None,
            id_token: None,
            refresh_expires_at_ms: None,
            issued_at_ms: 0,
            login_at_ms: 0,
            rotation: 0,
            dpop_jkt,
            atproto: None,
        }
    }

    fn refresh(platform: &FakePlatform, current: &TokenSet) -> Result<u16, Error> {
        refresh_at(platform, current, None)
    }

    fn refresh_at(
        platform: &FakePlatform,
        current: &TokenSet,
        endpoint: Option<&str>,
    ) -> Result<u16, Error> {
        let grant = RefreshGrant {
            http: platform,
            token_endpoint: TOKEN_URL,
            client_id: "spa",
            dpop: platform.dpop(),
        };
        let request = RefreshRequest {
            base: current.clone(),
            endpoint: endpoint.map(str::to_owned),
            abort_after_ms: 61_000,
        };
        block_on(grant.refresh(&request)).map(|answer| match answer {
            RefreshAnswer::Server(reply) => reply.status,
            RefreshAnswer::App(_) => panic!("the grant's answer is the server's"),
        })
    }

    #[test]
    fn a_bearer_session_refreshes_without_a_proof() {
        let platform = FakePlatform::at(0);
        platform.expect_post(TOKEN_URL, FORM, 200, BODY);
        assert_eq!(refresh(&platform, &set(None)), Ok(200));
    }

    #[test]
    fn an_accounts_session_refreshes_at_the_endpoint_the_core_chose() {
        let platform = FakePlatform::at(0);
        let own = "https://pds.example/oauth/token";
        platform.expect_post(own, FORM, 200, BODY);
        assert_eq!(refresh_at(&platform, &set(None), Some(own)), Ok(200));
    }

    #[test]
    fn a_bound_session_refreshes_with_a_proof_of_its_key() {
        let platform = FakePlatform::at(0);
        let (jkt, _) = block_on(platform.dpop_keys.create()).unwrap();
        platform.expect_post(TOKEN_URL, FORM, 200, BODY);
        platform.with_proof(&[("htm", "POST"), ("htu", TOKEN_URL), ("ath", "")], None);
        assert_eq!(refresh(&platform, &set(Some(jkt))), Ok(200));
    }

    #[test]
    fn a_bound_session_whose_key_is_gone_sends_nothing() {
        let platform = FakePlatform::at(0); // scripted with no request
        let error = refresh(&platform, &set(Some(FakeDpopKeys::jkt(9)))).unwrap_err();
        assert_eq!(error.code(), "dpop_key_unavailable");
    }
}
