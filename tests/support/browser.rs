//! Helpers shared by the browser test files (`#[path]`-included: each file
//! under `tests/` is its own crate).
// Each including file uses only some of them.
#![allow(dead_code)]

use latchkey::core::{AccessToken, RefreshToken, TokenSet};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A Bearer set whose access token is `access`.
pub fn tokens(access: &str) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(access.into()),
        token_type: "Bearer".into(),
        expires_at_ms: Some(1_900_000_000_000),
        refresh_token: Some(RefreshToken::new("refresh-token-secret-text".into())),
        scope: Some("openid api".into()),
        id_token: None,
        refresh_expires_at_ms: None,
        issued_at_ms: 1_800_000_000_000,
        login_at_ms: 1_800_000_000_000,
        rotation: 0,
        dpop_jkt: None,
        atproto: None,
    }
}

/// Deletes database `name` from another connection, as clearing site data
/// does: "deleted" when it went through, "blocked" when an open connection
/// held it up.
pub async fn delete_database(name: &str) -> String {
    let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
    let deleting = factory.delete_database(name).unwrap();
    let outcome = js_sys::Promise::new(&mut |resolve, _| {
        let (done, blocked) = (resolve.clone(), resolve);
        let on_success = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = done.call1(&JsValue::NULL, &"deleted".into());
        });
        let on_blocked = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = blocked.call1(&JsValue::NULL, &"blocked".into());
        });
        deleting.set_onsuccess(Some(on_success.unchecked_ref()));
        deleting.set_onblocked(Some(on_blocked.unchecked_ref()));
    });
    JsFuture::from(outcome).await.unwrap().as_string().unwrap()
}

/// An AES-GCM key as a script could plant one: extractable.
pub async fn extractable_aes_key() -> JsValue {
    let subtle = web_sys::window().unwrap().crypto().unwrap().subtle();
    let params = web_sys::AesKeyGenParams::new("AES-GCM", 256);
    let usages = js_sys::Array::of2(&"encrypt".into(), &"decrypt".into());
    let generated = subtle
        .generate_key_with_object(&params, true, &usages)
        .unwrap();
    JsFuture::from(generated).await.unwrap()
}
