//! Signing in with an AT Protocol account (`profile: "atproto"`): where a
//! login goes, and what is checked before its tokens are kept. The chain
//! itself (handle → DID → PDS → authorization server) is in
//! [`crate::core::atproto`]; the OAuth steps are the client's
//! ([`StartLogin`](crate::core::start_machine::StartLogin), which carries
//! out rule 2, and the callback's
//! [`FinishLogin`](crate::core::callback_machine::FinishLogin), which
//! carries out rules 3–5 with the checks here). The binding only reads the
//! options and calls [`Logins`](crate::core::login_profile::Logins).
//!
//! The rules:
//! 1. A handle is given exactly when the client's profile is atproto.
//! 2. A login goes to the server the account's PDS names, always with PAR
//!    and DPoP, and the server is told whom it signs in (`login_hint`).
//! 3. The callback is completed with the server the login went to (kept
//!    with the pending login), never one the callback names, and that
//!    server's metadata is fetched and checked again.
//! 4. The granted scope must hold `atproto`, and the token response's `sub`
//!    must be an account whose PDS names that server.
//! 5. Tokens refused by rule 4 were issued: they are revoked and their key
//!    deleted before the error is returned. A login that fails before the
//!    exchange deletes its key.
//! 6. A session refreshes at its account's own server, once the account's
//!    document still names a PDS that names the server (checked before
//!    every refresh: the [`RefreshMachine`]'s `CheckAccount`).
//!
//! [`RefreshMachine`]: crate::core::refresh_machine::RefreshMachine

use crate::core::atproto::{self, Account, Resolver};
use crate::core::discovery::Endpoints;
use crate::core::login::{ClientConfig, LoginResult};
use crate::core::origin::Origin;
use crate::core::{Error, ProviderMetadata};

/// Rule 1: the account to sign in, checked against the profile. `None`
/// for an OpenID Connect client.
pub fn account_to_sign_in<'a>(
    resolver: Option<&'a Resolver>,
    handle: Option<&str>,
) -> Result<Option<(&'a Resolver, String)>, Error> {
    match (resolver, handle) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::invalid_option(
            "handle",
            "is for profile \"atproto\" clients",
        )),
        (Some(_), None) => Err(Error::invalid_option(
            "handle",
            "is required with profile \"atproto\" (a handle or a DID)",
        )),
        // As resolution reads it (lowercased, no leading `@`): it is also
        // the login's `login_hint`, which servers check as a handle or DID.
        // Text that does not parse is kept for resolution to refuse.
        (Some(resolver), Some(handle)) => {
            let account = match atproto::parse_identifier(handle) {
                Ok(atproto::Identifier::Handle(name) | atproto::Identifier::Did(name)) => name,
                Err(_) => handle.trim().to_owned(),
            };
            Ok(Some((resolver, account)))
        }
    }
}

/// The endpoints of an atproto client before or after login: the stored
/// account's token and revocation endpoints, when there is one. The
/// authorization and PAR endpoints come from each login's resolution.
pub fn client_endpoints(account: Option<&Account>) -> Endpoints {
    Endpoints {
        authorization: String::new(),
        token: account
            .map(|a| a.token_endpoint.clone())
            .unwrap_or_default(),
        revocation: account.and_then(|a| a.revocation_endpoint.clone()),
        end_session: None,
        jwks_uri: None,
        userinfo: None,
        par: None,
        par_required: true,
        iss_parameter_supported: true,
    }
}

/// Whether `url` is on `account`'s PDS origin: the account's own data
/// server needs no listing in `allowedOrigins`.
pub fn on_pds_of(account: &Account, url: &str) -> bool {
    let origin = Origin::of_url(url);
    origin.is_some() && origin == Origin::of_url(&account.pds)
}

/// Rule 2: the configuration of a login to the authorization server
/// described by `metadata` (already checked for the profile): its
/// endpoints, PAR and DPoP, and the client's own settings.
pub fn account_config(
    base: &ClientConfig,
    metadata: ProviderMetadata,
    allow_insecure_loopback: bool,
) -> Result<ClientConfig, Error> {
    let issuer = metadata.issuer.clone();
    Ok(ClientConfig {
        issuer,
        endpoints: Endpoints::from_metadata(metadata, Default::default(), allow_insecure_loopback)?,
        par: true,
        dpop: true,
        ..base.clone()
    })
}

/// Rule 4's first half, read from the exchange's result alone: the
/// account the tokens name (`sub`), when the grant holds `atproto`.
pub fn granted_account(result: &LoginResult) -> Result<&str, Error> {
    let granted = result.tokens.scope.as_deref().unwrap_or_default();
    if !atproto::holds_atproto(granted) {
        return Err(Error::MalformedTokenResponse {
            reason: "the granted scope does not contain atproto".into(),
        });
    }
    result
        .subject
        .as_deref()
        .ok_or_else(|| Error::DidResolution {
            reason: "the token response names no sub".into(),
        })
}

#[cfg(test)]
#[path = "atproto_login_tests.rs"]
pub(crate) mod tests;
