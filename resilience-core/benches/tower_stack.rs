//! Per-request overhead of the tower layers on the success path: a bare
//! `service_fn`, each layer alone over it, and the full client stack
//! (retry -> breaker -> limit). Every future is ready at its first poll
//! (`now_or_never`), so no runtime is measured; the retry layer's boxed
//! future and the policy's bookkeeping are.

// A benchmark's set-up may fail loudly: it is not library code.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
use resilience_core::retry::{RetryConfig, RetryPolicy};
use resilience_core::tower::{BoxError, BreakerLayer, LimitLayer, RetryLayer};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

fn inner()
-> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send + use<> {
    service_fn(|n: u64| std::future::ready(Ok::<_, BoxError>(n + 1)))
}

fn call_once<S: Service<u64, Response = u64>>(service: &mut S, n: u64) -> u64
where
    S::Error: std::fmt::Debug,
{
    service
        .ready()
        .now_or_never()
        .expect("ready at once")
        .expect("ready");
    service
        .call(n)
        .now_or_never()
        .expect("completes at once")
        .expect("succeeds")
}

fn layers(clock: &ManualClock) -> (RetryLayer, BreakerLayer, LimitLayer) {
    let budget = Arc::new(
        RetryBudget::with_clock(RetryBudgetConfig::default(), clock.clone()).expect("budget"),
    );
    let policy = RetryPolicy::new(RetryConfig::default())
        .expect("policy")
        .with_clock(clock.clone())
        .with_budget(budget);
    let breaker =
        CircuitBreaker::with_clock(BreakerConfig::default(), clock.clone()).expect("breaker");
    let limit = ConcurrencyLimit::with_clock(ConcurrencyLimitConfig::default(), clock.clone())
        .expect("limit");
    (
        RetryLayer::new(policy),
        BreakerLayer::new(breaker),
        LimitLayer::new(limit),
    )
}

fn tower_stack(c: &mut Criterion) {
    let clock = ManualClock::new();
    let (retry, breaker, limit) = layers(&clock);
    let mut group = c.benchmark_group("tower_stack");

    let mut bare = inner();
    group.bench_function("bare_service_fn", |b| {
        b.iter(|| call_once(&mut bare, black_box(1)));
    });
    let mut with_limit = limit.layer(inner());
    group.bench_function("limit_layer", |b| {
        b.iter(|| call_once(&mut with_limit, black_box(1)));
    });
    let mut with_breaker = breaker.layer(inner());
    group.bench_function("breaker_layer", |b| {
        b.iter(|| call_once(&mut with_breaker, black_box(1)));
    });
    let mut with_retry = retry.layer(inner());
    group.bench_function("retry_layer", |b| {
        b.iter(|| call_once(&mut with_retry, black_box(1)));
    });
    let mut full = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .layer(limit)
        .service(inner());
    group.bench_function("retry_breaker_limit", |b| {
        b.iter(|| call_once(&mut full, black_box(1)));
    });
    group.finish();
}

criterion_group!(benches, tower_stack);
criterion_main!(benches);
