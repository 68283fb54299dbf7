//! Specification of `incident-replay`: deterministic, and Breakwater beats
//! the naive policies on every reported metric.

use breakwater_examples::replay::{self, ReplayOptions, ScenarioChoice, ScenarioReport};

fn options(scenario: ScenarioChoice, seed: u64) -> ReplayOptions {
    let mut o = ReplayOptions {
        scenario,
        seed,
        ablation: false,
        ..ReplayOptions::default()
    };
    // nov-2019 simulates 7 hours by default; a 25-minute run (revert 4 min
    // after the bad release) keeps these debug-build tests fast.
    o.nov.setup.horizon_s = 1_500;
    o.nov.setup.revert_at_s = 300;
    o
}

#[test]
fn the_same_seed_gives_identical_json() {
    let a = replay::run(&options(ScenarioChoice::All, 7), &|_| {}).unwrap();
    let b = replay::run(&options(ScenarioChoice::All, 7), &|_| {}).unwrap();
    assert_eq!(a.to_json(), b.to_json());
    let c = replay::run(&options(ScenarioChoice::All, 8), &|_| {}).unwrap();
    assert_ne!(a.to_json(), c.to_json(), "the seed must matter");
}

#[test]
fn json_has_the_keys_tools_read() {
    let report = replay::run(&options(ScenarioChoice::All, 1), &|_| {}).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["seed"], 1);
    let scenarios = json["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2);
    let nov = &scenarios[0];
    assert_eq!(nov["name"], "nov-2019");
    for policy in ["naive", "breakwater"] {
        for key in ["amplification", "goodput", "recovery_s"] {
            assert!(nov[policy].get(key).is_some(), "nov-2019 {policy}.{key}");
        }
    }
    assert!(nov["naive"]["recovery_s"].is_null(), "naive never recovers");
    let feb = &scenarios[1];
    assert_eq!(feb["name"], "feb-2019");
    for policy in ["naive", "breakwater"] {
        for key in [
            "failed_starts",
            "peak_starts_per_host",
            "alerts_raw",
            "alerts_sent",
            "finish_s",
        ] {
            assert!(feb[policy][key].is_number(), "feb-2019 {policy}.{key}");
        }
    }
}

#[test]
fn breakwater_beats_naive_on_every_metric_for_seeds_1_to_20() {
    let seeds: Vec<u64> = (1..=20).collect();
    let reports = replay::parallel::map(&seeds, |&seed| {
        replay::run(&options(ScenarioChoice::All, seed), &|_| {}).map(|r| (seed, r))
    });
    for report in reports {
        let (seed, report) = report.unwrap();
        for scenario in &report.scenarios {
            match scenario {
                ScenarioReport::Nov2019(r) => {
                    let (n, b) = (&r.naive, &r.breakwater);
                    assert!(
                        b.amplification < n.amplification,
                        "seed {seed}: amplification {b:?} vs {n:?}"
                    );
                    assert!(b.goodput > n.goodput, "seed {seed}: goodput");
                    assert!(
                        n.recovery_s.is_none(),
                        "seed {seed}: the naive run must stay down after the revert"
                    );
                    assert!(
                        b.recovery_s.is_some(),
                        "seed {seed}: breakwater must recover"
                    );
                }
                ScenarioReport::Feb2019(r) => {
                    let (n, b) = (&r.naive, &r.breakwater);
                    assert!(
                        n.failed_starts > 0,
                        "seed {seed}: the naive drain corrupts starts"
                    );
                    // v2: Breakwater is blind to the safe concurrency and
                    // learns it, so it may corrupt a few (≤ 1 % of apps moved).
                    assert!(
                        b.failed_starts * 100 <= r.params.apps(),
                        "seed {seed}: breakwater corrupts at most 1 %"
                    );
                    assert!(
                        b.peak_starts_per_host < n.peak_starts_per_host,
                        "seed {seed}: peak"
                    );
                    assert!(b.alerts_raw < n.alerts_raw, "seed {seed}: raw alerts");
                    assert!(b.alerts_sent < n.alerts_sent, "seed {seed}: alerts sent");
                    assert!(
                        b.finish_s < n.finish_s,
                        "seed {seed}: finish {} vs {}",
                        b.finish_s,
                        n.finish_s
                    );
                }
            }
        }
    }
}

#[test]
fn out_of_range_parameters_are_clear_errors() {
    let mut o = options(ScenarioChoice::All, 1);
    o.set("nov.servers=0").unwrap();
    let err = replay::run(&o, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("nov.servers"), "{err}");

    let mut o = options(ScenarioChoice::All, 1);
    o.set("feb.max_failure_probability=1.5").unwrap();
    assert!(
        o.validate()
            .unwrap_err()
            .to_string()
            .contains("feb.max_failure_probability")
    );

    let mut o = options(ScenarioChoice::All, 1);
    let err = o.set("nov.no_such_param=3").unwrap_err().to_string();
    assert!(
        err.contains("unknown parameter") && err.contains("servers"),
        "{err}"
    );
    let err = o.set("nov.servers=lots").unwrap_err().to_string();
    assert!(err.contains("nov.servers"), "{err}");
    let err = o.set("mars.servers=3").unwrap_err().to_string();
    assert!(err.contains("unknown scenario"), "{err}");
    let err = o.set("servers").unwrap_err().to_string();
    assert!(err.contains("SCENARIO.PARAM=VALUE"), "{err}");
}

#[test]
fn charts_are_written_as_svg() {
    let dir = tempfile::tempdir().unwrap();
    let report = replay::run(&options(ScenarioChoice::All, 3), &|_| {}).unwrap();
    let paths = report.write_charts(dir.path()).unwrap();
    assert_eq!(paths.len(), 2);
    for path in paths {
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", path.display());
        assert!(svg.contains("breakwater"));
    }
}

#[test]
fn ablation_runs_are_deterministic_too() {
    let mut o = options(ScenarioChoice::Nov2019, 11);
    o.ablation = true;
    o.set("nov.horizon_s=240").unwrap();
    o.set("nov.revert_at_s=120").unwrap();
    o.set("nov.client_rps=400").unwrap();
    let a = replay::run(&o, &|_| {}).unwrap().to_json();
    let b = replay::run(&o, &|_| {}).unwrap().to_json();
    assert!(a.contains("circuit breaker"), "the ablation ran");
    assert_eq!(a, b);
}
