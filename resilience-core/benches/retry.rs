//! Cost of the retry executor per request: `RetryPolicy::run` (ours, with a
//! shared `RetryBudget`) against tower's `Retry` service with its
//! `TpsBudget`, on an operation that succeeds at once (`first_try`) and one
//! that fails twice before succeeding (`two_retries`). Both budgets get a
//! deposit per request and a withdrawal per retry; neither sleeps for real
//! (ours sleeps its 1 µs backoff on an auto-advancing `ManualClock`, tower's
//! policy returns a ready future). Everything is polled once with
//! `now_or_never`, so no runtime is measured.

// A benchmark's set-up may fail loudly: it is not library code.
#![allow(clippy::expect_used)]

use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;
use resilience_core::retry::{RetryConfig, RetryPolicy, Retryable};
use tower::Service;
use tower::retry::budget::{Budget, TpsBudget};

const TTL: Duration = Duration::from_secs(10);
const MIN_PER_SEC: u32 = 10;
/// High enough that the budgets never deny in this benchmark.
const RATIO: f64 = 5.0;

#[derive(Debug, Clone, Copy)]
struct Fail;

impl Retryable for Fail {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Fails the first `fails` attempts of every request, then succeeds.
#[derive(Clone)]
struct Flaky {
    calls: Arc<AtomicU32>,
    fails: u32,
}

impl Flaky {
    fn new(fails: u32) -> Self {
        Flaky {
            calls: Arc::new(AtomicU32::new(0)),
            fails,
        }
    }

    fn attempt(&self) -> Result<u32, Fail> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n % (self.fails + 1) < self.fails {
            Err(Fail)
        } else {
            Ok(n)
        }
    }
}

impl Service<u32> for Flaky {
    type Response = u32;
    type Error = Fail;
    type Future = Ready<Result<u32, Fail>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: u32) -> Self::Future {
        ready(self.attempt())
    }
}

/// tower policy equivalent to ours: up to 3 attempts, retries need the budget.
#[derive(Clone)]
struct TowerPolicy {
    attempts_left: u32,
    budget: Arc<TpsBudget>,
}

impl tower::retry::Policy<u32, u32, Fail> for TowerPolicy {
    type Future = Ready<()>;

    fn retry(&mut self, _request: &mut u32, result: &mut Result<u32, Fail>) -> Option<Ready<()>> {
        if result.is_err() && self.attempts_left > 1 && self.budget.withdraw() {
            self.attempts_left -= 1;
            Some(ready(()))
        } else {
            None
        }
    }

    fn clone_request(&mut self, request: &u32) -> Option<u32> {
        Some(*request)
    }
}

fn ours(fails: u32) -> (RetryPolicy, Flaky) {
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    let budget = RetryBudget::with_clock(
        RetryBudgetConfig {
            ttl: TTL,
            min_retries_per_sec: MIN_PER_SEC,
            retry_ratio: RATIO,
        },
        clock.clone(),
    )
    .expect("valid budget");
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: BackoffConfig {
            base: Duration::from_micros(1),
            max: Duration::from_micros(1),
            factor: 1.0,
            jitter: Jitter::None,
            max_attempts: None,
        },
        ..RetryConfig::default()
    })
    .expect("valid config")
    .with_clock(clock)
    .with_budget(Arc::new(budget))
    .with_seed(1);
    (policy, Flaky::new(fails))
}

fn tower_retry(fails: u32) -> (tower::retry::Retry<TowerPolicy, Flaky>, Arc<TpsBudget>) {
    let budget = Arc::new(TpsBudget::new(TTL, MIN_PER_SEC, RATIO as f32));
    let policy = TowerPolicy {
        attempts_left: 3,
        budget: budget.clone(),
    };
    (tower::retry::Retry::new(policy, Flaky::new(fails)), budget)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry");
    for (name, fails) in [("first_try", 0), ("two_retries", 2)] {
        let (policy, flaky) = ours(fails);
        group.bench_function(BenchmarkId::new("breakwater", name), |b| {
            b.iter(|| {
                let out = policy
                    .run(|_| ready(flaky.attempt()))
                    .now_or_never()
                    .expect("never pending");
                black_box(out).expect("succeeds within 3 attempts")
            });
        });

        let (service, budget) = tower_retry(fails);
        group.bench_function(BenchmarkId::new("tower", name), |b| {
            b.iter(|| {
                budget.deposit();
                let out = service
                    .clone()
                    .call(black_box(1))
                    .now_or_never()
                    .expect("never pending");
                black_box(out).expect("succeeds within 3 attempts")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
