//! The naive, capacity-gated drain of February 2019: the baseline the
//! [`DrainController`](crate::drain::DrainController) is measured against.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use resilience_core::ConfigError;
use resilience_core::clock::Clock;
use serde::{Deserialize, Serialize};

use crate::fleet::{DrainFleet, FleetError, Host, HostId, HostState};

/// Parameters of the naive, capacity-gated drain of February 2019 (the
/// baseline, not a recommendation). `Default`: 30 hosts at a time, drain
/// more whenever receiver capacity use is below 80 %, checked every 30 s,
/// failed starts retried at once up to 5 attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NaiveDrainConfig {
    /// Hosts drained per batch. Must be >= 1.
    pub hosts_at_once: u32,
    /// Another batch starts whenever receiver capacity use is below this
    /// share. In `(0, 1]`.
    pub capacity_gate: f64,
    /// How often capacity is checked. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Attempts per app (immediate retries). Must be >= 1.
    pub max_attempts: u32,
}

impl Default for NaiveDrainConfig {
    fn default() -> Self {
        NaiveDrainConfig {
            hosts_at_once: 30,
            capacity_gate: 0.8,
            check_interval: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl NaiveDrainConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hosts_at_once == 0 {
            return Err(ConfigError::new("hosts_at_once", "must be at least 1"));
        }
        if !(self.capacity_gate > 0.0 && self.capacity_gate <= 1.0) {
            return Err(ConfigError::new(
                "capacity_gate",
                format!("must be in (0, 1], got {}", self.capacity_gate),
            ));
        }
        if self.check_interval.is_zero() {
            return Err(ConfigError::new(
                "check_interval",
                "must be greater than zero",
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a naive drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaiveDrainReport {
    /// App starts that failed (each retry counts).
    pub failed_starts: u64,
    /// Apps still failed after all attempts.
    pub apps_left_failed: u64,
    /// Hosts drained.
    pub hosts_drained: usize,
    /// Simulated time taken.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
}

/// The naive drain: batches of `hosts_at_once` hosts, every app of a batch
/// started at once on the least loaded receiver, the next batch whenever
/// receiver capacity use is below the gate. No health gate, no per-host
/// start limit — the February 2019 procedure.
pub async fn naive_drain(
    fleet: &dyn DrainFleet,
    clock: &dyn Clock,
    targets: &[HostId],
    config: &NaiveDrainConfig,
) -> Result<NaiveDrainReport, FleetError> {
    config
        .validate()
        .map_err(|e| FleetError::InvalidArgument(e.to_string()))?;
    let started = clock.now();
    let target_set: HashSet<HostId> = targets.iter().copied().collect();
    let hosts = fleet.hosts().await?;
    let receivers: Vec<Host> = hosts
        .into_iter()
        .filter(|h| h.state.accepts_apps() && !target_set.contains(&h.id))
        .collect();
    let receiver_capacity: u64 = receivers.iter().map(|h| u64::from(h.capacity)).sum();
    if receivers.is_empty() {
        return Err(FleetError::InvalidArgument("no receivers".into()));
    }
    // (id, capacity, load) of every receiver.
    let mut load: Vec<(HostId, u32, u32)> =
        receivers.iter().map(|h| (h.id, h.capacity, 0)).collect();
    let position: HashMap<HostId, usize> = load.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    for app in fleet.apps().await? {
        if let Some(r) = position.get(&app.host).and_then(|&i| load.get_mut(i)) {
            r.2 += 1;
        }
    }
    let mut report = NaiveDrainReport::default();
    let mut pending: VecDeque<HostId> = targets.iter().copied().collect();
    let mut in_flight = FuturesUnordered::new();
    let mut batches: Vec<(HostId, usize)> = Vec::new();
    loop {
        let placed: u64 = load.iter().map(|r| u64::from(r.2)).sum();
        let use_share = placed as f64 / receiver_capacity as f64;
        if !pending.is_empty() && use_share < config.capacity_gate {
            let batch: Vec<HostId> = (0..config.hosts_at_once)
                .filter_map(|_| pending.pop_front())
                .collect();
            tracing::info!(
                hosts = batch.len(),
                capacity_use = use_share,
                "naive: draining batch"
            );
            let apps = fleet.apps().await?;
            for host in &batch {
                fleet.set_host_state(*host, HostState::Draining).await?;
                let mut count = 0;
                for app in apps.iter().filter(|a| a.host == *host) {
                    let Some(to) = load
                        .iter_mut()
                        .filter(|r| r.2 < r.1)
                        .min_by_key(|r| (r.2, r.0))
                        .map(|r| {
                            r.2 += 1;
                            r.0
                        })
                    else {
                        break;
                    };
                    count += 1;
                    let app = app.id;
                    in_flight.push(async move {
                        let mut failures = 0u64;
                        for _ in 0..config.max_attempts {
                            match fleet.migrate(app, to).await {
                                Ok(()) => return (failures, false),
                                Err(FleetError::StartFailed { .. }) => failures += 1,
                                Err(_) => return (failures, true),
                            }
                        }
                        (failures, true)
                    });
                }
                batches.push((*host, count));
            }
        }
        if pending.is_empty() && in_flight.is_empty() {
            break;
        }
        let tick = clock.sleep(config.check_interval);
        let mut tick = pin!(tick);
        loop {
            let next = futures::future::select(in_flight.next(), tick.as_mut()).await;
            match next {
                futures::future::Either::Left((Some((failures, left_failed)), _)) => {
                    report.failed_starts += failures;
                    report.apps_left_failed += u64::from(left_failed);
                }
                futures::future::Either::Left((None, _)) => {
                    tick.as_mut().await;
                    break;
                }
                futures::future::Either::Right(((), _)) => break,
            }
        }
    }
    for (host, _) in batches {
        if fleet.set_host_state(host, HostState::Drained).await.is_ok() {
            report.hosts_drained += 1;
        }
    }
    report.elapsed = clock.now().saturating_duration_since(started);
    Ok(report)
}
