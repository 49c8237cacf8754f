//! The refresh machinery's browser adapters in headless Chromium: the Web
//! Lock guard, the BroadcastChannel, the custom refresh call, and the
//! request/response handling of `fetchWithAuth`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Reflect};
use latchkey::browser::authorized_fetch::{endpoint_key, prepare, rfc6750_expired};
use latchkey::browser::channel::{read_message, Hearing, SessionChannel};
use latchkey::browser::dpop_keys::BrowserDpopKeys;
use latchkey::browser::locks::{lock_manager, WebSessionLock};
use latchkey::browser::platform::BrowserPlatform;
use latchkey::browser::refresh::BrowserRefresh;
use latchkey::core::origin::TokenPlacement;
use latchkey::core::ports::{Broadcast, RefreshRequest, RefreshTransport, SessionLock, Timer};
use latchkey::core::race::within;
use latchkey::core::refresh_answer::RefreshAnswer;
use latchkey::core::session::{Session, SessionMessage};
use latchkey::core::{AccessToken, Error, RefreshToken, TokenSet};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Headers, Request, RequestInit, Response, ResponseInit};

wasm_bindgen_test_configure!(run_in_browser);

async fn sleep(ms: u32) {
    BrowserPlatform::within(10_000).sleep(ms).await;
}

/// What `navigator.locks.query()` reports for `name`: (held, pending).
async fn lock_state(name: &str) -> (usize, usize) {
    let locks = web_sys::window().unwrap().navigator().locks();
    let query: Function = Reflect::get(&locks, &"query".into()).unwrap().into();
    let pending = query.call0(&locks).unwrap();
    let snapshot = JsFuture::from(js_sys::Promise::from(pending))
        .await
        .unwrap();
    let count = |field: &str| {
        let list: js_sys::Array = Reflect::get(&snapshot, &field.into()).unwrap().into();
        list.iter()
            .filter(|l| {
                Reflect::get(l, &"name".into())
                    .unwrap()
                    .as_string()
                    .as_deref()
                    == Some(name)
            })
            .count()
    };
    (count("held"), count("pending"))
}

#[wasm_bindgen_test]
async fn the_lock_is_held_by_the_guard_and_released_when_it_drops() {
    let name = "latchkey-test:guard";
    let lock = WebSessionLock::shared(lock_manager().expect("navigator.locks"), name);
    assert!(lock.is_shared());
    let guard = lock.acquire().await.unwrap();
    assert_eq!(lock_state(name).await, (1, 0));
    // A second acquisition waits while the guard lives.
    let second = within(lock.acquire(), sleep(100)).await;
    assert!(second.is_none(), "granted while held");
    drop(guard);
    let third = within(lock.acquire(), sleep(2_000)).await;
    assert!(third.is_some(), "released by the drop");
    drop(third);
    sleep(10).await;
    assert_eq!(lock_state(name).await, (0, 0));
}

#[wasm_bindgen_test]
async fn a_waiter_that_gives_up_leaves_the_queue() {
    let name = "latchkey-test:abandon";
    let lock = WebSessionLock::shared(lock_manager().expect("navigator.locks"), name);
    let holder = lock.acquire().await.unwrap();
    assert!(within(lock.acquire(), sleep(50)).await.is_none());
    sleep(10).await;
    assert_eq!(
        lock_state(name).await,
        (1, 0),
        "the abandoned request was withdrawn"
    );
    drop(holder);
    sleep(10).await;
    assert_eq!(lock_state(name).await, (0, 0), "nobody holds it afterwards");
}

#[wasm_bindgen_test]
async fn without_a_lock_manager_the_lock_is_only_this_tabs() {
    let lock = WebSessionLock::tab_only();
    assert!(!lock.is_shared());
    let _a = lock.acquire().await.unwrap();
    let _b = lock.acquire().await.unwrap();
}

fn sample_tokens() -> TokenSet {
    TokenSet {
        access_token: AccessToken::new("at-1".into()),
        token_type: "Bearer".into(),
        expires_at_ms: Some(1_900_000_000_123),
        refresh_token: Some(RefreshToken::new("rt-1".into())),
        scope: Some("openid api".into()),
        id_token: None,
        refresh_expires_at_ms: None,
        issued_at_ms: 1_899_999_000_456,
        login_at_ms: 1_899_999_000_456,
        rotation: 0,
        dpop_jkt: None,
        atproto: None,
    }
}

#[wasm_bindgen_test]
async fn messages_reach_other_tabs_intact_and_strangers_are_ignored() {
    let name = "latchkey-test:channel";
    let received: Rc<RefCell<Vec<SessionMessage>>> = Rc::default();
    let sink = Rc::clone(&received);
    let _listener = SessionChannel::open(name, move |m| sink.borrow_mut().push(m));
    let sender = SessionChannel::open(name, |_| panic!("a tab hears its own message"));
    let message = SessionMessage::Tokens {
        tokens: sample_tokens(),
        unsaved: false,
    };
    sender.publish(&message);
    // Something that is not ours on the same channel.
    let raw = web_sys::BroadcastChannel::new(name).unwrap();
    raw.post_message(&JsValue::from_str("hello")).unwrap();
    for _ in 0..50 {
        if !received.borrow().is_empty() {
            break;
        }
        sleep(10).await;
    }
    sleep(20).await;
    assert_eq!(*received.borrow(), vec![message]);
}

#[wasm_bindgen_test]
fn every_message_shape_reads_back_and_anything_else_is_ignored() {
    for message in [
        SessionMessage::Tokens {
            tokens: sample_tokens(),
            unsaved: false,
        },
        SessionMessage::Ended {
            reason: latchkey::core::session::EndReason::SignedOut,
            login_at_ms: None,
        },
        SessionMessage::Ended {
            reason: latchkey::core::session::EndReason::Expired,
            login_at_ms: Some(1_900_000_000_000),
        },
        SessionMessage::BackOff {
            until: 1_900_000_030_000,
            status: 503,
            error: "temporarily_unavailable".into(),
            seconds: 30,
        },
    ] {
        let sent = serde_wasm_bindgen::to_value(&message).unwrap();
        assert_eq!(read_message(&sent), Some(message));
    }
    for stranger in [
        "null",
        "\"tokens\"",
        "{}",
        "{\"type\":\"tokens\"}",
        "{\"type\":\"tokens\",\"tokens\":{\"access_token\":1}}",
        "{\"type\":\"ended\",\"reason\":\"nope\"}",
        "{\"type\":\"other\",\"reason\":\"signedOut\"}",
        "[\"ended\",\"signedOut\"]",
        "{\"type\":\"backOff\",\"until\":1,\"status\":503,\"error\":\"x\"}",
        "{\"type\":\"backOff\",\"until\":-1,\"status\":503,\"error\":\"x\",\"seconds\":2}",
    ] {
        let value = js_sys::JSON::parse(stranger).unwrap();
        assert_eq!(read_message(&value), None, "{stranger}");
    }
}

/// The core's request to refresh `sample_tokens()` at the client's endpoint.
fn request() -> RefreshRequest {
    RefreshRequest {
        base: sample_tokens(),
        endpoint: None,
        abort_after_ms: 1_000,
    }
}

fn custom(body: &str) -> BrowserRefresh {
    BrowserRefresh {
        token_endpoint: "https://idp.example/token".into(),
        client_id: "spa".into(),
        custom: Some(Function::new_with_args("ctx", body)),
        abort_after_ms: 1_000,
        dpop_keys: std::rc::Rc::new(BrowserDpopKeys::in_memory("https://idp.example", "spa")),
        nonces: std::rc::Rc::default(),
        atproto: None,
    }
}

#[wasm_bindgen_test]
async fn a_custom_refresh_gets_the_refresh_token_and_its_answer_is_a_bearer_response() {
    let transport = custom(
        "if (ctx.refreshToken !== 'rt-1' || ctx.clientId !== 'spa') throw new Error('bad ctx');
         return Promise.resolve({ access_token: 'at-2', refresh_token: 'rt-2', expires_in: 60 });",
    );
    let answer = transport.refresh(&request()).await.unwrap();
    assert!(matches!(answer, RefreshAnswer::App(Ok(_))), "{answer:?}");
    // Read by the core as the session's kind.
    let fresh = answer.token_set(1_000, &sample_tokens()).unwrap();
    assert_eq!(fresh.token_type, "Bearer");
    assert_eq!(fresh.access_token.secret(), "at-2");
    assert_eq!(fresh.refresh_token.unwrap().secret(), "rt-2");
}

#[wasm_bindgen_test]
async fn a_custom_refresh_that_throws_is_refresh_failed_and_an_error_answer_is_the_servers() {
    let thrown = custom("throw new TypeError('offline')")
        .refresh(&request())
        .await
        .unwrap_err();
    assert_eq!(thrown.code(), "refresh_failed");
    assert!(thrown.to_string().contains("offline"));
    let refused = custom("return { error: 'invalid_grant' }")
        .refresh(&request())
        .await
        .unwrap();
    let error = refused.token_set(1_000, &sample_tokens()).unwrap_err();
    assert_eq!(error.code(), "invalid_grant");
    assert!(matches!(error, Error::TokenEndpoint { status: 400, .. }));
    let unreadable = custom("return 42").refresh(&request()).await.unwrap();
    let error = unreadable.token_set(1_000, &sample_tokens()).unwrap_err();
    assert_eq!(error.code(), "malformed_token_response");
}

fn response(status: u16, challenge: Option<&str>) -> Response {
    let headers = Headers::new().unwrap();
    if let Some(challenge) = challenge {
        headers.set("WWW-Authenticate", challenge).unwrap();
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    Response::new_with_opt_str_and_init(None, &init).unwrap()
}

#[wasm_bindgen_test]
fn the_default_expired_test_follows_rfc6750() {
    let bearer = |status, challenge| rfc6750_expired(&response(status, challenge), "Bearer");
    assert!(bearer(401, None));
    assert!(bearer(401, Some("Bearer")));
    assert!(bearer(
        401,
        Some(r#"Bearer error="invalid_token", error_description="expired""#)
    ));
    assert!(!bearer(401, Some(r#"Bearer error="insufficient_scope""#)));
    assert!(!bearer(403, None));
    assert!(!bearer(200, None));
    // The browser's joined value of an API accepting both schemes: the
    // challenge of the scheme sent decides.
    let both = r#"Bearer realm="api", DPoP error="use_dpop_nonce""#;
    assert!(bearer(401, Some(both)));
    assert!(!rfc6750_expired(&response(401, Some(both)), "DPoP"));
}

/// A POST request to `url` with a text body.
fn post(url: &str, body: &str) -> Request {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    Request::new_with_str_and_init(url, &init).unwrap()
}

async fn text(request: &Request) -> String {
    JsFuture::from(request.text().unwrap())
        .await
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
async fn the_callers_request_is_copied_neither_modified_nor_consumed() {
    let original = post("https://api.example/x", "payload");
    let input: &JsValue = original.as_ref();
    let outgoing = prepare(input, &JsValue::UNDEFINED)
        .unwrap()
        .place(TokenPlacement::Header)
        .await
        .unwrap();
    assert!(outgoing.can_retry());
    let first = outgoing.with_token("t1").unwrap();
    let retry = outgoing.with_token("t2").unwrap();
    assert_eq!(
        first.headers().get("Authorization").unwrap().unwrap(),
        "Bearer t1"
    );
    assert_eq!(
        retry.headers().get("Authorization").unwrap().unwrap(),
        "Bearer t2"
    );
    assert_eq!(text(&first).await, "payload");
    assert_eq!(text(&retry).await, "payload");
    assert_eq!(original.headers().get("Authorization").unwrap(), None);
    assert!(!original.body_used());
    assert_eq!(text(&original).await, "payload");
}

#[wasm_bindgen_test]
async fn a_streaming_body_is_not_kept_for_a_retry() {
    let stream = web_sys::ReadableStream::new().unwrap();
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&stream);
    let _ = Reflect::set(&init, &"duplex".into(), &"half".into());
    let input: JsValue = "https://api.example/upload".into();
    let outgoing = prepare(&input, &init.clone().into())
        .unwrap()
        .place(TokenPlacement::Header)
        .await
        .unwrap();
    assert!(!outgoing.can_retry());
    // The same, given as a `Request` (whose body reads as a stream either way).
    let streamed = Request::new_with_str_and_init("https://api.example/upload", &init).unwrap();
    let prepared = prepare(streamed.as_ref(), &JsValue::UNDEFINED).unwrap();
    let outgoing = prepared.place(TokenPlacement::Header).await.unwrap();
    assert!(!outgoing.can_retry());
    assert!(!streamed.body_used());
}

#[wasm_bindgen_test]
async fn the_query_token_goes_in_a_new_url_with_the_same_method_headers_and_body() {
    let original = post("https://api.example/x?q=1&access_token=old", "payload");
    original.headers().set("X-Trace", "7").unwrap();
    let outgoing = prepare(original.as_ref(), &JsValue::UNDEFINED)
        .unwrap()
        .place(TokenPlacement::Query)
        .await
        .unwrap();
    assert!(outgoing.can_retry());
    for token in ["t1", "t2"] {
        let request = outgoing.with_token(token).unwrap();
        assert_eq!(
            request.url(),
            format!("https://api.example/x?q=1&access_token={token}")
        );
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.headers().get("X-Trace").unwrap().as_deref(),
            Some("7")
        );
        assert_eq!(request.headers().get("Authorization").unwrap(), None);
        assert_eq!(text(&request).await, "payload");
    }
    assert!(!original.body_used());
}

/// Whether `url` names the endpoint `endpoint` once parsed (the keys
/// `core::call_target` compares).
fn same_endpoint(url: &str, endpoint: &str) -> bool {
    let key = endpoint_key(url);
    key.is_some() && key == endpoint_key(endpoint)
}

#[wasm_bindgen_test]
fn endpoint_keys_are_origin_and_path_as_new_url_normalises_them() {
    let token = "https://idp.example/token";
    assert!(same_endpoint("https://idp.example/token", token));
    assert!(same_endpoint("https://idp.example/token?x=1", token));
    assert!(!same_endpoint(
        "https://idp.example/token/revocation",
        token
    ));
    assert!(!same_endpoint("https://api.example/token", token));
    // Host case, default port, dot segments.
    assert!(same_endpoint(
        "https://idp.example/token",
        "https://IdP.example:443/token"
    ));
    assert!(same_endpoint("https://idp.example/a/../token#f", token));
    assert!(!same_endpoint("http://idp.example/token", token));
    assert!(!same_endpoint("https://idp.example:8443/token", token));
    assert_eq!(endpoint_key("not a url"), None);
}

#[wasm_bindgen_test]
fn what_create_hears_before_the_session_exists_is_given_to_it_a_sign_out_heard_last_too() {
    let set = sample_tokens();
    let now = set.login_at_ms + 10;
    let hearing = Hearing::default();
    // More messages than are held (another set's refusals, nothing to this
    // one), then the sign-out: the newest are kept.
    for rotation in 1..=100 {
        let other = SessionMessage::Refused {
            login_at_ms: set.login_at_ms + 1,
            rotation,
        };
        hearing.hear(other, now);
    }
    let signed_out = SessionMessage::Ended {
        reason: latchkey::core::session::EndReason::SignedOut,
        login_at_ms: Some(set.login_at_ms),
    };
    hearing.hear(signed_out, now);
    let session = Rc::new(Session::new(Some(set)));
    hearing.deliver_to(&session);
    assert!(
        session.tokens().is_none(),
        "the sign-out reached the session"
    );

    // From then on, straight to it.
    let later = sample_tokens();
    let after = Rc::new(Session::new(None));
    let hearing = Hearing::default();
    hearing.deliver_to(&after);
    hearing.hear(
        SessionMessage::Tokens {
            tokens: later,
            unsaved: false,
        },
        now,
    );
    assert!(after.tokens().is_some());
}
