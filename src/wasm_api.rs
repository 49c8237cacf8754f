//! The `#[wasm_bindgen]` surface: what JavaScript sees.
//!
//! Thin by design: parse and validate the JS input once, call the core with
//! the browser platform, and turn errors into JS `Error`s with a `code`.

use std::cell::Cell;
use std::rc::{Rc, Weak};

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::browser::authorized_fetch::{self as authorized, endpoint_key, BEARER};
use crate::browser::channel::{Hearing, SessionChannel};
use crate::browser::create::{start_client, Opened, Target};
use crate::browser::dpop_keys::BrowserDpopKeys;
use crate::browser::events::{Emitter, EventName};
use crate::browser::js_error::to_js;
use crate::browser::locks::{lock_manager, WebSessionLock};
use crate::browser::logout;
use crate::browser::nonce_channel::NonceChannel;
use crate::browser::options::{self, reject_unknown, single_flag, ClientOptions};
use crate::browser::platform::{BrowserPlatform, NoRedirects};
use crate::browser::refresh::BrowserRefresh;
use crate::browser::store::{BrowserSessionStore, StorageKind};
use crate::browser::user;
use crate::browser::visibility::VisibilityCatchUp;
use crate::core::app_events::{AppEvent, DetailValue};
use crate::core::atproto::Resolver;
use crate::core::authorize::{callback_url, is_login_response, RESPONSE_PARAMS};
use crate::core::authorized_call::{AuthorizedCall, End, Event, ExpiryTest, Need};
use crate::core::call_target::{CallTargets, EndpointKey};
use crate::core::create_machine::{CreateClient, Started};
use crate::core::dpop::{make_proof, AthCache, Dpop, NonceBook, ProofFor, Role};
use crate::core::drive::{drive, Perform};
use crate::core::jwks::JwksCache;
use crate::core::login::ClientConfig;
use crate::core::login_profile::{LoginRequest, Logins, StartedLogin};
use crate::core::oidc::IdTokenVerifier;
use crate::core::origin::TokenPlacement;
use crate::core::ports::{Background, Clock, Crypto, DpopKeys};
use crate::core::quoted::Quoted;
use crate::core::refresher::Refresher;
use crate::core::retirement::{retirement_of_ended, LogoutChoices};
use crate::core::retirer::Retirer;
use crate::core::session::{RefreshPolicy, Session, SessionChange};
use crate::core::startup::{storage_events_at_start, Coordination};
use crate::core::user::{signed_in, user_source, UserSource};
use crate::core::{AccessToken, Error, State, TokenSet};

/// The latchkey version, e.g. `"0.1.0"`.
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.to_owned()
}

struct Inner {
    /// This client itself, for the tasks it starts ([`Background`]).
    me: Weak<Inner>,
    /// Where calls go: the token and UserInfo endpoints (parsed once),
    /// `allowedOrigins`, the atproto account's servers.
    targets: CallTargets,
    config: ClientConfig,
    platform: BrowserPlatform,
    store: BrowserSessionStore,
    /// The tab's in-memory copy of the session and its in-flight refresh.
    session: Rc<Session>,
    lock: WebSessionLock,
    channel: SessionChannel,
    transport: BrowserRefresh,
    policy: RefreshPolicy,
    is_token_expired: Option<js_sys::Function>,
    storage_fallback: Option<String>,
    storage_error: Option<String>,
    events: Rc<Emitter>,
    /// The issuer's signing keys, fetched on first use.
    jwks: JwksCache,
    /// DPoP keys (by thumbprint) and the servers' nonces.
    dpop_keys: Rc<BrowserDpopKeys>,
    nonces: Rc<NonceBook>,
    /// The `ath` of the token the last DPoP call carried.
    ath: AthCache,
    /// `profile: "atproto"`: where identities are resolved. The session's
    /// servers are then its account's (`TokenSet::atproto`), not `config`'s.
    atproto: Option<Resolver>,
    _nonce_channel: Option<NonceChannel>,
    /// Taken by `dispose()`.
    visibility: Cell<Option<VisibilityCatchUp>>,
}

type BrowserRefresher<'a> = Refresher<
    'a,
    BrowserPlatform,
    BrowserSessionStore,
    WebSessionLock,
    SessionChannel,
    BrowserRefresh,
    Option<IdTokenVerifier<'a, BrowserPlatform>>,
>;

impl Inner {
    fn refresher(&self) -> BrowserRefresher<'_> {
        Refresher {
            session: &self.session,
            platform: &self.platform,
            store: &self.store,
            lock: &self.lock,
            broadcast: &self.channel,
            transport: &self.transport,
            policy: self.policy,
            check: self.id_tokens().for_refreshes(&self.config.scope),
            background: self,
        }
    }

    fn dpop(&self) -> Dpop<'_, BrowserDpopKeys> {
        Dpop {
            keys: &self.dpop_keys,
            nonces: &self.nonces,
        }
    }

    /// The driver of retirements (`core::retirer`), with `dpop`'s keys.
    fn retirer<'a>(
        &'a self,
        dpop: &'a Dpop<'a, BrowserDpopKeys>,
    ) -> Retirer<'a, BrowserPlatform, BrowserDpopKeys> {
        Retirer {
            platform: &self.platform,
            dpop,
            client_id: &self.config.client_id,
            timeout_ms: self.policy.timeout_ms,
        }
    }

    /// The logins of this client's profile (`core::login_profile` chooses).
    fn logins<'a>(
        &'a self,
        dpop: &'a Dpop<'a, BrowserDpopKeys>,
        resolving: &'a NoRedirects<'a>,
    ) -> Logins<'a, BrowserPlatform, NoRedirects<'a>, BrowserSessionStore, BrowserDpopKeys> {
        Logins {
            platform: &self.platform,
            resolving,
            store: &self.store,
            dpop,
            jwks: &self.jwks,
            config: &self.config,
            atproto: self.atproto.as_ref(),
            revocation_timeout_ms: self.policy.timeout_ms,
        }
    }

    fn id_tokens(&self) -> IdTokenVerifier<'_, BrowserPlatform> {
        IdTokenVerifier {
            platform: &self.platform,
            jwks: &self.jwks,
            jwks_uri: self.config.endpoints.jwks_uri.as_deref(),
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
        }
    }
}

impl Background for Inner {
    fn refresh(&self, held: AccessToken) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        // Owns the client: runs to its end whoever stops waiting for it.
        wasm_bindgen_futures::spawn_local(async move {
            me.refresher().lead(held).await;
        });
    }

    fn revoke(&self, tokens: TokenSet) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        wasm_bindgen_futures::spawn_local(async move {
            // Best effort: the set is already out of use everywhere.
            let configured = me.config.endpoints.revocation.as_deref();
            let plan = retirement_of_ended(&tokens, configured);
            let dpop = me.dpop();
            let _ = me.retirer(&dpop).retire(&tokens, plan).await;
        });
    }
}

/// An OAuth 2.0 / OpenID Connect client for one issuer and client id.
#[wasm_bindgen]
pub struct AuthClient {
    inner: Rc<Inner>,
}

fn js_err(error: Error) -> JsValue {
    to_js(&error)
}

#[wasm_bindgen]
impl AuthClient {
    /// Validates the options, resolves the endpoints (discovery unless both
    /// the authorization and token endpoints are given), opens the storage
    /// and loads any stored session.
    pub async fn create(options: JsValue) -> Result<AuthClient, JsValue> {
        Self::create_inner(options).await.map_err(js_err)
    }

    async fn create_inner(options: JsValue) -> Result<AuthClient, Error> {
        let ClientOptions {
            issuer,
            client_id,
            redirect_uri,
            scope,
            storage,
            refresh_leeway_seconds,
            refresh_timeout_seconds,
            is_token_expired,
            refresh,
            allow_insecure_loopback,
            par,
            dpop,
            allowed_origins,
            overrides,
            atproto,
        } = options::parse(&options)?;
        let timeout_ms = RefreshPolicy::timeout_ms_of(refresh_timeout_seconds);
        // Every request latchkey makes is bounded (discovery, code exchange,
        // keys, UserInfo, revocation): create() and login cannot hang.
        let platform = BrowserPlatform::within(timeout_ms);
        // Discovery (network) and opening the store + reading the session
        // (IndexedDB, WebCrypto) are independent: overlapped, create costs
        // the slower of the two instead of their sum. What create() starts
        // with, and in which order, is the core's (`CreateClient`).
        let target = Target {
            storage,
            issuer: &issuer,
            client_id: &client_id,
            dpop,
            timeout_ms,
        };
        let loopback = allow_insecure_loopback;
        let machine = CreateClient::start(atproto.is_some(), &issuer, overrides, loopback, par);
        // The other tabs are heard from before the store is read (see
        // `Hearing`); the channel is kept only if the session is shared.
        let name = Session::name(&issuer, &client_id);
        let hearing = Rc::<Hearing>::default();
        let early_channel = Hearing::join(&hearing, &name);
        let (opened, started) = start_client(target, machine).await?;
        let Opened {
            store,
            storage_fallback,
            dpop_keys,
        } = opened;
        let Started {
            endpoints,
            tokens,
            storage_problem: storage_error,
        } = started;
        let config = ClientConfig {
            issuer,
            client_id,
            redirect_uri,
            scope,
            endpoints,
            par,
            dpop,
        };
        let dpop_keys = Rc::new(
            dpop_keys
                .unwrap_or_else(|| BrowserDpopKeys::in_memory(&config.issuer, &config.client_id)),
        );
        let nonces = Rc::<NonceBook>::default();
        // What is shared with the other tabs is the core's (`Coordination`).
        let manager = lock_manager();
        let joined = Coordination::of(store.kind(), manager.is_some(), dpop);
        let nonce_channel = match joined.share_nonces {
            false => None,
            true => NonceChannel::open(&name, &nonces),
        };
        let events = Rc::<Emitter>::default();
        let session = Rc::new(Session::new(tokens));
        session.set_observer(session_observer(&events, store.kind()));
        let lock = match (joined.shared_lock, manager) {
            (true, Some(manager)) => WebSessionLock::shared(manager, &name),
            _ => WebSessionLock::tab_only(),
        };
        let channel = match joined.channel {
            false => SessionChannel::none(),
            true => {
                hearing.deliver_to(&session);
                early_channel
            }
        };
        let jitter = platform.random_32().map_or(0, |bytes| bytes[0]);
        let policy = RefreshPolicy::of(refresh_leeway_seconds, refresh_timeout_seconds, jitter);
        let transport = BrowserRefresh {
            token_endpoint: config.endpoints.token.clone(),
            client_id: config.client_id.clone(),
            custom: refresh,
            abort_after_ms: policy.abort_after_ms(),
            dpop_keys: Rc::clone(&dpop_keys),
            nonces: Rc::clone(&nonces),
            atproto: atproto.clone(),
        };
        let at_start = storage_events_at_start(
            storage,
            storage_fallback.as_deref(),
            store.kind(),
            storage_error.as_ref(),
        );
        for (problem, kind, reason) in &at_start {
            let event = AppEvent::storage(*problem, *kind, reason);
            events.emit_soon(event.event, to_detail(&event));
        }
        Ok(AuthClient {
            inner: Rc::new_cyclic(|me| Inner {
                me: me.clone(),
                targets: CallTargets {
                    token: endpoint_key(&config.endpoints.token),
                    userinfo: config.endpoints.userinfo.as_deref().and_then(endpoint_key),
                    allowed: allowed_origins,
                    atproto: atproto.is_some(),
                },
                visibility: Cell::new(VisibilityCatchUp::install(catch_up(me.clone()))),
                config,
                platform,
                store,
                session,
                lock,
                channel,
                transport,
                policy,
                is_token_expired,
                storage_fallback,
                storage_error: storage_error.map(|(_, reason)| reason),
                events,
                jwks: JwksCache::new(),
                dpop_keys,
                nonces,
                ath: AthCache::default(),
                atproto,
                _nonce_channel: nonce_channel,
            }),
        })
    }

    /// Subscribes `listener` to `event`: `"tokens"` (the token set changed,
    /// here or in another tab), `"sessionExpired"`, `"signedOut"`, or
    /// `"storage"` (fallback to memory, a record cleared, a write failed).
    /// Returns a function that unsubscribes.
    pub fn on(
        &self,
        event: String,
        listener: js_sys::Function,
    ) -> Result<js_sys::Function, JsValue> {
        let event = EventName::parse_js(&event).map_err(js_err)?;
        Ok(self.inner.events.subscribe(event, listener))
    }

    /// The storage kind in use: the requested one, or `"memory"` after a
    /// fallback (see `storageFallbackReason`).
    #[wasm_bindgen(getter, js_name = storageKind)]
    pub fn storage_kind(&self) -> String {
        self.inner.store.kind().as_str().to_owned()
    }

    /// Why the requested storage could not be used, if it could not.
    #[wasm_bindgen(getter, js_name = storageFallbackReason)]
    pub fn storage_fallback_reason(&self) -> Option<String> {
        self.inner.storage_fallback.clone()
    }

    /// The problem found with the stored session at start-up (a corrupt or
    /// foreign record, which was cleared), if any.
    #[wasm_bindgen(getter, js_name = storageError)]
    pub fn storage_error(&self) -> Option<String> {
        self.inner.storage_error.clone()
    }

    /// The authorization URL for a new login, with the pending transaction
    /// stored; `login` navigates to it.
    #[wasm_bindgen(js_name = createLoginUrl)]
    pub fn create_login_url(&self, options: JsValue) -> Promise {
        start(&self.inner, Call::LoginUrl(options))
    }

    /// `createLoginUrl` for the popup entry: `{ url, state }`. The popup
    /// finds its way back by the callback's `state`, which a pushed request
    /// (PAR) keeps out of the URL. Not part of the typed API.
    #[wasm_bindgen(js_name = createLoginRequest)]
    pub fn create_login_request(&self, options: JsValue) -> Promise {
        start(&self.inner, Call::LoginRequest(options))
    }

    /// Starts a login: stores the transaction and navigates to the
    /// authorization endpoint (RFC 6749 §4.1.1, RFC 7636).
    pub fn login(&self, options: JsValue) -> Promise {
        start(&self.inner, Call::Login(options))
    }

    /// Completes a login on the redirect page: validates the callback
    /// (`url`, default the current address), exchanges the code, stores the
    /// tokens and removes the callback parameters from the address bar.
    /// Resolves with `{ appState }`.
    #[wasm_bindgen(js_name = handleRedirectCallback)]
    pub fn handle_redirect_callback(&self, url: Option<String>) -> Promise {
        start(&self.inner, Call::Callback(url))
    }

    /// Whether `url` (default the current address) is a response to this
    /// client's login, which `handleRedirectCallback` completes: at the
    /// redirect URI's path, with `state` and a `code` or an `error`
    /// (`core::authorize::is_login_response`).
    #[wasm_bindgen(js_name = isLoginResponse)]
    pub fn is_login_response(&self, url: Option<String>) -> bool {
        let href = url.or_else(|| window().ok()?.location().href().ok());
        let page = href.and_then(|href| web_sys::Url::new(&href).ok());
        let redirect = web_sys::Url::new(&self.inner.config.redirect_uri).ok();
        let (Some(page), Some(redirect)) = (page, redirect) else {
            return false;
        };
        let names: Vec<String> = query_pairs(&page).into_iter().map(|(n, _)| n).collect();
        is_login_response(&page.pathname(), &redirect.pathname(), &names)
    }

    /// Whether this tab holds a session that is usable now or can be
    /// refreshed.
    #[wasm_bindgen(js_name = isAuthenticated)]
    pub fn is_authenticated(&self) -> Promise {
        start(&self.inner, Call::IsAuthenticated)
    }

    /// A valid access token: the one in memory, or a refreshed one (under
    /// the cross-tab lock) when it expires within the leeway. With
    /// `{ forceRefresh: true }`, one newer than the token held now
    /// (`Refresher::forced_access_token`).
    #[wasm_bindgen(js_name = getAccessToken)]
    pub fn get_access_token(&self, options: JsValue) -> Promise {
        start(&self.inner, Call::AccessToken(options))
    }

    /// `fetch(input, init)` with `Authorization: Bearer <access token>` (or
    /// `?access_token=` for origins listed with `tokenIn: "query"`):
    /// refreshed first when the token is stale, and refreshed then resent
    /// once when the response says it expired (`isTokenExpired`, default a
    /// 401 `invalid_token`), unless it came through a redirect. Requests to
    /// the token endpoint pass untouched; requests to origins not in
    /// `allowedOrigins` are not sent (`origin_not_allowed`). Network
    /// failures reject as `fetch` does; latchkey's own failures reject with
    /// a `LatchkeyError`.
    #[wasm_bindgen(js_name = fetchWithAuth)]
    pub fn fetch_with_auth(&self, input: JsValue, init: JsValue) -> Promise {
        // Made now, as `fetch` does: the app may reuse `init` (a new body)
        // or move the page (a relative URL) before the call's task runs.
        let prepared = authorized::prepare(&input, &init);
        let after = None;
        start(&self.inner, Call::Fetch { prepared, after })
    }

    /// The fast path's question (index.js): the `Authorization` value for a
    /// call to the absolute `url` when it needs nothing but the token in
    /// memory — a Bearer token that needs no refresh now, in the header, for
    /// an allowed origin that is neither the token nor the UserInfo
    /// endpoint. `origin` and `pathname` are `new URL(url)`'s, parsed by
    /// the caller. `undefined` sends the call down `fetchWithAuth`.
    #[wasm_bindgen(js_name = fastAuthorization)]
    pub fn fast_authorization(&self, origin: String, pathname: String) -> Option<String> {
        fast_authorization(&self.inner, &EndpointKey::new(origin, pathname))
    }

    /// Whether a fast-path call's answer is its result as is (see
    /// `core::authorized_call::answer_is_final`).
    #[wasm_bindgen(js_name = answerIsFinal)]
    pub fn answer_is_final(&self, status: u16, redirected: bool) -> bool {
        let app_predicate = self.inner.is_token_expired.is_some();
        crate::core::authorized_call::answer_is_final(status, redirected, app_predicate)
    }

    /// Goes on with a fast-path call whose answer may say the token expired:
    /// the machine takes it from the first answer (`response`, sent with
    /// `authorization` as `fastAuthorization` gave it).
    #[wasm_bindgen(js_name = fetchWithAuthAfter)]
    pub fn fetch_with_auth_after(
        &self,
        input: JsValue,
        init: JsValue,
        response: web_sys::Response,
        authorization: String,
    ) -> Promise {
        let prepared = authorized::prepare(&input, &init);
        let after = Some((response, authorization));
        start(&self.inner, Call::Fetch { prepared, after })
    }

    /// The signed-in user's claims from the verified ID token (`null`
    /// without an OpenID Connect session). With `{ userinfo: true }` the
    /// UserInfo endpoint's claims are fetched (with `fetchWithAuth`'s
    /// refresh and retry) and laid over them, once their `sub` is checked.
    #[wasm_bindgen(js_name = getUser)]
    pub fn get_user(&self, options: JsValue) -> Promise {
        start(&self.inner, Call::User(options))
    }

    /// Signs out everywhere: the store is cleared and every tab (this one
    /// included) drops its tokens and emits `signedOut` at once; the store
    /// is cleared again under the cross-tab lock once any refresh in
    /// progress has settled; then the newest refresh and access tokens are revoked
    /// (RFC 7009) when `revoke` (default true) and the issuer has a
    /// revocation endpoint; then, with `endSession`, the browser goes to
    /// the issuer's end-session endpoint (RP-initiated logout).
    ///
    /// The local sign-out comes first so that a slow or failing revocation
    /// never leaves the user signed in; a revocation failure is reported in
    /// the result (`{ revocation: "failed", error }`), not thrown. Invalid
    /// options reject before anything changes.
    pub fn logout(&self, options: JsValue) -> Promise {
        start(&self.inner, Call::Logout(options))
    }

    /// Stops the client: no more events to its listeners, no refresh when
    /// the tab becomes visible. What is in flight (a refresh, a call, a
    /// popup login) runs to its end: a rotation the server answered is
    /// still saved and told to the other tabs. Until then the client keeps
    /// hearing other tabs' sets (one only broadcast, its save failed, is
    /// what an in-flight refresh must start from). The session stays
    /// stored.
    pub fn dispose(&self) {
        self.inner.events.clear();
        drop(self.inner.visibility.take());
    }
}

/// One asynchronous call from JavaScript. Every asynchronous method is
/// run by the one driver future ([`run`]): the wasm holds one promise
/// adapter and one state machine for all of them, not one per export.
enum Call {
    LoginUrl(JsValue),
    LoginRequest(JsValue),
    Login(JsValue),
    Callback(Option<String>),
    IsAuthenticated,
    AccessToken(JsValue),
    /// `fetchWithAuth`, or its continuation after the fast path's answer
    /// (the response and the `Authorization` value it was sent with): the
    /// request as the call described it when it was made.
    Fetch {
        prepared: Result<authorized::PreparedRequest, Error>,
        after: Option<(web_sys::Response, String)>,
    },
    User(JsValue),
    Logout(JsValue),
}

/// Runs `call` for the client `inner` as a JS promise.
fn start(inner: &Rc<Inner>, call: Call) -> Promise {
    future_to_promise(run(Rc::clone(inner), call))
}

/// The driver: performs one call and converts its result for JavaScript.
async fn run(inner: Rc<Inner>, call: Call) -> Result<JsValue, JsValue> {
    let inner = &*inner;
    let done = match call {
        Call::LoginUrl(options) => login_url(inner, &options, LEAVES_PAGE)
            .await
            .map(|(url, _)| url.into()),
        Call::LoginRequest(options) => login_request(inner, &options).await,
        Call::Login(options) => login(inner, &options).await,
        Call::Callback(url) => handle_redirect_callback(inner, url).await,
        Call::IsAuthenticated => is_authenticated(inner).await,
        Call::AccessToken(options) => access_token(inner, &options).await,
        Call::Fetch { prepared, after } => {
            let after = match after {
                None => None,
                Some((response, authorization)) => {
                    let sent = authorization
                        .strip_prefix(BEARER)
                        .map(|t| AccessToken::new(t.to_owned()))
                        .ok_or_else(|| {
                            js_err(Error::invalid_option(
                                "authorization",
                                "not the value fastAuthorization gave",
                            ))
                        })?;
                    Some((response, sent))
                }
            };
            return fetch_with_auth(inner, prepared.map_err(js_err)?, after).await;
        }
        Call::User(options) => return get_user(inner, &options).await,
        Call::Logout(options) => logout(inner, &options).await,
    };
    done.map_err(js_err)
}

/// What `createLoginRequest` does (documented on the export), run by [`run`].
async fn login_request(inner: &Inner, options: &JsValue) -> Result<JsValue, Error> {
    // The popup's callback comes back to this page.
    let (url, state) = login_url(inner, options, !LEAVES_PAGE).await?;
    let request = Object::new();
    let _ = Reflect::set(&request, &"url".into(), &url.into());
    let _ = Reflect::set(&request, &"state".into(), &state.secret().into());
    Ok(request.into())
}

/// What `login` does (documented on the export), run by [`run`].
async fn login(inner: &Inner, options: &JsValue) -> Result<JsValue, Error> {
    let (url, _) = login_url(inner, options, LEAVES_PAGE).await?;
    window()?
        .location()
        .assign(&url)
        .map_err(|_| Error::invalid_option("redirect", "navigation refused"))?;
    Ok(JsValue::UNDEFINED)
}

/// What `handleRedirectCallback` does (documented on the export), run by [`run`].
async fn handle_redirect_callback(inner: &Inner, url: Option<String>) -> Result<JsValue, Error> {
    let address_bar = window()?.location().href().unwrap_or_default();
    let (url, clean) = callback_url(url, address_bar);
    let parsed = web_sys::Url::new(&url)
        .map_err(|_| Error::invalid_option("url", "must be an absolute URL"))?;
    let params = query_pairs(&parsed);
    if clean {
        clean_address_bar(&parsed);
    }
    let (dpop, resolving) = (inner.dpop(), NoRedirects(&inner.platform));
    let result = inner.logins(&dpop, &resolving).finish(&params).await?;
    // Stored under the session lock and broadcast (a failed write leaves
    // the tab signed in from memory, with a `storage` event); then the keys
    // the login leaves behind. A sign-out called after the login completed
    // and heard while it was written ends it: `not_authenticated`.
    let memory = inner.store.kind() == StorageKind::Memory;
    let refresher = inner.refresher();
    let failed = refresher
        .complete_login(&*inner.dpop_keys, result.tokens, memory)
        .await;
    if let Some(ended @ Error::NotAuthenticated) = failed {
        return Err(ended);
    }
    let app_state = match result.app_state {
        Some(json) => js_sys::JSON::parse(&json).unwrap_or(JsValue::UNDEFINED),
        None => JsValue::UNDEFINED,
    };
    let outcome = Object::new();
    let _ = Reflect::set(&outcome, &"appState".into(), &app_state);
    Ok(outcome.into())
}

/// What `isAuthenticated` does (documented on the export), run by [`run`].
async fn is_authenticated(inner: &Inner) -> Result<JsValue, Error> {
    let now = inner.platform.now_ms();
    Ok(signed_in(inner.session.tokens().as_ref(), now).into())
}

/// What `getAccessToken` does (documented on the export), run by [`run`].
async fn access_token(inner: &Inner, options: &JsValue) -> Result<JsValue, Error> {
    let refresher = inner.refresher();
    let token = match single_flag(options, "getAccessToken", "forceRefresh")? {
        true => refresher.forced_access_token().await?,
        false => refresher.access_token().await?,
    };
    Ok(token.secret().into())
}

/// What `getUser` does (documented on the export), run by [`run`].
async fn get_user(inner: &Inner, options: &JsValue) -> Result<JsValue, JsValue> {
    let userinfo = user::wants_userinfo(options).map_err(js_err)?;
    let tokens = inner.session.tokens();
    let now = inner.platform.now_ms();
    let configured = inner.config.endpoints.userinfo.as_deref();
    let source = user_source(
        &inner.platform,
        (tokens.as_ref(), now),
        &inner.config.scope,
        configured,
        userinfo,
    );
    let (json, sub, endpoint) = match source.map_err(js_err)? {
        UserSource::Account(account) => {
            let user = Object::new();
            Reflect::set(&user, &"sub".into(), &account.did.as_str().into())?;
            let handle = account.handle.as_deref().map_or(JsValue::NULL, Into::into);
            Reflect::set(&user, &"handle".into(), &handle)?;
            Reflect::set(&user, &"pds".into(), &account.pds.as_str().into())?;
            return Ok(user.into());
        }
        UserSource::Nothing => return Ok(JsValue::NULL),
        UserSource::Claims {
            json,
            sub,
            userinfo,
        } => (json, sub, userinfo),
    };
    let claims: Object = js_sys::JSON::parse(&json)?.unchecked_into();
    let Some(endpoint) = endpoint else {
        return Ok(claims.into());
    };
    let init = Object::new();
    let headers = Object::new();
    Reflect::set(&headers, &"Accept".into(), &"application/json".into())?;
    Reflect::set(&init, &"headers".into(), &headers)?;
    // Bounded like every request latchkey makes on its own.
    let deadline = web_sys::AbortSignal::timeout_with_u32(inner.policy.timeout_ms);
    Reflect::set(&init, &"signal".into(), &deadline)?;
    let prepared = authorized::prepare(&endpoint.into(), &init.into()).map_err(js_err)?;
    let response: web_sys::Response = fetch_with_auth(inner, prepared, None)
        .await
        .map_err(as_latchkey_error)?
        .unchecked_into();
    let info = user::read_userinfo(&response, &sub).await.map_err(js_err)?;
    Ok(user::merge(&claims, &info).into())
}

/// What `logout` does (documented on the export), run by [`run`].
async fn logout(inner: &Inner, options: &JsValue) -> Result<JsValue, Error> {
    let endpoints = &inner.config.endpoints;
    let options = logout::parse(options, endpoints.end_session.as_deref())?;
    // The order and the plan are the core's (`core::retire_machine::LogOut`).
    let choices = LogoutChoices {
        revoke: options.revoke,
        end_session_endpoint: options.end_session.as_deref(),
        post_logout_redirect_uri: options.post_logout_redirect_uri.as_deref(),
        client_id: &inner.config.client_id,
        revocation_endpoint: endpoints.revocation.as_deref(),
    };
    let refresher = inner.refresher();
    let signed_out = refresher.sign_out();
    let dpop = inner.dpop();
    let done = inner.retirer(&dpop).log_out(signed_out, &choices).await;
    if let Some((endpoint, params)) = &done.end_session {
        let url = options::url_with_query(endpoint, "endSessionEndpoint", params)?;
        window()?
            .location()
            .assign(&url)
            .map_err(|_| Error::invalid_option("endSession", "navigation refused"))?;
    }
    Ok(logout::result(&done.outcome))
}

/// How a call to `url` starts (`core::call_target`): the machine's first
/// event, and whose DPoP nonces its proofs carry.
fn start_of(inner: &Inner, url: &str) -> (Event, Role) {
    let key = endpoint_key(url);
    inner
        .targets
        .start(url, key.as_ref(), &inner.session, endpoint_key)
}

/// The fast path's decision (see `AuthClient::fast_authorization`), for a
/// URL of `key`'s origin and path.
fn fast_authorization(inner: &Inner, key: &EndpointKey) -> Option<String> {
    if !inner.targets.fast_path(key, &inner.session, endpoint_key) {
        return None;
    }
    let now = inner.platform.now_ms();
    inner
        .session
        .with_usable_token(now, inner.policy.leeway_ms, |token| {
            authorized::authorization_value(BEARER, token.secret())
        })
}

/// The first send of a fast-path call, done by the package's JavaScript:
/// the answer, and the token it carried.
type SentFast = (web_sys::Response, AccessToken);

async fn fetch_with_auth(
    inner: &Inner,
    prepared: authorized::PreparedRequest,
    sent_fast: Option<SentFast>,
) -> Result<JsValue, JsValue> {
    // The decisions are the core's (`AuthorizedCall`); this only does them.
    let url = prepared.url();
    let (start, role) = start_of(inner, &url);
    let mut call = AuthorizedCall::new(inner.is_token_expired.is_some());
    let first = call.advance(start);
    let mut calling = Calling {
        inner,
        role,
        signal: prepared.signal(),
        prepared: Some(prepared),
        sent_fast,
        outgoing: None,
        token: None,
        fresh: None,
        sent_bound: false,
        response: None,
        failure: None,
    };
    let end = drive(&mut call, first, &mut calling).await;
    let answer =
        |response: Option<web_sys::Response>| response.map_or(JsValue::UNDEFINED, Into::into);
    match end {
        End::SendUntouched => {
            let untouched = calling.prepared.take().expect("sent once").untouched();
            Ok(authorized::send(&untouched).await?.into())
        }
        End::Refuse(error) => Err(js_err(error)),
        End::Return => Ok(answer(calling.response)),
        End::ReturnMarkingRejected => {
            if let Some((replacement, _)) = &calling.fresh {
                inner.refresher().rejected_at_once(replacement);
            }
            Ok(answer(calling.response))
        }
        End::Failed => Err(calling.failure.unwrap_or(JsValue::UNDEFINED)),
    }
}

/// Performs one `fetchWithAuth` call's needs ([`AuthorizedCall`]), keeping
/// what they leave for the next: the request as placed, the token it
/// carried, the replacement, the last answer, and why a need failed.
struct Calling<'i> {
    inner: &'i Inner,
    /// Whose DPoP nonces the call's proofs carry.
    role: Role,
    /// The app's: a wait for a token ends when it aborts.
    signal: web_sys::AbortSignal,
    /// Consumed by the one send that uses it (the machine sends once first).
    prepared: Option<authorized::PreparedRequest>,
    /// The first send, when the package's JavaScript made it.
    sent_fast: Option<SentFast>,
    outgoing: Option<authorized::Outgoing>,
    /// The token sent first, with the thumbprint of the key it is bound to
    /// (read with it: a resend a round trip later signs for that token,
    /// whatever the session holds by then).
    token: Option<(AccessToken, Option<String>)>,
    /// The replacement, likewise.
    fresh: Option<(AccessToken, Option<String>)>,
    /// Whether the last send was a DPoP one (the scheme a 401 answers).
    sent_bound: bool,
    response: Option<web_sys::Response>,
    failure: Option<JsValue>,
}

impl Calling<'_> {
    /// `Answered` for `answer`, kept as the last answer.
    fn answered(
        &mut self,
        answer: web_sys::Response,
        replayable: bool,
        nonce_refused: bool,
    ) -> Event {
        let event = Event::Answered {
            status: answer.status(),
            redirected: answer.redirected(),
            replayable,
            nonce_refused,
        };
        self.response = Some(answer);
        event
    }

    async fn send(&mut self, placement: TokenPlacement) -> Result<Event, JsValue> {
        let inner = self.inner;
        let first = self.prepared.take().expect("sent once");
        let placed = first.place(placement).await.map_err(js_err)?;
        let (answer, held, nonce_refused) = match self.sent_fast.take() {
            // Sent by the fast path with a Bearer token: no nonce, no key.
            Some((answer, held)) => (answer, (held, None), false),
            None => {
                let token = async { inner.refresher().access_token().await.map_err(js_err) };
                authorized::unless_aborted(&self.signal, token).await?;
                let held = held_with_key(inner)?;
                let (answer, refused) = send_authorized(inner, &placed, &held, self.role).await?;
                (answer, held, refused)
            }
        };
        let replayable = placed.can_retry();
        self.sent_bound = held.1.is_some();
        (self.outgoing, self.token) = (Some(placed), Some(held));
        Ok(self.answered(answer, replayable, nonce_refused))
    }

    /// Sends the request again with the first token or the replacement.
    async fn resend(&mut self, replacement: bool) -> Result<Event, JsValue> {
        let placed = self.outgoing.as_ref().expect("resending a sent request");
        let carried = if replacement {
            &self.fresh
        } else {
            &self.token
        };
        let sent = carried.as_ref().expect("a sent token");
        self.sent_bound = sent.1.is_some();
        let (answer, nonce_refused) = send_authorized(self.inner, placed, sent, self.role).await?;
        Ok(self.answered(answer, true, nonce_refused))
    }

    async fn step(&mut self, need: Need) -> Result<Event, JsValue> {
        let inner = self.inner;
        match need {
            Need::Send(placement) => self.send(placement).await,
            Need::ResendForNonce { replacement } => self.resend(replacement).await,
            Need::Resend => self.resend(true).await,
            Need::AskExpired(test) => {
                let answer = self.response.as_ref().expect("asked after an answer");
                let bound = self.sent_bound;
                Ok(Event::Expired(
                    says_expired(inner, test, answer, bound).await?,
                ))
            }
            Need::Replace => {
                let (rejected, rejected_key) = self.token.as_ref().expect("replacing a sent token");
                let replacement = async {
                    let replaced = inner.refresher().after_rejection(rejected).await;
                    replaced.map_err(js_err)
                };
                let replacement = authorized::unless_aborted(&self.signal, replacement).await?;
                let same = replacement == *rejected;
                self.fresh = Some(match same {
                    true => (replacement, rejected_key.clone()),
                    false => held_with_key(inner)?,
                });
                Ok(Event::Replacement { same })
            }
        }
    }
}

impl Perform<AuthorizedCall> for Calling<'_> {
    async fn perform(&mut self, need: Need, _: &AuthorizedCall) -> Event {
        match self.step(need).await {
            Ok(event) => event,
            Err(failure) => {
                self.failure = Some(failure);
                Event::Failed
            }
        }
    }

    fn with(&self) {}
}

/// The token to send and the thumbprint of the key its set is bound to:
/// those of the set the session holds, read in the step that got a token
/// (no await between). A token the session no longer holds (its refresh
/// failed, or was replaced, while a sign-out or another login came) is
/// not sent with a key it may not be bound to: the set now held goes
/// instead; none held, the call is not authenticated.
fn held_with_key(inner: &Inner) -> Result<(AccessToken, Option<String>), JsValue> {
    let held = inner
        .session
        .tokens()
        .ok_or_else(|| js_err(Error::NotAuthenticated))?;
    Ok((held.access_token, held.dpop_jkt))
}

/// Sends `placed` with `token`: as a Bearer token, or — when the session is
/// bound to a DPoP key — as a DPoP token with a fresh proof carrying the
/// server's latest nonce for `role`. Returns the answer and whether it
/// refuses that nonce (the answer's own nonce is kept either way).
async fn send_authorized(
    inner: &Inner,
    placed: &authorized::Outgoing,
    (token, jkt): &(AccessToken, Option<String>),
    role: Role,
) -> Result<(web_sys::Response, bool), JsValue> {
    let Some(jkt) = jkt else {
        let request = placed.with_token(token.secret()).map_err(js_err)?;
        return Ok((authorized::send(&request).await?, false));
    };
    let key = inner.dpop_keys.load(jkt).await.map_err(js_err)?;
    let url = placed.url();
    let nonce = inner.nonces.get(role, &url);
    let proof = make_proof(
        &inner.platform,
        &key,
        ProofFor {
            method: &placed.method(),
            url: &url,
            nonce: nonce.as_deref(),
            access_token: Some(token),
            ath_cache: Some(&inner.ath),
        },
    )
    .await
    .map_err(js_err)?;
    let request = placed
        .with_dpop(token.secret(), proof.secret())
        .map_err(js_err)?;
    let answer = authorized::send(&request).await?;
    // An answer that came through a redirect is another URL's: its nonce
    // is not this one's to keep, nor its refusal to resend for.
    if answer.redirected() {
        return Ok((answer, false));
    }
    let headers = answer.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let refused = inner.nonces.after_resource_answer(
        role,
        &url,
        nonce.as_deref(),
        answer.status(),
        header("DPoP-Nonce").as_deref(),
        header("WWW-Authenticate").as_deref(),
    );
    Ok((answer, refused))
}

/// Whether the API's `response` says the token expired, by the test the
/// machine named: the app's `isTokenExpired`, or RFC 6750's 401.
async fn says_expired(
    inner: &Inner,
    test: ExpiryTest,
    response: &web_sys::Response,
    bound: bool,
) -> Result<bool, JsValue> {
    match test {
        ExpiryTest::App => {
            let predicate = inner.is_token_expired.as_ref();
            let predicate = predicate.expect("the app's test asked only when it gave one");
            authorized::app_says_expired(predicate, response)
                .await
                .map_err(js_err)
        }
        ExpiryTest::Rfc6750 => {
            // The scheme the call sent (its token's, bound or not).
            let scheme = if bound { "DPoP" } else { "Bearer" };
            Ok(authorized::rfc6750_expired(response, scheme))
        }
    }
}

/// A rejection of latchkey's own request as a `LatchkeyError`: `fetch`'s
/// own failures (network, the deadline's abort) become `network_error`.
fn as_latchkey_error(error: JsValue) -> JsValue {
    let has_code = Reflect::get(&error, &"code".into()).is_ok_and(|code| code.is_string());
    if has_code {
        return error;
    }
    js_err(Error::Network {
        reason: crate::browser::js_error::describe(&error),
    })
}

/// Refreshes a stale token when the tab becomes visible (best effort: a
/// failure shows up on the next call, an ended session as its event).
fn catch_up(inner: std::rc::Weak<Inner>) -> impl Fn() + 'static {
    move || {
        if let Some(inner) = inner.upgrade() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = inner.refresher().access_token().await;
            });
        }
    }
}

/// Turns session changes into the client's events (`core::app_events`
/// decides which, and what they say).
fn session_observer(events: &Rc<Emitter>, kind: StorageKind) -> impl Fn(&SessionChange) + 'static {
    let events = Rc::downgrade(events);
    move |change| {
        if let Some(events) = events.upgrade() {
            let event = AppEvent::of_change(change, kind);
            events.emit(event.event, &to_detail(&event));
        }
    }
}

/// An event's detail as a JS object: its fields with their values, in order.
fn to_detail(event: &AppEvent) -> JsValue {
    let detail = Object::new();
    for (name, value) in event.detail() {
        let value = match value {
            DetailValue::Text(text) => JsValue::from_str(text),
            DetailValue::Made(text) => JsValue::from_str(text),
            DetailValue::Number(number) => JsValue::from_f64(*number),
            DetailValue::Null => JsValue::NULL,
            DetailValue::Token(token) => JsValue::from_str(token.secret()),
        };
        let _ = Reflect::set(&detail, &name.into(), &value);
    }
    detail.into()
}

fn window() -> Result<web_sys::Window, Error> {
    web_sys::window()
        .ok_or_else(|| Error::invalid_option("window", "latchkey runs in a browser window"))
}

/// A login that navigates away (`login`, `createLoginUrl`) rather than one
/// whose callback comes back to this page (the popup's).
const LEAVES_PAGE: bool = true;

/// Starts a login: the authorization URL and the login's `state`.
async fn login_url(
    inner: &Inner,
    options: &JsValue,
    leaves_page: bool,
) -> Result<(String, State), Error> {
    let request = LoginRequest {
        leaves_page,
        ..login_options(options)?
    };
    let (dpop, resolving) = (inner.dpop(), NoRedirects(&inner.platform));
    let started = inner.logins(&dpop, &resolving).start(request).await?;
    let StartedLogin {
        authorization_endpoint,
        start,
    } = started;
    let url = options::url_with_query(
        &authorization_endpoint,
        "authorizationEndpoint",
        &start.query,
    )?;
    Ok((url, start.state))
}

/// Reads `login`'s `{ extraParams, appState, handle }`: anything else, or
/// options that are not an object, is refused (a typo would otherwise send
/// a login without what the app asked for).
fn login_options(options: &JsValue) -> Result<LoginRequest, Error> {
    if options.is_undefined() || options.is_null() {
        return Ok(LoginRequest::default());
    }
    if !options.is_object() || options.is_function() {
        return Err(Error::invalid_option("login", "options must be an object"));
    }
    reject_unknown(options, &["extraParams", "appState", "handle"], "login")?;
    let extra = Reflect::get(options, &"extraParams".into()).unwrap_or(JsValue::UNDEFINED);
    let mut extra_params = Vec::new();
    if !extra.is_undefined() {
        if !extra.is_object() {
            return Err(Error::invalid_option(
                "extraParams",
                "must be an object of strings",
            ));
        }
        for entry in Object::entries(extra.unchecked_ref::<Object>()).iter() {
            let pair: js_sys::Array = entry.unchecked_into();
            let name = pair.get(0).as_string().unwrap_or_default();
            let value = pair.get(1).as_string().ok_or_else(|| {
                Error::invalid_option("extraParams", format!("{} must be a string", Quoted(&name)))
            })?;
            extra_params.push((name, value));
        }
    }
    let app_state = Reflect::get(options, &"appState".into()).unwrap_or(JsValue::UNDEFINED);
    let app_state = if app_state.is_undefined() {
        None
    } else {
        let json = js_sys::JSON::stringify(&app_state)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| Error::invalid_option("appState", "must be JSON-serialisable"))?;
        Some(json)
    };
    let handle = Reflect::get(options, &"handle".into()).unwrap_or(JsValue::UNDEFINED);
    let handle = match handle.is_undefined() {
        true => None,
        false => Some(
            handle
                .as_string()
                .ok_or_else(|| Error::invalid_option("handle", "must be a string"))?,
        ),
    };
    Ok(LoginRequest {
        extra_params,
        app_state,
        handle,
        // Said by the call, not the options (`login_url`).
        ..LoginRequest::default()
    })
}

/// The query parameters in order, repeated names kept (the validator
/// rejects duplicates).
fn query_pairs(url: &web_sys::Url) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Ok(Some(iter)) = js_sys::try_iter(&url.search_params()) {
        for entry in iter.flatten() {
            let pair: js_sys::Array = entry.unchecked_into();
            pairs.push((
                pair.get(0).as_string().unwrap_or_default(),
                pair.get(1).as_string().unwrap_or_default(),
            ));
        }
    }
    pairs
}

/// Removes the authorization response parameters from the address bar.
fn clean_address_bar(url: &web_sys::Url) {
    let Ok(cleaned) = web_sys::Url::new(&url.href()) else {
        return;
    };
    let search = cleaned.search_params();
    for name in RESPONSE_PARAMS {
        search.delete(name);
    }
    if let Some(Ok(history)) = web_sys::window().map(|w| w.history()) {
        // Keeps the app's own history entry and its state (a router's
        // position); only the URL changes.
        let state = history.state().unwrap_or(JsValue::NULL);
        let _ = history.replace_state_with_url(&state, "", Some(&cleaned.href()));
    }
}
