//! Which login a client runs, chosen in one place: an OpenID Connect (or
//! plain OAuth) client signs in at its configured server; an atproto client
//! (`profile: "atproto"`) signs an account in at the server its PDS names.
//! The binding reads `login`'s options and the callback's query, and calls
//! [`Logins::start`] or [`Logins::finish`]; it makes no choice of its own.

use crate::core::atproto::{self, Resolver};
use crate::core::atproto_login::account_to_sign_in;
use crate::core::callback_machine::{Fed, FinishLogin, Need};
use crate::core::dpop::{Dpop, DpopKeys, Role};
use crate::core::jwks::JwksCache;
use crate::core::login::{ClientConfig, LoginResult, LoginStart};
use crate::core::oidc::IdTokenVerifier;
use crate::core::platform::{Clock, Crypto, Http, Json, Timer};
use crate::core::ports::{SessionStore, SignatureVerifier};
use crate::core::resolution;
use crate::core::retirer::Retirer;
use crate::core::secret::Random32;
use crate::core::start_machine::{Begun, StartLogin, Step as StartStep};
use crate::core::verify::VerifiedIdToken;
use crate::core::Error;

/// The client's profile (`create()`'s `profile`): what its options mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// OpenID Connect (or plain OAuth) with a configured issuer.
    Oidc,
    /// Sign in with an AT Protocol account (Bluesky): the servers are each
    /// account's.
    Atproto,
}

/// The storage and lock namespace of atproto clients, in place of an
/// issuer: the account's server is known only after login.
pub const ATPROTO_NAMESPACE: &str = "atproto";

impl Profile {
    /// The profile `profile` names (absent: OpenID Connect).
    pub fn parse(profile: Option<&str>) -> Result<Profile, Error> {
        match profile {
            None | Some("oidc") => Ok(Profile::Oidc),
            Some("atproto") => Ok(Profile::Atproto),
            Some(_) => Err(Error::invalid_option(
                "profile",
                "must be \"oidc\" or \"atproto\"",
            )),
        }
    }

    /// The issuer the client's session is kept under: the configured one,
    /// which an OpenID Connect client must give; an atproto client gives
    /// none (its server comes from the user's account) and is kept under
    /// [`ATPROTO_NAMESPACE`].
    pub fn issuer(self, given: Option<String>) -> Result<String, Error> {
        match (self, given) {
            (Profile::Oidc, Some(issuer)) => Ok(issuer),
            (Profile::Oidc, None) => Err(Error::invalid_option("issuer", "is required")),
            (Profile::Atproto, Some(_)) => Err(Error::invalid_option(
                "issuer",
                "is not given with profile \"atproto\": it comes from the user's account",
            )),
            (Profile::Atproto, None) => Ok(ATPROTO_NAMESPACE.to_owned()),
        }
    }

    /// The scope to ask for: `openid` unless given; for an atproto client
    /// `atproto transition:generic` unless given, and it must hold `atproto`.
    pub fn scope(self, given: Option<String>) -> Result<String, Error> {
        match self {
            Profile::Oidc => Ok(given.unwrap_or_else(|| "openid".into())),
            Profile::Atproto => {
                let scope =
                    given.unwrap_or_else(|| format!("{} transition:generic", atproto::SCOPE));
                if !scope.split(' ').any(|s| s == atproto::SCOPE) {
                    return Err(Error::invalid_option("scope", "must contain \"atproto\""));
                }
                Ok(scope)
            }
        }
    }

    /// Whether logins use PAR and DPoP, given what the app `asked`: an
    /// atproto client always does (the profile requires both).
    pub fn requires(self, asked: bool) -> bool {
        self == Profile::Atproto || asked
    }
}

/// What the app asked of one login (`login`'s options, already read).
#[derive(Debug, Default)]
pub struct LoginRequest {
    /// Extra authorization request parameters, in order.
    pub extra_params: Vec<(String, String)>,
    /// The app's `appState`, as JSON text.
    pub app_state: Option<String>,
    /// The atproto account to sign in: a handle or a DID.
    pub handle: Option<String>,
}

/// A started login: where the browser goes, with which query.
#[derive(Debug)]
pub struct StartedLogin {
    /// The authorization endpoint of the server the login goes to (the
    /// account's own for an atproto login).
    pub authorization_endpoint: String,
    /// The query and the login's `state`.
    pub start: LoginStart,
}

/// Everything a login needs, for either profile.
pub struct Logins<'a, P, R, S, K> {
    /// Exchanges codes, pushes requests, signs proofs, verifies ID tokens.
    pub platform: &'a P,
    /// Fetches atproto resolution documents (without following redirects).
    pub resolving: &'a R,
    /// Holds the pending login across the redirect.
    pub store: &'a S,
    /// The DPoP keys and nonces.
    pub dpop: &'a Dpop<'a, K>,
    /// The ID-token keys.
    pub jwks: &'a JwksCache,
    /// The client's configuration (for atproto: its own settings only; the
    /// servers come from each account).
    pub config: &'a ClientConfig,
    /// Where identities are resolved: `Some` exactly for atproto clients.
    pub atproto: Option<&'a Resolver>,
    /// The longest one revocation of refused tokens may take.
    pub revocation_timeout_ms: u32,
}

impl<P, R, S, K> Logins<'_, P, R, S, K>
where
    P: Clock + Crypto + Http + Json + SignatureVerifier + Timer,
    R: Http,
    S: SessionStore,
    K: DpopKeys,
{
    /// Starts a login: for an atproto client, the handle is resolved to its
    /// server first (which then gets a `login_hint`); a handle given to an
    /// OpenID Connect client, or none to an atproto one, is refused before
    /// anything is sent. Drives [`StartLogin`], performing each of its
    /// steps.
    pub async fn start(&self, request: LoginRequest) -> Result<StartedLogin, Error> {
        let LoginRequest {
            extra_params,
            app_state,
            handle,
        } = request;
        let account = account_to_sign_in(self.atproto, handle.as_deref())?;
        let atproto = account.map(|(r, handle)| (r.allow_insecure_loopback, handle));
        let config = self.config.clone();
        let (mut machine, mut step) = StartLogin::start(config, atproto, extra_params, app_state);
        // The login's new key, kept here to sign its pushed request.
        let mut key = None;
        loop {
            let begun = match step {
                StartStep::ResolveAccount { handle } => Begun::Resolved(match self.atproto {
                    Some(resolver) => resolution::resolve_login(self.resolving, resolver, &handle)
                        .await
                        .map(|(_, metadata)| metadata),
                    None => Err(Error::NoTransaction),
                }),
                StartStep::MakeKey => Begun::KeyMade(match self.dpop.keys.create().await {
                    Ok((jkt, made)) => {
                        key = Some(made);
                        Ok(jkt)
                    }
                    Err(error) => Err(error),
                }),
                StartStep::Draw => Begun::Drawn(self.draw()),
                StartStep::Digest => Begun::Digest(match machine.verifier() {
                    Some(verifier) => self.platform.sha256(verifier.secret().as_bytes()).await,
                    None => Err(Error::NoTransaction),
                }),
                StartStep::Push {
                    endpoint,
                    form,
                    signed,
                } => {
                    let signed = signed.then_some(key.as_ref());
                    let pushed = self
                        .dpop
                        .post_form_with(self.platform, signed, &endpoint, &form);
                    Begun::Pushed(pushed.await)
                }
                StartStep::ReadNonce { endpoint } => {
                    let nonces = self.dpop.nonces;
                    Begun::Nonce(nonces.get(Role::AuthorizationServer, &endpoint))
                }
                StartStep::TakeReplaced => Begun::Replaced(self.store.take_transaction().await),
                StartStep::DeleteKey(jkt) => {
                    self.dpop.keys.delete(&jkt).await;
                    Begun::Deleted
                }
                StartStep::Store(transaction) => {
                    Begun::Stored(self.store.put_transaction(transaction).await)
                }
                StartStep::Done(started) => {
                    let (authorization_endpoint, start) = started?;
                    return Ok(StartedLogin {
                        authorization_endpoint,
                        start,
                    });
                }
            };
            step = machine.on(begun, self.platform.now_ms());
        }
    }

    /// Three times 32 random bytes: the verifier's, the `state`'s and the
    /// `nonce`'s.
    fn draw(&self) -> Result<[Random32; 3], Error> {
        let random = || self.platform.random_32().map(Random32);
        Ok([random()?, random()?, random()?])
    }

    /// Completes the pending login from the callback's query parameters:
    /// drives [`FinishLogin`] (with the configured server, or — atproto —
    /// with the server the login went to, whose account is checked before
    /// the tokens are handed back), performing each of its needs.
    pub async fn finish(&self, params: &[(String, String)]) -> Result<LoginResult, Error> {
        let loopback = self.atproto.map(|r| r.allow_insecure_loopback);
        let (mut machine, mut need) =
            FinishLogin::start(self.config.clone(), loopback, params.to_vec());
        loop {
            let fed = match need {
                Need::TakeTransaction => Fed::Taken(self.store.take_transaction().await),
                Need::ServerMetadata { issuer } => {
                    let metadata =
                        resolution::authorization_server_metadata(self.resolving, &issuer);
                    Fed::Metadata(metadata.await)
                }
                Need::OfferNonce { endpoint, nonce } => {
                    let book = self.dpop.nonces;
                    book.offer(Role::AuthorizationServer, &endpoint, &nonce);
                    Fed::Offered
                }
                Need::Exchange {
                    endpoint,
                    form,
                    key,
                } => {
                    // The code is bound to the login's key: only it can redeem it.
                    let bound_to = key.as_deref();
                    let reply = self
                        .dpop
                        .post_form(self.platform, bound_to, &endpoint, &form);
                    Fed::Exchanged(reply.await)
                }
                Need::VerifyIdToken { tokens, nonce } => {
                    let config = machine.config();
                    let verifier = IdTokenVerifier {
                        platform: self.platform,
                        jwks: self.jwks,
                        jwks_uri: config.endpoints.jwks_uri.as_deref(),
                        issuer: &config.issuer,
                        client_id: &config.client_id,
                    };
                    let verified = verifier.at_login(&tokens, nonce.as_ref()).await;
                    Fed::IdToken(verified.map(|v| v.map(VerifiedIdToken::into_claims_json)))
                }
                Need::VerifySubject { sub, issuer } => {
                    let resolver = self.atproto.ok_or(Error::NoTransaction);
                    let identity = match resolver {
                        Ok(resolver) => {
                            resolution::verify_subject(self.resolving, resolver, &sub, &issuer)
                                .await
                        }
                        Err(error) => Err(error),
                    };
                    Fed::Subject(identity)
                }
                Need::Retire { tokens, plan } => {
                    let retirer = Retirer {
                        platform: self.platform,
                        dpop: self.dpop,
                        client_id: &machine.config().client_id,
                        timeout_ms: self.revocation_timeout_ms,
                    };
                    let _ = retirer.retire(&tokens, plan).await;
                    Fed::Done
                }
                Need::DeleteKey(jkt) => {
                    self.dpop.keys.delete(&jkt).await;
                    Fed::Done
                }
                Need::Done(result) => return result,
            };
            need = machine.on(fed, self.platform.now_ms());
        }
    }
}

#[cfg(test)]
#[path = "login_profile_tests.rs"]
mod tests;
