//! The package's TypeScript union of error codes (`pkg-template/index.d.ts`)
//! lists exactly the Rust codes, in order. A native test outside the core:
//! the core does not read the package's files.
#![cfg(not(target_arch = "wasm32"))]

use latchkey::core::ALL_CODES;

/// The quoted members of `index.d.ts`'s union type `name`, in order.
fn union_members(name: &str) -> Vec<&'static str> {
    let dts = include_str!("../pkg-template/index.d.ts");
    let declared = format!("export type {name} =");
    let start = dts.find(&declared).expect("the union is declared");
    let union = &dts[start..start + dts[start..].find(';').expect("the union ends")];
    union.split('"').skip(1).step_by(2).collect()
}

#[test]
fn the_typescript_code_union_lists_exactly_all_codes_in_order() {
    assert_eq!(union_members("LatchkeyErrorCode"), ALL_CODES);
}

/// The codes the package's JavaScript raises itself (`latchkeyError("…"`
/// in `pkg-template/*.js`), in order of first appearance.
fn codes_raised_by_the_js_entry() -> Vec<String> {
    let sources = [
        include_str!("../pkg-template/errors.js"),
        include_str!("../pkg-template/popup.js"),
        include_str!("../pkg-template/index.js"),
        include_str!("../pkg-template/react.js"),
    ];
    let mut codes: Vec<String> = Vec::new();
    for source in sources {
        for call in source.split("latchkeyError(").skip(1) {
            let call = call.trim_start();
            let Some(quoted) = call.strip_prefix('"') else {
                continue; // the helper's own definition: `latchkeyError(code, …`
            };
            let code = &quoted[..quoted.find('"').expect("the code's quote closes")];
            if !codes.iter().any(|known| known == code) {
                codes.push(code.to_owned());
            }
        }
    }
    codes
}

#[test]
fn the_js_code_union_lists_exactly_the_codes_the_js_entry_adds() {
    let mut listed = union_members("JsErrorCode");
    let mut added: Vec<String> = codes_raised_by_the_js_entry()
        .into_iter()
        .filter(|code| !ALL_CODES.contains(&code.as_str()))
        .collect();
    listed.sort_unstable();
    added.sort_unstable();
    assert_eq!(
        listed, added,
        "JsErrorCode against the JS entry's own codes"
    );
    // No JS code shadows a Rust one under another meaning: each is listed once.
    for code in &listed {
        assert!(!ALL_CODES.contains(code), "{code} is already a Rust code");
    }
}

#[test]
fn the_js_entry_raises_codes_it_reuses_from_the_rust_list() {
    let reused: Vec<String> = codes_raised_by_the_js_entry()
        .into_iter()
        .filter(|code| ALL_CODES.contains(&code.as_str()))
        .collect();
    // popup.js refuses bad options with the wasm's own `invalid_option`.
    assert_eq!(reused, ["invalid_option"]);
}
