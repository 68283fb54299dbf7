//! `--sweep`: a grid over hidden parameters and seeds, with medians,
//! spreads, the worst cells and a heatmap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use breakwater_examples::replay::ReplayOptions;
use breakwater_examples::replay::sweep::{self, SweepOptions};

const SMALL_FEB: [&str; 4] = [
    "feb.old_hosts=10",
    "feb.apps_per_host=30",
    "feb.new_hosts=10",
    "feb.new_host_capacity=40",
];

fn small_feb() -> ReplayOptions {
    let mut options = ReplayOptions::default();
    for s in SMALL_FEB {
        options.set(s).unwrap();
    }
    options
}

fn options(sweep: &str, seeds: Vec<u64>) -> SweepOptions {
    SweepOptions {
        base: small_feb(),
        axes: sweep::parse(&[sweep.to_owned()]).unwrap(),
        seeds,
    }
}

fn metric<'a>(cell: &'a sweep::Cell, key: &str) -> &'a sweep::MetricSummary {
    cell.metrics.iter().find(|m| m.key == key).unwrap()
}

#[test]
fn every_cell_runs_with_its_own_values_and_every_seed() {
    let report = sweep::run(
        &options("feb.safe_concurrent_starts=1,1000", vec![1, 2]),
        &|_| {},
    )
    .unwrap();
    assert_eq!(report.scenario, "feb-2019");
    assert_eq!(report.cells.len(), 2);
    assert_eq!(report.cells[0].values, ["1"]);
    let tight = metric(&report.cells[0], "failed_starts");
    let roomy = metric(&report.cells[1], "failed_starts");
    assert_eq!((tight.runs, roomy.runs), (2, 2));
    // The naive drain starts every app of a batch at once: with one safe
    // start per host it corrupts many, with a thousand none. A sweep that
    // ignored its axis would report the same figures in both cells.
    assert!(tight.naive.median.unwrap() > 0.0, "{tight:?}");
    assert_eq!(roomy.naive.max, Some(0.0), "{roomy:?}");
}

#[test]
fn the_same_sweep_gives_identical_json() {
    let run = || {
        sweep::run(
            &options("feb.safe_concurrent_starts=2,4,feb.start_s=10,20", vec![3]),
            &|_| {},
        )
        .unwrap()
        .to_json()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    let json: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(json["sweep"]["cells"].as_array().unwrap().len(), 4);
    assert_eq!(json["sweep"]["cells"][3]["values"][1], "20");
    assert!(json["worst"].as_array().is_some_and(|w| !w.is_empty()));
}

#[test]
fn a_bad_cell_value_fails_before_any_run_and_names_the_parameter() {
    let err = sweep::run(&options("feb.start_s=20,-1", vec![1]), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("feb.start_s"), "{err}");
}

fn replay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_incident-replay"))
}

#[test]
fn the_command_prints_json_and_draws_the_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = replay();
    for s in SMALL_FEB {
        cmd.args(["--set", s]);
    }
    let out = cmd
        .args([
            "--sweep",
            "feb.safe_concurrent_starts=2,8",
            "--sweep-seeds",
            "2",
            "--json",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sweep"]["seeds"], serde_json::json!([1, 2]));
    let svg = std::fs::read_to_string(dir.path().join("sweep-feb-2019.svg")).unwrap();
    assert!(svg.contains("breakwater / naive"), "{svg}");
}

#[test]
fn a_malformed_sweep_is_one_line_on_stderr() {
    let out = replay()
        .args(["--sweep", "feb.start_s=10,nov.servers=3", "--no-charts"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("one scenario"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
