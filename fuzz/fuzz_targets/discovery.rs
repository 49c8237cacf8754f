//! The discovery document: JSON parsed as `ProviderMetadata` (serde_json
//! standing in for `JSON.parse` + `serde_wasm_bindgen`), validated against
//! the configured issuer, and turned into checked `Endpoints`.
//!
//! Input: the metadata document, any bytes.
//!
//! Properties: never panics; metadata round-trips through JSON;
//! `validate` and `Endpoints::from_metadata` give exactly what independent
//! models of their documented rules predict; every URL that
//! `check_endpoint_url` accepts is an absolute https URL (or, only when
//! allowed, http on a loopback host) without user information, fragment,
//! whitespace or control characters; allowing loopback never rejects a
//! URL that was accepted without it; and `discovery_urls` of an accepted
//! issuer are the two well-known locations.
#![no_main]

use libfuzzer_sys::fuzz_target;

use latchkey::core::{
    check_endpoint_url, discovery_urls, EndpointOverrides, Endpoints, Error, ProviderMetadata,
};
use latchkey::core::ports::Json;
use latchkey_fuzz::{SerdeJson, ISSUER};

/// `validate`'s documented checks, in order.
fn model_validate(metadata: &ProviderMetadata, configured: &str) -> Result<(), &'static str> {
    if metadata.issuer != configured {
        return Err("issuer_mismatch");
    }
    if metadata.authorization_endpoint.is_empty() || metadata.token_endpoint.is_empty() {
        return Err("discovery_failed");
    }
    if let Some(methods) = &metadata.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == "S256") {
            return Err("discovery_failed");
        }
    }
    Ok(())
}

/// `from_metadata` without overrides: every present URL checked under its
/// metadata name, in field order; the first failure wins.
fn model_endpoints(metadata: &ProviderMetadata, loopback: bool) -> Result<Endpoints, Error> {
    let urls: [(&'static str, Option<&String>); 7] = [
        (
            "authorization_endpoint",
            Some(&metadata.authorization_endpoint),
        ),
        ("token_endpoint", Some(&metadata.token_endpoint)),
        ("revocation_endpoint", metadata.revocation_endpoint.as_ref()),
        (
            "end_session_endpoint",
            metadata.end_session_endpoint.as_ref(),
        ),
        ("jwks_uri", metadata.jwks_uri.as_ref()),
        ("userinfo_endpoint", metadata.userinfo_endpoint.as_ref()),
        (
            "pushed_authorization_request_endpoint",
            metadata.pushed_authorization_request_endpoint.as_ref(),
        ),
    ];
    for (field, url) in urls {
        if let Some(url) = url {
            check_endpoint_url(field, url, loopback)?;
        }
    }
    Ok(Endpoints {
        authorization: metadata.authorization_endpoint.clone(),
        token: metadata.token_endpoint.clone(),
        revocation: metadata.revocation_endpoint.clone(),
        end_session: metadata.end_session_endpoint.clone(),
        jwks_uri: metadata.jwks_uri.clone(),
        userinfo: metadata.userinfo_endpoint.clone(),
        par: metadata.pushed_authorization_request_endpoint.clone(),
        par_required: metadata.require_pushed_authorization_requests,
        iss_parameter_supported: metadata.authorization_response_iss_parameter_supported,
    })
}

/// What an accepted URL must look like.
fn assert_acceptable(url: &str, loopback_allowed: bool) {
    assert!(
        !url.chars().any(|c| c.is_whitespace() || c.is_control()),
        "accepted a URL with whitespace or a control character: {url:?}"
    );
    assert!(!url.contains('#'), "accepted a fragment: {url:?}");
    let (scheme, rest) = url.split_once("://").expect("accepted a relative URL");
    let authority = &rest[..rest.find(['/', '?', '\\']).unwrap_or(rest.len())];
    assert!(
        !authority.is_empty(),
        "accepted a URL without host: {url:?}"
    );
    assert!(!authority.contains('@'), "accepted user info: {url:?}");
    if scheme.eq_ignore_ascii_case("https") {
        return;
    }
    assert!(
        loopback_allowed && scheme.eq_ignore_ascii_case("http"),
        "accepted scheme {scheme:?}"
    );
    let host = if authority.starts_with('[') {
        &authority[..authority.find(']').map_or(authority.len(), |i| i + 1)]
    } else {
        authority.split(':').next().unwrap_or("")
    };
    assert!(
        host == "127.0.0.1" || host == "[::1]" || host.eq_ignore_ascii_case("localhost"),
        "accepted plain http to {host:?}"
    );
}

fn check_url(url: &str) {
    let strict = check_endpoint_url("issuer", url, false);
    let relaxed = check_endpoint_url("issuer", url, true);
    if strict.is_ok() {
        assert_acceptable(url, false);
        assert!(relaxed.is_ok(), "allowing loopback rejected {url:?}");
        let [oidc, rfc8414] = discovery_urls(url);
        let trimmed = url.trim_end_matches('/');
        assert_eq!(oidc, format!("{trimmed}/.well-known/openid-configuration"));
        let (scheme, rest) = trimmed.split_once("://").expect("absolute");
        let path_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        assert_eq!(
            rfc8414,
            format!(
                "{scheme}://{}/.well-known/oauth-authorization-server{}",
                &rest[..path_start],
                &rest[path_start..]
            )
        );
    }
    match &relaxed {
        Ok(()) => assert_acceptable(url, true),
        Err(error) => assert!(
            ["invalid_option", "insecure_endpoint"].contains(&error.code()),
            "unexpected error {error:?}"
        ),
    }
    if let (Err(strict), Ok(())) = (&strict, &relaxed) {
        assert_eq!(strict.code(), "insecure_endpoint");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(metadata) = SerdeJson.parse_json::<ProviderMetadata>(text) else {
        return;
    };

    // Metadata (also cached by the app) round-trips through JSON.
    let json = serde_json::to_string(&metadata).expect("metadata serialises");
    let read: ProviderMetadata = SerdeJson.parse_json(&json).expect("and reads back");
    assert_eq!(read, metadata);

    for url in [
        Some(&metadata.issuer),
        Some(&metadata.authorization_endpoint),
        Some(&metadata.token_endpoint),
        metadata.revocation_endpoint.as_ref(),
        metadata.end_session_endpoint.as_ref(),
        metadata.jwks_uri.as_ref(),
        metadata.userinfo_endpoint.as_ref(),
        metadata.pushed_authorization_request_endpoint.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        check_url(url);
    }

    for configured in [ISSUER, metadata.issuer.as_str()] {
        let validated = metadata.clone().validate(configured);
        match (&validated, model_validate(&metadata, configured)) {
            (Ok(v), Ok(())) => assert_eq!(v, &metadata),
            (Err(e), Err(code)) => assert_eq!(e.code(), code, "{e:?}"),
            (got, want) => panic!("validate gave {got:?}, the model {want:?}"),
        }
        let Ok(validated) = validated else {
            continue;
        };
        let mut accepted_strictly = None;
        for loopback in [false, true] {
            let endpoints =
                Endpoints::from_metadata(validated.clone(), EndpointOverrides::default(), loopback);
            assert_eq!(endpoints, model_endpoints(&validated, loopback));
            if let Ok(endpoints) = &endpoints {
                let json = serde_json::to_string(endpoints).expect("endpoints serialise");
                let read: Endpoints = SerdeJson.parse_json(&json).expect("and read back");
                assert_eq!(&read, endpoints);
            }
            if loopback {
                if let Some(strict) = &accepted_strictly {
                    assert_eq!(
                        endpoints.as_ref(),
                        Ok(strict),
                        "loopback changed the result"
                    );
                }
            } else {
                accepted_strictly = endpoints.ok();
            }
        }

        // An explicit override wins over the discovered URL, and is checked
        // under its option name.
        let overrides = EndpointOverrides {
            token: Some(validated.authorization_endpoint.clone()),
            ..EndpointOverrides::default()
        };
        if let Ok(endpoints) = Endpoints::from_metadata(validated.clone(), overrides, false) {
            assert_eq!(endpoints.token, validated.authorization_endpoint);
        }
    }
});
