//! [`KeyedRetryBudget`]: one retry budget per key (downstream, route,
//! endpoint), bounded in number.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::RetryBudgetConfig;
use super::retry_budget::RetryBudget;
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::{Counter, Gauge};

/// Configuration of a [`KeyedRetryBudget`]. `Default`: Finagle's budget per
/// key, at most 1024 keys, keys idle for 60 s may be evicted.
///
/// ```
/// use resilience_core::budget::KeyedRetryBudgetConfig;
///
/// let config: KeyedRetryBudgetConfig = toml::from_str(r#"
///     max_keys = 64
///     idle_ttl = "5m"
///     [budget]
///     ttl = "10s"
///     retry_ratio = 0.1
/// "#).unwrap();
/// assert_eq!(config.max_keys, 64);
/// assert_eq!(config.budget.min_retries_per_sec, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyedRetryBudgetConfig {
    /// The configuration of each key's budget (and of the overflow budget).
    pub budget: RetryBudgetConfig,
    /// Most keys with their own budget. Must be at least 1.
    pub max_keys: usize,
    /// A key not asked for during this long, and whose budget nobody else
    /// holds, may be evicted to make room for a new key. Must be at least
    /// `budget.ttl`, so that an evicted budget had nothing left to remember.
    #[serde(with = "humantime_serde")]
    pub idle_ttl: Duration,
}

impl Default for KeyedRetryBudgetConfig {
    fn default() -> Self {
        KeyedRetryBudgetConfig {
            budget: RetryBudgetConfig::default(),
            max_keys: 1024,
            idle_ttl: Duration::from_secs(60),
        }
    }
}

impl KeyedRetryBudgetConfig {
    /// Checks every field; the error names the first invalid one (nested
    /// budget fields as `budget.<field>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.budget.validate().map_err(|e| e.nested("budget"))?;
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        if self.idle_ttl < self.budget.ttl {
            return Err(ConfigError::new(
                "idle_ttl",
                format!(
                    "must be at least `budget.ttl` ({:?}), got {:?}",
                    self.budget.ttl, self.idle_ttl
                ),
            ));
        }
        Ok(())
    }
}

/// Counters of a [`KeyedRetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyedRetryBudgetStats {
    /// Keys that currently have their own budget.
    pub keys: usize,
    /// Idle keys evicted to make room for new ones.
    pub evictions: u64,
    /// Requests for a new key that got the shared overflow budget because
    /// all `max_keys` keys were active.
    pub overflowed: u64,
}

struct Entry {
    budget: Arc<RetryBudget>,
    /// Nanoseconds since the keyed budget's epoch.
    last_used: AtomicU64,
}

/// One [`RetryBudget`] per key, so that one failing downstream cannot spend
/// the retries of the others.
///
/// A key gets its own budget the first time it is asked for. The number of
/// keys is bounded by `max_keys`: when a new key arrives and the map is full,
/// the least recently used *idle* key is evicted (idle: not asked for during
/// `idle_ttl` and its budget not held by anybody else). If every key is
/// active, the new key shares a single **overflow budget** with every other
/// key that did not fit, so a flood of new keys can neither grow memory nor
/// drain the budgets of the existing keys; it is counted in
/// [`KeyedRetryBudgetStats::overflowed`]. Keep `max_keys` above the number of
/// downstreams you expect to be active at once.
///
/// Each key has its own floor (`min_retries_per_sec`), so the floor of the
/// whole keyed budget grows with the number of keys.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::budget::{KeyedRetryBudget, KeyedRetryBudgetConfig, RetryBudgetConfig};
/// use resilience_core::clock::ManualClock;
///
/// let budgets = KeyedRetryBudget::with_clock(
///     KeyedRetryBudgetConfig {
///         budget: RetryBudgetConfig { min_retries_per_sec: 0, retry_ratio: 0.5, ..Default::default() },
///         ..Default::default()
///     },
///     ManualClock::new(),
/// )?;
/// // "users" is down and retries everything; "billing" is healthy.
/// for _ in 0..100 {
///     budgets.deposit(&"users");
///     budgets.try_withdraw(&"users");
/// }
/// budgets.deposit(&"billing");
/// budgets.deposit(&"billing");
/// assert!(budgets.try_withdraw(&"billing")); // untouched by the other key
/// assert_eq!(budgets.budget_for(&"users").stats().granted, 50);
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
pub struct KeyedRetryBudget<K> {
    config: KeyedRetryBudgetConfig,
    clock: SharedClock,
    epoch: Instant,
    idle_nanos: u64,
    map: RwLock<HashMap<K, Entry>>,
    overflow: Arc<RetryBudget>,
    evictions: AtomicU64,
    overflowed: AtomicU64,
    name: InstanceName,
    metrics: KeyedMetrics,
}

/// The metric handles of a keyed budget (its per-key budgets record the
/// budget series under the same name).
#[derive(Debug, Clone)]
struct KeyedMetrics {
    keys: Gauge,
    evictions: Counter,
    overflows: Counter,
}

impl KeyedMetrics {
    fn register(name: &InstanceName) -> Self {
        KeyedMetrics {
            keys: Gauge::register("breakwater_retry_budget_keys", name, &[]),
            evictions: Counter::register("breakwater_retry_budget_key_evictions_total", name, &[]),
            overflows: Counter::register("breakwater_retry_budget_key_overflows_total", name, &[]),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedRetryBudget<K> {
    /// A keyed budget on the system clock.
    pub fn new(config: KeyedRetryBudgetConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// A keyed budget built from a [`Named`] configuration, on `clock`.
    pub fn from_named(
        config: Named<KeyedRetryBudgetConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build(config.config, clock, name)
    }

    /// Names the keyed budget: the `name` field of its tracing events and
    /// the `name` label of its metrics and of every per-key budget's (the
    /// per-key series add up under one name). Call it right after
    /// construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.metrics = KeyedMetrics::register(&name);
        let overflow =
            RetryBudget::build(self.config.budget.clone(), self.clock.clone(), name.clone());
        if let Ok(overflow) = overflow {
            self.overflow = Arc::new(overflow);
        }
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// A keyed budget on the given clock.
    pub fn with_clock(
        config: KeyedRetryBudgetConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Self::build(config, clock, InstanceName::unnamed())
    }

    fn build(
        config: KeyedRetryBudgetConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let clock = clock.into_shared();
        let overflow = Arc::new(
            RetryBudget::build(config.budget.clone(), clock.clone(), name.clone())
                .map_err(|e| e.nested("budget"))?,
        );
        Ok(KeyedRetryBudget {
            idle_nanos: u64::try_from(config.idle_ttl.as_nanos()).unwrap_or(u64::MAX),
            epoch: clock.now(),
            clock,
            map: RwLock::new(HashMap::new()),
            overflow,
            evictions: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            config,
            metrics: KeyedMetrics::register(&name),
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KeyedRetryBudgetConfig {
        &self.config
    }

    /// The budget of `key`, created on first use (or the shared overflow
    /// budget if `max_keys` keys are all active; see the type docs).
    pub fn budget_for(&self, key: &K) -> Arc<RetryBudget> {
        let now = self.now_nanos();
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map.get(key) {
                touch(entry, now);
                return Arc::clone(&entry.budget);
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get(key) {
            touch(entry, now);
            return Arc::clone(&entry.budget);
        }
        if map.len() >= self.config.max_keys && !self.evict_lru_idle(&mut map, now) {
            let overflowed = self.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
            self.metrics.overflows.inc();
            tracing::debug!(
                name = %self.name,
                max_keys = self.config.max_keys,
                overflowed,
                "all retry budget keys are active; the new key shares the overflow budget"
            );
            return Arc::clone(&self.overflow);
        }
        // The config was validated in the constructor, so this cannot fail;
        // if it ever did, sharing the overflow budget is the safe answer.
        let Ok(budget) = RetryBudget::build(
            self.config.budget.clone(),
            self.clock.clone(),
            self.name.clone(),
        ) else {
            return Arc::clone(&self.overflow);
        };
        let budget = Arc::new(budget);
        map.insert(
            key.clone(),
            Entry {
                budget: Arc::clone(&budget),
                last_used: AtomicU64::new(now),
            },
        );
        self.metrics.keys.set(map.len() as f64);
        budget
    }

    /// [`RetryBudget::deposit`] on `key`'s budget.
    pub fn deposit(&self, key: &K) {
        self.with_budget(key, RetryBudget::deposit);
    }

    /// [`RetryBudget::try_withdraw`] on `key`'s budget.
    pub fn try_withdraw(&self, key: &K) -> bool {
        self.with_budget(key, RetryBudget::try_withdraw)
    }

    /// Runs `f` on `key`'s budget; for a known key under the read lock,
    /// without touching the `Arc`'s reference count.
    fn with_budget<R>(&self, key: &K, f: impl FnOnce(&RetryBudget) -> R) -> R {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map.get(key) {
                touch(entry, self.now_nanos());
                return f(&entry.budget);
            }
        }
        f(&self.budget_for(key))
    }

    /// Whether `key` currently has its own budget.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// The budget shared by keys that found the map full of active keys.
    pub fn overflow_budget(&self) -> Arc<RetryBudget> {
        Arc::clone(&self.overflow)
    }

    /// Removes every idle key now (they are otherwise only evicted to make
    /// room for a new key). Returns how many were removed.
    pub fn evict_idle(&self) -> usize {
        let now = self.now_nanos();
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, entry| !self.is_idle(entry, now));
        let removed = before - map.len();
        self.evictions.fetch_add(removed as u64, Ordering::Relaxed);
        self.metrics.evictions.add(removed as u64);
        self.metrics.keys.set(map.len() as f64);
        removed
    }

    /// Number of keys with their own budget.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key has a budget yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys, evictions and overflows.
    pub fn stats(&self) -> KeyedRetryBudgetStats {
        KeyedRetryBudgetStats {
            keys: self.len(),
            evictions: self.evictions.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
        }
    }

    fn is_idle(&self, entry: &Entry, now: u64) -> bool {
        now.saturating_sub(entry.last_used.load(Ordering::Relaxed)) >= self.idle_nanos
            && Arc::strong_count(&entry.budget) == 1
    }

    /// Evicts the least recently used idle key; `false` if none is idle.
    fn evict_lru_idle(&self, map: &mut HashMap<K, Entry>, now: u64) -> bool {
        let victim = map
            .iter()
            .filter(|(_, entry)| self.is_idle(entry, now))
            .min_by_key(|(_, entry)| entry.last_used.load(Ordering::Relaxed))
            .map(|(key, _)| key.clone());
        match victim {
            Some(key) => {
                map.remove(&key);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                self.metrics.evictions.inc();
                self.metrics.keys.set(map.len() as f64);
                tracing::debug!(
                    name = %self.name,
                    max_keys = self.config.max_keys,
                    "evicted the least recently used idle retry budget key"
                );
                true
            }
            None => false,
        }
    }

    fn now_nanos(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

fn touch(entry: &Entry, now: u64) {
    // Skip the write when nothing changed, to keep the line shared.
    if entry.last_used.load(Ordering::Relaxed) < now {
        entry.last_used.store(now, Ordering::Relaxed);
    }
}

impl<K> fmt::Debug for KeyedRetryBudget<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRetryBudget")
            .field("name", &self.name)
            .field("config", &self.config)
            .field(
                "keys",
                &self
                    .map
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .field("evictions", &self.evictions.load(Ordering::Relaxed))
            .field("overflowed", &self.overflowed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
