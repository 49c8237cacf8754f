//! `logout`'s options and result, read and written at the JS boundary.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::browser::js_error::to_js;
use crate::browser::options::{flag, get, reject_unknown};
use crate::core::logout_options::{LogoutOptions, LogoutRequest};
use crate::core::retirement::RevocationOutcome;
use crate::core::Error;

/// Every option `logout` accepts; anything else is a typo and refused.
const KNOWN: &[&str] = &["revoke", "endSession", "postLogoutRedirectUri"];

/// Reads `{ revoke, endSession, postLogoutRedirectUri }`: each option's
/// type, then the rules between them (`core::logout_options`). Checked
/// before anything changes, so a mistake rejects with the session
/// untouched.
pub fn parse(
    options: &JsValue,
    end_session_endpoint: Option<&str>,
) -> Result<LogoutOptions, Error> {
    if options.is_undefined() || options.is_null() {
        return LogoutRequest::default().check(end_session_endpoint);
    }
    if !options.is_object() {
        return Err(Error::invalid_option("logout", "options must be an object"));
    }
    reject_unknown(options, KNOWN, "logout")?;
    // What an absent option means is the core's.
    let defaults = LogoutRequest::default();
    let revoke = flag(options, "revoke", defaults.revoke)?;
    let end_session = flag(options, "endSession", defaults.end_session)?;
    let uri = get(options, "postLogoutRedirectUri");
    let post_logout_redirect_uri = if uri.is_undefined() {
        None
    } else {
        let uri = uri
            .as_string()
            .ok_or_else(|| Error::invalid_option("postLogoutRedirectUri", "must be a string"))?;
        web_sys::Url::new(&uri).map_err(|_| {
            Error::invalid_option("postLogoutRedirectUri", "must be an absolute URL")
        })?;
        Some(uri)
    };
    LogoutRequest {
        revoke,
        end_session,
        post_logout_redirect_uri,
    }
    .check(end_session_endpoint)
}

/// `logout`'s result: `{ revocation: "revoked" | "skipped" | "failed", error? }`.
pub fn result(outcome: &RevocationOutcome) -> JsValue {
    let result = Object::new();
    let set = |name: &str, value: &JsValue| {
        let _ = Reflect::set(&result, &JsValue::from_str(name), value);
    };
    match outcome {
        RevocationOutcome::Revoked => set("revocation", &"revoked".into()),
        RevocationOutcome::Skipped => set("revocation", &"skipped".into()),
        RevocationOutcome::Failed(error) => {
            set("revocation", &"failed".into());
            set("error", &to_js(error));
        }
    }
    result.into()
}
