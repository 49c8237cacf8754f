//! Fault matrix row 9, native half: every `Debug` and `Display` form a
//! secret can reach — the token set, the raw token response, the pending
//! login, a validated callback, the messages between tabs, and the errors
//! that parsing secret-bearing input produces — rendered and searched for
//! the secrets. (The browser half is tests/e2e/secrets.test.mjs.)

use crate::core::fakes::FakePlatform;
use crate::core::session::{SessionChange, SessionMessage, TokenSource};
use crate::core::{
    parse_compact_jws, validate_callback, AccessToken, IdToken, Nonce, PendingTransaction,
    PkceVerifier, RawTokenResponse, RefreshToken, State, TokenSet,
};

const ACCESS: &str = "AT-secret-4c1d9e";
const REFRESH: &str = "RT-secret-77ab02";
const ID_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.SIG-secret-93f0";
const CODE: &str = "CODE-secret-5e21";
const VERIFIER: &str = "VERIFIER-secret-0c9d";
const STATE: &str = "STATE-secret-a1b2";
const NONCE: &str = "NONCE-secret-f00d";
const SECRETS: &[&str] = &[
    ACCESS,
    REFRESH,
    "SIG-secret-93f0",
    CODE,
    VERIFIER,
    STATE,
    NONCE,
];

fn assert_clean(what: &str, rendered: &str) {
    for secret in SECRETS {
        assert!(
            !rendered.contains(secret),
            "{what} shows a secret: {rendered}"
        );
    }
}

fn token_set() -> TokenSet {
    TokenSet {
        expires_at_ms: Some(1),
        refresh_token: Some(RefreshToken::new(REFRESH.into())),
        scope: Some("openid".into()),
        id_token: Some(IdToken::new(ID_TOKEN.into())),
        ..crate::core::fakes::bearer_set(ACCESS)
    }
}

fn pending() -> PendingTransaction {
    PendingTransaction {
        state: State::new(STATE.into()),
        verifier: PkceVerifier::new(VERIFIER.into()),
        nonce: Some(Nonce::new(NONCE.into())),
        redirect_uri: "https://app.example/".into(),
        app_state: None,
        created_at_ms: 0,
        issuer: "https://idp.example".into(),
        client_id: "spa".into(),
        dpop_jkt: None,
        dpop_nonce: None,
    }
}

fn callback(state: &str) -> Vec<(String, String)> {
    vec![
        ("code".into(), CODE.into()),
        ("state".into(), state.into()),
        ("iss".into(), "https://idp.example".into()),
    ]
}

#[test]
fn values_holding_secrets_never_show_them_in_debug() {
    let set = token_set();
    assert_clean("TokenSet", &format!("{set:?}"));
    assert_clean("PendingTransaction", &format!("{:?}", pending()));
    let raw = RawTokenResponse {
        access_token: Some(AccessToken::new(ACCESS.into())),
        refresh_token: Some(RefreshToken::new(REFRESH.into())),
        id_token: Some(IdToken::new(ID_TOKEN.into())),
        ..RawTokenResponse::default()
    };
    assert_clean("RawTokenResponse", &format!("{raw:?}"));
    let validated = validate_callback(
        Some(pending()),
        &callback(STATE),
        "https://idp.example",
        true,
        0,
    )
    .unwrap();
    assert_clean("ValidatedCallback", &format!("{validated:?}"));
    let (form, outcome) = crate::core::code_exchange_params(validated);
    assert_clean("CallbackOutcome", &format!("{outcome:?}"));
    assert!(
        form.iter().any(|(_, v)| v == CODE),
        "the form does carry the code"
    );
    let message = SessionMessage::Tokens {
        tokens: set.clone(),
        unsaved: false,
    };
    assert_clean("SessionMessage", &format!("{message:?}"));
    let change = SessionChange::Tokens {
        tokens: &set,
        source: TokenSource::Refresh,
    };
    assert_clean("SessionChange", &format!("{change:?}"));
}

/// The login machines carry forms and pending logins from step to step:
/// neither they nor their steps show a secret.
#[test]
fn the_login_machines_and_their_steps_never_show_secrets() {
    use crate::core::callback_machine::{Fed, FinishLogin};
    use crate::core::start_machine::{Begun, Departure, StartLogin};
    let config = || crate::core::login::ClientConfig {
        par: true,
        ..crate::core::fakes::client_config()
    };
    let mut pending = pending();
    pending.redirect_uri = "https://app.example/cb".into();
    let (mut finish, _) = FinishLogin::start(config(), None, callback(STATE));
    assert_clean("FinishLogin", &format!("{finish:?}"));
    let exchange = finish.on(Fed::Taken(Ok(Some(pending))), 0);
    let shown = format!("{exchange:?}");
    assert!(shown.contains("code_verifier"), "{shown}");
    assert_clean("Need::Exchange", &shown);
    assert_clean("FinishLogin exchanging", &format!("{finish:?}"));

    let (mut start, _) = StartLogin::start(config(), None, vec![], None, Departure::Stays);
    let random = |n| crate::core::secret::Random32([n; 32]);
    let drawn = Begun::Drawn(Ok([random(1), random(2), random(3)]));
    let shown = format!("{drawn:?}");
    assert!(
        !shown.contains("1, 1"),
        "Begun::Drawn shows the bytes: {shown}"
    );
    start.on(drawn, 0);
    let state = State::from_random_bytes(&[2; 32]);
    let verifier = PkceVerifier::from_random_bytes(&[1; 32]);
    let push = format!("{:?}", start.on(Begun::Digest(Ok([9; 32])), 0));
    assert!(push.contains("code_challenge"), "{push}");
    for secret in [state.secret(), verifier.secret()] {
        assert!(!push.contains(secret), "Step::Push shows a secret: {push}");
        assert!(
            !format!("{start:?}").contains(secret),
            "StartLogin shows a secret"
        );
    }
}

#[test]
fn errors_from_secret_bearing_input_never_quote_it() {
    let mut errors = Vec::new();
    // Callbacks: forged and repeated state, wrong issuer, expired.
    let forged = format!("{STATE}-forged");
    errors.push(
        validate_callback(
            Some(pending()),
            &callback(&forged),
            "https://idp.example",
            true,
            0,
        )
        .unwrap_err(),
    );
    let mut repeated = callback(STATE);
    repeated.push(("state".into(), STATE.into()));
    errors.push(
        validate_callback(Some(pending()), &repeated, "https://idp.example", true, 0).unwrap_err(),
    );
    errors.push(
        validate_callback(
            Some(pending()),
            &callback(STATE),
            "https://other.example",
            true,
            0,
        )
        .unwrap_err(),
    );
    errors.push(
        validate_callback(
            Some(pending()),
            &callback(STATE),
            "https://idp.example",
            true,
            u64::MAX,
        )
        .unwrap_err(),
    );
    // Token responses that carry secrets but are unusable.
    for body in [
        format!(r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}"}}"#),
        format!(r#"{{"access_token":"{ACCESS}","token_type":"DPoP"}}"#),
        format!(r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":"{REFRESH}"}}"#),
        format!(r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":-1}}"#),
    ] {
        let raw: RawTokenResponse = serde_json::from_str(&body).unwrap_or_default();
        if let Err(error) = TokenSet::from_response(200, raw, 0, None, None) {
            errors.push(error);
        }
    }
    // JWS segments built from secrets.
    let platform = FakePlatform::at(0);
    for token in [
        ID_TOKEN.to_string(),
        format!("{ACCESS}.{REFRESH}.{NONCE}"),
        format!("{ID_TOKEN}.{CODE}"),
        CODE.to_string(),
    ] {
        if let Err(error) = parse_compact_jws(&platform, &token) {
            errors.push(error);
        }
    }
    assert!(errors.len() >= 10, "only {} errors produced", errors.len());
    for error in &errors {
        assert_clean("Error (Display)", &error.to_string());
        assert_clean("Error (Debug)", &format!("{error:?}"));
    }
}
