//! Which login a client runs, chosen in one place: an OpenID Connect (or
//! plain OAuth) client signs in at its configured server; an atproto client
//! (`profile: "atproto"`) signs an account in at the server its PDS names.
//! The binding reads `login`'s options and the callback's query, and calls
//! [`Logins::start`] or [`Logins::finish`]; it makes no choice of its own.

use crate::core::atproto::{self, Resolver};
use crate::core::atproto_login::account_to_sign_in;
use crate::core::callback_machine::{Fed, FinishLogin, Need};
use crate::core::dpop::{Dpop, DpopKeys, Role};
use crate::core::dpop_post::NonceRefusal::Resend;
use crate::core::drive::{drive, Perform};
use crate::core::jwks::JwksCache;
use crate::core::login::{ClientConfig, LoginResult, LoginStart};
use crate::core::oidc::IdTokenVerifier;
use crate::core::platform::{Clock, Crypto, Http, Json, Timer};
use crate::core::ports::{SessionStore, SignatureVerifier};
use crate::core::public_api::{ATPROTO_ONLY_OPTIONS, OIDC_ONLY_OPTIONS};
use crate::core::resolution;
use crate::core::retirer::Retirer;
use crate::core::secret::Random32;
use crate::core::start_machine::{Begun, Departure, Need as StartNeed, StartLogin};
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
    /// Refuses the first option `given` that belongs to the other profile:
    /// it would otherwise be ignored, and the app would believe it applied
    /// (an endpoint it meant to pin, `dpop: false` it meant to turn off).
    pub fn refuse_other_profiles_options(self, given: impl Fn(&str) -> bool) -> Result<(), Error> {
        let (others, reason) = match self {
            Profile::Oidc => (ATPROTO_ONLY_OPTIONS, "is for profile \"atproto\" clients"),
            Profile::Atproto => (
                OIDC_ONLY_OPTIONS,
                "is not given with profile \"atproto\": the account's servers are resolved, \
                 with PAR and DPoP always on",
            ),
        };
        match others.iter().copied().find(|name| given(name)) {
            Some(name) => Err(Error::invalid_option(name, reason)),
            None => Ok(()),
        }
    }

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
                if !atproto::holds_atproto(&scope) {
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
#[derive(Debug)]
pub struct LoginRequest {
    /// Extra authorization request parameters, in order.
    pub extra_params: Vec<(String, String)>,
    /// The app's `appState`, as JSON text.
    pub app_state: Option<String>,
    /// The atproto account to sign in: a handle or a DID.
    pub handle: Option<String>,
    /// The login leaves this page (`login`, `createLoginUrl`), rather than
    /// coming back to it in a popup's callback.
    pub leaves_page: bool,
}

impl Default for LoginRequest {
    /// A login without options that leaves the page: the checks a
    /// redirect needs apply unless the caller says it stays.
    fn default() -> Self {
        LoginRequest {
            extra_params: Vec::new(),
            app_state: None,
            handle: None,
            leaves_page: true,
        }
    }
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
    /// anything is sent. Drives [`StartLogin`].
    pub async fn start(&self, request: LoginRequest) -> Result<StartedLogin, Error> {
        let LoginRequest {
            extra_params,
            app_state,
            handle,
            leaves_page,
        } = request;
        let account = account_to_sign_in(self.atproto, handle.as_deref())?;
        let atproto = account.map(|(r, handle)| (r.allow_insecure_loopback, handle));
        let config = self.config.clone();
        let departure = match leaves_page {
            false => Departure::Stays,
            true => Departure::Leaves {
                pending_kept: self.store.keeps_transactions_across_pages(),
                key_kept: self.dpop.keys.keeps_keys_across_pages(),
            },
        };
        let (mut machine, first) =
            StartLogin::start(config, atproto, extra_params, app_state, departure);
        let mut performer = Starting {
            logins: self,
            key: None,
        };
        let (authorization_endpoint, start) = drive(&mut machine, first, &mut performer).await?;
        Ok(StartedLogin {
            authorization_endpoint,
            start,
        })
    }

    /// Completes the pending login from the callback's query parameters:
    /// drives [`FinishLogin`] (with the configured server, or — atproto —
    /// with the server the login went to, whose account is checked before
    /// the tokens are handed back).
    pub async fn finish(&self, params: &[(String, String)]) -> Result<LoginResult, Error> {
        let loopback = self.atproto.map(|r| r.allow_insecure_loopback);
        let (mut machine, first) =
            FinishLogin::start(self.config.clone(), loopback, params.to_vec());
        drive(&mut machine, first, &mut Finishing { logins: self }).await
    }
}

/// Performs a login's start, deciding nothing.
struct Starting<'l, 'a, P, R, S, K: DpopKeys> {
    logins: &'l Logins<'a, P, R, S, K>,
    /// The login's new key, kept here to sign its pushed request.
    key: Option<K::Key>,
}

impl<P, R, S, K> Starting<'_, '_, P, R, S, K>
where
    P: Crypto,
    K: DpopKeys,
{
    /// Three times 32 random bytes: the verifier's, the `state`'s and the
    /// `nonce`'s.
    fn draw(&self) -> Result<[Random32; 3], Error> {
        let random = || self.logins.platform.random_32().map(Random32);
        Ok([random()?, random()?, random()?])
    }
}

impl<P, R, S, K> Perform<StartLogin> for Starting<'_, '_, P, R, S, K>
where
    P: Clock + Crypto + Http + Json + SignatureVerifier + Timer,
    R: Http,
    S: SessionStore,
    K: DpopKeys,
{
    async fn perform(&mut self, need: StartNeed, machine: &StartLogin) -> Begun {
        let logins = self.logins;
        match need {
            StartNeed::ResolveAccount { handle } => Begun::Resolved(match logins.atproto {
                Some(resolver) => resolution::resolve_login(logins.resolving, resolver, &handle)
                    .await
                    .map(|(_, metadata)| metadata),
                None => Err(Error::NoTransaction),
            }),
            StartNeed::MakeKey => Begun::KeyMade(match logins.dpop.keys.create().await {
                Ok((jkt, made)) => {
                    self.key = Some(made);
                    Ok(jkt)
                }
                Err(error) => Err(error),
            }),
            StartNeed::Draw => Begun::Drawn(self.draw()),
            StartNeed::Digest => Begun::Digest(match machine.verifier() {
                Some(verifier) => logins.platform.sha256(verifier.secret().as_bytes()).await,
                None => Err(Error::NoTransaction),
            }),
            StartNeed::Push {
                endpoint,
                form,
                signed,
            } => {
                let signed = signed.then_some(self.key.as_ref());
                let pushed = logins
                    .dpop
                    .post_form_with(logins.platform, signed, &endpoint, &form);
                Begun::Pushed(pushed.await)
            }
            StartNeed::ReadNonce { endpoint } => {
                let nonces = logins.dpop.nonces;
                Begun::Nonce(nonces.get(Role::AuthorizationServer, &endpoint))
            }
            StartNeed::TakeReplaced => Begun::Replaced(logins.store.take_transaction().await),
            StartNeed::DeleteKey(jkt) => {
                logins.dpop.keys.delete(&jkt).await;
                Begun::Deleted
            }
            StartNeed::Store(transaction) => {
                Begun::Stored(logins.store.put_transaction(transaction).await)
            }
        }
    }

    fn with(&self) -> u64 {
        self.logins.platform.now_ms()
    }
}

/// Performs a login's completion, deciding nothing.
struct Finishing<'l, 'a, P, R, S, K> {
    logins: &'l Logins<'a, P, R, S, K>,
}

impl<P, R, S, K> Perform<FinishLogin> for Finishing<'_, '_, P, R, S, K>
where
    P: Clock + Crypto + Http + Json + SignatureVerifier + Timer,
    R: Http,
    S: SessionStore,
    K: DpopKeys,
{
    async fn perform(&mut self, need: Need, machine: &FinishLogin) -> Fed {
        let logins = self.logins;
        match need {
            Need::TakeTransaction => Fed::Taken(logins.store.take_transaction().await),
            Need::ServerMetadata { issuer } => {
                let metadata = resolution::authorization_server_metadata(logins.resolving, &issuer);
                Fed::Metadata(metadata.await)
            }
            Need::OfferNonce { endpoint, nonce } => {
                let book = logins.dpop.nonces;
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
                let reply =
                    logins
                        .dpop
                        .post_form(logins.platform, bound_to, &endpoint, &form, Resend);
                Fed::Exchanged(reply.await)
            }
            Need::VerifyIdToken { tokens, nonce } => {
                let config = machine.config();
                let verifier = IdTokenVerifier {
                    platform: logins.platform,
                    jwks: logins.jwks,
                    jwks_uri: config.endpoints.jwks_uri.as_deref(),
                    issuer: &config.issuer,
                    client_id: &config.client_id,
                };
                let verified = verifier.at_login(&tokens, nonce.as_ref()).await;
                Fed::IdToken(verified.map(|v| v.map(VerifiedIdToken::into_claims_json)))
            }
            Need::VerifySubject { sub, issuer } => {
                let resolver = logins.atproto.ok_or(Error::NoTransaction);
                let identity = match resolver {
                    Ok(resolver) => {
                        let check = resolution::AccountCheck::WithHandle;
                        resolution::verify_subject(logins.resolving, resolver, &sub, &issuer, check)
                            .await
                    }
                    Err(error) => Err(error),
                };
                Fed::Subject(identity)
            }
            Need::Retire { tokens, plan } => {
                let retirer = Retirer {
                    platform: logins.platform,
                    dpop: logins.dpop,
                    client_id: &machine.config().client_id,
                    timeout_ms: logins.revocation_timeout_ms,
                };
                let _ = retirer.retire(&tokens, plan).await;
                Fed::Done
            }
            Need::DeleteKey(jkt) => {
                logins.dpop.keys.delete(&jkt).await;
                Fed::Done
            }
        }
    }

    fn with(&self) -> u64 {
        self.logins.platform.now_ms()
    }
}

#[cfg(test)]
#[path = "login_profile_tests.rs"]
mod tests;
