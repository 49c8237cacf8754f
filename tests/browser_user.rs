//! `getUser({ userinfo: true })`'s merge as the binding performs it on real
//! JS objects, run by `wasm-pack test --headless --chrome`. Which claims a
//! UserInfo answer may set is the core's (`core::userinfo::userinfo_may_set`),
//! tested natively; this checks the binding applies it.
#![cfg(target_arch = "wasm32")]

use js_sys::{Object, Reflect, JSON};
use latchkey::browser::user::merge;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

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
