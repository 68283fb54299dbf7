//! Planning speed: a 1,000-host wave on a fleet of 10,000 hosts with
//! 1,000,000 apps, and an incremental re-plan after one receiver's health
//! changes.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_drain::fleet::{App, AppId, AppState, FleetSnapshot, Host, HostId, HostState};
use fleet_drain::plan::{Amount, DrainLimits, Planner};

const HOSTS: u32 = 10_000;
const TARGETS: u32 = 2_000;
const APPS_PER_TARGET: u32 = 100;
const APPS_PER_RECEIVER: u32 = 100;

/// 10,000 hosts of 250 slots: 2,000 old hosts to drain and 8,000
/// receivers, 100 apps on each host (1,000,000 apps).
fn fleet() -> (FleetSnapshot, Vec<HostId>) {
    let hosts: Vec<Host> = (0..HOSTS)
        .map(|i| Host {
            id: HostId(i),
            capacity: 250,
            state: HostState::Active,
            version: "v1".into(),
        })
        .collect();
    let mut apps = Vec::with_capacity(1_000_000);
    for i in 0..HOSTS {
        let n = if i < TARGETS {
            APPS_PER_TARGET
        } else {
            APPS_PER_RECEIVER
        };
        for _ in 0..n {
            apps.push(App {
                id: AppId(apps.len() as u32),
                host: HostId(i),
                state: AppState::Running,
            });
        }
    }
    let targets = (0..TARGETS).map(HostId).collect();
    (FleetSnapshot::new(hosts, apps).unwrap(), targets)
}

fn planner() -> Planner {
    Planner::new(DrainLimits {
        max_draining_hosts: 1_000,
        max_unavailable: Amount::Percent(10.0),
        max_starts_per_host_per_minute: 10,
        max_concurrent_starts_per_host: 10,
        min_free_capacity: Amount::Percent(10.0),
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let (mut snapshot, targets) = fleet();
    let planner = planner();
    let plan = planner.next_wave(&snapshot, &targets).unwrap();
    assert_eq!(plan.hosts().len(), 1_000);
    assert_eq!(plan.assignments().len(), 100_000);
    assert_eq!(snapshot.total_apps(), 1_000_000);

    let mut group = c.benchmark_group("plan_wave");
    group.sample_size(20);
    group.bench_function("wave_1000_of_10000_hosts_1m_apps", |b| {
        b.iter(|| {
            planner
                .next_wave(black_box(&snapshot), black_box(&targets))
                .unwrap()
        });
    });
    // A receiver that got assignments turns unhealthy: its apps go to others.
    let receiver = plan.assignments()[0].to;
    snapshot.set_host_healthy(receiver, false);
    group.bench_function("replan_after_one_host_turns_unhealthy", |b| {
        b.iter_batched_ref(
            || plan.clone(),
            |plan| {
                planner
                    .replan_host(plan, black_box(&snapshot), receiver)
                    .unwrap()
            },
            criterion::BatchSize::LargeInput,
        );
    });
    // Baseline for the incremental re-plan: planning the wave from scratch.
    group.bench_function("full_replan_baseline", |b| {
        b.iter(|| {
            planner
                .next_wave(black_box(&snapshot), black_box(&targets))
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
