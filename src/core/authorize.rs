//! The front-channel half of the authorization code flow: the authorization
//! request, the transaction persisted across the redirect, and validation of
//! the redirect that comes back
//! ([RFC 6749 §4.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1),
//! [RFC 7636](https://www.rfc-editor.org/rfc/rfc7636),
//! [RFC 9207](https://www.rfc-editor.org/rfc/rfc9207)).
//!
//! The only way to obtain a [`ValidatedCallback`], which the code exchange
//! requires, is [`validate_callback`]: an unvalidated redirect cannot reach the
//! token endpoint.
//!
//! ```compile_fail,E0451
//! // ValidatedCallback's fields are private: this does not compile.
//! use latchkey::core::authorize::ValidatedCallback;
//! use latchkey::core::secret::{AuthorizationCode, PkceVerifier};
//! let forged = ValidatedCallback {
//!     code: AuthorizationCode::new("c".into()),
//!     verifier: PkceVerifier::new("v".into()),
//!     redirect_uri: String::new(),
//!     nonce: None,
//!     app_state: None,
//!     client_id: String::new(),
//! };
//! ```

use serde::{Deserialize, Serialize};

use super::error::Error;
use super::pkce::PkceChallenge;
use super::secret::{AuthorizationCode, Nonce, PkceVerifier, State};
use crate::core::quoted::Quoted;

/// How long a pending transaction stays usable: 10 minutes.
pub const TRANSACTION_MAX_AGE_MS: u64 = 10 * 60 * 1000;

/// Parameters latchkey sets itself, or that would take the response or the
/// request out of its hands; the app may not pass them in `extraParams`.
/// `response_mode`: the callback reads the query only (a fragment or
/// `form_post` answer would fail and leave the code in the history);
/// `request`, `request_uri`: the request would be another one (RFC 9101),
/// and a pushed request must not carry `request_uri` (RFC 9126 §2.1).
pub const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "response_mode",
    "request",
    "request_uri",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "dpop_jkt",
];

/// The parameters of an authorization response: removed from the address
/// bar after a callback, so they are not bookmarked, shared or replayed.
pub const RESPONSE_PARAMS: &[&str] = &[
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
];

/// The callback URL that `handleRedirectCallback` reads — the one the app
/// gave, else the address bar's — and whether the address bar is cleaned of
/// [`RESPONSE_PARAMS`] afterwards: only when it is the URL read (a URL the
/// app passed from elsewhere, a popup's say, leaves the page's own alone).
pub fn callback_url(given: Option<String>, address_bar: String) -> (String, bool) {
    match given {
        Some(url) if url != address_bar => (url, false),
        _ => (address_bar, true),
    }
}

/// Whether a page is a response to this client's login
/// ([RFC 6749 §4.1.2](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2),
/// [§4.1.2.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1)): it is
/// at the redirect URI's path (`path` and `redirect_path`, a trailing slash
/// either way: hosts add or drop one) and its query (`names`) has `state`
/// and a `code` or an `error`. An app route of its own with such parameters
/// (an invitation's `code`, say) is not one.
pub fn is_login_response(path: &str, redirect_path: &str, names: &[String]) -> bool {
    fn trimmed(path: &str) -> &str {
        path.strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path)
    }
    let has = |name: &str| names.iter().any(|n| n == name);
    trimmed(path) == trimmed(redirect_path) && has("state") && (has("code") || has("error"))
}

/// Whether a space-separated `scope` contains the `openid` token
/// ([RFC 6749 §3.3](https://www.rfc-editor.org/rfc/rfc6749#section-3.3)):
/// then the request is an OpenID Connect one and carries a `nonce`.
pub fn scope_requests_openid(scope: &str) -> bool {
    scope.split(' ').any(|token| token == "openid")
}

/// What the app asks for in one login. Turned into query parameters by
/// [`params`](AuthorizationRequest::params) and into the persisted
/// [`PendingTransaction`] by [`begin`](AuthorizationRequest::begin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The configured issuer (recorded in the transaction).
    pub issuer: String,
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`; the code exchange must send the same value.
    pub redirect_uri: String,
    /// `scope`, space-separated.
    pub scope: String,
    /// The app's `extraParams` (e.g. `prompt`), appended after latchkey's
    /// own; repeated names are kept (e.g. several `resource`).
    pub extra_params: Vec<(String, String)>,
    /// The app's `appState`, as opaque JSON text, returned after the redirect.
    pub app_state: Option<String>,
    /// The thumbprint of the DPoP key this login binds its tokens to, sent
    /// as `dpop_jkt` ([RFC 9449 §10](https://www.rfc-editor.org/rfc/rfc9449#section-10)):
    /// the code can then only be exchanged with that key.
    pub dpop_jkt: Option<String>,
}

impl AuthorizationRequest {
    /// The authorization request query parameters, in order
    /// ([RFC 6749 §4.1.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1),
    /// [RFC 7636 §4.3](https://www.rfc-editor.org/rfc/rfc7636#section-4.3),
    /// [OIDC Core §3.1.2.1](https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest)):
    /// `response_type=code`, `client_id`, `redirect_uri`, `scope`, `state`,
    /// `code_challenge`, `code_challenge_method=S256`, `nonce` when the scope
    /// contains `openid`, then `extra_params`.
    ///
    /// An extra parameter whose name (ASCII case-insensitively) is one of
    /// [`RESERVED_PARAMS`] is refused with `invalid_option` on
    /// `extraParams`. The values are not URL-encoded here: the caller's
    /// `URLSearchParams` does that.
    pub fn params(
        &self,
        state: &State,
        challenge: &PkceChallenge,
        nonce: &Nonce,
    ) -> Result<Vec<(String, String)>, Error> {
        if let Some((name, _)) = self
            .extra_params
            .iter()
            .find(|(name, _)| RESERVED_PARAMS.iter().any(|r| r.eq_ignore_ascii_case(name)))
        {
            return Err(Error::invalid_option(
                "extraParams",
                format!("must not set the reserved parameter {}", Quoted(name)),
            ));
        }
        let mut params = vec![
            ("response_type".to_string(), "code".to_string()),
            ("client_id".to_string(), self.client_id.clone()),
            ("redirect_uri".to_string(), self.redirect_uri.clone()),
            ("scope".to_string(), self.scope.clone()),
            ("state".to_string(), state.secret().to_string()),
            ("code_challenge".to_string(), challenge.as_str().to_string()),
            (
                "code_challenge_method".to_string(),
                challenge.method().to_string(),
            ),
        ];
        if scope_requests_openid(&self.scope) {
            params.push(("nonce".to_string(), nonce.secret().to_string()));
        }
        if let Some(jkt) = &self.dpop_jkt {
            params.push(("dpop_jkt".to_string(), jkt.clone()));
        }
        params.extend(self.extra_params.iter().cloned());
        Ok(params)
    }

    /// Starts a login: the query parameters (see
    /// [`params`](AuthorizationRequest::params)) and the transaction to
    /// persist before redirecting. The nonce is recorded only when it is sent.
    ///
    /// `challenge` must be the S256 challenge of `verifier`; `state`, `nonce`
    /// and `verifier` come from fresh random bytes (`from_random_bytes`).
    pub fn begin(
        self,
        verifier: PkceVerifier,
        challenge: &PkceChallenge,
        state: State,
        nonce: Nonce,
        now_ms: u64,
    ) -> Result<(Vec<(String, String)>, PendingTransaction), Error> {
        let params = self.params(&state, challenge, &nonce)?;
        let nonce = scope_requests_openid(&self.scope).then_some(nonce);
        let transaction = PendingTransaction {
            state,
            verifier,
            nonce,
            redirect_uri: self.redirect_uri,
            app_state: self.app_state,
            created_at_ms: now_ms,
            issuer: self.issuer,
            client_id: self.client_id,
            dpop_jkt: self.dpop_jkt,
            dpop_nonce: None,
        };
        Ok((params, transaction))
    }
}

/// A login in progress, persisted by the browser across the redirect and
/// consumed by [`validate_callback`]. Serialised with snake_case field names;
/// the secrets serialise as plain strings.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransaction {
    /// The `state` sent.
    pub state: State,
    /// The PKCE verifier whose challenge was sent.
    pub verifier: PkceVerifier,
    /// The `nonce` sent, if the request was an OpenID Connect one.
    pub nonce: Option<Nonce>,
    /// The `redirect_uri` sent.
    pub redirect_uri: String,
    /// The app's opaque `appState` JSON text.
    pub app_state: Option<String>,
    /// When the login started, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The issuer the login was sent to.
    pub issuer: String,
    /// The `client_id` sent.
    pub client_id: String,
    /// The thumbprint of the login's DPoP key (`dpop_jkt`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The authorization server's DPoP nonce as the pushed request left it:
    /// the code exchange after the redirect (a new page) starts with it
    /// instead of a `use_dpop_nonce` round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_nonce: Option<String>,
}

/// A redirect that passed every check of [`validate_callback`]. Only that
/// function can create one, and the code exchange
/// ([`code_exchange_params`](super::token::code_exchange_params)) consumes it.
#[derive(Debug)]
pub struct ValidatedCallback {
    code: AuthorizationCode,
    verifier: PkceVerifier,
    redirect_uri: String,
    nonce: Option<Nonce>,
    app_state: Option<String>,
    client_id: String,
    dpop_jkt: Option<String>,
}

/// The pieces of a [`ValidatedCallback`], for the code exchange only.
pub(crate) struct CallbackParts {
    pub(crate) code: AuthorizationCode,
    pub(crate) verifier: PkceVerifier,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: Option<Nonce>,
    pub(crate) app_state: Option<String>,
    pub(crate) client_id: String,
    pub(crate) dpop_jkt: Option<String>,
}

impl ValidatedCallback {
    /// The `nonce` the ID token must carry, if one was sent.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.nonce.as_ref()
    }

    /// The app's `appState` JSON text from the login.
    pub fn app_state(&self) -> Option<&str> {
        self.app_state.as_deref()
    }

    /// Takes the callback apart; only the code exchange does this.
    pub(crate) fn into_parts(self) -> CallbackParts {
        CallbackParts {
            code: self.code,
            verifier: self.verifier,
            redirect_uri: self.redirect_uri,
            nonce: self.nonce,
            app_state: self.app_state,
            client_id: self.client_id,
            dpop_jkt: self.dpop_jkt,
        }
    }
}

/// A parameter that appears more than once.
struct Repeated;

/// The value of `name`, if present exactly once.
fn single<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, Repeated> {
    let mut values = params.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(Repeated),
    }
}

/// The first value of `name`, for the informational error fields.
fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Validates the redirect back from the authorization server
/// ([RFC 6749 §4.1.2](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2),
/// [§4.1.2.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1),
/// [§10.12](https://www.rfc-editor.org/rfc/rfc6749#section-10.12),
/// [RFC 9207 §2.4](https://www.rfc-editor.org/rfc/rfc9207#section-2.4)).
///
/// `params` are the decoded query (or fragment) parameters in order;
/// `pending` is the transaction read (and removed) from storage;
/// `iss_required` is [`Endpoints::iss_parameter_supported`](super::discovery::Endpoints::iss_parameter_supported).
///
/// Checks run in this fixed order and the first failure is returned:
///
/// 1. a transaction is pending (`no_transaction`) and is at most
///    [`TRANSACTION_MAX_AGE_MS`] old (`transaction_expired`);
/// 2. `iss`: absent while `iss_required` → `iss_missing`; present but not
///    exactly `expected_issuer` → `iss_mismatch`; a transaction started
///    with another issuer → `iss_mismatch` too (the response cannot be for
///    this server's login);
/// 3. `state`: absent → `state_missing`; not exactly the pending state
///    (compared in constant time) → `state_mismatch`;
/// 4. `error` present → [`Error::AuthorizationServer`] carrying the
///    server's `error`, `error_description` and `error_uri` (code
///    `access_denied`, `login_required`, … or `authorization_error`, see
///    [`crate::core::error::authorization_error_code`]);
/// 5. `code` present and non-empty, else `code_missing`.
///
/// The server's error is reported only after `iss` and `state` matched, so a
/// forged redirect cannot make the app display attacker-chosen text.
///
/// Repeated parameters are forbidden ([RFC 6749 §3.1](https://www.rfc-editor.org/rfc/rfc6749#section-3.1)):
/// a repeated `iss` is `iss_mismatch`, a repeated `state` is
/// `state_mismatch`, a repeated `code` is `code_missing` (no single code to
/// exchange). A repeated `error` still fails as a server error,
/// reporting the first values.
pub fn validate_callback(
    pending: Option<PendingTransaction>,
    params: &[(String, String)],
    expected_issuer: &str,
    iss_required: bool,
    now_ms: u64,
) -> Result<ValidatedCallback, Error> {
    // 1. The transaction.
    let pending = pending.ok_or(Error::NoTransaction)?;
    if now_ms.saturating_sub(pending.created_at_ms) > TRANSACTION_MAX_AGE_MS {
        return Err(Error::TransactionExpired);
    }

    // 2. iss (RFC 9207).
    match single(params, "iss").map_err(|Repeated| Error::IssMismatch)? {
        None if iss_required => return Err(Error::IssMissing),
        None => {}
        Some(iss) if iss != expected_issuer => return Err(Error::IssMismatch),
        Some(_) => {}
    }
    if pending.issuer != expected_issuer {
        return Err(Error::IssMismatch);
    }

    // 3. state.
    let state = single(params, "state")
        .map_err(|Repeated| Error::StateMismatch)?
        .ok_or(Error::StateMissing)?;
    if State::new(state.to_string()) != pending.state {
        return Err(Error::StateMismatch);
    }

    // 4. An error response.
    if let Some(error) = first(params, "error") {
        return Err(Error::AuthorizationServer {
            error: error.to_string(),
            error_description: first(params, "error_description").map(str::to_string),
            error_uri: first(params, "error_uri").map(str::to_string),
        });
    }

    // 5. The code.
    let code = match single(params, "code") {
        Ok(Some(code)) if !code.is_empty() => AuthorizationCode::new(code.to_string()),
        _ => return Err(Error::CodeMissing),
    };

    Ok(ValidatedCallback {
        code,
        verifier: pending.verifier,
        redirect_uri: pending.redirect_uri,
        nonce: pending.nonce,
        app_state: pending.app_state,
        client_id: pending.client_id,
        dpop_jkt: pending.dpop_jkt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_bar_is_read_and_cleaned_when_no_url_is_given() {
        let bar = "https://app.example/cb?code=c&state=s".to_string();
        assert_eq!(callback_url(None, bar.clone()), (bar, true));
    }

    #[test]
    fn a_given_url_equal_to_the_address_bar_cleans_it() {
        let bar = "https://app.example/cb?code=c&state=s".to_string();
        assert_eq!(callback_url(Some(bar.clone()), bar.clone()), (bar, true));
    }

    #[test]
    fn a_url_from_elsewhere_leaves_the_address_bar_alone() {
        let given = "https://app.example/popup?code=c&state=s".to_string();
        let bar = "https://app.example/page".to_string();
        assert_eq!(callback_url(Some(given.clone()), bar), (given, false));
    }

    const ISSUER: &str = "https://idp.example.com";
    const STATE: &str = "the-state";
    const NOW: u64 = 1_700_000_000_000;

    fn request(scope: &str) -> AuthorizationRequest {
        AuthorizationRequest {
            dpop_jkt: None,
            issuer: ISSUER.into(),
            client_id: "spa".into(),
            redirect_uri: "https://app.example.com/callback".into(),
            scope: scope.into(),
            extra_params: vec![("prompt".into(), "consent".into())],
            app_state: Some(r#"{"returnTo":"/x"}"#.into()),
        }
    }

    fn challenge() -> PkceChallenge {
        PkceChallenge::from_sha256_digest([7; 32])
    }

    fn pending() -> PendingTransaction {
        PendingTransaction {
            state: State::new(STATE.into()),
            verifier: PkceVerifier::new("the-verifier".into()),
            nonce: Some(Nonce::new("the-nonce".into())),
            redirect_uri: "https://app.example.com/callback".into(),
            app_state: Some(r#"{"returnTo":"/x"}"#.into()),
            created_at_ms: NOW - 1000,
            issuer: ISSUER.into(),
            client_id: "spa".into(),
            dpop_jkt: None,
            dpop_nonce: None,
        }
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(params: &[(&str, &str)], iss_required: bool) -> Result<ValidatedCallback, Error> {
        validate_callback(Some(pending()), &p(params), ISSUER, iss_required, NOW)
    }

    fn names(params: &[(String, String)]) -> Vec<&str> {
        params.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn scope_openid_is_a_token_check() {
        assert!(scope_requests_openid("openid"));
        assert!(scope_requests_openid("api openid offline_access"));
        assert!(!scope_requests_openid("openidx api"));
        assert!(!scope_requests_openid("api:openid"));
        assert!(!scope_requests_openid(""));
    }

    #[test]
    fn params_in_order_with_nonce_for_openid() {
        let params = request("openid offline_access")
            .params(
                &State::new(STATE.into()),
                &challenge(),
                &Nonce::new("n".into()),
            )
            .unwrap();
        assert_eq!(
            names(&params),
            [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
                "nonce",
                "prompt"
            ]
        );
        assert_eq!(params[0].1, "code");
        assert_eq!(params[1].1, "spa");
        assert_eq!(params[2].1, "https://app.example.com/callback");
        assert_eq!(params[3].1, "openid offline_access");
        assert_eq!(params[4].1, STATE);
        assert_eq!(params[5].1, challenge().as_str());
        assert_eq!(params[6].1, "S256");
        assert_eq!(params[7].1, "n");
        assert_eq!(params[8].1, "consent");
    }

    #[test]
    fn params_without_openid_have_no_nonce() {
        let params = request("api")
            .params(
                &State::new(STATE.into()),
                &challenge(),
                &Nonce::new("n".into()),
            )
            .unwrap();
        assert!(!names(&params).contains(&"nonce"));
    }

    #[test]
    fn reserved_extra_params_are_refused() {
        for name in RESERVED_PARAMS.iter().copied().chain(["State", "NONCE"]) {
            let mut req = request("openid");
            req.extra_params = vec![("prompt".into(), "login".into()), (name.into(), "x".into())];
            let err = req
                .params(
                    &State::new(STATE.into()),
                    &challenge(),
                    &Nonce::new("n".into()),
                )
                .unwrap_err();
            match err {
                Error::InvalidOption { field, reason } => {
                    assert_eq!(field, "extraParams");
                    assert!(reason.contains(name), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn repeated_extra_params_are_kept() {
        let mut req = request("api");
        req.extra_params = vec![
            ("resource".into(), "https://a.example".into()),
            ("resource".into(), "https://b.example".into()),
        ];
        let params = req
            .params(
                &State::new(STATE.into()),
                &challenge(),
                &Nonce::new("n".into()),
            )
            .unwrap();
        assert_eq!(params.iter().filter(|(k, _)| k == "resource").count(), 2);
    }

    #[test]
    fn begin_records_the_transaction() {
        let (params, tx) = request("openid")
            .begin(
                PkceVerifier::new("v".into()),
                &challenge(),
                State::new(STATE.into()),
                Nonce::new("n".into()),
                NOW,
            )
            .unwrap();
        assert!(names(&params).contains(&"nonce"));
        assert_eq!(tx.state.secret(), STATE);
        assert_eq!(tx.verifier.secret(), "v");
        assert_eq!(tx.nonce.as_ref().map(Nonce::secret), Some("n"));
        assert_eq!(tx.created_at_ms, NOW);
        assert_eq!(tx.issuer, ISSUER);
        assert_eq!(tx.client_id, "spa");
        assert_eq!(tx.app_state.as_deref(), Some(r#"{"returnTo":"/x"}"#));

        let (_, tx) = request("api")
            .begin(
                PkceVerifier::new("v".into()),
                &challenge(),
                State::new(STATE.into()),
                Nonce::new("n".into()),
                NOW,
            )
            .unwrap();
        assert_eq!(tx.nonce, None, "a nonce not sent is not recorded");
    }

    #[test]
    fn pending_transaction_round_trips_through_json() {
        let json = serde_json::to_string(&pending()).unwrap();
        assert!(json.contains(r#""state":"the-state""#));
        let back: PendingTransaction = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pending());
        assert!(!format!("{:?}", pending()).contains("the-verifier"));
    }

    #[test]
    fn valid_callback() {
        let cb = check(&[("code", "abc"), ("state", STATE), ("iss", ISSUER)], true).unwrap();
        assert_eq!(cb.nonce().map(Nonce::secret), Some("the-nonce"));
        assert_eq!(cb.app_state(), Some(r#"{"returnTo":"/x"}"#));
        let debug = format!("{cb:?}");
        assert!(!debug.contains("abc") && !debug.contains("the-verifier"));
        // iss optional when the server does not advertise RFC 9207.
        assert!(check(&[("code", "abc"), ("state", STATE)], false).is_ok());
    }

    // One test per branch, in the documented order.

    #[test]
    fn step1_no_transaction() {
        let params = p(&[("code", "abc"), ("state", STATE)]);
        assert_eq!(
            validate_callback(None, &params, ISSUER, false, NOW).unwrap_err(),
            Error::NoTransaction
        );
    }

    #[test]
    fn step1_transaction_expired() {
        let params = p(&[("code", "abc"), ("state", STATE)]);
        let mut tx = pending();
        tx.created_at_ms = NOW - TRANSACTION_MAX_AGE_MS - 1;
        assert_eq!(
            validate_callback(Some(tx), &params, ISSUER, false, NOW).unwrap_err(),
            Error::TransactionExpired
        );
        let mut tx = pending();
        tx.created_at_ms = NOW - TRANSACTION_MAX_AGE_MS;
        assert!(validate_callback(Some(tx), &params, ISSUER, false, NOW).is_ok());
    }

    #[test]
    fn step2_iss_missing() {
        assert_eq!(
            check(&[("code", "abc"), ("state", STATE)], true).unwrap_err(),
            Error::IssMissing
        );
    }

    #[test]
    fn step2_iss_mismatch() {
        for iss in ["https://evil.example", "https://idp.example.com/", ""] {
            for required in [true, false] {
                assert_eq!(
                    check(&[("code", "abc"), ("state", STATE), ("iss", iss)], required)
                        .unwrap_err(),
                    Error::IssMismatch
                );
            }
        }
    }

    #[test]
    fn step2_a_transaction_sent_to_another_issuer_is_a_mismatch() {
        let mut pending = pending();
        pending.issuer = "https://other.example".into();
        let params = p(&[("code", "abc"), ("state", STATE), ("iss", ISSUER)]);
        let result = validate_callback(Some(pending), &params, ISSUER, true, NOW);
        assert_eq!(result.unwrap_err(), Error::IssMismatch);
    }

    #[test]
    fn step2_repeated_iss_is_a_mismatch() {
        assert_eq!(
            check(
                &[
                    ("iss", ISSUER),
                    ("code", "abc"),
                    ("state", STATE),
                    ("iss", ISSUER)
                ],
                true
            )
            .unwrap_err(),
            Error::IssMismatch
        );
    }

    #[test]
    fn step3_state_missing() {
        assert_eq!(
            check(&[("code", "abc"), ("iss", ISSUER)], true).unwrap_err(),
            Error::StateMissing
        );
    }

    #[test]
    fn step3_state_mismatch() {
        for state in ["other", "the-stat", ""] {
            assert_eq!(
                check(&[("code", "abc"), ("state", state)], false).unwrap_err(),
                Error::StateMismatch
            );
        }
    }

    #[test]
    fn step3_repeated_state_is_a_mismatch() {
        assert_eq!(
            check(
                &[("state", STATE), ("code", "abc"), ("state", STATE)],
                false
            )
            .unwrap_err(),
            Error::StateMismatch
        );
    }

    #[test]
    fn step4_authorization_server_error() {
        let err = check(
            &[
                ("error", "access_denied"),
                ("error_description", "The user said no"),
                ("error_uri", "https://idp.example.com/help"),
                ("state", STATE),
                ("iss", ISSUER),
            ],
            true,
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::AuthorizationServer {
                error: "access_denied".into(),
                error_description: Some("The user said no".into()),
                error_uri: Some("https://idp.example.com/help".into()),
            }
        );
        assert_eq!(err.code(), "access_denied");
        assert_eq!(err.server_error(), Some("access_denied"));
    }

    #[test]
    fn step4_error_wins_over_code() {
        let err = check(
            &[("error", "server_error"), ("code", "abc"), ("state", STATE)],
            false,
        )
        .unwrap_err();
        assert_eq!(err.server_error(), Some("server_error"));
        assert_eq!(err.error_description(), None);
    }

    #[test]
    fn step5_code_missing() {
        assert_eq!(
            check(&[("state", STATE)], false).unwrap_err(),
            Error::CodeMissing
        );
        assert_eq!(
            check(&[("code", ""), ("state", STATE)], false).unwrap_err(),
            Error::CodeMissing
        );
        assert_eq!(
            check(&[("code", "a"), ("state", STATE), ("code", "b")], false).unwrap_err(),
            Error::CodeMissing
        );
    }

    #[test]
    fn order_expiry_before_iss() {
        let mut tx = pending();
        tx.created_at_ms = 0;
        let params = p(&[("iss", "https://evil.example"), ("state", "wrong")]);
        assert_eq!(
            validate_callback(Some(tx), &params, ISSUER, true, NOW).unwrap_err(),
            Error::TransactionExpired
        );
    }

    #[test]
    fn order_iss_before_state() {
        assert_eq!(
            check(&[("iss", "https://evil.example"), ("state", "wrong")], true).unwrap_err(),
            Error::IssMismatch
        );
        assert_eq!(check(&[], true).unwrap_err(), Error::IssMissing);
    }

    #[test]
    fn order_state_before_error() {
        // A forged error redirect (wrong state) is not shown as the server's.
        assert_eq!(
            check(&[("error", "access_denied"), ("state", "wrong")], false).unwrap_err(),
            Error::StateMismatch
        );
        assert_eq!(
            check(&[("error", "access_denied")], false).unwrap_err(),
            Error::StateMissing
        );
    }

    fn query_names(query: &[&str]) -> Vec<String> {
        query.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_code_or_an_error_with_state_at_the_redirect_path_is_a_login_response() {
        assert!(is_login_response(
            "/cb",
            "/cb",
            &query_names(&["code", "state", "iss"])
        ));
        assert!(is_login_response(
            "/cb",
            "/cb",
            &query_names(&["error", "state"])
        ));
        assert!(is_login_response(
            "/",
            "/",
            &query_names(&["state", "code"])
        ));
    }

    #[test]
    fn a_trailing_slash_either_way_is_the_same_path() {
        assert!(is_login_response(
            "/cb/",
            "/cb",
            &query_names(&["code", "state"])
        ));
        assert!(is_login_response(
            "/cb",
            "/cb/",
            &query_names(&["code", "state"])
        ));
    }

    #[test]
    fn the_same_parameters_on_another_path_are_the_app_s_own() {
        assert!(!is_login_response(
            "/invite",
            "/",
            &query_names(&["code", "state"])
        ));
        assert!(!is_login_response(
            "/cb/x",
            "/cb",
            &query_names(&["code", "state"])
        ));
    }

    #[test]
    fn without_state_or_without_code_and_error_it_is_not_a_login_response() {
        assert!(!is_login_response("/cb", "/cb", &query_names(&["code"])));
        assert!(!is_login_response("/cb", "/cb", &query_names(&["state"])));
        assert!(!is_login_response(
            "/cb",
            "/cb",
            &query_names(&["state", "iss"])
        ));
    }
}
