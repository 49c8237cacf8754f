//! DPoP: proof of possession of a key the browser cannot export
//! ([RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)).
//!
//! Every request that carries or obtains a DPoP-bound token also carries a
//! proof: a JWT signed with the session's ES256 key naming the request's
//! method and URL (and, for a resource, a hash of the access token). The
//! core builds the proofs and keeps the servers' nonces; the key itself
//! stays in the browser ([`DpopKey`]), which only signs.
//!
//! Nonces ([§8](https://www.rfc-editor.org/rfc/rfc9449#section-8),
//! [§9](https://www.rfc-editor.org/rfc/rfc9449#section-9)) are kept per
//! role and origin: an authorization server and an API on one origin hand
//! out different ones. A request refused with `use_dpop_nonce` was not
//! processed, so it is sent again once with the new nonce — the only resend
//! of a token request there is, and it happens inside the refresh lock.

#![allow(async_fn_in_trait)]

use std::cell::RefCell;

use crate::core::base64url;
use crate::core::dpop_post::{Fed as ProofFed, Need as ProofNeed, NonceRefusal, ProofPost};
use crate::core::drive::{drive, Perform};
use crate::core::origin::Origin;
use crate::core::platform::{Clock, Crypto, Http, HttpReply, Timer};
use crate::core::secret::{AccessToken, DpopProof};
use crate::core::www_authenticate;
use crate::core::Error;

/// Where the session's DPoP keys live (IndexedDB next to the session, or
/// the tab's memory), by thumbprint, so every tab signs with the same key.
pub trait DpopKeys {
    /// One key.
    type Key: DpopKey;
    /// A fresh non-extractable key pair for a new login, kept under its
    /// thumbprint; returns the thumbprint and the key.
    async fn create(&self) -> Result<(String, Self::Key), Error>;
    /// The key whose thumbprint is `jkt`; `dpop_key_unavailable` when it is
    /// gone (deleted by a sign-out, or its storage was cleared).
    async fn load(&self, jkt: &str) -> Result<Self::Key, Error>;
    /// Deletes the key `jkt`, best effort: the tokens bound to it are over.
    async fn delete(&self, jkt: &str);
    /// Keeps the key `jkt` in this tab's memory only, best effort: a
    /// session stored in memory, whose key was persisted only to survive the
    /// login's redirect. Keys that never leave memory need nothing.
    async fn keep_in_memory_only(&self, _jkt: &str) {}
    /// Whether a new key survives this page (a login's redirect away and
    /// back): not where the browser's IndexedDB is unavailable.
    fn keeps_keys_across_pages(&self) -> bool {
        true
    }
}

/// A DPoP key the browser holds and cannot export
/// ([RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)): the core builds
/// proofs, the key only signs them.
pub trait DpopKey {
    /// The public half, which goes into every proof.
    fn public_key(&self) -> &DpopPublicKey;
    /// The ES256 signature of `signing_input` in JWS form (`r || s`, 64 bytes).
    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, Error>;
}

/// The JWS algorithm of every proof: ECDSA P-256 with SHA-256.
pub const ALGORITHM: &str = "ES256";

/// The longest nonce kept; a longer one is ignored (it is input).
const MAX_NONCE_LEN: usize = 512;

/// How many (role, origin) nonces a tab keeps; the oldest goes first.
const MAX_NONCES: usize = 16;

/// The public half of a P-256 key, as base64url coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopPublicKey {
    x: String,
    y: String,
}

impl DpopPublicKey {
    /// A public key from its JWK coordinates: each the base64url form of 32
    /// bytes, or `dpop_key_unavailable` (they go into JSON as they are).
    pub fn new(x: &str, y: &str) -> Result<DpopPublicKey, Error> {
        let coordinate = |c: &str| base64url::decode(c).is_ok_and(|bytes| bytes.len() == 32);
        if !coordinate(x) || !coordinate(y) {
            return Err(Error::DpopKeyUnavailable {
                reason: "the public key is not a P-256 point".into(),
            });
        }
        Ok(DpopPublicKey {
            x: x.to_owned(),
            y: y.to_owned(),
        })
    }

    /// The JWK: the required members only
    /// ([RFC 7638 §3.2](https://www.rfc-editor.org/rfc/rfc7638#section-3.2)),
    /// in lexicographic order, so it is also the thumbprint's input.
    pub fn jwk_json(&self) -> String {
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.x, self.y
        )
    }

    /// The JWK thumbprint ([RFC 7638](https://www.rfc-editor.org/rfc/rfc7638))
    /// with SHA-256, base64url: the `dpop_jkt` of the authorization request
    /// and the `cnf.jkt` of the tokens bound to this key.
    pub async fn thumbprint<C: Crypto>(&self, crypto: &C) -> Result<String, Error> {
        let digest = crypto.sha256(self.jwk_json().as_bytes()).await?;
        Ok(base64url::encode(&digest))
    }

    /// Checks a key read from storage under the thumbprint `jkt`: the record
    /// is input, and its public key must be the one named
    /// (`dpop_key_unavailable` otherwise), or proofs would carry a key the
    /// tokens are not bound to.
    pub async fn stored_as<C: Crypto>(&self, jkt: &str, crypto: &C) -> Result<(), Error> {
        if self.thumbprint(crypto).await? != jkt {
            return Err(Error::DpopKeyUnavailable {
                reason: "the stored key does not match the session's thumbprint".into(),
            });
        }
        Ok(())
    }
}

/// `url` without its query and fragment, its scheme, host and port as the
/// browser serialises them (the request goes there): a proof's `htu`
/// ([§4.2](https://www.rfc-editor.org/rfc/rfc9449#section-4.2)). An
/// endpoint written `HTTPS://IdP.example:443/token` is proved as
/// `https://idp.example/token`: a server comparing `htu` byte for byte
/// (§4.3 only says it SHOULD normalise) would refuse the written form.
pub fn htu(url: &str) -> String {
    let bare = url.split(['?', '#']).next().unwrap_or_default();
    let Some(origin) = Origin::of_url(bare) else {
        return bare.to_owned();
    };
    let after_scheme = bare.split_once("://").map_or("", |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |at| &after_scheme[at..]);
    format!("{origin}{path}")
}

/// `text` as a JSON string, quotes included.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What one proof says about its request.
#[derive(Debug, Clone, Copy)]
pub struct ProofFor<'a> {
    /// The HTTP method (`htm`).
    pub method: &'a str,
    /// The request URL; its query and fragment are left out (`htu`).
    pub url: &'a str,
    /// The server's latest nonce for this role and origin, if it gave one.
    pub nonce: Option<&'a str>,
    /// The access token the request carries: its hash is `ath`.
    pub access_token: Option<&'a AccessToken>,
    /// Where the last token's `ath` is kept (a resource request's proof
    /// with the same token reuses it instead of hashing again).
    pub ath_cache: Option<&'a AthCache>,
}

/// The `ath` of the last access token proofs were made for: every
/// resource request with the same token carries the same hash, and each
/// hash is an asynchronous WebCrypto digest in the browser.
#[derive(Default)]
pub struct AthCache(RefCell<Option<(AccessToken, String)>>);

impl std::fmt::Debug for AthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // It holds a token: nothing of it is shown.
        f.write_str("AthCache(..)")
    }
}

impl AthCache {
    async fn ath<P: Crypto>(&self, platform: &P, token: &AccessToken) -> Result<String, Error> {
        if let Some((held, ath)) = &*self.0.borrow() {
            if held == token {
                return Ok(ath.clone());
            }
        }
        let ath = access_token_hash(platform, token).await?;
        *self.0.borrow_mut() = Some((token.clone(), ath.clone()));
        Ok(ath)
    }
}

/// `ath`: the base64url SHA-256 of the access token
/// ([§4.2](https://www.rfc-editor.org/rfc/rfc9449#section-4.2)).
async fn access_token_hash<P: Crypto>(platform: &P, token: &AccessToken) -> Result<String, Error> {
    Ok(base64url::encode(
        &platform.sha256(token.secret().as_bytes()).await?,
    ))
}

/// The proof's signing input: header `{typ, alg, jwk}` and claims `{jti,
/// htm, htu, iat, nonce?, ath?}`
/// ([§4.2](https://www.rfc-editor.org/rfc/rfc9449#section-4.2)), both
/// base64url, joined by a dot.
pub fn signing_input(
    key: &DpopPublicKey,
    jti: &str,
    iat_s: u64,
    proof: &ProofFor<'_>,
    ath: Option<&str>,
) -> String {
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"{ALGORITHM}","jwk":{}}}"#,
        key.jwk_json()
    );
    let mut claims = format!(
        r#"{{"jti":"{jti}","htm":{},"htu":{},"iat":{iat_s}"#,
        json_string(proof.method),
        json_string(&htu(proof.url)),
    );
    if let Some(nonce) = proof.nonce {
        claims.push_str(&format!(r#","nonce":{}"#, json_string(nonce)));
    }
    if let Some(ath) = ath {
        claims.push_str(&format!(r#","ath":"{ath}""#));
    }
    claims.push('}');
    format!(
        "{}.{}",
        base64url::encode(header.as_bytes()),
        base64url::encode(claims.as_bytes())
    )
}

/// A signed proof for `proof`'s request: fresh `jti`, `iat` now.
pub async fn make_proof<P: Clock + Crypto, K: DpopKey>(
    platform: &P,
    key: &K,
    proof: ProofFor<'_>,
) -> Result<DpopProof, Error> {
    let jti = base64url::encode(&platform.random_32()?);
    let ath = match (proof.access_token, proof.ath_cache) {
        (Some(token), Some(cache)) => Some(cache.ath(platform, token).await?),
        (Some(token), None) => Some(access_token_hash(platform, token).await?),
        (None, _) => None,
    };
    let input = signing_input(
        key.public_key(),
        &jti,
        platform.now_ms() / 1000,
        &proof,
        ath.as_deref(),
    );
    let signature = key.sign(input.as_bytes()).await?;
    if signature.len() != 64 {
        return Err(Error::DpopKeyUnavailable {
            reason: "the signature is not an ES256 signature".into(),
        });
    }
    Ok(DpopProof::new(format!(
        "{input}.{}",
        base64url::encode(&signature)
    )))
}

/// A client's DPoP context: where its keys live and the servers' nonces.
pub struct Dpop<'a, K> {
    /// The keys, by thumbprint.
    pub keys: &'a K,
    /// The servers' nonces, shared by the tab.
    pub nonces: &'a NonceBook,
}

impl<'a, K: DpopKeys> Dpop<'a, K> {
    /// `platform`'s form posts signed with `key`.
    pub fn http<'b, P>(&'b self, platform: &'b P, key: &'b K::Key) -> DpopHttp<'b, P, K::Key> {
        DpopHttp {
            platform,
            key,
            nonces: self.nonces,
            on_refusal: NonceRefusal::Resend,
        }
    }

    /// Posts `form` to `url` on `platform`, signed with the key `bound_to`
    /// names when there is one (a bound code or refresh token is refused
    /// without a proof of its key), plainly otherwise; the body read as a
    /// `T`. A key that cannot be loaded fails the request. A refusal that
    /// asks for a new nonce is resent or handed on, as `on_refusal` says.
    pub async fn post_form<P, T>(
        &self,
        platform: &P,
        bound_to: Option<&str>,
        url: &str,
        form: &[(String, String)],
        on_refusal: NonceRefusal,
    ) -> Result<HttpReply<T>, Error>
    where
        P: Http + Clock + Crypto,
        T: serde::de::DeserializeOwned,
    {
        match bound_to {
            Some(jkt) => {
                let key = self.keys.load(jkt).await?;
                let http = DpopHttp {
                    on_refusal,
                    ..self.http(platform, &key)
                };
                http.post_form(url, form).await
            }
            None => self.post_form_with(platform, None, url, form).await,
        }
    }

    /// Posts `form` to `url` on `platform`: `signed` is `None` for a plain
    /// post, else the key that signs it — a key the caller should hold but
    /// does not (`Some(None)`) fails the request with
    /// `dpop_key_unavailable`, sending nothing.
    pub async fn post_form_with<P, T>(
        &self,
        platform: &P,
        signed: Option<Option<&K::Key>>,
        url: &str,
        form: &[(String, String)],
    ) -> Result<HttpReply<T>, Error>
    where
        P: Http + Clock + Crypto,
        T: serde::de::DeserializeOwned,
    {
        match signed {
            Some(Some(key)) => self.http(platform, key).post_form(url, form).await,
            Some(None) => Err(Error::DpopKeyUnavailable {
                reason: "the key that signs this request is not held".into(),
            }),
            None => platform.post_form(url, form).await,
        }
    }
}

/// Whose nonce: the authorization server's (PAR, token, revocation) or a
/// resource's (`fetchWithAuth`, UserInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// PAR, token and revocation endpoints, and UserInfo (the authorization
    /// server's own resource: its nonce is the server's).
    AuthorizationServer,
    /// An API.
    Resource,
}

/// Told of each nonce a server gave this tab, so the other tabs can use it
/// too: a storm then costs no extra round trip per tab.
type NonceObserver = Box<dyn Fn(Role, &str, &str)>;

/// The latest nonce each server gave, by role and origin.
#[derive(Default)]
pub struct NonceBook {
    entries: RefCell<Vec<(Role, Origin, String)>>,
    observer: RefCell<Option<NonceObserver>>,
}

impl std::fmt::Debug for NonceBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceBook")
            .field("entries", &self.entries.borrow().len())
            .finish()
    }
}

/// Whether `nonce` has the syntax of a DPoP nonce (`1*NQCHAR`,
/// [§8.1](https://www.rfc-editor.org/rfc/rfc9449#section-8.1)) and a
/// bounded length.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl NonceBook {
    /// The nonce to send to `url` in `role`, if its server gave one.
    pub fn get(&self, role: Role, url: &str) -> Option<String> {
        let origin = Origin::of_url(url)?;
        self.entries
            .borrow()
            .iter()
            .find(|(r, o, _)| *r == role && *o == origin)
            .map(|(_, _, nonce)| nonce.clone())
    }

    /// Calls `observer` with each new nonce a server gives this tab: its
    /// role, its server's origin (all a nonce is kept by: no path or query
    /// is passed on) and the nonce.
    pub fn set_observer(&self, observer: impl Fn(Role, &str, &str) + 'static) {
        *self.observer.borrow_mut() = Some(Box::new(observer));
    }

    /// Keeps `nonce` from `url`'s server in `role`; `true` when it is new,
    /// and then the observer hears of it. A malformed nonce is ignored.
    pub fn learn(&self, role: Role, url: &str, nonce: &str) -> bool {
        let new = self.adopt(role, url, nonce);
        if let (true, Some(observer), Some(origin)) =
            (new, &*self.observer.borrow(), Origin::of_url(url))
        {
            observer(role, &origin.to_string(), nonce);
        }
        new
    }

    /// After a protected resource (an API, or UserInfo in the authorization
    /// server's `role`) answered a request whose proof carried `sent`: keeps
    /// the answer's nonce for `role`, and says whether the answer refuses the
    /// nonce sent ([§9](https://www.rfc-editor.org/rfc/rfc9449#section-9)):
    /// a `401` with a DPoP challenge asking for `use_dpop_nonce` and a nonce
    /// other than the one sent. Without a different nonce a resend would be
    /// refused again, so it is not a refusal worth resending for. (The
    /// nonce is compared with the one sent, not with the book: another call
    /// may have learned it already.)
    pub fn after_resource_answer(
        &self,
        role: Role,
        url: &str,
        sent: Option<&str>,
        status: u16,
        answer_nonce: Option<&str>,
        challenge: Option<&str>,
    ) -> bool {
        let Some(next) = answer_nonce else {
            return false;
        };
        self.learn(role, url, next);
        sent != Some(next) && status == 401 && challenge.is_some_and(challenge_wants_nonce)
    }

    /// The method and nonce of a proof the app's own `refresh` asks for
    /// (`ctx.dpopProof({ url, method?, nonce? })`), refreshing at
    /// `token_endpoint`: only its refresh request is signed — a `POST` to
    /// that endpoint (query and fragment aside, as `htu` has none: RFC 9449
    /// §4.2) — so the key signs nothing else while the app's code runs
    /// (`invalid_option` otherwise). The nonce it names, else the
    /// authorization server's latest for `url`'s origin.
    pub fn for_app_proof(
        &self,
        url: &str,
        method: Option<String>,
        nonce: Option<String>,
        token_endpoint: &str,
    ) -> Result<(String, Option<String>), Error> {
        let target = |u: &str| u.split(['?', '#']).next().unwrap_or_default().to_owned();
        if target(url) != target(token_endpoint) {
            return Err(Error::invalid_option(
                "dpopProof",
                "url must be the refresh's token endpoint (ctx.tokenEndpoint)",
            ));
        }
        if method.is_some_and(|m| !m.eq_ignore_ascii_case("POST")) {
            return Err(Error::invalid_option("dpopProof", "method must be POST"));
        }
        let nonce = nonce.or_else(|| self.get(Role::AuthorizationServer, url));
        Ok(("POST".to_owned(), nonce))
    }

    /// A nonce kept from earlier (a pushed request's, across the redirect):
    /// adopted only when the book knows none for `role` at `url`'s origin,
    /// whose own would be newer (this may be a new page, with an empty book).
    pub fn offer(&self, role: Role, url: &str, nonce: &str) {
        if self.get(role, url).is_none() {
            self.adopt(role, url, nonce);
        }
    }

    /// [`NonceBook::learn`] without telling the observer: for a nonce
    /// another tab passed on.
    pub fn adopt(&self, role: Role, url: &str, nonce: &str) -> bool {
        let Some(origin) = Origin::of_url(url) else {
            return false;
        };
        if !valid_nonce(nonce) {
            return false;
        }
        let mut entries = self.entries.borrow_mut();
        if let Some(entry) = entries
            .iter_mut()
            .find(|(r, o, _)| *r == role && *o == origin)
        {
            if entry.2 == nonce {
                return false;
            }
            entry.2 = nonce.to_owned();
            return true;
        }
        if entries.len() == MAX_NONCES {
            entries.remove(0);
        }
        entries.push((role, origin, nonce.to_owned()));
        true
    }
}

/// Whether a resource's `WWW-Authenticate` asks for a nonce
/// ([§9](https://www.rfc-editor.org/rfc/rfc9449#section-9)): a `DPoP`
/// challenge with `error="use_dpop_nonce"`, wherever it stands among the
/// header's challenges.
pub fn challenge_wants_nonce(www_authenticate: &str) -> bool {
    www_authenticate::names_error(www_authenticate, "DPoP", "use_dpop_nonce")
}

/// [`Http`] with a DPoP proof on every form post, for the authorization
/// server's endpoints (PAR, token, revocation): the nonce of each answer is
/// kept, and a post refused with `use_dpop_nonce` is sent once more with the
/// new one. A second refusal is `dpop_nonce_failed`, never a loop. `GET`s
/// (discovery, keys) carry no proof.
pub struct DpopHttp<'a, P, K> {
    /// Sends the requests; its clock and randomness make the proofs.
    pub platform: &'a P,
    /// The session's key.
    pub key: &'a K,
    /// The servers' nonces, shared by the tab.
    pub nonces: &'a NonceBook,
    /// What a refusal with a new nonce gets.
    pub on_refusal: NonceRefusal,
}

impl<P: Http + Clock + Crypto, K: DpopKey> Http for DpopHttp<'_, P, K> {
    type Body = P::Body;

    fn read<T: serde::de::DeserializeOwned>(&self, body: P::Body) -> Result<T, String> {
        self.platform.read(body)
    }

    async fn get(&self, url: &str) -> Result<HttpReply<P::Body>, Error> {
        self.platform.get(url).await
    }

    /// The post with a proof of its own (any `proof` given is not used):
    /// drives [`ProofPost`], performing each need.
    async fn post(
        &self,
        url: &str,
        form: &[(String, String)],
        _proof: Option<&DpopProof>,
    ) -> Result<HttpReply<P::Body>, Error> {
        let role = Role::AuthorizationServer;
        let known = self.nonces.get(role, url);
        let (mut machine, first) = ProofPost::start(known, self.on_refusal);
        let mut poster = Poster {
            http: self,
            url,
            form,
        };
        drive(&mut machine, first, &mut poster).await
    }
}

/// Performs a [`ProofPost`]'s needs for one form post, deciding nothing.
struct Poster<'a, 'h, P, K> {
    http: &'a DpopHttp<'h, P, K>,
    url: &'a str,
    form: &'a [(String, String)],
}

impl<P: Http + Clock + Crypto, K: DpopKey> Perform<ProofPost<P::Body>> for Poster<'_, '_, P, K> {
    async fn perform(&mut self, need: ProofNeed, _: &ProofPost<P::Body>) -> ProofFed<P::Body> {
        let (http, url, role) = (self.http, self.url, Role::AuthorizationServer);
        match need {
            ProofNeed::Prove { nonce } => {
                let proof = ProofFor {
                    method: "POST",
                    url,
                    nonce: nonce.as_deref(),
                    access_token: None,
                    ath_cache: None,
                };
                ProofFed::Proved(make_proof(http.platform, http.key, proof).await)
            }
            ProofNeed::Post(proof) => {
                ProofFed::Answered(http.platform.post(url, self.form, Some(&proof)).await)
            }
            ProofNeed::Learn(nonce) => {
                http.nonces.learn(role, url, &nonce);
                ProofFed::Learned(http.nonces.get(role, url))
            }
        }
    }

    fn with(&self) {}
}

impl<P: Timer, K> Timer for DpopHttp<'_, P, K> {
    async fn sleep(&self, ms: u32) {
        self.platform.sleep(ms).await
    }
}

impl<P: Clock, K> Clock for DpopHttp<'_, P, K> {
    fn now_ms(&self) -> u64 {
        self.platform.now_ms()
    }
}

impl<P: Crypto, K> Crypto for DpopHttp<'_, P, K> {
    fn random_32(&self) -> Result<[u8; 32], Error> {
        self.platform.random_32()
    }

    async fn sha256(&self, data: &[u8]) -> Result<[u8; 32], Error> {
        self.platform.sha256(data).await
    }
}

#[cfg(test)]
#[path = "dpop_tests.rs"]
mod tests;
