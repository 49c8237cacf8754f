//! The marked backend, one test per rule, over a memory backend that can
//! lag (answer a key's previous value for a number of reads) and fail.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::*;
use crate::core::fakes::block_on;

const KEY: &str = "latchkey:https://idp.example:spa:tokens";

/// A memory backend; `lag` makes the next reads of one key answer an older
/// value, as a tab's lagging copy of localStorage does.
#[derive(Default)]
struct Memory {
    map: RefCell<BTreeMap<String, String>>,
    /// The key, its older value and how many more reads answer it.
    lagging: RefCell<Option<(String, Option<String>, u32)>>,
    failing_reads: Cell<bool>,
    failing_writes: Cell<bool>,
    /// Set once a write here succeeded: the tab closes right after it.
    closes_after_a_write: RefCell<Option<Rc<Cell<bool>>>>,
    /// Once set, every write here fails: the tab has closed.
    closed: RefCell<Option<Rc<Cell<bool>>>>,
    /// The next read takes this long on this clock.
    slow_read: RefCell<Option<(Rc<Cell<u64>>, u64)>>,
}

impl Memory {
    fn raw(&self, key: &str) -> Option<String> {
        self.map.borrow().get(key).cloned()
    }

    fn put_raw(&self, key: &str, value: &str) {
        self.map.borrow_mut().insert(key.into(), value.into());
    }

    /// The next `reads` reads of `key` answer `older`.
    fn lag(&self, key: &str, older: Option<&str>, reads: u32) {
        *self.lagging.borrow_mut() = Some((key.into(), older.map(Into::into), reads));
    }

    fn refused() -> Error {
        Error::Storage {
            reason: "the backend refused".into(),
        }
    }
}

impl KeyValue for Memory {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        if let Some((clock, ms)) = self.slow_read.borrow_mut().take() {
            clock.set(clock.get() + ms);
        }
        if self.failing_reads.get() {
            return Err(Memory::refused());
        }
        if let Some((lagging, older, reads)) = &mut *self.lagging.borrow_mut() {
            if lagging == key && *reads > 0 {
                *reads -= 1;
                return Ok(older.clone());
            }
        }
        Ok(self.raw(key))
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        let closed = self.closed.borrow().as_ref().is_some_and(|c| c.get());
        if self.failing_writes.get() || closed {
            return Err(Memory::refused());
        }
        if let Some(closes) = &*self.closes_after_a_write.borrow() {
            closes.set(true);
        }
        self.put_raw(key, &value);
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        if self.failing_writes.get() {
            return Err(Memory::refused());
        }
        self.map.borrow_mut().remove(key);
        Ok(())
    }
}

/// Counts the waits and what they asked for; its clock moves by each wait
/// (and `skip`).
#[derive(Default)]
struct Waits(RefCell<Vec<u32>>, Rc<Cell<u64>>, Cell<u64>);

impl Waits {
    /// The next wait lasts `ms` longer, as a hidden tab's timers do.
    fn skip(&self, ms: u64) {
        self.2.set(ms);
    }
}

impl Timer for Waits {
    async fn sleep(&self, ms: u32) {
        self.0.borrow_mut().push(ms);
        self.1.set(self.1.get() + u64::from(ms) + self.2.take());
    }
}

impl Clock for Waits {
    fn now_ms(&self) -> u64 {
        self.1.get()
    }
}

fn marked() -> Marked<Memory, Memory, Waits> {
    Marked {
        values: Memory::default(),
        marks: Memory::default(),
        platform: Waits::default(),
    }
}

fn waits(store: &Marked<Memory, Memory, Waits>) -> usize {
    store.platform.0.borrow().len()
}

#[test]
fn a_mark_tells_one_stored_text_from_another_and_from_absent() {
    let one = mark_of(Some("v1.AAAA.bbbb"));
    assert_eq!(one, mark_of(Some("v1.AAAA.bbbb")));
    assert_ne!(one, mark_of(Some("v1.AAAB.bbbb")));
    assert_ne!(mark_of(Some("")), mark_of(None));
    assert_eq!(one.len(), 16);
    assert_eq!(mark_of(None), "absent");
    assert_eq!(mark_key(KEY), format!("{KEY}:mark"));
}

#[test]
fn rule_1_a_write_puts_the_value_then_its_mark() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    assert_eq!(store.values.raw(KEY).as_deref(), Some("sealed-1"));
    assert_eq!(
        store.marks.raw(&mark_key(KEY)),
        Some(mark_of(Some("sealed-1")))
    );
    // The mark is kept apart from the values.
    assert_eq!(store.values.raw(&mark_key(KEY)), None);
}

#[test]
fn rule_1_a_value_that_was_not_written_leaves_a_mark_no_value_agrees_with() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    store.values.failing_writes.set(true);
    let error = block_on(store.set(KEY, "sealed-2".into())).unwrap_err();
    assert_eq!(error.code(), "storage_error");
    assert_eq!(store.marks.raw(&mark_key(KEY)).as_deref(), Some("writing"));
    // The next read waits out its bound, then takes what is stored.
    store.values.failing_writes.set(false);
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-1")
    );
    assert_eq!(
        store.marks.raw(&mark_key(KEY)),
        Some(mark_of(Some("sealed-1")))
    );
}

#[test]
fn rule_1_a_write_cut_off_after_its_value_leaves_no_mark_a_lagging_copy_agrees_with() {
    // The tab closed after putting the rotated set, before marking it: a
    // copy still showing the previous set (whose refresh token the server
    // just spent) must not be taken while it lags.
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    let closed = Rc::new(Cell::new(false));
    *store.values.closes_after_a_write.borrow_mut() = Some(Rc::clone(&closed));
    *store.marks.closed.borrow_mut() = Some(Rc::clone(&closed));
    assert!(block_on(store.set(KEY, "sealed-2".into())).is_err());
    assert_eq!(store.values.raw(KEY).as_deref(), Some("sealed-2"));
    closed.set(false);
    store.values.closes_after_a_write.take();
    store.values.lag(KEY, Some("sealed-1"), 3);
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-2")
    );
}

#[test]
fn rule_1_a_removal_that_was_not_marked_removes_nothing() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    store.marks.failing_writes.set(true);
    let error = block_on(store.remove(KEY)).unwrap_err();
    assert_eq!(error.code(), "storage_error");
    assert_eq!(store.values.raw(KEY).as_deref(), Some("sealed-1"));
}

#[test]
fn rule_1_a_removal_marks_the_value_absent() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    block_on(store.remove(KEY)).unwrap();
    assert_eq!(store.values.raw(KEY), None);
    assert_eq!(store.marks.raw(&mark_key(KEY)).as_deref(), Some("absent"));
    assert_eq!(block_on(store.get(KEY)).unwrap(), None);
    assert_eq!(waits(&store), 0);
}

#[test]
fn rule_2_an_agreeing_read_does_not_wait() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-1")
    );
    assert_eq!(waits(&store), 0);
}

#[test]
fn rule_2_an_unmarked_record_is_read_as_it_is() {
    let store = marked();
    store.values.put_raw(KEY, "written-by-an-older-latchkey");
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("written-by-an-older-latchkey")
    );
    assert_eq!(waits(&store), 0);
    assert_eq!(store.marks.raw(&mark_key(KEY)), None);
}

#[test]
fn rule_3_a_lagging_copy_is_waited_for_until_it_holds_the_last_write() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    block_on(store.set(KEY, "sealed-2".into())).unwrap();
    // This tab's copy still answers the write before for three reads.
    store.values.lag(KEY, Some("sealed-1"), 3);
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-2")
    );
    assert_eq!(*store.platform.0.borrow(), vec![MARK_POLL_MS; 3]);
}

#[test]
fn rule_3_a_lagging_copy_of_a_removed_value_is_waited_for() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    block_on(store.remove(KEY)).unwrap();
    store.values.lag(KEY, Some("sealed-1"), 2);
    assert_eq!(block_on(store.get(KEY)).unwrap(), None);
    assert_eq!(waits(&store), 2);
}

#[test]
fn rule_3_a_value_that_never_agrees_is_the_truth_after_the_bound() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    // The app (or a write whose mark failed) changed the value behind the mark.
    store.values.put_raw(KEY, "sealed-elsewhere");
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-elsewhere")
    );
    let polls = (MARK_WAIT_MS / u64::from(MARK_POLL_MS)) as usize;
    assert_eq!(waits(&store), polls);
    assert_eq!(
        store.marks.raw(&mark_key(KEY)),
        Some(mark_of(Some("sealed-elsewhere")))
    );
    // Repaired: the next read does not wait.
    block_on(store.get(KEY)).unwrap();
    assert_eq!(waits(&store), polls);
}

#[test]
fn rule_3_the_bound_is_time_not_a_count_of_polls() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    store.values.put_raw(KEY, "sealed-elsewhere");
    // A hidden tab: its first wait lasts the whole bound.
    store.platform.skip(MARK_WAIT_MS);
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-elsewhere")
    );
    assert_eq!(waits(&store), 1);
    assert_eq!(
        store.marks.raw(&mark_key(KEY)),
        Some(mark_of(Some("sealed-elsewhere")))
    );
}

#[test]
fn rule_3_a_value_read_before_the_bound_passed_is_never_the_truth() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    block_on(store.set(KEY, "sealed-2".into())).unwrap();
    store.values.lag(KEY, Some("sealed-1"), 1);
    // The mark's read outlasts the bound while the lagging copy's older
    // value is in hand.
    *store.marks.slow_read.borrow_mut() = Some((Rc::clone(&store.platform.1), MARK_WAIT_MS));
    assert_eq!(
        block_on(store.get(KEY)).unwrap().as_deref(),
        Some("sealed-2")
    );
    assert_eq!(
        store.marks.raw(&mark_key(KEY)),
        Some(mark_of(Some("sealed-2")))
    );
}

#[test]
fn rule_4_a_failing_mark_backend_fails_reads_and_writes() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    store.marks.failing_reads.set(true);
    assert_eq!(
        block_on(store.get(KEY)).unwrap_err().code(),
        "storage_error"
    );
    store.marks.failing_writes.set(true);
    assert_eq!(
        block_on(store.set(KEY, "sealed-2".into()))
            .unwrap_err()
            .code(),
        "storage_error"
    );
    assert_eq!(
        block_on(store.remove(KEY)).unwrap_err().code(),
        "storage_error"
    );
}

#[test]
fn rule_4_a_failing_value_backend_fails_reads() {
    let store = marked();
    block_on(store.set(KEY, "sealed-1".into())).unwrap();
    store.values.failing_reads.set(true);
    assert_eq!(
        block_on(store.get(KEY)).unwrap_err().code(),
        "storage_error"
    );
}
