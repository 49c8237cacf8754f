//! The browser's clock, crypto and HTTP in one value the core's generic
//! functions take.

use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;

use crate::browser::from_js::from_js;
use crate::browser::js_error::crypto;
use crate::browser::{http, jws_verify, webcrypto};
use crate::core::jose::{Jwk, JwsAlgorithm};
use crate::core::ports::{Clock, Crypto, Http, HttpReply, Json, SignatureVerifier, Timer};
use crate::core::secret::DpopProof;
use crate::core::Error;

/// The browser's clock, crypto and HTTP (the session store is separate:
/// [`crate::browser::store::BrowserSessionStore`]).
pub struct BrowserPlatform {
    /// Every request is aborted after this long: no answer is not a reason
    /// to hang (discovery, code exchange, keys).
    pub request_timeout_ms: u32,
    /// With [`BrowserPlatform::sharing_deadline`]: when (`performance.now()`)
    /// every request is aborted, together.
    until_ms: Option<f64>,
}

impl BrowserPlatform {
    /// Each request aborted `ms` after it was made.
    pub const fn within(ms: u32) -> Self {
        BrowserPlatform {
            request_timeout_ms: ms,
            until_ms: None,
        }
    }

    /// Requests sharing one deadline, `ms` from now: a refresh's, whose
    /// `abort_after_ms` the core counts from the refresh's first request
    /// (a DPoP nonce refusal's resend gets what is left of it), so a
    /// refresh's requests never outlive the callers' wait and the lock by
    /// more than its first request would have (another tab may present the
    /// same refresh token once the lock is let go).
    /// The same type as every other platform's: no second copy of the
    /// code that sends through it.
    pub fn sharing_deadline(ms: u32) -> Self {
        BrowserPlatform {
            request_timeout_ms: ms,
            until_ms: Some(performance_now() + f64::from(ms)),
        }
    }

    /// How long the next request may take, or the error of a request made
    /// past the shared deadline.
    fn timeout_ms(&self) -> Result<u32, Error> {
        let Some(until) = self.until_ms else {
            return Ok(self.request_timeout_ms);
        };
        let left = (until - performance_now()).floor();
        match left >= 1.0 {
            true => Ok(left as u32),
            false => Err(Error::Network {
                reason: format!("no answer within {} ms", self.request_timeout_ms),
            }),
        }
    }
}

impl Clock for BrowserPlatform {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
}

impl Timer for BrowserPlatform {
    async fn sleep(&self, ms: u32) {
        sleep(ms).await;
    }
}

async fn sleep(ms: u32) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let wake = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            &resolve,
            ms.min(i32::MAX as u32) as i32,
        );
    });
    let _ = wasm_bindgen_futures::JsFuture::from(wake).await;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// A clock for measuring waits, which the system clock's steps (NTP, a
/// laptop resuming) do not move: `performance.now()`. A wait bounded by
/// `Date.now()` could last as long as the clock stepped back, or end at
/// once when it stepped forward.
pub struct Monotonic;

impl Clock for Monotonic {
    fn now_ms(&self) -> u64 {
        performance_now() as u64
    }
}

impl Timer for Monotonic {
    async fn sleep(&self, ms: u32) {
        sleep(ms).await;
    }
}

impl Crypto for BrowserPlatform {
    fn random_32(&self) -> Result<[u8; 32], Error> {
        webcrypto::random_bytes().map_err(crypto)
    }

    async fn sha256(&self, data: &[u8]) -> Result<[u8; 32], Error> {
        webcrypto::sha256(data).await.map_err(crypto)
    }
}

impl Http for BrowserPlatform {
    type Body = JsValue;

    fn read<T: DeserializeOwned>(&self, body: JsValue) -> Result<T, String> {
        http::read(body)
    }

    async fn get(&self, url: &str) -> Result<HttpReply<JsValue>, Error> {
        http::get_json(url, self.timeout_ms()?).await
    }

    async fn post(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<JsValue>, Error> {
        http::post_form(url, form, proof, self.timeout_ms()?).await
    }
}

/// [`BrowserPlatform`]'s HTTP, following no redirect: for AT Protocol
/// identity resolution, where every host comes from a document.
pub struct NoRedirects<'a>(pub &'a BrowserPlatform);

impl Http for NoRedirects<'_> {
    type Body = JsValue;

    fn read<T: DeserializeOwned>(&self, body: JsValue) -> Result<T, String> {
        http::read(body)
    }

    async fn get(&self, url: &str) -> Result<HttpReply<JsValue>, Error> {
        http::get_json_no_redirect(url, self.0.timeout_ms()?).await
    }

    async fn post(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<JsValue>, Error> {
        self.0.post(url, form, proof).await
    }
}

impl SignatureVerifier for BrowserPlatform {
    async fn verify_signature(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        jws_verify::verify(alg, key, signing_input, signature).await
    }
}

impl Json for BrowserPlatform {
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String> {
        // Neither message is passed on: the engine's SyntaxError and serde's
        // type errors can quote the text, which may hold a secret.
        let value = js_sys::JSON::parse(text).map_err(|_| "not valid JSON".to_owned())?;
        from_js(value).map_err(|_| "JSON of an unexpected shape".to_owned())
    }
}
