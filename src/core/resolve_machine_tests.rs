//! [`Resolve`] fed by hand: which document each chain asks for next, and
//! where each answer's failure ends it.

use super::*;
use crate::core::atproto_login::tests::{resolver, AS, DID, PLC, RESOLVER};
use crate::core::fakes::{raw_reply, read_body};

// The account's PDS, with a trailing slash the login's result drops.
const PDS: &str = "https://pds.example/";

fn reply<T: serde::de::DeserializeOwned>(status: u16, body: &str) -> Result<HttpReply<T>, Error> {
    Ok(raw_reply(status, body, None).read_body(read_body))
}

fn document(handle: &str) -> Fed {
    Fed::DidDocument(reply(
        200,
        &format!(
            r##"{{"id":"{DID}","alsoKnownAs":["at://{handle}"],"service":[{{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"{PDS}"}}]}}"##
        ),
    ))
}

fn names(issuer: &str) -> Fed {
    Fed::ProtectedResource(reply(
        200,
        &format!(r#"{{"resource":"{PDS}","authorization_servers":["{issuer}"]}}"#),
    ))
}

fn server_metadata() -> Fed {
    Fed::ServerMetadata(reply(
        200,
        &format!(
            r#"{{"issuer":"{AS}","authorization_endpoint":"{AS}/oauth/authorize","token_endpoint":"{AS}/oauth/token",
            "pushed_authorization_request_endpoint":"{AS}/oauth/par",
            "dpop_signing_alg_values_supported":["ES256"],"authorization_response_iss_parameter_supported":true}}"#
        ),
    ))
}

fn asks(step: Step) -> Need {
    match step {
        Step::Do(need) => need,
        Step::Done(outcome) => panic!("expected a fetch, got the end: {outcome:?}"),
    }
}

fn done(step: Step) -> Result<Resolved, Error> {
    match step {
        Step::Done(outcome) => outcome,
        Step::Do(need) => panic!("expected the end, got {need:?}"),
    }
}

#[test]
fn a_handle_goes_resolver_then_document_then_pds_then_server() {
    let (mut machine, step) = Resolve::login(&resolver(), "@Alice.Test");
    let handle_url =
        format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test");
    assert_eq!(asks(step), Need::Handle(handle_url));
    let named = Fed::Handle(reply(200, &format!(r#"{{"did":"{DID}"}}"#)));
    assert_eq!(
        asks(machine.on(named)),
        Need::DidDocument(format!("{PLC}/{DID}"))
    );
    assert_eq!(
        asks(machine.on(document("alice.test"))),
        Need::ProtectedResource("https://pds.example/.well-known/oauth-protected-resource".into())
    );
    assert_eq!(
        asks(machine.on(names(AS))),
        Need::ServerMetadata(format!("{AS}/.well-known/oauth-authorization-server"))
    );
    match done(machine.on(server_metadata())) {
        Ok(Resolved::Login(identity, metadata)) => {
            assert_eq!(identity.did, DID);
            assert_eq!(identity.handle.as_deref(), Some("alice.test"));
            assert_eq!(
                identity.pds, "https://pds.example",
                "the PDS without its slash"
            );
            assert_eq!(metadata.issuer, AS);
        }
        other => panic!("expected a login's account, got {other:?}"),
    }
}

#[test]
fn a_did_starts_at_its_document() {
    let (_, step) = Resolve::login(&resolver(), DID);
    assert_eq!(asks(step), Need::DidDocument(format!("{PLC}/{DID}")));
}

#[test]
fn a_document_that_does_not_claim_the_typed_handle_ends_the_login() {
    let (mut machine, _) = Resolve::login(&resolver(), "alice.test");
    machine.on(Fed::Handle(reply(200, &format!(r#"{{"did":"{DID}"}}"#))));
    let outcome = done(machine.on(document("mallory.test")));
    assert_eq!(outcome.unwrap_err().code(), "handle_not_found");
}

#[test]
fn a_login_from_a_did_takes_the_documents_handle_as_it_is() {
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    let step = machine.on(document("whoever.test"));
    assert!(matches!(asks(step), Need::ProtectedResource(_)));
}

#[test]
fn what_is_neither_a_handle_nor_a_did_asks_nothing() {
    let (_, step) = Resolve::login(&resolver(), "alice");
    assert_eq!(done(step).unwrap_err().code(), "handle_not_found");
}

#[test]
fn each_answers_failure_ends_the_chain_with_its_own_error() {
    let (mut machine, _) = Resolve::login(&resolver(), "alice.test");
    let outcome = done(machine.on(Fed::Handle(reply(404, "{}"))));
    assert_eq!(outcome.unwrap_err().code(), "handle_not_found");

    let (mut machine, _) = Resolve::login(&resolver(), DID);
    let outcome = done(machine.on(Fed::DidDocument(reply(404, "{}"))));
    assert_eq!(outcome.unwrap_err().code(), "did_resolution_failed");

    let (mut machine, _) = Resolve::login(&resolver(), DID);
    machine.on(document("alice.test"));
    let outcome = done(machine.on(Fed::ProtectedResource(reply(200, "{}"))));
    assert_eq!(outcome.unwrap_err().code(), "pds_metadata_invalid");

    let network = Error::Network {
        reason: "offline".into(),
    };
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    let outcome = done(machine.on(Fed::DidDocument(Err(network.clone()))));
    assert_eq!(outcome.unwrap_err(), network, "a transport error as it is");
}

#[test]
fn a_pds_naming_a_server_that_is_not_an_origin_asks_nothing_more() {
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    machine.on(document("alice.test"));
    let outcome = done(machine.on(names("https://auth.example/path")));
    assert_eq!(outcome.unwrap_err().code(), "pds_metadata_invalid");
}

#[test]
fn an_accounts_check_ends_at_the_pds_naming_the_expected_server() {
    let (mut machine, step) = Resolve::account(&resolver(), DID, AS, AccountCheck::ServerOnly);
    assert_eq!(asks(step), Need::DidDocument(format!("{PLC}/{DID}")));
    machine.on(document("alice.test"));
    match done(machine.on(names(AS))) {
        Ok(Resolved::Account(identity)) => assert_eq!(identity.did, DID),
        other => panic!("expected the account, got {other:?}"),
    }
}

#[test]
fn after_a_code_exchange_the_accounts_handle_must_name_it_back() {
    let handle_url =
        format!("{RESOLVER}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test");
    let check = |answer: Fed| {
        let (mut machine, _) = Resolve::account(&resolver(), DID, AS, AccountCheck::WithHandle);
        machine.on(document("alice.test"));
        assert_eq!(
            asks(machine.on(names(AS))),
            Need::Handle(handle_url.clone())
        );
        match done(machine.on(answer)) {
            Ok(Resolved::Account(identity)) => identity.handle,
            other => panic!("expected the account, got {other:?}"),
        }
    };
    let names_back = Fed::Handle(reply(200, &format!(r#"{{"did":"{DID}"}}"#)));
    assert_eq!(check(names_back).as_deref(), Some("alice.test"));
    let another = Fed::Handle(reply(200, r#"{"did":"did:plc:someoneelse234567abcdefg"}"#));
    assert_eq!(check(another), None);
    // Unresolvable or redirected: no handle, the account stands.
    assert_eq!(check(Fed::Handle(reply(404, "{}"))), None);
    assert_eq!(check(Fed::Handle(reply(302, "{}"))), None);
}

#[test]
fn before_a_refresh_the_account_check_asks_nothing_of_the_handle() {
    let (mut machine, _) = Resolve::account(&resolver(), DID, AS, AccountCheck::ServerOnly);
    machine.on(document("alice.test"));
    assert!(matches!(
        done(machine.on(names(AS))),
        Ok(Resolved::Account(_))
    ));
}

#[test]
fn an_account_whose_pds_names_another_server_is_issuer_mismatch() {
    let (mut machine, _) = Resolve::account(&resolver(), DID, AS, AccountCheck::ServerOnly);
    machine.on(document("alice.test"));
    let outcome = done(machine.on(names("https://other.example")));
    assert_eq!(outcome.unwrap_err(), Error::IssuerMismatch);
}

#[test]
fn an_account_check_refuses_a_sub_that_is_not_a_did_before_any_fetch() {
    let (_, step) = Resolve::account(&resolver(), "alice", AS, AccountCheck::ServerOnly);
    assert_eq!(done(step).unwrap_err().code(), "did_resolution_failed");
}

#[test]
fn a_servers_metadata_is_asked_for_and_checked() {
    let (mut machine, step) = Resolve::server(AS);
    assert_eq!(
        asks(step),
        Need::ServerMetadata(format!("{AS}/.well-known/oauth-authorization-server"))
    );
    assert!(matches!(
        done(machine.on(server_metadata())),
        Ok(Resolved::Server(_))
    ));
    let (_, step) = Resolve::server("https://auth.example/not-an-origin");
    assert_eq!(done(step).unwrap_err().code(), "pds_metadata_invalid");
}

#[test]
fn an_answer_out_of_order_ends_the_chain() {
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    let outcome = done(machine.on(names(AS)));
    assert_eq!(outcome.unwrap_err().code(), "did_resolution_failed");
}

#[test]
fn a_redirect_at_any_document_ends_the_chain_unfollowed_with_the_stages_error() {
    // Status 0 is the browser's opaque redirect (the `GET`s follow none). A
    // redirect is permanent: never `network_error`, which asks for a retry.
    let redirected = |error: Error, code: &str| {
        assert_eq!(error.code(), code);
        assert!(
            error
                .to_string()
                .ends_with("answered with a redirect, which identity resolution does not follow"),
            "{error}"
        );
    };
    for status in [0, 301, 302, 307, 308] {
        let (mut machine, _) = Resolve::login(&resolver(), "alice.test");
        let error = done(machine.on(Fed::Handle(reply(status, "{}")))).unwrap_err();
        redirected(error, "handle_not_found");
    }
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    let error = done(machine.on(Fed::DidDocument(reply(0, "")))).unwrap_err();
    redirected(error, "did_resolution_failed");
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    machine.on(document("alice.test"));
    let error = done(machine.on(Fed::ProtectedResource(reply(302, "")))).unwrap_err();
    redirected(error, "pds_metadata_invalid");
    let (mut machine, _) = Resolve::server(AS);
    let error = done(machine.on(Fed::ServerMetadata(reply(0, "")))).unwrap_err();
    redirected(error, "discovery_failed");
    // Any other refusal keeps its status.
    let (mut machine, _) = Resolve::login(&resolver(), DID);
    let error = done(machine.on(Fed::DidDocument(reply(404, "")))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "DID resolution failed: the DID document answered HTTP 404"
    );
}
