//! What `create()` decides before the client exists: where the endpoints
//! come from, which metadata to start with (just discovered, kept with the
//! session by an earlier start, or discovery's when it comes), and whether
//! the session is shared with the other tabs.
//!
//! `browser/create.rs` overlaps discovery with opening the store (both
//! are I/O); every choice between their results is made here.

use crate::core::discover_machine::Discover;
use crate::core::drive::{drive, Perform};
use crate::core::platform::{Http, HttpReply};
use crate::core::public_api::{StorageKind, StorageProblem};
use crate::core::TokenSet;
use crate::core::{check_endpoint_url, EndpointOverrides, Endpoints, Error, ProviderMetadata};

/// Where a client's endpoints come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointSource {
    /// The AT Protocol profile: no issuer to discover; the servers are the
    /// stored account's, or become known at login.
    Account,
    /// Both the authorization and token endpoints were given: no discovery.
    Explicit,
    /// Discovery (OIDC Discovery §4 first, then
    /// [RFC 8414 §3](https://www.rfc-editor.org/rfc/rfc8414#section-3)), the
    /// given endpoints overriding what it finds.
    Discovery,
}

impl EndpointSource {
    /// The source for these options. Outside the AT Protocol profile the
    /// issuer must be an `https` URL (or loopback `http` when allowed):
    /// `insecure_endpoint` / `invalid_option` otherwise.
    pub fn of(
        atproto: bool,
        issuer: &str,
        overrides: &EndpointOverrides,
        allow_insecure_loopback: bool,
    ) -> Result<EndpointSource, Error> {
        if atproto {
            return Ok(EndpointSource::Account);
        }
        check_endpoint_url("issuer", issuer, allow_insecure_loopback)?;
        if overrides.authorization.is_none() || overrides.token.is_none() {
            return Ok(EndpointSource::Discovery);
        }
        Ok(EndpointSource::Explicit)
    }

    /// What `create()` checks of the resolved configuration before the
    /// client is used: PAR asked for (or required by the server) but
    /// impossible is said now, not at the first login. An atproto client's
    /// servers are each account's, checked at its login.
    pub fn check_at_start(self, par: bool, endpoints: &Endpoints) -> Result<(), Error> {
        match self {
            EndpointSource::Account => Ok(()),
            EndpointSource::Explicit | EndpointSource::Discovery => {
                endpoints.par_endpoint(par).map(|_| ())
            }
        }
    }
}

/// The issuer's metadata, validated against `issuer` ([`Discover`]'s
/// order): drives the machine, performing each `GET`.
pub async fn discover<H: Http>(http: &H, issuer: &str) -> Result<ProviderMetadata, Error> {
    let (mut machine, first) = Discover::start(issuer);
    drive(&mut machine, first, &mut Gets(http)).await
}

/// Performs discovery's `GET`s.
struct Gets<'h, H>(&'h H);

impl<H: Http> Perform<Discover> for Gets<'_, H> {
    async fn perform(
        &mut self,
        url: String,
        _: &Discover,
    ) -> Result<HttpReply<ProviderMetadata>, Error> {
        self.0.get_json(&url).await
    }

    fn with(&self) {}
}

/// How old kept metadata may be and still be used at start-up (it is
/// revalidated in the background every time it is used).
pub const METADATA_MAX_AGE_MS: u64 = 24 * 60 * 60 * 1000;

/// Discovered metadata kept with the session, so a returning tab starts
/// without waiting for discovery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptMetadata {
    /// When it was fetched.
    pub fetched_at_ms: u64,
    /// What was fetched (validated then).
    pub metadata: ProviderMetadata,
}

impl KeptMetadata {
    /// The kept metadata when it can be used at `now_ms` for `issuer`: not
    /// older than [`METADATA_MAX_AGE_MS`], not from the future, and valid
    /// for this issuer (checked again: storage is input like any other).
    pub fn usable(self, issuer: &str, now_ms: u64) -> Option<ProviderMetadata> {
        let age = now_ms.checked_sub(self.fetched_at_ms)?;
        if age > METADATA_MAX_AGE_MS {
            return None;
        }
        self.metadata.validate(issuer).ok()
    }
}

/// How long after `create()` kept metadata is revalidated: the first
/// requests of a returning tab go out first, and the discovery request, its
/// parsing and the write of what it finds do not compete with the page's
/// own start-up (a tab closed sooner revalidates at a later start; the
/// kept metadata is used for [`METADATA_MAX_AGE_MS`] at most).
pub const REVALIDATE_AFTER_MS: u32 = 2_000;

/// How a client's tab works with the other tabs of its origin: decided
/// from where its session is kept and what the browser has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coordination {
    /// Refreshes are serialised by a lock every tab shares (a Web Lock
    /// named after the session); otherwise only within this tab.
    pub shared_lock: bool,
    /// Changes are told to the other tabs (a BroadcastChannel named after
    /// the session).
    pub channel: bool,
    /// DPoP nonces are passed to the other tabs.
    pub share_nonces: bool,
}

impl Coordination {
    /// A session kept in `kind` by a client that uses DPoP or not, in a
    /// browser that has Web Locks or not. A session in memory is this
    /// tab's alone: no lock, no channel, nothing shared. A shared session
    /// in a browser without Web Locks still has the channel, and tabs
    /// re-read the store before refreshing; only refreshes at the very same
    /// moment can collide (the README's "Without Web Locks").
    pub fn of(kind: StorageKind, web_locks: bool, dpop: bool) -> Coordination {
        let shared = kind != StorageKind::Memory;
        Coordination {
            shared_lock: shared && web_locks,
            channel: shared,
            share_nonces: shared && dpop,
        }
    }
}

/// The `storage` events a client starts with, in order: the asked
/// storage's fallback to memory (`fallback`: why), then the problem the
/// stored session's load reported (`at_start`, in the storage `in_use`).
pub fn storage_events_at_start(
    asked: StorageKind,
    fallback: Option<&str>,
    in_use: StorageKind,
    at_start: Option<&(StorageProblem, String)>,
) -> Vec<(StorageProblem, StorageKind, String)> {
    let fell_back = fallback.map(|why| (StorageProblem::Fallback, asked, why.to_owned()));
    let problem = at_start.map(|(problem, why)| (*problem, in_use, why.clone()));
    fell_back.into_iter().chain(problem).collect()
}

/// The session a client starts with, from the stored set's load: the set,
/// or none and the `storage` problem to report with its reason (the error's
/// code and message). A failed load starts the client signed out: the
/// store has removed a corrupt or foreign record and left a newer
/// latchkey's ([`StorageProblem::after_load`]).
pub fn session_at_start(
    loaded: Result<Option<TokenSet>, Error>,
) -> (Option<TokenSet>, Option<(StorageProblem, String)>) {
    match loaded {
        Ok(tokens) => (tokens, None),
        Err(error) => {
            let problem = StorageProblem::after_load(&error);
            (None, Some((problem, format!("{}: {error}", error.code()))))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::fakes::{block_on, FakePlatform};

    pub(crate) const ISSUER: &str = "https://idp.example";
    pub(crate) const NOW: u64 = 1_700_000_000_000;

    pub(crate) fn metadata(issuer: &str) -> String {
        format!(
            r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/auth","token_endpoint":"{issuer}/token",
            "code_challenge_methods_supported":["S256"],"authorization_response_iss_parameter_supported":true}}"#
        )
    }

    pub(crate) fn parsed(issuer: &str) -> ProviderMetadata {
        serde_json::from_str(&metadata(issuer)).unwrap()
    }

    pub(crate) fn both_given() -> EndpointOverrides {
        EndpointOverrides {
            authorization: Some(format!("{ISSUER}/a")),
            token: Some(format!("{ISSUER}/t")),
            ..Default::default()
        }
    }

    #[test]
    fn par_that_cannot_be_done_is_refused_at_start_unless_the_servers_are_the_accounts() {
        // The server names no PAR endpoint.
        let endpoints = Endpoints::from_explicit(both_given(), false).unwrap();
        for source in [EndpointSource::Explicit, EndpointSource::Discovery] {
            let error = source.check_at_start(true, &endpoints).unwrap_err();
            assert_eq!(error.code(), "invalid_option", "{source:?}");
        }
        assert_eq!(
            EndpointSource::Account.check_at_start(true, &endpoints),
            Ok(())
        );
        let required = Endpoints {
            par_required: true,
            ..endpoints.clone()
        };
        let error = EndpointSource::Explicit.check_at_start(false, &required);
        assert_eq!(error.unwrap_err().code(), "invalid_option");
        assert_eq!(
            EndpointSource::Discovery.check_at_start(false, &endpoints),
            Ok(())
        );
    }

    #[test]
    fn a_loaded_set_starts_the_session_and_a_failed_load_says_why() {
        let set = crate::core::fakes::bearer_set("at-1");
        let (tokens, problem) = session_at_start(Ok(Some(set.clone())));
        assert_eq!((tokens, problem), (Some(set), None));
        assert_eq!(session_at_start(Ok(None)), (None, None));
        let corrupt = Error::CorruptRecord {
            reason: "the tokens record has an unknown shape".into(),
        };
        let (tokens, problem) = session_at_start(Err(corrupt));
        assert_eq!(tokens, None);
        let (problem, reason) = problem.unwrap();
        assert_eq!(problem, StorageProblem::Cleared);
        assert!(reason.starts_with("corrupt_record: "), "{reason}");
        let newer = Error::NewerRecord { version: 9 };
        let (_, problem) = session_at_start(Err(newer));
        assert_eq!(problem.unwrap().0, StorageProblem::NewerRecord);
    }

    #[test]
    fn the_atproto_profile_has_no_issuer_to_check_or_discover() {
        let source = EndpointSource::of(true, "not a url", &Default::default(), false);
        assert_eq!(source.unwrap(), EndpointSource::Account);
    }

    #[test]
    fn an_http_issuer_is_refused_without_the_loopback_switch() {
        let error =
            EndpointSource::of(false, "http://127.0.0.1:9000", &both_given(), false).unwrap_err();
        assert_eq!(error.code(), "insecure_endpoint");
        let allowed = EndpointSource::of(false, "http://127.0.0.1:9000", &both_given(), true);
        assert_eq!(allowed.unwrap(), EndpointSource::Explicit);
    }

    #[test]
    fn both_endpoints_given_need_no_discovery() {
        let source = EndpointSource::of(false, ISSUER, &both_given(), false);
        assert_eq!(source.unwrap(), EndpointSource::Explicit);
    }

    #[test]
    fn one_endpoint_missing_means_discovery() {
        let only_token = EndpointOverrides {
            authorization: None,
            ..both_given()
        };
        let source = EndpointSource::of(false, ISSUER, &only_token, false);
        assert_eq!(source.unwrap(), EndpointSource::Discovery);
        let only_authorization = EndpointOverrides {
            token: None,
            ..both_given()
        };
        let source = EndpointSource::of(false, ISSUER, &only_authorization, false);
        assert_eq!(source.unwrap(), EndpointSource::Discovery);
    }

    #[test]
    fn discovery_uses_openid_configuration_first() {
        let platform = FakePlatform::at(NOW);
        platform.expect_get(
            &format!("{ISSUER}/.well-known/openid-configuration"),
            200,
            &metadata(ISSUER),
        );
        let found = block_on(discover(&platform, ISSUER)).unwrap();
        assert_eq!(found.authorization_endpoint, format!("{ISSUER}/auth"));
    }

    #[test]
    fn discovery_falls_back_to_rfc8414() {
        let platform = FakePlatform::at(NOW);
        platform.expect_get_network_error(&format!("{ISSUER}/.well-known/openid-configuration"));
        platform.expect_get(
            &format!("{ISSUER}/.well-known/oauth-authorization-server"),
            200,
            &metadata(ISSUER),
        );
        let found = block_on(discover(&platform, ISSUER)).unwrap();
        assert_eq!(found.token_endpoint, format!("{ISSUER}/token"));
    }

    #[test]
    fn discovery_rejects_another_issuer() {
        let platform = FakePlatform::at(NOW);
        platform.expect_get(
            &format!("{ISSUER}/.well-known/openid-configuration"),
            200,
            &metadata("https://evil.example"),
        );
        let error = block_on(discover(&platform, ISSUER)).unwrap_err();
        assert_eq!(error.code(), "issuer_mismatch");
    }

    #[test]
    fn discovery_failure_names_both_documents() {
        let platform = FakePlatform::at(NOW);
        platform.expect_get(
            &format!("{ISSUER}/.well-known/openid-configuration"),
            404,
            "{}",
        );
        platform.expect_get(
            &format!("{ISSUER}/.well-known/oauth-authorization-server"),
            200,
            "not json",
        );
        let error = block_on(discover(&platform, ISSUER)).unwrap_err();
        assert_eq!(error.code(), "discovery_failed");
        let text = error.to_string();
        assert!(
            text.contains("HTTP 404") && text.contains("oauth-authorization-server"),
            "{text}"
        );
    }

    fn kept(fetched_at_ms: u64, issuer: &str) -> KeptMetadata {
        KeptMetadata {
            fetched_at_ms,
            metadata: parsed(issuer),
        }
    }

    #[test]
    fn kept_metadata_is_used_within_its_age_for_its_issuer_only() {
        assert!(kept(NOW, ISSUER).usable(ISSUER, NOW + 1_000).is_some());
        let old = NOW - METADATA_MAX_AGE_MS - 1;
        assert_eq!(kept(old, ISSUER).usable(ISSUER, NOW), None, "too old");
        assert_eq!(
            kept(NOW + 60_000, ISSUER).usable(ISSUER, NOW),
            None,
            "from the future"
        );
        let other = kept(NOW, "https://other.example");
        assert_eq!(other.usable(ISSUER, NOW), None, "another issuer's");
    }

    #[test]
    fn kept_metadata_round_trips_through_serde() {
        let value = kept(NOW, ISSUER);
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<KeptMetadata>(&text).unwrap(), value);
    }

    fn coordination(shared_lock: bool, channel: bool, share_nonces: bool) -> Coordination {
        Coordination {
            shared_lock,
            channel,
            share_nonces,
        }
    }

    #[test]
    fn only_a_session_in_memory_stays_in_its_tab() {
        let alone = coordination(false, false, false);
        assert_eq!(Coordination::of(StorageKind::Memory, true, true), alone);
        for kind in [StorageKind::IndexedDb, StorageKind::LocalStorage] {
            let shared = coordination(true, true, true);
            assert_eq!(Coordination::of(kind, true, true), shared);
        }
    }

    #[test]
    fn nonces_are_shared_only_by_dpop_clients() {
        let bearer = Coordination::of(StorageKind::IndexedDb, true, false);
        assert_eq!(bearer, coordination(true, true, false));
    }

    #[test]
    fn without_web_locks_a_shared_session_keeps_its_channel_and_locks_in_its_tab() {
        let no_locks = Coordination::of(StorageKind::LocalStorage, false, true);
        assert_eq!(no_locks, coordination(false, true, true));
    }

    #[test]
    fn a_start_reports_the_fallback_then_the_stored_session_s_problem() {
        let problem = (StorageProblem::Cleared, "corrupt_record: x".to_owned());
        let events = storage_events_at_start(
            StorageKind::IndexedDb,
            Some("IndexedDB refused"),
            StorageKind::Memory,
            Some(&problem),
        );
        assert_eq!(
            events,
            [
                (
                    StorageProblem::Fallback,
                    StorageKind::IndexedDb,
                    "IndexedDB refused".to_owned()
                ),
                (
                    StorageProblem::Cleared,
                    StorageKind::Memory,
                    "corrupt_record: x".to_owned()
                ),
            ]
        );
        let quiet =
            storage_events_at_start(StorageKind::IndexedDb, None, StorageKind::IndexedDb, None);
        assert!(quiet.is_empty());
    }
}
