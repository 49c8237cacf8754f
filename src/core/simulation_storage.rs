//! The simulation's localStorage: the origin's map (the browser's), which
//! each tab sees through its own copy, and which other tabs' writes reach
//! later, in the order they were made (Chromium's copy in each tab's
//! process); the records' marks in a map that does not lag (IndexedDB).
//! A tab's store is the real [`RecordStore`] over its copy, read through
//! the real [`Marked`], or (to show that the simulation finds what the
//! marks prevent) over its copy alone.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use serde::de::DeserializeOwned;

use super::{yield_once, TabPorts, World, TABS};
use crate::core::marked_values::Marked;
use crate::core::platform::Json;
use crate::core::record_store::{KeyValue, RecordStore, Sealer};
use crate::core::Error;

/// Another tab's write reaches a tab's copy within this long. Above the
/// broadcasts' delivery (`MAX_DELIVERY_MS`), as measured in Chromium (a
/// lagging copy and a broadcast both still on their way when the lock is
/// granted), and below the marks' bound (`MARK_WAIT_MS`).
const MAX_LAG_MS: u64 = 300;

/// A write on its way to a copy: when it is applied at the latest, the
/// browser's order of it, the key, the value (`None`: removed).
type Pending = (u64, u64, String, Option<String>);

/// A tab's copy: by key, the value (`None`: removed) and the browser's
/// order of the write it came from.
type CopyMap = BTreeMap<String, (u64, Option<String>)>;

/// The origin's localStorage, each tab's copy of it, and the marks.
#[derive(Default)]
pub(super) struct LocalStorage {
    /// What the browser holds.
    values: RefCell<BTreeMap<String, String>>,
    /// What each tab sees.
    copies: [RefCell<CopyMap>; TABS],
    /// Writes on their way to each tab's copy: when each is applied at the
    /// latest, the browser's order of the write, the key, the value.
    pending: [RefCell<VecDeque<Pending>>; TABS],
    /// The browser's order of writes so far.
    writes: Cell<u64>,
    /// The marks (IndexedDB): never lag.
    marks: RefCell<BTreeMap<String, String>>,
}

impl LocalStorage {
    /// Applies the writes on their way to `tab`'s copy that are due by
    /// `now`, or the oldest one whatever its time (`all_due: false`).
    pub(super) fn apply(&self, tab: usize, now: u64, all_due: bool) {
        loop {
            let mut pending = self.pending[tab].borrow_mut();
            let due = pending
                .front()
                .is_some_and(|(at, ..)| *at <= now || !all_due);
            if !due {
                return;
            }
            let (_, order, key, value) = pending.pop_front().unwrap();
            // A copy ends as the browser's map: a write this tab made
            // after this one (in the browser's order) stays.
            let mut copy = self.copies[tab].borrow_mut();
            if copy.get(&key).is_none_or(|(mine, _)| *mine < order) {
                copy.insert(key, (order, value));
            }
            if !all_due {
                return;
            }
        }
    }

    /// Drops everything, once a run is over.
    pub(super) fn forget(&self) {
        self.values.take();
        self.marks.take();
        for tab in 0..TABS {
            self.copies[tab].take();
            self.pending[tab].take();
        }
    }

    /// Forgets a closed tab's copy and what was on its way to it.
    pub(super) fn close(&self, tab: usize) {
        self.pending[tab].borrow_mut().clear();
    }
}

/// One tab's copy of localStorage (`tab: None`: the browser's own map,
/// for the run's set-up and checks).
pub(super) struct TabCopy<'w> {
    world: &'w World,
    tab: Option<usize>,
}

impl TabCopy<'_> {
    /// Writes `value` at `key` (`None`: removes it): at once in the
    /// browser's map and the writing tab's copy, later in the others'.
    fn write(&self, key: &str, value: Option<String>) {
        let local = &self.world.local;
        let now = self.world.now_ms.get();
        let order = local.writes.get() + 1;
        local.writes.set(order);
        match &value {
            Some(value) => local.values.borrow_mut().insert(key.into(), value.clone()),
            None => local.values.borrow_mut().remove(key),
        };
        for tab in 0..TABS {
            let entry = (order, value.clone());
            if Some(tab) == self.tab || self.tab.is_none() {
                local.copies[tab].borrow_mut().insert(key.into(), entry);
            } else if !self.world.closed[tab].get() {
                let at = now + self.world.rng.below(MAX_LAG_MS + 1);
                let pending = &mut local.pending[tab].borrow_mut();
                // A copy applies writes in order: never before an earlier one.
                let at = pending.back().map_or(at, |(last, ..)| at.max(*last));
                pending.push_back((at, order, key.into(), value.clone()));
            }
        }
    }
}

impl KeyValue for TabCopy<'_> {
    // localStorage is synchronous: no other task runs during a call.
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let local = &self.world.local;
        Ok(match self.tab {
            Some(tab) => local.copies[tab]
                .borrow()
                .get(key)
                .and_then(|(_, v)| v.clone()),
            None => local.values.borrow().get(key).cloned(),
        })
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        self.write(key, Some(value));
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        self.write(key, None);
        Ok(())
    }
}

/// The marks' map (IndexedDB): each call lets the other tasks run.
pub(super) struct Marks<'w>(&'w World);

impl KeyValue for Marks<'_> {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        yield_once().await;
        Ok(self.0.local.marks.borrow().get(key).cloned())
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        yield_once().await;
        self.0.local.marks.borrow_mut().insert(key.into(), value);
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        yield_once().await;
        self.0.local.marks.borrow_mut().remove(key);
        Ok(())
    }
}

/// A tab's view: its copy through the marks, or its copy alone.
pub(super) enum View<'w> {
    Marked(Marked<TabCopy<'w>, Marks<'w>, TabPorts<'w>>),
    Unmarked(TabCopy<'w>),
}

impl KeyValue for View<'_> {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        match self {
            View::Marked(marked) => marked.get(key).await,
            View::Unmarked(copy) => copy.get(key).await,
        }
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        match self {
            View::Marked(marked) => marked.set(key, value).await,
            View::Unmarked(copy) => copy.set(key, value).await,
        }
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        match self {
            View::Marked(marked) => marked.remove(key).await,
            View::Unmarked(copy) => copy.remove(key).await,
        }
    }
}

/// Stores records as they are: what is tested here is where they are read
/// from, not how they are sealed.
pub(super) struct Plain;

impl Sealer for Plain {
    async fn seal(&self, _: &[u8], plaintext: String) -> Result<String, Error> {
        Ok(plaintext)
    }

    async fn open(&self, _: &[u8], stored: String) -> Result<String, Error> {
        Ok(stored)
    }
}

/// serde_json standing in for `JSON.parse`.
pub(super) struct SerdeJson;

impl Json for SerdeJson {
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|_| "not a record".into())
    }
}

/// The session store of `tab` (`None`: the browser's own map, for the
/// run's set-up and checks), read and written through the marks when
/// `marked`.
pub(super) fn records(
    world: &World,
    tab: Option<usize>,
    marked: bool,
) -> RecordStore<View<'_>, Plain, SerdeJson> {
    let copy = TabCopy { world, tab };
    let view = match marked {
        true => View::Marked(Marked {
            values: copy,
            marks: Marks(world),
            platform: TabPorts::new(world, tab.unwrap_or(0)),
        }),
        false => View::Unmarked(copy),
    };
    // Never used: the simulation has no login in flight.
    let transactions = View::Unmarked(TabCopy { world, tab });
    RecordStore::new(
        "https://as.example",
        "spa",
        view,
        transactions,
        Plain,
        SerdeJson,
    )
}
