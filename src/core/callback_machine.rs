//! Completing a login from its callback as a machine that does no I/O
//! ([`FinishLogin`]): fed what happened ([`Fed`]: the pending login taken,
//! the server's metadata, the code exchange's answer, the ID token's check,
//! the account's check), it says what to do next ([`Need`]). The driver
//! ([`Logins::finish`](crate::core::login_profile::Logins::finish)) performs
//! each need and decides nothing.
//!
//! The order, for either profile:
//! 1. The pending login is taken first (a replayed callback finds nothing).
//! 2. The callback is validated in the fixed order of [`validate_callback`]
//!    (atproto: against the server the login went to, kept with it, never
//!    one the callback names), before any request: a callback's `error`
//!    (the user declined) is reported as such even when the server cannot
//!    be reached.
//! 3. atproto: that server has its metadata fetched and checked again.
//! 4. The nonce the pushed request left is offered to the nonce book; the
//!    code is exchanged (signed with the login's key when it has one), the
//!    token response read, and an OpenID Connect login's ID token verified
//!    (a plain OAuth login keeps none).
//! 5. Tokens refused once issued — a successful answer refused for its
//!    shape (no access token, another token type: a DPoP exchange answered
//!    `Bearer`, an unreadable lifetime), an OpenID Connect login's ID token
//!    that fails its check; atproto: a grant without `atproto`, or whose `sub` is
//!    not an account whose PDS names the server — are revoked and their key
//!    deleted before the error is returned: the server would otherwise keep
//!    a refresh token no tab holds.
//! 6. Any failure before the tokens exist deletes the login's key: nothing
//!    will ever be bound to it.
//!
//! Nothing is stored: the caller puts the result in place under the session
//! lock.

use crate::core::atproto::{Account, Identity};
use crate::core::atproto_login::{account_config, granted_account};
use crate::core::authorize::{validate_callback, PendingTransaction, ValidatedCallback};
use crate::core::drive::{Machine, Next};
use crate::core::login::{ClientConfig, LoginResult};
use crate::core::platform::HttpReply;
use crate::core::retirement::{retirement, Retirement};
use crate::core::secret::Form;
use crate::core::token::{code_exchange_params, token_set_from_reply, CallbackOutcome};
use crate::core::{Error, Nonce, ProviderMetadata, RawTokenResponse, TokenSet};

/// What the driver does next; its outcome is fed back as the matching
/// [`Fed`].
#[derive(Debug)]
pub enum Need {
    /// Take (and so consume) the pending login → [`Fed::Taken`].
    TakeTransaction,
    /// Fetch the authorization server's metadata → [`Fed::Metadata`].
    ServerMetadata {
        /// The server the login went to.
        issuer: String,
    },
    /// Offer the nonce the pushed request left for the token endpoint to
    /// the nonce book (kept unless it already has a newer one), then go on:
    /// no outcome.
    OfferNonce {
        /// The token endpoint.
        endpoint: String,
        /// The nonce.
        nonce: String,
    },
    /// The code exchange → [`Fed::Exchanged`].
    Exchange {
        /// The token endpoint.
        endpoint: String,
        /// The form (values redacted in `Debug`).
        form: Form,
        /// The login's DPoP key, which signs the request (`None`: Bearer).
        key: Option<String>,
    },
    /// Verify the login's ID token against `nonce` with
    /// [`FinishLogin::config`]'s server → [`Fed::IdToken`].
    VerifyIdToken {
        /// The exchanged set (its ID token).
        tokens: TokenSet,
        /// The login's nonce (`None`: nothing to check).
        nonce: Option<Nonce>,
    },
    /// Resolve `sub` and check its PDS names `issuer` → [`Fed::Subject`].
    VerifySubject {
        /// The token response's `sub`.
        sub: String,
        /// The server that issued the tokens.
        issuer: String,
    },
    /// Carry out `plan` for `tokens` (issued but refused) → [`Fed::Done`].
    Retire {
        /// The refused set.
        tokens: TokenSet,
        /// Revoke where, and which key to delete.
        plan: Retirement,
    },
    /// Delete the login's key → [`Fed::Done`].
    DeleteKey(String),
}

/// The login's next step: something to do, or complete (or failed).
pub type Step = Next<Need, Result<LoginResult, Error>>;

/// What happened, fed to [`FinishLogin::on`].
#[derive(Debug)]
pub enum Fed {
    /// The pending login, or why it could not be read.
    Taken(Result<Option<PendingTransaction>, Error>),
    /// The authorization server's checked metadata.
    Metadata(Result<ProviderMetadata, Error>),
    /// The nonce was offered.
    Offered,
    /// The token endpoint's answer (or why there is none: also a key that
    /// could not be loaded to sign the request).
    Exchanged(Result<HttpReply<RawTokenResponse>, Error>),
    /// The ID token's check: its claims as JSON text, `None` for a login
    /// that asked for no ID token.
    IdToken(Result<Option<String>, Error>),
    /// The account the tokens are for.
    Subject(Result<Identity, Error>),
    /// The retirement or key deletion was done.
    Done,
}

/// Where the machine is.
#[derive(Debug)]
enum Stage {
    Taking,
    /// atproto: waiting for the server's metadata, with the validated
    /// callback and the pushed request's nonce.
    Fetching {
        callback: ValidatedCallback,
        nonce: Option<String>,
    },
    /// Waiting for the nonce offer before the exchange.
    Offering {
        callback: ValidatedCallback,
    },
    Exchanging {
        outcome: CallbackOutcome,
    },
    Verifying {
        tokens: TokenSet,
        outcome: CallbackOutcome,
        subject: Option<String>,
    },
    /// atproto: waiting for the account check.
    CheckingAccount {
        result: LoginResult,
        issuer: String,
    },
    /// Waiting for the clean-up before failing with the error.
    CleaningUp {
        error: Error,
    },
    Over,
}

/// A login's completion from the callback's query parameters.
#[derive(Debug)]
pub struct FinishLogin {
    stage: Stage,
    /// The server's configuration (for atproto: the client's own until the
    /// metadata of the server the login went to is checked).
    config: ClientConfig,
    /// atproto: the identity resolver's loopback switch, `None` for an
    /// OpenID Connect client.
    atproto_loopback: Option<bool>,
    params: Form,
    /// The login's key, once the pending login is known.
    key: Option<String>,
    /// atproto: the server the login went to, as the pending login says.
    issuer: Option<String>,
}

impl FinishLogin {
    /// Starts completing a login of the client configured as `config` (an
    /// atproto client when `atproto_loopback` is `Some`, holding the
    /// resolver's loopback switch) from the callback's `params`.
    pub fn start(
        config: ClientConfig,
        atproto_loopback: Option<bool>,
        params: Vec<(String, String)>,
    ) -> (FinishLogin, Step) {
        let machine = FinishLogin {
            stage: Stage::Taking,
            config,
            atproto_loopback,
            params: Form(params),
            key: None,
            issuer: None,
        };
        (machine, Step::Do(Need::TakeTransaction))
    }

    /// The configuration of the server the login is completed with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The need after `fed`, at `now` (ms).
    pub fn on(&mut self, fed: Fed, now: u64) -> Step {
        match (std::mem::replace(&mut self.stage, Stage::Over), fed) {
            (Stage::Taking, Fed::Taken(taken)) => self.taken(taken, now),
            (Stage::Fetching { callback, nonce }, Fed::Metadata(metadata)) => {
                let loopback = self.atproto_loopback.unwrap_or(false);
                // The callback was validated against the server the login
                // went to: the metadata must be that server's.
                let went_to = self.issuer.as_deref();
                let metadata = metadata.and_then(|m| match Some(m.issuer.as_str()) == went_to {
                    true => Ok(m),
                    false => Err(Error::IssMismatch),
                });
                match metadata.and_then(|m| account_config(&self.config, m, loopback)) {
                    Ok(config) => {
                        self.config = config;
                        self.offer(callback, nonce)
                    }
                    Err(error) => self.fail(error),
                }
            }
            (Stage::Offering { callback }, Fed::Offered) => self.exchange(callback),
            (Stage::Exchanging { outcome }, Fed::Exchanged(reply)) => {
                self.exchanged(reply, outcome, now)
            }
            (
                Stage::Verifying {
                    tokens,
                    outcome,
                    subject,
                },
                Fed::IdToken(checked),
            ) => match checked {
                Ok(claims_json) => self.verified(LoginResult {
                    tokens,
                    app_state: outcome.app_state,
                    claims_json,
                    subject,
                }),
                // Rule 5: the tokens were issued; refused, they are revoked.
                Err(error) => self.refuse(tokens, error),
            },
            (Stage::CheckingAccount { mut result, issuer }, Fed::Subject(identity)) => {
                match identity {
                    Ok(identity) => {
                        result.tokens.atproto = Some(Box::new(self.account(identity, issuer)));
                        Step::Done(Ok(result))
                    }
                    Err(error) => self.refuse(result.tokens, error),
                }
            }
            // Any outcome ends the clean-up with the error that began it.
            (Stage::CleaningUp { error }, _) => Step::Done(Err(error)),
            // An input this stage does not expect (a driver bug): never a
            // hang, and nothing handed back.
            _ => Step::Done(Err(Error::NoTransaction)),
        }
    }

    /// Rule 1, then 2; then 3 or 4.
    fn taken(&mut self, taken: Result<Option<PendingTransaction>, Error>, now: u64) -> Step {
        let transaction = match taken {
            Ok(transaction) => transaction,
            Err(error) => return Step::Done(Err(error)),
        };
        let Some(transaction) = transaction else {
            return Step::Done(Err(Error::NoTransaction));
        };
        self.key = transaction.dpop_jkt.clone();
        let nonce = transaction.dpop_nonce.clone();
        // An atproto login's server is the one it went to; the profile
        // requires servers that send `iss`.
        let (issuer, iss_required) = match self.atproto_loopback {
            Some(_) => (transaction.issuer.clone(), true),
            None => (
                self.config.issuer.clone(),
                self.config.endpoints.iss_parameter_supported,
            ),
        };
        let params = std::mem::take(&mut self.params.0);
        let callback = validate_callback(Some(transaction), &params, &issuer, iss_required, now);
        let callback = match callback {
            Ok(callback) => callback,
            Err(error) => return self.fail(error),
        };
        if self.atproto_loopback.is_some() {
            self.issuer = Some(issuer.clone());
            self.stage = Stage::Fetching { callback, nonce };
            return Step::Do(Need::ServerMetadata { issuer });
        }
        self.offer(callback, nonce)
    }

    /// Rule 4: the pushed request's nonce, then the exchange.
    fn offer(&mut self, callback: ValidatedCallback, nonce: Option<String>) -> Step {
        match nonce {
            Some(nonce) => {
                let endpoint = self.config.endpoints.token.clone();
                self.stage = Stage::Offering { callback };
                Step::Do(Need::OfferNonce { endpoint, nonce })
            }
            None => self.exchange(callback),
        }
    }

    /// Rule 4: the code exchange.
    fn exchange(&mut self, callback: ValidatedCallback) -> Step {
        let (form, outcome) = code_exchange_params(callback);
        let endpoint = self.config.endpoints.token.clone();
        let key = outcome.dpop_jkt.clone();
        self.stage = Stage::Exchanging { outcome };
        Step::Do(Need::Exchange {
            endpoint,
            form: Form(form),
            key,
        })
    }

    /// Rule 4: the token response read; the ID token to verify.
    fn exchanged(
        &mut self,
        reply: Result<HttpReply<RawTokenResponse>, Error>,
        outcome: CallbackOutcome,
        now: u64,
    ) -> Step {
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => return self.fail(error),
        };
        // The account the tokens are for, when the server names it (atproto).
        let subject = reply.body.as_ref().ok().and_then(|raw| raw.sub.clone());
        let jkt = outcome.dpop_jkt.as_deref();
        let issued = reply
            .body
            .as_ref()
            .ok()
            .and_then(|raw| TokenSet::issued_in_refused(reply.status, raw, now, jkt));
        let mut tokens = match (token_set_from_reply(reply, now, None, jkt), issued) {
            (Ok(tokens), _) => tokens,
            // Rule 5: refused, but issued.
            (Err(error), Some(issued)) => return self.refuse(issued, error),
            (Err(error), None) => return self.fail(error),
        };
        if outcome.nonce.is_none() {
            // A plain OAuth login asked for no ID token: none is kept.
            tokens.id_token = None;
        }
        let need = Step::Do(Need::VerifyIdToken {
            tokens: tokens.clone(),
            nonce: outcome.nonce.clone(),
        });
        self.stage = Stage::Verifying {
            tokens,
            outcome,
            subject,
        };
        need
    }

    /// Done for an OpenID Connect login; rule 5 for an atproto one.
    fn verified(&mut self, result: LoginResult) -> Step {
        if self.atproto_loopback.is_none() {
            return Step::Done(Ok(result));
        }
        let sub = match granted_account(&result) {
            Ok(sub) => sub.to_owned(),
            Err(error) => return self.refuse(result.tokens, error),
        };
        let issuer = self.issuer.clone().unwrap_or_default();
        self.stage = Stage::CheckingAccount {
            result,
            issuer: issuer.clone(),
        };
        Step::Do(Need::VerifySubject { sub, issuer })
    }

    /// Rule 5: the account the checked identity names.
    fn account(&self, identity: Identity, issuer: String) -> Account {
        Account {
            did: identity.did,
            handle: identity.handle,
            pds: identity.pds,
            issuer,
            token_endpoint: self.config.endpoints.token.clone(),
            revocation_endpoint: self.config.endpoints.revocation.clone(),
        }
    }

    /// Rule 5: issued tokens refused, revoked and their key deleted.
    fn refuse(&mut self, tokens: TokenSet, error: Error) -> Step {
        let plan = retirement(&tokens, self.config.endpoints.revocation.as_deref());
        self.stage = Stage::CleaningUp { error };
        Step::Do(Need::Retire { tokens, plan })
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

impl Machine for FinishLogin {
    type Need = Need;
    type Fed = Fed;
    type Done = Result<LoginResult, Error>;
    type With<'a> = u64;

    fn on(&mut self, fed: Fed, now: u64) -> Step {
        FinishLogin::on(self, fed, now)
    }
}

#[cfg(test)]
#[path = "callback_machine_tests.rs"]
mod tests;
