//! Bounding a future's run time without an executor-specific timer: race it
//! against the platform's [`Timer`](crate::platform::Timer).

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{block_on, yield_now};

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
