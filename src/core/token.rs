//! The back-channel half: token request bodies and token responses
//! ([RFC 6749 §4.1.3](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3),
//! [§5](https://www.rfc-editor.org/rfc/rfc6749#section-5),
//! [§6](https://www.rfc-editor.org/rfc/rfc6749#section-6)).
//!
//! A response becomes a [`TokenSet`] holding the *absolute* expiry
//! (`expires_at_ms = now + expires_in`), never the relative lifetime, so a
//! stored set stays meaningful after a reload. On refresh, values the server
//! leaves out (a non-rotated refresh token, the scope) are carried over from
//! the previous set.
//!
//! Request bodies are returned as name/value pairs; the browser encodes them
//! as `application/x-www-form-urlencoded` (`URLSearchParams`).

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::authorize::ValidatedCallback;
use super::error::Error;
use super::secret::{AccessToken, IdToken, Nonce, RefreshToken};
use crate::core::atproto::holds_atproto;
use crate::core::platform::HttpReply;

/// The largest lifetime accepted in `expires_in` / `refresh_expires_in`:
/// 100 years. Anything larger is treated as a malformed response.
pub const MAX_LIFETIME_SECONDS: u64 = 100 * 365 * 24 * 60 * 60;

/// What the app gets back from a completed login besides tokens.
#[derive(Debug, PartialEq, Eq)]
pub struct CallbackOutcome {
    /// The `nonce` the ID token must carry, if one was sent.
    pub nonce: Option<Nonce>,
    /// The app's `appState` JSON text from `login()`.
    pub app_state: Option<String>,
    /// The thumbprint of the DPoP key the code is bound to, if any: the
    /// exchange is signed with it and the tokens come back bound to it.
    pub dpop_jkt: Option<String>,
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// The access token request body for a validated redirect
/// ([RFC 6749 §4.1.3](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3),
/// [RFC 7636 §4.5](https://www.rfc-editor.org/rfc/rfc7636#section-4.5)):
/// `grant_type=authorization_code`, `code`, `redirect_uri`, `client_id`,
/// `code_verifier`, in that order.
///
/// Consumes the callback: a code is exchanged at most once.
pub fn code_exchange_params(cb: ValidatedCallback) -> (Vec<(String, String)>, CallbackOutcome) {
    let parts = cb.into_parts();
    let params = vec![
        pair("grant_type", "authorization_code"),
        pair("code", parts.code.secret()),
        pair("redirect_uri", &parts.redirect_uri),
        pair("client_id", &parts.client_id),
        pair("code_verifier", parts.verifier.secret()),
    ];
    let outcome = CallbackOutcome {
        nonce: parts.nonce,
        app_state: parts.app_state,
        dpop_jkt: parts.dpop_jkt,
    };
    (params, outcome)
}

/// The refresh request body
/// ([RFC 6749 §6](https://www.rfc-editor.org/rfc/rfc6749#section-6)):
/// `grant_type=refresh_token`, `refresh_token`, `client_id`, then `scope`
/// when given (omit it to keep the original scope).
pub fn refresh_params(
    refresh_token: &RefreshToken,
    client_id: &str,
    scope: Option<&str>,
) -> Vec<(String, String)> {
    let mut params = vec![
        pair("grant_type", "refresh_token"),
        pair("refresh_token", refresh_token.secret()),
        pair("client_id", client_id),
    ];
    if let Some(scope) = scope {
        params.push(pair("scope", scope));
    }
    params
}

/// A lifetime in seconds as servers send it: a JSON number or, from some
/// servers, a numeric string (`"3600"`). Checked by [`TokenSet::from_response`].
#[derive(Debug, Clone, PartialEq)]
pub enum Lifetime {
    /// A JSON number.
    Number(f64),
    /// A JSON string, expected to hold a number.
    Text(String),
}

impl Lifetime {
    /// The lifetime in whole seconds, or `None` if it is not a finite number
    /// in `0..=MAX_LIFETIME_SECONDS`. Fractions are truncated.
    pub(crate) fn seconds(&self) -> Option<u64> {
        let n = match self {
            Lifetime::Number(n) => *n,
            // As `text.trim().parse::<f64>()` would, without the float parser.
            Lifetime::Text(text) => {
                return super::decimal::whole_seconds(text.trim(), MAX_LIFETIME_SECONDS)
            }
        };
        // NaN fails both comparisons.
        (n >= 0.0 && n <= MAX_LIFETIME_SECONDS as f64).then_some(n as u64)
    }
}

impl<'de> Deserialize<'de> for Lifetime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LifetimeVisitor;

        impl Visitor<'_> for LifetimeVisitor {
            type Value = Lifetime;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds or a numeric string")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lifetime, E> {
                Ok(Lifetime::Number(v as f64))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lifetime, E> {
                Ok(Lifetime::Number(v as f64))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Lifetime, E> {
                Ok(Lifetime::Number(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lifetime, E> {
                Ok(Lifetime::Text(v.to_string()))
            }
        }

        deserializer.deserialize_any(LifetimeVisitor)
    }
}

/// A token endpoint response body as received, success or error
/// ([RFC 6749 §5.1](https://www.rfc-editor.org/rfc/rfc6749#section-5.1),
/// [§5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)). Every field
/// is optional and unknown fields are ignored; [`TokenSet::from_response`]
/// decides what is acceptable. Secrets are held in their newtypes, so `Debug`
/// is redacted.
///
/// Each member is read on its own ([`loose`]): one of another JSON type
/// (`scope` as an array, a numeric `sub`) reads as absent, and a lifetime
/// that is not a number or a string as an unreadable one, rather than
/// making the whole answer unreadable — a successful answer's tokens must
/// be seen to be kept (a rotation) or revoked (a refused login).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RawTokenResponse {
    /// `access_token`.
    #[serde(deserialize_with = "loose::secret")]
    pub access_token: Option<AccessToken>,
    /// `token_type`: `Bearer`, or `DPoP` for a DPoP request (any case).
    #[serde(deserialize_with = "loose::text")]
    pub token_type: Option<String>,
    /// `expires_in`, seconds.
    #[serde(deserialize_with = "loose::lifetime")]
    pub expires_in: Option<Lifetime>,
    /// `refresh_token`.
    #[serde(deserialize_with = "loose::secret")]
    pub refresh_token: Option<RefreshToken>,
    /// `scope`.
    #[serde(deserialize_with = "loose::text")]
    pub scope: Option<String>,
    /// `id_token` (OpenID Connect).
    #[serde(deserialize_with = "loose::secret")]
    pub id_token: Option<IdToken>,
    /// `refresh_expires_in`, seconds (a Keycloak extension; 0 means the
    /// refresh token does not expire).
    #[serde(deserialize_with = "loose::lifetime")]
    pub refresh_expires_in: Option<Lifetime>,
    /// `error` ([RFC 6749 §5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)).
    #[serde(deserialize_with = "loose::text")]
    pub error: Option<String>,
    /// `error_description`.
    #[serde(deserialize_with = "loose::text")]
    pub error_description: Option<String>,
    /// `error_uri`.
    #[serde(deserialize_with = "loose::text")]
    pub error_uri: Option<String>,
    /// `sub`: the account, which the AT Protocol's token responses name.
    #[serde(deserialize_with = "loose::text")]
    pub sub: Option<String>,
}

/// Reading one token response member whatever its JSON type.
mod loose {
    use super::Lifetime;
    pub use crate::core::json_member::text;
    use crate::core::json_member::Member;
    use serde::de::{self, Deserialize, Deserializer};

    /// A secret string member (its newtype redacts it); any other type
    /// reads as absent.
    pub fn secret<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        text(d)?
            .map(|text| T::deserialize(de::value::StringDeserializer::<D::Error>::new(text)))
            .transpose()
    }

    /// A lifetime: a number or a string; another type is an unreadable
    /// lifetime, which [`super::TokenSet::from_response`] refuses.
    pub fn lifetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lifetime>, D::Error> {
        Ok(match Member::deserialize(d)? {
            Member::Absent => None,
            Member::Text(text) => Some(Lifetime::Text(text)),
            Member::Number(n) => Some(Lifetime::Number(n)),
            Member::Other => Some(Lifetime::Text(String::new())),
        })
    }
}

/// The tokens of a session, as persisted. Times are milliseconds since the
/// Unix epoch. `Debug` is redacted through the secret newtypes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// `"Bearer"`, or `"DPoP"` for tokens bound to [`TokenSet::dpop_jkt`]
    /// (normalised).
    pub token_type: String,
    /// When the access token expires; `None` if the server did not say.
    pub expires_at_ms: Option<u64>,
    /// The refresh token, carried over from the previous set when the server
    /// did not rotate it.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, carried over from the previous set when omitted.
    pub scope: Option<String>,
    /// The ID token, carried over from the previous set when omitted (it is
    /// still the `id_token_hint` for logout).
    pub id_token: Option<IdToken>,
    /// When the refresh token expires, if the server said
    /// (`refresh_expires_in`).
    pub refresh_expires_at_ms: Option<u64>,
    /// When this set was received.
    pub issued_at_ms: u64,
    /// When the login this set descends from (through refreshes) was
    /// completed: a sign-out at time T ends every set whose login was at or
    /// before T, including one a refresh receives after T. Records written
    /// before this field existed read as 0 (an old session).
    #[serde(default)]
    pub login_at_ms: u64,
    /// How many refreshes this set is from its login: the order of one
    /// login's sets, which clocks cannot give (two rotations may fall in one
    /// millisecond; a tab's clock may step back). 0 in records written
    /// before it was kept.
    #[serde(default)]
    pub rotation: u64,
    /// The thumbprint of the DPoP key the tokens are bound to
    /// ([RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)); `None` for
    /// Bearer tokens. Every request with these tokens is signed with that
    /// key, and a refresh of them must come back DPoP-bound too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The AT Protocol account and servers of the session (the `atproto`
    /// profile), carried over by refreshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atproto: Option<Box<crate::core::atproto::Account>>,
}

fn malformed(reason: &str) -> Error {
    Error::MalformedTokenResponse {
        reason: reason.to_string(),
    }
}

/// `now + lifetime`, or a malformed-response error naming `field`.
fn expiry(lifetime: &Lifetime, now_ms: u64, field: &str) -> Result<u64, Error> {
    lifetime
        .seconds()
        .and_then(|s| s.checked_mul(1000))
        .and_then(|ms| now_ms.checked_add(ms))
        .ok_or_else(|| malformed(&format!("{field} is not a valid number of seconds")))
}

/// Whether a token endpoint answer is a successful one: a 2xx without an
/// `error` member (RFC 6749 §5.1, §5.2).
fn is_success(status: u16, raw: &RawTokenResponse) -> bool {
    (200..300).contains(&status) && raw.error.is_none()
}

/// When the answer's refresh token expires (`refresh_expires_in`): `None`
/// when it does not say, or says 0 ("does not expire").
fn refresh_expiry(lifetime: Option<&Lifetime>, now_ms: u64) -> Result<Option<u64>, Error> {
    match lifetime {
        Some(l) if l.seconds() == Some(0) => Ok(None),
        Some(l) => expiry(l, now_ms, "refresh_expires_in").map(Some),
        None => Ok(None),
    }
}

impl TokenSet {
    /// Turns a token endpoint response into a token set
    /// ([RFC 6749 §5.1](https://www.rfc-editor.org/rfc/rfc6749#section-5.1),
    /// [§5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2),
    /// [§6](https://www.rfc-editor.org/rfc/rfc6749#section-6),
    /// [RFC 6750 §4](https://www.rfc-editor.org/rfc/rfc6750#section-4)).
    ///
    /// In order:
    ///
    /// 1. a non-2xx `status`, or an `error` field at any status →
    ///    [`Error::TokenEndpoint`] (code `invalid_grant` or `token_error`;
    ///    `error` is empty if the body had none);
    /// 2. `access_token` (surrounding whitespace dropped, as a header's
    ///    would be) missing, empty, or not printable ASCII (`VSCHAR`,
    ///    [RFC 6749 Appendix A.12](https://www.rfc-editor.org/rfc/rfc6749#appendix-A.12):
    ///    it goes in a header, where a browser may quote a bad value in its
    ///    error) → `malformed_token_response`;
    /// 3. `token_type` missing → `malformed_token_response`; not `Bearer`
    ///    (ASCII case-insensitive, e.g. `DPoP`) → `unsupported_token_type`;
    /// 4. `expires_in` (number or numeric string) → `expires_at_ms = now_ms +
    ///    seconds × 1000`; negative, non-numeric or above
    ///    [`MAX_LIFETIME_SECONDS`] → `malformed_token_response`; likewise
    ///    `refresh_expires_in`, where 0 means "does not expire";
    /// 5. with `previous` (a refresh): a missing `refresh_token` keeps the
    ///    previous one and its expiry (no rotation, §6); a missing `scope` or
    ///    `id_token` keeps the previous one.
    pub fn from_response(
        status: u16,
        raw: RawTokenResponse,
        now_ms: u64,
        previous: Option<&TokenSet>,
        dpop_jkt: Option<&str>,
    ) -> Result<TokenSet, Error> {
        if !is_success(status, &raw) {
            return Err(Error::TokenEndpoint {
                status,
                error: raw.error.unwrap_or_default(),
                error_description: raw.error_description,
                error_uri: raw.error_uri,
                // Headers are not the body's: the caller adds it.
                retry_after_s: None,
            });
        }
        // Surrounding whitespace dropped, as a header value's would be (an
        // app's `refresh` reading a body with a final newline).
        let access_token = raw
            .access_token
            .map(|t| match t.secret().trim_matches([' ', '\t', '\r', '\n']) {
                trimmed if trimmed.len() == t.secret().len() => t,
                trimmed => AccessToken::new(trimmed.to_owned()),
            })
            .filter(|t| !t.secret().is_empty())
            .ok_or_else(|| malformed("no access_token"))?;
        if !access_token
            .secret()
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b))
        {
            return Err(malformed("the access_token is not printable ASCII"));
        }
        let token_type = raw.token_type.ok_or_else(|| malformed("no token_type"))?;
        // A DPoP request must get a DPoP-bound token: a Bearer answer would
        // be a downgrade to a token that works without the key.
        let expected = if dpop_jkt.is_some() { "DPoP" } else { "Bearer" };
        if !token_type.eq_ignore_ascii_case(expected) {
            return Err(Error::UnsupportedTokenType {
                token_type,
                expected,
            });
        }
        // An AT Protocol refresh answered for another account: its access
        // token would act as that account while the session shows this one;
        // one whose grant lost `atproto` no longer acts as the account at
        // all (either way its rotated refresh token is still kept:
        // `rotation_in_refused`).
        // The answer must name the account (`sub` is required in every
        // atproto token response): one without it is not taken on trust.
        if let Some(account) = previous.and_then(|p| p.atproto.as_deref()) {
            if raw.sub.as_deref() != Some(account.did.as_str()) {
                return Err(Error::IssuerMismatch);
            }
            if raw
                .scope
                .as_deref()
                .is_some_and(|scope| !holds_atproto(scope))
            {
                return Err(malformed("the granted scope does not contain atproto"));
            }
        }
        let expires_at_ms = raw
            .expires_in
            .as_ref()
            .map(|l| expiry(l, now_ms, "expires_in"))
            .transpose()?;
        let refresh_expires_at_ms = refresh_expiry(raw.refresh_expires_in.as_ref(), now_ms)?;

        let new_refresh = raw.refresh_token.filter(|t| !t.secret().is_empty());
        let (refresh_token, refresh_expires_at_ms) = match (new_refresh, previous) {
            (Some(token), _) => (Some(token), refresh_expires_at_ms),
            (None, Some(prev)) => (
                prev.refresh_token.clone(),
                refresh_expires_at_ms.or(prev.refresh_expires_at_ms),
            ),
            (None, None) => (None, refresh_expires_at_ms),
        };

        Ok(TokenSet {
            access_token,
            token_type: expected.to_string(),
            expires_at_ms,
            refresh_token,
            scope: raw.scope.or_else(|| previous.and_then(|p| p.scope.clone())),
            id_token: raw
                .id_token
                .or_else(|| previous.and_then(|p| p.id_token.clone())),
            refresh_expires_at_ms,
            // Strictly after the set it replaces, even within one ms: "newest
            // by issue time" must order a refresh after its base.
            issued_at_ms: previous.map_or(now_ms, |p| now_ms.max(p.issued_at_ms.saturating_add(1))),
            login_at_ms: previous.map_or(now_ms, |p| p.login_at_ms),
            rotation: previous.map_or(0, |p| p.rotation + 1),
            dpop_jkt: dpop_jkt.map(str::to_owned),
            atproto: previous.and_then(|p| p.atproto.clone()),
        })
    }

    /// The rotation a refresh answer carried when
    /// [`TokenSet::from_response`] refuses the rest of it (no access token,
    /// another `token_type`, an unreadable lifetime; for an AT Protocol
    /// session, another account's `sub` or a grant without `atproto`): a successful answer
    /// (2xx, no `error`) with a new refresh token means the server may
    /// already have retired `previous`'s (RFC 6749 §6), so that new token is
    /// the session whatever else is wrong. `previous` with the new refresh
    /// token and its lifetime (`previous`'s when unreadable), counted as the
    /// next rotation. The access token and its expiry stay `previous`'s: the
    /// refused one is never used, and the next call that finds the old one
    /// stale or rejected refreshes with the new refresh token. `None`: an
    /// error answer, or no new refresh token.
    pub fn rotation_in_refused(
        previous: &TokenSet,
        status: u16,
        raw: &RawTokenResponse,
        now_ms: u64,
    ) -> Option<TokenSet> {
        if !is_success(status, raw) {
            return None;
        }
        let rotated = raw
            .refresh_token
            .as_ref()
            .filter(|t| !t.secret().is_empty() && previous.refresh_token.as_ref() != Some(*t))?;
        let refresh_expires_at_ms = refresh_expiry(raw.refresh_expires_in.as_ref(), now_ms)
            .unwrap_or(previous.refresh_expires_at_ms);
        Some(TokenSet {
            refresh_token: Some(rotated.clone()),
            refresh_expires_at_ms,
            issued_at_ms: now_ms.max(previous.issued_at_ms.saturating_add(1)),
            rotation: previous.rotation + 1,
            ..previous.clone()
        })
    }

    /// The tokens a successful code exchange answer (2xx, no `error`)
    /// carried when [`TokenSet::from_response`] refuses it: they were
    /// issued, so they are revoked rather than left alive at the server.
    /// Only the tokens are read (an absent access token is empty, which
    /// revokes nothing); `dpop_jkt` is the login's key, deleted after.
    /// `None`: an error answer, or no token in it.
    pub fn issued_in_refused(
        status: u16,
        raw: &RawTokenResponse,
        now_ms: u64,
        dpop_jkt: Option<&str>,
    ) -> Option<TokenSet> {
        if !is_success(status, raw) {
            return None;
        }
        let access_token = raw.access_token.clone().filter(|t| !t.secret().is_empty());
        let refresh_token = raw.refresh_token.clone().filter(|t| !t.secret().is_empty());
        if access_token.is_none() && refresh_token.is_none() {
            return None;
        }
        Some(TokenSet {
            access_token: access_token.unwrap_or_else(|| AccessToken::new(String::new())),
            token_type: raw.token_type.clone().unwrap_or_default(),
            expires_at_ms: None,
            refresh_token,
            scope: None,
            id_token: None,
            refresh_expires_at_ms: None,
            issued_at_ms: now_ms,
            login_at_ms: now_ms,
            rotation: 0,
            dpop_jkt: dpop_jkt.map(str::to_owned),
            atproto: None,
        })
    }

    /// Whether the access token expires within `leeway_ms` of `now_ms` (or
    /// already has). A set without a known expiry is never stale; the API's
    /// "expired" answer is then the only trigger.
    pub fn is_stale(&self, now_ms: u64, leeway_ms: u64) -> bool {
        self.expires_at_ms
            .is_some_and(|at| now_ms.saturating_add(leeway_ms) >= at)
    }

    /// Whether the set signs the user in at `now_ms`: its access token is
    /// usable, or it can be refreshed (`isAuthenticated`).
    pub fn signs_in(&self, now_ms: u64) -> bool {
        !self.is_stale(now_ms, 0) || self.can_refresh(now_ms)
    }

    /// Whether there is a refresh token that has not expired at `now_ms`.
    pub fn can_refresh(&self, now_ms: u64) -> bool {
        self.refresh_token.is_some() && self.refresh_expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

/// Turns a token endpoint reply into a token set
/// ([RFC 6749 §5.1](https://www.rfc-editor.org/rfc/rfc6749#section-5.1),
/// [§5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2)): a 2xx whose
/// body is not a token response is malformed; an error status with an
/// unreadable body is still that status's error.
pub fn token_set_from_reply(
    reply: HttpReply<RawTokenResponse>,
    now_ms: u64,
    previous: Option<&TokenSet>,
    dpop_jkt: Option<&str>,
) -> Result<TokenSet, Error> {
    let raw = match reply.body {
        Ok(raw) => raw,
        Err(reason) if (200..300).contains(&reply.status) => {
            return Err(Error::MalformedTokenResponse { reason })
        }
        Err(_) => RawTokenResponse::default(),
    };
    TokenSet::from_response(reply.status, raw, now_ms, previous, dpop_jkt).map_err(|mut error| {
        if let Error::TokenEndpoint { retry_after_s, .. } = &mut error {
            *retry_after_s = reply.retry_after_s;
        }
        error
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::authorize::{validate_callback, PendingTransaction};
    use crate::core::secret::{PkceVerifier, State};

    const NOW: u64 = 1_700_000_000_000;

    fn raw(json: serde_json::Value) -> RawTokenResponse {
        serde_json::from_value(json).unwrap()
    }

    fn ok(json: serde_json::Value) -> Result<TokenSet, Error> {
        TokenSet::from_response(200, raw(json), NOW, None, None)
    }

    fn basic() -> serde_json::Value {
        serde_json::json!({
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "rt-1",
            "scope": "openid api",
            "id_token": "h.p.s"
        })
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut json = basic();
        json[field] = value;
        json
    }

    fn without(field: &str) -> serde_json::Value {
        let mut json = basic();
        json.as_object_mut().unwrap().remove(field);
        json
    }

    #[test]
    fn code_exchange_params_in_order() {
        let pending = PendingTransaction {
            state: State::new("s".into()),
            verifier: PkceVerifier::new("the-verifier".into()),
            nonce: Some(Nonce::new("n".into())),
            redirect_uri: "https://app.example.com/cb".into(),
            app_state: Some("{}".into()),
            created_at_ms: NOW,
            issuer: "https://idp.example.com".into(),
            client_id: "spa".into(),
            dpop_jkt: None,
            dpop_nonce: None,
        };
        let params = vec![
            ("code".to_string(), "the-code".to_string()),
            ("state".to_string(), "s".to_string()),
        ];
        let cb = validate_callback(
            Some(pending),
            &params,
            "https://idp.example.com",
            false,
            NOW,
        )
        .unwrap();
        let (body, outcome) = code_exchange_params(cb);
        assert_eq!(
            body,
            vec![
                pair("grant_type", "authorization_code"),
                pair("code", "the-code"),
                pair("redirect_uri", "https://app.example.com/cb"),
                pair("client_id", "spa"),
                pair("code_verifier", "the-verifier"),
            ]
        );
        assert_eq!(outcome.nonce, Some(Nonce::new("n".into())));
        assert_eq!(outcome.app_state.as_deref(), Some("{}"));
    }

    #[test]
    fn refresh_params_with_and_without_scope() {
        let rt = RefreshToken::new("rt".into());
        assert_eq!(
            refresh_params(&rt, "spa", None),
            vec![
                pair("grant_type", "refresh_token"),
                pair("refresh_token", "rt"),
                pair("client_id", "spa"),
            ]
        );
        assert_eq!(
            refresh_params(&rt, "spa", Some("api")).last(),
            Some(&pair("scope", "api"))
        );
    }

    #[test]
    fn success_gives_absolute_expiry() {
        let set = ok(basic()).unwrap();
        assert_eq!(set.access_token.secret(), "at-1");
        assert_eq!(set.token_type, "Bearer");
        assert_eq!(set.expires_at_ms, Some(NOW + 3_600_000));
        assert_eq!(
            set.refresh_token.as_ref().map(RefreshToken::secret),
            Some("rt-1")
        );
        assert_eq!(set.scope.as_deref(), Some("openid api"));
        assert_eq!(set.id_token.as_ref().map(IdToken::secret), Some("h.p.s"));
        assert_eq!(set.refresh_expires_at_ms, None);
        assert_eq!(set.issued_at_ms, NOW);
    }

    #[test]
    fn any_2xx_is_success() {
        assert!(TokenSet::from_response(201, raw(basic()), NOW, None, None).is_ok());
    }

    #[test]
    fn expires_in_as_numeric_string() {
        let set = ok(with("expires_in", "300".into())).unwrap();
        assert_eq!(set.expires_at_ms, Some(NOW + 300_000));
        let set = ok(with("expires_in", " 60 ".into())).unwrap();
        assert_eq!(set.expires_at_ms, Some(NOW + 60_000));
    }

    #[test]
    fn expires_in_fraction_is_truncated_and_zero_allowed() {
        assert_eq!(
            ok(with("expires_in", 1.9.into())).unwrap().expires_at_ms,
            Some(NOW + 1000)
        );
        assert_eq!(
            ok(with("expires_in", 0.into())).unwrap().expires_at_ms,
            Some(NOW)
        );
    }

    #[test]
    fn no_expires_in_means_unknown_expiry() {
        let set = ok(without("expires_in")).unwrap();
        assert_eq!(set.expires_at_ms, None);
        assert!(!set.is_stale(u64::MAX, u64::MAX));
        assert_eq!(
            ok(with("expires_in", serde_json::Value::Null))
                .unwrap()
                .expires_at_ms,
            None
        );
    }

    #[test]
    fn bad_expires_in_is_malformed() {
        for value in [
            serde_json::json!(-1),
            serde_json::json!("-5"),
            serde_json::json!("soon"),
            serde_json::json!(""),
            serde_json::json!("NaN"),
            serde_json::json!("inf"),
            serde_json::json!(1e300),
            serde_json::json!(MAX_LIFETIME_SECONDS + 1),
            serde_json::json!(u64::MAX),
        ] {
            let err = ok(with("expires_in", value.clone())).unwrap_err();
            assert_eq!(err.code(), "malformed_token_response", "{value}");
            assert!(err.to_string().contains("expires_in"));
        }
        assert!(ok(with("expires_in", MAX_LIFETIME_SECONDS.into())).is_ok());
    }

    #[test]
    fn a_lifetime_of_another_type_is_read_and_refused_as_malformed() {
        for bad in [
            serde_json::json!([1]),
            serde_json::json!({"s": 1}),
            true.into(),
        ] {
            let parsed: RawTokenResponse = serde_json::from_value(with("expires_in", bad)).unwrap();
            let error = TokenSet::from_response(200, parsed, NOW, None, None).unwrap_err();
            assert_eq!(error.code(), "malformed_token_response");
        }
    }

    #[test]
    fn a_member_of_another_type_reads_as_absent_and_the_tokens_stay_readable() {
        let body = serde_json::json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 60,
            "refresh_token": "rt-1", "scope": ["openid", "api"], "sub": 42,
            "id_token": {"not": "a jwt"}, "error_description": null, "error_uri": false,
            "refresh_expires_in": [0],
        });
        let raw: RawTokenResponse = serde_json::from_value(body).unwrap();
        assert_eq!(raw.access_token.as_ref().unwrap().secret(), "at-1");
        assert_eq!(raw.refresh_token.as_ref().unwrap().secret(), "rt-1");
        assert_eq!((&raw.scope, &raw.sub, &raw.id_token), (&None, &None, &None));
        assert_eq!((&raw.error_description, &raw.error_uri), (&None, &None));
        // Refused for its unreadable refresh lifetime, but its tokens are seen.
        let error = TokenSet::from_response(200, raw.clone(), NOW, None, None).unwrap_err();
        assert_eq!(error.code(), "malformed_token_response");
        let issued = TokenSet::issued_in_refused(200, &raw, NOW, None).unwrap();
        assert_eq!(issued.refresh_token.unwrap().secret(), "rt-1");
        // A token of another type is no token.
        let raw: RawTokenResponse =
            serde_json::from_value(serde_json::json!({"access_token": 7, "refresh_token": ["rt"]}))
                .unwrap();
        assert_eq!((raw.access_token, raw.refresh_token), (None, None));
    }

    #[test]
    fn bearer_is_case_insensitive_and_normalised() {
        for t in ["bearer", "BEARER", "Bearer", "bEaReR"] {
            assert_eq!(
                ok(with("token_type", t.into())).unwrap().token_type,
                "Bearer"
            );
        }
    }

    #[test]
    fn dpop_and_other_types_are_unsupported_without_dpop() {
        for t in ["DPoP", "mac", "N_A", ""] {
            assert_eq!(
                ok(with("token_type", t.into())).unwrap_err(),
                Error::UnsupportedTokenType {
                    token_type: t.into(),
                    expected: "Bearer",
                }
            );
        }
    }

    fn dpop(json: serde_json::Value) -> Result<TokenSet, Error> {
        TokenSet::from_response(200, raw(json), NOW, None, Some("jkt-1"))
    }

    #[test]
    fn a_dpop_request_gets_a_dpop_bound_set() {
        let set = dpop(with("token_type", "dpop".into())).unwrap();
        assert_eq!(set.token_type, "DPoP");
        assert_eq!(set.dpop_jkt.as_deref(), Some("jkt-1"));
    }

    #[test]
    fn a_bearer_answer_to_a_dpop_request_is_a_refused_downgrade() {
        assert_eq!(
            dpop(basic()).unwrap_err(),
            Error::UnsupportedTokenType {
                token_type: "Bearer".into(),
                expected: "DPoP",
            }
        );
    }

    #[test]
    fn a_refresh_of_a_bound_set_stays_bound() {
        let base = dpop(with("token_type", "DPoP".into())).unwrap();
        let body = raw(with("token_type", "DPoP".into()));
        let next =
            TokenSet::from_response(200, body, NOW + 1, Some(&base), base.dpop_jkt.as_deref())
                .unwrap();
        assert_eq!(next.dpop_jkt, base.dpop_jkt);
    }

    #[test]
    fn an_atproto_refresh_answered_for_another_account_is_refused_but_its_rotation_kept() {
        let account = crate::core::atproto_login::tests::account();
        let base = TokenSet {
            atproto: Some(Box::new(account.clone())),
            ..ok(basic()).unwrap()
        };
        let answer = |sub: Option<&str>| {
            let mut json = basic();
            json["refresh_token"] = "rt-next".into();
            json["scope"] = "atproto".into();
            if let Some(sub) = sub {
                json["sub"] = sub.into();
            }
            raw(json)
        };
        let refresh = |body| TokenSet::from_response(200, body, NOW + 1, Some(&base), None);
        assert!(refresh(answer(Some(&account.did))).is_ok());
        // Every atproto token response names the account: one without is
        // refused too (its rotation kept, as below).
        let unnamed = answer(None);
        assert_eq!(refresh(unnamed.clone()).unwrap_err(), Error::IssuerMismatch);
        let kept = TokenSet::rotation_in_refused(&base, 200, &unnamed, NOW + 1).unwrap();
        assert_eq!(kept.refresh_token.unwrap().secret(), "rt-next");
        let other = answer(Some("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"));
        assert_eq!(refresh(other.clone()).unwrap_err(), Error::IssuerMismatch);
        let kept = TokenSet::rotation_in_refused(&base, 200, &other, NOW + 1).unwrap();
        assert_eq!(kept.refresh_token.unwrap().secret(), "rt-next");
        assert_eq!(
            kept.access_token, base.access_token,
            "the new access token is not used"
        );
    }

    #[test]
    fn an_atproto_refresh_whose_grant_lost_atproto_is_refused_but_its_rotation_kept() {
        let account = crate::core::atproto_login::tests::account();
        let base = TokenSet {
            atproto: Some(Box::new(account.clone())),
            ..ok(basic()).unwrap()
        };
        let answer = |scope: &str| {
            let mut json = basic();
            json["refresh_token"] = "rt-next".into();
            json["scope"] = scope.into();
            json["sub"] = account.did.clone().into();
            raw(json)
        };
        let refresh = |body| TokenSet::from_response(200, body, NOW + 1, Some(&base), None);
        assert!(refresh(answer("atproto transition:generic")).is_ok());
        // RFC 6749 §5.1: an answer may leave `scope` out; the grant stands.
        let mut unscoped = basic();
        unscoped["refresh_token"] = "rt-next".into();
        unscoped["sub"] = account.did.clone().into();
        unscoped.as_object_mut().unwrap().remove("scope");
        let kept_scope = refresh(raw(unscoped)).unwrap().scope;
        assert_eq!(kept_scope, base.scope);
        let narrowed = answer("transition:generic atprotocol");
        assert_eq!(
            refresh(narrowed.clone()).unwrap_err().to_string(),
            "malformed token response: the granted scope does not contain atproto"
        );
        let kept = TokenSet::rotation_in_refused(&base, 200, &narrowed, NOW + 1).unwrap();
        assert_eq!(kept.refresh_token.unwrap().secret(), "rt-next");
        // An OpenID Connect session's scope is the server's business.
        let plain = TokenSet::from_response(
            200,
            answer("api"),
            NOW + 1,
            Some(&ok(basic()).unwrap()),
            None,
        );
        assert_eq!(plain.unwrap().scope.as_deref(), Some("api"));
    }

    #[test]
    fn missing_token_type_is_malformed() {
        assert_eq!(
            ok(without("token_type")).unwrap_err().code(),
            "malformed_token_response"
        );
    }

    #[test]
    fn missing_or_empty_access_token_is_malformed() {
        assert_eq!(
            ok(without("access_token")).unwrap_err().code(),
            "malformed_token_response"
        );
        assert_eq!(
            ok(with("access_token", "".into())).unwrap_err().code(),
            "malformed_token_response"
        );
        assert_eq!(
            ok(serde_json::json!({})).unwrap_err().code(),
            "malformed_token_response"
        );
    }

    #[test]
    fn an_access_token_that_cannot_go_in_a_header_is_malformed() {
        for token in [
            "sekrit\n1",
            "sekrit\r1",
            "sekrit\u{0}",
            "sekrit\u{7f}",
            "sekrit-été",
        ] {
            let error = ok(with("access_token", token.into())).unwrap_err();
            assert_eq!(error.code(), "malformed_token_response", "{token:?}");
            assert!(!format!("{error} {error:?}").contains("sekrit"), "{error}");
        }
        assert!(ok(with("access_token", "a b~!".into())).is_ok());
        let trimmed = ok(with("access_token", " \tat-1\r\n".into())).unwrap();
        assert_eq!(trimmed.access_token.secret(), "at-1");
        assert_eq!(
            ok(with("access_token", " \n".into())).unwrap_err().code(),
            "malformed_token_response"
        );
    }

    #[test]
    fn error_json_with_400_is_a_token_endpoint_error() {
        let body = raw(serde_json::json!({
            "error": "invalid_grant",
            "error_description": "Refresh token reused",
            "error_uri": "https://idp.example.com/e"
        }));
        let err = TokenSet::from_response(400, body, NOW, None, None).unwrap_err();
        assert_eq!(
            err,
            Error::TokenEndpoint {
                status: 400,
                error: "invalid_grant".into(),
                error_description: Some("Refresh token reused".into()),
                error_uri: Some("https://idp.example.com/e".into()),
                retry_after_s: None,
            }
        );
        assert_eq!(err.code(), "invalid_grant");
        assert_eq!(err.status(), Some(400));

        let body = raw(serde_json::json!({"error": "invalid_client"}));
        let err = TokenSet::from_response(401, body, NOW, None, None).unwrap_err();
        assert_eq!(err.code(), "token_error");
        assert_eq!(err.server_error(), Some("invalid_client"));
    }

    #[test]
    fn non_2xx_without_error_body_is_a_token_error() {
        // e.g. a 502 with an HTML body: the browser passes a default response.
        let err =
            TokenSet::from_response(502, RawTokenResponse::default(), NOW, None, None).unwrap_err();
        assert_eq!(err.code(), "token_error");
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.server_error(), None);
        // Even with tokens in the body, a non-2xx status is not a success.
        assert_eq!(
            TokenSet::from_response(500, raw(basic()), NOW, None, None)
                .unwrap_err()
                .code(),
            "token_error"
        );
    }

    #[test]
    fn error_field_with_200_is_a_token_endpoint_error() {
        let err = ok(with("error", "invalid_grant".into())).unwrap_err();
        assert_eq!(err.code(), "invalid_grant");
        assert_eq!(err.status(), Some(200));
    }

    fn previous() -> TokenSet {
        TokenSet {
            refresh_expires_at_ms: Some(NOW + 86_400_000),
            ..ok(basic()).unwrap()
        }
    }

    #[test]
    fn a_login_is_rotation_zero_and_each_refresh_counts_one_more() {
        let login = ok(basic()).unwrap();
        assert_eq!((login.rotation, login.login_at_ms), (0, NOW));
        let first = TokenSet::from_response(200, raw(basic()), NOW + 5, Some(&login), None);
        let first = first.unwrap();
        assert_eq!((first.rotation, first.login_at_ms), (1, NOW));
        let second = TokenSet::from_response(200, raw(basic()), NOW + 9, Some(&first), None);
        assert_eq!(second.unwrap().rotation, 2);
    }

    #[test]
    fn refresh_without_refresh_token_keeps_the_previous_one() {
        let response = raw(serde_json::json!({
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 60
        }));
        let prev = previous();
        let set = TokenSet::from_response(200, response, NOW + 5, Some(&prev), None).unwrap();
        assert_eq!(set.access_token.secret(), "at-2");
        assert_eq!(set.refresh_token, prev.refresh_token);
        assert_eq!(set.refresh_expires_at_ms, prev.refresh_expires_at_ms);
        assert_eq!(set.scope, prev.scope);
        assert_eq!(set.id_token, prev.id_token);
        assert_eq!(set.expires_at_ms, Some(NOW + 5 + 60_000));
        assert_eq!(set.issued_at_ms, NOW + 5);
    }

    #[test]
    fn refresh_with_rotation_replaces_the_refresh_token() {
        let response = raw(serde_json::json!({
            "access_token": "at-2", "token_type": "Bearer",
            "refresh_token": "rt-2", "scope": "api", "refresh_expires_in": "1800"
        }));
        let set = TokenSet::from_response(200, response, NOW, Some(&previous()), None).unwrap();
        assert_eq!(
            set.refresh_token.as_ref().map(RefreshToken::secret),
            Some("rt-2")
        );
        assert_eq!(set.refresh_expires_at_ms, Some(NOW + 1_800_000));
        assert_eq!(set.scope.as_deref(), Some("api"));
        assert_eq!(set.expires_at_ms, None);
    }

    #[test]
    fn refresh_expires_in_zero_means_no_expiry() {
        let set = ok(with("refresh_expires_in", 0.into())).unwrap();
        assert_eq!(set.refresh_expires_at_ms, None);
        assert!(set.can_refresh(u64::MAX));
        assert_eq!(
            ok(with("refresh_expires_in", (-1).into()))
                .unwrap_err()
                .code(),
            "malformed_token_response"
        );
    }

    #[test]
    fn first_response_without_refresh_token_has_none() {
        let set = ok(without("refresh_token")).unwrap();
        assert_eq!(set.refresh_token, None);
        assert!(!set.can_refresh(NOW));
        assert_eq!(
            ok(with("refresh_token", "".into())).unwrap().refresh_token,
            None
        );
    }

    #[test]
    fn can_refresh_respects_refresh_expiry() {
        let set = previous();
        assert!(set.can_refresh(NOW));
        assert!(!set.can_refresh(NOW + 86_400_000));
    }

    #[test]
    fn a_usable_or_refreshable_set_signs_in() {
        let set = ok(basic()).unwrap(); // expires at NOW + 3_600_000, a refresh token
        assert!(set.signs_in(NOW), "usable");
        assert!(set.signs_in(NOW + 4_000_000), "expired, refreshable");
        let spent = TokenSet {
            refresh_token: None,
            ..ok(basic()).unwrap()
        };
        assert!(spent.signs_in(NOW));
        assert!(
            !spent.signs_in(NOW + 3_600_000),
            "expired, nothing to refresh with"
        );
    }

    #[test]
    fn is_stale_with_leeway() {
        let set = ok(basic()).unwrap(); // expires at NOW + 3_600_000
        assert!(!set.is_stale(NOW, 30_000));
        assert!(!set.is_stale(NOW + 3_569_999, 30_000));
        assert!(set.is_stale(NOW + 3_570_000, 30_000));
        assert!(set.is_stale(NOW + 3_600_000, 0));
        assert!(set.is_stale(NOW + 4_000_000, 0));
        assert!(set.is_stale(u64::MAX, u64::MAX));
    }

    #[test]
    fn token_set_round_trips_and_debug_is_redacted() {
        let set = ok(basic()).unwrap();
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json["access_token"], "at-1");
        assert_eq!(json["expires_at_ms"], NOW + 3_600_000);
        let back: TokenSet = serde_json::from_value(json).unwrap();
        assert_eq!(back, set);
        let debug = format!("{set:?} {:?}", raw(basic()));
        for secret in ["at-1", "rt-1", "h.p.s"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
