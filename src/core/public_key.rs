//! A JWK checked against a JWS algorithm before the platform imports it:
//! type, curve, size, encoding, declared `alg` and `use`. The platform then
//! imports only the public members this returns and verifies; no RSA or
//! ECDSA code ships in the wasm, and these rules are tested natively.
//!
//! Errors never quote key material: they name the member that is wrong and
//! why, nothing more.

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
pub const P256_COORDINATE_LEN: usize = 32;

/// The public members a platform imports (base64url, as in the JWK).
#[derive(Debug, PartialEq, Eq)]
pub enum PublicMembers<'a> {
    /// An RSA key: modulus and exponent.
    Rsa {
        /// The modulus.
        n: &'a str,
        /// The public exponent.
        e: &'a str,
    },
    /// A P-256 point.
    P256 {
        /// The x coordinate.
        x: &'a str,
        /// The y coordinate.
        y: &'a str,
    },
}

/// A key that fits an algorithm: what to import, and the length a
/// signature must have (RFC 8017 §8.1.2 / §8.2.2 step 1: RSA signatures are
/// as long as the modulus; RFC 7518 §3.4: ES256's are 64 bytes). A
/// signature of another length is invalid, not an error.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckedKey<'a> {
    /// The public members only: `alg`, `use`, `key_ops` and any private
    /// member never reach the platform.
    pub members: PublicMembers<'a>,
    /// The signature length in bytes.
    pub signature_len: usize,
}

fn crypto_error(reason: impl Into<String>) -> Error {
    Error::Crypto {
        reason: reason.into(),
    }
}

/// Checks `key` against `alg` (`crypto_error` when it cannot be used): a
/// declared `alg` must be `alg`, a declared `use` must be `sig` and declared
/// `key_ops` must include `verify`; RS256 and
/// PS256 need an RSA key of at least [`MIN_RSA_MODULUS_BITS`] bits with a
/// non-zero exponent; ES256 needs a P-256 key with 32-byte coordinates.
/// Whether a P-256 point is on the curve is left to the platform's import.
pub fn check_key(alg: JwsAlgorithm, key: &Jwk) -> Result<CheckedKey<'_>, Error> {
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
    if !key.verifies() {
        return Err(crypto_error("the key's key_ops do not include \"verify\""));
    }
    match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => {
            if key.kty != "RSA" {
                return Err(crypto_error(format!(
                    "{name} needs an RSA key, got kty {}",
                    Quoted(&key.kty)
                )));
            }
            let n = member(name, "n", &key.n)?;
            let e = member(name, "e", &key.e)?;
            let modulus_bits = bit_length(&decoded(name, "n", n)?);
            if modulus_bits < MIN_RSA_MODULUS_BITS {
                return Err(crypto_error(format!(
                    "{name} needs an RSA modulus of at least {MIN_RSA_MODULUS_BITS} bits, got {modulus_bits}"
                )));
            }
            if bit_length(&decoded(name, "e", e)?) == 0 {
                return Err(crypto_error(format!("{name} key member e is zero")));
            }
            Ok(CheckedKey {
                members: PublicMembers::Rsa { n, e },
                signature_len: modulus_bits.div_ceil(8),
            })
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
            Ok(CheckedKey {
                members: PublicMembers::P256 { x, y },
                signature_len: 2 * P256_COORDINATE_LEN,
            })
        }
    }
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

#[cfg(test)]
#[path = "public_key_tests.rs"]
mod tests;
