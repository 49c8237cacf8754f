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
