//! Many threads hammering one shared budget never over-grant.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers outside #[test] fns

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;

const THREADS: usize = 4;

/// Phases of concurrent traffic one second apart: at the end of every phase
/// the grants of the last TTL (10 phases) respect the bound.
#[test]
fn concurrent_phases_respect_the_window_bound() {
    let clock = ManualClock::new();
    let config = RetryBudgetConfig {
        ttl: Duration::from_secs(10),
        min_retries_per_sec: 1,
        retry_ratio: 0.3,
    };
    let budget = Arc::new(RetryBudget::with_clock(config.clone(), clock.clone()).unwrap());
    let phases = 30;
    let mut deposits_per_phase = Vec::new();
    let mut grants_per_phase = Vec::new();
    for phase in 0..phases {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let budget = Arc::clone(&budget);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    let (mut deposits, mut grants) = (0u64, 0u64);
                    // Vary the mix: some phases are outages, some are quiet.
                    let per_thread = 2_000 + 500 * ((phase + t) % 3) as u64;
                    for i in 0..per_thread {
                        if phase % 4 != 3 || i % 10 == 0 {
                            budget.deposit();
                            deposits += 1;
                        }
                        if budget.try_withdraw() {
                            grants += 1;
                        }
                    }
                    (deposits, grants)
                })
            })
            .collect();
        let (d, g) = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |(d, g), (dd, gg)| (d + dd, g + gg));
        deposits_per_phase.push(d);
        grants_per_phase.push(g);
        let from = (phase + 1).saturating_sub(10);
        let window_deposits: u64 = deposits_per_phase[from..].iter().sum();
        let window_grants: u64 = grants_per_phase[from..].iter().sum();
        let bound = config.retry_ratio * window_deposits as f64 + config.reserve() + 1.0;
        assert!(
            window_grants as f64 <= bound,
            "phase {phase}: {window_grants} grants > {bound}"
        );
        clock.advance(Duration::from_secs(1));
    }
    let stats = budget.stats();
    assert_eq!(stats.deposits, deposits_per_phase.iter().sum::<u64>());
    assert_eq!(stats.granted, grants_per_phase.iter().sum::<u64>());
    // Sanity: the budget did grant retries in bulk, so the bound was tested.
    assert!(stats.granted > 10_000, "{stats:?}");
}

/// Time moves while threads hammer: slot rotations race with deposits and
/// withdrawals. Over the run, grants stay within the ratio of deposits plus
/// one floor per TTL started.
#[test]
fn rotations_racing_with_traffic_never_over_grant() {
    let clock = ManualClock::new();
    let config = RetryBudgetConfig {
        ttl: Duration::from_secs(1),
        min_retries_per_sec: 3,
        retry_ratio: 0.25,
    };
    let budget = Arc::new(RetryBudget::with_clock(config.clone(), clock.clone()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let deposits = Arc::new(AtomicU64::new(0));
    let grants = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (budget, stop) = (Arc::clone(&budget), Arc::clone(&stop));
            let (deposits, grants) = (Arc::clone(&deposits), Arc::clone(&grants));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    budget.deposit();
                    deposits.fetch_add(1, Ordering::Relaxed);
                    if budget.try_withdraw() {
                        grants.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // 10 s of clock time in 5 ms steps (a 1 s ttl has ~2 ms slots, so
    // every step rotates and expires while the workers run).
    for step in 0..2_000u64 {
        clock.advance(Duration::from_millis(5));
        // Let the workers make progress in every step.
        while deposits.load(Ordering::Relaxed) < step * 20 {
            thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let (d, g) = (
        deposits.load(Ordering::Relaxed),
        grants.load(Ordering::Relaxed),
    );
    let bound = config.retry_ratio * d as f64 + config.reserve() * 11.0 + 1.0;
    assert!(g as f64 <= bound, "{g} grants > {bound} for {d} deposits");
    let stats = budget.stats();
    assert_eq!((stats.deposits, stats.granted), (d, g));
}

/// Racing withdrawals on the very last tokens: exactly the balance is
/// granted, never more.
#[test]
fn racing_withdrawals_split_the_last_tokens_exactly() {
    for _ in 0..200 {
        let clock = ManualClock::new();
        let config = RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_sec: 0,
            retry_ratio: 1.0,
        };
        let budget = Arc::new(RetryBudget::with_clock(config, clock).unwrap());
        for _ in 0..7 {
            budget.deposit();
        }
        let barrier = Arc::new(Barrier::new(THREADS));
        let granted: u64 = (0..THREADS)
            .map(|_| {
                let (budget, barrier) = (Arc::clone(&budget), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    (0..5)
                        .map(|_| u64::from(budget.try_withdraw()))
                        .sum::<u64>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(granted, 7);
    }
}
