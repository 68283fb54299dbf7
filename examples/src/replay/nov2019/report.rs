//! What a November 2019 run measured: a per-second timeline and the
//! summary figures of the report.

use serde::Serialize;

use super::params::Nov2019Params;

/// Per-second series, indexed by simulated second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// Client requests that arrived in each second.
    pub offered: Vec<u32>,
    /// Of those, how many got a successful answer within the client's timeout.
    pub succeeded: Vec<u32>,
    /// Attempts proxies sent to servers in each second.
    pub server_attempts: Vec<u32>,
    /// Servers up at the start of each second.
    pub servers_up: Vec<u32>,
    /// Servers up on the bad release at the start of each second.
    pub bad_servers: Vec<u32>,
    /// Out-of-memory crashes in each second.
    pub crashes: Vec<u32>,
}

fn bump(series: &mut [u32], bucket: usize) {
    if let Some(v) = series.get_mut(bucket) {
        *v = v.saturating_add(1);
    }
}

impl Timeline {
    /// An empty timeline of `seconds` buckets.
    pub fn new(seconds: usize) -> Self {
        Timeline {
            offered: vec![0; seconds],
            succeeded: vec![0; seconds],
            server_attempts: vec![0; seconds],
            servers_up: vec![0; seconds],
            bad_servers: vec![0; seconds],
            crashes: vec![0; seconds],
        }
    }

    pub(crate) fn offered(&mut self, bucket: usize) {
        bump(&mut self.offered, bucket);
    }

    pub(crate) fn succeeded(&mut self, bucket: usize) {
        bump(&mut self.succeeded, bucket);
    }

    pub(crate) fn server_attempt(&mut self, bucket: usize) {
        bump(&mut self.server_attempts, bucket);
    }

    pub(crate) fn crash(&mut self, bucket: usize) {
        bump(&mut self.crashes, bucket);
    }

    pub(crate) fn sample_servers(&mut self, bucket: usize, up: usize, bad: usize) {
        if let Some(v) = self.servers_up.get_mut(bucket) {
            *v = u32::try_from(up).unwrap_or(u32::MAX);
        }
        if let Some(v) = self.bad_servers.get_mut(bucket) {
            *v = u32::try_from(bad).unwrap_or(u32::MAX);
        }
    }

    /// Share of requests arriving in `[from, to)` that succeeded, or `None`
    /// if none arrived.
    pub fn goodput(&self, from: usize, to: usize) -> Option<f64> {
        let to = to.min(self.offered.len());
        let from = from.min(to);
        let offered: u64 = self
            .offered
            .get(from..to)?
            .iter()
            .map(|&v| u64::from(v))
            .sum();
        let ok: u64 = self
            .succeeded
            .get(from..to)?
            .iter()
            .map(|&v| u64::from(v))
            .sum();
        (offered > 0).then(|| ok as f64 / offered as f64)
    }
}

/// Window over which recovery is judged, seconds.
pub const RECOVERY_WINDOW_S: usize = 10;
/// Goodput a window must reach to count as recovered.
pub const RECOVERY_GOODPUT: f64 = 0.95;
/// How long goodput must then stay at that level, seconds.
pub const RECOVERY_HOLD_S: usize = 60;

/// Counters of one run beyond the timeline.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub crashes: u64,
    pub shed: u64,
    pub memory_shed: u64,
    pub budget_denied: u64,
    pub throttled: u64,
    pub breaker_rejected: u64,
    pub deadline_stops: u64,
    pub wasted: u64,
    pub diverted: u64,
    pub outage_received: u64,
    pub outage_received_bad: u64,
    pub peak_bad_servers: u64,
    pub rollout_aborted: bool,
}

/// Each metric's value over its physical limit (1.0 is the limit, larger
/// is worse; `None` where undefined, e.g. "never recovered").
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RatioToLimit {
    /// `amplification / 1.0`.
    pub amplification: Option<f64>,
    /// `goodput ceiling / goodput`.
    pub goodput: Option<f64>,
    /// `recovery_s / recovery floor`.
    pub recovery_s: Option<f64>,
}

/// Summary of one policy's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nov2019Outcome {
    /// Server attempts / client requests, both counted between the bad
    /// deploy and the revert.
    pub amplification: f64,
    /// Successful client requests / offered, over the whole run (requests
    /// arriving too late to be judged within the horizon excluded).
    pub goodput: f64,
    /// Seconds from the revert until goodput is back at 95 % (10-s windows,
    /// held for 60 s); `None` if it never is within the horizon.
    pub recovery_s: Option<f64>,
    /// Client requests offered in the judged part of the run.
    pub client_requests: u64,
    /// Attempts sent to servers over the whole run.
    pub server_attempts: u64,
    /// Out-of-memory server crashes.
    pub crashes: u64,
    /// Attempts servers refused fast (load shedding, slow start).
    pub shed: u64,
    /// Of those, refused by the servers' memory guard.
    pub memory_shed: u64,
    /// Retries a budget refused.
    pub budget_denied: u64,
    /// Requests failed fast at the proxy (throttle, all breakers open).
    pub failed_fast: u64,
    /// Attempts servers completed after their proxy had given up.
    pub wasted_work: u64,
    /// Client requests the load balancer turned away (operator fix only).
    pub diverted: u64,
    /// Share of the attempts servers received between deploy and revert
    /// that reached a server running the bad release.
    pub bad_release_share: f64,
    /// Most servers running the bad release at once before the revert, as a
    /// share of the fleet.
    pub peak_bad_servers_share: f64,
    /// Whether the staged rollout's health gate aborted and rolled back.
    pub rollout_aborted: bool,
    /// Each metric over its limit (filled by the scenario from its `limits`).
    pub ratio_to_limit: RatioToLimit,
    /// The per-second series behind the figures (charts; not in the JSON summary).
    #[serde(skip)]
    pub timeline: Timeline,
}

impl Nov2019Outcome {
    pub(crate) fn from_timeline(
        p: &Nov2019Params,
        horizon_s: u64,
        timeline: Timeline,
        c: &Counters,
    ) -> Self {
        let p = &p.setup;
        let secs = |s: u64| usize::try_from(s).unwrap_or(usize::MAX);
        let judged_end = secs(judged_end_s(p, horizon_s));
        let deploy = secs(p.deploy_at_s);
        let revert = secs(p.revert_at_s);
        let sum = |v: &[u32], from: usize, to: usize| -> u64 {
            v.get(from..to.min(v.len()))
                .map_or(0, |s| s.iter().map(|&x| u64::from(x)).sum())
        };
        let outage_requests = sum(&timeline.offered, deploy, revert);
        let outage_attempts = sum(&timeline.server_attempts, deploy, revert);
        let amplification = if outage_requests == 0 {
            0.0
        } else {
            outage_attempts as f64 / outage_requests as f64
        };
        let client_requests = sum(&timeline.offered, 0, judged_end);
        let ok = sum(&timeline.succeeded, 0, judged_end);
        let goodput = if client_requests == 0 {
            0.0
        } else {
            ok as f64 / client_requests as f64
        };
        let recovery_s = recovery(&timeline, revert, judged_end).map(|t| t as f64);
        let server_attempts = sum(&timeline.server_attempts, 0, timeline.server_attempts.len());
        Nov2019Outcome {
            amplification,
            goodput,
            recovery_s,
            client_requests,
            server_attempts,
            crashes: c.crashes,
            shed: c.shed,
            memory_shed: c.memory_shed,
            budget_denied: c.budget_denied,
            failed_fast: c.throttled + c.breaker_rejected,
            wasted_work: c.wasted,
            diverted: c.diverted,
            bad_release_share: if c.outage_received == 0 {
                0.0
            } else {
                c.outage_received_bad as f64 / c.outage_received as f64
            },
            peak_bad_servers_share: c.peak_bad_servers as f64 / p.servers.max(1) as f64,
            rollout_aborted: c.rollout_aborted,
            ratio_to_limit: RatioToLimit::default(),
            timeline,
        }
    }
}

/// The end of the judged part of a run of `horizon_s` seconds: requests
/// arriving later could not be answered within the client timeout.
pub(crate) fn judged_end_s(setup: &super::params::Setup, horizon_s: u64) -> u64 {
    horizon_s
        .min(setup.horizon_s)
        .saturating_sub(setup.client_timeout_ms.div_ceil(1_000))
}

/// First second `t >= revert` such that every 10-s window starting at
/// `t, t+1, …, t+60` has goodput >= 95 %; returns `t - revert`.
pub(crate) fn recovery(timeline: &Timeline, revert: usize, judged_end: usize) -> Option<usize> {
    let ok_at = |t: usize| {
        timeline
            .goodput(t, t + RECOVERY_WINDOW_S)
            .is_some_and(|g| g >= RECOVERY_GOODPUT)
    };
    let last_start = judged_end.checked_sub(RECOVERY_WINDOW_S)?;
    let mut t = revert;
    while t <= last_start {
        if ok_at(t) {
            let hold_end = (t + RECOVERY_HOLD_S).min(last_start);
            match (t..=hold_end).find(|&u| !ok_at(u)) {
                None => return Some(t - revert),
                Some(bad) => t = bad + 1,
            }
        } else {
            t += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(goodput_per_second: &[f64]) -> Timeline {
        let mut t = Timeline::new(goodput_per_second.len());
        for (i, g) in goodput_per_second.iter().enumerate() {
            t.offered[i] = 100;
            t.succeeded[i] = (g * 100.0) as u32;
        }
        t
    }

    #[test]
    fn recovery_is_the_first_held_window_after_the_revert() {
        let mut g = vec![0.0; 50];
        g.extend(vec![1.0; 200]);
        let t = timeline(&g);
        assert_eq!(recovery(&t, 20, 250), Some(30));
    }

    #[test]
    fn a_brief_blip_of_goodput_is_not_recovery() {
        let mut g = vec![0.0; 50];
        g.extend(vec![1.0; 20]);
        g.extend(vec![0.0; 180]);
        let t = timeline(&g);
        assert_eq!(recovery(&t, 20, 250), None);
    }
}
