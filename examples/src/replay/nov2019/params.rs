//! Parameters of the November 2019 model, every one documented and
//! overridable with `--set nov.<name>=<value>`.

use serde::{Deserialize, Serialize};

use crate::replay::error::{ReplayError, ensure};

/// The November 2019 model: clients → proxies → API servers, a bad release
/// that multiplies memory per request, and a revert.
///
/// Defaults are chosen so that the healthy system runs at about 60 % of its
/// capacity, the bad release overloads it, and after the revert it *could*
/// serve all traffic again with room to spare: whether it does depends only on
/// the proxies' and servers' policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nov2019Params {
    /// Simulated duration, seconds.
    pub horizon_s: u64,
    /// When the bad release reaches the servers (rolling), seconds.
    pub deploy_at_s: u64,
    /// When the revert starts (rolling), seconds.
    pub revert_at_s: u64,
    /// A rolling deploy or revert restarts the servers spread over this many seconds.
    pub rollout_spread_s: u64,
    /// Client requests per second, Poisson arrivals.
    pub client_rps: f64,
    /// A client waits this long for an answer, then gives up (milliseconds).
    pub client_timeout_ms: u64,
    /// Number of API proxies; each client request goes to one at random.
    pub proxies: usize,
    /// Number of API servers.
    pub servers: usize,
    /// Requests a server processes at once (worker threads / DB pool).
    pub workers_per_server: usize,
    /// Mean service time of a request on a healthy release, milliseconds (exponential).
    pub service_ms: f64,
    /// The bad release's service time multiplier (GC pressure from the deep clone).
    pub bad_service_factor: f64,
    /// Memory a server has, in units of one healthy request's footprint:
    /// more requests than this held at once (queued or in service) and it
    /// runs out of memory and crashes, failing everything it holds.
    pub memory_limit: f64,
    /// The bad release's memory-per-request multiplier (the deep clone).
    pub bad_memory_factor: f64,
    /// Time for a crashed or redeployed server process to boot, milliseconds.
    pub boot_ms: u64,
    /// A freshly booted server is cold (JIT, caches, connection pools): its
    /// service time starts at `cold_service_factor` times normal and falls
    /// linearly back to normal over `warmup_s` seconds.
    pub warmup_s: u64,
    /// Service-time multiplier right after boot (see `warmup_s`).
    pub cold_service_factor: f64,
    /// One-way network latency between tiers, milliseconds.
    pub network_ms: f64,
    /// A proxy gives up on one attempt after this long, milliseconds; the
    /// server keeps working on it (wasted work).
    pub attempt_timeout_ms: u64,
    /// Attempts per request (the first included), for both policies.
    pub max_attempts: u32,

    /// Breakwater: retry budget ratio per proxy.
    pub budget_ratio: f64,
    /// Breakwater: retry budget floor per proxy, retries per second. The floor
    /// is per instance: with 20 proxies, 10/s each is 200 retries/s fleet-wide.
    pub budget_min_retries_per_sec: u32,
    /// Breakwater: backoff base delay, milliseconds (full jitter).
    pub backoff_base_ms: u64,
    /// Breakwater: backoff cap, milliseconds.
    pub backoff_max_ms: u64,
    /// Breakwater: cap on a server's Retry-After hint, milliseconds.
    pub max_retry_after_ms: u64,
    /// Breakwater: requests a server queues beyond its workers before
    /// shedding with a fast 503 (`ConcurrencyLimit::max_queued`).
    pub shed_queue: usize,
    /// Breakwater: a restarted server's traffic ramps up over this many seconds (`SlowStart`).
    pub slow_start_s: u64,
    /// Breakwater: failure rate over the window at which a proxy's breaker
    /// for one server opens.
    pub breaker_failure_rate: f64,
    /// Breakwater: how long an open breaker waits before probing, milliseconds.
    pub breaker_open_ms: u64,
    /// Breakwater: adaptive-throttle K (accepts multiplier).
    pub throttle_k: f64,
    /// Breakwater: adaptive-throttle trailing window, seconds. The SRE book
    /// uses 2 minutes; recovery after an outage takes a few windows, so a
    /// fleet this small uses a shorter one.
    pub throttle_window_s: u64,
}

impl Default for Nov2019Params {
    fn default() -> Self {
        Nov2019Params {
            horizon_s: 900,
            deploy_at_s: 60,
            revert_at_s: 300,
            rollout_spread_s: 10,
            client_rps: 1_000.0,
            client_timeout_ms: 10_000,
            proxies: 20,
            servers: 10,
            workers_per_server: 8,
            service_ms: 50.0,
            bad_service_factor: 2.0,
            memory_limit: 1_000.0,
            bad_memory_factor: 8.0,
            boot_ms: 5_000,
            warmup_s: 30,
            cold_service_factor: 3.0,
            network_ms: 1.0,
            attempt_timeout_ms: 2_000,
            max_attempts: 5,
            budget_ratio: 0.2,
            budget_min_retries_per_sec: 10,
            backoff_base_ms: 50,
            backoff_max_ms: 2_000,
            max_retry_after_ms: 1_000,
            shed_queue: 32,
            slow_start_s: 10,
            breaker_failure_rate: 0.5,
            breaker_open_ms: 2_000,
            throttle_k: 2.0,
            throttle_window_s: 10,
        }
    }
}

impl Nov2019Params {
    /// Checks every parameter; the error names the first invalid one as
    /// `nov.<name>`.
    #[allow(clippy::too_many_lines)] // one check per parameter
    pub fn validate(&self) -> Result<(), ReplayError> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        ensure(
            (10..=86_400).contains(&self.horizon_s),
            "nov.horizon_s",
            format!("must be in 10..=86400, got {}", self.horizon_s),
        )?;
        ensure(
            self.deploy_at_s < self.revert_at_s,
            "nov.revert_at_s",
            format!(
                "must be after deploy_at_s ({}), got {}",
                self.deploy_at_s, self.revert_at_s
            ),
        )?;
        ensure(
            self.revert_at_s < self.horizon_s,
            "nov.revert_at_s",
            format!(
                "must be before horizon_s ({}), got {}",
                self.horizon_s, self.revert_at_s
            ),
        )?;
        ensure(
            positive(self.client_rps) && self.client_rps <= 20_000.0,
            "nov.client_rps",
            format!("must be in (0, 20000], got {}", self.client_rps),
        )?;
        ensure(
            self.client_timeout_ms >= 1,
            "nov.client_timeout_ms",
            "must be at least 1",
        )?;
        ensure(
            (1..=1_000).contains(&self.proxies),
            "nov.proxies",
            format!("must be in 1..=1000, got {}", self.proxies),
        )?;
        ensure(
            (1..=1_000).contains(&self.servers),
            "nov.servers",
            format!("must be in 1..=1000, got {}", self.servers),
        )?;
        ensure(
            (1..=10_000).contains(&self.workers_per_server),
            "nov.workers_per_server",
            format!("must be in 1..=10000, got {}", self.workers_per_server),
        )?;
        ensure(
            positive(self.service_ms),
            "nov.service_ms",
            format!("must be > 0, got {}", self.service_ms),
        )?;
        ensure(
            self.bad_service_factor.is_finite() && self.bad_service_factor >= 1.0,
            "nov.bad_service_factor",
            format!("must be >= 1, got {}", self.bad_service_factor),
        )?;
        ensure(
            positive(self.memory_limit),
            "nov.memory_limit",
            format!("must be > 0, got {}", self.memory_limit),
        )?;
        ensure(
            self.bad_memory_factor.is_finite() && self.bad_memory_factor >= 1.0,
            "nov.bad_memory_factor",
            format!("must be >= 1, got {}", self.bad_memory_factor),
        )?;
        ensure(
            self.network_ms.is_finite() && self.network_ms >= 0.0,
            "nov.network_ms",
            format!("must be >= 0, got {}", self.network_ms),
        )?;
        ensure(
            self.attempt_timeout_ms >= 1,
            "nov.attempt_timeout_ms",
            "must be at least 1",
        )?;
        ensure(
            (1..=20).contains(&self.max_attempts),
            "nov.max_attempts",
            format!("must be in 1..=20, got {}", self.max_attempts),
        )?;
        ensure(
            self.budget_ratio.is_finite() && (0.0..=1000.0).contains(&self.budget_ratio),
            "nov.budget_ratio",
            format!("must be in 0..=1000, got {}", self.budget_ratio),
        )?;
        ensure(
            self.backoff_base_ms >= 1 && self.backoff_max_ms >= self.backoff_base_ms,
            "nov.backoff_max_ms",
            "backoff_base_ms must be >= 1 and backoff_max_ms >= backoff_base_ms",
        )?;
        ensure(
            self.breaker_failure_rate.is_finite()
                && self.breaker_failure_rate > 0.0
                && self.breaker_failure_rate <= 1.0,
            "nov.breaker_failure_rate",
            format!("must be in (0, 1], got {}", self.breaker_failure_rate),
        )?;
        ensure(
            self.cold_service_factor.is_finite() && self.cold_service_factor >= 1.0,
            "nov.cold_service_factor",
            format!("must be >= 1, got {}", self.cold_service_factor),
        )?;
        ensure(
            (1..=3_600).contains(&self.throttle_window_s),
            "nov.throttle_window_s",
            format!("must be in 1..=3600, got {}", self.throttle_window_s),
        )?;
        ensure(
            self.throttle_k.is_finite() && self.throttle_k >= 1.0,
            "nov.throttle_k",
            format!("must be >= 1, got {}", self.throttle_k),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Nov2019Params::default().validate().unwrap();
    }

    #[test]
    fn revert_before_deploy_is_rejected() {
        let p = Nov2019Params {
            deploy_at_s: 100,
            revert_at_s: 50,
            ..Nov2019Params::default()
        };
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("nov.revert_at_s"), "{err}");
    }

    #[test]
    fn nan_rates_are_rejected() {
        let p = Nov2019Params {
            client_rps: f64::NAN,
            ..Nov2019Params::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("client_rps"));
    }
}
