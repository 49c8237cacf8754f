//! The AT Protocol resolution chain as a machine that does no I/O
//! ([`Resolve`]): fed each server's answer ([`Fed`]), it says which
//! document to fetch next ([`Need`]); the driver
//! ([`resolution`](crate::core::resolution)) performs each `GET` and
//! decides nothing. What each answer means is
//! [`atproto`](crate::core::atproto)'s (`process_*`); the order is here.
//!
//! Three chains, each in this order:
//! - **a login** from what the user typed: a handle is resolved to a DID
//!   (resolveHandle), then the DID's document names the PDS — and, for a
//!   handle, must claim it back —, the PDS names its authorization server,
//!   whose metadata must fit the profile;
//! - **an account's check** (after a code exchange, before every
//!   refresh): the `sub` must be a DID whose document names a PDS that names
//!   the expected server (`issuer_mismatch` otherwise); after a code
//!   exchange, the handle the document claims is then resolved and kept
//!   only if it names the DID back (else the account has no handle: a
//!   document can claim any handle);
//! - **a server's metadata** (at a callback, for the server the login went
//!   to).

use crate::core::atproto::{
    authorization_server_metadata_url, base, check_origin_only, did_document_url, is_valid_did,
    parse_identifier, process_authorization_server, process_did_document,
    process_protected_resource, process_resolve_handle, protected_resource_url, resolve_handle_url,
    DidDocument, Identifier, Identity, ProtectedResourceMetadata, ResolveHandleReply, Resolver,
};
use crate::core::drive::{Machine, Next};
use crate::core::platform::HttpReply;
use crate::core::{Error, ProviderMetadata};

/// The document the driver fetches next (`GET url`); its answer is fed back
/// as the matching [`Fed`].
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    /// resolveHandle → [`Fed::Handle`].
    Handle(String),
    /// A DID document → [`Fed::DidDocument`].
    DidDocument(String),
    /// A PDS's protected-resource metadata → [`Fed::ProtectedResource`].
    ProtectedResource(String),
    /// An authorization server's RFC 8414 metadata → [`Fed::ServerMetadata`].
    ServerMetadata(String),
}

impl Need {
    /// The document's URL.
    pub fn url(&self) -> &str {
        match self {
            Need::Handle(url)
            | Need::DidDocument(url)
            | Need::ProtectedResource(url)
            | Need::ServerMetadata(url) => url,
        }
    }
}

/// How a chain ended.
#[derive(Debug)]
pub enum Resolved {
    /// A login's account and its server's metadata.
    Login(Identity, ProviderMetadata),
    /// A checked account.
    Account(Identity),
    /// A server's checked metadata.
    Server(ProviderMetadata),
}

/// The machine's next step: fetch this and feed the answer back, or
/// resolved (or the first failure).
pub type Step = Next<Need, Result<Resolved, Error>>;

/// An answer, or why there is none (passed on as it is).
#[derive(Debug)]
pub enum Fed {
    /// resolveHandle's.
    Handle(Result<HttpReply<ResolveHandleReply>, Error>),
    /// A DID document's.
    DidDocument(Result<HttpReply<DidDocument>, Error>),
    /// A PDS's protected-resource metadata's.
    ProtectedResource(Result<HttpReply<ProtectedResourceMetadata>, Error>),
    /// An authorization server's metadata's.
    ServerMetadata(Result<HttpReply<ProviderMetadata>, Error>),
}

/// How much of an account a check establishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountCheck {
    /// Its server, and the handle it shows (after a code exchange).
    WithHandle,
    /// Its server only (before a refresh: nothing else is kept).
    ServerOnly,
}

/// What the chain is for.
#[derive(Debug)]
enum Goal {
    /// A login; the handle typed, which the document must claim.
    Login { typed: Option<String> },
    /// An account that `issuer` may sign in.
    Account { issuer: String, check: AccountCheck },
    /// A server's metadata.
    Server,
}

/// Where the chain is.
#[derive(Debug)]
enum Stage {
    Handle,
    DidDocument(String),
    ProtectedResource(Identity),
    /// The account's handle, resolved to see that it names the DID back.
    HandleBack(Identity),
    ServerMetadata {
        issuer: String,
        identity: Option<Identity>,
    },
    Over,
}

/// One resolution chain (see the module's orders).
#[derive(Debug)]
pub struct Resolve {
    resolver: Resolver,
    goal: Goal,
    stage: Stage,
}

impl Resolve {
    /// A login's chain from `input` (a handle, with or without `@`, or a
    /// DID); its first step.
    pub fn login(resolver: &Resolver, input: &str) -> (Resolve, Step) {
        let mut machine = Resolve::new(resolver, Goal::Login { typed: None });
        let step = match parse_identifier(input) {
            Ok(Identifier::Handle(handle)) => {
                let url = resolve_handle_url(resolver, &handle);
                machine.goal = Goal::Login {
                    typed: Some(handle),
                };
                machine.stage = Stage::Handle;
                Step::Do(Need::Handle(url))
            }
            Ok(Identifier::Did(did)) => machine.document(did),
            Err(error) => Step::Done(Err(error)),
        };
        (machine, step)
    }

    /// The check that `did` is an account `issuer` may sign in (and, with
    /// [`AccountCheck::WithHandle`], which handle it shows); its first step.
    pub fn account(
        resolver: &Resolver,
        did: &str,
        issuer: &str,
        check: AccountCheck,
    ) -> (Resolve, Step) {
        let goal = Goal::Account {
            issuer: issuer.to_owned(),
            check,
        };
        let mut machine = Resolve::new(resolver, goal);
        let step = if is_valid_did(did) {
            machine.document(did.to_owned())
        } else {
            Step::Done(Err(Error::DidResolution {
                reason: "the token response's sub is not a did:plc or did:web DID".into(),
            }))
        };
        (machine, step)
    }

    /// `issuer`'s metadata, checked for the profile; the first step.
    pub fn server(issuer: &str) -> (Resolve, Step) {
        // No identity is resolved: the resolver is never consulted.
        let unused = Resolver {
            handle_resolver: String::new(),
            plc_directory: String::new(),
            allow_insecure_loopback: false,
        };
        let mut machine = Resolve::new(&unused, Goal::Server);
        let step = machine.server_metadata(issuer.to_owned(), None);
        (machine, step)
    }

    fn new(resolver: &Resolver, goal: Goal) -> Resolve {
        Resolve {
            resolver: resolver.clone(),
            goal,
            stage: Stage::Over,
        }
    }

    /// The step after `fed`. An answer the stage does not expect (a driver
    /// bug) ends the chain with `did_resolution_failed`.
    pub fn on(&mut self, fed: Fed) -> Step {
        let loopback = self.resolver.allow_insecure_loopback;
        let step = match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            (Stage::Handle, Fed::Handle(answer)) => answer
                .and_then(process_resolve_handle)
                .map(|did| self.document(did)),
            (Stage::DidDocument(did), Fed::DidDocument(answer)) => answer
                .and_then(|reply| process_did_document(reply, &did, loopback))
                .and_then(|identity| self.claimed(identity)),
            (Stage::ProtectedResource(identity), Fed::ProtectedResource(answer)) => answer
                .and_then(|reply| process_protected_resource(reply, &identity.pds, loopback))
                .and_then(|issuer| self.named(identity, issuer)),
            (Stage::HandleBack(mut identity), Fed::Handle(answer)) => {
                let names_back = answer
                    .and_then(process_resolve_handle)
                    .is_ok_and(|did| did == identity.did);
                if !names_back {
                    identity.handle = None;
                }
                Ok(Step::Done(Ok(Resolved::Account(identity))))
            }
            (Stage::ServerMetadata { issuer, identity }, Fed::ServerMetadata(answer)) => answer
                .and_then(|reply| process_authorization_server(reply, &issuer))
                .map(|metadata| self.described(identity, metadata)),
            (_, _) => Err(Error::DidResolution {
                reason: "the resolution was fed out of order".into(),
            }),
        };
        step.unwrap_or_else(|error| Step::Done(Err(error)))
    }

    /// Fetches `did`'s document.
    fn document(&mut self, did: String) -> Step {
        match did_document_url(&self.resolver, &did) {
            Ok(url) => {
                self.stage = Stage::DidDocument(did);
                Step::Do(Need::DidDocument(url))
            }
            Err(error) => Step::Done(Err(error)),
        }
    }

    /// The document read: a typed handle must be claimed back — the handle
    /// named this DID, and the document names the handle — then the PDS is
    /// asked for its server.
    fn claimed(&mut self, identity: Identity) -> Result<Step, Error> {
        if let Goal::Login { typed: Some(typed) } = &self.goal {
            if identity.handle.as_deref() != Some(typed.as_str()) {
                return Err(Error::HandleNotFound {
                    reason: "the DID document does not claim the handle".into(),
                });
            }
        }
        let url = protected_resource_url(&identity.pds);
        self.stage = Stage::ProtectedResource(identity);
        Ok(Step::Do(Need::ProtectedResource(url)))
    }

    /// The PDS named its server: an account's check ends here; a login
    /// goes on to the server's metadata.
    fn named(&mut self, identity: Identity, issuer: String) -> Result<Step, Error> {
        match &self.goal {
            Goal::Account {
                issuer: expected, ..
            } if *expected != issuer => Err(Error::IssuerMismatch),
            Goal::Account {
                check: AccountCheck::WithHandle,
                ..
            } if identity.handle.is_some() => {
                let handle = identity.handle.as_deref().unwrap_or_default();
                let url = resolve_handle_url(&self.resolver, handle);
                self.stage = Stage::HandleBack(identity);
                Ok(Step::Do(Need::Handle(url)))
            }
            Goal::Account { .. } => Ok(Step::Done(Ok(Resolved::Account(identity)))),
            Goal::Login { .. } | Goal::Server => Ok(self.server_metadata(issuer, Some(identity))),
        }
    }

    /// Fetches `issuer`'s metadata; an issuer that is not an origin is
    /// refused before anything is sent.
    fn server_metadata(&mut self, issuer: String, identity: Option<Identity>) -> Step {
        if let Err(error) = check_origin_only(&issuer) {
            return Step::Done(Err(error));
        }
        let url = authorization_server_metadata_url(&issuer);
        self.stage = Stage::ServerMetadata { issuer, identity };
        Step::Do(Need::ServerMetadata(url))
    }

    /// The chain's end with the server's metadata.
    fn described(&mut self, identity: Option<Identity>, metadata: ProviderMetadata) -> Step {
        Step::Done(Ok(match identity {
            Some(mut identity) => {
                identity.pds = base(&identity.pds).to_owned();
                Resolved::Login(identity, metadata)
            }
            None => Resolved::Server(metadata),
        }))
    }
}

impl Machine for Resolve {
    type Need = Need;
    type Fed = Fed;
    type Done = Result<Resolved, Error>;
    type With<'a> = ();

    fn on(&mut self, fed: Fed, (): ()) -> Step {
        Resolve::on(self, fed)
    }
}

#[cfg(test)]
#[path = "resolve_machine_tests.rs"]
mod tests;
