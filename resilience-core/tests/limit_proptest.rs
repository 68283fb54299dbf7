//! Invariants of `ConcurrencyLimit` under random acquire / release / cancel /
//! timeout / limit-change sequences, checked against a simple model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::noop_waker_ref;
use proptest::prelude::*;
use resilience_core::clock::ManualClock;
use resilience_core::limit::{
    ConcurrencyLimit, ConcurrencyLimitConfig, ConcurrencyPermit, Overloaded,
};

type AcquireFut<'a> = Pin<Box<dyn Future<Output = Result<ConcurrencyPermit, Overloaded>> + 'a>>;

#[derive(Debug, Clone)]
enum Op {
    TryAcquire,
    Acquire,
    Release(usize),
    Cancel(usize),
    PollAll,
    Advance(u64),
    SetLimit(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::TryAcquire),
        4 => Just(Op::Acquire),
        4 => any::<usize>().prop_map(Op::Release),
        2 => any::<usize>().prop_map(Op::Cancel),
        3 => Just(Op::PollAll),
        1 => (1u64..400).prop_map(Op::Advance),
        1 => (1usize..6).prop_map(Op::SetLimit),
    ]
}

fn poll(fut: &mut AcquireFut<'_>) -> Poll<Result<ConcurrencyPermit, Overloaded>> {
    fut.as_mut()
        .poll(&mut Context::from_waker(noop_waker_ref()))
}

struct Waiter<'a> {
    seq: u64,
    fut: AcquireFut<'a>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn limit_invariants_hold_for_any_sequence(
        max_concurrent in 1usize..5,
        max_queued in 0usize..5,
        timeout in proptest::option::of(1u64..500),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let clock = ManualClock::new();
        let limit = ConcurrencyLimit::with_clock(
            ConcurrencyLimitConfig {
                max_concurrent,
                max_queued,
                queue_timeout: timeout.map(Duration::from_millis),
                ..ConcurrencyLimitConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        let mut permits: Vec<ConcurrencyPermit> = Vec::new();
        let mut waiters: Vec<Waiter<'_>> = Vec::new();
        let mut next_seq = 0u64;
        let mut last_granted_seq: Option<u64> = None;

        for op in ops {
            let in_flight_before = limit.in_flight();
            match op {
                Op::TryAcquire => {
                    let queued = limit.queued();
                    match limit.try_acquire() {
                        Ok(permit) => {
                            prop_assert_eq!(queued, 0, "try_acquire overtook a waiter");
                            permits.push(permit);
                        }
                        Err(err) => prop_assert!(err.retry_after > Duration::ZERO),
                    }
                }
                Op::Acquire => {
                    let queued = limit.queued();
                    let mut fut: AcquireFut<'_> = Box::pin(limit.acquire());
                    match poll(&mut fut) {
                        Poll::Ready(Ok(permit)) => {
                            prop_assert_eq!(queued, 0, "acquire overtook a waiter");
                            permits.push(permit);
                        }
                        Poll::Ready(Err(_)) => {
                            prop_assert!(queued >= max_queued, "shed with a free queue slot");
                        }
                        Poll::Pending => {
                            waiters.push(Waiter { seq: next_seq, fut });
                            next_seq += 1;
                        }
                    }
                }
                Op::Release(i) => {
                    if !permits.is_empty() {
                        let i = i % permits.len();
                        drop(permits.swap_remove(i));
                    }
                }
                Op::Cancel(i) => {
                    if !waiters.is_empty() {
                        let i = i % waiters.len();
                        drop(waiters.remove(i));
                    }
                }
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                Op::SetLimit(n) => limit.set_max_concurrent(n).unwrap(),
                Op::PollAll => {
                    let mut still = Vec::new();
                    for mut waiter in waiters.drain(..) {
                        match poll(&mut waiter.fut) {
                            Poll::Ready(Ok(permit)) => {
                                if let Some(last) = last_granted_seq {
                                    prop_assert!(waiter.seq > last, "grants out of FIFO order");
                                }
                                last_granted_seq = Some(waiter.seq);
                                permits.push(permit);
                            }
                            Poll::Ready(Err(_)) => {
                                prop_assert!(timeout.is_some(), "a waiter without timeout was shed");
                            }
                            Poll::Pending => still.push(waiter),
                        }
                    }
                    waiters = still;
                    // Work-conserving: nobody waits while capacity is free.
                    if limit.queued() > 0 {
                        prop_assert!(limit.in_flight() >= limit.max_concurrent());
                    }
                    prop_assert_eq!(permits.len(), limit.in_flight());
                }
            }
            let in_flight = limit.in_flight();
            prop_assert!(
                in_flight <= limit.max_concurrent() || in_flight <= in_flight_before,
                "in_flight grew to {} above the limit {}", in_flight, limit.max_concurrent()
            );
            prop_assert!(limit.queued() <= max_queued);
            prop_assert!(limit.queued() <= waiters.len());
            prop_assert!(permits.len() <= in_flight);
        }

        drop(waiters);
        prop_assert_eq!(limit.queued(), 0);
        prop_assert_eq!(permits.len(), limit.in_flight(), "a permit was lost");
        drop(permits);
        prop_assert_eq!(limit.in_flight(), 0);
        prop_assert_eq!(clock.sleepers(), 0);
        // The full capacity is usable again.
        let all: Vec<_> = (0..limit.max_concurrent()).map(|_| limit.try_acquire()).collect();
        prop_assert!(all.iter().all(Result::is_ok));
    }
}
