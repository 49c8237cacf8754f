//! `create()` as a machine that does no I/O ([`CreateClient`]): where the
//! endpoints come from, the metadata it starts with, and the session it
//! starts with, in order. `browser/create.rs` (`Creating`) performs each
//! [`Need`] and the binding builds the client from [`Started`]; the rules
//! themselves are [`startup`](crate::core::startup)'s.
//!
//! The order:
//! 0. Where the endpoints come from ([`EndpointSource::of`]): an issuer
//!    that is not a usable URL fails `create()` before anything is opened.
//! 1. The store is opened and the stored set and kept metadata read — with
//!    discovery started alongside when the endpoints come from it, so a
//!    start costs the slower of the two, not their sum.
//! 2. The endpoints: an atproto client's are the stored account's; explicit
//!    ones are checked as given; discovered ones come from the metadata
//!    [`metadata_at_start`] chooses — discovery's when it answered first
//!    (kept for the next start, in the background), else usable kept
//!    metadata (discovery then finishes in the background and keeps what
//!    it finds), else discovery's once it answers (kept before going on).
//!    PAR asked for (or required by the server) but impossible fails
//!    `create()` here ([`EndpointSource::check_at_start`]).
//! 3. The session it starts with ([`session_at_start`]).

use crate::core::atproto_login::client_endpoints;
use crate::core::discovery::{EndpointOverrides, Endpoints};
use crate::core::drive::{Machine, Next};
use crate::core::public_api::StorageProblem;
use crate::core::startup::{
    metadata_at_start, session_at_start, EndpointSource, KeptMetadata, MetadataStart,
};
use crate::core::{Error, ProviderMetadata, TokenSet};

/// What the binding does next.
// One create() per client: the metadata is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Need {
    /// Open the store and read the stored set and the kept metadata, with
    /// discovery started alongside when `discover_alongside` →
    /// [`Fed::Opened`]. Always first.
    Open {
        /// Discovery runs while the store is read.
        discover_alongside: bool,
    },
    /// Wait for discovery → [`Fed::Discovered`].
    AwaitDiscovery,
    /// Keep this metadata for the next start — in the background when
    /// `background` (best effort either way) → [`Fed::Done`].
    Keep {
        /// What to keep.
        kept: KeptMetadata,
        /// Off the critical path.
        background: bool,
    },
    /// Let discovery finish in the background and keep what it finds →
    /// [`Fed::Done`].
    Revalidate,
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
    /// The store was opened and read (always first); `early` is
    /// discovery's result when it answered before the reads did.
    Opened {
        /// The stored set's load.
        loaded: Result<Option<TokenSet>, Error>,
        /// The kept metadata, if any was readable.
        kept: Option<KeptMetadata>,
        /// Discovery's result, when it came first.
        early: Option<Result<ProviderMetadata, Error>>,
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
    /// Keeping (or revalidating) before going on with this metadata.
    Keeping(ProviderMetadata),
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
    /// first step is to open the store and read it ([`Need::Open`]), with
    /// discovery alongside when the endpoints come from it.
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
        let source = match source {
            Ok(source) => source,
            Err(error) => {
                machine.stage = Stage::Over;
                return (machine, Step::Done(Err(error)));
            }
        };
        let discover_alongside = source == EndpointSource::Discovery;
        (machine, Step::Do(Need::Open { discover_alongside }))
    }

    /// The step after `fed`, at `now_ms`. An input the stage does not
    /// expect (a driver bug) fails `create()`.
    pub fn on(&mut self, fed: Fed, now_ms: u64) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            (
                Stage::Opening,
                Fed::Opened {
                    loaded,
                    kept,
                    early,
                },
            ) => {
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
                    None => self.metadata(early, kept, now_ms),
                }
            }
            // Kept before going on.
            (Stage::Discovering, Fed::Discovered(Ok(fresh))) => self.keep(fresh, now_ms, false),
            (Stage::Discovering, Fed::Discovered(Err(error))) => Step::Done(Err(error)),
            (Stage::Keeping(metadata), Fed::Done) => self.discovered(metadata),
            (_, _) => Step::Done(Err(Error::Discovery {
                reason: "create() was fed out of order".into(),
            })),
        }
    }

    /// Step 2 for discovered endpoints.
    fn metadata(
        &mut self,
        early: Option<Result<ProviderMetadata, Error>>,
        kept: Option<KeptMetadata>,
        now_ms: u64,
    ) -> Step {
        match metadata_at_start(early, kept, &self.issuer, now_ms) {
            Err(error) => Step::Done(Err(error)),
            // Kept off the critical path.
            Ok(MetadataStart::Fresh(fresh)) => self.keep(fresh, now_ms, true),
            Ok(MetadataStart::Kept {
                metadata,
                revalidate: true,
            }) => {
                self.stage = Stage::Keeping(metadata);
                Step::Do(Need::Revalidate)
            }
            Ok(MetadataStart::Kept {
                metadata,
                revalidate: false,
            }) => self.discovered(metadata),
            Ok(MetadataStart::Wait) => {
                self.stage = Stage::Discovering;
                Step::Do(Need::AwaitDiscovery)
            }
        }
    }

    /// Keeps `fresh`, fetched at `now_ms`, then goes on with it.
    fn keep(&mut self, fresh: ProviderMetadata, now_ms: u64, background: bool) -> Step {
        let kept = KeptMetadata {
            fetched_at_ms: now_ms,
            metadata: fresh.clone(),
        };
        self.stage = Stage::Keeping(fresh);
        Step::Do(Need::Keep { kept, background })
    }

    fn discovered(&mut self, metadata: ProviderMetadata) -> Step {
        let overrides = std::mem::take(&mut self.overrides);
        let loopback = self.allow_insecure_loopback;
        self.started(Endpoints::from_metadata(metadata, overrides, loopback))
    }

    /// Step 3, once the endpoints are known: PAR asked for (or required by
    /// the server) but impossible fails `create()` now, not at the first
    /// login ([`EndpointSource::check_at_start`]).
    fn started(&mut self, endpoints: Result<Endpoints, Error>) -> Step {
        let checked = endpoints.and_then(|endpoints| {
            let par = self.source.check_at_start(self.par, &endpoints);
            par.map(|()| endpoints)
        });
        let endpoints = match checked {
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
