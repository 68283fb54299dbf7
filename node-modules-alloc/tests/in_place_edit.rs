//! An app that edits its own `node_modules` in place cannot change the next app's.
//!
//! In hardlink mode an app's file *is* the store file and the template's file: rewriting it in
//! place (same length, as patch-package or an editor does) changes every tree sharing the inode.
//! The allocator must notice before that inode is linked into another tree: store files carry
//! a fixed mtime ([`CONTENT_MTIME`]), every staged file is checked for size, mode and mtime, and
//! a mismatch re-hashes the store file (restoring its metadata when the content is intact,
//! quarantining and re-importing it when not).
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, Outcome};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::integrity::sha512_hex;
use node_modules_alloc::store::{CONTENT_MTIME, Store};
use support::{Pkg, edit_in_place, entry, lockfile, write_tarballs};

const UTIL: &[u8] = b"exports.u = 1;\n";
const EDITED: &[u8] = b"exports.u = 9;\n";

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    lock: PathBuf,
    tarballs: Vec<PathBuf>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let a = Pkg::new("a", "1.0.0").file("lib/util.js", UTIL, 0o644);
    let b = Pkg::new("b", "1.0.0").file("lib/other.js", b"exports.o = 2;\n", 0o644);
    let tarballs = write_tarballs(&dir.path().join("tarballs"), &[&a, &b]);
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import_path(dir.path().join("tarballs")).unwrap();
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[entry("node_modules/a", &a), entry("node_modules/b", &b)]),
    )
    .unwrap();
    Fixture {
        dir,
        store,
        lock,
        tarballs,
    }
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

/// The modes this filesystem supports (reflink only where FICLONE works).
fn modes(dir: &std::path::Path) -> Vec<LinkMode> {
    let mut modes = vec![LinkMode::Auto, LinkMode::Hardlink, LinkMode::Copy];
    if support::reflink_supported(dir) {
        modes.push(LinkMode::Reflink);
    }
    modes
}

fn util(app: &std::path::Path) -> PathBuf {
    app.join("node_modules/a/lib/util.js")
}

#[tokio::test]
async fn a_same_length_in_place_edit_in_one_app_does_not_reach_the_next_app() {
    let probe = tempfile::tempdir().unwrap();
    for mode in modes(probe.path()) {
        let f = fixture();
        let allocator = allocator(&f.store, mode);
        let app1 = f.dir.path().join("app1");
        allocator.allocate(&f.lock, &app1).await.unwrap();
        edit_in_place(&util(&app1), EDITED);

        let app2 = f.dir.path().join("app2");
        let second = allocator.allocate(&f.lock, &app2).await.unwrap();
        assert_eq!(second.outcome, Outcome::Cloned, "{mode}");
        assert_eq!(fs::read(util(&app2)).unwrap(), UTIL, "{mode}");
        assert!(
            f.store.verify_file(&sha512_hex(UTIL), false).unwrap(),
            "{mode}: the store holds the original content again"
        );
        assert!(
            allocator
                .verify(&app2, false, None)
                .await
                .unwrap()
                .problems
                .is_empty(),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn an_edit_that_restores_the_mode_and_sets_another_mtime_is_caught_too() {
    let probe = tempfile::tempdir().unwrap();
    for mode in modes(probe.path()) {
        let f = fixture();
        let allocator = allocator(&f.store, mode);
        let app1 = f.dir.path().join("app1");
        allocator.allocate(&f.lock, &app1).await.unwrap();
        let victim = util(&app1);
        let meta = fs::metadata(&victim).unwrap();
        edit_in_place(&victim, EDITED);
        // Cover the tracks: the original mode, and an mtime (utimensat) that is not "now".
        support::set_mtime(&victim, 1_234_567_890);
        fs::set_permissions(&victim, meta.permissions()).unwrap();

        let app2 = f.dir.path().join("app2");
        allocator.allocate(&f.lock, &app2).await.unwrap();
        assert_eq!(fs::read(util(&app2)).unwrap(), UTIL, "{mode}");
    }
}

#[tokio::test]
async fn the_editing_app_itself_gets_the_original_bytes_back_when_reallocated() {
    let f = fixture();
    let allocator = allocator(&f.store, LinkMode::Hardlink);
    let app1 = f.dir.path().join("app1");
    allocator.allocate(&f.lock, &app1).await.unwrap();
    edit_in_place(&util(&app1), EDITED);
    let again = allocator.allocate(&f.lock, &app1).await.unwrap();
    assert_ne!(
        again.outcome,
        Outcome::Reused,
        "an edited tree is not reused"
    );
    assert_eq!(fs::read(util(&app1)).unwrap(), UTIL);
}

#[tokio::test]
async fn without_the_source_tarball_the_next_allocation_fails_clearly() {
    let f = fixture();
    let allocator = allocator(&f.store, LinkMode::Hardlink);
    let app1 = f.dir.path().join("app1");
    allocator.allocate(&f.lock, &app1).await.unwrap();
    for tarball in &f.tarballs {
        fs::remove_file(tarball).unwrap();
    }
    edit_in_place(&util(&app1), EDITED);

    let app2 = f.dir.path().join("app2");
    let err = allocator.allocate(&f.lock, &app2).await.unwrap_err();
    assert!(matches!(err, Error::CorruptStore { .. }), "{err}");
    assert!(err.to_string().contains(&sha512_hex(UTIL)), "{err}");
    assert!(
        !app2.join("node_modules").exists(),
        "no tree with edited bytes is published"
    );
}

#[tokio::test]
async fn store_files_of_older_versions_with_arbitrary_mtimes_are_rehashed_once_then_fixed() {
    let f = fixture();
    // An older version published content with whatever mtime the write left.
    let age = |store: &Store| {
        for (digest, exec) in store.content_files().unwrap() {
            support::set_mtime(&store.file_path(&digest, exec), 1_700_000_000);
        }
    };
    age(&f.store);
    let allocator = allocator(&f.store, LinkMode::Hardlink);
    allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    // The template exists now; its files (the store inodes) get arbitrary mtimes again.
    age(&f.store);
    let second = allocator
        .allocate(&f.lock, f.dir.path().join("app2"))
        .await
        .unwrap();
    assert_eq!(second.outcome, Outcome::Cloned);
    for (digest, exec) in f.store.content_files().unwrap() {
        let meta = fs::metadata(f.store.file_path(&digest, exec)).unwrap();
        assert_eq!(meta.mtime(), CONTENT_MTIME, "{digest} fixed");
    }
    assert_eq!(
        fs::metadata(util(&f.dir.path().join("app2")))
            .unwrap()
            .mtime(),
        CONTENT_MTIME
    );
    // Fixed once: a third allocation finds nothing to repair.
    let rebuilt = allocator.stats().rebuilt;
    allocator
        .allocate(&f.lock, f.dir.path().join("app3"))
        .await
        .unwrap();
    assert_eq!(allocator.stats().rebuilt, rebuilt);
    assert!(
        fs::read_dir(f.store.path().join("quarantine"))
            .unwrap()
            .next()
            .is_none(),
        "intact content is never quarantined"
    );
}
