//! `incident-replay --metrics-out FILE`: the Breakwater side's metrics in Prometheus text
//! format, named after the replay's instances, identical for the same seed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Short runs (as in `tests/replay.rs` and `tests/sweep.rs`): a 25-minute November replay
/// and a 10-host February fleet keep this debug-build test fast.
const SMALL: [&str; 6] = [
    "nov.horizon_s=1500",
    "nov.revert_at_s=300",
    "feb.old_hosts=10",
    "feb.apps_per_host=30",
    "feb.new_hosts=10",
    "feb.new_host_capacity=40",
];

fn replay_to(file: &Path, seed: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_incident-replay"));
    for s in SMALL {
        cmd.args(["--set", s]);
    }
    let out = cmd
        .args([
            "--seed",
            seed,
            "--no-charts",
            "--no-ablation",
            "--metrics-out",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(file).unwrap()
}

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses Prometheus text format (the subset the exporter writes): `# HELP`/`# TYPE` lines
/// and `name{k="v",...} value` samples, each sample after its family's `# TYPE`.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: BTreeSet<String> = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let labels = body
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(typed.contains(name), "{name} before its # TYPE line");
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

#[test]
fn metrics_out_writes_named_fleet_drain_series_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let first = replay_to(&dir.path().join("a/breakwater.prom"), "3");
    let samples = parse(&first);

    let value = |metric: &str, name: &str| -> Option<f64> {
        samples
            .iter()
            .filter(|(m, labels, _)| {
                m == metric && labels.get("name").map(String::as_str) == Some(name)
            })
            .map(|(.., v)| *v)
            .reduce(|a, b| a + b)
    };
    // The February drain, named: every old host drained, apps migrated, no start failed.
    assert_eq!(
        value("breakwater_drain_hosts_drained_total", "feb2019.drain"),
        Some(10.0),
        "{first}"
    );
    assert!(value("breakwater_drain_app_starts_total", "feb2019.drain").unwrap() >= 300.0);
    assert_eq!(
        value("breakwater_drain_hosts_draining", "feb2019.drain"),
        Some(0.0)
    );
    // The November staged release, named: its canary caught the bad release and it rolled back.
    assert!(
        value(
            "breakwater_rollout_rollbacks_total",
            "nov2019.staged.rollout"
        )
        .unwrap()
            >= 1.0,
        "{first}"
    );
    // Only the Breakwater side records (its own instances, and the February platform's DNS API
    // limit it runs against): every series is named, none is the naive side's.
    for (metric, labels, _) in &samples {
        let name = labels.get("name").map_or("", String::as_str);
        assert!(
            name == "feb2019.drain"
                || name.starts_with("feb2019.drain.")
                || name == "feb2019.world.dns-api"
                || name.starts_with("feb2019.breakwater.")
                || name.starts_with("nov2019.breakwater.")
                || name.starts_with("nov2019.staged."),
            "{metric} {labels:?}"
        );
    }
    // resilience-core's series are there, under the replay's names.
    assert!(
        value(
            "breakwater_retry_budget_deposits_total",
            "nov2019.breakwater.retry-budget"
        )
        .unwrap()
            > 0.0,
        "{first}"
    );
    assert!(
        samples
            .iter()
            .any(|(m, l, _)| m == "breakwater_retry_attempts_total"
                && l.get("name").map(String::as_str) == Some("nov2019.breakwater.retry")),
        "{first}"
    );

    // Same seed, same file.
    let second = replay_to(&dir.path().join("b.prom"), "3");
    assert_eq!(first, second);
}

#[test]
fn metrics_out_does_not_combine_with_a_sweep() {
    let out = Command::new(env!("CARGO_BIN_EXE_incident-replay"))
        .args([
            "--sweep",
            "feb.safe_concurrent_starts=2,4",
            "--metrics-out",
            "x.prom",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--metrics-out"), "{stderr}");
}
