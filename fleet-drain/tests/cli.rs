//! The `fleet-drain` command end to end on its simulated adapter (real
//! processes, real time, a state file for the platform): plan, run,
//! status, pause/resume/abort through the control socket, and a SIGKILL
//! mid-run resumed from the journal. Synchronisation is on the command's
//! own output lines and the journal, each wait bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use fleet_drain::journal::{DrainProgress, FileJournal};

const BIN: &str = env!("CARGO_BIN_EXE_fleet-drain");
/// Bound of every wait (the resume after a crash waits one 60 s start
/// window by design).
const BOUND: Duration = Duration::from_secs(150);

struct World {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    journal: PathBuf,
}

fn world(start_duration: &str, apps_per_host: u32) -> World {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drain.toml");
    std::fs::write(
        &config,
        format!(
            r#"
targets = ["old-0", "old-1", "old-2", "old-3"]
check_interval = "50ms"

[limits]
max_draining_hosts = 2
max_unavailable = 10
max_starts_per_host_per_minute = 600
max_concurrent_starts_per_host = 2
min_free_capacity = 0

[adapter]
kind = "sim"
state = "fleet.json"
old_hosts = 4
apps_per_host = {apps_per_host}
new_hosts = 4
new_capacity = 20
start_duration = "{start_duration}"

[journal]
file = "drain.journal"

[control]
progress_interval = "50ms"

[metrics]
listen = "127.0.0.1:0"
"#
        ),
    )
    .unwrap();
    World {
        state: dir.path().join("fleet.json"),
        journal: dir.path().join("drain.journal"),
        config,
        _dir: dir,
    }
}

fn command(w: &World, sub: &str) -> Output {
    Command::new(BIN)
        .args([sub, "--config"])
        .arg(&w.config)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A running `fleet-drain run` whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

fn spawn_run(w: &World) -> Running {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&w.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, lines) = channel();
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx_err.send(format!("stderr: {line}")).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Running {
    /// Waits (bounded) for a line matching `pred`; returns it.
    fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line {what} within {BOUND:?}; saw:\n{}",
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the run ended before {what}; saw:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Waits (bounded) for the process to exit; its code and the rest of
    /// its output.
    fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not exit within {BOUND:?}"
            );
            // Wake on output, else re-check the exit status shortly.
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line);
            }
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"))
    }
}

/// The simulated platform's saved state.
fn platform(w: &World) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&w.state).unwrap()).unwrap()
}

/// Every old host drained exactly once, every app running on a new host.
fn assert_drained_once(w: &World, apps: usize) {
    let state = platform(w);
    let hosts = state["hosts"].as_array().unwrap();
    for host in hosts {
        let name = host["name"].as_str().unwrap();
        if name.starts_with("old-") {
            assert_eq!(host["state"], "drained", "{state}");
            assert_eq!(host["drains"], 1, "{name} drained more than once: {state}");
        } else {
            assert_eq!(host["drains"], 0, "{state}");
        }
    }
    let list = state["apps"].as_array().unwrap();
    assert_eq!(list.len(), apps);
    for app in list {
        let host = &hosts[app["host"].as_u64().unwrap() as usize];
        assert!(
            host["name"].as_str().unwrap().starts_with("new-"),
            "{state}"
        );
        assert_eq!(app["state"], "running", "{state}");
    }
}

fn journal(path: &Path) -> DrainProgress {
    DrainProgress::from_records(&FileJournal::read(path).unwrap())
}

/// Apps still on the targets, from a progress line.
fn apps_left(line: &str) -> usize {
    let (_, rest) = line.split_once(" hosts, ").unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn plan_prints_every_wave_and_changes_nothing() {
    let w = world("100ms", 5);
    let out = command(&w, "plan");
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("plan: 4 hosts to drain (0 already drained), 20 apps on them"),
        "{text}"
    );
    // Two hosts at once (max_draining_hosts), 10 apps per wave within
    // max_unavailable.
    assert!(
        text.contains("wave 1: drain old-0, old-1 (10 apps) -> new-0="),
        "{text}"
    );
    assert!(
        text.contains("wave 2: drain old-2, old-3 (10 apps) -> new-0="),
        "{text}"
    );
    assert!(text.contains("2 waves in all (dry run"), "{text}");
    assert!(!w.journal.exists(), "plan wrote a journal");
    let state = platform(&w);
    for host in state["hosts"].as_array().unwrap() {
        assert_eq!(host["state"], "active", "{state}");
    }
}

#[test]
fn run_drains_to_completion_and_status_reads_the_journal() {
    let w = world("50ms", 5);
    let run = spawn_run(&w);
    let (code, text) = run.finish();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("done: 4 hosts drained, 20 apps moved, 0 failed starts"),
        "{text}"
    );
    assert!(text.contains("wave 1: draining old-0"), "{text}");
    assert!(text.contains("drained old-3"), "{text}");
    assert!(text.contains("starts per receiver: "), "{text}");
    assert_drained_once(&w, 20);
    let progress = journal(&w.journal);
    assert!(progress.finished);
    assert_eq!(progress.drained.len(), 4);

    let status = command(&w, "status");
    let text = stdout(&status);
    assert_eq!(status.status.code(), Some(0));
    assert!(text.contains("no controller answers"), "{text}");
    assert!(
        text.contains("journal: finished; 4 of 4 hosts drained"),
        "{text}"
    );
    // Nothing to steer any more.
    assert_eq!(command(&w, "pause").status.code(), Some(4));
    // Running again is a no-op.
    let again = command(&w, "run");
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).contains("already finished"));
}

#[test]
fn pause_resume_and_abort_through_the_control_socket() {
    let w = world("300ms", 8);
    let mut run = spawn_run(&w);
    let metrics = run.wait_line("naming the metrics endpoint", |l| {
        l.starts_with("metrics: ")
    });
    run.wait_line("of a first progress line", |l| l.starts_with("progress: "));
    // The controller's series, in the Prometheus text format.
    let address = metrics
        .trim_start_matches("metrics: http://")
        .trim_end_matches("/metrics");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("breakwater_drain_waves_started_total"),
        "{body}"
    );

    let paused = command(&w, "pause");
    assert_eq!(
        paused.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    assert!(stdout(&paused).contains("pause: ok (controller paused)"));
    // Once the starts running at the pause finished, nothing moves.
    let quiet = run.wait_line("showing the pause took hold", |l| {
        l.contains("operator: paused") && l.contains(" 0 moving")
    });
    let left = apps_left(&quiet);
    for _ in 0..5 {
        let line = run.wait_line("of progress while paused", |l| l.starts_with("progress: "));
        assert!(line.contains("operator: paused"), "{line}");
        assert_eq!(apps_left(&line), left, "an app moved while paused: {line}");
    }
    let status = stdout(&command(&w, "status"));
    assert!(status.contains("\"state\":\"paused\""), "{status}");

    assert_eq!(command(&w, "resume").status.code(), Some(0));
    run.wait_line("of an app moving after resume", |l| {
        l.starts_with("progress: ") && l.contains("operator: running") && apps_left(l) < left
    });

    let aborted = command(&w, "abort");
    assert_eq!(aborted.status.code(), Some(0));
    let (code, text) = run.finish();
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("aborted: aborted by an operator"), "{text}");
    let progress = journal(&w.journal);
    assert!(progress.aborted.is_some());
    assert!(!progress.finished);
    // The journal remembers: the drain does not continue.
    let again = command(&w, "run");
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("aborted"));
    assert!(stdout(&command(&w, "status")).contains("journal: aborted"));
}

#[test]
fn a_run_killed_mid_drain_resumes_from_the_journal() {
    let w = world("100ms", 8);
    let mut run = spawn_run(&w);
    run.wait_line("of the first drained host", |l| {
        l.starts_with("drained old-0")
    });
    run.child.kill().unwrap(); // SIGKILL
    run.child.wait().unwrap();
    let before = journal(&w.journal);
    assert!(!before.finished);
    assert!(!before.drained.is_empty());
    // A socket file left by the dead run does not fool `status`.
    let status = stdout(&command(&w, "status"));
    assert!(status.contains("no controller answers"), "{status}");
    assert!(status.contains("journal: in progress"), "{status}");

    let resumed = spawn_run(&w);
    let (code, text) = resumed.finish();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("(resumed from the journal)"), "{text}");
    assert!(
        !text.contains("drained old-0"),
        "old-0 drained again:\n{text}"
    );
    assert_drained_once(&w, 32);
    let after = journal(&w.journal);
    assert!(after.finished);
    assert_eq!(after.drained.len(), 4);
}

#[test]
fn usage_and_config_errors_have_their_exit_codes() {
    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let w = world("100ms", 5);
    std::fs::write(&w.config, "targets = []\n[adapter]\nkind = \"sim\"\n").unwrap();
    let out = command(&w, "plan");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("fleet-drain: config: "), "{err}");
}

/// The example file in the repository plans (its state and journal go
/// next to a copy of it).
#[test]
fn the_example_config_plans() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet-drain-sim.toml");
    std::fs::write(&config, include_str!("../examples/fleet-drain-sim.toml")).unwrap();
    let out = Command::new(BIN)
        .args(["plan", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("plan: 6 hosts to drain"), "{text}");
    // 25 % of 48 apps unavailable at once: one host of 8 per wave.
    assert!(
        text.contains("wave 1: drain old-0 (8 apps) -> new-0=2"),
        "{text}"
    );
    assert!(text.contains("6 waves in all"), "{text}");
}
