//! `create()`'s needs performed in the browser ([`CreateClient`]): the
//! store opened and read — with discovery alongside when the machine says
//! so —, discovery awaited, metadata kept for the next start, or discovery
//! left to finish in the background. It decides nothing.

use std::future::Future;
use std::pin::Pin;

use crate::browser::dpop_keys::BrowserDpopKeys;
use crate::browser::platform::BrowserPlatform;
use crate::browser::store::{BrowserSessionStore, StorageKind};
use crate::core::create_machine::{CreateClient, Fed, Need, Started};
use crate::core::drive::{drive, Perform};
use crate::core::ports::{Clock, SessionStore};
use crate::core::race::{alongside, both};
use crate::core::startup::{discover, KeptMetadata};
use crate::core::{Error, ProviderMetadata};

/// What opening gave besides the machine's input: the store, why it fell
/// back to another storage (if it did), and the DPoP keys (when used).
pub struct Opened {
    /// The session's store.
    pub store: BrowserSessionStore,
    /// Why the asked storage could not be used, if it could not.
    pub storage_fallback: Option<String>,
    /// The DPoP keys' store, when the client uses DPoP.
    pub dpop_keys: Option<BrowserDpopKeys>,
}

/// Where `create()` opens its store and finds its metadata.
pub struct Target<'a> {
    /// The storage the app asked for.
    pub storage: StorageKind,
    /// The issuer (the namespace, for atproto).
    pub issuer: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// Whether the client uses DPoP (its keys are opened alongside).
    pub dpop: bool,
    /// The bound of every request.
    pub timeout_ms: u32,
}

/// Runs `create()`'s machine from its first step: the opened store and
/// what the client starts with.
pub async fn start_client(
    target: Target<'_>,
    (mut machine, first): (CreateClient, crate::core::create_machine::Step),
) -> Result<(Opened, Started), Error> {
    let discovery = Box::pin(discover_owned(target.timeout_ms, target.issuer.to_owned()));
    let mut performer = Creating {
        platform: BrowserPlatform {
            request_timeout_ms: target.timeout_ms,
        },
        target,
        discovery: Some(discovery),
        opened: None,
    };
    let started = drive(&mut machine, first, &mut performer).await?;
    let opened = performer.opened.ok_or_else(|| Error::Storage {
        reason: "create() ended before its store was opened".into(),
    })?;
    Ok((opened, started))
}

/// Performs `create()`'s needs.
struct Creating<'a, D> {
    platform: BrowserPlatform,
    target: Target<'a>,
    /// Discovery (owning what it needs, so it can outlive `create()`),
    /// started when first polled: alongside the reads, awaited, or handed
    /// to a task of its own. `None` once it answered or was handed on:
    /// never awaited twice.
    discovery: Option<Pin<Box<D>>>,
    opened: Option<Opened>,
}

impl<D> Creating<'_, D> {
    /// Where metadata is kept: the opened store's kind (after a fallback,
    /// the one in use), the issuer and client id, owned for a task.
    fn keep_target(&self) -> (StorageKind, String, String) {
        let kind = self
            .opened
            .as_ref()
            .map_or(self.target.storage, |opened| opened.store.kind());
        let Target {
            issuer, client_id, ..
        } = self.target;
        (kind, issuer.to_owned(), client_id.to_owned())
    }
}

impl<D> Perform<CreateClient> for Creating<'_, D>
where
    D: Future<Output = Result<ProviderMetadata, Error>> + 'static,
{
    async fn perform(&mut self, need: Need, _: &CreateClient) -> Fed {
        match need {
            Need::Open { discover_alongside } => {
                let Target {
                    storage,
                    issuer,
                    client_id,
                    dpop,
                    ..
                } = self.target;
                let open_and_load = async {
                    let opening = async {
                        let (store, fallback) =
                            BrowserSessionStore::open(storage, issuer, client_id).await;
                        let (loaded, kept) = both(store.load_tokens(), store.load_metadata()).await;
                        (store, fallback, loaded, kept)
                    };
                    // DPoP keys live in IndexedDB whatever the token
                    // storage: a non-extractable key handle reveals
                    // nothing, and the login's key must survive the
                    // redirect.
                    let keys = async {
                        match dpop {
                            true => Some(BrowserDpopKeys::open(issuer, client_id).await),
                            false => None,
                        }
                    };
                    both(opening, keys).await
                };
                let (((store, storage_fallback, loaded, kept), dpop_keys), early) =
                    match (discover_alongside, &mut self.discovery) {
                        (true, Some(discovery)) => alongside(open_and_load, discovery).await,
                        _ => (open_and_load.await, None),
                    };
                if early.is_some() {
                    self.discovery = None;
                }
                self.opened = Some(Opened {
                    store,
                    storage_fallback,
                    dpop_keys,
                });
                Fed::Opened {
                    loaded,
                    kept,
                    early,
                }
            }
            Need::AwaitDiscovery => Fed::Discovered(match self.discovery.take() {
                Some(discovery) => discovery.await,
                None => Err(Error::Discovery {
                    reason: "discovery already answered".into(),
                }),
            }),
            // Kept for the next start: off the critical path, or before
            // going on (best effort either way).
            Need::Keep {
                kept,
                background: true,
            } => {
                wasm_bindgen_futures::spawn_local(keep_later(self.keep_target(), kept));
                Fed::Done
            }
            Need::Keep {
                kept,
                background: false,
            } => {
                if let Some(opened) = &self.opened {
                    let _ = opened.store.save_metadata(&kept).await;
                }
                Fed::Done
            }
            Need::Revalidate => {
                if let Some(running) = self.discovery.take() {
                    let target = self.keep_target();
                    wasm_bindgen_futures::spawn_local(revalidate_later(running, target));
                }
                Fed::Done
            }
        }
    }

    fn with(&self) -> u64 {
        self.platform.now_ms()
    }
}

/// Discovery as a future that owns what it needs, so it can outlive
/// `create()` and finish in the background.
async fn discover_owned(timeout_ms: u32, issuer: String) -> Result<ProviderMetadata, Error> {
    let platform = BrowserPlatform {
        request_timeout_ms: timeout_ms,
    };
    discover(&platform, &issuer).await
}

/// Keeps `kept` in the store of `(kind, issuer, client_id)`, opened again
/// for it: a task of its own, so `create()` does not wait for the write.
async fn keep_later((kind, issuer, client_id): (StorageKind, String, String), kept: KeptMetadata) {
    let (store, _) = BrowserSessionStore::open(kind, &issuer, &client_id).await;
    let _ = store.save_metadata(&kept).await;
}

/// Finishes a discovery that `create()` did not wait for (it started from
/// kept metadata) and keeps the result for the next start.
async fn revalidate_later(
    discovery: Pin<Box<impl Future<Output = Result<ProviderMetadata, Error>>>>,
    target: (StorageKind, String, String),
) {
    if let Ok(fresh) = discovery.await {
        let kept = KeptMetadata {
            fetched_at_ms: js_sys::Date::now() as u64,
            metadata: fresh,
        };
        keep_later(target, kept).await;
    }
}
