//! The AT Protocol resolution chain: one test per branch, against the fake
//! HTTP server that asserts each exact request.

use super::*;
use crate::core::fakes::{block_on, FakePlatform};
use crate::core::resolution::{
    authorization_server_metadata, resolve_login, verify_subject, AccountCheck,
};

const RESOLVER: &str = "https://resolver.example";
const PLC: &str = "https://plc.example";
const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
const PDS: &str = "https://pds.example";
const AS: &str = "https://auth.example";

fn resolver() -> Resolver {
    Resolver {
        handle_resolver: RESOLVER.into(),
        plc_directory: PLC.into(),
        allow_insecure_loopback: false,
    }
}

fn document(id: &str, handle: &str, pds: &str) -> String {
    format!(
        r##"{{"id":"{id}","alsoKnownAs":["at://{handle}"],"service":[{{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"{pds}"}}]}}"##
    )
}

fn as_metadata(issuer: &str) -> String {
    format!(
        r#"{{"issuer":"{issuer}","authorization_endpoint":"{AS}/oauth/authorize","token_endpoint":"{AS}/oauth/token",
        "pushed_authorization_request_endpoint":"{AS}/oauth/par","require_pushed_authorization_requests":true,
        "dpop_signing_alg_values_supported":["ES256"],"authorization_response_iss_parameter_supported":true}}"#
    )
}

fn expect_chain(platform: &FakePlatform, handle: &str) {
    platform.expect_get(
        &format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle={handle}"),
        200,
        &format!(r#"{{"did":"{DID}"}}"#),
    );
    platform.expect_get(&format!("{PLC}/{DID}"), 200, &document(DID, handle, PDS));
    platform.expect_get(
        &format!("{PDS}/.well-known/oauth-protected-resource"),
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":["{AS}"]}}"#),
    );
}

#[test]
fn handles_follow_the_grammar() {
    for good in [
        "alice.test",
        "a.bsky.social",
        "x-y.example.com",
        "xn--ls8h.test",
    ] {
        assert!(is_valid_handle(good), "{good}");
    }
    let long = format!("{}.test", "a".repeat(64));
    for bad in [
        "alice",
        "-a.test",
        "a-.test",
        "a..test",
        "a.1test",
        "a_b.test",
        "",
        long.as_str(),
    ] {
        assert!(!is_valid_handle(bad), "{bad}");
    }
}

#[test]
fn dids_follow_the_grammar_of_the_two_methods() {
    assert!(is_valid_did(DID));
    assert!(is_valid_did("did:web:example.com"));
    assert!(is_valid_did("did:web:localhost%3A2583"));
    for bad in [
        "did:plc:short",
        "did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ",
        "did:web:example.com/path",
        "did:web:localhost%3A",
        // A port only on localhost.
        "did:web:example.com%3A8443",
        "did:key:zQ3sh",
        "plc:ewvi7nxzyoun6zhxrhs64oiz",
    ] {
        assert!(!is_valid_did(bad), "{bad}");
    }
}

#[test]
fn what_the_user_typed_is_a_handle_or_a_did() {
    assert_eq!(
        parse_identifier(" @Alice.Test ").unwrap(),
        Identifier::Handle("alice.test".into())
    );
    assert_eq!(parse_identifier(DID).unwrap(), Identifier::Did(DID.into()));
    assert_eq!(
        parse_identifier("alice").unwrap_err().code(),
        "handle_not_found"
    );
    assert_eq!(
        parse_identifier("did:key:z").unwrap_err().code(),
        "did_resolution_failed"
    );
}

#[test]
fn a_handle_resolves_through_its_did_and_pds_to_the_authorization_server() {
    let platform = FakePlatform::at(0);
    expect_chain(&platform, "alice.test");
    platform.expect_get(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        &as_metadata(AS),
    );
    let (identity, metadata) =
        block_on(resolve_login(&platform, &resolver(), "@alice.test")).unwrap();
    assert_eq!(
        identity,
        Identity {
            did: DID.into(),
            handle: Some("alice.test".into()),
            pds: PDS.into()
        }
    );
    assert_eq!(metadata.issuer, AS);
}

#[test]
fn a_did_skips_handle_resolution() {
    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{PLC}/{DID}"),
        200,
        &document(DID, "alice.test", PDS),
    );
    platform.expect_get(
        &format!("{PDS}/.well-known/oauth-protected-resource"),
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":["{AS}"]}}"#),
    );
    platform.expect_get(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        &as_metadata(AS),
    );
    let (identity, _) = block_on(resolve_login(&platform, &resolver(), DID)).unwrap();
    assert_eq!(identity.handle.as_deref(), Some("alice.test"));
}

#[test]
fn a_handle_the_resolver_does_not_know_is_handle_not_found() {
    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle=nobody.test"),
        400,
        r#"{"error":"InvalidRequest","message":"Unable to resolve handle"}"#,
    );
    let error = block_on(resolve_login(&platform, &resolver(), "nobody.test")).unwrap_err();
    assert_eq!(error.code(), "handle_not_found");
}

#[test]
fn a_resolver_answering_a_malformed_did_is_handle_not_found() {
    let reply = HttpReply {
        status: 200,
        body: Ok(ResolveHandleReply {
            did: Some("did:plc:../../x".into()),
        }),
        retry_after_s: None,
        dpop_nonce: None,
        oauth_error: None,
    };
    assert_eq!(
        process_resolve_handle(reply).unwrap_err().code(),
        "handle_not_found"
    );
}

#[test]
fn a_document_that_does_not_claim_the_handle_is_refused() {
    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test"),
        200,
        &format!(r#"{{"did":"{DID}"}}"#),
    );
    platform.expect_get(
        &format!("{PLC}/{DID}"),
        200,
        &document(DID, "mallory.test", PDS),
    );
    let error = block_on(resolve_login(&platform, &resolver(), "alice.test")).unwrap_err();
    assert_eq!(error.code(), "handle_not_found");
}

/// A 200 answer whose body is `body` read as JSON.
fn json_reply<T: serde::de::DeserializeOwned>(body: &str) -> HttpReply<T> {
    HttpReply {
        status: 200,
        body: serde_json::from_str(body).map_err(|e| e.to_string()),
        retry_after_s: None,
        dpop_nonce: None,
        oauth_error: None,
    }
}

#[test]
fn a_document_for_another_did_or_without_a_pds_fails_resolution() {
    let other = document("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "alice.test", PDS);
    let no_pds = format!(r#"{{"id":"{DID}","alsoKnownAs":[],"service":[]}}"#);
    let bad_url = document(DID, "alice.test", "javascript:alert(1)");
    for body in [other, no_pds, bad_url] {
        let error = process_did_document(json_reply(&body), DID, false).unwrap_err();
        assert_eq!(error.code(), "did_resolution_failed", "{body}");
    }
}

#[test]
fn services_whose_type_or_endpoint_is_not_a_string_do_not_fail_the_document() {
    // DID Core allows a set for `type` and a map or a set for
    // `serviceEndpoint`; the PDS's are strings.
    let body = format!(
        r##"{{"id":"{DID}","alsoKnownAs":["at://alice.test"],"service":[
        {{"id":"#linked","type":["LinkedDomains","Other"],"serviceEndpoint":{{"origins":["https://a.example"]}}}},
        {{"id":"#list","type":"X","serviceEndpoint":["https://b.example",1,true,null]}},
        {{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"{PDS}"}}]}}"##
    );
    let identity = process_did_document(json_reply(&body), DID, false).unwrap();
    assert_eq!(identity.pds, PDS);
}

#[test]
fn a_did_web_document_is_at_its_hosts_well_known_path() {
    let loopback = Resolver {
        allow_insecure_loopback: true,
        ..resolver()
    };
    assert_eq!(
        did_document_url(&resolver(), "did:web:example.com").unwrap(),
        "https://example.com/.well-known/did.json"
    );
    assert_eq!(
        did_document_url(&loopback, "did:web:localhost%3A2583").unwrap(),
        "http://localhost:2583/.well-known/did.json"
    );
    assert_eq!(
        did_document_url(&loopback, "did:web:alice.localhost").unwrap(),
        "http://alice.localhost/.well-known/did.json"
    );
    for did in [
        "did:web:localhost%3A2583",
        "did:web:localhost",
        "did:web:alice.localhost",
        // Any case: the browser lowercases the host, and still goes there.
        "did:web:alice.LOCALHOST",
        "did:web:LocalHost",
    ] {
        let error = did_document_url(&resolver(), did).unwrap_err();
        assert_eq!(
            error.to_string(),
            "DID resolution failed: a did:web on a loopback host is for \
             testing (allowInsecureLoopback)",
            "loopback only when allowed"
        );
    }
}

#[test]
fn a_pds_without_authorization_servers_is_pds_metadata_invalid() {
    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{PLC}/{DID}"),
        200,
        &document(DID, "alice.test", PDS),
    );
    platform.expect_get(
        &format!("{PDS}/.well-known/oauth-protected-resource"),
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":[]}}"#),
    );
    let error = block_on(verify_subject(
        &platform,
        &resolver(),
        DID,
        AS,
        AccountCheck::ServerOnly,
    ))
    .unwrap_err();
    assert_eq!(error.code(), "pds_metadata_invalid");
}

#[test]
fn a_pds_url_with_a_path_is_refused_before_its_metadata_is_asked_for() {
    // `/~mallory?x=` on a shared host: its metadata would be asked for
    // where a tenant may answer, and the token sent to the whole origin.
    let platform = FakePlatform::at(0);
    let on_a_path = "https://shared.example/~mallory";
    platform.expect_get(
        &format!("{PLC}/{DID}"),
        200,
        &document(DID, "alice.test", on_a_path),
    );
    let resolver = resolver();
    let check = verify_subject(&platform, &resolver, DID, AS, AccountCheck::ServerOnly);
    assert_eq!(block_on(check).unwrap_err().code(), "did_resolution_failed");
}

#[test]
fn pds_metadata_about_another_resource_or_none_is_pds_metadata_invalid() {
    for metadata in [
        format!(r#"{{"resource":"https://elsewhere.example","authorization_servers":["{AS}"]}}"#),
        format!(r#"{{"authorization_servers":["{AS}"]}}"#),
    ] {
        let platform = FakePlatform::at(0);
        platform.expect_get(
            &format!("{PLC}/{DID}"),
            200,
            &document(DID, "alice.test", PDS),
        );
        platform.expect_get(
            &format!("{PDS}/.well-known/oauth-protected-resource"),
            200,
            &metadata,
        );
        let resolver = resolver();
        let check = verify_subject(&platform, &resolver, DID, AS, AccountCheck::ServerOnly);
        assert_eq!(
            block_on(check).unwrap_err().code(),
            "pds_metadata_invalid",
            "{metadata}"
        );
    }
}

#[test]
fn metadata_naming_an_issuer_that_is_not_its_origin_is_issuer_mismatch() {
    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        &as_metadata("https://evil.example"),
    );
    let error = block_on(authorization_server_metadata(&platform, AS)).unwrap_err();
    assert_eq!(error.code(), "issuer_mismatch");
}

#[test]
fn an_authorization_server_with_a_path_is_refused() {
    let platform = FakePlatform::at(0); // nothing fetched
    let error = block_on(authorization_server_metadata(
        &platform,
        "https://auth.example/x",
    ))
    .unwrap_err();
    assert_eq!(error.code(), "pds_metadata_invalid");
}

#[test]
fn an_authorization_server_without_par_or_es256_dpop_is_unusable() {
    for (from, to) in [
        (
            r#""pushed_authorization_request_endpoint":"https://auth.example/oauth/par","#,
            "",
        ),
        (r#"["ES256"]"#, r#"["RS256"]"#),
    ] {
        let platform = FakePlatform::at(0);
        platform.expect_get(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            &as_metadata(AS).replace(from, to),
        );
        let error = block_on(authorization_server_metadata(&platform, AS)).unwrap_err();
        assert_eq!(error.code(), "discovery_failed", "{from}");
    }
}

#[test]
fn the_subject_must_be_an_account_whose_pds_names_this_server() {
    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{PLC}/{DID}"),
        200,
        &document(DID, "alice.test", PDS),
    );
    platform.expect_get(
        &format!("{PDS}/.well-known/oauth-protected-resource"),
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":["https://other.example"]}}"#),
    );
    let error = block_on(verify_subject(
        &platform,
        &resolver(),
        DID,
        AS,
        AccountCheck::ServerOnly,
    ))
    .unwrap_err();
    assert_eq!(error.code(), "issuer_mismatch");

    let platform = FakePlatform::at(0);
    platform.expect_get(
        &format!("{PLC}/{DID}"),
        200,
        &document(DID, "alice.test", PDS),
    );
    platform.expect_get(
        &format!("{PDS}/.well-known/oauth-protected-resource"),
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":["{AS}"]}}"#),
    );
    let identity = block_on(verify_subject(
        &platform,
        &resolver(),
        DID,
        AS,
        AccountCheck::ServerOnly,
    ))
    .unwrap();
    assert_eq!(identity.pds, PDS);
}

#[test]
fn a_subject_that_is_not_a_did_is_refused_before_any_request() {
    let platform = FakePlatform::at(0);
    let error = block_on(verify_subject(
        &platform,
        &resolver(),
        "alice",
        AS,
        AccountCheck::ServerOnly,
    ))
    .unwrap_err();
    assert_eq!(error.code(), "did_resolution_failed");
}

#[test]
fn a_pds_or_an_authorization_server_on_loopback_only_when_allowed() {
    // A did:plc document naming a PDS on the user's own machine, over https.
    for pds in [
        "https://127.0.0.1:8443",
        "https://alice.localhost",
        "https://[::1]",
        "https://[::ffff:127.0.0.1]",
        "https://0.0.0.0",
        "https://[::]",
    ] {
        let body = document(DID, "alice.test", pds);
        let error = process_did_document(json_reply(&body), DID, false).unwrap_err();
        assert_eq!(error.code(), "did_resolution_failed", "{pds}");
        assert!(
            error.to_string().contains("allowInsecureLoopback"),
            "{error}"
        );
        assert_eq!(
            process_did_document(json_reply(&body), DID, true)
                .unwrap()
                .pds,
            pds
        );
    }
    // A PDS naming an authorization server there.
    let metadata = |server: &str| {
        json_reply(&format!(
            r#"{{"resource":"{PDS}","authorization_servers":["{server}"]}}"#
        ))
    };
    for server in ["https://localhost:9443", "https://AUTH.localhost"] {
        let error = process_protected_resource(metadata(server), PDS, false).unwrap_err();
        assert_eq!(error.code(), "pds_metadata_invalid", "{server}");
        assert!(process_protected_resource(metadata(server), PDS, true).is_ok());
    }
    assert!(process_protected_resource(metadata("https://auth.example"), PDS, false).is_ok());
}
