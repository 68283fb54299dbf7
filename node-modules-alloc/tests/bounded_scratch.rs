//! Nothing grows without bound while a long-lived process holds the store: `tmp/`, `staging/`
//! and `locks/` stay bounded across allocations, discarded templates and failed builds (the
//! process cleans up after itself and after dead processes), and gc removes manifests no
//! template uses once they are past their retention.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::store::{IndexEntry, Store};
use node_modules_alloc::sweep::SweepConfig;
use support::{Pkg, entry, lockfile};

const HOUR: Duration = Duration::from_secs(3600);

fn config() -> AllocatorConfig {
    AllocatorConfig {
        min_free_bytes: 0,
        // Sweep on every allocation (the default is at most once a minute).
        sweep: SweepConfig {
            interval: Duration::ZERO,
            ..SweepConfig::default()
        },
        ..AllocatorConfig::default()
    }
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn backdate(path: &Path, by: Duration) {
    File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

/// What a process killed in the middle of its work leaves behind (names as the store makes
/// them: prefix, pid, `-`, 12 alphanumerics).
fn leave_debris_of(store: &Path, pid: u32, round: usize) -> Vec<PathBuf> {
    let tmp = store.join(format!("tmp/t{pid}-rnd{round:07}ab"));
    fs::write(&tmp, b"half a file").unwrap();
    let tpl = store.join(format!("staging/tpl-{pid}-rnd{round:07}ab"));
    fs::create_dir_all(tpl.join("pkg/lib")).unwrap();
    fs::write(tpl.join("pkg/lib/x.js"), b"x").unwrap();
    let trash = store.join(format!("staging/trash-{pid}-rnd{round:07}ab"));
    fs::create_dir_all(trash.join("old")).unwrap();
    let all = vec![tmp, tpl, trash];
    for path in &all {
        backdate(path, 2 * HOUR);
    }
    all
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    locks: Vec<PathBuf>,
    broken: PathBuf,
}

/// Twelve lockfiles with distinct manifests, and one whose build fails (a package whose
/// content vanished from the store and cannot be re-imported).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let base = Pkg::new("base", "1.0.0").file("lib/util.js", b"util", 0o644);
    store
        .import_tarball_bytes("base", &base.tgz(), None, None)
        .unwrap();
    let locks = (0..12)
        .map(|k| {
            let own = Pkg::new(&format!("own{k}"), "1.0.0").file("a.js", b"a", 0o644);
            store
                .import_tarball_bytes(&own.name, &own.tgz(), None, None)
                .unwrap();
            let path = dir.path().join(format!("lock{k}.json"));
            fs::write(
                &path,
                lockfile(&[
                    entry("node_modules/base", &base),
                    entry(&format!("node_modules/{}", own.name), &own),
                ]),
            )
            .unwrap();
            path
        })
        .collect();
    let gone = Pkg::new("gone", "1.0.0").file("only-here.js", b"unique content", 0o644);
    let imported = store
        .import_tarball_bytes("gone", &gone.tgz(), None, None)
        .unwrap();
    let index = store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap();
    for e in &index.entries {
        if let IndexEntry::File { digest, .. } = e {
            let _ = fs::remove_file(store.file_path(digest, false));
        }
    }
    let broken = dir.path().join("broken.json");
    fs::write(
        &broken,
        lockfile(&[
            entry("node_modules/base", &base),
            entry("node_modules/gone", &gone),
        ]),
    )
    .unwrap();
    Fixture {
        dir,
        store,
        locks,
        broken,
    }
}

#[tokio::test]
async fn a_long_lived_process_keeps_tmp_staging_and_locks_bounded() {
    let f = fixture();
    // Another process holds the store all along, so `Store::open` never gets to clean up: the
    // long-lived process has to.
    let _other_process = Store::open(f.store.path()).unwrap();
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    let dead = dead_pid();
    let store = f.store.path();
    for (i, lock) in f.locks.iter().enumerate() {
        leave_debris_of(store, dead, i);
        let allocation = allocator
            .allocate(lock, f.dir.path().join(format!("app{i}")))
            .await
            .unwrap();
        if i % 3 == 0 {
            // The template is discarded (templates are caches); its lock file stays behind.
            fs::remove_dir_all(store.join("templates").join(&allocation.manifest_digest)).unwrap();
        }
        if i % 4 == 1 {
            let err = allocator
                .allocate(&f.broken, f.dir.path().join(format!("broken{i}")))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("corrupt"), "{err}");
        }
    }
    // One more allocation (its sweep sees the debris of the last round too).
    allocator
        .allocate(&f.locks[0], f.dir.path().join("app-last"))
        .await
        .unwrap();

    let templates = count(&store.join("templates"));
    assert!(templates >= 8, "templates: {templates}");
    assert_eq!(names(&store.join("tmp")), Vec::<String>::new(), "tmp/");
    assert_eq!(
        names(&store.join("staging")),
        Vec::<String>::new(),
        "staging/"
    );
    let locks = names(&store.join("locks"));
    assert!(
        locks.len() <= templates,
        "{} lock files for {templates} templates: {locks:?}",
        locks.len()
    );
}

#[tokio::test]
async fn scratch_of_a_live_process_is_kept_however_old() {
    let f = fixture();
    let _other_process = Store::open(f.store.path()).unwrap();
    let mut live = Command::new("sleep").arg("60").spawn().unwrap();
    let debris = leave_debris_of(f.store.path(), live.id(), 0);
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    allocator
        .allocate(&f.locks[0], f.dir.path().join("app"))
        .await
        .unwrap();
    let kept = debris.iter().filter(|p| p.exists()).count();
    live.kill().unwrap();
    live.wait().unwrap();
    // Trash is never in use once renamed away; the rest belongs to a live process.
    assert!(debris[0].exists() && debris[1].exists(), "kept {kept}");
}

#[tokio::test]
async fn gc_removes_manifests_no_template_uses_once_past_their_retention() {
    let f = fixture();
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    let old = allocator
        .allocate(&f.locks[1], f.dir.path().join("old-app"))
        .await
        .unwrap();
    let recent = allocator
        .allocate(&f.locks[2], f.dir.path().join("recent-app"))
        .await
        .unwrap();
    let manifests = f.store.path().join("manifests");
    let old_manifest = manifests.join(format!("{}.json", old.manifest_digest));
    let recent_manifest = manifests.join(format!("{}.json", recent.manifest_digest));
    // Nobody allocated or verified the old app for a year.
    backdate(&old_manifest, 365 * 24 * HOUR);
    drop(allocator);
    f.store.gc().unwrap();
    assert!(!old_manifest.exists(), "unused manifest kept forever");
    assert!(recent_manifest.exists(), "a recently used manifest is kept");
    // A recently used app still verifies from its manifest after gc.
    let allocator = Allocator::new(f.store.clone(), config()).unwrap();
    let report = allocator
        .verify(f.dir.path().join("recent-app"), false, None)
        .await
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        count(&f.store.path().join("locks")),
        0,
        "gc removes lock files"
    );
}
