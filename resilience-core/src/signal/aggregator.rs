//! [`EventAggregator`]: de-duplicates events by fingerprint and summarizes
//! the duplicates once per window.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock, saturating_add};
use crate::error::ConfigError;
use crate::name::{InstanceName, Named};
use crate::obs::Counter;

/// Configuration of an [`EventAggregator`]. `Default`: 5-minute windows, at
/// most 1000 distinct fingerprints in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventAggregatorConfig {
    /// How long duplicates of an emitted event are suppressed before their
    /// summary is due. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Most fingerprints tracked at once; beyond it the least recently seen
    /// one is evicted (and accounted for in an [`EvictionSummary`]). Must be
    /// >= 1.
    pub max_fingerprints: usize,
}

impl Default for EventAggregatorConfig {
    fn default() -> Self {
        EventAggregatorConfig {
            window: Duration::from_secs(300),
            max_fingerprints: 1000,
        }
    }
}

impl EventAggregatorConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() {
            return Err(ConfigError::new("window", "must be greater than zero"));
        }
        if self.max_fingerprints == 0 {
            return Err(ConfigError::new(
                "max_fingerprints",
                "must be at least 1 fingerprint",
            ));
        }
        Ok(())
    }
}

/// An event passed through at once: the first of its fingerprint in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted<K, E> {
    /// The fingerprint.
    pub fingerprint: K,
    /// The event, unchanged.
    pub event: E,
    /// When it was recorded.
    pub at: Instant,
}

/// The duplicates of one fingerprint suppressed during one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<K, E> {
    /// The fingerprint.
    pub fingerprint: K,
    /// Number of suppressed duplicates (>= 1).
    pub count: u64,
    /// When the first suppressed duplicate was recorded.
    pub first_seen: Instant,
    /// When the last suppressed duplicate was recorded.
    pub last_seen: Instant,
    /// The last suppressed duplicate.
    pub last_event: E,
}

/// Fingerprints evicted to keep memory bounded, with the duplicates they had
/// suppressed but not yet summarized. Reported so that nothing is lost
/// silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvictionSummary {
    /// Fingerprints evicted since the last report.
    pub fingerprints: u64,
    /// Suppressed, unsummarized duplicates those fingerprints carried.
    pub events: u64,
}

/// What [`EventAggregator::poll`] or [`EventAggregator::flush`] hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed<K, E> {
    /// One summary per fingerprint whose window closed with duplicates, in
    /// order of their first duplicate.
    pub summaries: Vec<Summary<K, E>>,
    /// Evictions since the last report, if any.
    pub evicted: Option<EvictionSummary>,
}

impl<K, E> Flushed<K, E> {
    /// Nothing to report.
    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty() && self.evicted.is_none()
    }

    /// Total events these reports stand for (summary counts plus evicted
    /// duplicates).
    pub fn event_count(&self) -> u64 {
        self.summaries
            .iter()
            .map(|s| s.count)
            .chain(self.evicted.map(|e| e.events))
            .fold(0, u64::saturating_add)
    }
}

/// Duplicates held back in the current window of one fingerprint.
#[derive(Debug, Clone)]
struct Pending<E> {
    count: u64,
    first_seen: Instant,
    last_seen: Instant,
    last_event: E,
}

#[derive(Debug, Clone)]
struct Entry<E> {
    window_start: Instant,
    last_seen: Instant,
    pending: Option<Pending<E>>,
}

/// De-duplicates events by fingerprint. See the [module docs](super).
///
/// Not internally synchronized: one aggregator per alert sink, or wrap it in
/// a mutex.
pub struct EventAggregator<K, E = String> {
    config: EventAggregatorConfig,
    clock: SharedClock,
    entries: HashMap<K, Entry<E>>,
    /// Summaries of windows closed lazily by [`EventAggregator::record`].
    ready: Vec<Summary<K, E>>,
    evicted: EvictionSummary,
    name: InstanceName,
    obs: AggregatorObs,
}

/// The metric handles of an aggregator.
#[derive(Debug)]
struct AggregatorObs {
    emitted: Counter,
    suppressed: Counter,
    summaries: Counter,
    evictions: Counter,
}

impl AggregatorObs {
    fn register(name: &InstanceName) -> Self {
        const EVENTS: &str = "breakwater_aggregator_events_total";
        AggregatorObs {
            emitted: Counter::register(EVENTS, name, &[("decision", "emitted")]),
            suppressed: Counter::register(EVENTS, name, &[("decision", "suppressed")]),
            summaries: Counter::register("breakwater_aggregator_summaries_total", name, &[]),
            evictions: Counter::register("breakwater_aggregator_evictions_total", name, &[]),
        }
    }
}

impl<K, E> fmt::Debug for EventAggregator<K, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventAggregator")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("fingerprints", &self.entries.len())
            .field("ready", &self.ready.len())
            .field("evicted", &self.evicted)
            .finish_non_exhaustive()
    }
}

impl<K, E> EventAggregator<K, E>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// An aggregator on the system clock.
    pub fn new(config: EventAggregatorConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SharedClock::system())
    }

    /// An aggregator built from a [`Named`] configuration, on `clock`.
    pub fn from_named(
        config: Named<EventAggregatorConfig>,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        let name = config.instance_name()?;
        Self::build_named(config.config, clock, name)
    }

    /// Names the aggregator: the `name` field of its tracing events and the
    /// `name` label of its metrics. Call it right after construction.
    #[must_use]
    pub fn named(mut self, name: InstanceName) -> Self {
        self.obs = AggregatorObs::register(&name);
        self.name = name;
        self
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// An aggregator on the given clock.
    pub fn with_clock(
        config: EventAggregatorConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Self::build_named(config, clock, InstanceName::unnamed())
    }

    fn build_named(
        config: EventAggregatorConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(EventAggregator {
            config,
            clock: clock.into_shared(),
            entries: HashMap::new(),
            ready: Vec::new(),
            evicted: EvictionSummary::default(),
            obs: AggregatorObs::register(&name),
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EventAggregatorConfig {
        &self.config
    }

    /// Number of fingerprints currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no fingerprint is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records one event. Returns it at once if it is the first of its
    /// fingerprint in a window; otherwise suppresses it (`None`) and counts
    /// it towards the window's [`Summary`].
    pub fn record(&mut self, fingerprint: K, event: E) -> Option<Emitted<K, E>> {
        let now = self.clock.now();
        self.close_if_due(&fingerprint, now);
        if let Some(entry) = self.entries.get_mut(&fingerprint) {
            entry.last_seen = now;
            match &mut entry.pending {
                Some(pending) => {
                    pending.count = pending.count.saturating_add(1);
                    pending.last_seen = now;
                    pending.last_event = event;
                }
                None => {
                    entry.pending = Some(Pending {
                        count: 1,
                        first_seen: now,
                        last_seen: now,
                        last_event: event,
                    });
                }
            }
            self.obs.suppressed.inc();
            tracing::trace!(name = %self.name, ?fingerprint, "duplicate event suppressed");
            return None;
        }
        if self.entries.len() >= self.config.max_fingerprints {
            self.evict_least_recent();
        }
        self.obs.emitted.inc();
        tracing::debug!(name = %self.name, ?fingerprint, "event emitted");
        self.entries.insert(
            fingerprint.clone(),
            Entry {
                window_start: now,
                last_seen: now,
                pending: None,
            },
        );
        Some(Emitted {
            fingerprint,
            event,
            at: now,
        })
    }

    /// Returns the summaries whose window has closed, and evictions since the
    /// last report. Call it periodically (e.g. at [`EventAggregator::next_due`]).
    ///
    /// A window that closes with duplicates starts the next window at once
    /// (so a steady flood yields one summary per window); a window that
    /// closes without duplicates forgets its fingerprint, so its next event
    /// is emitted at once again.
    pub fn poll(&mut self) -> Flushed<K, E> {
        let now = self.clock.now();
        let due: Vec<K> = self
            .entries
            .iter()
            .filter(|(_, e)| now >= self.window_end(e))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.close_if_due(&key, now);
        }
        self.take_reports()
    }

    /// Returns every pending summary now, whether its window has closed or
    /// not, and forgets every fingerprint (for shutdown or a final report).
    pub fn flush(&mut self) -> Flushed<K, E> {
        let entries: Vec<(K, Entry<E>)> = self.entries.drain().collect();
        for (fingerprint, entry) in entries {
            if let Some(pending) = entry.pending {
                self.ready.push(summary(fingerprint, pending));
            }
        }
        self.take_reports()
    }

    /// The earliest instant at which [`EventAggregator::poll`] has something
    /// to do, if any fingerprint is tracked.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.ready.is_empty() || self.evicted.fingerprints > 0 {
            return Some(self.clock.now());
        }
        self.entries.values().map(|e| self.window_end(e)).min()
    }

    fn window_end(&self, entry: &Entry<E>) -> Instant {
        saturating_add(entry.window_start, self.config.window)
    }

    /// Closes the window of `fingerprint` if it is over: a window with
    /// duplicates yields a summary and a new window; a quiet one is forgotten.
    fn close_if_due(&mut self, fingerprint: &K, now: Instant) {
        let window = self.config.window;
        let Some(entry) = self.entries.get_mut(fingerprint) else {
            return;
        };
        if now < saturating_add(entry.window_start, window) {
            return;
        }
        match entry.pending.take() {
            Some(pending) => {
                entry.window_start = now;
                self.ready.push(summary(fingerprint.clone(), pending));
            }
            None => {
                self.entries.remove(fingerprint);
            }
        }
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(k, _)| k.clone());
        let Some(key) = oldest else { return };
        let Some(entry) = self.entries.remove(&key) else {
            return;
        };
        let events = entry.pending.map_or(0, |p| p.count);
        self.evicted.fingerprints = self.evicted.fingerprints.saturating_add(1);
        self.evicted.events = self.evicted.events.saturating_add(events);
        self.obs.evictions.inc();
        tracing::debug!(
            name = %self.name,
            fingerprint = ?key,
            events,
            max_fingerprints = self.config.max_fingerprints,
            "fingerprint evicted to bound memory"
        );
    }

    fn take_reports(&mut self) -> Flushed<K, E> {
        let mut summaries = std::mem::take(&mut self.ready);
        summaries.sort_by_key(|s| s.first_seen);
        self.obs.summaries.add(summaries.len() as u64);
        for s in &summaries {
            tracing::info!(
                name = %self.name,
                fingerprint = ?s.fingerprint,
                count = s.count,
                span = ?s.last_seen.saturating_duration_since(s.first_seen),
                "duplicate events summarized"
            );
        }
        let evicted = (self.evicted.fingerprints > 0).then(|| std::mem::take(&mut self.evicted));
        if let Some(e) = evicted {
            tracing::warn!(
                name = %self.name,
                fingerprints = e.fingerprints,
                events = e.events,
                max_fingerprints = self.config.max_fingerprints,
                "fingerprints evicted from the event aggregator"
            );
        }
        Flushed { summaries, evicted }
    }
}

fn summary<K, E>(fingerprint: K, pending: Pending<E>) -> Summary<K, E> {
    Summary {
        fingerprint,
        count: pending.count,
        first_seen: pending.first_seen,
        last_seen: pending.last_seen,
        last_event: pending.last_event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn aggregator(max: usize) -> (ManualClock, EventAggregator<&'static str, u32>) {
        let clock = ManualClock::new();
        let agg = EventAggregator::with_clock(
            EventAggregatorConfig {
                window: WINDOW,
                max_fingerprints: max,
            },
            clock.clone(),
        )
        .unwrap();
        (clock, agg)
    }

    #[test]
    fn emits_the_first_event_of_a_fingerprint_at_once() {
        let (clock, mut agg) = aggregator(10);
        let e = agg.record("disk", 1).unwrap();
        assert_eq!((e.fingerprint, e.event, e.at), ("disk", 1, clock.now()));
        assert!(agg.record("cpu", 2).is_some());
    }

    #[test]
    fn suppresses_duplicates_and_summarizes_them_once_per_window() {
        let (clock, mut agg) = aggregator(10);
        let t0 = clock.now();
        assert!(agg.record("disk", 0).is_some());
        for i in 1..=5 {
            clock.advance(Duration::from_secs(10));
            assert!(agg.record("disk", i).is_none());
        }
        assert!(agg.poll().is_empty(), "window not over yet");
        clock.advance(Duration::from_secs(10));
        let out = agg.poll();
        assert_eq!(out.summaries.len(), 1);
        let s = &out.summaries[0];
        assert_eq!(s.count, 5);
        assert_eq!(s.first_seen, t0 + Duration::from_secs(10));
        assert_eq!(s.last_seen, t0 + Duration::from_secs(50));
        assert_eq!(s.last_event, 5);
        assert!(agg.poll().is_empty(), "a summary is reported once");
    }

    #[test]
    fn a_continuing_flood_yields_one_summary_per_window() {
        let (clock, mut agg) = aggregator(10);
        let mut emitted = 0;
        let mut summaries = Vec::new();
        // One event per second for ten minutes.
        for i in 0..600 {
            if agg.record("disk", i).is_some() {
                emitted += 1;
            }
            clock.advance(Duration::from_secs(1));
            summaries.extend(agg.poll().summaries.into_iter().map(|s| s.count));
        }
        summaries.extend(agg.flush().summaries.into_iter().map(|s| s.count));
        assert_eq!(emitted, 1);
        assert_eq!(summaries.len(), 10);
        assert_eq!(1 + summaries.iter().sum::<u64>(), 600);
    }

    #[test]
    fn a_quiet_window_forgets_the_fingerprint() {
        let (clock, mut agg) = aggregator(10);
        assert!(agg.record("disk", 0).is_some());
        clock.advance(WINDOW);
        assert!(agg.poll().is_empty());
        assert!(agg.is_empty());
        assert!(agg.record("disk", 1).is_some());
    }

    #[test]
    fn record_closes_an_overdue_window_without_a_poll() {
        let (clock, mut agg) = aggregator(10);
        agg.record("disk", 0);
        agg.record("disk", 1);
        clock.advance(WINDOW * 3);
        // The old window had a duplicate: it is summarized, and this event
        // starts the next window as a duplicate.
        assert!(agg.record("disk", 2).is_none());
        let out = agg.poll();
        assert_eq!(out.summaries.len(), 1);
        assert_eq!(out.summaries[0].last_event, 1);
        clock.advance(WINDOW);
        assert_eq!(agg.poll().summaries[0].last_event, 2);
        // Quiet since: the next one passes at once.
        clock.advance(WINDOW);
        agg.poll();
        assert!(agg.record("disk", 3).is_some());
    }

    #[test]
    fn evicts_the_least_recently_seen_fingerprint_and_reports_it() {
        let (clock, mut agg) = aggregator(2);
        agg.record("a", 0);
        agg.record("a", 1);
        agg.record("a", 2);
        clock.advance(Duration::from_secs(1));
        agg.record("b", 0);
        clock.advance(Duration::from_secs(1));
        assert!(agg.record("c", 0).is_some());
        assert_eq!(agg.len(), 2);
        let out = agg.poll();
        assert_eq!(
            out.evicted,
            Some(EvictionSummary {
                fingerprints: 1,
                events: 2
            })
        );
        assert!(agg.poll().evicted.is_none(), "reported once");
        // "a" was forgotten, so its next event passes at once.
        assert!(agg.record("a", 3).is_some());
    }

    #[test]
    fn next_due_is_the_earliest_window_end() {
        let (clock, mut agg) = aggregator(10);
        assert_eq!(agg.next_due(), None);
        let t0 = clock.now();
        agg.record("a", 0);
        clock.advance(Duration::from_secs(5));
        agg.record("b", 0);
        assert_eq!(agg.next_due(), Some(t0 + WINDOW));
    }

    #[test]
    fn flush_reports_everything_pending() {
        let (_clock, mut agg) = aggregator(10);
        agg.record("a", 0);
        agg.record("a", 1);
        agg.record("b", 0);
        let out = agg.flush();
        assert_eq!(out.summaries.len(), 1);
        assert_eq!(out.event_count(), 1);
        assert!(agg.is_empty());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let zero_window = EventAggregatorConfig {
            window: Duration::ZERO,
            ..EventAggregatorConfig::default()
        };
        let err = EventAggregator::<String>::new(zero_window).unwrap_err();
        assert_eq!(err.field(), "window");
        let zero_max = EventAggregatorConfig {
            max_fingerprints: 0,
            ..EventAggregatorConfig::default()
        };
        let err = EventAggregator::<String>::new(zero_max).unwrap_err();
        assert_eq!(err.field(), "max_fingerprints");
    }

    #[test]
    fn config_reads_human_durations() {
        let cfg: EventAggregatorConfig =
            serde_json::from_str(r#"{"window":"10m","max_fingerprints":50}"#).unwrap();
        assert_eq!(cfg.window, Duration::from_secs(600));
        assert_eq!(cfg.max_fingerprints, 50);
        assert!(serde_json::from_str::<EventAggregatorConfig>(r#"{"windwo":"1s"}"#).is_err());
    }

    #[test]
    fn aggregator_is_send_and_sync() {
        fn bounds<T: Send + Sync>() {}
        bounds::<EventAggregator<String, String>>();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Record(u8),
        Advance(u64),
        Poll,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..12).prop_map(Op::Record),
            2 => (0u64..40).prop_map(Op::Advance),
            1 => Just(Op::Poll),
        ]
    }

    proptest! {
        /// Nothing is lost: emitted events plus summary counts plus evicted
        /// duplicates equal the events recorded, even under eviction.
        #[test]
        fn every_recorded_event_is_accounted_for(
            ops in proptest::collection::vec(op(), 0..400),
            max in 1usize..6,
            window_s in 1u64..30,
        ) {
            let clock = ManualClock::new();
            let mut agg = EventAggregator::with_clock(
                EventAggregatorConfig { window: Duration::from_secs(window_s), max_fingerprints: max },
                clock.clone(),
            ).unwrap();
            let mut recorded = 0u64;
            let mut accounted = 0u64;
            for op in ops {
                match op {
                    Op::Record(fp) => {
                        recorded += 1;
                        if agg.record(fp, recorded).is_some() {
                            accounted += 1;
                        }
                    }
                    Op::Advance(s) => clock.advance(Duration::from_secs(s)),
                    Op::Poll => {
                        let out = agg.poll();
                        for s in &out.summaries {
                            prop_assert!(s.count >= 1);
                            prop_assert!(s.first_seen <= s.last_seen);
                        }
                        accounted += out.event_count();
                    }
                }
                prop_assert!(agg.len() <= max);
            }
            accounted += agg.flush().event_count();
            prop_assert_eq!(accounted, recorded);
        }
    }
}
