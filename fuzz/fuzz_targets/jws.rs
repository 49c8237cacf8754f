//! ID token syntax: the JWS compact serialisation parser
//! (`parse_compact_jws`), the algorithm allow-list (`JwsAlgorithm::parse`),
//! the key choice (`select_key` on a parsed JWK Set) and the claims
//! (`IdTokenClaims` from JSON, judged by `validate_claims`).
//!
//! Input: UTF-8 text (lossy), in lines:
//!
//! 1. a compact JWS, parsed as received;
//! 2. optional: a JWK Set as JSON (otherwise a built-in set with
//!    ambiguous, encryption and wrong-curve keys);
//! 3. optional: a claims set as JSON;
//! 4. optional: a JOSE header as JSON. With line 3 it is encoded into a
//!    second token (`b64(header).b64(claims).b64(signature)`), so that the
//!    header and claims parsers see well-formed segments.
//!
//! Properties: never panics; a refusal is `id_token_malformed` and its
//! message quotes no part of the token (no run of 16 base64url characters);
//! an accepted token's parts re-encode to exactly its segments, and its
//! `Debug` does not depend on the payload or signature; a header is
//! accepted exactly when it is a JSON object with a string `alg`, optional
//! string `kid`/`typ` and no `crit`; `JwsAlgorithm::parse` round-trips the
//! three algorithms and refuses everything else; `select_key` returns the
//! one candidate key or nothing; claims deserialise and validate exactly as
//! independent models of the documented rules predict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use latchkey::core::base64url;
use latchkey::core::secret::Nonce;
use latchkey::core::{
    parse_compact_jws, select_key, validate_claims, CompactJws, Error, Expectations, IdTokenClaims,
    Jwk, Jwks, JwsAlgorithm, CLOCK_SKEW_MS,
};
use latchkey::core::ports::Json;
use latchkey_fuzz::{different_from, longest_base64url_run, SerdeJson, CLIENT_ID, ISSUER, NOW_MS};

const ALGORITHMS: [JwsAlgorithm; 3] = [
    JwsAlgorithm::Rs256,
    JwsAlgorithm::Ps256,
    JwsAlgorithm::Es256,
];
const NONCE: &str = "n-0S6_WzA2Mj";

fn key(kty: &str, kid: Option<&str>, alg: Option<&str>, key_use: Option<&str>) -> Jwk {
    Jwk {
        kty: kty.into(),
        kid: kid.map(str::to_string),
        alg: alg.map(str::to_string),
        key_use: key_use.map(str::to_string),
        key_ops: None,
        n: (kty == "RSA").then(|| "sXch".into()),
        e: (kty == "RSA").then(|| "AQAB".into()),
        crv: (kty == "EC").then(|| "P-256".into()),
        x: (kty == "EC").then(|| "f83O".into()),
        y: (kty == "EC").then(|| "x_FE".into()),
    }
}

fn default_jwks() -> Jwks {
    Jwks {
        keys: vec![
            key("RSA", Some("k1"), Some("RS256"), Some("sig")),
            key("RSA", Some("k2"), None, None),
            key("RSA", Some("enc"), None, Some("enc")),
            key("EC", Some("ec1"), Some("ES256"), Some("sig")),
            Jwk {
                crv: Some("P-384".into()),
                ..key("EC", Some("ec384"), None, None)
            },
            key("RSA", Some("dup"), Some("PS256"), None),
            key("RSA", Some("dup"), Some("PS256"), None),
            Jwk {
                key_ops: Some(vec!["encrypt".into()]),
                ..key("RSA", Some("encrypting"), None, None)
            },
        ],
    }
}

// --- the compact serialisation ----------------------------------------------

/// The header `parse_compact_jws` must accept, from its documentation:
/// UTF-8 text of a JSON object with a string `alg`, `kid` and `typ` absent,
/// null or strings, and no `crit`. Returns (alg, kid, typ).
#[allow(clippy::type_complexity)]
fn model_header(bytes: &[u8]) -> Option<(String, Option<String>, Option<String>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    if object.contains_key("crit") {
        return None;
    }
    let optional = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    let alg = object.get("alg")?.as_str()?.to_string();
    Some((alg, optional("kid").ok()?, optional("typ").ok()?))
}

fn check_token(token: &str) -> Option<CompactJws<'_>> {
    let jws = match parse_compact_jws(&SerdeJson, token) {
        Ok(jws) => jws,
        Err(Error::IdTokenMalformed { reason }) => {
            assert!(!reason.is_empty());
            let message = format!("malformed ID token: {reason}");
            assert!(
                longest_base64url_run(&message) < 16,
                "the error may quote the token: {message:?}"
            );
            return None;
        }
        Err(other) => panic!("a refused token must be id_token_malformed, not {other:?}"),
    };
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "accepted {} segments", segments.len());
    assert_eq!(
        jws.signing_input,
        format!("{}.{}", segments[0], segments[1])
    );
    assert_eq!(base64url::encode(jws.payload_json.as_bytes()), segments[1]);
    assert_eq!(base64url::encode(&jws.signature), segments[2]);
    assert!(jws.header.crit.is_none());
    let header = base64url::decode(segments[0]).expect("the header segment decoded");
    let (alg, kid, typ) = model_header(&header).expect("accepted a header the model refuses");
    assert_eq!(jws.header.alg, alg);
    assert_eq!(jws.header.kid, kid);
    assert_eq!(jws.header.typ, typ);

    // Debug shows the header and sizes, never the payload or signature.
    let other_payload = base64url::encode(&vec![b'x'; jws.payload_json.len()]);
    let other_signature = base64url::encode(&vec![0; jws.signature.len()]);
    let twin = format!("{}.{other_payload}.{other_signature}", segments[0]);
    let twin_jws = parse_compact_jws(&SerdeJson, &twin).expect("only the payload differs");
    assert_eq!(format!("{jws:?}"), format!("{twin_jws:?}"));
    Some(jws)
}

fn check_algorithm(alg: &str) -> Option<JwsAlgorithm> {
    match JwsAlgorithm::parse(alg) {
        Ok(parsed) => {
            assert_eq!(parsed.as_str(), alg);
            assert_eq!(
                parsed.signature_len(),
                (parsed == JwsAlgorithm::Es256).then_some(64)
            );
            Some(parsed)
        }
        Err(error) => {
            assert!(!["RS256", "PS256", "ES256"].contains(&alg));
            assert_eq!(
                error,
                Error::IdTokenUnsupportedAlg {
                    alg: alg.to_string()
                }
            );
            None
        }
    }
}

// --- keys -------------------------------------------------------------------

fn model_candidate(key: &Jwk, alg: JwsAlgorithm, kid: Option<&str>) -> bool {
    let fits = match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => key.kty == "RSA",
        JwsAlgorithm::Es256 => key.kty == "EC" && key.crv.as_deref() == Some("P-256"),
    };
    let ops_allow_verify = match &key.key_ops {
        None => true,
        Some(ops) => ops.contains(&"verify".to_string()),
    };
    fits && matches!(key.key_use.as_deref(), None | Some("sig"))
        && ops_allow_verify
        && (key.alg.is_none() || key.alg.as_deref() == Some(alg.as_str()))
        && (kid.is_none() || key.kid.as_deref() == kid)
}

fn check_select(jwks: &Jwks, alg: JwsAlgorithm, kid: Option<&str>) {
    let candidates: Vec<&Jwk> = jwks
        .keys
        .iter()
        .filter(|key| model_candidate(key, alg, kid))
        .collect();
    let chosen = select_key(jwks, alg, kid);
    match (chosen, candidates.as_slice()) {
        (Some(chosen), [only]) => assert!(std::ptr::eq(chosen, *only)),
        (None, candidates) => assert_ne!(candidates.len(), 1, "the one candidate was refused"),
        (Some(chosen), candidates) => panic!(
            "chose {chosen:?} among {} candidates for {alg:?} / {kid:?}",
            candidates.len()
        ),
    }
}

// --- claims -----------------------------------------------------------------

fn optional_string(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ()> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

fn numeric_date(object: &serde_json::Map<String, Value>, name: &str) -> Result<Option<u64>, ()> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if n.is_i64() {
                Err(())
            } else {
                let f = n.as_f64().ok_or(())?;
                if f.is_finite() && f >= 0.0 {
                    Ok(Some(f as u64))
                } else {
                    Err(())
                }
            }
        }
        Some(_) => Err(()),
    }
}

/// The documented shape of `IdTokenClaims`: `iss`, `sub` strings and
/// `aud` a string or an array of strings are required; `azp`, `nonce`
/// optional strings; `exp`, `iat`, `auth_time` optional non-negative
/// numbers of seconds, fractions dropped.
fn model_claims(text: &str) -> Option<IdTokenClaims> {
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    let iss = object.get("iss")?.as_str()?.to_string();
    let sub = object.get("sub")?.as_str()?.to_string();
    let aud = match object.get("aud")? {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    Some(IdTokenClaims {
        iss,
        sub,
        aud,
        azp: optional_string(object, "azp").ok()?,
        exp: numeric_date(object, "exp").ok()?,
        iat: numeric_date(object, "iat").ok()?,
        nonce: optional_string(object, "nonce").ok()?.map(Nonce::new),
        auth_time: numeric_date(object, "auth_time").ok()?,
    })
}

/// `validate_claims`' documented checks, in order.
fn model_validate(claims: &IdTokenClaims, expect: &Expectations<'_>) -> Result<(), Error> {
    if claims.iss != expect.issuer {
        return Err(Error::IdTokenIssMismatch);
    }
    if !claims.aud.iter().any(|a| a == expect.client_id) {
        return Err(Error::IdTokenAudMismatch);
    }
    let azp_ok = match &claims.azp {
        None => claims.aud.len() == 1,
        Some(azp) => azp == expect.client_id,
    };
    if !azp_ok {
        return Err(Error::IdTokenAzpMismatch);
    }
    // Who the token is about, before any time check.
    if let Some(previous) = expect.previous_sub {
        if claims.sub != previous {
            return Err(Error::IdTokenSubMismatch);
        }
    }
    let exp = claims.exp.ok_or(Error::IdTokenExpired)?;
    if u128::from(expect.now_ms) > u128::from(exp) * 1000 + u128::from(expect.skew_ms) {
        return Err(Error::IdTokenExpired);
    }
    // Not after exp; deliberately not compared with the device clock.
    let iat = claims.iat.ok_or(Error::IdTokenIatInvalid)?;
    if iat > exp {
        return Err(Error::IdTokenIatInvalid);
    }
    if let Some(expected) = expect.nonce {
        if claims.nonce.as_ref().map(Nonce::secret) != Some(expected.secret()) {
            return Err(Error::NonceMismatch);
        }
    }
    Ok(())
}

fn check_claims(text: &str) {
    // As verify_id_token does: claims are a JSON object, never an array
    // of the fields in order (which serde's derive would also take).
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return;
    }
    let parsed: Result<IdTokenClaims, String> = SerdeJson.parse_json(text);
    let model = model_claims(text);
    assert_eq!(parsed.as_ref().ok(), model.as_ref(), "claims {text:?}");
    let Ok(claims) = parsed else {
        return;
    };

    // Debug never shows the nonce.
    let twin = IdTokenClaims {
        nonce: claims
            .nonce
            .as_ref()
            .map(|n| Nonce::new(different_from(n.secret(), &[]))),
        ..claims.clone()
    };
    assert_eq!(format!("{claims:?}"), format!("{twin:?}"));

    let nonce = Nonce::new(NONCE.into());
    let login = Expectations {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        nonce: Some(&nonce),
        now_ms: NOW_MS,
        skew_ms: CLOCK_SKEW_MS,
        previous_sub: None,
    };
    let refresh = Expectations {
        nonce: None,
        previous_sub: Some("alice"),
        ..login
    };
    for expect in [
        login,
        refresh,
        Expectations { now_ms: 0, ..login },
        Expectations {
            now_ms: u64::MAX,
            skew_ms: u64::MAX,
            ..refresh
        },
        Expectations {
            issuer: &claims.iss,
            ..refresh
        },
    ] {
        assert_eq!(
            validate_claims(&claims, &expect),
            model_validate(&claims, &expect),
            "{expect:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let token = lines.next().unwrap_or("");
    let jwks = lines
        .next()
        .and_then(|json| SerdeJson.parse_json::<Jwks>(json).ok())
        .unwrap_or_else(default_jwks);
    let claims_json = lines.next();
    let header_json = lines.next();

    let mut tokens = vec![token.to_string()];
    if let (Some(claims), Some(header)) = (claims_json, header_json) {
        let built = format!(
            "{}.{}.{}",
            base64url::encode(header.as_bytes()),
            base64url::encode(claims.as_bytes()),
            base64url::encode(b"\x30\x45\x02\x20 a signature")
        );
        // An empty claims line makes an empty payload segment, refused
        // whatever the header.
        let accepted = check_token(&built).is_some();
        assert_eq!(
            accepted,
            !claims.is_empty() && model_header(header.as_bytes()).is_some(),
            "header {header:?}, claims {claims:?}"
        );
        tokens.push(built);
    }
    if let Some(claims) = claims_json {
        check_claims(claims);
    }

    for token in &tokens {
        let Some(jws) = check_token(token) else {
            continue;
        };
        let kid = jws.header.kid.as_deref();
        if let Some(alg) = check_algorithm(&jws.header.alg) {
            check_select(&jwks, alg, kid);
        }
        for alg in ALGORITHMS {
            for kid in [kid, None, Some("k1"), Some("dup")] {
                check_select(&jwks, alg, kid);
            }
        }
        check_claims(&jws.payload_json);
    }
    check_algorithm(token);
});
