//! The token stores against real IndexedDB, localStorage and WebCrypto in
//! headless Chromium (`wasm-pack test --headless --chrome`).
#![cfg(target_arch = "wasm32")]

use gloo_storage::{LocalStorage, Storage as _};
use latchkey::browser::idb::IdbKeyValue;
use latchkey::browser::store::{storage_key, BrowserSessionStore, StorageKind, RECORDS_DB};
use latchkey::browser::webcrypto;
use latchkey::core::base64url;
use latchkey::core::envelope::{associated_data, Envelope};
use latchkey::core::message::{EndReason, EndRecord};
use latchkey::core::ports::SessionStore;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[path = "support/browser.rs"]
mod support;
use support::{extractable_aes_key, tokens};

wasm_bindgen_test_configure!(run_in_browser);

const ISSUER: &str = "https://idp.test";
const ACCESS: &str = "access-token-secret-text";
/// The refresh token of `support::tokens`.
const REFRESH: &str = "refresh-token-secret-text";

async fn open(kind: StorageKind, client: &str) -> BrowserSessionStore {
    let (store, fallback) = BrowserSessionStore::open(kind, ISSUER, client).await;
    assert_eq!(fallback, None);
    assert_eq!(store.kind(), kind);
    store
}

/// The raw stored text of the tokens record, read past the store.
async fn raw(kind: StorageKind, store: &BrowserSessionStore) -> Option<String> {
    let key = store.record_key("tokens");
    match kind {
        StorageKind::IndexedDb => {
            let kv = IdbKeyValue::open(RECORDS_DB.0, RECORDS_DB.1).await.unwrap();
            kv.get(&key).await.unwrap().and_then(|v| v.as_string())
        }
        StorageKind::LocalStorage => LocalStorage::raw().get_item(&key).unwrap(),
        StorageKind::Memory => None,
    }
}

async fn write_raw(kind: StorageKind, key: &str, text: &str) {
    match kind {
        StorageKind::IndexedDb => {
            let kv = IdbKeyValue::open(RECORDS_DB.0, RECORDS_DB.1).await.unwrap();
            kv.put(key, &JsValue::from_str(text)).await.unwrap();
        }
        _ => LocalStorage::raw().set_item(key, text).unwrap(),
    }
}

const PERSISTENT: [StorageKind; 2] = [StorageKind::IndexedDb, StorageKind::LocalStorage];

#[wasm_bindgen_test]
async fn every_store_round_trips() {
    for kind in [
        StorageKind::IndexedDb,
        StorageKind::LocalStorage,
        StorageKind::Memory,
    ] {
        let store = open(kind, &format!("round-trip-{}", kind.as_str())).await;
        assert!(store.load_tokens().await.unwrap().is_none());
        store.save_tokens(&tokens(ACCESS)).await.unwrap();
        let loaded = store.load_tokens().await.unwrap().unwrap();
        assert_eq!(loaded.access_token.secret(), ACCESS);
        assert_eq!(loaded.refresh_token.unwrap().secret(), REFRESH);
        assert_eq!(loaded.expires_at_ms, Some(1_900_000_000_000));
        assert_eq!(store.end_record().await, None, "never cleared");
        let signed_out = EndRecord::new(EndReason::SignedOut, 1_800_000_000_001);
        store.clear_tokens(signed_out).await.unwrap();
        assert!(store.load_tokens().await.unwrap().is_none());
        // Why it ended, and which logins, stay for a tab that finds the
        // tokens gone.
        assert_eq!(store.end_record().await, Some(signed_out));
        store.save_tokens(&tokens(ACCESS)).await.unwrap();
        let expired = EndRecord::new(EndReason::Expired, 1_800_000_000_002);
        store.clear_tokens(expired).await.unwrap();
        assert_eq!(store.end_record().await, Some(expired));
    }
}

#[wasm_bindgen_test]
async fn persisted_bytes_hold_no_token_text_and_one_layer_of_encryption() {
    for kind in PERSISTENT {
        let client = format!("at-rest-{}", kind.as_str());
        let store = open(kind, &client).await;
        store.save_tokens(&tokens("first-access")).await.unwrap();
        store.save_tokens(&tokens(ACCESS)).await.unwrap();
        let text = raw(kind, &store).await.expect("a record is stored");
        assert!(!text.contains(ACCESS) && !text.contains(REFRESH), "{text}");

        // Decrypting the stored envelope once yields the plaintext token set:
        // saving twice did not wrap an envelope in another.
        let envelope = Envelope::parse(&text).unwrap();
        let key = storage_key().await.unwrap();
        let aad = associated_data(ISSUER, &client, "tokens");
        let plain = webcrypto::decrypt(&key, &envelope.iv, &aad, &envelope.data)
            .await
            .unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert!(plain.starts_with('{') && plain.contains(ACCESS), "{plain}");
        assert!(Envelope::parse(&plain).is_err(), "exactly one layer");
    }
}

#[wasm_bindgen_test]
async fn a_record_latchkey_cannot_read_as_its_own_is_left_alone() {
    // A newer latchkey's envelope laid out otherwise, in either store.
    for kind in PERSISTENT {
        let store = open(kind, &format!("newer-layout-{}", kind.as_str())).await;
        let key = store.record_key("tokens");
        let newer = r#"{"v":2,"kid":"k2","iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#;
        write_raw(kind, &key, newer).await;
        let error = store.load_tokens().await.unwrap_err();
        assert_eq!(error.code(), "newer_record", "{error}");
        assert_eq!(raw(kind, &store).await.as_deref(), Some(newer));
    }
    // A value in IndexedDB that is not text: a failed read, kept.
    let store = open(StorageKind::IndexedDb, "not-text").await;
    let key = store.record_key("tokens");
    let kv = IdbKeyValue::open(RECORDS_DB.0, RECORDS_DB.1).await.unwrap();
    let value: JsValue = js_sys::Object::new().into();
    kv.put(&key, &value).await.unwrap();
    let error = store.load_tokens().await.unwrap_err();
    assert_eq!(error.code(), "storage_error", "{error}");
    assert!(kv.get(&key).await.unwrap().is_some_and(|v| v.is_object()));
}

#[wasm_bindgen_test]
async fn a_corrupt_record_is_reported_and_cleared() {
    for kind in PERSISTENT {
        let store = open(kind, &format!("corrupt-{}", kind.as_str())).await;
        store.save_tokens(&tokens(ACCESS)).await.unwrap();
        let key = store.record_key("tokens");
        let mut text = raw(kind, &store).await.unwrap();
        // Flip one character of the ciphertext: the GCM tag no longer matches.
        let last = text.len() - 3;
        let flipped = if &text[last..last + 1] == "A" {
            "B"
        } else {
            "A"
        };
        text.replace_range(last..last + 1, flipped);
        write_raw(kind, &key, &text).await;

        let error = store.load_tokens().await.unwrap_err();
        assert_eq!(error.code(), "corrupt_record");
        assert_eq!(raw(kind, &store).await, None, "the record was cleared");
        assert!(store.load_tokens().await.unwrap().is_none());

        write_raw(kind, &key, "{\"access_token\":\"plaintext\"}").await;
        assert_eq!(
            store.load_tokens().await.unwrap_err().code(),
            "corrupt_record"
        );
        assert_eq!(raw(kind, &store).await, None);
    }
}

#[wasm_bindgen_test]
async fn a_record_from_another_client_does_not_decrypt() {
    for kind in PERSISTENT {
        let theirs = open(kind, &format!("theirs-{}", kind.as_str())).await;
        let ours = open(kind, &format!("ours-{}", kind.as_str())).await;
        theirs.save_tokens(&tokens(ACCESS)).await.unwrap();
        let copied = raw(kind, &theirs).await.unwrap();
        write_raw(kind, &ours.record_key("tokens"), &copied).await;
        assert_eq!(
            ours.load_tokens().await.unwrap_err().code(),
            "corrupt_record"
        );
        assert!(
            theirs.load_tokens().await.unwrap().is_some(),
            "theirs is untouched"
        );
    }
}

#[wasm_bindgen_test]
async fn the_storage_key_is_not_extractable_and_is_shared() {
    let key = storage_key().await.unwrap();
    assert!(!key.extractable());
    let subtle = web_sys::window().unwrap().crypto().unwrap().subtle();
    let exported = JsFuture::from(subtle.export_key("raw", &key).unwrap()).await;
    assert!(
        exported.is_err(),
        "exportKey must fail for a non-extractable key"
    );
    // A second lookup (as another tab would do) finds the same key: a record
    // sealed under one decrypts under the other.
    let again = storage_key().await.unwrap();
    let iv = [9u8; 12];
    let sealed = webcrypto::encrypt(&key, &iv, b"aad", b"hello")
        .await
        .unwrap();
    assert_eq!(
        webcrypto::decrypt(&again, &iv, b"aad", &sealed)
            .await
            .unwrap(),
        b"hello"
    );
}

/// A storage key a script put in place of the origin's: extractable, so it
/// could read every record sealed under it.
#[wasm_bindgen_test]
async fn a_storage_key_that_is_not_latchkey_s_kind_is_replaced() {
    use latchkey::browser::store::{KEYS_DB, STORAGE_KEY_ID};
    let planted = extractable_aes_key().await;
    let keys = IdbKeyValue::open(KEYS_DB.0, KEYS_DB.1).await.unwrap();
    keys.put(STORAGE_KEY_ID, &planted).await.unwrap();
    let key = storage_key().await.unwrap();
    assert!(!key.extractable(), "a key of latchkey's kind is used");
    let stored: web_sys::CryptoKey = JsCast::unchecked_into(
        keys.get(STORAGE_KEY_ID)
            .await
            .unwrap()
            .expect("a stored key"),
    );
    assert!(
        !stored.extractable(),
        "and stored in place of the planted one"
    );
    // Something that is not a key at all is replaced too.
    keys.put(STORAGE_KEY_ID, &"not a key".into()).await.unwrap();
    assert!(!storage_key().await.unwrap().extractable());
}

#[wasm_bindgen(inline_js = r#"
// The next read of `id` from an object store finds nothing, as when another
// writer stores it just after this tab looked (the two tabs' race).
export function missNextRead(id) {
  const real = IDBObjectStore.prototype.get;
  IDBObjectStore.prototype.get = function (key) {
    if (key !== id) return real.call(this, key);
    IDBObjectStore.prototype.get = real;
    return real.call(this, `${id}:not-there`);
  };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = missNextRead)]
    fn miss_next_read(id: &str);
}

#[wasm_bindgen_test]
async fn a_key_another_writer_stored_first_is_checked_like_one_read_at_start() {
    use latchkey::browser::store::{KEYS_DB, STORAGE_KEY_ID};
    let planted = extractable_aes_key().await;
    let keys = IdbKeyValue::open(KEYS_DB.0, KEYS_DB.1).await.unwrap();
    keys.put(STORAGE_KEY_ID, &planted).await.unwrap();
    // The first read misses it; the insert then finds it there.
    miss_next_read(STORAGE_KEY_ID);
    let key = storage_key().await.unwrap();
    assert!(
        !key.extractable(),
        "the planted, extractable key is not used"
    );
    let stored: web_sys::CryptoKey = JsCast::unchecked_into(
        keys.get(STORAGE_KEY_ID)
            .await
            .unwrap()
            .expect("a stored key"),
    );
    assert!(!stored.extractable(), "and is replaced");
}

#[wasm_bindgen_test]
async fn webcrypto_sha256_gives_the_rfc7636_appendix_b_challenge() {
    let digest = webcrypto::sha256(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        .await
        .unwrap();
    assert_eq!(
        base64url::encode(&digest),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

/// The system clock stepped back a minute at every reading, as after an
/// NTP correction or a laptop resuming (restored by `restore`).
fn clock_stepping_back() -> js_sys::Function {
    let date = js_sys::Reflect::get(&js_sys::global(), &"Date".into()).unwrap();
    let now = js_sys::Reflect::get(&date, &"now".into()).unwrap();
    let back = js_sys::Function::new_no_args(
        "globalThis.__latchkeyNow = (globalThis.__latchkeyNow ?? 1.9e12) - 60000; \
         return globalThis.__latchkeyNow;",
    );
    js_sys::Reflect::set(&date, &"now".into(), &back).unwrap();
    now.into()
}

fn restore(now: &js_sys::Function) {
    let date = js_sys::Reflect::get(&js_sys::global(), &"Date".into()).unwrap();
    js_sys::Reflect::set(&date, &"now".into(), now).unwrap();
}

#[wasm_bindgen_test]
async fn a_mark_that_never_agrees_is_waited_for_by_a_clock_the_system_clock_does_not_move() {
    // The value an app (or an older latchkey) put back without its mark:
    // the read waits out its bound, then takes it. Bounded by Date.now(),
    // a clock stepping back would keep it polling for ever.
    let store = open(StorageKind::LocalStorage, "monotonic-client").await;
    let key = store.record_key("tokens");
    store.save_tokens(&tokens("first")).await.unwrap();
    let first = raw(StorageKind::LocalStorage, &store).await.unwrap();
    store.save_tokens(&tokens("second")).await.unwrap();
    write_raw(StorageKind::LocalStorage, &key, &first).await;
    let date_now = clock_stepping_back();
    let platform = latchkey::browser::platform::BrowserPlatform::within(0);
    let read = latchkey::core::race::within(
        store.load_tokens(),
        latchkey::core::ports::Timer::sleep(&platform, 5_000),
    )
    .await;
    restore(&date_now);
    let loaded = read.expect("the read ended within its bound").unwrap();
    assert_eq!(loaded.unwrap().access_token.secret(), "first");
    let signed_out = EndRecord::new(EndReason::SignedOut, 1_800_000_000_001);
    store.clear_tokens(signed_out).await.unwrap();
}
