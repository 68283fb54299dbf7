//! [`DrainLimits`]: the bounds every wave respects.

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

use super::amount::Amount;

/// The default of [`DrainLimits::max_concurrent_starts_per_host`].
pub const DEFAULT_MAX_CONCURRENT_STARTS_PER_HOST: u32 = 4;

/// The limits every wave respects. `Default`: 2 hosts draining at once,
/// 10 % of apps unavailable, 4 starts per receiving host per minute, 4
/// starts in progress at once per receiving host, 10 % of each receiver
/// kept free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainLimits {
    /// Hosts draining at once. Must be >= 1.
    pub max_draining_hosts: u32,
    /// Apps that may be unavailable (moving or not running) at once, as a
    /// count (>= 1) or a percent of all apps (in (0, 100]).
    pub max_unavailable: Amount,
    /// App starts into one receiving host per minute. Must be >= 1. The
    /// controller spreads them: two starts into one host are at least
    /// `60 s / max_starts_per_host_per_minute` apart, never a burst.
    pub max_starts_per_host_per_minute: u32,
    /// App starts *in progress at once* on one receiving host (the
    /// February 2019 failure mode: concurrent starts, not starts per
    /// minute, corrupt `node_modules`). Must be >= 1. Default 4; a config
    /// written before this field existed gets the default. With
    /// `DrainConfig::adaptive_starts` the learned limit applies below it
    /// (this is then the ceiling).
    pub max_concurrent_starts_per_host: u32,
    /// Room each receiver keeps free, as a count of app slots or a percent
    /// of its capacity (in [0, 100)).
    pub min_free_capacity: Amount,
}

impl Default for DrainLimits {
    fn default() -> Self {
        DrainLimits {
            max_draining_hosts: 2,
            max_unavailable: Amount::Percent(10.0),
            max_starts_per_host_per_minute: 4,
            max_concurrent_starts_per_host: DEFAULT_MAX_CONCURRENT_STARTS_PER_HOST,
            min_free_capacity: Amount::Percent(10.0),
        }
    }
}

impl DrainLimits {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_draining_hosts == 0 {
            return Err(ConfigError::new(
                "max_draining_hosts",
                "must be at least 1: a drain that may drain 0 hosts never progresses",
            ));
        }
        if self.max_unavailable == Amount::Count(0) {
            return Err(ConfigError::new(
                "max_unavailable",
                "must be at least 1 app (or a percent in (0, 100]): moving an app makes it unavailable",
            ));
        }
        self.max_unavailable
            .check_percent("max_unavailable", false, true)?;
        if self.max_starts_per_host_per_minute == 0 {
            return Err(ConfigError::new(
                "max_starts_per_host_per_minute",
                "must be at least 1",
            ));
        }
        if self.max_concurrent_starts_per_host == 0 {
            return Err(ConfigError::new(
                "max_concurrent_starts_per_host",
                "must be at least 1: a receiver that may run no start never receives an app",
            ));
        }
        self.min_free_capacity
            .check_percent("min_free_capacity", true, false)?;
        Ok(())
    }

    /// Apps that may be unavailable at once in a fleet of `total_apps`.
    pub fn unavailable_budget(&self, total_apps: u64) -> u64 {
        self.max_unavailable.floor_of(total_apps)
    }

    /// Slots a receiver of `capacity` keeps free.
    pub fn reserve(&self, capacity: u32) -> u32 {
        u32::try_from(self.min_free_capacity.ceil_of(u64::from(capacity))).unwrap_or(u32::MAX)
    }
}
