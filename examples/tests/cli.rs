//! The `incident-replay` command line: flags, JSON on stdout, errors.

use std::process::Command;

fn replay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_incident-replay"))
}

#[test]
fn json_flag_prints_one_document_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let out = replay()
        .args(["--scenario", "feb-2019", "--seed", "5", "--json", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["seed"], 5);
    assert_eq!(json["scenarios"][0]["name"], "feb-2019");
    assert!(dir.path().join("feb-2019.svg").exists());
}

#[test]
fn a_bad_parameter_exits_non_zero_with_one_line_naming_it() {
    let out = replay()
        .args([
            "--scenario",
            "nov-2019",
            "--set",
            "nov.client_rps=-5",
            "--no-charts",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nov.client_rps"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    let out = replay().args(["--scenario", "jan-2020"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jan-2020"));
}

#[test]
fn list_params_prints_both_scenarios() {
    let out = replay().arg("--list-params").output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["nov"]["servers"].is_number());
    assert!(json["feb"]["old_hosts"].is_number());
}
