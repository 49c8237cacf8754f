//! The redirect back from the authorization server: the callback URL's
//! query, decoded as `URLSearchParams` does in the browser, validated by
//! `validate_callback` against a pending transaction read from storage
//! (JSON, as the browser store parses it), then turned into the code
//! exchange body.
//!
//! Input: UTF-8 text (lossy), in lines:
//!
//! 1. the stored transaction as JSON; anything that does not parse as one
//!    means "no transaction";
//! 2. the callback URL;
//! 3. optional flags: `iss_required` makes the `iss` parameter required.
//!
//! Properties: never panics; the result is exactly what an independent
//! model of the documented check order predicts; a validated callback's
//! exchange body carries the transaction's values and the received code;
//! a stored transaction round-trips through JSON; and neither `Debug` of
//! the result nor an error's text depends on the secret values (`state`,
//! `code`, verifier, nonce): swapping them all for others gives the same
//! text.
#![no_main]

use libfuzzer_sys::fuzz_target;

use latchkey::core::secret::{Nonce, PkceVerifier, State};
use latchkey::core::{
    code_exchange_params, validate_callback, Error, PendingTransaction, TRANSACTION_MAX_AGE_MS,
};
use latchkey::core::ports::Json;
use latchkey_fuzz::{different_from, query_of, query_pairs, SerdeJson, ISSUER, NOW_MS};

type Params = [(String, String)];

fn values<'a>(params: &'a Params, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    params
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The documented checks, in the documented order, written independently
/// of the implementation. `Ok` carries the code that must be exchanged.
fn model(
    pending: Option<&PendingTransaction>,
    params: &Params,
    iss_required: bool,
) -> Result<String, Error> {
    let pending = pending.ok_or(Error::NoTransaction)?;
    if NOW_MS > pending.created_at_ms && NOW_MS - pending.created_at_ms > TRANSACTION_MAX_AGE_MS {
        return Err(Error::TransactionExpired);
    }
    let iss: Vec<&str> = values(params, "iss").collect();
    match iss.as_slice() {
        [] if iss_required => return Err(Error::IssMissing),
        [] => {}
        [one] if *one == ISSUER => {}
        _ => return Err(Error::IssMismatch),
    }
    // The login must have been sent to this issuer.
    if pending.issuer != ISSUER {
        return Err(Error::IssMismatch);
    }
    let state: Vec<&str> = values(params, "state").collect();
    match state.as_slice() {
        [] => return Err(Error::StateMissing),
        [one] if *one == pending.state.secret() => {}
        _ => return Err(Error::StateMismatch),
    }
    if let Some(error) = values(params, "error").next() {
        return Err(Error::AuthorizationServer {
            error: error.to_string(),
            error_description: values(params, "error_description")
                .next()
                .map(str::to_string),
            error_uri: values(params, "error_uri").next().map(str::to_string),
        });
    }
    let code: Vec<&str> = values(params, "code").collect();
    match code.as_slice() {
        [one] if !one.is_empty() => Ok(one.to_string()),
        _ => Err(Error::CodeMissing),
    }
}

fn parse_pending(json: &str) -> Option<PendingTransaction> {
    SerdeJson.parse_json(json).ok()
}

/// The same transaction and redirect with every secret replaced by a
/// different value, consistently: a `state` parameter equal to the stored
/// state still equals the (new) stored state, a non-empty code stays
/// non-empty, a nonce stays present or absent.
fn twin(
    pending: Option<PendingTransaction>,
    params: &Params,
) -> (Option<PendingTransaction>, Vec<(String, String)>) {
    let Some(pending) = pending else {
        return (None, params.to_vec());
    };
    let original_state = pending.state.secret().to_string();
    let received: Vec<&str> = values(params, "state").collect();
    let new_state = different_from(&original_state, &received);
    let params = params
        .iter()
        .map(|(name, value)| {
            let value = match name.as_str() {
                "state" if *value == original_state => new_state.clone(),
                "code" if !value.is_empty() => different_from(value, &[]),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    let pending = PendingTransaction {
        state: State::new(new_state),
        verifier: PkceVerifier::new(different_from(pending.verifier.secret(), &[])),
        nonce: pending
            .nonce
            .map(|n| Nonce::new(different_from(n.secret(), &[]))),
        ..pending
    };
    (Some(pending), params)
}

fn describe<T: std::fmt::Debug>(result: &Result<T, Error>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(error) => format!("{error:?} / {error}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let pending_json = lines.next().unwrap_or("");
    let url = lines.next().unwrap_or("");
    let iss_required = lines
        .next()
        .is_some_and(|flags| flags.contains("iss_required"));
    let params = query_pairs(query_of(url));

    // A stored transaction survives the storage round trip unchanged.
    if let Some(pending) = parse_pending(pending_json) {
        let stored = serde_json::to_string(&pending).expect("a transaction serialises");
        assert_eq!(parse_pending(&stored).as_ref(), Some(&pending));
    }

    let expected = model(parse_pending(pending_json).as_ref(), &params, iss_required);
    let actual = validate_callback(
        parse_pending(pending_json),
        &params,
        ISSUER,
        iss_required,
        NOW_MS,
    );

    // Secrets never shape what is printed.
    let (twin_pending, twin_params) = twin(parse_pending(pending_json), &params);
    let twin_actual = validate_callback(twin_pending, &twin_params, ISSUER, iss_required, NOW_MS);
    assert_eq!(
        describe(&actual),
        describe(&twin_actual),
        "the output depends on a secret"
    );

    match (actual, expected) {
        (Err(actual), Err(expected)) => assert_eq!(actual, expected),
        (Ok(callback), Ok(code)) => {
            let pending = parse_pending(pending_json).expect("validated, so pending");
            assert_eq!(callback.nonce(), pending.nonce.as_ref());
            assert_eq!(callback.app_state(), pending.app_state.as_deref());
            let (form, outcome) = code_exchange_params(callback);
            let expected_form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", pending.redirect_uri.as_str()),
                ("client_id", pending.client_id.as_str()),
                ("code_verifier", pending.verifier.secret()),
            ];
            assert_eq!(form.len(), expected_form.len());
            for ((name, value), (want_name, want_value)) in form.iter().zip(expected_form) {
                assert_eq!((name.as_str(), value.as_str()), (want_name, want_value));
            }
            assert_eq!(outcome.nonce, pending.nonce);
            assert_eq!(outcome.app_state, pending.app_state);
        }
        (actual, expected) => panic!(
            "validate_callback gave {} where the model expects {}",
            describe(&actual),
            describe(&expected)
        ),
    }
});
