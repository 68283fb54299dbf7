//! gc and verify never break concurrent work: a gc through a clone of the handle an allocation
//! runs on is refused while the allocation is in flight, a template is discarded only once no
//! clone reads it, and a template whose files were deleted is rebuilt instead of failing every
//! later allocation.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, MARKER, Outcome};
use node_modules_alloc::lockfile::{Lockfile, Selection};
use node_modules_alloc::manifest::Manifest;
use node_modules_alloc::store::Store;
use support::{Pkg, entry, lockfile};

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    lock: PathBuf,
    pkgs: Vec<Pkg>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let pkgs: Vec<Pkg> = (0..4)
        .map(|i| {
            Pkg::new(&format!("p{i}"), "1.0.0")
                .file("lib/a.js", format!("a{i}").as_bytes(), 0o644)
                .file("lib/b.js", format!("b{i}").as_bytes(), 0o644)
        })
        .collect();
    for p in &pkgs {
        store
            .import_tarball_bytes(&p.name, &p.tgz(), None, None)
            .unwrap();
    }
    let entries: Vec<_> = pkgs
        .iter()
        .map(|p| entry(&format!("node_modules/{}", p.name), p))
        .collect();
    let lock = dir.path().join("package-lock.json");
    fs::write(&lock, lockfile(&entries)).unwrap();
    Fixture {
        dir,
        store,
        lock,
        pkgs,
    }
}

fn config() -> AllocatorConfig {
    AllocatorConfig {
        min_free_bytes: 0,
        ..AllocatorConfig::default()
    }
}

fn digest_of(store: &Store, lock: &Path) -> String {
    let parsed = Lockfile::from_path(lock).unwrap();
    Manifest::plan(store, &parsed, &Selection::default())
        .unwrap()
        .digest
}

/// Takes the template's lock file from outside the allocator (another open file description,
/// as another process would).
fn hold_template_lock(store: &Store, digest: &str, exclusive: bool) -> File {
    let path = store.path().join("locks").join(format!("{digest}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    if exclusive {
        file.lock().unwrap();
    } else {
        file.lock_shared().unwrap();
    }
    file
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_through_a_clone_of_the_handle_is_refused_while_an_allocation_is_in_flight() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    let digest = digest_of(&f.store, &f.lock);
    let template = f.store.path().join("templates").join(&digest);
    assert!(template.join(MARKER).exists());

    // Pause the next allocation deterministically: it waits for the template lock.
    let held = hold_template_lock(&f.store, &digest, true);
    let task = {
        let allocator = allocator.clone();
        let lock = f.lock.clone();
        let app = f.dir.path().join("app2");
        tokio::spawn(async move { allocator.allocate(&lock, &app).await })
    };
    wait_until("the allocation to be in flight", || {
        allocator.stats().materializing == 1
    });

    // The gc runs on a clone of the very handle the allocation uses (same process, same fd):
    // the handle's own shared lock must not count as "nobody else".
    let gc_handle = f.store.clone();
    let gc = tokio::task::spawn_blocking(move || gc_handle.gc())
        .await
        .unwrap();
    assert!(
        matches!(gc, Err(Error::StoreBusy { .. })),
        "gc must refuse while an allocation is in flight, got {gc:?}"
    );
    assert!(template.join(MARKER).exists(), "gc removed the template");

    drop(held);
    let allocation = task.await.unwrap().unwrap();
    assert_eq!(allocation.outcome, Outcome::Cloned);
    assert!(f.dir.path().join("app2/node_modules").join(MARKER).exists());
    // Once nothing is in flight, gc runs.
    f.store.gc().unwrap();
}

/// One content digest of the fixture (the first package's `index.js`).
fn digest_store_file(f: &Fixture) -> String {
    let index = f
        .store
        .read_index(&f.pkgs[0].integrity().parse().unwrap())
        .unwrap()
        .unwrap();
    index
        .entries
        .iter()
        .find_map(|e| match e {
            node_modules_alloc::store::IndexEntry::File { path, digest, .. }
                if path == "index.js" =>
            {
                Some(digest.clone())
            }
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn a_template_whose_files_were_deleted_is_rebuilt_from_the_store() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    let digest = digest_of(&f.store, &f.lock);
    let template = f.store.path().join("templates").join(&digest);
    // Someone deletes a file of the template; its marker stays valid.
    let victim = template.join("p2/lib/a.js");
    fs::remove_file(&victim).unwrap();
    assert!(template.join(MARKER).exists());

    let second = allocator
        .allocate(&f.lock, f.dir.path().join("app2"))
        .await
        .unwrap_or_else(|e| panic!("allocation from a damaged template failed: {e}"));
    assert_ne!(second.outcome, Outcome::Reused);
    assert_eq!(
        fs::read(f.dir.path().join("app2/node_modules/p2/lib/a.js")).unwrap(),
        b"a2"
    );
    assert!(victim.exists(), "the template was rebuilt");
    assert!(template.join(MARKER).exists());
    assert!(allocator.stats().rebuilt >= 1);
    // The rebuilt template serves the next allocation without further repair.
    let rebuilt = allocator.stats().rebuilt;
    let third = allocator
        .allocate(&f.lock, f.dir.path().join("app3"))
        .await
        .unwrap();
    assert_eq!(third.outcome, Outcome::Cloned);
    assert_eq!(allocator.stats().rebuilt, rebuilt);
    assert!(
        allocator
            .verify(f.dir.path().join("app3"), false, None)
            .await
            .unwrap()
            .problems
            .is_empty()
    );
}

#[tokio::test]
async fn discarding_a_template_waits_for_a_clone_holding_its_shared_lock() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    allocator
        .allocate(&f.lock, f.dir.path().join("app1"))
        .await
        .unwrap();
    let digest = digest_of(&f.store, &f.lock);
    let template = f.store.path().join("templates").join(&digest);

    // A clone is reading the template (it holds the shared template lock).
    let reader = hold_template_lock(&f.store, &digest, false);
    // Meanwhile store content the template links is found corrupt: verify quarantines it and
    // discards the templates that use it.
    let content = f.store.file_path(&digest_store_file(&f), false);
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&content, fs::Permissions::from_mode(0o644)).unwrap();
    }
    fs::write(&content, b"tampered").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let store = f.store.clone();
    let verifier = std::thread::spawn(move || {
        let report = store.verify();
        tx.send(()).unwrap();
        report
    });
    // While the clone holds its lock, the template stays in place.
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "verify finished while a clone still read the template"
    );
    assert!(
        template.join(MARKER).exists(),
        "the template was removed under a reader"
    );
    drop(reader);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("verify must finish once the clone is done");
    let report = verifier.join().unwrap().unwrap();
    assert_eq!(report.templates_removed, 1);
    assert!(!template.exists());
}
