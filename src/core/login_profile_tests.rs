//! The profile choice, one test per branch: each login starts and finishes
//! against the fake server, which asserts every exact request and fails on
//! any left unused.

use super::*;
use crate::core::atproto_login::account_config;
use crate::core::atproto_login::tests::{
    account, as_metadata, base, callback, expect_account, expect_as_metadata, expect_exchange,
    expect_handle_names, key_is_gone, resolver, tokens, AS, DID, NOW, RESOLVER,
};
use crate::core::fakes::{block_on, client_config, start_login, FakeDpopKeys, FakePlatform, IDP};
use crate::core::public_api::{ATPROTO_ONLY_OPTIONS, OIDC_ONLY_OPTIONS};
use crate::core::PkceVerifier;

/// A plain OAuth client of `IDP` (no `openid`: no ID token to verify).
fn oidc_config() -> ClientConfig {
    ClientConfig {
        redirect_uri: "https://app.example/callback".into(),
        scope: "api".into(),
        ..client_config()
    }
}

/// Runs `body` with the logins of a client configured as `config`, an
/// atproto one when `atproto` holds its resolver.
fn with_logins<T>(
    platform: &FakePlatform,
    config: &ClientConfig,
    atproto: Option<&Resolver>,
    body: impl FnOnce(
        &Logins<
            '_,
            FakePlatform,
            FakePlatform,
            crate::core::memory_store::MemorySessionStore,
            FakeDpopKeys,
        >,
    ) -> T,
) -> T {
    let dpop = platform.dpop();
    let jwks = JwksCache::new();
    let logins = Logins {
        platform,
        resolving: platform,
        store: &platform.store,
        dpop: &dpop,
        jwks: &jwks,
        config,
        atproto,
        revocation_timeout_ms: 1_000,
    };
    body(&logins)
}

fn request(handle: Option<&str>) -> LoginRequest {
    LoginRequest {
        extra_params: vec![("prompt".into(), "consent".into())],
        app_state: Some(r#"{"to":"/x"}"#.into()),
        handle: handle.map(Into::into),
        leaves_page: true,
    }
}

fn value<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    let found = query.iter().find(|(k, _)| k == name);
    found.map(|(_, v)| v.as_str()).unwrap_or_default()
}

#[test]
fn an_oidc_login_starts_and_finishes_at_the_configured_server() {
    let platform = FakePlatform::at(NOW);
    let config = oidc_config();
    with_logins(&platform, &config, None, |logins| {
        let started = block_on(logins.start(request(None))).unwrap();
        assert_eq!(started.authorization_endpoint, format!("{IDP}/auth"));
        let state = started.start.state.secret().to_owned();
        assert_eq!(value(&started.start.query, "state"), state);
        assert_eq!(value(&started.start.query, "prompt"), "consent");
        let verifier = PkceVerifier::from_random_bytes(&[1; 32]);
        platform.expect_post(
            &format!("{IDP}/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", "c-1"),
                ("redirect_uri", "https://app.example/callback"),
                ("client_id", "spa"),
                ("code_verifier", verifier.secret()),
            ],
            200,
            r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300}"#,
        );
        let params: Vec<(String, String)> = [("code", "c-1"), ("state", &state), ("iss", IDP)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let result = block_on(logins.finish(&params)).unwrap();
        assert_eq!(result.tokens.access_token.secret(), "at-1");
        assert_eq!(result.tokens.atproto, None);
        assert_eq!(result.app_state.as_deref(), Some(r#"{"to":"/x"}"#));
    });
}

#[test]
fn an_oidc_client_given_a_handle_sends_and_keeps_nothing() {
    let platform = FakePlatform::at(NOW);
    let config = oidc_config();
    with_logins(&platform, &config, None, |logins| {
        let error = block_on(logins.start(request(Some("alice.test")))).unwrap_err();
        assert_eq!(error.code(), "invalid_option");
    });
    assert!(block_on(platform.store.take_transaction())
        .unwrap()
        .is_none());
}

#[test]
fn an_atproto_client_without_a_handle_sends_and_keeps_nothing() {
    let platform = FakePlatform::at(NOW);
    let (base, resolver) = (base(), resolver());
    with_logins(&platform, &base, Some(&resolver), |logins| {
        let error = block_on(logins.start(request(None))).unwrap_err();
        assert_eq!(error.code(), "invalid_option");
    });
    assert!(block_on(platform.store.take_transaction())
        .unwrap()
        .is_none());
}

/// The authorization request an atproto login to `AS` pushes: the same
/// login started without PAR on a twin platform (same randomness, same
/// first key).
fn pushed_form() -> Vec<(String, String)> {
    let twin = FakePlatform::at(NOW);
    let metadata = serde_json::from_str(&as_metadata()).unwrap();
    let mut config = account_config(&base(), metadata, false).unwrap();
    config.par = false;
    config.endpoints.par_required = false;
    let mut extra = request(None).extra_params;
    extra.push(("login_hint".into(), "alice.test".into()));
    let app_state = request(None).app_state;
    let twin_dpop = twin.dpop();
    let store = &twin.store;
    let started = start_login(&config, &twin, store, &twin_dpop, extra, app_state);
    block_on(started).unwrap().query.0
}

#[test]
fn an_atproto_login_goes_to_the_accounts_server_and_finishes_with_its_account() {
    let platform = FakePlatform::at(NOW);
    let (base, resolver) = (base(), resolver());
    let form = pushed_form();
    with_logins(&platform, &base, Some(&resolver), |logins| {
        let resolve = "xrpc/com.atproto.identity.resolveHandle?handle=alice.test";
        let did = format!(r#"{{"did":"{DID}"}}"#);
        platform.expect_get(&format!("{RESOLVER}/{resolve}"), 200, &did);
        expect_account(&platform, AS);
        expect_as_metadata(&platform);
        let par = format!("{AS}/oauth/par");
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (&**k, &**v)).collect();
        let request_uri =
            r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r1","expires_in":60}"#;
        platform.expect_post(&par, &pairs, 201, request_uri);
        platform.with_proof(&[("htm", "POST"), ("htu", &par)], None);
        let started = block_on(logins.start(request(Some(" alice.test ")))).unwrap();
        assert_eq!(
            started.authorization_endpoint,
            format!("{AS}/oauth/authorize")
        );
        assert_eq!(
            value(&started.start.query, "request_uri"),
            "urn:ietf:params:oauth:request_uri:r1"
        );

        let state = started.start.state.secret().to_owned();
        expect_as_metadata(&platform);
        let body = tokens("atproto transition:generic", Some(DID));
        expect_exchange(&platform, &body);
        expect_account(&platform, AS);
        expect_handle_names(&platform, DID);
        let result = block_on(logins.finish(&callback(&state))).unwrap();
        assert_eq!(result.tokens.atproto.as_deref(), Some(&account()));
        assert_eq!(result.tokens.dpop_jkt, Some(FakeDpopKeys::jkt(1)));
    });
    assert!(!key_is_gone(&platform));
}

#[test]
fn a_client_is_openid_connect_unless_it_says_atproto() {
    assert_eq!(Profile::parse(None), Ok(Profile::Oidc));
    assert_eq!(Profile::parse(Some("oidc")), Ok(Profile::Oidc));
    assert_eq!(Profile::parse(Some("atproto")), Ok(Profile::Atproto));
    let error = Profile::parse(Some("bluesky")).unwrap_err();
    assert_eq!(error.code(), "invalid_option");
}

#[test]
fn an_openid_connect_client_needs_its_issuer() {
    assert_eq!(Profile::Oidc.issuer(Some(IDP.into())), Ok(IDP.to_owned()));
    let error = Profile::Oidc.issuer(None).unwrap_err();
    assert_eq!(error.to_string(), "invalid option issuer: is required");
}

#[test]
fn an_atproto_client_gives_no_issuer_and_is_kept_under_the_namespace() {
    assert_eq!(
        Profile::Atproto.issuer(None),
        Ok(ATPROTO_NAMESPACE.to_owned())
    );
    let error = Profile::Atproto.issuer(Some(IDP.into())).unwrap_err();
    assert_eq!(error.code(), "invalid_option");
}

#[test]
fn the_scope_defaults_by_profile_and_an_atproto_scope_must_hold_atproto() {
    assert_eq!(Profile::Oidc.scope(None), Ok("openid".to_owned()));
    assert_eq!(
        Profile::Oidc.scope(Some("api".into())),
        Ok("api".to_owned())
    );
    let default = Profile::Atproto.scope(None);
    assert_eq!(default, Ok("atproto transition:generic".to_owned()));
    assert_eq!(
        Profile::Atproto.scope(Some("atproto".into())),
        Ok("atproto".to_owned())
    );
    let error = Profile::Atproto.scope(Some("atprotocol transition:generic".into()));
    assert_eq!(error.unwrap_err().code(), "invalid_option");
}

#[test]
fn an_atproto_client_always_uses_par_and_dpop() {
    assert!(Profile::Atproto.requires(false));
    assert!(!Profile::Oidc.requires(false));
    assert!(Profile::Oidc.requires(true));
}

#[test]
fn an_atproto_client_refuses_endpoints_par_and_dpop() {
    for name in OIDC_ONLY_OPTIONS {
        let error = Profile::Atproto
            .refuse_other_profiles_options(|given| given == *name)
            .unwrap_err();
        assert_eq!(error.code(), "invalid_option");
        assert!(error.to_string().contains(name), "{error}");
        assert_eq!(
            Profile::Oidc.refuse_other_profiles_options(|given| given == *name),
            Ok(())
        );
    }
    assert_eq!(
        Profile::Atproto.refuse_other_profiles_options(|_| false),
        Ok(())
    );
}

#[test]
fn an_openid_connect_client_refuses_the_resolution_options() {
    for name in ATPROTO_ONLY_OPTIONS {
        let error = Profile::Oidc
            .refuse_other_profiles_options(|given| given == *name)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("invalid option {name}: is for profile \"atproto\" clients")
        );
        assert_eq!(
            Profile::Atproto.refuse_other_profiles_options(|given| given == *name),
            Ok(())
        );
    }
}
