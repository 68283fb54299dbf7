//! Import + allocate: nested and scoped packages, bins, executables, shared files, link modes,
//! npm caches, the hardlink hazard.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, Outcome};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::store::Store;
use support::{Pkg, entry, lockfile, snapshot, write_cacache, write_tarballs};

const LICENSE: &[u8] = b"MIT License\n\nPermission is hereby granted...\n";

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("a", "1.0.0").file("LICENSE", LICENSE, 0o644).file(
            "lib/util.js",
            b"exports.u = 1;\n",
            0o644,
        ),
        Pkg::new("b", "2.0.0").file("LICENSE", LICENSE, 0o644),
        Pkg::new("b", "1.0.0").file("LICENSE", LICENSE, 0o644),
        Pkg::new("@scope/tool", "3.1.4")
            .file("LICENSE", LICENSE, 0o644)
            .file(
                "cli.js",
                b"#!/usr/bin/env node\nconsole.log('tool');\n",
                0o644,
            )
            .bin("tool", "./cli.js"),
        Pkg::new("runner", "0.1.0").file("bin/run.sh", b"#!/bin/sh\necho run\n", 0o755),
    ]
}

fn config(link_mode: LinkMode) -> AllocatorConfig {
    AllocatorConfig {
        link_mode,
        min_free_bytes: 0,
        ..AllocatorConfig::default()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    lock: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pkgs = packages();
    let refs: Vec<&Pkg> = pkgs.iter().collect();
    write_tarballs(&dir.path().join("tarballs"), &refs);
    let store = Store::open(dir.path().join("store")).unwrap();
    let summary = store.import_path(dir.path().join("tarballs")).unwrap();
    assert_eq!(summary.imported(), 5);
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[
            entry("node_modules/a", &pkgs[0]),
            entry("node_modules/b", &pkgs[1]),
            entry("node_modules/a/node_modules/b", &pkgs[2]),
            entry("node_modules/@scope/tool", &pkgs[3]),
            entry("node_modules/a/node_modules/runner", &pkgs[4]),
        ]),
    )
    .unwrap();
    Fixture { dir, store, lock }
}

#[tokio::test]
async fn allocates_nested_scoped_packages_with_bins_and_executables() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Auto)).unwrap();
    let app = f.dir.path().join("app");
    let allocation = allocator.allocate(&f.lock, &app).await.unwrap();
    assert_eq!(allocation.outcome, Outcome::Materialized);
    assert_eq!(allocation.packages, 5);
    let nm = app.join("node_modules");
    assert_eq!(
        fs::read_to_string(nm.join("b/index.js")).unwrap(),
        "module.exports = 'b@2.0.0';\n"
    );
    assert_eq!(
        fs::read_to_string(nm.join("a/node_modules/b/index.js")).unwrap(),
        "module.exports = 'b@1.0.0';\n"
    );
    assert!(nm.join("@scope/tool/cli.js").exists());
    // Bins: top-level .bin for the scoped package, nested .bin for a/node_modules/runner is not
    // declared (runner has no bin) but its executable keeps the x bit.
    assert_eq!(
        fs::read_link(nm.join(".bin/tool"))
            .unwrap()
            .to_str()
            .unwrap(),
        "../@scope/tool/cli.js"
    );
    assert!(
        fs::read_to_string(nm.join(".bin/tool"))
            .unwrap()
            .contains("tool")
    );
    let cli_mode = fs::metadata(nm.join("@scope/tool/cli.js")).unwrap().mode();
    assert_eq!(cli_mode & 0o777, 0o555, "declared bins are executable");
    assert_eq!(
        fs::metadata(nm.join("a/node_modules/runner/bin/run.sh"))
            .unwrap()
            .mode()
            & 0o777,
        0o555
    );
    assert_eq!(
        fs::metadata(nm.join("a/index.js")).unwrap().mode() & 0o777,
        0o444,
        "only the x bit is kept"
    );
    // Files are hardlinks into the store.
    assert!(fs::metadata(nm.join("a/index.js")).unwrap().nlink() >= 2);
}

#[tokio::test]
async fn nested_bins_go_to_the_nearest_node_modules_bin() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let outer = Pkg::new("outer", "1.0.0");
    let inner = Pkg::new("@s/inner", "1.0.0")
        .file("x.js", b"x", 0o644)
        .bin("inner-x", "x.js");
    store
        .import_tarball_bytes("o", &outer.tgz(), None, None)
        .unwrap();
    store
        .import_tarball_bytes("i", &inner.tgz(), None, None)
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[
            entry("node_modules/outer", &outer),
            entry("node_modules/outer/node_modules/@s/inner", &inner),
        ]),
    )
    .unwrap();
    let allocator = Allocator::new(store, config(LinkMode::Auto)).unwrap();
    allocator
        .allocate(&lock, dir.path().join("app"))
        .await
        .unwrap();
    let link = dir
        .path()
        .join("app/node_modules/outer/node_modules/.bin/inner-x");
    assert_eq!(
        fs::read_link(&link).unwrap().to_str().unwrap(),
        "../@s/inner/x.js"
    );
    assert_eq!(fs::read(&link).unwrap(), b"x");
}

#[tokio::test]
async fn duplicate_files_are_stored_once() {
    let f = fixture();
    let digest = node_modules_alloc::integrity::sha512_hex(LICENSE);
    assert!(f.store.file_path(&digest, false).exists());
    let copies = f
        .store
        .content_files()
        .unwrap()
        .into_iter()
        .filter(|(d, _)| *d == digest)
        .count();
    assert_eq!(
        copies, 1,
        "the LICENSE shared by 5 packages is one store file"
    );
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Auto)).unwrap();
    let app = f.dir.path().join("app");
    allocator.allocate(&f.lock, &app).await.unwrap();
    let ino = |p: &str| {
        fs::metadata(app.join("node_modules").join(p))
            .unwrap()
            .ino()
    };
    assert_eq!(ino("a/LICENSE"), ino("b/LICENSE"));
    assert_eq!(
        ino("a/LICENSE"),
        fs::metadata(f.store.file_path(&digest, false))
            .unwrap()
            .ino()
    );
}

#[tokio::test]
async fn executables_never_chmod_the_shared_store_file() {
    // The same content is an ordinary file in one package and a declared bin in another.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let plain = Pkg::new("plain", "1.0.0").file("same.js", b"shared\n", 0o644);
    let exe = Pkg::new("exe", "1.0.0")
        .file("same.js", b"shared\n", 0o644)
        .bin("exe", "same.js");
    store
        .import_tarball_bytes("p", &plain.tgz(), None, None)
        .unwrap();
    store
        .import_tarball_bytes("e", &exe.tgz(), None, None)
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[
            entry("node_modules/plain", &plain),
            entry("node_modules/exe", &exe),
        ]),
    )
    .unwrap();
    let allocator = Allocator::new(store.clone(), config(LinkMode::Hardlink)).unwrap();
    allocator
        .allocate(&lock, dir.path().join("app"))
        .await
        .unwrap();
    let nm = dir.path().join("app/node_modules");
    let p = fs::metadata(nm.join("plain/same.js")).unwrap();
    let e = fs::metadata(nm.join("exe/same.js")).unwrap();
    assert_eq!(p.mode() & 0o777, 0o444);
    assert_eq!(e.mode() & 0o777, 0o555);
    assert_ne!(p.ino(), e.ino(), "executable variant is its own inode");
}

#[tokio::test]
async fn identical_lockfiles_materialize_once_then_clone() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Auto)).unwrap();
    let first = allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    let second = allocator
        .allocate(&f.lock, f.dir.path().join("app2"))
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Materialized);
    assert_eq!(second.outcome, Outcome::Cloned);
    assert_eq!(first.manifest_digest, second.manifest_digest);
    assert_eq!(allocator.stats().templates_built, 1);
    assert_eq!(
        snapshot(&f.dir.path().join("app1/node_modules")),
        snapshot(&f.dir.path().join("app2/node_modules"))
    );
    // Re-allocating an intact tree reuses it; a damaged one is rebuilt.
    let again = allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Reused);
    fs::remove_file(f.dir.path().join("app1/node_modules/a/index.js")).unwrap();
    let rebuilt = allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    assert_eq!(rebuilt.outcome, Outcome::Cloned);
    assert!(f.dir.path().join("app1/node_modules/a/index.js").exists());
    assert_eq!(allocator.stats().rebuilt, 1);
}

#[tokio::test]
async fn every_link_mode_produces_the_same_tree() {
    let f = fixture();
    let mut trees = Vec::new();
    for (i, mode) in [LinkMode::Auto, LinkMode::Hardlink, LinkMode::Copy]
        .into_iter()
        .enumerate()
    {
        let allocator = Allocator::new(f.store.clone(), config(mode)).unwrap();
        let app = f.dir.path().join(format!("app{i}"));
        let allocation = allocator.allocate(&f.lock, &app).await.unwrap();
        if mode == LinkMode::Copy {
            assert_eq!(allocation.stats.copies, allocation.files);
            assert_eq!(
                fs::metadata(app.join("node_modules/a/index.js"))
                    .unwrap()
                    .nlink(),
                1
            );
        }
        trees.push(snapshot(&app.join("node_modules")));
    }
    // The marker names the same manifest; drop it from the comparison of contents only.
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

#[tokio::test]
async fn replaces_a_foreign_node_modules_atomically() {
    let f = fixture();
    let app = f.dir.path().join("app");
    fs::create_dir_all(app.join("node_modules/stale-package")).unwrap();
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Auto)).unwrap();
    allocator.allocate(&f.lock, &app).await.unwrap();
    assert!(!app.join("node_modules/stale-package").exists());
    assert!(app.join("node_modules/a/index.js").exists());
    let leftovers: Vec<_> = fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("node_modules")]);
}

#[tokio::test]
async fn imports_from_an_npm_cache_verifying_sha512_and_sha1() {
    let dir = tempfile::tempdir().unwrap();
    let a = Pkg::new("a", "1.0.0");
    let old = Pkg::new("old", "0.0.1");
    let meta = br#"{"name":"a","versions":{}}"#;
    let cache = dir.path().join("npm/_cacache");
    write_cacache(
        &cache,
        &[
            (
                "make-fetch-happen:request-cache:https://r.invalid/a/-/a-1.0.0.tgz",
                &a.tgz(),
                a.integrity(),
            ),
            (
                "make-fetch-happen:request-cache:https://r.invalid/old/-/old-0.0.1.tgz",
                &old.tgz(),
                support::sha1_integrity(&old.tgz()),
            ),
            (
                "make-fetch-happen:request-cache:https://r.invalid/a",
                meta,
                node_modules_alloc::integrity::Integrity::sha512_of(meta).to_string(),
            ),
        ],
    );
    let store = Store::open(dir.path().join("store")).unwrap();
    // Both the cache dir and its parent are accepted.
    let summary = store.import_path(dir.path().join("npm")).unwrap();
    assert_eq!(summary.imported(), 2, "the packument (JSON) is skipped");
    let again = store.import_path(&cache).unwrap();
    assert_eq!(again.already_present(), 2);
    // A lockfile that only knows the sha1 form resolves too.
    let lock = dir.path().join("package-lock.json");
    let mut text: serde_json::Value =
        serde_json::from_str(&lockfile(&[entry("node_modules/old", &old)])).unwrap();
    text["packages"]["node_modules/old"]["integrity"] = support::sha1_integrity(&old.tgz()).into();
    fs::write(&lock, text.to_string()).unwrap();
    let allocator = Allocator::new(store, config(LinkMode::Auto)).unwrap();
    allocator
        .allocate(&lock, dir.path().join("app"))
        .await
        .unwrap();
    assert!(dir.path().join("app/node_modules/old/index.js").exists());
}

#[test]
fn cache_content_that_does_not_match_its_integrity_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = Pkg::new("a", "1.0.0");
    let b = Pkg::new("b", "1.0.0");
    let cache = dir.path().join("_cacache");
    write_cacache(&cache, &[("key-of-a", &a.tgz(), a.integrity())]);
    // Swap the content behind the same address.
    let hash = a
        .integrity()
        .parse::<node_modules_alloc::integrity::Integrity>()
        .unwrap()
        .strongest()
        .unwrap()
        .hex();
    let content = cache
        .join("content-v2/sha512")
        .join(&hash[..2])
        .join(&hash[2..4])
        .join(&hash[4..]);
    fs::write(&content, b.tgz()).unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let err = store.import_path(&cache).unwrap_err();
    assert!(matches!(err, Error::IntegrityMismatch { .. }), "{err}");
    assert!(err.to_string().contains("key-of-a"), "{err}");
    assert!(store.indexes().unwrap().is_empty());
}

#[tokio::test]
async fn editing_a_hardlinked_file_is_detected_quarantined_and_repaired() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Hardlink)).unwrap();
    let app = f.dir.path().join("app");
    allocator.allocate(&f.lock, &app).await.unwrap();
    let victim = app.join("node_modules/a/lib/util.js");
    let digest = node_modules_alloc::integrity::sha512_hex(b"exports.u = 1;\n");
    // Store files are read-only; a careless app (or root) writes anyway.
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&victim, b"exports.u = 666;\n").unwrap();
    assert!(
        !f.store.verify_file(&digest, false).unwrap(),
        "the edit reached the store through the hardlink"
    );

    let report = allocator.verify(&app, false, None).await.unwrap();
    assert!(!report.is_ok());
    assert!(
        report.problems.iter().any(|p| p.contains("a/lib/util.js")),
        "{:?}",
        report.problems
    );

    let repaired = allocator.verify(&app, true, None).await.unwrap();
    assert!(repaired.repaired);
    let store_report = repaired.store.unwrap();
    assert!(!store_report.quarantined.is_empty());
    assert!(
        !store_report.reimported.is_empty(),
        "re-imported from the recorded tarball"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"exports.u = 1;\n");
    assert!(f.store.verify_file(&digest, false).unwrap());
    assert!(
        allocator
            .verify(&app, false, None)
            .await
            .unwrap()
            .problems
            .is_empty()
    );

    // A second app allocated afterwards gets clean content (the corrupt inode is never linked).
    allocator
        .allocate(&f.lock, f.dir.path().join("app2"))
        .await
        .unwrap();
    assert_eq!(
        fs::read(f.dir.path().join("app2/node_modules/a/lib/util.js")).unwrap(),
        b"exports.u = 1;\n"
    );
}

#[tokio::test]
async fn corrupt_store_content_is_never_linked_into_a_new_template() {
    let f = fixture();
    let digest = node_modules_alloc::integrity::sha512_hex(b"exports.u = 1;\n");
    let path = f.store.file_path(&digest, false);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"evil").unwrap();
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Auto)).unwrap();
    let app = f.dir.path().join("app");
    allocator.allocate(&f.lock, &app).await.unwrap();
    assert_eq!(
        fs::read(app.join("node_modules/a/lib/util.js")).unwrap(),
        b"exports.u = 1;\n"
    );
    assert!(
        fs::read_dir(f.store.path().join("quarantine"))
            .unwrap()
            .count()
            >= 1
    );
}

#[tokio::test]
async fn gc_removes_templates_and_unreferenced_content() {
    let f = fixture();
    let orphan = f.store.put_bytes(b"orphan", false).unwrap();
    {
        let allocator = Allocator::new(f.store.clone(), config(LinkMode::Auto)).unwrap();
        allocator
            .allocate(&f.lock, f.dir.path().join("app"))
            .await
            .unwrap();
    }
    let report = f.store.gc().unwrap();
    assert_eq!(report.files_removed, 1);
    assert_eq!(report.templates_removed, 1);
    assert!(!f.store.file_path(&orphan, false).exists());
    // Apps keep working: their hardlinks hold the inodes.
    assert!(f.dir.path().join("app/node_modules/a/index.js").exists());
}

#[tokio::test]
async fn a_template_damaged_through_a_hardlink_is_rebuilt_not_cloned() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config(LinkMode::Hardlink)).unwrap();
    let app = f.dir.path().join("app");
    allocator.allocate(&f.lock, &app).await.unwrap();
    // `chmod +x` on an app file changes the shared inode: the template and the store file too.
    let victim = app.join("node_modules/a/index.js");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    let second = allocator
        .allocate(&f.lock, f.dir.path().join("app2"))
        .await
        .unwrap();
    assert_eq!(second.outcome, Outcome::Cloned);
    assert!(allocator.stats().rebuilt >= 1);
    let mode = fs::metadata(f.dir.path().join("app2/node_modules/a/index.js"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o444, "store mode restored before linking");
    assert!(
        allocator
            .verify(f.dir.path().join("app2"), false, None)
            .await
            .unwrap()
            .problems
            .is_empty()
    );
    // A third allocation clones the rebuilt template without further repairs.
    let rebuilt = allocator.stats().rebuilt;
    allocator
        .allocate(&f.lock, f.dir.path().join("app3"))
        .await
        .unwrap();
    assert_eq!(allocator.stats().rebuilt, rebuilt);
}
