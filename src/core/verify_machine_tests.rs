//! [`VerifyIdToken`] fed by hand, one transition at a time: which key is
//! looked up, fetched and kept, when the platform is asked, and the first
//! failure that ends it.

use super::tests::{claims_json, ec, jws, rs256, rsa, CLIENT, ISSUER, NOW, URI};
use super::*;
use crate::core::fakes::FakePlatform;
use crate::core::id_token::CLOCK_SKEW_MS;
use crate::core::jose::Jwks;
use crate::core::secret::Nonce;

fn nonce() -> Nonce {
    Nonce::new("n-1".into())
}

fn expect(nonce: &Nonce) -> Expectations<'_> {
    Expectations {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: Some(nonce),
        now_ms: NOW,
        skew_ms: CLOCK_SKEW_MS,
        previous_sub: None,
    }
}

fn keys(keys: Vec<Jwk>) -> Jwks {
    Jwks { keys }
}

fn done(step: Step) -> Result<VerifiedIdToken, Error> {
    match step {
        Step::Done(outcome) => outcome,
        other => panic!("expected the end, got {other:?}"),
    }
}

fn asks_signature_check(step: &Step, kid: &str) {
    match step {
        Step::Do(Need::VerifySignature { alg, key }) => {
            assert_eq!(*alg, JwsAlgorithm::Rs256);
            assert_eq!(key.kid.as_deref(), Some(kid));
        }
        other => panic!("expected the signature check with {kid}, got {other:?}"),
    }
}

#[test]
fn the_cached_key_is_asked_for_first() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (_, step) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    match step {
        Step::Do(Need::CachedKey { alg, kid }) => {
            assert_eq!(alg, JwsAlgorithm::Rs256);
            assert_eq!(kid.as_deref(), Some("k1"));
        }
        other => panic!("expected the cache lookup, got {other:?}"),
    }
}

#[test]
fn a_cached_key_goes_to_the_signature_check_then_the_claims() {
    let json = FakePlatform::default();
    let (token, input) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    let step = machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    asks_signature_check(&step, "k1");
    let (signed, signature) = machine.signed();
    assert_eq!(signed, input.as_bytes());
    assert_eq!(signature.len(), 256);
    let verified = done(machine.on(Fed::Verified(Ok(true)), &json)).expect("verified");
    assert_eq!(verified.claims().sub, "alice");
    assert_eq!(verified.claims_json(), claims_json(ISSUER));
}

#[test]
fn a_key_missing_from_the_cache_is_fetched_once_and_the_set_kept() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k2", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    let step = machine.on(Fed::Cached(None), &json);
    assert!(
        matches!(&step, Step::Do(Need::FetchKeys { uri }) if uri == URI),
        "{step:?}"
    );
    let fetched = keys(vec![rsa("k1"), rsa("k2")]);
    let step = machine.on(Fed::Fetched(Ok(fetched)), &json);
    match &step {
        Step::Do(Need::KeepKeys(kept)) => assert_eq!(kept.keys.len(), 2),
        other => panic!("expected the set kept, got {other:?}"),
    }
    asks_signature_check(&machine.on(Fed::Kept, &json), "k2");
}

#[test]
fn a_key_missing_from_the_fetched_set_is_not_found_without_a_second_fetch() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k9", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(None), &json);
    let step = machine.on(Fed::Fetched(Ok(keys(vec![rsa("k1")]))), &json);
    assert!(matches!(step, Step::Do(Need::KeepKeys(_))), "{step:?}");
    let outcome = done(machine.on(Fed::Kept, &json));
    assert_eq!(outcome.unwrap_err(), Error::IdTokenKeyNotFound);
}

#[test]
fn a_failed_fetch_ends_it_and_keeps_nothing() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k2", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(None), &json);
    let down = Error::JwksUnavailable {
        reason: "HTTP 503".into(),
    };
    let outcome = done(machine.on(Fed::Fetched(Err(down.clone())), &json));
    assert_eq!(outcome.unwrap_err(), down);
}

#[test]
fn without_a_jwks_uri_a_missing_key_is_unavailable() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, None, &expect);
    let outcome = done(machine.on(Fed::Cached(None), &json));
    assert_eq!(outcome.unwrap_err().code(), "jwks_unavailable");
}

#[test]
fn a_signature_that_does_not_verify_is_refused_before_the_claims() {
    let json = FakePlatform::default();
    // Claims that would fail their own checks: the signature's failure wins.
    let (token, _) = rs256("k1", &claims_json("https://evil.example"));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(None), &json);
    machine.on(Fed::Fetched(Ok(keys(vec![rsa("k1")]))), &json);
    machine.on(Fed::Kept, &json);
    let outcome = done(machine.on(Fed::Verified(Ok(false)), &json));
    assert_eq!(outcome.unwrap_err(), Error::IdTokenInvalidSignature);
}

#[test]
fn a_cached_key_that_refuses_the_signature_sends_for_the_current_set() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    match machine.on(Fed::Verified(Ok(false)), &json) {
        Step::Do(Need::FetchKeys { uri }) => assert_eq!(uri, URI),
        other => panic!("expected a fetch of the key set, got {other:?}"),
    }
    machine.on(Fed::Fetched(Ok(keys(vec![rsa("k1")]))), &json);
    asks_signature_check(&machine.on(Fed::Kept, &json), "k1");
    let outcome = done(machine.on(Fed::Verified(Ok(false)), &json));
    assert_eq!(outcome.unwrap_err(), Error::IdTokenInvalidSignature);
}

#[test]
fn a_cached_key_that_refuses_the_signature_without_a_jwks_uri_is_invalid() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, None, &expect);
    machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    let outcome = done(machine.on(Fed::Verified(Ok(false)), &json));
    assert_eq!(outcome.unwrap_err(), Error::IdTokenInvalidSignature);
}

#[test]
fn a_platform_error_while_verifying_is_the_outcome() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    let unusable = Error::JwksUnavailable {
        reason: "the key cannot be imported".into(),
    };
    let outcome = done(machine.on(Fed::Verified(Err(unusable.clone())), &json));
    assert_eq!(outcome.unwrap_err(), unusable);
}

#[test]
fn an_es256_signature_of_the_wrong_length_never_reaches_the_platform() {
    let json = FakePlatform::default();
    let (token, _) = jws(
        r#"{"alg":"ES256","kid":"e1"}"#,
        &claims_json(ISSUER),
        &[1; 70],
    );
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    let outcome = done(machine.on(Fed::Cached(Some(ec("e1"))), &json));
    assert_eq!(outcome.unwrap_err(), Error::IdTokenInvalidSignature);
}

#[test]
fn a_malformed_token_or_a_refused_algorithm_ends_it_at_once() {
    let json = FakePlatform::default();
    let nonce = nonce();
    let expect = expect(&nonce);
    let malformed = IdToken::new("not-a-jws".into());
    let (_, step) = VerifyIdToken::start(&json, &malformed, Some(URI), &expect);
    assert_eq!(done(step).unwrap_err().code(), "id_token_malformed");
    let (hmac, _) = jws(r#"{"alg":"HS256"}"#, &claims_json(ISSUER), &[1; 32]);
    let (_, step) = VerifyIdToken::start(&json, &hmac, Some(URI), &expect);
    assert_eq!(done(step).unwrap_err().code(), "id_token_unsupported_alg");
}

#[test]
fn claims_that_are_not_an_object_are_malformed_after_a_good_signature() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", "[1,2]");
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    let outcome = done(machine.on(Fed::Verified(Ok(true)), &json));
    assert_eq!(outcome.unwrap_err().code(), "id_token_malformed");
}

#[test]
fn claims_are_judged_last() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json("https://evil.example"));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    let outcome = done(machine.on(Fed::Verified(Ok(true)), &json));
    assert_eq!(outcome.unwrap_err().code(), "id_token_iss_mismatch");
}

#[test]
fn an_unexpected_input_refuses_the_token() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    let outcome = done(machine.on(Fed::Verified(Ok(true)), &json));
    let error = outcome.expect_err("a signature never asked for verifies nothing");
    assert_eq!(error.code(), "jwks_unavailable");
}

#[test]
fn neither_the_machine_nor_its_needs_show_the_token() {
    let json = FakePlatform::default();
    let (token, _) = rs256("k1", &claims_json(ISSUER));
    let nonce = nonce();
    let expect = expect(&nonce);
    let (mut machine, _) = VerifyIdToken::start(&json, &token, Some(URI), &expect);
    let step = machine.on(Fed::Cached(Some(rsa("k1"))), &json);
    let shown = format!("{machine:?} {step:?}");
    let payload = crate::core::base64url::encode(claims_json(ISSUER).as_bytes());
    assert!(
        !shown.contains(&payload) && !shown.contains("alice"),
        "{shown}"
    );
}
