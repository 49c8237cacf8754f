//! A login's types: the client's configuration, a started login and a
//! completed one. The Authorization Code + PKCE flow itself is two machines
//! that do no I/O — its start ([`crate::core::start_machine`]) and its
//! completion from the callback ([`crate::core::callback_machine`]) —
//! driven by [`crate::core::login_profile::Logins`]; where the endpoints
//! come from is decided at start-up ([`crate::core::startup`]).
//!
//! The tests here run the flow through that driver against the fakes.

use crate::core::secret::Form;
use crate::core::{Endpoints, Error, State, TokenSet};

/// A validated client configuration: what `AuthClient.create` resolves once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The issuer identifier, compared exactly with discovery and `iss`.
    pub issuer: String,
    /// The OAuth `client_id` (a public client: no secret).
    pub client_id: String,
    /// The registered redirect URI.
    pub redirect_uri: String,
    /// The scope requested at login, space-separated.
    pub scope: String,
    /// The resolved endpoints.
    pub endpoints: Endpoints,
    /// Send every authorization request through PAR (`par: true`), not only
    /// when the server requires it.
    pub par: bool,
    /// Bind tokens to a DPoP key made for each login (`dpop: true`).
    pub dpop: bool,
}

impl ClientConfig {
    /// The pushed authorization request endpoint when logins go through
    /// PAR ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)): when the app
    /// asked for it or the server requires it. `invalid_option` when PAR is
    /// needed and the server has no such endpoint.
    pub fn par_endpoint(&self) -> Result<Option<&str>, Error> {
        self.endpoints.par_endpoint(self.par)
    }
}

/// A started login: the authorization URL's query, and the `state` the
/// callback will carry (not in the query when the request was pushed).
#[derive(Debug)]
pub struct LoginStart {
    /// The authorization endpoint's query parameters (values redacted in
    /// `Debug`).
    pub query: Form,
    /// The login's `state`.
    pub state: State,
}

/// What a completed login hands back to the app.
#[derive(Debug)]
pub struct LoginResult {
    /// The token set, verified and not yet stored: the caller stores it
    /// under the session lock ([`Refresher::sign_in`](crate::core::refresher::Refresher::sign_in)).
    pub tokens: TokenSet,
    /// The app's `appState` from `login`, as JSON text.
    pub app_state: Option<String>,
    /// The verified ID token's claims as JSON text (OpenID Connect logins).
    pub claims_json: Option<String>,
    /// The token response's `sub`, when it has one (the AT Protocol's DID):
    /// checked by the caller before anything is stored.
    pub subject: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dpop::Dpop;
    use crate::core::fakes::start_login;
    use crate::core::jwks::JwksCache;
    use crate::core::login_profile::Logins;
    use crate::core::memory_store::MemorySessionStore;
    use crate::core::ports::{DpopKeys, SessionStore};
    use crate::core::PkceVerifier;

    /// Completes a login of the client configured as `config` (OpenID
    /// Connect: no atproto resolver), as `Logins::finish` does.
    async fn finish_login(
        config: &ClientConfig,
        platform: &FakePlatform,
        store: &MemorySessionStore,
        dpop: &Dpop<'_, FakeDpopKeys>,
        jwks: &JwksCache,
        params: &[(String, String)],
    ) -> Result<LoginResult, Error> {
        let logins = Logins {
            platform,
            resolving: platform,
            store,
            dpop,
            jwks,
            config,
            atproto: None,
            revocation_timeout_ms: 1_000,
        };
        logins.finish(params).await
    }
    use crate::core::base64url;
    use crate::core::fakes::{block_on, FakeDpopKeys, FakePlatform};
    use crate::core::jose::JwsAlgorithm;
    use sha2::{Digest, Sha256};

    const ISSUER: &str = "https://idp.example";
    const NOW: u64 = 1_700_000_000_000;

    /// The shared test client, as this file's tests use it: an OpenID
    /// Connect login that also asks for `api`.
    fn config() -> ClientConfig {
        ClientConfig {
            redirect_uri: "https://app.example/callback".into(),
            scope: "openid api".into(),
            ..crate::core::fakes::client_config()
        }
    }

    const PAR_URL: &str = "https://idp.example/par";

    const JWKS_URL: &str = "https://idp.example/jwks";

    /// A plain OAuth 2.0 client: no `openid`, so no nonce and no ID token.
    fn plain_config() -> ClientConfig {
        ClientConfig {
            scope: "api".into(),
            ..config()
        }
    }

    fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
        let mut values = params.iter().filter(|(k, _)| k == name);
        let (_, value) = values.next().unwrap_or_else(|| panic!("no {name}"));
        assert!(values.next().is_none(), "{name} appears twice");
        value
    }

    /// `pairs` as the fake server's expected form.
    fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Starts a login and returns the authorization request parameters.
    fn started(platform: &FakePlatform) -> Vec<(String, String)> {
        started_as(&config(), platform)
    }

    fn started_as(config: &ClientConfig, platform: &FakePlatform) -> Vec<(String, String)> {
        let extra = owned(&[("prompt", "consent")]);
        block_on(start_login(
            config,
            platform,
            &platform.store,
            &platform.dpop(),
            extra,
            Some(r#"{"to":"/x"}"#.into()),
        ))
        .unwrap()
        .query
        .0
    }

    #[test]
    fn start_login_sends_s256_challenge_of_the_stored_verifier() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        let verifier = PkceVerifier::from_random_bytes(&[1; 32]);
        let challenge = base64url::encode(&Sha256::digest(verifier.secret().as_bytes()));
        assert_eq!(param(&params, "code_challenge"), challenge);
        assert_eq!(param(&params, "code_challenge_method"), "S256");
        assert_eq!(param(&params, "response_type"), "code");
        assert_eq!(param(&params, "prompt"), "consent");
        assert!(
            params.iter().all(|(_, v)| v != verifier.secret()),
            "verifier never sent"
        );
        let stored = block_on(platform.store.take_transaction())
            .unwrap()
            .unwrap();
        assert_eq!(stored.state.secret(), param(&params, "state"));
        assert_eq!(stored.verifier.secret(), verifier.secret());
        assert_eq!(
            stored.nonce.as_ref().unwrap().secret(),
            param(&params, "nonce")
        );
        assert_eq!(stored.created_at_ms, NOW);
    }

    #[test]
    fn with_par_the_request_is_pushed_and_only_client_id_and_request_uri_remain() {
        let platform = FakePlatform::at(NOW);
        // The exact form the plain login would have put in the URL.
        let plain = started_as(&config(), &FakePlatform::at(NOW));
        let config = ClientConfig {
            par: true,
            ..config()
        };
        let form = borrowed(&plain);
        platform.expect_post(
            PAR_URL,
            &form,
            201,
            r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r1","expires_in":60}"#,
        );
        let query = started_as(&config, &platform);
        assert_eq!(
            query,
            owned(&[
                ("client_id", "spa"),
                ("request_uri", "urn:ietf:params:oauth:request_uri:r1")
            ])
        );
        let stored = block_on(platform.store.take_transaction())
            .unwrap()
            .unwrap();
        assert_eq!(stored.state.secret(), param(&plain, "state"));
    }

    #[test]
    fn a_server_that_requires_par_gets_it_without_asking() {
        let platform = FakePlatform::at(NOW);
        let mut config = config();
        config.endpoints.par_required = true;
        let plain = started_as(&plain_config_with(&config), &FakePlatform::at(NOW));
        let form = borrowed(&plain);
        platform.expect_post(PAR_URL, &form, 400, r#"{"error":"invalid_request"}"#);
        let error = block_on(start_login(
            &config,
            &platform,
            &platform.store,
            &platform.dpop(),
            owned(&[("prompt", "consent")]),
            Some(r#"{"to":"/x"}"#.into()),
        ))
        .unwrap_err();
        assert_eq!(
            (error.code(), error.server_error()),
            ("par_failed", Some("invalid_request"))
        );
    }

    /// `config` without PAR: the authorization request as it would be pushed.
    fn plain_config_with(config: &ClientConfig) -> ClientConfig {
        let mut plain = config.clone();
        plain.endpoints.par_required = false;
        plain.par = false;
        plain
    }

    fn dpop_config() -> ClientConfig {
        ClientConfig {
            dpop: true,
            ..plain_config()
        }
    }

    #[test]
    fn a_dpop_login_sends_the_new_keys_thumbprint_and_remembers_it() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&dpop_config(), &platform);
        assert_eq!(param(&params, "dpop_jkt"), FakeDpopKeys::jkt(1));
        let stored = block_on(platform.store.take_transaction())
            .unwrap()
            .unwrap();
        assert_eq!(stored.dpop_jkt, Some(FakeDpopKeys::jkt(1)));
        assert_eq!(
            started_as(&plain_config(), &FakePlatform::at(NOW))
                .iter()
                .find(|(k, _)| k == "dpop_jkt"),
            None,
            "no DPoP, no dpop_jkt"
        );
    }

    #[test]
    fn a_refused_push_leaves_no_key_and_keeps_the_pending_login() {
        let platform = FakePlatform::at(NOW);
        let first = started_as(&dpop_config(), &platform);
        // The second login's exact request, made by a twin at the same point.
        let twin = FakePlatform::at(NOW);
        started_as(&dpop_config(), &twin);
        let plain = started_as(&dpop_config(), &twin);
        let form = borrowed(&plain);
        platform.expect_post(PAR_URL, &form, 400, r#"{"error":"invalid_request"}"#);
        platform.with_proof(&[("htm", "POST"), ("htu", PAR_URL)], None);
        let config = ClientConfig {
            par: true,
            ..dpop_config()
        };
        let error = block_on(start_login(
            &config,
            &platform,
            &platform.store,
            &platform.dpop(),
            owned(&[("prompt", "consent")]),
            Some(r#"{"to":"/x"}"#.into()),
        ))
        .unwrap_err();
        assert_eq!(error.code(), "par_failed");
        let keys = &platform.dpop_keys;
        assert!(
            block_on(keys.load(&FakeDpopKeys::jkt(2))).is_err(),
            "the refused login's key"
        );
        assert!(
            block_on(keys.load(&FakeDpopKeys::jkt(1))).is_ok(),
            "the pending login's key"
        );
        let pending = block_on(platform.store.take_transaction())
            .unwrap()
            .unwrap();
        assert_eq!(
            pending.state.secret(),
            param(&first, "state"),
            "still the first login"
        );
    }

    #[test]
    fn a_new_login_deletes_the_key_of_the_login_it_replaces() {
        let platform = FakePlatform::at(NOW);
        started_as(&dpop_config(), &platform);
        started_as(&dpop_config(), &platform);
        let keys = &platform.dpop_keys;
        assert!(
            block_on(keys.load(&FakeDpopKeys::jkt(1))).is_err(),
            "replaced"
        );
        assert!(
            block_on(keys.load(&FakeDpopKeys::jkt(2))).is_ok(),
            "current"
        );
    }

    #[test]
    fn a_dpop_login_pushes_its_request_with_a_proof_and_retries_a_nonce_once() {
        let platform = FakePlatform::at(NOW);
        let config = ClientConfig {
            par: true,
            ..dpop_config()
        };
        // The form the plain DPoP login would have put in the URL.
        let plain = started_as(&dpop_config(), &FakePlatform::at(NOW));
        let form = borrowed(&plain);
        let wants = r#"{"error":"use_dpop_nonce"}"#;
        platform.expect_post(PAR_URL, &form, 400, wants);
        platform.with_proof(
            &[("htm", "POST"), ("htu", PAR_URL), ("nonce", "")],
            Some("n-1"),
        );
        let pushed = r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r1","expires_in":60}"#;
        platform.expect_post(PAR_URL, &form, 201, pushed);
        platform.with_proof(&[("nonce", "n-1")], None);
        let query = started_as(&config, &platform);
        assert_eq!(
            param(&query, "request_uri"),
            "urn:ietf:params:oauth:request_uri:r1"
        );
    }

    /// The code exchange of a DPoP login, answered `status` with `body`.
    fn expect_dpop_code_exchange(platform: &FakePlatform, status: u16, body: &str) {
        expect_code_exchange(platform, "c-1", status, body);
        let token_url = format!("{ISSUER}/token");
        platform.with_proof(&[("htm", "POST"), ("htu", &token_url), ("ath", "")], None);
    }

    fn finish_as(
        config: &ClientConfig,
        platform: &FakePlatform,
        params: &[(String, String)],
    ) -> Result<LoginResult, Error> {
        block_on(finish_login(
            config,
            platform,
            &platform.store,
            &platform.dpop(),
            &JwksCache::new(),
            &callback(params, "c-1"),
        ))
    }

    #[test]
    fn a_dpop_login_exchanges_its_code_with_a_proof_and_gets_bound_tokens() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&dpop_config(), &platform);
        let body = r#"{"access_token":"at-1","token_type":"DPoP","expires_in":300,"refresh_token":"rt-1"}"#;
        expect_dpop_code_exchange(&platform, 200, body);
        let result = finish_as(&dpop_config(), &platform, &params).unwrap();
        assert_eq!(result.tokens.token_type, "DPoP");
        assert_eq!(result.tokens.dpop_jkt, Some(FakeDpopKeys::jkt(1)));
    }

    #[test]
    fn a_bearer_answer_to_a_dpop_code_exchange_is_refused() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&dpop_config(), &platform);
        expect_dpop_code_exchange(&platform, 200, TOKENS);
        let error = finish_as(&dpop_config(), &platform, &params).unwrap_err();
        assert_eq!(error.code(), "unsupported_token_type");
    }

    #[test]
    fn the_code_exchange_after_the_redirect_starts_with_the_nonce_the_push_left() {
        let platform = FakePlatform::at(NOW);
        let plain = started_as(&dpop_config(), &FakePlatform::at(NOW));
        let form = borrowed(&plain);
        let pushed = r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r1","expires_in":60}"#;
        platform.expect_post(PAR_URL, &form, 201, pushed);
        platform.with_proof(&[("nonce", "")], Some("n-1"));
        let config = ClientConfig {
            par: true,
            ..dpop_config()
        };
        started_as(&config, &platform);
        // The redirect page: a new, empty book; the same keys and store.
        let book = crate::core::dpop::NonceBook::default();
        let page = Dpop {
            keys: &platform.dpop_keys,
            nonces: &book,
        };
        let body = r#"{"access_token":"at-1","token_type":"DPoP","expires_in":300}"#;
        expect_code_exchange(&platform, "c-1", 200, body);
        platform.with_proof(&[("nonce", "n-1")], None);
        let result = block_on(finish_login(
            &config,
            &platform,
            &platform.store,
            &page,
            &JwksCache::new(),
            &callback(&plain, "c-1"),
        ));
        assert_eq!(result.unwrap().tokens.token_type, "DPoP");
    }

    #[test]
    fn a_refused_dpop_login_deletes_its_key() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&dpop_config(), &platform);
        expect_dpop_code_exchange(&platform, 200, TOKENS); // a Bearer downgrade
        finish_as(&dpop_config(), &platform, &params).unwrap_err();
        let gone = block_on(platform.dpop_keys.load(&FakeDpopKeys::jkt(1)));
        assert_eq!(gone.unwrap_err().code(), "dpop_key_unavailable");
    }

    #[test]
    fn a_dpop_login_whose_key_is_gone_exchanges_nothing() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&dpop_config(), &platform);
        // Another platform's keys: the login's key is not among them.
        let other = FakePlatform::at(NOW);
        let error = block_on(finish_login(
            &dpop_config(),
            &platform,
            &platform.store,
            &other.dpop(),
            &JwksCache::new(),
            &callback(&params, "c-1"),
        ))
        .unwrap_err();
        assert_eq!(error.code(), "dpop_key_unavailable");
    }

    #[test]
    fn par_asked_for_without_an_endpoint_is_an_invalid_option() {
        let mut config = config();
        config.par = true;
        config.endpoints.par = None;
        assert_eq!(config.par_endpoint().unwrap_err().code(), "invalid_option");
        assert_eq!(
            self::config().par_endpoint(),
            Ok(None),
            "not asked, not required"
        );
    }

    #[test]
    fn start_login_refuses_reserved_extra_params_and_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        let extra = owned(&[("state", "mine")]);
        let error = block_on(start_login(
            &config(),
            &platform,
            &platform.store,
            &platform.dpop(),
            extra,
            None,
        ))
        .unwrap_err();
        assert_eq!(error.code(), "invalid_option");
        assert!(block_on(platform.store.take_transaction())
            .unwrap()
            .is_none());
    }

    fn callback(params: &[(String, String)], code: &str) -> Vec<(String, String)> {
        owned(&[
            ("code", code),
            ("state", param(params, "state")),
            ("iss", ISSUER),
        ])
    }

    fn expect_code_exchange(platform: &FakePlatform, code: &str, status: u16, body: &str) {
        let verifier = PkceVerifier::from_random_bytes(&[1; 32]);
        platform.expect_post(
            &format!("{ISSUER}/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "https://app.example/callback"),
                ("client_id", "spa"),
                ("code_verifier", verifier.secret()),
            ],
            status,
            body,
        );
    }

    const TOKENS: &str =
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300,"refresh_token":"rt-1"}"#;

    #[test]
    fn finish_login_exchanges_the_code_and_leaves_storing_to_the_caller() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&plain_config(), &platform);
        expect_code_exchange(&platform, "c-1", 200, TOKENS);
        platform.now_ms.set(NOW + 5_000);
        let result = finish(&platform, &params).unwrap();
        assert_eq!(result.app_state.as_deref(), Some(r#"{"to":"/x"}"#));
        assert_eq!(result.tokens.expires_at_ms, Some(NOW + 5_000 + 300_000));
        assert_eq!(result.tokens.access_token.secret(), "at-1");
        assert_eq!(result.tokens.refresh_token.unwrap().secret(), "rt-1");
        // Stored under the session lock by the caller (Refresher::sign_in).
        assert!(block_on(platform.store.load_tokens()).unwrap().is_none());
    }

    #[test]
    fn a_plain_oauth_login_keeps_no_id_token_it_did_not_ask_for() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&plain_config(), &platform);
        let body =
            r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300,"id_token":"a.b.c"}"#;
        expect_code_exchange(&platform, "c-1", 200, body);
        let result = finish(&platform, &params).unwrap();
        assert_eq!(result.tokens.id_token, None);
        assert_eq!(result.claims_json, None);
    }

    #[test]
    fn a_replayed_callback_finds_no_transaction() {
        let platform = FakePlatform::at(NOW);
        let params = started_as(&plain_config(), &platform);
        expect_code_exchange(&platform, "c-1", 200, TOKENS);
        finish(&platform, &params).unwrap();
        block_on(
            platform
                .store
                .clear_tokens(crate::core::message::EndRecord::new(
                    crate::core::message::EndReason::SignedOut,
                    NOW,
                )),
        )
        .unwrap();
        let replay = finish(&platform, &params);
        assert_eq!(replay.unwrap_err().code(), "no_transaction");
        assert!(block_on(platform.store.load_tokens()).unwrap().is_none());
    }

    #[test]
    fn a_tampered_state_consumes_the_transaction_and_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        started(&platform);
        let forged = owned(&[("code", "c-1"), ("state", "forged"), ("iss", ISSUER)]);
        let error = block_on(finish_login(
            &config(),
            &platform,
            &platform.store,
            &platform.dpop(),
            &JwksCache::new(),
            &forged,
        ))
        .unwrap_err();
        assert_eq!(error.code(), "state_mismatch");
        assert!(block_on(platform.store.load_tokens()).unwrap().is_none());
        assert!(block_on(platform.store.take_transaction())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_token_endpoint_error_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        let body = r#"{"error":"invalid_grant","error_description":"code already used"}"#;
        expect_code_exchange(&platform, "c-1", 400, body);
        let error = refused(&platform, &params);
        assert_eq!(error.code(), "invalid_grant");
        assert_eq!(error.error_description(), Some("code already used"));
    }

    #[test]
    fn a_2xx_that_is_not_json_is_malformed_and_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        expect_code_exchange(&platform, "c-1", 200, "<html>");
        let error = refused(&platform, &params);
        assert_eq!(error.code(), "malformed_token_response");
    }

    #[test]
    fn a_5xx_with_an_html_body_keeps_its_status() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        expect_code_exchange(&platform, "c-1", 502, "<html>Bad gateway</html>");
        let error = finish(&platform, &params).unwrap_err();
        assert_eq!((error.code(), error.status()), ("token_error", Some(502)));
    }

    const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}"#;
    const SIGNATURE: &[u8] = &[9; 256];

    fn jwk() -> crate::core::jose::Jwk {
        crate::core::jose::Jwk {
            kty: "RSA".into(),
            kid: Some("k1".into()),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            ..Default::default()
        }
    }

    /// A token response with an RS256 ID token for `nonce`, and the ID
    /// token's signing input.
    fn oidc_tokens(nonce: &str) -> (String, String) {
        let header = base64url::encode(br#"{"alg":"RS256","kid":"k1"}"#);
        let claims = format!(
            r#"{{"iss":"{ISSUER}","sub":"alice","aud":"spa","exp":{},"iat":{},"nonce":"{nonce}","name":"Alice"}}"#,
            NOW / 1000 + 300,
            NOW / 1000
        );
        let input = format!("{header}.{}", base64url::encode(claims.as_bytes()));
        let id_token = format!("{input}.{}", base64url::encode(SIGNATURE));
        let body = format!(
            r#"{{"access_token":"at-1","token_type":"Bearer","expires_in":300,"refresh_token":"rt-1","id_token":"{id_token}"}}"#
        );
        (body, input)
    }

    fn finish(platform: &FakePlatform, params: &[(String, String)]) -> Result<LoginResult, Error> {
        block_on(finish_login(
            &config(),
            platform,
            &platform.store,
            &platform.dpop(),
            &JwksCache::new(),
            &callback(params, "c-1"),
        ))
    }

    /// A login that must fail: its error, once the store is checked to hold
    /// no tokens.
    fn refused(platform: &FakePlatform, params: &[(String, String)]) -> Error {
        let error = finish(platform, params).unwrap_err();
        assert!(block_on(platform.store.load_tokens()).unwrap().is_none());
        error
    }

    #[test]
    fn an_openid_login_verifies_the_id_token_and_keeps_it() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        let (body, input) = oidc_tokens(param(&params, "nonce"));
        expect_code_exchange(&platform, "c-1", 200, &body);
        platform.expect_get(JWKS_URL, 200, JWKS);
        platform.expect_signature(JwsAlgorithm::Rs256, &jwk(), &input, SIGNATURE, Ok(true));
        let result = finish(&platform, &params).unwrap();
        let claims = result.claims_json.expect("verified claims");
        assert!(claims.contains(r#""name":"Alice""#), "{claims}");
        assert!(result.tokens.id_token.is_some());
    }

    #[test]
    fn an_openid_login_without_an_id_token_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        expect_code_exchange(&platform, "c-1", 200, TOKENS);
        assert_eq!(refused(&platform, &params), Error::IdTokenMissing);
    }

    #[test]
    fn an_id_token_for_another_login_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        let (body, input) = oidc_tokens("someone-elses-nonce");
        expect_code_exchange(&platform, "c-1", 200, &body);
        platform.expect_get(JWKS_URL, 200, JWKS);
        platform.expect_signature(JwsAlgorithm::Rs256, &jwk(), &input, SIGNATURE, Ok(true));
        assert_eq!(refused(&platform, &params), Error::NonceMismatch);
    }

    #[test]
    fn a_forged_id_token_stores_nothing() {
        let platform = FakePlatform::at(NOW);
        let params = started(&platform);
        let (body, input) = oidc_tokens(param(&params, "nonce"));
        expect_code_exchange(&platform, "c-1", 200, &body);
        platform.expect_get(JWKS_URL, 200, JWKS);
        platform.expect_signature(JwsAlgorithm::Rs256, &jwk(), &input, SIGNATURE, Ok(false));
        assert_eq!(refused(&platform, &params), Error::IdTokenInvalidSignature);
    }
}
