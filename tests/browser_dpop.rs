//! DPoP keys against real WebCrypto and IndexedDB in headless Chromium
//! (`wasm-pack test --headless --chrome`): made non-extractable, found again
//! by thumbprint from a second handle (as another tab would), signing proofs
//! WebCrypto verifies under the public key in their header, and gone after
//! deletion.
#![cfg(target_arch = "wasm32")]

use latchkey::browser::dpop_keys::BrowserDpopKeys;
use latchkey::browser::jws_verify;
use latchkey::browser::platform::BrowserPlatform;
use latchkey::core::base64url;
use latchkey::core::dpop::{make_proof, ProofFor};
use latchkey::core::jose::{Jwk, JwsAlgorithm};
use latchkey::core::ports::{DpopKey, DpopKeys};
use latchkey::core::AccessToken;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ISSUER: &str = "https://idp.test";
const PLATFORM: BrowserPlatform = BrowserPlatform::within(1_000);

fn json(part: &str) -> serde_json::Value {
    serde_json::from_slice(&base64url::decode(part).unwrap()).unwrap()
}

#[wasm_bindgen_test]
async fn a_key_is_found_by_thumbprint_signs_verifiable_proofs_and_is_gone_after_deletion() {
    let keys = BrowserDpopKeys::open(ISSUER, "dpop-a").await;
    assert!(
        keys.keeps_keys_across_pages(),
        "IndexedDB is available in the test browser"
    );
    let (jkt, key) = keys.create().await.unwrap();
    assert_eq!(jkt, key.public_key().thumbprint(&PLATFORM).await.unwrap());

    // Another handle on the same store, as another tab has.
    let other = BrowserDpopKeys::open(ISSUER, "dpop-a").await;
    let found = other.load(&jkt).await.unwrap();
    assert_eq!(found.public_key(), key.public_key());

    let token = AccessToken::new("at-1".into());
    let proof = make_proof(
        &PLATFORM,
        &found,
        ProofFor {
            method: "GET",
            url: "https://api.test/me?x=1",
            nonce: Some("n-1"),
            access_token: Some(&token),
            ath_cache: None,
        },
    )
    .await
    .unwrap();
    let parts: Vec<&str> = proof.secret().split('.').collect();
    let header = json(parts[0]);
    let jwk = Jwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: header["jwk"]["x"].as_str().map(str::to_owned),
        y: header["jwk"]["y"].as_str().map(str::to_owned),
        ..Default::default()
    };
    let input = format!("{}.{}", parts[0], parts[1]);
    let signature = base64url::decode(parts[2]).unwrap();
    let valid = jws_verify::verify(JwsAlgorithm::Es256, &jwk, input.as_bytes(), &signature)
        .await
        .unwrap();
    assert!(valid, "WebCrypto verifies the proof under its own jwk");
    assert_eq!(json(parts[1])["htu"], "https://api.test/me");

    keys.delete(&jkt).await;
    let fresh = BrowserDpopKeys::open(ISSUER, "dpop-a").await;
    let gone = fresh.load(&jkt).await.unwrap_err();
    assert_eq!(gone.code(), "dpop_key_unavailable");
}

#[wasm_bindgen_test]
async fn the_private_key_cannot_be_exported() {
    let (private, _, _) = latchkey::browser::webcrypto::generate_dpop_key()
        .await
        .unwrap();
    assert!(!private.extractable());
}

#[wasm_bindgen_test]
async fn each_login_gets_its_own_key_and_clients_do_not_share_keys() {
    let keys = BrowserDpopKeys::open(ISSUER, "dpop-b").await;
    let (first, _) = keys.create().await.unwrap();
    let (second, _) = keys.create().await.unwrap();
    assert_ne!(first, second);
    let other_client = BrowserDpopKeys::open(ISSUER, "dpop-c").await;
    assert!(other_client.load(&first).await.is_err());
}
