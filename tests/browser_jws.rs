//! JWS signature verification against real WebCrypto in headless Chromium:
//! every key pair is generated in the test with `crypto.subtle.generateKey`,
//! its public half exported as a JWK and read into a [`Jwk`], exactly as an
//! issuer's key set would be.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Object, Reflect, Uint8Array};
use latchkey::browser::jws_verify::verify;
use latchkey::core::base64url;
use latchkey::core::jose::{Jwk, JwsAlgorithm};
use latchkey::core::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{CryptoKey, SubtleCrypto};

wasm_bindgen_test_configure!(run_in_browser);

const SIGNING_INPUT: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

fn subtle() -> SubtleCrypto {
    web_sys::window().unwrap().crypto().unwrap().subtle()
}

fn object(members: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (name, value) in members {
        Reflect::set(&object, &JsValue::from_str(name), value).unwrap();
    }
    object
}

/// How a test key pair is made and how it signs.
#[derive(Clone, Copy)]
enum Kind {
    Rsa { alg: JwsAlgorithm, bits: u32 },
    Ec { curve: &'static str },
}

const RS256: Kind = Kind::Rsa {
    alg: JwsAlgorithm::Rs256,
    bits: 2048,
};
const PS256: Kind = Kind::Rsa {
    alg: JwsAlgorithm::Ps256,
    bits: 2048,
};
const ES256: Kind = Kind::Ec { curve: "P-256" };

impl Kind {
    fn generate_params(self) -> Object {
        match self {
            Kind::Rsa { alg, bits } => object(&[
                ("name", rsa_name(alg).into()),
                ("modulusLength", bits.into()),
                ("publicExponent", Uint8Array::from(&[1u8, 0, 1][..]).into()),
                ("hash", "SHA-256".into()),
            ]),
            Kind::Ec { curve } => object(&[("name", "ECDSA".into()), ("namedCurve", curve.into())]),
        }
    }

    fn sign_params(self) -> Object {
        match self {
            Kind::Rsa {
                alg: JwsAlgorithm::Ps256,
                ..
            } => object(&[("name", "RSA-PSS".into()), ("saltLength", 32.into())]),
            Kind::Rsa { alg, .. } => object(&[("name", rsa_name(alg).into())]),
            Kind::Ec { curve } => {
                let hash = if curve == "P-384" {
                    "SHA-384"
                } else {
                    "SHA-256"
                };
                object(&[("name", "ECDSA".into()), ("hash", hash.into())])
            }
        }
    }
}

fn rsa_name(alg: JwsAlgorithm) -> &'static str {
    match alg {
        JwsAlgorithm::Ps256 => "RSA-PSS",
        _ => "RSASSA-PKCS1-v1_5",
    }
}

/// A generated key pair: the private key signs, the public key is a [`Jwk`].
struct KeyPair {
    kind: Kind,
    private: CryptoKey,
    public: Jwk,
}

impl KeyPair {
    async fn generate(kind: Kind) -> KeyPair {
        let usages = Array::of2(&"sign".into(), &"verify".into());
        let pair = JsFuture::from(
            subtle()
                .generate_key_with_object(&kind.generate_params(), true, &usages)
                .unwrap(),
        )
        .await
        .unwrap();
        let get = |name: &str| -> CryptoKey {
            Reflect::get(&pair, &name.into())
                .unwrap()
                .dyn_into()
                .unwrap()
        };
        let exported = JsFuture::from(subtle().export_key("jwk", &get("publicKey")).unwrap())
            .await
            .unwrap();
        let public: Jwk = serde_wasm_bindgen::from_value(exported).unwrap();
        KeyPair {
            kind,
            private: get("privateKey"),
            public,
        }
    }

    async fn sign(&self, data: &[u8]) -> Vec<u8> {
        let signature = JsFuture::from(
            subtle()
                .sign_with_object_and_u8_array(&self.kind.sign_params(), &self.private, data)
                .unwrap(),
        )
        .await
        .unwrap();
        Uint8Array::new(&signature).to_vec()
    }
}

/// The error's code, and its text for checks that no key material leaks.
fn crypto_failure(result: Result<bool, Error>) -> String {
    match result {
        Err(error) => {
            assert_eq!(error.code(), "crypto_error", "{error}");
            error.to_string()
        }
        Ok(verdict) => panic!("expected a crypto_error, got Ok({verdict})"),
    }
}

/// Genuine, tampered, foreign, garbled and mis-sized signatures of one
/// algorithm.
async fn genuine_verifies_and_every_forgery_does_not(alg: JwsAlgorithm, kind: Kind) {
    let pair = KeyPair::generate(kind).await;
    let key = &pair.public;
    let signature = pair.sign(SIGNING_INPUT).await;

    assert_eq!(
        verify(alg, key, SIGNING_INPUT, &signature).await,
        Ok(true),
        "the genuine signature verifies"
    );

    let mut tampered = SIGNING_INPUT.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        verify(alg, key, &tampered, &signature).await,
        Ok(false),
        "one byte of the payload changed"
    );

    let other = KeyPair::generate(kind).await;
    let foreign = other.sign(SIGNING_INPUT).await;
    assert_eq!(foreign.len(), signature.len());
    assert_eq!(
        verify(alg, key, SIGNING_INPUT, &foreign).await,
        Ok(false),
        "signed by another key pair"
    );
    assert_eq!(
        verify(alg, &other.public, SIGNING_INPUT, &foreign).await,
        Ok(true),
        "the other pair's own key accepts it (the forgery is a real signature)"
    );

    for index in [0, signature.len() / 2, signature.len() - 1] {
        let mut garbled = signature.clone();
        garbled[index] ^= 0x80;
        assert_eq!(
            verify(alg, key, SIGNING_INPUT, &garbled).await,
            Ok(false),
            "byte {index} of the signature flipped"
        );
    }

    let truncated = &signature[..signature.len() - 1];
    assert_eq!(
        verify(alg, key, SIGNING_INPUT, truncated).await,
        Ok(false),
        "truncated signature"
    );
    let mut extended = signature.clone();
    extended.push(0);
    assert_eq!(
        verify(alg, key, SIGNING_INPUT, &extended).await,
        Ok(false),
        "signature with a byte appended"
    );
    assert_eq!(
        verify(alg, key, SIGNING_INPUT, &[]).await,
        Ok(false),
        "empty signature"
    );
    assert_eq!(
        verify(alg, key, SIGNING_INPUT, &vec![0u8; signature.len()]).await,
        Ok(false),
        "all-zero signature of the right length"
    );
}

#[wasm_bindgen_test]
async fn rs256_genuine_signature_verifies_and_forgeries_do_not() {
    genuine_verifies_and_every_forgery_does_not(JwsAlgorithm::Rs256, RS256).await;
}

#[wasm_bindgen_test]
async fn ps256_genuine_signature_verifies_and_forgeries_do_not() {
    genuine_verifies_and_every_forgery_does_not(JwsAlgorithm::Ps256, PS256).await;
}

#[wasm_bindgen_test]
async fn es256_genuine_signature_verifies_and_forgeries_do_not() {
    genuine_verifies_and_every_forgery_does_not(JwsAlgorithm::Es256, ES256).await;
}

#[wasm_bindgen_test]
async fn es256_signature_is_raw_r_s_not_der() {
    let pair = KeyPair::generate(ES256).await;
    let signature = pair.sign(SIGNING_INPUT).await;
    assert_eq!(signature.len(), 64, "WebCrypto signs ECDSA as r || s");
    // The same (r, s) DER-encoded, as OpenSSL would write it, is refused.
    let der_integer = |half: &[u8]| {
        let mut bytes = half.to_vec();
        while bytes.len() > 1 && bytes[0] == 0 && bytes[1] < 0x80 {
            bytes.remove(0);
        }
        if bytes[0] >= 0x80 {
            bytes.insert(0, 0);
        }
        let mut out = vec![0x02, bytes.len() as u8];
        out.extend(bytes);
        out
    };
    let mut body = der_integer(&signature[..32]);
    body.extend(der_integer(&signature[32..]));
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    assert_eq!(
        verify(JwsAlgorithm::Es256, &pair.public, SIGNING_INPUT, &signature).await,
        Ok(true)
    );
    assert_eq!(
        verify(JwsAlgorithm::Es256, &pair.public, SIGNING_INPUT, &der).await,
        Ok(false)
    );
}

#[wasm_bindgen_test]
async fn an_rsa_key_is_refused_for_es256() {
    let pair = KeyPair::generate(RS256).await;
    let signature = pair.sign(SIGNING_INPUT).await;
    assert_eq!(
        verify(JwsAlgorithm::Rs256, &pair.public, SIGNING_INPUT, &signature).await,
        Ok(true),
        "the key itself is good"
    );
    let mut key = pair.public.clone();
    key.alg = None; // the exported JWK says RS256; only the kty is under test
    let text = crypto_failure(verify(JwsAlgorithm::Es256, &key, SIGNING_INPUT, &[0; 64]).await);
    assert!(text.contains("EC key"), "{text}");
    assert!(!text.contains(key.n.as_deref().unwrap()), "{text}");
}

#[wasm_bindgen_test]
async fn an_ec_key_is_refused_for_rs256_and_ps256() {
    let pair = KeyPair::generate(ES256).await;
    let mut key = pair.public.clone();
    key.alg = None;
    for alg in [JwsAlgorithm::Rs256, JwsAlgorithm::Ps256] {
        let text = crypto_failure(verify(alg, &key, SIGNING_INPUT, &[0; 256]).await);
        assert!(text.contains("RSA key"), "{text}");
    }
}

#[wasm_bindgen_test]
async fn a_p384_key_is_refused_for_es256() {
    let pair = KeyPair::generate(Kind::Ec { curve: "P-384" }).await;
    let mut key = pair.public.clone();
    key.alg = None; // only the curve is under test
    let key = &key;
    assert_eq!(key.kty, "EC");
    assert_eq!(key.crv.as_deref(), Some("P-384"));
    let text = crypto_failure(verify(JwsAlgorithm::Es256, key, SIGNING_INPUT, &[0; 64]).await);
    assert!(text.contains("P-384"), "{text}");
    assert!(!text.contains(key.x.as_deref().unwrap()), "{text}");

    // An ES256 key without crv is refused too.
    let mut no_curve = ec_key_without_alg().await;
    no_curve.crv = None;
    crypto_failure(verify(JwsAlgorithm::Es256, &no_curve, SIGNING_INPUT, &[0; 64]).await);
}

async fn ec_key_without_alg() -> Jwk {
    let mut key = KeyPair::generate(ES256).await.public;
    key.alg = None;
    key
}

#[wasm_bindgen_test]
async fn a_malformed_modulus_is_refused() {
    let pair = KeyPair::generate(RS256).await;
    let signature = pair.sign(SIGNING_INPUT).await;
    let good_n = pair.public.n.clone().unwrap();
    assert_eq!(
        verify(JwsAlgorithm::Rs256, &pair.public, SIGNING_INPUT, &signature).await,
        Ok(true),
        "the key itself is good"
    );

    // Standard base64 with padding, a character outside the alphabet, and
    // no n at all.
    let padded = format!("{}+/==", &good_n[..good_n.len() - 4]);
    let stray = format!("{}!", &good_n[..good_n.len() - 1]);
    for bad in [Some(padded), Some(stray), Some(String::new()), None] {
        let mut key = pair.public.clone();
        key.n = bad.clone();
        let text =
            crypto_failure(verify(JwsAlgorithm::Rs256, &key, SIGNING_INPUT, &signature).await);
        assert!(text.contains(" n "), "names the member: {text}");
        assert!(!text.contains(&good_n[..16]), "no key material: {text}");
    }

    let mut no_e = pair.public.clone();
    no_e.e = None;
    crypto_failure(verify(JwsAlgorithm::Rs256, &no_e, SIGNING_INPUT, &signature).await);
}

#[wasm_bindgen_test]
async fn an_rsa_modulus_under_2048_bits_is_refused() {
    let pair = KeyPair::generate(Kind::Rsa {
        alg: JwsAlgorithm::Rs256,
        bits: 1024,
    })
    .await;
    let signature = pair.sign(SIGNING_INPUT).await;
    assert_eq!(signature.len(), 128, "the key really is 1024 bits");
    let text =
        crypto_failure(verify(JwsAlgorithm::Rs256, &pair.public, SIGNING_INPUT, &signature).await);
    assert!(text.contains("2048"), "{text}");
}

#[wasm_bindgen_test]
async fn an_ec_point_off_the_curve_is_refused_by_import() {
    let pair = KeyPair::generate(ES256).await;
    let signature = pair.sign(SIGNING_INPUT).await;
    let mut key = pair.public.clone();
    let mut y = base64url::decode(key.y.as_deref().unwrap()).unwrap();
    y[31] ^= 0x01;
    key.y = Some(base64url::encode(&y));
    // Well-formed (32 bytes of base64url), so only WebCrypto can tell.
    let text = crypto_failure(verify(JwsAlgorithm::Es256, &key, SIGNING_INPUT, &signature).await);
    assert!(text.contains("importKey"), "{text}");
    assert!(!text.contains(key.x.as_deref().unwrap()), "{text}");
    assert!(!text.contains(key.y.as_deref().unwrap()), "{text}");
}

#[wasm_bindgen_test]
async fn a_key_declared_for_another_alg_or_for_encryption_is_refused() {
    let pair = KeyPair::generate(RS256).await;
    let signature = pair.sign(SIGNING_INPUT).await;
    assert_eq!(
        pair.public.alg.as_deref(),
        Some("RS256"),
        "WebCrypto exports the alg"
    );

    // Declared RS256, asked for PS256.
    let text =
        crypto_failure(verify(JwsAlgorithm::Ps256, &pair.public, SIGNING_INPUT, &signature).await);
    assert!(text.contains("RS256"), "{text}");
    // Without the declaration, a PKCS#1 v1.5 signature is just not a PSS one.
    let mut undeclared = pair.public.clone();
    undeclared.alg = None;
    assert_eq!(
        verify(JwsAlgorithm::Ps256, &undeclared, SIGNING_INPUT, &signature).await,
        Ok(false)
    );

    let mut signing = pair.public.clone();
    signing.key_use = Some("sig".into());
    signing.kid = Some("k1".into());
    assert_eq!(
        verify(JwsAlgorithm::Rs256, &signing, SIGNING_INPUT, &signature).await,
        Ok(true),
        "use sig, alg RS256 and a kid are fine"
    );
    let mut encryption = signing.clone();
    encryption.key_use = Some("enc".into());
    let text =
        crypto_failure(verify(JwsAlgorithm::Rs256, &encryption, SIGNING_INPUT, &signature).await);
    assert!(text.contains("enc"), "{text}");
}
