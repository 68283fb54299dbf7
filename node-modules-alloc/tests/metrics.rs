//! The allocator's metrics (feature `metrics`) are exactly the node-modules-alloc table of
//! `docs/metrics.md`, every one of them is recorded by some decision, and every series
//! carries the allocator's name.
//!
//! Records through a `DebuggingRecorder` made current with `metrics::with_local_recorder`
//! (thread-local: no global recorder) while the allocators are built — they register their
//! handles then, and the handles record from any thread afterwards. Deterministic: the one
//! concurrent situation (a repair holding the only slot while others are shed) is set up with
//! a free-space probe that blocks until the test releases it; no sleeps.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, FreeSpace, MARKER, Outcome};
use node_modules_alloc::store::Store;
use resilience_core::Named;
use support::{Pkg, entry, lockfile, write_tarballs};

/// `(name, type)` of every row of the node-modules-alloc table in docs/metrics.md.
fn documented() -> BTreeMap<String, String> {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md"))
        .unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("node-modules-alloc"))
        .expect("a node-modules-alloc section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (name, kind) = (cells[1].trim_matches('`'), cells[2]);
        if name == "name" || name.starts_with("---") {
            continue;
        }
        assert!(
            rows.insert(name.to_owned(), kind.to_owned()).is_none(),
            "{name} twice"
        );
    }
    assert!(!rows.is_empty(), "no table rows found");
    rows
}

/// Everything the recorder saw, accumulated over snapshots (a snapshot resets values).
#[derive(Default)]
struct Seen {
    /// name → type.
    kinds: BTreeMap<String, &'static str>,
    /// (name, sorted labels) → sum of counter increments, histogram samples, or largest gauge.
    values: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Seen {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let (kind, amount) = match value {
                DebugValue::Counter(n) => ("counter", n as f64),
                DebugValue::Gauge(g) => ("gauge", g.into_inner()),
                DebugValue::Histogram(samples) => ("histogram", samples.len() as f64),
            };
            self.kinds.insert(key.name().to_owned(), kind);
            let slot = self
                .values
                .entry((key.name().to_owned(), labels))
                .or_default();
            *slot = if kind == "gauge" {
                slot.max(amount)
            } else {
                *slot + amount
            };
        }
    }

    /// The accumulated value of the series `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.values
            .get(&(name.to_owned(), labels.clone()))
            .copied()
            .unwrap_or_else(|| panic!("no series {name} {labels:?}"))
    }

    /// Sum over every series of `name`.
    fn total(&self, name: &str) -> f64 {
        self.values
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

/// A free-space probe with plenty of room that, once armed, blocks its next call until
/// released (announcing that it blocks).
#[derive(Debug, Default)]
struct Gate {
    armed: AtomicBool,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

#[derive(Debug)]
struct GateProbe(Arc<Gate>);

impl FreeSpace for GateProbe {
    fn available_bytes(&self, _: &Path) -> std::io::Result<u64> {
        if self.0.armed.swap(false, Ordering::SeqCst) {
            if let Some(entered) = self.0.entered.lock().unwrap().take() {
                entered.send(()).unwrap();
            }
            let release = self.0.release.lock().unwrap().take();
            if let Some(release) = release {
                release.recv().unwrap();
            }
        }
        Ok(1 << 50)
    }
}

#[derive(Debug)]
struct FullDisk;

impl FreeSpace for FullDisk {
    fn available_bytes(&self, _: &Path) -> std::io::Result<u64> {
        Ok(0)
    }
}

fn config() -> AllocatorConfig {
    let mut config = AllocatorConfig {
        min_free_bytes: 1,
        ..AllocatorConfig::default()
    };
    // One materialization at a time, nobody waits: the overflow is shed at once.
    config.limit.max_concurrent = 1;
    config.limit.max_queued = 0;
    config.limit.queue_timeout = Some(Duration::from_secs(60));
    config
}

/// Makes a directory and its files writable again (trees are laid out read-only).
fn writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
fn every_documented_metric_is_recorded_with_the_instance_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let pkg_a = Pkg::new("a", "1.0.0").file("lib/x.js", b"x\n", 0o644);
    let pkg_b = Pkg::new("b", "2.0.0");
    let absent = Pkg::new("absent", "0.0.1");
    write_tarballs(&dir.path().join("t"), &[&pkg_a, &pkg_b]);
    store.import_path(dir.path().join("t")).unwrap();
    let lock = |file: &str, pkg: &Pkg| -> PathBuf {
        let path = dir.path().join(file);
        let name = format!("node_modules/{}", pkg.name);
        fs::write(&path, lockfile(&[entry(&name, pkg)])).unwrap();
        path
    };
    let (lock_a, lock_b, lock_absent) = (
        lock("a.json", &pkg_a),
        lock("b.json", &pkg_b),
        lock("absent.json", &absent),
    );
    let app = |n: &str| dir.path().join("apps").join(n);

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let gate = Arc::new(Gate::default());
    let (alloc_x, alloc_y, alloc_z, alloc_w) = metrics::with_local_recorder(&recorder, || {
        let named = |name: &str, config| {
            Allocator::from_named(store.clone(), Named::new(name, config)).unwrap()
        };
        (
            named("x", config()).with_free_space(GateProbe(Arc::clone(&gate))),
            named("y", config()),
            named("z", config()).with_free_space(FullDisk),
            // One place in the store-wide queue: w waits instead of being shed.
            named(
                "w",
                AllocatorConfig {
                    limit: resilience_core::limit::ConcurrencyLimitConfig {
                        max_queued: 1,
                        ..config().limit
                    },
                    ..config()
                },
            ),
        )
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seen = Seen::default();

    // materialized, cloned, reused; a damaged app tree rebuilt; a damaged template rebuilt.
    let first = rt.block_on(alloc_x.allocate(&lock_a, app("1"))).unwrap();
    assert_eq!(first.outcome, Outcome::Materialized);
    let cloned = rt.block_on(alloc_x.allocate(&lock_a, app("2"))).unwrap();
    assert_eq!(cloned.outcome, Outcome::Cloned);
    let reused = rt.block_on(alloc_x.allocate(&lock_a, app("1"))).unwrap();
    assert_eq!(reused.outcome, Outcome::Reused);
    let damaged = app("1").join("node_modules/a");
    writable(&damaged);
    fs::remove_file(damaged.join("index.js")).unwrap();
    rt.block_on(alloc_x.allocate(&lock_a, app("1"))).unwrap();
    let template = dir
        .path()
        .join("store/templates")
        .join(&first.manifest_digest);
    writable(&template);
    fs::remove_file(template.join(MARKER)).unwrap();
    let rebuilt = rt.block_on(alloc_x.allocate(&lock_a, app("3"))).unwrap();
    assert_eq!(rebuilt.outcome, Outcome::Materialized);
    // error (a package missing from the store), insufficient_space.
    assert!(matches!(
        rt.block_on(alloc_x.allocate(&lock_absent, app("4"))),
        Err(Error::MissingPackages { .. })
    ));
    assert!(matches!(
        rt.block_on(alloc_z.allocate(&lock_a, app("5"))),
        Err(Error::InsufficientSpace { .. })
    ));

    // verify: ok, problems, error.
    assert!(
        rt.block_on(alloc_x.verify(app("2"), false, None))
            .unwrap()
            .is_ok()
    );
    let damaged = app("2").join("node_modules/a");
    writable(&damaged);
    fs::remove_file(damaged.join("index.js")).unwrap();
    assert!(
        !rt.block_on(alloc_x.verify(app("2"), false, None))
            .unwrap()
            .is_ok()
    );
    assert!(
        rt.block_on(alloc_x.verify(app("nope"), false, None))
            .is_err()
    );

    // A repair holds x's only permit and the store's only slot, blocked in its space check.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *gate.entered.lock().unwrap() = Some(entered_tx);
    *gate.release.lock().unwrap() = Some(release_rx);
    gate.armed.store(true, Ordering::SeqCst);
    let repair = rt.spawn({
        let alloc_x = alloc_x.clone();
        let app = app("2");
        async move { alloc_x.verify(app, true, None).await }
    });
    entered_rx.recv().unwrap();
    seen.take(&snapshotter); // in_flight{name="x"} is 1 now
    // x's own queue is full (in-process), y finds the store-wide slots and queue full.
    assert!(matches!(
        rt.block_on(alloc_x.allocate(&lock_b, app("6"))),
        Err(Error::Overloaded { .. })
    ));
    assert!(matches!(
        rt.block_on(alloc_y.allocate(&lock_b, app("7"))),
        Err(Error::Overloaded { .. })
    ));
    // w takes the store-wide queue's one place and waits for the slot.
    let queue = dir.path().join("store/queue");
    let waiting = rt.spawn({
        let alloc_w = alloc_w.clone();
        let (lock_b, app) = (lock_b.clone(), app("8"));
        async move { alloc_w.allocate(lock_b, app).await }
    });
    let since = std::time::Instant::now();
    while fs::read_dir(&queue).map_or(0, Iterator::count) == 0 {
        assert!(since.elapsed() < Duration::from_secs(120), "w never queued");
        std::thread::yield_now();
    }
    seen.take(&snapshotter); // queued{name="w"} is 1 now
    release_tx.send(()).unwrap();
    let report = rt.block_on(repair).unwrap().unwrap();
    assert!(report.repaired, "{report:?}");
    let queued = rt.block_on(waiting).unwrap().unwrap();
    assert_eq!(queued.outcome, Outcome::Materialized);
    seen.take(&snapshotter);

    // The names seen are exactly the table's, with the documented types.
    let table = documented();
    // The allocator's own series; its store-wide `ConcurrencyLimit` also records
    // (`breakwater_limit_*`, resilience-core's table) when resilience-core's `metrics` feature
    // is on, under the allocator's name.
    let own = |n: &str| n.starts_with("breakwater_allocator_");
    let kinds: BTreeMap<String, String> = seen
        .kinds
        .iter()
        .filter(|(k, _)| own(k))
        .map(|(k, v)| (k.clone(), (*v).to_owned()))
        .collect();
    assert_eq!(
        kinds, table,
        "metric names/types recorded != docs/metrics.md table"
    );

    // Every series is labelled with its allocator's name.
    for (name, labels) in seen.values.keys().filter(|(n, _)| own(n)) {
        let label = labels.iter().find(|(k, _)| k == "name");
        assert!(
            matches!(label, Some((_, v)) if ["x", "y", "z", "w"].contains(&v.as_str())),
            "{name} {labels:?} lacks the instance name"
        );
    }

    // Every decision was recorded.
    let alloc = "breakwater_allocator_allocations_total";
    for (name, outcome) in [
        ("x", "materialized"),
        ("x", "cloned"),
        ("x", "reused"),
        ("x", "error"),
        ("x", "overloaded"),
        ("y", "overloaded"),
        ("z", "insufficient_space"),
    ] {
        let count = seen.get(alloc, &[("name", name), ("outcome", outcome)]);
        assert!(count >= 1.0, "{name} {outcome}: {count}");
    }
    for (name, reason) in [("x", "queue"), ("y", "store_queue"), ("z", "disk_space")] {
        let count = seen.get(
            "breakwater_allocator_shed_total",
            &[("name", name), ("reason", reason)],
        );
        assert!(count >= 1.0, "shed {name} {reason}");
    }
    for outcome in ["ok", "problems", "repaired", "error"] {
        let count = seen.get(
            "breakwater_allocator_verifications_total",
            &[("name", "x"), ("outcome", outcome)],
        );
        assert!(count >= 1.0, "verify {outcome}");
    }
    for tree in ["app", "template"] {
        let count = seen.get(
            "breakwater_allocator_rebuilds_total",
            &[("name", "x"), ("tree", tree)],
        );
        assert!(count >= 1.0, "rebuilt {tree}");
    }
    assert!(seen.get("breakwater_allocator_in_flight", &[("name", "x")]) >= 1.0);
    assert!(seen.get("breakwater_allocator_queued", &[("name", "w")]) >= 1.0);
    assert_eq!(
        seen.get(
            "breakwater_allocator_template_builds_total",
            &[("name", "x")]
        ),
        2.0,
        "first build and rebuild"
    );
    // Every counter and histogram moved (the gauges were seen above).
    for (name, kind) in &table {
        if kind != "gauge" {
            assert!(seen.total(name) > 0.0, "{name} never recorded");
        }
    }
    let linked_files: f64 = ["hardlink", "reflink", "copy"]
        .iter()
        .map(|m| {
            seen.get(
                "breakwater_allocator_linked_files_total",
                &[("name", "x"), ("method", m)],
            )
        })
        .sum();
    // Apps 1 (twice), 2, 3 and the repair of 2: 3 files each.
    assert_eq!(linked_files, 15.0);
    assert!(seen.get("breakwater_allocator_linked_bytes_total", &[("name", "x")]) > 0.0);
}
