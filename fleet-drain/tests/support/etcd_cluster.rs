//! A three-member etcd cluster on loopback, started by the test itself
//! (free ports, data dirs in a temp dir), every member killed on drop even
//! if the test panics. Included with `#[path]` by `etcd_cluster.rs`.
#![cfg(feature = "etcd")]
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `etcd` binary (`BREAKWATER_ETCD_BIN` or `etcd` on PATH). Missing: a
/// failure in CI, a notice (and `None`: the test returns) elsewhere.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("BREAKWATER_ETCD_BIN") {
        return Some(PathBuf::from(bin));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the `etcd` binary is not on PATH but CI is set: the etcd cluster test must run in CI. \
             Install it with `scripts/etcd.sh ensure`."
        );
        eprintln!(
            "notice: `etcd` is not on PATH; skipping the three-member cluster test \
             (run `scripts/etcd.sh ensure` to run it)"
        );
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One member.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client_url: String,
    child: Option<Child>,
}

/// The cluster; kills every member on drop.
#[derive(Debug)]
pub struct Cluster {
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three members and waits until they elect a leader.
    pub async fn start(bin: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial = initial.join(",");
        let token = format!(
            "breakwater-test-{}-{}",
            std::process::id(),
            dir.path().display().to_string().len()
        );
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            let child = Command::new(bin)
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(dir.path().join(&name))
                .args([
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                    "--listen-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    &token,
                    "--heartbeat-interval",
                    "50",
                    "--election-timeout",
                    "500",
                    "--log-level",
                    "warn",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            members.push(Member {
                name,
                client_url: format!("http://127.0.0.1:{client}"),
                child: Some(child),
            });
        }
        let cluster = Cluster { members, dir };
        let started = Instant::now();
        while cluster.leader().await.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the etcd cluster elected no leader within 20 s; logs in {}",
                cluster.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    /// Client URLs of the members still running.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.clone())
            .collect()
    }

    /// The index of the raft leader, if every running member agrees on one.
    pub async fn leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for member in self.members.iter().filter(|m| m.child.is_some()) {
            let connect = etcd_client::Client::connect([member.client_url.as_str()], None);
            let mut client = tokio::time::timeout(Duration::from_millis(500), connect)
                .await
                .ok()?
                .ok()?;
            let status = tokio::time::timeout(Duration::from_millis(500), client.status())
                .await
                .ok()?
                .ok()?;
            if status.leader() == 0 {
                return None;
            }
            ids.push(
                status
                    .header()
                    .map(etcd_client::ResponseHeader::member_id)?,
            );
            if leader.is_some_and(|l| l != status.leader()) {
                return None;
            }
            leader = Some(status.leader());
        }
        let leader = leader?;
        let position = ids.iter().position(|&id| id == leader)?;
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.child.is_some())
            .nth(position)
            .map(|(i, _)| i)
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
