//! Specification of `ConcurrencyLimit`: fast path, bounded FIFO queue,
//! timeouts on the injected clock, cancellation, run-time limit changes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::{ArcWake, noop_waker_ref, waker};
use resilience_core::clock::ManualClock;
use resilience_core::limit::{
    ConcurrencyLimit, ConcurrencyLimitConfig, ConcurrencyPermit, MAX_CONCURRENT, Overloaded,
};

type AcquireFut<'a> = Pin<Box<dyn Future<Output = Result<ConcurrencyPermit, Overloaded>> + 'a>>;

fn config(
    max_concurrent: usize,
    max_queued: usize,
    timeout: Option<u64>,
) -> ConcurrencyLimitConfig {
    ConcurrencyLimitConfig {
        max_concurrent,
        max_queued,
        queue_timeout: timeout.map(Duration::from_millis),
        ..ConcurrencyLimitConfig::default()
    }
}

fn limit(
    max_concurrent: usize,
    max_queued: usize,
    timeout: Option<u64>,
) -> (ConcurrencyLimit, ManualClock) {
    let clock = ManualClock::new();
    let limit =
        ConcurrencyLimit::with_clock(config(max_concurrent, max_queued, timeout), clock.clone())
            .unwrap();
    (limit, clock)
}

fn poll_noop(fut: &mut AcquireFut<'_>) -> Poll<Result<ConcurrencyPermit, Overloaded>> {
    fut.as_mut()
        .poll(&mut Context::from_waker(noop_waker_ref()))
}

#[derive(Default)]
struct Flag(AtomicBool);

impl ArcWake for Flag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    fn woken(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll_with(
    fut: &mut AcquireFut<'_>,
    flag: &Arc<Flag>,
) -> Poll<Result<ConcurrencyPermit, Overloaded>> {
    let waker = waker(flag.clone());
    fut.as_mut().poll(&mut Context::from_waker(&waker))
}

fn queued_acquire(limit: &ConcurrencyLimit) -> AcquireFut<'_> {
    let mut fut: AcquireFut<'_> = Box::pin(limit.acquire());
    assert!(
        poll_noop(&mut fut).is_pending(),
        "expected the acquire to queue"
    );
    fut
}

#[test]
fn try_acquire_admits_up_to_max_concurrent_then_sheds() {
    let (limit, _clock) = limit(3, 10, None);
    let permits: Vec<_> = (0..3).map(|_| limit.try_acquire().unwrap()).collect();
    assert_eq!(limit.in_flight(), 3);
    assert!(limit.try_acquire().is_err());
    drop(permits);
    assert_eq!(limit.in_flight(), 0);
    assert!(limit.try_acquire().is_ok());
}

#[test]
fn dropping_a_permit_frees_capacity() {
    let (limit, _clock) = limit(1, 0, None);
    let permit = limit.try_acquire().unwrap();
    assert!(limit.try_acquire().is_err());
    drop(permit);
    assert_eq!(limit.in_flight(), 0);
    let _again = limit.try_acquire().unwrap();
}

#[test]
fn acquire_without_queue_sheds_at_once_when_full() {
    let (limit, _clock) = limit(1, 0, None);
    let _held = limit.try_acquire().unwrap();
    let mut fut: AcquireFut<'_> = Box::pin(limit.acquire());
    assert!(matches!(poll_noop(&mut fut), Poll::Ready(Err(_))));
    assert_eq!(limit.queued(), 0);
}

#[test]
fn queue_full_sheds_immediately() {
    let (limit, _clock) = limit(1, 2, None);
    let _held = limit.try_acquire().unwrap();
    let _w1 = queued_acquire(&limit);
    let _w2 = queued_acquire(&limit);
    assert_eq!(limit.queued(), 2);
    let mut third: AcquireFut<'_> = Box::pin(limit.acquire());
    match poll_noop(&mut third) {
        Poll::Ready(Err(Overloaded { retry_after })) => assert!(retry_after > Duration::ZERO),
        other => panic!(
            "expected an immediate shed, got {:?}",
            other.map(|r| r.is_ok())
        ),
    }
    assert_eq!(limit.queued(), 2);
}

#[test]
fn try_acquire_does_not_overtake_queued_waiters() {
    let (limit, _clock) = limit(1, 4, None);
    let held = limit.try_acquire().unwrap();
    let flag = Arc::new(Flag::default());
    let mut waiter = queued_acquire(&limit);
    assert!(poll_with(&mut waiter, &flag).is_pending());
    drop(held);
    // The capacity went to the waiter, not back to the pool.
    assert!(flag.woken());
    assert!(limit.try_acquire().is_err());
    assert_eq!(limit.in_flight(), 1);
    let Poll::Ready(Ok(permit)) = poll_noop(&mut waiter) else {
        panic!("the waiter must own the released permit");
    };
    drop(permit);
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn released_permits_wake_waiters_in_fifo_order() {
    let (limit, _clock) = limit(1, 3, None);
    let held = limit.try_acquire().unwrap();
    let flags: Vec<Arc<Flag>> = (0..3).map(|_| Arc::new(Flag::default())).collect();
    let mut waiters: Vec<AcquireFut<'_>> = flags
        .iter()
        .map(|flag| {
            let mut fut: AcquireFut<'_> = Box::pin(limit.acquire());
            assert!(poll_with(&mut fut, flag).is_pending());
            fut
        })
        .collect();
    assert_eq!(limit.queued(), 3);

    drop(held);
    let mut order = Vec::new();
    for _round in 0..3 {
        let next = (0..3)
            .find(|&i| flags[i].woken() && !order.contains(&i))
            .expect("a release wakes exactly the next waiter");
        assert_eq!(flags.iter().filter(|f| f.woken()).count(), order.len() + 1);
        let Poll::Ready(Ok(permit)) = poll_with(&mut waiters[next], &flags[next]) else {
            panic!("woken waiter must be ready");
        };
        order.push(next);
        drop(permit);
    }
    assert_eq!(order, [0, 1, 2]);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.queued(), 0);
}

#[test]
fn dropping_a_waiting_future_frees_its_queue_slot() {
    let (limit, _clock) = limit(1, 1, None);
    let held = limit.try_acquire().unwrap();
    let waiter = queued_acquire(&limit);
    assert_eq!(limit.queued(), 1);
    drop(waiter);
    assert_eq!(limit.queued(), 0);
    // The slot is usable again, and a release no longer goes to the dropped waiter.
    let second = queued_acquire(&limit);
    drop(second);
    drop(held);
    assert_eq!(limit.in_flight(), 0);
    let _free = limit.try_acquire().unwrap();
}

#[test]
fn dropping_a_waiter_in_the_middle_keeps_fifo_order_for_the_rest() {
    let (limit, _clock) = limit(1, 3, None);
    let held = limit.try_acquire().unwrap();
    let flags: Vec<Arc<Flag>> = (0..3).map(|_| Arc::new(Flag::default())).collect();
    let mut waiters: Vec<Option<AcquireFut<'_>>> = flags
        .iter()
        .map(|flag| {
            let mut fut: AcquireFut<'_> = Box::pin(limit.acquire());
            assert!(poll_with(&mut fut, flag).is_pending());
            Some(fut)
        })
        .collect();
    waiters[1] = None;
    assert_eq!(limit.queued(), 2);
    drop(held);
    assert!(flags[0].woken() && !flags[2].woken());
    let Poll::Ready(Ok(first)) = poll_noop(waiters[0].as_mut().unwrap()) else {
        panic!("first waiter must be granted");
    };
    drop(first);
    assert!(flags[2].woken());
    let Poll::Ready(Ok(_third)) = poll_noop(waiters[2].as_mut().unwrap()) else {
        panic!("third waiter must be granted");
    };
    assert!(!flags[1].woken());
}

#[test]
fn a_permit_granted_to_a_dropped_waiter_passes_to_the_next() {
    let (limit, _clock) = limit(1, 2, None);
    let held = limit.try_acquire().unwrap();
    let first = queued_acquire(&limit);
    let flag = Arc::new(Flag::default());
    let mut second = queued_acquire(&limit);
    assert!(poll_with(&mut second, &flag).is_pending());
    // The release hands the permit to `first`, which is dropped before it
    // ever polls again: the permit must move on to `second`.
    drop(held);
    assert!(!flag.woken());
    drop(first);
    assert!(flag.woken());
    assert_eq!(limit.in_flight(), 1);
    let Poll::Ready(Ok(permit)) = poll_noop(&mut second) else {
        panic!("second waiter must inherit the permit");
    };
    drop(permit);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.queued(), 0);
}

#[test]
fn a_permit_granted_to_the_last_dropped_waiter_returns_to_the_pool() {
    let (limit, _clock) = limit(1, 1, None);
    let held = limit.try_acquire().unwrap();
    let waiter = queued_acquire(&limit);
    drop(held);
    assert_eq!(limit.in_flight(), 1, "handed to the waiter");
    drop(waiter);
    assert_eq!(limit.in_flight(), 0);
    let _free = limit.try_acquire().unwrap();
}

#[test]
fn queue_timeout_sheds_after_exactly_that_clock_time() {
    let (limit, clock) = limit(1, 1, Some(500));
    let _held = limit.try_acquire().unwrap();
    let flag = Arc::new(Flag::default());
    let mut waiter = queued_acquire(&limit);
    assert!(poll_with(&mut waiter, &flag).is_pending());
    clock.advance(Duration::from_millis(500) - Duration::from_nanos(1));
    assert!(!flag.woken());
    assert!(poll_noop(&mut waiter).is_pending());
    clock.advance(Duration::from_nanos(1));
    assert!(flag.woken() || clock.sleepers() == 0);
    assert!(matches!(
        poll_noop(&mut waiter),
        Poll::Ready(Err(Overloaded { .. }))
    ));
    assert_eq!(limit.queued(), 0);
    assert_eq!(clock.sleepers(), 0);
}

#[test]
fn a_grant_wins_over_a_timeout_that_fires_at_the_same_time() {
    let (limit, clock) = limit(1, 1, Some(100));
    let held = limit.try_acquire().unwrap();
    let mut waiter = queued_acquire(&limit);
    drop(held);
    clock.advance(Duration::from_millis(100));
    assert!(matches!(poll_noop(&mut waiter), Poll::Ready(Ok(_))));
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test]
async fn queued_acquire_completes_when_a_task_releases() {
    let (limit, _clock) = limit(1, 1, None);
    let held = limit.try_acquire().unwrap();
    let waiter = {
        let limit = limit.clone();
        tokio::spawn(async move { limit.acquire().await.map(drop) })
    };
    while limit.queued() == 0 {
        tokio::task::yield_now().await;
    }
    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn raising_the_limit_admits_queued_waiters() {
    let (limit, _clock) = limit(1, 3, None);
    let _held = limit.try_acquire().unwrap();
    let mut waiters: Vec<AcquireFut<'_>> = (0..3).map(|_| queued_acquire(&limit)).collect();
    limit.set_max_concurrent(3).unwrap();
    assert_eq!(limit.max_concurrent(), 3);
    assert_eq!(limit.in_flight(), 3);
    assert_eq!(limit.queued(), 1);
    let Poll::Ready(Ok(_first)) = poll_noop(&mut waiters[0]) else {
        panic!("first waiter must be admitted");
    };
    let Poll::Ready(Ok(_second)) = poll_noop(&mut waiters[1]) else {
        panic!("second waiter must be admitted");
    };
    assert!(poll_noop(&mut waiters[2]).is_pending());
}

#[test]
fn lowering_the_limit_drains_without_revoking_permits() {
    let (limit, _clock) = limit(3, 2, None);
    let mut held: Vec<_> = (0..3).map(|_| limit.try_acquire().unwrap()).collect();
    let mut waiter = queued_acquire(&limit);
    limit.set_max_concurrent(1).unwrap();
    assert_eq!(limit.in_flight(), 3);
    held.pop();
    held.pop();
    // Two releases brought in_flight down to the new limit: nobody admitted yet.
    assert_eq!(limit.in_flight(), 1);
    assert!(poll_noop(&mut waiter).is_pending());
    held.pop();
    assert!(matches!(poll_noop(&mut waiter), Poll::Ready(Ok(_))));
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn invalid_run_time_limits_are_errors_and_change_nothing() {
    let (limit, _clock) = limit(2, 0, None);
    assert_eq!(
        limit.set_max_concurrent(0).unwrap_err().field(),
        "max_concurrent"
    );
    assert!(limit.set_max_concurrent(MAX_CONCURRENT + 1).is_err());
    assert_eq!(limit.max_concurrent(), 2);
}

#[test]
fn invalid_configs_are_errors() {
    for (bad, field) in [
        (config(0, 0, None), "max_concurrent"),
        (config(MAX_CONCURRENT + 1, 0, None), "max_concurrent"),
        (config(1, 1, Some(0)), "queue_timeout"),
    ] {
        assert_eq!(ConcurrencyLimit::new(bad).unwrap_err().field(), field);
    }
}

#[test]
fn retry_after_starts_at_the_minimum_then_follows_hold_times() {
    let clock = ManualClock::new();
    let limit = ConcurrencyLimit::with_clock(
        ConcurrencyLimitConfig {
            max_concurrent: 2,
            max_queued: 0,
            min_retry_after: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(60),
            ..ConcurrencyLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let held: Vec<_> = (0..2).map(|_| limit.try_acquire().unwrap()).collect();
    assert_eq!(
        limit.try_acquire().unwrap_err().retry_after,
        Duration::from_millis(5)
    );
    drop(held);
    // Hold every permit for 800 ms; one in 16 per thread is sampled into a
    // moving average (weight 1/8), which approaches 800 ms.
    for _ in 0..256 {
        let permit = limit.try_acquire().unwrap();
        clock.advance(Duration::from_millis(800));
        drop(permit);
    }
    let _held: Vec<_> = (0..2).map(|_| limit.try_acquire().unwrap()).collect();
    // Position 1 with 2 slots: about half an average hold time.
    let retry_after = limit.try_acquire().unwrap_err().retry_after;
    assert!(
        (Duration::from_millis(300)..=Duration::from_millis(400)).contains(&retry_after),
        "{retry_after:?}"
    );
}

#[test]
fn retry_after_is_capped_at_the_maximum() {
    let clock = ManualClock::new();
    let limit = ConcurrencyLimit::with_clock(
        ConcurrencyLimitConfig {
            max_concurrent: 1,
            max_queued: 0,
            max_retry_after: Duration::from_secs(1),
            ..ConcurrencyLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    for _ in 0..32 {
        let permit = limit.try_acquire().unwrap();
        clock.advance(Duration::from_secs(3600));
        drop(permit);
    }
    let _held = limit.try_acquire().unwrap();
    assert_eq!(
        limit.try_acquire().unwrap_err().retry_after,
        Duration::from_secs(1)
    );
}

#[test]
fn permits_move_into_spawned_threads() {
    let (limit, _clock) = limit(1, 0, None);
    let permit = limit.try_acquire().unwrap();
    std::thread::spawn(move || drop(permit)).join().unwrap();
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn bounds() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send_static<T: Send + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync_clone::<ConcurrencyLimit>();
    send_sync_clone::<ConcurrencyLimitConfig>();
    send_sync_clone::<Overloaded>();
    send_static::<ConcurrencyPermit>();
    let (limit, _clock) = limit(1, 0, None);
    send(&limit.acquire());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_more_than_max_concurrent_permits_under_stress() {
    const MAX: usize = 3;
    let limit = ConcurrencyLimit::new(ConcurrencyLimitConfig {
        max_concurrent: MAX,
        max_queued: 1_000,
        queue_timeout: None,
        ..ConcurrencyLimitConfig::default()
    })
    .unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (limit, inside, peak, completed) = (
                limit.clone(),
                inside.clone(),
                peak.clone(),
                completed.clone(),
            );
            tokio::spawn(async move {
                for round in 0..300 {
                    let permit = if (task + round) % 3 == 0 {
                        match limit.try_acquire() {
                            Ok(permit) => permit,
                            Err(_) => continue,
                        }
                    } else {
                        limit.acquire().await.unwrap()
                    };
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    assert!(now <= MAX, "{now} permits outstanding");
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= MAX);
    assert!(completed.load(Ordering::SeqCst) > 16 * 200);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.queued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_waiters_never_leak_permits_under_stress() {
    let clock = ManualClock::new();
    let limit = ConcurrencyLimit::with_clock(config(2, 8, None), clock).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let limit = limit.clone();
            tokio::spawn(async move {
                for round in 0..300u32 {
                    let acquire = limit.acquire();
                    tokio::pin!(acquire);
                    if round % 2 == 0 {
                        // Cancel after one poll, possibly right as a permit is handed over.
                        let _ = futures::poll!(acquire.as_mut());
                    } else if let Ok(permit) = acquire.await {
                        tokio::task::yield_now().await;
                        drop(permit);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.queued(), 0);
    let _all: Vec<_> = (0..2).map(|_| limit.try_acquire().unwrap()).collect();
}
