//! The JSON contract of `incident-replay --json` (DESIGN.md §6), pinned in
//! one place for the tools that read it: `seed`, `scenarios[].name`, and
//! per policy `amplification`, `goodput`, `recovery_s` (nov-2019) and
//! `failed_starts`, `peak_starts_per_host`, `alerts_raw`, `alerts_sent`,
//! `finish_s` (feb-2019), with their types. Runs the replay library with
//! small `--set` overrides so that it stays fast.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use breakwater_examples::replay::{self, ReplayOptions, ScenarioChoice};
use serde_json::Value;

const POLICIES: [&str; 2] = ["naive", "breakwater"];

/// A short November (200 s) and a small February fleet, as `--set` does.
fn small(scenario: ScenarioChoice, seed: u64) -> ReplayOptions {
    let mut options = ReplayOptions {
        scenario,
        seed,
        ..ReplayOptions::default()
    };
    for assignment in [
        "nov.horizon_s=200",
        "nov.deploy_at_s=20",
        "nov.revert_at_s=60",
        "nov.client_rps=200",
        "feb.old_hosts=10",
        "feb.apps_per_host=30",
        "feb.new_hosts=10",
        "feb.new_host_capacity=40",
    ] {
        options.set(assignment).unwrap();
    }
    options
}

fn replay_json(options: &ReplayOptions) -> Value {
    let report = replay::run(options, &|_| {}).unwrap();
    serde_json::from_str(&report.to_json()).unwrap()
}

fn number(value: &Value, what: &str) -> f64 {
    let x = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} must be a number, got {value}"));
    assert!(x.is_finite() && x >= 0.0, "{what} = {x}");
    x
}

fn count(value: &Value, what: &str) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{what} must be a non-negative integer, got {value}"))
}

#[test]
fn the_json_document_has_the_keys_and_types_tools_read() {
    let json = replay_json(&small(ScenarioChoice::All, 42));
    assert_eq!(
        json["seed"].as_u64(),
        Some(42),
        "the seed is echoed as an integer"
    );
    let scenarios = json["scenarios"].as_array().expect("scenarios is an array");
    let names: Vec<_> = scenarios.iter().map(|s| s["name"].as_str()).collect();
    assert_eq!(names, [Some("nov-2019"), Some("feb-2019")]);

    let nov = &scenarios[0];
    for policy in POLICIES {
        let outcome = &nov[policy];
        assert!(outcome.is_object(), "nov-2019.{policy} is an object");
        number(&outcome["amplification"], "amplification");
        let goodput = number(&outcome["goodput"], "goodput");
        assert!(goodput <= 1.0, "goodput is a share: {goodput}");
        let recovery = &outcome["recovery_s"];
        assert!(
            recovery.is_null() || recovery.as_f64().is_some_and(|s| s >= 0.0),
            "recovery_s is seconds or null, got {recovery}"
        );
    }

    let feb = &scenarios[1];
    for policy in POLICIES {
        let outcome = &feb[policy];
        assert!(outcome.is_object(), "feb-2019.{policy} is an object");
        count(&outcome["failed_starts"], "failed_starts");
        count(&outcome["peak_starts_per_host"], "peak_starts_per_host");
        let raw = count(&outcome["alerts_raw"], "alerts_raw");
        let sent = count(&outcome["alerts_sent"], "alerts_sent");
        assert!(sent <= raw, "{policy}: sent {sent} of {raw} raw alerts");
        number(&outcome["finish_s"], "finish_s");
    }
}

#[test]
fn set_overrides_reach_the_reported_parameters() {
    let json = replay_json(&small(ScenarioChoice::All, 1));
    let nov = &json["scenarios"][0]["params"];
    assert_eq!(nov["horizon_s"], 200);
    assert_eq!(nov["revert_at_s"], 60);
    // Parameters are grouped (setup/world/naive/breakwater); leaves are unique.
    let feb = replay::flatten(&json["scenarios"][1]["params"]);
    assert_eq!(feb["old_hosts"], 10);
    assert_eq!(feb["new_host_capacity"], 40);
}

#[test]
fn one_scenario_can_be_chosen_and_the_same_seed_repeats_exactly() {
    let options = small(ScenarioChoice::Feb2019, 5);
    let first = replay_json(&options);
    let names: Vec<_> = first["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["feb-2019"]);
    assert_eq!(replay_json(&options), first, "a seed is a reproducible run");
}

#[test]
fn bad_overrides_are_refused_with_the_offending_assignment_named() {
    let mut options = ReplayOptions::default();
    for bad in [
        "nov.no_such_param=1",
        "mar.horizon_s=1",
        "nov.horizon_s",
        "nov.horizon_s=\"x\"",
    ] {
        let err = options.set(bad).unwrap_err();
        assert!(
            err.to_string().contains(bad.split('=').next().unwrap()),
            "{bad}: {err}"
        );
    }
    options.set("nov.horizon_s=5").unwrap();
    let err = replay::run(&options, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("nov.horizon_s"), "{err}");
}
