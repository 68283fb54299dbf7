//! Alert signals that do not cry wolf: [`Hysteresis`] for level alarms and
//! [`EventAggregator`] for de-duplicating repeated events.
//!
//! # Why?
//!
//! A monitor whose value hovers around its alert mark fires and resolves
//! over and over; every flap is a new message and a new page, and a flood of
//! un-aggregated warnings hides the one alert that matters (see the
//! [crate docs](crate)). This module gives *a monitor
//! that does not fire when all is fine* and *aggregation of similar events*:
//!
//! - [`Hysteresis`] fires only after the value has been beyond the alarm mark
//!   for `fire_after` consecutive samples, and clears only after it has been
//!   back beyond a *different* mark for `clear_after` samples. A value
//!   oscillating around one mark therefore never flaps. With
//!   [`Direction::Below`] the same two marks drive "fire when it drops"
//!   signals, e.g. a drain that pauses when the share of healthy apps falls
//!   below 80 % and resumes when it is back above 95 %.
//! - [`EventAggregator`] passes the first event of each fingerprint through at
//!   once, suppresses its duplicates, and emits one [`Summary`] (count,
//!   first/last seen) per window. Memory is bounded by `max_fingerprints`; an
//!   evicted fingerprint's suppressed duplicates are reported in an
//!   [`EvictionSummary`], so nothing is lost silently: every recorded event is
//!   either emitted, counted in a summary, or counted as evicted.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::{Clock, ManualClock};
//! use resilience_core::signal::{
//!     EventAggregator, EventAggregatorConfig, Hysteresis, HysteresisConfig, SignalChange,
//! };
//!
//! // Disk usage hovering around 90 %: a naive `usage > 0.9` alert would flap
//! // on every other sample.
//! let mut disk = Hysteresis::new(HysteresisConfig {
//!     high: 0.9, low: 0.8, fire_after: 3, clear_after: 3, ..HysteresisConfig::default()
//! })?;
//! for usage in [0.91, 0.89, 0.92, 0.88, 0.91, 0.89] {
//!     assert_eq!(disk.observe(usage), None);
//! }
//! // Genuinely full: fires once.
//! assert_eq!(disk.observe(0.95), None);
//! assert_eq!(disk.observe(0.96), None);
//! assert_eq!(disk.observe(0.97), Some(SignalChange::Fired { value: 0.97 }));
//!
//! // Warnings from 30 hosts every 10 s: one message each, then one summary
//! // per host per window.
//! let clock = ManualClock::new();
//! let mut alerts = EventAggregator::with_clock(
//!     EventAggregatorConfig { window: Duration::from_secs(60), max_fingerprints: 100 },
//!     clock.clone(),
//! )?;
//! let mut sent = 0;
//! for _ in 0..6 {
//!     for host in 0..30 {
//!         if alerts.record(format!("disk-tight/{host}"), "disk usage getting tight").is_some() {
//!             sent += 1;
//!         }
//!     }
//!     clock.advance(Duration::from_secs(10));
//! }
//! assert_eq!(sent, 30);
//! let report = alerts.poll();
//! assert_eq!(report.summaries.len(), 30);
//! assert_eq!(report.event_count(), 30 * 5);
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```

mod aggregator;
mod hysteresis;

pub use aggregator::{
    Emitted, EventAggregator, EventAggregatorConfig, EvictionSummary, Flushed, Summary,
};
pub use hysteresis::{Direction, Hysteresis, HysteresisConfig, SignalChange};
