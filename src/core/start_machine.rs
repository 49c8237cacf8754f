//! Starting a login as a machine that does no I/O ([`StartLogin`]): fed
//! what happened ([`Begun`]: the account resolved, the key made, random
//! bytes drawn, the challenge's digest, the pushed request's answer, the
//! replaced login taken, the new one stored), it says what to do next
//! ([`Step`]). The driver ([`Logins::start`](crate::core::login_profile::Logins::start))
//! performs each step and decides nothing.
//!
//! The order ([RFC 6749 §4.1.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1),
//! [RFC 7636 §4](https://www.rfc-editor.org/rfc/rfc7636#section-4)):
//! 1. atproto: the handle is resolved to its account's server first, which
//!    is told whom it signs in (`login_hint`); the login then always uses
//!    PAR and DPoP.
//! 2. With DPoP a new key is made; its thumbprint goes out as `dpop_jkt`.
//! 3. Fresh PKCE verifier, `state` and `nonce`; the S256 challenge.
//! 4. With PAR ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)) the
//!    request is pushed (signed with the login's key) and the URL's query is
//!    only `client_id` and `request_uri`; the server's nonce as the push left
//!    it goes into the pending login, for the exchange after the redirect.
//! 5. Only a login that can go ahead replaces the tab's pending one: the
//!    replaced login's key is deleted (it can no longer finish), then the new
//!    one is stored.
//! 6. A failure after the key was made deletes it: the login never left the
//!    browser.
//!
//! Before all of it, a login that leaves the page must be able to find its
//! pending login, and its key, on its return ([`Departure`]).

use crate::core::atproto_login::account_config;
use crate::core::authorize::{AuthorizationRequest, PendingTransaction};
use crate::core::drive::{Machine, Next};
use crate::core::login::{ClientConfig, LoginStart};
use crate::core::origin::Origin;
use crate::core::par::{par_form, process_par_response, RawParResponse};
use crate::core::platform::HttpReply;
use crate::core::secret::{Form, Random32};
use crate::core::{Error, Nonce, PkceChallenge, PkceVerifier, ProviderMetadata, State};

/// What the driver does next; its outcome is fed back as the matching
/// [`Begun`].
#[derive(Debug)]
pub enum Need {
    /// Resolve the atproto `handle` (a handle or a DID) to its account's
    /// authorization server → [`Begun::Resolved`].
    ResolveAccount {
        /// What the user typed, trimmed.
        handle: String,
    },
    /// Make a new DPoP key → [`Begun::KeyMade`].
    MakeKey,
    /// Draw three times 32 random bytes → [`Begun::Drawn`].
    Draw,
    /// SHA-256 of [`StartLogin::verifier`] → [`Begun::Digest`].
    Digest,
    /// Push the authorization request → [`Begun::Pushed`].
    Push {
        /// The PAR endpoint.
        endpoint: String,
        /// The form (values redacted in `Debug`).
        form: Form,
        /// Sign it with the login's new key.
        signed: bool,
    },
    /// Read the authorization server's nonce at `endpoint` →
    /// [`Begun::Nonce`].
    ReadNonce {
        /// The PAR endpoint.
        endpoint: String,
    },
    /// Take the tab's pending login, which this one replaces →
    /// [`Begun::Replaced`].
    TakeReplaced,
    /// Delete a key → [`Begun::Deleted`].
    DeleteKey(String),
    /// Store the new pending login → [`Begun::Stored`].
    Store(PendingTransaction),
}

/// The login's next step: something to do, or started (where to go, with
/// which query and `state`), or failed.
pub type Step = Next<Need, Result<(String, LoginStart), Error>>;

/// What happened, fed to [`StartLogin::on`].
#[derive(Debug)]
pub enum Begun {
    /// The account's authorization server, checked for the profile.
    Resolved(Result<ProviderMetadata, Error>),
    /// The new key's thumbprint.
    KeyMade(Result<String, Error>),
    /// Random bytes for the verifier, the `state` and the `nonce`
    /// (redacted in `Debug`: the secrets are made of them).
    Drawn(Result<[Random32; 3], Error>),
    /// The verifier's SHA-256.
    Digest(Result<[u8; 32], Error>),
    /// The PAR endpoint's answer.
    Pushed(Result<HttpReply<RawParResponse>, Error>),
    /// The authorization server's nonce, if the book has one.
    Nonce(Option<String>),
    /// The pending login replaced, or why it could not be read.
    Replaced(Result<Option<PendingTransaction>, Error>),
    /// The key was deleted.
    Deleted,
    /// The new pending login's write.
    Stored(Result<(), Error>),
}

/// Where the machine is.
#[derive(Debug)]
enum Stage {
    Resolving,
    MakingKey,
    Drawing,
    Digesting {
        verifier: PkceVerifier,
        state: State,
        nonce: Nonce,
    },
    Pushing {
        transaction: PendingTransaction,
    },
    ReadingNonce {
        transaction: PendingTransaction,
        query: Form,
    },
    TakingReplaced {
        transaction: PendingTransaction,
        query: Form,
    },
    DeletingReplaced {
        transaction: PendingTransaction,
        query: Form,
    },
    Storing {
        query: Form,
    },
    CleaningUp {
        error: Error,
    },
    Over,
}

/// Whether a login leaves this page, and whether what its return needs
/// survives that: its pending login (the browser's `sessionStorage`) and,
/// with DPoP, its key (IndexedDB). A popup's login stays on the page, which
/// keeps both in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// The popup's: the callback comes back to this page.
    Stays,
    /// A redirect's (`login`, `createLoginUrl`).
    Leaves {
        /// The pending login survives the page.
        pending_kept: bool,
        /// The login's DPoP key survives the page.
        key_kept: bool,
    },
}

/// A redirect's login whose `what` this browser cannot keep across the
/// redirect (storage disabled or unavailable).
fn lost_on_return(what: &str) -> Error {
    Error::Storage {
        reason: format!(
            "this browser cannot keep the login's {what} across the redirect; \
             a popup login (loginWithPopup) keeps it in this page"
        ),
    }
}

/// A login's start.
#[derive(Debug)]
pub struct StartLogin {
    stage: Stage,
    /// The server's configuration (an atproto client's own until its
    /// account's server is resolved).
    config: ClientConfig,
    /// atproto: the resolver's loopback switch.
    atproto_loopback: Option<bool>,
    extra_params: Form,
    app_state: Option<String>,
    /// The login's key, once made.
    key: Option<String>,
    /// The `state` sent.
    state: Option<State>,
    departure: Departure,
}

impl StartLogin {
    /// Starts a login of the client configured as `config`: an atproto
    /// client's (`atproto`: the resolver's loopback switch and the handle)
    /// or an OpenID Connect one's. A login that leaves the page
    /// (`departure`) and could not find its pending login, or its DPoP key,
    /// on its return is refused before anything is sent (`storage_error`):
    /// it would fail only after the user signed in at the server.
    pub fn start(
        config: ClientConfig,
        atproto: Option<(bool, String)>,
        extra_params: Vec<(String, String)>,
        app_state: Option<String>,
        departure: Departure,
    ) -> (StartLogin, Step) {
        let mut machine = StartLogin {
            stage: Stage::Over,
            config,
            atproto_loopback: atproto.as_ref().map(|(loopback, _)| *loopback),
            extra_params: Form(extra_params),
            app_state,
            key: None,
            state: None,
            departure,
        };
        if let Departure::Leaves {
            pending_kept: false,
            ..
        } = departure
        {
            return (machine, Step::Done(Err(lost_on_return("pending login"))));
        }
        let step = match atproto {
            // The account's `handle` is the hint: a second one would be sent
            // beside it.
            Some(_)
                if machine
                    .extra_params
                    .0
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("login_hint")) =>
            {
                let why = "cannot hold login_hint with profile \"atproto\": `handle` is the hint";
                Step::Done(Err(Error::invalid_option("extraParams", why)))
            }
            Some((_, handle)) => {
                machine
                    .extra_params
                    .0
                    .push(("login_hint".to_owned(), handle.clone()));
                machine.stage = Stage::Resolving;
                Step::Do(Need::ResolveAccount { handle })
            }
            None => machine.make_key(),
        };
        (machine, step)
    }

    /// The configuration of the server the login goes to.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The PKCE verifier whose digest [`Need::Digest`] asks for.
    pub fn verifier(&self) -> Option<&PkceVerifier> {
        match &self.stage {
            Stage::Digesting { verifier, .. } => Some(verifier),
            _ => None,
        }
    }

    /// The step after `begun`, at `now` (ms).
    pub fn on(&mut self, begun: Begun, now: u64) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), begun) {
            (Stage::Resolving, Begun::Resolved(metadata)) => {
                let loopback = self.atproto_loopback.unwrap_or(false);
                match metadata.and_then(|m| account_config(&self.config, m, loopback)) {
                    Ok(config) => {
                        self.config = config;
                        self.make_key()
                    }
                    Err(error) => Step::Done(Err(error)),
                }
            }
            (Stage::MakingKey, Begun::KeyMade(made)) => match made {
                Ok(jkt) => {
                    self.key = Some(jkt);
                    self.stage = Stage::Drawing;
                    Step::Do(Need::Draw)
                }
                Err(error) => Step::Done(Err(error)),
            },
            (Stage::Drawing, Begun::Drawn(drawn)) => match drawn {
                Ok([verifier, state, nonce]) => {
                    self.stage = Stage::Digesting {
                        verifier: PkceVerifier::from_random_bytes(&verifier.0),
                        state: State::from_random_bytes(&state.0),
                        nonce: Nonce::from_random_bytes(&nonce.0),
                    };
                    Step::Do(Need::Digest)
                }
                Err(error) => self.fail(error),
            },
            (
                Stage::Digesting {
                    verifier,
                    state,
                    nonce,
                },
                Begun::Digest(digest),
            ) => match digest {
                Ok(digest) => self.request(verifier, digest, state, nonce, now),
                Err(error) => self.fail(error),
            },
            (Stage::Pushing { transaction }, Begun::Pushed(reply)) => {
                let query =
                    reply.and_then(|reply| process_par_response(reply, &self.config.client_id));
                let query = query.map(Form);
                let endpoint = self.config.endpoints.par.clone().unwrap_or_default();
                // The nonce is left for the code exchange: only a nonce of
                // the token endpoint's own server (a PAR endpoint elsewhere
                // keeps its own).
                let same_server = Origin::of_url(&endpoint)
                    == Origin::of_url(&self.config.endpoints.token)
                    && Origin::of_url(&endpoint).is_some();
                match query {
                    Ok(query) if self.key.is_some() && same_server => {
                        self.stage = Stage::ReadingNonce { transaction, query };
                        Step::Do(Need::ReadNonce { endpoint })
                    }
                    Ok(query) => self.replace(transaction, query),
                    Err(error) => self.fail(error),
                }
            }
            (
                Stage::ReadingNonce {
                    mut transaction,
                    query,
                },
                Begun::Nonce(nonce),
            ) => {
                transaction.dpop_nonce = nonce;
                self.replace(transaction, query)
            }
            (Stage::TakingReplaced { transaction, query }, Begun::Replaced(replaced)) => {
                // A pending login that cannot be read has no key to delete.
                let replaced = replaced.ok().flatten();
                match replaced.and_then(|replaced| replaced.dpop_jkt) {
                    // It can no longer finish: its key would be left behind.
                    Some(jkt) => {
                        self.stage = Stage::DeletingReplaced { transaction, query };
                        Step::Do(Need::DeleteKey(jkt))
                    }
                    None => self.store(transaction, query),
                }
            }
            (Stage::DeletingReplaced { transaction, query }, Begun::Deleted) => {
                self.store(transaction, query)
            }
            (Stage::Storing { query }, Begun::Stored(stored)) => match stored {
                Ok(()) => {
                    let state = self
                        .state
                        .take()
                        .unwrap_or_else(|| State::new(String::new()));
                    let endpoint = self.config.endpoints.authorization.clone();
                    Step::Done(Ok((endpoint, LoginStart { query, state })))
                }
                Err(error) => self.fail(error),
            },
            // Any outcome ends the clean-up with the error that began it.
            (Stage::CleaningUp { error }, _) => Step::Done(Err(error)),
            // An input this stage does not expect (a driver bug): never a
            // hang, and no key deleted — the login may already be stored.
            _ => Step::Done(Err(Error::NoTransaction)),
        }
    }

    /// Rule 2.
    fn make_key(&mut self) -> Step {
        if let (
            true,
            Departure::Leaves {
                key_kept: false, ..
            },
        ) = (self.config.dpop, self.departure)
        {
            return Step::Done(Err(lost_on_return("DPoP key")));
        }
        if self.config.dpop {
            self.stage = Stage::MakingKey;
            return Step::Do(Need::MakeKey);
        }
        self.stage = Stage::Drawing;
        Step::Do(Need::Draw)
    }

    /// Rules 3 and 4: the request's parameters and pending login, pushed
    /// when PAR is on.
    fn request(
        &mut self,
        verifier: PkceVerifier,
        digest: [u8; 32],
        state: State,
        nonce: Nonce,
        now: u64,
    ) -> Step {
        let config = &self.config;
        let request = AuthorizationRequest {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            redirect_uri: config.redirect_uri.clone(),
            scope: config.scope.clone(),
            extra_params: std::mem::take(&mut self.extra_params.0),
            app_state: self.app_state.take(),
            dpop_jkt: self.key.clone(),
        };
        let challenge = PkceChallenge::from_sha256_digest(digest);
        self.state = Some(state.clone());
        let begun = request.begin(verifier, &challenge, state, nonce, now);
        let (params, transaction) = match begun {
            Ok(begun) => begun,
            Err(error) => return self.fail(error),
        };
        match self.config.par_endpoint() {
            Ok(Some(endpoint)) => {
                let endpoint = endpoint.to_owned();
                self.stage = Stage::Pushing { transaction };
                Step::Do(Need::Push {
                    endpoint,
                    form: Form(par_form(&params)),
                    signed: self.key.is_some(),
                })
            }
            Ok(None) => self.replace(transaction, Form(params)),
            Err(error) => self.fail(error),
        }
    }

    /// Rule 5: the tab's pending login is replaced.
    fn replace(&mut self, transaction: PendingTransaction, query: Form) -> Step {
        self.stage = Stage::TakingReplaced { transaction, query };
        Step::Do(Need::TakeReplaced)
    }

    fn store(&mut self, transaction: PendingTransaction, query: Form) -> Step {
        self.stage = Stage::Storing { query };
        Step::Do(Need::Store(transaction))
    }

    /// Rule 6: fails, deleting the login's key first when it has one.
    fn fail(&mut self, error: Error) -> Step {
        match self.key.take() {
            Some(jkt) => {
                self.stage = Stage::CleaningUp { error };
                Step::Do(Need::DeleteKey(jkt))
            }
            None => Step::Done(Err(error)),
        }
    }
}

impl Machine for StartLogin {
    type Need = Need;
    type Fed = Begun;
    type Done = Result<(String, LoginStart), Error>;
    type With<'a> = u64;

    fn on(&mut self, begun: Begun, now: u64) -> Step {
        StartLogin::on(self, begun, now)
    }
}

#[cfg(test)]
#[path = "start_machine_tests.rs"]
mod tests;
