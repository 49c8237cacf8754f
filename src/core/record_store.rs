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
//!    a tab that then finds them gone reads the reason. When it cannot be
//!    written, an earlier end's record is removed first: it would say that
//!    the end covers only earlier logins.
//! 5. The pending login is single use: taken, it is removed, readable or not
//!    (even when the backend failed to read it), and removed as soon as it
//!    is found, before it is opened: of two takes at once (two
//!    `handleRedirectCallback` calls), one gets it.
//! 6. A read the backend fails says so (`storage_error`), and the record is
//!    not removed as unreadable: it may be fine. So does a sealer that
//!    fails for its own reasons (`crypto_error`): only a record the sealer
//!    finds corrupt is removed (rule 2).
//!
//! Each operation's order is a machine that does no I/O
//! ([`RecordOp`]); [`RecordStore`] drives it over the ports.

// The ports are used inside this single-threaded crate only (no `Send`).
#![allow(async_fn_in_trait)]

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::drive::{drive, Perform};
use crate::core::json_text::to_json;
use crate::core::message::EndRecord;
use crate::core::platform::Json;
use crate::core::ports::SessionStore;
use crate::core::record_machine::{record_key, Backend, Fed, Need, RecordOp, Step, TOKENS};
use crate::core::secret::RecordText;
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

const METADATA: &str = "metadata";
const TRANSACTION: &str = "transaction";
/// The session's last end ([`SessionStore::end_record`]).
const ENDED: &str = "ended";

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
        record_key(&self.issuer, &self.client_id, kind)
    }

    /// The issuer metadata kept from the last discovery, if any (an
    /// unreadable record is removed and reads as none).
    pub async fn load_metadata(&self) -> Option<KeptMetadata> {
        self.read(Backend::Records, METADATA).await.ok().flatten()
    }

    /// Keeps `metadata` for the next start.
    pub async fn save_metadata(&self, metadata: &KeptMetadata) -> Result<(), Error> {
        self.write(Backend::Records, METADATA, metadata).await
    }

    fn backend(&self, backend: Backend) -> &K {
        match backend {
            Backend::Records => &self.records,
            Backend::Transactions => &self.transactions,
        }
    }

    /// Reads a record of `kind` as a `T` ([`RecordOp::read`]).
    async fn read<T: DeserializeOwned>(
        &self,
        backend: Backend,
        kind: &'static str,
    ) -> Result<Option<T>, Error> {
        let op = RecordOp::read(backend, kind, &self.issuer, &self.client_id);
        self.read_by(op).await
    }

    /// Runs a reading operation, parsing the record as a `T`; only this
    /// step is generic, the operation's I/O is compiled once ([`run`]).
    ///
    /// [`run`]: Self::run
    async fn read_by<T: DeserializeOwned>(&self, op: (RecordOp, Step)) -> Result<Option<T>, Error> {
        let mut value = None;
        let mut parse = |text: &str| {
            value = self.json.parse_json::<T>(text).ok();
            value.is_some()
        };
        self.run(op, &mut parse).await?;
        Ok(value)
    }

    /// Writes `value` as the record of `kind` ([`RecordOp::write`]).
    async fn write<T: Serialize>(
        &self,
        backend: Backend,
        kind: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let text = to_json(value).ok().map(RecordText::new);
        let newer = self.newer_record.get();
        let op = RecordOp::write(backend, kind, text, newer, &self.issuer, &self.client_id);
        self.run(op, &mut |_| false).await.map(drop)
    }

    /// Drives an operation; `parse` reads an opened record's text as the
    /// operation's type, keeping the value.
    async fn run(
        &self,
        (mut op, first): (RecordOp, Step),
        parse: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, Error> {
        drive(&mut op, first, &mut Records { store: self, parse }).await
    }
}

/// Performs a record operation's needs, deciding nothing.
struct Records<'a, K, S, J> {
    store: &'a RecordStore<K, S, J>,
    parse: &'a mut dyn FnMut(&str) -> bool,
}

impl<K: KeyValue, S: Sealer, J: Json> Perform<RecordOp> for Records<'_, K, S, J> {
    async fn perform(&mut self, need: Need, _: &RecordOp) -> Fed {
        let store = self.store;
        match need {
            Need::Get { backend, key } => {
                let got = store.backend(backend).get(&key).await;
                Fed::Got(got.map(|stored| stored.map(RecordText::new)))
            }
            Need::Open { aad, stored } => {
                let opened = store.sealer.open(&aad, stored.into_secret()).await;
                Fed::Opened(opened.map(RecordText::new))
            }
            Need::Parse(text) => Fed::Parsed((self.parse)(text.secret())),
            Need::MarkNewer(version) => {
                store.newer_record.set(Some(version));
                Fed::Marked
            }
            Need::Seal { aad, text } => {
                let sealed = store.sealer.seal(&aad, text.into_secret()).await;
                Fed::Sealed(sealed.map(RecordText::new))
            }
            Need::Set {
                backend,
                key,
                value,
            } => Fed::Written(store.backend(backend).set(&key, value.into_secret()).await),
            Need::Remove { backend, key } => {
                Fed::Removed(store.backend(backend).remove(&key).await)
            }
        }
    }

    fn with(&self) {}
}

impl<K: KeyValue, S: Sealer, J: Json> SessionStore for RecordStore<K, S, J> {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        self.read(Backend::Records, TOKENS).await
    }

    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        self.write(Backend::Records, TOKENS, tokens).await
    }

    async fn clear_tokens(&self, end: EndRecord) -> Result<(), Error> {
        let text = to_json(&end).ok().map(RecordText::new);
        let newer = self.newer_record.get();
        let op = RecordOp::clear(ENDED, text, newer, &self.issuer, &self.client_id);
        self.run(op, &mut |_| false).await.map(drop)
    }

    async fn end_record(&self) -> Option<EndRecord> {
        let ended = self.read::<EndRecord>(Backend::Records, ENDED).await;
        ended.ok().flatten()
    }

    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error> {
        self.write(Backend::Transactions, TRANSACTION, &transaction)
            .await
    }

    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error> {
        let op = RecordOp::take(
            Backend::Transactions,
            TRANSACTION,
            &self.issuer,
            &self.client_id,
        );
        self.read_by(op).await
    }
}

#[cfg(test)]
#[path = "record_store_tests.rs"]
mod tests;
