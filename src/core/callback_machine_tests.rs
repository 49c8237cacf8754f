//! `FinishLogin`'s transitions, fed by hand: one test per branch. The same
//! machine driven against the fake server is tested through
//! `Logins::finish` in `login.rs` and `atproto_login_tests.rs`.

use super::*;
use crate::core::atproto_login::tests::{as_metadata, base, AS, DID, TOKEN};
use crate::core::fakes::{client_config, IDP};
use crate::core::secret::{PkceVerifier, State};

const NOW: u64 = 1_700_000_000_000;

fn oidc() -> ClientConfig {
    client_config()
}

/// The pending login of `issuer`'s client `client_id`: state `s-1`, the
/// nonce `n-1` when `openid`, bound to `jkt` when given.
fn pending(issuer: &str, client_id: &str, openid: bool, jkt: Option<&str>) -> PendingTransaction {
    PendingTransaction {
        state: State::new("s-1".into()),
        verifier: PkceVerifier::new("v-1".into()),
        nonce: openid.then(|| Nonce::new("n-1".into())),
        redirect_uri: "https://app.example/cb".into(),
        app_state: Some(r#"{"to":"/x"}"#.into()),
        created_at_ms: NOW,
        issuer: issuer.into(),
        client_id: client_id.into(),
        dpop_jkt: jkt.map(Into::into),
        dpop_nonce: None,
    }
}

fn callback(state: &str, iss: &str) -> Vec<(String, String)> {
    [("code", "c-1"), ("state", state), ("iss", iss)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn reply(status: u16, json: &str) -> Fed {
    let body: RawTokenResponse = serde_json::from_str(json).unwrap();
    Fed::Exchanged(Ok(HttpReply {
        status,
        oauth_error: body.error.clone(),
        body: Ok(body),
        retry_after_s: None,
        dpop_nonce: None,
    }))
}

const BEARER: &str = r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300,"refresh_token":"rt-1","id_token":"h.p.s"}"#;

/// An OpenID Connect login's machine, past the take of `transaction`.
fn oidc_taken(transaction: PendingTransaction, state: &str) -> (FinishLogin, Step) {
    let (mut machine, first) = FinishLogin::start(oidc(), None, callback(state, IDP));
    assert!(
        matches!(first, Step::Do(Need::TakeTransaction)),
        "{first:?}"
    );
    let need = machine.on(Fed::Taken(Ok(Some(transaction))), NOW);
    (machine, need)
}

fn failed_with(need: Step) -> String {
    match need {
        Step::Done(Err(error)) => error.code().to_owned(),
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn a_replayed_callback_finds_no_login() {
    let (mut machine, _) = FinishLogin::start(oidc(), None, callback("s-1", IDP));
    let need = machine.on(Fed::Taken(Ok(None)), NOW);
    assert_eq!(failed_with(need), "no_transaction");
}

#[test]
fn a_store_that_cannot_be_read_fails_the_login() {
    let (mut machine, _) = FinishLogin::start(oidc(), None, callback("s-1", IDP));
    let error = Error::Storage {
        reason: "refused".into(),
    };
    let need = machine.on(Fed::Taken(Err(error)), NOW);
    assert_eq!(failed_with(need), "storage_error");
}

#[test]
fn a_valid_callback_exchanges_its_code_with_the_exact_form() {
    let (_, need) = oidc_taken(pending(IDP, "spa", true, None), "s-1");
    let Step::Do(Need::Exchange {
        endpoint,
        form,
        key,
    }) = need
    else {
        panic!("{need:?}");
    };
    assert_eq!(endpoint, format!("{IDP}/token"));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        form,
        [
            ("grant_type", "authorization_code"),
            ("code", "c-1"),
            ("redirect_uri", "https://app.example/cb"),
            ("client_id", "spa"),
            ("code_verifier", "v-1"),
        ]
    );
    assert_eq!(key, None);
}

#[test]
fn the_pushed_requests_nonce_is_offered_before_a_bound_exchange() {
    let mut transaction = pending(IDP, "spa", true, Some("jkt-1"));
    transaction.dpop_nonce = Some("nonce-1".into());
    let (mut machine, need) = oidc_taken(transaction, "s-1");
    let Step::Do(Need::OfferNonce { endpoint, nonce }) = need else {
        panic!("{need:?}");
    };
    assert_eq!(
        (endpoint.as_str(), nonce.as_str()),
        (&*format!("{IDP}/token"), "nonce-1")
    );
    let need = machine.on(Fed::Offered, NOW);
    assert!(
        matches!(need, Step::Do(Need::Exchange { key: Some(ref k), .. }) if k == "jkt-1"),
        "{need:?}"
    );
}

#[test]
fn a_callback_that_fails_validation_deletes_the_logins_key() {
    let (mut machine, need) = oidc_taken(pending(IDP, "spa", true, Some("jkt-1")), "forged");
    assert!(
        matches!(need, Step::Do(Need::DeleteKey(ref k)) if k == "jkt-1"),
        "{need:?}"
    );
    assert_eq!(failed_with(machine.on(Fed::Done, NOW)), "state_mismatch");
}

#[test]
fn a_callback_that_fails_validation_offers_no_nonce() {
    let mut transaction = pending(IDP, "spa", true, None);
    transaction.dpop_nonce = Some("nonce-1".into());
    let (_, need) = oidc_taken(transaction, "forged");
    assert_eq!(failed_with(need), "state_mismatch");
}

#[test]
fn a_callback_that_fails_validation_without_a_key_fails_at_once() {
    let (_, need) = oidc_taken(pending(IDP, "spa", true, None), "forged");
    assert_eq!(failed_with(need), "state_mismatch");
}

#[test]
fn an_exchange_that_fails_or_is_refused_deletes_the_key() {
    for (fed, code) in [
        (
            Fed::Exchanged(Err(Error::Network {
                reason: "reset".into(),
            })),
            "network_error",
        ),
        (reply(400, r#"{"error":"invalid_grant"}"#), "invalid_grant"),
        (
            reply(200, r#"{"token_type":"DPoP"}"#),
            "malformed_token_response",
        ),
    ] {
        let (mut machine, _) = oidc_taken(pending(IDP, "spa", true, Some("jkt-1")), "s-1");
        let need = machine.on(fed, NOW);
        assert!(
            matches!(need, Step::Do(Need::DeleteKey(_))),
            "{code}: {need:?}"
        );
        assert_eq!(failed_with(machine.on(Fed::Done, NOW)), code);
    }
}

#[test]
fn an_openid_login_verifies_its_id_token_with_the_logins_nonce() {
    let (mut machine, _) = oidc_taken(pending(IDP, "spa", true, None), "s-1");
    let need = machine.on(reply(200, BEARER), NOW + 5);
    let Step::Do(Need::VerifyIdToken { tokens, nonce }) = need else {
        panic!("{need:?}");
    };
    assert_eq!(tokens.id_token.unwrap().secret(), "h.p.s");
    assert_eq!(nonce.unwrap().secret(), "n-1");
    assert_eq!(tokens.expires_at_ms, Some(NOW + 5 + 300_000));
    let done = machine.on(Fed::IdToken(Ok(Some(r#"{"sub":"alice"}"#.into()))), NOW);
    let Step::Done(Ok(result)) = done else {
        panic!("{done:?}");
    };
    assert_eq!(result.claims_json.as_deref(), Some(r#"{"sub":"alice"}"#));
    assert_eq!(result.app_state.as_deref(), Some(r#"{"to":"/x"}"#));
    assert!(result.tokens.id_token.is_some() && result.tokens.atproto.is_none());
}

#[test]
fn a_plain_oauth_login_keeps_no_id_token() {
    let (mut machine, _) = oidc_taken(pending(IDP, "spa", false, None), "s-1");
    let need = machine.on(reply(200, BEARER), NOW);
    let Step::Do(Need::VerifyIdToken { tokens, nonce }) = need else {
        panic!("{need:?}");
    };
    assert_eq!((tokens.id_token, nonce), (None, None));
}

#[test]
fn issued_tokens_whose_id_token_fails_its_check_are_retired() {
    let mut config = oidc();
    config.endpoints.revocation = Some("https://idp.example/revoke".into());
    let (mut machine, _) = FinishLogin::start(config, None, callback("s-1", IDP));
    let transaction = pending(IDP, "spa", true, Some("jkt-1"));
    machine.on(Fed::Taken(Ok(Some(transaction))), NOW);
    let bound = BEARER.replace("Bearer", "DPoP");
    machine.on(reply(200, &bound), NOW);
    let need = machine.on(Fed::IdToken(Err(Error::NonceMismatch)), NOW);
    let Step::Do(Need::Retire { tokens, plan }) = need else {
        panic!("{need:?}");
    };
    assert_eq!(tokens.access_token.secret(), "at-1");
    assert_eq!(plan.delete_key.as_deref(), Some("jkt-1"));
    assert_eq!(
        plan.revoke_at.as_deref(),
        Some("https://idp.example/revoke")
    );
    assert_eq!(failed_with(machine.on(Fed::Done, NOW)), "nonce_mismatch");
}

#[test]
fn issued_tokens_in_an_answer_refused_for_its_shape_are_retired() {
    let no_access_token = r#"{"token_type":"DPoP","expires_in":300,"refresh_token":"rt-1"}"#;
    for (json, access_token, code) in [
        (BEARER, "at-1", "unsupported_token_type"),
        (no_access_token, "", "malformed_token_response"),
    ] {
        let mut config = oidc();
        config.endpoints.revocation = Some("https://idp.example/revoke".into());
        let (mut machine, _) = FinishLogin::start(config, None, callback("s-1", IDP));
        let transaction = pending(IDP, "spa", true, Some("jkt-1"));
        machine.on(Fed::Taken(Ok(Some(transaction))), NOW);
        let need = machine.on(reply(200, json), NOW);
        let Step::Do(Need::Retire { tokens, plan }) = need else {
            panic!("{code}: {need:?}");
        };
        assert_eq!(tokens.access_token.secret(), access_token, "{code}");
        assert_eq!(tokens.refresh_token.unwrap().secret(), "rt-1");
        assert_eq!(
            plan,
            Retirement {
                revoke_at: Some("https://idp.example/revoke".into()),
                delete_key: Some("jkt-1".into()),
            }
        );
        assert_eq!(failed_with(machine.on(Fed::Done, NOW)), code);
    }
}

#[test]
fn a_refused_answer_without_tokens_only_deletes_the_key() {
    let (mut machine, _) = oidc_taken(pending(IDP, "spa", true, Some("jkt-1")), "s-1");
    let need = machine.on(
        reply(201, r#"{"token_type":"DPoP","access_token":""}"#),
        NOW,
    );
    assert!(matches!(need, Step::Do(Need::DeleteKey(_))), "{need:?}");
    assert_eq!(
        failed_with(machine.on(Fed::Done, NOW)),
        "malformed_token_response"
    );
}

#[test]
fn an_input_the_stage_does_not_expect_ends_the_login() {
    let (mut machine, _) = FinishLogin::start(oidc(), None, callback("s-1", IDP));
    let need = machine.on(Fed::Offered, NOW);
    assert!(matches!(need, Step::Done(Err(_))), "{need:?}");
    let (mut machine, _) = oidc_taken(pending(IDP, "spa", true, Some("jkt-1")), "s-1");
    machine.on(reply(200, &BEARER.replace("Bearer", "DPoP")), NOW);
    let need = machine.on(Fed::Offered, NOW);
    assert_eq!(failed_with(need), "no_transaction", "nothing handed back");
}

#[test]
fn a_clean_up_ends_with_the_error_that_began_it() {
    let (mut machine, _) = oidc_taken(pending(IDP, "spa", true, Some("jkt-1")), "forged");
    assert_eq!(failed_with(machine.on(Fed::Offered, NOW)), "state_mismatch");
}

#[test]
fn a_login_older_than_its_bound_is_refused_when_the_callback_is_read() {
    let (mut machine, _) = FinishLogin::start(oidc(), None, callback("s-1", IDP));
    let late = NOW + crate::core::TRANSACTION_MAX_AGE_MS + 1;
    let need = machine.on(Fed::Taken(Ok(Some(pending(IDP, "spa", true, None)))), late);
    assert_eq!(failed_with(need), "transaction_expired");
}

const CLIENT: &str = "https://app.example/client-metadata.json";

/// An atproto login's machine, past the take of its pending login to `AS`.
fn atproto_taken() -> (FinishLogin, Step) {
    let (mut machine, _) = FinishLogin::start(base(), Some(false), callback("s-1", AS));
    let transaction = pending(AS, CLIENT, false, Some("jkt-1"));
    let need = machine.on(Fed::Taken(Ok(Some(transaction))), NOW);
    (machine, need)
}

fn metadata() -> Fed {
    Fed::Metadata(Ok(serde_json::from_str(&as_metadata()).unwrap()))
}

const GRANT: &str = r#"{"access_token":"at-1","token_type":"DPoP","expires_in":300,"refresh_token":"rt-1","scope":"atproto transition:generic","sub":"did:plc:ewvi7nxzyoun6zhxrhs64oiz"}"#;

#[test]
fn an_atproto_login_is_finished_with_the_server_it_went_to() {
    let (mut machine, need) = atproto_taken();
    assert!(
        matches!(need, Step::Do(Need::ServerMetadata { ref issuer }) if issuer == AS),
        "{need:?}"
    );
    let need = machine.on(metadata(), NOW);
    assert_eq!(machine.config().issuer, AS);
    assert!(
        matches!(need, Step::Do(Need::Exchange { ref endpoint, .. }) if endpoint == TOKEN),
        "{need:?}"
    );
}

#[test]
fn a_server_that_no_longer_qualifies_ends_the_login_and_its_key() {
    let (mut machine, _) = atproto_taken();
    let error = Error::PdsMetadataInvalid {
        reason: "gone".into(),
    };
    let need = machine.on(Fed::Metadata(Err(error)), NOW);
    assert!(matches!(need, Step::Do(Need::DeleteKey(_))), "{need:?}");
    assert_eq!(
        failed_with(machine.on(Fed::Done, NOW)),
        "pds_metadata_invalid"
    );
}

#[test]
fn an_atproto_callback_is_validated_before_the_server_is_asked_anything() {
    // The user declined: that is the error, even if the server could not
    // be reached now; the key is deleted and no request is made.
    let declined = vec![
        ("error".to_owned(), "access_denied".to_owned()),
        ("state".to_owned(), "s-1".to_owned()),
        ("iss".to_owned(), AS.to_owned()),
    ];
    let forged = callback("forged", AS);
    let elsewhere = callback("s-1", "https://elsewhere.example");
    for (params, code) in [
        (declined, "access_denied"),
        (forged, "state_mismatch"),
        (elsewhere, "iss_mismatch"),
    ] {
        let (mut machine, _) = FinishLogin::start(base(), Some(false), params);
        let transaction = pending(AS, CLIENT, false, Some("jkt-1"));
        let need = machine.on(Fed::Taken(Ok(Some(transaction))), NOW);
        assert!(
            matches!(need, Step::Do(Need::DeleteKey(ref k)) if k == "jkt-1"),
            "{code}: {need:?}"
        );
        assert_eq!(failed_with(machine.on(Fed::Done, NOW)), code);
    }
}

#[test]
fn an_atproto_login_refuses_metadata_of_another_server() {
    let (mut machine, _) = atproto_taken();
    let mut other: ProviderMetadata = serde_json::from_str(&as_metadata()).unwrap();
    other.issuer = "https://elsewhere.example".into();
    let need = machine.on(Fed::Metadata(Ok(other)), NOW);
    assert!(matches!(need, Step::Do(Need::DeleteKey(_))), "{need:?}");
    assert_eq!(failed_with(machine.on(Fed::Done, NOW)), "iss_mismatch");
}

#[test]
fn an_atproto_logins_pushed_nonce_is_offered_at_its_servers_token_endpoint() {
    let (mut machine, _) = FinishLogin::start(base(), Some(false), callback("s-1", AS));
    let mut transaction = pending(AS, CLIENT, false, Some("jkt-1"));
    transaction.dpop_nonce = Some("nonce-1".into());
    machine.on(Fed::Taken(Ok(Some(transaction))), NOW);
    let need = machine.on(metadata(), NOW);
    assert!(
        matches!(need, Step::Do(Need::OfferNonce { ref endpoint, ref nonce })
            if endpoint == TOKEN && nonce == "nonce-1"),
        "{need:?}"
    );
    let need = machine.on(Fed::Offered, NOW);
    assert!(
        matches!(need, Step::Do(Need::Exchange { ref endpoint, .. }) if endpoint == TOKEN),
        "{need:?}"
    );
}

#[test]
fn an_atproto_callback_without_iss_is_refused_whatever_the_client_config_says() {
    let params = vec![
        ("code".to_owned(), "c-1".to_owned()),
        ("state".to_owned(), "s-1".to_owned()),
    ];
    let mut config = base();
    config.endpoints.iss_parameter_supported = false;
    let (mut machine, _) = FinishLogin::start(config, Some(false), params);
    let need = machine.on(Fed::Taken(Ok(Some(pending(AS, CLIENT, false, None)))), NOW);
    assert_eq!(failed_with(need), "iss_missing");
}

/// An atproto login answered with `grant` and past its (empty) ID-token
/// check.
fn atproto_answered(grant: &str) -> (FinishLogin, Step) {
    let (mut machine, _) = atproto_taken();
    machine.on(metadata(), NOW);
    machine.on(reply(200, grant), NOW);
    let need = machine.on(Fed::IdToken(Ok(None)), NOW);
    (machine, need)
}

#[test]
fn an_atproto_grant_has_its_account_checked_and_kept() {
    let (mut machine, need) = atproto_answered(GRANT);
    let Step::Do(Need::VerifySubject { sub, issuer }) = need else {
        panic!("{need:?}");
    };
    assert_eq!((sub.as_str(), issuer.as_str()), (DID, AS));
    let identity = Identity {
        did: DID.into(),
        handle: Some("alice.test".into()),
        pds: "https://pds.example".into(),
    };
    let done = machine.on(Fed::Subject(Ok(identity)), NOW);
    let Step::Done(Ok(result)) = done else {
        panic!("{done:?}");
    };
    let account = result.tokens.atproto.unwrap();
    assert_eq!(
        (account.issuer.as_str(), account.token_endpoint.as_str()),
        (AS, TOKEN)
    );
}

#[test]
fn issued_tokens_refused_by_the_account_check_are_retired() {
    let without_atproto = GRANT.replace("atproto transition:generic", "transition:generic");
    let (mut machine, need) = atproto_answered(&without_atproto);
    let Step::Do(Need::Retire { tokens, plan }) = need else {
        panic!("{need:?}");
    };
    assert_eq!(tokens.access_token.secret(), "at-1");
    assert_eq!(
        plan.revoke_at.as_deref(),
        Some("https://auth.example/oauth/revoke")
    );
    assert_eq!(plan.delete_key.as_deref(), Some("jkt-1"));
    assert_eq!(
        failed_with(machine.on(Fed::Done, NOW)),
        "malformed_token_response"
    );

    let (mut machine, _) = atproto_answered(GRANT);
    let need = machine.on(Fed::Subject(Err(Error::IssuerMismatch)), NOW);
    assert!(matches!(need, Step::Do(Need::Retire { .. })), "{need:?}");
    assert_eq!(failed_with(machine.on(Fed::Done, NOW)), "issuer_mismatch");
}
