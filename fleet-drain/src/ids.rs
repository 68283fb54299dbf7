//! The identifiers and states every other module speaks of: a leaf module
//! (it imports nothing from this crate), so errors, mechanisms and the
//! orchestration can all use it without import cycles. Re-exported from
//! [`crate::fleet`], where users find them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a host. Small and `Copy`: plans over millions of apps store
/// many of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostId(pub u32);

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host-{}", self.0)
    }
}

/// Identifies an app (one running instance that lives on one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(pub u32);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app-{}", self.0)
    }
}

/// The scheduling state of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Runs apps and accepts new ones.
    Active,
    /// Runs its apps but accepts no new ones.
    Cordoned,
    /// Its apps are being moved away; accepts no new ones.
    Draining,
    /// Empty and out of service.
    Drained,
}

impl HostState {
    /// Whether new apps may be placed on a host in this state.
    pub fn accepts_apps(self) -> bool {
        self == HostState::Active
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostState::Active => "active",
            HostState::Cordoned => "cordoned",
            HostState::Draining => "draining",
            HostState::Drained => "drained",
        })
    }
}

/// The state (and so the health) of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Being started on its host.
    Starting,
    /// Running and healthy.
    Running,
    /// Running but failing its health checks.
    Unhealthy,
    /// Its last start failed.
    Failed,
    /// Not running (e.g. a start that was interrupted).
    Stopped,
}

impl AppState {
    /// Only a running app is healthy.
    pub fn is_healthy(self) -> bool {
        self == AppState::Running
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppState::Starting => "starting",
            AppState::Running => "running",
            AppState::Unhealthy => "unhealthy",
            AppState::Failed => "failed",
            AppState::Stopped => "stopped",
        })
    }
}
