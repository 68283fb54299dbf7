//! February 2019, the allocator's side: a surge of app starts on one host
//! meets `node-modules-alloc`'s bounded queue, which sheds the excess with
//! `Overloaded { retry_after }` instead of corrupting trees; callers wrap
//! `allocate` in `resilience-core`'s `RetryPolicy`, which waits at least the
//! hint before retrying. Every app must end with a complete, verified tree.
//!
//! Determinism: the allocator does real file I/O on a multi-threaded
//! runtime, but the retry policy sleeps on a `ManualClock` that the test
//! advances only when every unfinished allocation is asleep in backoff (so
//! a retry always finds the allocator idle and progress is guaranteed, with
//! no real sleeps). The clock is wrapped to signal each sleep it registers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breakwater_tests::{Package, lockfile};
use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocation, Allocator, AllocatorConfig, MARKER};
use node_modules_alloc::store::Store;
use resilience_core::backoff::BackoffConfig;
use resilience_core::clock::{Clock, ManualClock, Sleep};
use resilience_core::limit::ConcurrencyLimitConfig;
use resilience_core::retry::{ErrorClass, RetryConfig, RetryError, RetryPolicy};
use tokio::sync::Notify;
use tokio::task::JoinSet;

const APPS: usize = 60;
const LOCKFILES: usize = 3;
/// The allocator's `Overloaded::retry_after`.
const HINT: Duration = Duration::from_millis(10);

/// A `ManualClock` that signals `registered` once each sleep is waiting on
/// it (after its first pending poll), so the driver never misses a sleeper.
#[derive(Debug, Clone)]
struct SignallingClock {
    clock: ManualClock,
    registered: Arc<Notify>,
}

impl Clock for SignallingClock {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let mut sleep = self.clock.sleep_until(deadline);
        let registered = Arc::clone(&self.registered);
        let mut signalled = false;
        Box::pin(std::future::poll_fn(move |cx| {
            let poll = sleep.as_mut().poll(cx);
            if poll.is_pending() && !signalled {
                signalled = true;
                registered.notify_one();
            }
            poll
        }))
    }
}

/// Nine packages of 20 files, imported into a fresh store, and three
/// lockfiles over overlapping sets of five of them.
fn store_and_lockfiles(dir: &Path) -> (Store, Vec<PathBuf>) {
    let store = Store::open(dir.join("store")).unwrap();
    let packages: Vec<Package> = (0..9)
        .map(|i| {
            (0..20).fold(Package::new(&format!("pkg-{i}"), "1.0.0"), |p, j| {
                p.with_file(&format!("lib/f{j}.js"), format!("// {i}/{j}\n").as_bytes())
            })
        })
        .collect();
    for package in &packages {
        store
            .import_tarball_bytes(&package.name, &package.tarball().unwrap(), None, None)
            .unwrap();
    }
    let lockfiles = (0..LOCKFILES)
        .map(|k| {
            let chosen: Vec<Package> = packages.iter().skip(k * 2).take(5).cloned().collect();
            let path = dir.join(format!("lock-{k}.json"));
            std::fs::write(&path, lockfile(&chosen).unwrap()).unwrap();
            path
        })
        .collect();
    (store, lockfiles)
}

/// Only shedding is worth retrying, after the allocator's own hint.
fn classify(error: &Error) -> ErrorClass {
    match error {
        Error::Overloaded { retry_after } => ErrorClass::TransientAfter(*retry_after),
        _ => ErrorClass::Permanent,
    }
}

/// One materialization at a time, two waiting: a surge of 60 must
/// overflow. A fixed hint keeps the run independent of real hold times.
fn allocator(store: Store) -> Allocator {
    let config = AllocatorConfig {
        limit: ConcurrencyLimitConfig {
            max_concurrent: 1,
            max_queued: 2,
            queue_timeout: None,
            min_retry_after: HINT,
            max_retry_after: HINT,
        },
        min_free_bytes: 0,
        ..AllocatorConfig::default()
    };
    Allocator::new(store, config).unwrap()
}

/// Full jitter well above the hint spreads the retries; the hint only
/// floors the delay (and is never cut short: `max_retry_after` is above it).
fn retry_policy(clock: SignallingClock) -> RetryPolicy {
    let config = RetryConfig {
        max_attempts: 50,
        backoff: BackoffConfig {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
            ..BackoffConfig::default()
        },
        max_retry_after: Duration::from_secs(1),
        ..RetryConfig::default()
    };
    RetryPolicy::new(config)
        .unwrap()
        .with_clock(clock)
        .with_seed(7)
}

/// Allocates `app`'s tree under `policy`, asserting that no retry starts
/// before the hint of the shed attempt it follows has passed on `clock`.
async fn allocate_with_retry(
    policy: RetryPolicy,
    allocator: Allocator,
    clock: ManualClock,
    lock: PathBuf,
    app: PathBuf,
) -> Result<Allocation, RetryError<Error>> {
    // When this app was last shed, and the hint it got.
    let shed: Arc<Mutex<Option<(Instant, Duration)>>> = Arc::default();
    policy
        .run_classified(classify, |attempt| {
            let (allocator, clock, shed) = (allocator.clone(), clock.clone(), Arc::clone(&shed));
            let (lock, app) = (lock.clone(), app.clone());
            async move {
                if let Some((at, hint)) = shed.lock().unwrap().take() {
                    let waited = clock.now() - at;
                    assert!(
                        waited >= hint,
                        "{}: attempt {attempt} came {waited:?} after a shed hinting {hint:?}",
                        app.display()
                    );
                }
                let result = allocator.allocate(&lock, &app).await;
                if let Err(Error::Overloaded { retry_after }) = &result {
                    *shed.lock().unwrap() = Some((clock.now(), *retry_after));
                }
                result
            }
        })
        .await
}

/// Runs `surge` to completion, advancing `clock` only when every unfinished
/// task is asleep on it (then nothing else can make progress).
async fn drive<T: 'static>(
    mut surge: JoinSet<T>,
    clock: &ManualClock,
    registered: &Notify,
) -> Vec<T> {
    let mut done = Vec::new();
    while !surge.is_empty() {
        if clock.sleepers() == surge.len() {
            clock.advance_to_next_deadline();
        }
        tokio::select! {
            Some(joined) = surge.join_next() => done.push(joined.unwrap()),
            () = registered.notified() => {}
        }
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shed_surge_retried_after_its_hints_leaves_every_app_a_verified_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lockfiles) = store_and_lockfiles(dir.path());
    let allocator = allocator(store);
    let clock = ManualClock::new();
    let registered = Arc::new(Notify::new());
    let policy = retry_policy(SignallingClock {
        clock: clock.clone(),
        registered: Arc::clone(&registered),
    });

    let mut surge = JoinSet::new();
    for i in 0..APPS {
        let attempt = allocate_with_retry(
            policy.clone(),
            allocator.clone(),
            clock.clone(),
            lockfiles[i % LOCKFILES].clone(),
            dir.path().join(format!("app-{i}")),
        );
        surge.spawn(async move { (i, attempt.await) });
    }
    let mut done = drive(surge, &clock, &registered).await;

    done.sort_by_key(|(i, _)| *i);
    for (i, result) in done {
        let allocation = result.unwrap_or_else(|e| panic!("app-{i} gave up: {e}"));
        let app = dir.path().join(format!("app-{i}"));
        assert_eq!(allocation.node_modules, app.join("node_modules"));
        assert!(
            allocation.node_modules.join(MARKER).is_file(),
            "app-{i} has no marker"
        );
        assert_eq!(allocation.packages, 5, "app-{i}");
        let report = allocator.verify(&app, false, None).await.unwrap();
        assert!(report.problems.is_empty(), "app-{i}: {:?}", report.problems);
    }

    let stats = allocator.stats();
    let retries = policy.stats();
    assert!(
        stats.shed > 0,
        "a queue of 2 must overflow under a surge of {APPS}"
    );
    assert_eq!(
        retries.retries, stats.shed,
        "every shed allocation was retried"
    );
    // Each run has its own jitter stream (seeded per run): the shed apps
    // come back spread out, not as a herd that is shed again and again.
    assert!(
        stats.shed < 2 * APPS as u64,
        "{} sheds for {APPS} apps: retries came back in lockstep",
        stats.shed
    );
    assert_eq!(retries.successes, APPS as u64);
    assert_eq!(retries.attempts, APPS as u64 + stats.shed);
    assert_eq!(stats.peak_materializing, 1, "never more than the limit");
    assert_eq!(
        stats.templates_built, LOCKFILES as u64,
        "identical lockfiles materialize once"
    );
    assert_eq!(stats.clones, APPS as u64);
    assert!(
        clock.elapsed() > Duration::ZERO,
        "retries waited on the manual clock"
    );
}
