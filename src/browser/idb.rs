//! A minimal promise-based key-value store over IndexedDB.
//!
//! IndexedDB's API is event based; these helpers turn one request (or one
//! transaction) into one awaitable future so the store code reads linearly.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransaction, IdbTransactionMode};

use crate::browser::js_error::is_named;

/// One object store in one IndexedDB database, keyed by strings.
///
/// The connection is let go when another connection asks for the database
/// (`versionchange`: a `deleteDatabase`, "clear site data", a newer
/// version's upgrade), so this tab never blocks it. A closed connection is
/// opened again by the next transaction when the database is still there;
/// one that was deleted (site data cleared) is not made again empty: the
/// origin's storage key went with it, so what this tab would seal under the
/// key it holds could be read by no other tab, and it would be lost at the
/// next reload. Every call then fails (`storage_error`) as it did before,
/// and so does every call after a newer latchkey upgraded the database.
/// A deletion is final for the page, also once another tab has made the
/// database again: that tab made a new key with it, and this one would
/// read that tab's records with its old key, find them corrupt and remove
/// them.
#[derive(Clone)]
pub struct IdbKeyValue {
    db: Rc<RefCell<IdbDatabase>>,
    name: String,
    store: String,
    /// Set when the database was deleted (or the browser closed the
    /// connection, as clearing site data does) while this page held it.
    gone: Rc<Cell<bool>>,
}

/// The error of every call on a database gone from under the page.
const GONE: &str =
    "the database was deleted or upgraded by a newer latchkey while this page was open";

impl IdbKeyValue {
    /// Opens (creating on first use) database `db_name` with a single
    /// object store `store`.
    pub async fn open(db_name: &str, store: &str) -> Result<Self, JsValue> {
        let gone = Rc::new(Cell::new(false));
        Ok(Self {
            db: Rc::new(RefCell::new(connect(db_name, store, CREATE, &gone).await?)),
            name: db_name.to_owned(),
            store: store.to_owned(),
            gone,
        })
    }

    /// Whether the database was deleted while this page held it (every
    /// call fails from then on).
    pub fn gone(&self) -> Rc<Cell<bool>> {
        Rc::clone(&self.gone)
    }

    /// A transaction on the store, on a connection opened again when the
    /// one held was closed and the database is still there.
    async fn transaction(&self, mode: IdbTransactionMode) -> Result<IdbTransaction, JsValue> {
        if self.gone.get() {
            return Err(JsValue::from_str(GONE));
        }
        let held = self
            .db
            .borrow()
            .transaction_with_str_and_mode(&self.store, mode);
        match held {
            // `transaction()` on a closed connection.
            Err(error) if is_named(&error, "InvalidStateError") => {
                let db = connect(&self.name, &self.store, !CREATE, &self.gone).await?;
                let tx = db.transaction_with_str_and_mode(&self.store, mode)?;
                *self.db.borrow_mut() = db;
                Ok(tx)
            }
            held => held,
        }
    }

    /// The value stored under `key`, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<JsValue>, JsValue> {
        let tx = self.transaction(IdbTransactionMode::Readonly).await?;
        let value = request_result(&tx.object_store(&self.store)?.get(&key.into())?).await?;
        Ok(if value.is_undefined() {
            None
        } else {
            Some(value)
        })
    }

    /// Stores `value` under `key` and resolves once the transaction has
    /// committed, so a reader in another tab sees it afterwards.
    pub async fn put(&self, key: &str, value: &JsValue) -> Result<(), JsValue> {
        let tx = self.transaction(IdbTransactionMode::Readwrite).await?;
        tx.object_store(&self.store)?
            .put_with_key(value, &key.into())?;
        transaction_done(&tx).await
    }

    /// Stores `value` under `key` only if the key is absent; `Ok(false)`
    /// when another writer got there first (two tabs creating one key).
    pub async fn insert_new(&self, key: &str, value: &JsValue) -> Result<bool, JsValue> {
        let tx = self.transaction(IdbTransactionMode::Readwrite).await?;
        tx.object_store(&self.store)?
            .add_with_key(value, &key.into())?;
        match transaction_done(&tx).await {
            Ok(()) => Ok(true),
            Err(error) if is_named(&error, "ConstraintError") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Removes `key`; resolves once committed.
    pub async fn delete(&self, key: &str) -> Result<(), JsValue> {
        let tx = self.transaction(IdbTransactionMode::Readwrite).await?;
        tx.object_store(&self.store)?.delete(&key.into())?;
        transaction_done(&tx).await
    }
}

/// [`connect`] may create the database (a first open), or may not (an
/// open again after the connection closed).
const CREATE: bool = true;

/// A connection to `db_name` with the object store `store` (created on
/// first use, when `create`; otherwise a database that is not there is an
/// error and stays absent), which closes itself when another connection
/// needs the database — from the moment it opens, also when the caller has
/// stopped waiting for it.
async fn connect(
    db_name: &str,
    store: &str,
    create: bool,
    gone: &Rc<Cell<bool>>,
) -> Result<IdbDatabase, JsValue> {
    let factory = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .indexed_db()?
        .ok_or_else(|| JsValue::from_str("IndexedDB is unavailable"))?;
    let request = factory.open_with_u32(db_name, 1)?;
    let store_name = store.to_owned();
    let upgrade_request = request.clone();
    let on_upgrade = Closure::once_into_js(move |_event: web_sys::Event| {
        if !create {
            // Aborting the upgrade of a database being created leaves none.
            if let Some(upgrade) = upgrade_request.transaction() {
                let _ = upgrade.abort();
            }
            return;
        }
        if let Ok(result) = upgrade_request.result() {
            let db: IdbDatabase = result.unchecked_into();
            if !db.object_store_names().contains(&store_name) {
                // An error here surfaces as the open request's error.
                let _ = db.create_object_store(&store_name);
            }
        }
    });
    request.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
    let opened = request.clone();
    let gone = Rc::clone(gone);
    let on_open = Closure::once_into_js(move |_event: web_sys::Event| {
        if let Ok(result) = opened.result() {
            let db: IdbDatabase = result.unchecked_into();
            let closing = db.clone();
            let deleted = Rc::clone(&gone);
            let on_version_change = Closure::once_into_js(move |event: web_sys::Event| {
                // No new version: a deletion.
                let change: web_sys::IdbVersionChangeEvent = event.unchecked_into();
                if change.new_version().is_none() {
                    deleted.set(true);
                }
                closing.close();
            });
            db.set_onversionchange(Some(on_version_change.unchecked_ref()));
            // The browser closing it (site data cleared): gone as well.
            let on_close = Closure::once_into_js(move |_event: web_sys::Event| gone.set(true));
            db.set_onclose(Some(on_close.unchecked_ref()));
        }
    });
    request.add_event_listener_with_callback("success", on_open.unchecked_ref())?;
    match request_result(&request).await {
        Ok(db) => Ok(db.unchecked_into()),
        Err(_) if !create => Err(JsValue::from_str(GONE)),
        Err(error) => Err(error),
    }
}

/// Resolves with the request's result on `success`, rejects with its error.
async fn request_result(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let request = request.clone();
    let promise = Promise::new(&mut |resolve, reject| {
        let done = request.clone();
        let on_success = Closure::once_into_js(move |_event: web_sys::Event| {
            let _ = resolve.call1(&JsValue::NULL, &done.result().unwrap_or_default());
        });
        let failed = request.clone();
        let on_error = Closure::once_into_js(move |_event: web_sys::Event| {
            let error = failed.error().ok().flatten().map(JsValue::from);
            let _ = reject.call1(&JsValue::NULL, &error.unwrap_or_default());
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise).await
}

/// Resolves when the transaction commits; rejects when it errors or aborts.
async fn transaction_done(tx: &IdbTransaction) -> Result<(), JsValue> {
    let tx = tx.clone();
    let promise = Promise::new(&mut |resolve, reject| {
        let on_complete = Closure::once_into_js(move |_event: web_sys::Event| {
            let _ = resolve.call0(&JsValue::NULL);
        });
        // A request's error reaches the transaction as the request's event:
        // the transaction's own `error` is set only by the abort that
        // follows, so the request's is read (ConstraintError, QuotaExceeded).
        let reject_abort = reject.clone();
        let on_error = Closure::once_into_js(move |event: web_sys::Event| {
            let error = event
                .target()
                .and_then(|target| target.dyn_into::<IdbRequest>().ok())
                .and_then(|request| request.error().ok().flatten())
                .map(JsValue::from);
            let _ = reject.call1(&JsValue::NULL, &error.unwrap_or_default());
        });
        let aborted = tx.clone();
        let on_abort = Closure::once_into_js(move |_event: web_sys::Event| {
            let error = aborted
                .error()
                .map_or_else(|| JsValue::from_str("transaction aborted"), JsValue::from);
            let _ = reject_abort.call1(&JsValue::NULL, &error);
        });
        tx.set_oncomplete(Some(on_complete.unchecked_ref()));
        tx.set_onerror(Some(on_error.unchecked_ref()));
        tx.set_onabort(Some(on_abort.unchecked_ref()));
    });
    JsFuture::from(promise).await.map(|_| ())
}
