//! The browser's DPoP keys ([`DpopKeys`]): ECDSA P-256 pairs made by
//! WebCrypto with a non-extractable private key, kept as `CryptoKey`
//! objects in IndexedDB (beside the storage key, one record per key, named
//! by issuer, client and thumbprint) so every tab of the session — and the
//! page the login redirects back to — signs with the same key. Without
//! IndexedDB they live in this tab's memory.
//!
//! The last key used is kept in memory: signing a proof on the fast path
//! reads nothing from storage.

use std::cell::RefCell;

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::CryptoKey;

use crate::browser::idb::IdbKeyValue;
use crate::browser::js_error::describe;
use crate::browser::platform::Monotonic;
use crate::browser::store::KEYS_DB;
use crate::browser::webcrypto;
use crate::core::dpop::DpopPublicKey;
use crate::core::ports::{DpopKey, DpopKeys, Timer};
use crate::core::race::within;
use crate::core::Error;

/// The longest a key's read, write or deletion is waited for (the default
/// refresh timeout): a keys database that does not answer (a wedged
/// IndexedDB) fails the call that needed the key instead of hanging it.
const KEYS_WAIT_MS: u32 = 10_000;

/// `op`, or `None` once [`KEYS_WAIT_MS`] passed first.
async fn bounded<T>(op: impl std::future::Future<Output = T>) -> Option<T> {
    within(op, Monotonic.sleep(KEYS_WAIT_MS)).await
}

fn stalled() -> Error {
    unavailable(format!(
        "the keys database did not answer within {KEYS_WAIT_MS} ms"
    ))
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::DpopKeyUnavailable {
        reason: reason.into(),
    }
}

fn failed(value: JsValue) -> Error {
    unavailable(describe(&value))
}

/// One key: the private half as an opaque handle, the public coordinates.
#[derive(Clone)]
pub struct BrowserDpopKey {
    private: CryptoKey,
    public: DpopPublicKey,
}

impl std::fmt::Debug for BrowserDpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private half is an opaque handle; only the public half shows.
        f.debug_struct("BrowserDpopKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl DpopKey for BrowserDpopKey {
    fn public_key(&self) -> &DpopPublicKey {
        &self.public
    }

    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, Error> {
        webcrypto::sign_es256(&self.private, signing_input)
            .await
            .map_err(failed)
    }
}

/// One client's DPoP keys.
pub struct BrowserDpopKeys {
    /// `None` when IndexedDB cannot be used: keys live in `memory` only.
    idb: Option<IdbKeyValue>,
    /// Record names start with this: `dpop:<issuer>:<client id>:`.
    prefix: String,
    /// The keys this tab made or loaded, newest last (a handful at most:
    /// one per login of this tab's life).
    memory: RefCell<Vec<(String, BrowserDpopKey)>>,
}

impl BrowserDpopKeys {
    /// The keys of `(issuer, client_id)`, in IndexedDB when it opens.
    pub async fn open(issuer: &str, client_id: &str) -> BrowserDpopKeys {
        BrowserDpopKeys {
            idb: IdbKeyValue::open(KEYS_DB.0, KEYS_DB.1).await.ok(),
            prefix: format!("dpop:{issuer}:{client_id}:"),
            memory: RefCell::default(),
        }
    }

    /// Keys in this tab's memory only (a client without `dpop`, or whose
    /// keys database did not open in time: a session bound to a key this
    /// tab does not hold is then refused as `dpop_key_unavailable`).
    pub fn in_memory(issuer: &str, client_id: &str) -> BrowserDpopKeys {
        BrowserDpopKeys {
            idb: None,
            prefix: format!("dpop:{issuer}:{client_id}:"),
            memory: RefCell::default(),
        }
    }

    fn remember(&self, jkt: &str, key: &BrowserDpopKey) {
        let mut memory = self.memory.borrow_mut();
        memory.retain(|(k, _)| k != jkt);
        memory.push((jkt.to_owned(), key.clone()));
    }
}

impl DpopKeys for BrowserDpopKeys {
    type Key = BrowserDpopKey;

    /// Keys survive a reload, and are shared with the other tabs, in
    /// IndexedDB.
    fn keeps_keys_across_pages(&self) -> bool {
        self.idb.is_some()
    }

    /// Deletes the key's IndexedDB record; the tab keeps it in memory.
    async fn keep_in_memory_only(&self, jkt: &str) {
        if self.load(jkt).await.is_err() {
            return;
        }
        if let Some(idb) = &self.idb {
            let _ = bounded(idb.delete(&format!("{}{jkt}", self.prefix))).await;
        }
    }

    async fn create(&self) -> Result<(String, BrowserDpopKey), Error> {
        let (private, x, y) = webcrypto::generate_dpop_key().await.map_err(failed)?;
        let key = BrowserDpopKey {
            private,
            public: DpopPublicKey::new(&x, &y)?,
        };
        let jkt = key
            .public
            .thumbprint(&crate::browser::platform::BrowserPlatform::within(0))
            .await?;
        if let Some(idb) = &self.idb {
            let record = Object::new();
            let _ = Reflect::set(&record, &"privateKey".into(), &key.private);
            let _ = Reflect::set(&record, &"x".into(), &x.into());
            let _ = Reflect::set(&record, &"y".into(), &y.into());
            bounded(idb.put(&format!("{}{jkt}", self.prefix), &record))
                .await
                .ok_or_else(stalled)?
                .map_err(failed)?;
        }
        self.remember(&jkt, &key);
        Ok((jkt, key))
    }

    /// Tokens bound to a deleted key can no longer be used from here.
    async fn delete(&self, jkt: &str) {
        self.memory.borrow_mut().retain(|(k, _)| k != jkt);
        if let Some(idb) = &self.idb {
            let _ = bounded(idb.delete(&format!("{}{jkt}", self.prefix))).await;
        }
    }

    async fn load(&self, jkt: &str) -> Result<BrowserDpopKey, Error> {
        if let Some((_, key)) = self.memory.borrow().iter().find(|(k, _)| k == jkt) {
            return Ok(key.clone());
        }
        let idb = self.idb.as_ref().ok_or_else(|| {
            unavailable(
                "the key was made in another tab or before a reload, and IndexedDB is unavailable",
            )
        })?;
        let record = bounded(idb.get(&format!("{}{jkt}", self.prefix)))
            .await
            .ok_or_else(stalled)?
            .map_err(failed)?
            .ok_or_else(|| {
                unavailable("no key with the session's thumbprint (deleted by a sign-out?)")
            })?;
        let field = |name: &str| Reflect::get(&record, &name.into()).unwrap_or_default();
        let private = field("privateKey")
            .dyn_into::<CryptoKey>()
            .map_err(|_| unavailable("the stored key is not a CryptoKey"))?;
        let public = DpopPublicKey::new(
            &field("x").as_string().unwrap_or_default(),
            &field("y").as_string().unwrap_or_default(),
        )?;
        let platform = crate::browser::platform::BrowserPlatform::within(0);
        public.stored_as(jkt, &platform).await?;
        let key = BrowserDpopKey { private, public };
        self.remember(jkt, &key);
        Ok(key)
    }
}
