//! February 2019 v2: Breakwater's policy is blind to the hidden world, and
//! with that one policy it meets the goals where the model says it does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use breakwater_examples::replay::feb2019::{self, Feb2019Params, FebWorld, breakwater_policy};

fn policy_json(p: &Feb2019Params) -> String {
    serde_json::to_string(&breakwater_policy(&p.setup, &p.breakwater, 7)).unwrap()
}

#[test]
fn changing_every_hidden_world_field_leaves_breakwaters_policy_unchanged() {
    let base = Feb2019Params::default();
    let before = policy_json(&base);
    let changed = FebWorld {
        safe_concurrent_starts: 3,
        failure_per_extra_start: 0.2,
        max_failure_probability: 0.9,
        corruption_visible_after_s: 900,
        dns_api_rate_per_s: 1,
        dns_api_burst: 1,
        disk_base_percent: 50.0,
        disk_per_app_percent: 0.05,
        disk_noise_percent: 5.0,
    };
    // Every field differs from the default (so a new field must be added here).
    let (d, c) = (
        serde_json::to_value(FebWorld::default()).unwrap(),
        serde_json::to_value(&changed).unwrap(),
    );
    for (key, value) in d.as_object().unwrap() {
        assert_ne!(&c[key], value, "world.{key} is not changed by this test");
    }
    let p = Feb2019Params {
        world: changed,
        ..base.clone()
    };
    p.validate().unwrap();
    assert_eq!(policy_json(&p), before);
    // The policy does react to what it may read.
    let mut q = base;
    q.breakwater.probation_s += 1;
    assert_ne!(policy_json(&q), before);
}

/// A smaller fleet (20 old hosts, 20 receivers) with the same per-host
/// physics: 300 apps per receiver, 20-s starts.
fn small(safe: u32) -> Feb2019Params {
    let mut p = Feb2019Params::default();
    p.setup.old_hosts = 20;
    p.setup.new_hosts = 20;
    p.setup.horizon_s = 3 * 3_600;
    // 30 % of the old fleet per batch, as 30 of 100 in the incident.
    p.naive.naive_hosts_at_once = 6;
    p.world.safe_concurrent_starts = safe;
    p
}

#[test]
fn one_blind_policy_drains_near_the_limit_corrupts_little_and_repairs_all_at_s_2_and_4() {
    for safe in [2, 4] {
        let r = feb2019::run(&small(safe), 1, &|_| {}).unwrap();
        let (n, b) = (&r.naive, &r.breakwater);
        let apps = r.params.apps();
        let ratio = b.ratio_to_limit.drain_s.unwrap();
        assert!(ratio <= 1.3, "S={safe}: drain {ratio:.2}x the limit");
        assert!(
            b.failed_starts * 100 <= apps,
            "S={safe}: {} corrupted of {apps}",
            b.failed_starts
        );
        assert_eq!(
            b.corrupted_after_drain, 0,
            "S={safe}: all repaired before done"
        );
        assert!(b.finish_s.is_finite());
        assert!(
            n.failed_starts * 10 > apps,
            "S={safe}: the naive surge corrupts"
        );
        assert!(n.finish_s > b.finish_s, "S={safe}: naive healthy later");
        assert!(b.alerts_sent < n.alerts_sent && b.warnings_sent < n.warnings_sent);
        assert_eq!(
            b.dns_throttled, 0,
            "the boot's RateLimiter keeps under the API limit"
        );
        assert!(n.dns_throttled > 0, "the naive boot is throttled");
    }
}

#[test]
fn limits_and_ratios_are_in_the_json() {
    let r = feb2019::run(&small(4), 2, &|_| {}).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["limits"]["drain_s"], 1500.0);
    assert_eq!(json["limits"]["failed_starts"], 0);
    for side in ["naive", "breakwater"] {
        assert!(
            json[side]["ratio_to_limit"]["drain_s"].is_number(),
            "{side}"
        );
        assert!(json[side]["warnings_sent"].is_number(), "{side}");
    }
    let drain = r
        .metrics()
        .into_iter()
        .find(|m| m.key == "drain_s")
        .unwrap();
    assert_eq!(drain.limit, Some(1500.0));
}
