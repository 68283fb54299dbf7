//! `local-fleet` as a platform: the real binary, real `node` processes, and
//! fleet-drain's `HttpFleet` as the client (so the binary is checked
//! against the contract the adapter implements).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
// One scenario on one fleet (booting it costs seconds), step by step.
#![allow(clippy::too_many_lines, clippy::similar_names)]

use std::time::Duration;

use fleet_drain::fleet::DrainFleet;
use fleet_drain::http::{HttpFleet, HttpFleetConfig};
use fleet_drain::{AppState, FleetError, HostState};
use tokio::net::TcpStream;
use tokio::process::Command;

mod support;
use support::{app_port, local_fleet, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fleet_implements_the_contract_with_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = local_fleet(
        dir.path(),
        &[
            "--hosts",
            "2",
            "--receivers",
            "2",
            "--apps-per-host",
            "3",
            "--fail-start",
            "app-001@new-1",
        ],
    )
    .await;
    let fleet = HttpFleet::from_config(&HttpFleetConfig::new(&url)).unwrap();

    // The fleet as booted: every app running on the hosts to drain.
    let snapshot = fleet.snapshot().await.unwrap();
    assert_eq!(snapshot.hosts().len(), 4);
    assert_eq!(snapshot.total_apps(), 6);
    let old1 = fleet.host_id("old-1").unwrap();
    let new1 = fleet.host_id("new-1").unwrap();
    let new2 = fleet.host_id("new-2").unwrap();
    assert_eq!(snapshot.apps_on(old1).len(), 3);
    assert_eq!(snapshot.host(new1).unwrap().capacity, 6);
    for app in snapshot.apps() {
        assert_eq!(fleet.app_health(app.id).await.unwrap(), AppState::Running);
    }
    let [a1, a2] = ["app-001", "app-002"].map(|n| fleet.app_id(n).unwrap());
    let old_port = app_port(&url, "app-002").await;

    // A migrate: allocate on the receiver, start, health, stop the old one.
    fleet.cordon(old1).await.unwrap();
    fleet.migrate(a2, new2).await.unwrap();
    assert_eq!(fleet.app_health(a2).await.unwrap(), AppState::Running);
    let port = app_port(&url, "app-002").await;
    assert_ne!(port, old_port);
    let (status, _) = request(&format!("http://127.0.0.1:{port}"), "GET", "/", "").await;
    assert_eq!(status, 200);
    assert!(
        TcpStream::connect(("127.0.0.1", old_port)).await.is_err(),
        "old process still listens"
    );
    let node_modules = dir.path().join("hosts/new-2/apps/app-002/node_modules");
    assert!(node_modules.join("bw-greeting/index.js").exists());
    assert!(node_modules.join("bw-healthz/package.json").exists());
    let (status, verify) = request(&url, "GET", "/local/apps/app-002/verify", "").await;
    assert_eq!(status, 200);
    assert_eq!(verify["problems"], serde_json::json!([]));

    // A start made to fail: a real process exiting with 1, reported as such.
    let err = fleet.migrate(a1, new1).await.unwrap_err();
    assert!(
        matches!(&err, FleetError::StartFailed { app, host, reason }
            if *app == a1 && *host == new1 && reason.contains("exit status: 1")),
        "{err:?}"
    );
    assert_eq!(fleet.app_health(a1).await.unwrap(), AppState::Failed);
    fleet.migrate(a1, new2).await.unwrap();
    assert_eq!(fleet.app_health(a1).await.unwrap(), AppState::Running);

    // Refusals of the contract.
    assert!(matches!(
        fleet
            .migrate(fleet.app_id("app-004").unwrap(), old1)
            .await
            .unwrap_err(),
        FleetError::NotAccepting { .. }
    ));
    assert!(matches!(
        fleet
            .set_host_state(old1, HostState::Drained)
            .await
            .unwrap_err(),
        FleetError::InvalidTransition { .. }
    ));

    // A migrate sent twice with one request_id starts the app once.
    let body = r#"{"to":"new-2","request_id":"same-id-1","timeout_ms":30000}"#;
    let (first, answer1) = request(&url, "POST", "/v1/apps/app-003/migrate", body).await;
    let (second, answer2) = request(&url, "POST", "/v1/apps/app-003/migrate", body).await;
    assert_eq!((first, second), (200, 200), "{answer1} {answer2}");
    assert_eq!(answer1, answer2);
    let (conflict, _) = request(
        &url,
        "POST",
        "/v1/apps/app-003/migrate",
        r#"{"to":"new-1","request_id":"same-id-1","timeout_ms":30000}"#,
    )
    .await;
    assert_eq!(conflict, 409);
    let (_, stats) = request(&url, "GET", "/local/stats", "").await;
    assert_eq!(stats["starts"]["app-003"], 2, "{stats}"); // boot + one migrate
    assert_eq!(stats["failed_starts"]["new-1"], 1, "{stats}");

    // A start that cannot finish within the client's wait is answered as
    // failed before the wait runs out; a normal migrate then recovers it.
    let (status, answer) = request(
        &url,
        "POST",
        "/v1/apps/app-005/migrate",
        r#"{"to":"new-2","request_id":"short-wait","timeout_ms":1}"#,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "start_failed");
    let a5 = fleet.app_id("app-005").unwrap();
    assert_eq!(fleet.app_health(a5).await.unwrap(), AppState::Failed);
    fleet.migrate(a5, new2).await.unwrap();

    // old-1 is empty now: it can be drained.
    fleet
        .set_host_state(old1, HostState::Drained)
        .await
        .unwrap();

    // SIGTERM: every app process goes with the agent.
    let ports: Vec<u16> = {
        let (_, apps) = request(&url, "GET", "/v1/apps", "").await;
        apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["port"].as_u64())
            .map(|p| u16::try_from(p).unwrap())
            .collect()
    };
    assert_eq!(ports.len(), 6);
    support::terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "an app still listens on {port} after SIGTERM"
        );
    }
}

#[tokio::test]
async fn invalid_flags_exit_non_zero_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_local-fleet"))
        .args(["--hosts", "0", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--hosts"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_local-fleet"))
        .args(["--fail-start", "nohost", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("APP@HOST"));
}
