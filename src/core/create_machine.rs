//! `create()` as a machine that does no I/O ([`CreateClient`]): where the
//! endpoints come from, the metadata it starts with, and the session it
//! starts with, in order. `browser/create.rs` (`Creating`) performs each
//! [`Need`] and the binding builds the client from [`Started`]; the rules
//! themselves are [`startup`](crate::core::startup)'s.
//!
//! The order:
//! 0. Where the endpoints come from ([`EndpointSource::of`]): an issuer
//!    that is not a usable URL fails `create()` before anything is opened.
//! 1. The store is opened and the stored set and kept metadata read.
//! 2. The endpoints: an atproto client's are the stored account's; explicit
//!    ones are checked as given; discovered ones come from usable kept
//!    metadata ([`KeptMetadata::usable`]), revalidated
//!    [`REVALIDATE_AFTER_MS`] later in the background, else from discovery
//!    (kept before going on). A returning tab therefore sends nothing and
//!    waits for nothing but its store before its first request; a first
//!    visit reads the store before it discovers (a few milliseconds next
//!    to discovery's round trip).
//!    PAR asked for (or required by the server) but impossible fails
//!    `create()` here ([`EndpointSource::check_at_start`]).
//! 3. The session it starts with ([`session_at_start`]).

use crate::core::atproto_login::client_endpoints;
use crate::core::discovery::{EndpointOverrides, Endpoints};
use crate::core::drive::{Machine, Next};
use crate::core::public_api::StorageProblem;
use crate::core::startup::{session_at_start, EndpointSource, KeptMetadata, REVALIDATE_AFTER_MS};
use crate::core::{Error, ProviderMetadata, TokenSet};

/// What the binding does next.
// One create() per client: the metadata is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Need {
    /// Open the store and read the stored set and the kept metadata →
    /// [`Fed::Opened`]. Always first.
    Open,
    /// Discover the issuer's metadata → [`Fed::Discovered`].
    Discover,
    /// Keep this metadata for the next start (best effort) →
    /// [`Fed::Done`].
    Keep(KeptMetadata),
    /// In the background, `after_ms` from now: discover again and keep
    /// what it finds → [`Fed::Done`] at once.
    Revalidate {
        /// How long to wait first ([`REVALIDATE_AFTER_MS`]).
        after_ms: u32,
    },
}

/// What `create()` starts with.
#[derive(Debug)]
pub struct Started {
    /// The client's endpoints.
    pub endpoints: Endpoints,
    /// The session in use, if a set was stored.
    pub tokens: Option<TokenSet>,
    /// The storage problem a failed load reports (the problem, and the
    /// error's code and message).
    pub storage_problem: Option<(StorageProblem, String)>,
}

/// The machine's next step: something to do, or started (or why
/// `create()` fails).
pub type Step = Next<Need, Result<Started, Error>>;

/// What happened, fed to [`CreateClient::on`].
// Fed once each, short-lived.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Fed {
    /// The store was opened and read (always first).
    Opened {
        /// The stored set's load.
        loaded: Result<Option<TokenSet>, Error>,
        /// The kept metadata, if any was readable.
        kept: Option<KeptMetadata>,
    },
    /// Discovery's result.
    Discovered(Result<ProviderMetadata, Error>),
    /// The keep or the revalidation is done or under way.
    Done,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Stage {
    Opening,
    Discovering,
    /// Revalidating later, going on with this kept metadata.
    Keeping(ProviderMetadata),
    /// Keeping discovered metadata for the next start, once its endpoints
    /// passed every check (a document this client refuses is not kept).
    KeepingChecked(Endpoints),
    Over,
}

/// One `create()` (see the module's order).
#[derive(Debug)]
pub struct CreateClient {
    source: EndpointSource,
    /// The app asked for PAR.
    par: bool,
    issuer: String,
    overrides: EndpointOverrides,
    allow_insecure_loopback: bool,
    loaded: Option<Result<Option<TokenSet>, Error>>,
    stage: Stage,
}

impl CreateClient {
    /// A `create()` with these options: an atproto client's (its servers
    /// are each account's) or one of `issuer` with the app's `overrides`,
    /// asking for PAR or not. An issuer that is not a usable URL fails it
    /// before anything is opened ([`EndpointSource::of`]); otherwise its
    /// first step is to open the store and read it ([`Need::Open`]).
    pub fn start(
        atproto: bool,
        issuer: &str,
        overrides: EndpointOverrides,
        allow_insecure_loopback: bool,
        par: bool,
    ) -> (CreateClient, Step) {
        let source = EndpointSource::of(atproto, issuer, &overrides, allow_insecure_loopback);
        let mut machine = CreateClient {
            source: *source.as_ref().unwrap_or(&EndpointSource::Account),
            par,
            issuer: issuer.to_owned(),
            overrides,
            allow_insecure_loopback,
            loaded: None,
            stage: Stage::Opening,
        };
        if let Err(error) = source {
            machine.stage = Stage::Over;
            return (machine, Step::Done(Err(error)));
        }
        (machine, Step::Do(Need::Open))
    }

    /// The step after `fed`, at `now_ms`. An input the stage does not
    /// expect (a driver bug) fails `create()`.
    pub fn on(&mut self, fed: Fed, now_ms: u64) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            (Stage::Opening, Fed::Opened { loaded, kept }) => {
                let account = match &loaded {
                    Ok(Some(tokens)) => tokens.atproto.as_deref(),
                    _ => None,
                };
                let endpoints = match self.source {
                    EndpointSource::Account => Some(Ok(client_endpoints(account))),
                    EndpointSource::Explicit => Some(Endpoints::from_explicit(
                        self.overrides.clone(),
                        self.allow_insecure_loopback,
                    )),
                    EndpointSource::Discovery => None,
                };
                self.loaded = Some(loaded);
                match endpoints {
                    Some(endpoints) => self.started(endpoints),
                    None => self.metadata(kept, now_ms),
                }
            }
            // Checked, then kept before going on.
            (Stage::Discovering, Fed::Discovered(Ok(fresh))) => {
                let kept = KeptMetadata {
                    fetched_at_ms: now_ms,
                    metadata: fresh.clone(),
                };
                let endpoints = self.endpoints_of(fresh);
                match self.checked(endpoints) {
                    Ok(endpoints) => {
                        self.stage = Stage::KeepingChecked(endpoints);
                        Step::Do(Need::Keep(kept))
                    }
                    Err(error) => Step::Done(Err(error)),
                }
            }
            (Stage::Discovering, Fed::Discovered(Err(error))) => Step::Done(Err(error)),
            (Stage::Keeping(metadata), Fed::Done) => {
                let endpoints = self.endpoints_of(metadata);
                self.started(endpoints)
            }
            (Stage::KeepingChecked(endpoints), Fed::Done) => self.started(Ok(endpoints)),
            (_, _) => Step::Done(Err(Error::Discovery {
                reason: "create() was fed out of order".into(),
            })),
        }
    }

    /// Step 2 for discovered endpoints: usable kept metadata at once (and
    /// revalidated later), else discovery's.
    fn metadata(&mut self, kept: Option<KeptMetadata>, now_ms: u64) -> Step {
        match kept.and_then(|kept| kept.usable(&self.issuer, now_ms)) {
            Some(metadata) => {
                self.stage = Stage::Keeping(metadata);
                Step::Do(Need::Revalidate {
                    after_ms: REVALIDATE_AFTER_MS,
                })
            }
            None => {
                self.stage = Stage::Discovering;
                Step::Do(Need::Discover)
            }
        }
    }

    /// The endpoints `metadata` gives, with the app's overrides.
    fn endpoints_of(&mut self, metadata: ProviderMetadata) -> Result<Endpoints, Error> {
        let overrides = std::mem::take(&mut self.overrides);
        let loopback = self.allow_insecure_loopback;
        Endpoints::from_metadata(metadata, overrides, loopback)
    }

    /// PAR asked for (or required by the server) but impossible fails
    /// `create()` now, not at the first login
    /// ([`EndpointSource::check_at_start`]).
    fn checked(&self, endpoints: Result<Endpoints, Error>) -> Result<Endpoints, Error> {
        endpoints.and_then(|endpoints| {
            let par = self.source.check_at_start(self.par, &endpoints);
            par.map(|()| endpoints)
        })
    }

    /// Step 3, once the endpoints are known and checked ([`Self::checked`]).
    fn started(&mut self, endpoints: Result<Endpoints, Error>) -> Step {
        let endpoints = match self.checked(endpoints) {
            Ok(endpoints) => endpoints,
            Err(error) => return Step::Done(Err(error)),
        };
        let loaded = self.loaded.take().unwrap_or(Ok(None));
        let (tokens, storage_problem) = session_at_start(loaded);
        Step::Done(Ok(Started {
            endpoints,
            tokens,
            storage_problem,
        }))
    }
}

impl Machine for CreateClient {
    type Need = Need;
    type Fed = Fed;
    type Done = Result<Started, Error>;
    type With<'a> = u64;

    fn on(&mut self, fed: Fed, now_ms: u64) -> Step {
        CreateClient::on(self, fed, now_ms)
    }
}

#[cfg(test)]
#[path = "create_machine_tests.rs"]
mod tests;
