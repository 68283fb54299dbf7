//! Issue 18, item 5, with the `fleet-drain` command: `local-fleet` runs 4
//! hosts x 10 real Node apps and 4 empty receivers; `fleet-drain run` with
//! an `[adapter] kind = "http"` drains them while a loopback client hits
//! every app. The command is killed (SIGKILL) after the first host is drained and
//! run again: it resumes from the journal. Asserted: the limits held on the
//! platform's count, every app kept answering, and every app ends healthy on
//! a receiver with a verified `node_modules`, started exactly once by the
//! drain (no app lost, none started twice). A second test drains with one
//! receiver whose every start fails: the gate pauses, the receiver is
//! excluded, the drain completes.
//!
//! The `fleet-drain` binary belongs to another package: the test builds it
//! (`cargo build -p fleet-drain --features cli,http --bin fleet-drain`, a
//! no-op when up to date) into the same target directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

mod support;
use support::{hit, local_fleet, ports, request};

/// The `fleet-drain` binary, built with the CLI and the HTTP adapter.
fn fleet_drain_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/fleet-drain
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args([
            "build",
            "-p",
            "fleet-drain",
            "--features",
            "cli,http",
            "--bin",
            "fleet-drain",
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build.status().unwrap();
    assert!(status.success(), "building fleet-drain failed");
    let bin = profile_dir.join("fleet-drain");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

struct Run {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Run {
    fn start(bin: &Path, config: &Path) -> Run {
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Run {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one matches; panics with the output if the run
    /// ends first.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        while let Some(line) = self.lines.next_line().await.unwrap() {
            let hit = pred(&line);
            self.seen.push(line);
            if hit {
                return;
            }
        }
        panic!("the run ended before {what}:\n{}", self.seen.join("\n"));
    }

    /// Reads to the end; returns the exit code and the whole output.
    async fn finish(mut self) -> (Option<i32>, String) {
        while let Some(line) = self.lines.next_line().await.unwrap() {
            self.seen.push(line);
        }
        let status = self.child.wait().await.unwrap();
        (status.code(), self.seen.join("\n"))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    ok: u32,
    streak: u32,
    worst: u32,
}

async fn client(url: String, stop: Arc<AtomicBool>) -> HashMap<String, Seen> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        for (app, port) in ports(&url).await {
            let entry = seen.entry(app).or_default();
            if hit(port).await == Some(200) {
                entry.ok += 1;
                entry.streak = 0;
            } else {
                entry.streak += 1;
                entry.worst = entry.worst.max(entry.streak);
            }
        }
        tokio::task::yield_now().await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_drain_run_drains_real_node_apps_and_resumes_after_sigkill() {
    let bin = fleet_drain_bin();
    let dir = tempfile::tempdir().unwrap();
    let (agent, url) = local_fleet(
        &dir.path().join("fleet"),
        &["--hosts", "4", "--receivers", "4", "--apps-per-host", "10"],
    )
    .await;
    let config = dir.path().join("drain.toml");
    // The documented example file, pointed at this agent and this directory.
    let template = include_str!("../../fleet-drain/examples/fleet-drain-local.toml");
    assert!(template.contains(r#"url = "http://127.0.0.1:7070""#));
    std::fs::write(
        &config,
        template.replace(
            r#"url = "http://127.0.0.1:7070""#,
            &format!(r#"url = "{url}""#),
        ),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(client(url.clone(), Arc::clone(&stop)));

    // First run: SIGKILL once the first host is drained.
    let mut first = Run::start(&bin, &config);
    first
        .wait_for("the first drained host", |l| l.starts_with("drained old-"))
        .await;
    first.child.kill().await.unwrap(); // SIGKILL
    let first_output = first.seen.join("\n");

    // Second run: resumes from the journal and finishes.
    let (code, output) = Run::start(&bin, &config).finish().await;
    stop.store(true, Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    assert_eq!(
        code,
        Some(0),
        "first run:\n{first_output}\nsecond run:\n{output}"
    );
    assert!(output.contains("(resumed from the journal)"), "{output}");
    let drained_first: Vec<&str> = first_output
        .lines()
        .filter(|l| l.starts_with("drained "))
        .collect();
    for line in &drained_first {
        let host = line.split_whitespace().nth(1).unwrap();
        assert!(
            !output
                .lines()
                .any(|l| l.starts_with(&format!("drained {host}"))),
            "{host} drained twice:\n{output}"
        );
    }

    // Limits, on the platform's own count, across both runs.
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
            "new-{i}: {peak} starts at once: {platform_stats}"
        );
    }

    // Every app kept answering.
    assert_eq!(seen.len(), 40);
    for (app, s) in &seen {
        assert!(s.ok > 0, "{app} never answered");
        assert!(s.worst <= 1, "{app} failed {} rounds in a row", s.worst);
    }

    // Every app on a receiver, healthy, started once by the drain (boot +
    // one move), node_modules verified.
    let (_, apps) = request(&url, "GET", "/v1/apps", "").await;
    let apps = apps["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 40);
    for app in apps {
        let name = app["name"].as_str().unwrap();
        let host = app["host"].as_str().unwrap();
        assert!(host.starts_with("new-"), "{name} is on {host}");
        let (_, health) = request(&url, "GET", &format!("/v1/apps/{name}"), "").await;
        assert_eq!(health["state"], "running", "{name}: {health}");
        assert_eq!(
            platform_stats["starts"][name], 2,
            "{name} started {} times: {platform_stats}",
            platform_stats["starts"][name]
        );
        let (_, verify) = request(&url, "GET", &format!("/local/apps/{name}/verify"), "").await;
        assert_eq!(verify["problems"], serde_json::json!([]), "{name}");
    }
    let (_, hosts) = request(&url, "GET", "/v1/hosts", "").await;
    for host in hosts["hosts"].as_array().unwrap() {
        if host["name"].as_str().unwrap().starts_with("old-") {
            assert_eq!(host["state"], "drained", "{host}");
        }
    }

    support::terminate(&agent);
    let mut agent = agent;
    let status = tokio::time::timeout(Duration::from_secs(30), agent.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// The third scenario of item 5 through the command: every start on
/// `new-1` fails (a real `node` exiting with 1). `fleet-drain run` reports
/// the failures and the gate's pause, excludes the receiver, and finishes:
/// every app healthy on the other three, `new-1` empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_drain_run_excludes_a_receiver_whose_starts_fail() {
    let bin = fleet_drain_bin();
    let dir = tempfile::tempdir().unwrap();
    let (agent, url) = local_fleet(
        &dir.path().join("fleet"),
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
    let config = dir.path().join("drain.toml");
    std::fs::write(
        &config,
        format!(
            r#"targets = ["old-1", "old-2", "old-3", "old-4"]
check_interval = "500ms"
failure_window = "5s"
receiver_max_failures_per_minute = 1.0
deadline = "10m"

[limits]
max_draining_hosts = 2
max_unavailable = 10
max_starts_per_host_per_minute = 600
max_concurrent_starts_per_host = 2
min_free_capacity = 0

[gate]
pause_above_failures_per_minute = 1.0
resume_below_failures_per_minute = 0.5
abort_above_failures_per_minute = 1000.0
fire_after = 1
clear_after = 1

[retry]
base = "100ms"
max = "1s"

[adapter]
kind = "http"
url = "{url}"

[journal]
file = "drain.journal"
"#
        ),
    )
    .unwrap();

    let (code, output) = Run::start(&bin, &config).finish().await;
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("start failed: ") && l.contains(" on new-1: ")),
        "{output}"
    );
    assert!(
        output.lines().any(|l| l.starts_with("gate: paused")),
        "the gate never paused:\n{output}"
    );
    let (_, platform_stats) = request(&url, "GET", "/local/stats", "").await;
    assert!(
        platform_stats["failed_starts"]["new-1"].as_u64().unwrap() >= 1,
        "{platform_stats}"
    );
    let (_, apps) = request(&url, "GET", "/v1/apps", "").await;
    let apps = apps["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 40);
    for app in apps {
        let name = app["name"].as_str().unwrap();
        let host = app["host"].as_str().unwrap();
        assert!(
            host.starts_with("new-") && host != "new-1",
            "{name} is on {host}:\n{output}"
        );
        let (_, health) = request(&url, "GET", &format!("/v1/apps/{name}"), "").await;
        assert_eq!(health["state"], "running", "{name}: {health}");
        let (_, verify) = request(&url, "GET", &format!("/local/apps/{name}/verify"), "").await;
        assert_eq!(verify["problems"], serde_json::json!([]), "{name}");
    }

    support::terminate(&agent);
    let mut agent = agent;
    let status = tokio::time::timeout(Duration::from_secs(30), agent.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
