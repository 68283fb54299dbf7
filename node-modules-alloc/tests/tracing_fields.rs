//! Every allocation runs in an `allocate` span carrying `app_dir`, `lockfile_digest`, packages,
//! files, link mode and outcome.
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
use support::{Pkg, entry, lockfile};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Fields = Arc<Mutex<BTreeMap<String, String>>>;

struct Capture(Fields);

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

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "allocate" {
            attrs.record(&mut Visitor(&self.0));
        }
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: Context<'_, S>,
    ) {
        values.record(&mut Visitor(&self.0));
    }
}

#[tokio::test]
async fn allocation_span_records_the_documented_fields() {
    let fields: Fields = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&fields)));
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
    .unwrap();
    allocator
        .allocate(&lock, dir.path().join("app"))
        .await
        .unwrap();

    let fields = fields.lock().unwrap();
    for name in [
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
