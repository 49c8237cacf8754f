//! DPoP proofs, thumbprints, nonces and the nonce retry of token requests.

use super::*;
use crate::core::fakes::{block_on, FakeDpopKey, FakeDpopKeys, FakePlatform};

const NOW: u64 = 1_700_000_000_000;
const TOKEN_URL: &str = "https://idp.example/token";
const FORM: &[(&str, &str)] = &[("grant_type", "refresh_token"), ("refresh_token", "rt-1")];
const TOKENS: &str = r#"{"access_token":"at-2","token_type":"DPoP","expires_in":60}"#;
const WANTS_NONCE: &str = r#"{"error":"use_dpop_nonce","error_description":"nonce needed"}"#;

/// The key of RFC 9449's examples (§4.1).
fn rfc_key() -> DpopPublicKey {
    DpopPublicKey::new(
        "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    )
    .unwrap()
}

fn form() -> Vec<(String, String)> {
    FORM.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_thumbprint_is_rfc_9449s_for_its_example_key() {
    let platform = FakePlatform::at(NOW);
    let jkt = block_on(rfc_key().thumbprint(&platform)).unwrap();
    assert_eq!(jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
}

#[test]
fn a_stored_key_is_used_only_under_its_own_thumbprint() {
    let platform = FakePlatform::at(NOW);
    let own = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    assert_eq!(block_on(rfc_key().stored_as(own, &platform)), Ok(()));
    let other = block_on(rfc_key().stored_as("another-jkt", &platform)).unwrap_err();
    assert_eq!(other.code(), "dpop_key_unavailable");
}

#[test]
fn a_public_key_that_is_not_a_p256_point_is_refused() {
    let good = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
    for (x, y) in [("", good), (good, "AAAA"), (good, "\"}"), ("l8t+/", good)] {
        let error = DpopPublicKey::new(x, y).unwrap_err();
        assert_eq!(error.code(), "dpop_key_unavailable");
    }
}

#[test]
fn htu_leaves_out_the_query_and_fragment() {
    assert_eq!(
        htu("https://api.example/a/b?x=1#f"),
        "https://api.example/a/b"
    );
    assert_eq!(htu("https://api.example/a#f?x"), "https://api.example/a");
    assert_eq!(htu("https://api.example/"), "https://api.example/");
}

#[test]
fn htu_is_the_url_as_the_browser_serialises_it() {
    // Scheme and host lowercased, the default port left out, an empty
    // path as `/`: where the request goes, not how an endpoint was written.
    assert_eq!(
        htu("HTTPS://IdP.Example:443/token?x"),
        "https://idp.example/token"
    );
    assert_eq!(
        htu("https://idp.example:8443/t"),
        "https://idp.example:8443/t"
    );
    assert_eq!(htu("http://127.0.0.1:80"), "http://127.0.0.1/");
    assert_eq!(
        htu("https://[2001:DB8:0:0::1]:443/token"),
        "https://[2001:db8::1]/token"
    );
    // The path is left as written (the browser's own, for a request's URL).
    assert_eq!(htu("https://idp.example/A/b"), "https://idp.example/A/b");
}

fn decoded(part: &str) -> serde_json::Value {
    serde_json::from_slice(&base64url::decode(part).unwrap()).unwrap()
}

#[test]
fn a_resource_proof_names_the_request_the_nonce_and_the_tokens_hash() {
    let platform = FakePlatform::at(NOW);
    let key = FakeDpopKey::numbered(7);
    let token = AccessToken::new("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".into());
    let proof = block_on(make_proof(
        &platform,
        &key,
        ProofFor {
            method: "GET",
            url: "https://api.example/me?q=\"x\"#frag",
            nonce: Some("n-1"),
            access_token: Some(&token),
            ath_cache: None,
        },
    ))
    .unwrap();
    let parts: Vec<&str> = proof.secret().split('.').collect();
    let header = decoded(parts[0]);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(
        header["jwk"],
        serde_json::from_str::<serde_json::Value>(&key.public_key().jwk_json()).unwrap()
    );
    let claims = decoded(parts[1]);
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], "https://api.example/me");
    assert_eq!(claims["iat"], NOW / 1000);
    assert_eq!(claims["nonce"], "n-1");
    // RFC 9449 §7.1's example access token and its hash.
    assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    assert_eq!(claims["jti"], base64url::encode(&[1; 32]));
    let input = format!("{}.{}", parts[0], parts[1]);
    assert_eq!(
        base64url::decode(parts[2]).unwrap(),
        FakeDpopKey::signature(input.as_bytes())
    );
}

#[test]
fn each_proof_has_its_own_jti_and_a_token_proof_has_no_ath_or_nonce_unless_given() {
    let platform = FakePlatform::at(NOW);
    let key = FakeDpopKey::numbered(1);
    let make = || {
        let proof = block_on(make_proof(
            &platform,
            &key,
            ProofFor {
                method: "POST",
                url: TOKEN_URL,
                nonce: None,
                access_token: None,
                ath_cache: None,
            },
        ))
        .unwrap();
        decoded(proof.secret().split('.').nth(1).unwrap())
    };
    let (first, second) = (make(), make());
    assert_ne!(first["jti"], second["jti"]);
    assert!(first.get("ath").is_none() && first.get("nonce").is_none());
}

#[test]
fn a_signature_of_the_wrong_length_is_refused() {
    struct Broken(DpopPublicKey);
    impl DpopKey for Broken {
        fn public_key(&self) -> &DpopPublicKey {
            &self.0
        }
        async fn sign(&self, _: &[u8]) -> Result<Vec<u8>, Error> {
            Ok(vec![0; 70]) // DER, as some APIs give
        }
    }
    let platform = FakePlatform::at(NOW);
    let error = block_on(make_proof(
        &platform,
        &Broken(rfc_key()),
        ProofFor {
            method: "POST",
            url: TOKEN_URL,
            nonce: None,
            access_token: None,
            ath_cache: None,
        },
    ))
    .unwrap_err();
    assert_eq!(error.code(), "dpop_key_unavailable");
}

#[test]
fn nonces_are_kept_per_role_and_origin() {
    let book = NonceBook::default();
    assert!(book.learn(Role::AuthorizationServer, "https://a.example/token", "as-1"));
    assert!(book.learn(Role::Resource, "https://a.example/api", "rs-1"));
    assert!(
        !book.learn(Role::Resource, "https://a.example/other", "rs-1"),
        "same"
    );
    assert_eq!(
        book.get(Role::AuthorizationServer, "https://a.example/par")
            .as_deref(),
        Some("as-1")
    );
    assert_eq!(
        book.get(Role::Resource, "https://a.example/x").as_deref(),
        Some("rs-1")
    );
    assert_eq!(book.get(Role::Resource, "https://b.example/x"), None);
    assert!(book.learn(Role::Resource, "https://a.example/api", "rs-2"));
    assert_eq!(
        book.get(Role::Resource, "https://a.example/").as_deref(),
        Some("rs-2")
    );
}

#[test]
fn a_malformed_nonce_is_ignored() {
    let book = NonceBook::default();
    let long = "n".repeat(MAX_NONCE_LEN + 1);
    for bad in ["", "with space", "quote\"", "back\\slash", long.as_str()] {
        assert!(
            !book.learn(Role::Resource, "https://a.example/", bad),
            "{bad:?}"
        );
    }
    assert_eq!(book.get(Role::Resource, "https://a.example/"), None);
}

#[test]
fn the_book_is_bounded_and_forgets_the_oldest() {
    let book = NonceBook::default();
    for i in 0..=MAX_NONCES {
        book.learn(Role::Resource, &format!("https://h{i}.example/"), "n");
    }
    assert_eq!(book.get(Role::Resource, "https://h0.example/"), None);
    assert!(book
        .get(Role::Resource, &format!("https://h{MAX_NONCES}.example/"))
        .is_some());
}

#[test]
fn a_challenge_asking_for_a_nonce_is_recognised() {
    assert!(challenge_wants_nonce(
        r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce""#
    ));
    assert!(challenge_wants_nonce(
        r#"dpop algs="ES256", error="use_dpop_nonce""#
    ));
    assert!(!challenge_wants_nonce(r#"DPoP error="invalid_token""#));
    assert!(!challenge_wants_nonce(r#"Bearer error="use_dpop_nonce""#));
    // Among the challenges of an API accepting both schemes (RFC 9449
    // §7.2), and with the spaces RFC 9110 allows around `=`.
    assert!(challenge_wants_nonce(
        r#"Bearer realm="api", DPoP error="use_dpop_nonce""#
    ));
    assert!(challenge_wants_nonce(r#"DPoP error = "use_dpop_nonce""#));
    assert!(!challenge_wants_nonce(r#"DPoPx error="use_dpop_nonce""#));
}

const API: &str = "https://api.example/things";
const CHALLENGE: &str = r#"DPoP error="use_dpop_nonce", error_description="nonce needed""#;

#[test]
fn a_resource_401_asking_for_a_new_nonce_refuses_the_one_sent_and_keeps_the_new() {
    let book = NonceBook::default();
    let refused = book.after_resource_answer(
        Role::Resource,
        API,
        Some("n-1"),
        401,
        Some("n-2"),
        Some(CHALLENGE),
    );
    assert!(refused);
    assert_eq!(book.get(Role::Resource, API).as_deref(), Some("n-2"));
}

#[test]
fn a_resource_answer_without_a_nonce_refuses_nothing() {
    let book = NonceBook::default();
    assert!(!book.after_resource_answer(
        Role::Resource,
        API,
        Some("n-1"),
        401,
        None,
        Some(CHALLENGE)
    ));
    assert_eq!(book.get(Role::Resource, API), None);
}

#[test]
fn userinfos_nonce_is_kept_as_the_authorization_servers() {
    let book = NonceBook::default();
    let userinfo = "https://idp.example/me";
    let refused = book.after_resource_answer(
        Role::AuthorizationServer,
        userinfo,
        None,
        401,
        Some("n-1"),
        Some(CHALLENGE),
    );
    assert!(refused);
    assert_eq!(
        book.get(Role::AuthorizationServer, userinfo).as_deref(),
        Some("n-1")
    );
    assert_eq!(book.get(Role::Resource, userinfo), None);
}

#[test]
fn the_same_nonce_back_is_not_worth_a_resend() {
    let book = NonceBook::default();
    assert!(!book.after_resource_answer(
        Role::Resource,
        API,
        Some("n-1"),
        401,
        Some("n-1"),
        Some(CHALLENGE)
    ));
}

#[test]
fn a_nonce_already_learned_by_another_call_still_refuses_this_one() {
    let book = NonceBook::default();
    book.learn(Role::Resource, API, "n-2");
    assert!(book.after_resource_answer(
        Role::Resource,
        API,
        Some("n-1"),
        401,
        Some("n-2"),
        Some(CHALLENGE)
    ));
}

#[test]
fn a_new_nonce_on_any_other_answer_is_kept_but_refuses_nothing() {
    let book = NonceBook::default();
    assert!(!book.after_resource_answer(Role::Resource, API, Some("n-1"), 200, Some("n-2"), None));
    assert_eq!(book.get(Role::Resource, API).as_deref(), Some("n-2"));
    let other = r#"DPoP error="invalid_token""#;
    assert!(!book.after_resource_answer(
        Role::Resource,
        API,
        Some("n-2"),
        401,
        Some("n-3"),
        Some(other)
    ));
    assert!(!book.after_resource_answer(Role::Resource, API, Some("n-3"), 401, Some("n-4"), None));
}

/// A token request through [`DpopHttp`] with `FakeDpopKey` 1.
fn post(platform: &FakePlatform, book: &NonceBook) -> Result<HttpReply<serde_json::Value>, Error> {
    let key = FakeDpopKey::numbered(1);
    let http = DpopHttp {
        platform,
        key: &key,
        nonces: book,
        on_refusal: NonceRefusal::Resend,
    };
    block_on(http.post_form(TOKEN_URL, &form()))
}

#[test]
fn a_token_request_carries_a_proof_and_keeps_the_answers_nonce() {
    let platform = FakePlatform::at(NOW);
    platform.expect_post(TOKEN_URL, FORM, 200, TOKENS);
    platform.with_proof(
        &[("htm", "POST"), ("htu", TOKEN_URL), ("nonce", "")],
        Some("as-1"),
    );
    let book = NonceBook::default();
    assert_eq!(post(&platform, &book).unwrap().status, 200);
    assert_eq!(
        book.get(Role::AuthorizationServer, TOKEN_URL).as_deref(),
        Some("as-1")
    );
    assert_eq!(
        book.get(Role::Resource, TOKEN_URL),
        None,
        "not the API's nonce"
    );
}

#[test]
fn use_dpop_nonce_resends_the_same_request_once_with_the_new_nonce() {
    let platform = FakePlatform::at(NOW);
    let book = NonceBook::default();
    book.learn(Role::AuthorizationServer, TOKEN_URL, "stale");
    platform.expect_post(TOKEN_URL, FORM, 400, WANTS_NONCE);
    platform.with_proof(&[("nonce", "stale")], Some("fresh"));
    platform.expect_post(TOKEN_URL, FORM, 200, TOKENS);
    platform.with_proof(&[("nonce", "fresh")], None);
    assert_eq!(post(&platform, &book).unwrap().status, 200);
}

#[test]
fn a_nonce_refused_twice_is_dpop_nonce_failed_not_a_loop() {
    let platform = FakePlatform::at(NOW);
    let book = NonceBook::default();
    platform.expect_post(TOKEN_URL, FORM, 400, WANTS_NONCE);
    platform.with_proof(&[("nonce", "")], Some("n-1"));
    platform.expect_post(TOKEN_URL, FORM, 400, WANTS_NONCE);
    platform.with_proof(&[("nonce", "n-1")], Some("n-2"));
    assert_eq!(post(&platform, &book).unwrap_err(), Error::DpopNonceFailed);
}

#[test]
fn use_dpop_nonce_without_a_new_nonce_is_not_resent() {
    let platform = FakePlatform::at(NOW);
    let book = NonceBook::default();
    platform.expect_post(TOKEN_URL, FORM, 400, WANTS_NONCE);
    platform.with_proof(&[("nonce", "")], None);
    assert_eq!(post(&platform, &book).unwrap_err(), Error::DpopNonceFailed);
}

#[test]
fn other_errors_are_passed_on_without_a_resend() {
    let platform = FakePlatform::at(NOW);
    let book = NonceBook::default();
    platform.expect_post(TOKEN_URL, FORM, 400, r#"{"error":"invalid_grant"}"#);
    platform.with_proof(&[("nonce", "")], Some("n-1"));
    let reply = post(&platform, &book).unwrap();
    assert_eq!(reply.oauth_error.as_deref(), Some("invalid_grant"));
}

#[test]
fn created_keys_are_found_by_thumbprint() {
    let keys = FakeDpopKeys::default();
    let (jkt, _) = block_on(keys.create()).unwrap();
    assert_eq!(jkt, FakeDpopKeys::jkt(1));
    assert!(block_on(keys.load(&jkt)).is_ok());
    assert_eq!(
        block_on(keys.load("other")).unwrap_err().code(),
        "dpop_key_unavailable"
    );
}

#[test]
fn new_nonces_from_servers_are_passed_on_and_adopted_ones_are_not() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let book = NonceBook::default();
    let heard = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&heard);
    book.set_observer(move |role, url, nonce| {
        sink.borrow_mut()
            .push((role, url.to_owned(), nonce.to_owned()))
    });
    book.learn(Role::Resource, "https://a.example/x?q=secret", "n-1");
    book.learn(Role::Resource, "https://a.example/y", "n-1");
    book.adopt(Role::Resource, "https://a.example/x", "n-2");
    // Passed on by origin alone: no path or query leaves the book.
    assert_eq!(
        *heard.borrow(),
        vec![(
            Role::Resource,
            "https://a.example".to_owned(),
            "n-1".to_owned()
        )]
    );
    assert_eq!(
        book.get(Role::Resource, "https://a.example/").as_deref(),
        Some("n-2")
    );
}

#[test]
fn the_ath_of_a_token_is_hashed_once_and_again_for_a_new_token() {
    let platform = FakePlatform::at(NOW);
    let key = FakeDpopKey::numbered(3);
    let cache = AthCache::default();
    let ath = |token: &AccessToken| {
        let proof = block_on(make_proof(
            &platform,
            &key,
            ProofFor {
                method: "GET",
                url: "https://api.example/me",
                nonce: None,
                access_token: Some(token),
                ath_cache: Some(&cache),
            },
        ))
        .unwrap();
        decoded(proof.secret().split('.').nth(1).unwrap())["ath"].clone()
    };
    let first = AccessToken::new("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".into());
    let second = AccessToken::new("another-token".into());
    assert_eq!(ath(&first), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    assert_eq!(platform.digests.get(), 1);
    assert_eq!(ath(&first), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    assert_eq!(
        platform.digests.get(),
        1,
        "the same token is not hashed again"
    );
    let expected = base64url::encode(&<sha2::Sha256 as sha2::Digest>::digest(b"another-token"));
    assert_eq!(ath(&second), expected.as_str());
    assert_eq!(platform.digests.get(), 2, "a new token is hashed");
}

#[test]
fn an_apps_proof_is_a_post_with_the_servers_latest_nonce_unless_it_names_its_own() {
    let book = NonceBook::default();
    let url = "https://idp.example/token";
    let (method, nonce) = book.for_app_proof(url, None, None, url).unwrap();
    assert_eq!((method.as_str(), nonce), ("POST", None));
    book.learn(
        Role::AuthorizationServer,
        "https://idp.example/other",
        "n-1",
    );
    let (_, nonce) = book.for_app_proof(url, None, None, url).unwrap();
    assert_eq!(nonce.as_deref(), Some("n-1"), "by origin");
    let named = book.for_app_proof(url, Some("post".into()), Some("n-2".into()), url);
    assert_eq!(named.unwrap(), ("POST".to_owned(), Some("n-2".to_owned())));
    let with_query = book.for_app_proof("https://idp.example/token?x=1", None, None, url);
    assert!(with_query.is_ok(), "htu has no query");
}

#[test]
fn an_apps_proof_signs_only_a_post_to_its_token_endpoint() {
    let book = NonceBook::default();
    let token = "https://idp.example/token";
    for (url, method) in [
        ("https://idp.example/api", None),
        ("https://idp.example/token/", None),
        ("https://evil.example/token", None),
        ("https://idp.example/tokenx", None),
        (token, Some("GET")),
        (token, Some("DELETE")),
    ] {
        let refused = book.for_app_proof(url, method.map(Into::into), None, token);
        assert_eq!(
            refused.unwrap_err().code(),
            "invalid_option",
            "{url} {method:?}"
        );
    }
}

#[test]
fn a_kept_nonce_is_offered_only_to_a_book_that_knows_none() {
    let book = NonceBook::default();
    let url = "https://idp.example/token";
    book.offer(Role::AuthorizationServer, url, "kept");
    assert_eq!(
        book.get(Role::AuthorizationServer, url).as_deref(),
        Some("kept")
    );
    book.learn(Role::AuthorizationServer, url, "newer");
    book.offer(Role::AuthorizationServer, url, "kept");
    assert_eq!(
        book.get(Role::AuthorizationServer, url).as_deref(),
        Some("newer")
    );
}
