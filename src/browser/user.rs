//! `getUser()`: the signed-in user's claims, from the verified ID token and,
//! on request, the UserInfo endpoint
//! ([OIDC Core §5.3](https://openid.net/specs/openid-connect-core-1_0.html#UserInfo)).

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use crate::browser::js_error::describe;
use crate::browser::options::{flag, reject_unknown};
use crate::core::Error;

/// `getUser`'s options: `{ userinfo?: boolean }`.
pub fn wants_userinfo(options: &JsValue) -> Result<bool, Error> {
    if options.is_undefined() || options.is_null() {
        return Ok(false);
    }
    if !options.is_object() {
        return Err(Error::invalid_option(
            "getUser",
            "options must be an object",
        ));
    }
    reject_unknown(options, &["userinfo"], "getUser")?;
    flag(options, "userinfo", false)
}

fn failed(status: Option<u16>, reason: impl Into<String>) -> Error {
    Error::UserinfoFailed {
        status,
        reason: reason.into(),
    }
}

/// Reads a UserInfo response: a 200 JSON object whose `sub` is `id_sub`
/// (§5.3.2: otherwise the response must not be used). Signed or encrypted
/// UserInfo (`application/jwt`) is not supported and reported as a failure.
pub async fn read_userinfo(response: &Response, id_sub: &str) -> Result<Object, Error> {
    let status = response.status();
    if status != 200 {
        return Err(failed(Some(status), format!("HTTP {status}")));
    }
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if content_type.starts_with("application/jwt") {
        return Err(failed(
            Some(status),
            "signed UserInfo responses are not supported",
        ));
    }
    let promise = response
        .json()
        .map_err(|e| failed(Some(status), describe(&e)))?;
    let body = JsFuture::from(promise)
        .await
        .map_err(|_| failed(Some(status), "the body is not JSON"))?;
    if !body.is_object() || js_sys::Array::is_array(&body) {
        return Err(failed(Some(status), "the body is not a JSON object"));
    }
    let sub = Reflect::get(&body, &"sub".into()).unwrap_or(JsValue::UNDEFINED);
    if sub.as_string().as_deref() != Some(id_sub) {
        return Err(Error::UserinfoSubMismatch);
    }
    Ok(body.unchecked_into())
}

/// The ID token's claims with UserInfo's on top (fresher profile data; the
/// `sub` is the same, checked by [`read_userinfo`]).
pub fn merge(id_claims: &Object, userinfo: &Object) -> Object {
    let merged = Object::assign(&Object::new(), id_claims);
    Object::assign(&merged, userinfo)
}
