//! Durability: what a power loss can leave behind never wins over a fresh good copy.
//!
//! A rename that was not followed by an fsync can survive a power loss while the data it
//! published does not: the store then holds an empty or truncated file at a content address
//! (with the metadata it was published with), or a template whose marker exists while one of
//! its files is gone. Both are simulated here; the fsyncs themselves cannot be tested
//! deterministically.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::path::PathBuf;

use node_modules_alloc::allocator::{Allocator, AllocatorConfig, Outcome};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::integrity::sha512_hex;
use node_modules_alloc::store::Store;
use support::{Pkg, damage_keeping_metadata, entry, lockfile, write_tarballs};

const UTIL: &[u8] = b"exports.util = function util() { return 42; };\n";

#[test]
fn a_truncated_store_file_is_replaced_by_a_later_put_of_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for truncated in [&b""[..], &UTIL[..10]] {
        let digest = store.put_bytes(UTIL, false).unwrap();
        let path = store.file_path(&digest, false);
        damage_keeping_metadata(&path, truncated);
        assert_eq!(store.put_bytes(UTIL, false).unwrap(), digest);
        assert_eq!(fs::read(&path).unwrap(), UTIL);
        assert!(store.verify_file(&digest, false).unwrap());
    }
}

#[test]
fn a_truncated_store_file_is_replaced_by_a_later_import_of_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let a = Pkg::new("a", "1.0.0").file("lib/util.js", UTIL, 0o644);
    let other = Pkg::new("other", "2.0.0").file("vendor/util.js", UTIL, 0o644);
    let tarballs = write_tarballs(&dir.path().join("tarballs"), &[&a, &other]);
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import_tarball_file(&tarballs[0]).unwrap();
    let path = store.file_path(&sha512_hex(UTIL), false);

    // The same tarball again (its index survived the power loss, its content did not).
    damage_keeping_metadata(&path, b"");
    store.import_tarball_file(&tarballs[0]).unwrap();
    assert_eq!(fs::read(&path).unwrap(), UTIL);

    // Another package shipping the same content.
    damage_keeping_metadata(&path, &UTIL[..7]);
    store.import_tarball_file(&tarballs[1]).unwrap();
    assert_eq!(fs::read(&path).unwrap(), UTIL);
}

fn setup() -> (tempfile::TempDir, Store, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let a = Pkg::new("a", "1.0.0").file("lib/util.js", UTIL, 0o644);
    let b = Pkg::new("b", "1.0.0");
    write_tarballs(&dir.path().join("tarballs"), &[&a, &b]);
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import_path(dir.path().join("tarballs")).unwrap();
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[
            entry("node_modules/a", &a),
            entry("node_modules/a/node_modules/b", &b),
        ]),
    )
    .unwrap();
    (dir, store, lock)
}

fn allocator(store: &Store, mode: LinkMode) -> Allocator {
    Allocator::new(
        store.clone(),
        AllocatorConfig {
            link_mode: mode,
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap()
}

fn template_of(store: &Store, digest: &str) -> PathBuf {
    store.path().join("templates").join(digest)
}

#[tokio::test]
async fn a_template_whose_marker_exists_but_a_file_is_missing_is_rebuilt() {
    for mode in [LinkMode::Auto, LinkMode::Hardlink, LinkMode::Copy] {
        for lost in ["a/lib/util.js", "a/node_modules/b/index.js"] {
            let (dir, store, lock) = setup();
            let allocator = allocator(&store, mode);
            let first = allocator
                .allocate(&lock, dir.path().join("app1"))
                .await
                .unwrap();
            let template = template_of(&store, &first.manifest_digest);
            fs::remove_file(template.join(lost)).unwrap();

            let second = allocator
                .allocate(&lock, dir.path().join("app2"))
                .await
                .unwrap_or_else(|e| panic!("{mode}, {lost} lost: {e}"));
            assert_eq!(second.outcome, Outcome::Cloned);
            assert!(
                dir.path().join("app2/node_modules").join(lost).is_file(),
                "{mode}: {lost}"
            );
            assert_eq!(
                fs::read(dir.path().join("app2/node_modules/a/lib/util.js")).unwrap(),
                UTIL
            );
            // The damaged template was discarded and rebuilt complete by that allocation; the
            // next one clones it.
            assert!(
                template.join(lost).is_file(),
                "{mode}: the template was rebuilt"
            );
            let third = allocator
                .allocate(&lock, dir.path().join("app3"))
                .await
                .unwrap();
            assert_eq!(third.outcome, Outcome::Cloned, "{mode}");
            assert!(dir.path().join("app3/node_modules").join(lost).is_file());
        }
    }
}

#[tokio::test]
async fn a_template_whose_copied_file_is_truncated_is_rebuilt() {
    let (dir, store, lock) = setup();
    let allocator = allocator(&store, LinkMode::Copy);
    let first = allocator
        .allocate(&lock, dir.path().join("app1"))
        .await
        .unwrap();
    let template = template_of(&store, &first.manifest_digest);
    damage_keeping_metadata(&template.join("a/lib/util.js"), b"");
    allocator
        .allocate(&lock, dir.path().join("app2"))
        .await
        .unwrap();
    assert_eq!(
        fs::read(dir.path().join("app2/node_modules/a/lib/util.js")).unwrap(),
        UTIL
    );
    allocator
        .allocate(&lock, dir.path().join("app3"))
        .await
        .unwrap();
    assert_eq!(fs::read(template.join("a/lib/util.js")).unwrap(), UTIL);
}
