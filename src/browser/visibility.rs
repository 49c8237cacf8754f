//! Catching up when a tab becomes visible again. Timers in background tabs
//! are throttled and stop during sleep, so latchkey never relies on them:
//! tokens are checked at use time. This listener only makes the first
//! request after a tab comes back fast, by refreshing a stale token as soon
//! as the user can see the page.

use wasm_bindgen::prelude::*;
use web_sys::Document;

/// A `visibilitychange` listener, removed when dropped.
pub struct VisibilityCatchUp {
    document: Document,
    listener: Closure<dyn FnMut()>,
}

impl VisibilityCatchUp {
    /// Calls `on_visible` whenever the document becomes visible.
    pub fn install(on_visible: impl Fn() + 'static) -> Option<Self> {
        let document = web_sys::window()?.document()?;
        let watched = document.clone();
        let listener = Closure::<dyn FnMut()>::new(move || {
            if !watched.hidden() {
                on_visible();
            }
        });
        document
            .add_event_listener_with_callback("visibilitychange", listener.as_ref().unchecked_ref())
            .ok()?;
        Some(VisibilityCatchUp { document, listener })
    }
}

impl Drop for VisibilityCatchUp {
    fn drop(&mut self) {
        let _ = self.document.remove_event_listener_with_callback(
            "visibilitychange",
            self.listener.as_ref().unchecked_ref(),
        );
    }
}
