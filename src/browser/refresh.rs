//! The browser's [`RefreshTransport`]: the standard refresh-token grant,
//! or the app's own `refresh` function (e.g. AT Protocol `refreshSession`).

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use std::rc::Rc;

use crate::browser::dpop_keys::BrowserDpopKeys;
use crate::browser::from_js::from_js;
use crate::browser::js_error::describe;
use crate::browser::js_error::to_js;
use crate::browser::platform::{BrowserPlatform, NoRedirects};
use crate::core::atproto::{Account, Resolver};
use crate::core::dpop::{make_proof, Dpop, NonceBook, ProofFor};
use crate::core::ports::DpopKeys;
use crate::core::ports::{RefreshRequest, RefreshTransport};
use crate::core::refresh_answer::{AppRefreshCall, RefreshAnswer};
use crate::core::refresh_grant::RefreshGrant;
use crate::core::resolution::{verify_subject, AccountCheck};
use crate::core::{Error, RawTokenResponse, TokenSet};

/// How this client refreshes.
pub struct BrowserRefresh {
    /// The token endpoint.
    pub token_endpoint: String,
    /// The client id.
    pub client_id: String,
    /// The app's `refresh(ctx)`, if it brought one.
    pub custom: Option<Function>,
    /// The longest any of the account check's requests may take
    /// ([`RefreshPolicy::abort_after_ms`](crate::core::session::RefreshPolicy::abort_after_ms));
    /// the core stops waiting for the check sooner.
    pub abort_after_ms: u32,
    /// The client's DPoP keys: a bound session's refresh is signed.
    pub dpop_keys: Rc<BrowserDpopKeys>,
    /// The servers' DPoP nonces.
    pub nonces: Rc<NonceBook>,
    /// `profile: "atproto"`: an account's session is checked again before
    /// each refresh ([`RefreshTransport::check_account`]).
    pub atproto: Option<Resolver>,
}

impl RefreshTransport for BrowserRefresh {
    async fn refresh(&self, request: &RefreshRequest) -> Result<RefreshAnswer, Error> {
        let token_endpoint = request.endpoint.as_deref().unwrap_or(&self.token_endpoint);
        match &self.custom {
            None => {
                let grant = RefreshGrant {
                    http: &BrowserPlatform::sharing_deadline(request.abort_after_ms),
                    token_endpoint,
                    client_id: &self.client_id,
                    dpop: Dpop {
                        keys: &*self.dpop_keys,
                        nonces: &self.nonces,
                    },
                };
                grant.refresh(request).await
            }
            Some(function) => {
                self.call_custom(function, &request.base, token_endpoint)
                    .await
            }
        }
    }

    fn checks_accounts(&self) -> bool {
        self.atproto.is_some()
    }

    async fn check_account(&self, account: &Account) -> Result<(), Error> {
        let Some(resolver) = &self.atproto else {
            return Err(Error::DidResolution {
                reason: "this client has no AT Protocol resolver".into(),
            });
        };
        // Bounded by the core's wait; the resolution's own requests follow
        // no redirect.
        let platform = BrowserPlatform::within(self.abort_after_ms);
        let resolving = NoRedirects(&platform);
        let only_server = AccountCheck::ServerOnly;
        verify_subject(
            &resolving,
            resolver,
            &account.did,
            &account.issuer,
            only_server,
        )
        .await
        .map(drop)
    }
}

/// `dpopProof({ url, method?, nonce? })`: a promise of a proof.
type ProofFactory = Closure<dyn FnMut(JsValue) -> Promise>;

impl BrowserRefresh {
    /// The `dpopProof` a custom refresh of the session bound to `jkt`
    /// receives: `dpopProof({ url, method = "POST", nonce })` resolves with
    /// a proof for that request, carrying `nonce`, or else the
    /// authorization server's latest nonce for `url`'s origin. Only the
    /// refresh's own request, a `POST` to `token_endpoint`, is signed
    /// ([`NonceBook::for_app_proof`](crate::core::dpop::NonceBook::for_app_proof)).
    async fn proof_factory(&self, jkt: &str, token_endpoint: &str) -> Result<ProofFactory, Error> {
        let key = self.dpop_keys.load(jkt).await?;
        let token_endpoint = token_endpoint.to_owned();
        let nonces = Rc::clone(&self.nonces);
        Ok(Closure::new(move |request: JsValue| {
            let field = |name: &str| {
                Reflect::get(&request, &name.into())
                    .ok()
                    .and_then(|v| v.as_string())
            };
            let (url, method, nonce) = (field("url"), field("method"), field("nonce"));
            let (key, nonces) = (key.clone(), Rc::clone(&nonces));
            let token_endpoint = token_endpoint.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                let url = url.ok_or_else(|| {
                    to_js(&Error::invalid_option("dpopProof", "url must be a string"))
                })?;
                let (method, nonce) = nonces
                    .for_app_proof(&url, method, nonce, &token_endpoint)
                    .map_err(|error| to_js(&error))?;
                let platform = BrowserPlatform::within(0);
                let proof = make_proof(
                    &platform,
                    &key,
                    ProofFor {
                        method: &method,
                        url: &url,
                        nonce: nonce.as_deref(),
                        access_token: None,
                        ath_cache: None,
                    },
                )
                .await
                .map_err(|error| to_js(&error))?;
                Ok(proof.secret().into())
            })
        }))
    }

    /// Calls `refresh({ refreshToken, accessToken, tokenEndpoint, clientId,
    /// scope, dpopProof? })` (`tokenEndpoint` is the session's: an atproto
    /// account's own server's) and hands what it resolves with to the core
    /// ([`RefreshAnswer::App`]); a throw or rejection is a transient
    /// failure.
    async fn call_custom(
        &self,
        function: &Function,
        current: &TokenSet,
        token_endpoint: &str,
    ) -> Result<RefreshAnswer, Error> {
        // What the app is handed is the core's (`AppRefreshCall`).
        let call = AppRefreshCall::of(current, token_endpoint, &self.client_id)?;
        let context = Object::new();
        let set = |name: &str, value: JsValue| {
            let _ = Reflect::set(&context, &JsValue::from_str(name), &value);
        };
        set("refreshToken", call.refresh_token.secret().into());
        set("accessToken", call.access_token.secret().into());
        set("tokenEndpoint", call.token_endpoint.into());
        set("clientId", call.client_id.into());
        set("scope", call.scope.into());
        // A bound session's request must be signed: the app gets a proof
        // factory, never the key.
        let _factory = match call.proof_key {
            Some(jkt) => {
                let factory = self.proof_factory(jkt, call.token_endpoint).await?;
                set("dpopProof", factory.as_ref().clone());
                Some(factory)
            }
            None => None,
        };
        let failed = |value: JsValue| Error::RefreshCallback {
            reason: describe(&value),
        };
        let returned = function
            .call1(&JsValue::UNDEFINED, &context)
            .map_err(failed)?;
        let resolved = JsFuture::from(Promise::resolve(&returned))
            .await
            .map_err(failed)?;
        let body = from_js::<RawTokenResponse>(resolved)
            // Without serde's message: it can quote a value (a token).
            .map_err(|_| "refresh() did not resolve with a token response".to_owned());
        Ok(RefreshAnswer::App(body))
    }
}
