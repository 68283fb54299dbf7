//! Fetching against a controllable loopback registry: retries of a download cut off
//! half-way, a registry killed mid-fetch (a clear error, nothing partial in the store),
//! `429` with `Retry-After`, bytes not matching the lockfile's integrity, the package
//! deadline, the retry budget, the per-host breaker, credentials only for their registry,
//! offline mode. Time is a manual clock (no sleeps): backoffs and `Retry-After` waits are
//! recorded on it.
#![cfg(feature = "fetch")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod fetch_support;
mod support;

use std::path::Path;
use std::time::Duration;

use fetch_support::{HorizonClock, Reply, TestServer, tarball_path};
use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::fetch::{FetchConfig, Fetcher, Registries, Secret};
use node_modules_alloc::integrity::Integrity;
use node_modules_alloc::lockfile::{Lockfile, Selection};
use node_modules_alloc::platform::Platform;
use node_modules_alloc::store::Store;
use resilience_core::breaker::BreakerConfig;
use resilience_core::budget::RetryBudgetConfig;
use resilience_core::retry::RetryConfig;
use support::{Pkg, entry, lockfile};

struct Setup {
    dir: tempfile::TempDir,
    store: Store,
    clock: HorizonClock,
    server: TestServer,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let clock = HorizonClock::default();
    let server = TestServer::start(clock.clock.clone()).await;
    Setup {
        dir,
        store,
        clock,
        server,
    }
}

impl Setup {
    fn fetcher(&self, config: FetchConfig, registries: Registries) -> Fetcher {
        Fetcher::with_clock(self.store.clone(), config, registries, self.clock.clone()).unwrap()
    }

    fn registry(&self) -> Registries {
        Registries::new().with_registry(&self.server.url()).unwrap()
    }

    /// A v3 lockfile of `pkgs`; `resolved` points at the test server when `resolved`.
    fn lock(&self, pkgs: &[&Pkg], resolved: bool) -> Lockfile {
        let entries: Vec<_> = pkgs
            .iter()
            .map(|p| {
                let mut e = entry(&format!("node_modules/{}", p.name), p);
                e.extra = if resolved {
                    serde_json::json!({ "resolved": format!("http://{}{}", self.server.addr, tarball_path(&p.name, &p.version)) })
                } else {
                    serde_json::json!({ "resolved": null })
                };
                e
            })
            .collect();
        let path = self.dir.path().join("package-lock.json");
        std::fs::write(&path, lockfile(&entries)).unwrap();
        Lockfile::from_path(&path).unwrap()
    }

    fn serve(&self, pkg: &Pkg) {
        self.server.on(
            &tarball_path(&pkg.name, &pkg.version),
            vec![Reply::Body(pkg.tgz())],
        );
    }

    async fn fetch(
        &self,
        fetcher: &Fetcher,
        lock: &Lockfile,
    ) -> node_modules_alloc::Result<node_modules_alloc::fetch::FetchReport> {
        fetcher
            .fetch_lockfile(lock, &Selection::default(), Platform::current())
            .await
    }
}

fn in_store(store: &Store, pkg: &Pkg) -> bool {
    let integrity: Integrity = pkg.integrity().parse().unwrap();
    store.read_index(&integrity).unwrap().is_some()
}

/// Nothing left behind: no package index and no content file, no scratch.
fn store_is_empty(store: &Store) {
    for sub in ["index", "files", "tmp"] {
        let dir = store.path().join(sub);
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                assert!(
                    e.file_type().unwrap().is_dir(),
                    "left in the store: {}",
                    e.path().display()
                );
                stack.push(e.path());
            }
        }
    }
}

fn pkgs() -> (Pkg, Pkg) {
    (
        Pkg::new("left", "1.0.0").file("lib/a.js", b"exports.a = 1;\n", 0o644),
        Pkg::new("@scope/right", "2.1.0")
            .bin("right", "cli.js")
            .file("cli.js", b"#!/usr/bin/env node\n", 0o755),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_fills_the_store_from_resolved_urls_and_allocates() {
    let s = setup().await;
    let (a, b) = pkgs();
    s.serve(&a);
    s.serve(&b);
    let lock = s.lock(&[&a, &b], true);
    let fetcher = s.fetcher(FetchConfig::default(), Registries::new());
    let report = s.fetch(&fetcher, &lock).await.unwrap();
    assert_eq!(
        (report.needed, report.already_present, report.fetched.len()),
        (2, 0, 2)
    );
    assert_eq!(report.bytes, (a.tgz().len() + b.tgz().len()) as u64);
    assert!(in_store(&s.store, &a) && in_store(&s.store, &b));

    // A second fetch finds everything: no request.
    let again = s.fetch(&fetcher, &lock).await.unwrap();
    assert_eq!((again.already_present, again.fetched.len()), (2, 0));
    assert_eq!(s.server.seen().len(), 2);

    // The store now allocates without a fetcher.
    let allocator = Allocator::new(
        s.store.clone(),
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap();
    let app = s.dir.path().join("app");
    allocator.allocate_lockfile(&lock, &app).await.unwrap();
    assert_eq!(
        std::fs::read(app.join("node_modules/left/lib/a.js")).unwrap(),
        b"exports.a = 1;\n"
    );
    assert!(app.join("node_modules/.bin/right").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocate_fetches_missing_packages_on_demand_from_the_registry() {
    let s = setup().await;
    let (a, b) = pkgs();
    s.serve(&a);
    s.serve(&b);
    // No resolved URLs: the configured registry is used.
    let lock = s.lock(&[&a, &b], false);
    s.store
        .import_tarball_bytes("left", &a.tgz(), None, None)
        .unwrap();
    let allocator = Allocator::new(
        s.store.clone(),
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap()
    .with_fetcher(s.fetcher(FetchConfig::default(), s.registry()));
    let app = s.dir.path().join("app");
    let allocation = allocator.allocate_lockfile(&lock, &app).await.unwrap();
    assert_eq!(allocation.packages, 2);
    // Only the missing one was requested, at the registry's tarball path.
    let seen: Vec<String> = s.server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, vec!["/@scope/right/-/right-2.1.0.tgz".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_off_half_way_is_retried() {
    let s = setup().await;
    let (a, _) = pkgs();
    let tgz = a.tgz();
    s.server.on(
        &tarball_path(&a.name, &a.version),
        vec![Reply::CutOff(tgz.clone(), tgz.len() / 2), Reply::Body(tgz)],
    );
    let lock = s.lock(&[&a], true);
    let report = s
        .fetch(&s.fetcher(FetchConfig::default(), Registries::new()), &lock)
        .await
        .unwrap();
    assert_eq!(report.fetched.len(), 1);
    assert_eq!(s.server.hits(&tarball_path(&a.name, &a.version)), 2);
    assert!(
        s.clock.clock.elapsed() > Duration::ZERO,
        "the retry waited a backoff on the clock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_dying_mid_download_gives_up_after_the_attempts_with_nothing_in_the_store() {
    let s = setup().await;
    let (a, _) = pkgs();
    let tgz = a.tgz();
    let path = tarball_path(&a.name, &a.version);
    s.server
        .on(&path, vec![Reply::CutOff(tgz.clone(), tgz.len() / 2)]);
    let lock = s.lock(&[&a], true);
    let err = s
        .fetch(&s.fetcher(FetchConfig::default(), Registries::new()), &lock)
        .await
        .unwrap_err();
    match &err {
        Error::RegistryUnreachable {
            package,
            url,
            attempts,
            why,
            ..
        } => {
            assert_eq!(package, "left@1.0.0 at node_modules/left");
            assert_eq!(url, &format!("http://{}{path}", s.server.addr));
            assert_eq!(*attempts, FetchConfig::default().retry.max_attempts);
            assert_eq!(why, "all attempts failed");
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("registry unreachable after 4 attempt(s)"),
        "{message}"
    );
    assert!(message.contains("download broke off"), "{message}");
    assert_eq!(s.server.hits(&path), 4);
    store_is_empty(&s.store);

    // Killed for good: connections are refused, the same clear error, still nothing partial.
    s.server.kill();
    let err = s
        .fetch(&s.fetcher(FetchConfig::default(), Registries::new()), &lock)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::RegistryUnreachable { attempts: 4, .. }),
        "{message}"
    );
    assert!(message.contains("connection failed"), "{message}");
    store_is_empty(&s.store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_at_least_the_retry_after() {
    let s = setup().await;
    let (a, _) = pkgs();
    let path = tarball_path(&a.name, &a.version);
    s.server.on(
        &path,
        vec![Reply::Status(429, Some(7)), Reply::Body(a.tgz())],
    );
    let lock = s.lock(&[&a], true);
    s.fetch(&s.fetcher(FetchConfig::default(), Registries::new()), &lock)
        .await
        .unwrap();
    let seen = s.server.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at.checked_sub(seen[0].at).unwrap();
    assert!(waited >= Duration::from_secs(7), "retried after {waited:?}");
    // The backoff alone (250 ms, full jitter) would not wait that long.
    assert!(waited < Duration::from_secs(8), "retried after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_not_matching_the_integrity_are_refused_naming_package_expected_and_actual() {
    let s = setup().await;
    let (a, _) = pkgs();
    let evil = Pkg::new("left", "1.0.0")
        .file("lib/a.js", b"steal();\n", 0o644)
        .tgz();
    let path = tarball_path(&a.name, &a.version);
    s.server.on(&path, vec![Reply::Body(evil.clone())]);
    let lock = s.lock(&[&a], true);
    let err = s
        .fetch(&s.fetcher(FetchConfig::default(), Registries::new()), &lock)
        .await
        .unwrap_err();
    match &err {
        Error::IntegrityMismatch {
            what,
            expected,
            actual,
        } => {
            assert!(what.contains("left@1.0.0 at node_modules/left"), "{what}");
            assert_eq!(expected, &a.integrity());
            assert_eq!(actual, &Integrity::sha512_of(&evil).to_string());
        }
        other => panic!("unexpected error: {other}"),
    }
    // Not retried: the registry serves those bytes.
    assert_eq!(s.server.hits(&path), 1);
    store_is_empty(&s.store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_names_exactly_the_missing_packages_and_touches_no_network() {
    let s = setup().await;
    let (a, b) = pkgs();
    let c = Pkg::new("third", "3.0.0");
    s.store
        .import_tarball_bytes("left", &a.tgz(), None, None)
        .unwrap();
    let lock = s.lock(&[&a, &b, &c], true);
    let offline = FetchConfig {
        offline: true,
        ..FetchConfig::default()
    };
    let err = s
        .fetch(&s.fetcher(offline.clone(), s.registry()), &lock)
        .await
        .unwrap_err();
    let Error::Offline { missing } = &err else {
        panic!("unexpected error: {err}")
    };
    let paths: Vec<&str> = missing.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["node_modules/@scope/right", "node_modules/third"]);
    assert_eq!(missing[0].integrity, b.integrity());
    assert!(
        err.to_string()
            .starts_with("offline: 2 package(s) missing from the store"),
        "{err}"
    );

    // The allocator with an offline fetcher says the same, and publishes nothing.
    let allocator = Allocator::new(
        s.store.clone(),
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap()
    .with_fetcher(s.fetcher(offline, s.registry()));
    let app = s.dir.path().join("app");
    let err = allocator.allocate_lockfile(&lock, &app).await.unwrap_err();
    assert!(
        matches!(&err, Error::Offline { missing } if missing.len() == 2),
        "{err}"
    );
    assert!(!app.join("node_modules").exists());
    assert!(s.server.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_deadline_cuts_off_a_registry_that_never_answers() {
    let s = setup().await;
    let (a, _) = pkgs();
    s.server
        .on(&tarball_path(&a.name, &a.version), vec![Reply::Silence]);
    let lock = s.lock(&[&a], true);
    let config = FetchConfig {
        package_deadline: Duration::from_secs(600),
        ..FetchConfig::default()
    };
    let fetcher = s.fetcher(config, Registries::new());
    let requests = Fetcher::requests(&lock, &Selection::default(), Platform::current());
    let notified = s.server.requests.notified();
    let task = tokio::spawn(async move { fetcher.fetch(requests).await });
    notified.await;
    // The request is in flight; the deadline (beyond the clock's auto-advance horizon) has
    // not fired. Move time to it.
    while !task.is_finished() {
        s.clock.clock.advance(Duration::from_secs(600));
        tokio::task::yield_now().await;
    }
    let err = task.await.unwrap().unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::RegistryUnreachable { attempts: 1, .. }),
        "{message}"
    );
    assert!(
        message.contains("the package deadline of 600s passed"),
        "{message}"
    );
    store_is_empty(&s.store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_retry_budget_denies_the_retry() {
    let s = setup().await;
    let (a, _) = pkgs();
    let path = tarball_path(&a.name, &a.version);
    s.server.on(&path, vec![Reply::Status(503, None)]);
    let lock = s.lock(&[&a], true);
    let config = FetchConfig {
        budget: RetryBudgetConfig {
            min_retries_per_sec: 0,
            retry_ratio: 0.0,
            ..RetryBudgetConfig::default()
        },
        ..FetchConfig::default()
    };
    let err = s
        .fetch(&s.fetcher(config, Registries::new()), &lock)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("the retry budget is exhausted"),
        "{message}"
    );
    assert!(message.contains("HTTP 503"), "{message}");
    assert_eq!(s.server.hits(&path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_breaker_opens_and_later_packages_fail_fast() {
    let s = setup().await;
    let (a, b) = pkgs();
    s.server.on(
        &tarball_path(&a.name, &a.version),
        vec![Reply::Status(503, None)],
    );
    s.serve(&b);
    let config = FetchConfig {
        retry: RetryConfig {
            max_attempts: 2,
            ..FetchConfig::default().retry
        },
        breaker: BreakerConfig {
            consecutive_failures: Some(2),
            ..FetchConfig::default().breaker
        },
        ..FetchConfig::default()
    };
    let fetcher = s.fetcher(config, Registries::new());
    let err = s.fetch(&fetcher, &s.lock(&[&a], true)).await.unwrap_err();
    assert!(
        matches!(err, Error::RegistryUnreachable { attempts: 2, .. }),
        "{err}"
    );
    // Two failures in a row opened the host's breaker: the next package is not requested.
    let err = s.fetch(&fetcher, &s.lock(&[&b], true)).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{message}");
    assert!(
        message.contains(&format!(
            "circuit breaker of http://{} is open",
            s.server.addr
        )),
        "{message}"
    );
    assert_eq!(s.server.hits(&tarball_path(&b.name, &b.version)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_goes_only_to_its_registry_and_never_into_messages() {
    let s = setup().await;
    let other = TestServer::start(s.clock.clock.clone()).await;
    let (a, b) = pkgs();
    // `left` from the server with the token, `@scope/right` from another host.
    s.serve(&a);
    other.on(
        &tarball_path(&b.name, &b.version),
        vec![Reply::Body(b.tgz())],
    );
    let registries = s
        .registry()
        .with_scope("@scope", &other.url())
        .unwrap()
        .with_token(&format!("//{}/", s.server.addr), Secret::new("s3cret"));
    let fetcher = s.fetcher(FetchConfig::default(), registries.clone());
    s.fetch(&fetcher, &s.lock(&[&a, &b], false)).await.unwrap();
    assert_eq!(
        s.server.seen()[0].authorization.as_deref(),
        Some("Bearer s3cret")
    );
    assert_eq!(other.seen()[0].authorization, None);
    assert!(!format!("{registries:?} {fetcher:?}").contains("s3cret"));

    // A refused token: an actionable error without the token.
    let c = Pkg::new("private", "1.0.0");
    s.server.on(
        &tarball_path(&c.name, &c.version),
        vec![Reply::Status(401, None)],
    );
    let err = s.fetch(&fetcher, &s.lock(&[&c], false)).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::AuthRequired { status: 401, .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "the credential configured for //{}/ was refused",
            s.server.addr
        )),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert_eq!(s.server.hits(&tarball_path(&c.name, &c.version)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_urls_of_the_lockfile_follow_the_configured_registry() {
    let s = setup().await;
    let mirror = TestServer::start(s.clock.clock.clone()).await;
    let (a, _) = pkgs();
    mirror.on(
        &tarball_path(&a.name, &a.version),
        vec![Reply::Body(a.tgz())],
    );
    // resolved names `s.server`, the registry configured is the mirror.
    let lock = s.lock(&[&a], true);
    let registries = Registries::new().with_registry(&mirror.url()).unwrap();
    s.fetch(
        &s.fetcher(FetchConfig::default(), registries.clone()),
        &lock,
    )
    .await
    .unwrap();
    assert_eq!(mirror.seen().len(), 1);
    assert!(s.server.seen().is_empty());

    // Without replace_registry_host the lockfile's URL is used as written.
    let s2 = setup().await;
    s2.serve(&a);
    let lock = s2.lock(&[&a], true);
    let config = FetchConfig {
        replace_registry_host: false,
        ..FetchConfig::default()
    };
    s2.fetch(&s2.fetcher(config, registries), &lock)
        .await
        .unwrap();
    assert_eq!(s2.server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_resolved_url_and_no_registry_is_an_actionable_error() {
    let s = setup().await;
    let (a, _) = pkgs();
    let err = s
        .fetch(
            &s.fetcher(FetchConfig::default(), Registries::new()),
            &s.lock(&[&a], false),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoRegistry { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("pass --registry URL or set registry= in .npmrc"),
        "{err}"
    );
    let _ = Path::new(".");
}

/// SIGKILL of the CLI while a tarball is half downloaded: the store has no trace of it
/// (downloads live in memory until verified; the import publishes the index last).
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_cli_mid_download_leaves_nothing_in_the_store() {
    let s = setup().await;
    let big = Pkg::new("big", "1.0.0").file("blob.bin", &vec![7u8; 4 << 20], 0o644);
    let tgz = big.tgz();
    s.server.on(
        &tarball_path(&big.name, &big.version),
        vec![Reply::Stall(tgz.clone(), tgz.len() / 2)],
    );
    let lock = s.lock(&[&big], true);
    let stalled = s.server.stalled.notified();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_node-modules-alloc"))
        .arg("--quiet")
        .arg("--store")
        .arg(s.store.path())
        .args(["fetch", "--lockfile"])
        .arg(lock.file())
        .env("NPM_CONFIG_USERCONFIG", s.dir.path().join("no-user-npmrc"))
        .spawn()
        .unwrap();
    stalled.await;
    child.kill().unwrap();
    child.wait().unwrap();
    store_is_empty(&s.store);
    // The next fetch completes it.
    s.server.on(
        &tarball_path(&big.name, &big.version),
        vec![Reply::Body(tgz)],
    );
    let report = s
        .fetch(&s.fetcher(FetchConfig::default(), Registries::new()), &lock)
        .await
        .unwrap();
    assert_eq!(report.fetched.len(), 1);
    assert!(in_store(&s.store, &big));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_failures_name_every_package() {
    let s = setup().await;
    let (a, b) = pkgs();
    // Nothing scripted: the registry answers 404 to both.
    let err = s
        .fetch(
            &s.fetcher(FetchConfig::default(), Registries::new()),
            &s.lock(&[&a, &b], true),
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::FetchFailed { failed: 2, .. }),
        "{message}"
    );
    assert!(message.starts_with("2 package(s) could not be fetched (@scope/right@2.1.0 at node_modules/@scope/right, left@1.0.0 at node_modules/left)"), "{message}");
    assert!(message.contains("answered HTTP 404"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_without_the_registry_token() {
    let s = setup().await;
    let cdn = TestServer::start(s.clock.clock.clone()).await;
    let (a, b) = pkgs();
    // `left` is sent to another host (a CDN), `@scope/right` to another path of the registry.
    s.server.on(
        &tarball_path(&a.name, &a.version),
        vec![Reply::Redirect(format!("{}blobs/left.tgz", cdn.url()))],
    );
    cdn.on("/blobs/left.tgz", vec![Reply::Body(a.tgz())]);
    s.server.on(
        &tarball_path(&b.name, &b.version),
        vec![Reply::Redirect("/blobs/right.tgz".to_owned())],
    );
    s.server.on("/blobs/right.tgz", vec![Reply::Body(b.tgz())]);
    let registries = s
        .registry()
        .with_token(&format!("//{}/", s.server.addr), Secret::new("s3cret"));
    let report = s
        .fetch(
            &s.fetcher(FetchConfig::default(), registries),
            &s.lock(&[&a, &b], false),
        )
        .await
        .unwrap();
    assert_eq!(report.fetched.len(), 2);
    assert_eq!(
        cdn.seen()[0].authorization,
        None,
        "the token never leaves its registry"
    );
    let same_host = s
        .server
        .seen()
        .into_iter()
        .find(|r| r.path == "/blobs/right.tgz")
        .unwrap();
    assert_eq!(same_host.authorization.as_deref(), Some("Bearer s3cret"));
}
