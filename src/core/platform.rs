//! The platform's basic services, as small traits: clock, timer,
//! randomness and SHA-256, HTTP, JSON. Each has a browser implementation in
//! `browser/` and a fake in `core::fakes`. They depend on nothing of the
//! protocol, so every protocol module may use them (the session-level ports
//! are in [`crate::core::ports`]).
#![allow(async_fn_in_trait)]

use serde::de::DeserializeOwned;

use crate::core::secret::DpopProof;
use crate::core::Error;

/// Milliseconds since the Unix epoch.
pub trait Clock {
    /// The current time.
    fn now_ms(&self) -> u64;
}

/// Waiting without blocking the tab.
pub trait Timer {
    /// Resolves after about `ms` milliseconds.
    async fn sleep(&self, ms: u32);
}

/// A cryptographically secure random source and SHA-256.
pub trait Crypto {
    /// 32 fresh random bytes (verifiers, state, nonce).
    fn random_32(&self) -> Result<[u8; 32], Error>;
    /// SHA-256 of `data` ([RFC 7636 §4.2](https://www.rfc-editor.org/rfc/rfc7636#section-4.2) S256).
    async fn sha256(&self, data: &[u8]) -> Result<[u8; 32], Error>;
}

/// An HTTP answer whose JSON body was decoded as `T`, or not.
#[derive(Debug)]
pub struct HttpReply<T> {
    /// The HTTP status code.
    pub status: u16,
    /// The decoded body; `Err` carries why it was not a `T` (not JSON,
    /// wrong shape). Never contains the body itself.
    pub body: Result<T, String>,
    /// The `Retry-After` header in seconds from now
    /// ([RFC 9110 §10.2.3](https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3)),
    /// when the response carried a readable one.
    pub retry_after_s: Option<u64>,
    /// The `DPoP-Nonce` header, when the server sent one
    /// ([RFC 9449 §8](https://www.rfc-editor.org/rfc/rfc9449#section-8)).
    pub dpop_nonce: Option<String>,
    /// The body's `error` member when it is a string (an OAuth error
    /// answer's), read whatever `T` is and whatever the status, so a DPoP
    /// nonce refusal is recognised for any body; what it means with which
    /// status is the protocol's to say.
    pub oauth_error: Option<String>,
}

impl<B> HttpReply<B> {
    /// This reply with its body read by `read` (a body that was not JSON
    /// stays an `Err`).
    pub fn read_body<T>(self, read: impl FnOnce(B) -> Result<T, String>) -> HttpReply<T> {
        HttpReply {
            status: self.status,
            body: self.body.and_then(read),
            retry_after_s: self.retry_after_s,
            dpop_nonce: self.dpop_nonce,
            oauth_error: self.oauth_error,
        }
    }
}

/// An answer's `Retry-After`
/// ([RFC 9110 §10.2.3](https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3))
/// in seconds from `now_ms`. Only an error answer's (status 400 and above)
/// means anything to the client, so only its header is read (`value()`).
/// The value is delta-seconds or an HTTP date, which the platform parses
/// (`date_ms`: the date's time in ms, or `None`); a date in the past is 0, a
/// part of a second counts as one.
pub fn retry_after_seconds(
    status: u16,
    value: impl FnOnce() -> Option<String>,
    date_ms: impl FnOnce(&str) -> Option<f64>,
    now_ms: u64,
) -> Option<u64> {
    if status < 400 {
        return None;
    }
    let value = value()?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    let at_ms = date_ms(value).filter(|at| at.is_finite())?;
    Some(((at_ms - now_ms as f64) / 1000.0).ceil().max(0.0) as u64)
}

/// The two kinds of request the protocol makes. Network failures are
/// `Error::Network`; any HTTP status is a reply.
///
/// A platform sends requests and parses their JSON once for every type of
/// answer ([`Http::get`], [`Http::post`], bodies as its own [`Http::Body`]),
/// and reads a parsed body as a type apart ([`Http::read`]): in the wasm,
/// each request's code is then there once, not once per type of answer.
pub trait Http {
    /// A parsed JSON body not yet read as a type (a JS value in the browser).
    type Body;
    /// Reads `body` as a `T`; `Err` says why not, without quoting it.
    fn read<T: DeserializeOwned>(&self, body: Self::Body) -> Result<T, String>;
    /// `GET url` with `Accept: application/json` (discovery).
    async fn get(&self, url: &str) -> Result<HttpReply<Self::Body>, Error>;
    /// `POST url` with an `application/x-www-form-urlencoded` body and, when
    /// given, a `DPoP` header carrying `proof`.
    async fn post(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<Self::Body>, Error>;

    /// [`Http::get`], the body read as a `T`.
    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<HttpReply<T>, Error> {
        let reply = self.get(url).await?;
        Ok(reply.read_body(|body| self.read(body)))
    }
    /// [`Http::post`] without a proof (token endpoint), the body read as a `T`.
    async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<HttpReply<T>, Error> {
        self.post_form_with_proof(url, form, None).await
    }
    /// [`Http::post`], the body read as a `T`.
    async fn post_form_with_proof<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<T>, Error> {
        let reply = self.post(url, form, proof).await?;
        Ok(reply.read_body(|body| self.read(body)))
    }
}

/// JSON text to a typed value. The platform parses (`JSON.parse` in the
/// browser) so the wasm carries no JSON parser of its own.
pub trait Json {
    /// Parses `text` as a `T`; `Err` says why not, without quoting `text`.
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    /// `retry_after_seconds` with the answer's header `value`, if any.
    fn seconds(
        status: u16,
        value: Option<&str>,
        date: fn(&str) -> Option<f64>,
        now: u64,
    ) -> Option<u64> {
        retry_after_seconds(status, || value.map(str::to_owned), date, now)
    }

    /// The platform's date parser for one known date, 90.5 s from `NOW`.
    fn date(value: &str) -> Option<f64> {
        (value == "Tue, 14 Nov 2023 22:14:50 GMT").then_some(NOW as f64 + 90_500.0)
    }

    #[test]
    fn retry_after_in_seconds_is_read_from_error_answers_only() {
        assert_eq!(seconds(503, Some(" 120 "), date, NOW), Some(120));
        assert_eq!(seconds(429, Some("0"), date, NOW), Some(0));
        assert_eq!(seconds(200, Some("120"), date, NOW), None);
        assert_eq!(seconds(301, Some("120"), date, NOW), None);
        assert_eq!(seconds(503, None, date, NOW), None);
    }

    #[test]
    fn retry_after_as_a_date_counts_from_now_rounded_up_and_never_below_zero() {
        let at = "Tue, 14 Nov 2023 22:14:50 GMT";
        assert_eq!(seconds(503, Some(at), date, NOW), Some(91));
        let later = NOW + 200_000;
        assert_eq!(seconds(503, Some(at), date, later), Some(0));
    }

    #[test]
    fn an_unreadable_retry_after_is_none() {
        assert_eq!(seconds(503, Some("soon"), date, NOW), None);
        assert_eq!(seconds(503, Some("-5"), date, NOW), None);
        let nan = |_: &str| Some(f64::NAN);
        assert_eq!(seconds(503, Some("x"), nan, NOW), None);
    }
}
