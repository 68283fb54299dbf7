//! Property tests: for random fleets and limits, no wave ever exceeds any
//! limit, and every app ends on an active host exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fleet_drain::PlanError;
use fleet_drain::drain::{DrainConfig, DrainController};
use fleet_drain::fleet::{
    App, AppId, AppState, DrainFleet, FleetSnapshot, Host, HostId, HostState,
};
use fleet_drain::journal::MemoryJournal;
use fleet_drain::plan::{Amount, DrainLimits, Planner};
use fleet_drain::sim::{self, SimConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Fixture {
    old: Vec<u32>, // apps per old host
    new: Vec<u32>, // capacity per new host
    limits: DrainLimits,
}

fn amount(max_count: u32, percent: std::ops::Range<f64>) -> impl Strategy<Value = Amount> {
    prop_oneof![
        (0..=max_count).prop_map(Amount::Count),
        percent.prop_map(Amount::Percent),
    ]
}

fn fixture() -> impl Strategy<Value = Fixture> {
    (
        prop::collection::vec(0u32..15, 1..12),
        prop::collection::vec(5u32..40, 1..12),
        1u32..5,
        // Mostly budgets a host fits in; small ones exercise the errors.
        prop_oneof![
            (1u32..60).prop_map(Amount::Count),
            (25.0f64..=100.0).prop_map(Amount::Percent),
            (0.5f64..25.0).prop_map(Amount::Percent),
        ],
        1u32..6,
        amount(4, 0.0..50.0),
    )
        .prop_map(|(old, new, hosts, unavailable, starts, free)| Fixture {
            old,
            new,
            limits: DrainLimits {
                max_draining_hosts: hosts,
                max_unavailable: unavailable,
                max_starts_per_host_per_minute: starts,
                max_concurrent_starts_per_host: 4,
                min_free_capacity: free,
            },
        })
}

fn snapshot(f: &Fixture) -> (Vec<Host>, Vec<App>, Vec<HostId>) {
    let mut hosts = Vec::new();
    let mut apps = Vec::new();
    let mut targets = Vec::new();
    for &n in &f.old {
        let id = HostId(hosts.len() as u32);
        hosts.push(Host {
            id,
            capacity: n.max(1),
            state: HostState::Active,
            version: "v1".into(),
        });
        targets.push(id);
        for _ in 0..n {
            apps.push(App {
                id: AppId(apps.len() as u32),
                host: id,
                state: AppState::Running,
            });
        }
    }
    for &c in &f.new {
        let id = HostId(hosts.len() as u32);
        hosts.push(Host {
            id,
            capacity: c,
            state: HostState::Active,
            version: "v1".into(),
        });
    }
    (hosts, apps, targets)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_wave_exceeds_a_limit_and_every_app_lands_once(f in fixture()) {
        let (mut hosts, mut apps, targets) = snapshot(&f);
        let planner = Planner::new(f.limits.clone()).unwrap();
        let snap = FleetSnapshot::new(hosts.clone(), apps.clone()).unwrap();
        match planner.check_feasible(&snap, &targets) {
            Ok(()) => {}
            Err(PlanError::InsufficientCapacity { needed, available }) => {
                prop_assert!(needed > available);
                return Ok(());
            }
            Err(PlanError::HostExceedsUnavailable { apps, budget, .. }) => {
                prop_assert!(apps > budget);
                return Ok(());
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
        let total = apps.len() as u64;
        let budget = f.limits.unavailable_budget(total);
        let target_set: HashSet<HostId> = targets.iter().copied().collect();
        for _round in 0..=targets.len() {
            let snap = FleetSnapshot::new(hosts.clone(), apps.clone()).unwrap();
            let remaining: Vec<HostId> = targets
                .iter()
                .copied()
                .filter(|t| hosts[t.0 as usize].state != HostState::Drained)
                .collect();
            if remaining.is_empty() {
                break;
            }
            let plan = planner.next_wave(&snap, &remaining).unwrap();
            prop_assert!(!plan.is_empty(), "a feasible drain must progress");
            // Limits of the wave.
            prop_assert!(plan.hosts().len() as u32 <= f.limits.max_draining_hosts);
            prop_assert!(plan.assignments().len() as u64 <= budget);
            prop_assert!(plan.unplaced().is_empty());
            let wave_apps: usize = plan.hosts().iter().map(|h| snap.apps_on(*h).len()).sum();
            prop_assert_eq!(plan.assignments().len(), wave_apps);
            let mut per_slot: HashMap<(HostId, u32), u32> = HashMap::new();
            let mut per_host: HashMap<HostId, u32> = HashMap::new();
            let mut seen = HashSet::new();
            for a in plan.assignments() {
                prop_assert!(seen.insert(a.app), "{} assigned twice", a.app);
                prop_assert!(!target_set.contains(&a.to));
                prop_assert!(hosts[a.to.0 as usize].state == HostState::Active);
                *per_slot.entry((a.to, a.slot)).or_default() += 1;
                *per_host.entry(a.to).or_default() += 1;
            }
            prop_assert!(per_slot.values().all(|&n| n <= f.limits.max_starts_per_host_per_minute));
            for (host, assigned) in per_host {
                let h = &hosts[host.0 as usize];
                let load = snap.apps_on(host).len() as u32;
                prop_assert!(
                    load + assigned + f.limits.reserve(h.capacity) <= h.capacity,
                    "{host} over capacity"
                );
            }
            // Apply the wave.
            for a in plan.assignments() {
                apps[a.app.0 as usize].host = a.to;
            }
            for h in plan.hosts() {
                hosts[h.0 as usize].state = HostState::Drained;
            }
        }
        for app in &apps {
            prop_assert!(hosts[app.host.0 as usize].state == HostState::Active);
            prop_assert!(!target_set.contains(&app.host));
        }
        prop_assert!(targets.iter().all(|t| hosts[t.0 as usize].state == HostState::Drained));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_controller_keeps_every_limit_on_random_fleets(f in fixture(), seed in any::<u64>()) {
        let s = support::scenario(SimConfig { seed, ..SimConfig::default() }, 0, 0, 0, 0);
        let old: Vec<HostId> = f.old.iter().map(|&n| s.fleet.add_host(n.max(1), "v1")).collect();
        for (&h, &n) in old.iter().zip(&f.old) {
            s.fleet.add_apps(h, n).unwrap();
        }
        for &c in &f.new {
            s.fleet.add_host(c, "v1");
        }
        let mut config = DrainConfig { limits: f.limits.clone(), seed, ..support::bounded_config() };
        config.retry.max_attempts = Some(100);
        config.gate.abort_below_healthy_share = 0.0;
        config.gate.abort_above_failures_per_minute = 1.0e9;
        let mut controller = DrainController::with_clock(
            config,
            Arc::new(s.fleet.clone()),
            Box::new(MemoryJournal::new()),
            s.clock.clone(),
        ).unwrap();
        let result = sim::run(&s.clock, controller.run(&old)).unwrap();
        match result {
            Ok(_) => {}
            Err(fleet_drain::DrainError::Plan(_)) => return Ok(()),
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
        let stats = s.fleet.stats();
        prop_assert!(stats.peak_draining_hosts <= f.limits.max_draining_hosts);
        prop_assert!(stats.peak_starts_per_host_per_minute <= f.limits.max_starts_per_host_per_minute);
        prop_assert!(stats.max_drains_per_host <= 1);
        let (hosts, apps) = sim::run(&s.clock, async {
            (s.fleet.hosts().await.unwrap(), s.fleet.apps().await.unwrap())
        }).unwrap();
        prop_assert_eq!(apps.len() as u32, f.old.iter().sum::<u32>());
        let mut ids = HashSet::new();
        for app in &apps {
            prop_assert!(ids.insert(app.id));
            prop_assert_eq!(hosts[app.host.0 as usize].state, HostState::Active);
            prop_assert_eq!(app.state, AppState::Running);
        }
        for h in &old {
            prop_assert_eq!(hosts[h.0 as usize].state, HostState::Drained);
        }
    }
}
