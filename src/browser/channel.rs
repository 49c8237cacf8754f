//! BroadcastChannel: how a tab tells the other tabs of the origin that the
//! session changed, so their in-memory copy (and fast path) stays current
//! without reading storage.
//!
//! Messages carry the token set itself: the channel never leaves this
//! origin's tabs, which already hold the same tokens in memory.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

use crate::browser::from_js::from_js;
use crate::core::json_text::to_json;
use crate::core::message::MessageFields;
use crate::core::ports::Broadcast;
use crate::core::session::{Session, SessionMessage};
use crate::core::TokenSet;

/// The most messages held for a session not made yet (`create()` is
/// bounded; a tab hears a few messages in that time), the newest kept.
const MAX_HELD: usize = 64;

/// A tab's messages, heard from before its session exists: `create()`
/// joins the channel before it reads the store, so a sign-out (or a
/// refresh) another tab tells while this one reads and discovers is not
/// missed; what arrives before the session is made is held, then given to
/// it in order ([`Session::receive`] weighs each against the set it read).
#[derive(Default)]
pub struct Hearing {
    session: RefCell<Weak<Session>>,
    held: RefCell<Vec<(SessionMessage, u64)>>,
}

impl Hearing {
    /// A message heard at `now_ms`: to the session, or held for it.
    pub fn hear(&self, message: SessionMessage, now_ms: u64) {
        if let Some(session) = self.session.borrow().upgrade() {
            return session.receive(message, now_ms);
        }
        // The newest are kept: a sign-out told last must not be the one
        // dropped.
        let mut held = self.held.borrow_mut();
        if held.len() == MAX_HELD {
            held.remove(0);
        }
        held.push((message, now_ms));
    }

    /// From now on messages go to `session`; those held first.
    pub fn deliver_to(&self, session: &Rc<Session>) {
        for (message, at) in self.held.take() {
            session.receive(message, at);
        }
        *self.session.borrow_mut() = Rc::downgrade(session);
    }

    /// Joins `name`'s channel, hearing through `hearing` (kept by the
    /// channel's listener: it holds the session only weakly).
    pub fn join(hearing: &Rc<Hearing>, name: &str) -> SessionChannel {
        let hearing = Rc::clone(hearing);
        SessionChannel::open(name, move |message| {
            hearing.hear(message, js_sys::Date::now() as u64);
        })
    }
}

/// One session's channel, or none (memory storage, or no BroadcastChannel).
pub struct SessionChannel {
    channel: Option<BroadcastChannel>,
    _listener: Option<Closure<dyn FnMut(MessageEvent)>>,
}

impl SessionChannel {
    /// A channel that sends and receives nothing.
    pub fn none() -> Self {
        SessionChannel {
            channel: None,
            _listener: None,
        }
    }

    /// Joins the channel `name`; `on_message` gets what other tabs send.
    /// Messages that are not ours (another version, another script) are
    /// ignored.
    pub fn open(name: &str, on_message: impl Fn(SessionMessage) + 'static) -> Self {
        let Ok(channel) = BroadcastChannel::new(name) else {
            return Self::none();
        };
        let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(message) = read_message(&event.data()) {
                on_message(message);
            }
        });
        channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
        SessionChannel {
            channel: Some(channel),
            _listener: Some(listener),
        }
    }
}

/// A posted object's members, read for [`SessionMessage::read`] (the
/// rules of what is accepted are the core's).
struct Posted<'a>(&'a JsValue);

impl Posted<'_> {
    fn member(&self, name: &str) -> Option<JsValue> {
        Reflect::get(self.0, &JsValue::from_str(name)).ok()
    }
}

impl MessageFields for Posted<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.member(name)?.as_string()
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.member(name)?.as_f64()
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.member(name)?.as_bool()
    }

    fn tokens(&self) -> Option<TokenSet> {
        from_js(self.member("tokens")?).ok()
    }
}

/// Reads what another tab posted ([`SessionMessage::read`]); `None` for
/// anything that is not an object.
pub fn read_message(data: &JsValue) -> Option<SessionMessage> {
    match data.is_object() {
        true => SessionMessage::read(&Posted(data)),
        false => None,
    }
}

impl Broadcast for SessionChannel {
    fn publish(&self, message: &SessionMessage) {
        let Some(channel) = &self.channel else {
            return;
        };
        // Posted as the object its JSON text parses to: the shape
        // `read_message` reads.
        let value = to_json(message).map(|text| js_sys::JSON::parse(&text));
        if let Ok(Ok(value)) = value {
            let _ = channel.post_message(&value);
        }
    }
}

impl Drop for SessionChannel {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            channel.set_onmessage(None);
            channel.close();
        }
    }
}
