//! Newtypes for every secret the protocol handles.
//!
//! Tokens, the authorization code, `state`, `nonce` and the PKCE verifier are
//! wrapped so that they cannot leak by accident: their `Debug` prints
//! `TypeName([redacted])`, they have no `Display`, and reading the value takes
//! an explicit call to [`secret()`](AccessToken::secret). They serialise
//! transparently (as the bare string) because token sets and pending
//! transactions are persisted.
//!
//! Equality compares in time independent of where the first difference is
//! (only the length leaks), so comparing a received `state` against the stored
//! one does not hint at its prefix.
//!
//! [`PkceVerifier`] is deliberately not `Clone` (as in oauth2-rs): it is used
//! once, by the code exchange, and then dropped.
//!
//! ```compile_fail,E0599
//! let verifier = latchkey::core::secret::PkceVerifier::new("v".into());
//! let copy = verifier.clone(); // PkceVerifier is not Clone
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

use super::base64url;

/// Compares two byte strings without stopping at the first difference.
///
/// Only the lengths leak (a length mismatch returns early). Used by every
/// secret's `PartialEq`.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A request's form or an authorization URL's query, whose values may be
/// secrets (a code, a PKCE verifier, a `state`, a `nonce`): `Debug` names
/// the fields only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form(pub Vec<(String, String)>);

impl std::ops::Deref for Form {
    type Target = Vec<(String, String)>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl PartialEq<Vec<(String, String)>> for Form {
    fn eq(&self, other: &Vec<(String, String)>) -> bool {
        &self.0 == other
    }
}

/// 32 random bytes that secrets are made of (a PKCE verifier, a `state`, a
/// `nonce`): redacted in `Debug`.
#[derive(Clone, Copy)]
pub struct Random32(pub [u8; 32]);

impl fmt::Debug for Random32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Random32([redacted])")
    }
}

macro_rules! secret_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: String) -> Self {
                Self(value)
            }

            /// The secret value. Every read is explicit, so it can be audited.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// The secret value, taken (an explicit read, like [`Self::secret`]).
            pub fn into_secret(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
            }
        }

        impl Eq for $name {}
    };
}

secret_newtype!(
    /// A stored record's plaintext: JSON text holding tokens or a pending
    /// login.
    RecordText
);
secret_newtype!(
    /// An OAuth 2.0 access token ([RFC 6749 §1.4](https://www.rfc-editor.org/rfc/rfc6749#section-1.4)).
    #[derive(Clone)]
    AccessToken
);
secret_newtype!(
    /// An OAuth 2.0 refresh token ([RFC 6749 §1.5](https://www.rfc-editor.org/rfc/rfc6749#section-1.5)).
    /// Servers may rotate it on every refresh.
    #[derive(Clone)]
    RefreshToken
);
secret_newtype!(
    /// An OpenID Connect ID token, kept as the compact JWS text
    /// ([OIDC Core §2](https://openid.net/specs/openid-connect-core-1_0.html#IDToken)).
    #[derive(Clone)]
    IdToken
);
secret_newtype!(
    /// An authorization code from the redirect
    /// ([RFC 6749 §4.1.2](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2)).
    #[derive(Clone)]
    AuthorizationCode
);
secret_newtype!(
    /// The `state` value binding a redirect to the transaction that started it
    /// ([RFC 6749 §10.12](https://www.rfc-editor.org/rfc/rfc6749#section-10.12)).
    #[derive(Clone)]
    State
);
secret_newtype!(
    /// The OpenID Connect `nonce` bound into the ID token
    /// ([OIDC Core §3.1.2.1](https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest)).
    #[derive(Clone)]
    Nonce
);
secret_newtype!(
    /// The PKCE `code_verifier`
    /// ([RFC 7636 §4.1](https://www.rfc-editor.org/rfc/rfc7636#section-4.1)).
    ///
    /// Not `Clone`: it is created for one login and consumed by its code
    /// exchange. Create one with [`PkceVerifier::from_random_bytes`].
    PkceVerifier
);

secret_newtype!(
    /// A DPoP proof ([RFC 9449 §4](https://www.rfc-editor.org/rfc/rfc9449#section-4)):
    /// short-lived, but it lets whoever holds it make the one request it names.
    #[derive(Clone)]
    DpopProof
);

impl State {
    /// A fresh `state` from 32 caller-supplied random bytes (256 bits),
    /// base64url-encoded to 43 characters.
    pub fn from_random_bytes(bytes: &[u8; 32]) -> Self {
        Self(base64url::encode(bytes))
    }
}

impl Nonce {
    /// A fresh `nonce` from 32 caller-supplied random bytes (256 bits),
    /// base64url-encoded to 43 characters.
    pub fn from_random_bytes(bytes: &[u8; 32]) -> Self {
        Self(base64url::encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "super-secret-value-123";

    #[test]
    fn debug_hides_every_secret() {
        let cases = [
            (
                format!("{:?}", AccessToken::new(VALUE.into())),
                "AccessToken([redacted])",
            ),
            (
                format!("{:?}", RefreshToken::new(VALUE.into())),
                "RefreshToken([redacted])",
            ),
            (
                format!("{:?}", IdToken::new(VALUE.into())),
                "IdToken([redacted])",
            ),
            (
                format!("{:?}", AuthorizationCode::new(VALUE.into())),
                "AuthorizationCode([redacted])",
            ),
            (
                format!("{:?}", State::new(VALUE.into())),
                "State([redacted])",
            ),
            (
                format!("{:?}", Nonce::new(VALUE.into())),
                "Nonce([redacted])",
            ),
            (
                format!("{:?}", PkceVerifier::new(VALUE.into())),
                "PkceVerifier([redacted])",
            ),
        ];
        for (debug, expected) in cases {
            assert_eq!(debug, expected);
            assert!(!debug.contains(VALUE));
        }
        // Also when nested, e.g. inside an Option or a struct's derived Debug.
        let nested = format!("{:#?}", Some(AccessToken::new(VALUE.into())));
        assert!(!nested.contains(VALUE));
    }

    #[test]
    fn secret_returns_the_value() {
        assert_eq!(AccessToken::new(VALUE.into()).secret(), VALUE);
        assert_eq!(PkceVerifier::new(VALUE.into()).secret(), VALUE);
    }

    #[test]
    fn serde_is_transparent() {
        let json = serde_json::to_string(&RefreshToken::new(VALUE.into())).unwrap();
        assert_eq!(json, format!("\"{VALUE}\""));
        let back: PkceVerifier = serde_json::from_str(&json).unwrap();
        assert_eq!(back.secret(), VALUE);
    }

    #[test]
    fn equality_compares_the_whole_value() {
        assert_eq!(State::new("abc".into()), State::new("abc".into()));
        assert_ne!(State::new("abc".into()), State::new("abd".into()));
        assert_ne!(State::new("abc".into()), State::new("ab".into()));
        assert_ne!(Nonce::new("".into()), Nonce::new("x".into()));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"xbc", b"abc"));
    }

    #[test]
    fn state_and_nonce_from_random_bytes() {
        let state = State::from_random_bytes(&[0u8; 32]);
        assert_eq!(state.secret().len(), 43);
        assert_eq!(state.secret(), "A".repeat(43));
        let nonce = Nonce::from_random_bytes(&[0xff; 32]);
        assert_eq!(nonce.secret().len(), 43);
        assert!(nonce.secret().starts_with("____"));
    }
}
