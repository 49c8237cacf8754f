//! The record policy of a persistent session store, over two small ports: a
//! string key-value backend ([`KeyValue`]: IndexedDB, localStorage,
//! sessionStorage, memory) and a [`Sealer`] (AES-GCM under the origin's
//! non-extractable key in the browser). The rules, tested natively:
//!
//! 1. Records are keyed by issuer, client and record kind, and sealed with
//!    associated data naming the same three: one client never reads
//!    another's record, even when it was copied over.
//! 2. A record that does not open or parse (corrupt, foreign, an older
//!    unknown format) is removed and reported as `corrupt_record`.
//! 3. A newer latchkey's record (`newer_record`, of any kind) is not
//!    removed, and from then on the tokens record is neither overwritten nor
//!    cleared: an old tab never signs out or rolls back a newer one.
//! 4. A clear keeps why the session ended before the tokens go (best effort):
//!    a tab that then finds them gone reads the reason.
//! 5. The pending login is single use: taken, it is removed, readable or not
//!    (even when the backend failed to read it).
//! 6. A read the backend fails says so (`storage_error`), and the record is
//!    not removed as unreadable: it may be fine.

// The ports are used inside this single-threaded crate only (no `Send`).
#![allow(async_fn_in_trait)]

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::envelope::associated_data;
use crate::core::json_text::to_json;
use crate::core::message::EndReason;
use crate::core::platform::Json;
use crate::core::ports::SessionStore;
use crate::core::startup::KeptMetadata;
use crate::core::{Error, PendingTransaction, TokenSet};

/// The raw calls of a string key-value backend.
pub trait KeyValue {
    /// The value at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<String>, Error>;
    /// Puts `value` at `key`.
    async fn set(&self, key: &str, value: String) -> Result<(), Error>;
    /// Removes `key` (absent is fine).
    async fn remove(&self, key: &str) -> Result<(), Error>;
}

/// Seals records at rest. `aad` binds a record to its issuer, client and
/// kind: a record opened under other associated data does not open.
pub trait Sealer {
    /// `plaintext` as stored.
    async fn seal(&self, aad: &[u8], plaintext: String) -> Result<String, Error>;
    /// A stored record's plaintext; `corrupt_record` when it does not open,
    /// `newer_record` when a newer latchkey wrote it.
    async fn open(&self, aad: &[u8], stored: String) -> Result<String, Error>;
}

const TOKENS: &str = "tokens";
const METADATA: &str = "metadata";
const TRANSACTION: &str = "transaction";
/// Why the session was last cleared ([`SessionStore::end_reason`]).
const ENDED: &str = "ended";

/// The [`ENDED`] record.
#[derive(Serialize, serde::Deserialize)]
struct EndedRecord {
    reason: EndReason,
}

/// One client's records: its tokens, kept metadata and end reason in
/// `records`, its pending login in `transactions`.
pub struct RecordStore<K, S, J> {
    /// Where the tokens, metadata and end reason live.
    pub records: K,
    /// Where the pending login lives (it must survive the redirect).
    pub transactions: K,
    /// Seals and opens every record.
    pub sealer: S,
    /// Parses a record's JSON text.
    pub json: J,
    issuer: String,
    client_id: String,
    /// The format version of a newer latchkey's record, once one was read.
    newer_record: Cell<Option<u32>>,
}

impl<K: KeyValue, S: Sealer, J: Json> RecordStore<K, S, J> {
    /// The store of `issuer` and `client_id`'s records.
    pub fn new(
        issuer: &str,
        client_id: &str,
        records: K,
        transactions: K,
        sealer: S,
        json: J,
    ) -> Self {
        RecordStore {
            records,
            transactions,
            sealer,
            json,
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            newer_record: Cell::new(None),
        }
    }

    /// The backend key of a record of `kind` (`tokens`, `transaction`).
    pub fn record_key(&self, kind: &str) -> String {
        format!("latchkey:{}:{}:{kind}", self.issuer, self.client_id)
    }

    /// The issuer metadata kept from the last discovery, if any (an
    /// unreadable record is removed and reads as none).
    pub async fn load_metadata(&self) -> Option<KeptMetadata> {
        self.read(&self.records, METADATA).await.ok().flatten()
    }

    /// Keeps `metadata` for the next start.
    pub async fn save_metadata(&self, metadata: &KeptMetadata) -> Result<(), Error> {
        self.write(&self.records, METADATA, metadata).await
    }

    /// Rule 3: refuses to touch the tokens record once it was found to be a
    /// newer latchkey's.
    fn leave_newer_alone(&self) -> Result<(), Error> {
        match self.newer_record.get() {
            Some(version) => Err(Error::NewerRecord { version }),
            None => Ok(()),
        }
    }

    // The I/O of a read and a write is compiled once (`read_text`,
    // `write_text`); only the JSON step is generic over the record's type.

    async fn write<T: Serialize>(&self, backend: &K, kind: &str, value: &T) -> Result<(), Error> {
        let json = to_json(value).map_err(|_| Error::Storage {
            reason: "could not serialise the record".into(),
        })?;
        self.write_text(backend, kind, json).await
    }

    async fn write_text(&self, backend: &K, kind: &str, json: String) -> Result<(), Error> {
        let aad = associated_data(&self.issuer, &self.client_id, kind);
        let sealed = self.sealer.seal(&aad, json).await?;
        backend.set(&self.record_key(kind), sealed).await
    }

    /// Rules 2, 3 and 6: reads a record of `kind`.
    async fn read<T: DeserializeOwned>(&self, backend: &K, kind: &str) -> Result<Option<T>, Error> {
        let Some(json) = self.read_text(backend, kind).await? else {
            return Ok(None);
        };
        match self.json.parse_json(&json) {
            Ok(value) => Ok(Some(value)),
            Err(_) => {
                let error = Error::CorruptRecord {
                    reason: format!("the {kind} record has an unknown shape"),
                };
                Err(self.discard(backend, kind, error).await)
            }
        }
    }

    /// A record's opened text: rule 3 for a newer latchkey's, rule 2 for
    /// one that does not open.
    async fn read_text(&self, backend: &K, kind: &str) -> Result<Option<String>, Error> {
        let Some(stored) = backend.get(&self.record_key(kind)).await? else {
            return Ok(None);
        };
        let aad = associated_data(&self.issuer, &self.client_id, kind);
        match self.sealer.open(&aad, stored).await {
            Ok(json) => Ok(Some(json)),
            Err(Error::NewerRecord { version }) => {
                self.newer_record.set(Some(version));
                Err(Error::NewerRecord { version })
            }
            Err(error) => Err(self.discard(backend, kind, error).await),
        }
    }

    /// Rule 2: removes an unreadable record; `error` says why it was
    /// unreadable, or the removal's failure does.
    async fn discard(&self, backend: &K, kind: &str, error: Error) -> Error {
        match backend.remove(&self.record_key(kind)).await {
            Ok(()) => error,
            Err(failed) => failed,
        }
    }
}

impl<K: KeyValue, S: Sealer, J: Json> SessionStore for RecordStore<K, S, J> {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        self.read(&self.records, TOKENS).await
    }

    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        self.leave_newer_alone()?;
        self.write(&self.records, TOKENS, tokens).await
    }

    async fn clear_tokens(&self, reason: EndReason) -> Result<(), Error> {
        self.leave_newer_alone()?;
        // Rule 4: why, before the tokens go (without it, a tab that finds
        // them gone takes it for an expiry).
        let _ = self
            .write(&self.records, ENDED, &EndedRecord { reason })
            .await;
        self.records.remove(&self.record_key(TOKENS)).await
    }

    async fn end_reason(&self) -> Option<EndReason> {
        let ended = self.read::<EndedRecord>(&self.records, ENDED).await;
        ended.ok().flatten().map(|ended| ended.reason)
    }

    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error> {
        self.write(&self.transactions, TRANSACTION, &transaction)
            .await
    }

    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error> {
        // Rule 5: removed whatever the read found.
        let transaction = self.read(&self.transactions, TRANSACTION).await;
        self.transactions
            .remove(&self.record_key(TRANSACTION))
            .await?;
        transaction
    }
}

#[cfg(test)]
#[path = "record_store_tests.rs"]
mod tests;
