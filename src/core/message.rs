//! What one tab tells the others about the session (BroadcastChannel), a
//! type of its own so the ports that carry it need not depend on the
//! session logic that sends it.

use serde::{Deserialize, Serialize};

use crate::core::TokenSet;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// The refresh token was rejected or has expired.
    Expired,
    /// The user signed out.
    SignedOut,
}

/// A session's end as the store keeps it, for a tab that still held a copy
/// and finds the store empty before the ending tab's broadcast reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndRecord {
    /// Why it ended.
    pub reason: EndReason,
    /// The latest login it ended (a sign-out: its call; an expiry: the
    /// refused set's login). A set of a later login is not its to end: the
    /// store lost it (a sign-out's first clear, made without the lock,
    /// removed a login written just before it). `None` in a record an
    /// earlier latchkey wrote, which covered every login.
    #[serde(default)]
    pub until_ms: Option<u64>,
}

impl EndRecord {
    /// The end of every login until `until_ms`, for `reason`.
    pub fn new(reason: EndReason, until_ms: u64) -> Self {
        EndRecord {
            reason,
            until_ms: Some(until_ms),
        }
    }

    /// Whether it ended the login of `set`.
    pub fn covers(&self, set: &TokenSet) -> bool {
        self.until_ms.is_none_or(|until| set.login_at_ms <= until)
    }
}

/// What one tab tells the others about the session.
// Mostly `Tokens`, one message per change and short-lived: boxing the set
// would cost an allocation per message to save a few bytes on `Ended`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SessionMessage {
    /// A new token set is in use (refresh or login).
    Tokens {
        /// The new set.
        tokens: TokenSet,
        /// The sender could not write it: the store holds an older set or
        /// none, which is not a sign-out for the tabs that adopt this one.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unsaved: bool,
    },
    /// The session was cleared.
    Ended {
        /// Why.
        reason: EndReason,
        /// The ended session's login time: sets from logins until then are
        /// over, a later login is not (a session that expired in one tab
        /// while another completed a new login). `None`: every login until
        /// the message arrives, as a sign-out ends.
        #[serde(rename = "loginAtMs", default, skip_serializing_if = "Option::is_none")]
        login_at_ms: Option<u64>,
    },
    /// The API refused the set of login `login_at_ms` and refresh
    /// `rotation` on the very retry it was obtained for: no tab refreshes
    /// it again when the API refuses it (each would cost a refresh and fix
    /// nothing). The set is named by its place in the session, not by a
    /// token.
    Refused {
        /// The set's [`TokenSet::login_at_ms`].
        #[serde(rename = "loginAtMs")]
        login_at_ms: u64,
        /// The set's [`TokenSet::rotation`].
        rotation: u64,
    },
    /// The token endpoint asked for no request before `until` (its
    /// `Retry-After`): no tab of the session sends one before then.
    BackOff {
        /// When requests may resume, in ms since the epoch.
        until: u64,
        /// The answer's HTTP status.
        status: u16,
        /// The server's `error` code (empty when it sent none).
        error: String,
        /// The `Retry-After` it carried, in seconds.
        seconds: u64,
    },
}

impl EndReason {
    /// The reason named `name` as it is serialised (`expired`, `signedOut`).
    fn named(name: &str) -> Option<EndReason> {
        match name {
            "expired" => Some(EndReason::Expired),
            "signedOut" => Some(EndReason::SignedOut),
            _ => None,
        }
    }
}

/// A received message's members, as the platform reads them from what
/// another tab posted (in the browser, a structured-cloned object).
pub trait MessageFields {
    /// The member `name`, when it is a string.
    fn text(&self, name: &str) -> Option<String>;
    /// The member `name`, when it is a number.
    fn number(&self, name: &str) -> Option<f64>;
    /// The member `name`, when it is a boolean.
    fn flag(&self, name: &str) -> Option<bool>;
    /// The member `tokens`, when it reads as a token set.
    fn tokens(&self) -> Option<TokenSet>;
}

impl SessionMessage {
    /// Reads a message in the form it serialises to, member by member:
    /// `{ type: "tokens", tokens, unsaved? }`, `{ type: "ended", reason, loginAtMs? }`,
    /// `{ type: "refused", loginAtMs, rotation }` or
    /// `{ type: "backOff", until, status, error, seconds }` (numbers not
    /// negative; a status past 65535 is 65535). Anything else — another
    /// app's message, another spelling — is `None`, ignored. (Not the
    /// derived `Deserialize`: for an internally tagged enum it buffers
    /// every member in serde's generic tree first, about 25 KB of wasm for
    /// this one type.)
    pub fn read(fields: &impl MessageFields) -> Option<SessionMessage> {
        let number = |name: &str| fields.number(name).filter(|n| *n >= 0.0);
        match fields.text("type")?.as_str() {
            "tokens" => Some(SessionMessage::Tokens {
                tokens: fields.tokens()?,
                unsaved: fields.flag("unsaved").unwrap_or(false),
            }),
            "ended" => Some(SessionMessage::Ended {
                reason: EndReason::named(&fields.text("reason")?)?,
                login_at_ms: number("loginAtMs").map(|n| n as u64),
            }),
            "refused" => Some(SessionMessage::Refused {
                login_at_ms: number("loginAtMs")? as u64,
                rotation: number("rotation")? as u64,
            }),
            "backOff" => Some(SessionMessage::BackOff {
                until: number("until")? as u64,
                status: number("status")?.min(f64::from(u16::MAX)) as u16,
                error: fields.text("error")?,
                seconds: number("seconds")? as u64,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::bearer_set;

    /// A message's members as `serde_json` holds them.
    struct Json(serde_json::Value);

    impl MessageFields for Json {
        fn text(&self, name: &str) -> Option<String> {
            self.0.get(name)?.as_str().map(str::to_owned)
        }
        fn number(&self, name: &str) -> Option<f64> {
            self.0.get(name)?.as_f64()
        }
        fn flag(&self, name: &str) -> Option<bool> {
            self.0.get(name)?.as_bool()
        }
        fn tokens(&self) -> Option<TokenSet> {
            serde_json::from_value(self.0.get("tokens")?.clone()).ok()
        }
    }

    fn read(text: &str) -> Option<SessionMessage> {
        SessionMessage::read(&Json(serde_json::from_str(text).unwrap()))
    }

    #[test]
    fn every_message_reads_back_as_it_was_written() {
        let messages = [
            SessionMessage::Tokens {
                tokens: bearer_set("at-1"),
                unsaved: false,
            },
            SessionMessage::Tokens {
                tokens: bearer_set("at-2"),
                unsaved: true,
            },
            SessionMessage::Ended {
                reason: EndReason::Expired,
                login_at_ms: None,
            },
            SessionMessage::Ended {
                reason: EndReason::SignedOut,
                login_at_ms: None,
            },
            SessionMessage::BackOff {
                until: 1_700_000_000_000,
                status: 503,
                error: "temporarily_unavailable".into(),
                seconds: 30,
            },
            SessionMessage::Ended {
                reason: EndReason::Expired,
                login_at_ms: Some(1_699_999_000_000),
            },
            SessionMessage::Refused {
                login_at_ms: 1_699_999_000_000,
                rotation: 3,
            },
        ];
        for message in messages {
            let written = serde_json::to_string(&message).unwrap();
            assert_eq!(read(&written), Some(message), "{written}");
        }
    }

    #[test]
    fn an_end_s_login_time_that_is_not_a_time_is_not_read() {
        let ended = |login_at: &str| {
            read(&format!(
                r#"{{"type":"ended","reason":"expired","loginAtMs":{login_at}}}"#
            ))
        };
        let expired = |login_at_ms| {
            Some(SessionMessage::Ended {
                reason: EndReason::Expired,
                login_at_ms,
            })
        };
        assert_eq!(ended("1700000000000"), expired(Some(1_700_000_000_000)));
        // Read as an end without one: every login until it arrived.
        assert_eq!(ended("-1"), expired(None));
        assert_eq!(ended(r#""1700000000000""#), expired(None));
    }

    #[test]
    fn anything_not_ours_is_ignored() {
        for stranger in [
            r#""tokens""#,
            "{}",
            r#"{"type":"tokens"}"#,
            r#"{"type":"tokens","tokens":{"access_token":1}}"#,
            r#"{"type":"ended","reason":"nope"}"#,
            r#"{"type":"other","reason":"signedOut"}"#,
            r#"["ended","signedOut"]"#,
            r#"{"type":"backOff","until":1,"status":503,"error":"x"}"#,
            r#"{"type":"backOff","until":-1,"status":503,"error":"x","seconds":2}"#,
        ] {
            assert_eq!(read(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn a_back_off_s_status_is_capped_and_an_absent_unsaved_is_false() {
        let huge = r#"{"type":"backOff","until":1,"status":70000,"error":"","seconds":2}"#;
        assert!(matches!(
            read(huge),
            Some(SessionMessage::BackOff { status: 65535, .. })
        ));
        let tokens = serde_json::json!({ "type": "tokens", "tokens": bearer_set("at-1") });
        assert!(matches!(
            read(&tokens.to_string()),
            Some(SessionMessage::Tokens { unsaved: false, .. })
        ));
    }
}
