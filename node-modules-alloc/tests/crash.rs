//! Crash safety: the CLI allocating is killed with SIGKILL at random (seeded) moments. Every
//! `node_modules` carrying a completion marker must be complete and byte-identical to a
//! reference; `verify` flags every other state and `verify --repair` fixes it.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Pkg, entry, lockfile, snapshot, write_tarballs};

const BIN: &str = env!("CARGO_BIN_EXE_node-modules-alloc");
const MARKER: &str = node_modules_alloc::allocator::MARKER;

fn cli(store: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--store").arg(store).stdout(Stdio::null()).stderr(Stdio::null());
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
    cli(store).arg("verify").arg("--app-dir").arg(app).args(extra).status().unwrap().success()
}

#[test]
fn sigkill_at_random_moments_never_publishes_a_partial_tree() {
    let dir = tempfile::tempdir().unwrap();
    // ~40 packages × 25 files: enough work for kills to land mid-build.
    let pkgs: Vec<Pkg> = (0..40)
        .map(|i| {
            let mut p = Pkg::new(&format!("pkg{i}"), "1.0.0");
            for j in 0..24 {
                p = p.file(&format!("lib/f{j}.js"), format!("// {i}/{j}\n{}", "x".repeat(j * 10)).as_bytes(), 0o644);
            }
            if i % 7 == 0 {
                p = p.file("cli.js", b"#!/usr/bin/env node\n", 0o644).bin(&format!("cli{i}"), "cli.js");
            }
            p
        })
        .collect();
    let refs: Vec<&Pkg> = pkgs.iter().collect();
    write_tarballs(&dir.path().join("tarballs"), &refs);
    let store = dir.path().join("store");
    assert!(cli(&store).arg("import").arg(dir.path().join("tarballs")).status().unwrap().success());
    let entries: Vec<_> = pkgs
        .iter()
        .enumerate()
        .map(|(i, p)| if i % 5 == 4 { entry(&format!("node_modules/pkg{}/node_modules/{}", i - 1, p.name), p) } else { entry(&format!("node_modules/{}", p.name), p) })
        .collect();
    let lock = dir.path().join("package-lock.json");
    fs::write(&lock, lockfile(&entries)).unwrap();

    // Reference tree, and the duration of one uninterrupted allocation (template already built
    // for later runs; the first one builds it).
    let reference_app = dir.path().join("reference");
    fs::create_dir_all(&reference_app).unwrap();
    let allocate = |app: &Path| {
        let mut cmd = cli(&store);
        cmd.arg("allocate").arg("--lockfile").arg(&lock).arg("--app-dir").arg(app).arg("--min-free-bytes").arg("0");
        cmd
    };
    let started = Instant::now();
    assert!(allocate(&reference_app).status().unwrap().success());
    let full = started.elapsed().max(Duration::from_millis(5));
    let reference = snapshot(&reference_app.join("node_modules"));
    assert!(reference.contains_key(MARKER));

    let mut rng = fastrand::Rng::with_seed(0x5eed_2019);
    let apps: Vec<PathBuf> = (0..6).map(|i| dir.path().join(format!("app{i}"))).collect();
    for app in &apps {
        fs::create_dir_all(app).unwrap();
    }
    let budget = Instant::now();
    let (mut iterations, mut kills, mut published_checked, mut flagged) = (0, 0, 0, 0);
    while budget.elapsed() < Duration::from_secs(15) && iterations < 80 {
        iterations += 1;
        if iterations % 6 == 0 {
            // Drop the template so that kills also land in template builds in the store.
            assert!(cli(&store).arg("gc").status().unwrap().success());
        }
        let app = &apps[rng.usize(..apps.len())];
        let delay = full.mul_f64(rng.f64() * 1.3);
        let mut child = allocate(app).spawn().unwrap();
        if kill_at(&mut child, Instant::now() + delay) {
            kills += 1;
        }
        // Invariant: a tree with a marker is complete and identical to the reference.
        let nm = app.join("node_modules");
        let marked = nm.join(MARKER).exists();
        if marked {
            assert_eq!(snapshot(&nm), reference, "iteration {iterations}: marked tree differs from reference");
            published_checked += 1;
        }
        let staging_left = fs::read_dir(app).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".node_modules"));
        let healthy = marked && !staging_left;
        // `verify` agrees with the invariant: it passes exactly on healthy trees.
        assert_eq!(verify(&store, app, &[]), healthy, "iteration {iterations}: verify disagrees (marked {marked}, staging {staging_left})");
        if !healthy {
            flagged += 1;
            if rng.bool() {
                assert!(verify(&store, app, &["--repair", "--lockfile", lock.to_str().unwrap()]));
                assert_eq!(snapshot(&nm), reference);
                assert!(verify(&store, app, &[]));
            }
        }
    }
    // Finally every app is repaired to the reference.
    for app in &apps {
        if !verify(&store, app, &[]) {
            assert!(verify(&store, app, &["--repair", "--lockfile", lock.to_str().unwrap()]));
        }
        if app.join("node_modules").exists() {
            assert_eq!(snapshot(&app.join("node_modules")), reference);
        }
    }
    eprintln!("crash test: {iterations} runs, {kills} kills, {published_checked} marked trees checked, {flagged} flagged");
    assert!(kills >= iterations / 4, "too few kills landed ({kills}/{iterations}); timing calibration off");
    // The store itself stayed consistent.
    let store = node_modules_alloc::store::Store::open(&store).unwrap();
    assert!(store.verify().unwrap().quarantined.is_empty());
}
