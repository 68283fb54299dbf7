//! Every transition of the circuit breaker, driven by a `ManualClock`. Its
//! log lines are checked in `breaker_tracing.rs`, a binary of their own.
// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{
    BreakerConfig, BreakerError, BreakerOpen, BreakerState, CircuitBreaker, Outcome, StateChange,
    WindowConfig,
};
use resilience_core::clock::{Clock, ManualClock};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Open wait 10 s doubling to 80 s, no jitter; rate rules effectively off
/// unless a test turns them on.
fn config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: None,
        failure_rate_threshold: 0.5,
        slow_call_duration: None,
        slow_call_rate_threshold: 1.0,
        window: WindowConfig::Count { calls: 10 },
        minimum_calls: 4,
        open_wait: BackoffConfig {
            base: secs(10),
            max: secs(80),
            factor: 2.0,
            jitter: Jitter::None,
            max_attempts: None,
        },
        half_open_probes: 2,
    }
}

fn breaker(config: BreakerConfig) -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::with_clock(config, clock.clone()).unwrap();
    (breaker, clock)
}

fn fail(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        breaker.try_acquire().unwrap().record_failure();
    }
}

fn succeed(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        breaker.try_acquire().unwrap().record_success();
    }
}

/// A breaker that trips on 3 failures in a row; the rate rule needs a full
/// window of 10 calls.
fn open_by_consecutive() -> (CircuitBreaker, ManualClock) {
    breaker(BreakerConfig {
        consecutive_failures: Some(3),
        minimum_calls: 10,
        ..config()
    })
}

#[test]
fn starts_closed_and_admits_calls() {
    let (breaker, _) = breaker(config());
    assert_eq!(breaker.state(), BreakerState::Closed);
    succeed(&breaker, 100);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn opens_after_consecutive_failures() {
    let (breaker, _) = open_by_consecutive();
    fail(&breaker, 2);
    succeed(&breaker, 1); // resets the streak
    fail(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().trips, 1);
}

#[test]
fn opens_when_the_failure_rate_reaches_the_threshold() {
    let (breaker, _) = breaker(config());
    // 10-call window, 50 %: alternate so no streak matters.
    for _ in 0..4 {
        succeed(&breaker, 1);
        fail(&breaker, 1);
        if breaker.state() == BreakerState::Open {
            break;
        }
    }
    // minimum_calls = 4 reached at the 4th call with 2/4 = 50 % failed.
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().calls, 4);
}

#[test]
fn stays_closed_below_the_failure_rate() {
    let (breaker, _) = breaker(config());
    for _ in 0..50 {
        succeed(&breaker, 2);
        fail(&breaker, 1); // 33 %
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let metrics = breaker.metrics();
    assert_eq!(metrics.window_calls, 10);
    assert!((0.3..0.41).contains(&metrics.window_failure_rate));
}

#[test]
fn respects_minimum_calls_before_applying_the_rate() {
    let (breaker, _) = breaker(BreakerConfig {
        minimum_calls: 5,
        ..config()
    });
    fail(&breaker, 4); // 100 % failed, but only 4 calls
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn a_success_that_reaches_minimum_calls_can_trip() {
    let (breaker, _) = breaker(config());
    fail(&breaker, 3);
    succeed(&breaker, 1); // 3/4 failed once the minimum is reached
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn count_window_forgets_old_failures() {
    let (breaker, _) = breaker(BreakerConfig {
        minimum_calls: 10,
        ..config()
    });
    fail(&breaker, 4);
    succeed(&breaker, 20); // the failures slid out of the 10-call window
    fail(&breaker, 4);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 1); // 5 of the last 10
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn time_window_forgets_failures_older_than_its_duration() {
    let (breaker, clock) = breaker(BreakerConfig {
        window: WindowConfig::Time {
            duration: secs(10),
            buckets: 10,
        },
        minimum_calls: 4,
        ..config()
    });
    fail(&breaker, 3);
    clock.advance(secs(11));
    succeed(&breaker, 2);
    fail(&breaker, 1); // 1 of 3 in the window: below minimum and rate
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().window_calls, 3);
    fail(&breaker, 1); // 2 of 4 = 50 %
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn opens_when_the_slow_call_rate_reaches_the_threshold() {
    let (breaker, clock) = breaker(BreakerConfig {
        slow_call_duration: Some(ms(500)),
        slow_call_rate_threshold: 0.75,
        ..config()
    });
    // Fast calls do not count.
    for _ in 0..4 {
        let permit = breaker.try_acquire().unwrap();
        clock.advance(ms(500)); // exactly the limit is not slow
        permit.record_success();
    }
    assert_eq!(breaker.metrics().slow_calls, 0);
    // 6 slow successes: the window is 10 calls, 6 slow = 60 % < 75 %.
    for _ in 0..6 {
        let permit = breaker.try_acquire().unwrap();
        clock.advance(ms(501));
        permit.record_success();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().slow_calls, 6);
    // 8 of the last 10 slow: 80 % >= 75 %.
    for _ in 0..2 {
        let permit = breaker.try_acquire().unwrap();
        clock.advance(secs(2));
        permit.record_success();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        breaker.metrics().failures,
        0,
        "slow successes are successes"
    );
}

#[test]
fn slow_calls_overlapping_in_time_are_measured_per_permit() {
    let (breaker, clock) = breaker(BreakerConfig {
        slow_call_duration: Some(secs(1)),
        ..config()
    });
    let slow = breaker.try_acquire().unwrap();
    clock.advance(ms(900));
    let fast = breaker.try_acquire().unwrap();
    clock.advance(ms(200));
    fast.record_success(); // 200 ms
    slow.record_success(); // 1.1 s
    assert_eq!(breaker.metrics().slow_calls, 1);
}

#[test]
fn open_rejects_until_the_wait_elapses_with_the_remaining_time() {
    let (breaker, clock) = open_by_consecutive();
    fail(&breaker, 3);
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        BreakerOpen {
            retry_after: secs(10)
        }
    );
    clock.advance(ms(9_750));
    assert_eq!(breaker.try_acquire().unwrap_err().retry_after, ms(250));
    clock.advance(ms(249));
    assert_eq!(breaker.try_acquire().unwrap_err().retry_after, ms(1));
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().rejections, 3);
    clock.advance(ms(1));
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    drop(probe);
}

#[test]
fn half_open_admits_at_most_the_configured_probes() {
    let (breaker, clock) = open_by_consecutive();
    fail(&breaker, 3);
    clock.advance(secs(10));
    let a = breaker.try_acquire().unwrap();
    let b = breaker.try_acquire().unwrap();
    assert!(a.is_probe() && b.is_probe());
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after, secs(10), "half-open full: base wait");
    // One success frees its slot but counts toward closing: 1 success + 1 in
    // flight = 2 probes, still full.
    a.record_success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.try_acquire().is_err());
    b.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn half_open_closes_after_enough_probe_successes() {
    let (breaker, clock) = open_by_consecutive();
    let events = breaker.subscribe();
    fail(&breaker, 3);
    clock.advance(secs(10));
    breaker.try_acquire().unwrap().record_success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.try_acquire().unwrap().record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    // The closed breaker starts from an empty window and streak.
    fail(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    drop(events);
}

#[test]
fn half_open_reopens_on_a_probe_failure() {
    let (breaker, clock) = open_by_consecutive();
    fail(&breaker, 3);
    clock.advance(secs(10));
    let ok = breaker.try_acquire().unwrap();
    let bad = breaker.try_acquire().unwrap();
    ok.record_success();
    bad.record_failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().trips, 2);
}

#[test]
fn a_slow_probe_reopens_the_breaker() {
    let (breaker, clock) = breaker(BreakerConfig {
        consecutive_failures: Some(1),
        slow_call_duration: Some(secs(1)),
        ..config()
    });
    fail(&breaker, 1);
    clock.advance(secs(10));
    let probe = breaker.try_acquire().unwrap();
    clock.advance(secs(2));
    probe.record_success();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn the_open_wait_grows_with_repeated_trips_and_resets_after_closing() {
    let (breaker, clock) = open_by_consecutive();
    fail(&breaker, 3);
    let mut waits = Vec::new();
    for _ in 0..5 {
        let wait = breaker.try_acquire().unwrap_err().retry_after;
        waits.push(wait.as_secs());
        clock.advance(wait);
        breaker.try_acquire().unwrap().record_failure(); // probe fails
    }
    assert_eq!(waits, [10, 20, 40, 80, 80]);
    // Recover: the next trip waits the base again.
    clock.advance(secs(80));
    succeed(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 3);
    assert_eq!(breaker.try_acquire().unwrap_err().retry_after, secs(10));
}

#[test]
fn ignored_outcomes_are_not_counted() {
    let (breaker, _) = breaker(BreakerConfig {
        consecutive_failures: Some(3),
        ..config()
    });
    fail(&breaker, 2);
    for _ in 0..100 {
        breaker.try_acquire().unwrap().record_ignored();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let metrics = breaker.metrics();
    assert_eq!(
        metrics.window_calls, 2,
        "ignored calls are not in the window"
    );
    assert_eq!(metrics.ignored, 100);
    // ... and did not reset the streak either.
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn ignored_probe_frees_its_slot_without_closing_or_opening() {
    let (breaker, clock) = open_by_consecutive();
    fail(&breaker, 3);
    clock.advance(secs(10));
    let a = breaker.try_acquire().unwrap();
    let b = breaker.try_acquire().unwrap();
    a.record(Outcome::Ignored);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let c = breaker
        .try_acquire()
        .expect("the ignored probe's slot is free");
    b.record_success();
    c.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn a_dropped_permit_frees_its_probe_slot_and_is_not_a_failure() {
    let (breaker, clock) = open_by_consecutive();
    fail(&breaker, 3);
    clock.advance(secs(10));
    let a = breaker.try_acquire().unwrap();
    let b = breaker.try_acquire().unwrap();
    assert!(breaker.try_acquire().is_err());
    drop(a); // cancelled
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let c = breaker
        .try_acquire()
        .expect("the cancelled probe's slot is free");
    drop(b);
    drop(c);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    // Cancellations never close or open the breaker; successes do.
    succeed(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    let metrics = breaker.metrics();
    assert_eq!(metrics.cancelled, 3);
    assert_eq!(metrics.failures, 3);
}

#[test]
fn dropped_permits_in_the_closed_state_are_not_counted() {
    let (breaker, _) = breaker(BreakerConfig {
        consecutive_failures: Some(2),
        ..config()
    });
    fail(&breaker, 1);
    for _ in 0..10 {
        let _permit = breaker.try_acquire().unwrap();
    }
    assert_eq!(breaker.metrics().window_calls, 1);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn outcomes_of_permits_from_before_a_trip_do_not_affect_the_new_state() {
    let (breaker, clock) = breaker(BreakerConfig {
        consecutive_failures: Some(1),
        half_open_probes: 1,
        ..config()
    });
    let early = breaker.try_acquire().unwrap(); // closed-state permit
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
    clock.advance(secs(10));
    let probe = breaker.try_acquire().unwrap();
    // A late success from before the trip must not close the breaker...
    early.record_success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.try_acquire().is_err(), "...nor free a probe slot");
    probe.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn state_changes_are_published_in_order() {
    let (breaker, clock) = open_by_consecutive();
    let mut events = breaker.subscribe();
    let t0 = clock.now();
    fail(&breaker, 3);
    clock.advance(secs(10));
    succeed(&breaker, 2);
    let changes: Vec<StateChange> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert_eq!(
        changes,
        [
            StateChange {
                from: BreakerState::Closed,
                to: BreakerState::Open,
                at: t0
            },
            StateChange {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                at: t0 + secs(10)
            },
            StateChange {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed,
                at: t0 + secs(10)
            },
        ]
    );
}

#[test]
fn metrics_count_calls_outcomes_rejections_and_trips() {
    let (breaker, clock) = open_by_consecutive();
    succeed(&breaker, 2);
    breaker.try_acquire().unwrap().record_ignored();
    drop(breaker.try_acquire().unwrap());
    fail(&breaker, 3);
    assert!(breaker.try_acquire().is_err());
    assert!(breaker.try_acquire().is_err());
    clock.advance(secs(10));
    let m = breaker.metrics();
    assert_eq!(m.state, BreakerState::Open);
    assert_eq!(
        (m.calls, m.successes, m.failures, m.ignored, m.cancelled),
        (7, 2, 3, 1, 1)
    );
    assert_eq!((m.rejections, m.trips), (2, 1));
}

#[tokio::test]
async fn call_records_ok_as_success_and_err_as_failure() {
    let (breaker, _) = breaker(BreakerConfig {
        consecutive_failures: Some(2),
        ..config()
    });
    assert_eq!(breaker.call(async { Ok::<_, &str>(1) }).await.unwrap(), 1);
    for _ in 0..2 {
        let err = breaker
            .call(async { Err::<(), _>("boom") })
            .await
            .unwrap_err();
        assert_eq!(err.into_inner(), Some("boom"));
    }
    let err = breaker.call(async { Ok::<_, &str>(2) }).await.unwrap_err();
    assert!(
        matches!(err, BreakerError::Open(BreakerOpen { retry_after }) if retry_after == secs(10))
    );
}

#[tokio::test]
async fn call_with_a_classifier_can_ignore_client_errors() {
    let (breaker, _) = breaker(BreakerConfig {
        consecutive_failures: Some(1),
        ..config()
    });
    for _ in 0..10 {
        let result = breaker
            .call_with(async { Err::<(), u16>(404) }, |r| match r {
                Err(code) if *code < 500 => Outcome::Ignored,
                Err(_) => Outcome::Failure,
                Ok(()) => Outcome::Success,
            })
            .await;
        assert!(matches!(result, Err(BreakerError::Inner(404))));
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().ignored, 10);
}

#[test]
fn a_cancelled_call_future_releases_its_probe() {
    use futures::FutureExt;
    let (breaker, clock) = breaker(BreakerConfig {
        consecutive_failures: Some(1),
        half_open_probes: 1,
        ..config()
    });
    fail(&breaker, 1);
    clock.advance(secs(10));
    // The probe's call never finishes and is dropped (a timeout, a client
    // that went away).
    let mut call = Box::pin(breaker.call(futures::future::pending::<Result<(), ()>>()));
    assert!((&mut call).now_or_never().is_none());
    assert!(breaker.try_acquire().is_err(), "the probe is in flight");
    drop(call);
    breaker
        .try_acquire()
        .expect("slot released")
        .record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn clones_share_one_breaker() {
    let (breaker, _) = open_by_consecutive();
    let clone = breaker.clone();
    fail(&clone, 3);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn bounds() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn future_is_send<F: std::future::Future + Send>(_: F) {}
    send_sync::<CircuitBreaker>();
    send_sync::<resilience_core::breaker::BreakerPermit>();
    send_sync::<BreakerOpen>();
    send_sync::<BreakerError<std::io::Error>>();
    send_sync::<StateChange>();
    let breaker = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    future_is_send(breaker.call(async { Ok::<(), std::io::Error>(()) }));
}

#[test]
fn shared_across_threads() {
    let (breaker, _) = breaker(BreakerConfig {
        window: WindowConfig::Count { calls: 1000 },
        ..config()
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| succeed(&breaker, 1_000));
        }
    });
    let m = breaker.metrics();
    assert_eq!(
        (m.calls, m.successes, m.window_calls),
        (4_000, 4_000, 1_000)
    );
}
