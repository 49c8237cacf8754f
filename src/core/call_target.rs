//! Where a `fetchWithAuth` call goes, decided once per call: the token
//! endpoint in use (sent untouched, so a refresh never triggers a refresh),
//! the UserInfo endpoint (the authorization server's), the signed-in
//! atproto account's PDS, or an origin the app listed; and from that, the
//! call's first [`Event`], whose DPoP nonces it carries, and whether the
//! package's JavaScript may send it on the fast path. URLs are parsed by
//! the platform (`new URL` in the browser): the core compares the keys.

use crate::core::atproto_login::on_pds_of;
use crate::core::authorized_call::{AuthorizedCall, Destination, Event};
use crate::core::dpop::Role;
use crate::core::origin::{AllowedOrigins, TokenPlacement};
use crate::core::session::Session;

/// An endpoint as the platform's URL parser normalises it (scheme and host
/// case, default ports, dot segments): origin and path, query and fragment
/// aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointKey {
    origin: String,
    path: String,
}

impl EndpointKey {
    /// The key of a URL the platform parsed: its serialised `origin` and
    /// its `pathname`.
    pub fn new(origin: String, path: String) -> EndpointKey {
        EndpointKey { origin, path }
    }

    /// The origin, serialised as the platform does.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether `other` may reach the same endpoint on a server that is lax
    /// about paths: the same origin, and paths equal once unreserved
    /// characters are decoded ([RFC 3986 §6.2.2.2](https://www.rfc-editor.org/rfc/rfc3986#section-6.2.2.2)),
    /// letters lowercased, repeated and trailing slashes dropped. Wider than
    /// equality on purpose: it keeps the token endpoint from getting a token
    /// or a refresh (`/token/`, `/Token`, `/%74oken`).
    pub fn may_be(&self, other: &EndpointKey) -> bool {
        self.origin == other.origin && loose_path(&self.path) == loose_path(&other.path)
    }
}

/// `path` as [`EndpointKey::may_be`] compares it.
fn loose_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(next) = rest.chars().next() {
        let unreserved = rest
            .strip_prefix('%')
            .and_then(|hex| hex.get(..2))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b));
        let (c, taken) = match unreserved {
            Some(byte) => (char::from(byte), 3),
            None => (next, next.len_utf8()),
        };
        rest = &rest[taken..];
        if !(c == '/' && out.ends_with('/')) {
            out.push(c.to_ascii_lowercase());
        }
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

/// The endpoints and origins a client's calls are sorted by.
#[derive(Debug)]
pub struct CallTargets {
    /// The configured token endpoint (`None` if it does not parse).
    pub token: Option<EndpointKey>,
    /// The UserInfo endpoint, when there is one.
    pub userinfo: Option<EndpointKey>,
    /// Where the access token may go (`allowedOrigins`).
    pub allowed: AllowedOrigins,
    /// `profile: "atproto"`: the token endpoint in use and the PDS are the
    /// signed-in account's, not the configuration's.
    pub atproto: bool,
}

impl CallTargets {
    /// A call to `url` (whose key is `key`; `None` when it does not parse)
    /// while `session` is in use: its first
    /// event and whose DPoP nonces its proofs carry. `url` may be the URL or
    /// just its origin; `key_of` parses the account's token endpoint.
    ///
    /// A DPoP-bound token goes in the `Authorization` header whatever the
    /// origin's placement: RFC 9449 defines no other way to send it
    /// ([§7.1](https://www.rfc-editor.org/rfc/rfc9449#section-7.1)).
    pub fn start(
        &self,
        url: &str,
        key: Option<&EndpointKey>,
        session: &Session,
        key_of: impl Fn(&str) -> Option<EndpointKey>,
    ) -> (Event, Role) {
        let (event, role) = self.destination(url, key, session, key_of);
        let event = match event {
            Event::Start {
                token_endpoint,
                placement: Ok(_),
            } if session.needs_proof() => Event::Start {
                token_endpoint,
                placement: Ok(TokenPlacement::Header),
            },
            event => event,
        };
        (event, role)
    }

    /// Whether a call to `key` may go out on the fast path (the caller adds
    /// the last condition, a token that needs no refresh now): a resource
    /// server's URL whose first step is a Bearer token in the header, and
    /// a session whose tokens need no DPoP proof.
    pub fn fast_path(
        &self,
        key: &EndpointKey,
        session: &Session,
        key_of: impl Fn(&str) -> Option<EndpointKey>,
    ) -> bool {
        // A bound session signs a proof per call: never the fast path, and
        // nothing more to look at.
        if session.needs_proof() {
            return false;
        }
        let (start, role) = self.destination(key.origin(), Some(key), session, key_of);
        role == Role::Resource && AuthorizedCall::fast_path(start, false)
    }

    /// The call's first event from where it goes alone (its placement as
    /// the origin's, before a DPoP binding is considered) and its role.
    fn destination(
        &self,
        url: &str,
        key: Option<&EndpointKey>,
        session: &Session,
        key_of: impl Fn(&str) -> Option<EndpointKey>,
    ) -> (Event, Role) {
        Destination {
            token_endpoint: key.is_some_and(|key| self.is_token_endpoint(key, session, key_of)),
            userinfo: key.is_some() && key == self.userinfo.as_ref(),
            listed: || self.allowed.placement_for(url),
            account_pds: || self.on_account_pds(url, session),
        }
        .start()
    }

    /// Whether `key` is the token endpoint in use: the configured one, or
    /// the signed-in atproto account's.
    fn is_token_endpoint(
        &self,
        key: &EndpointKey,
        session: &Session,
        key_of: impl Fn(&str) -> Option<EndpointKey>,
    ) -> bool {
        if !self.atproto {
            return self.token.as_ref().is_some_and(|token| token.may_be(key));
        }
        let account = session.account();
        account.is_some_and(|account| {
            key_of(&account.token_endpoint).is_some_and(|token| token.may_be(key))
        })
    }

    /// Whether `url` is on the signed-in atproto account's PDS origin.
    fn on_account_pds(&self, url: &str, session: &Session) -> bool {
        self.atproto
            && session
                .account()
                .is_some_and(|account| on_pds_of(&account, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::atproto::Account;
    use crate::core::origin::{OriginEntry, TokenPlacement};
    use crate::core::{AccessToken, Error, RefreshToken, TokenSet};

    const PAGE: &str = "https://app.example";

    /// A key the way a browser would give it, for the URLs of these tests
    /// (no query, no fragment, no default port).
    fn key(url: &str) -> Option<EndpointKey> {
        let rest = url.strip_prefix("https://")?;
        let slash = rest.find('/').unwrap_or(rest.len());
        let path = match &rest[slash..] {
            "" => "/",
            path => path,
        };
        Some(EndpointKey::new(
            format!("https://{}", &rest[..slash]),
            path.to_owned(),
        ))
    }

    fn targets(atproto: bool, allowed: &[(&str, TokenPlacement)]) -> CallTargets {
        let entries: Vec<OriginEntry> = allowed
            .iter()
            .map(|(origin, placement)| OriginEntry {
                origin: (*origin).to_owned(),
                placement: *placement,
            })
            .collect();
        CallTargets {
            token: key("https://as.example/token"),
            userinfo: key("https://as.example/userinfo"),
            allowed: AllowedOrigins::from_entries(&entries, PAGE, false).unwrap(),
            atproto,
        }
    }

    fn session(account: Option<Account>, dpop_jkt: Option<&str>) -> Session {
        Session::new(Some(TokenSet {
            access_token: AccessToken::new("at".into()),
            token_type: "Bearer".into(),
            expires_at_ms: Some(10_000),
            refresh_token: Some(RefreshToken::new("rt".into())),
            scope: None,
            id_token: None,
            refresh_expires_at_ms: None,
            issued_at_ms: 1,
            login_at_ms: 1,
            rotation: 0,
            dpop_jkt: dpop_jkt.map(str::to_owned),
            atproto: account.map(Box::new),
        }))
    }

    fn account() -> Account {
        Account {
            did: "did:plc:abc".into(),
            handle: None,
            pds: "https://pds.example".into(),
            issuer: "https://entryway.example".into(),
            token_endpoint: "https://entryway.example/oauth/token".into(),
            revocation_endpoint: None,
        }
    }

    fn start(targets: &CallTargets, url: &str, session: &Session) -> (Event, Role) {
        targets.start(url, key(url).as_ref(), session, key)
    }

    fn is_token_endpoint(event: &Event) -> bool {
        matches!(
            event,
            Event::Start {
                token_endpoint: true,
                ..
            }
        )
    }

    fn placement(event: Event) -> Result<TokenPlacement, Error> {
        match event {
            Event::Start { placement, .. } => placement,
            other => panic!("not a start: {other:?}"),
        }
    }

    #[test]
    fn paths_a_lax_server_may_route_to_the_token_endpoint_are_the_token_endpoint() {
        let targets = targets(false, &[("https://as.example", TokenPlacement::Header)]);
        let session = session(None, None);
        for url in [
            "https://as.example/token/",
            "https://as.example/Token",
            "https://as.example/%74oken",
            "https://as.example/%74OKEN//",
            "https://as.example//token",
        ] {
            let (event, _) = start(&targets, url, &session);
            assert!(is_token_endpoint(&event), "{url}");
        }
        for url in [
            "https://as.example/tokens",
            "https://as.example/token/x",
            "https://as.example/%2Ftoken",
            "https://as.example/t%C3%B6ken",
        ] {
            let (event, _) = start(&targets, url, &session);
            assert!(!is_token_endpoint(&event), "{url}");
        }
    }

    #[test]
    fn the_configured_token_endpoint_is_the_token_endpoint_in_use() {
        let targets = targets(false, &[("https://as.example", TokenPlacement::Header)]);
        let (event, _) = start(&targets, "https://as.example/token", &session(None, None));
        assert!(is_token_endpoint(&event));
        let (event, _) = start(&targets, "https://as.example/other", &session(None, None));
        assert!(!is_token_endpoint(&event));
    }

    #[test]
    fn with_atproto_the_accounts_token_endpoint_is_in_use_and_not_the_configured_one() {
        let targets = targets(true, &[]);
        let signed_in = session(Some(account()), None);
        let (event, _) = start(&targets, "https://entryway.example/oauth/token", &signed_in);
        assert!(is_token_endpoint(&event));
        let (event, _) = start(&targets, "https://as.example/token", &signed_in);
        assert!(!is_token_endpoint(&event));
        let signed_out = Session::new(None);
        let (event, _) = start(
            &targets,
            "https://entryway.example/oauth/token",
            &signed_out,
        );
        assert!(!is_token_endpoint(&event));
    }

    #[test]
    fn userinfo_is_the_authorization_servers_and_gets_the_header() {
        let targets = targets(false, &[]);
        let (event, role) = start(
            &targets,
            "https://as.example/userinfo",
            &session(None, None),
        );
        assert_eq!(role, Role::AuthorizationServer);
        assert_eq!(placement(event), Ok(TokenPlacement::Header));
    }

    #[test]
    fn a_listed_origin_gets_its_placement_and_an_unlisted_one_is_refused() {
        let targets = targets(false, &[("https://api.example", TokenPlacement::Query)]);
        let signed_in = session(None, None);
        let (event, role) = start(&targets, "https://api.example/items", &signed_in);
        assert_eq!(
            (placement(event), role),
            (Ok(TokenPlacement::Query), Role::Resource)
        );
        let (event, _) = start(&targets, "https://evil.example/items", &signed_in);
        assert_eq!(placement(event).unwrap_err().code(), "origin_not_allowed");
    }

    #[test]
    fn the_accounts_pds_needs_no_listing_only_with_atproto() {
        let signed_in = session(Some(account()), None);
        let (event, _) = start(
            &targets(true, &[]),
            "https://pds.example/xrpc/x",
            &signed_in,
        );
        assert_eq!(placement(event), Ok(TokenPlacement::Header));
        let (event, _) = start(
            &targets(false, &[]),
            "https://pds.example/xrpc/x",
            &signed_in,
        );
        assert!(placement(event).is_err());
    }

    #[test]
    fn the_fast_path_is_a_listed_resource_with_a_bearer_header() {
        let targets = targets(false, &[("https://api.example", TokenPlacement::Header)]);
        let signed_in = session(None, None);
        let fast = |url: &str, s: &Session| targets.fast_path(&key(url).unwrap(), s, key);
        assert!(fast("https://api.example/items", &signed_in));
        // Not: the token endpoint, UserInfo, an unlisted origin.
        assert!(!fast("https://as.example/token", &signed_in));
        assert!(!fast("https://as.example/userinfo", &signed_in));
        assert!(!fast("https://evil.example/items", &signed_in));
        // A DPoP-bound session needs a proof per call.
        let bound = session(None, Some("jkt"));
        assert!(!fast("https://api.example/items", &bound));
    }

    #[test]
    fn a_dpop_bound_token_goes_in_the_header_whatever_the_origins_placement() {
        let targets = targets(false, &[("https://api.example", TokenPlacement::Query)]);
        let url = "https://api.example/items";
        let bound = session(None, Some("jkt"));
        let (event, _) = targets.start(url, key(url).as_ref(), &bound, key);
        assert_eq!(placement(event), Ok(TokenPlacement::Header));
        // A Bearer session keeps the origin's placement.
        let (event, _) = targets.start(url, key(url).as_ref(), &session(None, None), key);
        assert_eq!(placement(event), Ok(TokenPlacement::Query));
        // A refused origin stays refused.
        let evil = "https://evil.example/x";
        let (event, _) = targets.start(evil, key(evil).as_ref(), &bound, key);
        assert_eq!(placement(event).unwrap_err().code(), "origin_not_allowed");
    }

    #[test]
    fn a_query_placement_is_not_the_fast_path() {
        let targets = targets(false, &[("https://api.example", TokenPlacement::Query)]);
        let api = key("https://api.example/items").unwrap();
        assert!(!targets.fast_path(&api, &session(None, None), key));
    }
}
