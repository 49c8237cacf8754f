//! `create()`'s needs performed in the browser ([`CreateClient`]): the
//! store opened and read, discovery, metadata kept for the next start, or
//! a revalidation started in the background. It decides nothing.

use crate::browser::dpop_keys::BrowserDpopKeys;
use crate::browser::platform::{BrowserPlatform, Monotonic};
use crate::browser::store::{BrowserSessionStore, StorageKind};
use crate::core::create_machine::{CreateClient, Fed, Need, Started};
use crate::core::drive::{drive, Perform};
use crate::core::platform::Timer;
use crate::core::ports::{Clock, SessionStore};
use crate::core::race::{both, within};
use crate::core::session::RefreshPolicy;
use crate::core::startup::{discover, KeptMetadata};
use crate::core::Error;

/// What opening gave besides the machine's input: the store, why it fell
/// back to another storage (if it did), and the DPoP keys (when used).
pub struct Opened {
    /// The session's store.
    pub store: BrowserSessionStore,
    /// Why the asked storage could not be used, if it could not.
    pub storage_fallback: Option<String>,
    /// The DPoP keys' store, when the client uses DPoP or the stored
    /// session is bound to a key.
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
    let mut performer = Creating {
        platform: BrowserPlatform::within(target.timeout_ms),
        target,
        opened: None,
    };
    let started = drive(&mut machine, first, &mut performer).await?;
    let opened = performer.opened.ok_or_else(|| Error::Storage {
        reason: "create() ended before its store was opened".into(),
    })?;
    Ok((opened, started))
}

/// Performs `create()`'s needs.
struct Creating<'a> {
    platform: BrowserPlatform,
    target: Target<'a>,
    opened: Option<Opened>,
}

impl Creating<'_> {
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

impl Perform<CreateClient> for Creating<'_> {
    async fn perform(&mut self, need: Need, _: &CreateClient) -> Fed {
        match need {
            Need::Open => {
                let Target {
                    storage,
                    issuer,
                    client_id,
                    dpop,
                    ..
                } = self.target;
                // Each wait bounded (a wedged IndexedDB, an upgrade blocked by
                // an old tab): `create()` never hangs on its store. A store
                // that does not open is replaced by memory, as one that
                // fails to; reads that do not answer are a failed read
                // (signed out here, the record kept for the next start).
                // Reads wait as long as they may under the lock: a
                // localStorage read waits for its mark to agree, and is then
                // what repairs it.
                let timeout_ms = self.target.timeout_ms;
                let read_wait_ms = RefreshPolicy::store_wait_ms_of(timeout_ms);
                let stalled = |ms: u32| Error::Storage {
                    reason: format!("the store did not answer within {ms} ms"),
                };
                let bound = || Monotonic.sleep(timeout_ms);
                let opening = async {
                    let open = BrowserSessionStore::open(storage, issuer, client_id);
                    let (store, fallback) = within(open, bound()).await.unwrap_or_else(|| {
                        let memory = BrowserSessionStore::memory(issuer, client_id);
                        (memory, Some(stalled(timeout_ms).to_string()))
                    });
                    let reads = both(store.load_tokens(), store.load_metadata());
                    let (loaded, kept) = within(reads, Monotonic.sleep(read_wait_ms))
                        .await
                        .unwrap_or_else(|| (Err(stalled(read_wait_ms)), None));
                    (store, fallback, loaded, kept)
                };
                // DPoP keys live in IndexedDB whatever the token storage: a
                // non-extractable key handle reveals nothing, and the
                // login's key must survive the redirect.
                // Bounded like the store: a keys database that does not
                // open leaves the keys in this tab's memory.
                let open_keys = || async {
                    let open = BrowserDpopKeys::open(issuer, client_id);
                    let keys = within(open, bound()).await;
                    Some(keys.unwrap_or_else(|| BrowserDpopKeys::in_memory(issuer, client_id)))
                };
                let keys = async {
                    match dpop {
                        true => open_keys().await,
                        false => None,
                    }
                };
                let ((store, storage_fallback, loaded, kept), mut dpop_keys) =
                    both(opening, keys).await;
                // A session bound before the app turned `dpop` off still
                // signs its calls with its key (`Session::proof_key`):
                // opened after the read, only then.
                let bound_set = matches!(&loaded, Ok(Some(set)) if set.dpop_jkt.is_some());
                if dpop_keys.is_none() && bound_set {
                    dpop_keys = open_keys().await;
                }
                self.opened = Some(Opened {
                    store,
                    storage_fallback,
                    dpop_keys,
                });
                Fed::Opened { loaded, kept }
            }
            Need::Discover => Fed::Discovered(discover(&self.platform, self.target.issuer).await),
            // Kept for the next start before going on (best effort).
            Need::Keep(kept) => {
                if let Some(opened) = &self.opened {
                    let save = opened.store.save_metadata(&kept);
                    let _ = within(save, Monotonic.sleep(self.target.timeout_ms)).await;
                }
                Fed::Done
            }
            Need::Revalidate { after_ms } => {
                let platform = BrowserPlatform::within(self.target.timeout_ms);
                let target = self.keep_target();
                wasm_bindgen_futures::spawn_local(revalidate_later(platform, after_ms, target));
                Fed::Done
            }
        }
    }

    fn with(&self) -> u64 {
        self.platform.now_ms()
    }
}

/// Discovers the issuer's metadata again `after_ms` from now and keeps it
/// for the next start, in the store of `(kind, issuer, client_id)` opened
/// again for it: a task of its own, which `create()` does not wait for.
async fn revalidate_later(
    platform: BrowserPlatform,
    after_ms: u32,
    (kind, issuer, client_id): (StorageKind, String, String),
) {
    platform.sleep(after_ms).await;
    let Ok(metadata) = discover(&platform, &issuer).await else {
        return;
    };
    let kept = KeptMetadata {
        fetched_at_ms: platform.now_ms(),
        metadata,
    };
    let (store, _) = BrowserSessionStore::open(kind, &issuer, &client_id).await;
    let _ = store.save_metadata(&kept).await;
}
