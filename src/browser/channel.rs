//! BroadcastChannel: how a tab tells the other tabs of the origin that the
//! session changed, so their in-memory copy (and fast path) stays current
//! without reading storage.
//!
//! Messages carry the token set itself: the channel never leaves this
//! origin's tabs, which already hold the same tokens in memory.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

use crate::browser::from_js::from_js;
use crate::core::json_text::to_json;
use crate::core::ports::Broadcast;
use crate::core::session::SessionMessage;

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

/// Reads a message in the form [`SessionMessage`] serialises to:
/// `{ type: "tokens", tokens, unsaved? }`, `{ type: "ended", reason }` or
/// `{ type: "backOff", until, status, error, seconds }`, field by field.
/// The derived `Deserialize` of an internally tagged enum buffers every
/// member in serde's generic `Content` tree first, which costs about
/// 25 KB of wasm for this one message type. Other spellings serde would
/// accept (a `[tag, …]` array, a `Map`) are never sent by latchkey and are
/// ignored, like anything else that is not ours.
pub fn read_message(data: &JsValue) -> Option<SessionMessage> {
    if !data.is_object() {
        return None;
    }
    let field = |name: &str| Reflect::get(data, &JsValue::from_str(name)).ok();
    match field("type")?.as_string()?.as_str() {
        "tokens" => from_js(field("tokens")?)
            .ok()
            .map(|tokens| SessionMessage::Tokens {
                tokens,
                unsaved: field("unsaved").and_then(|v| v.as_bool()).unwrap_or(false),
            }),
        "ended" => from_js(field("reason")?)
            .ok()
            .map(|reason| SessionMessage::Ended { reason }),
        "backOff" => {
            let number = |name: &str| field(name)?.as_f64().filter(|n| *n >= 0.0);
            Some(SessionMessage::BackOff {
                until: number("until")? as u64,
                status: number("status")?.min(f64::from(u16::MAX)) as u16,
                error: field("error")?.as_string()?,
                seconds: number("seconds")? as u64,
            })
        }
        _ => None,
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
