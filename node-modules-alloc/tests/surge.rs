//! Surge: 200 concurrent allocations of a mix of lockfiles on one store finish with zero
//! incomplete trees, and materializations never exceed the limit; beyond the queue, load is
//! shed with `Overloaded { retry_after }`.
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

use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, MARKER};
use node_modules_alloc::store::Store;
use resilience_core::limit::ConcurrencyLimitConfig;
use support::{Pkg, entry, lockfile, snapshot};

fn setup(dir: &std::path::Path) -> (Store, Vec<PathBuf>) {
    let store = Store::open(dir.join("store")).unwrap();
    let pkgs: Vec<Pkg> = (0..12)
        .map(|i| {
            let mut p = Pkg::new(&format!("p{i}"), "1.0.0");
            for j in 0..10 {
                p = p.file(&format!("f{j}.js"), format!("{i}-{j}").as_bytes(), 0o644);
            }
            p
        })
        .collect();
    for p in &pkgs {
        store
            .import_tarball_bytes(&p.name, &p.tgz(), None, None)
            .unwrap();
    }
    // Three different lockfiles over overlapping package sets.
    let locks = (0..3)
        .map(|k| {
            let chosen: Vec<_> = pkgs
                .iter()
                .skip(k * 3)
                .take(6)
                .map(|p| entry(&format!("node_modules/{}", p.name), p))
                .collect();
            let path = dir.join(format!("lock{k}.json"));
            fs::write(&path, lockfile(&chosen)).unwrap();
            path
        })
        .collect();
    (store, locks)
}

fn config(max_concurrent: usize, max_queued: usize) -> AllocatorConfig {
    AllocatorConfig {
        limit: ConcurrencyLimitConfig {
            max_concurrent,
            max_queued,
            queue_timeout: None,
            ..ConcurrencyLimitConfig::default()
        },
        min_free_bytes: 0,
        ..AllocatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_allocations_complete_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, locks) = setup(dir.path());
    let allocator = Allocator::new(store, config(4, 256)).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let allocator = allocator.clone();
        let lock = locks[i % 3].clone();
        let app = dir.path().join(format!("app{i}"));
        tasks.push(tokio::spawn(async move {
            (i, allocator.allocate(&lock, &app).await)
        }));
    }
    for task in tasks {
        let (i, result) = task.await.unwrap();
        result.unwrap_or_else(|e| panic!("allocation {i} failed: {e}"));
    }
    let stats = allocator.stats();
    assert!(
        stats.peak_materializing <= 4,
        "peak {} > limit",
        stats.peak_materializing
    );
    assert!(stats.peak_materializing >= 1);
    assert_eq!(stats.materializing, 0);
    assert_eq!(
        stats.templates_built, 3,
        "identical lockfiles materialize once"
    );
    assert_eq!(stats.clones, 200);
    let references: Vec<_> = (0..3)
        .map(|k| snapshot(&dir.path().join(format!("app{k}/node_modules"))))
        .collect();
    for i in 0..200 {
        let nm = dir.path().join(format!("app{i}/node_modules"));
        assert!(nm.join(MARKER).exists(), "app{i} incomplete");
        assert_eq!(snapshot(&nm), references[i % 3], "app{i} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overflow_beyond_the_queue_is_shed_with_retry_after_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, locks) = setup(dir.path());
    let allocator = Allocator::new(store, config(1, 2)).unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let allocator = allocator.clone();
        let lock = locks[i % 3].clone();
        let app = dir.path().join(format!("app{i}"));
        tasks.push(tokio::spawn(async move {
            (i, allocator.allocate(&lock, &app).await)
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for task in tasks {
        let (i, result) = task.await.unwrap();
        let nm = dir.path().join(format!("app{i}/node_modules"));
        match result {
            Ok(_) => {
                ok += 1;
                assert!(nm.join(MARKER).exists());
            }
            Err(Error::Overloaded { retry_after }) => {
                shed += 1;
                assert!(retry_after > std::time::Duration::ZERO);
                assert!(!nm.exists(), "a shed allocation publishes nothing");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(shed > 0, "the surge must overflow a queue of 2");
    assert!(ok >= 3);
    assert_eq!(allocator.stats().shed, shed);
    assert!(allocator.stats().peak_materializing <= 1);
}
