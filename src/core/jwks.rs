//! The issuer's signing keys: fetched from `jwks_uri`
//! ([RFC 7517 §5](https://www.rfc-editor.org/rfc/rfc7517#section-5),
//! [OIDC Discovery §3](https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata)),
//! kept in memory, and fetched again once when a token names a key the
//! cached set does not have — issuers rotate keys, publishing the new one
//! before they sign with it ([OIDC Core §10.1.1](https://openid.net/specs/openid-connect-core-1_0.html#RotateSigKeys)).

use std::cell::RefCell;

use super::error::Error;
use super::jose::{select_key, Jwk, Jwks, JwsAlgorithm};
use crate::core::ports::{Http, HttpReply};

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
    /// borrow outlives the call.
    fn select(&self, alg: JwsAlgorithm, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.borrow();
        select_key(keys.as_ref()?, alg, kid).cloned()
    }

    /// The key that verifies a token signed with `alg` under `kid`:
    ///
    /// 1. from the cached set, when it has exactly one fitting key;
    /// 2. otherwise the set is fetched from `jwks_uri` once, replacing the
    ///    cache, and searched again; still nothing is
    ///    `id_token_key_not_found`. One fetch per call, never a loop.
    ///
    /// No `jwks_uri` when a fetch is needed, or a fetch that fails (network
    /// error, non-200 status, a body that is not a JWK Set), is
    /// `jwks_unavailable`; a failed fetch keeps the previously cached set.
    pub async fn key_for<H: Http>(
        &self,
        http: &H,
        jwks_uri: Option<&str>,
        alg: JwsAlgorithm,
        kid: Option<&str>,
    ) -> Result<Jwk, Error> {
        if let Some(key) = self.select(alg, kid) {
            return Ok(key);
        }
        let uri = jwks_uri.ok_or_else(|| Error::JwksUnavailable {
            reason: "the issuer has no jwks_uri".into(),
        })?;
        let fresh = fetch_jwks(http, uri).await?;
        self.keys.replace(Some(fresh));
        self.select(alg, kid).ok_or(Error::IdTokenKeyNotFound)
    }
}

/// `GET jwks_uri`, expecting `200` and a JWK Set
/// ([RFC 7517 §5](https://www.rfc-editor.org/rfc/rfc7517#section-5)); any
/// failure is `jwks_unavailable`, whose reason names the URL (public) and
/// what went wrong.
pub async fn fetch_jwks<H: Http>(http: &H, jwks_uri: &str) -> Result<Jwks, Error> {
    let unavailable = |why: String| Error::JwksUnavailable {
        reason: format!("{jwks_uri}: {why}"),
    };
    match http.get_json::<Jwks>(jwks_uri).await {
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
    use crate::core::fakes::{block_on, FakePlatform};

    const URI: &str = "https://idp.example/jwks";
    const ONE_KEY: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}"#;
    const TWO_KEYS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"k2","n":"AQAB","e":"AQAB","use":"sig"}]}"#;

    fn key_for(
        platform: &FakePlatform,
        cache: &JwksCache,
        uri: Option<&str>,
        kid: &str,
    ) -> Result<Jwk, Error> {
        block_on(cache.key_for(platform, uri, JwsAlgorithm::Rs256, Some(kid)))
    }

    fn unavailable(result: Result<Jwk, Error>) -> String {
        match result {
            Err(Error::JwksUnavailable { reason }) => reason,
            other => panic!("expected jwks_unavailable, got {other:?}"),
        }
    }

    #[test]
    fn fetches_once_then_serves_from_the_cache() {
        let platform = FakePlatform::default();
        let cache = JwksCache::new();
        assert!(!cache.is_cached());
        platform.expect_get(URI, 200, ONE_KEY);
        assert_eq!(
            key_for(&platform, &cache, Some(URI), "k1")
                .unwrap()
                .kid
                .as_deref(),
            Some("k1")
        );
        assert!(cache.is_cached());
        // No request scripted: a second fetch would fail the test.
        assert!(key_for(&platform, &cache, Some(URI), "k1").is_ok());
    }

    #[test]
    fn an_unknown_kid_refetches_once() {
        let platform = FakePlatform::default();
        let cache = JwksCache::new();
        platform.expect_get(URI, 200, ONE_KEY);
        key_for(&platform, &cache, Some(URI), "k1").unwrap();
        platform.expect_get(URI, 200, TWO_KEYS);
        let key = key_for(&platform, &cache, Some(URI), "k2").unwrap();
        assert_eq!(key.kid.as_deref(), Some("k2"));
    }

    #[test]
    fn a_kid_missing_after_the_refetch_is_not_found() {
        let platform = FakePlatform::default();
        let cache = JwksCache::new();
        platform.expect_get(URI, 200, ONE_KEY);
        assert_eq!(
            key_for(&platform, &cache, Some(URI), "k9"),
            Err(Error::IdTokenKeyNotFound)
        );
    }

    #[test]
    fn no_jwks_uri_is_unavailable() {
        let platform = FakePlatform::default();
        unavailable(key_for(&platform, &JwksCache::new(), None, "k1"));
    }

    #[test]
    fn a_server_error_is_unavailable() {
        let platform = FakePlatform::default();
        platform.expect_get(URI, 500, r#"{"error":"oops"}"#);
        let reason = unavailable(key_for(&platform, &JwksCache::new(), Some(URI), "k1"));
        assert!(reason.contains("HTTP 500"), "{reason}");
    }

    #[test]
    fn a_body_that_is_not_a_jwk_set_is_unavailable() {
        for body in ["<html>", r#"{"keys":"none"}"#, r#"{"kid":"k1"}"#] {
            let platform = FakePlatform::default();
            platform.expect_get(URI, 200, body);
            unavailable(key_for(&platform, &JwksCache::new(), Some(URI), "k1"));
        }
    }

    #[test]
    fn a_network_error_is_unavailable() {
        let platform = FakePlatform::default();
        platform.expect_get_network_error(URI);
        unavailable(key_for(&platform, &JwksCache::new(), Some(URI), "k1"));
    }

    #[test]
    fn a_failed_refetch_keeps_the_cached_set() {
        let platform = FakePlatform::default();
        let cache = JwksCache::new();
        platform.expect_get(URI, 200, ONE_KEY);
        key_for(&platform, &cache, Some(URI), "k1").unwrap();
        platform.expect_get(URI, 503, "{}");
        unavailable(key_for(&platform, &cache, Some(URI), "k2"));
        assert!(key_for(&platform, &cache, Some(URI), "k1").is_ok());
    }

    #[test]
    fn clear_forgets_the_set() {
        let platform = FakePlatform::default();
        let cache = JwksCache::new();
        platform.expect_get(URI, 200, ONE_KEY);
        key_for(&platform, &cache, Some(URI), "k1").unwrap();
        cache.clear();
        assert!(!cache.is_cached());
        platform.expect_get(URI, 200, ONE_KEY);
        key_for(&platform, &cache, Some(URI), "k1").unwrap();
    }
}
