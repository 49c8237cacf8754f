//! JWS signature verification (ID tokens) with WebCrypto.
//!
//! The key is checked against the algorithm by the core first
//! ([`check_key`]: type, curve, size, encoding, declared `alg` and `use`),
//! then imported with only its public members and handed to
//! `crypto.subtle.verify`. The browser does the cryptography; no RSA or
//! ECDSA code ships in the wasm.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::browser::js_error::describe;
use crate::core::jose::{Jwk, JwsAlgorithm};
use crate::core::public_key::{check_key, PublicMembers};
use crate::core::Error;

/// Whether `signature` is `alg`'s signature of `signing_input`
/// (`ASCII(BASE64URL(header) || '.' || BASE64URL(payload))`) under the
/// public key `key`:
///
/// - `RS256`: RSASSA-PKCS1-v1_5 with SHA-256
///   ([RFC 7518 §3.3](https://www.rfc-editor.org/rfc/rfc7518#section-3.3));
/// - `PS256`: RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt
///   ([RFC 7518 §3.5](https://www.rfc-editor.org/rfc/rfc7518#section-3.5));
/// - `ES256`: ECDSA on P-256 with SHA-256, the signature being `r || s`
///   (64 bytes) ([RFC 7518 §3.4](https://www.rfc-editor.org/rfc/rfc7518#section-3.4)).
///
/// `Ok(false)` when the signature does not verify, including a signature of
/// the wrong length for the key. `Err(Error::Crypto)` when the key cannot
/// be used for `alg` ([`check_key`]), or a key WebCrypto refuses
/// to import (e.g. a point not on the curve); also if WebCrypto itself is
/// unavailable or fails.
///
/// Only the public members (`kty` and `n`, `e` or `crv`, `x`, `y`) reach
/// `importKey`; `alg`, `use`, `key_ops` and any private member never do.
pub async fn verify(
    alg: JwsAlgorithm,
    key: &Jwk,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, Error> {
    let checked = check_key(alg, key)?;
    if signature.len() != checked.signature_len {
        // A wrong length is an invalid signature.
        return Ok(false);
    }
    let subtle = subtle()?;
    let crypto_key = import(&subtle, alg, &public_jwk(&checked.members)).await?;
    let params = verify_params(alg);
    let promise = subtle
        .verify_with_object_and_u8_array_and_u8_array(
            &params,
            &crypto_key,
            signature,
            signing_input,
        )
        .map_err(|e| failure("verify", &e))?;
    let verdict = JsFuture::from(promise)
        .await
        .map_err(|e| failure("verify", &e))?;
    Ok(verdict.as_bool() == Some(true))
}

fn crypto_error(reason: impl Into<String>) -> Error {
    Error::Crypto {
        reason: reason.into(),
    }
}

/// A WebCrypto failure; DOMException names and messages never carry key
/// material.
fn failure(operation: &str, value: &JsValue) -> Error {
    crypto_error(format!("WebCrypto {operation} failed: {}", describe(value)))
}

/// The JWK object to import: the public members only.
fn public_jwk(members: &PublicMembers<'_>) -> Object {
    let jwk = Object::new();
    match *members {
        PublicMembers::Rsa { n, e } => {
            set(&jwk, "kty", "RSA");
            set(&jwk, "n", n);
            set(&jwk, "e", e);
        }
        PublicMembers::P256 { x, y } => {
            set(&jwk, "kty", "EC");
            set(&jwk, "crv", "P-256");
            set(&jwk, "x", x);
            set(&jwk, "y", y);
        }
    }
    jwk
}

fn set(object: &Object, name: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(name), &value.into());
}

fn algorithm(name: &str) -> Object {
    let object = Object::new();
    set(&object, "name", name);
    object
}

fn subtle() -> Result<SubtleCrypto, Error> {
    let window = web_sys::window().ok_or_else(|| crypto_error("no window"))?;
    let crypto = window
        .crypto()
        .map_err(|e| crypto_error(format!("WebCrypto is unavailable: {}", describe(&e))))?;
    Ok(crypto.subtle())
}

/// `importKey("jwk", jwk, params, false, ["verify"])`.
async fn import(
    subtle: &SubtleCrypto,
    alg: JwsAlgorithm,
    jwk: &Object,
) -> Result<CryptoKey, Error> {
    let params = match alg {
        JwsAlgorithm::Rs256 => algorithm("RSASSA-PKCS1-v1_5"),
        JwsAlgorithm::Ps256 => algorithm("RSA-PSS"),
        JwsAlgorithm::Es256 => algorithm("ECDSA"),
    };
    match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => set(&params, "hash", "SHA-256"),
        JwsAlgorithm::Es256 => set(&params, "namedCurve", "P-256"),
    }
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle
        .import_key_with_object("jwk", jwk, &params, false, &usages)
        .map_err(|e| failure("importKey", &e))?;
    let key = JsFuture::from(promise)
        .await
        .map_err(|e| failure("importKey", &e))?;
    key.dyn_into::<CryptoKey>()
        .map_err(|_| crypto_error("WebCrypto importKey did not return a CryptoKey"))
}

/// The `verify` parameters of each algorithm.
fn verify_params(alg: JwsAlgorithm) -> Object {
    match alg {
        JwsAlgorithm::Rs256 => algorithm("RSASSA-PKCS1-v1_5"),
        JwsAlgorithm::Ps256 => {
            let params = algorithm("RSA-PSS");
            // RFC 7518 §3.5: the salt is as long as the hash output.
            set(&params, "saltLength", 32);
            params
        }
        JwsAlgorithm::Es256 => {
            let params = algorithm("ECDSA");
            set(&params, "hash", "SHA-256");
            params
        }
    }
}
