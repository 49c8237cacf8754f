//! `getUser({ userinfo: true })`'s merge as the binding performs it on real
//! JS objects, run by `wasm-pack test --headless --chrome`. Which claims a
//! UserInfo answer may set is the core's (`core::userinfo::userinfo_may_set`),
//! tested natively; this checks the binding applies it.
#![cfg(target_arch = "wasm32")]

use js_sys::{Object, Reflect, JSON};
use latchkey::browser::http::MAX_BODY_BYTES;
use latchkey::browser::user::{merge, read_userinfo};
use latchkey::core::Error;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Response, ResponseInit};

wasm_bindgen_test_configure!(run_in_browser);

fn object(json: &str) -> Object {
    JSON::parse(json).unwrap().unchecked_into()
}

fn claim(object: &Object, name: &str) -> String {
    JSON::stringify(&Reflect::get(object, &name.into()).unwrap())
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
fn userinfo_adds_profile_claims_and_never_replaces_the_id_token_s() {
    let id_claims = object(
        r#"{"iss":"https://idp.example","sub":"u-1","aud":"spa","exp":2000000000,"nonce":"n-1","name":"Old"}"#,
    );
    let userinfo = object(
        r#"{"sub":"u-1","name":"New","email":"u@example.com","iss":"https://evil.example","aud":"other","exp":1,"nonce":"n-2","auth_time":5}"#,
    );
    let merged = merge(&id_claims, &userinfo);
    assert_eq!(claim(&merged, "name"), r#""New""#);
    assert_eq!(claim(&merged, "email"), r#""u@example.com""#);
    assert_eq!(claim(&merged, "iss"), r#""https://idp.example""#);
    assert_eq!(claim(&merged, "aud"), r#""spa""#);
    assert_eq!(claim(&merged, "exp"), "2000000000");
    assert_eq!(claim(&merged, "nonce"), r#""n-1""#);
    assert!(Reflect::get(&merged, &"auth_time".into())
        .unwrap()
        .is_undefined());
    // The ID token's own object is left as it was.
    assert_eq!(claim(&id_claims, "name"), r#""Old""#);
}

fn json_response(body: &str) -> Response {
    let init = ResponseInit::new();
    init.set_status(200);
    Response::new_with_opt_str_and_init(Some(body), &init).unwrap()
}

#[wasm_bindgen_test]
async fn a_userinfo_body_is_read_within_the_bound_on_answers() {
    let read = read_userinfo(&json_response(r#"{"sub":"u-1","name":"N"}"#), "u-1").await;
    assert_eq!(claim(&read.unwrap(), "name"), r#""N""#);

    // One byte over the bound (a padded JSON object): refused with why,
    // not parsed.
    let padding = " ".repeat(MAX_BODY_BYTES as usize - 12);
    let over = format!(r#"{{"sub":"u-1"{padding}}}"#);
    assert_eq!(over.len(), MAX_BODY_BYTES as usize + 1);
    match read_userinfo(&json_response(&over), "u-1").await {
        Err(Error::UserinfoFailed { status, reason }) => {
            assert_eq!(status, Some(200));
            assert!(reason.contains("over 1048576 bytes"), "{reason}");
        }
        other => panic!("not refused for its size: {other:?}"),
    }
}
