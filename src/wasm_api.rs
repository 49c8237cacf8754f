//! The `#[wasm_bindgen]` surface: what JavaScript sees.

use wasm_bindgen::prelude::*;

/// The latchkey version, e.g. `"0.1.0"`.
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.to_owned()
}
