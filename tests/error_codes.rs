//! The package's TypeScript union of error codes (`pkg-template/index.d.ts`)
//! lists exactly the Rust codes, in order. A native test outside the core:
//! the core does not read the package's files.
#![cfg(not(target_arch = "wasm32"))]

use latchkey::core::ALL_CODES;

#[test]
fn the_typescript_code_union_lists_exactly_all_codes_in_order() {
    let dts = include_str!("../pkg-template/index.d.ts");
    let start = dts
        .find("export type LatchkeyErrorCode =")
        .expect("the union is declared");
    let union = &dts[start..start + dts[start..].find(';').expect("the union ends")];
    let listed: Vec<&str> = union.split('"').skip(1).step_by(2).collect();
    assert_eq!(listed, ALL_CODES);
}
