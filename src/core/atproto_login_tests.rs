//! An atproto login's rules, one test per branch, against the fake server
//! that asserts each exact request and fails on any left unused.

use super::*;
use crate::core::fakes::start_login;
use crate::core::fakes::{block_on, FakeDpopKeys, FakePlatform};
use crate::core::jwks::JwksCache;
use crate::core::login_profile::Logins;
use crate::core::ports::DpopKeys;
use crate::core::resolution::{verify_subject, AccountCheck};
use crate::core::PkceVerifier;

pub(crate) const NOW: u64 = 1_700_000_000_000;
pub(crate) const RESOLVER: &str = "https://resolver.example";
pub(crate) const PLC: &str = "https://plc.example";
pub(crate) const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
const PDS: &str = "https://pds.example";
pub(crate) const AS: &str = "https://auth.example";
const REVOKE: &str = "https://auth.example/oauth/revoke";
pub(crate) const TOKEN: &str = "https://auth.example/oauth/token";

pub(crate) fn resolver() -> Resolver {
    Resolver {
        handle_resolver: RESOLVER.into(),
        plc_directory: PLC.into(),
        allow_insecure_loopback: false,
    }
}

/// The client as `create()` leaves it for the profile: its own settings;
/// the servers come from each account.
pub(crate) fn base() -> ClientConfig {
    ClientConfig {
        issuer: String::new(),
        client_id: "https://app.example/client-metadata.json".into(),
        redirect_uri: "https://app.example/callback".into(),
        scope: "atproto transition:generic".into(),
        endpoints: client_endpoints(None),
        par: false,
        dpop: false,
    }
}

pub(crate) fn as_metadata() -> String {
    format!(
        r#"{{"issuer":"{AS}","authorization_endpoint":"{AS}/oauth/authorize","token_endpoint":"{TOKEN}",
        "revocation_endpoint":"{REVOKE}",
        "pushed_authorization_request_endpoint":"{AS}/oauth/par","require_pushed_authorization_requests":true,
        "dpop_signing_alg_values_supported":["ES256"],"authorization_response_iss_parameter_supported":true}}"#
    )
}

fn document(pds: &str) -> String {
    format!(
        r##"{{"id":"{DID}","alsoKnownAs":["at://alice.test"],"service":[{{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"{pds}"}}]}}"##
    )
}

pub(crate) fn expect_as_metadata(platform: &FakePlatform) {
    let url = format!("{AS}/.well-known/oauth-authorization-server");
    platform.expect_get(&url, 200, &as_metadata());
}

/// The DID document, then the PDS's metadata naming `issuer`.
pub(crate) fn expect_account(platform: &FakePlatform, issuer: &str) {
    platform.expect_get(&format!("{PLC}/{DID}"), 200, &document(PDS));
    platform.expect_get(
        &format!("{PDS}/.well-known/oauth-protected-resource"),
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":["{issuer}"]}}"#),
    );
}

/// The handle resolver's answer for `alice.test`: `did`.
pub(crate) fn expect_handle_names(platform: &FakePlatform, did: &str) {
    platform.expect_get(
        &format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test"),
        200,
        &format!(r#"{{"did":"{did}"}}"#),
    );
}

/// A login to `AS` started on `platform` (its key is `jkt(1)`), without
/// the push: the callback's checks do not depend on it. Returns its state.
fn started(platform: &FakePlatform) -> String {
    let metadata = serde_json::from_str(&as_metadata()).unwrap();
    let mut config = account_config(&base(), metadata, false).unwrap();
    config.par = false;
    config.endpoints.par_required = false;
    let started = block_on(start_login(
        &config,
        platform,
        &platform.store,
        &platform.dpop(),
        Vec::new(),
        None,
    ))
    .unwrap();
    started.state.secret().to_owned()
}

pub(crate) fn callback(state: &str) -> Vec<(String, String)> {
    [("code", "c-1"), ("state", state), ("iss", AS)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The code exchange, signed with the login's key, answered with `body`.
pub(crate) fn expect_exchange(platform: &FakePlatform, body: &str) {
    let verifier = PkceVerifier::from_random_bytes(&[1; 32]);
    platform.expect_post(
        TOKEN,
        &[
            ("grant_type", "authorization_code"),
            ("code", "c-1"),
            ("redirect_uri", "https://app.example/callback"),
            ("client_id", "https://app.example/client-metadata.json"),
            ("code_verifier", verifier.secret()),
        ],
        200,
        body,
    );
    platform.with_proof(&[("htm", "POST"), ("htu", TOKEN)], None);
}

/// Both tokens revoked at the account's server, each signed.
fn expect_revocations(platform: &FakePlatform) {
    for (token, hint) in [("rt-1", "refresh_token"), ("at-1", "access_token")] {
        platform.expect_post(
            REVOKE,
            &[
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", "https://app.example/client-metadata.json"),
            ],
            200,
            "",
        );
        platform.with_proof(&[("htm", "POST"), ("htu", REVOKE)], None);
    }
}

pub(crate) fn tokens(scope: &str, sub: Option<&str>) -> String {
    let sub = sub.map_or(String::new(), |s| format!(r#","sub":"{s}""#));
    format!(
        r#"{{"access_token":"at-1","token_type":"DPoP","expires_in":300,"refresh_token":"rt-1","scope":"{scope}"{sub}}}"#
    )
}

fn finish(platform: &FakePlatform, params: &[(String, String)]) -> Result<LoginResult, Error> {
    let dpop = platform.dpop();
    let jwks = JwksCache::new();
    let resolver = resolver();
    let base = base();
    let login = Logins {
        platform,
        resolving: platform,
        store: &platform.store,
        dpop: &dpop,
        jwks: &jwks,
        config: &base,
        atproto: Some(&resolver),
        revocation_timeout_ms: 1_000,
    };
    block_on(login.finish(params))
}

pub(crate) fn key_is_gone(platform: &FakePlatform) -> bool {
    block_on(platform.dpop_keys.load(&FakeDpopKeys::jkt(1))).is_err()
}

#[test]
fn an_oidc_client_signs_in_no_account() {
    assert_eq!(account_to_sign_in(None, None).unwrap(), None);
}

#[test]
fn a_handle_is_refused_by_an_oidc_client() {
    let error = account_to_sign_in(None, Some("alice.test")).unwrap_err();
    assert_eq!(error.code(), "invalid_option");
}

#[test]
fn an_atproto_client_requires_a_handle() {
    let error = account_to_sign_in(Some(&resolver()), None).unwrap_err();
    assert_eq!(error.code(), "invalid_option");
}

#[test]
fn an_atproto_client_signs_in_the_handle_as_resolution_reads_it() {
    // It is also the login_hint, which the reference server refuses unless
    // it is a handle or a DID as written in the specifications.
    let resolver = resolver();
    for (typed, read) in [
        (" alice.test ", "alice.test"),
        ("@Alice.Test", "alice.test"),
        (
            "did:plc:abcdefghijklmnopqrstuvwx",
            "did:plc:abcdefghijklmnopqrstuvwx",
        ),
        // Not a handle: kept as typed, for resolution to refuse.
        (" not a handle ", "not a handle"),
    ] {
        let (_, handle) = account_to_sign_in(Some(&resolver), Some(typed))
            .unwrap()
            .unwrap();
        assert_eq!(handle, read, "{typed:?}");
    }
}

#[test]
fn a_login_goes_to_the_accounts_server_with_par_and_dpop() {
    let platform = FakePlatform::at(NOW);
    platform.expect_get(
        &format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test"),
        200,
        &format!(r#"{{"did":"{DID}"}}"#),
    );
    expect_account(&platform, AS);
    expect_as_metadata(&platform);
    let (_, metadata) = block_on(crate::core::resolution::resolve_login(
        &platform,
        &resolver(),
        "alice.test",
    ))
    .unwrap();
    let config = account_config(&base(), metadata, false).unwrap();
    assert_eq!(config.issuer, AS);
    assert_eq!(config.endpoints.token, TOKEN);
    assert_eq!(config.endpoints.revocation.as_deref(), Some(REVOKE));
    assert!(config.par && config.dpop);
    assert_eq!(config.client_id, base().client_id);
}

#[test]
fn a_replayed_callback_fetches_nothing() {
    let platform = FakePlatform::at(NOW);
    let error = finish(&platform, &callback("s")).unwrap_err();
    assert_eq!(error.code(), "no_transaction");
}

#[test]
fn a_server_that_no_longer_qualifies_ends_the_login_and_its_key() {
    let platform = FakePlatform::at(NOW);
    let state = started(&platform);
    let url = format!("{AS}/.well-known/oauth-authorization-server");
    platform.expect_get(&url, 503, "busy");
    let error = finish(&platform, &callback(&state)).unwrap_err();
    assert_eq!(error.code(), "discovery_failed");
    assert!(key_is_gone(&platform));
    let replay = finish(&platform, &callback(&state)).unwrap_err();
    assert_eq!(replay.code(), "no_transaction", "the login was consumed");
}

#[test]
fn a_grant_without_atproto_is_revoked_and_its_key_deleted() {
    let platform = FakePlatform::at(NOW);
    let state = started(&platform);
    expect_as_metadata(&platform);
    expect_exchange(&platform, &tokens("transition:generic", Some(DID)));
    expect_revocations(&platform);
    let error = finish(&platform, &callback(&state)).unwrap_err();
    assert_eq!(error.code(), "malformed_token_response");
    assert!(key_is_gone(&platform));
}

#[test]
fn tokens_that_name_no_account_are_revoked() {
    let platform = FakePlatform::at(NOW);
    let state = started(&platform);
    expect_as_metadata(&platform);
    expect_exchange(&platform, &tokens("atproto", None));
    expect_revocations(&platform);
    let error = finish(&platform, &callback(&state)).unwrap_err();
    assert_eq!(error.code(), "did_resolution_failed");
    assert!(key_is_gone(&platform));
}

#[test]
fn an_account_of_another_server_is_revoked() {
    let platform = FakePlatform::at(NOW);
    let state = started(&platform);
    expect_as_metadata(&platform);
    expect_exchange(&platform, &tokens("atproto", Some(DID)));
    expect_account(&platform, "https://elsewhere.example");
    expect_revocations(&platform);
    let error = finish(&platform, &callback(&state)).unwrap_err();
    assert_eq!(error.code(), "issuer_mismatch");
    assert!(key_is_gone(&platform));
}

#[test]
fn a_verified_account_is_kept_with_its_tokens_and_key() {
    let platform = FakePlatform::at(NOW);
    let state = started(&platform);
    expect_as_metadata(&platform);
    expect_exchange(&platform, &tokens("atproto transition:generic", Some(DID)));
    expect_account(&platform, AS);
    expect_handle_names(&platform, DID);
    let result = finish(&platform, &callback(&state)).unwrap();
    let account = result.tokens.atproto.expect("an account");
    assert_eq!(*account, self::account());
    assert_eq!(result.tokens.dpop_jkt, Some(FakeDpopKeys::jkt(1)));
    assert!(!key_is_gone(&platform));
}

#[test]
fn a_handle_the_account_claims_but_that_names_another_did_is_not_kept() {
    // Any DID document can claim `at://bsky.app`: shown as the account's
    // handle, it would let one account pass for another.
    let platform = FakePlatform::at(NOW);
    let state = started(&platform);
    expect_as_metadata(&platform);
    expect_exchange(&platform, &tokens("atproto transition:generic", Some(DID)));
    expect_account(&platform, AS);
    expect_handle_names(&platform, "did:plc:someoneelse234567abcdefg");
    let result = finish(&platform, &callback(&state)).unwrap();
    let account = result.tokens.atproto.expect("the login stands");
    assert_eq!(account.did, DID);
    assert_eq!(account.handle, None);
}

pub(crate) fn account() -> Account {
    Account {
        did: DID.into(),
        handle: Some("alice.test".into()),
        pds: PDS.into(),
        issuer: AS.into(),
        token_endpoint: TOKEN.into(),
        revocation_endpoint: Some(REVOKE.into()),
    }
}

#[test]
fn before_login_the_client_has_no_server() {
    let endpoints = client_endpoints(None);
    assert_eq!((endpoints.token.as_str(), endpoints.revocation), ("", None));
    assert!(endpoints.par_required && endpoints.iss_parameter_supported);
}

#[test]
fn after_login_the_accounts_server_is_the_clients() {
    let endpoints = client_endpoints(Some(&account()));
    assert_eq!(endpoints.token, TOKEN);
    assert_eq!(endpoints.revocation.as_deref(), Some(REVOKE));
}

#[test]
fn only_the_accounts_pds_origin_is_its_own() {
    assert!(on_pds_of(
        &account(),
        "https://pds.example/xrpc/app.bsky.actor.getProfile"
    ));
    assert!(!on_pds_of(&account(), "https://pds.example.evil/xrpc"));
    assert!(!on_pds_of(&account(), "http://pds.example/xrpc"));
    assert!(!on_pds_of(&account(), "not a url"));
}

// Where a session refreshes, and that the account is checked first, is the
// refresh machine's (`refresh_machine_tests.rs`); the check itself:

#[test]
fn an_account_still_at_its_server_passes_its_check_before_a_refresh() {
    let platform = FakePlatform::at(NOW);
    expect_account(&platform, AS);
    let (account, resolver) = (account(), resolver());
    let checked = verify_subject(
        &platform,
        &resolver,
        &account.did,
        &account.issuer,
        AccountCheck::ServerOnly,
    );
    assert!(block_on(checked).is_ok());
}

#[test]
fn an_account_that_moved_to_another_server_fails_its_check_before_a_refresh() {
    let platform = FakePlatform::at(NOW);
    expect_account(&platform, "https://elsewhere.example");
    let (account, resolver) = (account(), resolver());
    let checked = verify_subject(
        &platform,
        &resolver,
        &account.did,
        &account.issuer,
        AccountCheck::ServerOnly,
    );
    assert_eq!(block_on(checked).unwrap_err().code(), "issuer_mismatch");
}
