//! Test doubles for the platform traits. The fake HTTP server is scripted
//! with the exact requests it must receive: any other request fails the
//! test, and so does an expectation left unused. The fake signature verifier
//! works the same way, scripted with the exact checks it must be asked.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::core::dpop::{Dpop, DpopPublicKey, NonceBook};
use crate::core::jose::{Jwk, JwsAlgorithm};
use crate::core::memory_store::MemorySessionStore;
use crate::core::ports::{
    Broadcast, Clock, Crypto, Http, HttpReply, Json, SessionLock, SignatureVerifier, Timer,
};
use crate::core::ports::{DpopKey, DpopKeys};
use crate::core::secret::DpopProof;
use crate::core::session::SessionMessage;
use crate::core::{base64url, Error, TokenSet};

/// One scripted exchange: the request expected and the reply to give.
#[derive(Debug)]
struct Exchange {
    method: &'static str,
    url: String,
    form: Option<Vec<(String, String)>>,
    reply: Reply,
    /// The `Retry-After` the reply carries, in seconds.
    retry_after_s: Option<u64>,
    /// The `DPoP-Nonce` the reply carries.
    dpop_nonce: Option<String>,
    /// The DPoP proof claims the request must carry (`None`: no proof).
    proof: Option<Vec<(String, String)>>,
}

/// One scripted signature check: the exact arguments expected and the
/// verdict to give.
#[derive(Debug)]
struct SignatureCheck {
    alg: JwsAlgorithm,
    key: Jwk,
    signing_input: String,
    signature: Vec<u8>,
    verdict: Result<bool, Error>,
}

#[derive(Debug)]
enum Reply {
    Answer(Result<(u16, String), Error>),
    /// The server never answers.
    Hang,
}

/// The refresh policy of the session and machine tests: 30 s leeway, 10 s
/// timeout, 60 s settle cap, 20 s for the lock.
pub const POLICY: crate::core::session::RefreshPolicy = crate::core::session::RefreshPolicy {
    leeway_ms: 30_000,
    timeout_ms: 10_000,
    settle_cap_ms: 60_000,
    lock_wait_ms: 20_000,
};

/// The test authorization server of the login tests.
pub const IDP: &str = "https://idp.example";

/// Client `spa` of [`IDP`] with every endpoint given (authorization, token,
/// key set, PAR), scope `openid`, redirect `https://app.example/cb`, asking
/// for neither PAR nor DPoP: tests change what they are about.
pub fn client_config() -> crate::core::login::ClientConfig {
    crate::core::login::ClientConfig {
        issuer: IDP.into(),
        client_id: "spa".into(),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        endpoints: crate::core::Endpoints {
            authorization: format!("{IDP}/auth"),
            token: format!("{IDP}/token"),
            revocation: None,
            end_session: None,
            jwks_uri: Some(format!("{IDP}/jwks")),
            userinfo: None,
            par: Some(format!("{IDP}/par")),
            par_required: false,
            iss_parameter_supported: true,
        },
        par: false,
        dpop: false,
    }
}

/// Starts a login of the OpenID Connect client configured as `config` on
/// `platform`, as `Logins::start` does: for tests that need the request.
pub async fn start_login(
    config: &crate::core::login::ClientConfig,
    platform: &FakePlatform,
    store: &MemorySessionStore,
    dpop: &Dpop<'_, FakeDpopKeys>,
    extra_params: Vec<(String, String)>,
    app_state: Option<String>,
) -> Result<crate::core::login::LoginStart, Error> {
    let jwks = crate::core::jwks::JwksCache::new();
    let logins = crate::core::login_profile::Logins {
        platform,
        resolving: platform,
        store,
        dpop,
        jwks: &jwks,
        config,
        atproto: None,
        revocation_timeout_ms: 1_000,
    };
    let request = crate::core::login_profile::LoginRequest {
        extra_params,
        app_state,
        handle: None,
        leaves_page: true,
    };
    Ok(logins.start(request).await?.start)
}

/// A Bearer set with access token `access` and refresh token `rt-1`, no
/// expiry, scope `api`: for tests that only need some set.
pub fn bearer_set(access: &str) -> TokenSet {
    TokenSet {
        access_token: crate::core::AccessToken::new(access.into()),
        token_type: "Bearer".into(),
        expires_at_ms: None,
        refresh_token: Some(crate::core::RefreshToken::new("rt-1".into())),
        scope: Some("api".into()),
        id_token: None,
        refresh_expires_at_ms: None,
        issued_at_ms: 0,
        login_at_ms: 0,
        rotation: 0,
        dpop_jkt: None,
        atproto: None,
    }
}

/// Clock, crypto and HTTP in one value, as the browser's is, and a store
/// beside them.
#[derive(Debug, Default)]
pub struct FakePlatform {
    pub now_ms: Cell<u64>,
    random_counter: Cell<u8>,
    script: RefCell<VecDeque<Exchange>>,
    signature_checks: RefCell<VecDeque<SignatureCheck>>,
    pub store: MemorySessionStore,
    /// Whether [`Timer::sleep`] returns at once (every deadline has passed)
    /// or never (no deadline is ever reached).
    pub deadlines_pass: Cell<bool>,
    /// Sleeps up to this long return at once even when deadlines do not
    /// pass: a short deadline that passes while a longer one never does.
    pub short_deadlines_ms: Cell<u32>,
    /// The DPoP keys made so far.
    pub dpop_keys: FakeDpopKeys,
    /// The servers' DPoP nonces.
    pub nonces: NonceBook,
    /// SHA-256 digests computed so far.
    pub digests: Cell<u32>,
}

impl FakePlatform {
    pub fn at(now_ms: u64) -> Self {
        let platform = Self::default();
        platform.now_ms.set(now_ms);
        // Short waits (the lock's grace after an unsaved broadcast) pass.
        platform
            .short_deadlines_ms
            .set(crate::core::session::BROADCAST_GRACE_MS);
        platform
    }

    /// The DPoP context of this platform's keys and nonces.
    pub fn dpop(&self) -> Dpop<'_, FakeDpopKeys> {
        Dpop {
            keys: &self.dpop_keys,
            nonces: &self.nonces,
        }
    }

    /// How many scripted requests are still to be made.
    pub fn requests_left(&self) -> usize {
        self.script.borrow().len()
    }

    /// Expects `GET url` next; answers `status` with `body`.
    pub fn expect_get(&self, url: &str, status: u16, body: &str) {
        self.push(
            "GET",
            url,
            None,
            Reply::Answer(Ok((status, body.to_owned()))),
        );
    }

    /// Expects `POST url` with exactly `form` next; answers `status` with `body`.
    pub fn expect_post(&self, url: &str, form: &[(&str, &str)], status: u16, body: &str) {
        self.push(
            "POST",
            url,
            Some(owned(form)),
            Reply::Answer(Ok((status, body.to_owned()))),
        );
    }

    /// Like [`Self::expect_post`], the reply carrying `Retry-After: seconds`.
    pub fn expect_post_retry_after(
        &self,
        url: &str,
        form: &[(&str, &str)],
        status: u16,
        body: &str,
        seconds: u64,
    ) {
        self.expect_post(url, form, status, body);
        if let Some(last) = self.script.borrow_mut().back_mut() {
            last.retry_after_s = Some(seconds);
        }
    }

    /// Expects `POST url` with exactly `form` next, and never answers it.
    pub fn expect_post_hang(&self, url: &str, form: &[(&str, &str)]) {
        self.push("POST", url, Some(owned(form)), Reply::Hang);
    }

    /// Expects `POST url` with exactly `form` next and fails it at the
    /// network level.
    pub fn expect_post_network_error(&self, url: &str, form: &[(&str, &str)]) {
        let error = Error::Network {
            reason: "connection reset".into(),
        };
        self.push("POST", url, Some(owned(form)), Reply::Answer(Err(error)));
    }

    /// Expects `GET url` next and fails it at the network level.
    pub fn expect_get_network_error(&self, url: &str) {
        let error = Error::Network {
            reason: "connection refused".into(),
        };
        self.push("GET", url, None, Reply::Answer(Err(error)));
    }

    /// Expects [`SignatureVerifier::verify_signature`] next with exactly
    /// these arguments; answers `verdict`.
    pub fn expect_signature(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &str,
        signature: &[u8],
        verdict: Result<bool, Error>,
    ) {
        self.signature_checks
            .borrow_mut()
            .push_back(SignatureCheck {
                alg,
                key: key.clone(),
                signing_input: signing_input.to_owned(),
                signature: signature.to_vec(),
                verdict,
            });
    }

    fn push(
        &self,
        method: &'static str,
        url: &str,
        form: Option<Vec<(String, String)>>,
        reply: Reply,
    ) {
        self.script.borrow_mut().push_back(Exchange {
            method,
            url: url.to_owned(),
            form,
            reply,
            retry_after_s: None,
            dpop_nonce: None,
            proof: None,
        });
    }

    /// The last scripted request must carry a DPoP proof whose claims
    /// include exactly these string members (`htm`, `htu`, `nonce`, `ath`
    /// …; a member given as `""` must be absent), signed by [`FakeDpopKey`];
    /// its reply carries `DPoP-Nonce: nonce` when given.
    pub fn with_proof(&self, claims: &[(&str, &str)], nonce: Option<&str>) {
        let mut script = self.script.borrow_mut();
        let last = script.back_mut().expect("a scripted request");
        last.proof = Some(owned(claims));
        last.dpop_nonce = nonce.map(str::to_owned);
    }

    async fn answer(
        &self,
        method: &'static str,
        url: &str,
        form: Option<&[(String, String)]>,
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<String>, Error> {
        let exchange = self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected request {method} {url}"));
        assert_eq!((exchange.method, exchange.url.as_str()), (method, url));
        assert_eq!(
            exchange.form.as_deref(),
            form,
            "request body of {method} {url}"
        );
        match (&exchange.proof, proof) {
            (None, None) => {}
            (Some(expected), Some(proof)) => check_proof(proof, expected),
            (expected, proof) => panic!(
                "DPoP proof of {method} {url}: expected {}, got {}",
                if expected.is_some() { "one" } else { "none" },
                if proof.is_some() { "one" } else { "none" },
            ),
        }
        // Like a real server, answer later: concurrent callers interleave.
        yield_now().await;
        let (status, body) = match exchange.reply {
            Reply::Answer(reply) => reply?,
            Reply::Hang => std::future::pending().await,
        };
        let mut reply = raw_reply(status, &body, exchange.dpop_nonce);
        reply.retry_after_s = exchange.retry_after_s;
        Ok(reply)
    }
}

/// A server's answer as the browser hands it over: the body as text (the
/// fakes' [`Http::Body`]), and its `error` member whatever the body's type
/// and the status.
pub fn raw_reply(status: u16, body: &str, dpop_nonce: Option<String>) -> HttpReply<String> {
    let oauth_error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    HttpReply {
        status,
        body: Ok(body.to_owned()),
        retry_after_s: None,
        dpop_nonce,
        oauth_error,
    }
}

/// The fakes' [`Http::read`]: serde_json standing in for `JSON.parse` and
/// the browser's reader.
pub fn read_body<T: DeserializeOwned>(body: String) -> Result<T, String> {
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let left = self.script.borrow();
            assert!(left.is_empty(), "expected requests never made: {left:?}");
            let left = self.signature_checks.borrow();
            assert!(
                left.is_empty(),
                "expected signature checks never made: {left:?}"
            );
        }
    }
}

impl Clock for FakePlatform {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
}

impl Crypto for FakePlatform {
    /// Deterministic: 32 copies of a counter (1, 2, 3, …).
    fn random_32(&self) -> Result<[u8; 32], Error> {
        self.random_counter.set(self.random_counter.get() + 1);
        Ok([self.random_counter.get(); 32])
    }

    async fn sha256(&self, data: &[u8]) -> Result<[u8; 32], Error> {
        self.digests.set(self.digests.get() + 1);
        Ok(Sha256::digest(data).into())
    }
}

impl Http for FakePlatform {
    type Body = String;

    fn read<T: DeserializeOwned>(&self, body: String) -> Result<T, String> {
        read_body(body)
    }

    async fn get(&self, url: &str) -> Result<HttpReply<String>, Error> {
        self.answer("GET", url, None, None).await
    }

    async fn post(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&DpopProof>,
    ) -> Result<HttpReply<String>, Error> {
        self.answer("POST", url, Some(form), proof).await
    }
}

impl Json for FakePlatform {
    /// serde_json standing in for `JSON.parse`. The error keeps only the
    /// category and position: the trait promises never to quote the text,
    /// and serde_json's messages can (`invalid type: string "…"`).
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }
}

impl SignatureVerifier for FakePlatform {
    async fn verify_signature(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let check = self
            .signature_checks
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected signature check with {}", alg.as_str()));
        assert_eq!(check.alg, alg, "signature algorithm");
        assert_eq!(&check.key, key, "verification key");
        assert_eq!(
            check.signing_input.as_bytes(),
            signing_input,
            "signing input"
        );
        assert_eq!(check.signature, signature, "signature");
        // Like WebCrypto, answer later.
        yield_now().await;
        check.verdict
    }
}

impl Timer for FakePlatform {
    async fn sleep(&self, ms: u32) {
        if !self.deadlines_pass.get() && ms > self.short_deadlines_ms.get() {
            std::future::pending::<()>().await;
        }
    }
}

fn owned(form: &[(&str, &str)]) -> Vec<(String, String)> {
    form.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A [`SessionLock`] for one tab that counts acquisitions and checks that
/// every guard was dropped.
#[derive(Debug, Default)]
pub struct FakeLock {
    pub acquired: Cell<u32>,
    pub held: Rc<Cell<bool>>,
}

/// Holding [`FakeLock`].
pub struct FakeGuard(Rc<Cell<bool>>);

impl Drop for FakeGuard {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl SessionLock for FakeLock {
    type Guard = FakeGuard;

    async fn acquire(&self) -> Result<FakeGuard, Error> {
        assert!(!self.held.get(), "lock taken twice by one tab");
        self.acquired.set(self.acquired.get() + 1);
        self.held.set(true);
        Ok(FakeGuard(Rc::clone(&self.held)))
    }
}

/// A [`Broadcast`] that records what was published.
#[derive(Debug, Default)]
pub struct FakeBroadcast {
    pub sent: RefCell<Vec<SessionMessage>>,
}

impl Broadcast for FakeBroadcast {
    fn publish(&self, message: &SessionMessage) {
        self.sent.borrow_mut().push(message.clone());
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// How many times the test executors poll before declaring a future stuck.
const POLL_LIMIT: usize = 10_000;

/// Drives a future that only waits on fakes to completion; panics if it is
/// stuck (e.g. on a hanging fake request with no deadline).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..POLL_LIMIT {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a future on fakes never completed");
}

/// Drives several futures concurrently, round-robin, to completion; their
/// outputs in order.
pub fn join_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    for _ in 0..POLL_LIMIT {
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                    *output = Some(value);
                }
            }
        }
        if outputs.iter().all(Option::is_some) {
            return outputs.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("futures on fakes never completed");
}

/// A task spawned on the test executor.
pub type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Tasks run beside the future a test drives, as `spawn_local` runs them in
/// the browser.
#[derive(Default)]
pub struct Tasks<'a>(RefCell<Vec<Task<'a>>>);

impl<'a> Tasks<'a> {
    /// Adds a task; it runs from the executor's next round.
    pub fn spawn(&self, task: Task<'a>) {
        self.0.borrow_mut().push(task);
    }

    /// Drives `main` and every task (including those spawned meanwhile)
    /// round-robin until all have finished; `main`'s output.
    pub fn run<T>(&self, main: impl Future<Output = T>) -> T {
        let mut main = pin!(main);
        let mut cx = Context::from_waker(Waker::noop());
        let mut output = None;
        for _ in 0..POLL_LIMIT {
            if output.is_none() {
                if let Poll::Ready(value) = main.as_mut().poll(&mut cx) {
                    output = Some(value);
                }
            }
            // Taken out while polled: a task may spawn another.
            let mut tasks = std::mem::take(&mut *self.0.borrow_mut());
            tasks.retain_mut(|task| task.as_mut().poll(&mut cx).is_pending());
            let mut queue = self.0.borrow_mut();
            tasks.append(&mut queue);
            *queue = tasks;
            if queue.is_empty() {
                if let Some(output) = output.take() {
                    return output;
                }
            }
        }
        panic!("a future or task on fakes never completed");
    }
}

/// A store whose token writes always fail as a full disk would
/// (`QuotaExceededError`); everything else is the wrapped memory store.
#[derive(Debug, Default)]
pub struct FullStore(pub MemorySessionStore);

impl crate::core::ports::SessionStore for FullStore {
    async fn load_tokens(&self) -> Result<Option<crate::core::TokenSet>, Error> {
        self.0.load_tokens().await
    }
    async fn save_tokens(&self, _: &crate::core::TokenSet) -> Result<(), Error> {
        Err(Error::Storage {
            reason: "QuotaExceededError".into(),
        })
    }
    async fn clear_tokens(&self, end: crate::core::message::EndRecord) -> Result<(), Error> {
        self.0.clear_tokens(end).await
    }
    async fn end_record(&self) -> Option<crate::core::message::EndRecord> {
        self.0.end_record().await
    }
    async fn put_transaction(&self, t: crate::core::PendingTransaction) -> Result<(), Error> {
        self.0.put_transaction(t).await
    }
    async fn take_transaction(&self) -> Result<Option<crate::core::PendingTransaction>, Error> {
        self.0.take_transaction().await
    }
}

/// A DPoP key that "signs" with SHA-256 (twice, 64 bytes), so a test can
/// check a proof's signature without elliptic curves.
#[derive(Debug, Clone)]
pub struct FakeDpopKey {
    public: DpopPublicKey,
}

impl FakeDpopKey {
    /// The key numbered `n` (its coordinates are `n` repeated).
    pub fn numbered(n: u8) -> FakeDpopKey {
        let coordinate = base64url::encode(&[n; 32]);
        FakeDpopKey {
            public: DpopPublicKey::new(&coordinate, &coordinate).expect("32-byte coordinates"),
        }
    }

    /// The fake signature of `input`.
    pub fn signature(input: &[u8]) -> Vec<u8> {
        let half = Sha256::digest(input);
        [half.as_slice(), half.as_slice()].concat()
    }
}

impl DpopKey for FakeDpopKey {
    fn public_key(&self) -> &DpopPublicKey {
        &self.public
    }

    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, Error> {
        yield_now().await;
        Ok(Self::signature(signing_input))
    }
}

/// Keys numbered in creation order (1, 2, …), kept by thumbprint.
#[derive(Debug, Default)]
pub struct FakeDpopKeys {
    created: Cell<u8>,
    kept: RefCell<Vec<(String, FakeDpopKey)>>,
    /// The keys asked to be kept in memory only, in order.
    pub memory_only: RefCell<Vec<String>>,
}

impl FakeDpopKeys {
    /// The thumbprint of key `n`.
    pub fn jkt(n: u8) -> String {
        let jwk = FakeDpopKey::numbered(n).public.jwk_json();
        base64url::encode(&Sha256::digest(jwk.as_bytes()))
    }
}

impl DpopKeys for FakeDpopKeys {
    type Key = FakeDpopKey;

    async fn create(&self) -> Result<(String, FakeDpopKey), Error> {
        self.created.set(self.created.get() + 1);
        let n = self.created.get();
        let key = FakeDpopKey::numbered(n);
        self.kept.borrow_mut().push((Self::jkt(n), key.clone()));
        Ok((Self::jkt(n), key))
    }

    async fn delete(&self, jkt: &str) {
        self.kept.borrow_mut().retain(|(k, _)| k != jkt);
    }

    async fn keep_in_memory_only(&self, jkt: &str) {
        self.memory_only.borrow_mut().push(jkt.to_owned());
    }

    async fn load(&self, jkt: &str) -> Result<FakeDpopKey, Error> {
        self.kept
            .borrow()
            .iter()
            .find(|(k, _)| k == jkt)
            .map(|(_, key)| key.clone())
            .ok_or_else(|| Error::DpopKeyUnavailable {
                reason: "no such key".into(),
            })
    }
}

/// Checks a proof's shape, its fake signature, and that its claims hold
/// exactly the `expected` members (`""`: absent).
fn check_proof(proof: &DpopProof, expected: &[(String, String)]) {
    let parts: Vec<&str> = proof.secret().split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let input = format!("{}.{}", parts[0], parts[1]);
    let signature = base64url::decode(parts[2]).expect("base64url signature");
    assert_eq!(
        signature,
        FakeDpopKey::signature(input.as_bytes()),
        "signature"
    );
    let header: serde_json::Value =
        serde_json::from_slice(&base64url::decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["jwk"]["kty"], "EC");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64url::decode(parts[1]).unwrap()).unwrap();
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "jti");
    assert!(claims["iat"].is_u64(), "iat");
    for (name, value) in expected {
        if value.is_empty() {
            assert!(
                claims.get(name).is_none(),
                "{name} must be absent: {claims}"
            );
        } else {
            assert_eq!(claims[name.as_str()], value.as_str(), "{name}: {claims}");
        }
    }
}
