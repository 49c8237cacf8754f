//! The one driver loop every machine runs under.
//!
//! A machine does no I/O: fed what happened, it answers with the next thing
//! to do ([`Next::Do`]) or its end ([`Next::Done`]). A [`Perform`] does
//! each thing asked over the ports and hands back what happened; it decides
//! nothing. [`drive`] joins the two and is the only loop: every machine of
//! the core, whoever calls it, goes through it.

use std::future::Future;

/// What a machine answers: a need to perform, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<N, D> {
    /// Perform this; what happened is the next input.
    Do(N),
    /// The machine is done, with this.
    Done(D),
}

/// A protocol machine: its transitions, and nothing else.
pub trait Machine {
    /// What it asks its driver to do.
    type Need;
    /// What it is fed: what happened when a need was performed.
    type Fed;
    /// What it ends with.
    type Done;
    /// What it reads besides what happened, handed over at every
    /// transition by the performer: the time, or the tab's session. `()`
    /// when nothing.
    type With<'a>;

    /// The step after `fed`. An input the machine's stage does not expect
    /// (a performer bug) ends it, never a hang or a loop.
    fn on(&mut self, fed: Self::Fed, with: Self::With<'_>) -> Next<Self::Need, Self::Done>;
}

/// Does what a machine asks, over the ports, and says what happened.
pub trait Perform<M: Machine> {
    /// Performs `need`; `machine` is there to read what it holds for the
    /// need (a signing input, a verifier), never to decide.
    fn perform(&mut self, need: M::Need, machine: &M) -> impl Future<Output = M::Fed>;

    /// What the machine reads at its next transition.
    fn with(&self) -> M::With<'_>;
}

/// Runs `machine` from `first` to its end: performs each need and feeds
/// what happened back.
pub async fn drive<M: Machine, P: Perform<M>>(
    machine: &mut M,
    first: Next<M::Need, M::Done>,
    performer: &mut P,
) -> M::Done {
    let mut next = first;
    loop {
        match next {
            Next::Do(need) => {
                // Boxed: the loop's own future then holds a pointer, not
                // the largest of the performer's futures, and each
                // machine's loop compiles smaller (−1.5 kB brotli for the
                // wasm, one allocation per step).
                let fed = Box::pin(performer.perform(need, machine)).await;
                next = machine.on(fed, performer.with());
            }
            Next::Done(done) => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::block_on;

    /// Counts to a limit, asking its performer for each number.
    struct Counter {
        limit: u32,
        seen: Vec<u32>,
    }

    impl Machine for Counter {
        type Need = u32;
        type Fed = u32;
        type Done = Vec<u32>;
        type With<'a> = u32;

        fn on(&mut self, fed: u32, step: u32) -> Next<u32, Vec<u32>> {
            self.seen.push(fed * step);
            match fed < self.limit {
                true => Next::Do(fed + 1),
                false => Next::Done(std::mem::take(&mut self.seen)),
            }
        }
    }

    /// Echoes each need, remembering what it was asked and what the
    /// machine had seen by then.
    struct Echo {
        asked: Vec<(u32, usize)>,
    }

    impl Perform<Counter> for Echo {
        async fn perform(&mut self, need: u32, machine: &Counter) -> u32 {
            self.asked.push((need, machine.seen.len()));
            need
        }

        fn with(&self) -> u32 {
            10
        }
    }

    #[test]
    fn each_need_is_performed_once_in_order_and_fed_back_with_what_the_performer_hands_over() {
        let mut machine = Counter {
            limit: 3,
            seen: vec![],
        };
        let mut echo = Echo { asked: vec![] };
        let done = block_on(drive(&mut machine, Next::Do(1), &mut echo));
        assert_eq!(done, vec![10, 20, 30]);
        assert_eq!(echo.asked, vec![(1, 0), (2, 1), (3, 2)]);
    }

    #[test]
    fn a_machine_done_at_once_performs_nothing() {
        let mut machine = Counter {
            limit: 0,
            seen: vec![],
        };
        let mut echo = Echo { asked: vec![] };
        let done = block_on(drive(&mut machine, Next::Done(vec![7]), &mut echo));
        assert_eq!(done, vec![7]);
        assert!(echo.asked.is_empty());
    }
}
