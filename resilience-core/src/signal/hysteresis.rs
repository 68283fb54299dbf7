//! [`Hysteresis`]: a level signal that fires and clears on two separate marks,
//! each only after several consecutive samples.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};

/// Which side of the marks is the alarming one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Fires when the value rises above `high`, clears when it falls below
    /// `low` (disk usage, error rate, queue length). The default.
    #[default]
    Above,
    /// Fires when the value falls below `low`, clears when it rises above
    /// `high` (share of healthy apps, free capacity, success rate).
    Below,
}

/// Configuration of a [`Hysteresis`]. `Default`: fires above 0.9 for 3
/// consecutive samples, clears below 0.8 for 3 consecutive samples
/// (a disk-usage alert on a 0..=1 scale).
///
/// The band between `low` and `high` is neutral: a sample inside it neither
/// fires nor clears the signal, and it breaks a streak of alarming (or of
/// clearing) samples. Comparisons are strict: a value equal to a mark is
/// inside the band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HysteresisConfig {
    /// The upper mark. With [`Direction::Above`] the signal fires above it;
    /// with [`Direction::Below`] it clears above it. Must be finite and
    /// `>= low`.
    pub high: f64,
    /// The lower mark. With [`Direction::Above`] the signal clears below it;
    /// with [`Direction::Below`] it fires below it. Must be finite.
    pub low: f64,
    /// Consecutive alarming samples needed to fire. Must be >= 1.
    pub fire_after: u32,
    /// Consecutive clearing samples needed to clear. Must be >= 1.
    pub clear_after: u32,
    /// Which side of the marks is alarming.
    pub direction: Direction,
}

impl Default for HysteresisConfig {
    fn default() -> Self {
        HysteresisConfig {
            high: 0.9,
            low: 0.8,
            fire_after: 3,
            clear_after: 3,
            direction: Direction::Above,
        }
    }
}

impl HysteresisConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.high.is_finite() {
            return Err(ConfigError::new(
                "high",
                format!("must be a finite number, got {}", self.high),
            ));
        }
        if !self.low.is_finite() {
            return Err(ConfigError::new(
                "low",
                format!("must be a finite number, got {}", self.low),
            ));
        }
        if self.high < self.low {
            return Err(ConfigError::new(
                "high",
                format!(
                    "must be at least `low` ({}), got {}; for a signal that fires when \
                     the value drops, keep high >= low and set `direction = \"below\"`",
                    self.low, self.high
                ),
            ));
        }
        if self.fire_after == 0 {
            return Err(ConfigError::new("fire_after", "must be at least 1 sample"));
        }
        if self.clear_after == 0 {
            return Err(ConfigError::new("clear_after", "must be at least 1 sample"));
        }
        Ok(())
    }
}

/// A state change reported by [`Hysteresis::observe`], carrying the sample
/// that caused it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalChange {
    /// The signal started firing.
    Fired {
        /// The sample that completed the alarming streak.
        value: f64,
    },
    /// The signal stopped firing.
    Cleared {
        /// The sample that completed the clearing streak.
        value: f64,
    },
}

/// A two-mark, N-sample level alarm. See the [module docs](super).
///
/// Not time-dependent: it counts samples, so feed it at a steady cadence
/// (e.g. one sample per scrape).
#[derive(Debug, Clone)]
pub struct Hysteresis {
    config: HysteresisConfig,
    firing: bool,
    streak: u32,
    ignored: u64,
    name: InstanceName,
    obs: SignalObs,
}

/// The metric handles of a signal.
#[derive(Debug, Clone)]
struct SignalObs {
    firing: Gauge,
    fired: Counter,
    cleared: Counter,
    ignored: Counter,
}

impl SignalObs {
    fn register(name: &InstanceName, firing: bool) -> Self {
        const TRANSITIONS: &str = "breakwater_signal_transitions_total";
        let obs = SignalObs {
            firing: Gauge::register("breakwater_signal_firing", name, &[]),
            fired: Counter::register(TRANSITIONS, name, &[("to", "fired")]),
            cleared: Counter::register(TRANSITIONS, name, &[("to", "cleared")]),
            ignored: Counter::register("breakwater_signal_ignored_samples_total", name, &[]),
        };
        obs.firing.set(if firing { 1.0 } else { 0.0 });
        obs
    }
}

impl Hysteresis {
    /// A signal that starts in the cleared state.
    pub fn new(config: HysteresisConfig) -> Result<Self, ConfigError> {
        Self::build(config, InstanceName::unnamed())
    }

    fn build(config: HysteresisConfig, name: InstanceName) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Hysteresis {
            config,
            firing: false,
            streak: 0,
            ignored: 0,
            obs: SignalObs::register(&name, false),
            name,
        })
    }

    /// A signal built from a [`Named`] configuration.
    ///
    /// ```
    /// use resilience_core::Named;
    /// use resilience_core::signal::{Hysteresis, HysteresisConfig};
    ///
    /// let config: Named<HysteresisConfig> =
    ///     serde_json::from_str(r#"{ "name": "disk-usage", "high": 0.9, "low": 0.8 }"#)?;
    /// let signal = Hysteresis::from_named(config)?;
    /// assert_eq!(signal.name().as_str(), "disk-usage");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(config: Named<HysteresisConfig>) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(config.config, name)
    }

    /// Names the signal: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = SignalObs::register(&name, self.firing);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &HysteresisConfig {
        &self.config
    }

    /// Whether the signal is currently firing.
    pub fn is_firing(&self) -> bool {
        self.firing
    }

    /// Length of the current streak of samples towards the next change
    /// (alarming samples while cleared, clearing samples while firing).
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// How many NaN samples were ignored.
    pub fn ignored_samples(&self) -> u64 {
        self.ignored
    }

    /// Feeds one sample; returns the state change it caused, if any.
    ///
    /// A NaN sample (a failed scrape, a 0/0 ratio) carries no information and
    /// is **ignored**: it neither extends nor breaks a streak, and is counted
    /// in [`Hysteresis::ignored_samples`]. Infinite samples are ordinary
    /// values beyond every mark.
    pub fn observe(&mut self, value: f64) -> Option<SignalChange> {
        if value.is_nan() {
            self.ignored = self.ignored.saturating_add(1);
            self.obs.ignored.inc();
            tracing::debug!(name = %self.name, ignored = self.ignored, "hysteresis ignored a NaN sample");
            return None;
        }
        let (alarming, clearing) = match self.config.direction {
            Direction::Above => (value > self.config.high, value < self.config.low),
            Direction::Below => (value < self.config.low, value > self.config.high),
        };
        let (counts, needed) = if self.firing {
            (clearing, self.config.clear_after)
        } else {
            (alarming, self.config.fire_after)
        };
        if !counts {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        if self.streak < needed {
            tracing::trace!(name = %self.name, value, streak = self.streak, needed, "hysteresis streak");
            return None;
        }
        self.streak = 0;
        self.firing = !self.firing;
        let (high, low) = (self.config.high, self.config.low);
        self.obs.firing.set(if self.firing { 1.0 } else { 0.0 });
        if self.firing {
            self.obs.fired.inc();
            tracing::warn!(name = %self.name, value, high, low, direction = ?self.config.direction, "signal fired");
            Some(SignalChange::Fired { value })
        } else {
            self.obs.cleared.inc();
            tracing::info!(name = %self.name, value, high, low, direction = ?self.config.direction, "signal cleared");
            Some(SignalChange::Cleared { value })
        }
    }

    /// Returns to the cleared state and forgets the current streak.
    pub fn reset(&mut self) {
        self.firing = false;
        self.streak = 0;
        self.obs.firing.set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn disk() -> Hysteresis {
        Hysteresis::new(HysteresisConfig {
            high: 0.9,
            low: 0.8,
            fire_after: 3,
            clear_after: 2,
            direction: Direction::Above,
        })
        .unwrap()
    }

    fn feed(signal: &mut Hysteresis, values: &[f64]) -> Vec<Option<SignalChange>> {
        values.iter().map(|v| signal.observe(*v)).collect()
    }

    #[test]
    fn fires_only_after_consecutive_samples_above_the_high_mark() {
        let mut s = disk();
        assert_eq!(feed(&mut s, &[0.95, 0.95]), [None, None]);
        assert!(!s.is_firing());
        assert_eq!(s.observe(0.91), Some(SignalChange::Fired { value: 0.91 }));
        assert!(s.is_firing());
    }

    #[test]
    fn a_sample_inside_the_band_breaks_the_streak() {
        let mut s = disk();
        feed(&mut s, &[0.95, 0.95, 0.85, 0.95, 0.95]);
        assert!(!s.is_firing());
        assert_eq!(s.streak(), 2);
        assert!(s.observe(0.95).is_some());
    }

    #[test]
    fn the_marks_themselves_are_inside_the_band() {
        let mut s = disk();
        feed(&mut s, &[0.9, 0.9, 0.9, 0.9]);
        assert!(!s.is_firing());
        feed(&mut s, &[0.95, 0.95, 0.95]);
        feed(&mut s, &[0.8, 0.8, 0.8]);
        assert!(s.is_firing());
    }

    #[test]
    fn clears_only_after_consecutive_samples_below_the_low_mark() {
        let mut s = disk();
        feed(&mut s, &[0.95, 0.95, 0.95]);
        // Dropping into the band does not clear it.
        assert_eq!(feed(&mut s, &[0.85, 0.85, 0.85]), [None, None, None]);
        assert!(s.is_firing());
        assert_eq!(s.observe(0.5), None);
        assert_eq!(s.observe(0.85), None);
        assert_eq!(s.observe(0.5), None);
        assert_eq!(s.observe(0.4), Some(SignalChange::Cleared { value: 0.4 }));
        assert!(!s.is_firing());
    }

    #[test]
    fn a_value_hovering_around_one_mark_does_not_flap() {
        // The February 2019 disk-usage monitor: usage oscillating around 90 %.
        let mut s = disk();
        let values: Vec<f64> = (0..1000)
            .map(|i| if i % 2 == 0 { 0.91 } else { 0.89 })
            .collect();
        assert!(feed(&mut s, &values).iter().all(Option::is_none));
    }

    #[test]
    fn direction_below_pauses_on_low_health_and_resumes_on_high_health() {
        // Fleet drain: healthy share below 80 % pauses, above 95 % resumes.
        let mut s = Hysteresis::new(HysteresisConfig {
            high: 0.95,
            low: 0.8,
            fire_after: 2,
            clear_after: 2,
            direction: Direction::Below,
        })
        .unwrap();
        assert_eq!(feed(&mut s, &[0.99, 0.79]), [None, None]);
        assert_eq!(s.observe(0.7), Some(SignalChange::Fired { value: 0.7 }));
        assert_eq!(feed(&mut s, &[0.9, 0.96, 0.9]), [None, None, None]);
        assert_eq!(s.observe(0.97), None);
        assert_eq!(s.observe(1.0), Some(SignalChange::Cleared { value: 1.0 }));
    }

    #[test]
    fn nan_samples_are_ignored_and_counted() {
        let mut s = disk();
        assert_eq!(
            feed(&mut s, &[0.95, f64::NAN, 0.95, f64::NAN]),
            [None, None, None, None]
        );
        assert_eq!(s.streak(), 2);
        assert_eq!(s.ignored_samples(), 2);
        assert!(s.observe(0.95).is_some());
    }

    #[test]
    fn infinite_samples_are_beyond_every_mark() {
        let mut s = disk();
        feed(&mut s, &[f64::INFINITY, f64::INFINITY]);
        assert!(s.observe(f64::INFINITY).is_some());
        feed(&mut s, &[f64::NEG_INFINITY]);
        assert!(s.observe(f64::NEG_INFINITY).is_some());
        assert!(!s.is_firing());
    }

    #[test]
    fn single_sample_counts_react_immediately() {
        let mut s = Hysteresis::new(HysteresisConfig {
            fire_after: 1,
            clear_after: 1,
            ..HysteresisConfig::default()
        })
        .unwrap();
        assert!(s.observe(1.0).is_some());
        assert!(s.observe(0.0).is_some());
    }

    #[test]
    fn equal_marks_are_allowed() {
        let mut s = Hysteresis::new(HysteresisConfig {
            high: 0.5,
            low: 0.5,
            fire_after: 1,
            clear_after: 1,
            direction: Direction::Above,
        })
        .unwrap();
        assert!(s.observe(0.5).is_none());
        assert!(s.observe(0.6).is_some());
    }

    #[test]
    fn reset_clears_the_signal() {
        let mut s = disk();
        feed(&mut s, &[1.0, 1.0, 1.0, 0.0]);
        s.reset();
        assert!(!s.is_firing());
        assert_eq!(s.streak(), 0);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let d = HysteresisConfig::default;
        let cases = [
            (
                HysteresisConfig {
                    high: 0.5,
                    low: 0.6,
                    ..d()
                },
                "high",
            ),
            (
                HysteresisConfig {
                    high: f64::NAN,
                    ..d()
                },
                "high",
            ),
            (
                HysteresisConfig {
                    high: f64::INFINITY,
                    ..d()
                },
                "high",
            ),
            (
                HysteresisConfig {
                    low: f64::NAN,
                    ..d()
                },
                "low",
            ),
            (
                HysteresisConfig {
                    low: f64::NEG_INFINITY,
                    ..d()
                },
                "low",
            ),
            (
                HysteresisConfig {
                    fire_after: 0,
                    ..d()
                },
                "fire_after",
            ),
            (
                HysteresisConfig {
                    clear_after: 0,
                    ..d()
                },
                "clear_after",
            ),
        ];
        for (cfg, field) in cases {
            assert_eq!(Hysteresis::new(cfg).unwrap_err().field(), field);
        }
    }

    #[test]
    fn config_reads_from_toml_and_rejects_unknown_fields() {
        let cfg: HysteresisConfig =
            toml::from_str("high = 0.95\nlow = 0.8\nfire_after = 2\ndirection = \"below\"\n")
                .unwrap();
        assert_eq!(cfg.direction, Direction::Below);
        assert_eq!(cfg.clear_after, 3);
        assert!(toml::from_str::<HysteresisConfig>("hihg = 1.0").is_err());
    }

    #[test]
    fn hysteresis_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<Hysteresis>();
    }

    proptest! {
        /// Changes alternate (fired, cleared, fired, ...), every `Fired` is
        /// preceded by `fire_after` alarming samples and every `Cleared` by
        /// `clear_after` clearing samples.
        #[test]
        fn changes_alternate_and_follow_full_streaks(
            values in proptest::collection::vec(prop_oneof![0.0f64..1.0, Just(f64::NAN)], 0..300),
            fire_after in 1u32..5,
            clear_after in 1u32..5,
            below in any::<bool>(),
        ) {
            let cfg = HysteresisConfig {
                high: 0.7,
                low: 0.3,
                fire_after,
                clear_after,
                direction: if below { Direction::Below } else { Direction::Above },
            };
            let mut s = Hysteresis::new(cfg.clone()).unwrap();
            let real: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
            let mut firing = false;
            let mut index = 0usize;
            for v in &values {
                let change = s.observe(*v);
                if v.is_nan() {
                    prop_assert!(change.is_none());
                    continue;
                }
                index += 1;
                if let Some(change) = change {
                    let (expect_fire, needed) = if firing { (false, clear_after) } else { (true, fire_after) };
                    prop_assert_eq!(matches!(change, SignalChange::Fired { .. }), expect_fire);
                    let window = &real[index - needed as usize..index];
                    let alarming = |x: f64| if below { x < cfg.low } else { x > cfg.high };
                    let clearing = |x: f64| if below { x > cfg.high } else { x < cfg.low };
                    let streak_ok = window.iter().all(|x| if expect_fire { alarming(*x) } else { clearing(*x) });
                    prop_assert!(streak_ok, "change after an incomplete streak: {:?}", window);
                    firing = !firing;
                }
                prop_assert_eq!(s.is_firing(), firing);
            }
        }
    }
}
