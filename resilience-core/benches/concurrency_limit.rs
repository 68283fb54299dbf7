//! `ConcurrencyLimit` against a bare `tokio::sync::Semaphore`: one permit
//! acquired and released per iteration, uncontended on one thread and shared
//! by two threads.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
use tokio::sync::Semaphore;

const PERMITS: usize = 64;

fn limit() -> ConcurrencyLimit {
    ConcurrencyLimit::new(ConcurrencyLimitConfig {
        max_concurrent: PERMITS,
        ..ConcurrencyLimitConfig::default()
    })
    .unwrap()
}

/// Runs `op` `iters` times on each of `threads` threads started together and
/// returns the wall time of the slowest one.
fn on_threads<S: Send + Sync + 'static>(
    shared: &Arc<S>,
    threads: usize,
    iters: u64,
    op: fn(&S),
) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (shared, barrier) = (shared.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    op(&shared);
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap_or_default()
}

fn breakwater_try_acquire(limit: &ConcurrencyLimit) {
    drop(black_box(limit.try_acquire().unwrap()));
}

fn tokio_try_acquire(semaphore: &Semaphore) {
    drop(black_box(semaphore.try_acquire().unwrap()));
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("concurrency_limit");

    let bw = limit();
    group.bench_function(BenchmarkId::new("breakwater", "try_acquire"), |b| {
        b.iter(|| breakwater_try_acquire(&bw));
    });
    let sem = Arc::new(Semaphore::new(PERMITS));
    group.bench_function(BenchmarkId::new("tokio_semaphore", "try_acquire"), |b| {
        b.iter(|| tokio_try_acquire(&sem));
    });
    group.bench_function(
        BenchmarkId::new("tokio_semaphore", "try_acquire_owned"),
        |b| {
            b.iter(|| drop(black_box(sem.clone().try_acquire_owned().unwrap())));
        },
    );

    group.bench_function(BenchmarkId::new("breakwater", "acquire_await"), |b| {
        b.iter(|| drop(black_box(bw.acquire().now_or_never().unwrap().unwrap())));
    });
    group.bench_function(BenchmarkId::new("tokio_semaphore", "acquire_await"), |b| {
        b.iter(|| drop(black_box(sem.acquire().now_or_never().unwrap().unwrap())));
    });

    let shared_bw = Arc::new(limit());
    group.bench_function(
        BenchmarkId::new("breakwater", "try_acquire_2_threads"),
        |b| {
            b.iter_custom(|iters| on_threads(&shared_bw, 2, iters, breakwater_try_acquire));
        },
    );
    let shared_sem = Arc::new(Semaphore::new(PERMITS));
    group.bench_function(
        BenchmarkId::new("tokio_semaphore", "try_acquire_2_threads"),
        |b| b.iter_custom(|iters| on_threads(&shared_sem, 2, iters, tokio_try_acquire)),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
