//! The one error type of latchkey, with stable string codes.
//!
//! Every failure an app can observe is a variant of [`Error`]. Each has a
//! stable [`code()`](Error::code) (`state_mismatch`, `invalid_grant`, …) that
//! JS sees as `error.code`; [`ALL_CODES`] lists them all so a test can check
//! the TypeScript union against it. Server-reported details (`error`,
//! `error_description`, `error_uri`, HTTP status) have accessors so the JS
//! binding can copy them onto the thrown `Error`.
//!
//! No variant ever carries a secret: `reason` strings are written by latchkey
//! and must only describe *what* went wrong, never include a token, code,
//! verifier, `state` or `nonce`.

use crate::core::quoted::Quoted;
use std::fmt;

/// The code of an authorization-endpoint error: the values an app reacts to
/// differently get a code of their own — `access_denied` (the user said no),
/// and OIDC's `prompt=none` answers `login_required`,
/// `interaction_required`, `consent_required` and
/// `account_selection_required` (start an interactive login)
/// ([OIDC Core §3.1.2.6](https://openid.net/specs/openid-connect-core-1_0.html#AuthError)).
/// Any other value is `authorization_error`, with the value in `error`.
pub fn authorization_error_code(error: &str) -> &'static str {
    match error {
        "access_denied" => "access_denied",
        "login_required" => "login_required",
        "interaction_required" => "interaction_required",
        "consent_required" => "consent_required",
        "account_selection_required" => "account_selection_required",
        _ => "authorization_error",
    }
}

/// The error table: each variant with its documentation, its fields and
/// its codes, written once. It makes the enum, [`ALL_CODES`] (every row's
/// codes, in order) and each variant's code; [`Error::code`] picks among a
/// row's codes where the server's answer decides.
macro_rules! error_table {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$doc:meta])*
                $variant:ident $({ $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? })?
                    => [$($code:literal),+ $(,)?],
            )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$doc])* $variant $({ $( $(#[$fdoc])* $field: $ty ),* })?, )*
        }

        /// Every distinct value [`Error::code`] can return, in declaration order.
        pub const ALL_CODES: &[&str] = &[$($($code),+),*];

        impl $name {
            /// The first code of the variant's row.
            fn table_code(&self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => [$($code),+][0], )*
                }
            }
        }
    };
}

error_table! {
/// Everything that can go wrong in latchkey. See [`Error::code`] for the
/// stable code of each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An option passed by the app is missing or invalid (`invalid_option`).
    InvalidOption {
        /// The option's name as the app spells it (e.g. `"clientId"`), or the
        /// metadata field it came from.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    } => ["invalid_option"],
    /// An endpoint is not `https` (`insecure_endpoint`). Plain `http` is
    /// accepted only for loopback hosts with `allowInsecureLoopback`.
    InsecureEndpoint {
        /// The option or metadata field naming the endpoint.
        field: &'static str,
    } => ["insecure_endpoint"],
    /// `fetchWithAuth` was asked to send the access token to an origin not
    /// in `allowedOrigins` (`origin_not_allowed`); nothing was sent.
    OriginNotAllowed {
        /// The request URL's origin (`"null"` for an opaque one), never the
        /// rest of the URL.
        origin: String,
    } => ["origin_not_allowed"],
    /// The discovery document could not be fetched or is unusable
    /// (`discovery_failed`).
    Discovery {
        /// What went wrong.
        reason: String,
    } => ["discovery_failed"],
    /// The discovered `issuer` is not exactly the configured one
    /// (`issuer_mismatch`,
    /// [RFC 8414 §3.3](https://www.rfc-editor.org/rfc/rfc8414#section-3.3)).
    IssuerMismatch => ["issuer_mismatch"],
    /// A redirect arrived but no login transaction is pending
    /// (`no_transaction`).
    NoTransaction => ["no_transaction"],
    /// The pending login transaction is too old (`transaction_expired`).
    TransactionExpired => ["transaction_expired"],
    /// The server advertises RFC 9207 but the redirect has no `iss`
    /// (`iss_missing`).
    IssMissing => ["iss_missing"],
    /// The redirect's `iss` is not the expected issuer, or is repeated
    /// (`iss_mismatch`,
    /// [RFC 9207 §2.4](https://www.rfc-editor.org/rfc/rfc9207#section-2.4)).
    IssMismatch => ["iss_mismatch"],
    /// The redirect has no `state` (`state_missing`).
    StateMissing => ["state_missing"],
    /// The redirect's `state` is not the pending one, or is repeated
    /// (`state_mismatch`).
    StateMismatch => ["state_mismatch"],
    /// The authorization server redirected back with an error
    /// ([RFC 6749 §4.1.2.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1)).
    /// The code is the server's `error` itself for the values an app
    /// branches on (see [`authorization_error_code`]), else
    /// `authorization_error`.
    AuthorizationServer {
        /// The server's `error` code, e.g. `access_denied`.
        error: String,
        /// The server's `error_description`, if any.
        error_description: Option<String>,
        /// The server's `error_uri`, if any.
        error_uri: Option<String>,
    } => [
        "authorization_error",
        "access_denied",
        "login_required",
        "interaction_required",
        "consent_required",
        "account_selection_required",
    ],
    /// The redirect has neither an error nor a single non-empty `code`
    /// (`code_missing`).
    CodeMissing => ["code_missing"],
    /// The token endpoint refused the request
    /// ([RFC 6749 §5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)).
    /// Code `invalid_grant` when `error` is `invalid_grant` (the refresh
    /// token or code is dead: the session is over), `token_error` otherwise.
    TokenEndpoint {
        /// The HTTP status of the response.
        status: u16,
        /// The server's `error` code; empty when the response carried none
        /// (e.g. a 502 with an HTML body).
        error: String,
        /// The server's `error_description`, if any.
        error_description: Option<String>,
        /// The server's `error_uri`, if any.
        error_uri: Option<String>,
        /// The response's `Retry-After`, in seconds: the server asked for
        /// no new request before then, and this tab makes none.
        retry_after_s: Option<u64>,
    } => ["invalid_grant", "token_error"],
    /// The pushed authorization request
    /// ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)) was refused, or
    /// its answer had no usable `request_uri` (`par_failed`).
    PushedAuthorization {
        /// The HTTP status of the response.
        status: u16,
        /// The server's `error` code; empty when it sent none (or answered
        /// with success but no `request_uri`).
        error: String,
        /// The server's `error_description`, if any.
        error_description: Option<String>,
    } => ["par_failed"],
    /// A successful token response is unusable (`malformed_token_response`).
    MalformedTokenResponse {
        /// What is wrong with it.
        reason: String,
    } => ["malformed_token_response"],
    /// The token type is not the one the request asked for
    /// (`unsupported_token_type`): `DPoP` when DPoP is off, or `Bearer` in
    /// answer to a DPoP request (a downgrade).
    UnsupportedTokenType {
        /// The `token_type` the server returned.
        token_type: String,
        /// The token type the request asked for.
        expected: &'static str,
    } => ["unsupported_token_type"],
    /// A DPoP nonce was refused again after the request was resent with the
    /// server's new one (`dpop_nonce_failed`).
    DpopNonceFailed => ["dpop_nonce_failed"],
    /// The session's DPoP key cannot be created, found or used
    /// (`dpop_key_unavailable`).
    DpopKeyUnavailable {
        /// What went wrong.
        reason: String,
    } => ["dpop_key_unavailable"],
    /// An AT Protocol handle is malformed or does not resolve to a DID
    /// (`handle_not_found`).
    HandleNotFound {
        /// What went wrong.
        reason: String,
    } => ["handle_not_found"],
    /// A DID's document cannot be fetched or names no usable PDS
    /// (`did_resolution_failed`).
    DidResolution {
        /// What went wrong.
        reason: String,
    } => ["did_resolution_failed"],
    /// A PDS's protected-resource metadata is missing or names no usable
    /// authorization server (`pds_metadata_invalid`).
    PdsMetadataInvalid {
        /// What went wrong.
        reason: String,
    } => ["pds_metadata_invalid"],
    /// The request did not complete (`network_error`).
    Network {
        /// What went wrong.
        reason: String,
    } => ["network_error"],
    /// Reading or writing storage failed (`storage_error`).
    Storage {
        /// What went wrong.
        reason: String,
    } => ["storage_error"],
    /// A stored record could not be read back (`corrupt_record`).
    CorruptRecord {
        /// What is wrong with it.
        reason: String,
    } => ["corrupt_record"],
    /// The stored record was written by a newer latchkey, in a format this
    /// build cannot read (`newer_record`). It is left alone: the tab works
    /// from memory and never overwrites or clears it.
    NewerRecord {
        /// The record's format version.
        version: u32,
    } => ["newer_record"],
    /// A cryptographic operation failed (`crypto_error`).
    Crypto {
        /// What went wrong.
        reason: String,
    } => ["crypto_error"],
    /// The cross-tab lock could not be taken (`lock_unavailable`).
    LockUnavailable => ["lock_unavailable"],
    /// The app's own `refresh` function threw or rejected
    /// (`refresh_failed`); the tokens are kept.
    RefreshCallback {
        /// What it threw, described.
        reason: String,
    } => ["refresh_failed"],
    /// A refresh took longer than the bounded lock hold time
    /// (`refresh_timeout`).
    RefreshTimeout => ["refresh_timeout"],
    /// There is no session (`not_authenticated`).
    NotAuthenticated => ["not_authenticated"],
    /// The session ended: the refresh token was rejected or expired
    /// (`session_expired`).
    SessionExpired => ["session_expired"],
    /// A token could not be revoked at sign-out (`revocation_failed`,
    /// [RFC 7009 §2.2](https://www.rfc-editor.org/rfc/rfc7009#section-2.2)).
    /// The local session is cleared regardless.
    RevocationFailed {
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
    } => ["revocation_failed"],
    /// The scope has `openid` but the token response has no `id_token`
    /// (`id_token_missing`, OIDC Core §3.1.3.3).
    IdTokenMissing => ["id_token_missing"],
    /// The ID token is not a well-formed JWS compact serialisation with JSON
    /// header and claims (`id_token_malformed`).
    IdTokenMalformed {
        /// What is wrong with it (never the token itself).
        reason: String,
    } => ["id_token_malformed"],
    /// The ID token's `alg` is not one latchkey verifies
    /// (`id_token_unsupported_alg`): `none` and the HMAC algorithms are
    /// always refused.
    IdTokenUnsupportedAlg {
        /// The header's `alg`.
        alg: String,
    } => ["id_token_unsupported_alg"],
    /// The issuer's key set could not be fetched or read (`jwks_unavailable`).
    JwksUnavailable {
        /// What went wrong.
        reason: String,
    } => ["jwks_unavailable"],
    /// No key of the issuer's key set matches the ID token's `kid` and `alg`,
    /// even after fetching the set again (`id_token_key_not_found`).
    IdTokenKeyNotFound => ["id_token_key_not_found"],
    /// The ID token's signature does not verify
    /// (`id_token_invalid_signature`).
    IdTokenInvalidSignature => ["id_token_invalid_signature"],
    /// The ID token's `iss` is not the issuer (`id_token_iss_mismatch`).
    IdTokenIssMismatch => ["id_token_iss_mismatch"],
    /// The ID token's `aud` does not contain the client id
    /// (`id_token_aud_mismatch`).
    IdTokenAudMismatch => ["id_token_aud_mismatch"],
    /// The ID token has several audiences and its `azp` is not the client
    /// id (`id_token_azp_mismatch`).
    IdTokenAzpMismatch => ["id_token_azp_mismatch"],
    /// The ID token's `exp` has passed, beyond the allowed clock skew
    /// (`id_token_expired`).
    IdTokenExpired => ["id_token_expired"],
    /// The ID token's `iat` is missing or after its `exp`
    /// (`id_token_iat_invalid`).
    IdTokenIatInvalid => ["id_token_iat_invalid"],
    /// The ID token's `nonce` is not the one sent with the login
    /// (`nonce_mismatch`).
    NonceMismatch => ["nonce_mismatch"],
    /// A refreshed ID token names a different user (`id_token_sub_mismatch`,
    /// OIDC Core §12.2).
    IdTokenSubMismatch => ["id_token_sub_mismatch"],
    /// The UserInfo request failed (`userinfo_failed`).
    UserinfoFailed {
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
    } => ["userinfo_failed"],
    /// The UserInfo `sub` is not the ID token's (`userinfo_sub_mismatch`,
    /// OIDC Core §5.3.2).
    UserinfoSubMismatch => ["userinfo_sub_mismatch"],
}
}

impl Error {
    /// The stable machine-readable code of this error (one of [`ALL_CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            // The server's answer picks among the variant's codes.
            Error::AuthorizationServer { error, .. } => authorization_error_code(error),
            Error::TokenEndpoint { error, .. } if error == "invalid_grant" => "invalid_grant",
            Error::TokenEndpoint { .. } => "token_error",
            other => other.table_code(),
        }
    }

    /// Shorthand for [`Error::InvalidOption`].
    pub fn invalid_option(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            field,
            reason: reason.into(),
        }
    }

    /// The OAuth `error` code the server reported, if it reported one.
    pub fn server_error(&self) -> Option<&str> {
        match self {
            Error::AuthorizationServer { error, .. }
            | Error::TokenEndpoint { error, .. }
            | Error::PushedAuthorization { error, .. }
                if !error.is_empty() =>
            {
                Some(error)
            }
            _ => None,
        }
    }

    /// The server's `error_description`, if it sent one.
    pub fn error_description(&self) -> Option<&str> {
        match self {
            Error::AuthorizationServer {
                error_description, ..
            }
            | Error::TokenEndpoint {
                error_description, ..
            }
            | Error::PushedAuthorization {
                error_description, ..
            } => error_description.as_deref(),
            _ => None,
        }
    }

    /// The server's `error_uri`, if it sent one.
    pub fn error_uri(&self) -> Option<&str> {
        match self {
            Error::AuthorizationServer { error_uri, .. }
            | Error::TokenEndpoint { error_uri, .. } => error_uri.as_deref(),
            _ => None,
        }
    }

    /// How long the token endpoint asked clients to wait (`Retry-After`),
    /// in seconds.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Error::TokenEndpoint { retry_after_s, .. } => *retry_after_s,
            _ => None,
        }
    }

    /// The HTTP status of a token endpoint error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::TokenEndpoint { status, .. } | Error::PushedAuthorization { status, .. } => {
                Some(*status)
            }
            Error::RevocationFailed { status, .. } | Error::UserinfoFailed { status, .. } => {
                *status
            }
            _ => None,
        }
    }
}

fn write_server_details(
    f: &mut fmt::Formatter<'_>,
    description: &Option<String>,
    uri: &Option<String>,
) -> fmt::Result {
    if let Some(description) = description {
        write!(f, ": {description}")?;
    }
    if let Some(uri) = uri {
        write!(f, " (see {uri})")?;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidOption { field, reason } => write!(f, "invalid option {field}: {reason}"),
            Error::InsecureEndpoint { field } => write!(
                f,
                "{field} must use https (plain http only for loopback hosts with allowInsecureLoopback)"
            ),
            Error::OriginNotAllowed { origin } => write!(
                f,
                "{origin} is not in allowedOrigins: the access token is not sent there (nothing was sent)"
            ),
            Error::Discovery { reason } => write!(f, "discovery failed: {reason}"),
            Error::IssuerMismatch => f.write_str(
                "the server is not the expected one: the discovered issuer is not exactly the configured issuer, or (AT Protocol) it is not the account's server or answered for another account",
            ),
            Error::NoTransaction => f.write_str("no login is pending for this redirect"),
            Error::TransactionExpired => f.write_str("the pending login has expired"),
            Error::IssMissing => f.write_str(
                "the authorization response has no iss parameter, but the server says it sends one",
            ),
            Error::IssMismatch => {
                f.write_str("the authorization response iss is not the expected issuer")
            }
            Error::StateMissing => f.write_str("the authorization response has no state"),
            Error::StateMismatch => {
                f.write_str("the authorization response state does not match the pending login")
            }
            Error::AuthorizationServer {
                error,
                error_description,
                error_uri,
            } => {
                write!(f, "the authorization server returned {error}")?;
                write_server_details(f, error_description, error_uri)
            }
            Error::CodeMissing => f.write_str("the authorization response has no code"),
            Error::PushedAuthorization {
                status,
                error,
                error_description,
            } => {
                if error.is_empty() && (200..300).contains(status) {
                    write!(f, "the pushed authorization response (HTTP {status}) has no usable request_uri")
                } else if error.is_empty() {
                    write!(f, "the pushed authorization request endpoint answered HTTP {status}")
                } else {
                    write!(f, "the pushed authorization request was refused: {error}")?;
                    write_server_details(f, error_description, &None)
                }
            }
            Error::TokenEndpoint {
                status,
                error,
                error_description,
                error_uri,
                ..
            } => {
                if error.is_empty() {
                    write!(f, "the token endpoint answered HTTP {status}")?;
                } else {
                    write!(f, "the token endpoint returned {error} (HTTP {status})")?;
                }
                write_server_details(f, error_description, error_uri)
            }
            Error::MalformedTokenResponse { reason } => {
                write!(f, "malformed token response: {reason}")
            }
            Error::UnsupportedTokenType {
                token_type,
                expected,
            } => {
                write!(
                    f,
                    "unsupported token type {} (this request asked for {expected})",
                    Quoted(token_type)
                )
            }
            // Also when the refusal named no nonce this page can read: the
            // server's CORS answer must expose `DPoP-Nonce`.
            Error::DpopNonceFailed => f.write_str(
                "the server refused the request for its DPoP nonce again after one resend, or named no new nonce this page can read (a cross-origin server must list DPoP-Nonce in Access-Control-Expose-Headers)",
            ),
            Error::DpopKeyUnavailable { reason } => {
                write!(f, "the session's DPoP key is unavailable: {reason}")
            }
            Error::HandleNotFound { reason } => write!(f, "handle not found: {reason}"),
            Error::DidResolution { reason } => write!(f, "DID resolution failed: {reason}"),
            Error::PdsMetadataInvalid { reason } => {
                write!(f, "the PDS's OAuth metadata is unusable: {reason}")
            }
            Error::Network { reason } => write!(f, "network error: {reason}"),
            Error::Storage { reason } => write!(f, "storage error: {reason}"),
            Error::CorruptRecord { reason } => write!(f, "corrupt stored record: {reason}"),
            Error::NewerRecord { version } => write!(
                f,
                "the stored record has format version {version}, written by a newer latchkey; left as is"
            ),
            Error::Crypto { reason } => write!(f, "crypto error: {reason}"),
            Error::LockUnavailable => f.write_str("the cross-tab lock is unavailable"),
            Error::RefreshCallback { reason } => write!(f, "the refresh function failed: {reason}"),
            Error::RefreshTimeout => f.write_str("the token refresh timed out"),
            Error::NotAuthenticated => f.write_str("not authenticated"),
            Error::SessionExpired => f.write_str("the session has expired"),
            Error::RevocationFailed { reason, .. } => {
                write!(f, "token revocation failed: {reason}")
            }
            Error::IdTokenMissing => {
                f.write_str("the scope has openid but the token response has no id_token")
            }
            Error::IdTokenMalformed { reason } => write!(f, "malformed ID token: {reason}"),
            Error::IdTokenUnsupportedAlg { alg } => write!(
                f,
                "unsupported ID token algorithm {} (RS256, PS256 or ES256)",
                Quoted(alg)
            ),
            Error::JwksUnavailable { reason } => {
                write!(f, "the issuer's key set is unavailable: {reason}")
            }
            Error::IdTokenKeyNotFound => {
                f.write_str("no key of the issuer's key set matches the ID token")
            }
            Error::IdTokenInvalidSignature => f.write_str("the ID token signature is invalid"),
            Error::IdTokenIssMismatch => f.write_str("the ID token iss is not the issuer"),
            Error::IdTokenAudMismatch => {
                f.write_str("the ID token aud does not contain the client id")
            }
            Error::IdTokenAzpMismatch => f.write_str("the ID token azp is not the client id"),
            Error::IdTokenExpired => f.write_str("the ID token has expired"),
            Error::IdTokenIatInvalid => {
                f.write_str("the ID token iat is missing or after its exp")
            }
            Error::NonceMismatch => {
                f.write_str("the ID token nonce does not match the pending login")
            }
            Error::IdTokenSubMismatch => {
                f.write_str("the refreshed ID token names a different user")
            }
            Error::UserinfoFailed { reason, .. } => write!(f, "the UserInfo request failed: {reason}"),
            Error::UserinfoSubMismatch => {
                f.write_str("the UserInfo sub is not the ID token's sub")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// One value of every variant (two of `TokenEndpoint`, which has two
    /// codes). `exhaustive` below fails to compile when a variant is added
    /// without updating this list.
    fn one_of_each() -> Vec<Error> {
        let reason = || "why".to_string();
        vec![
            Error::invalid_option("clientId", "is empty"),
            Error::InsecureEndpoint {
                field: "tokenEndpoint",
            },
            Error::OriginNotAllowed {
                origin: "https://evil.example".into(),
            },
            Error::Discovery { reason: reason() },
            Error::IssuerMismatch,
            Error::NoTransaction,
            Error::TransactionExpired,
            Error::IssMissing,
            Error::IssMismatch,
            Error::StateMissing,
            Error::StateMismatch,
            Error::AuthorizationServer {
                error: "access_denied".into(),
                error_description: Some("user said no".into()),
                error_uri: None,
            },
            Error::AuthorizationServer {
                error: "temporarily_unavailable".into(),
                error_description: None,
                error_uri: None,
            },
            Error::AuthorizationServer {
                error: "login_required".into(),
                error_description: None,
                error_uri: None,
            },
            Error::AuthorizationServer {
                error: "interaction_required".into(),
                error_description: None,
                error_uri: None,
            },
            Error::AuthorizationServer {
                error: "consent_required".into(),
                error_description: None,
                error_uri: None,
            },
            Error::AuthorizationServer {
                error: "account_selection_required".into(),
                error_description: None,
                error_uri: None,
            },
            Error::CodeMissing,
            Error::TokenEndpoint {
                status: 400,
                error: "invalid_grant".into(),
                error_description: None,
                error_uri: None,
                retry_after_s: None,
            },
            Error::TokenEndpoint {
                status: 401,
                error: "invalid_client".into(),
                error_description: None,
                error_uri: None,
                retry_after_s: None,
            },
            Error::PushedAuthorization {
                status: 400,
                error: "invalid_request".into(),
                error_description: None,
            },
            Error::MalformedTokenResponse { reason: reason() },
            Error::UnsupportedTokenType {
                token_type: "DPoP".into(),
                expected: "Bearer",
            },
            Error::DpopNonceFailed,
            Error::DpopKeyUnavailable { reason: reason() },
            Error::HandleNotFound { reason: reason() },
            Error::DidResolution { reason: reason() },
            Error::PdsMetadataInvalid { reason: reason() },
            Error::Network { reason: reason() },
            Error::Storage { reason: reason() },
            Error::CorruptRecord { reason: reason() },
            Error::NewerRecord { version: 2 },
            Error::Crypto { reason: reason() },
            Error::LockUnavailable,
            Error::RefreshCallback { reason: reason() },
            Error::RefreshTimeout,
            Error::NotAuthenticated,
            Error::SessionExpired,
            Error::RevocationFailed {
                status: Some(503),
                reason: reason(),
            },
            Error::IdTokenMissing,
            Error::IdTokenMalformed { reason: reason() },
            Error::IdTokenUnsupportedAlg { alg: "none".into() },
            Error::JwksUnavailable { reason: reason() },
            Error::IdTokenKeyNotFound,
            Error::IdTokenInvalidSignature,
            Error::IdTokenIssMismatch,
            Error::IdTokenAudMismatch,
            Error::IdTokenAzpMismatch,
            Error::IdTokenExpired,
            Error::IdTokenIatInvalid,
            Error::NonceMismatch,
            Error::IdTokenSubMismatch,
            Error::UserinfoFailed {
                status: None,
                reason: reason(),
            },
            Error::UserinfoSubMismatch,
        ]
    }

    #[test]
    fn all_codes_has_no_duplicates() {
        let unique: HashSet<_> = ALL_CODES.iter().collect();
        assert_eq!(unique.len(), ALL_CODES.len());
    }

    #[test]
    fn every_variant_code_is_listed_and_every_listed_code_is_used() {
        let produced: HashSet<&str> = one_of_each().iter().map(Error::code).collect();
        for code in &produced {
            assert!(ALL_CODES.contains(code), "{code} missing from ALL_CODES");
        }
        for code in ALL_CODES {
            assert!(produced.contains(code), "{code} is never produced");
        }
    }

    #[test]
    fn codes_are_snake_case() {
        for code in ALL_CODES {
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn token_endpoint_code_depends_on_error() {
        let e = |error: &str| Error::TokenEndpoint {
            status: 400,
            error: error.into(),
            error_description: None,
            error_uri: None,
            retry_after_s: None,
        };
        assert_eq!(e("invalid_grant").code(), "invalid_grant");
        assert_eq!(e("invalid_request").code(), "token_error");
        assert_eq!(e("").code(), "token_error");
        assert_eq!(e("").server_error(), None);
    }

    #[test]
    fn accessors_expose_server_details() {
        let e = Error::TokenEndpoint {
            status: 400,
            error: "invalid_grant".into(),
            error_description: Some("token reused".into()),
            error_uri: Some("https://idp.example/errors".into()),
            retry_after_s: None,
        };
        assert_eq!(e.server_error(), Some("invalid_grant"));
        assert_eq!(e.error_description(), Some("token reused"));
        assert_eq!(e.error_uri(), Some("https://idp.example/errors"));
        assert_eq!(e.status(), Some(400));

        let a = Error::AuthorizationServer {
            error: "access_denied".into(),
            error_description: None,
            error_uri: None,
        };
        assert_eq!(a.code(), "access_denied");
        assert_eq!(a.server_error(), Some("access_denied"));
        assert_eq!(a.status(), None);

        assert_eq!(Error::StateMismatch.server_error(), None);
        assert_eq!(Error::StateMismatch.error_description(), None);
        assert_eq!(Error::StateMismatch.error_uri(), None);
        assert_eq!(Error::StateMismatch.status(), None);
    }

    #[test]
    fn display_is_non_empty_and_std_error() {
        for e in one_of_each() {
            let text = e.to_string();
            assert!(!text.is_empty());
            let _: &dyn std::error::Error = &e;
        }
        let e = Error::TokenEndpoint {
            status: 400,
            error: "invalid_grant".into(),
            error_description: Some("expired".into()),
            error_uri: None,
            retry_after_s: None,
        };
        assert_eq!(
            e.to_string(),
            "the token endpoint returned invalid_grant (HTTP 400): expired"
        );
    }
}
