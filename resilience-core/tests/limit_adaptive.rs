//! Specification of `AdaptiveLimit`: AIMD and Gradient2 in deterministic
//! scenarios on a `ManualClock`, config validation and serde.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use resilience_core::clock::{Clock, ManualClock};
use resilience_core::limit::{
    AdaptiveLimit, AdaptiveLimitConfig, AdaptivePermit, AimdConfig, Gradient2Config, LimitAlgorithm,
};

fn adaptive(algorithm: LimitAlgorithm) -> (AdaptiveLimit, ManualClock) {
    let clock = ManualClock::new();
    let limit = AdaptiveLimit::with_clock(
        AdaptiveLimitConfig {
            algorithm,
            max_queued: 0,
            ..AdaptiveLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    (limit, clock)
}

/// One round of saturating load: takes every permit there is (up to
/// `demand`), lets `latency(n)` pass on the clock, reports every outcome.
/// Returns the number of requests admitted.
fn round(
    limit: &AdaptiveLimit,
    clock: &ManualClock,
    demand: usize,
    latency: impl Fn(usize) -> Duration,
    dropped: bool,
) -> usize {
    let permits: Vec<AdaptivePermit> = (0..demand)
        .map_while(|_| limit.try_acquire().ok())
        .collect();
    let n = permits.len();
    assert!(n <= limit.current_limit() || n <= demand);
    clock.advance(latency(n));
    for permit in permits {
        if dropped {
            permit.record_dropped();
        } else {
            permit.record_success();
        }
    }
    assert_eq!(limit.in_flight(), 0);
    n
}

/// A continuous load: every millisecond, as many new requests start as the
/// limit admits; each completes after `latency(in flight when it started)`.
/// Returns the limit at the end of each simulated millisecond.
fn simulate(
    limit: &AdaptiveLimit,
    clock: &ManualClock,
    millis: usize,
    latency: impl Fn(usize) -> Duration,
) -> Vec<usize> {
    let mut running: Vec<(std::time::Instant, AdaptivePermit)> = Vec::new();
    let mut trace = Vec::with_capacity(millis);
    for _ in 0..millis {
        while let Ok(permit) = limit.try_acquire() {
            let done = clock.now() + latency(limit.in_flight());
            running.push((done, permit));
        }
        clock.advance(Duration::from_millis(1));
        let now = clock.now();
        let (finished, still): (Vec<_>, Vec<_>) =
            running.into_iter().partition(|(done, _)| *done <= now);
        running = still;
        for (_, permit) in finished {
            permit.record_success();
        }
        trace.push(limit.current_limit());
    }
    trace
}

/// A server that handles `capacity` requests at once in 10 ms; beyond that
/// requests queue and latency grows linearly with the load.
fn queueing_server(capacity: usize) -> impl Fn(usize) -> Duration {
    move |n| Duration::from_millis(10) * (n.max(capacity) as u32) / (capacity as u32)
}

fn aimd(initial: usize, min: usize, max: usize) -> LimitAlgorithm {
    LimitAlgorithm::Aimd(AimdConfig {
        initial_limit: initial,
        min_limit: min,
        max_limit: max,
        latency_threshold: Duration::from_millis(15),
        ..AimdConfig::default()
    })
}

fn gradient(initial: usize, min: usize, max: usize) -> LimitAlgorithm {
    LimitAlgorithm::Gradient2(Gradient2Config {
        initial_limit: initial,
        min_limit: min,
        max_limit: max,
        ..Gradient2Config::default()
    })
}

#[test]
fn aimd_grows_while_healthy_up_to_max() {
    let (limit, clock) = adaptive(aimd(5, 1, 40));
    for _ in 0..20 {
        round(&limit, &clock, 1_000, |_| Duration::from_millis(5), false);
    }
    assert_eq!(limit.current_limit(), 40);
}

#[test]
fn aimd_drops_under_rising_latency_down_to_min() {
    let (limit, clock) = adaptive(aimd(40, 3, 40));
    let mut previous = limit.current_limit();
    for step in 0..30u32 {
        round(
            &limit,
            &clock,
            1_000,
            |_| Duration::from_millis(20 + 10 * u64::from(step)),
            false,
        );
        assert!(
            limit.current_limit() <= previous,
            "limit grew under rising latency"
        );
        previous = limit.current_limit();
    }
    assert_eq!(limit.current_limit(), 3);
}

#[test]
fn aimd_shrinks_on_dropped_requests() {
    let (limit, clock) = adaptive(aimd(20, 1, 40));
    let permit = limit.try_acquire().unwrap();
    clock.advance(Duration::from_millis(1));
    permit.record_dropped();
    assert_eq!(limit.current_limit(), 18);
    round(&limit, &clock, 1_000, |_| Duration::from_millis(1), true);
    assert!(limit.current_limit() < 18);
    assert!(limit.current_limit() >= 1);
}

#[test]
fn aimd_settles_around_a_queueing_servers_capacity() {
    let (limit, clock) = adaptive(aimd(10, 1, 500));
    let server = queueing_server(50);
    for _ in 0..200 {
        round(&limit, &clock, 10_000, &server, false);
    }
    // Latency crosses the 15 ms threshold above 75 in flight: the sawtooth
    // stays between the capacity and that point.
    let admitted: Vec<usize> = (0..100)
        .map(|_| round(&limit, &clock, 10_000, &server, false))
        .collect();
    // A sawtooth: grows past the point where latency crosses the 15 ms
    // threshold (75 in flight), shrinks by 10 % per round trip back below
    // it. It never collapses and never runs off to the max of 500.
    let (low, high) = (
        *admitted.iter().min().unwrap(),
        *admitted.iter().max().unwrap(),
    );
    let mean = admitted.iter().sum::<usize>() / admitted.len();
    assert!(low >= 50 && high <= 150, "admitted {low}..={high}");
    assert!((60..=120).contains(&mean), "mean {mean}");
}

#[test]
fn gradient2_grows_while_latency_is_steady() {
    let (limit, clock) = adaptive(gradient(10, 1, 100));
    let mut previous = limit.current_limit();
    for _ in 0..40 {
        round(&limit, &clock, 1_000, |_| Duration::from_millis(10), false);
        assert!(limit.current_limit() >= previous);
        previous = limit.current_limit();
    }
    assert_eq!(limit.current_limit(), 100);
}

#[test]
fn gradient2_drops_when_latency_rises_and_respects_min() {
    let (limit, clock) = adaptive(gradient(100, 5, 100));
    for _ in 0..5 {
        round(&limit, &clock, 1_000, |_| Duration::from_millis(10), false);
    }
    assert_eq!(limit.current_limit(), 100);
    for _ in 0..10 {
        round(&limit, &clock, 1_000, |_| Duration::from_millis(100), false);
    }
    let current = limit.current_limit();
    assert!(current < 20, "limit {current} after latency rose 10x");
    assert!(current >= 5);
}

#[test]
fn aimd_settles_around_a_queueing_servers_capacity_under_continuous_load() {
    let (limit, clock) = adaptive(aimd(10, 1, 500));
    let trace = simulate(&limit, &clock, 5_000, queueing_server(50));
    // Latency crosses the 15 ms threshold at 75 in flight; the sawtooth
    // stays around that point, far from the max of 500.
    let tail = &trace[1_000..];
    let (low, high) = (*tail.iter().min().unwrap(), *tail.iter().max().unwrap());
    assert!(low >= 50 && high <= 160, "limit ranged over {low}..={high}");
}

#[test]
fn gradient2_shrinks_soon_after_the_servers_capacity_drops() {
    let (limit, clock) = adaptive(gradient(10, 1, 200));
    simulate(&limit, &clock, 1_000, queueing_server(400));
    assert_eq!(limit.current_limit(), 200);
    // The server now handles 20 at once: 10x the latency at 200 in flight.
    let trace = simulate(&limit, &clock, 300, queueing_server(20));
    let low = *trace.iter().min().unwrap();
    assert!(
        low <= 40,
        "limit never went below {low} after the capacity dropped"
    );
}

#[test]
fn gradient2_recovers_after_an_overload_ends() {
    let (limit, clock) = adaptive(gradient(50, 1, 200));
    for _ in 0..50 {
        round(&limit, &clock, 1_000, |_| Duration::from_millis(200), false);
    }
    for _ in 0..50 {
        round(&limit, &clock, 1_000, |_| Duration::from_millis(10), false);
    }
    assert_eq!(limit.current_limit(), 200);
}

#[test]
fn a_permit_dropped_without_an_outcome_changes_nothing() {
    let (limit, clock) = adaptive(aimd(4, 1, 40));
    let permits: Vec<_> = (0..4).map(|_| limit.try_acquire().unwrap()).collect();
    clock.advance(Duration::from_secs(60));
    drop(permits);
    assert_eq!(limit.current_limit(), 4);
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn a_lowered_limit_is_enforced_on_new_acquisitions() {
    let (limit, clock) = adaptive(aimd(4, 1, 4));
    let permits: Vec<_> = (0..4).map(|_| limit.try_acquire().unwrap()).collect();
    clock.advance(Duration::from_millis(1));
    permits.into_iter().next().unwrap().record_dropped();
    assert_eq!(limit.current_limit(), 3);
    // Three permits are still held (the rest were dropped unreported).
    assert_eq!(limit.in_flight(), 0);
    let held: Vec<_> = (0..3).map(|_| limit.try_acquire().unwrap()).collect();
    assert!(limit.try_acquire().is_err());
    assert_eq!(held.len(), 3);
}

#[test]
fn latency_is_measured_on_the_injected_clock() {
    let (limit, clock) = adaptive(aimd(4, 1, 40));
    let permit = limit.try_acquire().unwrap();
    clock.advance(Duration::from_millis(1234));
    assert_eq!(permit.elapsed(), Duration::from_millis(1234));
    permit.record_success();
}

#[tokio::test]
async fn acquire_waits_in_the_queue_and_adapts_too() {
    let clock = ManualClock::new();
    let limit = AdaptiveLimit::with_clock(
        AdaptiveLimitConfig {
            algorithm: aimd(1, 1, 10),
            max_queued: 4,
            queue_timeout: None,
            ..AdaptiveLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let first = limit.acquire().await.unwrap();
    let waiter = {
        let limit = limit.clone();
        tokio::spawn(async move { limit.acquire().await.map(AdaptivePermit::record_success) })
    };
    while limit.queued() == 0 {
        tokio::task::yield_now().await;
    }
    clock.advance(Duration::from_millis(1));
    first.record_success();
    waiter.await.unwrap().unwrap();
    assert!(limit.current_limit() >= 2);
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn invalid_configs_are_errors_naming_the_nested_field() {
    let cases = [
        (
            AdaptiveLimitConfig {
                algorithm: LimitAlgorithm::Aimd(AimdConfig {
                    backoff_ratio: f64::NAN,
                    ..AimdConfig::default()
                }),
                ..AdaptiveLimitConfig::default()
            },
            "algorithm.aimd.backoff_ratio",
        ),
        (
            AdaptiveLimitConfig {
                algorithm: LimitAlgorithm::Aimd(AimdConfig {
                    backoff_ratio: -0.9,
                    ..AimdConfig::default()
                }),
                ..AdaptiveLimitConfig::default()
            },
            "algorithm.aimd.backoff_ratio",
        ),
        (
            AdaptiveLimitConfig {
                algorithm: aimd(5, 10, 20),
                ..AdaptiveLimitConfig::default()
            },
            "algorithm.aimd.initial_limit",
        ),
        (
            AdaptiveLimitConfig {
                algorithm: gradient(10, 30, 20),
                ..AdaptiveLimitConfig::default()
            },
            "algorithm.gradient2.max_limit",
        ),
        (
            AdaptiveLimitConfig {
                algorithm: gradient(0, 0, 20),
                ..AdaptiveLimitConfig::default()
            },
            "algorithm.gradient2.min_limit",
        ),
        (
            AdaptiveLimitConfig {
                algorithm: LimitAlgorithm::Gradient2(Gradient2Config {
                    smoothing: f64::NAN,
                    ..Gradient2Config::default()
                }),
                ..AdaptiveLimitConfig::default()
            },
            "algorithm.gradient2.smoothing",
        ),
        (
            AdaptiveLimitConfig {
                queue_timeout: Some(Duration::ZERO),
                ..AdaptiveLimitConfig::default()
            },
            "queue_timeout",
        ),
    ];
    for (config, field) in cases {
        assert_eq!(AdaptiveLimit::new(config).unwrap_err().field(), field);
    }
}

#[test]
fn config_round_trips_through_json_with_human_durations() {
    let config = AdaptiveLimitConfig {
        algorithm: aimd(5, 1, 50),
        ..AdaptiveLimitConfig::default()
    };
    let json = serde_json::to_string(&config).unwrap();
    assert!(
        json.contains(r#""aimd":{"#) && json.contains(r#""15ms""#),
        "{json}"
    );
    let back: AdaptiveLimitConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    let default: AdaptiveLimitConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(default, AdaptiveLimitConfig::default());
}

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    assert!(serde_json::from_str::<AdaptiveLimitConfig>(r#"{"max_queue": 1}"#).is_err());
    assert!(
        serde_json::from_str::<AdaptiveLimitConfig>(r#"{"algorithm": {"aimd": {"ratio": 0.5}}}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<AdaptiveLimitConfig>(r#"{"algorithm": {"vegas": {}}}"#).is_err()
    );
}

#[test]
fn bounds() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync_clone::<AdaptiveLimit>();
    send_sync_clone::<AdaptiveLimitConfig>();
    send_static::<AdaptivePermit>();
}
