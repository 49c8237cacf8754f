//! The AT Protocol OAuth profile ("Sign in with Bluesky"): from what the
//! user typed to the authorization server that may sign them in, and back
//! from the token response's `sub` to the same server.
//!
//! There is no configured issuer. A handle resolves to a DID through an
//! XRPC `com.atproto.identity.resolveHandle` service (a browser cannot
//! query DNS); the DID document (PLC directory or `did:web`) names the
//! user's PDS; the PDS's protected-resource metadata names its
//! authorization server, whose RFC 8414 metadata must carry its own origin
//! as `issuer`. After the code exchange the `sub` DID is resolved again and
//! must lead to the same server: a server may only sign in the accounts
//! whose PDS names it.
//!
//! Each step is a request/process pair; the network's answers are input:
//! sizes are bounded and the handle and DID grammars of the specifications
//! are enforced.

use serde::{Deserialize, Serialize};

use crate::core::discovery::check_endpoint_url;
use crate::core::json_member as loose;
use crate::core::origin::Origin;
use crate::core::platform::HttpReply;
use crate::core::{Error, ProviderMetadata};

/// The scope every AT Protocol login must be granted.
pub const SCOPE: &str = "atproto";

/// Whether a space-separated `scope` holds [`SCOPE`]: without it a token
/// does not act as the account at its PDS.
pub fn holds_atproto(scope: &str) -> bool {
    scope.split(' ').any(|s| s == SCOPE)
}

/// The public PLC directory, the default for `did:plc` documents.
pub const DEFAULT_PLC_DIRECTORY: &str = "https://plc.directory";

/// The longest handle ([atproto handle spec](https://atproto.com/specs/handle)).
const MAX_HANDLE_LEN: usize = 253;
/// The longest DID latchkey resolves
/// ([atproto DID spec](https://atproto.com/specs/did): 2 KB).
const MAX_DID_LEN: usize = 2048;
/// The most `alsoKnownAs` and `service` entries read from a document.
const MAX_ENTRIES: usize = 32;

/// Where resolution starts and which servers it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// The base URL of a `com.atproto.identity.resolveHandle` service.
    pub handle_resolver: String,
    /// The PLC directory for `did:plc` documents.
    pub plc_directory: String,
    /// `http://` loopback servers allowed (test networks only).
    pub allow_insecure_loopback: bool,
}

/// What the user typed: a handle or a DID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// A handle, lowercased, without a leading `@`.
    Handle(String),
    /// A DID.
    Did(String),
}

/// Whether `handle` has the handle syntax: 2+ dot-separated labels of
/// ASCII letters, digits and inner hyphens, 1–63 characters each, the last
/// not starting with a digit, 253 characters at most.
pub fn is_valid_handle(handle: &str) -> bool {
    if handle.is_empty() || handle.len() > MAX_HANDLE_LEN {
        return false;
    }
    let labels: Vec<&str> = handle.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(|l| label_ok(l))
        && !labels[labels.len() - 1].starts_with(|c: char| c.is_ascii_digit())
}

/// Whether `did` is a DID latchkey can resolve: `did:plc:` followed by 24
/// base32 characters (`a-z`, `2-7`), or `did:web:` followed by a hostname
/// (no paths; a port, percent-encoded as `%3A`, only for `localhost`, as
/// the atproto DID rules allow for testing).
pub fn is_valid_did(did: &str) -> bool {
    if did.len() > MAX_DID_LEN {
        return false;
    }
    if let Some(id) = did.strip_prefix("did:plc:") {
        return id.len() == 24 && id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
    }
    if let Some(id) = did.strip_prefix("did:web:") {
        let (host, port) = match id.split_once("%3A") {
            Some((host, port)) => (host, Some(port)),
            None => (id, None),
        };
        let host_ok = (host == "localhost" || is_valid_handle(host)) && !host.contains(':');
        let port_ok = port.is_none_or(|p| {
            host == "localhost"
                && !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
        });
        return host_ok && port_ok;
    }
    false
}

/// Reads what the user typed: a DID as it is, or a handle (a leading `@`
/// removed, lowercased). Anything else is `handle_not_found`.
pub fn parse_identifier(input: &str) -> Result<Identifier, Error> {
    let input = input.trim();
    if input.starts_with("did:") {
        return match is_valid_did(input) {
            true => Ok(Identifier::Did(input.to_owned())),
            false => Err(Error::DidResolution {
                reason: "not a did:plc or did:web DID".into(),
            }),
        };
    }
    let handle = input
        .strip_prefix('@')
        .unwrap_or(input)
        .to_ascii_lowercase();
    match is_valid_handle(&handle) {
        true => Ok(Identifier::Handle(handle)),
        false => Err(Error::HandleNotFound {
            reason: "not a valid handle".into(),
        }),
    }
}

/// `url` without its trailing `/`s, so paths can be appended.
pub(crate) fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The resolveHandle request for `handle` (a valid handle: nothing in it
/// needs encoding).
pub fn resolve_handle_url(resolver: &Resolver, handle: &str) -> String {
    format!(
        "{}/xrpc/com.atproto.identity.resolveHandle?handle={handle}",
        base(&resolver.handle_resolver)
    )
}

/// resolveHandle's answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResolveHandleReply {
    /// The DID the handle points to.
    pub did: Option<String>,
}

/// Whether an answer is a redirect, which resolution never follows: the
/// platform sends its `GET`s without following redirects (a browser then
/// answers status 0, an opaque redirect), so that no document steers the
/// chain to a host the previous one did not name.
pub fn is_redirect(status: u16) -> bool {
    status == 0 || (300..400).contains(&status)
}

/// Why `who`'s answer with `status` (not 200) is refused. A redirect is
/// as permanent as any other refusal: the error is the stage's own, never
/// `network_error`, which would ask the app to try again.
fn refused(who: &str, status: u16) -> String {
    match is_redirect(status) {
        true => {
            format!("{who} answered with a redirect, which identity resolution does not follow")
        }
        false => format!("{who} answered HTTP {status}"),
    }
}

/// The DID of a resolveHandle answer, or `handle_not_found`.
pub fn process_resolve_handle(reply: HttpReply<ResolveHandleReply>) -> Result<String, Error> {
    let not_found = |reason: String| Error::HandleNotFound { reason };
    if reply.status != 200 {
        return Err(not_found(refused("the resolver", reply.status)));
    }
    let did = reply
        .body
        .map_err(not_found)?
        .did
        .ok_or_else(|| not_found("the resolver's answer has no did".into()))?;
    if !is_valid_did(&did) {
        return Err(not_found(
            "the resolver answered with an invalid DID".into(),
        ));
    }
    Ok(did)
}

/// Where `did`'s document is: the PLC directory, or the `did:web` host's
/// `/.well-known/did.json`. A loopback host (`did:web:localhost`, which the
/// DID rules allow for testing, or a `*.localhost` name) only with
/// `allowInsecureLoopback`, and then over plain `http`: otherwise an
/// account would resolve to whatever runs on the user's own machine.
pub fn did_document_url(resolver: &Resolver, did: &str) -> Result<String, Error> {
    if did.starts_with("did:plc:") {
        return Ok(format!("{}/{did}", base(&resolver.plc_directory)));
    }
    let host = did
        .strip_prefix("did:web:")
        .ok_or_else(|| Error::DidResolution {
            reason: "not a did:plc or did:web DID".into(),
        })?
        .replace("%3A", ":");
    let loopback = on_loopback(&format!("http://{host}"));
    let scheme = match (loopback, resolver.allow_insecure_loopback) {
        (false, _) => "https",
        (true, true) => "http",
        (true, false) => {
            return Err(Error::DidResolution {
                reason: "a did:web on a loopback host is for testing (allowInsecureLoopback)"
                    .into(),
            })
        }
    };
    Ok(format!("{scheme}://{host}/.well-known/did.json"))
}

/// Whether `url` is on the user's own machine (any case of `localhost`,
/// `*.localhost`, `127.x`, `[::1]`). Names an account's documents give
/// (its `did:web` host, its PDS, its PDS's authorization server) may be
/// there only with `allowInsecureLoopback`: otherwise an account would
/// resolve to whatever runs on the user's machine.
fn on_loopback(url: &str) -> bool {
    Origin::of_url(url).is_some_and(|origin| origin.is_loopback())
}

/// [`on_loopback`] refused without `allowInsecureLoopback`.
fn off_loopback(url: &str, allow_insecure_loopback: bool) -> Result<(), String> {
    match on_loopback(url) && !allow_insecure_loopback {
        true => Err("it is on a loopback host, for testing (allowInsecureLoopback)".into()),
        false => Ok(()),
    }
}

/// A DID document, the members latchkey reads
/// ([DID Core](https://www.w3.org/TR/did-core/), atproto's use of it).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DidDocument {
    /// The DID it describes.
    pub id: String,
    /// `at://<handle>` entries: the handles the account claims.
    #[serde(rename = "alsoKnownAs")]
    pub also_known_as: Vec<String>,
    /// Services, among them the PDS (`#atproto_pds`).
    pub service: Vec<DidService>,
}

/// One service of a DID document. DID Core lets a service's `type` be a
/// set and its `serviceEndpoint` a map or a set: another service's, read
/// as a string, would fail the whole document. Only strings are kept; the
/// PDS's are strings.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DidService {
    /// `#atproto_pds` or `<did>#atproto_pds` for the PDS.
    #[serde(deserialize_with = "loose_string")]
    pub id: String,
    /// `AtprotoPersonalDataServer` for the PDS.
    #[serde(rename = "type", deserialize_with = "loose_string")]
    pub kind: String,
    /// The PDS's URL.
    #[serde(rename = "serviceEndpoint", deserialize_with = "loose::text")]
    pub endpoint: Option<String>,
}

/// A string member, or `""` for any other type.
fn loose_string<'de, D: serde::Deserializer<'de>>(value: D) -> Result<String, D::Error> {
    Ok(loose::text(value)?.unwrap_or_default())
}

/// An account as its DID document describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The account's DID.
    pub did: String,
    /// The first handle the document claims, when it is a valid handle.
    /// (Confirmed when it is the handle the user typed, which resolved to
    /// this DID; otherwise as the document says.)
    pub handle: Option<String>,
    /// The PDS's URL.
    pub pds: String,
}

/// The PDS and handle of `did`'s document, or `did_resolution_failed`.
pub fn process_did_document(
    reply: HttpReply<DidDocument>,
    did: &str,
    allow_insecure_loopback: bool,
) -> Result<Identity, Error> {
    let failed = |reason: String| Error::DidResolution { reason };
    if reply.status != 200 {
        return Err(failed(refused("the DID document", reply.status)));
    }
    let document = reply.body.map_err(failed)?;
    if document.id != did {
        return Err(failed("the document describes another DID".into()));
    }
    let pds = document
        .service
        .iter()
        .take(MAX_ENTRIES)
        .find(|s| {
            (s.id == "#atproto_pds" || s.id == format!("{did}#atproto_pds"))
                && s.kind == "AtprotoPersonalDataServer"
        })
        .and_then(|s| s.endpoint.clone())
        .ok_or_else(|| failed("the document names no PDS".into()))?;
    check_endpoint_url("serviceEndpoint", &pds, allow_insecure_loopback)
        .map_err(|error| failed(format!("the PDS URL is unusable: {error}")))?;
    off_loopback(&pds, allow_insecure_loopback)
        .map_err(|why| failed(format!("the PDS URL is unusable: {why}")))?;
    // An origin: the token goes to every URL of it, and its metadata is
    // asked for at its root (a path would put it where a tenant of a shared
    // host may answer).
    check_origin_only(base(&pds)).map_err(|_| failed("the PDS URL is not an origin".into()))?;
    let handle = document
        .also_known_as
        .iter()
        .take(MAX_ENTRIES)
        .filter_map(|aka| aka.strip_prefix("at://"))
        .map(str::to_ascii_lowercase)
        .find(|h| is_valid_handle(h));
    Ok(Identity {
        did: did.to_owned(),
        handle,
        pds: base(&pds).to_owned(),
    })
}

/// A signed-in AT Protocol account and the servers of its session, kept
/// with its tokens: a reload or another tab needs no resolution before its
/// first call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's DID (the token response's `sub`).
    pub did: String,
    /// Its handle, as its DID document claims it.
    pub handle: Option<String>,
    /// Its PDS's URL: `fetchWithAuth` may send the token there.
    pub pds: String,
    /// The authorization server (issuer) of the session.
    pub issuer: String,
    /// Where the session refreshes.
    pub token_endpoint: String,
    /// Where it is revoked at sign-out, if the server has one.
    pub revocation_endpoint: Option<String>,
}

/// The PDS's protected-resource metadata
/// ([RFC 9728](https://www.rfc-editor.org/rfc/rfc9728)).
pub fn protected_resource_url(pds: &str) -> String {
    format!("{}/.well-known/oauth-protected-resource", base(pds))
}

/// Protected-resource metadata, the members latchkey reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProtectedResourceMetadata {
    /// The resource the metadata is about: the PDS itself
    /// ([RFC 9728 §3.3](https://www.rfc-editor.org/rfc/rfc9728#section-3.3)).
    pub resource: Option<String>,
    /// The authorization servers for this resource; atproto uses the first.
    pub authorization_servers: Vec<String>,
}

/// The authorization server (issuer) the PDS `pds` names, or
/// `pds_metadata_invalid`: the metadata must be about `pds` itself
/// (its `resource`, RFC 9728 §3.3).
pub fn process_protected_resource(
    reply: HttpReply<ProtectedResourceMetadata>,
    pds: &str,
    allow_insecure_loopback: bool,
) -> Result<String, Error> {
    let invalid = |reason: String| Error::PdsMetadataInvalid { reason };
    if reply.status != 200 {
        return Err(invalid(refused("the PDS", reply.status)));
    }
    let metadata = reply.body.map_err(invalid)?;
    if metadata.resource.as_deref().map(base) != Some(base(pds)) {
        return Err(invalid("the metadata's resource is not the PDS".into()));
    }
    let issuer = metadata
        .authorization_servers
        .into_iter()
        .next()
        .ok_or_else(|| invalid("no authorization_servers".into()))?;
    check_endpoint_url("authorization_servers", &issuer, allow_insecure_loopback)
        .map_err(|error| invalid(format!("the authorization server is unusable: {error}")))?;
    off_loopback(&issuer, allow_insecure_loopback)
        .map_err(|why| invalid(format!("the authorization server is unusable: {why}")))?;
    Ok(issuer)
}

/// An atproto authorization server is an origin: no path, query or
/// fragment (`pds_metadata_invalid` otherwise).
pub(crate) fn check_origin_only(issuer: &str) -> Result<(), Error> {
    let after_scheme = issuer.split_once("://").map_or("", |(_, rest)| rest);
    if Origin::of_url(issuer).is_none() || after_scheme.contains(['/', '?', '#']) {
        return Err(Error::PdsMetadataInvalid {
            reason: "the authorization server is not an origin".into(),
        });
    }
    Ok(())
}

/// The authorization server's RFC 8414 metadata document.
pub fn authorization_server_metadata_url(issuer: &str) -> String {
    format!("{}/.well-known/oauth-authorization-server", base(issuer))
}

/// The authorization server's metadata, checked for the profile: `issuer`
/// exactly the server's origin (`issuer_mismatch` otherwise), PAR and DPoP
/// with ES256 offered, callbacks carrying `iss`.
pub fn process_authorization_server(
    reply: HttpReply<ProviderMetadata>,
    issuer: &str,
) -> Result<ProviderMetadata, Error> {
    check_origin_only(issuer)?;
    let unusable = |reason: &str| Error::Discovery {
        reason: reason.to_owned(),
    };
    if reply.status != 200 {
        return Err(Error::Discovery {
            reason: refused("the authorization server's metadata", reply.status),
        });
    }
    let metadata = reply.body.map_err(|reason| Error::Discovery { reason })?;
    let metadata = metadata.validate(issuer)?;
    if metadata.pushed_authorization_request_endpoint.is_none() {
        return Err(unusable("the authorization server offers no PAR endpoint"));
    }
    let es256 = metadata
        .dpop_signing_alg_values_supported
        .as_ref()
        .is_some_and(|algs| algs.iter().any(|a| a == "ES256"));
    if !es256 {
        return Err(unusable(
            "the authorization server does not offer DPoP with ES256",
        ));
    }
    if !metadata.authorization_response_iss_parameter_supported {
        return Err(unusable(
            "the authorization server's callbacks carry no iss",
        ));
    }
    Ok(metadata)
}

#[cfg(test)]
#[path = "atproto_tests.rs"]
mod tests;
