//! The `tower_flaky_http` example's client stack against its loopback HTTP
//! server, with a manual clock (backoff and `Retry-After` waits are recorded,
//! not slept) and a bounded request count.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "../examples/tower_flaky_http.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::time::Duration;

use resilience_core::breaker::BreakerState;
use resilience_core::clock::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_stack_retries_trips_the_breaker_and_accounts_for_every_attempt() {
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    let options = example::RunOptions {
        requests: 80,
        // No more in flight than the limit: with an auto-advancing clock a
        // shed request would retry at once, faster than real network calls
        // complete, and burn the budget (shedding is covered by tower_limit).
        concurrency: 3,
        max_concurrent: 3,
        fail_every: 4,
        outage_start: 30,
        outage_end: example::OutageEnd::Hit(60),
        pace: Duration::ZERO,
        server_delay: Duration::ZERO,
        // A timeout would race real network I/O against the auto-advancing
        // clock; attempts and the budget bound the loop here.
        request_timeout: None,
    };

    let report = example::run(clock.clone(), options).await.unwrap();

    // Every request ended in exactly one way.
    assert_eq!(
        report.ok
            + report.unavailable
            + report.shed
            + report.rejected
            + report.gave_up
            + report.other_errors,
        80,
        "{report:#?}"
    );
    assert_eq!(report.other_errors, 0, "{report:#?}");
    // Every attempt reached the server or was refused by a layer below the
    // retry layer.
    assert_eq!(
        report.server_hits + report.attempts_shed + report.attempts_rejected,
        report.attempts,
        "{report:#?}"
    );
    assert_eq!(report.attempts, 80 + report.retries, "{report:#?}");
    assert!(report.retries > 0, "{report:#?}");
    assert!(report.retries <= 80 * 2, "{report:#?}");
    // The outage (30 failing hits in a row) trips the breaker.
    assert!(
        report
            .breaker_transitions
            .contains(&(BreakerState::Closed, BreakerState::Open)),
        "{report:#?}"
    );
    assert!(report.ok > 0, "{report:#?}");
    assert!(
        clock.elapsed() > Duration::ZERO,
        "waits went through the clock"
    );
}

/// The example's server serves the stack's metrics on `GET /metrics`
/// (Prometheus text); after traffic the retry and breaker series are there,
/// labelled with the instances' name. The recorder is thread-local (only
/// the stack's construction needs it: the handles keep recording).
#[cfg(feature = "metrics")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_the_retry_and_breaker_metrics() {
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let observe = example::Observe {
        recorder: Some(&recorder),
        handle: Some(recorder.handle()),
    };
    let options = example::RunOptions {
        requests: 80,
        concurrency: 3,
        max_concurrent: 3,
        fail_every: 4,
        outage_start: 30,
        outage_end: example::OutageEnd::Hit(60),
        pace: Duration::ZERO,
        server_delay: Duration::ZERO,
        request_timeout: None,
    };

    let report = example::run_observed(clock.clone(), options, observe)
        .await
        .unwrap();
    let text = example::scrape(report.server_addr.unwrap()).await.unwrap();

    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in the scrape:\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    };
    let name = example::INSTANCE_NAME;
    assert!(
        report
            .breaker_transitions
            .contains(&(BreakerState::Closed, BreakerState::Open)),
        "{report:#?}"
    );
    // The retry series agree with the policy's own counters.
    assert_eq!(
        value(&format!(
            "breakwater_retry_attempts_total{{name=\"{name}\"}}"
        )),
        report.attempts as f64
    );
    assert_eq!(
        value(&format!(
            "breakwater_retry_retries_total{{name=\"{name}\"}}"
        )),
        report.retries as f64
    );
    assert_eq!(
        value(&format!(
            "breakwater_retry_give_ups_total{{name=\"{name}\",reason=\"budget_exhausted\"}}"
        )),
        report.budget_denials as f64
    );
    assert!(
        value(&format!(
            "breakwater_retry_budget_withdrawals_total{{name=\"{name}\",decision=\"granted\"}}"
        )) >= 1.0
    );
    // The breaker opened (the outage) and rejected the attempts the retry
    // classifier saw rejected.
    assert!(
        value(&format!(
            "breakwater_breaker_transitions_total{{name=\"{name}\",to=\"open\"}}"
        )) >= 1.0
    );
    assert_eq!(
        value(&format!(
            "breakwater_breaker_rejected_total{{name=\"{name}\"}}"
        )),
        report.attempts_rejected as f64
    );
    assert!(
        value(&format!(
            "breakwater_breaker_calls_total{{name=\"{name}\",outcome=\"failure\"}}"
        )) >= 1.0
    );
    assert!(text.contains(&format!("breakwater_breaker_state{{name=\"{name}\"}}")));
    // Nothing was registered unnamed.
    assert!(!text.contains("name=\"\""), "{text}");
}
