//! Errors of the circuit breaker.

use std::time::Duration;

/// The breaker refused the call without trying it: it is open, or half-open
/// with all probe slots taken.
///
/// `retry_after` is how long until the breaker lets a probe through: the rest
/// of the open wait when open; when half-open with every probe slot busy, the
/// base open wait (`open_wait.base`), a lower bound on how long it stays shut
/// if the probes fail. Pass it on to clients (e.g. as a `Retry-After` header)
/// instead of retrying at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "circuit breaker is open: the dependency failed recently and is given time to recover; \
     retry after {retry_after:?}"
)]
pub struct BreakerOpen {
    /// How long to wait before trying again.
    pub retry_after: Duration,
}

/// The error of [`CircuitBreaker::call`](super::CircuitBreaker::call): the
/// breaker rejected the call, or the call ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// Rejected without running.
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    /// The call ran and returned this error (recorded as the classifier said).
    #[error("call through circuit breaker failed: {0}")]
    Inner(#[source] E),
}

impl<E> BreakerError<E> {
    /// The call's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Open(_) => None,
            BreakerError::Inner(e) => Some(e),
        }
    }

    /// The rejection, if the breaker refused the call.
    pub fn as_open(&self) -> Option<&BreakerOpen> {
        match self {
            BreakerError::Open(open) => Some(open),
            BreakerError::Inner(_) => None,
        }
    }
}
