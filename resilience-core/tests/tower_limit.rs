//! `LimitLayer`: sheds with `Overloaded` when full, never blocks in
//! `poll_ready`, and holds each permit until the response future completes or
//! is dropped.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use resilience_core::clock::ManualClock;
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig, Overloaded};
use resilience_core::tower::{BoxError, LimitLayer, LimitService};
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt, service_fn};

fn limit(max_concurrent: usize) -> ConcurrencyLimit {
    ConcurrencyLimit::with_clock(
        ConcurrencyLimitConfig {
            max_concurrent,
            max_queued: 4, // not used by the service: it never waits
            min_retry_after: Duration::from_millis(20),
            ..ConcurrencyLimitConfig::default()
        },
        ManualClock::new(),
    )
    .unwrap()
}

/// Each call answers when the test sends on the channel the request carries.
fn gated()
-> impl Service<oneshot::Receiver<u32>, Response = u32, Error = BoxError, Future: Send> + Clone + Send
{
    service_fn(|gate: oneshot::Receiver<u32>| async move {
        gate.await.map_err(|e| Box::new(e) as BoxError)
    })
}

#[tokio::test]
async fn sheds_with_overloaded_when_every_permit_is_taken() {
    let layer = LimitLayer::new(limit(2));
    let mut service = layer.layer(gated());
    let (_tx1, rx1) = oneshot::channel();
    let (_tx2, rx2) = oneshot::channel();
    let first = service.ready().await.unwrap().call(rx1);
    let second = service.ready().await.unwrap().call(rx2);
    assert_eq!(layer.limit().in_flight(), 2);

    let (_tx3, rx3) = oneshot::channel();
    let shed = service.ready().await.unwrap().call(rx3).await.unwrap_err();

    let overloaded = shed.downcast_ref::<Overloaded>().expect("Overloaded");
    assert!(overloaded.retry_after >= Duration::from_millis(20));
    assert_eq!(layer.limit().in_flight(), 2, "a shed takes no permit");
    drop((first, second));
}

#[tokio::test]
async fn poll_ready_does_not_wait_for_capacity() {
    let mut service = LimitService::new(gated(), limit(1));
    let (_tx, rx) = oneshot::channel();
    let _held = service.ready().await.unwrap().call(rx);

    let ready = service.ready().now_or_never();
    assert!(
        matches!(ready, Some(Ok(_))),
        "ready while full: the call sheds instead"
    );
}

#[tokio::test]
async fn permits_are_released_when_responses_complete() {
    let layer = LimitLayer::new(limit(1));
    let mut service = layer.layer(gated());
    let (tx, rx) = oneshot::channel();
    let call = service.ready().await.unwrap().call(rx);
    let (_tx, rx_shed) = oneshot::channel();
    assert!(service.call(rx_shed).await.is_err(), "full");

    tx.send(5).unwrap();
    assert_eq!(call.await.unwrap(), 5);
    assert_eq!(layer.limit().in_flight(), 0);

    let (tx, rx) = oneshot::channel();
    tx.send(6).unwrap();
    assert_eq!(service.ready().await.unwrap().call(rx).await.unwrap(), 6);
}

#[tokio::test]
async fn permits_are_released_when_futures_are_dropped() {
    let layer = LimitLayer::new(limit(1));
    let mut service = layer.layer(gated());
    let (_tx, rx) = oneshot::channel();
    let mut call = Box::pin(service.ready().await.unwrap().call(rx));
    assert!(call.as_mut().now_or_never().is_none());
    assert_eq!(layer.limit().in_flight(), 1);

    drop(call); // e.g. the client went away, or a deadline cancelled it

    assert_eq!(layer.limit().in_flight(), 0);
    let (tx, rx) = oneshot::channel();
    tx.send(1).unwrap();
    assert_eq!(service.ready().await.unwrap().call(rx).await.unwrap(), 1);
}

#[tokio::test]
async fn inner_errors_are_passed_through_and_release_the_permit() {
    let layer = LimitLayer::new(limit(1));
    let mut service = layer.layer(gated());
    let (tx, rx) = oneshot::channel::<u32>();
    drop(tx);
    let err = service.ready().await.unwrap().call(rx).await.unwrap_err();
    assert!(err.is::<oneshot::error::RecvError>());
    assert_eq!(layer.limit().in_flight(), 0);
}

#[test]
fn limit_services_are_clone_and_send_with_send_futures() {
    fn clone_send<T: Clone + Send + 'static>(_: &T) {}
    fn send_future<F: Future + Send>(_: &F) {}
    let layer = LimitLayer::new(limit(1));
    clone_send(&layer);
    let mut service = layer.layer(gated());
    clone_send(&service);
    let (_tx, rx) = oneshot::channel();
    let future = service.call(rx);
    send_future(&future);
}
