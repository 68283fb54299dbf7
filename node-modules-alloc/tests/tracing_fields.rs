//! Every allocation runs in an `allocate` span carrying the allocator's `name`, `app_dir`,
//! `lockfile_digest`, packages, files, link mode and outcome; a verification in a `verify` span;
//! every event of a named allocator carries its `name`.
//!
//! Captured by the binary's ONE global subscriber, installed before anything
//! emits: `tracing` caches per-callsite interest globally, so a scoped
//! subscriber (`set_default`) can miss a callsite another thread registered
//! while no subscriber was visible to it (the allocator works on other
//! threads too). Keep this binary to this single capturing test.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::store::Store;
use resilience_core::InstanceName;
use support::{Pkg, entry, lockfile};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Fields = Arc<Mutex<BTreeMap<String, String>>>;
/// Every span (its name and fields at creation) and event of the allocator, in order.
type Records = Arc<Mutex<Vec<(String, Fields)>>>;

struct Capture(Fields, Records);

struct Visitor<'a>(&'a Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), value.to_string());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "allocate" {
            attrs.record(&mut Visitor(&self.0));
        }
        if attrs.metadata().target().starts_with("node_modules_alloc") {
            let fields = Fields::default();
            attrs.record(&mut Visitor(&fields));
            let kind = format!("span {}", attrs.metadata().name());
            self.1.lock().unwrap().push((kind, fields));
        }
    }
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target().starts_with("node_modules_alloc") {
            let fields = Fields::default();
            event.record(&mut Visitor(&fields));
            let within = ctx.event_scope(event).and_then(|scope| {
                scope
                    .map(|span| span.name())
                    .find(|name| ["allocate", "verify"].contains(name))
            });
            if let Some(span) = within {
                fields
                    .lock()
                    .unwrap()
                    .insert("in span".to_owned(), span.to_owned());
            }
            let kind = format!("event {}", event.metadata().target());
            self.1.lock().unwrap().push((kind, fields));
        }
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if ctx.span(id).is_some_and(|span| span.name() == "allocate") {
            values.record(&mut Visitor(&self.0));
        }
    }
}

#[tokio::test]
async fn allocation_span_records_the_documented_fields() {
    let fields: Fields = Arc::default();
    let records = Records::default();
    let subscriber =
        tracing_subscriber::registry().with(Capture(Arc::clone(&fields), Arc::clone(&records)));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let pkg = Pkg::new("a", "1.0.0").file("b.js", b"b", 0o644);
    store
        .import_tarball_bytes("a", &pkg.tgz(), None, None)
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    std::fs::write(&lock, lockfile(&[entry("node_modules/a", &pkg)])).unwrap();
    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap()
    .named(InstanceName::new("edge").unwrap());
    // The import above is the store's, not the allocator's.
    records.lock().unwrap().clear();
    allocator
        .allocate(&lock, dir.path().join("app"))
        .await
        .unwrap();
    let report = allocator
        .verify(dir.path().join("app"), false, None)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report:?}");

    let records = records.lock().unwrap();
    let kinds: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    assert!(kinds.contains(&"span allocate"), "{kinds:?}");
    assert!(kinds.contains(&"span verify"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| k.starts_with("event")).count() >= 2,
        "{kinds:?}"
    );
    for (kind, fields) in records.iter() {
        let fields = fields.lock().unwrap();
        let own = [
            "span ",
            "event node_modules_alloc::allocator",
            "event node_modules_alloc::admission",
        ];
        if own.iter().any(|prefix| kind.starts_with(prefix)) {
            // The allocator's own spans and events carry its name.
            assert_eq!(
                fields.get("name").map(String::as_str),
                Some("edge"),
                "{kind} lacks the allocator's name: {fields:?}"
            );
        } else {
            // Events of the layers below (store, layout) happen inside its named spans, on
            // whichever thread the work runs.
            assert!(
                fields.contains_key("in span"),
                "{kind} outside the allocator's spans: {fields:?}"
            );
        }
    }

    let fields = fields.lock().unwrap();
    for name in [
        "name",
        "app_dir",
        "lockfile_digest",
        "packages",
        "files",
        "link_mode",
        "outcome",
    ] {
        assert!(
            fields.contains_key(name),
            "missing span field {name}: {fields:?}"
        );
    }
    assert_eq!(fields["packages"], "1");
    assert_eq!(fields["files"], "3"); // package.json, index.js, b.js
    assert_eq!(fields["link_mode"], "auto");
    assert_eq!(fields["outcome"], "materialized");
}
