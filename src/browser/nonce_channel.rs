//! Passes DPoP nonces between the tabs of a session (BroadcastChannel):
//! a nonce one tab was given is used by the others at once, so a burst of
//! calls in many tabs costs one `use_dpop_nonce` round trip, not one per tab.
//!
//! A nonce is not a secret (servers send it in the clear to anyone), and
//! the channel never leaves this origin's tabs.

use std::rc::{Rc, Weak};

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

use crate::core::dpop::{NonceBook, Role};

/// The channel, kept open while the client lives.
pub struct NonceChannel {
    channel: BroadcastChannel,
    _listener: Closure<dyn FnMut(MessageEvent)>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::AuthorizationServer => "as",
        Role::Resource => "rs",
    }
}

impl NonceChannel {
    /// Joins `name`'s nonce channel: what other tabs send is adopted into
    /// `book`, and what `book` learns from servers is sent to them.
    pub fn open(name: &str, book: &Rc<NonceBook>) -> Option<NonceChannel> {
        let channel = BroadcastChannel::new(&format!("{name}:dpop-nonces")).ok()?;
        let receiver: Weak<NonceBook> = Rc::downgrade(book);
        let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let (Some(book), data) = (receiver.upgrade(), event.data()) else {
                return;
            };
            let text = |field: &str| Reflect::get(&data, &field.into()).ok()?.as_string();
            let role = match text("role").as_deref() {
                Some("as") => Role::AuthorizationServer,
                Some("rs") => Role::Resource,
                _ => return,
            };
            if let (Some(url), Some(nonce)) = (text("url"), text("nonce")) {
                // Checked like a server's (syntax, length) by the book.
                book.adopt(role, &url, &nonce);
            }
        });
        channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
        let sender = channel.clone();
        book.set_observer(move |role, origin, nonce| {
            let message = Object::new();
            let _ = Reflect::set(&message, &"role".into(), &role_name(role).into());
            let _ = Reflect::set(&message, &"url".into(), &origin.into());
            let _ = Reflect::set(&message, &"nonce".into(), &nonce.into());
            let _ = sender.post_message(&message);
        });
        Some(NonceChannel {
            channel,
            _listener: listener,
        })
    }
}

impl Drop for NonceChannel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
