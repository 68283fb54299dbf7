//! Breaker states, call outcomes and state-change events.

use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The state of a [`CircuitBreaker`](super::CircuitBreaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls flow; outcomes are recorded in the sliding window.
    Closed,
    /// Calls are rejected with [`BreakerOpen`](super::BreakerOpen) until the
    /// open wait has elapsed.
    Open,
    /// A bounded number of probe calls are let through to test the
    /// dependency; the others are rejected.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half-open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    pub(crate) fn to_bits(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    pub(crate) fn from_bits(bits: u64) -> Self {
        match bits {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call that held a [`BreakerPermit`](super::BreakerPermit) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The dependency did its job (it may still count as *slow*).
    Success,
    /// The dependency failed (5xx, timeout, connection refused ...).
    Failure,
    /// The call ended in a way that says nothing about the dependency's
    /// health (a 4xx client error, a caller-side validation error): not
    /// counted at all, and in half-open it frees its probe slot.
    Ignored,
}

/// One transition of a breaker, as delivered by
/// [`CircuitBreaker::subscribe`](super::CircuitBreaker::subscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateChange {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// When it happened, on the breaker's clock.
    pub at: Instant,
}
