//! The error returned when a limit sheds a request.

use std::time::Duration;

/// The limit is full: the request was shed instead of being accepted.
///
/// Shedding is the point of a [`ConcurrencyLimit`](super::ConcurrencyLimit):
/// a fast, cheap refusal (an HTTP 503 or gRPC `RESOURCE_EXHAUSTED`) instead of
/// accepting work the process cannot finish. It is returned at once when
/// every permit is taken and the wait queue is full (or disabled), and after
/// `queue_timeout` when a queued request waited too long.
///
/// `retry_after` is a hint for the caller (e.g. a `Retry-After` header): the
/// estimated time until enough permits are released for a request at the
/// back of the queue, computed as
/// `average permit hold time × (queue position / max_concurrent)` and
/// clamped to the config's `min_retry_after..=max_retry_after`. The average
/// hold time is a moving average (weight 1/8) over a sample of permits: one
/// in 16 per thread among those acquired while at least half of the limit
/// was in use, so the uncontended path never reads the clock. Before the
/// first sample the hint is `min_retry_after`.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::limit::Overloaded;
///
/// let err = Overloaded { retry_after: Duration::from_millis(250) };
/// assert_eq!(err.to_string(), "overloaded: concurrency limit reached, retry after 250ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("overloaded: concurrency limit reached, retry after {retry_after:?}")]
pub struct Overloaded {
    /// How long the caller should wait before trying again (a hint).
    pub retry_after: Duration,
}
