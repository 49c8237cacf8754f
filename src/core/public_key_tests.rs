//! The key checks, one test per branch, in the order `check_key` makes them.

use super::*;

fn b64(bytes: &[u8]) -> String {
    base64url::encode(bytes)
}

/// A 2048-bit modulus (its top bit set), with `zeros` leading zero bytes.
fn modulus(zeros: usize, len: usize) -> String {
    let mut bytes = vec![0u8; zeros];
    bytes.push(0x80);
    bytes.extend(std::iter::repeat_n(7u8, len - 1));
    b64(&bytes)
}

fn rsa() -> Jwk {
    Jwk {
        kty: "RSA".into(),
        n: Some(modulus(0, 256)),
        e: Some("AQAB".into()),
        ..Jwk::default()
    }
}

fn ec() -> Jwk {
    Jwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some(b64(&[1; 32])),
        y: Some(b64(&[2; 32])),
        ..Jwk::default()
    }
}

/// The message of `key`'s refusal for `alg`, which must be a crypto error.
fn refused(alg: JwsAlgorithm, key: &Jwk) -> String {
    let error = check_key(alg, key).unwrap_err();
    assert_eq!(error.code(), "crypto_error");
    error.to_string()
}

#[test]
fn an_rsa_key_fits_rs256_and_ps256_with_signatures_as_long_as_its_modulus() {
    let key = rsa();
    for alg in [JwsAlgorithm::Rs256, JwsAlgorithm::Ps256] {
        let checked = check_key(alg, &key).unwrap();
        assert_eq!(checked.signature_len, 256);
        let (n, e) = (key.n.as_deref().unwrap(), "AQAB");
        assert_eq!(checked.members, PublicMembers::Rsa { n, e });
    }
    // Leading zero bytes do not count towards the size.
    let padded = Jwk {
        n: Some(modulus(1, 256)),
        ..rsa()
    };
    let checked = check_key(JwsAlgorithm::Rs256, &padded).unwrap();
    assert_eq!(checked.signature_len, 256);
}

#[test]
fn a_p256_key_fits_es256_with_64_byte_signatures() {
    let key = ec();
    let checked = check_key(JwsAlgorithm::Es256, &key).unwrap();
    assert_eq!(checked.signature_len, 64);
    let (x, y) = (key.x.as_deref().unwrap(), key.y.as_deref().unwrap());
    assert_eq!(checked.members, PublicMembers::P256 { x, y });
}

#[test]
fn a_key_declared_for_another_alg_is_refused() {
    let key = Jwk {
        alg: Some("RS384".into()),
        ..rsa()
    };
    let message = refused(JwsAlgorithm::Rs256, &key);
    assert!(message.contains("declared for alg \"RS384\""), "{message}");
    let declared = Jwk {
        alg: Some("RS256".into()),
        ..rsa()
    };
    assert!(check_key(JwsAlgorithm::Rs256, &declared).is_ok());
}

#[test]
fn a_key_whose_operations_exclude_verify_is_refused() {
    let key = Jwk {
        key_ops: Some(vec!["encrypt".into()]),
        ..ec()
    };
    let message = refused(JwsAlgorithm::Es256, &key);
    assert!(message.contains("key_ops"), "{message}");
    let verifying = Jwk {
        key_ops: Some(vec!["verify".into()]),
        ..ec()
    };
    assert!(check_key(JwsAlgorithm::Es256, &verifying).is_ok());
}

#[test]
fn a_key_for_encryption_is_refused() {
    let key = Jwk {
        key_use: Some("enc".into()),
        ..ec()
    };
    let message = refused(JwsAlgorithm::Es256, &key);
    assert!(message.contains("use is \"enc\""), "{message}");
    let signing = Jwk {
        key_use: Some("sig".into()),
        ..ec()
    };
    assert!(check_key(JwsAlgorithm::Es256, &signing).is_ok());
}

#[test]
fn rs256_refuses_a_key_that_is_not_rsa() {
    let message = refused(JwsAlgorithm::Ps256, &ec());
    assert!(
        message.contains("needs an RSA key, got kty \"EC\""),
        "{message}"
    );
}

#[test]
fn an_rsa_key_needs_its_members_non_empty_and_base64url() {
    let missing = Jwk { e: None, ..rsa() };
    assert!(refused(JwsAlgorithm::Rs256, &missing).contains("has no e member"));
    let empty = Jwk {
        n: Some(String::new()),
        ..rsa()
    };
    assert!(refused(JwsAlgorithm::Rs256, &empty).contains("member n is empty"));
    let garbled = Jwk {
        n: Some("not base64url!".into()),
        ..rsa()
    };
    let message = refused(JwsAlgorithm::Rs256, &garbled);
    assert!(message.contains("member n is not base64url"), "{message}");
    assert!(
        !message.contains("not base64url!"),
        "never quotes the member"
    );
}

#[test]
fn an_rsa_modulus_under_2048_bits_is_refused() {
    let short = Jwk {
        n: Some(modulus(0, 255)),
        ..rsa()
    };
    let message = refused(JwsAlgorithm::Rs256, &short);
    assert!(
        message.contains("at least 2048 bits, got 2040"),
        "{message}"
    );
}

#[test]
fn a_zero_exponent_is_refused() {
    let zero = Jwk {
        e: Some(b64(&[0, 0])),
        ..rsa()
    };
    assert!(refused(JwsAlgorithm::Rs256, &zero).contains("member e is zero"));
}

#[test]
fn es256_refuses_a_key_that_is_not_ec() {
    let message = refused(JwsAlgorithm::Es256, &rsa());
    assert!(
        message.contains("needs an EC key, got kty \"RSA\""),
        "{message}"
    );
}

#[test]
fn es256_needs_curve_p256() {
    let p384 = Jwk {
        crv: Some("P-384".into()),
        ..ec()
    };
    assert!(refused(JwsAlgorithm::Es256, &p384).contains("needs curve P-256, got \"P-384\""));
    let none = Jwk { crv: None, ..ec() };
    assert!(refused(JwsAlgorithm::Es256, &none).contains("has no crv member"));
}

#[test]
fn a_p256_coordinate_must_be_32_bytes() {
    let short = Jwk {
        y: Some(b64(&[2; 31])),
        ..ec()
    };
    let message = refused(JwsAlgorithm::Es256, &short);
    assert!(
        message.contains("member y is 31 bytes, not 32"),
        "{message}"
    );
    let missing = Jwk { x: None, ..ec() };
    assert!(refused(JwsAlgorithm::Es256, &missing).contains("has no x member"));
}
