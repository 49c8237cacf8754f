//! Browser-API tests, run by `wasm-pack test --headless --chrome`: real
//! IndexedDB and real Web Locks in headless Chromium.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use latchkey::browser::idb::IdbKeyValue;
use latchkey::browser::locks::{lock_manager, WebSessionLock};
use latchkey::core::ports::SessionLock;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[path = "support/browser.rs"]
mod support;
use support::delete_database;

wasm_bindgen_test_configure!(run_in_browser);

/// A promise that resolves after `ms` on the browser's timer.
async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
async fn indexeddb_round_trip_survives_reopening() {
    let kv = IdbKeyValue::open("latchkey-test-roundtrip", "kv")
        .await
        .unwrap();
    kv.put("k", &JsValue::from_str("v1")).await.unwrap();
    kv.put("k", &JsValue::from_str("v2")).await.unwrap();

    // A second connection (as another tab would open) sees the committed value.
    let other = IdbKeyValue::open("latchkey-test-roundtrip", "kv")
        .await
        .unwrap();
    assert_eq!(other.get("k").await.unwrap(), Some(JsValue::from_str("v2")));

    other.delete("k").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap(), None);
    assert_eq!(kv.get("never-written").await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn indexeddb_insert_new_tells_a_key_already_there() {
    // Two tabs creating the origin's storage key at once: the second add
    // meets a ConstraintError, which says "someone got there first".
    let kv = IdbKeyValue::open("latchkey-test-insert", "kv")
        .await
        .unwrap();
    kv.delete("k").await.unwrap();
    let first = kv.insert_new("k", &JsValue::from_str("a")).await;
    assert_eq!(first, Ok(true));
    let other = IdbKeyValue::open("latchkey-test-insert", "kv")
        .await
        .unwrap();
    let second = other.insert_new("k", &JsValue::from_str("b")).await;
    assert_eq!(second, Ok(false), "{second:?}");
    assert_eq!(kv.get("k").await.unwrap(), Some(JsValue::from_str("a")));
}

#[wasm_bindgen_test]
async fn indexeddb_lets_a_deletion_through_and_does_not_make_it_again() {
    // "Clear site data" or an app deleting the database: latchkey's open
    // connection must not block it, and must not bring back an empty
    // database (the storage key went with it).
    let kv = IdbKeyValue::open("latchkey-test-deleted", "kv")
        .await
        .unwrap();
    kv.put("k", &JsValue::from_str("v1")).await.unwrap();
    assert_eq!(delete_database("latchkey-test-deleted").await, "deleted");
    let error = kv.get("k").await.unwrap_err();
    assert!(
        format!("{error:?}").contains("deleted or upgraded"),
        "{error:?}"
    );
    assert!(kv.put("k", &JsValue::from_str("v2")).await.is_err());
    // indexedDB.databases(), which this web-sys build does not bind.
    let factory: JsValue = web_sys::window()
        .unwrap()
        .indexed_db()
        .unwrap()
        .unwrap()
        .into();
    let databases = js_sys::Reflect::get(&factory, &"databases".into()).unwrap();
    let listed = databases
        .unchecked_ref::<js_sys::Function>()
        .call0(&factory)
        .unwrap();
    let names = JsFuture::from(js_sys::Promise::from(listed)).await.unwrap();
    let names: Vec<String> = js_sys::Array::from(&names)
        .iter()
        .filter_map(|db| js_sys::Reflect::get(&db, &"name".into()).ok()?.as_string())
        .collect();
    assert!(
        !names.contains(&"latchkey-test-deleted".to_owned()),
        "{names:?}"
    );
}

#[wasm_bindgen_test]
async fn indexeddb_a_closed_connection_is_opened_again() {
    // The browser closing the connection with the database left in place
    // (here: an upgrade elsewhere that this connection let through by
    // closing, then gave up): the next call opens it again.
    let kv = IdbKeyValue::open("latchkey-test-closed", "kv")
        .await
        .unwrap();
    kv.put("k", &JsValue::from_str("v1")).await.unwrap();
    let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
    // Another connection at version 1 asking nothing: opening it fires no
    // versionchange; the first connection stays open. Close ours from the
    // outside by a versionchange that is then aborted.
    let upgrading = factory.open_with_u32("latchkey-test-closed", 2).unwrap();
    let aborted = js_sys::Promise::new(&mut |resolve, _| {
        let request = upgrading.clone();
        let on_upgrade = wasm_bindgen::closure::Closure::once_into_js(move || {
            request.transaction().unwrap().abort().unwrap();
        });
        let on_error = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        upgrading.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
        upgrading.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(aborted).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap(), Some(JsValue::from_str("v1")));
    kv.put("k", &JsValue::from_str("v2")).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap(), Some(JsValue::from_str("v2")));
}

#[wasm_bindgen_test]
async fn web_lock_serialises_critical_sections() {
    assert!(
        lock_manager().is_some(),
        "headless Chromium has navigator.locks"
    );
    let lock = Rc::new(WebSessionLock::shared(
        lock_manager().expect("navigator.locks"),
        "latchkey-test-lock",
    ));
    let trace: Rc<RefCell<Vec<&'static str>>> = Rc::default();

    let first = {
        let (trace, lock) = (Rc::clone(&trace), Rc::clone(&lock));
        async move {
            let _guard = lock.acquire().await.unwrap();
            trace.borrow_mut().push("first:start");
            // Yield to the timer so the second request is queued meanwhile.
            sleep(50).await;
            trace.borrow_mut().push("first:end");
            1
        }
    };
    let second = {
        let (trace, lock) = (Rc::clone(&trace), Rc::clone(&lock));
        async move {
            // Ask only once the first section surely holds the lock.
            sleep(10).await;
            let _guard = lock.acquire().await.unwrap();
            trace.borrow_mut().push("second");
            2
        }
    };
    let (a, b) = futures_join(first, second).await;
    assert_eq!((a, b), (1, 2));
    assert_eq!(*trace.borrow(), ["first:start", "first:end", "second"]);
}

/// Runs two futures concurrently on the JS event loop and awaits both.
async fn futures_join<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: std::future::Future + 'static,
    B: std::future::Future + 'static,
    A::Output: 'static,
    B::Output: 'static,
{
    let a_out: Rc<RefCell<Option<A::Output>>> = Rc::default();
    let a_slot = Rc::clone(&a_out);
    let a_done = wasm_bindgen_futures::future_to_promise(async move {
        *a_slot.borrow_mut() = Some(a.await);
        Ok(JsValue::UNDEFINED)
    });
    let b_value = b.await;
    JsFuture::from(a_done).await.unwrap();
    let a_value = a_out.borrow_mut().take().unwrap();
    (a_value, b_value)
}

/// A refresh's requests share one deadline: once it has passed, a request
/// (a DPoP nonce refusal's resend) is not made at all. Port 9 (discard) on
/// loopback refuses connections, so a request that was made fails
/// otherwise.
#[wasm_bindgen_test]
async fn a_shared_deadline_leaves_a_later_request_only_what_is_left() {
    use latchkey::browser::platform::BrowserPlatform;
    use latchkey::core::ports::Http;
    let url = "http://127.0.0.1:9/token";
    let form = [("grant_type".to_owned(), "refresh_token".to_owned())];
    let spent = BrowserPlatform::sharing_deadline(50);
    sleep(80).await;
    let error = spent.post(url, &form, None).await.unwrap_err();
    assert_eq!(error.to_string(), "network error: no answer within 50 ms");
    let fresh = BrowserPlatform::sharing_deadline(10_000);
    let error = fresh.post(url, &form, None).await.unwrap_err();
    assert_eq!(error.code(), "network_error");
    assert!(
        !error.to_string().contains("no answer within"),
        "a request was made: {error}"
    );
}
