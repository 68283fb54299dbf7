//! Several drain controllers coordinated through a real etcd (from
//! `BREAKWATER_ETCD_ENDPOINTS`, see `scripts/etcd.sh`): the fleet-wide
//! budget, leader handover and fencing.
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

#[path = "support/etcd.rs"]
mod support;

use std::time::{Duration, Instant};

use fleet_drain::etcd::{BudgetLimits, EtcdConfig, EtcdCoordinator, EtcdError};
use fleet_drain::journal::{DrainProgress, Journal};
use support::{TTL, World, connect, endpoints, etcd_config, unique_prefix, wait_for};

const BUDGET: BudgetLimits = BudgetLimits {
    max_draining_hosts: 2,
    max_concurrent_starts_per_receiver: 2,
};

/// `n` controllers, each draining its own hosts (2 at a time on its own),
/// share a budget of 2 draining hosts and 2 concurrent starts per
/// receiver.
async fn controllers_share_the_budget(n: usize, test: &str) {
    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix(test);
    let world = World::new(4, n, 3, 3);
    let mut tasks = Vec::new();
    for (i, targets) in world.targets.iter().enumerate() {
        let coordinator =
            EtcdCoordinator::connect(etcd_config(&endpoints, &prefix, BUDGET), format!("c{i}"))
                .await
                .unwrap();
        tasks.push(world.spawn_controller(
            coordinator,
            &format!("drain-{i}"),
            &format!("c{i}"),
            targets,
            2,
        ));
    }
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert_eq!(report.hosts_drained, 3);
    }
    for targets in &world.targets {
        assert!(world.all_drained(targets));
    }
    let checks = world.checks.lock().unwrap();
    // Together the controllers would drain 2 * n hosts at once; the
    // fleet-wide budget holds them to 2, at every step.
    assert!(
        checks.max_draining <= 2,
        "{} hosts draining at once",
        checks.max_draining
    );
    assert!(
        checks.max_concurrent_starts <= 2,
        "{} concurrent starts into one receiver",
        checks.max_concurrent_starts
    );
    assert!(checks.max_draining >= 1);
    assert_eq!(
        world.sim.stats().max_drains_per_host,
        1,
        "a host was drained twice"
    );
    assert_eq!(world.sim.stats().failed_starts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_never_exceed_the_fleet_wide_budget() {
    tokio::time::timeout(
        Duration::from_secs(45),
        controllers_share_the_budget(2, "two"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_never_exceed_the_fleet_wide_budget() {
    tokio::time::timeout(
        Duration::from_secs(45),
        controllers_share_the_budget(3, "three"),
    )
    .await
    .unwrap();
}

/// Two replicas of one drain: A leads; `kill` ends A's leadership; B must
/// be elected within 2 × TTL and finish the drain from the journal.
async fn handover(test: &str, kill: &str) {
    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix(test);
    let budget = BudgetLimits {
        max_draining_hosts: 1,
        max_concurrent_starts_per_receiver: 2,
    };
    let world = World::new(3, 1, 5, 3);
    let targets = world.targets[0].clone();
    let a = connect(&endpoints, &prefix, budget, "a").await;
    let task_a = world.spawn_controller(a.clone(), "drain", "a", &targets, 1);
    wait_for(Duration::from_secs(10), "a to lead", || {
        !world.checks.lock().unwrap().elections.is_empty()
    })
    .await;
    let b = connect(&endpoints, &prefix, budget, "b").await;
    let task_b = world.spawn_controller(b.clone(), "drain", "b", &targets, 1);
    wait_for(Duration::from_secs(15), "a to drain a host", || {
        world.drained_count() >= 1
    })
    .await;
    assert!(
        world.drained_count() < targets.len(),
        "drain finished before the handover"
    );

    let killed_at = Instant::now();
    if kill == "revoke" {
        let mut client = etcd_client::Client::connect(&endpoints, None)
            .await
            .unwrap();
        client.lease_revoke(a.lease_id()).await.unwrap();
    } else {
        // A crash: the task and every handle of A's coordinator are gone,
        // so its keep-alive stops and its lease expires after one TTL.
        task_a.abort();
    }
    drop(a);
    let successor_elected = |checks: &support::Checks| {
        checks
            .elections
            .iter()
            .find(|(_, at)| *at > killed_at)
            .map(|(who, at)| (who.clone(), *at))
    };
    wait_for(2 * TTL, "a successor to be elected within 2 x TTL", || {
        successor_elected(&world.checks.lock().unwrap()).is_some()
    })
    .await;
    let mut reports = vec![
        tokio::time::timeout(Duration::from_secs(30), task_b)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    ];
    if kill == "revoke" {
        // A campaigned again (with a new lease); it either led the rest of
        // the drain or found it finished once B resigned.
        reports.push(
            tokio::time::timeout(Duration::from_secs(10), task_a)
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    assert!(world.all_drained(&targets));
    // Whoever drained the rest resumed the journaled drain (a run that
    // finds the drain already finished reports nothing to resume).
    assert!(
        reports.iter().any(|r| r.resumed && r.hosts_drained > 0),
        "no successor resumed the drain from the journal: {reports:?}"
    );
    assert_eq!(
        world.sim.stats().max_drains_per_host,
        1,
        "a host was drained twice"
    );
    {
        let checks = world.checks.lock().unwrap();
        assert!(checks.max_draining <= 1);
        let (successor, elected_at) = successor_elected(&checks).unwrap();
        assert!(elected_at.duration_since(killed_at) < 2 * TTL);
        if kill == "crash" {
            assert_eq!(successor, "b");
        }
        // The deposed leader did nothing once its successor began.
        if successor == "b" {
            assert!(
                checks
                    .actions
                    .iter()
                    .all(|(who, at, _)| who != "a" || *at < elected_at),
                "a acted after b was elected"
            );
        }
    }
    // The journal in etcd tells the whole story once.
    let c = connect(&endpoints, &prefix, budget, "reader").await;
    let leadership = c.campaign("drain").await.unwrap();
    let records = leadership.journal().records().await.unwrap();
    let progress = DrainProgress::from_records(&records);
    assert!(progress.finished);
    assert_eq!(progress.drained.len(), targets.len());
    assert!(progress.wave_starts.values().all(|&n| n == 1));
    c.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_leaders_lease_hands_over_within_two_ttls_and_resumes_from_the_journal() {
    tokio::time::timeout(Duration::from_secs(50), handover("revoke", "revoke"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_within_two_ttls_and_never_drains_a_host_twice() {
    tokio::time::timeout(Duration::from_secs(50), handover("crash", "crash"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_stops_acting_before_its_lease_expires() {
    tokio::time::timeout(Duration::from_secs(50), async {
        let Some(endpoints) = endpoints() else { return };
        let prefix = unique_prefix("partition");
        let budget = BudgetLimits {
            max_draining_hosts: 1,
            max_concurrent_starts_per_receiver: 2,
        };
        let world = World::new(3, 1, 5, 3);
        let targets = world.targets[0].clone();
        let proxy = support::Proxy::start(&endpoints[0]).await;
        let a = EtcdCoordinator::connect(
            etcd_config(std::slice::from_ref(&proxy.endpoint), &prefix, budget),
            "a",
        )
        .await
        .unwrap();
        let task_a = world.spawn_controller(a.clone(), "drain", "a", &targets, 1);
        wait_for(Duration::from_secs(10), "a to lead", || {
            !world.checks.lock().unwrap().elections.is_empty()
        })
        .await;
        let b = connect(&endpoints, &prefix, budget, "b").await;
        let task_b = world.spawn_controller(b.clone(), "drain", "b", &targets, 1);
        wait_for(Duration::from_secs(15), "a to drain a host", || {
            world.drained_count() >= 1
        })
        .await;

        let partitioned_at = Instant::now();
        proxy.partition();
        wait_for(TTL, "a to stop acting", || {
            world
                .checks
                .lock()
                .unwrap()
                .stops
                .iter()
                .any(|(who, _)| who == "a")
        })
        .await;
        assert!(!matches!(
            a.verdict(),
            fleet_drain::etcd::CoordinationVerdict::Proceed
        ));
        wait_for(3 * TTL, "b to be elected", || {
            world
                .checks
                .lock()
                .unwrap()
                .elections
                .iter()
                .any(|(who, _)| who == "b")
        })
        .await;
        {
            let checks = world.checks.lock().unwrap();
            let a_stopped = checks
                .stops
                .iter()
                .find(|(who, _)| who == "a")
                .map(|(_, at)| *at)
                .unwrap();
            let b_elected = checks
                .elections
                .iter()
                .find(|(who, _)| who == "b")
                .map(|(_, at)| *at)
                .unwrap();
            // A stopped within one TTL of the partition, before its lease
            // expired in etcd (B can only be elected after that), by at
            // least part of the safety margin.
            assert!(a_stopped.duration_since(partitioned_at) < TTL);
            assert!(
                b_elected.duration_since(a_stopped) >= Duration::from_millis(200),
                "a stopped {:?} before b was elected",
                b_elected.saturating_duration_since(a_stopped)
            );
            assert!(
                checks
                    .actions
                    .iter()
                    .all(|(who, at, _)| who != "a" || *at <= a_stopped),
                "a acted after it stopped"
            );
        }
        let report = tokio::time::timeout(Duration::from_secs(30), task_b)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(report.resumed);
        assert!(world.all_drained(&targets));
        assert_eq!(world.sim.stats().max_drains_per_host, 1);
        assert!(world.checks.lock().unwrap().max_draining <= 1);
        task_a.abort();
        b.close().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_journal_appends_are_fenced() {
    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix("fence");
    let config = etcd_config(&endpoints, &prefix, BUDGET);
    let a = EtcdCoordinator::connect(config.clone(), "a").await.unwrap();
    let leadership = a.campaign("drain").await.unwrap();
    let mut journal = leadership.journal();
    journal
        .append(&fleet_drain::journal::JournalRecord::DrainStarted { targets: vec![] })
        .await
        .unwrap();
    // Someone deletes the leader key (as an operator or an expired lease
    // would): A's next write must not land.
    let mut client = etcd_client::Client::connect(&endpoints, None)
        .await
        .unwrap();
    client
        .delete(format!("{prefix}/leader/drain"), None)
        .await
        .unwrap();
    let error = journal
        .append(&fleet_drain::journal::JournalRecord::Finished)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("leadership of `drain` lost"),
        "{error}"
    );
    assert!(leadership.lost_reason().is_some());
    let b = EtcdCoordinator::connect(config, "b").await.unwrap();
    let records = b
        .campaign("drain")
        .await
        .unwrap()
        .journal()
        .records()
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "the deposed leader's append landed");
    // A new campaign by A gets a newer fencing token than before.
    b.close().await.unwrap();
    let again = a.campaign("drain").await.unwrap();
    assert!(again.token() > leadership.token());
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_with_a_different_budget_are_refused() {
    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix("mismatch");
    let a = connect(&endpoints, &prefix, BUDGET, "a").await;
    let other = BudgetLimits {
        max_draining_hosts: 5,
        ..BUDGET
    };
    let error = EtcdCoordinator::connect(etcd_config(&endpoints, &prefix, other), "b")
        .await
        .unwrap_err();
    assert!(matches!(error, EtcdError::BudgetMismatch { .. }), "{error}");
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_a_clear_error_at_connect() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = EtcdConfig {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        request_timeout: Duration::from_millis(300),
        ..EtcdConfig::default()
    };
    let started = Instant::now();
    let error = EtcdCoordinator::connect(config, "a").await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("etcd unreachable"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A drain-only adapter (no rollout side) is coordinated through
/// `Leadership::drain_fleet`: it drains within the fleet-wide budget, and
/// its rollout calls are refused before anything is fenced or done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_only_adapter_is_coordinated_and_refuses_rollout_calls() {
    use std::sync::Arc;

    use fleet_drain::drain::DrainController;
    use fleet_drain::fleet::{DrainFleet, FleetError, RolloutFleet};

    let Some(endpoints) = endpoints() else { return };
    let prefix = unique_prefix("drain-only");
    let world = World::new(4, 1, 3, 3);
    let coordinator = connect(&endpoints, &prefix, BUDGET, "c0").await;
    let fleet: Arc<dyn DrainFleet> = world.fleet("c0");
    let targets = world.targets[0].clone();
    let clock = world.clock;
    let report = coordinator
        .lead("drain-only", |leadership| {
            let fleet = Arc::clone(&fleet);
            let targets = targets.clone();
            async move {
                let coordinated = leadership.drain_fleet(fleet);
                let refused = coordinated.shift_traffic("v2", 10.0).await.unwrap_err();
                assert!(matches!(refused, FleetError::Unsupported(_)), "{refused}");
                let mut controller = DrainController::with_clock(
                    support::drain_config(2),
                    Arc::new(coordinated),
                    Box::new(leadership.journal()),
                    clock,
                )
                .unwrap();
                controller.run(&targets).await.unwrap()
            }
        })
        .await
        .unwrap();
    assert_eq!(report.hosts_drained, 3);
    assert!(world.all_drained(&targets));
    let checks = world.checks.lock().unwrap();
    assert!(checks.max_draining <= 2, "{}", checks.max_draining);
    assert!(checks.max_concurrent_starts <= 2);
}
