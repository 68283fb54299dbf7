//! Coordination that holds across leader changes, against a real etcd
//! (`BREAKWATER_ETCD_ENDPOINTS`, see `scripts/etcd.sh`): the leader key is
//! watched, every call into the fleet is fenced, a deposed leader that is
//! still alive does not hold up its successor, and hosts a dead leader
//! left draining keep counting against the fleet-wide budget.
#![cfg(feature = "etcd")]
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::large_futures,
    clippy::too_many_lines,
    clippy::too_many_arguments,
    clippy::items_after_statements,
    clippy::new_without_default,
    clippy::indexing_slicing,
    clippy::await_holding_lock // guards are dropped explicitly before each await
)]

#[path = "support/etcd.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_drain::drain::DrainController;
use fleet_drain::etcd::{BudgetLimits, CoordinationVerdict};
use fleet_drain::fleet::{DrainFleet, HostState};
use fleet_drain::journal::{DrainProgress, Journal};
use support::{TTL, World, connect, drain_config, endpoints, unique_prefix, wait_for};

const BUDGET: BudgetLimits = BudgetLimits {
    max_draining_hosts: 2,
    max_concurrent_starts_per_receiver: 2,
};

async fn delete_leader_key(endpoints: &[String], prefix: &str, drain: &str) {
    let mut client = etcd_client::Client::connect(endpoints, None).await.unwrap();
    let deleted = client
        .delete(format!("{prefix}/leader/{drain}"), None)
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), 1, "no leader key to delete");
}

fn draining(world: &World, targets: &[fleet_drain::fleet::HostId]) -> usize {
    targets
        .iter()
        .filter(|&&h| {
            world
                .sim
                .host(h)
                .is_some_and(|h| h.state == HostState::Draining)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_leader_key_deposes_an_idle_leader_without_a_write() {
    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix("watch");
    let a = connect(&endpoints, &prefix, BUDGET, "a").await;
    let leadership = a.campaign("drain").await.unwrap();
    assert!(leadership.is_live());
    delete_leader_key(&endpoints, &prefix, "drain").await;
    // No write happens: only the watch on the leader key can notice. The
    // lease is renewed all along, so the lease alone never would.
    let reason = tokio::time::timeout(TTL, leadership.lost())
        .await
        .expect("the deleted leader key went unnoticed");
    assert!(reason.contains("leader key"), "{reason}");
    assert!(!leadership.is_live());
    assert_eq!(
        a.verdict(),
        CoordinationVerdict::Proceed,
        "the lease is fine"
    );
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_into_the_fleet_is_fenced_even_when_no_reservation_is_written() {
    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix("fence-all");
    let world = World::new(2, 1, 2, 1);
    let host = world.targets[0][0];
    let a = connect(&endpoints, &prefix, BUDGET, "a").await;
    let leadership = a.campaign("drain").await.unwrap();
    let fleet = leadership.fleet(world.fleet("a"));
    fleet
        .set_host_state(host, HostState::Draining)
        .await
        .unwrap();
    fleet.hosts().await.unwrap();
    let acted = world.checks.lock().unwrap().actions.len();
    delete_leader_key(&endpoints, &prefix, "drain").await;
    // The host slot is already held: the reservation has nothing to write,
    // yet the deposed leader must not reach the fleet.
    let error = fleet
        .set_host_state(host, HostState::Draining)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("leadership of `drain` lost"),
        "{error}"
    );
    let error = fleet.hosts().await.unwrap_err();
    assert!(
        error.to_string().contains("leadership of `drain` lost"),
        "{error}"
    );
    fleet
        .app_health(fleet_drain::fleet::AppId(0))
        .await
        .unwrap_err();
    fleet.cordon(host).await.unwrap_err();
    assert_eq!(
        world.checks.lock().unwrap().actions.len(),
        acted,
        "a deposed leader's call reached the fleet"
    );
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_that_stays_alive_does_not_hold_up_its_successor() {
    tokio::time::timeout(Duration::from_secs(50), async {
        let Some(endpoints) = endpoints() else { return };
        let prefix = unique_prefix("deposed");
        let world = World::new(3, 1, 4, 6);
        let targets = world.targets[0].clone();
        // A leads once and never campaigns again, but stays alive: its
        // lease is renewed until the end of the test.
        let a = connect(&endpoints, &prefix, BUDGET, "a").await;
        let leadership = a.campaign("drain").await.unwrap();
        world
            .checks
            .lock()
            .unwrap()
            .elections
            .push(("a".into(), Instant::now()));
        let task_a = {
            let fleet = world.fleet("a");
            let clock = world.clock;
            let targets = targets.clone();
            tokio::spawn(async move {
                let mut controller = DrainController::with_clock(
                    drain_config(2),
                    Arc::new(leadership.fleet(fleet)),
                    Box::new(leadership.journal()),
                    clock,
                )
                .unwrap();
                leadership.run(controller.run(&targets)).await
            })
        };
        let b = connect(&endpoints, &prefix, BUDGET, "b").await;
        let task_b = world.spawn_controller(b.clone(), "drain", "b", &targets, 2);
        wait_for(Duration::from_secs(15), "a to have hosts draining", || {
            draining(&world, &targets) >= 1
        })
        .await;
        let deposed_at = Instant::now();
        delete_leader_key(&endpoints, &prefix, "drain").await;
        // A stops acting by itself (the watch), its work dropped.
        let a_result = tokio::time::timeout(TTL, task_a).await.unwrap().unwrap();
        assert!(a_result.is_err(), "a's work was not stopped: {a_result:?}");
        // B adopts the wave in progress at once: A's host slots are the
        // drain's, not A's (whose lease is still live).
        let report = tokio::time::timeout(5 * TTL, task_b)
            .await
            .expect("the successor was held up by the deposed leader")
            .unwrap()
            .unwrap();
        assert!(report.resumed);
        assert!(world.all_drained(&targets));
        assert_eq!(a.verdict(), CoordinationVerdict::Proceed, "a stayed alive");
        let checks = world.checks.lock().unwrap();
        let b_elected = checks
            .elections
            .iter()
            .find(|(who, _)| who == "b")
            .map(|(_, at)| *at)
            .unwrap();
        assert!(b_elected > deposed_at);
        assert!(
            checks
                .actions
                .iter()
                .all(|(who, at, _)| who != "a" || *at < b_elected),
            "a acted after b was elected"
        );
        assert!(checks.max_draining <= 2, "{}", checks.max_draining);
        assert!(checks.max_concurrent_starts <= 2);
        assert_eq!(world.sim.stats().max_drains_per_host, 1);
        drop(checks);
        a.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_a_dead_leader_left_draining_count_against_another_drains_budget() {
    tokio::time::timeout(Duration::from_secs(55), async {
        let Some(endpoints) = endpoints() else { return };
        let prefix = unique_prefix("stranded");
        let world = World::new(4, 2, 4, 3);
        let (first, second) = (world.targets[0].clone(), world.targets[1].clone());
        let a = connect(&endpoints, &prefix, BUDGET, "a").await;
        let lease_a = a.lease_id();
        let task_a = world.spawn_controller(a.clone(), "drain-0", "a", &first, 2);
        wait_for(
            Duration::from_secs(15),
            "a to drain two hosts at once",
            || draining(&world, &first) == 2,
        )
        .await;
        // A crashes with two hosts draining: they stay `Draining` in the
        // fleet, and its lease expires.
        task_a.abort();
        drop(a);
        let stranded = draining(&world, &first);
        assert!(stranded >= 1);
        let mut client = etcd_client::Client::connect(&endpoints, None)
            .await
            .unwrap();
        let expiry_started = Instant::now();
        loop {
            let ttl = client
                .lease_time_to_live(lease_a, None)
                .await
                .unwrap()
                .ttl();
            if ttl <= 0 {
                break;
            }
            assert!(
                expiry_started.elapsed() < 3 * TTL,
                "a's lease did not expire (ttl {ttl})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Another drain runs meanwhile: the two stranded hosts still use
        // the whole budget of 2, so it must not start draining.
        let b = connect(&endpoints, &prefix, BUDGET, "b").await;
        let task_b = world.spawn_controller(b.clone(), "drain-1", "b", &second, 2);
        // Give B time to (wrongly) start; not an assertion in itself.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) && draining(&world, &second) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            draining(&world, &second) <= 2 - stranded,
            "drain-1 went past the budget left by drain-0's {stranded} stranded hosts"
        );
        // A replica of drain-0 adopts the stranded hosts and finishes; then
        // drain-1 gets the room.
        let a2 = connect(&endpoints, &prefix, BUDGET, "a2").await;
        let task_a2 = world.spawn_controller(a2.clone(), "drain-0", "a2", &first, 2);
        let report_a2 = tokio::time::timeout(Duration::from_secs(20), task_a2)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(report_a2.resumed);
        let report_b = tokio::time::timeout(Duration::from_secs(20), task_b)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(report_b.hosts_drained, 4);
        assert!(world.all_drained(&first) && world.all_drained(&second));
        let checks = world.checks.lock().unwrap();
        assert!(
            checks.max_draining <= 2,
            "{} hosts draining at once",
            checks.max_draining
        );
        assert!(checks.max_concurrent_starts <= 2);
        assert_eq!(world.sim.stats().max_drains_per_host, 1);
        drop(checks);
        // Nothing is left in the budget once both drains are done.
        let slots = client
            .get(
                format!("{prefix}/budget/hosts/"),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        assert_eq!(slots.kvs().len(), 0, "host slots left behind");
        // The journal of drain-0 tells it once.
        let reader = connect(&endpoints, &prefix, BUDGET, "reader").await;
        let records = reader
            .campaign("drain-0")
            .await
            .unwrap()
            .journal()
            .records()
            .await
            .unwrap();
        let progress = DrainProgress::from_records(&records);
        assert!(progress.finished);
        assert!(progress.wave_starts.values().all(|&n| n == 1));
        reader.close().await.unwrap();
        a2.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await
    .unwrap();
}
