//! The physical limits of the November 2019 world: what the best possible
//! policy could achieve given the servers' capacity during and after the
//! bad release. Computed from the hidden [`World`](super::params::World)
//! (a limit may read the world; policies may not).
//!
//! The model of the limit is an oracle: every request goes to a server with
//! spare capacity, nothing is retried, no server crashes unless the release
//! forces it. Per second, the share of the offered traffic that the fleet
//! can serve is `min(1, capacity / client_rps)`, where each server's
//! capacity follows the incident's schedule (rolling deploy at
//! `deploy_at_s`, rolling revert at `revert_at_s`, each restart down for
//! `boot_ms`, then cold for `warmup_s`), and on the bad release a server
//! can hold at most `memory_limit / bad_memory_factor` requests at once.
//!
//! - **goodput ceiling**: that share averaged over the judged part of the run;
//! - **recovery floor**: the recovery time (same definition as the sides':
//!   10-s windows at 95 %, held 60 s) of that ideal per-second goodput;
//! - **amplification**: 1.0 (every request sent once).
//!
//! The limits are those of the incident's deploy (the bad release on every
//! server at once). The staged side changes that deploy, so it may do
//! better than the goodput ceiling (a ratio below 1).

use serde::Serialize;

use super::params::Nov2019Params;
use super::report::{Timeline, judged_end_s, recovery};

/// The best any policy could do in this world.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Server attempts per client request: 1.0.
    pub amplification: f64,
    /// Goodput ceiling over the whole run (the judged part).
    pub goodput: f64,
    /// Fastest possible recovery after the revert, seconds (`None` if even
    /// the ideal fleet does not recover within the run).
    pub recovery_s: Option<f64>,
}

/// Sub-steps per second at which capacity is sampled.
const SAMPLES: u32 = 10;
/// Requests per second of the synthetic ideal timeline (resolution).
const RESOLUTION: f64 = 10_000.0;

/// One server's capacity, requests per second, `t` seconds into the run.
fn server_capacity(p: &Nov2019Params, offset: f64, t: f64) -> f64 {
    let (s, w) = (&p.setup, &p.world);
    let boot = w.boot_ms as f64 / 1_000.0;
    let deploy = s.deploy_at_s as f64 + offset;
    let revert = s.revert_at_s as f64 + offset;
    let cold = |since_boot: f64| {
        let warmup = w.warmup_s as f64;
        if warmup <= 0.0 {
            1.0
        } else {
            let progress = (since_boot / warmup).clamp(0.0, 1.0);
            1.0 + (w.cold_service_factor - 1.0) * (1.0 - progress)
        }
    };
    let workers = w.workers_per_server as f64;
    if t < deploy {
        workers * 1_000.0 / w.service_ms
    } else if t < deploy + boot || (t >= revert && t < revert + boot) {
        0.0
    } else if t < revert {
        let fits = (w.memory_limit / w.bad_memory_factor).floor().min(workers);
        fits * 1_000.0 / (w.service_ms * w.bad_service_factor * cold(t - deploy - boot))
    } else {
        workers * 1_000.0 / (w.service_ms * cold(t - revert - boot))
    }
}

/// The limits of the world and timeline in `p`.
pub fn limits(p: &Nov2019Params) -> Limits {
    let s = &p.setup;
    let seconds = usize::try_from(s.horizon_s).unwrap_or(usize::MAX);
    let n = s.servers.max(1);
    let offsets: Vec<f64> = (0..n)
        .map(|i| (s.rollout_spread_s * i as u64 / n as u64) as f64)
        .collect();
    let mut ideal = Timeline::new(seconds);
    for second in 0..seconds {
        let mut share = 0.0;
        for k in 0..SAMPLES {
            let t = second as f64 + (f64::from(k) + 0.5) / f64::from(SAMPLES);
            let capacity: f64 = offsets.iter().map(|&o| server_capacity(p, o, t)).sum();
            share += (capacity / s.client_rps).min(1.0);
        }
        share /= f64::from(SAMPLES);
        if let (Some(o), Some(ok)) = (
            ideal.offered.get_mut(second),
            ideal.succeeded.get_mut(second),
        ) {
            *o = RESOLUTION as u32;
            *ok = (share * RESOLUTION).round() as u32;
        }
    }
    let judged_end = usize::try_from(judged_end_s(s, s.horizon_s)).unwrap_or(usize::MAX);
    let revert = usize::try_from(s.revert_at_s).unwrap_or(usize::MAX);
    Limits {
        amplification: 1.0,
        goodput: ideal.goodput(0, judged_end).unwrap_or(0.0),
        recovery_s: recovery(&ideal, revert, judged_end).map(|t| t as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_world_has_a_full_ceiling_and_an_instant_recovery() {
        let mut p = Nov2019Params::default();
        p.world.bad_service_factor = 1.0;
        p.world.bad_memory_factor = 1.0;
        p.world.boot_ms = 0;
        p.world.cold_service_factor = 1.0;
        let l = limits(&p);
        assert!((l.goodput - 1.0).abs() < 1e-9, "{l:?}");
        assert_eq!(l.recovery_s, Some(0.0));
    }

    #[test]
    fn the_bad_release_lowers_the_ceiling_and_warm_up_delays_recovery() {
        let p = Nov2019Params::default();
        let l = limits(&p);
        assert!(l.goodput < 1.0 && l.goodput > 0.9, "{l:?}");
        let floor = l.recovery_s.unwrap();
        assert!(floor >= p.world.boot_ms as f64 / 1_000.0, "{l:?}");
        let mut slower = p.clone();
        slower.world.warmup_s *= 4;
        assert!(limits(&slower).recovery_s.unwrap() >= floor);
    }
}
