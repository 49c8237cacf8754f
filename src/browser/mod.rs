//! web-sys adapters implementing the [`crate::core::ports`] traits.

pub mod authorized_fetch;
pub mod channel;
pub mod create;
pub mod dpop_keys;
pub mod events;
pub mod from_js;
pub mod http;
pub mod idb;
pub mod js_error;
pub mod jws_verify;
pub mod locks;
pub mod logout;
pub mod nonce_channel;
pub mod options;
pub mod platform;
pub mod refresh;
pub mod store;
pub mod user;
pub mod visibility;
pub mod webcrypto;
