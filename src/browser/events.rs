//! The client's event emitter: `on(name, listener)` returns an unsubscribe
//! function. A listener that throws does not stop the others or latchkey.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::core::quoted::Quoted;
use crate::core::Error;

/// The events a client emits (named once, in the core).
pub use crate::core::public_api::Event as EventName;

impl EventName {
    /// Parses an event name given to `on`.
    pub fn parse_js(name: &str) -> Result<EventName, Error> {
        EventName::parse(name).ok_or_else(|| {
            let known: Vec<String> = crate::core::public_api::EVENTS
                .iter()
                .map(|name| format!("\"{name}\""))
                .collect();
            Error::invalid_option(
                "event",
                format!(
                    "unknown event {} (expected one of {})",
                    Quoted(name),
                    known.join(", ")
                ),
            )
        })
    }
}

struct Listener {
    id: u32,
    event: EventName,
    function: Function,
}

/// Listeners of one client.
#[derive(Default)]
pub struct Emitter {
    listeners: RefCell<Vec<Listener>>,
    next_id: Cell<u32>,
}

impl Emitter {
    /// Adds a listener; the returned JS function removes it (calling it
    /// again does nothing).
    pub fn subscribe(self: &Rc<Self>, event: EventName, function: Function) -> Function {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.listeners.borrow_mut().push(Listener {
            id,
            event,
            function,
        });
        let emitter: Weak<Emitter> = Rc::downgrade(self);
        let unsubscribe = Closure::<dyn FnMut()>::new(move || {
            if let Some(emitter) = emitter.upgrade() {
                emitter.listeners.borrow_mut().retain(|l| l.id != id);
            }
        });
        unsubscribe.into_js_value().unchecked_into()
    }

    /// Removes every listener (the client is disposed).
    pub fn clear(&self) {
        self.listeners.borrow_mut().clear();
    }

    /// Calls every listener of `event` with `detail`, as a DOM event
    /// target does: one added while it is called waits for the next event,
    /// one removed (or the client disposed) before its turn is skipped.
    pub fn emit(&self, event: EventName, detail: &JsValue) {
        // Copied first: a listener may subscribe or unsubscribe while called.
        let called: Vec<(u32, Function)> = self
            .listeners
            .borrow()
            .iter()
            .filter(|l| l.event == event)
            .map(|l| (l.id, l.function.clone()))
            .collect();
        for (id, function) in called {
            if self.listeners.borrow().iter().any(|l| l.id == id) {
                if let Err(thrown) = function.call1(&JsValue::UNDEFINED, detail) {
                    report_uncaught(&thrown);
                }
            }
        }
    }

    /// Emits on the next macrotask, so that listeners the app adds right
    /// after `await AuthClient.create(...)` receive start-up events.
    pub fn emit_soon(self: &Rc<Self>, event: EventName, detail: JsValue) {
        let emitter = Rc::downgrade(self);
        let deliver = Closure::once_into_js(move || {
            if let Some(emitter) = emitter.upgrade() {
                emitter.emit(event, &detail);
            }
        });
        if let Some(window) = web_sys::window() {
            let _ = window
                .set_timeout_with_callback_and_timeout_and_arguments_0(deliver.unchecked_ref(), 0);
        }
    }
}

/// Reports what a listener threw as an uncaught exception (the page's
/// `error` event and the console), as a DOM event target does, and goes on
/// with the other listeners. `reportError` is in every browser latchkey
/// supports; where it is missing the exception is dropped, as before.
fn report_uncaught(thrown: &JsValue) {
    let global = js_sys::global();
    let report = js_sys::Reflect::get(&global, &JsValue::from_str("reportError"));
    if let Ok(report) = report.and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let _ = report.call1(&global, thrown);
    }
}
