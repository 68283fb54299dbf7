//! `RetryLayer`: retries bounded by attempts, budget and deadline, driven by a
//! classifier, on a `ManualClock`.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::BreakerOpen;
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::ManualClock;
use resilience_core::deadline::Deadline;
use resilience_core::limit::Overloaded;
use resilience_core::retry::{ErrorClass, RetryConfig, RetryErrorKind, RetryPolicy};
use resilience_core::tower::{BoxError, RetryGaveUp, RetryLayer, RetryService};
use tower::{Layer, Service, ServiceExt, service_fn};

fn constant_backoff(delay: Duration) -> BackoffConfig {
    BackoffConfig {
        base: delay,
        max: delay,
        factor: 1.0,
        jitter: Jitter::None,
        max_attempts: None,
    }
}

fn policy(clock: &ManualClock, max_attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        max_attempts,
        backoff: constant_backoff(delay),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone())
}

fn auto_clock() -> ManualClock {
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    clock
}

/// Fails the first `failures` calls with a transient error, then succeeds.
fn failing_first(
    failures: u32,
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |request: u32| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err::<u32, BoxError>("connection reset".into())
            } else {
                Ok(request * 10)
            }
        }
    })
}

#[tokio::test]
async fn retries_transient_errors_until_success() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new(policy(&clock, 4, Duration::from_millis(100)));
    let mut service = layer.layer(failing_first(2, calls.clone()));

    let response = service.ready().await.unwrap().call(7).await.unwrap();

    assert_eq!(response, 70);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(layer.policy().stats().retries, 2);
    assert_eq!(
        clock.elapsed(),
        Duration::from_millis(200),
        "two backoff sleeps"
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error_as_source() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let mut service = RetryService::new(
        failing_first(u32::MAX, calls.clone()),
        policy(&clock, 3, Duration::from_millis(10)),
    );

    let err = service.ready().await.unwrap().call(1).await.unwrap_err();

    let gave_up = err.downcast_ref::<RetryGaveUp>().expect("RetryGaveUp");
    assert_eq!(gave_up.reason(), RetryErrorKind::AttemptsExhausted);
    assert_eq!(gave_up.attempts(), 3);
    assert_eq!(
        gave_up.last_error().unwrap().to_string(),
        "connection reset"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_are_bounded_by_the_budget() {
    let clock = auto_clock();
    // No floor, 10 % of the requests: 50 requests earn 5 retries.
    let budget = Arc::new(
        RetryBudget::with_clock(
            RetryBudgetConfig {
                ttl: Duration::from_secs(10),
                min_retries_per_sec: 0,
                retry_ratio: 0.1,
            },
            clock.clone(),
        )
        .unwrap(),
    );
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 5,
        backoff: constant_backoff(Duration::from_millis(1)),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone())
    .with_budget(budget);
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new(policy);
    let mut service = layer.layer(failing_first(u32::MAX, calls.clone()));

    let mut budget_denials = 0;
    for request in 0..50 {
        let err = service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap_err();
        let gave_up = err.downcast_ref::<RetryGaveUp>().unwrap();
        if gave_up.reason() == RetryErrorKind::BudgetExhausted {
            budget_denials += 1;
        }
    }

    let stats = layer.policy().stats();
    assert!(
        stats.retries <= 5,
        "retries {} beyond 10 % of 50",
        stats.retries
    );
    assert!(
        stats.retries >= 4,
        "the budget grants its ratio: {}",
        stats.retries
    );
    assert_eq!(u64::from(calls.load(Ordering::SeqCst)), 50 + stats.retries);
    assert!(budget_denials >= 45);
    assert_eq!(stats.budget_denials, budget_denials);
}

#[derive(Clone, Debug)]
struct Call {
    deadline: Deadline,
}

#[tokio::test]
async fn request_deadline_bounds_the_retry_loop() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |_call: Call| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), BoxError>("unavailable".into()) }
    });
    // 100 attempts 400 ms apart, but the caller gives the request 1 s.
    let layer = RetryLayer::new(policy(&clock, 100, Duration::from_millis(400)))
        .deadline_from(|call: &Call| Some(call.deadline.clone()));
    let mut service = layer.layer(inner);

    let call = Call {
        deadline: Deadline::after(clock.clone(), Duration::from_secs(1)),
    };
    let err = service.ready().await.unwrap().call(call).await.unwrap_err();

    let gave_up = err.downcast_ref::<RetryGaveUp>().unwrap();
    assert_eq!(gave_up.reason(), RetryErrorKind::DeadlineExceeded);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "at 0, 400 and 800 ms");
    assert!(clock.elapsed() <= Duration::from_secs(1));
}

#[tokio::test]
async fn overall_timeout_bounds_requests_without_a_deadline() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 100,
        backoff: constant_backoff(Duration::from_millis(300)),
        overall_timeout: Some(Duration::from_secs(1)),
        ..RetryConfig::default()
    })
    .unwrap()
    .with_clock(clock.clone());
    let mut service = RetryLayer::new(policy).layer(failing_first(u32::MAX, calls.clone()));

    let err = service.ready().await.unwrap().call(1).await.unwrap_err();

    let gave_up = err.downcast_ref::<RetryGaveUp>().unwrap();
    assert_eq!(gave_up.reason(), RetryErrorKind::DeadlineExceeded);
    assert_eq!(calls.load(Ordering::SeqCst), 4, "at 0, 300, 600 and 900 ms");
}

#[derive(Clone, Debug, PartialEq)]
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
}

fn http_like(outcome: Result<&Reply, &BoxError>) -> ErrorClass {
    match outcome {
        Ok(reply) if reply.status == 503 => reply
            .retry_after
            .map_or(ErrorClass::Transient, ErrorClass::TransientAfter),
        Ok(_) => ErrorClass::Permanent,
        Err(error) => resilience_core::tower::classify_error(error),
    }
}

#[tokio::test]
async fn retryable_responses_are_retried_after_their_retry_after_hint() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |()| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, BoxError>(if n == 0 {
                Reply {
                    status: 503,
                    retry_after: Some(Duration::from_secs(2)),
                }
            } else {
                Reply {
                    status: 200,
                    retry_after: None,
                }
            })
        }
    });
    let mut service = RetryLayer::new(policy(&clock, 3, Duration::from_millis(10)))
        .classify(http_like)
        .layer(inner);

    let reply = service.ready().await.unwrap().call(()).await.unwrap();

    assert_eq!(reply.status, 200);
    assert_eq!(
        clock.elapsed(),
        Duration::from_secs(2),
        "waited for the hint, not the 10 ms backoff"
    );
}

#[tokio::test]
async fn the_last_retryable_response_is_returned_when_retries_end() {
    let clock = auto_clock();
    let inner = service_fn(|()| async {
        Ok::<_, BoxError>(Reply {
            status: 503,
            retry_after: None,
        })
    });
    let layer = RetryLayer::new(policy(&clock, 2, Duration::from_millis(10))).classify(http_like);
    let mut service = layer.layer(inner);

    let reply = service.ready().await.unwrap().call(()).await.unwrap();

    assert_eq!(reply.status, 503);
    assert_eq!(layer.policy().stats().attempts, 2);
}

#[tokio::test]
async fn non_retryable_errors_pass_through_unchanged() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |()| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            Err::<(), BoxError>(Box::new(BreakerOpen {
                retry_after: Duration::from_secs(5),
            }))
        }
    });
    let mut service = RetryLayer::new(policy(&clock, 5, Duration::from_millis(10))).layer(inner);

    let err = service.ready().await.unwrap().call(()).await.unwrap_err();

    assert!(err.is::<BreakerOpen>(), "an open breaker is final: {err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn sheds_are_retried_after_their_hint() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |()| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err::<(), BoxError>(Box::new(Overloaded {
                    retry_after: Duration::from_millis(750),
                }))
            } else {
                Ok(())
            }
        }
    });
    let mut service = RetryLayer::new(policy(&clock, 3, Duration::from_millis(10))).layer(inner);

    service.ready().await.unwrap().call(()).await.unwrap();

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(clock.elapsed(), Duration::from_millis(750));
}

#[tokio::test]
async fn classifier_can_refuse_to_retry_errors() {
    let clock = auto_clock();
    let calls = Arc::new(AtomicU32::new(0));
    let mut service = RetryLayer::new(policy(&clock, 5, Duration::from_millis(10)))
        .classify(|_: Result<&u32, &BoxError>| ErrorClass::Permanent)
        .layer(failing_first(u32::MAX, calls.clone()));

    let err = service.ready().await.unwrap().call(1).await.unwrap_err();

    assert_eq!(err.to_string(), "connection reset");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn retry_services_are_clone_and_send_with_send_futures() {
    fn clone_send<T: Clone + Send + 'static>(_: &T) {}
    fn send_future<F: std::future::Future + Send>(_: &F) {}
    let clock = ManualClock::new();
    let layer = RetryLayer::new(policy(&clock, 2, Duration::from_millis(1)));
    clone_send(&layer);
    let mut service = layer.layer(failing_first(0, Arc::new(AtomicU32::new(0))));
    clone_send(&service);
    let future = service.call(1);
    send_future(&future);
}

proptest::proptest! {
    #[test]
    fn calls_are_one_plus_retries_and_success_needs_fewer_failures_than_attempts(
        failures in 0u32..8,
        max_attempts in 1u32..6,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let clock = auto_clock();
        let calls = Arc::new(AtomicU32::new(0));
        let layer = RetryLayer::new(policy(&clock, max_attempts, Duration::from_millis(5)));
        let mut service = layer.layer(failing_first(failures, calls.clone()));

        let outcome = runtime.block_on(async { service.ready().await.unwrap().call(3).await });

        let made = calls.load(Ordering::SeqCst);
        proptest::prop_assert_eq!(made, (failures + 1).min(max_attempts));
        proptest::prop_assert_eq!(u64::from(made), 1 + layer.policy().stats().retries);
        proptest::prop_assert_eq!(outcome.is_ok(), failures < max_attempts);
        proptest::prop_assert_eq!(clock.elapsed(), Duration::from_millis(5) * (made - 1));
    }
}
