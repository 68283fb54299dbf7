//! A drain coordinated through a three-member etcd cluster that loses its
//! raft leader mid-drain: the drain pauses or continues, the limits hold,
//! nothing is lost. The test starts its own cluster (needs the `etcd`
//! binary: skipped with a notice without it, a failure with `CI` set).
#![cfg(feature = "etcd")]
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::large_futures,
    clippy::too_many_lines,
    clippy::too_many_arguments,
    clippy::items_after_statements,
    clippy::new_without_default,
    clippy::indexing_slicing
)]

#[path = "support/etcd_cluster.rs"]
mod cluster;
#[path = "support/etcd.rs"]
mod support;

use std::time::Duration;

use fleet_drain::etcd::{BudgetLimits, EtcdCoordinator};
use fleet_drain::journal::{DrainProgress, Journal};
use support::{World, connect, etcd_config, unique_prefix, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_mid_drain_keeps_the_limits_and_loses_nothing() {
    let Some(bin) = cluster::etcd_binary() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut cluster = cluster::Cluster::start(&bin).await;
    tokio::time::timeout(Duration::from_secs(55), async {
        let endpoints = cluster.endpoints();
        let prefix = unique_prefix("cluster");
        let budget = BudgetLimits {
            max_draining_hosts: 2,
            max_concurrent_starts_per_receiver: 2,
        };
        let world = World::new(4, 1, 6, 4);
        let targets = world.targets[0].clone();
        let coordinator = connect(&endpoints, &prefix, budget, "c").await;
        let task = world.spawn_controller(coordinator.clone(), "drain", "c", &targets, 2);
        wait_for(Duration::from_secs(20), "a host to be drained", || {
            world.drained_count() >= 1
        })
        .await;
        assert!(world.drained_count() < targets.len(), "finished too early");
        let leader = cluster.leader().await.expect("a raft leader");
        cluster.kill(leader);
        // The two members left elect a new leader; the drain goes on.
        let report = tokio::time::timeout(Duration::from_secs(40), task)
            .await
            .expect("the drain did not finish after the etcd leader was killed")
            .unwrap()
            .unwrap();
        assert!(world.all_drained(&targets));
        assert!(report.hosts_drained > 0);
        {
            let checks = world.checks.lock().unwrap();
            assert!(checks.max_draining <= 2, "{}", checks.max_draining);
            assert!(checks.max_concurrent_starts <= 2);
        }
        let stats = world.sim.stats();
        assert_eq!(stats.max_drains_per_host, 1, "a host was drained twice");
        assert_eq!(stats.failed_starts, 0);
        // The revoke may reach the dead member and fail: the lease (and the
        // leader key) then expire within a TTL anyway.
        let _ = coordinator.close().await;
        // Nothing lost: the journal in the surviving members tells the
        // whole drain, each host once.
        let reader =
            EtcdCoordinator::connect(etcd_config(&cluster.endpoints(), &prefix, budget), "reader")
                .await
                .unwrap();
        let records = reader
            .campaign("drain")
            .await
            .unwrap()
            .journal()
            .records()
            .await
            .unwrap();
        let progress = DrainProgress::from_records(&records);
        assert!(progress.finished);
        assert_eq!(progress.drained.len(), targets.len());
        assert!(progress.wave_starts.values().all(|&n| n == 1));
        reader.close().await.unwrap();
    })
    .await
    .unwrap();
}
