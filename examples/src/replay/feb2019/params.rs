//! Parameters of the February 2019 model, in four groups, every one
//! documented and overridable with `--set feb.<name>=<value>` (leaf names
//! are unique across the groups; `feb.world.<name>` works too):
//!
//! - [`FebSetup`]: what an operator can see — fleet sizes, start time, the
//!   platform's periodic restart, the disk monitor, the observation window;
//! - [`FebWorld`]: hidden truths — how many concurrent starts a receiver's
//!   `node_modules` allocator survives, the corruption curve beyond that,
//!   how late a corruption shows, the DNS API's rate limit, disk physics;
//! - [`FebNaive`]: the incident's procedure, mapped from the report;
//! - [`FebBreakwater`]: Breakwater's one fixed policy, written without
//!   knowing [`FebWorld`] (see [`super::policy`]).
//!
//! # Mapping from the report (`/work/shared/incidents/000_…`)
//!
//! - "scaling down the old one in large chunks (roughly 30 machines at a
//!   time) periodically" → [`FebNaive::naive_hosts_at_once`] = 30;
//! - 18:45 start, 19:45 "about two thirds into the process", "the roughly
//!   1.5 hour window" → a batch every [`FebNaive::naive_batch_interval_s`]
//!   = 30 min: batches at 0, 30, 60, 90 min (60 % drained before the third
//!   batch at 60 min, the last at 90 min);
//! - "`docker_worker_avg_pct_full` … was used to figure out if we could scale
//!   down further" → [`FebNaive::naive_capacity_gate`]: a batch waits
//!   while the receivers are fuller than 80 % (the only gate; no health);
//! - "some apps being started with a corrupted `node_modules`" that users
//!   found later ("From the support forums and Twitter") → corruption is
//!   silent: the start succeeds, the app turns unhealthy
//!   [`FebWorld::corruption_visible_after_s`] later;
//! - "would recover once they were restarted as we do periodically" →
//!   [`FebSetup::restart_period_s`]: each corrupted app is restarted at a
//!   uniformly random moment of the hour after its start (both sides);
//! - "'Disk usage is getting tight' … flooded our Slack channel and
//!   stress-tested the on-call person's voicemail" → every raw crossing of
//!   [`FebSetup::disk_alert_percent`] pages the on-call (`alerts_sent`);
//! - "datadog … flooded with warnings and errors" → one warning per app that
//!   turns visibly unhealthy and per throttled DNS call: warnings
//!   (`warnings_sent`), never pages;
//! - "We got rate-limited by AWS as we query Route53 when booting new
//!   machines" → every new host makes [`FebSetup::dns_calls_per_boot`]
//!   calls to a DNS API limited to [`FebWorld::dns_api_rate_per_s`]
//!   (Route53's documented 5 requests/s per account), naive all at once;
//! - alerts are counted over the same window for both sides,
//!   [`FebSetup::horizon_s`] from the start of the migration.

use serde::{Deserialize, Serialize};

use crate::replay::error::{ReplayError, ensure};

/// The February 2019 model: an old fleet drained onto a new one whose
/// hosts boot through a rate-limited DNS API, a per-host `node_modules`
/// allocator that silently corrupts starts when too many run at once, and
/// a disk-usage monitor hovering around its alert mark.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Feb2019Params {
    /// What an operator can see.
    pub setup: FebSetup,
    /// Hidden truths; never read by a policy.
    pub world: FebWorld,
    /// The incident's procedure.
    pub naive: FebNaive,
    /// Breakwater's one fixed policy.
    pub breakwater: FebBreakwater,
}

/// What an operator can see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FebSetup {
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
    /// The platform restarts every app once per period ("as we do
    /// periodically"), at a uniformly random moment: a corrupted app is
    /// repaired on average half a period after its start, seconds.
    pub restart_period_s: u64,
    /// DNS API calls each new host makes while booting (register its
    /// record, read it back).
    pub dns_calls_per_boot: u32,
    /// Disk: the monitor's alert mark ("disk usage is getting tight"), percent.
    pub disk_alert_percent: f64,
    /// Disk: samples every this many seconds, per receiving host.
    pub disk_sample_s: u64,
    /// The observation window of both sides, from the start of the
    /// migration (after the new fleet booted): alerts are counted and the
    /// simulation runs until then, seconds.
    pub horizon_s: u64,
}

impl Default for FebSetup {
    fn default() -> Self {
        FebSetup {
            old_hosts: 100,
            apps_per_host: 300,
            new_hosts: 100,
            new_host_capacity: 400,
            start_s: 20,
            restart_period_s: 3_600,
            dns_calls_per_boot: 2,
            disk_alert_percent: 85.0,
            disk_sample_s: 30,
            horizon_s: 4 * 3_600,
        }
    }
}

/// Hidden truths of the world: the simulation reads them, no policy does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FebWorld {
    /// Concurrent allocations per host that never corrupt a start.
    pub safe_concurrent_starts: u32,
    /// Corruption probability added per concurrent allocation beyond the
    /// safe number (the February curve of fleet-drain's host model).
    pub failure_per_extra_start: f64,
    /// Cap on a start's corruption probability.
    pub max_failure_probability: f64,
    /// A corrupted app turns unhealthy this long after its start ended, seconds.
    pub corruption_visible_after_s: u64,
    /// The DNS API's rate limit, calls per second (Route53: 5 per account).
    pub dns_api_rate_per_s: u32,
    /// Calls the DNS API accepts back to back.
    pub dns_api_burst: u32,
    /// Disk: usage of an empty host, percent.
    pub disk_base_percent: f64,
    /// Disk: usage per app on a host, percent.
    pub disk_per_app_percent: f64,
    /// Disk: standard deviation of the sampling noise, percent.
    pub disk_noise_percent: f64,
}

impl Default for FebWorld {
    fn default() -> Self {
        FebWorld {
            safe_concurrent_starts: 8,
            failure_per_extra_start: 0.01,
            max_failure_probability: 0.5,
            corruption_visible_after_s: 120,
            dns_api_rate_per_s: 5,
            dns_api_burst: 5,
            disk_base_percent: 20.0,
            disk_per_app_percent: 0.22,
            disk_noise_percent: 1.5,
        }
    }
}

/// The incident's procedure (see the module docs for the mapping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FebNaive {
    /// Hosts drained per batch ("roughly 30 machines at a time").
    pub naive_hosts_at_once: u32,
    /// Seconds between two batches (the report's 1.5-hour window).
    pub naive_batch_interval_s: u64,
    /// A batch waits while the receivers' capacity use is at or above this share.
    pub naive_capacity_gate: f64,
    /// How often capacity is looked at while a batch waits, seconds.
    pub naive_check_s: u64,
    /// Boot: a throttled DNS call is retried after this, doubled per
    /// attempt (up to 20 s) with ±50 % jitter, seconds (both sides; the
    /// AWS SDK's behaviour).
    pub dns_retry_s: f64,
}

impl Default for FebNaive {
    fn default() -> Self {
        FebNaive {
            naive_hosts_at_once: 30,
            naive_batch_interval_s: 1_800,
            naive_capacity_gate: 0.8,
            naive_check_s: 60,
            dns_retry_s: 1.0,
        }
    }
}

/// Breakwater's one fixed policy: what a careful operator writes without
/// knowing the world. Built into configurations by [`super::policy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FebBreakwater {
    /// Old hosts draining at once (the action item's "upper limit"; a
    /// quarter of the incident's fleet, below its 30).
    pub max_draining_hosts: u32,
    /// Apps unavailable (starting) at once, percent of all apps.
    pub max_unavailable_percent: f64,
    /// App starts into one receiving host per minute: a backstop far above
    /// what the adaptive concurrency allows; not the safety mechanism.
    pub max_starts_per_host_per_minute: u32,
    /// Ceiling of the adaptive start concurrency per receiver.
    pub max_concurrent_starts_per_host: u32,
    /// Adaptive: concurrent starts per receiver before anything is known.
    pub adaptive_initial_starts: u32,
    /// Adaptive: added per window of successful starts.
    pub adaptive_increase_by: u32,
    /// Adaptive: factor applied on a (late) failure, in `[0.5, 1)`.
    pub adaptive_backoff_ratio: f64,
    /// Adaptive: at most one increase per this window, seconds.
    pub adaptive_window_s: u64,
    /// Adaptive: stay within this factor of the highest concurrency whose
    /// starts passed probation (> 1).
    pub adaptive_growth_factor: f64,
    /// Every moved app is watched this long after its start; one that turns
    /// unhealthy is a late failure, counted against its receiver and
    /// restarted, seconds (2.5 minutes: a crash-looping app shows well
    /// within it).
    pub probation_s: u64,
    /// Health gate: pause while late/failed starts per minute exceed this
    /// many per 1,000 apps moved (resume below a third of it).
    pub pause_failures_per_1000_apps: f64,
    /// Health gate: abort above this many failures per minute per 1,000 apps.
    pub abort_failures_per_1000_apps: f64,
    /// How often the drain's health gate samples, seconds.
    pub check_interval_s: u64,
    /// Allocator (node-modules-alloc model): allocations run at once per
    /// host; the rest queue. A surge bound, far above any learned limit.
    pub alloc_max_concurrent: u32,
    /// Allocator: allocations that may wait per host; beyond, shed at once.
    pub alloc_max_queued: u32,
    /// Allocator: a queued allocation is shed after waiting this long, seconds.
    pub alloc_queue_timeout_s: u64,
    /// Boot: DNS calls per second the fleet's boot process allows itself
    /// (a `RateLimiter` in front of the DNS API; below Route53's published
    /// per-account limit, leaving room for other callers).
    pub dns_client_rate_per_s: u32,
    /// Boot: DNS calls allowed back to back.
    pub dns_client_burst: u32,
    /// Alerting: `Hysteresis` clears below this mark, percent.
    pub disk_clear_percent: f64,
    /// Alerting: samples above/below a mark before it changes state.
    pub hysteresis_samples: u32,
    /// Alerting: `EventAggregator` window, seconds.
    pub aggregate_window_s: u64,
}

impl Default for FebBreakwater {
    fn default() -> Self {
        FebBreakwater {
            max_draining_hosts: 25,
            max_unavailable_percent: 10.0,
            max_starts_per_host_per_minute: 600,
            max_concurrent_starts_per_host: 64,
            adaptive_initial_starts: 2,
            adaptive_increase_by: 2,
            adaptive_backoff_ratio: 0.75,
            adaptive_window_s: 20,
            adaptive_growth_factor: 1.5,
            probation_s: 150,
            pause_failures_per_1000_apps: 2.0,
            abort_failures_per_1000_apps: 33.0,
            check_interval_s: 10,
            alloc_max_concurrent: 64,
            alloc_max_queued: 64,
            alloc_queue_timeout_s: 60,
            dns_client_rate_per_s: 4,
            dns_client_burst: 1,
            disk_clear_percent: 80.0,
            hysteresis_samples: 3,
            aggregate_window_s: 600,
        }
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    value: T,
    low: T,
    high: T,
    name: &str,
) -> Result<(), ReplayError> {
    ensure(
        low <= value && value <= high,
        name,
        format!("must be in {low}..={high}, got {value}"),
    )
}

fn finite_in(value: f64, low: f64, high: f64, name: &str) -> Result<(), ReplayError> {
    ensure(
        value.is_finite() && low <= value && value <= high,
        name,
        format!("must be in {low}..={high}, got {value}"),
    )
}

impl FebSetup {
    fn validate(&self) -> Result<(), ReplayError> {
        in_range(self.old_hosts, 1, 10_000, "feb.old_hosts")?;
        in_range(self.apps_per_host, 1, 10_000, "feb.apps_per_host")?;
        in_range(self.new_hosts, 1, 10_000, "feb.new_hosts")?;
        let apps = self.apps();
        let room = u64::from(self.new_hosts) * u64::from(self.new_host_capacity);
        ensure(
            room * 9 >= apps * 10,
            "feb.new_host_capacity",
            format!(
                "the new fleet must hold every app with 10 % to spare: {} hosts x {} slots < {apps} apps x 1.1",
                self.new_hosts, self.new_host_capacity
            ),
        )?;
        in_range(self.start_s, 1, 3_600, "feb.start_s")?;
        in_range(self.restart_period_s, 60, 86_400, "feb.restart_period_s")?;
        in_range(self.dns_calls_per_boot, 1, 100, "feb.dns_calls_per_boot")?;
        finite_in(
            self.disk_alert_percent,
            0.0,
            100.0,
            "feb.disk_alert_percent",
        )?;
        in_range(self.disk_sample_s, 1, 3_600, "feb.disk_sample_s")?;
        in_range(self.horizon_s, 600, 7 * 86_400, "feb.horizon_s")?;
        Ok(())
    }

    /// Apps to migrate.
    pub fn apps(&self) -> u64 {
        u64::from(self.old_hosts) * u64::from(self.apps_per_host)
    }
}

impl FebWorld {
    fn validate(&self) -> Result<(), ReplayError> {
        in_range(
            self.safe_concurrent_starts,
            1,
            10_000,
            "feb.safe_concurrent_starts",
        )?;
        finite_in(
            self.failure_per_extra_start,
            0.0,
            1.0,
            "feb.failure_per_extra_start",
        )?;
        finite_in(
            self.max_failure_probability,
            0.0,
            1.0,
            "feb.max_failure_probability",
        )?;
        in_range(
            self.corruption_visible_after_s,
            1,
            86_400,
            "feb.corruption_visible_after_s",
        )?;
        in_range(self.dns_api_rate_per_s, 1, 10_000, "feb.dns_api_rate_per_s")?;
        in_range(self.dns_api_burst, 1, 10_000, "feb.dns_api_burst")?;
        finite_in(self.disk_base_percent, 0.0, 100.0, "feb.disk_base_percent")?;
        finite_in(
            self.disk_per_app_percent,
            0.0,
            100.0,
            "feb.disk_per_app_percent",
        )?;
        finite_in(
            self.disk_noise_percent,
            0.0,
            100.0,
            "feb.disk_noise_percent",
        )?;
        Ok(())
    }
}

impl FebNaive {
    fn validate(&self) -> Result<(), ReplayError> {
        in_range(
            self.naive_hosts_at_once,
            1,
            10_000,
            "feb.naive_hosts_at_once",
        )?;
        in_range(
            self.naive_batch_interval_s,
            0,
            86_400,
            "feb.naive_batch_interval_s",
        )?;
        ensure(
            self.naive_capacity_gate.is_finite()
                && self.naive_capacity_gate > 0.0
                && self.naive_capacity_gate <= 1.0,
            "feb.naive_capacity_gate",
            format!("must be in (0, 1], got {}", self.naive_capacity_gate),
        )?;
        in_range(self.naive_check_s, 1, 3_600, "feb.naive_check_s")?;
        finite_in(self.dns_retry_s, 0.001, 60.0, "feb.dns_retry_s")?;
        Ok(())
    }
}

impl FebBreakwater {
    fn validate(&self) -> Result<(), ReplayError> {
        in_range(self.max_draining_hosts, 1, 10_000, "feb.max_draining_hosts")?;
        ensure(
            self.max_unavailable_percent.is_finite()
                && self.max_unavailable_percent > 0.0
                && self.max_unavailable_percent <= 100.0,
            "feb.max_unavailable_percent",
            format!("must be in (0, 100], got {}", self.max_unavailable_percent),
        )?;
        in_range(
            self.max_starts_per_host_per_minute,
            1,
            100_000,
            "feb.max_starts_per_host_per_minute",
        )?;
        in_range(
            self.max_concurrent_starts_per_host,
            1,
            10_000,
            "feb.max_concurrent_starts_per_host",
        )?;
        in_range(
            self.adaptive_initial_starts,
            1,
            self.max_concurrent_starts_per_host,
            "feb.adaptive_initial_starts",
        )?;
        in_range(
            self.adaptive_increase_by,
            1,
            10_000,
            "feb.adaptive_increase_by",
        )?;
        ensure(
            self.adaptive_backoff_ratio.is_finite()
                && (0.5..1.0).contains(&self.adaptive_backoff_ratio),
            "feb.adaptive_backoff_ratio",
            format!("must be in [0.5, 1), got {}", self.adaptive_backoff_ratio),
        )?;
        in_range(self.adaptive_window_s, 1, 3_600, "feb.adaptive_window_s")?;
        ensure(
            self.adaptive_growth_factor.is_finite() && self.adaptive_growth_factor > 1.0,
            "feb.adaptive_growth_factor",
            format!("must be > 1, got {}", self.adaptive_growth_factor),
        )?;
        in_range(self.probation_s, 1, 86_400, "feb.probation_s")?;
        ensure(
            self.pause_failures_per_1000_apps.is_finite()
                && self.pause_failures_per_1000_apps > 0.0,
            "feb.pause_failures_per_1000_apps",
            format!("must be > 0, got {}", self.pause_failures_per_1000_apps),
        )?;
        ensure(
            self.abort_failures_per_1000_apps.is_finite()
                && self.abort_failures_per_1000_apps > self.pause_failures_per_1000_apps,
            "feb.abort_failures_per_1000_apps",
            format!(
                "must be above pause_failures_per_1000_apps ({}), got {}",
                self.pause_failures_per_1000_apps, self.abort_failures_per_1000_apps
            ),
        )?;
        in_range(self.check_interval_s, 1, 3_600, "feb.check_interval_s")?;
        in_range(
            self.alloc_max_concurrent,
            1,
            10_000,
            "feb.alloc_max_concurrent",
        )?;
        in_range(self.alloc_max_queued, 0, 100_000, "feb.alloc_max_queued")?;
        in_range(
            self.alloc_queue_timeout_s,
            1,
            3_600,
            "feb.alloc_queue_timeout_s",
        )?;
        in_range(
            self.dns_client_rate_per_s,
            1,
            10_000,
            "feb.dns_client_rate_per_s",
        )?;
        in_range(self.dns_client_burst, 1, 10_000, "feb.dns_client_burst")?;
        finite_in(
            self.disk_clear_percent,
            0.0,
            100.0,
            "feb.disk_clear_percent",
        )?;
        in_range(self.hysteresis_samples, 1, 1_000, "feb.hysteresis_samples")?;
        in_range(self.aggregate_window_s, 1, 86_400, "feb.aggregate_window_s")?;
        Ok(())
    }
}

impl Feb2019Params {
    /// Checks every parameter; the error names the first invalid one as
    /// `feb.<name>`.
    pub fn validate(&self) -> Result<(), ReplayError> {
        self.setup.validate()?;
        self.world.validate()?;
        self.naive.validate()?;
        self.breakwater.validate()?;
        ensure(
            self.breakwater.disk_clear_percent <= self.setup.disk_alert_percent,
            "feb.disk_clear_percent",
            format!(
                "must be at most disk_alert_percent ({}), got {}",
                self.setup.disk_alert_percent, self.breakwater.disk_clear_percent
            ),
        )?;
        Ok(())
    }

    /// Apps to migrate.
    pub fn apps(&self) -> u64 {
        self.setup.apps()
    }

    /// Apps each receiver ends with (the apps spread evenly).
    pub fn apps_per_receiver(&self) -> u64 {
        self.apps().div_ceil(u64::from(self.setup.new_hosts.max(1)))
    }

    /// The fastest safe drain, seconds: every receiver runs the hidden safe
    /// number of starts at once, back to back, from the first second:
    /// ⌈apps per receiver / S⌉ × start time. Reads the world (a limit may;
    /// a policy may not).
    pub fn fastest_safe_drain_s(&self) -> f64 {
        let rounds = self
            .apps_per_receiver()
            .div_ceil(u64::from(self.world.safe_concurrent_starts.max(1)));
        (rounds * self.setup.start_s) as f64
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
        let mut p = Feb2019Params::default();
        p.setup.new_hosts = 10;
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("feb.new_host_capacity")
        );
    }

    #[test]
    fn clear_mark_above_alert_mark_is_rejected() {
        let mut p = Feb2019Params::default();
        p.breakwater.disk_clear_percent = 95.0;
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("disk_clear_percent")
        );
    }

    #[test]
    fn leaf_names_are_unique_across_groups() {
        let json = serde_json::to_value(Feb2019Params::default()).unwrap();
        let mut names = Vec::new();
        for group in json.as_object().unwrap().values() {
            names.extend(group.as_object().unwrap().keys().cloned());
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a leaf name appears in two groups");
    }

    #[test]
    fn the_limit_is_rounds_of_safe_starts() {
        let mut p = Feb2019Params::default();
        p.world.safe_concurrent_starts = 16;
        // 300 apps per receiver, 16 at once: 19 rounds of 20 s.
        assert!((p.fastest_safe_drain_s() - 380.0).abs() < 1e-9);
    }
}
