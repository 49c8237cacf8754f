//! ID token verification from end to end
//! ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)):
//! parse, pick the key, verify the signature, and only then judge the claims.
//!
//! The steps live elsewhere ([`jose`](super::jose) parses and picks keys,
//! [`jwks`](super::jwks) reads and caches them, [`id_token`](super::id_token)
//! judges claims, the platform verifies signatures); this module fixes their
//! order as a machine that does no I/O ([`VerifyIdToken`]), and
//! [`verify_id_token`] drives it. A [`VerifiedIdToken`] can only come out of
//! the machine, so code that needs a verified token cannot be handed an
//! unverified one.

use crate::core::drive::{drive, Machine, Next, Perform};
use std::fmt;

use super::error::Error;
use super::id_token::{validate_claims, Expectations, IdTokenClaims};
use super::jose::{
    looks_like_json_object, parse_compact_jws, select_key, CompactJws, Jwk, Jwks, JwsAlgorithm,
};
use super::jwks::{read_jwks, JwksCache};
use super::secret::IdToken;
use crate::core::ports::{Http, Json, SignatureVerifier};

/// An ID token whose signature verified and whose claims passed
/// [`validate_claims`]. Only [`VerifyIdToken`] makes one.
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

/// What the verification's performer ([`verify_id_token`]'s) does next;
/// its outcome is fed back as the matching [`Fed`].
#[derive(Debug)]
pub enum Need {
    /// The cached key set's key for `alg` and `kid` ([`select_key`]) →
    /// [`Fed::Cached`].
    CachedKey {
        /// The token's algorithm.
        alg: JwsAlgorithm,
        /// The token's `kid`, if any.
        kid: Option<String>,
    },
    /// `GET` the issuer's key set and read it ([`read_jwks`]) →
    /// [`Fed::Fetched`].
    FetchKeys {
        /// The issuer's `jwks_uri`.
        uri: String,
    },
    /// Keep this key set as the issuer's, replacing the cached one →
    /// [`Fed::Kept`].
    KeepKeys(Jwks),
    /// The platform's check of the token's signature
    /// ([`VerifyIdToken::signed`]) under `key` → [`Fed::Verified`].
    VerifySignature {
        /// The token's algorithm.
        alg: JwsAlgorithm,
        /// The issuer's key (boxed: a key is large beside the other needs).
        key: Box<Jwk>,
    },
}

/// The machine's next step: something to do, or the verified token (or
/// the first failure).
pub type Step = Next<Need, Result<VerifiedIdToken, Error>>;

/// What happened, fed to [`VerifyIdToken::on`].
#[derive(Debug)]
pub enum Fed {
    /// The cached key, if the cached set has exactly one that fits.
    Cached(Option<Jwk>),
    /// The fetched key set, or why there is none (`jwks_unavailable`).
    Fetched(Result<Jwks, Error>),
    /// The key set is kept.
    Kept,
    /// Whether the signature verified; `Err` when the platform could not
    /// use the key.
    Verified(Result<bool, Error>),
}

/// Where a verification is.
#[derive(Debug)]
enum Stage {
    LookingUp,
    Fetching,
    /// Keeping the fetched set; the key found in it, if any (boxed: a key
    /// is large beside the other stages).
    Keeping(Option<Box<Jwk>>),
    /// `cached`: the key came from the cached set, not a fetch just made.
    Verifying {
        cached: bool,
    },
    Over,
}

/// Verifies an ID token as a machine that does no I/O
/// ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation),
/// [RFC 7515 §5.2](https://www.rfc-editor.org/rfc/rfc7515#section-5.2)).
///
/// Steps run in this fixed order and the first failure is the outcome:
///
/// 1. parse the compact JWS ([`parse_compact_jws`]; `id_token_malformed`);
/// 2. the header's `alg` is RS256, PS256 or ES256 ([`JwsAlgorithm::parse`];
///    `id_token_unsupported_alg`) — so `none` and `HS*` are refused before
///    any network request;
/// 3. the key: from the cached set when it has exactly one that fits, else
///    the set is fetched from `jwks_uri` once — issuers publish a new key
///    before they sign with it ([OIDC Core §10.1.1](https://openid.net/specs/openid-connect-core-1_0.html#RotateSigKeys))
///    — kept in place of the cached one, and searched; never a second fetch
///    (`jwks_unavailable` without a `jwks_uri` or when the fetch fails,
///    which keeps the cached set; `id_token_key_not_found`);
/// 4. the signature over the signing input, by the platform
///    (`id_token_invalid_signature` when it does not verify; an ES256
///    signature that is not 64 bytes cannot verify and is refused without
///    asking the platform; a platform error, e.g. an unusable key, is
///    returned as is). A cached key whose signature does not verify may be
///    one the issuer replaced under the same `kid` (or its only key, with
///    none): the set is fetched once, as in 3, and the key found there
///    decides — so only the issuer's current keys can refuse a token;
/// 5. the payload parses as a JSON object of [`IdTokenClaims`]
///    (`id_token_malformed`);
/// 6. [`validate_claims`] against the expectations (their own fixed order).
///
/// The claims are read only once the signature is known to be the issuer's:
/// an unauthenticated token never gets its claims judged, nor reported.
#[derive(Debug)]
pub struct VerifyIdToken<'a> {
    jws: Option<CompactJws<'a>>,
    alg: JwsAlgorithm,
    jwks_uri: Option<&'a str>,
    expect: &'a Expectations<'a>,
    stage: Stage,
}

impl<'a> VerifyIdToken<'a> {
    /// The verification of `id_token` against `expect`, with the keys
    /// published at `jwks_uri`; `json` parses the header. Its first step.
    pub fn start<J: Json>(
        json: &J,
        id_token: &'a IdToken,
        jwks_uri: Option<&'a str>,
        expect: &'a Expectations<'a>,
    ) -> (VerifyIdToken<'a>, Step) {
        let mut machine = VerifyIdToken {
            jws: None,
            alg: JwsAlgorithm::Rs256,
            jwks_uri,
            expect,
            stage: Stage::Over,
        };
        // 1. Syntax; 2. the algorithm, before anything costs a request.
        let parsed = parse_compact_jws(json, id_token.secret())
            .and_then(|jws| JwsAlgorithm::parse(&jws.header.alg).map(|alg| (jws, alg)));
        let step = match parsed {
            Ok((jws, alg)) => {
                let kid = jws.header.kid.clone();
                (machine.jws, machine.alg) = (Some(jws), alg);
                machine.stage = Stage::LookingUp;
                Step::Do(Need::CachedKey { alg, kid })
            }
            Err(error) => Step::Done(Err(error)),
        };
        (machine, step)
    }

    /// What the signature covers and the signature: the platform's input
    /// for [`Need::VerifySignature`].
    pub fn signed(&self) -> (&[u8], &[u8]) {
        match &self.jws {
            Some(jws) => (jws.signing_input.as_bytes(), &jws.signature),
            None => (&[], &[]),
        }
    }

    /// The step after `fed`; `json` reads the claims. An input the stage
    /// does not expect (a driver bug) refuses the token.
    pub fn on(&mut self, fed: Fed, json: &dyn ReadClaims) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            // 3. The key: cached, or one fetch.
            (Stage::LookingUp, Fed::Cached(Some(key))) => self.verify_with(key, true),
            (Stage::LookingUp, Fed::Cached(None)) => self.fetch_keys(Error::JwksUnavailable {
                reason: "the issuer has no jwks_uri".into(),
            }),
            (Stage::Fetching, Fed::Fetched(Ok(jwks))) => {
                let kid = self.jws.as_ref().and_then(|jws| jws.header.kid.as_deref());
                let key = select_key(&jwks, self.alg, kid).cloned().map(Box::new);
                self.stage = Stage::Keeping(key);
                Step::Do(Need::KeepKeys(jwks))
            }
            (Stage::Fetching, Fed::Fetched(Err(error))) => Step::Done(Err(error)),
            (Stage::Keeping(Some(key)), Fed::Kept) => self.verify_with(*key, false),
            (Stage::Keeping(None), Fed::Kept) => Step::Done(Err(Error::IdTokenKeyNotFound)),
            // 4. The signature.
            (Stage::Verifying { .. }, Fed::Verified(Ok(true))) => Step::Done(self.claims(json)),
            (Stage::Verifying { cached: true }, Fed::Verified(Ok(false))) => {
                self.fetch_keys(Error::IdTokenInvalidSignature)
            }
            (Stage::Verifying { .. }, Fed::Verified(Ok(false))) => {
                Step::Done(Err(Error::IdTokenInvalidSignature))
            }
            (Stage::Verifying { .. }, Fed::Verified(Err(error))) => Step::Done(Err(error)),
            (_, _) => Step::Done(Err(Error::JwksUnavailable {
                reason: "the verification was fed out of order".into(),
            })),
        }
    }

    /// The key set's one fetch (step 3); without a `jwks_uri`, `or`.
    fn fetch_keys(&mut self, or: Error) -> Step {
        let Some(uri) = self.jwks_uri else {
            return Step::Done(Err(or));
        };
        self.stage = Stage::Fetching;
        Step::Do(Need::FetchKeys {
            uri: uri.to_owned(),
        })
    }

    /// Step 4 with `key` (`cached`: from the cached set), unless the
    /// signature cannot be `alg`'s (a wrong length).
    fn verify_with(&mut self, key: Jwk, cached: bool) -> Step {
        let (_, signature) = self.signed();
        if self
            .alg
            .signature_len()
            .is_some_and(|len| signature.len() != len)
        {
            return Step::Done(Err(Error::IdTokenInvalidSignature));
        }
        self.stage = Stage::Verifying { cached };
        Step::Do(Need::VerifySignature {
            alg: self.alg,
            key: Box::new(key),
        })
    }

    /// Steps 5 and 6: the claims, now known to be the issuer's.
    fn claims(&mut self, json: &dyn ReadClaims) -> Result<VerifiedIdToken, Error> {
        let payload_json = match self.jws.take() {
            Some(jws) => jws.payload_json,
            None => String::new(),
        };
        if !looks_like_json_object(&payload_json) {
            return Err(Error::IdTokenMalformed {
                reason: "the claims are not a JSON object".into(),
            });
        }
        let claims: IdTokenClaims =
            json.read_claims(&payload_json)
                .map_err(|why| Error::IdTokenMalformed {
                    reason: format!("the claims are not valid ID token claims: {why}"),
                })?;
        validate_claims(&claims, self.expect)?;
        Ok(VerifiedIdToken {
            claims,
            claims_json: payload_json,
        })
    }
}

impl Machine for VerifyIdToken<'_> {
    type Need = Need;
    type Fed = Fed;
    type Done = Result<VerifiedIdToken, Error>;
    type With<'a> = &'a dyn ReadClaims;

    fn on(&mut self, fed: Fed, claims: &dyn ReadClaims) -> Step {
        VerifyIdToken::on(self, fed, claims)
    }
}

/// Reads an ID token's claims: what the machine asks of a [`Json`] parser,
/// without being generic over it.
pub trait ReadClaims {
    /// `payload` read as claims, or why not.
    fn read_claims(&self, payload: &str) -> Result<IdTokenClaims, String>;
}

impl<J: Json> ReadClaims for J {
    fn read_claims(&self, payload: &str) -> Result<IdTokenClaims, String> {
        self.parse_json(payload)
    }
}

/// Verifies `id_token` against `expect` ([`VerifyIdToken`]'s order): drives
/// the machine over `platform` and `cache`.
pub async fn verify_id_token<P: Http + Json + SignatureVerifier>(
    platform: &P,
    cache: &JwksCache,
    jwks_uri: Option<&str>,
    id_token: &IdToken,
    expect: &Expectations<'_>,
) -> Result<VerifiedIdToken, Error> {
    let (mut machine, first) = VerifyIdToken::start(platform, id_token, jwks_uri, expect);
    drive(&mut machine, first, &mut Verifier { platform, cache }).await
}

/// Performs a verification's needs, deciding nothing.
struct Verifier<'p, P> {
    platform: &'p P,
    cache: &'p JwksCache,
}

impl<P: Http + Json + SignatureVerifier> Perform<VerifyIdToken<'_>> for Verifier<'_, P> {
    async fn perform(&mut self, need: Need, machine: &VerifyIdToken<'_>) -> Fed {
        let platform = self.platform;
        match need {
            Need::CachedKey { alg, kid } => Fed::Cached(self.cache.key(alg, kid.as_deref())),
            Need::FetchKeys { uri } => {
                Fed::Fetched(read_jwks(&uri, platform.get_json::<Jwks>(&uri).await))
            }
            Need::KeepKeys(jwks) => {
                self.cache.keep(jwks);
                Fed::Kept
            }
            Need::VerifySignature { alg, key } => {
                let (input, signature) = machine.signed();
                Fed::Verified(platform.verify_signature(alg, &key, input, signature).await)
            }
        }
    }

    fn with(&self) -> &dyn ReadClaims {
        self.platform
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::base64url;
    use crate::core::fakes::{block_on, FakePlatform};
    use crate::core::id_token::CLOCK_SKEW_MS;
    use crate::core::jose::Jwk;
    use crate::core::secret::Nonce;

    pub(super) const ISSUER: &str = "https://idp.example";
    pub(super) const CLIENT: &str = "spa";
    pub(super) const URI: &str = "https://idp.example/jwks";
    pub(super) const NOW: u64 = 1_700_000_000_000;
    pub(super) const NOW_S: u64 = NOW / 1000;
    pub(super) const SIGNATURE: &[u8] = &[7; 256];

    pub(super) const JWKS_K1: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"},
        {"kty":"EC","kid":"e1","crv":"P-256","x":"AA","y":"AA"}]}"#;
    pub(super) const JWKS_K1_K2: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"k2","n":"AQAB","e":"AQAB"}]}"#;

    pub(super) fn rsa(kid: &str) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: Some(kid.into()),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        }
    }

    pub(super) fn ec(kid: &str) -> Jwk {
        Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            crv: Some("P-256".into()),
            x: Some("AA".into()),
            y: Some("AA".into()),
            ..Jwk::default()
        }
    }

    pub(super) fn claims_json(iss: &str) -> String {
        format!(
            r#"{{"iss":"{iss}","sub":"alice","aud":"{CLIENT}","exp":{},"iat":{},"nonce":"n-1","name":"Alice"}}"#,
            NOW_S + 300,
            NOW_S
        )
    }

    /// A compact JWS and its signing input.
    pub(super) fn jws(header: &str, payload: &str, signature: &[u8]) -> (IdToken, String) {
        let input = format!(
            "{}.{}",
            base64url::encode(header.as_bytes()),
            base64url::encode(payload.as_bytes())
        );
        let token = format!("{input}.{}", base64url::encode(signature));
        (IdToken::new(token), input)
    }

    pub(super) fn rs256(kid: &str, payload: &str) -> (IdToken, String) {
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
    fn a_failed_refetch_keeps_the_cached_set() {
        let platform = FakePlatform::at(NOW);
        let cache = JwksCache::new();
        let (old, old_input) = rs256("k1", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1);
        let expect_k1 = |input: &str| {
            platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), input, SIGNATURE, Ok(true))
        };
        expect_k1(&old_input);
        verify(&platform, &cache, Some(URI), &old).unwrap();
        let (new, _) = rs256("k2", &claims_json(ISSUER));
        platform.expect_get(URI, 503, "{}");
        let error = verify(&platform, &cache, Some(URI), &new).unwrap_err();
        assert_eq!(error.code(), "jwks_unavailable");
        // k1 is still served from the cache: no request scripted.
        expect_k1(&old_input);
        verify(&platform, &cache, Some(URI), &old).unwrap();
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
    fn a_cached_key_replaced_under_the_same_kid_is_fetched_again() {
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
        // The issuer replaced k1's key material, keeping its kid.
        let replaced = Jwk {
            n: Some("AQAC".into()),
            ..rsa("k1")
        };
        let (new, new_input) = rs256("k1", &claims_json(ISSUER));
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k1"),
            &new_input,
            SIGNATURE,
            Ok(false),
        );
        platform.expect_get(
            URI,
            200,
            r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAC","e":"AQAB"}]}"#,
        );
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &replaced,
            &new_input,
            SIGNATURE,
            Ok(true),
        );
        verify(&platform, &cache, Some(URI), &new).unwrap();
        // The new key is the cached one now: no request scripted.
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &replaced,
            &new_input,
            SIGNATURE,
            Ok(true),
        );
        verify(&platform, &cache, Some(URI), &new).unwrap();
    }

    #[test]
    fn a_signature_refused_by_the_refetched_key_too_is_invalid_after_one_fetch() {
        let platform = FakePlatform::at(NOW);
        let cache = JwksCache::new();
        let (token, input) = rs256("k1", &claims_json(ISSUER));
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(JwsAlgorithm::Rs256, &rsa("k1"), &input, SIGNATURE, Ok(true));
        verify(&platform, &cache, Some(URI), &token).unwrap();
        // Cached key, then the refetched one: both refuse; one GET only.
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k1"),
            &input,
            SIGNATURE,
            Ok(false),
        );
        platform.expect_get(URI, 200, JWKS_K1);
        platform.expect_signature(
            JwsAlgorithm::Rs256,
            &rsa("k1"),
            &input,
            SIGNATURE,
            Ok(false),
        );
        assert_eq!(
            verify(&platform, &cache, Some(URI), &token).unwrap_err(),
            Error::IdTokenInvalidSignature
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

#[cfg(test)]
#[path = "verify_machine_tests.rs"]
mod machine_tests;
