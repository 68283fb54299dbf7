//! The error of a denied [`check`](super::RateLimiter::check).

use std::time::Duration;

/// The request exceeds the rate; it would conform after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("rate limited: the next request conforms in {retry_after:?}; wait that long or drop it")]
pub struct RateLimited {
    /// How long until one request would be allowed (assuming nobody else
    /// takes it first).
    pub retry_after: Duration,
}
