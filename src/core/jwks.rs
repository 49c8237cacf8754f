//! The issuer's signing keys: fetched from `jwks_uri`
//! ([RFC 7517 §5](https://www.rfc-editor.org/rfc/rfc7517#section-5),
//! [OIDC Discovery §3](https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata)),
//! read ([`read_jwks`]) and kept in memory ([`JwksCache`]). When a set is
//! fetched — once for a token whose key the cached set lacks — is the
//! verification's decision ([`VerifyIdToken`](super::verify::VerifyIdToken)).

use std::cell::RefCell;

use super::error::Error;
use super::jose::{select_key, Jwk, Jwks, JwsAlgorithm};
use crate::core::ports::HttpReply;

/// The last key set fetched from the issuer, in memory for the life of the
/// client (one per tab; a tab is single-threaded, hence `RefCell`).
///
/// Never borrowed across an `await`: lookups clone the one key they return.
#[derive(Debug, Default)]
pub struct JwksCache {
    keys: RefCell<Option<Jwks>>,
}

impl JwksCache {
    /// An empty cache: the first verification fetches the key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the cached key set; the next verification fetches it again.
    pub fn clear(&self) {
        self.keys.replace(None);
    }

    /// Whether a key set is cached.
    pub fn is_cached(&self) -> bool {
        self.keys.borrow().is_some()
    }

    /// The cached key for `alg` and `kid` (see [`select_key`]), cloned so no
    /// borrow outlives the call; `None` without a cached set or a single
    /// fitting key.
    pub fn key(&self, alg: JwsAlgorithm, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.borrow();
        select_key(keys.as_ref()?, alg, kid).cloned()
    }

    /// Keeps `jwks` as the issuer's key set, replacing the cached one.
    pub fn keep(&self, jwks: Jwks) {
        self.keys.replace(Some(jwks));
    }
}

/// What a `GET jwks_uri` answered: `200` and a JWK Set
/// ([RFC 7517 §5](https://www.rfc-editor.org/rfc/rfc7517#section-5)); any
/// other answer, or none, is `jwks_unavailable`, whose reason names the URL
/// (public) and what went wrong.
pub fn read_jwks(jwks_uri: &str, answer: Result<HttpReply<Jwks>, Error>) -> Result<Jwks, Error> {
    let unavailable = |why: String| Error::JwksUnavailable {
        reason: format!("{jwks_uri}: {why}"),
    };
    match answer {
        Ok(HttpReply {
            status: 200,
            body: Ok(jwks),
            ..
        }) => Ok(jwks),
        Ok(HttpReply {
            status: 200,
            body: Err(why),
            ..
        }) => Err(unavailable(format!("not a JWK Set: {why}"))),
        Ok(HttpReply { status, .. }) => Err(unavailable(format!("HTTP {status}"))),
        Err(error) => Err(unavailable(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{raw_reply, read_body};

    const URI: &str = "https://idp.example/jwks";
    const ONE_KEY: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}"#;
    const TWO_KEYS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"k2","n":"AQAB","e":"AQAB","use":"sig"}]}"#;

    fn answered(status: u16, body: &str) -> Result<Jwks, Error> {
        read_jwks(URI, Ok(raw_reply(status, body, None).read_body(read_body)))
    }

    fn unavailable(result: Result<Jwks, Error>) -> String {
        match result {
            Err(Error::JwksUnavailable { reason }) => reason,
            other => panic!("expected jwks_unavailable, got {other:?}"),
        }
    }

    #[test]
    fn a_200_with_a_jwk_set_is_read() {
        let jwks = answered(200, TWO_KEYS).expect("a key set");
        assert_eq!(jwks.keys.len(), 2);
    }

    #[test]
    fn a_server_error_is_unavailable_naming_the_url() {
        let reason = unavailable(answered(500, r#"{"error":"oops"}"#));
        assert_eq!(reason, format!("{URI}: HTTP 500"));
    }

    #[test]
    fn a_body_that_is_not_a_jwk_set_is_unavailable() {
        for body in ["<html>", r#"{"keys":"none"}"#, r#"{"kid":"k1"}"#] {
            let reason = unavailable(answered(200, body));
            assert!(reason.contains("not a JWK Set"), "{reason}");
        }
    }

    #[test]
    fn a_network_error_is_unavailable() {
        let failed = Err(Error::Network {
            reason: "connection refused".into(),
        });
        let reason = unavailable(read_jwks(URI, failed));
        assert!(reason.starts_with(URI), "{reason}");
    }

    #[test]
    fn the_cache_serves_the_kept_set_until_cleared() {
        let cache = JwksCache::new();
        assert!(!cache.is_cached());
        assert_eq!(cache.key(JwsAlgorithm::Rs256, Some("k1")), None);
        cache.keep(answered(200, ONE_KEY).unwrap());
        assert!(cache.is_cached());
        let key = cache.key(JwsAlgorithm::Rs256, Some("k1")).expect("k1");
        assert_eq!(key.kid.as_deref(), Some("k1"));
        assert_eq!(cache.key(JwsAlgorithm::Rs256, Some("k2")), None);
        cache.keep(answered(200, TWO_KEYS).unwrap());
        assert!(cache.key(JwsAlgorithm::Rs256, Some("k2")).is_some());
        cache.clear();
        assert!(!cache.is_cached());
    }
}
