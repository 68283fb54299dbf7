//! The closed-state hot path of a circuit breaker: ask for a permit, record
//! a success. Ours (`breakwater`) against the `failsafe` crate's
//! `StateMachine` (`is_call_permitted` + `on_success`), both with their
//! default configuration and the system clock, on one thread and on two
//! threads sharing one breaker.
//!
//! Two more variants of ours show what reading the clock costs:
//! `breakwater_time_window` (a 60 s window in 60 buckets, like failsafe's
//! default: the clock is read once per call, on record) and
//! `breakwater_slow_calls` (the same plus slow-call tracking: read on acquire
//! and on record).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use resilience_core::breaker::{BreakerConfig, CircuitBreaker, WindowConfig};

fn breakwater_call(breaker: &CircuitBreaker) {
    if let Ok(permit) = black_box(breaker).try_acquire() {
        permit.record_success();
    }
}

fn failsafe_call<P, I>(machine: &failsafe::StateMachine<P, I>)
where
    P: failsafe::FailurePolicy,
    I: failsafe::Instrument,
{
    let machine = black_box(machine);
    if machine.is_call_permitted() {
        machine.on_success();
    }
}

/// Runs `call` `iters` times on each of `threads` threads started together;
/// returns the slowest thread's time (per-iteration time = one call on every
/// thread at once).
fn contended<T: Send + Sync + 'static>(
    shared: &Arc<T>,
    threads: usize,
    iters: u64,
    call: fn(&T),
) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let shared = Arc::clone(shared);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    call(&shared);
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

fn time_window_config() -> BreakerConfig {
    BreakerConfig {
        window: WindowConfig::Time {
            duration: Duration::from_secs(60),
            buckets: 60,
        },
        ..BreakerConfig::default()
    }
}

fn slow_calls_config() -> BreakerConfig {
    BreakerConfig {
        slow_call_duration: Some(Duration::from_secs(1)),
        ..time_window_config()
    }
}

fn circuit_breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker");

    let Ok(ours) = CircuitBreaker::new(BreakerConfig::default()) else {
        return;
    };
    let Ok(time_window) = CircuitBreaker::new(time_window_config()) else {
        return;
    };
    let Ok(slow_calls) = CircuitBreaker::new(slow_calls_config()) else {
        return;
    };
    let theirs = failsafe::Config::new().build();

    group.bench_function(BenchmarkId::new("breakwater", "1_thread"), |b| {
        b.iter(|| breakwater_call(&ours));
    });
    group.bench_function(BenchmarkId::new("failsafe", "1_thread"), |b| {
        b.iter(|| failsafe_call(&theirs));
    });
    group.bench_function(
        BenchmarkId::new("breakwater_time_window", "1_thread"),
        |b| {
            b.iter(|| breakwater_call(&time_window));
        },
    );
    group.bench_function(BenchmarkId::new("breakwater_slow_calls", "1_thread"), |b| {
        b.iter(|| breakwater_call(&slow_calls));
    });

    let ours = Arc::new(ours);
    let theirs = Arc::new(theirs);
    let time_window = Arc::new(time_window);
    let slow_calls = Arc::new(slow_calls);
    group.bench_function(BenchmarkId::new("breakwater", "2_threads"), |b| {
        b.iter_custom(|iters| contended(&ours, 2, iters, breakwater_call));
    });
    group.bench_function(BenchmarkId::new("failsafe", "2_threads"), |b| {
        b.iter_custom(|iters| contended(&theirs, 2, iters, failsafe_call));
    });
    group.bench_function(
        BenchmarkId::new("breakwater_time_window", "2_threads"),
        |b| {
            b.iter_custom(|iters| contended(&time_window, 2, iters, breakwater_call));
        },
    );
    group.bench_function(
        BenchmarkId::new("breakwater_slow_calls", "2_threads"),
        |b| {
            b.iter_custom(|iters| contended(&slow_calls, 2, iters, breakwater_call));
        },
    );
    group.finish();
}

criterion_group!(benches, circuit_breaker);
criterion_main!(benches);
