//! Stable error codes, the panic guard and conversions shared by every export.
//!
//! Synchronous exports take the `Env` and throw the right JS error class with
//! a stable `code` themselves (`TypeError`/`RangeError` with
//! `ERR_BREAKWATER_INVALID_ARG`, `Error` with another `ERR_BREAKWATER_*`
//! code), then hand napi a `PendingException` so it does not throw again.

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};

use napi::{Env, Status};
use resilience_core::ConfigError;

pub use crate::codes::{INTERNAL, INVALID_ARG, PANIC};

/// A failure of an export, before it is thrown into JS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BwError {
    /// Thrown as a `TypeError` with code `ERR_BREAKWATER_INVALID_ARG`.
    Type(String),
    /// Thrown as a `RangeError` with code `ERR_BREAKWATER_INVALID_ARG`.
    Range(String),
    /// Thrown as an `Error` with the given code.
    Coded {
        /// One of the `ERR_BREAKWATER_*` codes.
        code: &'static str,
        /// Human-readable message.
        message: String,
    },
}

/// Result of an export body.
pub type BwResult<T> = Result<T, BwError>;

impl BwError {
    /// An out-of-range argument (`RangeError`).
    pub fn range(message: impl Display) -> Self {
        BwError::Range(message.to_string())
    }

    /// An argument of the wrong type (`TypeError`).
    pub fn type_error(message: impl Display) -> Self {
        BwError::Type(message.to_string())
    }

    /// An error with a domain code.
    pub fn coded(code: &'static str, message: impl Display) -> Self {
        BwError::Coded {
            code,
            message: message.to_string(),
        }
    }

    /// The stable `code` this error carries in JS.
    pub fn code(&self) -> &'static str {
        match self {
            BwError::Type(_) | BwError::Range(_) => INVALID_ARG,
            BwError::Coded { code, .. } => code,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            BwError::Type(m) | BwError::Range(m) | BwError::Coded { message: m, .. } => m,
        }
    }

    /// Throws this error into JS and returns the marker napi expects.
    pub fn throw(&self, env: &Env) -> napi::Error {
        let code = Some(self.code());
        let thrown = match self {
            BwError::Type(m) => env.throw_type_error(m, code),
            BwError::Range(m) => env.throw_range_error(m, code),
            BwError::Coded { message, .. } => env.throw_error(message, code),
        };
        match thrown {
            Ok(()) => napi::Error::from_status(Status::PendingException),
            Err(_) => napi::Error::new(Status::GenericFailure, self.message().to_owned()),
        }
    }
}

/// Maps a configuration error, naming the option in camelCase as JS callers
/// spell it.
pub fn from_config(err: &ConfigError) -> BwError {
    BwError::range(format!(
        "invalid option `{}`: {}",
        camel_case(err.field()),
        err.reason()
    ))
}

/// Maps a configuration error like [`from_config`], spelling the duration
/// fields listed in `ms_fields` (snake-case paths such as `"ttl"` or
/// `"open_wait.base"`) as JS does: `ttlMs`, `openWait.baseMs`.
pub fn from_config_ms(err: &ConfigError, ms_fields: &[&str]) -> BwError {
    let field = err.field();
    let name = if ms_fields.contains(&field) {
        format!("{}Ms", camel_case(field))
    } else {
        camel_case(field)
    };
    BwError::range(format!("invalid option `{name}`: {}", err.reason()))
}

/// A `Duration` as JS milliseconds.
pub fn to_ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `max_attempts` → `maxAttempts`, `backoff.max_retry_after` →
/// `backoff.maxRetryAfter`.
pub fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs an export's body without letting a panic unwind into Node: a panic
/// becomes an `Error` with code `ERR_BREAKWATER_PANIC`, a [`BwError`] is
/// thrown as its JS class.
pub fn guard<T>(env: &Env, body: impl FnOnce() -> BwResult<T>) -> napi::Result<T> {
    catch_panic(body).map_err(|e| e.throw(env))
}

/// Runs `body`, turning a panic into a [`BwError`] with code
/// `ERR_BREAKWATER_PANIC`.
pub fn catch_panic<T>(body: impl FnOnce() -> BwResult<T>) -> BwResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_owned());
            Err(BwError::coded(
                PANIC,
                format!("internal error (Rust panic): {message}"),
            ))
        }
    }
}

/// Converts a JS number of milliseconds into a `Duration`, rejecting NaN,
/// negative and infinite values.
pub fn duration_ms(name: &str, ms: f64) -> BwResult<std::time::Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(BwError::range(format!(
            "`{name}` must be a finite number of milliseconds >= 0, got {ms}"
        )));
    }
    std::time::Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| BwError::range(format!("`{name}` is too large: {ms}")))
}

/// Converts a JS number into a `u32`, rejecting fractions and out-of-range
/// values.
pub fn whole_u32(name: &str, value: f64) -> BwResult<u32> {
    if value.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&value) {
        return Err(BwError::range(format!(
            "`{name}` must be a whole number in 0..={}, got {value}",
            u32::MAX
        )));
    }
    Ok(value as u32)
}

/// Converts a JS number into a `usize`, rejecting fractions, negatives and
/// values above `Number.MAX_SAFE_INTEGER`.
pub fn whole_usize(name: &str, value: f64) -> BwResult<usize> {
    if value.fract() != 0.0 || !(0.0..=9_007_199_254_740_991.0).contains(&value) {
        return Err(BwError::range(format!(
            "`{name}` must be a whole number >= 0, got {value}"
        )));
    }
    usize::try_from(value as u64).map_err(|_| BwError::range(format!("`{name}` is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_fields_get_the_ms_suffix() {
        let err = ConfigError::new("base", "too small").nested("open_wait");
        let mapped = from_config_ms(&err, &["open_wait.base"]);
        assert_eq!(
            mapped.message(),
            "invalid option `openWait.baseMs`: too small"
        );
        let plain = from_config_ms(&ConfigError::new("half_open_probes", "x"), &["ttl"]);
        assert!(plain.message().contains("`halfOpenProbes`"));
    }

    #[test]
    fn camel_cases_snake_case_fields() {
        assert_eq!(camel_case("max_attempts"), "maxAttempts");
        assert_eq!(
            camel_case("backoff.max_retry_after"),
            "backoff.maxRetryAfter"
        );
    }

    #[test]
    fn a_panic_becomes_a_coded_error() {
        let err = catch_panic::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(err.code(), PANIC);
        assert!(err.message().contains("boom"));
    }

    #[test]
    fn durations_reject_nan_negative_and_infinity() {
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert_eq!(duration_ms("x", bad).unwrap_err().code(), INVALID_ARG);
        }
        assert_eq!(duration_ms("x", 1500.0).unwrap().as_millis(), 1500);
    }

    #[test]
    fn whole_numbers_reject_fractions_and_negatives() {
        assert!(whole_u32("n", 1.5).is_err());
        assert!(whole_u32("n", -1.0).is_err());
        assert_eq!(whole_u32("n", 3.0).unwrap(), 3);
        assert!(whole_usize("n", f64::NAN).is_err());
        assert_eq!(whole_usize("n", 7.0).unwrap(), 7);
    }
}
