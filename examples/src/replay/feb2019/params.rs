//! Parameters of the February 2019 model, every one documented and
//! overridable with `--set feb.<name>=<value>`.

use serde::{Deserialize, Serialize};

use crate::replay::error::{ReplayError, ensure};

/// The February 2019 model: an old fleet drained onto a new one, a per-host
/// start component that corrupts starts when too many run at once, and a
/// disk-usage monitor hovering around its alert mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Feb2019Params {
    /// Hosts of the old fleet, all drained.
    pub old_hosts: u32,
    /// Apps on each old host.
    pub apps_per_host: u32,
    /// Hosts of the new fleet (the receivers).
    pub new_hosts: u32,
    /// App slots per new host.
    pub new_host_capacity: u32,
    /// Time an app start (allocating its `node_modules`, booting) takes, seconds.
    pub start_s: u64,
    /// Concurrent starts per host that never corrupt a start.
    pub safe_concurrent_starts: u32,
    /// Corruption probability added per concurrent start beyond the safe number.
    pub failure_per_extra_start: f64,
    /// Cap on a start's corruption probability.
    pub max_failure_probability: f64,
    /// Naive: hosts drained per batch (the incident: about 30).
    pub naive_hosts_at_once: u32,
    /// Naive: another batch whenever the receivers' capacity use is below this share.
    pub naive_capacity_gate: f64,
    /// Naive: how often capacity is looked at, seconds.
    pub naive_check_s: u64,
    /// Corrupted apps are fixed only by the platform's periodic restart
    /// ("would recover once they were restarted as we do periodically"):
    /// each app restarts once per period, at a random moment within it, so
    /// a corrupted app waits on average half a period.
    pub restart_period_s: u64,
    /// Breakwater: hosts draining at once.
    pub max_draining_hosts: u32,
    /// Breakwater: app starts into one receiving host per minute. With
    /// 20-s starts, 8 per minute never has more than 8 (the safe number)
    /// running at once on a host.
    pub max_starts_per_host_per_minute: u32,
    /// Breakwater: apps unavailable at once, percent of all apps.
    pub max_unavailable_percent: f64,
    /// Disk: usage of an empty host, percent.
    pub disk_base_percent: f64,
    /// Disk: usage per app on a host, percent.
    pub disk_per_app_percent: f64,
    /// Disk: standard deviation of the sampling noise, percent.
    pub disk_noise_percent: f64,
    /// Disk: the monitor's alert mark ("disk usage is getting tight"), percent.
    pub disk_alert_percent: f64,
    /// Disk: samples every this many seconds, per receiving host.
    pub disk_sample_s: u64,
    /// Alerts are watched for this long after the migration finished, seconds.
    pub observe_after_s: u64,
    /// Breakwater alerting: `Hysteresis` clears below this mark, percent.
    pub disk_clear_percent: f64,
    /// Breakwater alerting: samples above/below a mark before it changes state.
    pub hysteresis_samples: u32,
    /// Breakwater alerting: `EventAggregator` window, seconds.
    pub aggregate_window_s: u64,
    /// Nothing runs past this, seconds.
    pub horizon_s: u64,
}

impl Default for Feb2019Params {
    fn default() -> Self {
        Feb2019Params {
            old_hosts: 100,
            apps_per_host: 300,
            new_hosts: 100,
            new_host_capacity: 400,
            start_s: 20,
            safe_concurrent_starts: 8,
            failure_per_extra_start: 0.01,
            max_failure_probability: 0.5,
            naive_hosts_at_once: 30,
            naive_capacity_gate: 0.8,
            naive_check_s: 60,
            restart_period_s: 3_600,
            max_draining_hosts: 10,
            max_starts_per_host_per_minute: 8,
            max_unavailable_percent: 10.0,
            disk_base_percent: 20.0,
            disk_per_app_percent: 0.22,
            disk_noise_percent: 1.5,
            disk_alert_percent: 85.0,
            disk_sample_s: 30,
            observe_after_s: 1_800,
            disk_clear_percent: 80.0,
            hysteresis_samples: 3,
            aggregate_window_s: 600,
            horizon_s: 6 * 3_600,
        }
    }
}

impl Feb2019Params {
    /// Checks every parameter; the error names the first invalid one as
    /// `feb.<name>`.
    #[allow(clippy::too_many_lines)] // one check per parameter
    pub fn validate(&self) -> Result<(), ReplayError> {
        let share = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        let percent = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
        ensure(
            (1..=10_000).contains(&self.old_hosts),
            "feb.old_hosts",
            format!("must be in 1..=10000, got {}", self.old_hosts),
        )?;
        ensure(
            (1..=10_000).contains(&self.apps_per_host),
            "feb.apps_per_host",
            format!("must be in 1..=10000, got {}", self.apps_per_host),
        )?;
        ensure(
            (1..=10_000).contains(&self.new_hosts),
            "feb.new_hosts",
            format!("must be in 1..=10000, got {}", self.new_hosts),
        )?;
        let apps = u64::from(self.old_hosts) * u64::from(self.apps_per_host);
        let room = u64::from(self.new_hosts) * u64::from(self.new_host_capacity);
        ensure(
            room * 9 >= apps * 10,
            "feb.new_host_capacity",
            format!(
                "the new fleet must hold every app with 10 % to spare: {} hosts x {} slots < {apps} apps x 1.1",
                self.new_hosts, self.new_host_capacity
            ),
        )?;
        ensure(
            (1..=3_600).contains(&self.start_s),
            "feb.start_s",
            format!("must be in 1..=3600, got {}", self.start_s),
        )?;
        ensure(
            self.safe_concurrent_starts >= 1,
            "feb.safe_concurrent_starts",
            "must be at least 1",
        )?;
        ensure(
            share(self.failure_per_extra_start),
            "feb.failure_per_extra_start",
            format!("must be in 0..=1, got {}", self.failure_per_extra_start),
        )?;
        ensure(
            share(self.max_failure_probability),
            "feb.max_failure_probability",
            format!("must be in 0..=1, got {}", self.max_failure_probability),
        )?;
        ensure(
            self.naive_hosts_at_once >= 1,
            "feb.naive_hosts_at_once",
            "must be at least 1",
        )?;
        ensure(
            self.naive_capacity_gate > 0.0 && share(self.naive_capacity_gate),
            "feb.naive_capacity_gate",
            format!("must be in (0, 1], got {}", self.naive_capacity_gate),
        )?;
        ensure(
            self.naive_check_s >= 1,
            "feb.naive_check_s",
            "must be at least 1",
        )?;
        ensure(
            self.restart_period_s >= 60,
            "feb.restart_period_s",
            "must be at least 60",
        )?;
        ensure(
            self.max_draining_hosts >= 1,
            "feb.max_draining_hosts",
            "must be at least 1",
        )?;
        ensure(
            self.max_starts_per_host_per_minute >= 1,
            "feb.max_starts_per_host_per_minute",
            "must be at least 1",
        )?;
        ensure(
            self.max_unavailable_percent > 0.0 && percent(self.max_unavailable_percent),
            "feb.max_unavailable_percent",
            format!("must be in (0, 100], got {}", self.max_unavailable_percent),
        )?;
        for (name, v) in [
            ("feb.disk_base_percent", self.disk_base_percent),
            ("feb.disk_per_app_percent", self.disk_per_app_percent),
            ("feb.disk_noise_percent", self.disk_noise_percent),
            ("feb.disk_alert_percent", self.disk_alert_percent),
            ("feb.disk_clear_percent", self.disk_clear_percent),
        ] {
            ensure(percent(v), name, format!("must be in 0..=100, got {v}"))?;
        }
        ensure(
            self.disk_clear_percent <= self.disk_alert_percent,
            "feb.disk_clear_percent",
            format!(
                "must be at most disk_alert_percent ({}), got {}",
                self.disk_alert_percent, self.disk_clear_percent
            ),
        )?;
        ensure(
            self.disk_sample_s >= 1,
            "feb.disk_sample_s",
            "must be at least 1",
        )?;
        ensure(
            self.hysteresis_samples >= 1,
            "feb.hysteresis_samples",
            "must be at least 1",
        )?;
        ensure(
            self.aggregate_window_s >= 1,
            "feb.aggregate_window_s",
            "must be at least 1",
        )?;
        ensure(
            (600..=7 * 86_400).contains(&self.horizon_s),
            "feb.horizon_s",
            format!("must be in 600..=604800, got {}", self.horizon_s),
        )?;
        Ok(())
    }

    /// Apps to migrate.
    pub fn apps(&self) -> u64 {
        u64::from(self.old_hosts) * u64::from(self.apps_per_host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Feb2019Params::default().validate().unwrap();
    }

    #[test]
    fn a_new_fleet_too_small_is_rejected() {
        let p = Feb2019Params {
            new_hosts: 10,
            ..Feb2019Params::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("feb.new_host_capacity")
        );
    }

    #[test]
    fn clear_mark_above_alert_mark_is_rejected() {
        let p = Feb2019Params {
            disk_clear_percent: 95.0,
            ..Feb2019Params::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("disk_clear_percent")
        );
    }
}
