//! The error types of this crate, one per concern.

use std::io;
use std::path::PathBuf;

use resilience_core::ConfigError;

use crate::ids::{AppId, HostId, HostState};

/// An operation on a [`crate::fleet::Fleet`] failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No host has this id.
    #[error("unknown host {0}")]
    UnknownHost(HostId),
    /// No app has this id.
    #[error("unknown app {0}")]
    UnknownApp(AppId),
    /// The host is full.
    #[error("{host} is full ({capacity} apps): pick another receiver or add capacity")]
    NoCapacity {
        /// The full host.
        host: HostId,
        /// Its capacity.
        capacity: u32,
    },
    /// The host does not accept apps in its current state.
    #[error("{host} is {state} and accepts no apps: only active hosts receive apps")]
    NotAccepting {
        /// The host.
        host: HostId,
        /// Its state.
        state: HostState,
    },
    /// The host cannot go from one state to the other.
    #[error("{host} cannot go from {from} to {to}{hint}")]
    InvalidTransition {
        /// The host.
        host: HostId,
        /// Its current state.
        from: HostState,
        /// The requested state.
        to: HostState,
        /// Why, if known (starts with `": "`).
        hint: String,
    },
    /// The app is in the middle of another operation.
    #[error("{app} is busy (starting): wait for the current start to finish")]
    Busy {
        /// The app.
        app: AppId,
    },
    /// The app's start on the host failed.
    #[error("{app} failed to start on {host}: {reason}")]
    StartFailed {
        /// The app.
        app: AppId,
        /// The host it was started on (where it now is, failed).
        host: HostId,
        /// What went wrong.
        reason: String,
    },
    /// The host does not run this version.
    #[error("{host} does not run version `{version}`")]
    VersionNotRunning {
        /// The host.
        host: HostId,
        /// The version.
        version: String,
    },
    /// A value passed to the fleet is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The adapter does not support this operation (e.g.
    /// [`DrainFleet::evict`](crate::fleet::DrainFleet::evict) on an adapter
    /// that places apps itself); not retryable.
    #[error("unsupported by this fleet adapter: {0}")]
    Unsupported(String),
    /// The fleet's backend could not be reached or answered with an error;
    /// worth retrying with backoff.
    #[error("fleet backend unavailable: {0}")]
    Unavailable(String),
    /// The fleet's backend answered something that breaks its contract
    /// (garbage JSON, missing fields, an unexpected status): retrying cannot
    /// help, the backend (or the adapter's configuration) must be fixed.
    #[error("the fleet backend's answer to {endpoint} breaks its contract: {reason}")]
    BadResponse {
        /// The call, e.g. `GET /v1/hosts`.
        endpoint: String,
        /// What is wrong with the answer, and what to fix.
        reason: String,
    },
}

impl FleetError {
    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FleetError::StartFailed { .. } | FleetError::Busy { .. } | FleetError::Unavailable(_)
        )
    }
}

/// Lets [`resilience_core::retry::RetryPolicy`] retry fleet operations.
impl resilience_core::retry::Retryable for FleetError {
    fn is_retryable(&self) -> bool {
        FleetError::is_retryable(self)
    }
}

/// The planner cannot produce a wave.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The limits themselves are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A host to drain is not in the fleet.
    #[error("host to drain {0} is not in the fleet")]
    UnknownHost(HostId),
    /// No host can receive apps.
    #[error(
        "no receivers: every active, healthy host is being drained ({targets} hosts to drain); add hosts or drain fewer"
    )]
    NoReceivers {
        /// How many hosts are to be drained.
        targets: usize,
    },
    /// The receivers cannot take all the apps of the hosts to drain.
    #[error(
        "not enough capacity: {needed} apps must move but the receivers have room for {available} (after keeping `min_free_capacity` free); add receivers or lower `min_free_capacity`"
    )]
    InsufficientCapacity {
        /// Apps to move.
        needed: u64,
        /// Free slots on receivers.
        available: u64,
    },
    /// A single host has more apps than may be unavailable at once, so it
    /// could never be drained.
    #[error(
        "{host} has {apps} apps but `max_unavailable` allows only {budget} at once: raise `max_unavailable`"
    )]
    HostExceedsUnavailable {
        /// The host.
        host: HostId,
        /// Its apps.
        apps: u64,
        /// The unavailability budget.
        budget: u64,
    },
}

/// The journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Reading or writing the file failed.
    #[error("journal I/O on {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("journal record could not be encoded: {0}")]
    Encode(String),
    /// The record is larger than the format allows.
    #[error("journal record of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
    /// The backend (e.g. a remote store) refused the operation.
    #[error("journal backend: {0}")]
    Backend(String),
    /// Another process holds the journal's lock: one controller per journal.
    #[error(
        "the journal {path} is locked by another controller (another process has it open); \
         only one controller may write a journal: stop the other one or use another path"
    )]
    Locked {
        /// The journal file.
        path: PathBuf,
    },
    /// A record in the middle of the journal is corrupt and valid records follow it: not a
    /// torn final write, so nothing was truncated.
    #[error(
        "corrupt record at offset {offset} of journal {path} ({reason}) followed by valid records \
         from offset {next_good}: this is not a torn final write, so nothing was truncated; \
         restore the journal from a copy or remove the bad record by hand ({good_records} good \
         records before it)"
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the corrupt record.
        offset: u64,
        /// Byte offset of the next valid record.
        next_good: u64,
        /// What is wrong with the record.
        reason: String,
        /// Valid records before it.
        good_records: usize,
    },
}

/// A drain did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The drain cannot be planned (limits, capacity, receivers).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A fleet operation failed and could not be retried any more.
    #[error("fleet operation failed after retries: {0}")]
    Fleet(#[from] FleetError),
    /// The journal failed; the controller stops rather than run unjournaled.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The health gate aborted the drain.
    #[error("drain aborted by the health gate: {reason}")]
    Aborted {
        /// The gate's reason, with the health figures.
        reason: String,
    },
    /// The global deadline passed before the drain finished.
    #[error(
        "drain deadline of {deadline:?} exceeded with {remaining} hosts still to drain; rerun to resume from the journal"
    )]
    DeadlineExceeded {
        /// The configured deadline.
        deadline: std::time::Duration,
        /// Hosts not yet drained.
        remaining: usize,
    },
    /// The journal was written for a different drain.
    #[error("the journal belongs to another drain (targets differ); use a new journal file")]
    JournalMismatch,
}

/// A rollout did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The steps or the configuration are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A fleet operation failed after retries (the rollout was rolled back).
    #[error("fleet operation failed after retries: {0}")]
    Fleet(#[from] FleetError),
    /// The health gate aborted the rollout; every change was rolled back.
    #[error("rollout aborted and rolled back ({undone} changes undone): {reason}")]
    Aborted {
        /// The gate's reason, with the health figures.
        reason: String,
        /// How many changes were undone.
        undone: usize,
    },
    /// Rolling back failed too: the fleet is left partially changed.
    #[error("rollback failed with {pending} changes still applied: {source}")]
    RollbackFailed {
        /// Changes that could not be undone.
        pending: usize,
        /// The last error.
        source: FleetError,
    },
    /// The rollout's deadline passed (the rollout was rolled back).
    #[error("rollout deadline exceeded; rolled back")]
    DeadlineExceeded,
}

/// A name that cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} name is empty: the platform must name every {kind}")]
    Empty {
        /// `host` or `app`.
        kind: &'static str,
    },
    /// The name is too long.
    #[error(
        "{kind} name `{prefix}…` is {len} bytes long; names are at most {max} bytes: shorten it on the platform side"
    )]
    TooLong {
        /// `host` or `app`.
        kind: &'static str,
        /// Its first characters.
        prefix: String,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_NAME_LEN`](crate::names::MAX_NAME_LEN).
        max: usize,
    },
    /// The name holds a control character.
    #[error(
        "{kind} name {name:?} holds a control character at byte {position}: names must be printable"
    )]
    ControlCharacter {
        /// `host` or `app`.
        kind: &'static str,
        /// The name, escaped.
        name: String,
        /// Byte offset of the character.
        position: usize,
    },
    /// The journal maps one name to two ids, or one id to two names.
    #[error(
        "the journal maps {kind} `{name}` and id {id} inconsistently (already {existing}): the journal does not belong to this fleet or was edited"
    )]
    Conflict {
        /// `host` or `app`.
        kind: &'static str,
        /// The name.
        name: String,
        /// The id.
        id: u32,
        /// What it was mapped to before.
        existing: String,
    },
    /// Every id of this kind is taken.
    #[error("no {kind} id left: more than {} {kind}s were named", u32::MAX)]
    Exhausted {
        /// `host` or `app`.
        kind: &'static str,
    },
}
