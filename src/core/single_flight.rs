//! One shared in-flight operation per tab: the first caller runs it, every
//! caller that arrives while it runs waits for the same outcome.
//!
//! This is what makes 25 concurrent calls in a tab cost one refresh. wasm in
//! a tab is single-threaded, so plain `RefCell`s and wakers are enough.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// The outcome slot of one flight.
struct Flight<T> {
    /// `Some` once the leader finished; `None` while running.
    outcome: RefCell<Option<Option<T>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl<T> Flight<T> {
    fn finish(&self, outcome: Option<T>) {
        *self.outcome.borrow_mut() = Some(outcome);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

/// Finishes the flight as abandoned if the leader's future is dropped before
/// it completed, so waiters are never left hanging.
struct LeaderGuard<'a, T> {
    owner: &'a SingleFlight<T>,
    flight: Rc<Flight<T>>,
    done: bool,
}

impl<T> Drop for LeaderGuard<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.owner.current.borrow_mut().take();
            self.flight.finish(None);
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

    /// Runs `start()` unless an operation is already in flight, in which case
    /// it waits for that one's outcome instead. Returns `None` only if the
    /// leader was dropped (cancelled) before finishing.
    pub async fn run<F, Fut>(&self, start: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let joined = self.current.borrow().clone();
        if let Some(flight) = joined {
            return poll_fn(|cx| match &*flight.outcome.borrow() {
                Some(outcome) => Poll::Ready(outcome.clone()),
                None => {
                    flight.waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
        let flight = Rc::new(Flight {
            outcome: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        });
        *self.current.borrow_mut() = Some(Rc::clone(&flight));
        let mut guard = LeaderGuard {
            owner: self,
            flight,
            done: false,
        };
        let outcome = start().await;
        guard.done = true;
        // Cleared before waking: a caller arriving after this starts afresh.
        self.current.borrow_mut().take();
        guard.flight.finish(Some(outcome.clone()));
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{block_on, join_all, yield_now};
    use std::cell::Cell;

    #[test]
    fn concurrent_callers_share_one_run() {
        let flight = SingleFlight::<u32>::default();
        let runs = Cell::new(0);
        let call = || {
            flight.run(|| async {
                runs.set(runs.get() + 1);
                yield_now().await;
                7
            })
        };
        let outcomes = join_all(vec![Box::pin(call()), Box::pin(call()), Box::pin(call())]);
        assert_eq!(outcomes, vec![Some(7), Some(7), Some(7)]);
        assert_eq!(runs.get(), 1);
        assert!(!flight.in_flight());
    }

    #[test]
    fn a_caller_after_the_flight_landed_starts_a_new_one() {
        let flight = SingleFlight::<u32>::default();
        let runs = Cell::new(0);
        for expected in 1..=2 {
            let outcome = block_on(flight.run(|| async {
                runs.set(runs.get() + 1);
                runs.get()
            }));
            assert_eq!(outcome, Some(expected));
        }
    }

    #[test]
    fn waiters_of_a_dropped_leader_get_none_instead_of_hanging() {
        use std::pin::pin;
        use std::task::{Context, Waker};
        let flight = SingleFlight::<u32>::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut leader = Box::pin(flight.run(|| async {
            std::future::pending::<()>().await;
            1
        }));
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let mut waiter = pin!(flight.run(|| async { 2 }));
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        drop(leader);
        assert_eq!(waiter.as_mut().poll(&mut cx), Poll::Ready(None));
        assert!(!flight.in_flight());
    }
}
