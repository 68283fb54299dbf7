//! Error codes, breaker enum spellings and the counting limit shared by every export: the leaf
//! the rest of the addon (and `constants()`, which hands them to JS) builds on.

use resilience_core::breaker::BreakerState;

/// An argument is of the wrong type or out of range.
pub const INVALID_ARG: &str = "ERR_BREAKWATER_INVALID_ARG";
/// Rust code panicked; the call failed but the process lives on.
pub const PANIC: &str = "ERR_BREAKWATER_PANIC";
/// An invariant of the addon itself was broken (a bug, never user input).
pub const INTERNAL: &str = "ERR_BREAKWATER_INTERNAL";
/// A drain that no wave can make progress on.
pub const DRAIN_INFEASIBLE: &str = "ERR_BREAKWATER_DRAIN_INFEASIBLE";
/// Allocator: a file-system operation failed.
pub const ALLOC_IO: &str = "ERR_BREAKWATER_ALLOC_IO";
/// Allocator: any other failure.
pub const ALLOC_FAILED: &str = "ERR_BREAKWATER_ALLOC_FAILED";
/// Allocator: a tarball breaks the hardening rules.
pub const TARBALL_REJECTED: &str = "ERR_BREAKWATER_TARBALL_REJECTED";
/// Allocator: not a readable `.tgz`.
pub const TARBALL_INVALID: &str = "ERR_BREAKWATER_TARBALL_INVALID";
/// Allocator: content does not match its integrity.
pub const INTEGRITY_MISMATCH: &str = "ERR_BREAKWATER_INTEGRITY_MISMATCH";
/// Allocator: the lockfile cannot be used.
pub const LOCKFILE_INVALID: &str = "ERR_BREAKWATER_LOCKFILE_INVALID";
/// Allocator: packages are missing from the store.
pub const PACKAGES_MISSING: &str = "ERR_BREAKWATER_PACKAGES_MISSING";
/// Allocator: below `minFreeBytes`.
pub const NO_SPACE: &str = "ERR_BREAKWATER_NO_SPACE";
/// Allocator: damaged store content.
pub const STORE_CORRUPT: &str = "ERR_BREAKWATER_STORE_CORRUPT";
/// Allocator: packages need a build (install scripts, `binding.gyp`) it does not run.
pub const BUILD_REQUIRED: &str = "ERR_BREAKWATER_BUILD_REQUIRED";
/// Allocator: required packages do not fit this platform (`os`, `cpu`, `libc`).
pub const PLATFORM_MISMATCH: &str = "ERR_BREAKWATER_PLATFORM_MISMATCH";
/// Allocator: another process holds the store.
pub const STORE_BUSY: &str = "ERR_BREAKWATER_STORE_BUSY";
/// Load shed by a limit or the allocator's queue (with `retryAfterMs`).
pub const OVERLOADED: &str = "ERR_BREAKWATER_OVERLOADED";

/// Every code, by the key JS uses in `codes` (`codes.INVALID_ARG`, ...). The codes raised by
/// the JS layer itself (retry stops, breaker open, throttled) are listed here too, so that one
/// table is the contract; `NATIVE_MISSING` is raised before the addon loads, so `lib/native.js`
/// spells it itself and a test checks it against this table.
pub const CODES: &[(&str, &str)] = &[
    ("INVALID_ARG", INVALID_ARG),
    ("PANIC", PANIC),
    ("INTERNAL", INTERNAL),
    ("BUDGET_EXHAUSTED", "ERR_BREAKWATER_BUDGET_EXHAUSTED"),
    ("ATTEMPTS_EXHAUSTED", "ERR_BREAKWATER_ATTEMPTS_EXHAUSTED"),
    ("NOT_RETRYABLE", "ERR_BREAKWATER_NOT_RETRYABLE"),
    ("DEADLINE_EXCEEDED", "ERR_BREAKWATER_DEADLINE_EXCEEDED"),
    ("BREAKER_OPEN", "ERR_BREAKWATER_BREAKER_OPEN"),
    ("OVERLOADED", OVERLOADED),
    ("THROTTLED", "ERR_BREAKWATER_THROTTLED"),
    ("RATE_LIMITED", "ERR_BREAKWATER_RATE_LIMITED"),
    ("DRAIN_INFEASIBLE", DRAIN_INFEASIBLE),
    ("ALLOC_FAILED", ALLOC_FAILED),
    ("ALLOC_IO", ALLOC_IO),
    ("TARBALL_REJECTED", TARBALL_REJECTED),
    ("TARBALL_INVALID", TARBALL_INVALID),
    ("INTEGRITY_MISMATCH", INTEGRITY_MISMATCH),
    ("LOCKFILE_INVALID", LOCKFILE_INVALID),
    ("PACKAGES_MISSING", PACKAGES_MISSING),
    ("NO_SPACE", NO_SPACE),
    ("STORE_CORRUPT", STORE_CORRUPT),
    ("STORE_BUSY", STORE_BUSY),
    ("BUILD_REQUIRED", BUILD_REQUIRED),
    ("PLATFORM_MISMATCH", PLATFORM_MISMATCH),
    ("NATIVE_MISSING", "ERR_BREAKWATER_NATIVE_MISSING"),
];

/// Breaker states in the order of the numbers the native `state()` returns.
pub const BREAKER_STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];

/// `breakerRecord` outcomes, in the order of their numbers.
pub const BREAKER_OUTCOMES: [&str; 4] = ["success", "failure", "ignored", "cancelled"];

/// The number the native `state()` returns for `state`.
pub fn state_index(state: BreakerState) -> u32 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
    }
}

/// Largest whole number most count options take: `2^31 - 1` (a non-negative JS SMI, and what
/// the Rust side stores without overflow).
pub const MAX_U31: u32 = i32::MAX as u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_prefixed() {
        let mut seen = std::collections::HashSet::new();
        for (key, code) in CODES {
            assert_eq!(*code, format!("ERR_BREAKWATER_{key}"));
            assert!(seen.insert(*code), "{code} twice");
        }
    }

    #[test]
    fn state_numbers_index_the_state_table() {
        for (i, state) in BREAKER_STATES.iter().enumerate() {
            assert_eq!(state_index(*state) as usize, i);
        }
    }
}
