//! Parameters of the November 2019 model, every one documented and
//! overridable with `--set nov.<name>=<value>` (or `nov.<group>.<name>`).
//!
//! They come in groups, and the groups decide who may read them:
//!
//! - [`Setup`]: what everyone can see — the fleet's size, the traffic, the
//!   timeouts the proxies are configured with, and the incident's timeline.
//! - [`World`]: the hidden truths of the platform — how much a server can
//!   do, how much memory it has, how bad the release is, how long a server
//!   takes to boot and warm up. Only the simulation and the [limits](super::limits)
//!   read them; no policy does.
//! - [`NaivePolicy`], [`BreakwaterPolicy`], [`OperatorFixPolicy`],
//!   [`StagedPolicy`]: what each side configures. Breakwater's configuration
//!   is built by [`super::policy::side_config`] from the setup and the
//!   policies only (a test changes every world field and checks that it
//!   does not move).
//!
//! # Calibration to the report
//!
//! The report (`/work/shared/incidents/002_…`, November 4th, 2019) gives a
//! timeline and no fleet sizes:
//!
//! - 14:14 deploy → [`Setup::deploy_at_s`] = 60 s into the run;
//! - 14:41 revert completed, 27 min after the deploy →
//!   [`Setup::revert_at_s`] = 60 + 27 × 60 = 1680 s;
//! - 20:45 the new proxy fleets, started without traffic, begin receiving
//!   it; 21:00 full recovery, 6 h 46 min after the deploy →
//!   [`OperatorFixPolicy::fix_ramp_at_s`] = 60 + 391 × 60 = 23 520 s, ramp
//!   [`OperatorFixPolicy::fix_ramp_s`] = 15 min;
//! - the run lasts 7 hours ([`Setup::horizon_s`] = 25 200 s), long enough to
//!   show the tail (naive) or its absence (Breakwater).
//!
//! Simulating 7 hours of every request at a production rate is too slow for
//! the replay's speed budget, so the model is **scaled down**: 50 client
//! requests per second on 10 servers that can do 80 per second together
//! (the healthy system runs at 62.5 % of its capacity, the ratio of the
//! first version of this model, which ran 1000 req/s on 1600). Every
//! per-server quantity is scaled with the capacity (memory in requests is
//! 6.25 s of a server's work, as before), and every time constant
//! (timeouts, boot, warm-up, the timeline) is kept, so queues fill and
//! drain in the same seconds as at full scale.

use serde::{Deserialize, Serialize};

use crate::replay::error::{ReplayError, ensure};

/// The November 2019 model: clients → proxies → API servers, a bad release
/// that multiplies memory per request, and a revert. See the module docs
/// for the groups and the calibration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nov2019Params {
    /// Visible to every side.
    pub setup: Setup,
    /// Hidden truths of the platform (read by the simulation and the limits only).
    pub world: World,
    /// The naive side's policy.
    pub naive: NaivePolicy,
    /// Breakwater's policy.
    pub breakwater: BreakwaterPolicy,
    /// The operators' fix of November 2019 (naive proxies and servers).
    pub operator_fix: OperatorFixPolicy,
    /// The bad release through a staged `Rollout` (Breakwater otherwise).
    pub staged: StagedPolicy,
}

/// What every side can see: fleet, traffic, configured timeouts, timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Setup {
    /// Simulated duration, seconds. Default 7 hours (the report's outage).
    pub horizon_s: u64,
    /// When the bad release reaches the servers (rolling), seconds.
    pub deploy_at_s: u64,
    /// When the revert starts (rolling), seconds: the report's 27 minutes
    /// after the deploy.
    pub revert_at_s: u64,
    /// A rolling deploy or revert restarts the servers spread over this many seconds.
    pub rollout_spread_s: u64,
    /// Client requests per second, Poisson arrivals (scaled down, see the module docs).
    pub client_rps: f64,
    /// A client waits this long for an answer, then gives up (milliseconds).
    pub client_timeout_ms: u64,
    /// Number of API proxies; each client request goes to one at random.
    pub proxies: usize,
    /// Number of API servers.
    pub servers: usize,
    /// A proxy gives up on one attempt after this long, milliseconds; the
    /// server keeps working on it (wasted work).
    pub attempt_timeout_ms: u64,
    /// Attempts per request (the first included) the proxies are configured
    /// with, for every side.
    pub max_attempts: u32,
    /// The ablation runs (naive plus one mechanism) end this many seconds
    /// after the revert instead of at `horizon_s`: what each mechanism does
    /// alone is decided within minutes of the revert, and nine 7-hour runs
    /// would not fit the replay's time budget.
    pub ablation_after_revert_s: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            horizon_s: 25_200,
            deploy_at_s: 60,
            revert_at_s: 1_680,
            rollout_spread_s: 10,
            client_rps: 50.0,
            client_timeout_ms: 10_000,
            proxies: 20,
            servers: 10,
            attempt_timeout_ms: 2_000,
            max_attempts: 5,
            ablation_after_revert_s: 1_200,
        }
    }
}

/// The hidden truths: capacity, memory, the bad release, boot and warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// Requests a server processes at once (its event loop plus database
    /// pool). With `service_ms` this is the server's capacity.
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
}

impl Default for World {
    fn default() -> Self {
        World {
            workers_per_server: 2,
            service_ms: 250.0,
            bad_service_factor: 2.0,
            memory_limit: 50.0,
            bad_memory_factor: 8.0,
            boot_ms: 5_000,
            warmup_s: 30,
            cold_service_factor: 3.0,
            network_ms: 1.0,
        }
    }
}

/// The naive side: proxies retry every failure at once up to
/// `max_attempts`; servers accept everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NaivePolicy {
    /// Delay before a naive retry, microseconds ("at once").
    pub naive_retry_delay_us: u64,
}

impl Default for NaivePolicy {
    fn default() -> Self {
        NaivePolicy {
            naive_retry_delay_us: 1,
        }
    }
}

/// Breakwater's policy: what a careful operator writes knowing the setup
/// (fleet size, traffic, timeouts) but not the world (capacity, memory,
/// how bad a release will be). Every default is the library's, a published
/// one, or derived from the visible setup; none was chosen by looking at
/// how it scores on the hidden world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakwaterPolicy {
    /// Retry budget ratio (retries per original request), per proxy. The
    /// library's and Finagle's default, 0.2.
    pub budget_ratio: f64,
    /// Retry budget floor for the **whole fleet**, retries per second: each
    /// proxy's budget gets `budget_fleet_min_retries_per_sec / proxies`
    /// (rounded down), as the budget's docs require ("the floor is per
    /// instance: size it for the fleet"). 10/s is the library's per-client
    /// default, here granted once for all proxies, not 20 times.
    pub budget_fleet_min_retries_per_sec: u32,
    /// Retry budget TTL, seconds (library default 10).
    pub budget_ttl_s: u64,
    /// Backoff base delay, milliseconds (full jitter).
    pub backoff_base_ms: u64,
    /// Backoff cap, milliseconds.
    pub backoff_max_ms: u64,
    /// Cap on a server's Retry-After hint, milliseconds.
    pub max_retry_after_ms: u64,
    /// Servers: which limit sheds load. `fixed` (the default, the first
    /// version's): a `ConcurrencyLimit` of `shed_max_concurrent` plus a queue
    /// of `shed_queue`; `aimd` or `gradient2`: an `AdaptiveLimit` that starts
    /// at `shed_max_concurrent` and moves with the latency it measures (see
    /// [`ShedAlgorithm`]; what-ifs in the README).
    pub shed_algorithm: ShedAlgorithm,
    /// Servers: requests a server admits at once before queueing
    /// (`ConcurrencyLimit::max_concurrent`; the adaptive limits' initial
    /// limit). Written blind: a Node.js API process has one event loop and
    /// overlaps a few database round trips; the real number of workers is
    /// part of the hidden world.
    pub shed_max_concurrent: usize,
    /// Servers: requests queued behind the admitted ones before shedding
    /// with a fast 503 (`ConcurrencyLimit::max_queued`).
    pub shed_queue: usize,
    /// Servers: longest wait in that queue, as a share of the proxies'
    /// (visible) attempt timeout: a request that waits longer is shed,
    /// since its proxy would give up on it anyway.
    pub shed_queue_timeout_share: f64,
    /// Servers: memory guard. A server refuses a request with a fast 503
    /// when admitting it would take the memory it holds above this share of
    /// its own memory limit. The server reads both at run time (heap in use
    /// and the heap's limit, as Node's `v8.getHeapStatistics()` does, or an
    /// overload manager's heap monitor): the operator writes only the share,
    /// never the limit. A round 90 %.
    pub shed_memory_share: f64,
    /// Servers: whether the memory guard is on (`false` for what-ifs: the
    /// adaptive limit alone).
    pub shed_memory_guard: bool,
    /// Servers: a restarted server's traffic ramps up over this many seconds
    /// (`SlowStart`; the library's default, 30 s).
    pub slow_start_s: u64,
    /// Where the slow-start ramp acts (see [`SlowStartAt`]).
    pub slow_start_at: SlowStartAt,
    /// Failure rate over the window at which a proxy's breaker for one
    /// server opens (ablation only).
    pub breaker_failure_rate: f64,
    /// How long an open breaker waits before probing, milliseconds (ablation only).
    pub breaker_open_ms: u64,
    /// Adaptive-throttle K (accepts multiplier): the SRE book's 2.
    pub throttle_k: f64,
    /// Adaptive-throttle trailing window, seconds: the SRE book's and the
    /// library's default of 2 minutes, not tuned to this fleet.
    pub throttle_window_s: u64,
}

impl Default for BreakwaterPolicy {
    fn default() -> Self {
        BreakwaterPolicy {
            budget_ratio: 0.2,
            budget_fleet_min_retries_per_sec: 10,
            budget_ttl_s: 10,
            backoff_base_ms: 50,
            backoff_max_ms: 2_000,
            max_retry_after_ms: 1_000,
            shed_algorithm: ShedAlgorithm::Fixed,
            shed_max_concurrent: 4,
            shed_queue: 4,
            shed_queue_timeout_share: 0.25,
            shed_memory_share: 0.9,
            shed_memory_guard: true,
            slow_start_s: 30,
            slow_start_at: SlowStartAt::Balancer,
            breaker_failure_rate: 0.5,
            breaker_open_ms: 2_000,
            throttle_k: 2.0,
            throttle_window_s: 120,
        }
    }
}

/// How a Breakwater server limits its concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShedAlgorithm {
    /// A fixed `ConcurrencyLimit` (`shed_max_concurrent` + `shed_queue`).
    Fixed,
    /// An `AdaptiveLimit` with AIMD: +1 per fast success while busy, ×0.9
    /// on a success slower than the queue timeout (`shed_queue_timeout_share`
    /// of the proxies' attempt timeout). No queue in front of it.
    Aimd,
    /// An `AdaptiveLimit` with Gradient2 (library defaults): shrinks as the
    /// latency rises above its long-term average. No queue in front of it.
    Gradient2,
}

/// Where a restarted server's slow-start ramp (`SlowStart::admit_fraction`)
/// acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowStartAt {
    /// The proxies pick servers in proportion to their ramp, as a load
    /// balancer's slow start does (Envoy's `slow_start_config`): a new
    /// server gets a smaller share *relative to the others*, so when every
    /// server restarts at once (a revert) each still gets its full share
    /// and nothing is refused.
    Balancer,
    /// The server itself refuses (503, Retry-After 1 s) the share of the
    /// requests its ramp does not admit yet, whatever the other servers do
    /// (the first version).
    Server,
}

/// The operators' fix of the report: at `fix_at_s` the load balancer stops
/// sending traffic to the API proxies, new proxies and restarted servers
/// come up without traffic, and from `fix_ramp_at_s` traffic is restored in
/// a linear ramp over `fix_ramp_s`. Proxies and servers stay naive (the new
/// fleets ran the same software).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorFixPolicy {
    /// When traffic is diverted and the new fleets start, seconds. Default:
    /// 5 minutes before the report's 20:45.
    pub fix_at_s: u64,
    /// When traffic starts flowing to the new fleets, seconds (the report's
    /// 20:45, 6 h 31 min after the deploy).
    pub fix_ramp_at_s: u64,
    /// Traffic is restored linearly over this many seconds (20:45 to 21:00).
    pub fix_ramp_s: u64,
}

impl Default for OperatorFixPolicy {
    fn default() -> Self {
        OperatorFixPolicy {
            fix_at_s: 23_220,
            fix_ramp_at_s: 23_520,
            fix_ramp_s: 900,
        }
    }
}

/// The bad release through fleet-drain's `Rollout`: a canary, a bake
/// watched by the health gate (the library's default thresholds), then
/// waves; an abort rolls the changed servers back. Proxies and servers use
/// Breakwater's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagedPolicy {
    /// Servers in the canary.
    pub canary_hosts: u32,
    /// Bake after the canary and after each wave, seconds.
    pub bake_s: u64,
    /// First wave: share of the servers running the release, percent (the
    /// second wave takes it to 100 %).
    pub first_wave_percent: f64,
    /// A server's health check fails when more than this share of the
    /// requests it received in the last check interval were refused (503
    /// from its limit) or lost in a crash. Slow-start refusals do not count:
    /// a server in slow start reports itself as starting.
    pub health_max_error_share: f64,
    /// How often the gate samples health, seconds (the rollout's
    /// `check_interval`, library default 10 s).
    pub health_check_interval_s: u64,
}

impl Default for StagedPolicy {
    fn default() -> Self {
        StagedPolicy {
            canary_hosts: 1,
            bake_s: 300,
            first_wave_percent: 50.0,
            health_max_error_share: 0.1,
            health_check_interval_s: 10,
        }
    }
}

impl Nov2019Params {
    /// Checks every parameter; the error names the first invalid one as
    /// `nov.<name>`.
    #[allow(clippy::too_many_lines)] // one check per parameter
    pub fn validate(&self) -> Result<(), ReplayError> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let (s, w, b, f, st) = (
            &self.setup,
            &self.world,
            &self.breakwater,
            &self.operator_fix,
            &self.staged,
        );
        ensure(
            (10..=86_400).contains(&s.horizon_s),
            "nov.horizon_s",
            format!("must be in 10..=86400, got {}", s.horizon_s),
        )?;
        ensure(
            s.deploy_at_s < s.revert_at_s,
            "nov.revert_at_s",
            format!(
                "must be after deploy_at_s ({}), got {}",
                s.deploy_at_s, s.revert_at_s
            ),
        )?;
        ensure(
            s.revert_at_s < s.horizon_s,
            "nov.revert_at_s",
            format!(
                "must be before horizon_s ({}), got {}",
                s.horizon_s, s.revert_at_s
            ),
        )?;
        ensure(
            s.rollout_spread_s <= 3_600,
            "nov.rollout_spread_s",
            format!("must be at most 3600, got {}", s.rollout_spread_s),
        )?;
        ensure(
            positive(s.client_rps) && s.client_rps <= 20_000.0,
            "nov.client_rps",
            format!("must be in (0, 20000], got {}", s.client_rps),
        )?;
        ensure(
            s.client_timeout_ms >= 1,
            "nov.client_timeout_ms",
            "must be at least 1",
        )?;
        ensure(
            (1..=1_000).contains(&s.proxies),
            "nov.proxies",
            format!("must be in 1..=1000, got {}", s.proxies),
        )?;
        ensure(
            (1..=1_000).contains(&s.servers),
            "nov.servers",
            format!("must be in 1..=1000, got {}", s.servers),
        )?;
        ensure(
            s.attempt_timeout_ms >= 1,
            "nov.attempt_timeout_ms",
            "must be at least 1",
        )?;
        ensure(
            (1..=20).contains(&s.max_attempts),
            "nov.max_attempts",
            format!("must be in 1..=20, got {}", s.max_attempts),
        )?;
        ensure(
            s.ablation_after_revert_s >= 1,
            "nov.ablation_after_revert_s",
            "must be at least 1",
        )?;
        ensure(
            (1..=10_000).contains(&w.workers_per_server),
            "nov.workers_per_server",
            format!("must be in 1..=10000, got {}", w.workers_per_server),
        )?;
        ensure(
            positive(w.service_ms),
            "nov.service_ms",
            format!("must be > 0, got {}", w.service_ms),
        )?;
        ensure(
            w.bad_service_factor.is_finite() && w.bad_service_factor >= 1.0,
            "nov.bad_service_factor",
            format!("must be >= 1, got {}", w.bad_service_factor),
        )?;
        ensure(
            positive(w.memory_limit),
            "nov.memory_limit",
            format!("must be > 0, got {}", w.memory_limit),
        )?;
        ensure(
            w.bad_memory_factor.is_finite() && w.bad_memory_factor >= 1.0,
            "nov.bad_memory_factor",
            format!("must be >= 1, got {}", w.bad_memory_factor),
        )?;
        ensure(
            w.boot_ms <= 3_600_000,
            "nov.boot_ms",
            format!("must be at most 3600000, got {}", w.boot_ms),
        )?;
        ensure(
            w.warmup_s <= 3_600,
            "nov.warmup_s",
            format!("must be at most 3600, got {}", w.warmup_s),
        )?;
        ensure(
            w.cold_service_factor.is_finite() && w.cold_service_factor >= 1.0,
            "nov.cold_service_factor",
            format!("must be >= 1, got {}", w.cold_service_factor),
        )?;
        ensure(
            w.network_ms.is_finite() && (0.0..=10_000.0).contains(&w.network_ms),
            "nov.network_ms",
            format!("must be in 0..=10000, got {}", w.network_ms),
        )?;
        ensure(
            self.naive.naive_retry_delay_us >= 1,
            "nov.naive_retry_delay_us",
            "must be at least 1",
        )?;
        ensure(
            b.budget_ratio.is_finite() && (0.0..=1000.0).contains(&b.budget_ratio),
            "nov.budget_ratio",
            format!("must be in 0..=1000, got {}", b.budget_ratio),
        )?;
        ensure(
            (1..=300).contains(&b.budget_ttl_s),
            "nov.budget_ttl_s",
            format!("must be in 1..=300, got {}", b.budget_ttl_s),
        )?;
        ensure(
            b.backoff_base_ms >= 1 && b.backoff_max_ms >= b.backoff_base_ms,
            "nov.backoff_max_ms",
            "backoff_base_ms must be >= 1 and backoff_max_ms >= backoff_base_ms",
        )?;
        ensure(
            (1..=100_000).contains(&b.shed_max_concurrent),
            "nov.shed_max_concurrent",
            format!("must be in 1..=100000, got {}", b.shed_max_concurrent),
        )?;
        ensure(
            b.shed_queue <= 100_000,
            "nov.shed_queue",
            format!("must be at most 100000, got {}", b.shed_queue),
        )?;
        ensure(
            b.shed_queue_timeout_share.is_finite()
                && b.shed_queue_timeout_share > 0.0
                && b.shed_queue_timeout_share <= 1.0,
            "nov.shed_queue_timeout_share",
            format!("must be in (0, 1], got {}", b.shed_queue_timeout_share),
        )?;
        ensure(
            b.shed_memory_share.is_finite()
                && b.shed_memory_share > 0.0
                && b.shed_memory_share <= 1.0,
            "nov.shed_memory_share",
            format!("must be in (0, 1], got {}", b.shed_memory_share),
        )?;
        ensure(
            (1..=3_600).contains(&b.slow_start_s),
            "nov.slow_start_s",
            format!("must be in 1..=3600, got {}", b.slow_start_s),
        )?;
        ensure(
            b.breaker_failure_rate.is_finite()
                && b.breaker_failure_rate > 0.0
                && b.breaker_failure_rate <= 1.0,
            "nov.breaker_failure_rate",
            format!("must be in (0, 1], got {}", b.breaker_failure_rate),
        )?;
        ensure(
            b.breaker_open_ms >= 1,
            "nov.breaker_open_ms",
            "must be at least 1",
        )?;
        ensure(
            (1..=3_600).contains(&b.throttle_window_s),
            "nov.throttle_window_s",
            format!("must be in 1..=3600, got {}", b.throttle_window_s),
        )?;
        ensure(
            b.throttle_k.is_finite() && b.throttle_k >= 1.0,
            "nov.throttle_k",
            format!("must be >= 1, got {}", b.throttle_k),
        )?;
        ensure(
            f.fix_at_s > s.revert_at_s,
            "nov.fix_at_s",
            format!(
                "must be after revert_at_s ({}), got {}",
                s.revert_at_s, f.fix_at_s
            ),
        )?;
        ensure(
            f.fix_ramp_at_s >= f.fix_at_s,
            "nov.fix_ramp_at_s",
            format!(
                "must be at or after fix_at_s ({}), got {}",
                f.fix_at_s, f.fix_ramp_at_s
            ),
        )?;
        ensure(
            f.fix_ramp_s <= 86_400,
            "nov.fix_ramp_s",
            format!("must be at most 86400, got {}", f.fix_ramp_s),
        )?;
        ensure(
            st.canary_hosts >= 1 && (st.canary_hosts as usize) <= s.servers,
            "nov.canary_hosts",
            format!(
                "must be in 1..=servers ({}), got {}",
                s.servers, st.canary_hosts
            ),
        )?;
        ensure(
            (1..=86_400).contains(&st.bake_s),
            "nov.bake_s",
            format!("must be in 1..=86400, got {}", st.bake_s),
        )?;
        ensure(
            st.first_wave_percent.is_finite()
                && st.first_wave_percent > 0.0
                && st.first_wave_percent <= 100.0,
            "nov.first_wave_percent",
            format!("must be in (0, 100], got {}", st.first_wave_percent),
        )?;
        ensure(
            st.health_max_error_share.is_finite()
                && (0.0..1.0).contains(&st.health_max_error_share),
            "nov.health_max_error_share",
            format!("must be in [0, 1), got {}", st.health_max_error_share),
        )?;
        ensure(
            (1..=3_600).contains(&st.health_check_interval_s),
            "nov.health_check_interval_s",
            format!("must be in 1..=3600, got {}", st.health_check_interval_s),
        )?;
        Ok(())
    }

    /// When the ablation runs end: `ablation_after_revert_s` after the
    /// revert, at most `horizon_s`.
    pub fn ablation_horizon_s(&self) -> u64 {
        self.setup
            .revert_at_s
            .saturating_add(self.setup.ablation_after_revert_s)
            .min(self.setup.horizon_s)
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
        let mut p = Nov2019Params::default();
        p.setup.deploy_at_s = 100;
        p.setup.revert_at_s = 50;
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("nov.revert_at_s"), "{err}");
    }

    #[test]
    fn nan_rates_are_rejected() {
        let mut p = Nov2019Params::default();
        p.setup.client_rps = f64::NAN;
        assert!(p.validate().unwrap_err().to_string().contains("client_rps"));
    }

    #[test]
    fn leaf_names_are_unique_across_groups() {
        let json = serde_json::to_value(Nov2019Params::default()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for (_, group) in json.as_object().unwrap() {
            for leaf in group.as_object().unwrap().keys() {
                assert!(seen.insert(leaf.clone()), "duplicate leaf {leaf}");
            }
        }
    }

    #[test]
    fn the_report_timeline_is_the_default() {
        let p = Nov2019Params::default();
        assert_eq!(p.setup.revert_at_s - p.setup.deploy_at_s, 27 * 60);
        assert_eq!(p.operator_fix.fix_ramp_at_s - p.setup.deploy_at_s, 391 * 60);
        assert!(p.setup.horizon_s >= p.operator_fix.fix_ramp_at_s + p.operator_fix.fix_ramp_s);
    }
}
