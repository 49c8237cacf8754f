//! JWS signature verification (ID tokens) with WebCrypto.
//!
//! The key is checked against the algorithm in Rust first (type, curve,
//! size, encoding, declared `alg` and `use`), then imported with only its
//! public members and handed to `crypto.subtle.verify`. The browser does the
//! cryptography; no RSA or ECDSA code ships in the wasm.
//!
//! Errors never quote key material: they name the member that is wrong and
//! why, nothing more.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::browser::js_error::describe;
use crate::core::base64url;
use crate::core::jose::{Jwk, JwsAlgorithm};
use crate::core::quoted::Quoted;
use crate::core::Error;

/// The smallest RSA modulus RS256 and PS256 accept, in bits
/// ([RFC 7518 §3.3](https://www.rfc-editor.org/rfc/rfc7518#section-3.3),
/// [§3.5](https://www.rfc-editor.org/rfc/rfc7518#section-3.5): "a key of
/// size 2048 bits or larger MUST be used").
pub const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The size of a P-256 coordinate and of each half (`r`, `s`) of an ES256
/// signature, in bytes
/// ([RFC 7518 §3.4](https://www.rfc-editor.org/rfc/rfc7518#section-3.4),
/// [§6.2.1.2](https://www.rfc-editor.org/rfc/rfc7518#section-6.2.1.2)).
const P256_COORDINATE_LEN: usize = 32;

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
/// be used for `alg`: wrong `kty` or curve, a missing or non-base64url
/// member, an RSA modulus under [`MIN_RSA_MODULUS_BITS`], a declared `alg`
/// other than `alg` or a `use` other than `sig`, or a key WebCrypto refuses
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
        // RFC 8017 §8.1.2 / §8.2.2 step 1 (RSA: k octets) and RFC 7518
        // §3.4 (ES256: 64 octets): a wrong length is an invalid signature.
        return Ok(false);
    }
    let subtle = subtle()?;
    let crypto_key = import(&subtle, alg, &checked.jwk).await?;
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

/// A key that fits the algorithm: the JWK object to import and the length
/// a signature must have.
struct CheckedKey {
    jwk: Object,
    signature_len: usize,
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

/// Checks `key` against `alg` and builds the public-members-only JWK object.
fn check_key(alg: JwsAlgorithm, key: &Jwk) -> Result<CheckedKey, Error> {
    let name = alg.as_str();
    if let Some(declared) = &key.alg {
        if declared != name {
            return Err(crypto_error(format!(
                "the key is declared for alg {}, not {name}",
                Quoted(declared)
            )));
        }
    }
    if let Some(key_use) = &key.key_use {
        if key_use != "sig" {
            return Err(crypto_error(format!(
                "the key's use is {}, not \"sig\"",
                Quoted(key_use)
            )));
        }
    }
    let jwk = Object::new();
    let signature_len = match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => {
            if key.kty != "RSA" {
                return Err(crypto_error(format!(
                    "{name} needs an RSA key, got kty {}",
                    Quoted(&key.kty)
                )));
            }
            let n = member(name, "n", &key.n)?;
            let e = member(name, "e", &key.e)?;
            let modulus = decoded(name, "n", n)?;
            let modulus_bits = bit_length(&modulus);
            if modulus_bits < MIN_RSA_MODULUS_BITS {
                return Err(crypto_error(format!(
                    "{name} needs an RSA modulus of at least {MIN_RSA_MODULUS_BITS} bits, got {modulus_bits}"
                )));
            }
            if bit_length(&decoded(name, "e", e)?) == 0 {
                return Err(crypto_error(format!("{name} key member e is zero")));
            }
            set(&jwk, "kty", "RSA");
            set(&jwk, "n", n);
            set(&jwk, "e", e);
            modulus_bits.div_ceil(8)
        }
        JwsAlgorithm::Es256 => {
            if key.kty != "EC" {
                return Err(crypto_error(format!(
                    "{name} needs an EC key, got kty {}",
                    Quoted(&key.kty)
                )));
            }
            match key.crv.as_deref() {
                Some("P-256") => {}
                Some(other) => {
                    return Err(crypto_error(format!(
                        "{name} needs curve P-256, got {}",
                        Quoted(other)
                    )))
                }
                None => return Err(crypto_error(format!("{name} key has no crv member"))),
            }
            let x = member(name, "x", &key.x)?;
            let y = member(name, "y", &key.y)?;
            for (field, value) in [("x", x), ("y", y)] {
                let len = decoded(name, field, value)?.len();
                if len != P256_COORDINATE_LEN {
                    return Err(crypto_error(format!(
                        "{name} key member {field} is {len} bytes, not {P256_COORDINATE_LEN}"
                    )));
                }
            }
            set(&jwk, "kty", "EC");
            set(&jwk, "crv", "P-256");
            set(&jwk, "x", x);
            set(&jwk, "y", y);
            2 * P256_COORDINATE_LEN
        }
    };
    Ok(CheckedKey { jwk, signature_len })
}

/// A required member of the key, non-empty.
fn member<'a>(alg: &str, field: &str, value: &'a Option<String>) -> Result<&'a str, Error> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(crypto_error(format!("{alg} key member {field} is empty"))),
        None => Err(crypto_error(format!("{alg} key has no {field} member"))),
    }
}

/// The member's bytes; the error says which member, never its value.
fn decoded(alg: &str, field: &str, value: &str) -> Result<Vec<u8>, Error> {
    base64url::decode(value)
        .map_err(|e| crypto_error(format!("{alg} key member {field} is not base64url ({e})")))
}

/// The bit length of a big-endian unsigned integer (leading zeros ignored).
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        Some(first) => (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize,
        None => 0,
    }
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
