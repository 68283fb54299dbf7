use super::*;
use crate::error::PlanError;
use crate::fleet::{App, AppId, AppState, FleetSnapshot, Host, HostId, HostState};

fn snapshot(loads: &[(u32, u32)]) -> FleetSnapshot {
    let hosts = loads
        .iter()
        .enumerate()
        .map(|(i, &(capacity, _))| Host {
            id: HostId(i as u32),
            capacity,
            state: HostState::Active,
            version: "v1".into(),
        })
        .collect();
    let mut apps = Vec::new();
    for (i, &(_, load)) in loads.iter().enumerate() {
        for _ in 0..load {
            apps.push(App {
                id: AppId(apps.len() as u32),
                host: HostId(i as u32),
                state: AppState::Running,
            });
        }
    }
    FleetSnapshot::new(hosts, apps).unwrap()
}

fn limits() -> DrainLimits {
    DrainLimits {
        max_draining_hosts: 2,
        max_unavailable: Amount::Count(100),
        max_starts_per_host_per_minute: 2,
        max_concurrent_starts_per_host: 4,
        min_free_capacity: Amount::Count(0),
    }
}

#[test]
fn invalid_limits_name_the_field() {
    let cases = [
        (
            DrainLimits {
                max_draining_hosts: 0,
                ..limits()
            },
            "max_draining_hosts",
        ),
        (
            DrainLimits {
                max_unavailable: Amount::Count(0),
                ..limits()
            },
            "max_unavailable",
        ),
        (
            DrainLimits {
                max_unavailable: Amount::Percent(150.0),
                ..limits()
            },
            "max_unavailable",
        ),
        (
            DrainLimits {
                max_unavailable: Amount::Percent(0.0),
                ..limits()
            },
            "max_unavailable",
        ),
        (
            DrainLimits {
                max_unavailable: Amount::Percent(f64::NAN),
                ..limits()
            },
            "max_unavailable",
        ),
        (
            DrainLimits {
                max_starts_per_host_per_minute: 0,
                ..limits()
            },
            "max_starts_per_host_per_minute",
        ),
        (
            DrainLimits {
                min_free_capacity: Amount::Percent(100.0),
                ..limits()
            },
            "min_free_capacity",
        ),
        (
            DrainLimits {
                min_free_capacity: Amount::Percent(-1.0),
                ..limits()
            },
            "min_free_capacity",
        ),
    ];
    for (limits, field) in cases {
        let err = Planner::new(limits).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    assert!(Planner::new(DrainLimits::default()).is_ok());
}

#[test]
fn amounts_parse_from_counts_and_percentages() {
    assert_eq!("5".parse::<Amount>().unwrap(), Amount::Count(5));
    assert_eq!("12.5%".parse::<Amount>().unwrap(), Amount::Percent(12.5));
    assert!("x%".parse::<Amount>().is_err());
    assert!("-3".parse::<Amount>().is_err());
    assert_eq!(Amount::Percent(10.0).floor_of(99), 9);
    assert_eq!(Amount::Percent(10.0).ceil_of(99), 10);
    let json = serde_json::to_string(&Amount::Percent(10.0)).unwrap();
    assert_eq!(json, "\"10%\"");
    assert_eq!(
        serde_json::from_str::<Amount>("7").unwrap(),
        Amount::Count(7)
    );
}

#[test]
fn waves_never_exceed_max_draining_hosts() {
    let snap = snapshot(&[(10, 2), (10, 2), (10, 2), (10, 0), (10, 0)]);
    let planner = Planner::new(limits()).unwrap();
    let plan = planner
        .next_wave(&snap, &[HostId(0), HostId(1), HostId(2)])
        .unwrap();
    assert_eq!(plan.hosts(), [HostId(0), HostId(1)]);
    assert_eq!(plan.assignments().len(), 4);
}

#[test]
fn waves_stop_at_the_unavailability_budget() {
    let snap = snapshot(&[(10, 3), (10, 3), (10, 0), (10, 0)]);
    let planner = Planner::new(DrainLimits {
        max_unavailable: Amount::Count(4),
        ..limits()
    })
    .unwrap();
    let plan = planner.next_wave(&snap, &[HostId(0), HostId(1)]).unwrap();
    assert_eq!(plan.hosts(), [HostId(0)]);
}

#[test]
fn receivers_keep_their_free_capacity() {
    let snap = snapshot(&[(10, 4), (5, 0), (5, 0)]);
    // 70 % of 5 = 3.5, rounded up: 4 reserved, 1 free each.
    let strict = Planner::new(DrainLimits {
        min_free_capacity: Amount::Percent(70.0),
        ..limits()
    })
    .unwrap();
    let err = strict.check_feasible(&snap, &[HostId(0)]).unwrap_err();
    assert_eq!(
        err,
        PlanError::InsufficientCapacity {
            needed: 4,
            available: 2
        }
    );
    let planner = Planner::new(DrainLimits {
        min_free_capacity: Amount::Percent(60.0),
        ..limits()
    })
    .unwrap();
    planner.check_feasible(&snap, &[HostId(0)]).unwrap();
    // 60 % of 5 = 3 reserved, 2 free each: exactly room for 4.
    let plan = planner.next_wave(&snap, &[HostId(0)]).unwrap();
    assert!(plan.unplaced().is_empty());
    for r in plan.receivers() {
        assert!(r.load + r.assigned + r.reserve <= r.capacity);
    }
}

#[test]
fn infeasible_drains_give_clear_errors() {
    let planner = Planner::new(limits()).unwrap();
    let snap = snapshot(&[(10, 4), (10, 4)]);
    let err = planner
        .check_feasible(&snap, &[HostId(0), HostId(1)])
        .unwrap_err();
    assert_eq!(err, PlanError::NoReceivers { targets: 2 });
    assert!(err.to_string().contains("no receivers"));

    let snap = snapshot(&[(10, 8), (5, 2)]);
    let err = planner.check_feasible(&snap, &[HostId(0)]).unwrap_err();
    assert!(err.to_string().contains("8 apps must move"), "{err}");

    let planner = Planner::new(DrainLimits {
        max_unavailable: Amount::Count(3),
        ..limits()
    })
    .unwrap();
    let snap = snapshot(&[(10, 8), (20, 0)]);
    let err = planner.check_feasible(&snap, &[HostId(0)]).unwrap_err();
    assert!(err.to_string().contains("raise `max_unavailable`"), "{err}");

    let err = planner.check_feasible(&snap, &[HostId(9)]).unwrap_err();
    assert_eq!(err, PlanError::UnknownHost(HostId(9)));
}

#[test]
fn start_slots_respect_the_per_minute_limit() {
    let snap = snapshot(&[(10, 5), (10, 0)]);
    let planner = Planner::new(limits()).unwrap();
    let plan = planner.next_wave(&snap, &[HostId(0)]).unwrap();
    let slots: Vec<u32> = plan.assignments().iter().map(|a| a.slot).collect();
    assert_eq!(slots, [0, 0, 1, 1, 2]);
    let text = plan.to_string();
    assert!(
        text.contains("1 hosts draining (1 new: host-0), 5 apps to move"),
        "{text}"
    );
    assert!(
        text.contains("host-1: 0 -> 5 of 10 apps (+5, over 3 minute(s))"),
        "{text}"
    );
}

#[test]
fn replan_moves_apps_off_a_receiver_that_turned_unhealthy() {
    let mut snap = snapshot(&[(10, 4), (10, 0), (10, 0), (10, 0)]);
    let planner = Planner::new(limits()).unwrap();
    let mut plan = planner.next_wave(&snap, &[HostId(0)]).unwrap();
    assert!(plan.assignments().iter().any(|a| a.to == HostId(1)));
    snap.set_host_healthy(HostId(1), false);
    let replan = planner.replan_host(&mut plan, &snap, HostId(1)).unwrap();
    assert_eq!(replan.moved, 2);
    assert!(plan.assignments().iter().all(|a| a.to != HostId(1)));
    assert_eq!(plan.assignments().len(), 4);

    snap.set_host_healthy(HostId(1), true);
    let replan = planner.replan_host(&mut plan, &snap, HostId(1)).unwrap();
    assert!(replan.added_receiver);
    // A target never becomes a receiver.
    let replan = planner.replan_host(&mut plan, &snap, HostId(0)).unwrap();
    assert_eq!(replan, Replan::default());
}
