//! JOSE pieces an OpenID Connect client needs: the JWS algorithms latchkey
//! verifies and the public keys (JWK, [RFC 7517](https://www.rfc-editor.org/rfc/rfc7517))
//! they are verified with.

use serde::Deserialize;

/// A JWS algorithm latchkey verifies
/// ([RFC 7518 §3.1](https://www.rfc-editor.org/rfc/rfc7518#section-3.1)).
/// `none` and the HMAC algorithms (`HS*`) are deliberately absent: a public
/// client has no shared secret, and `none` proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (salt of 32 bytes).
    Ps256,
    /// ECDSA on P-256 with SHA-256 (signature is `r || s`, 64 bytes).
    Es256,
}

impl JwsAlgorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::Es256 => "ES256",
        }
    }
}

/// One public key of an issuer's key set (the members latchkey reads).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA` or `EC`.
    pub kty: String,
    /// Key id, matched against the JWS header's `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// The algorithm the key is meant for, if the issuer says.
    #[serde(default)]
    pub alg: Option<String>,
    /// `sig` or `enc`; an `enc` key never verifies a signature.
    #[serde(default, rename = "use")]
    pub key_use: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default)]
    pub n: Option<String>,
    /// RSA public exponent (base64url).
    #[serde(default)]
    pub e: Option<String>,
    /// EC curve, e.g. `P-256`.
    #[serde(default)]
    pub crv: Option<String>,
    /// EC x coordinate (base64url).
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default)]
    pub y: Option<String>,
}

/// An issuer's key set, as served at `jwks_uri`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}
