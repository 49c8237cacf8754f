//! The `fetch` half of `fetchWithAuth`: building the request the app
//! described, putting the token where its origin takes it, keeping what is
//! needed to resend, and deciding whether a response means "the token
//! expired".

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, Request, RequestInit, Response};

use crate::browser::js_error::describe;
use crate::core::authorized_call::rfc6750_says_expired;
use crate::core::call_target::EndpointKey;
use crate::core::origin::{with_query_token, TokenPlacement};
use crate::core::Error;

fn invalid(e: JsValue) -> Error {
    Error::invalid_option("input", describe(&e))
}

/// The request the app described, as latchkey's own copy.
pub struct PreparedRequest {
    request: Request,
    /// Whether the body is a stream: it cannot be replayed, so the request
    /// is sent once and never retried.
    streaming: bool,
}

/// Builds the request exactly as `fetch(input, init)` would (a relative URL
/// resolved against the document's base URL), on a copy: the caller's own
/// `Request` object is neither modified nor consumed.
pub fn prepare(input: &JsValue, init: &JsValue) -> Result<PreparedRequest, Error> {
    let init_given = !init.is_undefined() && !init.is_null();
    let as_request = as_request(input);
    let request = match (as_request, init_given) {
        // `new Request(request)` would take the caller's body; its clone's is ours.
        (Some(request), false) if input.is_instance_of::<Request>() => request.clone(),
        // Another frame's `clone()` is of that frame: the copy is made here.
        (Some(request), false) => Request::new_with_request(&request.clone().map_err(invalid)?),
        (Some(request), true) => Request::new_with_request_and_init(
            &request.clone().map_err(invalid)?,
            init.unchecked_ref(),
        ),
        (None, false) => Request::new_with_str(&to_url_string(input)?),
        (None, true) => {
            Request::new_with_str_and_init(&to_url_string(input)?, init.unchecked_ref())
        }
    }
    .map_err(invalid)?;
    let init_body = if init_given {
        init.unchecked_ref::<RequestInit>().get_body()
    } else {
        JsValue::UNDEFINED
    };
    let streaming = if !init_body.is_undefined() && !init_body.is_null() {
        init_body.is_instance_of::<ReadableStream>()
    } else {
        as_request.is_some() && stream_backed(&request)
    };
    Ok(PreparedRequest { request, streaming })
}

/// `input` as a `Request`, also one made in another window or frame (which
/// `instanceof` does not recognise, but `fetch` takes): its string form is
/// then `[object Request]`, which as a URL would send the call, token and
/// all, to a path of the page's own origin, without its method or body.
fn as_request(input: &JsValue) -> Option<&Request> {
    if let Some(request) = input.dyn_ref::<Request>() {
        return Some(request);
    }
    let foreign = input.is_object()
        && string_of(input).is_ok_and(|text| text == "[object Request]")
        && Reflect::get(input, &"url".into()).is_ok_and(|url| url.is_string());
    foreign.then(|| input.unchecked_ref())
}

/// Whether `request`'s body was made from a `ReadableStream`. Every body
/// reads as a stream, so only the `Request` constructor can tell: it refuses
/// a stream-made body for a `no-cors` request
/// ([Fetch, `new Request` step 41](https://fetch.spec.whatwg.org/#dom-request)).
/// The probe works on a clone, whose body is then cancelled.
fn stream_backed(request: &Request) -> bool {
    if request.body().is_none() {
        return false;
    }
    let Ok(probe) = request.clone() else {
        return true;
    };
    let init = Object::new();
    let _ = Reflect::set(&init, &"method".into(), &"POST".into());
    let _ = Reflect::set(&init, &"mode".into(), &"no-cors".into());
    let (refused, leftover) = match Request::new_with_request_and_init(&probe, init.unchecked_ref())
    {
        Ok(made) => (false, made.body()),
        Err(_) => (true, probe.body()),
    };
    if let Some(body) = leftover {
        let _ = body.cancel();
    }
    refused
}

impl PreparedRequest {
    /// The absolute URL it goes to.
    pub fn url(&self) -> String {
        self.request.url()
    }

    /// The app's abort signal (one that never aborts when it gave none).
    pub fn signal(&self) -> web_sys::AbortSignal {
        self.request.signal()
    }

    /// The request as the app described it, for requests latchkey passes
    /// on untouched.
    pub fn untouched(self) -> Request {
        self.request
    }

    /// Readies the request for `placement`. With the token in the query the
    /// URL changes with each token, so each send is a new `Request`: its
    /// body is read once here (a `Blob` can be sent any number of times).
    pub async fn place(self, placement: TokenPlacement) -> Result<Outgoing, Error> {
        // A no-cors request's headers drop `Authorization` (and `DPoP`)
        // without a word: it would go without the token, its 401 taken for
        // an expired token and a refresh spent for nothing. In the query the
        // token would go, but a no-cors request must follow redirects (Fetch
        // refuses one that does not), and a redirect would take the URL,
        // token and all, wherever it points.
        let mode = Reflect::get(&self.request, &"mode".into()).ok();
        if mode.and_then(|mode| mode.as_string()).as_deref() == Some("no-cors") {
            return Err(Error::invalid_option(
                "init.mode",
                "a no-cors request cannot carry the token",
            ));
        }
        let body = match (placement, self.request.body()) {
            (TokenPlacement::Query, Some(stream)) if self.streaming => stream.into(),
            (TokenPlacement::Query, Some(_)) => {
                JsFuture::from(self.request.blob().map_err(invalid)?)
                    .await
                    .map_err(invalid)?
            }
            _ => JsValue::UNDEFINED,
        };
        Ok(Outgoing {
            template: self.request,
            streaming: self.streaming,
            placement,
            body,
        })
    }
}

/// A request ready to carry a token, once or (when the body can be
/// replayed) twice.
pub struct Outgoing {
    /// Never sent itself when it may be needed again: each send is a copy.
    template: Request,
    streaming: bool,
    placement: TokenPlacement,
    /// With the token in the query: the body, read once.
    body: JsValue,
}

/// The `Request` fields a copy with another URL keeps (everything `fetch`
/// lets a script set, except the URL and body).
const COPIED: &[&str] = &[
    "method",
    "headers",
    "referrer",
    "referrerPolicy",
    "mode",
    "credentials",
    "cache",
    "redirect",
    "integrity",
    "keepalive",
    "signal",
];

impl Outgoing {
    /// Whether a retry can resend the same request.
    pub fn can_retry(&self) -> bool {
        !self.streaming
    }

    /// The URL the request goes to (before any token in the query).
    pub fn url(&self) -> String {
        self.template.url()
    }

    /// The request's method.
    pub fn method(&self) -> String {
        self.template.method()
    }

    /// A request carrying a DPoP-bound `token` and its `proof`
    /// ([RFC 9449 §7.1](https://www.rfc-editor.org/rfc/rfc9449#section-7.1)):
    /// `Authorization: DPoP <token>` and `DPoP: <proof>` (the core places a
    /// DPoP-bound token in the header: `CallTargets::start`).
    pub fn with_dpop(&self, token: &str, proof: &str) -> Result<Request, Error> {
        let request = if self.streaming {
            <Request as Clone>::clone(&self.template)
        } else {
            self.template.clone().map_err(invalid)?
        };
        set_authorization(&request, "DPoP ", token)?;
        request
            .headers()
            .set("DPoP", proof)
            .map_err(|e| Error::invalid_option("init.headers", describe(&e)))?;
        Ok(request)
    }

    /// A request carrying `token` where its origin takes it. A stream body
    /// goes with the first request made, so call this once for those.
    pub fn with_token(&self, token: &str) -> Result<Request, Error> {
        match self.placement {
            TokenPlacement::Header => {
                let request = if self.streaming {
                    // The same JS object (a stream is sent once, never teed).
                    <Request as Clone>::clone(&self.template)
                } else {
                    // `clone()` tees the body, so the retry resends the same bytes.
                    self.template.clone().map_err(invalid)?
                };
                attach(&request, token)?;
                Ok(request)
            }
            TokenPlacement::Query => {
                let init = Object::new();
                for field in COPIED {
                    let value = Reflect::get(&self.template, &(*field).into()).map_err(invalid)?;
                    Reflect::set(&init, &(*field).into(), &value).map_err(invalid)?;
                }
                // A redirect keeping the query would carry the token to
                // wherever it points (the browser strips only an
                // `Authorization` header): not followed, the app gets the
                // redirect (`type: "opaqueredirect"`) unless it chose
                // `redirect: "error"` itself.
                if self.template.redirect() == web_sys::RequestRedirect::Follow {
                    Reflect::set(&init, &"redirect".into(), &"manual".into()).map_err(invalid)?;
                }
                if !self.body.is_undefined() {
                    Reflect::set(&init, &"body".into(), &self.body).map_err(invalid)?;
                }
                if self.streaming {
                    Reflect::set(&init, &"duplex".into(), &"half".into()).map_err(invalid)?;
                }
                let url = with_query_token(&self.template.url(), token);
                Request::new_with_str_and_init(&url, init.unchecked_ref()).map_err(invalid)
            }
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// The global `String(value)`, its throw caught (an object without a
    /// string form: `Object.create(null)`).
    #[wasm_bindgen(catch, js_name = String)]
    fn string_of(value: &JsValue) -> Result<js_sys::JsString, JsValue>;
}

/// A string or `URL` (anything with a string form), as `fetch` accepts.
/// Converted as `fetch` does, with `String(input)` (a `URL`'s `toString()`
/// is its `href`; `undefined` is the relative URL `"undefined"`).
fn to_url_string(input: &JsValue) -> Result<String, Error> {
    match input.as_string() {
        Some(text) => Ok(text),
        None => string_of(input).map(String::from).map_err(invalid),
    }
}

/// Runs `work` unless or until `signal` aborts: then the call rejects at
/// once with the signal's reason (an `AbortError`, as `fetch` would), and
/// `work` is dropped. What it waited for goes on: a refresh is the tab's,
/// shared by every caller, and runs to its end whoever stops waiting.
pub async fn unless_aborted<T>(
    signal: &web_sys::AbortSignal,
    work: impl std::future::Future<Output = Result<T, JsValue>>,
) -> Result<T, JsValue> {
    if signal.aborted() {
        return Err(signal.reason());
    }
    let mut listener = None;
    let aborted = js_sys::Promise::new(&mut |_, reject| {
        let _ = signal.add_event_listener_with_callback("abort", &reject);
        listener = Some(reject);
    });
    let aborted = async {
        let _ = wasm_bindgen_futures::JsFuture::from(aborted).await;
    };
    let outcome = crate::core::race::within(work, aborted).await;
    // The request's own signal (following the app's) outlives the call
    // when a Request is kept: it keeps no listener of a finished wait.
    if let Some(listener) = listener {
        let _ = signal.remove_event_listener_with_callback("abort", &listener);
    }
    outcome.unwrap_or_else(|| Err(signal.reason()))
}

/// The Bearer scheme as it starts an `Authorization` value.
pub const BEARER: &str = "Bearer ";

/// Sets `Authorization: Bearer <token>`.
pub fn attach(request: &Request, token: &str) -> Result<(), Error> {
    set_authorization(request, BEARER, token)
}

/// `<scheme><token>`, an `Authorization` value (`scheme` ends with its space).
pub fn authorization_value(scheme: &str, token: &str) -> String {
    let mut value = String::with_capacity(scheme.len() + token.len());
    value.push_str(scheme);
    value.push_str(token);
    value
}

/// Sets `Authorization: <scheme><token>`.
fn set_authorization(request: &Request, scheme: &str, token: &str) -> Result<(), Error> {
    request
        .headers()
        .set("Authorization", &authorization_value(scheme, token))
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

/// The [`EndpointKey`] of an absolute `url` as `new URL` normalises it
/// (scheme and host case, default ports, dot segments; query and fragment
/// aside); `None` if it does not parse. Computed once per endpoint at
/// `create()`, and once per request, so each URL is parsed once.
pub fn endpoint_key(url: &str) -> Option<EndpointKey> {
    let parsed = web_sys::Url::new(url).ok()?;
    Some(EndpointKey::new(parsed.origin(), parsed.pathname()))
}

/// The default "expired" test, the core's (`rfc6750_says_expired`), asked
/// with the answer's status, the `scheme` the call sent and the answer's
/// `WWW-Authenticate` when readable.
pub fn rfc6750_expired(response: &Response, scheme: &str) -> bool {
    let challenge = || response.headers().get("WWW-Authenticate").ok().flatten();
    rfc6750_says_expired(response.status(), scheme, challenge)
}

/// Asks the app's `isTokenExpired(response)` (sync or async), with a
/// clone, so it may read the body without consuming the response the app
/// gets. The machine asks it about error responses only (status 400 and
/// above: `may_say_expired`).
pub async fn app_says_expired(predicate: &Function, response: &Response) -> Result<bool, Error> {
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
