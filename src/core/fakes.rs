//! Test doubles for the platform traits. The fake HTTP server is scripted
//! with the exact requests it must receive: any other request fails the
//! test, and so does an expectation left unused.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::core::memory_store::MemorySessionStore;
use crate::core::Error;
use crate::platform::{Clock, Crypto, Http, HttpReply};

/// One scripted exchange: the request expected and the reply to give.
#[derive(Debug)]
struct Exchange {
    method: &'static str,
    url: String,
    form: Option<Vec<(String, String)>>,
    reply: Result<(u16, String), Error>,
}

/// Clock, crypto and HTTP in one value, as the browser's is, and a store
/// beside them.
#[derive(Debug, Default)]
pub struct FakePlatform {
    pub now_ms: Cell<u64>,
    random_counter: Cell<u8>,
    script: RefCell<VecDeque<Exchange>>,
    pub store: MemorySessionStore,
}

impl FakePlatform {
    pub fn at(now_ms: u64) -> Self {
        let platform = Self::default();
        platform.now_ms.set(now_ms);
        platform
    }

    /// Expects `GET url` next; answers `status` with `body`.
    pub fn expect_get(&self, url: &str, status: u16, body: &str) {
        self.push("GET", url, None, Ok((status, body.to_owned())));
    }

    /// Expects `POST url` with exactly `form` next; answers `status` with `body`.
    pub fn expect_post(&self, url: &str, form: &[(&str, &str)], status: u16, body: &str) {
        let form = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.push("POST", url, Some(form), Ok((status, body.to_owned())));
    }

    /// Expects `GET url` next and fails it at the network level.
    pub fn expect_get_network_error(&self, url: &str) {
        let error = Error::Network {
            reason: "connection refused".into(),
        };
        self.push("GET", url, None, Err(error));
    }

    fn push(
        &self,
        method: &'static str,
        url: &str,
        form: Option<Vec<(String, String)>>,
        reply: Result<(u16, String), Error>,
    ) {
        self.script.borrow_mut().push_back(Exchange {
            method,
            url: url.to_owned(),
            form,
            reply,
        });
    }

    fn answer<T: DeserializeOwned>(
        &self,
        method: &'static str,
        url: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<HttpReply<T>, Error> {
        let exchange = self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected request {method} {url}"));
        assert_eq!((exchange.method, exchange.url.as_str()), (method, url));
        assert_eq!(
            exchange.form.as_deref(),
            form,
            "request body of {method} {url}"
        );
        let (status, body) = exchange.reply?;
        Ok(HttpReply {
            status,
            body: serde_json::from_str(&body).map_err(|e| e.to_string()),
        })
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let left = self.script.borrow();
            assert!(left.is_empty(), "expected requests never made: {left:?}");
        }
    }
}

impl Clock for FakePlatform {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
}

impl Crypto for FakePlatform {
    /// Deterministic: 32 copies of a counter (1, 2, 3, …).
    fn random_32(&self) -> Result<[u8; 32], Error> {
        self.random_counter.set(self.random_counter.get() + 1);
        Ok([self.random_counter.get(); 32])
    }

    async fn sha256(&self, data: &[u8]) -> Result<[u8; 32], Error> {
        Ok(Sha256::digest(data).into())
    }
}

impl Http for FakePlatform {
    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<HttpReply<T>, Error> {
        self.answer("GET", url, None)
    }

    async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<HttpReply<T>, Error> {
        self.answer("POST", url, Some(form))
    }
}

/// Drives a future that never waits on anything real to completion.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a fake platform future should never be pending"),
    }
}
