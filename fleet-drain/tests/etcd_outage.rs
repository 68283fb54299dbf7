//! etcd stopped in the middle of a drain: controllers pause with a clear
//! error and resume when it returns, within the budget and without
//! draining a host twice.
//!
//! Runs its own etcd (through `scripts/etcd.sh start|halt|stop NAME`) so it
//! can stop it without disturbing the other tests; runs only where the
//! shared test etcd is configured (`BREAKWATER_ETCD_ENDPOINTS`).
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

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_drain::etcd::{BudgetLimits, CoordinationVerdict, EtcdCoordinator};
use support::{World, endpoints, etcd_config, unique_prefix, wait_for};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/etcd.sh")
}

fn etcd(command: &str, name: &str) -> String {
    let output = Command::new("bash")
        .arg(script())
        .args([command, name])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/etcd.sh {command} {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stops and removes the private etcd however the test ends.
struct PrivateEtcd(String);

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_pause_while_etcd_is_down_and_resume_within_the_budget() {
    if endpoints().is_none() {
        return;
    }
    let name = format!("outage-{}", std::process::id());
    let env = etcd("start", &name);
    let _guard = PrivateEtcd(name.clone());
    let endpoint = env
        .trim()
        .strip_prefix("export BREAKWATER_ETCD_ENDPOINTS=")
        .unwrap()
        .to_owned();
    tokio::time::timeout(Duration::from_secs(55), async {
        let prefix = unique_prefix("outage");
        let budget = BudgetLimits {
            max_draining_hosts: 2,
            max_concurrent_starts_per_receiver: 2,
        };
        let world = World::new(4, 2, 4, 3);
        let mut coordinators = Vec::new();
        let mut tasks = Vec::new();
        for (i, targets) in world.targets.iter().enumerate() {
            let coordinator = EtcdCoordinator::connect(
                etcd_config(std::slice::from_ref(&endpoint), &prefix, budget),
                format!("c{i}"),
            )
            .await
            .unwrap();
            coordinators.push(coordinator.clone());
            tasks.push(world.spawn_controller(
                coordinator,
                &format!("drain-{i}"),
                &format!("c{i}"),
                targets,
                1,
            ));
        }
        wait_for(Duration::from_secs(20), "a first host drained", || {
            world.drained_count() >= 1
        })
        .await;
        assert!(
            world.drained_count() < 8,
            "drains finished before the outage"
        );

        etcd("halt", &name);
        let halted_at = Instant::now();
        // Every controller reports the outage and stops acting.
        wait_for(
            Duration::from_secs(4),
            "controllers to report etcd down",
            || {
                coordinators.iter().all(|c| {
                    let status = c.status();
                    matches!(status.verdict, CoordinationVerdict::Pause { .. })
                        && status
                            .last_error
                            .as_deref()
                            .is_some_and(|e| e.contains("etcd unreachable"))
                })
            },
        )
        .await;
        // Nothing changes while etcd is down beyond starts already handed
        // to the fleet.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let quiet_from = halted_at + Duration::from_secs(2);
        {
            let checks = world.checks.lock().unwrap();
            let late: Vec<_> = checks
                .actions
                .iter()
                .filter(|(_, at, _)| *at > quiet_from)
                .collect();
            assert!(late.is_empty(), "acted without etcd: {late:?}");
        }
        etcd("start", &name);

        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for targets in &world.targets {
            assert!(world.all_drained(targets));
        }
        for c in &coordinators {
            assert_eq!(c.verdict(), CoordinationVerdict::Proceed);
        }
        let checks = world.checks.lock().unwrap();
        assert!(
            checks.max_draining <= 2,
            "{} draining at once",
            checks.max_draining
        );
        assert!(checks.max_concurrent_starts <= 2);
        assert_eq!(
            world.sim.stats().max_drains_per_host,
            1,
            "a host was drained twice"
        );
    })
    .await
    .unwrap();
}
