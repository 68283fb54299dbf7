//! The concurrency limit, the queue and the free-space guard hold for the whole store, not one
//! process: CLI processes started at once never run more than `max_concurrent`
//! materializations, the ones beyond the store-wide queue exit 75 with a `Retry-After`,
//! callers piling up on one app are queued or shed instead of blocking on its lock, and an
//! admitted allocation's bytes are reserved against every later admission.
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
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, FreeSpace};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::lockfile::{Lockfile, Selection};
use node_modules_alloc::manifest::Manifest;
use node_modules_alloc::store::Store;
use support::{Pkg, entry, lockfile};

const BIN: &str = env!("CARGO_BIN_EXE_node-modules-alloc");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A store holding `shared` packages of `files_each` files, plus one small package per
/// lockfile so that every lockfile has its own manifest (and template). Returns the lockfiles.
fn setup(dir: &Path, lockfiles: usize, shared: usize, files_each: usize) -> Vec<PathBuf> {
    let store = Store::open(dir.join("store")).unwrap();
    let mut common_entries = Vec::new();
    for i in 0..shared {
        let mut p = Pkg::new(&format!("shared{i}"), "1.0.0");
        for j in 0..files_each {
            p = p.file(
                &format!("lib/f{j}.js"),
                format!("// {i}/{j}\n").as_bytes(),
                0o644,
            );
        }
        store
            .import_tarball_bytes(&p.name, &p.tgz(), None, None)
            .unwrap();
        common_entries.push(entry(&format!("node_modules/{}", p.name), &p));
    }
    (0..lockfiles)
        .map(|k| {
            let own = Pkg::new(&format!("own{k}"), "1.0.0");
            store
                .import_tarball_bytes(&own.name, &own.tgz(), None, None)
                .unwrap();
            let mut entries: Vec<_> = common_entries
                .iter()
                .map(|e| entry(&e.path, &e.pkg))
                .collect();
            entries.push(entry(&format!("node_modules/{}", own.name), &own));
            let path = dir.join(format!("lock{k}.json"));
            fs::write(&path, lockfile(&entries)).unwrap();
            path
        })
        .collect()
}

fn allocate_cmd(store: &Path, lock: &Path, app: &Path, limits: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--store", s(store), "allocate", "--min-free-bytes", "0"])
        .args(["--lockfile", s(lock), "--app-dir", s(app)])
        .args(limits)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Removes ANSI escape sequences (the log formatter may color field names).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field(line: &str, name: &str) -> Option<u64> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `(start, finish)` of every materialization a process logged, in µs since the epoch.
fn materializations(stderr: &str) -> Vec<(u64, u64)> {
    let mut starts = Vec::new();
    let mut finishes = Vec::new();
    for line in stderr.lines().map(strip_ansi) {
        if line.contains("materialization started") {
            starts.push(field(&line, "at_unix_us").expect("start carries at_unix_us"));
        } else if line.contains("materialization finished") {
            finishes.push(field(&line, "at_unix_us").expect("finish carries at_unix_us"));
        }
    }
    assert_eq!(starts.len(), finishes.len(), "unbalanced events:\n{stderr}");
    starts.into_iter().zip(finishes).collect()
}

/// Highest number of intervals open at once (a finish at the same instant as a start closes
/// first: the slot was handed over).
fn max_overlap(intervals: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|&(a, b)| [(a, 1), (b, -1)])
        .collect();
    events.sort_unstable();
    let (mut open, mut peak) = (0i32, 0i32);
    for (_, delta) in events {
        open += delta;
        peak = peak.max(open);
    }
    peak as usize
}

#[test]
fn processes_started_at_once_never_exceed_max_concurrent_materializations() {
    const MAX: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    // Six distinct lockfiles of ~2,000 files each: every process builds a template and clones.
    let locks = setup(dir.path(), 3 * MAX, 40, 50);
    let store = dir.path().join("store");
    let children: Vec<Child> = locks
        .iter()
        .enumerate()
        .map(|(i, lock)| {
            allocate_cmd(
                &store,
                lock,
                &dir.path().join(format!("app{i}")),
                &["--max-concurrent", &MAX.to_string()],
            )
            .env("RUST_LOG", "node_modules_alloc=info")
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap()
        })
        .collect();
    let mut intervals = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "process {i} failed:\n{stderr}");
        let mine = materializations(&stderr);
        assert_eq!(mine.len(), 1, "process {i}: one materialization:\n{stderr}");
        intervals.extend(mine);
    }
    let peak = max_overlap(&intervals);
    eprintln!("store-wide peak of concurrent materializations: {peak} (limit {MAX})");
    assert!(
        peak <= MAX,
        "{peak} materializations ran at once across processes; the limit is {MAX}"
    );
    assert!(peak >= 1);
}

/// Holds a slot of the store-wide limit from the test process, as another allocator would.
fn hold_slot(store: &Path, index: usize) -> File {
    let slots = store.join("slots");
    fs::create_dir_all(&slots).unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(slots.join(format!("{index}.lock")))
        .unwrap();
    file.lock().unwrap();
    file
}

/// Waits until `count` children have exited (bounded); returns `(index, output)` of those.
fn wait_for_exits(children: &mut [Option<Child>], count: usize) -> Vec<(usize, Output)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exited = Vec::new();
    while exited.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} processes exited: the others block instead of being shed",
            exited.len()
        );
        for (i, slot) in children.iter_mut().enumerate() {
            if let Some(child) = slot
                && child.try_wait().unwrap().is_some()
            {
                exited.push((i, slot.take().unwrap().wait_with_output().unwrap()));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    exited
}

fn assert_shed(i: usize, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "process {i}: {stderr}");
    assert!(stderr.contains("Retry-After"), "process {i}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
}

#[test]
fn processes_beyond_the_store_wide_queue_exit_75_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let locks = setup(dir.path(), 1, 4, 5);
    let store = dir.path().join("store");
    // Another allocator holds the only execution slot: one process may queue, the rest are
    // shed at once.
    let slot = hold_slot(&store, 0);
    let mut children: Vec<Option<Child>> = (0..6)
        .map(|i| {
            Some(
                allocate_cmd(
                    &store,
                    &locks[0],
                    &dir.path().join(format!("app{i}")),
                    &["--max-concurrent", "1", "--max-queued", "1"],
                )
                .spawn()
                .unwrap(),
            )
        })
        .collect();
    for (i, out) in wait_for_exits(&mut children, 5) {
        assert_shed(i, &out);
        assert!(!dir.path().join(format!("app{i}/node_modules")).exists());
    }
    // The queued one runs once the slot is free.
    drop(slot);
    for (i, out) in wait_for_exits(&mut children, 1) {
        assert!(
            out.status.success(),
            "queued process {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn callers_piling_up_on_one_app_are_queued_or_shed_not_blocked_on_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let locks = setup(dir.path(), 1, 4, 5);
    let store = dir.path().join("store");
    let app = dir.path().join("app");
    fs::create_dir_all(&app).unwrap();
    // Something holds the app directory's lock for a long time.
    let app_lock = File::open(&app).unwrap();
    app_lock.lock().unwrap();
    let mut children: Vec<Option<Child>> = (0..5)
        .map(|_| {
            Some(
                allocate_cmd(
                    &store,
                    &locks[0],
                    &app,
                    &["--max-concurrent", "1", "--max-queued", "1"],
                )
                .spawn()
                .unwrap(),
            )
        })
        .collect();
    // One is admitted (it waits for the app lock), one is queued, three are shed.
    for (i, out) in wait_for_exits(&mut children, 3) {
        assert_shed(i, &out);
    }
    drop(app_lock);
    for (i, out) in wait_for_exits(&mut children, 2) {
        assert!(
            out.status.success(),
            "process {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(app.join("node_modules/own0/index.js").exists());
}

#[derive(Debug)]
struct Fixed(u64);

impl FreeSpace for Fixed {
    fn available_bytes(&self, _: &Path) -> std::io::Result<u64> {
        Ok(self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_allocation_reserves_its_bytes_against_later_admissions() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    // Two lockfiles of 1 MiB of content each, allocated by copy: each allocation writes about
    // 2 MiB (its template and its app tree).
    let locks: Vec<PathBuf> = (0..2)
        .map(|k| {
            let mut p = Pkg::new(&format!("big{k}"), "1.0.0");
            for j in 0..8 {
                let byte = b'a' + (k * 8 + j) as u8;
                p = p.file(&format!("blob{j}.bin"), &vec![byte; 128 << 10], 0o644);
            }
            store
                .import_tarball_bytes(&p.name, &p.tgz(), None, None)
                .unwrap();
            let path = dir.path().join(format!("lock{k}.json"));
            fs::write(
                &path,
                lockfile(&[entry(&format!("node_modules/{}", p.name), &p)]),
            )
            .unwrap();
            path
        })
        .collect();
    let config = AllocatorConfig {
        link_mode: LinkMode::Copy,
        min_free_bytes: MIB,
        ..AllocatorConfig::default()
    };
    // The disk has room for one such allocation above the threshold, not two.
    let free = MIB + 3 * MIB;
    let first = Allocator::new(store.clone(), config.clone())
        .unwrap()
        .with_free_space(Fixed(free));
    // Pause the first allocation once admitted: it waits for its template lock.
    let digest = {
        let parsed = Lockfile::from_path(&locks[0]).unwrap();
        Manifest::plan(&store, &parsed, &Selection::default())
            .unwrap()
            .digest
    };
    let held = {
        let path = store.path().join("locks").join(format!("{digest}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        file.lock().unwrap();
        file
    };
    let task = {
        let first = first.clone();
        let lock = locks[0].clone();
        let app = dir.path().join("app0");
        tokio::spawn(async move { first.allocate(&lock, &app).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.stats().materializing == 0 {
        assert!(Instant::now() < deadline, "first allocation never admitted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Another allocator on the same store (as another process would be) sees the reservation.
    let other_store = Store::open(dir.path().join("store")).unwrap();
    let second = Allocator::new(other_store, config)
        .unwrap()
        .with_free_space(Fixed(free));
    let err = second
        .allocate(&locks[1], dir.path().join("app1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InsufficientSpace { .. }),
        "the second allocation must count the first one's reservation: {err}"
    );
    assert!(!dir.path().join("app1/node_modules").exists());
    drop(held);
    task.await.unwrap().unwrap();
    // The reservation ends with the allocation.
    second
        .allocate(&locks[1], dir.path().join("app1"))
        .await
        .unwrap();
}
