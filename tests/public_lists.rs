//! `index.d.ts` declares exactly the option and event names the binding
//! reads and emits (`core::public_api`, written once). A native test outside
//! the core: the core does not read the package's files.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use latchkey::core::public_api::{
    ATPROTO_ONLY_OPTIONS, CREATE_OPTIONS, EVENTS, OIDC_ONLY_OPTIONS, STORAGE_EVENT_FIELDS,
    STORAGE_KINDS, STORAGE_PROBLEMS, TOKENS_EVENT_FIELDS, TOKEN_SOURCES,
};

const DTS: &str = include_str!("../pkg-template/index.d.ts");

/// The property names declared directly in `export interface <name> … {`,
/// up to its closing brace at the start of a line.
fn properties(interface: &str) -> BTreeSet<&'static str> {
    let start = DTS
        .find(&format!("export interface {interface}"))
        .unwrap_or_else(|| panic!("{interface} is declared"));
    let body_start = start + DTS[start..].find(" {\n").expect("a body") + 3;
    let body = &DTS[body_start..body_start + DTS[body_start..].find("\n}").expect("its end")];
    body.lines()
        // Members are indented two spaces; deeper lines belong to comments
        // or nested types.
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|line| !line.starts_with(' ') && !line.starts_with('/') && !line.starts_with('*'))
        .filter_map(|line| {
            let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            let rest = &line[name_end..];
            (name_end > 0 && (rest.starts_with("?:") || rest.starts_with(':')))
                .then(|| &line[..name_end])
        })
        .collect()
}

#[test]
fn the_create_options_typed_are_exactly_the_ones_parsed() {
    let mut typed = properties("OidcClientOptions");
    typed.extend(properties("AtprotoClientOptions"));
    let parsed: BTreeSet<&str> = CREATE_OPTIONS.iter().copied().collect();
    assert_eq!(typed, parsed);
}

#[test]
fn each_profile_s_own_options_are_the_ones_its_type_alone_has() {
    let set = |list: &[&'static str]| list.iter().copied().collect::<BTreeSet<_>>();
    // `AtprotoClientOptions` is `OidcClientOptions` without the names its
    // `Omit<…>` lists (`profile` and `issuer` it declares again itself).
    let start = DTS
        .find("export interface AtprotoClientOptions")
        .expect("AtprotoClientOptions is declared");
    let omitted: BTreeSet<&str> = DTS[start..start + DTS[start..].find("> {").expect("its Omit")]
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|name| !["profile", "issuer"].contains(name))
        .collect();
    assert_eq!(omitted, set(OIDC_ONLY_OPTIONS));
    let oidc = properties("OidcClientOptions");
    let atproto_only: BTreeSet<&str> = properties("AtprotoClientOptions")
        .difference(&oidc)
        .copied()
        .collect();
    assert_eq!(atproto_only, set(ATPROTO_ONLY_OPTIONS));
}

#[test]
fn the_events_typed_are_exactly_the_ones_emitted() {
    let typed = properties("AuthClientEvents");
    let emitted: BTreeSet<&str> = EVENTS.iter().copied().collect();
    assert_eq!(typed, emitted);
}

/// The quoted strings of the first line after `from` that starts with
/// `member`: a union of string literals.
fn literals(from: &str, member: &str) -> Vec<&'static str> {
    let start = DTS
        .find(from)
        .unwrap_or_else(|| panic!("{from} is declared"));
    let line = DTS[start..]
        .lines()
        .find(|line| line.trim_start().starts_with(member))
        .unwrap_or_else(|| panic!("{from} has {member}"));
    line.split('"').skip(1).step_by(2).collect()
}

#[test]
fn the_storage_event_types_typed_are_exactly_the_ones_reported() {
    let typed = literals("export interface StorageEvent", "type:");
    assert_eq!(typed, STORAGE_PROBLEMS);
}

#[test]
fn the_event_details_typed_are_exactly_the_ones_built() {
    let typed = properties("TokensEvent");
    assert_eq!(typed, TOKENS_EVENT_FIELDS.into_iter().collect());
    let typed = properties("StorageEvent");
    assert_eq!(typed, STORAGE_EVENT_FIELDS.into_iter().collect());
}

#[test]
fn the_token_sources_typed_are_exactly_the_ones_emitted() {
    let typed = literals("export interface TokensEvent", "source:");
    assert_eq!(typed, TOKEN_SOURCES);
}

#[test]
fn the_storage_kinds_typed_are_exactly_the_ones_parsed() {
    let typed = literals("export type StorageKind", "export type StorageKind");
    assert_eq!(typed, STORAGE_KINDS);
}

/// The binding's option parser, read as text (it is wasm-only code).
const OPTIONS_RS: &str = include_str!("../src/browser/options.rs");

#[test]
fn every_create_option_declared_is_read_by_the_parser() {
    // `reject_unknown` refuses a name missing from the list; this catches
    // the other way round: a name listed (and typed) that nothing reads.
    for name in CREATE_OPTIONS {
        let read = OPTIONS_RS.contains(&format!("\"{name}\""));
        assert!(
            read,
            "{name} is declared but src/browser/options.rs never reads it"
        );
    }
}

#[test]
fn the_claims_userinfo_never_replaces_are_documented_as_the_core_keeps_them() {
    // The doc of `GetUserOptions.userinfo` names them, each in backticks,
    // between "except those" and the closing parenthesis.
    let start = DTS
        .find("export interface GetUserOptions")
        .expect("GetUserOptions");
    let doc = &DTS[start..];
    let list = &doc[doc.find("speaks for (").expect("the list") + "speaks for (".len()..];
    let list = &list[..list.find(')').expect("its end")];
    let documented: BTreeSet<&str> = list
        .split(',')
        .map(|item| item.trim().trim_start_matches('*').trim().trim_matches('`'))
        .collect();
    let kept: BTreeSet<&str> = latchkey::core::userinfo::ID_TOKEN_ONLY
        .iter()
        .copied()
        .collect();
    assert_eq!(documented, kept);
}
