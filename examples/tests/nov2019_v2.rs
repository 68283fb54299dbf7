//! November 2019, replay v2: Breakwater's configuration is blind to the
//! hidden world, retries go through the library's retry engine, the staged
//! rollout stops the bad release at the canary, the operator fix recovers
//! only once traffic is back while naive never does, and the limits bound
//! every side. Short runs (`--set`-style overrides) keep the tests fast.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use breakwater_examples::replay::nov2019::sim::{self, RunSpec};
use breakwater_examples::replay::nov2019::{
    self, Mechanisms, Nov2019Outcome, Nov2019Params, Side, limits,
};
use breakwater_examples::replay::{ReplayOptions, ScenarioChoice};
use resilience_core::throttle::AdaptiveThrottleConfig;

/// Default parameters with `assignments` applied the way `--set` does.
fn params(assignments: &[&str]) -> Nov2019Params {
    let mut o = ReplayOptions {
        scenario: ScenarioChoice::Nov2019,
        ..ReplayOptions::default()
    };
    for a in assignments {
        o.set(a).unwrap();
    }
    o.nov
}

fn run(p: &Nov2019Params, side: Side, mechanisms: Mechanisms) -> Nov2019Outcome {
    sim::run(
        p,
        RunSpec {
            side,
            mechanisms,
            horizon_s: p.setup.horizon_s,
        },
        1,
    )
    .unwrap()
}

/// A 10-minute run: bad release at 20 s, revert at 300 s.
const SHORT: [&str; 3] = [
    "nov.horizon_s=600",
    "nov.deploy_at_s=20",
    "nov.revert_at_s=300",
];

#[test]
fn breakwater_configuration_does_not_move_when_any_hidden_world_field_does() {
    let base = Nov2019Params::default();
    let config = serde_json::to_string(&base.breakwater_config().unwrap()).unwrap();
    let world = serde_json::to_value(&base.world).unwrap();
    let fields: Vec<String> = world.as_object().unwrap().keys().cloned().collect();
    assert!(
        fields.len() >= 9,
        "every hidden truth is in the world: {fields:?}"
    );
    let mut all = ReplayOptions::default();
    for field in &fields {
        let value = world[field.as_str()].as_f64().unwrap();
        let changed = if value == 0.0 { 3.0 } else { value * 2.0 + 1.0 };
        let changed = if world[field.as_str()].is_u64() {
            format!("{}", changed as u64)
        } else {
            format!("{changed}")
        };
        let assignment = format!("nov.world.{field}={changed}");
        let mut one = ReplayOptions::default();
        one.set(&assignment).unwrap();
        one.nov.validate().unwrap();
        assert_ne!(one.nov.world, base.world, "{assignment} changed the world");
        let moved = serde_json::to_string(&one.nov.breakwater_config().unwrap()).unwrap();
        assert_eq!(
            moved, config,
            "{assignment} moved Breakwater's configuration"
        );
        all.set(&assignment).unwrap();
    }
    let moved = serde_json::to_string(&all.nov.breakwater_config().unwrap()).unwrap();
    assert_eq!(moved, config, "every world field at once");
    // ...while the setup, which Breakwater may read, does move it.
    let mut visible = ReplayOptions::default();
    visible.set("nov.attempt_timeout_ms=4000").unwrap();
    let moved = serde_json::to_string(&visible.nov.breakwater_config().unwrap()).unwrap();
    assert_ne!(moved, config, "the configuration is derived from the setup");
}

#[test]
fn the_budget_floor_is_one_fleet_wide_floor_and_the_throttle_window_is_the_default() {
    let p = Nov2019Params::default();
    let config = p.breakwater_config().unwrap();
    let budget = config.budget.expect("breakwater has a retry budget");
    let fleet_floor = u64::from(budget.min_retries_per_sec) * p.setup.proxies as u64;
    assert!(
        fleet_floor <= u64::from(p.breakwater.budget_fleet_min_retries_per_sec),
        "{} proxies x {} retries/s exceeds the fleet's floor",
        p.setup.proxies,
        budget.min_retries_per_sec
    );
    let one = params(&["nov.proxies=1"]).breakwater_config().unwrap();
    assert_eq!(one.budget.unwrap().min_retries_per_sec, 10);
    let throttle = config.throttle.expect("breakwater throttles");
    assert_eq!(throttle.window, AdaptiveThrottleConfig::default().window);
    assert!((throttle.k - AdaptiveThrottleConfig::default().k).abs() < f64::EPSILON);
}

#[test]
fn retries_go_through_the_librarys_budget_and_stay_within_its_ratio() {
    let p = params(&SHORT);
    let naive = run(&p, Side::Ablation, Mechanisms::NAIVE);
    let budget = run(
        &p,
        Side::Ablation,
        Mechanisms {
            retry_budget: true,
            ..Mechanisms::NAIVE
        },
    );
    assert!(naive.amplification > 3.0, "naive retries storm: {naive:?}");
    assert!(budget.budget_denied > 0, "the budget refused retries");
    assert!(
        budget.amplification <= 1.0 + p.breakwater.budget_ratio + 0.05,
        "retries bounded by the budget's ratio: {}",
        budget.amplification
    );
    let breakwater = run(&p, Side::Breakwater, Mechanisms::BREAKWATER);
    assert!(
        breakwater.amplification <= 1.25,
        "goal: amplification <= 1.25x, got {}",
        breakwater.amplification
    );
}

#[test]
fn the_staged_rollout_stops_the_bad_release_at_the_canary() {
    let p = params(&SHORT);
    let canary = f64::from(p.staged.canary_hosts) / p.setup.servers as f64;
    let staged = run(&p, Side::Staged, Mechanisms::BREAKWATER);
    assert!(
        staged.rollout_aborted,
        "the health gate aborted: {staged:?}"
    );
    assert!(
        (staged.peak_bad_servers_share - canary).abs() < 1e-9,
        "the bad release reached the canary and no more: {}",
        staged.peak_bad_servers_share
    );
    assert!(
        staged.bad_release_share <= canary,
        "at most the canary's share of traffic hit the bad release: {}",
        staged.bad_release_share
    );
    let all_at_once = run(&p, Side::Breakwater, Mechanisms::BREAKWATER);
    assert!((all_at_once.peak_bad_servers_share - 1.0).abs() < 1e-9);
    assert!(staged.goodput > all_at_once.goodput);
}

#[test]
fn naive_never_recovers_and_the_operator_fix_recovers_once_traffic_is_back() {
    let p = params(&[
        "nov.horizon_s=1500",
        "nov.deploy_at_s=20",
        "nov.revert_at_s=300",
        "nov.fix_at_s=700",
        "nov.fix_ramp_at_s=760",
        "nov.fix_ramp_s=300",
    ]);
    let naive = run(&p, Side::Naive, Mechanisms::NAIVE);
    assert_eq!(naive.recovery_s, None, "naive stays down after the revert");
    let fix = run(&p, Side::OperatorFix, Mechanisms::NAIVE);
    let recovery = fix.recovery_s.expect("the operator fix recovers");
    let ramp_at = (p.operator_fix.fix_ramp_at_s - p.setup.revert_at_s) as f64;
    assert!(
        recovery >= ramp_at,
        "no recovery before traffic is restored: {recovery}"
    );
    assert!(fix.diverted > 0, "the load balancer turned traffic away");
    assert!(fix.goodput > naive.goodput);
}

#[test]
fn the_limits_read_the_world_and_no_side_beats_them_in_the_same_world() {
    let p = params(&SHORT);
    let l = limits::limits(&p);
    assert!((l.amplification - 1.0).abs() < f64::EPSILON);
    for (name, side, m) in [
        ("naive", Side::Naive, Mechanisms::NAIVE),
        ("breakwater", Side::Breakwater, Mechanisms::BREAKWATER),
    ] {
        let o = run(&p, side, m);
        assert!(
            o.goodput <= l.goodput + 0.005,
            "{name}: {} > {}",
            o.goodput,
            l.goodput
        );
        if let (Some(r), Some(floor)) = (o.recovery_s, l.recovery_s) {
            assert!(r >= floor, "{name} recovered faster than the floor");
        }
    }
    let worse = params(&[SHORT[0], SHORT[1], SHORT[2], "nov.bad_service_factor=4"]);
    assert!(limits::limits(&worse).goodput < l.goodput);
}

#[test]
fn the_report_has_every_side_limits_and_ratios() {
    let p = params(&[
        "nov.horizon_s=200",
        "nov.deploy_at_s=20",
        "nov.revert_at_s=60",
    ]);
    let report = nov2019::run(&p, 1, false, &|_| {}).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["name"], "nov-2019");
    for side in ["naive", "breakwater", "operator_fix", "staged"] {
        for key in ["amplification", "goodput", "recovery_s", "ratio_to_limit"] {
            assert!(json[side].get(key).is_some(), "{side}.{key}");
        }
    }
    assert!(json["limits"]["goodput"].is_number());
    assert_eq!(json["params"]["horizon_s"], 200);
    let metrics = report.metrics();
    assert!(
        metrics
            .iter()
            .all(|m| m.key != "goodput" || m.limit.is_some())
    );
    let table = report_table(&report);
    assert!(
        table.contains("limit") && table.contains("operator fix"),
        "{table}"
    );
}

fn report_table(report: &nov2019::Nov2019Report) -> String {
    nov2019::table::render(report, 1)
}

#[test]
fn breakwater_servers_do_not_run_out_of_memory_whatever_the_hidden_memory() {
    // The same (blind) configuration in worlds with less or more memory and
    // a heavier or lighter bad release: the servers' memory guard refuses
    // what would not fit, so no server crashes, where naive servers do.
    for world in [
        ["nov.memory_limit=50", "nov.bad_memory_factor=8"],
        ["nov.memory_limit=30", "nov.bad_memory_factor=8"],
        ["nov.memory_limit=50", "nov.bad_memory_factor=12"],
        ["nov.memory_limit=100", "nov.bad_memory_factor=4"],
    ] {
        let mut assignments = SHORT.to_vec();
        assignments.extend(world);
        let p = params(&assignments);
        let bw = run(&p, Side::Breakwater, Mechanisms::BREAKWATER);
        assert_eq!(bw.crashes, 0, "{world:?}: {bw:?}");
        let naive = run(&p, Side::Naive, Mechanisms::NAIVE);
        assert!(naive.crashes > 0, "{world:?}: naive servers crash");
        if p.world.memory_limit / p.world.bad_memory_factor < 10.0 {
            assert!(bw.memory_shed > 0, "{world:?}: the guard refused requests");
        }
    }
}

#[test]
fn the_server_limit_is_fixed_by_default_and_adaptive_on_request_with_no_queue_in_front() {
    let config = Nov2019Params::default().breakwater_config().unwrap();
    assert!(config.adaptive_limit.is_none());
    assert_eq!(config.limit.unwrap().max_queued, 4);
    assert!(
        config
            .memory_guard_share
            .is_some_and(|s| s > 0.0 && s <= 1.0)
    );
    for (name, aimd) in [("aimd", true), ("gradient2", false)] {
        let assignment = format!("nov.shed_algorithm={name}");
        let config = params(&[assignment.as_str()]).breakwater_config().unwrap();
        assert!(config.limit.is_none(), "{name}: no fixed limit");
        let adaptive = config.adaptive_limit.expect("an adaptive limit");
        assert_eq!(adaptive.max_queued, 0, "{name}");
        assert_eq!(
            matches!(
                adaptive.algorithm,
                resilience_core::limit::LimitAlgorithm::Aimd(_)
            ),
            aimd,
            "{name}"
        );
    }
    let unguarded = params(&["nov.shed_memory_guard=false"])
        .breakwater_config()
        .unwrap();
    assert_eq!(unguarded.memory_guard_share, None);
}

#[test]
fn an_adaptive_server_limit_runs_and_the_guard_still_prevents_crashes() {
    for name in ["aimd", "gradient2"] {
        let assignment = format!("nov.shed_algorithm={name}");
        let mut assignments = SHORT.to_vec();
        assignments.push(assignment.as_str());
        let p = params(&assignments);
        let bw = run(&p, Side::Breakwater, Mechanisms::BREAKWATER);
        assert_eq!(bw.crashes, 0, "{name}: {bw:?}");
        assert!(
            bw.shed > 0,
            "{name}: the limit or the guard refused requests"
        );
    }
}
