//! Which Breakwater mechanisms a run uses: none (naive), all (Breakwater),
//! or one at a time (the ablation table).

use serde::Serialize;

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
