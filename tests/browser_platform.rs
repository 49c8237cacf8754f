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
async fn indexeddb_lets_a_deletion_through_then_opens_again() {
    // "Clear site data" or an app deleting the database: latchkey's open
    // connection must not block it, and must work again afterwards.
    let kv = IdbKeyValue::open("latchkey-test-reopen", "kv")
        .await
        .unwrap();
    kv.put("k", &JsValue::from_str("v1")).await.unwrap();
    let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
    let deleting = factory.delete_database("latchkey-test-reopen").unwrap();
    let outcome = js_sys::Promise::new(&mut |resolve, _| {
        let (done, blocked) = (resolve.clone(), resolve);
        let on_success = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = done.call1(&JsValue::NULL, &"deleted".into());
        });
        let on_blocked = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = blocked.call1(&JsValue::NULL, &"blocked".into());
        });
        deleting.set_onsuccess(Some(on_success.unchecked_ref()));
        deleting.set_onblocked(Some(on_blocked.unchecked_ref()));
    });
    let outcome = JsFuture::from(outcome).await.unwrap();
    assert_eq!(outcome.as_string().as_deref(), Some("deleted"));
    assert_eq!(kv.get("k").await.unwrap(), None, "a new, empty database");
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
