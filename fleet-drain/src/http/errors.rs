//! What can go wrong with one call to the platform, and whether it is worth
//! another attempt.

use std::time::Duration;

use resilience_core::retry::{RetryError, Retryable};

use crate::error::FleetError;

/// One failed call (one attempt, or the last one of a retried call).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum CallError {
    /// The TCP connection failed or broke before a whole response arrived.
    #[error("{endpoint}: connection to {authority} failed ({reason}); is the platform up there?")]
    Connection {
        endpoint: String,
        authority: String,
        reason: String,
    },
    /// No whole response within the per-call timeout.
    #[error("{endpoint}: no answer within {after:?} (the per-call timeout)")]
    Timeout { endpoint: String, after: Duration },
    /// A 5xx or a 429: the platform is failing or overloaded.
    #[error("{endpoint}: the platform answered {status} ({code}: {message})")]
    Transient {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A 4xx with a well-formed error body: the request was refused.
    #[error("{endpoint}: the platform refused the call with {status} ({code}: {message})")]
    Refused {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },
    /// A retryable failure that lasted until the retries stopped.
    #[error("{last}; {why}")]
    Exhausted { last: Box<CallError>, why: String },
    /// An answer that breaks the contract.
    #[error("{endpoint}: {reason}")]
    BadResponse { endpoint: String, reason: String },
}

impl Retryable for CallError {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Connection { .. } | CallError::Timeout { .. } | CallError::Transient { .. }
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl CallError {
    /// Whether the platform may have executed the call anyway (no answer,
    /// or a transient failure that might come from a proxy in front of it).
    pub(crate) fn outcome_unknown(&self) -> bool {
        match self {
            CallError::Exhausted { last, .. } => last.outcome_unknown(),
            CallError::Connection { .. }
            | CallError::Timeout { .. }
            | CallError::Transient { .. } => true,
            CallError::Refused { .. } | CallError::BadResponse { .. } => false,
        }
    }

    /// The fleet error for a call whose failure has no better, call-specific
    /// mapping.
    pub(crate) fn into_fleet_error(self) -> FleetError {
        match self {
            CallError::BadResponse { endpoint, reason } => {
                FleetError::BadResponse { endpoint, reason }
            }
            CallError::Refused {
                endpoint,
                status,
                code,
                message,
            } => FleetError::BadResponse {
                endpoint,
                reason: format!(
                    "status {status} with error code `{code}` ({message}) is not an answer \
                     this call has in the contract (docs/http-contract.md)"
                ),
            },
            transient @ (CallError::Exhausted { .. }
            | CallError::Connection { .. }
            | CallError::Timeout { .. }
            | CallError::Transient { .. }) => FleetError::Unavailable(transient.to_string()),
        }
    }
}

/// The last error of a retried call, with why the retries stopped.
pub(crate) fn give_up(error: RetryError<CallError>, endpoint: &str) -> CallError {
    let attempts = error.attempts();
    let why = match &error {
        RetryError::NotRetryable { .. } => None,
        RetryError::AttemptsExhausted { .. } => Some(format!("gave up after {attempts} attempts")),
        RetryError::BudgetExhausted { .. } => Some(format!(
            "gave up after {attempts} attempts (retry budget exhausted: the platform fails many calls)"
        )),
        RetryError::DeadlineExceeded { .. } => Some(format!(
            "gave up after {attempts} attempts (retry.overall_timeout passed)"
        )),
    };
    match (error.into_last_error(), why) {
        (Some(last), None) => last,
        (Some(last), Some(why)) => CallError::Exhausted {
            last: Box::new(last),
            why,
        },
        (None, why) => CallError::Exhausted {
            last: Box::new(CallError::BadResponse {
                endpoint: endpoint.to_owned(),
                reason: "no attempt finished".into(),
            }),
            why: why.unwrap_or_default(),
        },
    }
}
