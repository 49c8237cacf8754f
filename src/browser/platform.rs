//! The browser's implementation of every [`crate::platform`] trait, in one
//! value the core's generic functions take.

use serde::de::DeserializeOwned;

use crate::browser::js_error::crypto;
use crate::browser::store::BrowserSessionStore;
use crate::browser::{http, webcrypto};
use crate::core::{Error, PendingTransaction, TokenSet};
use crate::platform::{Clock, Crypto, Http, HttpReply, SessionStore};

/// The browser platform for one client.
pub struct BrowserPlatform {
    /// Where this client's session lives.
    pub store: BrowserSessionStore,
}

impl Clock for BrowserPlatform {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
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
    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<HttpReply<T>, Error> {
        http::get_json(url).await
    }

    async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<HttpReply<T>, Error> {
        http::post_form(url, form).await
    }
}

impl SessionStore for BrowserPlatform {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        self.store.load_tokens().await
    }
    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        self.store.save_tokens(tokens).await
    }
    async fn clear_tokens(&self) -> Result<(), Error> {
        self.store.clear_tokens().await
    }
    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error> {
        self.store.put_transaction(transaction).await
    }
    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error> {
        self.store.take_transaction().await
    }
}
