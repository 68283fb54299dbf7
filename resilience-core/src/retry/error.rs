//! Why a retry loop gave up.

use std::error::Error;
use std::fmt;

use super::Retryable;

/// Why [`RetryPolicy`](super::RetryPolicy) stopped without a success.
///
/// Every variant carries the number of attempts made and the last error an
/// attempt returned. `last_error` is `None` only when no attempt returned an
/// error: the deadline (or every attempt's `per_attempt_timeout`) fired first.
///
/// `Display` says why the loop stopped; the last error is the
/// [`source`](Error::source) (when `E: Error`), so error reporters print the
/// whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError<E> {
    /// The last error is not retryable ([`Retryable::is_retryable`] is false
    /// or the classifier said [`ErrorClass::Permanent`](super::ErrorClass::Permanent)).
    NotRetryable {
        /// Attempts made, including the failed one.
        attempts: u32,
        /// The permanent error.
        error: E,
    },
    /// Every one of `max_attempts` attempts failed.
    AttemptsExhausted {
        /// Attempts made (= `max_attempts`).
        attempts: u32,
        /// The last error returned; `None` if every attempt timed out.
        last_error: Option<E>,
    },
    /// The retry budget refused another retry: the dependency is failing for
    /// many requests and more retries would only add load.
    BudgetExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error returned; `None` if every attempt timed out.
        last_error: Option<E>,
    },
    /// The deadline passed, was about to pass during the next backoff, or cut
    /// off an attempt in flight.
    DeadlineExceeded {
        /// Attempts started (an attempt cut off by the deadline counts).
        attempts: u32,
        /// The last error returned; `None` if the deadline fired before any
        /// attempt returned one.
        last_error: Option<E>,
    },
}

/// The reason of a [`RetryError`] without its payload: for metrics labels and
/// matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryErrorKind {
    /// See [`RetryError::NotRetryable`].
    NotRetryable,
    /// See [`RetryError::AttemptsExhausted`].
    AttemptsExhausted,
    /// See [`RetryError::BudgetExhausted`].
    BudgetExhausted,
    /// See [`RetryError::DeadlineExceeded`].
    DeadlineExceeded,
}

impl RetryErrorKind {
    /// A stable snake-case name (`"budget_exhausted"`), e.g. for a metrics
    /// label.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryErrorKind::NotRetryable => "not_retryable",
            RetryErrorKind::AttemptsExhausted => "attempts_exhausted",
            RetryErrorKind::BudgetExhausted => "budget_exhausted",
            RetryErrorKind::DeadlineExceeded => "deadline_exceeded",
        }
    }
}

impl fmt::Display for RetryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<E> RetryError<E> {
    /// Why the loop stopped.
    pub fn kind(&self) -> RetryErrorKind {
        match self {
            RetryError::NotRetryable { .. } => RetryErrorKind::NotRetryable,
            RetryError::AttemptsExhausted { .. } => RetryErrorKind::AttemptsExhausted,
            RetryError::BudgetExhausted { .. } => RetryErrorKind::BudgetExhausted,
            RetryError::DeadlineExceeded { .. } => RetryErrorKind::DeadlineExceeded,
        }
    }

    /// How many attempts were started.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::NotRetryable { attempts, .. }
            | RetryError::AttemptsExhausted { attempts, .. }
            | RetryError::BudgetExhausted { attempts, .. }
            | RetryError::DeadlineExceeded { attempts, .. } => *attempts,
        }
    }

    /// The last error an attempt returned, if any.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            RetryError::NotRetryable { error, .. } => Some(error),
            RetryError::AttemptsExhausted { last_error, .. }
            | RetryError::BudgetExhausted { last_error, .. }
            | RetryError::DeadlineExceeded { last_error, .. } => last_error.as_ref(),
        }
    }

    /// Consumes the error, returning the last error an attempt returned.
    pub fn into_last_error(self) -> Option<E> {
        match self {
            RetryError::NotRetryable { error, .. } => Some(error),
            RetryError::AttemptsExhausted { last_error, .. }
            | RetryError::BudgetExhausted { last_error, .. }
            | RetryError::DeadlineExceeded { last_error, .. } => last_error,
        }
    }

    /// Converts the carried error with `f`, keeping the reason and the
    /// attempt count (e.g. into an error type of your API).
    pub fn map_error<F>(self, f: impl FnOnce(E) -> F) -> RetryError<F> {
        match self {
            RetryError::NotRetryable { attempts, error } => RetryError::NotRetryable {
                attempts,
                error: f(error),
            },
            RetryError::AttemptsExhausted {
                attempts,
                last_error,
            } => RetryError::AttemptsExhausted {
                attempts,
                last_error: last_error.map(f),
            },
            RetryError::BudgetExhausted {
                attempts,
                last_error,
            } => RetryError::BudgetExhausted {
                attempts,
                last_error: last_error.map(f),
            },
            RetryError::DeadlineExceeded {
                attempts,
                last_error,
            } => RetryError::DeadlineExceeded {
                attempts,
                last_error: last_error.map(f),
            },
        }
    }

    /// Whether the deadline ended the loop.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, RetryError::DeadlineExceeded { .. })
    }

    /// Whether the retry budget ended the loop.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self, RetryError::BudgetExhausted { .. })
    }
}

impl<E> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.attempts();
        let plural = if attempts == 1 { "" } else { "s" };
        match self {
            RetryError::NotRetryable { .. } => write!(
                f,
                "gave up after {attempts} attempt{plural}: the error is not retryable"
            ),
            RetryError::AttemptsExhausted { .. } => write!(
                f,
                "gave up after {attempts} attempt{plural}: all attempts failed (raise `max_attempts` only if the dependency can take the extra load)"
            ),
            RetryError::BudgetExhausted { .. } => write!(
                f,
                "gave up after {attempts} attempt{plural}: retry budget exhausted, the dependency is failing for many requests"
            ),
            RetryError::DeadlineExceeded { .. } => write!(
                f,
                "gave up after {attempts} attempt{plural}: deadline exceeded"
            ),
        }
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.last_error().map(|e| e as &(dyn Error + 'static))
    }
}

/// A retry loop that gave up is never retried by an outer loop: nested retry
/// layers multiply attempts (3 layers of 3 attempts make 27 calls to the
/// failing dependency).
impl<E> Retryable for RetryError<E> {
    fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn accessors_reach_the_last_error() {
        let err: RetryError<io::Error> = RetryError::AttemptsExhausted {
            attempts: 3,
            last_error: Some(io::Error::other("boom")),
        };
        assert_eq!(err.kind(), RetryErrorKind::AttemptsExhausted);
        assert_eq!(err.attempts(), 3);
        assert_eq!(err.last_error().unwrap().to_string(), "boom");
        assert_eq!(err.source().unwrap().to_string(), "boom");
        assert!(err.to_string().starts_with("gave up after 3 attempts"));
        assert_eq!(err.into_last_error().unwrap().to_string(), "boom");
    }

    #[test]
    fn deadline_before_any_error_has_no_source() {
        let err: RetryError<io::Error> = RetryError::DeadlineExceeded {
            attempts: 1,
            last_error: None,
        };
        assert!(err.is_deadline_exceeded());
        assert!(err.source().is_none());
        assert_eq!(
            err.to_string(),
            "gave up after 1 attempt: deadline exceeded"
        );
        assert_eq!(err.kind().as_str(), "deadline_exceeded");
    }

    #[test]
    fn retry_errors_are_never_retried_again() {
        let err = RetryError::NotRetryable {
            attempts: 1,
            error: "bad request",
        };
        assert!(!err.is_retryable());
        assert_eq!(err.last_error(), Some(&"bad request"));
        let budget: RetryError<()> = RetryError::BudgetExhausted {
            attempts: 2,
            last_error: Some(()),
        };
        assert!(budget.is_budget_exhausted());
        assert_eq!(budget.kind().to_string(), "budget_exhausted");
    }

    #[test]
    fn map_error_keeps_reason_and_attempts() {
        let err = RetryError::BudgetExhausted {
            attempts: 2,
            last_error: Some(503_u16),
        };
        let mapped = err.map_error(|code| format!("HTTP {code}"));
        assert_eq!(
            mapped,
            RetryError::BudgetExhausted {
                attempts: 2,
                last_error: Some("HTTP 503".to_owned())
            }
        );
        let permanent = RetryError::NotRetryable {
            attempts: 1,
            error: 400_u16,
        }
        .map_error(u32::from);
        assert_eq!(permanent.last_error(), Some(&400_u32));
    }
}
