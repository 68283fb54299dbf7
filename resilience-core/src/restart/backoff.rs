//! [`RestartBackoff`]: the delay before restarting a crashed task.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backoff::{Backoff, BackoffConfig, Jitter};
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};

/// Configuration of a [`RestartBackoff`]. `Default`: Kubernetes'
/// `CrashLoopBackOff`, 10 s doubling to 5 min, no jitter, reset after 10 min of
/// clean running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartBackoffConfig {
    /// Delay before the first restart (before jitter). Must be > 0.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Cap on any delay. Must be >= `initial_delay`.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Growth per consecutive crash. Must be finite and >= 1.
    pub factor: f64,
    /// Randomization of each delay. A fleet whose instances crash together
    /// restarts together unless this is set (e.g. `"equal"`).
    pub jitter: Jitter,
    /// A run at least this long counts as healthy: the next crash starts the
    /// delays from `initial_delay` again. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub reset_after: Duration,
}

impl Default for RestartBackoffConfig {
    fn default() -> Self {
        RestartBackoffConfig {
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(300),
            factor: 2.0,
            jitter: Jitter::None,
            reset_after: Duration::from_secs(600),
        }
    }
}

impl RestartBackoffConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backoff_config().validate().map_err(|err| {
            let field = match err.field() {
                "base" => "initial_delay",
                "max" => "max_delay",
                other => return ConfigError::new(other.to_owned(), err.reason()),
            };
            ConfigError::new(field, err.reason().replace("`base`", "`initial_delay`"))
        })?;
        if self.reset_after.is_zero() {
            return Err(ConfigError::new("reset_after", "must be greater than zero"));
        }
        Ok(())
    }

    fn backoff_config(&self) -> BackoffConfig {
        BackoffConfig {
            base: self.initial_delay,
            max: self.max_delay,
            factor: self.factor,
            jitter: self.jitter,
            max_attempts: None,
        }
    }
}

/// Crash-loop backoff for a supervised task. See the [module docs](super).
///
/// Call [`RestartBackoff::on_started`] whenever the task starts and
/// [`RestartBackoff::on_crash`] when it crashes; wait the returned delay
/// before starting it again.
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    config: RestartBackoffConfig,
    clock: SharedClock,
    backoff: Backoff,
    started_at: Option<Instant>,
    crashes: u32,
    name: InstanceName,
    obs: RestartObs,
}

/// The metric handles of a restart backoff.
#[derive(Debug, Clone)]
struct RestartObs {
    crashes: Counter,
    resets: Counter,
    delay: Gauge,
}

impl RestartObs {
    fn register(name: &InstanceName) -> Self {
        RestartObs {
            crashes: Counter::register("breakwater_restart_crashes_total", name, &[]),
            resets: Counter::register("breakwater_restart_resets_total", name, &[]),
            delay: Gauge::register("breakwater_restart_delay_seconds", name, &[]),
        }
    }
}

impl RestartBackoff {
    /// A restart backoff on the system clock.
    pub fn new(config: RestartBackoffConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A restart backoff built from a [`Named`] configuration, on `clock`.
    pub fn from_named(
        config: Named<RestartBackoffConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        let config = config.config;
        config.validate()?;
        let backoff = Backoff::new(config.backoff_config())?;
        Ok(Self::build(config, clock, backoff, name))
    }

    /// Names the backoff: the `name` field of its tracing events (and of
    /// those of [`supervise`](super::supervise) with it) and the `name`
    /// label of its metrics. Call it right after construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = RestartObs::register(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// A restart backoff on the given clock.
    pub fn with_clock(
        config: RestartBackoffConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let backoff = Backoff::new(config.backoff_config())?;
        Ok(Self::build(config, clock, backoff, InstanceName::unnamed()))
    }

    /// A restart backoff whose jitter is reproducible from `seed`.
    pub fn with_seed(
        config: RestartBackoffConfig,
        clock: impl Clock,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let backoff = Backoff::with_seed(config.backoff_config(), seed)?;
        Ok(Self::build(config, clock, backoff, InstanceName::unnamed()))
    }

    fn build(
        config: RestartBackoffConfig,
        clock: impl Clock,
        backoff: Backoff,
        name: InstanceName,
    ) -> Self {
        RestartBackoff {
            config,
            clock: clock.into_shared(),
            backoff,
            started_at: None,
            crashes: 0,
            obs: RestartObs::register(&name),
            name,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RestartBackoffConfig {
        &self.config
    }

    /// The clock this backoff measures run time on (and a supervisor sleeps
    /// on).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Consecutive crashes since the last healthy run (or creation).
    pub fn crashes(&self) -> u32 {
        self.crashes
    }

    /// How long the task has been running, if it is running.
    pub fn uptime(&self) -> Option<Duration> {
        self.started_at
            .map(|start| self.clock.now().saturating_duration_since(start))
    }

    /// The task (re)started now.
    pub fn on_started(&mut self) {
        self.started_at = Some(self.clock.now());
    }

    /// The task crashed now: returns how long to wait before starting it
    /// again.
    ///
    /// If the run that just ended lasted at least `reset_after`, the crash
    /// counts as the first of a new series and gets `initial_delay`.
    pub fn on_crash(&mut self) -> Duration {
        let uptime = self.uptime();
        self.started_at = None;
        if let Some(uptime) = uptime
            && uptime >= self.config.reset_after
        {
            self.obs.resets.inc();
            tracing::info!(
                name = %self.name,
                ?uptime,
                previous_crashes = self.crashes,
                "task ran long enough: restart backoff reset"
            );
            self.reset();
        }
        self.crashes = self.crashes.saturating_add(1);
        let delay = self.backoff.next_delay().unwrap_or(self.config.max_delay);
        self.obs.crashes.inc();
        self.obs.delay.set(delay.as_secs_f64());
        tracing::warn!(
            name = %self.name,
            crashes = self.crashes,
            ?delay,
            ?uptime,
            "task crashed; restart delayed"
        );
        delay
    }

    /// Forgets the crash series: the next crash gets `initial_delay`.
    pub fn reset(&mut self) {
        self.crashes = 0;
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn backoff() -> (ManualClock, RestartBackoff) {
        let clock = ManualClock::new();
        let b = RestartBackoff::with_clock(RestartBackoffConfig::default(), clock.clone()).unwrap();
        (clock, b)
    }

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let (clock, mut b) = backoff();
        let mut delays = Vec::new();
        for _ in 0..8 {
            b.on_started();
            clock.advance(Duration::from_secs(1));
            delays.push(b.on_crash().as_secs());
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.crashes(), 8);
    }

    #[test]
    fn resets_after_ten_minutes_of_clean_running() {
        let (clock, mut b) = backoff();
        for _ in 0..4 {
            b.on_started();
            b.on_crash();
        }
        b.on_started();
        clock.advance(Duration::from_secs(600));
        assert_eq!(b.uptime(), Some(Duration::from_secs(600)));
        assert_eq!(b.on_crash(), Duration::from_secs(10));
        assert_eq!(b.crashes(), 1);
    }

    #[test]
    fn a_run_just_short_of_reset_after_keeps_growing() {
        let (clock, mut b) = backoff();
        b.on_started();
        b.on_crash();
        b.on_started();
        clock.advance(Duration::from_secs(599));
        assert_eq!(b.on_crash(), Duration::from_secs(20));
    }

    #[test]
    fn time_spent_waiting_to_restart_does_not_count_as_running() {
        let (clock, mut b) = backoff();
        b.on_started();
        b.on_crash();
        // Crashed, waiting a long time before the restart: not a clean run.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(b.uptime(), None);
        assert_eq!(b.on_crash(), Duration::from_secs(20));
    }

    #[test]
    fn jittered_delays_are_reproducible_and_bounded() {
        let config = RestartBackoffConfig {
            jitter: Jitter::Equal,
            ..RestartBackoffConfig::default()
        };
        let run = || {
            let mut b = RestartBackoff::with_seed(config.clone(), ManualClock::new(), 9).unwrap();
            (0..10).map(|_| b.on_crash()).collect::<Vec<_>>()
        };
        let delays = run();
        assert_eq!(delays, run());
        assert!(delays[0] >= Duration::from_secs(5) && delays[0] <= Duration::from_secs(10));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(300)));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let d = RestartBackoffConfig::default;
        let cases = [
            (
                RestartBackoffConfig {
                    initial_delay: Duration::ZERO,
                    ..d()
                },
                "initial_delay",
            ),
            (
                RestartBackoffConfig {
                    max_delay: Duration::from_secs(1),
                    ..d()
                },
                "max_delay",
            ),
            (
                RestartBackoffConfig {
                    factor: f64::NAN,
                    ..d()
                },
                "factor",
            ),
            (RestartBackoffConfig { factor: 0.5, ..d() }, "factor"),
            (
                RestartBackoffConfig {
                    reset_after: Duration::ZERO,
                    ..d()
                },
                "reset_after",
            ),
        ];
        for (cfg, field) in cases {
            let err = RestartBackoff::new(cfg).unwrap_err();
            assert_eq!(err.field(), field);
            assert!(!err.reason().contains("`base`"), "{err}");
        }
    }

    #[test]
    fn config_reads_human_durations() {
        let cfg: RestartBackoffConfig =
            toml::from_str("initial_delay = \"1s\"\nmax_delay = \"1m\"\njitter = \"full\"\n")
                .unwrap();
        assert_eq!(cfg.initial_delay, Duration::from_secs(1));
        assert_eq!(cfg.max_delay, Duration::from_secs(60));
        assert_eq!(cfg.reset_after, Duration::from_secs(600));
        assert!(toml::from_str::<RestartBackoffConfig>("max = \"1m\"").is_err());
    }

    #[test]
    fn restart_backoff_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<RestartBackoff>();
    }
}
