//! The record policy, one test per rule, over a memory backend that counts
//! and can fail, and a sealer whose output says what it sealed with.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::*;
use crate::core::authorize::PendingTransaction;
use crate::core::envelope::associated_data;
use crate::core::fakes::{bearer_set, block_on};
use crate::core::message::{EndReason, EndRecord};
use crate::core::secret::{PkceVerifier, State};

const ISSUER: &str = "https://idp.example";

/// A memory backend shared by the stores made over it; `failing_reads`
/// makes every read a `storage_error`; `removes` counts removals.
#[derive(Clone, Default)]
struct Memory {
    map: Rc<RefCell<BTreeMap<String, String>>>,
    failing_reads: Rc<Cell<bool>>,
    removes: Rc<Cell<u32>>,
}

impl Memory {
    fn raw(&self, key: &str) -> Option<String> {
        self.map.borrow().get(key).cloned()
    }

    fn put_raw(&self, key: &str, value: &str) {
        self.map.borrow_mut().insert(key.into(), value.into());
    }
}

impl KeyValue for Memory {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        if self.failing_reads.get() {
            return Err(Error::Storage {
                reason: "the backend refused".into(),
            });
        }
        Ok(self.raw(key))
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        self.put_raw(key, &value);
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        self.removes.set(self.removes.get() + 1);
        self.map.borrow_mut().remove(key);
        Ok(())
    }
}

/// Seals as `<aad>|<plaintext>`; opens only its own output under the same
/// associated data. `v9|…` reads as a newer latchkey's record.
struct Labelled;

impl Sealer for Labelled {
    async fn seal(&self, aad: &[u8], plaintext: String) -> Result<String, Error> {
        Ok(format!("{}|{plaintext}", String::from_utf8_lossy(aad)))
    }

    async fn open(&self, aad: &[u8], stored: String) -> Result<String, Error> {
        if stored.starts_with("v9|") {
            return Err(Error::NewerRecord { version: 9 });
        }
        let prefix = format!("{}|", String::from_utf8_lossy(aad));
        stored
            .strip_prefix(&prefix)
            .map(str::to_owned)
            .ok_or_else(|| Error::CorruptRecord {
                reason: "does not open".into(),
            })
    }
}

/// serde_json standing in for `JSON.parse`.
struct SerdeJson;

impl Json for SerdeJson {
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|_| "unreadable".to_owned())
    }
}

type Store = RecordStore<Memory, Labelled, SerdeJson>;

fn store(client_id: &str, records: &Memory, transactions: &Memory) -> Store {
    let (records, transactions) = (records.clone(), transactions.clone());
    RecordStore::new(
        ISSUER,
        client_id,
        records,
        transactions,
        Labelled,
        SerdeJson,
    )
}

fn transaction() -> PendingTransaction {
    PendingTransaction {
        state: State::new("s-1".into()),
        verifier: PkceVerifier::new("v-1".into()),
        nonce: None,
        redirect_uri: "https://app.example/cb".into(),
        app_state: None,
        created_at_ms: 0,
        issuer: ISSUER.into(),
        client_id: "spa".into(),
        dpop_jkt: None,
        dpop_nonce: None,
    }
}

#[test]
fn a_saved_set_is_sealed_under_its_client_and_loaded_back() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    block_on(ours.save_tokens(&bearer_set("at-1"))).unwrap();
    let stored = records.raw(&ours.record_key("tokens")).unwrap();
    assert!(stored.contains(":spa/tokens|"), "sealed with its aad");
    assert!(
        stored.contains("at-1"),
        "the labelled sealer keeps the text"
    );
    let loaded = block_on(ours.load_tokens()).unwrap();
    assert_eq!(loaded, Some(bearer_set("at-1")));
    // Another client of the same issuer has its own record.
    let other = store("other", &records, &transactions);
    assert_eq!(block_on(other.load_tokens()).unwrap(), None);
}

#[test]
fn a_record_copied_from_another_client_is_corrupt_and_removed() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let theirs = store("other", &records, &transactions);
    block_on(theirs.save_tokens(&bearer_set("at-9"))).unwrap();
    let ours = store("spa", &records, &transactions);
    let key = ours.record_key("tokens");
    records.put_raw(&key, &records.raw(&theirs.record_key("tokens")).unwrap());
    let error = block_on(ours.load_tokens()).unwrap_err();
    assert_eq!(error.code(), "corrupt_record");
    assert_eq!(records.raw(&key), None);
    assert_eq!(block_on(ours.load_tokens()).unwrap(), None);
}

#[test]
fn a_record_of_an_unknown_shape_is_corrupt_and_removed() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    let key = ours.record_key("tokens");
    let aad = associated_data(ISSUER, "spa", "tokens");
    records.put_raw(
        &key,
        &format!("{}|{{\"x\":1}}", String::from_utf8_lossy(&aad)),
    );
    let error = block_on(ours.load_tokens()).unwrap_err();
    assert_eq!(error.code(), "corrupt_record");
    assert_eq!(records.raw(&key), None);
}

#[test]
fn a_newer_latchkeys_record_is_never_removed_overwritten_or_cleared() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    let key = ours.record_key("tokens");
    records.put_raw(&key, "v9|newer");
    let error = block_on(ours.load_tokens()).unwrap_err();
    assert_eq!(error, Error::NewerRecord { version: 9 });
    let saved = block_on(ours.save_tokens(&bearer_set("at-1")));
    assert_eq!(saved, Err(Error::NewerRecord { version: 9 }));
    let cleared = block_on(ours.clear_tokens(EndRecord::new(EndReason::SignedOut, 5)));
    assert_eq!(cleared, Err(Error::NewerRecord { version: 9 }));
    assert_eq!(records.raw(&key).as_deref(), Some("v9|newer"));
}

#[test]
fn a_clear_keeps_why_the_session_ended_and_which_logins_it_ended() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    block_on(ours.save_tokens(&bearer_set("at-1"))).unwrap();
    assert_eq!(block_on(ours.end_record()), None);
    let end = EndRecord::new(EndReason::SignedOut, 1_700_000_000_123);
    block_on(ours.clear_tokens(end)).unwrap();
    assert_eq!(block_on(ours.load_tokens()).unwrap(), None);
    assert_eq!(block_on(ours.end_record()), Some(end));
}

#[test]
fn an_end_an_earlier_latchkey_kept_ended_every_login() {
    // Its record has no `untilMs`.
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    let end = EndRecord::new(EndReason::Expired, 1_700_000_000_123);
    block_on(ours.clear_tokens(end)).unwrap();
    let key = ours.record_key("ended");
    let ours_now = records.raw(&key).unwrap();
    let earlier = ours_now.replace(r#","untilMs":1700000000123"#, "");
    assert_ne!(earlier, ours_now, "the record names the logins: {ours_now}");
    records.put_raw(&key, &earlier);
    let end = block_on(ours.end_record()).unwrap();
    assert_eq!(end.reason, EndReason::Expired);
    assert_eq!(end.until_ms, None);
    assert!(end.covers(&bearer_set("at-1")));
}

#[test]
fn the_pending_login_is_taken_once_readable_or_not() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    block_on(ours.put_transaction(transaction())).unwrap();
    assert!(
        records.map.borrow().is_empty(),
        "kept apart from the tokens"
    );
    let taken = block_on(ours.take_transaction()).unwrap().unwrap();
    assert_eq!(taken.state.secret(), "s-1");
    assert!(block_on(ours.take_transaction()).unwrap().is_none());
    let key = ours.record_key("transaction");
    transactions.put_raw(&key, "garbage");
    let error = block_on(ours.take_transaction()).unwrap_err();
    assert_eq!(error.code(), "corrupt_record");
    assert_eq!(transactions.raw(&key), None);
}

#[test]
fn a_failed_read_says_so_and_removes_nothing_but_the_pending_login() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    block_on(ours.save_tokens(&bearer_set("at-1"))).unwrap();
    records.failing_reads.set(true);
    let error = block_on(ours.load_tokens()).unwrap_err();
    assert_eq!(error.code(), "storage_error");
    assert_eq!(records.removes.get(), 0, "the record may be fine");
    records.failing_reads.set(false);
    assert_eq!(
        block_on(ours.load_tokens()).unwrap(),
        Some(bearer_set("at-1"))
    );
    // Single use even then: a callback replayed later finds nothing.
    block_on(ours.put_transaction(transaction())).unwrap();
    transactions.failing_reads.set(true);
    let error = block_on(ours.take_transaction()).unwrap_err();
    assert_eq!(error.code(), "storage_error");
    assert_eq!(transactions.raw(&ours.record_key("transaction")), None);
}

#[test]
fn kept_metadata_round_trips_and_an_unreadable_one_reads_as_none() {
    let (records, transactions) = (Memory::default(), Memory::default());
    let ours = store("spa", &records, &transactions);
    assert_eq!(block_on(ours.load_metadata()), None);
    let metadata = serde_json::from_str(&format!(
        r#"{{"issuer":"{ISSUER}","authorization_endpoint":"{ISSUER}/a","token_endpoint":"{ISSUER}/t"}}"#
    ))
    .unwrap();
    let kept = KeptMetadata {
        fetched_at_ms: 5,
        metadata,
    };
    block_on(ours.save_metadata(&kept)).unwrap();
    assert_eq!(block_on(ours.load_metadata()), Some(kept));
    let key = ours.record_key("metadata");
    records.put_raw(&key, "not sealed by us");
    assert_eq!(block_on(ours.load_metadata()), None);
    assert_eq!(records.raw(&key), None, "removed");
}

/// [`Labelled`] whose `open` awaits once first, as WebCrypto's decrypt
/// does in the browser: another operation runs in between.
struct Decrypting;

impl Sealer for Decrypting {
    async fn seal(&self, aad: &[u8], plaintext: String) -> Result<String, Error> {
        Labelled.seal(aad, plaintext).await
    }

    async fn open(&self, aad: &[u8], stored: String) -> Result<String, Error> {
        let mut waited = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut waited, true) {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
        Labelled.open(aad, stored).await
    }
}

#[test]
fn rule_5_of_two_takes_at_once_one_gets_the_pending_login() {
    // Two handleRedirectCallback calls at once: redeeming the code twice
    // would get the first call's tokens revoked (RFC 6749 §4.1.2).
    let (records, transactions) = (Memory::default(), Memory::default());
    let store = RecordStore::new(ISSUER, "spa", records, transactions, Decrypting, SerdeJson);
    block_on(store.put_transaction(transaction())).unwrap();
    let taken = crate::core::fakes::join_all(vec![
        Box::pin(store.take_transaction()),
        Box::pin(store.take_transaction()),
    ]);
    let found: Vec<bool> = taken.iter().map(|t| matches!(t, Ok(Some(_)))).collect();
    assert_eq!(found, [true, false]);
    assert!(matches!(taken[1], Ok(None)), "{:?}", taken[1]);
}
