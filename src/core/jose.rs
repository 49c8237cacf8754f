//! JOSE pieces an OpenID Connect client needs: the JWS algorithms latchkey
//! verifies, the public keys (JWK, [RFC 7517](https://www.rfc-editor.org/rfc/rfc7517))
//! they are verified with, the strict parser of a JWS compact serialisation
//! ([RFC 7515 §7.1](https://www.rfc-editor.org/rfc/rfc7515#section-7.1)) and
//! the choice of the key that verifies it.
//!
//! Nothing here verifies a signature (the platform does, see
//! [`SignatureVerifier`](crate::core::ports::SignatureVerifier)) or judges
//! claims (see [`id_token`](super::id_token)): this module only decides
//! whether a token is well-formed and which key is meant to verify it.
#![allow(async_fn_in_trait)]

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::base64url;
use super::error::Error;
use crate::core::platform::Json;

/// A JWS algorithm latchkey verifies
/// ([RFC 7518 §3.1](https://www.rfc-editor.org/rfc/rfc7518#section-3.1)).
/// `none` and the HMAC algorithms (`HS*`) are deliberately absent: a public
/// client has no shared secret, and `none` proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (salt of 32 bytes).
    Ps256,
    /// ECDSA on P-256 with SHA-256 (signature is `r || s`, 64 bytes).
    Es256,
}

impl JwsAlgorithm {
    /// The algorithm named by a JWS header's `alg`
    /// ([RFC 7515 §4.1.1](https://www.rfc-editor.org/rfc/rfc7515#section-4.1.1)),
    /// compared case-sensitively.
    ///
    /// Anything but `RS256`, `PS256` and `ES256` is `id_token_unsupported_alg`:
    /// `none` because an unsigned token proves nothing, `HS256`/`HS384`/`HS512`
    /// because their key would be the client secret a public client does not
    /// have (and accepting them invites the "RSA public key as HMAC secret"
    /// confusion), and everything else because latchkey cannot verify it.
    pub fn parse(alg: &str) -> Result<Self, Error> {
        match alg {
            "RS256" => Ok(JwsAlgorithm::Rs256),
            "PS256" => Ok(JwsAlgorithm::Ps256),
            "ES256" => Ok(JwsAlgorithm::Es256),
            // `none`, `HS*` and anything unknown alike.
            _ => Err(Error::IdTokenUnsupportedAlg {
                alg: alg.to_string(),
            }),
        }
    }

    /// The exact signature length the algorithm produces, when it does not
    /// depend on the key: 64 bytes (`r || s`) for ES256
    /// ([RFC 7518 §3.4](https://www.rfc-editor.org/rfc/rfc7518#section-3.4)).
    /// `None` for the RSA algorithms, whose signatures are as long as the
    /// key's modulus.
    ///
    /// A signature of any other length (e.g. a DER-encoded ECDSA signature)
    /// cannot verify, and is reported as `id_token_invalid_signature`.
    pub fn signature_len(self) -> Option<usize> {
        match self {
            JwsAlgorithm::Es256 => Some(64),
            JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => None,
        }
    }

    /// Whether `key` has the type (and curve) `self` needs: `RSA` for RS256
    /// and PS256, `EC` on `P-256` for ES256
    /// ([RFC 7518 §6](https://www.rfc-editor.org/rfc/rfc7518#section-6)).
    fn fits(self, key: &Jwk) -> bool {
        match self {
            JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => key.kty == "RSA",
            JwsAlgorithm::Es256 => key.kty == "EC" && key.crv.as_deref() == Some("P-256"),
        }
    }

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::Es256 => "ES256",
        }
    }
}

/// One public key of an issuer's key set (the members latchkey reads).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA` or `EC`.
    pub kty: String,
    /// Key id, matched against the JWS header's `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// The algorithm the key is meant for, if the issuer says.
    #[serde(default)]
    pub alg: Option<String>,
    /// `sig` or `enc`; an `enc` key never verifies a signature.
    #[serde(default, rename = "use")]
    pub key_use: Option<String>,
    /// What the key may be used for
    /// ([RFC 7517 §4.3](https://www.rfc-editor.org/rfc/rfc7517#section-4.3)):
    /// when given, it must include `verify`.
    #[serde(default)]
    pub key_ops: Option<Vec<String>>,
    /// RSA modulus (base64url).
    #[serde(default)]
    pub n: Option<String>,
    /// RSA public exponent (base64url).
    #[serde(default)]
    pub e: Option<String>,
    /// EC curve, e.g. `P-256`.
    #[serde(default)]
    pub crv: Option<String>,
    /// EC x coordinate (base64url).
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default)]
    pub y: Option<String>,
}

impl Jwk {
    /// Whether `key_ops`, when given, allows verifying a signature.
    pub fn verifies(&self) -> bool {
        self.key_ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|op| op == "verify"))
    }
}

/// An issuer's key set, as served at `jwks_uri`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// The key of `jwks` that verifies a JWS signed with `alg` and carrying the
/// header `kid` ([RFC 7515 §4.1.4](https://www.rfc-editor.org/rfc/rfc7515#section-4.1.4),
/// [OIDC Core §10.1](https://openid.net/specs/openid-connect-core-1_0.html#Signing)).
///
/// A key is a candidate when all of these hold:
///
/// - its `kty` (and `crv`) fit `alg` (`RSA` for RS256/PS256, `EC` on `P-256`
///   for ES256);
/// - its `use` is absent or `sig` (an encryption key never verifies);
/// - its `alg` is absent or exactly `alg`;
/// - when `kid` is given, its `kid` equals it.
///
/// The key is returned only when exactly one key is a candidate. Without a
/// `kid` OIDC Core §10.1 allows the issuer to omit it only when the choice is
/// unambiguous; with several candidates (with or without a `kid`, e.g. a
/// duplicated `kid`) latchkey refuses to guess and returns `None`.
pub fn select_key<'a>(jwks: &'a Jwks, alg: JwsAlgorithm, kid: Option<&str>) -> Option<&'a Jwk> {
    let mut candidates = jwks.keys.iter().filter(|key| {
        alg.fits(key)
            && key.key_use.as_deref().is_none_or(|u| u == "sig")
            && key.verifies()
            && key.alg.as_deref().is_none_or(|a| a == alg.as_str())
            && kid.is_none_or(|kid| key.kid.as_deref() == Some(kid))
    });
    match (candidates.next(), candidates.next()) {
        (Some(key), None) => Some(key),
        _ => None,
    }
}

/// The members of a JOSE header latchkey reads
/// ([RFC 7515 §4.1](https://www.rfc-editor.org/rfc/rfc7515#section-4.1)).
/// Other members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JoseHeader {
    /// The signing algorithm (required); checked with [`JwsAlgorithm::parse`].
    pub alg: String,
    /// The key id, if the issuer names the key.
    #[serde(default)]
    pub kid: Option<String>,
    /// The media type of the whole JWS, e.g. `JWT`; informational.
    #[serde(default)]
    pub typ: Option<String>,
    /// Extensions the recipient must understand
    /// ([RFC 7515 §4.1.11](https://www.rfc-editor.org/rfc/rfc7515#section-4.1.11)).
    /// latchkey understands none, so [`parse_compact_jws`] refuses any header
    /// that has this member, even as `null` or `[]` (which deserialise as
    /// `Some(vec![])`).
    #[serde(default, deserialize_with = "present")]
    pub crit: Option<Vec<String>>,
}

/// Marks a member as present whatever its value, `null` included: serde
/// calls this only for members that appear in the object.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Some(
        Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// A syntactically valid JWS compact serialisation, split and decoded by
/// [`parse_compact_jws`]. Nothing in it has been verified.
///
/// `Debug` shows the header and sizes only: the payload and the signing
/// input are the token itself.
pub struct CompactJws<'a> {
    /// The decoded JOSE header.
    pub header: JoseHeader,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the
    /// signature covers ([RFC 7515 §5.2](https://www.rfc-editor.org/rfc/rfc7515#section-5.2)).
    pub signing_input: &'a str,
    /// The payload, decoded and checked to be UTF-8; not yet parsed.
    pub payload_json: String,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl fmt::Debug for CompactJws<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactJws")
            .field("header", &self.header)
            .field("signing_input_len", &self.signing_input.len())
            .field("payload_len", &self.payload_json.len())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::IdTokenMalformed {
        reason: reason.into(),
    }
}

/// Decodes one segment; the error names the segment and the offset, never
/// its text.
fn decode_segment(name: &str, segment: &str) -> Result<Vec<u8>, Error> {
    base64url::decode(segment).map_err(|e| malformed(format!("the {name} segment: {e}")))
}

/// Whether `text` is, at first glance, a JSON object (`{` after optional
/// JSON whitespace, [RFC 8259 §2](https://www.rfc-editor.org/rfc/rfc8259#section-2)).
///
/// serde's derived `Deserialize` for a struct also accepts a JSON array of
/// its fields in order; a JOSE header and a JWT claims set are objects
/// ([RFC 7515 §4](https://www.rfc-editor.org/rfc/rfc7515#section-4),
/// [RFC 7519 §7.2](https://www.rfc-editor.org/rfc/rfc7519#section-7.2)), so
/// anything else is refused before parsing.
pub(crate) fn looks_like_json_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// Parses a JWS compact serialisation
/// ([RFC 7515 §7.1](https://www.rfc-editor.org/rfc/rfc7515#section-7.1),
/// following the steps of [§5.2](https://www.rfc-editor.org/rfc/rfc7515#section-5.2)).
///
/// Strict, and in this order:
///
/// 1. exactly three `.`-separated segments, none empty (an unsecured JWS,
///    whose signature segment is empty, is malformed here);
/// 2. each segment is unpadded base64url with nothing else in it (no `=`,
///    no whitespace; see [`base64url::decode`]);
/// 3. the header is UTF-8 text of a JSON object that parses (through the
///    platform's [`Json`]) as a [`JoseHeader`] with a string `alg`;
/// 4. the header has no `crit` member (latchkey understands no extension);
/// 5. the payload is UTF-8 (it is parsed as claims only after the signature
///    is verified);
/// 6. the signature segment decodes.
///
/// Any failure is `id_token_malformed`, whose reason names the step and never
/// contains the token or any part of it. Never panics, whatever `token` is,
/// and splits at most four times, so a token made of dots is cheap to refuse.
///
/// `alg` is returned as text: whether latchkey accepts it is
/// [`JwsAlgorithm::parse`]'s decision.
pub fn parse_compact_jws<'a, J: Json>(json: &J, token: &'a str) -> Result<CompactJws<'a>, Error> {
    // 1. Three non-empty segments; `split` is lazy, so at most four are looked at.
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(malformed(
            "a JWS compact serialisation has exactly three segments",
        ));
    };
    if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(malformed("a segment is empty"));
    }

    // 2–4. The header.
    let header_bytes = decode_segment("header", header_b64)?;
    let header_text =
        std::str::from_utf8(&header_bytes).map_err(|_| malformed("the header is not UTF-8"))?;
    if !looks_like_json_object(header_text) {
        return Err(malformed("the header is not a JSON object"));
    }
    let header: JoseHeader = json.parse_json(header_text).map_err(|why| {
        malformed(format!(
            "the header is not a JOSE header with an alg: {why}"
        ))
    })?;
    if header.crit.is_some() {
        return Err(malformed(
            "the header has crit, and latchkey understands no JWS extension",
        ));
    }

    // 5. The payload, kept as text.
    let payload_json = String::from_utf8(decode_segment("payload", payload_b64)?)
        .map_err(|_| malformed("the payload is not UTF-8"))?;

    // 6. The signature.
    let signature = decode_segment("signature", signature_b64)?;

    // Both segments are ASCII (they decoded), so this is a char boundary.
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(CompactJws {
        header,
        signing_input,
        payload_json,
        signature,
    })
}

/// Verifies JWS signatures with the platform's cryptography (WebCrypto).
pub trait SignatureVerifier {
    /// Whether `signature` is `alg`'s signature of `signing_input` under the
    /// public key `key`. `Ok(false)` for a wrong signature; `Err` when the
    /// key cannot be used for `alg` (wrong type or curve, bad encoding).
    async fn verify_signature(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::FakePlatform;

    fn b64(text: &str) -> String {
        base64url::encode(text.as_bytes())
    }

    const HEADER: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;
    const PAYLOAD: &str = r#"{"iss":"https://idp.example","sub":"alice"}"#;

    fn token(header: &str, payload: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(header),
            b64(payload),
            base64url::encode(signature)
        )
    }

    fn parse(token: &str) -> Result<CompactJws<'_>, Error> {
        parse_compact_jws(&FakePlatform::default(), token)
    }

    /// Asserts `token` is refused as malformed, and that the reason quotes
    /// neither the token nor any of its (non-trivial) segments.
    fn assert_malformed(token: &str) -> String {
        match parse(token) {
            Err(Error::IdTokenMalformed { reason }) => {
                assert!(!reason.is_empty());
                if !token.is_empty() {
                    assert!(!reason.contains(token), "reason quotes the token");
                }
                for segment in token.split('.').filter(|s| s.len() >= 6) {
                    assert!(!reason.contains(segment), "reason quotes {segment:?}");
                }
                reason
            }
            other => panic!("expected id_token_malformed, got {other:?}"),
        }
    }

    fn rsa(kid: Option<&str>) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: kid.map(str::to_string),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        }
    }

    fn ec(kid: Option<&str>, crv: &str) -> Jwk {
        Jwk {
            kty: "EC".into(),
            kid: kid.map(str::to_string),
            crv: Some(crv.into()),
            x: Some("AA".into()),
            y: Some("AA".into()),
            ..Jwk::default()
        }
    }

    fn set(keys: Vec<Jwk>) -> Jwks {
        Jwks { keys }
    }

    // --- JwsAlgorithm::parse -------------------------------------------------

    #[test]
    fn parses_the_supported_algorithms() {
        for alg in [
            JwsAlgorithm::Rs256,
            JwsAlgorithm::Ps256,
            JwsAlgorithm::Es256,
        ] {
            assert_eq!(JwsAlgorithm::parse(alg.as_str()), Ok(alg));
        }
    }

    #[test]
    fn refuses_none_hmac_and_unknown_algorithms() {
        for alg in [
            "none", "None", "HS256", "HS384", "HS512", "rs256", "RS384", "ES384", "EdDSA", "",
        ] {
            assert_eq!(
                JwsAlgorithm::parse(alg),
                Err(Error::IdTokenUnsupportedAlg { alg: alg.into() }),
                "{alg}"
            );
        }
    }

    #[test]
    fn only_es256_has_a_fixed_signature_length() {
        assert_eq!(JwsAlgorithm::Es256.signature_len(), Some(64));
        assert_eq!(JwsAlgorithm::Rs256.signature_len(), None);
        assert_eq!(JwsAlgorithm::Ps256.signature_len(), None);
    }

    // --- parse_compact_jws ---------------------------------------------------

    #[test]
    fn parses_a_well_formed_token() {
        let text = token(HEADER, PAYLOAD, &[1, 2, 3, 250]);
        let jws = parse(&text).unwrap();
        assert_eq!(jws.header.alg, "RS256");
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jws.header.crit, None);
        assert_eq!(jws.payload_json, PAYLOAD);
        assert_eq!(jws.signature, [1, 2, 3, 250]);
        assert_eq!(
            jws.signing_input,
            format!("{}.{}", b64(HEADER), b64(PAYLOAD))
        );
    }

    #[test]
    fn header_members_other_than_alg_are_optional_and_extras_ignored() {
        let text = token(r#" {"alg":"ES256","x5t":"abc","jku":"x"}"#, "{}", &[9]);
        let jws = parse(&text).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.kid, None);
        assert_eq!(jws.header.typ, None);
    }

    #[test]
    fn parsing_does_not_judge_the_algorithm() {
        let text = token(r#"{"alg":"none"}"#, PAYLOAD, &[0]);
        let jws = parse(&text).unwrap();
        assert_eq!(jws.header.alg, "none");
    }

    #[test]
    fn refuses_the_empty_string() {
        assert_malformed("");
    }

    #[test]
    fn refuses_two_and_four_segments() {
        let (h, p) = (b64(HEADER), b64(PAYLOAD));
        assert_malformed(&format!("{h}.{p}"));
        assert_malformed(&format!("{h}.{p}.AQID.AQID"));
        assert_malformed(&format!("{h}.{p}.AQID."));
        assert_malformed(&h);
    }

    #[test]
    fn refuses_huge_segment_counts_quickly() {
        assert_malformed(&".".repeat(1_000_000));
        assert_malformed(&"a.".repeat(500_000));
    }

    #[test]
    fn refuses_empty_segments() {
        let (h, p) = (b64(HEADER), b64(PAYLOAD));
        assert_malformed("..");
        assert_malformed(&format!(".{p}.AQID"));
        assert_malformed(&format!("{h}..AQID"));
        // An unsecured JWS (alg none) has an empty signature segment.
        assert_malformed(&format!("{}.{p}.", b64(r#"{"alg":"none"}"#)));
    }

    #[test]
    fn refuses_characters_outside_base64url() {
        let (h, p) = (b64(HEADER), b64(PAYLOAD));
        assert_malformed(&format!("{h}.{p}.AQ+D"));
        assert_malformed(&format!("{h}.{p}.AQ/D"));
        assert_malformed(&format!("{h} .{p}.AQID"));
        assert_malformed(&format!("{h}.{p}\n.AQID"));
        assert_malformed(&format!("{h}.{p}.AQID "));
        assert_malformed(&format!("{h}.{p}.AQ\u{e9}D"));
        assert_malformed(&format!("{h}.{p}.A"));
    }

    #[test]
    fn refuses_padding() {
        let (h, p) = (b64(HEADER), b64(PAYLOAD));
        assert_malformed(&format!("{h}.{p}.AQ=="));
        assert_malformed(&format!("{h}=.{p}.AQID"));
    }

    #[test]
    fn refuses_a_non_utf8_payload_or_header() {
        let h = b64(HEADER);
        assert_malformed(&format!(
            "{h}.{}.AQID",
            base64url::encode(&[0xff, 0xfe, b'{'])
        ));
        assert_malformed(&format!(
            "{}.{}.AQID",
            base64url::encode(&[b'{', 0xc3, b'}']),
            b64(PAYLOAD)
        ));
    }

    #[test]
    fn refuses_a_header_that_is_not_a_json_object() {
        for header in [
            "not json",
            r#"{"alg":"RS256""#,
            r#"["RS256"]"#,
            r#""RS256""#,
            "null",
            r#"{"alg":"RS256"} trailing"#,
        ] {
            assert_malformed(&token(header, PAYLOAD, &[1]));
        }
    }

    #[test]
    fn refuses_a_header_without_a_string_alg() {
        for header in [
            "{}",
            r#"{"kid":"k1"}"#,
            r#"{"alg":null}"#,
            r#"{"alg":256}"#,
            r#"{"alg":"RS256","kid":7}"#,
        ] {
            assert_malformed(&token(header, PAYLOAD, &[1]));
        }
    }

    #[test]
    fn refuses_any_crit() {
        for header in [
            r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":null}"#,
            r#"{"alg":"RS256","crit":"b64"}"#,
        ] {
            assert_malformed(&token(header, PAYLOAD, &[1]));
        }
    }

    #[test]
    fn the_payload_is_not_parsed_here() {
        let text = token(HEADER, "not json at all", &[1]);
        let jws = parse(&text).unwrap();
        assert_eq!(jws.payload_json, "not json at all");
    }

    #[test]
    fn debug_shows_neither_payload_nor_signing_input() {
        let text = token(HEADER, PAYLOAD, &[1, 2, 3]);
        let debug = format!("{:?}", parse(&text).unwrap());
        assert!(!debug.contains("alice"));
        assert!(!debug.contains(&b64(PAYLOAD)));
        assert!(debug.contains("RS256"));
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        // Every prefix of a valid token, and tokens built from awkward
        // pieces: each is either parsed or refused, never a panic.
        let valid = token(HEADER, PAYLOAD, &[1, 2, 3]);
        for end in 0..=valid.len() {
            let _ = parse(&valid[..end]);
        }
        let pieces = ["", ".", "=", "é", "\u{0}", "AQID", "e30", "_-", "..", " "];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let _ = parse(&format!("{a}{b}.{c}{a}.{b}{c}"));
                }
            }
        }
    }

    // --- select_key ----------------------------------------------------------

    #[test]
    fn selects_by_kid() {
        let jwks = set(vec![rsa(Some("a")), rsa(Some("b"))]);
        let key = select_key(&jwks, JwsAlgorithm::Rs256, Some("b")).unwrap();
        assert_eq!(key.kid.as_deref(), Some("b"));
        assert_eq!(select_key(&jwks, JwsAlgorithm::Rs256, Some("c")), None);
    }

    #[test]
    fn without_a_kid_selects_the_only_fitting_key() {
        let jwks = set(vec![rsa(Some("a")), ec(Some("e"), "P-256")]);
        let key = select_key(&jwks, JwsAlgorithm::Es256, None).unwrap();
        assert_eq!(key.kid.as_deref(), Some("e"));
        let key = select_key(&jwks, JwsAlgorithm::Ps256, None).unwrap();
        assert_eq!(key.kid.as_deref(), Some("a"));
    }

    #[test]
    fn ambiguity_selects_nothing() {
        let jwks = set(vec![rsa(Some("a")), rsa(Some("b"))]);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Rs256, None), None);
        let duplicated = set(vec![rsa(Some("a")), rsa(Some("a"))]);
        assert_eq!(
            select_key(&duplicated, JwsAlgorithm::Rs256, Some("a")),
            None
        );
    }

    #[test]
    fn key_type_and_curve_must_fit_the_algorithm() {
        let jwks = set(vec![rsa(Some("r")), ec(Some("p384"), "P-384")]);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Es256, Some("r")), None);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Es256, Some("p384")), None);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Rs256, Some("p384")), None);
        let oct = set(vec![Jwk {
            kty: "oct".into(),
            kid: Some("h".into()),
            ..Jwk::default()
        }]);
        assert_eq!(select_key(&oct, JwsAlgorithm::Rs256, Some("h")), None);
    }

    #[test]
    fn an_encryption_key_never_verifies() {
        let mut enc = rsa(Some("a"));
        enc.key_use = Some("enc".into());
        let mut sig = rsa(Some("a"));
        sig.key_use = Some("sig".into());
        assert_eq!(
            select_key(&set(vec![enc.clone()]), JwsAlgorithm::Rs256, Some("a")),
            None
        );
        // The encryption key does not make the choice ambiguous.
        let both = set(vec![enc, sig.clone()]);
        assert_eq!(
            select_key(&both, JwsAlgorithm::Rs256, Some("a")),
            Some(&sig)
        );
    }

    #[test]
    fn a_key_whose_operations_exclude_verify_never_verifies() {
        let mut encrypting = rsa(Some("a"));
        encrypting.key_ops = Some(vec!["encrypt".into()]);
        assert_eq!(
            select_key(
                &set(vec![encrypting.clone()]),
                JwsAlgorithm::Rs256,
                Some("a")
            ),
            None
        );
        let mut verifying = rsa(Some("a"));
        verifying.key_ops = Some(vec!["verify".into()]);
        let both = set(vec![encrypting, verifying.clone()]);
        assert_eq!(
            select_key(&both, JwsAlgorithm::Rs256, Some("a")),
            Some(&verifying)
        );
    }

    #[test]
    fn a_key_alg_must_equal_the_algorithm() {
        let mut ps = rsa(Some("a"));
        ps.alg = Some("PS256".into());
        let jwks = set(vec![ps.clone()]);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Rs256, Some("a")), None);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Ps256, Some("a")), Some(&ps));
        // Two RSA keys told apart by their alg.
        let mut rs = rsa(Some("b"));
        rs.alg = Some("RS256".into());
        let jwks = set(vec![ps, rs.clone()]);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Rs256, None), Some(&rs));
    }

    #[test]
    fn a_kid_never_matches_a_key_without_one() {
        let jwks = set(vec![rsa(None)]);
        assert_eq!(select_key(&jwks, JwsAlgorithm::Rs256, Some("a")), None);
        assert!(select_key(&jwks, JwsAlgorithm::Rs256, None).is_some());
    }

    #[test]
    fn an_empty_set_selects_nothing() {
        assert_eq!(
            select_key(&Jwks::default(), JwsAlgorithm::Rs256, None),
            None
        );
    }
}
