//! # fleet-drain
//!
//! Bounded, health-gated fleet drains and staged rollouts.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod drain;
mod error;
pub mod fleet;
pub mod health;
pub mod journal;
pub mod plan;
pub mod rollout;
pub mod sim;

pub use error::{DrainError, FleetError, JournalError, PlanError, RolloutError};
pub use fleet::{App, AppId, AppState, Fleet, FleetSnapshot, Host, HostId, HostState};
