//! The driver of the AT Protocol resolution chains
//! ([`Resolve`](crate::core::resolve_machine::Resolve)): performs each
//! `GET` the machine asks for and feeds the answer back, deciding nothing.

use serde::de::DeserializeOwned;

use crate::core::atproto::{Identity, Resolver};
use crate::core::drive::{drive, Perform};
use crate::core::platform::{Http, HttpReply};
pub use crate::core::resolve_machine::AccountCheck;
use crate::core::resolve_machine::{Fed, Need, Resolve, Resolved, Step};
use crate::core::{Error, ProviderMetadata};

/// Runs a chain from its first step to its end.
async fn resolve<H: Http>(
    http: &H,
    (mut machine, first): (Resolve, Step),
) -> Result<Resolved, Error> {
    drive(&mut machine, first, &mut Gets(http)).await
}

/// Performs the chain's needs. Every need is a `GET`: one request awaited
/// in one place, its body then read as the need's type (one copy of the
/// request's code, not one per document).
struct Gets<'h, H>(&'h H);

impl<H: Http> Perform<Resolve> for Gets<'_, H> {
    async fn perform(&mut self, need: Need, _: &Resolve) -> Fed {
        let http = self.0;
        let answer = http.get(need.url()).await;
        match need {
            Need::Handle(_) => Fed::Handle(read(http, answer)),
            Need::DidDocument(_) => Fed::DidDocument(read(http, answer)),
            Need::ProtectedResource(_) => Fed::ProtectedResource(read(http, answer)),
            Need::ServerMetadata(_) => Fed::ServerMetadata(read(http, answer)),
        }
    }

    fn with(&self) {}
}

/// An answer's body read as a `T` (a body that is not one stays an `Err`
/// in the reply).
fn read<H: Http, T: DeserializeOwned>(
    http: &H,
    answer: Result<HttpReply<H::Body>, Error>,
) -> Result<HttpReply<T>, Error> {
    answer.map(|reply| reply.read_body(|body| http.read(body)))
}

/// A chain that ended with another goal's result: impossible from
/// [`Resolve`]'s constructors, refused rather than trusted.
fn other_goal() -> Error {
    Error::DidResolution {
        reason: "the resolution ended with another goal's result".into(),
    }
}

/// The identity behind what the user typed, and its authorization
/// server's metadata ([`Resolve::login`]).
pub async fn resolve_login<H: Http>(
    http: &H,
    resolver: &Resolver,
    input: &str,
) -> Result<(Identity, ProviderMetadata), Error> {
    match resolve(http, Resolve::login(resolver, input)).await? {
        Resolved::Login(identity, metadata) => Ok((identity, metadata)),
        _ => Err(other_goal()),
    }
}

/// Checks that the account `did` is one `issuer` may sign in
/// ([`Resolve::account`]): its document names a PDS that names `issuer`;
/// with [`AccountCheck::WithHandle`], the handle it claims is kept only if
/// it names the DID back.
pub async fn verify_subject<H: Http>(
    http: &H,
    resolver: &Resolver,
    did: &str,
    issuer: &str,
    check: AccountCheck,
) -> Result<Identity, Error> {
    match resolve(http, Resolve::account(resolver, did, issuer, check)).await? {
        Resolved::Account(identity) => Ok(identity),
        _ => Err(other_goal()),
    }
}

/// An authorization server's metadata, checked for the profile
/// ([`Resolve::server`]).
pub async fn authorization_server_metadata<H: Http>(
    http: &H,
    issuer: &str,
) -> Result<ProviderMetadata, Error> {
    match resolve(http, Resolve::server(issuer)).await? {
        Resolved::Server(metadata) => Ok(metadata),
        _ => Err(other_goal()),
    }
}
