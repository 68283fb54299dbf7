//! The three layers stacked as in a client: retry -> breaker -> limit.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::FutureExt;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
use resilience_core::clock::ManualClock;
use resilience_core::deadline::Deadline;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
use resilience_core::retry::{RetryConfig, RetryErrorKind, RetryPolicy};
use resilience_core::tower::{BoxError, BreakerLayer, LimitLayer, RetryGaveUp, RetryLayer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn parts(clock: &ManualClock, max_attempts: u32) -> (RetryLayer, CircuitBreaker, ConcurrencyLimit) {
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts,
        backoff: BackoffConfig {
            base: Duration::from_millis(10),
            max: Duration::from_millis(10),
            factor: 1.0,
            jitter: Jitter::None,
            max_attempts: None,
        },
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let breaker = CircuitBreaker::with_clock(
        BreakerConfig {
            consecutive_failures: Some(2),
            ..BreakerConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let limit = ConcurrencyLimit::with_clock(
        ConcurrencyLimitConfig {
            max_concurrent: 1,
            max_queued: 0,
            min_retry_after: Duration::from_millis(40),
            ..ConcurrencyLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    (RetryLayer::new(policy), breaker, limit)
}

#[derive(Clone, Debug)]
struct Call {
    deadline: Deadline,
}

#[tokio::test]
async fn an_attempt_cut_off_by_the_deadline_releases_its_permit_and_records_nothing() {
    let clock = ManualClock::new();
    let (retry, breaker, limit) = parts(&clock, 3);
    let hanging = service_fn(|_: Call| std::future::pending::<Result<(), BoxError>>());
    let mut client = ServiceBuilder::new()
        .layer(retry.deadline_from(|call: &Call| Some(call.deadline.clone())))
        .layer(BreakerLayer::new(breaker.clone()))
        .layer(LimitLayer::new(limit.clone()))
        .service(hanging);

    let call = Call {
        deadline: Deadline::after(clock.clone(), Duration::from_secs(1)),
    };
    let mut response = Box::pin(client.ready().await.unwrap().call(call));
    assert!(response.as_mut().now_or_never().is_none());
    assert_eq!(limit.in_flight(), 1);

    clock.advance(Duration::from_secs(1));
    let err = response.await.unwrap_err();

    let gave_up = err.downcast_ref::<RetryGaveUp>().unwrap();
    assert_eq!(gave_up.reason(), RetryErrorKind::DeadlineExceeded);
    assert!(gave_up.last_error().is_none());
    assert_eq!(limit.in_flight(), 0, "the limit permit was released");
    let metrics = breaker.metrics();
    assert_eq!(metrics.cancelled, 1, "{metrics:?}");
    assert_eq!(metrics.failures, 0, "a cancelled call is not a failure");
}

#[tokio::test]
async fn a_shed_is_retried_after_its_hint_without_counting_against_the_breaker() {
    let clock = ManualClock::new();
    let (retry, breaker, limit) = parts(&clock, 3);
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let service = service_fn(move |()| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("done") }
    });
    let mut client = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(BreakerLayer::new(breaker.clone()))
        .layer(LimitLayer::new(limit.clone()))
        .service(service);

    // Someone else holds the only permit; it is released while our request
    // waits out the shed's `retry_after`.
    let held = limit.try_acquire().unwrap();
    let mut response = Box::pin(client.ready().await.unwrap().call(()));
    assert!(response.as_mut().now_or_never().is_none(), "backing off");
    drop(held);
    clock.advance(Duration::from_millis(39));
    assert!(
        response.as_mut().now_or_never().is_none(),
        "the hint, not the 10 ms backoff"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(response.await.unwrap(), "done");

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(retry.policy().stats().retries, 1);
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.failures, metrics.ignored, metrics.successes),
        (0, 1, 1)
    );
}

#[test]
fn the_stack_is_clone_and_send_with_send_futures() {
    fn clone_send<T: Clone + Send + 'static>(_: &T) {}
    fn send_future<F: std::future::Future + Send>(_: &F) {}
    let clock = ManualClock::new();
    let (retry, breaker, limit) = parts(&clock, 2);
    let mut client = ServiceBuilder::new()
        .layer(retry)
        .layer(BreakerLayer::new(breaker))
        .layer(LimitLayer::new(limit))
        .service(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    clone_send(&client);
    send_future(&client.call(()));
}
