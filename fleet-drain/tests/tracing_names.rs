//! Issue #16: every tracing event of a named controller or rollout carries its name, and
//! drain waves and rollout steps open spans. Its own test binary: one subscriber, set for the
//! current thread only (`tracing::subscriber::with_default`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_drain::drain::DrainController;
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::Amount;
use fleet_drain::rollout::{Rollout, RolloutConfig, RolloutStep};
use fleet_drain::sim::{self, SimConfig, SimFleet};
use resilience_core::InstanceName;
use resilience_core::clock::ManualClock;
use support::{bounded_config, scenario};
use tracing::field::{Field, Visit};
use tracing::span::Attributes;
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Debug, Default)]
struct Seen {
    /// (target, message, name field) of every event.
    events: Vec<(String, String, Option<String>)>,
    /// (span name, name field) of every span.
    spans: Vec<(String, Option<String>)>,
}

#[derive(Default)]
struct Fields {
    name: Option<String>,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.name = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "name" => self.name = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

struct Capture(Arc<Mutex<Seen>>);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().events.push((
            event.metadata().target().to_owned(),
            fields.message,
            fields.name,
        ));
    }
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .spans
            .push((attrs.metadata().name().to_owned(), fields.name));
    }
}

/// Whether the event comes from the controller, the rollout or the parts they own.
fn owned(target: &str) -> bool {
    [
        "fleet_drain::drain",
        "fleet_drain::rollout",
        "fleet_drain::health",
        "fleet_drain::plan",
    ]
    .iter()
    .any(|t| target.starts_with(t))
}

#[test]
fn every_event_of_a_named_drain_and_rollout_carries_the_name() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&seen)));
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        // A drain whose starts fail and pause the gate (warn, info and debug events).
        let s = scenario(
            SimConfig {
                safe_concurrent_starts: 1,
                failure_probability_per_extra_start: 0.5,
                max_failure_probability: 0.5,
                seed: 7,
                ..SimConfig::default()
            },
            4,
            10,
            4,
            30,
        );
        let mut config = bounded_config();
        config.limits.max_unavailable = Amount::Count(20);
        config.retry.max_attempts = Some(20);
        config.gate.pause_above_failures_per_minute = 0.5;
        config.gate.resume_below_failures_per_minute = 0.2;
        config.gate.abort_above_failures_per_minute = 1000.0;
        config.gate.abort_below_healthy_share = 0.0;
        config.failure_window = Duration::from_secs(60);
        let mut c = DrainController::with_clock(
            config,
            Arc::new(s.fleet.clone()),
            Box::new(MemoryJournal::new()),
            s.clock.clone(),
        )
        .unwrap()
        .named(InstanceName::new("eu.drain").unwrap());
        sim::run(&s.clock, c.run(&s.old)).unwrap().unwrap();

        // A bad release: the gate aborts in the bake, the canary is rolled back.
        let clock = ManualClock::new();
        let fleet = SimFleet::with_clock(SimConfig::default(), clock.clone()).unwrap();
        let hosts = fleet.add_hosts(4, 10, "v1");
        for &h in &hosts {
            fleet.add_apps(h, 5).unwrap();
        }
        fleet.set_version_healthy("v2", false);
        let config = RolloutConfig {
            version: "v2".into(),
            steps: vec![
                RolloutStep::Canary { hosts: 1 },
                RolloutStep::Bake {
                    duration: Duration::from_secs(300),
                },
            ],
            ..RolloutConfig::default()
        };
        let mut rollout = Rollout::with_clock(config, Arc::new(fleet), hosts, clock.clone())
            .unwrap()
            .named(InstanceName::new("api.release").unwrap());
        assert!(sim::run(&clock, rollout.run()).unwrap().is_err());
    });

    let seen = seen.lock().unwrap();
    let ours: Vec<_> = seen.events.iter().filter(|(t, ..)| owned(t)).collect();
    assert!(ours.len() > 20, "{ours:?}");
    for (target, message, name) in &ours {
        let want = if target.starts_with("fleet_drain::rollout") {
            "api.release"
        } else if target.starts_with("fleet_drain::health") {
            // The gate belongs to either; both are named.
            name.as_deref().unwrap_or_default()
        } else {
            "eu.drain"
        };
        assert_eq!(
            name.as_deref(),
            Some(want),
            "{target}: {message:?} lacks the instance name"
        );
        assert!(!want.is_empty(), "{target}: {message:?}");
    }
    for kind in [
        "drain paused by health gate",
        "app start failed",
        "rollout failed; rolling back",
    ] {
        assert!(
            ours.iter().any(|(_, m, _)| m.contains(kind)),
            "no {kind:?} event"
        );
    }
    let spans = |span: &str, name: &str| {
        seen.spans
            .iter()
            .filter(|(s, n)| s == span && n.as_deref() == Some(name))
            .count()
    };
    assert!(spans("drain_wave", "eu.drain") >= 1, "{:?}", seen.spans);
    assert_eq!(spans("rollout_step", "api.release"), 2, "{:?}", seen.spans);
}
