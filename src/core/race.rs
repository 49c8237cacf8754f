//! Running futures side by side without an executor of our own: bounding a
//! future's run time by racing it against the platform's
//! [`Timer`](crate::core::ports::Timer), and waiting for two independent ones.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

/// Runs `work` until it finishes or `deadline` does, whichever is first.
/// `None` means the deadline won; `work` is dropped unfinished.
pub async fn within<T>(
    work: impl Future<Output = T>,
    deadline: impl Future<Output = ()>,
) -> Option<T> {
    let mut work = pin!(work);
    let mut deadline = pin!(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Runs `a` and `b` concurrently and returns both results once both have
/// finished (independent waits, such as a network request and a storage
/// read, overlap instead of adding up).
pub async fn both<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> (A, B) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut a_out = None;
    let mut b_out = None;
    poll_fn(|cx| {
        if a_out.is_none() {
            if let Poll::Ready(value) = a.as_mut().poll(cx) {
                a_out = Some(value);
            }
        }
        if b_out.is_none() {
            if let Poll::Ready(value) = b.as_mut().poll(cx) {
                b_out = Some(value);
            }
        }
        if a_out.is_some() && b_out.is_some() {
            return Poll::Ready((a_out.take().unwrap(), b_out.take().unwrap()));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{block_on, yield_now};

    #[test]
    fn both_waits_for_the_slower_and_returns_each_result() {
        let slow = async {
            yield_now().await;
            yield_now().await;
            "slow"
        };
        assert_eq!(block_on(both(slow, async { 2 })), ("slow", 2));
        assert_eq!(block_on(both(async { 1 }, yield_now())), (1, ()));
    }

    #[test]
    fn both_polls_the_two_side_by_side() {
        // Each future waits for the other to have started: run one after
        // the other, this would never finish.
        let started = std::cell::Cell::new(0);
        let step = || async {
            started.set(started.get() + 1);
            while started.get() < 2 {
                yield_now().await;
            }
        };
        block_on(both(step(), step()));
        assert_eq!(started.get(), 2);
    }

    #[test]
    fn work_that_finishes_first_wins() {
        let out = block_on(within(async { 5 }, std::future::pending()));
        assert_eq!(out, Some(5));
    }

    #[test]
    fn a_deadline_that_passes_first_wins() {
        let out = block_on(within(std::future::pending::<u8>(), yield_now()));
        assert_eq!(out, None);
    }
}
