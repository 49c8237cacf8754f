//! The claims of an OpenID Connect ID token and their validation
//! ([OIDC Core §2](https://openid.net/specs/openid-connect-core-1_0.html#IDToken),
//! [§3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation),
//! [§12.2](https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse)).
//!
//! Pure: no I/O, the time comes in [`Expectations::now_ms`]. The signature
//! is not this module's business — [`verify_id_token`](super::verify::verify_id_token)
//! checks it first and calls [`validate_claims`] only on an authenticated
//! token, so forged claims are never judged (nor their errors reported).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::error::Error;
use super::secret::{constant_time_eq, Nonce};

/// The clock skew tolerated on `exp`: 60 seconds, in milliseconds.
/// Browsers' clocks drift; a minute absorbs ordinary drift without making an
/// expired token usable for long.
pub const CLOCK_SKEW_MS: u64 = 60 * 1000;

/// The ID token claims latchkey reads
/// ([OIDC Core §2](https://openid.net/specs/openid-connect-core-1_0.html#IDToken)).
/// Other claims are ignored here; the app reads them from the claims JSON
/// ([`VerifiedIdToken::claims_json`](super::verify::VerifiedIdToken::claims_json)).
///
/// `iss`, `sub` and `aud` are required: a claims set without them does not
/// deserialise (`id_token_malformed`). `exp` and `iat` are optional here so
/// that their absence gets the specific codes of [`validate_claims`].
/// Times are NumericDates: seconds since the epoch, integers or not
/// ([RFC 7519 §2](https://www.rfc-editor.org/rfc/rfc7519#section-2));
/// fractions are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer identifier.
    pub iss: String,
    /// Subject: the user's stable id at the issuer.
    pub sub: String,
    /// Audiences; a single string in the token becomes a one-element list
    /// ([RFC 7519 §4.1.3](https://www.rfc-editor.org/rfc/rfc7519#section-4.1.3)).
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Authorized party: the client the token was issued to.
    #[serde(default)]
    pub azp: Option<String>,
    /// Expiry, in seconds since the epoch.
    #[serde(default, deserialize_with = "numeric_date")]
    pub exp: Option<u64>,
    /// Issue time, in seconds since the epoch.
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: Option<u64>,
    /// The `nonce` of the authorization request (redacted in `Debug`).
    #[serde(default)]
    pub nonce: Option<Nonce>,
    /// When the user authenticated, in seconds since the epoch.
    #[serde(default, deserialize_with = "numeric_date")]
    pub auth_time: Option<u64>,
}

/// Deserialises `aud`: a string or an array of strings.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![value.to_string()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element::<String>()? {
                all.push(one);
            }
            Ok(all)
        }
    }

    deserializer.deserialize_any(OneOrMany)
}

/// Deserialises an optional NumericDate: a non-negative number of seconds,
/// integer or not (the fraction is dropped), or `null`.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct NumericDate;

    impl Visitor<'_> for NumericDate {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            u64::try_from(value)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            if value.is_finite() && value >= 0.0 {
                // Saturates above u64::MAX, which is "never" anyway.
                Ok(Some(value as u64))
            } else {
                Err(E::invalid_value(de::Unexpected::Float(value), &self))
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(NumericDate)
}

/// What an ID token must say, from the client's configuration and the
/// moment: the input of [`validate_claims`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectations<'a> {
    /// The configured issuer; `iss` must equal it exactly.
    pub issuer: &'a str,
    /// The client id; `aud` must contain it.
    pub client_id: &'a str,
    /// The nonce sent in the authorization request (login), or `None` when
    /// no nonce is expected (a refresh: OIDC Core §12.2 lets the server omit
    /// it, and a nonce it repeats is ignored).
    pub nonce: Option<&'a Nonce>,
    /// The current time in ms since the Unix epoch.
    pub now_ms: u64,
    /// Tolerated clock skew in ms; normally [`CLOCK_SKEW_MS`].
    pub skew_ms: u64,
    /// The `sub` of the session's previous ID token (a refresh), which the
    /// new one must repeat ([OIDC Core §12.2](https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse)).
    pub previous_sub: Option<&'a str>,
}

/// Seconds to milliseconds, saturating: an absurdly far `exp` never
/// overflows into the past.
fn seconds_to_ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

/// Validates the claims of an ID token whose signature has already been
/// verified ([OIDC Core §3.1.3.7](https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)
/// steps 2–4, 9–11, [§12.2](https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse)).
///
/// Checks run in this fixed order and the first failure is returned:
///
/// 1. `iss` equals `expect.issuer` exactly (`id_token_iss_mismatch`);
/// 2. `aud` contains `expect.client_id` (`id_token_aud_mismatch`);
/// 3. `azp`: with several audiences it must be present; whenever present it
///    must equal `expect.client_id` (`id_token_azp_mismatch`);
/// 4. `sub`, when `expect.previous_sub` is `Some`: equal to it
///    (`id_token_sub_mismatch`): a refresh must not switch users. Before the
///    time checks: their failures keep the session, and a token naming
///    another user that is also stale (or a device clock far ahead) must
///    still end it;
/// 5. `exp`: `now > exp + skew` is expired; a token without `exp` would never
///    expire, so it counts as expired too (`id_token_expired`). At exactly
///    `exp + skew` the token is still valid;
/// 6. `iat` is present and not after `exp` (`id_token_iat_invalid`). It is
///    deliberately not compared with the device clock: the token comes
///    straight from the token endpoint, bound to this login by PKCE and the
///    nonce, so a far-off `iat` cannot mean a replay — only a device clock
///    that is wrong, and devices minutes off are common. Rejecting those
///    would lock their users out of login (OIDC Core makes this check
///    optional). `exp` above still uses the device clock, as the spec
///    requires;
/// 7. `nonce`, when `expect.nonce` is `Some`: present and equal, compared in
///    time independent of the first difference (`nonce_mismatch`). When it
///    is `None` (refresh) the claim is not looked at.
///
/// Identity checks (who issued it, for whom, about whom) come before time
/// checks so that a token meant for someone else is reported as such even
/// when it is also stale. `nbf` is not read, for the reason `iat` is not
/// compared with the clock (5).
pub fn validate_claims(claims: &IdTokenClaims, expect: &Expectations<'_>) -> Result<(), Error> {
    // 1. iss (step 2).
    if claims.iss != expect.issuer {
        return Err(Error::IdTokenIssMismatch);
    }

    // 2. aud (step 3).
    if !claims.aud.iter().any(|aud| aud == expect.client_id) {
        return Err(Error::IdTokenAudMismatch);
    }

    // 3. azp (steps 4–5).
    match claims.azp.as_deref() {
        None if claims.aud.len() > 1 => return Err(Error::IdTokenAzpMismatch),
        Some(azp) if azp != expect.client_id => return Err(Error::IdTokenAzpMismatch),
        _ => {}
    }

    // 4. sub continuity (§12.2).
    if let Some(previous) = expect.previous_sub {
        if claims.sub != previous {
            return Err(Error::IdTokenSubMismatch);
        }
    }

    // 5. exp (step 9).
    let exp = claims.exp.ok_or(Error::IdTokenExpired)?;
    if expect.now_ms > seconds_to_ms(exp).saturating_add(expect.skew_ms) {
        return Err(Error::IdTokenExpired);
    }

    // 6. iat (step 10), in seconds: in ms both could saturate to the same
    // value and hide an iat after exp.
    let iat = claims.iat.ok_or(Error::IdTokenIatInvalid)?;
    if iat > exp {
        return Err(Error::IdTokenIatInvalid);
    }

    // 7. nonce (step 11).
    if let Some(expected) = expect.nonce {
        let received = claims.nonce.as_ref().ok_or(Error::NonceMismatch)?;
        if !constant_time_eq(received.secret().as_bytes(), expected.secret().as_bytes()) {
            return Err(Error::NonceMismatch);
        }
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example";
    const CLIENT: &str = "spa";
    /// A fixed clock, a whole number of seconds.
    const NOW: u64 = 1_700_000_000_000;
    const NOW_S: u64 = NOW / 1000;

    fn nonce() -> Nonce {
        Nonce::new("the-nonce".into())
    }

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: vec![CLIENT.into()],
            azp: None,
            exp: Some(NOW_S + 300),
            iat: Some(NOW_S - 5),
            nonce: Some(nonce()),
            auth_time: Some(NOW_S - 10),
        }
    }

    fn check(claims: &IdTokenClaims, nonce: Option<&Nonce>) -> Result<(), Error> {
        validate_claims(
            claims,
            &Expectations {
                issuer: ISSUER,
                client_id: CLIENT,
                nonce,
                now_ms: NOW,
                skew_ms: CLOCK_SKEW_MS,
                previous_sub: None,
            },
        )
    }

    fn login(claims: &IdTokenClaims) -> Result<(), Error> {
        check(claims, Some(&nonce()))
    }

    fn parse(json: &str) -> Result<IdTokenClaims, serde_json::Error> {
        serde_json::from_str(json)
    }

    // --- deserialisation ------------------------------------------------------

    #[test]
    fn deserialises_a_claims_set_with_a_single_audience() {
        let parsed = parse(
            r#"{"iss":"https://idp.example","sub":"alice","aud":"spa","exp":1700000300,
                "iat":1699999995,"nonce":"the-nonce","auth_time":1699999990,"name":"Alice"}"#,
        )
        .unwrap();
        assert_eq!(parsed, claims());
    }

    #[test]
    fn deserialises_an_audience_array_and_absent_optionals() {
        let parsed = parse(r#"{"iss":"i","sub":"s","aud":["a","b"],"azp":"a"}"#).unwrap();
        assert_eq!(parsed.aud, ["a", "b"]);
        assert_eq!(parsed.azp.as_deref(), Some("a"));
        assert_eq!(
            (parsed.exp, parsed.iat, parsed.auth_time),
            (None, None, None)
        );
        assert_eq!(parsed.nonce, None);
    }

    #[test]
    fn numeric_dates_may_be_fractional_or_null() {
        let parsed = parse(r#"{"iss":"i","sub":"s","aud":"a","exp":12.9,"iat":null}"#).unwrap();
        assert_eq!(parsed.exp, Some(12));
        assert_eq!(parsed.iat, None);
    }

    #[test]
    fn refuses_ill_typed_claims() {
        for json in [
            r#"{"sub":"s","aud":"a"}"#,
            r#"{"iss":"i","aud":"a"}"#,
            r#"{"iss":"i","sub":"s"}"#,
            r#"{"iss":"i","sub":"s","aud":5}"#,
            r#"{"iss":"i","sub":"s","aud":["a",5]}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":-1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":"1700000000"}"#,
            r#"{"iss":"i","sub":"s","aud":"a","nonce":7}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[test]
    fn debug_redacts_the_nonce() {
        assert!(!format!("{:?}", claims()).contains("the-nonce"));
    }

    // --- validate_claims, one test per branch, in order -------------------------

    #[test]
    fn accepts_valid_claims() {
        assert_eq!(login(&claims()), Ok(()));
    }

    #[test]
    fn step1_iss_must_equal_the_issuer_exactly() {
        for iss in [
            "https://evil.example",
            "https://idp.example/",
            "HTTPS://IDP.EXAMPLE",
            "",
        ] {
            let c = IdTokenClaims {
                iss: iss.into(),
                ..claims()
            };
            assert_eq!(login(&c), Err(Error::IdTokenIssMismatch), "{iss}");
        }
    }

    #[test]
    fn step2_aud_must_contain_the_client_id() {
        for aud in [vec![], vec!["other".to_string()], vec!["SPA".to_string()]] {
            let c = IdTokenClaims { aud, ..claims() };
            assert_eq!(login(&c), Err(Error::IdTokenAudMismatch));
        }
    }

    #[test]
    fn step3_several_audiences_require_azp() {
        let c = IdTokenClaims {
            aud: vec![CLIENT.into(), "api".into()],
            azp: None,
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenAzpMismatch));
        let c = IdTokenClaims {
            azp: Some(CLIENT.into()),
            ..c
        };
        assert_eq!(login(&c), Ok(()));
    }

    #[test]
    fn step3_several_audiences_require_azp_to_be_the_client() {
        let c = IdTokenClaims {
            aud: vec![CLIENT.into(), "api".into()],
            azp: Some("api".into()),
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenAzpMismatch));
    }

    #[test]
    fn step3_azp_with_one_audience_must_be_the_client_too() {
        let c = IdTokenClaims {
            azp: Some("other".into()),
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenAzpMismatch));
        let c = IdTokenClaims {
            azp: Some(CLIENT.into()),
            ..claims()
        };
        assert_eq!(login(&c), Ok(()));
    }

    #[test]
    fn step5_an_expired_token_is_refused() {
        let c = IdTokenClaims {
            exp: Some(NOW_S - 3600),
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenExpired));
    }

    #[test]
    fn step5_a_token_without_exp_counts_as_expired() {
        let c = IdTokenClaims {
            exp: None,
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenExpired));
    }

    #[test]
    fn step5_exp_boundary_is_exp_plus_skew() {
        // now == exp + skew: still valid.
        let at_boundary = IdTokenClaims {
            exp: Some((NOW - CLOCK_SKEW_MS) / 1000),
            iat: Some((NOW - CLOCK_SKEW_MS) / 1000 - 300),
            ..claims()
        };
        assert_eq!(login(&at_boundary), Ok(()));
        // One second further: exp + skew < now.
        let past = IdTokenClaims {
            exp: Some((NOW - CLOCK_SKEW_MS) / 1000 - 1),
            iat: Some((NOW - CLOCK_SKEW_MS) / 1000 - 300),
            ..claims()
        };
        assert_eq!(login(&past), Err(Error::IdTokenExpired));
        // And one millisecond past the boundary.
        let c = at_boundary;
        let late = Expectations {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: None,
            now_ms: NOW + 1,
            skew_ms: CLOCK_SKEW_MS,
            previous_sub: None,
        };
        assert_eq!(validate_claims(&c, &late), Err(Error::IdTokenExpired));
    }

    #[test]
    fn step5_a_far_future_exp_does_not_overflow() {
        let c = IdTokenClaims {
            exp: Some(u64::MAX),
            ..claims()
        };
        assert_eq!(login(&c), Ok(()));
    }

    #[test]
    fn step6_a_token_without_iat_is_refused() {
        let c = IdTokenClaims {
            iat: None,
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenIatInvalid));
    }

    #[test]
    fn step6_iat_after_exp_is_refused() {
        let c = IdTokenClaims {
            iat: Some(NOW_S + 301),
            exp: Some(NOW_S + 300),
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenIatInvalid));
    }

    #[test]
    fn fuzz_regression_iat_after_exp_is_refused_where_ms_saturate() {
        // Found by fuzz/fuzz_targets/jws.rs: both times above u64::MAX ms
        // used to saturate to the same value, so iat > exp passed.
        let c = IdTokenClaims {
            iat: Some(u64::MAX / 1000 + 2),
            exp: Some(u64::MAX / 1000 + 1),
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::IdTokenIatInvalid));
    }

    #[test]
    fn step6_iat_equal_to_exp_is_accepted() {
        let c = IdTokenClaims {
            iat: Some(NOW_S + 300),
            exp: Some(NOW_S + 300),
            ..claims()
        };
        assert_eq!(login(&c), Ok(()));
    }

    #[test]
    fn step6_a_device_clock_five_minutes_slow_still_accepts_a_fresh_token() {
        // The server's clock says the token was issued 5 minutes after what
        // the device believes is now.
        let c = IdTokenClaims {
            iat: Some(NOW_S + 300),
            exp: Some(NOW_S + 300 + 3600),
            ..claims()
        };
        assert_eq!(login(&c), Ok(()));
    }

    #[test]
    fn step6_a_device_clock_five_minutes_fast_still_accepts_a_fresh_token() {
        let c = IdTokenClaims {
            iat: Some(NOW_S - 300),
            exp: Some(NOW_S - 300 + 3600),
            ..claims()
        };
        assert_eq!(login(&c), Ok(()));
    }

    #[test]
    fn step5_a_zero_skew_is_exact() {
        let c = IdTokenClaims {
            iat: Some(NOW_S),
            exp: Some(NOW_S),
            ..claims()
        };
        let exact = Expectations {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: None,
            now_ms: NOW,
            skew_ms: 0,
            previous_sub: None,
        };
        assert_eq!(validate_claims(&c, &exact), Ok(()));
        let later = Expectations {
            now_ms: NOW + 1,
            ..exact
        };
        assert_eq!(validate_claims(&c, &later), Err(Error::IdTokenExpired));
    }

    #[test]
    fn step7_an_expected_nonce_must_be_present() {
        let c = IdTokenClaims {
            nonce: None,
            ..claims()
        };
        assert_eq!(login(&c), Err(Error::NonceMismatch));
    }

    #[test]
    fn step7_an_expected_nonce_must_be_equal() {
        for other in ["the-nonc", "the-noncf", "the-nonce ", ""] {
            let c = IdTokenClaims {
                nonce: Some(Nonce::new(other.into())),
                ..claims()
            };
            assert_eq!(login(&c), Err(Error::NonceMismatch), "{other:?}");
        }
    }

    #[test]
    fn step7_without_an_expected_nonce_the_claim_is_ignored() {
        let c = IdTokenClaims {
            nonce: Some(Nonce::new("whatever".into())),
            ..claims()
        };
        assert_eq!(check(&c, None), Ok(()));
        let c = IdTokenClaims {
            nonce: None,
            ..claims()
        };
        assert_eq!(check(&c, None), Ok(()));
    }

    /// What a refresh expects: no nonce, `previous_sub`'s user.
    fn refresh(previous_sub: Option<&str>) -> Expectations<'_> {
        Expectations {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: None,
            now_ms: NOW,
            skew_ms: CLOCK_SKEW_MS,
            previous_sub,
        }
    }

    #[test]
    fn step4_a_refreshed_token_must_name_the_same_user() {
        assert_eq!(validate_claims(&claims(), &refresh(Some("alice"))), Ok(()));
        assert_eq!(
            validate_claims(&claims(), &refresh(Some("bob"))),
            Err(Error::IdTokenSubMismatch)
        );
        assert_eq!(
            validate_claims(&claims(), &refresh(Some("Alice"))),
            Err(Error::IdTokenSubMismatch)
        );
    }

    #[test]
    fn another_user_s_token_is_a_sub_mismatch_even_when_it_is_also_stale() {
        // A device clock far ahead, or a token for someone else that is
        // stale too: a time failure would keep the session (and hand it to
        // the other user's tokens).
        let stale = IdTokenClaims {
            sub: "bob".into(),
            exp: Some(NOW_S - 3600),
            iat: None,
            ..claims()
        };
        assert_eq!(
            validate_claims(&stale, &refresh(Some("alice"))),
            Err(Error::IdTokenSubMismatch)
        );
    }

    #[test]
    fn the_order_is_fixed() {
        // Everything wrong at once: each fix reveals the next check.
        let mut c = IdTokenClaims {
            iss: "https://evil.example".into(),
            sub: "mallory".into(),
            aud: vec!["other".into(), "api".into()],
            azp: None,
            exp: None,
            iat: None,
            nonce: None,
            auth_time: None,
        };
        let expected_nonce = nonce();
        let expect = Expectations {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: Some(&expected_nonce),
            now_ms: NOW,
            skew_ms: CLOCK_SKEW_MS,
            previous_sub: Some("alice"),
        };
        let mut next = |fix: &mut dyn FnMut(&mut IdTokenClaims), expected: Result<(), Error>| {
            fix(&mut c);
            assert_eq!(validate_claims(&c, &expect), expected);
        };
        next(&mut |_| {}, Err(Error::IdTokenIssMismatch));
        next(
            &mut |c| c.iss = ISSUER.into(),
            Err(Error::IdTokenAudMismatch),
        );
        next(
            &mut |c| c.aud[0] = CLIENT.into(),
            Err(Error::IdTokenAzpMismatch),
        );
        next(
            &mut |c| c.azp = Some(CLIENT.into()),
            Err(Error::IdTokenSubMismatch),
        );
        next(&mut |c| c.sub = "alice".into(), Err(Error::IdTokenExpired));
        next(
            &mut |c| c.exp = Some(NOW_S + 60),
            Err(Error::IdTokenIatInvalid),
        );
        next(&mut |c| c.iat = Some(NOW_S), Err(Error::NonceMismatch));
        next(&mut |c| c.nonce = Some(nonce()), Ok(()));
    }
}
