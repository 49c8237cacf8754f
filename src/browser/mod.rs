//! web-sys adapters implementing the [`crate::platform`] traits.

pub mod events;
pub mod http;
pub mod idb;
pub mod js_error;
pub mod locks;
pub mod options;
pub mod platform;
pub mod store;
pub mod webcrypto;
