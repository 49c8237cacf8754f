//! Turning JS exceptions into the crate's errors, and the crate's errors
//! into JS `Error`s with a stable `code`.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::core::Error;

/// A short description of a JS exception (a DOMException's name and
/// message). Browser exceptions never carry our secrets.
pub fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        );
    }
    value.as_string().unwrap_or_else(|| "unknown error".into())
}

/// Whether `value` is a JS exception named `name` (a DOMException's
/// `ConstraintError`, `OperationError`, ...).
pub fn is_named(value: &JsValue, name: &str) -> bool {
    value
        .dyn_ref::<js_sys::Error>()
        .is_some_and(|error| error.name() == name)
}

/// A storage failure (IndexedDB, Web Storage).
pub fn storage(value: JsValue) -> Error {
    Error::Storage {
        reason: describe(&value),
    }
}

/// A WebCrypto failure.
pub fn crypto(value: JsValue) -> Error {
    Error::Crypto {
        reason: describe(&value),
    }
}

/// A JS `Error` whose message is the error's `Display` and which carries
/// `code`, and for server errors `error`, `error_description`, `error_uri`
/// and `status`.
pub fn to_js(error: &Error) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("LatchkeyError");
    let set = |name: &str, value: JsValue| {
        let _ = Reflect::set(&js, &JsValue::from_str(name), &value);
    };
    set("code", error.code().into());
    if let Some(server_error) = error.server_error() {
        set("error", server_error.into());
    }
    if let Some(description) = error.error_description() {
        set("error_description", description.into());
    }
    if let Some(uri) = error.error_uri() {
        set("error_uri", uri.into());
    }
    if let Some(status) = error.status() {
        set("status", status.into());
    }
    if let Some(seconds) = error.retry_after_s() {
        set("retryAfter", (seconds as f64).into());
    }
    js.into()
}
