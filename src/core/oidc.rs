//! Where the session meets OpenID Connect: which ID tokens are verified,
//! and against what.
//!
//! - At login, when the request was an OpenID Connect one (it carried a
//!   `nonce`), the token response must have an ID token, and it must verify
//!   with that nonce ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)).
//! - After a refresh, a new ID token must verify and name the same user
//!   ([§12.2](https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse));
//!   its `nonce`, if any, is not checked.
//!
//! Nothing is stored before this passes.

use crate::core::authorize::scope_requests_openid;
use crate::core::id_token::{Expectations, IdTokenClaims, CLOCK_SKEW_MS};
use crate::core::jose::parse_compact_jws;
use crate::core::jwks::JwksCache;
use crate::core::ports::{Clock, Http, Json, SignatureVerifier};
use crate::core::refresher::CheckRefreshed;
use crate::core::verify::{verify_id_token, VerifiedIdToken};
use crate::core::{Error, IdToken, Nonce, TokenSet};

/// Verifies a session's ID tokens for one issuer and client.
pub struct IdTokenVerifier<'a, P> {
    /// HTTP (the key set), JSON, signatures and the clock.
    pub platform: &'a P,
    /// The issuer's keys, fetched once and refetched for an unknown `kid`.
    pub jwks: &'a JwksCache,
    /// Where the keys are published.
    pub jwks_uri: Option<&'a str>,
    /// The expected `iss`.
    pub issuer: &'a str,
    /// The expected audience.
    pub client_id: &'a str,
}

impl<P> IdTokenVerifier<'_, P> {
    /// This verifier as the check of a session's refreshed ID tokens, for a
    /// client that asked for `scope`: without `openid` the app asked for no
    /// ID token, and none is checked or kept (`None`).
    pub fn for_refreshes(self, scope: &str) -> Option<Self> {
        scope_requests_openid(scope).then_some(self)
    }
}

impl<P: Clock + Http + Json + SignatureVerifier> IdTokenVerifier<'_, P> {
    fn expect<'e>(
        &'e self,
        nonce: Option<&'e Nonce>,
        previous_sub: Option<&'e str>,
    ) -> Expectations<'e> {
        Expectations {
            issuer: self.issuer,
            client_id: self.client_id,
            nonce,
            now_ms: self.platform.now_ms(),
            skew_ms: CLOCK_SKEW_MS,
            previous_sub,
        }
    }

    /// The login's ID token, verified with the request's `nonce`. With no
    /// nonce the login was plain OAuth and nothing is checked (`None`).
    pub async fn at_login(
        &self,
        tokens: &TokenSet,
        nonce: Option<&Nonce>,
    ) -> Result<Option<VerifiedIdToken>, Error> {
        let Some(nonce) = nonce else {
            return Ok(None);
        };
        let id_token = tokens.id_token.as_ref().ok_or(Error::IdTokenMissing)?;
        let expect = self.expect(Some(nonce), None);
        verify_id_token(self.platform, self.jwks, self.jwks_uri, id_token, &expect)
            .await
            .map(Some)
    }
}

impl<P: Clock + Http + Json + SignatureVerifier> CheckRefreshed for IdTokenVerifier<'_, P> {
    async fn check(&self, previous: &TokenSet, fresh: &TokenSet) -> Result<(), Error> {
        let Some(id_token) = &fresh.id_token else {
            return Ok(());
        };
        if previous.id_token.as_ref() == Some(id_token) {
            // Kept from the previous set (the response had none).
            return Ok(());
        }
        let previous_sub = previous
            .id_token
            .as_ref()
            .and_then(|token| read_stored(self.platform, token))
            .map(|(claims, _)| claims.sub);
        let expect = self.expect(None, previous_sub.as_deref());
        verify_id_token(self.platform, self.jwks, self.jwks_uri, id_token, &expect).await?;
        Ok(())
    }
}

/// A stored ID token's claims and their JSON text (verified when it was
/// stored; for `getUser()`, [`crate::core::user`]). The text is returned
/// only when it parses as claims, so the app never gets something latchkey
/// itself could not read; `None` if it cannot be read.
pub fn read_stored<J: Json>(json: &J, id_token: &IdToken) -> Option<(IdTokenClaims, String)> {
    let jws = parse_compact_jws(json, id_token.secret()).ok()?;
    let claims = json.parse_json(&jws.payload_json).ok()?;
    Some((claims, jws.payload_json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::base64url;
    use crate::core::fakes::{block_on, FakePlatform};
    use crate::core::jose::{Jwk, JwsAlgorithm};
    use crate::core::AccessToken;

    const ISSUER: &str = "https://idp.example";
    const JWKS_URL: &str = "https://idp.example/jwks";
    const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}"#;
    const NOW: u64 = 1_700_000_000_000;
    const SIGNATURE: &[u8] = &[5; 256];

    fn jwk() -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: Some("k1".into()),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        }
    }

    /// An RS256 ID token for `sub` and its signing input.
    fn id_token(sub: &str) -> (IdToken, String) {
        id_token_issued(sub, NOW / 1000)
    }

    /// The same, issued at `iat` (seconds): another token for the same user.
    fn id_token_issued(sub: &str, iat: u64) -> (IdToken, String) {
        let header = base64url::encode(br#"{"alg":"RS256","kid":"k1"}"#);
        let claims = format!(
            r#"{{"iss":"{ISSUER}","sub":"{sub}","aud":"spa","exp":{},"iat":{iat}}}"#,
            NOW / 1000 + 300,
        );
        let input = format!("{header}.{}", base64url::encode(claims.as_bytes()));
        let token = format!("{input}.{}", base64url::encode(SIGNATURE));
        (IdToken::new(token), input)
    }

    fn set(access: &str, id_token: Option<IdToken>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new(access.into()),
            token_type: "Bearer".into(),
            expires_at_ms: None,
            refresh_token: None,
            scope: None,
            id_token,
            refresh_expires_at_ms: None,
            issued_at_ms: NOW,
            login_at_ms: NOW,
            rotation: 0,
            dpop_jkt: None,
            atproto: None,
        }
    }

    fn check(platform: &FakePlatform, previous: &TokenSet, fresh: &TokenSet) -> Result<(), Error> {
        let jwks = JwksCache::new();
        let verifier = IdTokenVerifier {
            platform,
            jwks: &jwks,
            jwks_uri: Some(JWKS_URL),
            issuer: ISSUER,
            client_id: "spa",
        };
        block_on(verifier.check(previous, fresh))
    }

    #[test]
    fn refreshed_id_tokens_are_checked_and_kept_only_for_an_openid_scope() {
        let platform = FakePlatform::at(NOW);
        let jwks = JwksCache::new();
        let verifier = || IdTokenVerifier {
            platform: &platform,
            jwks: &jwks,
            jwks_uri: Some(JWKS_URL),
            issuer: ISSUER,
            client_id: "spa",
        };
        assert!(verifier().for_refreshes("openid profile").is_some());
        assert!(verifier().for_refreshes("profile openid").is_some());
        assert!(verifier().for_refreshes("api profile").is_none());
    }

    #[test]
    fn a_refresh_without_a_new_id_token_needs_no_verification() {
        // The fake fails on any request or signature check it was not told of.
        let platform = FakePlatform::at(NOW);
        let (token, _) = id_token("alice");
        let previous = set("at-1", Some(token.clone()));
        assert_eq!(
            check(&platform, &previous, &set("at-2", Some(token))),
            Ok(())
        );
        assert_eq!(check(&platform, &previous, &set("at-2", None)), Ok(()));
    }

    #[test]
    fn a_new_id_token_for_the_same_user_is_verified() {
        let platform = FakePlatform::at(NOW);
        let (old, _) = id_token("alice");
        let (new, input) = id_token_issued("alice", NOW / 1000 + 1);
        platform.expect_get(JWKS_URL, 200, JWKS);
        platform.expect_signature(JwsAlgorithm::Rs256, &jwk(), &input, SIGNATURE, Ok(true));
        assert_eq!(
            check(&platform, &set("at-1", Some(old)), &set("at-2", Some(new))),
            Ok(())
        );
    }

    #[test]
    fn a_new_id_token_for_another_user_is_refused() {
        let platform = FakePlatform::at(NOW);
        let (old, _) = id_token("alice");
        let (new, input) = id_token("mallory");
        platform.expect_get(JWKS_URL, 200, JWKS);
        platform.expect_signature(JwsAlgorithm::Rs256, &jwk(), &input, SIGNATURE, Ok(true));
        assert_eq!(
            check(&platform, &set("at-1", Some(old)), &set("at-2", Some(new))),
            Err(Error::IdTokenSubMismatch)
        );
    }

    #[test]
    fn a_forged_refreshed_id_token_is_refused() {
        let platform = FakePlatform::at(NOW);
        let (new, input) = id_token("alice");
        platform.expect_get(JWKS_URL, 200, JWKS);
        platform.expect_signature(JwsAlgorithm::Rs256, &jwk(), &input, SIGNATURE, Ok(false));
        assert_eq!(
            check(&platform, &set("at-1", None), &set("at-2", Some(new))),
            Err(Error::IdTokenInvalidSignature)
        );
    }

    #[test]
    fn stored_claims_are_the_payload() {
        let platform = FakePlatform::at(NOW);
        let (token, _) = id_token("alice");
        let (claims, json) = read_stored(&platform, &token).unwrap();
        assert!(json.contains(r#""sub":"alice""#), "{json}");
        assert_eq!(claims.sub, "alice");
        assert!(read_stored(&platform, &IdToken::new("a.b.c".into())).is_none());
    }
}
