//! The names of the JavaScript surface the binding reads and emits, written
//! once: `create()`'s options and the client's events. The binding parses
//! with these lists, and `tests/public_lists.rs` checks `index.d.ts`
//! declares exactly them.

use crate::core::Error;

/// Every option `AuthClient.create` accepts; anything else is a typo and
/// refused.
pub const CREATE_OPTIONS: &[&str] = &[
    "issuer",
    "clientId",
    "redirectUri",
    "scope",
    "storage",
    "refreshLeewaySeconds",
    "refreshTimeoutSeconds",
    "allowInsecureLoopback",
    "allowedOrigins",
    "authorizationEndpoint",
    "tokenEndpoint",
    "revocationEndpoint",
    "endSessionEndpoint",
    "jwksUri",
    "userinfoEndpoint",
    "pushedAuthorizationRequestEndpoint",
    "par",
    "dpop",
    "profile",
    "handleResolver",
    "plcDirectoryUrl",
    "isTokenExpired",
    "refresh",
];

/// The options of [`CREATE_OPTIONS`] only an OpenID Connect client takes
/// (`profile: "atproto"` refuses them): an atproto client's servers come
/// from each account, and it always uses PAR and DPoP.
pub const OIDC_ONLY_OPTIONS: &[&str] = &[
    "authorizationEndpoint",
    "tokenEndpoint",
    "revocationEndpoint",
    "endSessionEndpoint",
    "jwksUri",
    "userinfoEndpoint",
    "pushedAuthorizationRequestEndpoint",
    "par",
    "dpop",
];

/// The options of [`CREATE_OPTIONS`] only an atproto client takes: where
/// identities are resolved.
pub const ATPROTO_ONLY_OPTIONS: &[&str] = &["handleResolver", "plcDirectoryUrl"];

/// The events of `AuthClient.on`, in the order of [`Event`].
pub const EVENTS: &[&str] = &["storage", "tokens", "user", "sessionExpired", "signedOut"];

/// The events a client emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The storage fell back to memory, a stored record was cleared, or a
    /// refreshed set could not be written.
    Storage,
    /// The token set in use changed: a login or a refresh, in this tab or
    /// another.
    Tokens,
    /// A refreshed ID token was verified after its tokens were put in use
    /// (in this tab or another): `getUser()` now returns its claims.
    User,
    /// The session ended because the refresh token was rejected or expired.
    SessionExpired,
    /// The user signed out (in this tab or another).
    SignedOut,
}

impl Event {
    /// Every event, in the order of [`EVENTS`].
    pub const ALL: [Event; 5] = [
        Event::Storage,
        Event::Tokens,
        Event::User,
        Event::SessionExpired,
        Event::SignedOut,
    ];

    /// The event's name in JavaScript.
    pub fn name(self) -> &'static str {
        EVENTS[self as usize]
    }

    /// The event named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|event| event.name() == name)
    }
}

/// The fields of a `tokens` event's detail, in this order.
pub const TOKENS_EVENT_FIELDS: [&str; 4] = ["accessToken", "expiresAt", "scope", "source"];

/// The `source`s of a `tokens` event, in the order of
/// [`TokenSource`](crate::core::session::TokenSource).
pub const TOKEN_SOURCES: [&str; 3] = ["login", "refresh", "sync"];

/// The fields of a `storage` event's detail, in this order.
pub const STORAGE_EVENT_FIELDS: [&str; 3] = ["type", "storage", "reason"];

/// The values of the `storage` option (and of `storageKind`).
pub const STORAGE_KINDS: [&str; 3] = ["indexeddb", "localstorage", "memory"];

/// The `type`s of a `storage` event's detail, in the order of
/// [`StorageProblem`].
pub const STORAGE_PROBLEMS: &[&str] = &[
    "fallback",
    "cleared",
    "newer_record",
    "write_failed",
    "read_failed",
];

/// What a `storage` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageProblem {
    /// The requested storage could not be used: tokens are in memory.
    Fallback,
    /// A corrupt or foreign stored record was removed.
    Cleared,
    /// The record was written by a newer latchkey and is left alone.
    NewerRecord,
    /// Refreshed tokens could not be persisted.
    WriteFailed,
    /// The stored session could not be read (the storage failed): it is
    /// kept, and this tab starts signed out.
    ReadFailed,
}

impl StorageProblem {
    /// The problem a failed load of the stored session reports: the store
    /// leaves a newer latchkey's record, keeps one it could not read (the
    /// storage failed: the record may be fine) and removes anything else.
    pub fn after_load(error: &Error) -> StorageProblem {
        match error {
            Error::NewerRecord { .. } => StorageProblem::NewerRecord,
            // WebCrypto failing removes nothing either (record rule 6).
            Error::Storage { .. } | Error::Crypto { .. } => StorageProblem::ReadFailed,
            _ => StorageProblem::Cleared,
        }
    }

    /// The problem's `type` in JavaScript.
    pub fn name(self) -> &'static str {
        STORAGE_PROBLEMS[self as usize]
    }
}

/// Where tokens are kept, in the order of `STORAGE_KINDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// IndexedDB, encrypted (the default).
    IndexedDb,
    /// localStorage, encrypted with the key kept in IndexedDB.
    LocalStorage,
    /// This tab's memory only.
    Memory,
}

impl StorageKind {
    /// The option value naming this kind.
    pub fn as_str(self) -> &'static str {
        STORAGE_KINDS[self as usize]
    }

    /// Parses the `storage` option.
    pub fn parse(value: &str) -> Option<StorageKind> {
        [Self::IndexedDb, Self::LocalStorage, Self::Memory]
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }

    /// The `storage` option `given`, or the default (IndexedDB) when the
    /// app gave none.
    pub fn of_option(given: Option<&str>) -> Result<StorageKind, Error> {
        match given {
            None => Ok(StorageKind::IndexedDb),
            Some(value) => StorageKind::parse(value).ok_or_else(|| {
                Error::invalid_option(
                    "storage",
                    "must be \"indexeddb\", \"localstorage\" or \"memory\"",
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_option_defaults_to_indexeddb_and_refuses_other_names() {
        assert_eq!(StorageKind::of_option(None), Ok(StorageKind::IndexedDb));
        assert_eq!(
            StorageKind::of_option(Some("memory")),
            Ok(StorageKind::Memory)
        );
        let refused = StorageKind::of_option(Some("disk")).unwrap_err();
        assert_eq!(refused.code(), "invalid_option");
    }

    #[test]
    fn every_storage_problem_has_its_own_name() {
        let all = [
            StorageProblem::Fallback,
            StorageProblem::Cleared,
            StorageProblem::NewerRecord,
            StorageProblem::WriteFailed,
            StorageProblem::ReadFailed,
        ];
        for (i, problem) in all.into_iter().enumerate() {
            assert_eq!(problem as usize, i);
        }
        assert_eq!(all.len(), STORAGE_PROBLEMS.len());
    }

    #[test]
    fn a_newer_record_is_left_an_unread_one_kept_and_anything_else_cleared() {
        let crypto = Error::Crypto {
            reason: "NotSupportedError".into(),
        };
        assert_eq!(
            StorageProblem::after_load(&crypto),
            StorageProblem::ReadFailed
        );
        let newer = Error::NewerRecord { version: 9 };
        assert_eq!(
            StorageProblem::after_load(&newer),
            StorageProblem::NewerRecord
        );
        let corrupt = Error::invalid_option("record", "not a session");
        assert_eq!(
            StorageProblem::after_load(&corrupt),
            StorageProblem::Cleared
        );
        let unread = Error::Storage {
            reason: "the backend refused".into(),
        };
        assert_eq!(
            StorageProblem::after_load(&unread),
            StorageProblem::ReadFailed
        );
    }

    #[test]
    fn every_event_has_its_own_name() {
        for (i, event) in Event::ALL.into_iter().enumerate() {
            assert_eq!(event as usize, i);
            assert_eq!(Event::parse(event.name()), Some(event));
        }
        assert_eq!(Event::ALL.len(), EVENTS.len());
        assert_eq!(Event::parse("token"), None);
    }
}
