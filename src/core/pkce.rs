//! PKCE, Proof Key for Code Exchange ([RFC 7636](https://www.rfc-editor.org/rfc/rfc7636)).
//!
//! A public client (an SPA cannot keep a secret) proves at the token endpoint
//! that it is the one that started the login. latchkey supports only the
//! `S256` method. The core holds no hash function: the browser computes
//! SHA-256 of the verifier with WebCrypto and hands the digest to
//! [`PkceChallenge::from_sha256_digest`].

use super::base64url;
use super::secret::PkceVerifier;

/// The only `code_challenge_method` latchkey sends.
pub const PKCE_METHOD: &str = "S256";

impl PkceVerifier {
    /// A verifier from 32 caller-supplied random bytes: their base64url
    /// encoding, 43 characters of the unreserved set
    /// ([RFC 7636 §4.1](https://www.rfc-editor.org/rfc/rfc7636#section-4.1)).
    ///
    /// The challenge is `BASE64URL(SHA256(ASCII(verifier)))`: hash
    /// `verifier.secret().as_bytes()` and pass the digest to
    /// [`PkceChallenge::from_sha256_digest`].
    pub fn from_random_bytes(bytes: &[u8; 32]) -> Self {
        PkceVerifier::new(base64url::encode(bytes))
    }
}

/// The `S256` code challenge sent in the authorization request
/// ([RFC 7636 §4.2](https://www.rfc-editor.org/rfc/rfc7636#section-4.2)).
/// Not a secret: it travels in the authorization URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkceChallenge(String);

impl PkceChallenge {
    /// The challenge for a verifier, from `SHA256(ASCII(verifier))`
    /// ([RFC 7636 §4.2](https://www.rfc-editor.org/rfc/rfc7636#section-4.2)).
    pub fn from_sha256_digest(digest: [u8; 32]) -> Self {
        PkceChallenge(base64url::encode(&digest))
    }

    /// The `code_challenge` value (43 base64url characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `code_challenge_method`: always `S256`.
    pub fn method(&self) -> &'static str {
        PKCE_METHOD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn challenge_for(verifier: &PkceVerifier) -> PkceChallenge {
        PkceChallenge::from_sha256_digest(Sha256::digest(verifier.secret().as_bytes()).into())
    }

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = PkceVerifier::from_random_bytes(&octets);
        assert_eq!(
            verifier.secret(),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        let challenge = challenge_for(&verifier);
        assert_eq!(
            challenge.as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(challenge.method(), "S256");
    }

    #[test]
    fn verifier_is_43_unreserved_characters() {
        for fill in [0u8, 0x5a, 0xff] {
            let verifier = PkceVerifier::from_random_bytes(&[fill; 32]);
            let text = verifier.secret();
            assert_eq!(text.len(), 43);
            // RFC 7636 §4.1: [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
            assert_eq!(challenge_for(&verifier).as_str().len(), 43);
        }
    }
}
