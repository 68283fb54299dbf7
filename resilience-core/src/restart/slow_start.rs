//! [`SlowStart`]: a freshly started instance takes a growing share of
//! traffic.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;

/// Configuration of a [`SlowStart`]. `Default`: start at 10 % of traffic and
/// ramp linearly to 100 % over 30 s. `initial` and `aggression` play the roles
/// of Envoy's slow-start `min_weight_percent` (default 10 %) and `aggression`
/// (default 1), except that the ramp interpolates from `initial` instead of
/// flooring at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowStartConfig {
    /// Length of the warm-up. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Share of traffic admitted right after the start. Must be in `0..=1`.
    pub initial: f64,
    /// Shape of the ramp: the share is
    /// `initial + (1 - initial) * (elapsed / duration)^(1 / aggression)`.
    /// `1.0` is linear; above 1 the share rises quickly at first, below 1 it
    /// stays low for longer. Must be finite and > 0.
    pub aggression: f64,
}

impl Default for SlowStartConfig {
    fn default() -> Self {
        SlowStartConfig {
            duration: Duration::from_secs(30),
            initial: 0.1,
            aggression: 1.0,
        }
    }
}

impl SlowStartConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.duration.is_zero() {
            return Err(ConfigError::new("duration", "must be greater than zero"));
        }
        if !(0.0..=1.0).contains(&self.initial) {
            return Err(ConfigError::new(
                "initial",
                format!("must be a share in 0..=1, got {}", self.initial),
            ));
        }
        if !self.aggression.is_finite() || self.aggression <= 0.0 {
            return Err(ConfigError::new(
                "aggression",
                format!(
                    "must be a finite number > 0 (1 is linear), got {}",
                    self.aggression
                ),
            ));
        }
        Ok(())
    }
}

/// Warm-up ramp of one instance. See the [module docs](super).
///
/// Read-only after construction ([`SlowStart::restart`] aside), so `&self`
/// methods can be called from any thread.
#[derive(Clone)]
pub struct SlowStart {
    config: SlowStartConfig,
    clock: SharedClock,
    started_at: Instant,
}

impl fmt::Debug for SlowStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlowStart")
            .field("config", &self.config)
            .field("admit_fraction", &self.admit_fraction())
            .finish_non_exhaustive()
    }
}

impl SlowStart {
    /// A ramp on the system clock, starting now.
    pub fn new(config: SlowStartConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A ramp on the given clock, starting now.
    pub fn with_clock(config: SlowStartConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        let clock = clock.into_shared();
        Ok(SlowStart {
            started_at: clock.now(),
            clock,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SlowStartConfig {
        &self.config
    }

    /// When the current warm-up started.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Starts the warm-up again (the instance restarted).
    pub fn restart(&mut self) {
        self.started_at = self.clock.now();
        tracing::info!(
            duration = ?self.config.duration,
            initial = self.config.initial,
            "slow start: warm-up restarted"
        );
    }

    /// Whether the warm-up is over (every request is admitted).
    pub fn is_warm(&self) -> bool {
        self.elapsed() >= self.config.duration
    }

    /// Share of traffic to admit now, from `initial` right after the start
    /// to `1.0` once `duration` has passed.
    pub fn admit_fraction(&self) -> f64 {
        let elapsed = self.elapsed();
        if elapsed >= self.config.duration {
            return 1.0;
        }
        let progress = elapsed.as_secs_f64() / self.config.duration.as_secs_f64();
        let shaped = progress.powf(self.config.aggression.recip());
        let initial = self.config.initial;
        (initial + (1.0 - initial) * shaped).clamp(0.0, 1.0)
    }

    /// Draws whether to admit one request, with probability
    /// [`SlowStart::admit_fraction`]. Pass a seeded RNG for reproducible
    /// simulations.
    pub fn should_admit(&self, rng: &mut fastrand::Rng) -> bool {
        let fraction = self.admit_fraction();
        if fraction >= 1.0 {
            return true;
        }
        let admit = rng.f64() < fraction;
        if !admit {
            tracing::trace!(
                fraction,
                "slow start: request not admitted while warming up"
            );
        }
        admit
    }

    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.started_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;

    fn ramp(initial: f64, aggression: f64) -> (ManualClock, SlowStart) {
        let clock = ManualClock::new();
        let s = SlowStart::with_clock(
            SlowStartConfig {
                duration: Duration::from_secs(100),
                initial,
                aggression,
            },
            clock.clone(),
        )
        .unwrap();
        (clock, s)
    }

    #[test]
    fn ramps_linearly_from_initial_to_full() {
        let (clock, s) = ramp(0.1, 1.0);
        assert!((s.admit_fraction() - 0.1).abs() < 1e-12);
        clock.advance(Duration::from_secs(50));
        assert!((s.admit_fraction() - 0.55).abs() < 1e-12);
        assert!(!s.is_warm());
        clock.advance(Duration::from_secs(50));
        assert_eq!(s.admit_fraction(), 1.0);
        assert!(s.is_warm());
    }

    #[test]
    fn aggression_shapes_the_ramp() {
        let at_quarter = |aggression| {
            let (clock, s) = ramp(0.0, aggression);
            clock.advance(Duration::from_secs(25));
            s.admit_fraction()
        };
        assert!((at_quarter(1.0) - 0.25).abs() < 1e-12);
        assert!((at_quarter(2.0) - 0.5).abs() < 1e-12);
        assert!((at_quarter(0.5) - 0.0625).abs() < 1e-12);
    }

    #[test]
    fn zero_initial_admits_nothing_at_the_start() {
        let (_clock, s) = ramp(0.0, 1.0);
        let mut rng = fastrand::Rng::with_seed(1);
        assert!((0..1000).all(|_| !s.should_admit(&mut rng)));
    }

    #[test]
    fn admits_about_the_fraction_while_warming_up() {
        let (clock, s) = ramp(0.1, 1.0);
        clock.advance(Duration::from_secs(30));
        let mut rng = fastrand::Rng::with_seed(3);
        let admitted = (0..10_000).filter(|_| s.should_admit(&mut rng)).count();
        // Expected share 0.1 + 0.9 * 0.3 = 0.37.
        assert!((3400..4000).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn restart_begins_a_new_warm_up() {
        let (clock, mut s) = ramp(0.2, 1.0);
        clock.advance(Duration::from_secs(500));
        assert!(s.is_warm());
        s.restart();
        assert_eq!(s.started_at(), clock.now());
        assert!((s.admit_fraction() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let d = SlowStartConfig::default;
        let cases = [
            (
                SlowStartConfig {
                    duration: Duration::ZERO,
                    ..d()
                },
                "duration",
            ),
            (
                SlowStartConfig {
                    initial: -0.1,
                    ..d()
                },
                "initial",
            ),
            (
                SlowStartConfig {
                    initial: 1.1,
                    ..d()
                },
                "initial",
            ),
            (
                SlowStartConfig {
                    initial: f64::NAN,
                    ..d()
                },
                "initial",
            ),
            (
                SlowStartConfig {
                    aggression: 0.0,
                    ..d()
                },
                "aggression",
            ),
            (
                SlowStartConfig {
                    aggression: -1.0,
                    ..d()
                },
                "aggression",
            ),
            (
                SlowStartConfig {
                    aggression: f64::NAN,
                    ..d()
                },
                "aggression",
            ),
            (
                SlowStartConfig {
                    aggression: f64::INFINITY,
                    ..d()
                },
                "aggression",
            ),
        ];
        for (cfg, field) in cases {
            assert_eq!(SlowStart::new(cfg).unwrap_err().field(), field);
        }
    }

    #[test]
    fn config_reads_human_durations() {
        let cfg: SlowStartConfig =
            serde_json::from_str(r#"{"duration":"2m","initial":0.05}"#).unwrap();
        assert_eq!(cfg.duration, Duration::from_secs(120));
        assert_eq!(cfg.aggression, 1.0);
        assert!(serde_json::from_str::<SlowStartConfig>(r#"{"window":"2m"}"#).is_err());
    }

    #[test]
    fn slow_start_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<SlowStart>();
    }

    proptest! {
        #[test]
        fn fraction_rises_monotonically_within_initial_and_one(
            initial in 0.0f64..=1.0,
            aggression in 0.05f64..20.0,
            steps in proptest::collection::vec(0u64..20_000, 1..50),
        ) {
            let (clock, s) = ramp(initial, aggression);
            let mut previous = s.admit_fraction();
            prop_assert!((previous - initial).abs() < 1e-9);
            for ms in steps {
                clock.advance(Duration::from_millis(ms));
                let f = s.admit_fraction();
                prop_assert!(f >= previous && f >= initial && f <= 1.0);
                previous = f;
            }
        }
    }
}
