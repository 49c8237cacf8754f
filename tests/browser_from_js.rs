//! The JS value reader (`browser::from_js`), run by `wasm-pack test
//! --headless --chrome`: values made by the browser's own `JSON.parse`, read
//! into latchkey's real types and a few shapes of their own.
#![cfg(target_arch = "wasm32")]

use latchkey::browser::from_js::{from_js, WrongShape};
use latchkey::core::discovery::ProviderMetadata;
use latchkey::core::message::EndReason;
use latchkey::core::{RawTokenResponse, TokenSet};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn parse(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("test JSON")
}

#[derive(Debug, Deserialize, PartialEq)]
struct Shapes {
    name: String,
    count: u32,
    #[serde(default)]
    flag: bool,
    maybe: Option<String>,
    list: Vec<i64>,
    any: Number,
}

/// What `deserialize_any` gives for a number.
#[derive(Debug, PartialEq)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
                Ok(Number::Unsigned(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
                Ok(Number::Signed(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
                Ok(Number::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn shapes(any: &str) -> Result<Shapes, WrongShape> {
    from_js(parse(&format!(
        r#"{{"name":"n","count":3,"maybe":null,"list":[1,-2],"extra":{{"x":[1]}},"any":{any}}}"#
    )))
}

#[wasm_bindgen_test]
fn a_struct_reads_its_members_and_ignores_others() {
    let read = shapes("7").unwrap();
    assert_eq!(
        read,
        Shapes {
            name: "n".into(),
            count: 3,
            flag: false,
            maybe: None,
            list: vec![1, -2],
            any: Number::Unsigned(7),
        }
    );
}

#[wasm_bindgen_test]
fn numbers_are_integers_when_they_are_safe_ones() {
    assert_eq!(shapes("-7").unwrap().any, Number::Signed(-7));
    assert_eq!(shapes("1.5").unwrap().any, Number::Float(1.5));
    assert_eq!(shapes("1e300").unwrap().any, Number::Float(1e300));
    let unsafe_integer = shapes("9007199254740993").unwrap().any;
    assert!(
        matches!(unsafe_integer, Number::Float(_)),
        "{unsafe_integer:?}"
    );
}

#[wasm_bindgen_test]
fn a_wrong_shape_is_refused() {
    let wrong = |json: &str| from_js::<Shapes>(parse(json)).unwrap_err();
    // A missing required member, a string for a number, a number out of a
    // u32's range, an array for a struct, and not an object at all.
    assert_eq!(wrong(r#"{"count":3,"list":[],"any":1}"#), WrongShape);
    assert_eq!(
        wrong(r#"{"name":"n","count":"3","list":[],"any":1}"#),
        WrongShape
    );
    assert_eq!(
        wrong(r#"{"name":"n","count":4294967296,"list":[],"any":1}"#),
        WrongShape
    );
    assert_eq!(wrong(r#"["n",3]"#), WrongShape);
    assert_eq!(wrong(r#""n""#), WrongShape);
    assert_eq!(wrong("null"), WrongShape);
}

#[wasm_bindgen_test]
fn a_token_response_reads_as_latchkey_reads_it() {
    let raw: RawTokenResponse = from_js(parse(
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":"300","refresh_token":"rt-1","scope":"openid","unknown":[1,2]}"#,
    ))
    .unwrap();
    let set = TokenSet::from_response(200, raw, 1_000, None, None).unwrap();
    assert_eq!(set.access_token.secret(), "at-1");
    assert_eq!(set.expires_at_ms, Some(301_000));
    assert_eq!(set.refresh_token.unwrap().secret(), "rt-1");
}

#[wasm_bindgen_test]
fn a_unit_enum_reads_by_name() {
    assert_eq!(
        from_js::<EndReason>(parse(r#""signedOut""#)),
        Ok(EndReason::SignedOut)
    );
    assert_eq!(
        from_js::<EndReason>(parse(r#""signed_out""#)),
        Err(WrongShape)
    );
}

#[wasm_bindgen_test]
fn discovery_metadata_with_lists_and_booleans() {
    let metadata: ProviderMetadata = from_js(parse(
        r#"{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/a",
        "token_endpoint":"https://idp.example/t","code_challenge_methods_supported":["S256"],
        "authorization_response_iss_parameter_supported":true}"#,
    ))
    .unwrap();
    assert_eq!(metadata.issuer, "https://idp.example");
    assert!(metadata.authorization_response_iss_parameter_supported);
}
