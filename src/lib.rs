//! latchkey — an OAuth 2.0 / OpenID Connect client for browser single-page apps.
//!
//! The crate is split so that the protocol can be tested natively:
//!
//! - [`core`]: protocol and session logic, free of any browser API
//!   (`cargo test` runs it on the host).
//! - [`core::ports`]: the small traits the core needs from its environment.
//! - `browser` (wasm32 only): web-sys adapters implementing those traits.
//! - `wasm_api` (wasm32 only): the `#[wasm_bindgen]` surface exported to JS.
#![deny(missing_docs)]

pub mod core;

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
pub mod wasm_api;

/// The crate version, as published in the npm package.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
