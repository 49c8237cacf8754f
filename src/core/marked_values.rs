//! A key-value backend whose reads may lag behind other tabs' writes,
//! made to read what the last writer wrote.
//!
//! Chromium keeps a copy of an origin's localStorage in each tab's process
//! and applies other tabs' writes to it some time later, in no order with
//! the Web Lock: a tab granted the refresh lock can read the tokens record
//! as it was before the previous holder's write, and present the refresh
//! token that holder already spent. The server sees reuse and revokes the
//! session. (Measured on this project's headless Chromium: four tabs
//! incrementing a localStorage counter under one Web Lock lost 230 of 1,200
//! increments; the same with the mark below lost none.) IndexedDB does not
//! lag: a transaction that starts after another committed sees its writes.
//!
//! So every write also records a mark of the value ([`mark_of`], a digest
//! of the stored text, which is sealed under a fresh IV on every write) in
//! a backend that does not lag, and a read waits, bounded, until the value
//! it reads agrees with the mark. Rules, tested natively:
//!
//! 1. A write marks the value being written (`writing`, which no value
//!    agrees with), puts it, then marks it with its digest; a removal marks
//!    the value absent, then removes it (a deleted mark would let a lagging
//!    copy's old value through). So the previous value's mark is gone
//!    before the value changes: a tab closed in the middle of a write
//!    (after the server rotated, before the mark) leaves a mark that no
//!    copy agrees with, never the previous value's, which a lagging copy
//!    would agree with and present a spent refresh token. A failed write
//!    leaves `writing` too: the next read waits out its bound, then repairs.
//! 2. A read whose value agrees with the mark, or that finds no mark (a
//!    record an older latchkey wrote), returns the value.
//! 3. A read whose value disagrees waits [`MARK_POLL_MS`] and reads again,
//!    until [`MARK_WAIT_MS`] have passed by the clock (not a count of
//!    polls: a hidden tab's timers fire once a second at most; in the
//!    browser `performance.now()`, which the system clock's steps do not
//!    move). A value
//!    read after that that still disagrees is the truth (never one read
//!    before a wait that outlasted the bound): a write whose mark failed to
//!    follow, two writers interleaved (a sign-out clears the store at once,
//!    outside the lock, and again under it), or the app edited localStorage.
//!    The mark is set to agree with the value, and the value is returned.
//! 4. A backend that fails fails the operation (`storage_error`), as any
//!    backend's failure does.

use crate::core::platform::{Clock, Timer};
use crate::core::record_store::KeyValue;
use crate::core::Error;

/// How long a read waits between two reads of a value that disagrees with
/// its mark.
pub const MARK_POLL_MS: u32 = 5;

/// How long a read reads again before it takes the value as the truth. A
/// lagging copy catches up within a few milliseconds; this bound is for a
/// mark that will never agree.
pub const MARK_WAIT_MS: u64 = 1_000;

/// The mark of a removed value.
const ABSENT: &str = "absent";

/// The mark while a value is being written: no value agrees with it.
const WRITING: &str = "writing";

/// `values` (may lag) kept honest by `marks` (does not lag), waiting on
/// `platform`'s timer and clock.
pub struct Marked<V, M, T> {
    /// Where the values live (localStorage).
    pub values: V,
    /// Where each value's mark lives (IndexedDB).
    pub marks: M,
    /// Waits between two reads, and says how long it has waited.
    pub platform: T,
}

/// The key of `key`'s mark.
pub fn mark_key(key: &str) -> String {
    format!("{key}:mark")
}

/// The mark of a stored value: its 64-bit FNV-1a digest in hex, or
/// `absent`. Not a secret: the value is ciphertext, and the mark only tells
/// one write from the next.
pub fn mark_of(value: Option<&str>) -> String {
    let Some(value) = value else {
        return ABSENT.to_owned();
    };
    let digest = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{digest:016x}")
}

impl<V: KeyValue, M: KeyValue, T: Timer + Clock> KeyValue for Marked<V, M, T> {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let mark_key = mark_key(key);
        let deadline = self.platform.now_ms().saturating_add(MARK_WAIT_MS);
        loop {
            // Asked before the reads: a value taken as the truth was read
            // after the bound, never before a wait that outlasted it.
            let past = self.platform.now_ms() >= deadline;
            let value = self.values.get(key).await?;
            let Some(mark) = self.marks.get(&mark_key).await? else {
                return Ok(value);
            };
            let agreed = mark_of(value.as_deref());
            if mark == agreed {
                return Ok(value);
            }
            if past {
                self.marks.set(&mark_key, agreed).await?;
                return Ok(value);
            }
            self.platform.sleep(MARK_POLL_MS).await;
        }
    }

    async fn set(&self, key: &str, value: String) -> Result<(), Error> {
        let mark_key = mark_key(key);
        let mark = mark_of(Some(&value));
        self.marks.set(&mark_key, WRITING.to_owned()).await?;
        self.values.set(key, value).await?;
        self.marks.set(&mark_key, mark).await
    }

    async fn remove(&self, key: &str) -> Result<(), Error> {
        self.marks.set(&mark_key(key), mark_of(None)).await?;
        self.values.remove(key).await
    }
}

#[cfg(test)]
#[path = "marked_values_tests.rs"]
mod tests;
