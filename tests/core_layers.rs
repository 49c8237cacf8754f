//! The core's dependencies go one way: no module of `src/core` imports one
//! that (through others) imports it back, and none reaches up into the
//! browser layer or the JavaScript bindings. Read from the sources: a `use`
//! that breaks the rule fails here with the cycle it closes.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Test-only modules: they may reach anywhere.
const TEST_ONLY: &[&str] = &["fakes", "simulation", "redaction_tests"];

/// A module's source without comments and without its `#[cfg(test)]` tail.
fn production_code(source: &str) -> String {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers of a `use` path tail: `x`, `x::Y` or `{A, b::C, …}`.
fn names(tail: &str) -> Vec<String> {
    let end = tail
        .find([';', '(', ')', '<', '>', '='])
        .unwrap_or(tail.len());
    tail[..end]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Each core module and the core modules it uses, names re-exported by
/// `core/mod.rs` resolved to the module that defines them.
fn graph(core: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut sources = BTreeMap::new();
    for entry in fs::read_dir(core).expect("src/core") {
        let path = entry.expect("an entry").path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.insert(stem, fs::read_to_string(&path).expect("readable"));
        }
    }
    let mod_rs = sources.remove("mod").expect("core/mod.rs");
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    // `pub use x::{A, B};` / `pub use x::A;` in mod.rs: A and B live in x.
    let mut defined_in = BTreeMap::new();
    for statement in mod_rs.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let (module, items) = path.split_once("::").unwrap_or((path, ""));
        for item in names(items) {
            defined_in.insert(item, module.trim().to_owned());
        }
    }
    let mut edges = BTreeMap::new();
    for (module, source) in &sources {
        if module.ends_with("_tests") || TEST_ONLY.contains(&module.as_str()) {
            continue;
        }
        let code = production_code(source);
        let mut uses = BTreeSet::new();
        for prefix in ["crate::core::", "super::"] {
            for (at, _) in code.match_indices(prefix) {
                for name in names(&code[at + prefix.len()..]).into_iter().take(64) {
                    if modules.contains(&name) {
                        uses.insert(name);
                    } else if let Some(owner) = defined_in.get(&name) {
                        uses.insert(owner.clone());
                    }
                }
            }
        }
        uses.remove(module);
        edges.insert(module.clone(), uses);
    }
    edges
}

/// A cycle through `from`, as the path that closes it, if there is one.
fn cycle(
    edges: &BTreeMap<String, BTreeSet<String>>,
    at: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|m| m == at) {
        let mut found = path[start..].to_vec();
        found.push(at.to_owned());
        return Some(found);
    }
    if done.contains(at) {
        return None;
    }
    path.push(at.to_owned());
    for next in edges.get(at).into_iter().flatten() {
        if let Some(found) = cycle(edges, next, path, done) {
            return Some(found);
        }
    }
    path.pop();
    done.insert(at.to_owned());
    None
}

#[test]
fn the_core_has_no_import_cycle() {
    let edges = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"));
    assert!(edges.len() > 20, "the core's modules were read");
    assert!(
        edges["token"].contains("platform") && edges["ports"].contains("token"),
        "the reader sees imports: {edges:?}"
    );
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        if let Some(found) = cycle(&edges, module, &mut Vec::new(), &mut done) {
            panic!("an import cycle in the core: {}", found.join(" → "));
        }
    }
}

#[test]
fn the_core_reaches_no_browser_api_or_binding() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    for entry in fs::read_dir(&core).expect("src/core") {
        let path = entry.expect("an entry").path();
        let code = production_code(&fs::read_to_string(&path).expect("readable"));
        for upward in [
            "web_sys",
            "js_sys",
            "wasm_bindgen",
            "crate::browser",
            "crate::wasm_api",
            "gloo",
        ] {
            assert!(!code.contains(upward), "{} uses {upward}", path.display());
        }
    }
}
