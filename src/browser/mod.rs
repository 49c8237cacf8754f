//! web-sys adapters implementing the [`crate::platform`] traits.

pub mod idb;
pub mod locks;
pub mod webcrypto;
