//! The browser [`SessionStore`]: where tokens and the pending login live.
//!
//! Tokens go to IndexedDB (default), localStorage or memory; the pending
//! transaction goes to sessionStorage (it must survive the redirect, and
//! only the tab that started the login needs it). In the persistent kinds
//! every record is encrypted with AES-GCM under a non-extractable key kept
//! in IndexedDB, inside the versioned [`Envelope`], with associated data
//! binding it to issuer, client and record kind.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use gloo_storage::{LocalStorage, SessionStorage, Storage as _};
use wasm_bindgen::prelude::*;
use web_sys::CryptoKey;

use crate::browser::from_js::from_js;
use crate::browser::idb::IdbKeyValue;
use crate::browser::js_error::{crypto, storage};
use crate::browser::webcrypto;
use crate::core::envelope::{associated_data, Envelope};
use crate::core::json_text::to_json;
use crate::core::message::EndReason;
use crate::core::ports::SessionStore;
pub use crate::core::public_api::StorageKind;
use crate::core::race::both;
use crate::core::startup::KeptMetadata;
use crate::core::{Error, PendingTransaction, TokenSet};

/// IndexedDB database and object store holding the encrypted records.
pub const RECORDS_DB: (&str, &str) = ("latchkey", "records");
/// IndexedDB database and object store holding the storage key, apart from
/// the records and from any app data.
pub const KEYS_DB: (&str, &str) = ("latchkey-keys", "keys");
/// The storage key's id in [`KEYS_DB`].
pub const STORAGE_KEY_ID: &str = "aes-gcm-v1";

const TOKENS: &str = "tokens";
const METADATA: &str = "metadata";
const TRANSACTION: &str = "transaction";
/// Why the session was last cleared ([`SessionStore::end_reason`]).
const ENDED: &str = "ended";

/// The [`ENDED`] record.
#[derive(serde::Serialize, serde::Deserialize)]
struct EndedRecord {
    reason: EndReason,
}

/// A string key-value backend.
enum Backend {
    IndexedDb(IdbKeyValue),
    Local,
    Session,
    Memory(RefCell<HashMap<String, String>>),
}

impl Backend {
    fn memory() -> Self {
        Backend::Memory(RefCell::default())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        match self {
            Backend::IndexedDb(kv) => Ok(kv
                .get(key)
                .await
                .map_err(storage)?
                .and_then(|v| v.as_string())),
            Backend::Local => LocalStorage::raw().get_item(key).map_err(storage),
            Backend::Session => SessionStorage::raw().get_item(key).map_err(storage),
            Backend::Memory(map) => Ok(map.borrow().get(key).cloned()),
        }
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        match self {
            Backend::IndexedDb(kv) => kv.put(key, &value.into()).await.map_err(storage),
            Backend::Local => LocalStorage::raw().set_item(key, &value).map_err(storage),
            Backend::Session => SessionStorage::raw().set_item(key, &value).map_err(storage),
            Backend::Memory(map) => {
                map.borrow_mut().insert(key.to_owned(), value);
                Ok(())
            }
        }
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        match self {
            Backend::IndexedDb(kv) => kv.delete(key).await.map_err(storage),
            Backend::Local => LocalStorage::raw().remove_item(key).map_err(storage),
            Backend::Session => SessionStorage::raw().remove_item(key).map_err(storage),
            Backend::Memory(map) => {
                map.borrow_mut().remove(key);
                Ok(())
            }
        }
    }
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

/// The origin's storage key: read from IndexedDB, or generated
/// (non-extractable) and stored there on first use. When two tabs race,
/// both end up with the one that was stored first.
pub async fn storage_key() -> Result<CryptoKey, Error> {
    let keys = IdbKeyValue::open(KEYS_DB.0, KEYS_DB.1)
        .await
        .map_err(storage)?;
    if let Some(key) = keys.get(STORAGE_KEY_ID).await.map_err(storage)? {
        return Ok(key.unchecked_into());
    }
    let fresh = webcrypto::generate_storage_key().await.map_err(crypto)?;
    if keys
        .insert_new(STORAGE_KEY_ID, &fresh)
        .await
        .map_err(storage)?
    {
        return Ok(fresh);
    }
    let stored = keys.get(STORAGE_KEY_ID).await.map_err(storage)?;
    stored
        .map(JsCast::unchecked_into)
        .ok_or_else(|| storage("storage key vanished".into()))
}

/// One client's session store in this browser.
pub struct BrowserSessionStore {
    kind: StorageKind,
    tokens: Backend,
    transactions: Backend,
    key: Option<CryptoKey>,
    issuer: String,
    client_id: String,
    /// The format version of a newer latchkey's tokens record, once read.
    newer_record: Cell<Option<u32>>,
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

    fn memory(issuer: &str, client_id: &str) -> Self {
        let transactions = if web_storage_available(false) {
            Backend::Session
        } else {
            Backend::memory()
        };
        BrowserSessionStore {
            kind: StorageKind::Memory,
            tokens: Backend::memory(),
            transactions,
            key: None,
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            newer_record: Cell::new(None),
        }
    }

    async fn try_open(kind: StorageKind, issuer: &str, client_id: &str) -> Result<Self, Error> {
        let mut store = Self::memory(issuer, client_id);
        if kind == StorageKind::Memory {
            return Ok(store);
        }
        // The key's database and the records' are opened side by side:
        // each open is a round trip to the browser's storage backend.
        let records = async {
            match kind {
                StorageKind::IndexedDb => IdbKeyValue::open(RECORDS_DB.0, RECORDS_DB.1)
                    .await
                    .map(Backend::IndexedDb)
                    .map_err(storage),
                _ if web_storage_available(true) => Ok(Backend::Local),
                _ => Err(storage("localStorage is unavailable".into())),
            }
        };
        let (key, records) = both(storage_key(), records).await;
        store.key = Some(key?);
        store.tokens = records?;
        store.kind = kind;
        Ok(store)
    }

    /// Refuses to touch the tokens record once it was found to be a newer
    /// latchkey's: an old tab never overwrites or signs out a newer one.
    fn leave_newer_alone(&self) -> Result<(), Error> {
        match self.newer_record.get() {
            Some(version) => Err(Error::NewerRecord { version }),
            None => Ok(()),
        }
    }

    /// The issuer metadata kept from the last discovery, if any (an
    /// unreadable record is removed and reads as none).
    pub async fn load_metadata(&self) -> Option<KeptMetadata> {
        self.read(&self.tokens, METADATA).await.ok().flatten()
    }

    /// Keeps `metadata` for the next start.
    pub async fn save_metadata(&self, metadata: &KeptMetadata) -> Result<(), Error> {
        self.write(&self.tokens, METADATA, metadata).await
    }

    /// The kind in use (after any fallback).
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// The backend key of a record of `kind` (`tokens`, `transaction`).
    pub fn record_key(&self, record: &str) -> String {
        format!("latchkey:{}:{}:{record}", self.issuer, self.client_id)
    }

    async fn seal(&self, record: &str, plaintext: String) -> Result<String, Error> {
        let Some(key) = &self.key else {
            return Ok(plaintext);
        };
        let iv = webcrypto::random_bytes::<{ webcrypto::AES_GCM_IV_LEN }>().map_err(crypto)?;
        let aad = associated_data(&self.issuer, &self.client_id, record);
        let data = webcrypto::encrypt(key, &iv, &aad, plaintext.as_bytes())
            .await
            .map_err(crypto)?;
        Ok(Envelope { iv, data }.to_text())
    }

    async fn open_sealed(&self, record: &str, stored: String) -> Result<String, Error> {
        let Some(key) = &self.key else {
            return Ok(stored);
        };
        let envelope = Envelope::parse(&stored)?;
        let aad = associated_data(&self.issuer, &self.client_id, record);
        let plaintext = webcrypto::decrypt(key, &envelope.iv, &aad, &envelope.data)
            .await
            .map_err(|_| Error::CorruptRecord {
                reason:
                    "the record does not decrypt under this origin's key for this issuer and client"
                        .into(),
            })?;
        String::from_utf8(plaintext).map_err(|_| Error::CorruptRecord {
            reason: "the decrypted record is not text".into(),
        })
    }

    async fn write<T: serde::Serialize>(
        &self,
        backend: &Backend,
        record: &str,
        value: &T,
    ) -> Result<(), Error> {
        let json = to_json(value).map_err(|_| storage("could not serialise the record".into()))?;
        let sealed = self.seal(record, json).await?;
        backend.set(&self.record_key(record), sealed).await
    }

    /// Reads a record; one that cannot be opened or parsed is removed and
    /// reported as `corrupt_record`.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        backend: &Backend,
        record: &str,
    ) -> Result<Option<T>, Error> {
        let key = self.record_key(record);
        let Some(stored) = backend.get(&key).await? else {
            return Ok(None);
        };
        let parsed = match self.open_sealed(record, stored).await {
            Ok(json) => js_sys::JSON::parse(&json)
                .ok()
                .and_then(|v| from_js(v).ok())
                .ok_or_else(|| Error::CorruptRecord {
                    reason: format!("the {record} record has an unknown shape"),
                }),
            Err(error) => Err(error),
        };
        match &parsed {
            // A newer latchkey's record: neither removed nor, from now on,
            // overwritten (see `newer_record`).
            Err(Error::NewerRecord { version }) => self.newer_record.set(Some(*version)),
            Err(_) => backend.remove(&key).await?,
            Ok(_) => {}
        }
        parsed.map(Some)
    }
}

impl SessionStore for BrowserSessionStore {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        self.read(&self.tokens, TOKENS).await
    }

    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        self.leave_newer_alone()?;
        self.write(&self.tokens, TOKENS, tokens).await
    }

    async fn clear_tokens(&self, reason: EndReason) -> Result<(), Error> {
        self.leave_newer_alone()?;
        // Why, before the tokens go: a tab that then finds them gone reads
        // it (best effort: without it, that tab takes it for an expiry).
        let _ = self
            .write(&self.tokens, ENDED, &EndedRecord { reason })
            .await;
        self.tokens.remove(&self.record_key(TOKENS)).await
    }

    async fn end_reason(&self) -> Option<EndReason> {
        let ended = self.read::<EndedRecord>(&self.tokens, ENDED).await;
        ended.ok().flatten().map(|ended| ended.reason)
    }

    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error> {
        self.write(&self.transactions, TRANSACTION, &transaction)
            .await
    }

    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error> {
        let transaction = self.read(&self.transactions, TRANSACTION).await;
        self.transactions
            .remove(&self.record_key(TRANSACTION))
            .await?;
        transaction
    }
}
