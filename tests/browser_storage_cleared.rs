//! Site data cleared while a page is open (`wasm-pack test --headless
//! --chrome`, real IndexedDB and WebCrypto): the page's key went with the
//! databases, so once another tab has made them again (with a new key) this
//! page neither reads that tab's records with its old key (finding them
//! corrupt and removing them) nor seals anything more with it.
#![cfg(target_arch = "wasm32")]

use latchkey::browser::idb::IdbKeyValue;
use latchkey::browser::store::{BrowserSessionStore, StorageKind, KEYS_DB, RECORDS_DB};
use latchkey::core::ports::SessionStore;
use latchkey::core::{Error, Nonce, PendingTransaction, PkceVerifier, State};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

#[path = "support/browser.rs"]
mod support;
use support::{delete_database, tokens};

wasm_bindgen_test_configure!(run_in_browser);

const ISSUER: &str = "https://idp.test";

async fn open(client: &str) -> BrowserSessionStore {
    let (store, fallback) = BrowserSessionStore::open(StorageKind::IndexedDb, ISSUER, client).await;
    assert_eq!(fallback, None);
    store
}

fn is_storage_error(error: &Error) -> bool {
    error.code() == "storage_error"
}

#[wasm_bindgen_test]
async fn a_database_deleted_then_made_again_elsewhere_stays_gone_for_this_page() {
    let kv = IdbKeyValue::open("latchkey-test-remade", "kv")
        .await
        .unwrap();
    kv.put("k", &JsValue::from_str("v1")).await.unwrap();
    assert_eq!(delete_database("latchkey-test-remade").await, "deleted");
    // Another tab makes it again.
    let other = IdbKeyValue::open("latchkey-test-remade", "kv")
        .await
        .unwrap();
    other.put("k", &JsValue::from_str("theirs")).await.unwrap();
    assert!(kv.gone().get());
    let error = kv.get("k").await.unwrap_err();
    assert!(format!("{error:?}").contains("deleted"), "{error:?}");
    assert!(kv.put("k", &JsValue::from_str("mine")).await.is_err());
    assert_eq!(
        other.get("k").await.unwrap(),
        Some(JsValue::from_str("theirs"))
    );
}

#[wasm_bindgen_test]
async fn after_site_data_is_cleared_a_page_removes_no_record_of_the_tab_that_made_it_again() {
    let page = open("cleared").await;
    page.save_tokens(&tokens("at-old")).await.unwrap();
    assert_eq!(delete_database(RECORDS_DB.0).await, "deleted");
    assert_eq!(delete_database(KEYS_DB.0).await, "deleted");

    // Another tab (a reload): new databases, a new key, a new login.
    let other = open("cleared").await;
    other.save_tokens(&tokens("at-new")).await.unwrap();

    // This page reads, writes and seals nothing more (storage errors, which
    // remove nothing): before, it found the other tab's record corrupt
    // under its old key and removed it.
    let read = page.load_tokens().await.unwrap_err();
    assert!(is_storage_error(&read), "{read:?}");
    let written = page.save_tokens(&tokens("at-stale")).await.unwrap_err();
    assert!(is_storage_error(&written), "{written:?}");
    let login = PendingTransaction {
        state: State::from_random_bytes(&[1; 32]),
        verifier: PkceVerifier::from_random_bytes(&[2; 32]),
        nonce: Some(Nonce::from_random_bytes(&[3; 32])),
        redirect_uri: "https://app.test/callback".into(),
        app_state: None,
        created_at_ms: 1_800_000_000_000,
        issuer: ISSUER.into(),
        client_id: "cleared".into(),
        dpop_jkt: None,
        dpop_nonce: None,
    };
    let pending = page.put_transaction(login).await.unwrap_err();
    assert!(is_storage_error(&pending), "{pending:?}");
    let kept = other
        .load_tokens()
        .await
        .unwrap()
        .expect("the other tab's record");
    assert_eq!(kept.access_token.secret(), "at-new");
}
