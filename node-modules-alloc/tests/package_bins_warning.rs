//! A bin skipped on import (see `package_bins.rs`) is reported by a warning naming it.
//!
//! Its own test binary: the test captures logs with a scoped subscriber, and `tracing` caches
//! per-callsite interest globally; a test of the same binary hitting the callsite at the same
//! moment on another thread (without a subscriber) could cache "never" for it (a flaky failure
//! seen under load when this test lived in `package_bins.rs`).
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use node_modules_alloc::store::Store;
use support::{Raw, raw_tgz};

const CLI: &[u8] = b"#!/usr/bin/env node\nconsole.log('hi');\n";

fn tarball(package_json: &str, files: &[&str]) -> Vec<u8> {
    let mut entries = vec![Raw::File(
        "package/package.json",
        package_json.as_bytes(),
        0o644,
    )];
    let names: Vec<String> = files.iter().map(|f| format!("package/{f}")).collect();
    for name in &names {
        entries.push(Raw::File(name, CLI, 0o644));
    }
    raw_tgz(&entries)
}

fn import(store: &Store, bytes: &[u8]) {
    store
        .import_tarball_bytes("pkg.tgz", bytes, None, None)
        .unwrap();
}

/// Collects formatted tracing output.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_skipped_bin_is_reported_by_a_warning_naming_it() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let bytes = tarball(r#"{"name":"evil","bin":{"../../x":"cli.js"}}"#, &["cli.js"]);
    tracing::subscriber::with_default(subscriber, || {
        // This thread's scoped subscriber must see callsites registered before it.
        tracing::callsite::rebuild_interest_cache();
        import(&store, &bytes);
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("invalid bin in package.json skipped"),
        "{text}"
    );
    assert!(text.contains("bin=../../x"), "{text}");
    assert!(text.contains("evil"), "{text}");
}
