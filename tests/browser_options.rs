//! `create()`'s options as the binding reads them from real JS values, run
//! by `wasm-pack test --headless --chrome`. The rules themselves are the
//! core's (`core::login_profile::Profile`, `core::session::REFRESH_*`),
//! tested natively; this checks the binding hands them what the app gave.
#![cfg(target_arch = "wasm32")]

use latchkey::browser::options::parse;
use latchkey::core::Error;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

fn refused(json: &str) -> Error {
    match parse(&options(json)) {
        Ok(_) => panic!("accepted: {json}"),
        Err(error) => error,
    }
}

const ATPROTO: &str = r#""profile":"atproto","clientId":"https://app.example/client-metadata.json","redirectUri":"https://app.example/cb","handleResolver":"https://resolver.example""#;

#[wasm_bindgen_test]
fn an_atproto_client_is_kept_under_the_namespace_with_par_dpop_and_its_default_scope() {
    let parsed = parse(&options(&format!("{{{ATPROTO}}}"))).unwrap();
    assert_eq!(parsed.issuer, "atproto");
    assert_eq!(parsed.scope, "atproto transition:generic");
    assert!(parsed.par && parsed.dpop && parsed.atproto.is_some());
}

#[wasm_bindgen_test]
fn an_atproto_client_given_any_issuer_is_refused() {
    for issuer in [r#""https://idp.example""#, "null", r#""""#, "42"] {
        let error = refused(&format!(r#"{{{ATPROTO},"issuer":{issuer}}}"#));
        assert_eq!(
            error.to_string(),
            "invalid option issuer: is not given with profile \"atproto\": it comes from the user's account",
            "{issuer}"
        );
    }
}

#[wasm_bindgen_test]
fn an_atproto_client_given_an_endpoint_par_or_dpop_is_refused() {
    for option in [
        r#""tokenEndpoint":"https://as.example/token""#,
        r#""pushedAuthorizationRequestEndpoint":null"#,
        r#""dpop":false"#,
        r#""par":true"#,
    ] {
        let error = refused(&format!("{{{ATPROTO},{option}}}"));
        let name = option.split('"').nth(1).unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "invalid option {name}: is not given with profile \"atproto\": the account's \
                 servers are resolved, with PAR and DPoP always on"
            )
        );
    }
}

#[wasm_bindgen_test]
fn an_openid_connect_client_given_a_resolution_option_is_refused() {
    let base =
        r#""issuer":"https://idp.example","clientId":"spa","redirectUri":"https://app.example/cb""#;
    for (option, name) in [
        (
            r#""handleResolver":"https://resolver.example""#,
            "handleResolver",
        ),
        (
            r#""plcDirectoryUrl":"https://plc.example""#,
            "plcDirectoryUrl",
        ),
    ] {
        let error = refused(&format!("{{{base},{option}}}"));
        assert_eq!(
            error.to_string(),
            format!("invalid option {name}: is for profile \"atproto\" clients")
        );
    }
}

#[wasm_bindgen_test]
fn an_openid_connect_client_needs_its_issuer_and_defaults_to_openid() {
    let base = r#""clientId":"spa","redirectUri":"https://app.example/cb""#;
    for issuer in ["", r#","issuer":null"#] {
        let error = refused(&format!("{{{base}{issuer}}}"));
        assert_eq!(error.to_string(), "invalid option issuer: is required");
    }
    let parsed = parse(&options(&format!(
        r#"{{{base},"issuer":"https://idp.example"}}"#
    )))
    .unwrap();
    assert_eq!(
        (parsed.issuer.as_str(), parsed.scope.as_str()),
        ("https://idp.example", "openid")
    );
    assert!(!parsed.par && !parsed.dpop);
    assert_eq!(
        (
            parsed.refresh_leeway_seconds,
            parsed.refresh_timeout_seconds
        ),
        (30, 10)
    );
}

#[wasm_bindgen_test]
fn seconds_options_are_read_as_numbers_and_checked() {
    let base =
        r#""issuer":"https://idp.example","clientId":"spa","redirectUri":"https://app.example/cb""#;
    let parsed = parse(&options(&format!(
        r#"{{{base},"refreshTimeoutSeconds":300}}"#
    )))
    .unwrap();
    assert_eq!(parsed.refresh_timeout_seconds, 300);
    for value in ["0", "\"10\"", "2.5"] {
        let error = refused(&format!(r#"{{{base},"refreshTimeoutSeconds":{value}}}"#));
        assert_eq!(error.code(), "invalid_option", "{value}");
    }
    let error = refused(&format!(r#"{{{base},"refreshLeewaySeconds":-1}}"#));
    assert!(
        error.to_string().contains("refreshLeewaySeconds"),
        "{error}"
    );
}

#[wasm_bindgen_test]
fn a_plain_http_redirect_uri_off_the_page_s_origin_is_refused() {
    // The test page is served on http://127.0.0.1:<port>.
    let page = web_sys::window().unwrap().location().origin().unwrap();
    let client = r#""issuer":"https://idp.example","clientId":"spa""#;
    let with = |redirect: &str, loopback: bool| {
        format!(r#"{{{client},"redirectUri":"{redirect}","allowInsecureLoopback":{loopback}}}"#)
    };
    let elsewhere = refused(&with("http://app.example/cb", true));
    assert_eq!(elsewhere.code(), "insecure_endpoint");
    let other_port = refused(&with("http://127.0.0.1:9/cb", false));
    assert_eq!(other_port.code(), "insecure_endpoint");
    assert!(parse(&options(&with("http://127.0.0.1:9/cb", true))).is_ok());
    assert!(parse(&options(&with(&format!("{page}/cb"), false))).is_ok());
}
