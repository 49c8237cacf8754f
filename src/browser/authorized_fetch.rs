//! The `fetch` half of `fetchWithAuth`: building the request the app
//! described, attaching the bearer token, keeping a copy to resend, and
//! deciding whether a response means "the token expired".

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, Request, RequestInit, Response};

use crate::browser::js_error::describe;
use crate::core::Error;

/// The request to send, and a copy to resend once after a refresh.
pub struct PreparedRequest {
    /// Sent first.
    pub request: Request,
    /// `None` when the body is a stream that cannot be replayed: such a
    /// request is never retried.
    pub replay: Option<Request>,
}

/// Builds the request exactly as `fetch(input, init)` would, on a copy: the
/// caller's own `Request` object is never modified.
pub fn prepare(input: &JsValue, init: &JsValue) -> Result<PreparedRequest, Error> {
    let invalid = |e: JsValue| Error::invalid_option("input", describe(&e));
    let init_given = !init.is_undefined() && !init.is_null();
    let request = match (input.dyn_ref::<Request>(), init_given) {
        (Some(request), false) => Request::new_with_request(request),
        (Some(request), true) => Request::new_with_request_and_init(request, init.unchecked_ref()),
        (None, false) => Request::new_with_str(&to_url_string(input)),
        (None, true) => Request::new_with_str_and_init(&to_url_string(input), init.unchecked_ref()),
    }
    .map_err(invalid)?;
    let streaming = init_given && {
        let init: &RequestInit = init.unchecked_ref();
        init.get_body().is_instance_of::<ReadableStream>()
    };
    // `clone()` tees the body, so the retry resends the same bytes.
    let replay = if streaming {
        None
    } else {
        Some(request.clone().map_err(invalid)?)
    };
    Ok(PreparedRequest { request, replay })
}

/// A string or `URL` (anything with a string form), as `fetch` accepts.
fn to_url_string(input: &JsValue) -> String {
    input
        .as_string()
        .unwrap_or_else(|| String::from(js_sys::JsString::from(input.clone())))
}

/// Sets `Authorization: Bearer <token>`.
pub fn attach(request: &Request, token: &str) -> Result<(), Error> {
    let mut value = String::with_capacity(7 + token.len());
    value.push_str("Bearer ");
    value.push_str(token);
    request
        .headers()
        .set("Authorization", &value)
        .map_err(|e| Error::invalid_option("init.headers", describe(&e)))
}

/// Sends the request; a network failure rejects with `fetch`'s own error,
/// as a plain `fetch` would.
pub async fn send(request: &Request) -> Result<Response, JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    Ok(JsFuture::from(window.fetch_with_request(request))
        .await?
        .unchecked_into())
}

/// Whether `url` is the token endpoint (same origin and path): such
/// requests are sent untouched and never refreshed, so a refresh can never
/// trigger a refresh.
pub fn is_token_endpoint(url: &str, token_endpoint: &str) -> bool {
    without_query(url) == without_query(token_endpoint)
}

/// `url` up to its query or fragment.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// The default "expired" test
/// ([RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)):
/// a 401, unless a readable `WWW-Authenticate` names an error other than
/// `invalid_token` (e.g. `insufficient_scope`, which a refresh cannot fix).
/// Cross-origin APIs must expose the header for it to be readable; without
/// it every 401 counts as expired.
pub fn rfc6750_expired(response: &Response) -> bool {
    if response.status() != 401 {
        return false;
    }
    match response.headers().get("WWW-Authenticate") {
        Ok(Some(challenge)) => {
            let challenge = challenge.to_ascii_lowercase();
            !challenge.contains("error=") || challenge.contains("invalid_token")
        }
        _ => true,
    }
}

/// Asks the app's `isTokenExpired(response)` (sync or async). It is called
/// for error responses only (status 400 and above), with a clone, so it may
/// read the body without consuming the response the app gets.
pub async fn app_says_expired(predicate: &Function, response: &Response) -> Result<bool, Error> {
    if response.status() < 400 {
        return Ok(false);
    }
    let failed = |e: JsValue| Error::invalid_option("isTokenExpired", describe(&e));
    let copy = response.clone().map_err(failed)?;
    let answer = predicate
        .call1(&JsValue::UNDEFINED, &copy)
        .map_err(failed)?;
    let answer = if answer.has_type::<Promise>() || answer.is_object() {
        JsFuture::from(Promise::resolve(&answer))
            .await
            .map_err(failed)?
    } else {
        answer
    };
    Ok(answer.is_truthy())
}
