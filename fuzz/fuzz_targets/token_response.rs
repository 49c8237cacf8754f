//! The token endpoint's answer: a JSON body parsed as a `RawTokenResponse`
//! (serde_json standing in for `JSON.parse` + `serde_wasm_bindgen`), then
//! turned into a `TokenSet` by `token_set_from_reply` /
//! `TokenSet::from_response`, at several statuses, clocks, with and
//! without a previous set (login and refresh).
//!
//! Input: the response body, any bytes.
//!
//! Properties: never panics; the outcome is what an independent model of
//! the documented rules predicts (error precedence, Bearer only, absolute
//! expiry with overflow refused, refresh token and scope carried over);
//! a token set round-trips through its persisted JSON form; and no printed
//! text (`Debug` of the response and of the result, an error's message)
//! depends on the token values.
#![no_main]

use libfuzzer_sys::fuzz_target;

use latchkey::core::ports::{HttpReply, Json};
use latchkey::core::secret::{AccessToken, IdToken, RefreshToken};
use latchkey::core::token::token_set_from_reply;
use latchkey::core::token::MAX_LIFETIME_SECONDS;
use latchkey::core::{Error, Lifetime, RawTokenResponse, TokenSet};
use latchkey_fuzz::{different_from, SerdeJson, NOW_MS};

const STATUSES: [u16; 5] = [200, 201, 400, 401, 503];
const CLOCKS: [u64; 3] = [0, NOW_MS, u64::MAX - 1_000];

fn previous() -> TokenSet {
    TokenSet {
        access_token: AccessToken::new("previous-access-token".into()),
        token_type: "Bearer".into(),
        expires_at_ms: Some(NOW_MS - 1),
        refresh_token: Some(RefreshToken::new("previous-refresh-token".into())),
        scope: Some("openid offline_access api".into()),
        id_token: Some(IdToken::new("previous.id.token".into())),
        refresh_expires_at_ms: Some(NOW_MS + 86_400_000),
        issued_at_ms: NOW_MS - 3_600_000,
        login_at_ms: NOW_MS - 3_600_000,
        rotation: 4,
        dpop_jkt: None,
        atproto: None,
    }
}

/// A lifetime in whole seconds, per `from_response`'s documentation: a
/// finite number, or a numeric string (surrounding whitespace allowed), in
/// `0..=MAX_LIFETIME_SECONDS`, fraction dropped.
fn seconds(lifetime: &Lifetime) -> Option<u64> {
    let n = match lifetime {
        Lifetime::Number(n) => *n,
        Lifetime::Text(text) => text.trim().parse::<f64>().ok()?,
    };
    if n.is_finite() && (0.0..=MAX_LIFETIME_SECONDS as f64).contains(&n) {
        Some(n.trunc() as u64)
    } else {
        None
    }
}

fn absolute(lifetime: &Lifetime, now_ms: u64) -> Option<u64> {
    now_ms.checked_add(seconds(lifetime)?.checked_mul(1000)?)
}

fn malformed() -> Error {
    Error::MalformedTokenResponse {
        reason: String::new(),
    }
}

/// The documented rules, in order, written independently.
fn model(
    status: u16,
    body: &Result<RawTokenResponse, String>,
    retry_after_s: Option<u64>,
    now_ms: u64,
    previous: Option<&TokenSet>,
    dpop_jkt: Option<&str>,
) -> Result<TokenSet, Error> {
    let success = (200..300).contains(&status);
    let raw = match body {
        Ok(raw) => raw.clone(),
        Err(_) if success => return Err(malformed()),
        Err(_) => RawTokenResponse::default(),
    };
    if !success || raw.error.is_some() {
        return Err(Error::TokenEndpoint {
            status,
            error: raw.error.unwrap_or_default(),
            error_description: raw.error_description,
            error_uri: raw.error_uri,
            retry_after_s,
        });
    }
    // Surrounding HTTP whitespace dropped; what is left is 1*VSCHAR
    // (RFC 6749 Appendix A.12).
    let access_token = match raw.access_token {
        Some(token) => {
            let bytes = token.secret().as_bytes();
            let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
            match (
                bytes.iter().position(|b| !space(b)),
                bytes.iter().rposition(|b| !space(b)),
            ) {
                (Some(first), Some(last))
                    if bytes[first..=last]
                        .iter()
                        .all(|b| (b' '..=b'~').contains(b)) =>
                {
                    AccessToken::new(String::from_utf8(bytes[first..=last].to_vec()).unwrap())
                }
                _ => return Err(malformed()),
            }
        }
        None => return Err(malformed()),
    };
    let token_type = raw.token_type.ok_or_else(malformed)?;
    // A DPoP request must get a DPoP token; any other request a Bearer one.
    let expected = match dpop_jkt {
        Some(_) => "DPoP",
        None => "Bearer",
    };
    if !token_type.eq_ignore_ascii_case(expected) {
        return Err(Error::UnsupportedTokenType {
            token_type,
            expected,
        });
    }
    let expires_at_ms = match &raw.expires_in {
        None => None,
        Some(lifetime) => Some(absolute(lifetime, now_ms).ok_or_else(malformed)?),
    };
    let refresh_expires_at_ms = match &raw.refresh_expires_in {
        None => None,
        Some(lifetime) if seconds(lifetime) == Some(0) => None,
        Some(lifetime) => Some(absolute(lifetime, now_ms).ok_or_else(malformed)?),
    };
    let rotated = raw.refresh_token.filter(|t| !t.secret().is_empty());
    let (refresh_token, refresh_expires_at_ms) = match (rotated, previous) {
        (Some(token), _) => (Some(token), refresh_expires_at_ms),
        (None, Some(prev)) => (
            prev.refresh_token.clone(),
            refresh_expires_at_ms.or(prev.refresh_expires_at_ms),
        ),
        (None, None) => (None, refresh_expires_at_ms),
    };
    Ok(TokenSet {
        access_token,
        token_type: expected.into(),
        expires_at_ms,
        refresh_token,
        scope: raw.scope.or_else(|| previous.and_then(|p| p.scope.clone())),
        id_token: raw
            .id_token
            .or_else(|| previous.and_then(|p| p.id_token.clone())),
        refresh_expires_at_ms,
        issued_at_ms: previous.map_or(now_ms, |p| now_ms.max(p.issued_at_ms.saturating_add(1))),
        login_at_ms: previous.map_or(now_ms, |p| p.login_at_ms),
        rotation: previous.map_or(0, |p| p.rotation + 1),
        dpop_jkt: dpop_jkt.map(str::to_owned),
        atproto: previous.and_then(|p| p.atproto.clone()),
    })
}

/// Errors compare fully, except a malformed response's reason, which is
/// free text.
fn same(actual: &Result<TokenSet, Error>, expected: &Result<TokenSet, Error>) -> bool {
    match (actual, expected) {
        (Ok(a), Ok(b)) => a == b,
        (Err(Error::MalformedTokenResponse { .. }), Err(Error::MalformedTokenResponse { .. })) => {
            true
        }
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// `text` with each secret swapped for a different value (an empty one
/// stays empty).
fn twin_raw(raw: &RawTokenResponse) -> RawTokenResponse {
    let swap = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            different_from(s, &[])
        }
    };
    RawTokenResponse {
        access_token: raw
            .access_token
            .as_ref()
            .map(|t| AccessToken::new(swap(t.secret()))),
        refresh_token: raw
            .refresh_token
            .as_ref()
            .map(|t| RefreshToken::new(swap(t.secret()))),
        id_token: raw
            .id_token
            .as_ref()
            .map(|t| IdToken::new(swap(t.secret()))),
        ..raw.clone()
    }
}

fn twin_previous() -> TokenSet {
    TokenSet {
        access_token: AccessToken::new("another-access-token".into()),
        refresh_token: Some(RefreshToken::new("another-refresh-token".into())),
        id_token: Some(IdToken::new("another.id.token".into())),
        ..previous()
    }
}

fn describe(result: &Result<TokenSet, Error>) -> String {
    match result {
        Ok(set) => format!("{set:?}"),
        Err(error) => format!("{error:?} / {error}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // What the browser's `post_form` hands over: the parsed body or why not.
    let body: Result<RawTokenResponse, String> = match std::str::from_utf8(data) {
        Ok(text) => SerdeJson.parse_json(text),
        Err(_) => Err("not valid JSON".into()),
    };
    let twin_body = body.as_ref().map(twin_raw).map_err(Clone::clone);
    if let (Ok(raw), Ok(twin)) = (&body, &twin_body) {
        assert_eq!(
            format!("{raw:?}"),
            format!("{twin:?}"),
            "Debug shows a token"
        );
    }
    let prev = previous();
    let twin_prev = twin_previous();

    for status in STATUSES {
        // Retry-After (a header, not the body) is carried onto the error.
        let retry_after_s = (status >= 500).then_some(120);
        for now_ms in CLOCKS {
            for (with_previous, dpop_jkt) in [
                (false, None),
                (true, None),
                (false, Some("jkt-1")),
                (true, Some("jkt-1")),
            ] {
                let previous = with_previous.then_some(&prev);
                let reply = HttpReply {
                    status,
                    body: body.clone(),
                    retry_after_s,
                    dpop_nonce: None,
                    oauth_error: None,
                };
                let actual = token_set_from_reply(reply, now_ms, previous, dpop_jkt);
                let expected = model(status, &body, retry_after_s, now_ms, previous, dpop_jkt);
                assert!(
                    same(&actual, &expected),
                    "status {status}, now {now_ms}, previous {with_previous}, dpop {dpop_jkt:?}: got {}, expected {}",
                    describe(&actual),
                    describe(&expected)
                );

                if let Ok(set) = &actual {
                    // Staleness never overflows, whatever the clock and leeway.
                    for leeway in [0, 30_000, u64::MAX] {
                        let _ = set.is_stale(now_ms, leeway);
                        let _ = set.is_stale(u64::MAX, leeway);
                    }
                    assert!(!set.is_stale(now_ms, 0) || set.expires_at_ms == Some(now_ms));
                    let _ = set.can_refresh(now_ms);
                }

                // The slower checks, at one clock.
                if now_ms != NOW_MS {
                    continue;
                }
                let twin_reply = HttpReply {
                    status,
                    body: twin_body.clone(),
                    retry_after_s,
                    dpop_nonce: None,
                    oauth_error: None,
                };
                let twin_previous = with_previous.then_some(&twin_prev);
                let twin = token_set_from_reply(twin_reply, now_ms, twin_previous, dpop_jkt);
                assert_eq!(
                    describe(&actual),
                    describe(&twin),
                    "the output depends on a token"
                );

                if let Ok(set) = actual {
                    // The persisted form reads back as the same set.
                    let stored = serde_json::to_string(&set).expect("a token set serialises");
                    let read: TokenSet = SerdeJson.parse_json(&stored).expect("and reads back");
                    assert_eq!(read, set);
                }
            }
        }
    }
});
