//! Model checks of `ConcurrencyLimit`'s lock-free fast path and its handoff
//! to queued waiters, under every interleaving loom explores.
//!
//! Run: `RUSTFLAGS="--cfg breakwater_loom" cargo test -p resilience-core --release
//! --target-dir target/loom --test loom_limit`
#![cfg(breakwater_loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};

fn limit(max_concurrent: usize, max_queued: usize) -> ConcurrencyLimit {
    ConcurrencyLimit::new(ConcurrencyLimitConfig {
        max_concurrent,
        max_queued,
        queue_timeout: None,
        ..ConcurrencyLimitConfig::default()
    })
    .unwrap()
}

#[test]
fn fast_path_never_admits_more_than_the_limit() {
    loom::model(|| {
        let limit = limit(1, 0);
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (limit, inside) = (limit.clone(), inside.clone());
                thread::spawn(move || {
                    if let Ok(permit) = limit.try_acquire() {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(limit.in_flight(), 0);
        assert!(limit.try_acquire().is_ok());
    });
}

#[test]
fn a_release_racing_an_enqueue_is_never_lost() {
    loom::model(|| {
        let limit = limit(1, 1);
        let held = limit.try_acquire().unwrap();
        let releaser = thread::spawn(move || drop(held));
        // Either the permit is free already (fast path) or the waiter
        // queues and the release hands the permit over.
        let mut acquire = pin!(limit.acquire());
        let permit = loop {
            match acquire
                .as_mut()
                .poll(&mut Context::from_waker(noop_waker_ref()))
            {
                Poll::Ready(result) => break result.unwrap(),
                Poll::Pending => thread::yield_now(),
            }
        };
        releaser.join().unwrap();
        assert_eq!(limit.in_flight(), 1);
        drop(permit);
        assert_eq!(limit.in_flight(), 0);
        assert_eq!(limit.queued(), 0);
    });
}

#[test]
fn cancelling_a_waiter_while_it_is_granted_passes_the_permit_on() {
    loom::model(|| {
        let limit = limit(1, 1);
        let held = limit.try_acquire().unwrap();
        let releaser = thread::spawn(move || drop(held));
        {
            let mut acquire = pin!(limit.acquire());
            let polled = acquire
                .as_mut()
                .poll(&mut Context::from_waker(noop_waker_ref()));
            if let Poll::Ready(result) = polled {
                drop(result.unwrap());
            }
            // Dropped here: queued, granted, or done.
        }
        releaser.join().unwrap();
        assert_eq!(limit.in_flight(), 0);
        assert_eq!(limit.queued(), 0);
        assert!(limit.try_acquire().is_ok());
    });
}
