//! Web Locks (`navigator.locks`): a lock shared by every tab of the origin.
//!
//! The browser releases a lock when the callback's promise settles or when
//! the tab holding it dies, so a crashed tab can never orphan it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, JsNullable, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Lock, LockManager, LockOptions};

use crate::core::ports::SessionLock;
use crate::core::Error;

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

/// The [`SessionLock`] of one session: the Web Lock named after issuer and
/// client, or only this tab's single-flight where there is no lock manager
/// (or the session lives in this tab's memory alone).
pub struct WebSessionLock {
    manager: Option<LockManager>,
    name: String,
}

impl WebSessionLock {
    /// The origin-wide lock `name`, held through `manager`.
    pub fn shared(manager: LockManager, name: &str) -> Self {
        WebSessionLock {
            manager: Some(manager),
            name: name.to_owned(),
        }
    }

    /// No cross-tab lock: for sessions no other tab can see.
    pub fn tab_only() -> Self {
        WebSessionLock {
            manager: None,
            name: String::new(),
        }
    }

    /// Whether refreshes are serialised across tabs.
    pub fn is_shared(&self) -> bool {
        self.manager.is_some()
    }
}

/// Holding a [`WebSessionLock`]; dropping it releases the Web Lock.
pub struct WebLockGuard {
    release: Option<Function>,
}

impl Drop for WebLockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

/// State shared between a pending acquisition and the lock callback.
#[derive(Default)]
struct Handoff {
    /// The waiter gave up (dropped): a lock granted now is released at once.
    abandoned: Cell<bool>,
    /// Resolves the promise the lock callback returned, releasing the lock.
    release: RefCell<Option<Function>>,
}

/// Releases or withdraws the lock request if the waiting future is dropped
/// (the core bounds the wait).
struct PendingRequest {
    handoff: Rc<Handoff>,
    abort: AbortController,
    done: bool,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.handoff.abandoned.set(true);
        // Granted in the meantime but not yet seen: give it back.
        if let Some(release) = self.handoff.release.borrow_mut().take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
        // Still queued: leave the queue.
        self.abort.abort();
    }
}

/// A promise and the function that resolves it.
fn deferred() -> (Promise, Function, Function) {
    let mut resolve = None;
    let mut reject = None;
    let promise = Promise::new(&mut |res, rej| {
        resolve = Some(res);
        reject = Some(rej);
    });
    (
        promise,
        resolve.expect("the executor runs synchronously"),
        reject.expect("the executor runs synchronously"),
    )
}

impl SessionLock for WebSessionLock {
    type Guard = WebLockGuard;

    async fn acquire(&self) -> Result<WebLockGuard, Error> {
        let Some(manager) = &self.manager else {
            return Ok(WebLockGuard { release: None });
        };
        let handoff = Rc::new(Handoff::default());
        let (granted, on_granted, on_refused) = deferred();
        let in_callback = Rc::clone(&handoff);
        let callback = Closure::once_into_js(move |_lock: JsNullable<Lock>| -> Promise {
            if in_callback.abandoned.get() {
                return Promise::resolve(&JsValue::UNDEFINED);
            }
            let (held, release, _) = deferred();
            *in_callback.release.borrow_mut() = Some(release);
            let _ = on_granted.call0(&JsValue::UNDEFINED);
            held
        });
        let abort = AbortController::new().map_err(|_| Error::LockUnavailable)?;
        let options = LockOptions::new();
        options.set_signal(&abort.signal());
        let request = manager.request_with_options(&self.name, &options, callback.unchecked_ref());
        // Rejected when withdrawn (AbortError) or refused (e.g. SecurityError
        // in an opaque origin): wake the waiter with the refusal, and never
        // leave a rejection unhandled.
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(reason) = JsFuture::from(request).await {
                let _ = on_refused.call1(&JsValue::UNDEFINED, &reason);
            }
        });
        let mut pending = PendingRequest {
            handoff: Rc::clone(&handoff),
            abort,
            done: false,
        };
        JsFuture::from(granted)
            .await
            .map_err(|_| Error::LockUnavailable)?;
        pending.done = true;
        let release = handoff.release.borrow_mut().take();
        Ok(WebLockGuard { release })
    }
}
