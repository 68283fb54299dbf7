//! `BreakerLayer`: opens after failures, rejects fast without calling the
//! inner service, closes after the open wait; dropped futures record nothing.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures::FutureExt;
use resilience_core::backoff::BackoffConfig;
use resilience_core::breaker::{BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker, Outcome};
use resilience_core::clock::ManualClock;
use resilience_core::limit::Overloaded;
use resilience_core::tower::{BoxError, BreakerLayer, BreakerService};
use tower::{Layer, Service, ServiceExt, service_fn};

const OPEN_WAIT: Duration = Duration::from_secs(10);

fn breaker(clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::with_clock(
        BreakerConfig {
            consecutive_failures: Some(3),
            open_wait: BackoffConfig {
                base: OPEN_WAIT,
                ..BreakerConfig::default().open_wait
            },
            half_open_probes: 1,
            ..BreakerConfig::default()
        },
        clock.clone(),
    )
    .unwrap()
}

/// Fails while `failing` is set; counts calls.
fn switchable(
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
) -> impl Service<(), Response = &'static str, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::SeqCst);
        let fail = failing.load(Ordering::SeqCst);
        async move {
            if fail {
                Err::<&'static str, BoxError>("503 from upstream".into())
            } else {
                Ok("ok")
            }
        }
    })
}

#[tokio::test]
async fn opens_after_failures_and_rejects_fast_without_calling_the_service() {
    let clock = ManualClock::new();
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let layer = BreakerLayer::new(breaker(&clock));
    let mut service = layer.layer(switchable(failing, calls.clone()));

    for _ in 0..3 {
        let err = service.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(err.to_string(), "503 from upstream");
    }
    assert_eq!(layer.breaker().state(), BreakerState::Open);

    let err = service.ready().await.unwrap().call(()).await.unwrap_err();
    let open = err.downcast_ref::<BreakerOpen>().expect("BreakerOpen");
    assert_eq!(open.retry_after, OPEN_WAIT);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the rejected call never ran"
    );
}

#[tokio::test]
async fn closes_after_the_open_wait_when_the_probe_succeeds() {
    let clock = ManualClock::new();
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let layer = BreakerLayer::new(breaker(&clock));
    let mut service = layer.layer(switchable(failing.clone(), calls.clone()));
    for _ in 0..3 {
        let _ = service.ready().await.unwrap().call(()).await;
    }
    assert_eq!(layer.breaker().state(), BreakerState::Open);

    failing.store(false, Ordering::SeqCst);
    clock.advance(OPEN_WAIT.checked_sub(Duration::from_millis(1)).unwrap());
    assert!(
        service.ready().await.unwrap().call(()).await.is_err(),
        "still open"
    );
    clock.advance(Duration::from_millis(1));

    let reply = service.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(reply, "ok");
    assert_eq!(layer.breaker().state(), BreakerState::Closed);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_dropped_future_records_nothing_and_frees_its_probe_slot() {
    let clock = ManualClock::new();
    let br = breaker(&clock);
    for _ in 0..3 {
        br.try_acquire().unwrap().record_failure();
    }
    clock.advance(OPEN_WAIT);
    let hang = Arc::new(AtomicBool::new(true));
    let flag = hang.clone();
    let inner = service_fn(move |()| {
        let hang = flag.load(Ordering::SeqCst);
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok::<_, BoxError>(())
        }
    });
    let mut service = BreakerService::new(inner, br.clone());

    // The probe hangs and its caller gives up.
    let mut probe = Box::pin(service.ready().await.unwrap().call(()));
    assert!(probe.as_mut().now_or_never().is_none());
    assert_eq!(br.state(), BreakerState::HalfOpen);
    assert!(
        service.call(()).now_or_never().unwrap().is_err(),
        "the only probe slot is taken"
    );
    drop(probe);

    // Neither a success nor a failure: still half-open, slot free again.
    assert_eq!(br.state(), BreakerState::HalfOpen);
    hang.store(false, Ordering::SeqCst);
    service.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(br.state(), BreakerState::Closed);
}

#[tokio::test]
async fn classifier_decides_what_counts_as_a_failure() {
    let clock = ManualClock::new();
    let inner = service_fn(|status: u16| async move { Ok::<u16, BoxError>(status) });
    // 5xx responses are failures, 4xx say nothing about the dependency.
    let layer =
        BreakerLayer::new(breaker(&clock)).classify(
            |outcome: Result<&u16, &BoxError>| match outcome {
                Ok(status) if *status >= 500 => Outcome::Failure,
                Ok(status) if *status >= 400 => Outcome::Ignored,
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Failure,
            },
        );
    let mut service = layer.layer(inner);

    for _ in 0..10 {
        service.ready().await.unwrap().call(404).await.unwrap();
    }
    assert_eq!(layer.breaker().state(), BreakerState::Closed);
    for _ in 0..3 {
        service.ready().await.unwrap().call(503).await.unwrap();
    }
    assert_eq!(layer.breaker().state(), BreakerState::Open);
}

#[tokio::test]
async fn local_sheds_below_the_breaker_do_not_trip_it() {
    let clock = ManualClock::new();
    let inner = service_fn(|()| async {
        Err::<(), BoxError>(Box::new(Overloaded {
            retry_after: Duration::from_millis(10),
        }))
    });
    let layer = BreakerLayer::new(breaker(&clock));
    let mut service = layer.layer(inner);
    for _ in 0..10 {
        let err = service.ready().await.unwrap().call(()).await.unwrap_err();
        assert!(err.is::<Overloaded>());
    }
    assert_eq!(layer.breaker().state(), BreakerState::Closed);
}

#[test]
fn breaker_services_are_clone_and_send_with_send_futures() {
    fn clone_send<T: Clone + Send + 'static>(_: &T) {}
    fn send_future<F: Future + Send>(_: &F) {}
    let clock = ManualClock::new();
    let layer = BreakerLayer::new(breaker(&clock));
    clone_send(&layer);
    let mut service = layer.layer(switchable(
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU32::new(0)),
    ));
    clone_send(&service);
    let future = service.call(());
    send_future(&future);
}
