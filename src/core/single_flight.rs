//! One shared in-flight operation per tab: it is begun once, runs on a task
//! of its own, and every caller that arrives while it runs waits for the
//! same outcome.
//!
//! This is what makes 25 concurrent calls in a tab cost one refresh. The
//! operation is not run by any one caller, so a caller that stops waiting
//! never cancels it: a refresh request the server may already have answered
//! is always seen through. The operation can release its waiters early
//! ([`SingleFlight::notice`], e.g. "this is taking too long") and keep
//! going. wasm in a tab is single-threaded, so plain `RefCell`s and wakers
//! are enough.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// The outcome slot of one flight.
struct Flight<T> {
    /// `Some` once the flight noticed or finished; `None` while running.
    /// The inner `None` means the flight was abandoned.
    outcome: RefCell<Option<Option<T>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl<T> Flight<T> {
    fn settle(&self, outcome: Option<T>) {
        *self.outcome.borrow_mut() = Some(outcome);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

/// At most one operation of this kind in flight at a time.
pub struct SingleFlight<T> {
    current: RefCell<Option<Rc<Flight<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            current: RefCell::new(None),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Whether an operation is running now.
    pub fn in_flight(&self) -> bool {
        self.current.borrow().is_some()
    }

    /// Marks a new operation as running, unless one already is. `true`
    /// means the caller must now start it (and [`finish`](Self::finish) it).
    pub fn begin(&self) -> bool {
        if self.in_flight() {
            return false;
        }
        *self.current.borrow_mut() = Some(Rc::new(Flight {
            outcome: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        }));
        true
    }

    /// The running operation's outcome (or its notice, if it gave one);
    /// `None` when nothing is running or it was abandoned.
    pub async fn wait(&self) -> Option<T> {
        let flight = self.current.borrow().clone()?;
        poll_fn(|cx| match &*flight.outcome.borrow() {
            Some(outcome) => Poll::Ready(outcome.clone()),
            None => {
                flight.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Releases every waiter with `outcome` while the operation goes on;
    /// callers arriving later get it too, until the operation finishes.
    pub fn notice(&self, outcome: T) {
        if let Some(flight) = &*self.current.borrow() {
            flight.settle(Some(outcome));
        }
    }

    /// Ends the running operation with `outcome` (`None`: abandoned). A
    /// caller arriving after this begins afresh.
    pub fn finish(&self, outcome: Option<T>) {
        // Cleared before waking: a woken caller that calls again starts anew.
        if let Some(flight) = self.current.borrow_mut().take() {
            flight.settle(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{block_on, join_all, yield_now};
    use std::future::Future;
    use std::pin::Pin;

    fn boxed<'a, T>(f: impl Future<Output = T> + 'a) -> Pin<Box<dyn Future<Output = T> + 'a>> {
        Box::pin(f)
    }

    #[test]
    fn concurrent_callers_share_one_run() {
        let flight = SingleFlight::<u32>::default();
        let begun = (0..3).filter(|_| flight.begin()).count();
        assert_eq!(begun, 1, "only the first caller starts it");
        let work = async {
            yield_now().await;
            flight.finish(Some(7));
            None
        };
        let outcomes = join_all(vec![
            boxed(flight.wait()),
            boxed(flight.wait()),
            boxed(work),
            boxed(flight.wait()),
        ]);
        assert_eq!(outcomes, vec![Some(7), Some(7), None, Some(7)]);
        assert!(!flight.in_flight());
    }

    #[test]
    fn a_caller_after_the_flight_landed_starts_a_new_one() {
        let flight = SingleFlight::<u32>::default();
        assert!(flight.begin());
        flight.finish(Some(1));
        assert_eq!(block_on(flight.wait()), None, "nothing running");
        assert!(flight.begin());
    }

    #[test]
    fn a_notice_releases_waiters_and_the_operation_goes_on() {
        let flight = SingleFlight::<u32>::default();
        assert!(flight.begin());
        flight.notice(9);
        assert_eq!(
            block_on(flight.wait()),
            Some(9),
            "early waiters get the notice"
        );
        assert!(flight.in_flight(), "still running");
        assert!(!flight.begin(), "no second run while the first goes on");
        flight.finish(Some(1));
        assert!(!flight.in_flight());
    }

    #[test]
    fn waiters_of_an_abandoned_flight_get_none_instead_of_hanging() {
        let flight = SingleFlight::<u32>::default();
        assert!(flight.begin());
        let abandon = async {
            yield_now().await;
            flight.finish(None);
            None
        };
        assert_eq!(
            join_all(vec![boxed(flight.wait()), boxed(abandon)]),
            vec![None, None]
        );
    }
}
