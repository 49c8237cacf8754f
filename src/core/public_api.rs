//! The names of the JavaScript surface the binding reads and emits, written
//! once: `create()`'s options and the client's events. The binding parses
//! with these lists, and `tests/public_lists.rs` checks `index.d.ts`
//! declares exactly them.

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

/// The events of `AuthClient.on`, in the order of [`Event`].
pub const EVENTS: &[&str] = &["storage", "tokens", "sessionExpired", "signedOut"];

/// The events a client emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The storage fell back to memory, a stored record was cleared, or a
    /// refreshed set could not be written.
    Storage,
    /// The token set in use changed: a login or a refresh, in this tab or
    /// another.
    Tokens,
    /// The session ended because the refresh token was rejected or expired.
    SessionExpired,
    /// The user signed out (in this tab or another).
    SignedOut,
}

impl Event {
    /// Every event, in the order of [`EVENTS`].
    pub const ALL: [Event; 4] = [
        Event::Storage,
        Event::Tokens,
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

#[cfg(test)]
mod tests {
    use super::*;

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
