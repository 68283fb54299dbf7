//! Gradient2: a delay-gradient limit in the style of Netflix's
//! `Gradient2Limit`.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

use super::sample::{Sample, validate_bounds};

/// Configuration of the Gradient2 algorithm of an
/// [`AdaptiveLimit`](super::AdaptiveLimit).
///
/// The algorithm compares two latency averages: a *long-term* one (an
/// exponential moving average over about `long_window` samples: what
/// latency looks like without queueing) and the *short-term* one (the
/// latest sample). Their ratio is the gradient:
///
/// ```text
/// gradient  = clamp(rtt_tolerance × long / short, 0.5, 1.0)   (0.5 for a drop)
/// target    = limit × gradient + (queue_size if gradient = 1, else 0)
/// limit     = limit × (1 − smoothing) + target × smoothing,  within min..=max
/// ```
///
/// While latency stays within `rtt_tolerance` of its long-term average the
/// gradient is 1 and the limit grows by about `queue_size × smoothing` per
/// sample; when requests start queueing somewhere latency rises, the
/// gradient falls below 1 and the limit shrinks (by at most half per
/// sample, so one outlier cannot collapse it). A limit less than half used
/// is not changed (the caller is "app-limited" and latency says nothing
/// about capacity). When the long-term average is more than twice the
/// latest sample (the system recovered from a long overload), it decays by
/// 5 % per sample so the limit recovers without waiting for the average.
/// Unlike Netflix's version, a dropped request counts as the steepest
/// allowed gradient (0.5): a timeout or overload error is a stronger
/// signal than any latency; and the queue allowance is only added while
/// the gradient is 1, so that a modest overload (gradient ≈ 0.8) does not
/// keep growing the limit (both as proposed in Netflix/concurrency-limits
/// pull request #134).
///
/// # Limitation
///
/// Gradient2 reacts to *changes* of latency. Under a latency that rises
/// steadily with load, or stays on a plateau (every request timing out
/// after the same 5 s), the long-term average catches up within about
/// `long_window` samples and the limit grows again towards `max_limit`
/// (Netflix/concurrency-limits issue #137). When an absolute latency bound
/// matters, use [`AimdConfig`](super::AimdConfig) with a
/// `latency_threshold`, and keep `max_limit` realistic.
///
/// `Default`: initial 20, min 1, max 200, smoothing 0.2, tolerance 1.5,
/// long window 600 samples, queue size 4 (Netflix's defaults, with a min of
/// 1 instead of 20).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gradient2Config {
    /// The limit before any sample. Must be in `min_limit..=max_limit`.
    pub initial_limit: usize,
    /// The lowest limit. Must be >= 1.
    pub min_limit: usize,
    /// The highest limit. Must be >= `min_limit` and <= `MAX_CONCURRENT`.
    pub max_limit: usize,
    /// Weight of each new target in the limit. Must be finite, in `(0, 1]`.
    pub smoothing: f64,
    /// How much slower than the long-term average a sample may be before
    /// the limit shrinks. Must be finite and >= 1.
    pub rtt_tolerance: f64,
    /// Samples in the long-term average (its first 10 samples are a plain
    /// mean to warm up). Must be >= 1.
    pub long_window: usize,
    /// Headroom added to the target: lets the limit probe upwards. Must be
    /// <= `max_limit`.
    pub queue_size: usize,
}

impl Default for Gradient2Config {
    fn default() -> Self {
        Gradient2Config {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 200,
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
        }
    }
}

impl Gradient2Config {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_bounds(self.initial_limit, self.min_limit, self.max_limit)?;
        if !(self.smoothing.is_finite() && self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(ConfigError::new(
                "smoothing",
                format!("must be a finite number in (0, 1], got {}", self.smoothing),
            ));
        }
        if !(self.rtt_tolerance.is_finite() && self.rtt_tolerance >= 1.0) {
            return Err(ConfigError::new(
                "rtt_tolerance",
                format!("must be a finite number >= 1, got {}", self.rtt_tolerance),
            ));
        }
        if self.long_window == 0 {
            return Err(ConfigError::new("long_window", "must be at least 1 sample"));
        }
        if self.queue_size > self.max_limit {
            return Err(ConfigError::new(
                "queue_size",
                format!(
                    "must be at most `max_limit` ({}), got {}",
                    self.max_limit, self.queue_size
                ),
            ));
        }
        Ok(())
    }
}

/// Samples averaged plainly before the long-term average turns exponential.
const WARMUP_SAMPLES: usize = 10;

/// Gradient2 state.
#[derive(Debug)]
pub(crate) struct Gradient2 {
    config: Gradient2Config,
    estimated: f64,
    long_rtt: f64,
    samples: usize,
}

impl Gradient2 {
    pub(crate) fn new(config: Gradient2Config) -> Self {
        let estimated = config.initial_limit as f64;
        Gradient2 {
            config,
            estimated,
            long_rtt: 0.0,
            samples: 0,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.estimated as usize
    }

    /// The long-term latency average, in seconds.
    #[cfg(test)]
    pub(crate) fn long_rtt(&self) -> f64 {
        self.long_rtt
    }

    fn add_long(&mut self, rtt: f64) -> f64 {
        self.samples = self.samples.saturating_add(1);
        if self.samples <= WARMUP_SAMPLES {
            self.long_rtt += (rtt - self.long_rtt) / self.samples as f64;
        } else {
            let factor = 2.0 / (self.config.long_window as f64 + 1.0);
            self.long_rtt += (rtt - self.long_rtt) * factor;
        }
        self.long_rtt
    }

    /// Folds one sample in and returns the new limit.
    pub(crate) fn on_sample(&mut self, sample: Sample) -> usize {
        // Latency in seconds, never zero so the ratio stays finite.
        let short = sample.latency.as_secs_f64().max(1e-9);
        let long = self.add_long(short);
        if long / short > 2.0 {
            self.long_rtt *= 0.95;
        }
        if (sample.in_flight as f64) < self.estimated / 2.0 && !sample.dropped {
            return self.limit();
        }
        let gradient = if sample.dropped {
            0.5
        } else {
            (self.config.rtt_tolerance * long / short).clamp(0.5, 1.0)
        };
        // The queue allowance only while latency is within tolerance:
        // added under a gradient below 1 it keeps a modest overload growing.
        let allowance = if gradient >= 1.0 {
            self.config.queue_size as f64
        } else {
            0.0
        };
        let target = self.estimated * gradient + allowance;
        let smoothing = self.config.smoothing;
        let next = self.estimated * (1.0 - smoothing) + target * smoothing;
        self.estimated = next.clamp(self.config.min_limit as f64, self.config.max_limit as f64);
        self.limit()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sample(latency_ms: u64, in_flight: usize) -> Sample {
        Sample {
            started: std::time::Instant::now(),
            latency: Duration::from_millis(latency_ms),
            in_flight,
            dropped: false,
        }
    }

    #[test]
    fn grows_while_latency_is_steady_and_the_limit_is_used() {
        let mut g = Gradient2::new(Gradient2Config::default());
        let mut last = g.limit();
        for _ in 0..50 {
            let limit = g.on_sample(sample(10, last));
            assert!(limit >= last);
            last = limit;
        }
        assert!(last > 40, "{last}");
    }

    #[test]
    fn does_not_change_while_app_limited() {
        let mut g = Gradient2::new(Gradient2Config::default());
        for _ in 0..50 {
            assert_eq!(g.on_sample(sample(10, 5)), 20);
        }
    }

    #[test]
    fn shrinks_when_latency_rises_above_the_tolerance() {
        let mut g = Gradient2::new(Gradient2Config {
            initial_limit: 100,
            ..Gradient2Config::default()
        });
        for _ in 0..20 {
            g.on_sample(sample(10, 100));
        }
        let before = g.limit();
        for _ in 0..20 {
            g.on_sample(sample(40, 200));
        }
        assert!(g.limit() < before / 2, "{} -> {}", before, g.limit());
    }

    #[test]
    fn a_drop_halves_the_target() {
        let mut g = Gradient2::new(Gradient2Config {
            initial_limit: 100,
            smoothing: 1.0,
            queue_size: 0,
            ..Gradient2Config::default()
        });
        let limit = g.on_sample(Sample {
            started: std::time::Instant::now(),
            latency: Duration::from_millis(10),
            in_flight: 1,
            dropped: true,
        });
        assert_eq!(limit, 50);
    }

    #[test]
    fn long_average_decays_faster_after_a_long_overload() {
        let mut g = Gradient2::new(Gradient2Config::default());
        for _ in 0..20 {
            g.on_sample(sample(100, 1));
        }
        let long = g.long_rtt();
        g.on_sample(sample(10, 1));
        assert!(g.long_rtt() < long * 0.96);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let d = Gradient2Config::default;
        let cases = [
            (
                Gradient2Config {
                    min_limit: 0,
                    ..d()
                },
                "min_limit",
            ),
            (
                Gradient2Config {
                    min_limit: 30,
                    max_limit: 20,
                    ..d()
                },
                "max_limit",
            ),
            (
                Gradient2Config {
                    initial_limit: 0,
                    min_limit: 1,
                    ..d()
                },
                "initial_limit",
            ),
            (
                Gradient2Config {
                    smoothing: f64::NAN,
                    ..d()
                },
                "smoothing",
            ),
            (
                Gradient2Config {
                    smoothing: 0.0,
                    ..d()
                },
                "smoothing",
            ),
            (
                Gradient2Config {
                    smoothing: -0.2,
                    ..d()
                },
                "smoothing",
            ),
            (
                Gradient2Config {
                    smoothing: 1.5,
                    ..d()
                },
                "smoothing",
            ),
            (
                Gradient2Config {
                    rtt_tolerance: f64::NAN,
                    ..d()
                },
                "rtt_tolerance",
            ),
            (
                Gradient2Config {
                    rtt_tolerance: 0.9,
                    ..d()
                },
                "rtt_tolerance",
            ),
            (
                Gradient2Config {
                    rtt_tolerance: -1.5,
                    ..d()
                },
                "rtt_tolerance",
            ),
            (
                Gradient2Config {
                    rtt_tolerance: f64::INFINITY,
                    ..d()
                },
                "rtt_tolerance",
            ),
            (
                Gradient2Config {
                    long_window: 0,
                    ..d()
                },
                "long_window",
            ),
            (
                Gradient2Config {
                    queue_size: 201,
                    ..d()
                },
                "queue_size",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
        d().validate().unwrap();
    }
}
