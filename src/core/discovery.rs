//! Authorization server metadata and the endpoints latchkey talks to.
//!
//! An app configures either an `issuer` (and latchkey discovers the
//! endpoints, [OIDC Discovery 1.0 §4](https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig),
//! [RFC 8414 §3](https://www.rfc-editor.org/rfc/rfc8414#section-3)) or the
//! endpoints themselves. Either way the result is one [`Endpoints`] value whose
//! URLs have all passed [`check_endpoint_url`]. Fetching is the platform's
//! job; this module only builds the URLs to try and validates what came back.

use serde::{Deserialize, Serialize};

use super::error::Error;
use super::pkce::PKCE_METHOD;

/// The subset of authorization server metadata latchkey uses
/// ([RFC 8414 §2](https://www.rfc-editor.org/rfc/rfc8414#section-2),
/// [OIDC Discovery §3](https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata)).
/// Unknown fields are ignored; missing required fields deserialise as empty
/// strings and are reported by [`validate`](ProviderMetadata::validate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderMetadata {
    /// The issuer identifier; must equal the configured issuer exactly.
    pub issuer: String,
    /// The authorization endpoint (required).
    pub authorization_endpoint: String,
    /// The token endpoint (required: latchkey uses the code flow).
    pub token_endpoint: String,
    /// The token revocation endpoint ([RFC 7009](https://www.rfc-editor.org/rfc/rfc7009)).
    pub revocation_endpoint: Option<String>,
    /// The RP-initiated logout endpoint
    /// ([OIDC RP-Initiated Logout §2.1](https://openid.net/specs/openid-connect-rpinitiated-1_0.html#OPMetadata)).
    pub end_session_endpoint: Option<String>,
    /// The JSON Web Key Set document.
    pub jwks_uri: Option<String>,
    /// The OIDC UserInfo endpoint.
    pub userinfo_endpoint: Option<String>,
    /// PKCE methods the server supports; when present it must list `S256`.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Whether authorization responses carry `iss`
    /// ([RFC 9207 §3](https://www.rfc-editor.org/rfc/rfc9207#section-3));
    /// when true, a redirect without `iss` is rejected.
    pub authorization_response_iss_parameter_supported: bool,
    /// The pushed authorization request endpoint
    /// ([RFC 9126 §5](https://www.rfc-editor.org/rfc/rfc9126#section-5)).
    pub pushed_authorization_request_endpoint: Option<String>,
    /// Whether the server accepts authorization requests only through PAR.
    pub require_pushed_authorization_requests: bool,
    /// The JWS algorithms the server accepts in DPoP proofs
    /// ([RFC 9449 §5.1](https://www.rfc-editor.org/rfc/rfc9449#section-5.1)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// Splits `scheme://authority/path` into (`scheme://authority`, `/path`).
/// The path is empty when there is none.
fn split_origin(url: &str) -> (&str, &str) {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    match url[authority_start..].find(['/', '?', '#']) {
        Some(i) => url.split_at(authority_start + i),
        None => (url, ""),
    }
}

/// The metadata URLs to try for an issuer, in order:
///
/// 1. OpenID Connect: `{issuer}/.well-known/openid-configuration`, a trailing
///    `/` of the issuer removed first
///    ([OIDC Discovery §4](https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationRequest)).
/// 2. RFC 8414: `{origin}/.well-known/oauth-authorization-server{path}`, the
///    well-known segment inserted between the host and the issuer's path
///    (terminating `/` removed)
///    ([RFC 8414 §3.1](https://www.rfc-editor.org/rfc/rfc8414#section-3.1)).
///
/// The issuer is assumed to have passed [`check_endpoint_url`].
pub fn discovery_urls(issuer: &str) -> [String; 2] {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = split_origin(trimmed);
    [
        format!("{trimmed}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ]
}

impl ProviderMetadata {
    /// Validates fetched metadata against the configured issuer
    /// ([RFC 8414 §3.3](https://www.rfc-editor.org/rfc/rfc8414#section-3.3),
    /// [OIDC Discovery §4.3](https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationValidation)):
    ///
    /// 1. `issuer` equals `configured_issuer` exactly, no normalisation
    ///    (`issuer_mismatch`);
    /// 2. `authorization_endpoint` and `token_endpoint` are present
    ///    (`discovery_failed`);
    /// 3. if `code_challenge_methods_supported` is present it lists `S256`
    ///    (`discovery_failed`).
    ///
    /// Endpoint URLs are checked by [`Endpoints::from_metadata`].
    pub fn validate(self, configured_issuer: &str) -> Result<ProviderMetadata, Error> {
        if self.issuer != configured_issuer {
            return Err(Error::IssuerMismatch);
        }
        for (name, value) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
        ] {
            if value.is_empty() {
                return Err(Error::Discovery {
                    reason: format!("the metadata has no {name}"),
                });
            }
        }
        if let Some(methods) = &self.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == PKCE_METHOD) {
                return Err(Error::Discovery {
                    reason: "the server does not support PKCE with S256".into(),
                });
            }
        }
        Ok(self)
    }
}

/// Endpoint URLs the app set explicitly (`authorizationEndpoint`, …). Each
/// one set wins over the discovered value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// `authorizationEndpoint`.
    pub authorization: Option<String>,
    /// `tokenEndpoint`.
    pub token: Option<String>,
    /// `revocationEndpoint`.
    pub revocation: Option<String>,
    /// `endSessionEndpoint`.
    pub end_session: Option<String>,
    /// `jwksUri`.
    pub jwks_uri: Option<String>,
    /// `userinfoEndpoint`.
    pub userinfo: Option<String>,
    /// `pushedAuthorizationRequestEndpoint`.
    pub par: Option<String>,
}

/// The endpoints a client uses, every URL checked by [`check_endpoint_url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Authorization endpoint ([RFC 6749 §3.1](https://www.rfc-editor.org/rfc/rfc6749#section-3.1)).
    pub authorization: String,
    /// Token endpoint ([RFC 6749 §3.2](https://www.rfc-editor.org/rfc/rfc6749#section-3.2)).
    pub token: String,
    /// Revocation endpoint ([RFC 7009 §2](https://www.rfc-editor.org/rfc/rfc7009#section-2)).
    pub revocation: Option<String>,
    /// RP-initiated logout endpoint.
    pub end_session: Option<String>,
    /// JWK Set URL.
    pub jwks_uri: Option<String>,
    /// UserInfo endpoint.
    pub userinfo: Option<String>,
    /// Pushed authorization request endpoint
    /// ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)).
    #[serde(default)]
    pub par: Option<String>,
    /// Whether the server takes authorization requests only through PAR.
    #[serde(default)]
    pub par_required: bool,
    /// Whether redirects must carry `iss`
    /// ([RFC 9207](https://www.rfc-editor.org/rfc/rfc9207)); passed to
    /// `validate_callback` as `iss_required`.
    pub iss_parameter_supported: bool,
}

/// Picks the override (checked under its option name) or the discovered value
/// (checked under its metadata name).
fn pick(
    override_value: Option<String>,
    option_name: &'static str,
    discovered: Option<String>,
    metadata_name: &'static str,
    allow_insecure_loopback: bool,
) -> Result<Option<String>, Error> {
    let (value, field) = match (override_value, discovered) {
        (Some(v), _) => (v, option_name),
        (None, Some(v)) => (v, metadata_name),
        (None, None) => return Ok(None),
    };
    check_endpoint_url(field, &value, allow_insecure_loopback)?;
    Ok(Some(value))
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

impl Endpoints {
    /// The pushed authorization request endpoint when logins go through
    /// PAR ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)): when the app
    /// asked for it (`asked`) or the server requires it. `invalid_option`
    /// when PAR is needed and the server has no such endpoint.
    pub fn par_endpoint(&self, asked: bool) -> Result<Option<&str>, Error> {
        if !asked && !self.par_required {
            return Ok(None);
        }
        self.par.as_deref().map(Some).ok_or_else(|| {
            Error::invalid_option(
                "par",
                "the issuer has no pushed_authorization_request_endpoint (give pushedAuthorizationRequestEndpoint)",
            )
        })
    }

    /// Endpoints from validated metadata (see [`ProviderMetadata::validate`]),
    /// each explicit override replacing the discovered URL. Every URL is
    /// checked with [`check_endpoint_url`]; an error names the option
    /// (`tokenEndpoint`) for an override and the metadata field
    /// (`token_endpoint`) for a discovered URL.
    pub fn from_metadata(
        metadata: ProviderMetadata,
        overrides: EndpointOverrides,
        allow_insecure_loopback: bool,
    ) -> Result<Endpoints, Error> {
        let loopback = allow_insecure_loopback;
        let required = |o, on, d: String, dn| -> Result<String, Error> {
            pick(o, on, non_empty(d), dn, loopback)?.ok_or(Error::Discovery {
                reason: format!("the metadata has no {dn}"),
            })
        };
        Ok(Endpoints {
            authorization: required(
                overrides.authorization,
                "authorizationEndpoint",
                metadata.authorization_endpoint,
                "authorization_endpoint",
            )?,
            token: required(
                overrides.token,
                "tokenEndpoint",
                metadata.token_endpoint,
                "token_endpoint",
            )?,
            revocation: pick(
                overrides.revocation,
                "revocationEndpoint",
                metadata.revocation_endpoint,
                "revocation_endpoint",
                loopback,
            )?,
            end_session: pick(
                overrides.end_session,
                "endSessionEndpoint",
                metadata.end_session_endpoint,
                "end_session_endpoint",
                loopback,
            )?,
            jwks_uri: pick(
                overrides.jwks_uri,
                "jwksUri",
                metadata.jwks_uri,
                "jwks_uri",
                loopback,
            )?,
            userinfo: pick(
                overrides.userinfo,
                "userinfoEndpoint",
                metadata.userinfo_endpoint,
                "userinfo_endpoint",
                loopback,
            )?,
            par: pick(
                overrides.par,
                "pushedAuthorizationRequestEndpoint",
                metadata.pushed_authorization_request_endpoint,
                "pushed_authorization_request_endpoint",
                loopback,
            )?,
            par_required: metadata.require_pushed_authorization_requests,
            iss_parameter_supported: metadata.authorization_response_iss_parameter_supported,
        })
    }

    /// Endpoints configured explicitly, without discovery. The authorization
    /// and token endpoints are required (`invalid_option` naming
    /// `authorizationEndpoint` / `tokenEndpoint`); every URL is checked with
    /// [`check_endpoint_url`]. `iss_parameter_supported` is false.
    pub fn from_explicit(
        overrides: EndpointOverrides,
        allow_insecure_loopback: bool,
    ) -> Result<Endpoints, Error> {
        let loopback = allow_insecure_loopback;
        let required = |value: Option<String>, field| -> Result<String, Error> {
            let value = value.ok_or_else(|| {
                Error::invalid_option(field, "is required when no issuer is configured")
            })?;
            check_endpoint_url(field, &value, loopback)?;
            Ok(value)
        };
        let optional = |value, field| pick(value, field, None, field, loopback);
        Ok(Endpoints {
            authorization: required(overrides.authorization, "authorizationEndpoint")?,
            token: required(overrides.token, "tokenEndpoint")?,
            revocation: optional(overrides.revocation, "revocationEndpoint")?,
            end_session: optional(overrides.end_session, "endSessionEndpoint")?,
            jwks_uri: optional(overrides.jwks_uri, "jwksUri")?,
            userinfo: optional(overrides.userinfo, "userinfoEndpoint")?,
            par: optional(overrides.par, "pushedAuthorizationRequestEndpoint")?,
            par_required: false,
            iss_parameter_supported: false,
        })
    }
}

fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// Splits an authority into host and optional port, checking both.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    let (host, rest) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or("has an unterminated IPv6 host")?;
        let (host, rest) = authority.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        {
            return Err("has an invalid IPv6 host");
        }
        (host, rest)
    } else {
        match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if !host.starts_with('[') && !host.bytes().all(is_reg_name_char) {
        return Err("has an invalid host");
    }
    if rest.is_empty() {
        return Ok((host, None));
    }
    let port = rest.strip_prefix(':').ok_or("has an invalid host")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err()
    {
        return Err("has an invalid port");
    }
    Ok((host, Some(port)))
}

/// Checks that an endpoint (or issuer) URL is an absolute `https` URL
/// ([RFC 6749 §3.1](https://www.rfc-editor.org/rfc/rfc6749#section-3.1),
/// [§3.2](https://www.rfc-editor.org/rfc/rfc6749#section-3.2): TLS required,
/// no fragment; [RFC 8252 §8.3](https://www.rfc-editor.org/rfc/rfc8252#section-8.3)
/// for loopback).
///
/// - `https://host[:port][/path][?query]` → `Ok`.
/// - `http://127.0.0.1`, `http://[::1]` or `http://localhost` (any port) →
///   `Ok` only when `allow_insecure_loopback`, else `insecure_endpoint`.
/// - any other `http` URL → `insecure_endpoint`.
/// - not absolute, another scheme, no host, a bad port, user info
///   (`user@host`), a fragment, whitespace or control characters →
///   `invalid_option` naming `field`.
///
/// String-based on purpose (no URL parser in the core); it accepts a strict
/// subset of what browsers accept.
pub fn check_endpoint_url(
    field: &'static str,
    url: &str,
    allow_insecure_loopback: bool,
) -> Result<(), Error> {
    let invalid = |reason: &str| Error::invalid_option(field, format!("URL {reason}"));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains whitespace or control characters"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("is not absolute"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(invalid("must use https"));
    }
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if tail.starts_with('\\') {
        return Err(invalid("has an invalid host"));
    }
    if tail.contains('#') {
        return Err(invalid("must not contain a fragment"));
    }
    if authority.contains('@') {
        return Err(invalid("must not contain user information"));
    }
    let (host, _port) = split_host_port(authority).map_err(invalid)?;
    if scheme == "https" {
        return Ok(());
    }
    let loopback = host == "127.0.0.1" || host == "[::1]" || host.eq_ignore_ascii_case("localhost");
    if loopback && allow_insecure_loopback {
        Ok(())
    } else {
        Err(Error::InsecureEndpoint { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example.com";

    fn metadata_json() -> serde_json::Value {
        serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.example.com/authorize",
            "token_endpoint": "https://idp.example.com/token",
            "revocation_endpoint": "https://idp.example.com/revoke",
            "end_session_endpoint": "https://idp.example.com/logout",
            "jwks_uri": "https://idp.example.com/jwks",
            "code_challenge_methods_supported": ["plain", "S256"],
            "authorization_response_iss_parameter_supported": true,
            "response_types_supported": ["code"],
            "some_future_field": {"nested": [1, 2, 3]}
        })
    }

    fn metadata() -> ProviderMetadata {
        serde_json::from_value(metadata_json()).unwrap()
    }

    #[test]
    fn parses_metadata_and_ignores_unknown_fields() {
        let m = metadata();
        assert_eq!(m.issuer, ISSUER);
        assert_eq!(m.token_endpoint, "https://idp.example.com/token");
        assert_eq!(m.userinfo_endpoint, None);
        assert!(m.authorization_response_iss_parameter_supported);
    }

    #[test]
    fn iss_parameter_supported_defaults_to_false() {
        let mut json = metadata_json();
        json.as_object_mut()
            .unwrap()
            .remove("authorization_response_iss_parameter_supported");
        let m: ProviderMetadata = serde_json::from_value(json).unwrap();
        assert!(!m.authorization_response_iss_parameter_supported);
    }

    #[test]
    fn discovery_urls_without_path() {
        let expected = [
            "https://idp.example.com/.well-known/openid-configuration",
            "https://idp.example.com/.well-known/oauth-authorization-server",
        ];
        assert_eq!(discovery_urls("https://idp.example.com"), expected);
        assert_eq!(discovery_urls("https://idp.example.com/"), expected);
    }

    #[test]
    fn discovery_urls_with_path_insert_the_well_known_segment() {
        // RFC 8414 §3.1 example: https://example.com/issuer1
        assert_eq!(
            discovery_urls("https://example.com/issuer1"),
            [
                "https://example.com/issuer1/.well-known/openid-configuration",
                "https://example.com/.well-known/oauth-authorization-server/issuer1",
            ]
        );
        assert_eq!(
            discovery_urls("http://127.0.0.1:8080/realms/demo/"),
            [
                "http://127.0.0.1:8080/realms/demo/.well-known/openid-configuration",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/realms/demo",
            ]
        );
    }

    #[test]
    fn validate_accepts_matching_metadata() {
        assert_eq!(metadata().validate(ISSUER).unwrap(), metadata());
    }

    #[test]
    fn validate_requires_the_exact_issuer() {
        for configured in [
            "https://idp.example.com/",
            "https://IDP.example.com",
            "https://other.example.com",
        ] {
            assert_eq!(
                metadata().validate(configured),
                Err(Error::IssuerMismatch),
                "{configured}"
            );
        }
    }

    #[test]
    fn validate_requires_authorization_and_token_endpoints() {
        for field in ["authorization_endpoint", "token_endpoint"] {
            let mut json = metadata_json();
            json.as_object_mut().unwrap().remove(field);
            let m: ProviderMetadata = serde_json::from_value(json).unwrap();
            let err = m.validate(ISSUER).unwrap_err();
            assert_eq!(err.code(), "discovery_failed");
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn validate_requires_s256_when_methods_are_listed() {
        let mut m = metadata();
        m.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert_eq!(m.validate(ISSUER).unwrap_err().code(), "discovery_failed");
        let mut m = metadata();
        m.code_challenge_methods_supported = None;
        assert!(m.validate(ISSUER).is_ok());
    }

    #[test]
    fn endpoints_from_metadata_with_overrides() {
        let overrides = EndpointOverrides {
            token: Some("https://proxy.example.com/token".into()),
            userinfo: Some("https://idp.example.com/me".into()),
            ..Default::default()
        };
        let e = Endpoints::from_metadata(metadata(), overrides, false).unwrap();
        assert_eq!(e.authorization, "https://idp.example.com/authorize");
        assert_eq!(e.token, "https://proxy.example.com/token");
        assert_eq!(
            e.revocation.as_deref(),
            Some("https://idp.example.com/revoke")
        );
        assert_eq!(
            e.end_session.as_deref(),
            Some("https://idp.example.com/logout")
        );
        assert_eq!(e.jwks_uri.as_deref(), Some("https://idp.example.com/jwks"));
        assert_eq!(e.userinfo.as_deref(), Some("https://idp.example.com/me"));
        assert!(e.iss_parameter_supported);
    }

    #[test]
    fn endpoints_from_metadata_check_urls_and_name_the_source() {
        let mut m = metadata();
        m.revocation_endpoint = Some("http://idp.example.com/revoke".into());
        assert_eq!(
            Endpoints::from_metadata(m, EndpointOverrides::default(), false),
            Err(Error::InsecureEndpoint {
                field: "revocation_endpoint"
            })
        );
        let overrides = EndpointOverrides {
            token: Some("/token".into()),
            ..Default::default()
        };
        let err = Endpoints::from_metadata(metadata(), overrides, false).unwrap_err();
        assert_eq!(err.code(), "invalid_option");
        assert!(matches!(
            err,
            Error::InvalidOption {
                field: "tokenEndpoint",
                ..
            }
        ));
    }

    #[test]
    fn endpoints_from_explicit_require_authorization_and_token() {
        let full = EndpointOverrides {
            authorization: Some("https://as.example/authorize".into()),
            token: Some("https://as.example/token".into()),
            revocation: Some("https://as.example/revoke".into()),
            ..Default::default()
        };
        let e = Endpoints::from_explicit(full.clone(), false).unwrap();
        assert_eq!(e.token, "https://as.example/token");
        assert_eq!(e.revocation.as_deref(), Some("https://as.example/revoke"));
        assert_eq!(e.end_session, None);
        assert!(!e.iss_parameter_supported);

        let mut no_auth = full.clone();
        no_auth.authorization = None;
        assert!(matches!(
            Endpoints::from_explicit(no_auth, false),
            Err(Error::InvalidOption {
                field: "authorizationEndpoint",
                ..
            })
        ));
        let mut no_token = full.clone();
        no_token.token = None;
        assert!(matches!(
            Endpoints::from_explicit(no_token, false),
            Err(Error::InvalidOption {
                field: "tokenEndpoint",
                ..
            })
        ));
        let mut insecure = full;
        insecure.end_session = Some("http://as.example/logout".into());
        assert_eq!(
            Endpoints::from_explicit(insecure, false),
            Err(Error::InsecureEndpoint {
                field: "endSessionEndpoint"
            })
        );
    }

    #[test]
    fn https_urls_are_accepted() {
        for url in [
            "https://idp.example.com",
            "https://idp.example.com/",
            "https://idp.example.com:8443/realms/x/protocol/openid-connect/auth?kc=1",
            "HTTPS://idp.example.com/token",
            "https://[2001:db8::1]:443/token",
            "https://localhost/token",
        ] {
            assert_eq!(
                check_endpoint_url("tokenEndpoint", url, false),
                Ok(()),
                "{url}"
            );
        }
    }

    #[test]
    fn loopback_http_needs_the_switch() {
        for url in [
            "http://127.0.0.1:9000/token",
            "http://[::1]:9000/token",
            "http://localhost:3000/token",
            "http://LOCALHOST/token",
            "http://127.0.0.1",
        ] {
            assert_eq!(
                check_endpoint_url("tokenEndpoint", url, true),
                Ok(()),
                "{url}"
            );
            assert_eq!(
                check_endpoint_url("tokenEndpoint", url, false),
                Err(Error::InsecureEndpoint {
                    field: "tokenEndpoint"
                }),
                "{url}"
            );
        }
    }

    #[test]
    fn other_http_is_insecure_even_with_the_switch() {
        for url in [
            "http://idp.example.com/token",
            "http://localhost.evil.example/token",
            "http://127.0.0.2/token",
            "http://10.0.0.1/token",
        ] {
            assert_eq!(
                check_endpoint_url("tokenEndpoint", url, true),
                Err(Error::InsecureEndpoint {
                    field: "tokenEndpoint"
                }),
                "{url}"
            );
        }
    }

    #[test]
    fn malformed_urls_are_invalid_options() {
        for url in [
            "",
            "/token",
            "idp.example.com/token",
            "ftp://idp.example.com/token",
            "javascript://alert(1)",
            "https://",
            "https:///token",
            "https://idp.example.com/token#frag",
            "https://user:pw@idp.example.com/token",
            "http://127.0.0.1@evil.example/token",
            "https://idp.example.com:99999/token",
            "https://idp.example.com:/token",
            "https://idp.example.com:80x/token",
            "https://idp .example.com/token",
            "https://idp.example.com/to ken",
            "https://[::1/token",
            "https://[]/token",
            "https://idp.example.com\\@evil.example/token",
        ] {
            let err = check_endpoint_url("tokenEndpoint", url, true).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidOption {
                        field: "tokenEndpoint",
                        ..
                    }
                ),
                "{url}: {err:?}"
            );
        }
    }
}
