//! [`EtcdError`]: what can go wrong while coordinating through etcd.

use resilience_core::ConfigError;
use tonic::Code;

/// etcd's own messages for conditions that pass (a restart, an election).
const TRANSIENT_SERVER_ERRORS: [&str; 6] = [
    "no leader",
    "leader changed",
    "request timed out",
    "too many requests",
    "server stopped",
    "not capable",
];

/// Coordination through etcd failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// etcd could not be reached or did not answer in time. Controllers
    /// pause (they never act without etcd) and go on once it answers.
    #[error(
        "etcd unreachable at {endpoints}: {reason}; controllers are paused until etcd answers again (check the etcd cluster and the network to it)"
    )]
    Unreachable {
        /// The configured endpoints.
        endpoints: String,
        /// The client's error.
        reason: String,
    },
    /// etcd answered with an error other than unavailability (e.g. auth).
    #[error("etcd refused the request: {0}")]
    Refused(String),
    /// This controller is no longer the leader of the drain (its lease
    /// expired or was revoked, or it could not renew it in time). It has
    /// stopped acting; another controller takes over from the journal.
    #[error("leadership of `{drain}` lost: {reason}; this controller stopped acting")]
    LeadershipLost {
        /// The drain (election) name.
        drain: String,
        /// Why.
        reason: String,
    },
    /// The budget stored in etcd differs from this controller's.
    #[error(
        "fleet-wide budget mismatch under `{prefix}`: etcd has {stored}, this controller is configured with {configured}; every controller sharing a prefix must use the same `budget`"
    )]
    BudgetMismatch {
        /// The key prefix.
        prefix: String,
        /// The budget in etcd (JSON).
        stored: String,
        /// This controller's budget (JSON).
        configured: String,
    },
    /// Data read from etcd could not be decoded.
    #[error("undecodable data at etcd key `{key}`: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

impl EtcdError {
    /// Whether waiting and trying again can succeed (etcd unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, EtcdError::Unreachable { .. })
    }

    pub(crate) fn from_client(endpoints: &[String], error: &etcd_client::Error) -> Self {
        use etcd_client::Error as E;
        let unreachable = match error {
            E::IoError(_) | E::TransportError(_) | E::EndpointError(_) => true,
            E::GRpcStatus(status) => {
                matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Cancelled
                        | Code::Unknown
                        | Code::Aborted
                        | Code::ResourceExhausted
                ) || TRANSIENT_SERVER_ERRORS
                    .iter()
                    .any(|m| status.message().contains(m))
            }
            E::LeaseKeepAliveError(message) => !message.contains("not found"),
            _ => false,
        };
        if unreachable {
            EtcdError::Unreachable {
                endpoints: endpoints.join(","),
                reason: error.to_string(),
            }
        } else {
            EtcdError::Refused(error.to_string())
        }
    }
}
