//! The end-to-end drain of real Node apps (issue 18, item 5, with the
//! library controller): `local-fleet` runs 4 hosts x 10 apps and 4 empty
//! receivers; a `DrainController` over `HttpFleet` drains the 4 hosts
//! while a loopback client hits every app throughout. Asserted: the limits
//! held on the platform's own count (hosts draining at once, starts in
//! progress at once per receiver), every app kept answering (no two
//! consecutive failed rounds), and every app ends healthy on a receiver,
//! started exactly once more, with a verified `node_modules`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fleet_drain::AppState;
use fleet_drain::drain::{DrainConfig, DrainController};
use fleet_drain::fleet::DrainFleet;
use fleet_drain::http::{HttpFleet, HttpFleetConfig};
use fleet_drain::journal::MemoryJournal;

mod support;
use support::{hit, local_fleet, ports, request};

/// Per app: rounds answered, rounds failed, longest run of failed rounds.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    ok: u32,
    failed: u32,
    streak: u32,
    worst: u32,
}

/// Hits every app once per round (ports re-read from the platform each
/// round) until `stop`.
async fn client(url: String, stop: Arc<AtomicBool>) -> HashMap<String, Seen> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        for (app, port) in ports(&url).await {
            let entry = seen.entry(app).or_default();
            if hit(port).await == Some(200) {
                entry.ok += 1;
                entry.streak = 0;
            } else {
                entry.failed += 1;
                entry.streak += 1;
                entry.worst = entry.worst.max(entry.streak);
            }
        }
        tokio::task::yield_now().await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hosts_of_real_node_apps_drain_onto_four_receivers_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = local_fleet(
        dir.path(),
        &["--hosts", "4", "--receivers", "4", "--apps-per-host", "10"],
    )
    .await;
    let fleet = Arc::new(HttpFleet::from_config(&HttpFleetConfig::new(&url)).unwrap());
    let snapshot = fleet.snapshot().await.unwrap();
    assert_eq!(snapshot.total_apps(), 40);
    let targets: Vec<_> = (1..=4)
        .map(|i| fleet.host_id(&format!("old-{i}")).unwrap())
        .collect();

    let config: DrainConfig = serde_json::from_value(serde_json::json!({
        "check_interval": "500ms",
        "limits": {
            "max_draining_hosts": 2,
            "max_unavailable": 10,
            "max_starts_per_host_per_minute": 600,
            "max_concurrent_starts_per_host": 2,
            "min_free_capacity": 0
        },
        "retry": { "base": "100ms", "max": "1s" }
    }))
    .unwrap();
    let mut controller = DrainController::new(
        config,
        Arc::clone(&fleet) as Arc<dyn DrainFleet>,
        Box::new(MemoryJournal::new()),
    )
    .unwrap()
    .with_names(fleet.names());

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(client(url.clone(), Arc::clone(&stop)));
    let report = controller.run(&targets).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = traffic.await.unwrap();

    let rounds: u32 = seen.values().map(|s| s.ok + s.failed).sum();
    let failed: u32 = seen.values().map(|s| s.failed).sum();
    eprintln!(
        "drained in {:?}: {} apps moved, {} waves, peak {} starts at once per receiver; client: {rounds} hits, {failed} failed",
        report.elapsed, report.apps_migrated, report.waves, report.peak_concurrent_starts_per_host
    );
    assert_eq!(report.hosts_drained, 4, "{report:?}");
    assert_eq!(report.apps_migrated, 40, "{report:?}");
    assert_eq!(report.failed_starts, 0, "{report:?}");

    // The limits, on the platform's own count.
    let (_, platform_stats) = request(&url, "GET", "/local/stats", "").await;
    assert!(
        platform_stats["peak_draining_hosts"].as_u64().unwrap() <= 2,
        "{platform_stats}"
    );
    for i in 1..=4 {
        let peak = platform_stats["peak_concurrent_starts"][format!("new-{i}")]
            .as_u64()
            .unwrap_or(0);
        assert!(
            peak <= 2,
            "new-{i} ran {peak} starts at once: {platform_stats}"
        );
    }

    // Every app answered throughout.
    assert_eq!(seen.len(), 40);
    for (app, s) in &seen {
        assert!(s.ok > 0, "{app} never answered: {s:?}");
        assert!(
            s.worst <= 1,
            "{app} failed {} rounds in a row: {s:?}",
            s.worst
        );
    }

    // Every app healthy on a receiver, started once more, node_modules verified.
    let snapshot = fleet.snapshot().await.unwrap();
    for app in snapshot.apps() {
        let name = fleet.app_name(app.id).unwrap();
        let host = fleet.host_name(app.host).unwrap();
        assert!(host.starts_with("new-"), "{name} is on {host}");
        assert_eq!(
            fleet.app_health(app.id).await.unwrap(),
            AppState::Running,
            "{name}"
        );
        assert_eq!(
            platform_stats["starts"][&name], 2,
            "{name}: {platform_stats}"
        );
        let (status, verify) =
            request(&url, "GET", &format!("/local/apps/{name}/verify"), "").await;
        assert_eq!(status, 200);
        assert_eq!(verify["problems"], serde_json::json!([]), "{name}");
        assert!(
            dir.path()
                .join(format!(
                    "hosts/{host}/apps/{name}/node_modules/bw-greeting/index.js"
                ))
                .exists()
        );
    }

    support::terminate(&child);
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// A receiver where every start fails (a real `node` exiting with 1): the
/// gate pauses on the start failures, the receiver is excluded, and the
/// drain completes on the other three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_starts_fail_is_excluded_and_the_drain_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = local_fleet(
        dir.path(),
        &[
            "--hosts",
            "4",
            "--receivers",
            "4",
            "--apps-per-host",
            "10",
            "--fail-start",
            "*@new-1",
        ],
    )
    .await;
    let fleet = Arc::new(HttpFleet::from_config(&HttpFleetConfig::new(&url)).unwrap());
    fleet.snapshot().await.unwrap();
    let targets: Vec<_> = (1..=4)
        .map(|i| fleet.host_id(&format!("old-{i}")).unwrap())
        .collect();
    let bad = fleet.host_id("new-1").unwrap();
    let config: DrainConfig = serde_json::from_value(serde_json::json!({
        "check_interval": "500ms",
        "failure_window": "5s",
        "receiver_max_failures_per_minute": 1.0,
        "limits": {
            "max_draining_hosts": 2,
            "max_unavailable": 10,
            "max_starts_per_host_per_minute": 600,
            "max_concurrent_starts_per_host": 2,
            "min_free_capacity": 0
        },
        "gate": {
            "pause_above_failures_per_minute": 1.0,
            "resume_below_failures_per_minute": 0.5,
            "abort_above_failures_per_minute": 1000.0,
            "fire_after": 1,
            "clear_after": 1
        },
        "retry": { "base": "100ms", "max": "1s" }
    }))
    .unwrap();
    let mut controller = DrainController::new(
        config,
        Arc::clone(&fleet) as Arc<dyn DrainFleet>,
        Box::new(MemoryJournal::new()),
    )
    .unwrap()
    .with_names(fleet.names());
    let report = controller.run(&targets).await.unwrap();
    eprintln!("{report:?}");

    assert_eq!(report.hosts_drained, 4, "{report:?}");
    assert!(report.failed_starts >= 1, "{report:?}");
    assert!(report.pauses >= 1, "the gate never paused: {report:?}");
    let (_, platform_stats) = request(&url, "GET", "/local/stats", "").await;
    assert!(
        platform_stats["failed_starts"]["new-1"].as_u64().unwrap() >= 1,
        "{platform_stats}"
    );
    let snapshot = fleet.snapshot().await.unwrap();
    assert_eq!(snapshot.total_apps(), 40);
    assert!(
        snapshot.apps_on(bad).is_empty(),
        "apps left on the failing receiver"
    );
    for app in snapshot.apps() {
        let name = fleet.app_name(app.id).unwrap();
        let host = fleet.host_name(app.host).unwrap();
        assert!(host.starts_with("new-"), "{name} is on {host}");
        assert_eq!(
            fleet.app_health(app.id).await.unwrap(),
            AppState::Running,
            "{name}"
        );
    }
    support::terminate(&child);
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
