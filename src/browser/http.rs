//! [`Http`](crate::core::ports::Http) over the browser's `fetch`, decoding JSON with `JSON.parse` and
//! [`from_js`] (no JSON parser in the wasm).
//!
//! The requests return the parsed body as a JS value; only [`read`] is
//! generic over the body's type, so each request's code is in the wasm once
//! rather than once per type of answer.

use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Headers, ReadableStreamDefaultReader, RequestInit, Response, UrlSearchParams};

use crate::browser::from_js::from_js;
use crate::browser::js_error::describe;
use crate::core::platform::retry_after_seconds;
use crate::core::ports::HttpReply;
use crate::core::secret::DpopProof;
use crate::core::Error;

fn network(value: JsValue) -> Error {
    Error::Network {
        reason: describe(&value),
    }
}

/// A reply whose body is parsed JSON, not yet read as a type.
pub type JsonReply = HttpReply<JsValue>;

/// Reads a parsed body as a `T`. No detail: one could quote a value from
/// the body (a token); the reader builds none (see `from_js`).
pub fn read<T: DeserializeOwned>(body: JsValue) -> Result<T, String> {
    from_js(body).map_err(|_| "JSON of an unexpected shape".to_owned())
}

/// Sends one request and parses the JSON answer.
pub async fn send(url: &str, init: &RequestInit) -> Result<JsonReply, Error> {
    let window = web_sys::window().ok_or_else(|| network("no window".into()))?;
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, init))
        .await
        .map_err(network)?
        .unchecked_into();
    let status = response.status();
    let retry_after = || response.headers().get("Retry-After").ok().flatten();
    let retry_after_s = retry_after_seconds(
        status,
        retry_after,
        |date| Some(js_sys::Date::parse(date)),
        js_sys::Date::now() as u64,
    );
    let dpop_nonce = response.headers().get("DPoP-Nonce").ok().flatten();
    let text = read_text(&response, MAX_BODY_BYTES).await?;
    let json = js_sys::JSON::parse(&text);
    // Read whatever the body's type: a DPoP nonce refusal is an `error`.
    let oauth_error = match &json {
        Ok(value) if value.is_object() => js_sys::Reflect::get(value, &"error".into())
            .ok()
            .and_then(|e| e.as_string()),
        _ => None,
    };
    let body = json.map_err(|_| "the body is not JSON".to_owned());
    Ok(HttpReply {
        status,
        body,
        retry_after_s,
        dpop_nonce,
        oauth_error,
    })
}

/// The most of an answer's body that is read. Every answer latchkey reads
/// (discovery, keys, tokens, an identity's documents) is a few kilobytes;
/// some come from hosts the user named (an AT Protocol handle's), so a
/// body is bounded by size as well as by the request's time, and a larger
/// one is a network error (what it said is unknown; nothing is lost that a
/// lost answer would not lose).
pub const MAX_BODY_BYTES: u32 = 1 << 20;

fn too_large(max: u32) -> Error {
    Error::Network {
        reason: format!("the answer's body is over {max} bytes"),
    }
}

/// Reads a body as text, at most `max` bytes: a declared `Content-Length`
/// over it is refused before reading, and the stream is cancelled as soon
/// as more has arrived (a body sent in chunks declares no length).
pub async fn read_text(response: &Response, max: u32) -> Result<String, Error> {
    let declared = response.headers().get("Content-Length").ok().flatten();
    if declared.and_then(|n| n.trim().parse::<u64>().ok()) > Some(u64::from(max)) {
        return Err(too_large(max));
    }
    let Some(body) = response.body() else {
        return Ok(String::new());
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let chunks = js_sys::Array::new();
    let mut length: u64 = 0;
    loop {
        let step = JsFuture::from(reader.read()).await.map_err(network)?;
        if js_sys::Reflect::get(&step, &"done".into()).is_ok_and(|done| done.is_truthy()) {
            break;
        }
        let chunk: js_sys::Uint8Array = js_sys::Reflect::get(&step, &"value".into())
            .map_err(network)?
            .unchecked_into();
        length += u64::from(chunk.length());
        if length > u64::from(max) {
            // Tells the server to stop; what it already sent is dropped.
            let _ = reader.cancel();
            return Err(too_large(max));
        }
        chunks.push(&chunk);
    }
    let blob = Blob::new_with_u8_array_sequence(&chunks).map_err(network)?;
    let text = JsFuture::from(blob.text()).await.map_err(network)?;
    Ok(text.as_string().unwrap_or_default())
}

/// A `GET` asking for JSON, revalidated with the server whatever the HTTP
/// cache holds: a key set is fetched again because the one in memory did
/// not have the key an ID token names (the HTTP cache's copy would be that
/// same set), discovery because the kept document is being revalidated,
/// and an identity is resolved as it is now.
fn json_get() -> Result<RequestInit, Error> {
    let headers = Headers::new().map_err(network)?;
    headers.set("Accept", "application/json").map_err(network)?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    init.set_cache(web_sys::RequestCache::NoCache);
    Ok(init)
}

/// `GET url` asking for JSON, aborted after `timeout_ms`.
pub async fn get_json(url: &str, timeout_ms: u32) -> Result<JsonReply, Error> {
    send_within(url, &json_get()?, timeout_ms).await
}

/// [`get_json`] that follows no redirect: identity resolution must not be
/// steered to a host the document did not name.
pub async fn get_json_no_redirect(url: &str, timeout_ms: u32) -> Result<JsonReply, Error> {
    let init = json_get()?;
    // A redirect is then an opaque answer (status 0), never followed; what
    // it means is the core's (`atproto::is_redirect`).
    init.set_redirect(web_sys::RequestRedirect::Manual);
    send_within(url, &init, timeout_ms).await
}

/// `POST url` with a form-encoded body and, when given, a `DPoP` proof,
/// aborted after `timeout_ms`; credentials are never sent (a public client
/// authenticates with PKCE, not cookies).
pub async fn post_form(
    url: &str,
    form: &[(String, String)],
    proof: Option<&DpopProof>,
    timeout_ms: u32,
) -> Result<JsonReply, Error> {
    let params = UrlSearchParams::new().map_err(network)?;
    for (name, value) in form {
        params.append(name, value);
    }
    let headers = Headers::new().map_err(network)?;
    headers
        .set("Content-Type", "application/x-www-form-urlencoded")
        .map_err(network)?;
    headers.set("Accept", "application/json").map_err(network)?;
    if let Some(proof) = proof {
        headers.set("DPoP", proof.secret()).map_err(network)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_credentials(web_sys::RequestCredentials::Omit);
    // A redirect would send the same body — a code and its verifier, a
    // refresh token — wherever it points, and take that answer as this
    // endpoint's: refused as a network error (the session is kept).
    init.set_redirect(web_sys::RequestRedirect::Error);
    init.set_body(&JsValue::from(params.to_string()));
    send_within(url, &init, timeout_ms).await
}

/// [`send`], aborted by the browser after `timeout_ms`. The abort is a
/// `network_error` saying so; the caller's own deadline (a refresh's) may
/// name it better.
async fn send_within(url: &str, init: &RequestInit, timeout_ms: u32) -> Result<JsonReply, Error> {
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(timeout_ms)));
    send(url, init).await.map_err(|error| match error {
        Error::Network { reason } if reason.starts_with("TimeoutError") => Error::Network {
            reason: format!("no answer within {timeout_ms} ms"),
        },
        other => other,
    })
}
