//! What the app's listeners receive: which event a session change is, and
//! its detail's fields in the order `public_api` declares them. The binding
//! only turns an [`AppEvent`] into a JS object (`wasm_api.rs`); which
//! changes the app hears of, and what each says, is decided here.

use crate::core::message::EndReason;
use crate::core::public_api::{
    Event, StorageKind, StorageProblem, STORAGE_EVENT_FIELDS, TOKENS_EVENT_FIELDS,
};
use crate::core::session::SessionChange;
use crate::core::{AccessToken, TokenSet};

/// One value of an event's detail.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailValue<'a> {
    /// A string.
    Text(&'a str),
    /// A string made for the event (a failed write's reason).
    Made(String),
    /// A number (a time in ms since the epoch).
    Number(f64),
    /// `null`: the value is not known (and what fills the unused places).
    Null,
    /// The access token the app is given (redacted in `Debug`).
    Token(&'a AccessToken),
}

/// An event for the app: its name and its detail's fields, in order (no
/// allocation: a detail has at most four fields).
#[derive(Debug, Clone, PartialEq)]
pub struct AppEvent<'a> {
    /// Which event.
    pub event: Event,
    /// The detail's fields: the event's declared list (none for
    /// `sessionExpired` and `signedOut`).
    pub fields: &'static [&'static str],
    /// Their values, in the same order; places past `fields` are `Null`.
    pub values: [DetailValue<'a>; 4],
}

impl<'a> AppEvent<'a> {
    /// The event a change of this tab's session is, for a session kept in
    /// `storage` (named by a failed write's `storage` event).
    pub fn of_change(change: &SessionChange<'a>, storage: StorageKind) -> AppEvent<'a> {
        match *change {
            SessionChange::Tokens { tokens, source } => AppEvent::tokens(tokens, source.name()),
            SessionChange::User => AppEvent::bare(Event::User),
            SessionChange::Ended(EndReason::Expired) => AppEvent::bare(Event::SessionExpired),
            SessionChange::Ended(EndReason::SignedOut) => AppEvent::bare(Event::SignedOut),
            SessionChange::PersistFailed(error) => {
                // The code and the message only: errors carry no secret.
                let reason = DetailValue::Made(format!("{}: {error}", error.code()));
                AppEvent::storage_because(StorageProblem::WriteFailed, storage, reason)
            }
        }
    }

    /// A `storage` event: `problem` with the storage it concerns and why.
    pub fn storage(problem: StorageProblem, storage: StorageKind, reason: &'a str) -> AppEvent<'a> {
        AppEvent::storage_because(problem, storage, DetailValue::Text(reason))
    }

    /// The fields and their values, in order.
    pub fn detail(&self) -> impl Iterator<Item = (&'static str, &DetailValue<'a>)> {
        self.fields.iter().copied().zip(&self.values)
    }

    fn storage_because(
        problem: StorageProblem,
        storage: StorageKind,
        reason: DetailValue<'a>,
    ) -> AppEvent<'a> {
        AppEvent {
            event: Event::Storage,
            fields: &STORAGE_EVENT_FIELDS,
            values: [
                DetailValue::Text(problem.name()),
                DetailValue::Text(storage.as_str()),
                reason,
                DetailValue::Null,
            ],
        }
    }

    /// A `tokens` event for `tokens`, which came from `source`.
    fn tokens(tokens: &'a TokenSet, source: &'static str) -> AppEvent<'a> {
        let expires_at = tokens
            .expires_at_ms
            .map_or(DetailValue::Null, |at| DetailValue::Number(at as f64));
        let scope = tokens
            .scope
            .as_deref()
            .map_or(DetailValue::Null, DetailValue::Text);
        AppEvent {
            event: Event::Tokens,
            fields: &TOKENS_EVENT_FIELDS,
            values: [
                DetailValue::Token(&tokens.access_token),
                expires_at,
                scope,
                DetailValue::Text(source),
            ],
        }
    }

    /// An event whose detail is an empty object.
    fn bare(event: Event) -> AppEvent<'a> {
        AppEvent {
            event,
            fields: &[],
            values: [const { DetailValue::Null }; 4],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::session::TokenSource;
    use crate::core::{Error, RefreshToken};

    fn set(expires_at_ms: Option<u64>, scope: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at-secret".into()),
            token_type: "Bearer".into(),
            expires_at_ms,
            refresh_token: Some(RefreshToken::new("rt-secret".into())),
            scope: scope.map(str::to_owned),
            id_token: None,
            refresh_expires_at_ms: None,
            issued_at_ms: 1,
            login_at_ms: 1,
            rotation: 0,
            dpop_jkt: None,
            atproto: None,
        }
    }

    fn text(value: &str) -> DetailValue<'_> {
        DetailValue::Text(value)
    }

    fn detail<'a>(event: &'a AppEvent<'a>) -> Vec<(&'static str, DetailValue<'a>)> {
        event
            .detail()
            .map(|(field, value)| (field, value.clone()))
            .collect()
    }

    #[test]
    fn new_tokens_are_a_tokens_event_with_the_access_token_expiry_scope_and_source() {
        let tokens = set(Some(1_700_000_000_000), Some("openid api"));
        let change = SessionChange::Tokens {
            tokens: &tokens,
            source: TokenSource::Refresh,
        };
        let event = AppEvent::of_change(&change, StorageKind::IndexedDb);
        assert_eq!(event.event, Event::Tokens);
        assert_eq!(
            detail(&event),
            vec![
                ("accessToken", DetailValue::Token(&tokens.access_token)),
                ("expiresAt", DetailValue::Number(1_700_000_000_000.0)),
                ("scope", text("openid api")),
                ("source", text("refresh")),
            ]
        );
    }

    #[test]
    fn an_unknown_expiry_or_scope_is_null() {
        let tokens = set(None, None);
        let change = SessionChange::Tokens {
            tokens: &tokens,
            source: TokenSource::Sync,
        };
        let event = AppEvent::of_change(&change, StorageKind::Memory);
        let detail = detail(&event);
        assert_eq!(detail[1], ("expiresAt", DetailValue::Null));
        assert_eq!(detail[2], ("scope", DetailValue::Null));
        assert_eq!(detail[3], ("source", text("sync")));
    }

    #[test]
    fn an_expired_session_is_session_expired_with_an_empty_detail() {
        let change = SessionChange::Ended(EndReason::Expired);
        let event = AppEvent::of_change(&change, StorageKind::IndexedDb);
        assert_eq!(event, AppEvent::bare(Event::SessionExpired));
        assert_eq!(event.detail().count(), 0);
    }

    #[test]
    fn a_verified_id_token_is_user_with_an_empty_detail() {
        let event = AppEvent::of_change(&SessionChange::User, StorageKind::IndexedDb);
        assert_eq!(event, AppEvent::bare(Event::User));
        assert_eq!(event.detail().count(), 0);
    }

    #[test]
    fn a_sign_out_is_signed_out_with_an_empty_detail() {
        let change = SessionChange::Ended(EndReason::SignedOut);
        let event = AppEvent::of_change(&change, StorageKind::LocalStorage);
        assert_eq!(event.event, Event::SignedOut);
        assert_eq!(event.detail().count(), 0);
    }

    #[test]
    fn a_failed_write_is_a_storage_event_naming_the_storage_and_the_error_code() {
        let error = Error::Storage {
            reason: "quota exceeded".into(),
        };
        let change = SessionChange::PersistFailed(&error);
        let event = AppEvent::of_change(&change, StorageKind::LocalStorage);
        assert_eq!(event.event, Event::Storage);
        let reason = format!("{}: {error}", error.code());
        assert_eq!(
            detail(&event),
            vec![
                ("type", text("write_failed")),
                ("storage", text("localstorage")),
                ("reason", DetailValue::Made(reason)),
            ]
        );
    }

    #[test]
    fn a_storage_event_has_the_declared_fields_in_order() {
        let event = AppEvent::storage(StorageProblem::Fallback, StorageKind::Memory, "blocked");
        let fields: Vec<_> = event.detail().map(|(field, _)| field).collect();
        assert_eq!(fields, STORAGE_EVENT_FIELDS);
        assert_eq!(detail(&event)[0].1, text("fallback"));
    }

    #[test]
    fn the_access_token_is_redacted_in_debug() {
        let tokens = set(Some(5), None);
        let change = SessionChange::Tokens {
            tokens: &tokens,
            source: TokenSource::Login,
        };
        let shown = format!("{:?}", AppEvent::of_change(&change, StorageKind::Memory));
        assert!(!shown.contains("at-secret"), "{shown}");
    }
}
