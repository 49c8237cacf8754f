//! ID token verification from end to end
//! ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)):
//! parse, pick the key, verify the signature, and only then judge the claims.
//!
//! The steps live elsewhere ([`jose`](super::jose) parses and picks keys,
//! [`jwks`](super::jwks) fetches and caches them, [`id_token`](super::id_token)
//! judges claims, the platform verifies signatures); this module fixes their
//! order. [`VerifiedIdToken`] can only be obtained from [`verify_id_token`],
//! so code that needs a verified token cannot be handed an unverified one.

use std::fmt;

use super::error::Error;
use super::id_token::{validate_claims, Expectations, IdTokenClaims};
use super::jose::{looks_like_json_object, parse_compact_jws, JwsAlgorithm};
use super::jwks::JwksCache;
use super::secret::IdToken;
use crate::core::ports::{Http, Json, SignatureVerifier};

/// An ID token whose signature verified and whose claims passed
/// [`validate_claims`]. Only [`verify_id_token`] makes one.
///
/// `Debug` shows the claims (the nonce redacted) but not the raw JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedIdToken {
    claims: IdTokenClaims,
    claims_json: String,
}

impl VerifiedIdToken {
    /// The claims latchkey validated.
    pub fn claims(&self) -> &IdTokenClaims {
        &self.claims
    }

    /// The decoded payload exactly as signed: a JSON object with every
    /// claim, for the app (`getUser()`).
    pub fn claims_json(&self) -> &str {
        &self.claims_json
    }

    /// Takes the claims JSON, dropping the rest.
    pub fn into_claims_json(self) -> String {
        self.claims_json
    }
}

impl fmt::Debug for VerifiedIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIdToken")
            .field("claims", &self.claims)
            .field("claims_json_len", &self.claims_json.len())
            .finish()
    }
}

/// Verifies an ID token
/// ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation),
/// [RFC 7515 §5.2](https://www.rfc-editor.org/rfc/rfc7515#section-5.2)).
///
/// Steps run in this fixed order and the first failure is returned:
///
/// 1. parse the compact JWS ([`parse_compact_jws`]; `id_token_malformed`);
/// 2. the header's `alg` is RS256, PS256 or ES256 ([`JwsAlgorithm::parse`];
///    `id_token_unsupported_alg`) — so `none` and `HS*` are refused before
///    any network request;
/// 3. the key: from `cache`, else fetched from `jwks_uri` once and searched
///    again ([`JwksCache::key_for`]; `jwks_unavailable`,
///    `id_token_key_not_found`);
/// 4. the signature over the signing input, by the platform
///    (`id_token_invalid_signature` when it does not verify; an ES256
///    signature that is not 64 bytes cannot verify and is refused without
///    asking the platform; a platform error, e.g. an unusable key, is
///    returned as is);
/// 5. the payload parses as a JSON object of [`IdTokenClaims`]
///    (`id_token_malformed`);
/// 6. [`validate_claims`] against `expect` (its own fixed order).
///
/// The claims are read only once the signature is known to be the issuer's:
/// an unauthenticated token never gets its claims judged, nor reported.
pub async fn verify_id_token<P: Http + Json + SignatureVerifier>(
    platform: &P,
    cache: &JwksCache,
    jwks_uri: Option<&str>,
    id_token: &IdToken,
    expect: &Expectations<'_>,
) -> Result<VerifiedIdToken, Error> {
    // 1. Syntax.
    let jws = parse_compact_jws(platform, id_token.secret())?;

    // 2. Algorithm, before anything costs a request.
    let alg = JwsAlgorithm::parse(&jws.header.alg)?;

    // 3. Key.
    let key = cache
        .key_for(platform, jwks_uri, alg, jws.header.kid.as_deref())
        .await?;

    // 4. Signature.
    if alg
        .signature_len()
        .is_some_and(|len| jws.signature.len() != len)
    {
        return Err(Error::IdTokenInvalidSignature);
    }
    let valid = platform
        .verify_signature(alg, &key, jws.signing_input.as_bytes(), &jws.signature)
        .await?;
    if !valid {
        return Err(Error::IdTokenInvalidSignature);
    }

    // 5. Claims, now known to be the issuer's.
    if !looks_like_json_object(&jws.payload_json) {
        return Err(Error::IdTokenMalformed {
            reason: "the claims are not a JSON object".into(),
        });
    }
    let claims: IdTokenClaims =
        platform
            .parse_json(&jws.payload_json)
            .map_err(|why| Error::IdTokenMalformed {
                reason: format!("the claims are not valid ID token claims: {why}"),
            })?;

    // 6. Judge them.
    validate_claims(&claims, expect)?;

    Ok(VerifiedIdToken {
        claims,
        claims_json: jws.payload_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::base64url;
    use crate::core::fakes::{block_on, FakePlatform};
    use crate::core::id_token::CLOCK_SKEW_MS;
    use crate::core::jose::Jwk;
    use crate::core::secret::Nonce;

    const ISSUER: &str = "https://idp.example";
    const CLIENT: &str = "spa";
    const URI: &str = "https://idp.example/jwks";
    const NOW: u64 = 1_700_000_000_000;
    const NOW_S: u64 = NOW / 1000;
    const SIGNATURE: &[u8] = &[7; 256];

    const JWKS_K1: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"},
        {"kty":"EC","kid":"e1","crv":"P-256","x":"AA","y":"AA"}]}"#;
    const JWKS_K1_K2: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"k2","n":"AQAB","e":"AQAB"}]}"#;

    fn rsa(kid: &str) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: Some(kid.into()),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        }
    }

    fn ec(kid: &str) -> Jwk {
        Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            crv: Some("P-256".into()),
            x: Some("AA".into()),
            y: Some("AA".into()),
            ..Jwk::default()
        }
    }

    fn claims_json(iss: &str) -> String {
        format!(
            r#"{{"iss":"{iss}","sub":"alice","aud":"{CLIENT}","exp":{},"iat":{},"nonce":"n-1","name":"Alice"}}"#,
            NOW_S + 300,
            NOW_S
        )
    }

    /// A compact JWS and its signing input.
    fn jws(header: &str, payload: &str, signature: &[u8]) -> (IdToken, String) {
        let input = format!(
            "{}.{}",
            base64url::encode(header.as_bytes()),
            base64url::encode(payload.as_bytes())
        );
        let token = format!("{input}.{}", base64url::encode(signature));
        (IdToken::new(token), input)
    }

    fn rs256(kid: &str, payload: &str) -> (IdToken, String) {
        jws(
            &format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#),
            payload,
            SIGNATURE,
        )
    }

    fn verify(
        platform: &FakePlatform,
        cache: &JwksCache,
        jwks_uri: Option<&str>,
        token: &IdToken,
    ) -> Result<VerifiedIdToken, Error> {
        let nonce = Nonce::new("n-1".into());
        let expect = Expectations {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: Some(&nonce),
            now_ms: NOW,
            skew_ms: CLOCK_SKEW_MS,
            previous_sub: None,
        };
        block_on(verify_id_token(platform, cache, jwks_uri, token, &expect))
    }

    #[test]
    fn first_use_fetches_the_keys_and_returns_the_claims() {
        let platform = FakePlatform::at(NOW);
        let cache = JwksCache::new();
        let payload = claims_json(ISSUER);
        let (token, input) = rs256("k1", &payload);
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
        let verified = verify(&platform, &cache, Some(URI), &token).unwrap();
        assert_eq!(verified.claims().sub, "alice");
        assert_eq!(verified.claims().exp, Some(NOW_S + 300));
        assert_eq!(verified.claims_json(), payload);
        assert!(!format!("{verified:?}").contains("n-1"));
        assert_eq!(verified.into_claims_json(), payload);
    }

    #[test]
    fn a_cached_key_needs_no_fetch() {
        let platform = FakePlatform::at(NOW);
        let cache = JwksCache::new();
        let (token, input) = rs256("k1", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
        verify(&platform, &cache, Some(URI), &token).unwrap();
        // Only a signature check is scripted: any GET would fail the test.
        platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
        verify(&platform, &cache, Some(URI), &token).unwrap();
    }

    #[test]
    fn an_unknown_kid_triggers_one_refetch_then_succeeds() {
        let platform = FakePlatform::at(NOW);
        let cache = JwksCache::new();
        let (old, old_input) = rs256("k1", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k1"),
            &old_input,
            SIGNATURE,
            Ok(true),
        );
        verify(&platform, &cache, Some(URI), &old).unwrap();
        // The issuer rotated to k2.
        let (new, new_input) = rs256("k2", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1_K2);
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k2"),
            &new_input,
            SIGNATURE,
            Ok(true),
        );
        verify(&platform, &cache, Some(URI), &new).unwrap();
    }

    #[test]
    fn a_kid_still_unknown_after_one_refetch_is_not_found() {
        let platform = FakePlatform::at(NOW);
        let cache = JwksCache::new();
        let (known, input) = rs256("k1", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
        verify(&platform, &cache, Some(URI), &known).unwrap();
        // Exactly one more GET is scripted; a second would fail the test.
        let (unknown, _) = rs256("k9", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1);
        assert_eq!(
            verify(&platform, &cache, Some(URI), &unknown).unwrap_err(),
            Error::IdTokenKeyNotFound
        );
    }

    #[test]
    fn an_unavailable_key_set_is_reported() {
        let platform = FakePlatform::at(NOW);
        let (token, _) = rs256("k1", &claims_json(ISSUER));
        platform.expect_get(URI, 500, r#"{"error":"server_error"}"#);
        let error = verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err();
        assert_eq!(error.code(), "jwks_unavailable");
    }

    #[test]
    fn no_jwks_uri_is_unavailable() {
        let platform = FakePlatform::at(NOW);
        let (token, _) = rs256("k1", &claims_json(ISSUER));
        let error = verify(&platform, &JwksCache::new(), None, &token).unwrap_err();
        assert_eq!(error.code(), "jwks_unavailable");
    }

    #[test]
    fn an_invalid_signature_is_refused_before_the_claims_are_judged() {
        let platform = FakePlatform::at(NOW);
        // Forged claims too: the signature is what gets reported.
        let (token, input) = rs256("k1", &claims_json("https://evil.example"));
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k1"),
            &input,
            SIGNATURE,
            Ok(false),
        );
        assert_eq!(
            verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err(),
            Error::IdTokenInvalidSignature
        );
    }

    #[test]
    fn a_platform_error_while_verifying_is_returned() {
        let platform = FakePlatform::at(NOW);
        let (token, input) = rs256("k1", &claims_json(ISSUER));
        let unusable = Error::Crypto {
            reason: "the key cannot be imported".into(),
        };
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k1"),
            &input,
            SIGNATURE,
            Err(unusable.clone()),
        );
        assert_eq!(
            verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err(),
            unusable
        );
    }

    #[test]
    fn es256_verifies_with_the_p256_key() {
        let platform = FakePlatform::at(NOW);
        let signature = [3u8; 64];
        let (token, input) = jws(r#"{"alg":"ES256"}"#, &claims_json(ISSUER), &signature);
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(JwsAlgorithm::Es256, &ec("e1"), &input, &signature, Ok(true));
        verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap();
    }

    #[test]
    fn an_es256_signature_of_the_wrong_length_is_invalid_without_asking() {
        let platform = FakePlatform::at(NOW);
        // A DER-encoded ECDSA signature is ~70 bytes; only r || s (64) verifies.
        let (token, _) = jws(r#"{"alg":"ES256"}"#, &claims_json(ISSUER), &[3u8; 70]);
        platform.expect_get(URI, 200, JWKS_K1);
        assert_eq!(
            verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err(),
            Error::IdTokenInvalidSignature
        );
    }

    #[test]
    fn none_and_hmac_are_refused_before_any_fetch() {
        for alg in ["none", "HS256", "HS512", "RS512"] {
            // Nothing scripted: a GET or a signature check fails the test.
            let platform = FakePlatform::at(NOW);
            let (token, _) = jws(
                &format!(r#"{{"alg":"{alg}","kid":"k1"}}"#),
                &claims_json(ISSUER),
                SIGNATURE,
            );
            assert_eq!(
                verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err(),
                Error::IdTokenUnsupportedAlg { alg: alg.into() }
            );
        }
    }

    #[test]
    fn a_malformed_token_is_refused_before_any_fetch() {
        let platform = FakePlatform::at(NOW);
        let token = IdToken::new("not-a-jwt".into());
        let error = verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err();
        assert_eq!(error.code(), "id_token_malformed");
    }

    #[test]
    fn claims_are_judged_after_a_good_signature() {
        let platform = FakePlatform::at(NOW);
        let payload = claims_json(ISSUER).replace(r#""aud":"spa""#, r#""aud":"other""#);
        let (token, input) = rs256("k1", &payload);
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
        assert_eq!(
            verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err(),
            Error::IdTokenAudMismatch
        );
    }

    #[test]
    fn claims_that_are_not_an_object_of_claims_are_malformed() {
        for payload in [
            "not json",
            r#"["https://idp.example","alice","spa"]"#,
            r#"{"iss":"https://idp.example","aud":"spa"}"#,
            r#"{"iss":"https://idp.example","sub":"alice","aud":"spa","exp":"soon"}"#,
        ] {
            let platform = FakePlatform::at(NOW);
            let (token, input) = rs256("k1", payload);
            platform.expect_get(URI, 200, JWKS_K1);
            platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
            let error = verify(&platform, &JwksCache::new(), Some(URI), &token).unwrap_err();
            assert_eq!(error.code(), "id_token_malformed", "{payload}");
        }
    }
}
