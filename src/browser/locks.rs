//! Web Locks (`navigator.locks`): a lock shared by every tab of the origin.
//!
//! The browser releases a lock when the callback's promise settles or when
//! the tab holding it dies, so a crashed tab can never orphan it.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::{JsNullable, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{Lock, LockManager};

/// The origin's lock manager, or `None` where the browser lacks Web Locks
/// (old browsers, some embedded webviews, non-secure contexts).
pub fn lock_manager() -> Option<LockManager> {
    let navigator = web_sys::window()?.navigator();
    // `navigator.locks` is undefined outside secure contexts; reading it
    // through web-sys would hand us `undefined` typed as a LockManager.
    let locks = Reflect::get(&navigator, &JsValue::from_str("locks")).ok()?;
    if locks.is_undefined() || locks.is_null() {
        return None;
    }
    Some(navigator.locks())
}

/// Runs `critical` while holding the exclusive lock `name`, and returns its
/// output. The lock is released when `critical` finishes, whatever it returns.
pub async fn with_exclusive_lock<F, Fut, T>(
    locks: &LockManager,
    name: &str,
    critical: F,
) -> Result<T, JsValue>
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = T> + 'static,
    T: 'static,
{
    let output: Rc<RefCell<Option<T>>> = Rc::default();
    let output_in_lock = Rc::clone(&output);
    let callback = Closure::once_into_js(move |_lock: JsNullable<Lock>| -> Promise {
        future_to_promise(async move {
            let value = critical().await;
            *output_in_lock.borrow_mut() = Some(value);
            Ok(JsValue::UNDEFINED)
        })
    });
    JsFuture::from(locks.request(name, callback.unchecked_ref())).await?;
    let value = output.borrow_mut().take();
    value.ok_or_else(|| JsValue::from_str("lock callback did not run"))
}
