//! `RateLimiter::check` (lock-free CAS on one `AtomicU64`) against the same
//! GCRA behind a `std::sync::Mutex`, on the allowed and the denied path.
#![allow(missing_docs)]
// Benchmark set-up: a failure here is a bug in the bench, not user input.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::rate::{RateLimiter, RateLimiterConfig};

/// Baseline: the same algorithm, state behind a mutex.
struct MutexGcra {
    clock: SharedClock,
    origin: Instant,
    interval: u64,
    tolerance: u64,
    tat: Mutex<u64>,
}

impl MutexGcra {
    fn new(config: &RateLimiterConfig) -> Self {
        let clock = SharedClock::system();
        let interval = config.emission_interval().unwrap().as_nanos() as u64;
        MutexGcra {
            origin: clock.now(),
            clock,
            interval,
            tolerance: interval * u64::from(config.burst),
            tat: Mutex::new(0),
        }
    }

    fn check(&self) -> Result<(), Duration> {
        let now = self.clock.now().duration_since(self.origin).as_nanos() as u64;
        let mut tat = self.tat.lock().unwrap();
        let new_tat = (*tat).max(now) + self.interval;
        let allowed_at = new_tat.saturating_sub(self.tolerance);
        if allowed_at > now {
            return Err(Duration::from_nanos(allowed_at - now));
        }
        *tat = new_tat;
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    // Allowed path: one request per nanosecond is never reached.
    let fast = RateLimiterConfig {
        rate: 1_000_000_000,
        per: Duration::from_secs(1),
        burst: 1_000_000,
    };
    // Denied path: the single slot is taken before measuring.
    let slow = RateLimiterConfig {
        rate: 1,
        per: Duration::from_secs(3600),
        burst: 1,
    };
    let mut group = c.benchmark_group("rate_check");
    for (name, config) in [("allowed", &fast), ("denied", &slow)] {
        let ours = RateLimiter::new(config.clone()).unwrap();
        let baseline = MutexGcra::new(config);
        if name == "denied" {
            ours.check().unwrap();
            baseline.check().unwrap();
        }
        group.bench_function(format!("breakwater_lock_free/{name}"), |b| {
            b.iter(|| black_box(ours.check()));
        });
        group.bench_function(format!("mutex_baseline/{name}"), |b| {
            b.iter(|| black_box(baseline.check()));
        });
    }
    // Contended allowed path: 4 threads share one limiter; time per check.
    let ours = RateLimiter::new(fast.clone()).unwrap();
    let baseline = MutexGcra::new(&fast);
    group.bench_function("breakwater_lock_free/contended_4_threads", |b| {
        b.iter_custom(|iters| contended(iters, || black_box(ours.check().is_ok())));
    });
    group.bench_function("mutex_baseline/contended_4_threads", |b| {
        b.iter_custom(|iters| contended(iters, || black_box(baseline.check().is_ok())));
    });
    group.finish();
}

/// Runs `iters` checks on each of 4 threads; returns wall time / 4 (the time
/// per check if the threads had run one after another).
fn contended(iters: u64, check: impl Fn() -> bool + Sync) -> Duration {
    const THREADS: u32 = 4;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..iters {
                    check();
                }
            });
        }
    });
    start.elapsed() / THREADS
}

criterion_group!(benches, bench);
criterion_main!(benches);
