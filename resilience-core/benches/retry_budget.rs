//! Retry budget hot paths against tower's `TpsBudget`.
//!
//! Workloads, both with Finagle's defaults (ttl 10 s, 10 retries/s, 0.2):
//! - `outage`: every request deposits and asks for one retry;
//! - `normal`: every request deposits, 1 % ask for a retry.
//!
//! Each runs on one thread and on two threads sharing one budget; the
//! two-thread variants report wall time per operation of both threads
//! together, i.e. the inverse of the total rate (criterion also prints the
//! rate as elements per second).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use tower::retry::budget::{Budget, TpsBudget};

trait Subject: Send + Sync + 'static {
    fn deposit(&self);
    fn withdraw(&self) -> bool;
}

impl Subject for RetryBudget {
    #[inline]
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }
    #[inline]
    fn withdraw(&self) -> bool {
        self.try_withdraw()
    }
}

impl Subject for TpsBudget {
    #[inline]
    fn deposit(&self) {
        Budget::deposit(self);
    }
    #[inline]
    fn withdraw(&self) -> bool {
        Budget::withdraw(self)
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Outage,
    Normal,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Outage => "outage",
            Workload::Normal => "normal",
        }
    }
}

#[inline]
fn request<S: Subject>(budget: &S, workload: Workload, i: u64) {
    budget.deposit();
    let retry = match workload {
        Workload::Outage => true,
        Workload::Normal => i.is_multiple_of(100),
    };
    if retry {
        black_box(budget.withdraw());
    }
}

fn one_thread<S: Subject>(budget: &S, workload: Workload, iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        request(budget, workload, i);
    }
    start.elapsed()
}

fn two_threads<S: Subject>(budget: &Arc<S>, workload: Workload, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(2));
    let half = iters.div_ceil(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (budget, barrier) = (Arc::clone(budget), Arc::clone(&barrier));
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..half {
                        request(&*budget, workload, i);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        let spans: Vec<(Instant, Instant)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let start = spans.iter().map(|s| s.0).min().unwrap();
        let end = spans.iter().map(|s| s.1).max().unwrap();
        end - start
    })
}

fn ours() -> Arc<RetryBudget> {
    Arc::new(RetryBudget::new(RetryBudgetConfig::default()).unwrap())
}

fn towers() -> Arc<TpsBudget> {
    Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))
}

fn bench<S: Subject>(c: &mut Criterion, name: &str, make: fn() -> Arc<S>) {
    let mut group = c.benchmark_group("retry_budget");
    group.throughput(Throughput::Elements(1));
    for workload in [Workload::Outage, Workload::Normal] {
        let budget = make();
        group.bench_function(format!("{name}/{}/1-thread", workload.name()), |b| {
            b.iter_custom(|iters| one_thread(&*budget, workload, iters));
        });
        let budget = make();
        group.bench_function(format!("{name}/{}/2-threads", workload.name()), |b| {
            b.iter_custom(|iters| two_threads(&budget, workload, iters));
        });
    }
    group.finish();
}

fn retry_budget(c: &mut Criterion) {
    bench(c, "breakwater", ours);
    bench(c, "tower_tps_budget", towers);
}

criterion_group!(benches, retry_budget);
criterion_main!(benches);
