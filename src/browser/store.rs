//! The browser [`SessionStore`]: where tokens and the pending login live.
//! The record policy (keys, what is removed, what is left alone) is the
//! core's [`RecordStore`]; this file supplies its backends and sealer.
//!
//! Tokens go to IndexedDB (default), localStorage or memory; the pending
//! transaction goes to sessionStorage (it must survive the redirect, and
//! only the tab that started the login needs it). In the persistent kinds
//! every record is encrypted with AES-GCM under a non-extractable key kept
//! in IndexedDB, inside the versioned [`Envelope`], with associated data
//! binding it to issuer, client and record kind.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use gloo_storage::{LocalStorage, SessionStorage, Storage as _};
use wasm_bindgen::prelude::*;
use web_sys::CryptoKey;

use crate::browser::idb::IdbKeyValue;
use crate::browser::js_error::{crypto, is_named, storage};
use crate::browser::platform::{BrowserPlatform, Monotonic};
use crate::browser::webcrypto;
use crate::core::envelope::Envelope;
use crate::core::marked_values::Marked;
use crate::core::message::EndRecord;
use crate::core::ports::SessionStore;
pub use crate::core::public_api::StorageKind;
use crate::core::race::both;
use crate::core::record_store::{KeyValue, RecordStore, Sealer};
use crate::core::startup::KeptMetadata;
use crate::core::{Error, PendingTransaction, TokenSet};

/// IndexedDB database and object store holding the encrypted records.
pub const RECORDS_DB: (&str, &str) = ("latchkey", "records");
/// IndexedDB database and object store holding the storage key, apart from
/// the records and from any app data (and the DPoP keys, and with
/// localStorage the records' marks: digests of ciphertext).
pub const KEYS_DB: (&str, &str) = ("latchkey-keys", "keys");
/// The storage key's id in [`KEYS_DB`].
pub const STORAGE_KEY_ID: &str = "aes-gcm-v1";

/// A string key-value backend.
enum Backend {
    IndexedDb(IdbKeyValue),
    /// localStorage, whose copy in this tab may lag behind other tabs'
    /// writes, kept honest by marks in IndexedDB ([`Marked`]).
    Local(Marked<LocalValues, IdbKeyValue, Monotonic>),
    /// sessionStorage when this page has one, else this memory.
    Session(RefCell<HashMap<String, String>>),
    Memory(RefCell<HashMap<String, String>>),
}

impl Backend {
    fn memory() -> Self {
        Backend::Memory(RefCell::default())
    }

    /// Set when the IndexedDB database this backend keeps its records (or
    /// their marks) in was deleted while the page held it.
    fn gone(&self) -> Option<Rc<Cell<bool>>> {
        match self {
            Backend::IndexedDb(records) => Some(records.gone()),
            Backend::Local(marked) => Some(marked.marks.gone()),
            Backend::Session(_) | Backend::Memory(_) => None,
        }
    }
}

/// This origin's localStorage, as this tab sees it.
struct LocalValues;

impl KeyValue for LocalValues {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        LocalStorage::raw().get_item(key).map_err(storage)
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        LocalStorage::raw().set_item(key, &value).map_err(storage)
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        LocalStorage::raw().remove_item(key).map_err(storage)
    }
}

/// An IndexedDB object store holding strings.
impl KeyValue for IdbKeyValue {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let value = IdbKeyValue::get(self, key).await.map_err(storage)?;
        // A value latchkey did not write as text (a newer version's, or
        // another script's) is not "no record": a read that fails, which
        // leaves it in place (record_store rule 6) and overwrites nothing.
        value
            .map(|value| {
                value.as_string().ok_or_else(|| Error::Storage {
                    reason: "the stored value is not text".into(),
                })
            })
            .transpose()
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        self.put(key, &value.into()).await.map_err(storage)
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        self.delete(key).await.map_err(storage)
    }
}

impl KeyValue for Backend {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        match self {
            Backend::IndexedDb(kv) => KeyValue::get(kv, key).await,
            Backend::Local(kv) => kv.get(key).await,
            Backend::Session(_) if session_storage_usable() => {
                SessionStorage::raw().get_item(key).map_err(storage)
            }
            Backend::Session(map) | Backend::Memory(map) => Ok(map.borrow().get(key).cloned()),
        }
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        match self {
            Backend::IndexedDb(kv) => kv.set(key, value).await,
            Backend::Local(kv) => kv.set(key, value).await,
            Backend::Session(_) if session_storage_usable() => {
                SessionStorage::raw().set_item(key, &value).map_err(storage)
            }
            Backend::Session(map) | Backend::Memory(map) => {
                map.borrow_mut().insert(key.to_owned(), value);
                Ok(())
            }
        }
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        match self {
            Backend::IndexedDb(kv) => kv.remove(key).await,
            Backend::Local(kv) => kv.remove(key).await,
            Backend::Session(_) if session_storage_usable() => {
                SessionStorage::raw().remove_item(key).map_err(storage)
            }
            Backend::Session(map) | Backend::Memory(map) => {
                map.borrow_mut().remove(key);
                Ok(())
            }
        }
    }
}

thread_local! {
    static SESSION_STORAGE: OnceCell<bool> = const { OnceCell::new() };
}

/// Whether this page has a usable sessionStorage, asked once and only when
/// the pending login is first read or written: a page's first touch of
/// sessionStorage is a synchronous round trip to the browser (3-4 ms in
/// the cold-start bench), which a returning tab's `create()` does not need.
fn session_storage_usable() -> bool {
    SESSION_STORAGE.with(|usable| *usable.get_or_init(|| web_storage_available(false)))
}

/// Whether `window.<name>` is a usable Storage (it throws or is null in
/// some private modes and sandboxed iframes).
fn web_storage_available(local: bool) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let storage = if local {
        window.local_storage()
    } else {
        window.session_storage()
    };
    matches!(storage, Ok(Some(_)))
}

/// The origin's storage key database ([`KEYS_DB`]), opened.
async fn open_keys() -> Result<IdbKeyValue, Error> {
    IdbKeyValue::open(KEYS_DB.0, KEYS_DB.1)
        .await
        .map_err(storage)
}

/// The origin's storage key ([`storage_key_in`] its database).
pub async fn storage_key() -> Result<CryptoKey, Error> {
    storage_key_in(&open_keys().await?).await
}

/// The origin's storage key: read from `keys` ([`open_keys`]), or
/// generated (non-extractable) and stored there on first use. When two
/// tabs race, both end up with the one that was stored first. What is
/// stored there and is not such a key (a script replaced it with one it
/// can export, to read every record sealed from then on) is replaced:
/// the records sealed under it no longer open, and are cleared as corrupt.
async fn storage_key_in(keys: &IdbKeyValue) -> Result<CryptoKey, Error> {
    let stored = IdbKeyValue::get(keys, STORAGE_KEY_ID)
        .await
        .map_err(storage)?;
    let replacing = stored.is_some();
    if let Some(key) = stored.and_then(as_storage_key) {
        return Ok(key);
    }
    let fresh = webcrypto::generate_storage_key().await.map_err(crypto)?;
    if replacing {
        keys.put(STORAGE_KEY_ID, &fresh).await.map_err(storage)?;
        return Ok(fresh);
    }
    if keys
        .insert_new(STORAGE_KEY_ID, &fresh)
        .await
        .map_err(storage)?
    {
        return Ok(fresh);
    }
    // Another tab stored one first: that one, if it is a key latchkey
    // makes; what is not (planted in that moment) is replaced, as above.
    let stored = IdbKeyValue::get(keys, STORAGE_KEY_ID)
        .await
        .map_err(storage)?
        .ok_or_else(|| storage("storage key vanished".into()))?;
    if let Some(key) = as_storage_key(stored) {
        return Ok(key);
    }
    keys.put(STORAGE_KEY_ID, &fresh).await.map_err(storage)?;
    Ok(fresh)
}

/// `value` as a storage key latchkey would make: a non-extractable
/// AES-GCM key for encrypting and decrypting.
fn as_storage_key(value: JsValue) -> Option<CryptoKey> {
    let key = value.dyn_into::<CryptoKey>().ok()?;
    let algorithm: JsValue = key.algorithm().ok()?.into();
    let algorithm = js_sys::Reflect::get(&algorithm, &"name".into()).ok()?;
    let usages = key.usages();
    let usable = ["encrypt", "decrypt"]
        .iter()
        .all(|usage| usages.includes(&(*usage).into(), 0));
    (!key.extractable() && algorithm.as_string().as_deref() == Some("AES-GCM") && usable)
        .then_some(key)
}

/// Seals records with AES-GCM under the origin's storage key, inside the
/// versioned [`Envelope`]; memory stores nothing and seals nothing.
pub struct BrowserSealer {
    key: Option<CryptoKey>,
    /// Set when the origin's storage was cleared while this page held it:
    /// the key went with it (another tab may have made a new one), so the
    /// one held seals and opens nothing more (a `storage_error`, which
    /// removes nothing) until a reload reads the key again.
    gone: Option<Rc<Cell<bool>>>,
}

impl BrowserSealer {
    /// The key, unless the storage it came from is gone.
    fn key(&self) -> Result<Option<&CryptoKey>, Error> {
        match &self.gone {
            Some(gone) if gone.get() => Err(storage(
                "this origin's storage was cleared while the page was open: reload it".into(),
            )),
            _ => Ok(self.key.as_ref()),
        }
    }
}

impl Sealer for BrowserSealer {
    async fn seal(&self, aad: &[u8], plaintext: String) -> Result<String, Error> {
        let Some(key) = self.key()? else {
            return Ok(plaintext);
        };
        let iv = webcrypto::random_bytes::<{ webcrypto::AES_GCM_IV_LEN }>().map_err(crypto)?;
        let data = webcrypto::encrypt(key, &iv, aad, plaintext.as_bytes())
            .await
            .map_err(crypto)?;
        Ok(Envelope { iv, data }.to_text())
    }

    async fn open(&self, aad: &[u8], stored: String) -> Result<String, Error> {
        let Some(key) = self.key()? else {
            return Ok(stored);
        };
        let envelope = Envelope::parse(&stored)?;
        // Only a failed authentication (`OperationError`) says the record is
        // not this origin's for this issuer and client; any other failure is
        // WebCrypto's, and removes nothing (record_store rule 6).
        let plaintext = webcrypto::decrypt(key, &envelope.iv, aad, &envelope.data)
            .await
            .map_err(|failure| match is_named(&failure, "OperationError") {
                true => Error::CorruptRecord {
                    reason:
                        "the record does not decrypt under this origin's key for this issuer and client"
                            .into(),
                },
                false => crypto(failure),
            })?;
        String::from_utf8(plaintext).map_err(|_| Error::CorruptRecord {
            reason: "the decrypted record is not text".into(),
        })
    }
}

/// The records of this browser: the core's record policy
/// ([`RecordStore`]) over the browser's backends and sealer.
type Records = RecordStore<Backend, BrowserSealer, BrowserPlatform>;

/// One client's session store in this browser.
pub struct BrowserSessionStore {
    kind: StorageKind,
    records: Records,
}

impl BrowserSessionStore {
    /// Opens the store of `kind` for this issuer and client. If the kind
    /// cannot be used (IndexedDB refused, storage disabled), falls back to
    /// memory and returns the reason alongside.
    pub async fn open(kind: StorageKind, issuer: &str, client_id: &str) -> (Self, Option<String>) {
        match Self::try_open(kind, issuer, client_id).await {
            Ok(store) => (store, None),
            Err(error) => {
                let store = Self::memory(issuer, client_id);
                (store, Some(error.to_string()))
            }
        }
    }

    fn with(
        kind: StorageKind,
        issuer: &str,
        client_id: &str,
        records: Backend,
        key: Option<CryptoKey>,
    ) -> Self {
        // The pending login must survive the redirect, and only the tab that
        // started it needs it: sessionStorage, or memory where the page has
        // none (a redirect's login is then refused by the core; a popup's
        // still works).
        let transactions = Backend::Session(RefCell::default());
        let sealer = BrowserSealer {
            key,
            gone: records.gone(),
        };
        let json = BrowserPlatform::within(0);
        let records = RecordStore::new(issuer, client_id, records, transactions, sealer, json);
        BrowserSessionStore { kind, records }
    }

    /// A store in memory: the fallback when the asked storage cannot be used.
    pub fn memory(issuer: &str, client_id: &str) -> Self {
        Self::with(
            StorageKind::Memory,
            issuer,
            client_id,
            Backend::memory(),
            None,
        )
    }

    async fn try_open(kind: StorageKind, issuer: &str, client_id: &str) -> Result<Self, Error> {
        if kind == StorageKind::Memory {
            return Ok(Self::memory(issuer, client_id));
        }
        if kind == StorageKind::LocalStorage {
            if !web_storage_available(true) {
                return Err(storage("localStorage is unavailable".into()));
            }
            // The key's database also holds the values' marks: one
            // database to open, as many round trips as IndexedDB's.
            let keys = open_keys().await?;
            let key = storage_key_in(&keys).await?;
            let records = Backend::Local(Marked {
                values: LocalValues,
                marks: keys,
                // The bound of a read's wait: not the system clock's steps.
                platform: Monotonic,
            });
            return Ok(Self::with(kind, issuer, client_id, records, Some(key)));
        }
        // The key's database and the records' are opened side by side:
        // each open is a round trip to the browser's storage backend.
        let records = async {
            IdbKeyValue::open(RECORDS_DB.0, RECORDS_DB.1)
                .await
                .map(Backend::IndexedDb)
                .map_err(storage)
        };
        let (key, records) = both(storage_key(), records).await;
        // The key's failure is the one reported when both fail.
        let key = key?;
        Ok(Self::with(kind, issuer, client_id, records?, Some(key)))
    }

    /// The issuer metadata kept from the last discovery, if any.
    pub async fn load_metadata(&self) -> Option<KeptMetadata> {
        self.records.load_metadata().await
    }

    /// Keeps `metadata` for the next start.
    pub async fn save_metadata(&self, metadata: &KeptMetadata) -> Result<(), Error> {
        self.records.save_metadata(metadata).await
    }

    /// The kind in use (after any fallback).
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// The backend key of a record of `kind` (`tokens`, `transaction`).
    pub fn record_key(&self, record: &str) -> String {
        self.records.record_key(record)
    }
}

impl SessionStore for BrowserSessionStore {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        self.records.load_tokens().await
    }

    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        self.records.save_tokens(tokens).await
    }

    async fn clear_tokens(&self, end: EndRecord) -> Result<(), Error> {
        self.records.clear_tokens(end).await
    }

    async fn end_record(&self) -> Option<EndRecord> {
        self.records.end_record().await
    }

    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error> {
        self.records.put_transaction(transaction).await
    }

    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error> {
        self.records.take_transaction().await
    }

    fn keeps_transactions_across_pages(&self) -> bool {
        session_storage_usable()
    }
}
