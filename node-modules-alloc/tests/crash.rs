//! Crash safety: the CLI allocating is killed with SIGKILL at random (seeded) moments. Every
//! `node_modules` carrying a completion marker must be complete and byte-identical to a
//! reference; `verify` flags every other state and `verify --repair` fixes it.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Pkg, entry, lockfile, snapshot, write_tarballs};

const BIN: &str = env!("CARGO_BIN_EXE_node-modules-alloc");
const MARKER: &str = node_modules_alloc::allocator::MARKER;

fn cli(store: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--store")
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Waits for the child up to `deadline`, then SIGKILLs it. Returns whether it was killed.
fn kill_at(child: &mut std::process::Child, deadline: Instant) -> bool {
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return true;
        }
        std::thread::yield_now();
    }
}

fn verify(store: &Path, app: &Path, extra: &[&str]) -> bool {
    cli(store)
        .arg("verify")
        .arg("--app-dir")
        .arg(app)
        .args(extra)
        .status()
        .unwrap()
        .success()
}

/// Imports 40 packages (~1000 files) into a store; returns the store and two lockfiles.
fn setup(dir: &Path) -> (PathBuf, [PathBuf; 2]) {
    // ~40 packages × 25 files: enough work for kills to land mid-build.
    let pkgs: Vec<Pkg> = (0..40)
        .map(|i| {
            let mut p = Pkg::new(&format!("pkg{i}"), "1.0.0");
            for j in 0..24 {
                p = p.file(
                    &format!("lib/f{j}.js"),
                    format!("// {i}/{j}\n{}", "x".repeat(j * 10)).as_bytes(),
                    0o644,
                );
            }
            if i % 7 == 0 {
                p = p
                    .file("cli.js", b"#!/usr/bin/env node\n", 0o644)
                    .bin(&format!("cli{i}"), "cli.js");
            }
            p
        })
        .collect();
    let refs: Vec<&Pkg> = pkgs.iter().collect();
    write_tarballs(&dir.join("tarballs"), &refs);
    let store = dir.join("store");
    assert!(
        cli(&store)
            .arg("import")
            .arg(dir.join("tarballs"))
            .status()
            .unwrap()
            .success()
    );
    let entries: Vec<_> = pkgs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 5 == 4 {
                entry(
                    &format!("node_modules/pkg{}/node_modules/{}", i - 1, p.name),
                    p,
                )
            } else {
                entry(&format!("node_modules/{}", p.name), p)
            }
        })
        .collect();
    // Two lockfiles (the second drops a few packages): alternating them makes every run replace
    // the previous tree, so kills land in clones, publishes (exchange) and old-tree removal.
    let lock_a = dir.join("lock-a.json");
    let lock_b = dir.join("lock-b.json");
    fs::write(&lock_a, lockfile(&entries)).unwrap();
    let fewer: Vec<_> = entries
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 1)
        .map(|(_, e)| e)
        .collect();
    fs::write(&lock_b, lockfile(&fewer)).unwrap();
    let locks = [lock_a, lock_b];
    (store, locks)
}

fn allocate_cmd(store: &Path, app: &Path, lock: &Path) -> Command {
    let mut cmd = cli(store);
    cmd.args(["allocate", "--min-free-bytes", "0", "--lockfile"])
        .arg(lock)
        .arg("--app-dir")
        .arg(app);
    cmd
}

#[test]
fn sigkill_at_random_moments_never_publishes_a_partial_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (store, locks) = setup(dir.path());

    let allocate = |app: &Path, lock: &Path| allocate_cmd(&store, app, lock);
    // References, and the duration of one uninterrupted allocation that has to clone.
    let mut references = Vec::new();
    let mut full = Duration::from_millis(5);
    for (i, lock) in locks.iter().enumerate() {
        let reference_app = dir.path().join(format!("reference{i}"));
        fs::create_dir_all(&reference_app).unwrap();
        assert!(allocate(&reference_app, lock).status().unwrap().success());
        let timed = dir.path().join(format!("timed{i}"));
        fs::create_dir_all(&timed).unwrap();
        let started = Instant::now();
        assert!(allocate(&timed, lock).status().unwrap().success());
        full = full.max(started.elapsed());
        let snap = snapshot(&reference_app.join("node_modules"));
        assert!(snap.contains_key(MARKER));
        references.push(snap);
    }
    let is_reference = |nm: &Path| {
        let snap = snapshot(nm);
        references.contains(&snap)
    };

    let mut rng = fastrand::Rng::with_seed(0x5eed_2019);
    let apps: Vec<PathBuf> = (0..6).map(|i| dir.path().join(format!("app{i}"))).collect();
    for app in &apps {
        fs::create_dir_all(app).unwrap();
    }
    let budget = Instant::now();
    let (mut iterations, mut kills, mut published_checked, mut flagged) = (0, 0, 0, 0);
    while budget.elapsed() < Duration::from_secs(12) && iterations < 80 {
        iterations += 1;
        if iterations % 8 == 0 {
            // Drop the templates so that kills also land in template builds in the store.
            assert!(cli(&store).arg("gc").status().unwrap().success());
        }
        let app = &apps[rng.usize(..apps.len())];
        let lock = &locks[rng.usize(..locks.len())];
        let delay = full.mul_f64(rng.f64() * 1.2);
        let mut child = allocate(app, lock).spawn().unwrap();
        if kill_at(&mut child, Instant::now() + delay) {
            kills += 1;
        }
        // Invariant: a tree with a marker is complete and identical to a reference.
        let nm = app.join("node_modules");
        let marked = nm.join(MARKER).exists();
        if marked {
            assert!(
                is_reference(&nm),
                "iteration {iterations}: marked tree differs from every reference"
            );
            published_checked += 1;
        }
        let staging_left = fs::read_dir(app).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".node_modules")
        });
        let healthy = marked && !staging_left;
        // `verify` agrees with the invariant: it passes exactly on healthy trees.
        assert_eq!(
            verify(&store, app, &[]),
            healthy,
            "iteration {iterations}: verify disagrees (marked {marked}, staging {staging_left})"
        );
        if !healthy {
            flagged += 1;
            if rng.bool() {
                assert!(verify(
                    &store,
                    app,
                    &["--repair", "--lockfile", lock.to_str().unwrap()]
                ));
                assert!(is_reference(&nm));
                assert!(verify(&store, app, &[]));
            }
        }
    }
    // Finally every app is repaired to a reference.
    for app in &apps {
        if !verify(&store, app, &[]) {
            assert!(verify(
                &store,
                app,
                &["--repair", "--lockfile", locks[0].to_str().unwrap()]
            ));
        }
        if app.join("node_modules").exists() {
            assert!(is_reference(&app.join("node_modules")));
        }
    }
    eprintln!(
        "crash test: {iterations} runs, {kills} kills, {published_checked} marked trees checked, {flagged} flagged"
    );
    assert!(
        kills >= 5 && kills >= iterations / 8,
        "too few kills landed ({kills}/{iterations}); timing calibration off"
    );
    // The store itself stayed consistent.
    let store = node_modules_alloc::store::Store::open(&store).unwrap();
    assert!(store.verify().unwrap().quarantined.is_empty());
}
