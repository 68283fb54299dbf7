//! Which Breakwater mechanisms a run uses: none (naive), all (Breakwater),
//! or one at a time (the ablation table); which side a run replays; and the
//! library configurations each side's proxies and servers get.
//!
//! [`side_config`] builds those configurations from the [`Setup`] and the
//! policies only: it has no way to read the hidden [`World`](super::params::World).

use std::time::Duration;

use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, WindowConfig};
use resilience_core::budget::RetryBudgetConfig;
use resilience_core::limit::{
    AdaptiveLimitConfig, AimdConfig, ConcurrencyLimitConfig, Gradient2Config, LimitAlgorithm,
};
use resilience_core::restart::{RestartBackoffConfig, SlowStartConfig};
use resilience_core::retry::RetryConfig;
use resilience_core::throttle::AdaptiveThrottleConfig;
use serde::Serialize;

use super::params::{BreakwaterPolicy, NaivePolicy, Setup, ShedAlgorithm, SlowStartAt};
use crate::replay::error::ReplayError;

/// The mechanisms a policy turns on. Naive proxies retry failures at once up
/// to `max_attempts`, and naive servers accept everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct Mechanisms {
    /// Proxies: `RetryBudget` per proxy (ratio plus floor).
    pub retry_budget: bool,
    /// Proxies: full-jitter `Backoff` between attempts, honouring Retry-After.
    pub backoff: bool,
    /// Proxies: the client's deadline bounds every attempt and retry.
    pub deadline: bool,
    /// Proxies: a `CircuitBreaker` per server, routing around open ones.
    pub breaker: bool,
    /// Proxies: `AdaptiveThrottle` (client-side throttling).
    pub throttle: bool,
    /// Servers: `ConcurrencyLimit` with a bounded queue, shedding with a fast 503.
    pub load_shedding: bool,
    /// Servers: `RestartBackoff` between crash restarts.
    pub restart_backoff: bool,
    /// Servers: `SlowStart` ramp after each start.
    pub slow_start: bool,
}

impl Mechanisms {
    /// Immediate retries, no budget, servers accept everything.
    pub const NAIVE: Mechanisms = Mechanisms {
        retry_budget: false,
        backoff: false,
        deadline: false,
        breaker: false,
        throttle: false,
        load_shedding: false,
        restart_backoff: false,
        slow_start: false,
    };

    /// Breakwater's policy: every mechanism except per-server circuit
    /// breakers. In November 2019 every server ran the same bad release, so
    /// a breaker per server has nothing to route around and only fails
    /// requests fast; the adaptive throttle does that job in proportion to
    /// what the servers actually accept. (The breaker's effect alone is in
    /// the ablation table.)
    pub const BREAKWATER: Mechanisms = Mechanisms {
        retry_budget: true,
        backoff: true,
        deadline: true,
        breaker: false,
        throttle: true,
        load_shedding: true,
        restart_backoff: true,
        slow_start: true,
    };

    /// Naive plus exactly one mechanism, for the ablation table.
    pub fn ablations() -> Vec<(&'static str, Mechanisms)> {
        let n = Mechanisms::NAIVE;
        vec![
            (
                "retry budget",
                Mechanisms {
                    retry_budget: true,
                    ..n
                },
            ),
            ("backoff + jitter", Mechanisms { backoff: true, ..n }),
            (
                "deadline",
                Mechanisms {
                    deadline: true,
                    ..n
                },
            ),
            ("circuit breaker", Mechanisms { breaker: true, ..n }),
            (
                "adaptive throttle",
                Mechanisms {
                    throttle: true,
                    ..n
                },
            ),
            (
                "load shedding",
                Mechanisms {
                    load_shedding: true,
                    ..n
                },
            ),
            (
                "restart backoff + slow start",
                Mechanisms {
                    restart_backoff: true,
                    slow_start: true,
                    ..n
                },
            ),
        ]
    }
}

/// Which side of the comparison a run replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The incident as it happened: naive proxies and servers, the bad
    /// release everywhere at once, no fix within the run.
    Naive,
    /// Breakwater's mechanisms, the release everywhere at once.
    Breakwater,
    /// Naive proxies and servers, plus the operators' fix of the report.
    OperatorFix,
    /// Breakwater's mechanisms, the release through a staged `Rollout`.
    Staged,
    /// An ablation row: naive plus the given mechanisms.
    Ablation,
}

impl Side {
    /// The side's key in output (`naive`, `breakwater`, `operator_fix`, `staged`, `ablation`),
    /// also the middle part of its instances' names (`nov2019.breakwater.retry-budget`).
    pub fn key(self) -> &'static str {
        match self {
            Side::Naive => "naive",
            Side::Breakwater => "breakwater",
            Side::OperatorFix => "operator_fix",
            Side::Staged => "staged",
            Side::Ablation => "ablation",
        }
    }
}

/// Everything a side's proxies and servers are configured with: the real
/// library configurations, `None` where a mechanism is off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideConfig {
    /// The proxies' retry policy (driven by the library's `RetryRun`).
    pub retry: RetryConfig,
    /// Each proxy's retry budget.
    pub budget: Option<RetryBudgetConfig>,
    /// Each proxy's adaptive throttle.
    pub throttle: Option<AdaptiveThrottleConfig>,
    /// Each proxy's breaker per server.
    pub breaker: Option<BreakerConfig>,
    /// Whether each attempt and retry is bounded by the client's deadline.
    pub deadline: bool,
    /// Each server's fixed concurrency limit (load shedding with
    /// `shed_algorithm = fixed`).
    pub limit: Option<ConcurrencyLimitConfig>,
    /// Each server's adaptive concurrency limit (load shedding with
    /// `shed_algorithm = aimd` or `gradient2`); a new one per server process.
    pub adaptive_limit: Option<AdaptiveLimitConfig>,
    /// Each server's memory guard: the share of its own memory limit above
    /// which it refuses new requests (with load shedding).
    pub memory_guard_share: Option<f64>,
    /// Each server's crash-restart backoff.
    pub restart: Option<RestartBackoffConfig>,
    /// Each server's slow start after a boot.
    pub slow_start: Option<SlowStartConfig>,
    /// Where the slow start acts: the proxies' choice of server (`balancer`)
    /// or the server's admission (`server`).
    pub slow_start_at: SlowStartAt,
}

/// The configuration of a side with mechanisms `m`: from the setup and the
/// policies, never the world. Mechanisms that are on take Breakwater's
/// policy; those that are off take the naive one.
pub fn side_config(
    setup: &Setup,
    naive: &NaivePolicy,
    bw: &BreakwaterPolicy,
    m: Mechanisms,
) -> Result<SideConfig, ReplayError> {
    let ms = Duration::from_millis;
    let (backoff, max_retry_after) = if m.backoff {
        (
            BackoffConfig {
                base: ms(bw.backoff_base_ms),
                max: ms(bw.backoff_max_ms),
                factor: 2.0,
                jitter: Jitter::Full,
                max_attempts: None,
            },
            ms(bw.max_retry_after_ms),
        )
    } else {
        // A naive proxy retries at once and ignores Retry-After.
        let at_once = Duration::from_micros(naive.naive_retry_delay_us);
        (
            BackoffConfig {
                base: at_once,
                max: at_once,
                factor: 1.0,
                jitter: Jitter::None,
                max_attempts: None,
            },
            Duration::ZERO,
        )
    };
    let retry = RetryConfig {
        max_attempts: setup.max_attempts,
        backoff,
        max_retry_after,
        per_attempt_timeout: None,
        overall_timeout: None,
    };
    retry.validate()?;
    let proxies = u32::try_from(setup.proxies.max(1)).unwrap_or(u32::MAX);
    let budget = m.retry_budget.then(|| RetryBudgetConfig {
        ttl: Duration::from_secs(bw.budget_ttl_s),
        // The floor is per instance: one fleet-wide floor, shared out.
        min_retries_per_sec: bw.budget_fleet_min_retries_per_sec / proxies,
        retry_ratio: bw.budget_ratio,
    });
    let throttle = m.throttle.then(|| AdaptiveThrottleConfig {
        window: Duration::from_secs(bw.throttle_window_s),
        buckets: u32::try_from(bw.throttle_window_s.clamp(1, 600)).unwrap_or(600),
        k: bw.throttle_k,
    });
    let breaker = m.breaker.then(|| BreakerConfig {
        failure_rate_threshold: bw.breaker_failure_rate,
        window: WindowConfig::Count { calls: 20 },
        minimum_calls: 10,
        open_wait: BackoffConfig {
            base: ms(bw.breaker_open_ms),
            max: ms(bw.breaker_open_ms.saturating_mul(8)),
            factor: 2.0,
            jitter: Jitter::Equal,
            max_attempts: None,
        },
        half_open_probes: 2,
        ..BreakerConfig::default()
    });
    let (limit, adaptive_limit) = server_limits(setup, bw, m)?;
    let restart = m.restart_backoff.then(|| RestartBackoffConfig {
        jitter: Jitter::Equal,
        ..RestartBackoffConfig::default()
    });
    let slow_start = m.slow_start.then(|| SlowStartConfig {
        duration: Duration::from_secs(bw.slow_start_s.max(1)),
        ..SlowStartConfig::default()
    });
    Ok(SideConfig {
        retry,
        budget,
        throttle,
        breaker,
        deadline: m.deadline,
        limit,
        adaptive_limit,
        memory_guard_share: (m.load_shedding && bw.shed_memory_guard)
            .then_some(bw.shed_memory_share),
        restart,
        slow_start,
        slow_start_at: bw.slow_start_at,
    })
}

/// Each server's concurrency limit with mechanisms `m`: a fixed
/// `ConcurrencyLimit` or an `AdaptiveLimit` (`shed_algorithm`), or none
/// without load shedding.
fn server_limits(
    setup: &Setup,
    bw: &BreakwaterPolicy,
    m: Mechanisms,
) -> Result<(Option<ConcurrencyLimitConfig>, Option<AdaptiveLimitConfig>), ReplayError> {
    let queue_timeout = Duration::from_secs_f64(
        setup.attempt_timeout_ms as f64 / 1_000.0 * bw.shed_queue_timeout_share,
    );
    let queue_timeout = queue_timeout.max(Duration::from_millis(1));
    let limits = match (m.load_shedding, bw.shed_algorithm) {
        (false, _) => (None, None),
        (true, ShedAlgorithm::Fixed) => (
            Some(ConcurrencyLimitConfig {
                max_concurrent: bw.shed_max_concurrent,
                max_queued: bw.shed_queue,
                queue_timeout: Some(queue_timeout),
                ..ConcurrencyLimitConfig::default()
            }),
            None,
        ),
        (true, algorithm) => {
            let max_limit = Gradient2Config::default()
                .max_limit
                .max(bw.shed_max_concurrent);
            let algorithm = if algorithm == ShedAlgorithm::Aimd {
                // A success slower than the longest a request may wait in
                // a queue is a sign of queueing: the same visible budget.
                LimitAlgorithm::Aimd(AimdConfig {
                    initial_limit: bw.shed_max_concurrent,
                    max_limit,
                    latency_threshold: queue_timeout,
                    ..AimdConfig::default()
                })
            } else {
                LimitAlgorithm::Gradient2(Gradient2Config {
                    initial_limit: bw.shed_max_concurrent,
                    max_limit,
                    ..Gradient2Config::default()
                })
            };
            // No queue in front of an adaptive limit: time spent there is
            // not part of its latency samples, so it would hide the very
            // queueing the limit adapts to. Requests beyond the limit get a
            // fast 503 at once.
            let config = AdaptiveLimitConfig {
                algorithm,
                max_queued: 0,
                queue_timeout: Some(queue_timeout),
                ..AdaptiveLimitConfig::default()
            };
            config.validate()?;
            (None, Some(config))
        }
    };
    Ok(limits)
}
