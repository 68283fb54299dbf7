//! Breakwater's February configuration, built only from what an operator
//! can see ([`FebSetup`]) and the fixed policy ([`FebBreakwater`]): the
//! signature takes no [`FebWorld`](super::params::FebWorld), so the policy
//! cannot depend on a hidden truth (a test changes every world field and
//! checks the configuration is byte-for-byte the same).

use std::time::Duration;

use fleet_drain::drain::{AdaptiveStartsConfig, DrainConfig};
use fleet_drain::plan::{Amount, DrainLimits};
use resilience_core::limit::ConcurrencyLimitConfig;
use resilience_core::rate::RateLimiterConfig;
use serde::Serialize;

use super::params::{FebBreakwater, FebSetup};

/// Everything Breakwater runs with in February.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakwaterPolicy {
    /// The `DrainController`'s configuration: bounded waves, adaptive start
    /// concurrency per receiver class, probation, a health gate.
    pub drain: DrainConfig,
    /// Each receiver's `node_modules` allocator: a `ConcurrencyLimit` with a
    /// bounded queue that sheds beyond it.
    pub allocator: ConcurrencyLimitConfig,
    /// The boot process's `RateLimiter` in front of the DNS API.
    pub dns: RateLimiterConfig,
}

/// Builds Breakwater's policy. `seed` only seeds the retry jitter.
pub fn breakwater_policy(setup: &FebSetup, bw: &FebBreakwater, seed: u64) -> BreakwaterPolicy {
    let mut drain = DrainConfig {
        limits: DrainLimits {
            max_draining_hosts: bw.max_draining_hosts,
            max_unavailable: Amount::Percent(bw.max_unavailable_percent),
            max_starts_per_host_per_minute: bw.max_starts_per_host_per_minute,
            max_concurrent_starts_per_host: bw.max_concurrent_starts_per_host,
            min_free_capacity: Amount::Count(0),
        },
        adaptive_starts: Some(AdaptiveStartsConfig {
            initial_limit: bw.adaptive_initial_starts,
            min_limit: 1,
            max_limit: bw.max_concurrent_starts_per_host,
            increase_by: bw.adaptive_increase_by,
            backoff_ratio: bw.adaptive_backoff_ratio,
            window: Duration::from_secs(bw.adaptive_window_s),
            confirm_growth: true,
            growth_factor: bw.adaptive_growth_factor,
        }),
        probation: Some(Duration::from_secs(bw.probation_s)),
        check_interval: Duration::from_secs(bw.check_interval_s),
        seed,
        ..DrainConfig::default()
    };
    // The gate's thresholds scale with the fleet the operator sees: a few
    // late failures a minute in a 30,000-app fleet are the adaptive
    // limit's signal, not a reason to stop.
    let per_minute = |per_1000: f64| (per_1000 * setup.apps() as f64 / 1000.0).max(1.0);
    drain.gate.pause_above_failures_per_minute = per_minute(bw.pause_failures_per_1000_apps);
    drain.gate.resume_below_failures_per_minute = per_minute(bw.pause_failures_per_1000_apps) / 3.0;
    drain.gate.abort_above_failures_per_minute = per_minute(bw.abort_failures_per_1000_apps);
    let allocator = ConcurrencyLimitConfig {
        max_concurrent: bw.alloc_max_concurrent as usize,
        max_queued: bw.alloc_max_queued as usize,
        queue_timeout: Some(Duration::from_secs(bw.alloc_queue_timeout_s)),
        ..ConcurrencyLimitConfig::default()
    };
    let dns = RateLimiterConfig {
        rate: bw.dns_client_rate_per_s,
        per: Duration::from_secs(1),
        burst: bw.dns_client_burst,
    };
    BreakwaterPolicy {
        drain,
        allocator,
        dns,
    }
}
