//! Every metric of the crate, recorded through a thread-local test recorder
//! (`metrics::with_local_recorder`: no global state), compared with the
//! resilience-core table of `docs/metrics.md`. Drives every mechanism through
//! every decision: adding, renaming or dropping a metric without the table
//! (or a decision that no longer counts) fails here.
#![cfg(feature = "metrics")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, CircuitBreaker};
use resilience_core::budget::{
    KeyedRetryBudget, KeyedRetryBudgetConfig, RetryBudget, RetryBudgetConfig,
};
use resilience_core::clock::ManualClock;
use resilience_core::limit::{
    AdaptiveLimit, AdaptiveLimitConfig, AimdConfig, ConcurrencyLimit, ConcurrencyLimitConfig,
    LimitAlgorithm,
};
use resilience_core::rate::{
    KeyedRateLimiter, KeyedRateLimiterConfig, RateLimiter, RateLimiterConfig,
};
use resilience_core::restart::{RestartBackoff, RestartBackoffConfig};
use resilience_core::retry::{ErrorClass, RetryConfig, RetryPolicy};
use resilience_core::signal::{
    EventAggregator, EventAggregatorConfig, Hysteresis, HysteresisConfig,
};
use resilience_core::throttle::{AdaptiveThrottle, AdaptiveThrottleConfig};
use resilience_core::{InstanceName, Named};

/// `(type, label keys other than name)` of every metric in the
/// resilience-core table of docs/metrics.md.
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc = include_str!("../../docs/metrics.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("resilience-core"))
        .expect("a resilience-core section");
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "| name | type | labels | meaning |: {line}");
        let name = cells[0].trim_matches('`').to_owned();
        let labels: BTreeSet<String> = cells[2]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            labels.contains("name"),
            "{name}: every series has a name label"
        );
        let labels = labels.into_iter().filter(|l| l != "name").collect();
        let previous = table.insert(name.clone(), (cells[1].to_owned(), labels));
        assert!(previous.is_none(), "{name} is in the table twice");
    }
    assert!(!table.is_empty(), "the resilience-core table is empty");
    table
}

fn name(s: &str) -> InstanceName {
    InstanceName::new(s).unwrap()
}

/// Polls `future` to completion without a runtime: every sleep is on an
/// auto-advancing `ManualClock`, so nothing ever waits.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the future did not complete on the auto-advancing clock");
}

/// Every instance of the test, built while the test recorder is installed.
struct Instances {
    budget: Arc<RetryBudget>,
    keyed_budget: KeyedRetryBudget<&'static str>,
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    limit: ConcurrencyLimit,
    adaptive: AdaptiveLimit,
    rate: RateLimiter,
    keyed_rate: KeyedRateLimiter<&'static str>,
    throttle: AdaptiveThrottle,
    restart: RestartBackoff,
    signal: Hysteresis,
    aggregator: EventAggregator<&'static str>,
}

fn build(clock: &ManualClock) -> Instances {
    let budget = Arc::new(
        RetryBudget::from_named(
            Named::new(
                "budget",
                RetryBudgetConfig {
                    ttl: Duration::from_secs(10),
                    min_retries_per_sec: 0,
                    retry_ratio: 0.5,
                },
            ),
            clock.clone(),
        )
        .unwrap(),
    );
    let keyed_budget = KeyedRetryBudget::with_clock(
        KeyedRetryBudgetConfig {
            max_keys: 1,
            idle_ttl: Duration::from_secs(10),
            budget: RetryBudgetConfig {
                ttl: Duration::from_secs(10),
                ..RetryBudgetConfig::default()
            },
        },
        clock.clone(),
    )
    .unwrap()
    .named(name("keyed-budget"));
    let policy = RetryPolicy::new(RetryConfig {
        max_attempts: 2,
        backoff: BackoffConfig {
            base: Duration::from_millis(1),
            jitter: Jitter::None,
            ..BackoffConfig::default()
        },
        per_attempt_timeout: Some(Duration::from_millis(100)),
        ..RetryConfig::default()
    })
    .unwrap()
    .named(name("retry"))
    .with_clock(clock.clone())
    .with_budget(budget.clone());
    let breaker = CircuitBreaker::from_named(
        Named::new(
            "breaker",
            BreakerConfig {
                consecutive_failures: Some(1),
                half_open_probes: 1,
                slow_call_duration: Some(Duration::from_secs(1)),
                open_wait: BackoffConfig {
                    base: Duration::from_secs(1),
                    jitter: Jitter::None,
                    ..BreakerConfig::default().open_wait
                },
                ..BreakerConfig::default()
            },
        ),
        clock.clone(),
    )
    .unwrap();
    let limit = ConcurrencyLimit::from_named(
        Named::new(
            "limit",
            ConcurrencyLimitConfig {
                max_concurrent: 1,
                max_queued: 1,
                queue_timeout: Some(Duration::from_secs(1)),
                ..ConcurrencyLimitConfig::default()
            },
        ),
        clock.clone(),
    )
    .unwrap();
    let adaptive = AdaptiveLimit::with_clock(
        AdaptiveLimitConfig {
            algorithm: LimitAlgorithm::Aimd(AimdConfig {
                initial_limit: 4,
                ..AimdConfig::default()
            }),
            ..AdaptiveLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap()
    .named(name("adaptive"));
    let rate_config = RateLimiterConfig {
        rate: 1,
        per: Duration::from_secs(1),
        burst: 1,
    };
    let rate =
        RateLimiter::from_named(Named::new("rate", rate_config.clone()), clock.clone()).unwrap();
    let keyed_rate = KeyedRateLimiter::from_named(
        Named::new(
            "keyed-rate",
            KeyedRateLimiterConfig {
                limit: rate_config,
                max_keys: 1,
            },
        ),
        clock.clone(),
    )
    .unwrap();
    let throttle = AdaptiveThrottle::with_seed(
        AdaptiveThrottleConfig {
            k: 1.0,
            ..AdaptiveThrottleConfig::default()
        },
        clock.clone(),
        7,
    )
    .unwrap()
    .named(name("throttle"));
    let restart = RestartBackoff::from_named(
        Named::new(
            "restart",
            RestartBackoffConfig {
                reset_after: Duration::from_secs(60),
                ..RestartBackoffConfig::default()
            },
        ),
        clock.clone(),
    )
    .unwrap();
    let signal = Hysteresis::from_named(Named::new(
        "signal",
        HysteresisConfig {
            high: 0.9,
            low: 0.8,
            fire_after: 1,
            clear_after: 1,
            ..HysteresisConfig::default()
        },
    ))
    .unwrap();
    let aggregator = EventAggregator::from_named(
        Named::new(
            "aggregator",
            EventAggregatorConfig {
                window: Duration::from_secs(10),
                max_fingerprints: 1,
            },
        ),
        clock.clone(),
    )
    .unwrap();
    Instances {
        budget,
        keyed_budget,
        policy,
        breaker,
        limit,
        adaptive,
        rate,
        keyed_rate,
        throttle,
        restart,
        signal,
        aggregator,
    }
}

/// Every decision of every mechanism at least once.
fn drive(clock: &ManualClock, m: &mut Instances) {
    // Budget: deposits, a granted and a denied withdrawal.
    m.budget.deposit();
    m.budget.deposit();
    assert!(m.budget.try_withdraw());
    assert!(!m.budget.try_withdraw());

    // Keyed budget: a key, an overflow (the only key is busy), an eviction.
    let held = m.keyed_budget.budget_for(&"a");
    let _overflow = m.keyed_budget.budget_for(&"b");
    drop(held);
    clock.advance(Duration::from_secs(11));
    assert_eq!(m.keyed_budget.evict_idle(), 1);
    m.keyed_budget.deposit(&"c");
    assert!(m.keyed_budget.try_withdraw(&"c"));

    // Retry: a success, then every give-up reason and an attempt timeout
    // (backoff sleeps and timeouts complete at once on an auto-advancing
    // clock).
    clock.set_auto_advance(true);
    let ok = run(m.policy.run_classified(
        |(): &()| ErrorClass::Transient,
        |_| async { Ok::<_, ()>(1) },
    ));
    assert_eq!(ok.unwrap(), 1);
    let permanent = run(m.policy.run_classified(
        |(): &()| ErrorClass::Permanent,
        |_| async { Err::<(), _>(()) },
    ));
    assert!(permanent.is_err());
    // Each run deposits half a token: enough by now for one retry, then
    // the attempts are exhausted.
    let exhausted = run(m.policy.run_classified(
        |(): &()| ErrorClass::Transient,
        |_| async { Err::<(), _>(()) },
    ));
    assert!(exhausted.is_err());
    // No token left: the budget denies the retry.
    while m.budget.try_withdraw() {}
    let denied = run(m.policy.run_classified(
        |(): &()| ErrorClass::Transient,
        |_| async { Err::<(), _>(()) },
    ));
    assert!(denied.is_err());
    // An attempt that never answers times out (per-attempt timeout).
    let timed_out = run(m.policy.run_classified(
        |(): &()| ErrorClass::Transient,
        |_| std::future::pending::<Result<(), ()>>(),
    ));
    assert!(timed_out.is_err());
    let deadline = resilience_core::deadline::Deadline::after(clock.clone(), Duration::ZERO);
    let stopped = run(m.policy.run_classified_with_deadline(
        &deadline,
        |(): &()| ErrorClass::Transient,
        |_| async { Err::<(), _>(()) },
    ));
    assert!(stopped.is_err());
    assert!(m.policy.stats().deadline_stops >= 1);
    clock.set_auto_advance(false);

    // Breaker: success, ignored, cancelled, slow, failure (trips), rejected,
    // half-open probe, closes.
    m.breaker.try_acquire().unwrap().record_success();
    m.breaker.try_acquire().unwrap().record_ignored();
    drop(m.breaker.try_acquire().unwrap());
    let slow = m.breaker.try_acquire().unwrap();
    clock.advance(Duration::from_secs(2));
    slow.record_success();
    m.breaker.try_acquire().unwrap().record_failure();
    assert!(m.breaker.try_acquire().is_err());
    clock.advance(Duration::from_secs(10));
    m.breaker.try_acquire().unwrap().record_success();

    // Concurrency limit: admitted, shed for want of a permit, shed with a
    // full queue, shed after the queue timeout.
    let permit = m.limit.try_acquire().unwrap();
    assert!(m.limit.try_acquire().is_err());
    {
        let mut queued = std::pin::pin!(m.limit.acquire());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(queued.as_mut().poll(&mut cx).is_pending());
        assert!(run(m.limit.acquire()).is_err()); // the queue is full
        clock.advance(Duration::from_secs(2));
        assert!(matches!(queued.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    }
    drop(permit);

    // Adaptive limit: a success and a drop.
    m.adaptive.try_acquire().unwrap().record_success();
    m.adaptive.try_acquire().unwrap().record_dropped();

    // Rate limiters: allowed, limited; a keyed eviction.
    assert!(m.rate.check().is_ok());
    assert!(m.rate.check().is_err());
    assert!(m.keyed_rate.check(&"a").is_ok());
    assert!(m.keyed_rate.check(&"a").is_err());
    assert!(m.keyed_rate.check(&"b").is_ok()); // evicts the busy key "a"

    // Throttle: allowed, then the backend rejects everything until the
    // throttle rejects locally.
    m.throttle.try_acquire().unwrap();
    m.throttle.record_accepted();
    let mut throttled = false;
    for _ in 0..1000 {
        if m.throttle.try_acquire().is_err() {
            throttled = true;
            break;
        }
        m.throttle.record_rejected_by_backend();
    }
    assert!(throttled);

    // Restart backoff: crashes, then a long run resets the series.
    let restart = &mut m.restart;
    restart.on_started();
    let _ = restart.on_crash();
    restart.on_started();
    clock.advance(Duration::from_secs(61));
    let _ = restart.on_crash();

    // Signal: fires, clears, ignores NaN.
    let signal = &mut m.signal;
    assert!(signal.observe(0.95).is_some());
    assert!(signal.observe(0.5).is_some());
    assert!(signal.observe(f64::NAN).is_none());

    // Aggregator: emitted, suppressed, evicted, summarized.
    let aggregator = &mut m.aggregator;
    assert!(aggregator.record("x", "one".to_owned()).is_some());
    assert!(aggregator.record("x", "two".to_owned()).is_none());
    assert!(aggregator.record("y", "three".to_owned()).is_some()); // evicts "x"
    assert!(aggregator.record("y", "four".to_owned()).is_none());
    assert_eq!(aggregator.flush().summaries.len(), 1);
}

#[test]
fn every_metric_is_in_the_table_and_every_decision_counts() {
    let documented = documented();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    // Handles are registered at construction: only that needs the
    // recorder; `drive` records through the handles.
    let mut instances = metrics::with_local_recorder(&recorder, || build(&clock));
    drive(&clock, &mut instances);

    let names = [
        "budget",
        "keyed-budget",
        "retry",
        "breaker",
        "limit",
        "adaptive",
        "rate",
        "keyed-rate",
        "throttle",
        "restart",
        "signal",
        "aggregator",
    ];
    let mut seen: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    // Per counter series (labels but the name): the largest value over the
    // instances. Every decision must have been counted by some instance.
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    let mut instances_seen = BTreeSet::new();
    for (key, _unit, _description, value) in snapshotter.snapshot().into_vec() {
        let kind = match key.kind() {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        let key = key.key();
        let metric = key.name().to_owned();
        let instance = key.labels().find(|l| l.key() == "name").map_or_else(
            || panic!("{metric} has no name label"),
            |l| l.value().to_owned(),
        );
        let labels: BTreeSet<String> = key
            .labels()
            .map(|l| l.key().to_owned())
            .filter(|k| k != "name")
            .collect();
        if instance.is_empty() {
            // Registered by a constructor before `named` renamed it.
            continue;
        }
        assert!(
            names.contains(&instance.as_str()),
            "{metric}: unexpected name {instance:?}"
        );
        instances_seen.insert(instance.clone());
        if let DebugValue::Counter(count) = value {
            let series = format!(
                "{metric}{:?}",
                key.labels()
                    .filter(|l| l.key() != "name")
                    .collect::<Vec<_>>()
            );
            let max = counters.entry(series).or_default();
            *max = (*max).max(count);
        }
        let entry = seen
            .entry(metric.clone())
            .or_insert_with(|| (kind.to_owned(), BTreeSet::new()));
        assert_eq!(entry.0, kind, "{metric} recorded as two kinds");
        entry.1.extend(labels);
    }
    let seen_names: BTreeSet<&String> = seen.keys().collect();
    let documented_names: BTreeSet<&String> = documented.keys().collect();
    assert_eq!(
        seen_names, documented_names,
        "metric names recorded (left) differ from the resilience-core table of docs/metrics.md (right)"
    );
    for (metric, (kind, labels)) in &seen {
        let (doc_kind, doc_labels) = &documented[metric];
        assert_eq!(kind, doc_kind, "{metric}: type in docs/metrics.md");
        assert_eq!(labels, doc_labels, "{metric}: labels in docs/metrics.md");
    }
    let expected: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(
        instances_seen, expected,
        "every instance records under its name"
    );
    let zero_counters: Vec<&String> = counters
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(series, _)| series)
        .collect();
    assert!(
        zero_counters.is_empty(),
        "decisions that were driven but not counted: {zero_counters:#?}"
    );
}
