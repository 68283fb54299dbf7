//! [`KeyedRateLimiter`]: one GCRA limit per key, with bounded memory.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::RateLimited;
use super::RateLimiterConfig;
use super::gcra::{Gcra, RateObs, nanos_since};

const KEYS: &str = "breakwater_rate_limiter_keys";
const EVICTIONS: &str = "breakwater_rate_limiter_key_evictions_total";
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};
use crate::sync::Mutex;

/// Configuration of a [`KeyedRateLimiter`]. `Default`: the default
/// [`RateLimiterConfig`] per key, at most 10 000 keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyedRateLimiterConfig {
    /// The limit applied to each key separately.
    pub limit: RateLimiterConfig,
    /// Most keys tracked at once. Must be >= 1.
    pub max_keys: usize,
}

impl Default for KeyedRateLimiterConfig {
    fn default() -> Self {
        KeyedRateLimiterConfig {
            limit: RateLimiterConfig::default(),
            max_keys: 10_000,
        }
    }
}

impl KeyedRateLimiterConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limit.validate().map_err(|e| e.nested("limit"))?;
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1 key"));
        }
        Ok(())
    }
}

/// A rate limiter per key (per tenant, per host, per API endpoint).
///
/// Memory is bounded by `max_keys`. A key whose limit has fully recovered
/// (its burst is available again) is *idle*: forgetting it changes no
/// decision, so idle keys are evicted first, whenever a new key arrives and
/// the table is full (and by [`KeyedRateLimiter::evict_idle`]). If every key
/// is busy, the least busy one (earliest theoretical arrival time) is evicted
/// and logged at `warn`: that key gets a fresh burst, so size `max_keys` above
/// the number of keys active within one `burst × per / rate`.
///
/// Each call is one short critical section on a mutex around the key table.
pub struct KeyedRateLimiter<K> {
    config: KeyedRateLimiterConfig,
    gcra: Gcra,
    clock: SharedClock,
    origin: Instant,
    keys: Mutex<HashMap<K, u64>>,
    name: InstanceName,
    obs: RateObs,
    keys_gauge: Gauge,
    evictions: Counter,
}

impl<K> fmt::Debug for KeyedRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<K> KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// A keyed limiter on the system clock.
    pub fn new(config: KeyedRateLimiterConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A keyed limiter built from a [`Named`] configuration, on `clock`.
    pub fn from_named(
        config: Named<KeyedRateLimiterConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build_named(config.config, clock, name)
    }

    /// Names the limiter: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = RateObs::register(&name);
        self.keys_gauge = Gauge::register(KEYS, &name, &[]);
        self.evictions = Counter::register(EVICTIONS, &name, &[]);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// A keyed limiter on the given clock.
    pub fn with_clock(
        config: KeyedRateLimiterConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Self::build_named(config, clock, InstanceName::unnamed())
    }

    fn build_named(
        config: KeyedRateLimiterConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let gcra = Gcra::from_config(&config.limit).map_err(|e| e.nested("limit"))?;
        let clock = clock.into_shared();
        Ok(KeyedRateLimiter {
            origin: clock.now(),
            clock,
            gcra,
            config,
            keys: Mutex::new(HashMap::new()),
            obs: RateObs::register(&name),
            keys_gauge: Gauge::register(KEYS, &name, &[]),
            evictions: Counter::register(EVICTIONS, &name, &[]),
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KeyedRateLimiterConfig {
        &self.config
    }

    /// Number of keys tracked (idle ones included until evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes one request's worth of `key`'s rate if it conforms now;
    /// otherwise says how long until it would.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        let now = nanos_since(&self.clock, self.origin);
        let mut keys = self.lock();
        let tat = keys.get(key).copied().unwrap_or(0);
        match self.gcra.decide(tat, now) {
            Ok(new_tat) => {
                if let Some(slot) = keys.get_mut(key) {
                    *slot = new_tat;
                } else {
                    if keys.len() >= self.config.max_keys {
                        self.make_room(&mut keys, now);
                    }
                    keys.insert(key.clone(), new_tat);
                    self.keys_gauge.set(keys.len() as f64);
                }
                drop(keys);
                self.obs.allowed.inc();
                Ok(())
            }
            Err(wait) => {
                drop(keys);
                let retry_after = Duration::from_nanos(wait);
                self.obs.limited.inc();
                tracing::debug!(name = %self.name, ?key, ?retry_after, "rate limited");
                Err(RateLimited { retry_after })
            }
        }
    }

    /// Waits on the limiter's clock until a request for `key` conforms, and
    /// takes it.
    pub async fn until_ready(&self, key: &K) {
        loop {
            match self.check(key) {
                Ok(()) => return,
                Err(RateLimited { retry_after }) => self.clock.sleep(retry_after).await,
            }
        }
    }

    /// Forgets every idle key (one whose full burst is available again);
    /// returns how many were forgotten. Never changes a decision.
    pub fn evict_idle(&self) -> usize {
        let now = nanos_since(&self.clock, self.origin);
        let mut keys = self.lock();
        let before = keys.len();
        keys.retain(|_, tat| !Gcra::is_idle(*tat, now));
        let evicted = before - keys.len();
        self.keys_gauge.set(keys.len() as f64);
        self.evictions.add(evicted as u64);
        evicted
    }

    fn make_room(&self, keys: &mut HashMap<K, u64>, now: u64) {
        let before = keys.len();
        keys.retain(|_, tat| !Gcra::is_idle(*tat, now));
        if keys.len() < before {
            self.evictions.add((before - keys.len()) as u64);
            tracing::debug!(
                name = %self.name,
                evicted = before - keys.len(),
                "idle rate-limit keys evicted"
            );
            return;
        }
        let least_busy = keys
            .iter()
            .min_by_key(|(_, tat)| **tat)
            .map(|(k, _)| k.clone());
        if let Some(key) = least_busy {
            keys.remove(&key);
            self.evictions.inc();
            tracing::warn!(
                name = %self.name,
                ?key,
                max_keys = self.config.max_keys,
                "rate-limit key table full of busy keys: least busy key evicted (it gets a fresh burst)"
            );
        }
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, HashMap<K, u64>> {
        // Every mutation is a single insert, update or retain.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use futures::FutureExt;

    fn keyed(max_keys: usize) -> (ManualClock, KeyedRateLimiter<&'static str>) {
        let clock = ManualClock::new();
        let l = KeyedRateLimiter::with_clock(
            KeyedRateLimiterConfig {
                limit: RateLimiterConfig {
                    rate: 1,
                    per: Duration::from_secs(1),
                    burst: 2,
                },
                max_keys,
            },
            clock.clone(),
        )
        .unwrap();
        (clock, l)
    }

    #[test]
    fn each_key_has_its_own_limit() {
        let (_clock, l) = keyed(10);
        assert!(l.check(&"a").is_ok());
        assert!(l.check(&"a").is_ok());
        assert_eq!(
            l.check(&"a"),
            Err(RateLimited {
                retry_after: Duration::from_secs(1)
            })
        );
        assert!(l.check(&"b").is_ok());
        assert!(l.check(&"b").is_ok());
        assert!(l.check(&"b").is_err());
    }

    #[test]
    fn idle_keys_are_evicted_first_without_changing_decisions() {
        let (clock, l) = keyed(2);
        l.check(&"a").unwrap();
        l.check(&"b").unwrap();
        l.check(&"b").unwrap();
        clock.advance(Duration::from_secs(1));
        // "a" is idle (its burst is back), "b" is not.
        assert!(l.check(&"c").is_ok());
        assert_eq!(l.len(), 2);
        assert!(l.check(&"b").is_ok());
        assert!(l.check(&"b").is_err(), "b kept its state");
    }

    #[test]
    fn a_full_table_of_busy_keys_evicts_the_least_busy() {
        let (_clock, l) = keyed(2);
        l.check(&"a").unwrap();
        l.check(&"b").unwrap();
        l.check(&"b").unwrap();
        assert!(l.check(&"c").is_ok());
        assert_eq!(l.len(), 2);
        assert!(l.check(&"b").is_err(), "the busier key was kept");
    }

    #[test]
    fn evict_idle_forgets_recovered_keys_only() {
        let (clock, l) = keyed(10);
        l.check(&"a").unwrap();
        clock.advance(Duration::from_millis(500));
        l.check(&"b").unwrap();
        clock.advance(Duration::from_millis(500));
        assert_eq!(l.evict_idle(), 1);
        assert_eq!(l.len(), 1);
        assert!(!l.is_empty());
    }

    #[test]
    fn until_ready_waits_for_the_key() {
        let (clock, l) = keyed(10);
        clock.set_auto_advance(true);
        for _ in 0..4 {
            l.until_ready(&"a").now_or_never().unwrap();
        }
        assert_eq!(clock.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let err = KeyedRateLimiter::<String>::new(KeyedRateLimiterConfig {
            max_keys: 0,
            ..KeyedRateLimiterConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "max_keys");
        let err = KeyedRateLimiter::<String>::new(KeyedRateLimiterConfig {
            limit: RateLimiterConfig {
                rate: 0,
                ..RateLimiterConfig::default()
            },
            ..KeyedRateLimiterConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "limit.rate");
    }

    #[test]
    fn config_reads_nested_limits() {
        let cfg: KeyedRateLimiterConfig =
            toml::from_str("max_keys = 5\n[limit]\nrate = 3\nper = \"1m\"\n").unwrap();
        assert_eq!(cfg.max_keys, 5);
        assert_eq!(cfg.limit.rate, 3);
        assert_eq!(cfg.limit.per, Duration::from_secs(60));
        assert_eq!(cfg.limit.burst, 10);
        assert!(toml::from_str::<KeyedRateLimiterConfig>("keys = 5").is_err());
    }

    #[test]
    fn keyed_rate_limiter_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<KeyedRateLimiter<String>>();
    }
}
