//! What the adaptive algorithms share: the [`Sample`] they are fed and the
//! validation of their limit bounds. A leaf: `aimd`, `gradient` and
//! `adaptive` import it, it imports none of them.

use std::time::{Duration, Instant};

use crate::error::ConfigError;

use super::config::MAX_CONCURRENT;

/// `min_limit >= 1`, `min_limit <= max_limit <= MAX_CONCURRENT`,
/// `initial_limit` in `min_limit..=max_limit`.
pub(crate) fn validate_bounds(
    initial_limit: usize,
    min_limit: usize,
    max_limit: usize,
) -> Result<(), ConfigError> {
    if min_limit == 0 {
        return Err(ConfigError::new("min_limit", "must be at least 1"));
    }
    if max_limit < min_limit || max_limit > MAX_CONCURRENT {
        return Err(ConfigError::new(
            "max_limit",
            format!(
                "must be in `min_limit`..={MAX_CONCURRENT} ({min_limit}..={MAX_CONCURRENT}), got {max_limit}"
            ),
        ));
    }
    if !(min_limit..=max_limit).contains(&initial_limit) {
        return Err(ConfigError::new(
            "initial_limit",
            format!(
                "must be in `min_limit..=max_limit` ({min_limit}..={max_limit}), got {initial_limit}"
            ),
        ));
    }
    Ok(())
}

/// One observed request, as fed to the algorithms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// When the permit was acquired, on the limit's clock.
    pub(crate) started: Instant,
    /// From acquiring the permit to recording the outcome.
    pub(crate) latency: Duration,
    /// The larger of the permits in flight when this one was acquired and
    /// when its outcome was recorded (itself included): how busy the limit
    /// was around this request.
    pub(crate) in_flight: usize,
    /// Timed out, failed with an overload signal, or otherwise dropped.
    pub(crate) dropped: bool,
}
