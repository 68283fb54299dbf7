//! The limit reports its decisions as `tracing` events: a `debug` event per
//! shed request and an `info` event per limit change.
//!
//! Every test of this binary captures through ONE global subscriber that
//! routes each event to the test running on the emitting thread: `tracing`
//! caches per-callsite interest globally, so scoped subscribers
//! (`with_default`) race with parallel tests hitting the same callsites and
//! can lose events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Once;
use std::time::Duration;

use resilience_core::clock::ManualClock;
use resilience_core::limit::{
    AdaptiveLimit, AdaptiveLimitConfig, AimdConfig, ConcurrencyLimit, ConcurrencyLimitConfig,
    LimitAlgorithm,
};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

thread_local! {
    /// The events captured for the test running on this thread, while it
    /// captures.
    static CAPTURED: RefCell<Option<Vec<(Level, String)>>> = const { RefCell::new(None) };
}

/// Records every event into the emitting thread's capture, if any.
struct Capture;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        write!(self.0, "{}={:?} ", field.name(), value).unwrap();
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        CAPTURED.with_borrow_mut(|captured| {
            if let Some(events) = captured {
                events.push((*event.metadata().level(), fields.0));
            }
        });
    }
}

/// Installs the binary's global subscriber (once). Every test calls it
/// before anything that could emit an event, so no callsite is ever
/// registered without it.
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .unwrap();
    });
}

/// The events `f` emits on this thread.
fn captured(f: impl FnOnce()) -> Vec<(Level, String)> {
    install();
    CAPTURED.set(Some(Vec::new()));
    f();
    CAPTURED.take().unwrap_or_default()
}

#[test]
fn a_shed_request_emits_a_debug_event_with_in_flight_and_queued() {
    install();
    let limit = ConcurrencyLimit::new(ConcurrencyLimitConfig {
        max_concurrent: 1,
        max_queued: 0,
        ..ConcurrencyLimitConfig::default()
    })
    .unwrap();
    let _held = limit.try_acquire().unwrap();
    let events = captured(|| assert!(limit.try_acquire().is_err()));
    assert_eq!(events.len(), 1, "{events:?}");
    let (level, fields) = &events[0];
    assert_eq!(*level, Level::DEBUG);
    assert!(fields.contains("in_flight=1 "), "{fields}");
    assert!(fields.contains("queued=0 "), "{fields}");
    assert!(fields.contains("request shed"), "{fields}");
}

#[test]
fn a_limit_change_emits_an_info_event_with_old_and_new() {
    install();
    let limit = ConcurrencyLimit::new(ConcurrencyLimitConfig {
        max_concurrent: 1,
        ..ConcurrencyLimitConfig::default()
    })
    .unwrap();
    let events = captured(|| {
        limit.set_max_concurrent(3).unwrap();
        limit.set_max_concurrent(3).unwrap(); // unchanged: no event
    });
    assert_eq!(events.len(), 1, "{events:?}");
    let (level, fields) = &events[0];
    assert_eq!(*level, Level::INFO);
    assert!(
        fields.contains("old=1 ") && fields.contains("new=3 "),
        "{fields}"
    );
}

#[test]
fn an_adaptive_decrease_is_reported() {
    install();
    let clock = ManualClock::new();
    let limit = AdaptiveLimit::with_clock(
        AdaptiveLimitConfig {
            algorithm: LimitAlgorithm::Aimd(AimdConfig {
                initial_limit: 10,
                ..AimdConfig::default()
            }),
            ..AdaptiveLimitConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let permit = limit.try_acquire().unwrap();
    clock.advance(Duration::from_millis(3));
    let events = captured(|| permit.record_dropped());
    assert!(
        events.iter().any(|(level, f)| *level == Level::INFO
            && f.contains("old=10 ")
            && f.contains("new=9 ")),
        "{events:?}"
    );
}
