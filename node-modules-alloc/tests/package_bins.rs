//! Bins declared by a tarball's own `package.json` are validated like the lockfile's (issue #12,
//! point 2): an invalid one is skipped (with a warning event), and a bin named `../../x` never
//! creates anything outside `node_modules/.bin`.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;

use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::config::ImportLimits;
use node_modules_alloc::integrity::Integrity;
use node_modules_alloc::store::{IndexEntry, PackageIndex, Store, StoreConfig};
use node_modules_alloc::{Error, Rejection};
use support::{Raw, all_paths, raw_tgz};

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

fn import(store: &Store, bytes: &[u8]) -> PackageIndex {
    let imported = store
        .import_tarball_bytes("pkg.tgz", bytes, None, None)
        .unwrap();
    store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap()
}

fn exec_of(index: &PackageIndex, path: &str) -> bool {
    index
        .entries
        .iter()
        .find_map(|e| match e {
            IndexEntry::File { path: p, exec, .. } if p == path => Some(*exec),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn invalid_bins_in_package_json_are_skipped_and_never_linked_outside_bin() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let bytes = tarball(
        r#"{"name":"evil","version":"1.0.0","bin":{
            "../../x": "cli.js", "..": "cli.js", "a\\b": "cli.js",
            "escape": "../../../etc/passwd", "abs": "/usr/bin/env", "empty": "./",
            "good": "./cli.js"}}"#,
        &["cli.js"],
    );
    let index = import(&store, &bytes);
    assert_eq!(
        index.bins,
        BTreeMap::from([("good".to_owned(), "cli.js".to_owned())])
    );
    assert!(exec_of(&index, "cli.js"));

    // Allocate with a lockfile that declares no bins: only package.json's count.
    let lock = dir.path().join("package-lock.json");
    std::fs::write(
        &lock,
        format!(
            r#"{{"lockfileVersion": 3, "packages": {{"": {{}},
                "node_modules/evil": {{"version": "1.0.0", "integrity": "{}"}}}}}}"#,
            Integrity::sha512_of(&bytes)
        ),
    )
    .unwrap();
    let app = dir.path().join("apps").join("app");
    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap();
    allocator.allocate(&lock, &app).await.unwrap();
    let bin_dir = app.join("node_modules/.bin");
    let bins: Vec<String> = std::fs::read_dir(&bin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(bins, vec!["good"]);
    // Nothing next to the app, nothing in the app outside node_modules.
    assert_eq!(all_paths(&dir.path().join("apps")).first(), Some(&app));
    for path in all_paths(&app) {
        assert!(
            path.starts_with(app.join("node_modules")),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_string_bin_of_a_scoped_package_is_named_after_the_part_after_the_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let index = import(
        &store,
        &tarball(r#"{"name":"@scope/tool","bin":"./cli.js"}"#, &["cli.js"]),
    );
    assert_eq!(
        index.bins,
        BTreeMap::from([("tool".to_owned(), "cli.js".to_owned())])
    );
    // A scope with a `..` name part cannot smuggle a `..` bin.
    let index = import(
        &store,
        &tarball(r#"{"name":"@scope/..","bin":"./cli.js"}"#, &["cli.js"]),
    );
    assert!(index.bins.is_empty());
}

#[test]
fn directories_bin_links_every_file_of_that_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let index = import(
        &store,
        &tarball(
            r#"{"name":"tools","version":"1.0.0","directories":{"bin":"./bin"}}"#,
            &["bin/one", "bin/sub/two.js", "bin/.hidden", "lib/three.js"],
        ),
    );
    assert_eq!(
        index.bins,
        BTreeMap::from([
            ("one".to_owned(), "bin/one".to_owned()),
            ("two.js".to_owned(), "bin/sub/two.js".to_owned()),
        ])
    );
    assert!(exec_of(&index, "bin/one") && exec_of(&index, "bin/sub/two.js"));
    assert!(!exec_of(&index, "lib/three.js"));
    // A `directories.bin` outside the package is skipped; the package is still imported.
    let index = import(
        &store,
        &tarball(
            r#"{"name":"out","directories":{"bin":"../../.."}}"#,
            &["bin/one"],
        ),
    );
    assert!(index.bins.is_empty());
}

#[test]
fn package_json_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        limits: ImportLimits {
            max_package_json_bytes: 1000,
            ..ImportLimits::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open_with(dir.path().join("store"), config).unwrap();
    let json = format!(r#"{{"name":"big","description":"{}"}}"#, "x".repeat(2000));
    let err = store
        .import_tarball_bytes("big.tgz", &tarball(&json, &[]), None, None)
        .unwrap_err();
    match err {
        Error::Rejected { entry, reason, .. } => {
            assert_eq!(entry, "package/package.json");
            assert_eq!(reason, Rejection::PackageJsonTooLarge { limit: 1000 });
        }
        other => panic!("expected a rejection, got {other}"),
    }
}

#[test]
fn an_unreadable_package_json_imports_without_name_or_bins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let index = import(
        &store,
        &tarball(r#"{"name": "broken", "bin": "#, &["cli.js"]),
    );
    assert_eq!(index.name, None);
    assert!(index.bins.is_empty());
}

#[test]
fn bins_of_an_index_written_by_an_older_version_are_checked_on_read() {
    // An older importer kept package.json bins unchecked: such an index must not make the
    // allocator link `../../x`.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let bytes = tarball(r#"{"name":"old","bin":{"ok":"cli.js"}}"#, &["cli.js"]);
    let index = import(&store, &bytes);
    let sha512 = Integrity::sha512_of(&bytes);
    let file = store
        .path()
        .join("index")
        .join(format!("sha512-{}.json", sha512.strongest().unwrap().hex()));
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    json["bins"]["../../x"] = "cli.js".into();
    json["bins"]["escape"] = "../../../etc/passwd".into();
    std::fs::write(&file, serde_json::to_vec(&json).unwrap()).unwrap();
    let read = store.read_index(&sha512).unwrap().unwrap();
    assert_eq!(read.bins, index.bins);
}
