//! The errors of the tower services.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::breaker::BreakerOpen;
use crate::limit::Overloaded;
use crate::retry::RetryErrorKind;

/// A type-erased error, as tower, hyper and tonic use them
/// (`Box<dyn Error + Send + Sync>`): every service of this module returns
/// one, so the layers stack in any order. Inspect it with `downcast_ref`
/// (`err.downcast_ref::<Overloaded>()`) or [`retry_after_hint`].
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The retry service gave up on a retryable *error* (a retryable response
/// is handed back as the response instead): every attempt failed, the retry
/// budget refused another retry, or the deadline ended the loop.
///
/// The last error of an attempt is the [`source`](Error::source) (absent
/// when the deadline cut off an attempt before any error was returned), so
/// error reporters print the whole chain. A non-retryable error is not
/// wrapped: it is returned as the inner service returned it.
#[derive(Debug)]
pub struct RetryGaveUp {
    reason: RetryErrorKind,
    attempts: u32,
    last_error: Option<BoxError>,
}

impl RetryGaveUp {
    pub(super) fn new(reason: RetryErrorKind, attempts: u32, last_error: Option<BoxError>) -> Self {
        RetryGaveUp {
            reason,
            attempts,
            last_error,
        }
    }

    /// Why the retry loop stopped: `AttemptsExhausted`, `BudgetExhausted` or
    /// `DeadlineExceeded` (never `NotRetryable`).
    pub fn reason(&self) -> RetryErrorKind {
        self.reason
    }

    /// Attempts started, the first one included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The error of the last attempt, if one returned an error.
    pub fn last_error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.last_error.as_deref()
    }

    /// Consumes the error, returning the error of the last attempt.
    pub fn into_last_error(self) -> Option<BoxError> {
        self.last_error
    }
}

impl fmt::Display for RetryGaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.attempts;
        let plural = if attempts == 1 { "" } else { "s" };
        let why = match self.reason {
            RetryErrorKind::BudgetExhausted => {
                "retry budget exhausted, the dependency is failing for many requests"
            }
            RetryErrorKind::DeadlineExceeded => "deadline exceeded",
            RetryErrorKind::AttemptsExhausted | RetryErrorKind::NotRetryable => {
                "all attempts failed"
            }
        };
        write!(f, "gave up after {attempts} attempt{plural}: {why}")
    }
}

impl Error for RetryGaveUp {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.last_error
            .as_deref()
            .map(|e| e as &(dyn Error + 'static))
    }
}

/// The wait hint carried by an error of this crate anywhere in `error`'s
/// [`source`](Error::source) chain: [`Overloaded::retry_after`] (a shed by
/// [`LimitLayer`](super::LimitLayer)) or [`BreakerOpen::retry_after`] (a
/// rejection by [`BreakerLayer`](super::BreakerLayer)). A server puts it in
/// a `Retry-After` header; a client waits at least that long.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::limit::Overloaded;
/// use resilience_core::tower::{retry_after_hint, BoxError};
///
/// let err: BoxError = Box::new(Overloaded { retry_after: Duration::from_millis(40) });
/// assert_eq!(retry_after_hint(&*err), Some(Duration::from_millis(40)));
/// ```
pub fn retry_after_hint(error: &(dyn Error + 'static)) -> Option<Duration> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(overloaded) = err.downcast_ref::<Overloaded>() {
            return Some(overloaded.retry_after);
        }
        if let Some(open) = err.downcast_ref::<BreakerOpen>() {
            return Some(open.retry_after);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gave_up_names_the_reason_and_chains_the_last_error() {
        let last: BoxError = Box::new(Overloaded {
            retry_after: Duration::from_millis(5),
        });
        let err = RetryGaveUp::new(RetryErrorKind::BudgetExhausted, 2, Some(last));
        assert_eq!(
            err.to_string(),
            "gave up after 2 attempts: retry budget exhausted, the dependency is failing for many requests"
        );
        assert!(err.source().is_some());
        assert_eq!(retry_after_hint(&err), Some(Duration::from_millis(5)));
        let none = RetryGaveUp::new(RetryErrorKind::DeadlineExceeded, 1, None);
        assert_eq!(
            none.to_string(),
            "gave up after 1 attempt: deadline exceeded"
        );
        assert!(none.source().is_none());
        assert_eq!(retry_after_hint(&none), None);
    }
}
