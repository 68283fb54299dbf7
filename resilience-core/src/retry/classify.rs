//! Error classification: which failures are worth another attempt.

use std::io;
use std::time::Duration;

/// An error that knows whether retrying the operation can help.
///
/// Implement it for the error type of the operations you run with
/// [`RetryPolicy::run`](super::RetryPolicy::run). For error types you do not
/// own, pass a classifier closure to
/// [`RetryPolicy::run_classified`](super::RetryPolicy::run_classified)
/// instead.
///
/// ```
/// use std::time::Duration;
/// use resilience_core::retry::Retryable;
///
/// #[derive(Debug)]
/// enum HttpError {
///     /// 503 with an optional `Retry-After` header.
///     Unavailable { retry_after: Option<Duration> },
///     /// 4xx: the request itself is wrong; sending it again cannot help.
///     BadRequest,
/// }
///
/// impl Retryable for HttpError {
///     fn is_retryable(&self) -> bool {
///         matches!(self, HttpError::Unavailable { .. })
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             HttpError::Unavailable { retry_after } => *retry_after,
///             HttpError::BadRequest => None,
///         }
///     }
/// }
///
/// assert!(!HttpError::BadRequest.is_retryable());
/// ```
pub trait Retryable {
    /// Whether another attempt may succeed (a transient failure such as a
    /// timeout, a refused connection or an overloaded server). Client errors
    /// that will fail the same way again must return `false`.
    fn is_retryable(&self) -> bool;

    /// The server's hint how long to wait before the next attempt (an HTTP
    /// `Retry-After` header, gRPC `grpc-retry-pushback-ms`, a load shedder's
    /// `Overloaded { retry_after }`). The executor waits at least this long,
    /// capped at [`RetryConfig::max_retry_after`](super::RetryConfig::max_retry_after).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl<E: Retryable + ?Sized> Retryable for Box<E> {
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }

    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

impl<E: Retryable + ?Sized> Retryable for &E {
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }

    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

/// Connection-level failures and timeouts are retryable; everything else
/// (not found, permission denied, invalid data, ...) is not.
impl Retryable for io::Error {
    fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        )
    }
}

/// What a classifier closure says about one error; see
/// [`RetryPolicy::run_classified`](super::RetryPolicy::run_classified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: another attempt may succeed after the usual backoff.
    Transient,
    /// Transient, and the server asked to wait at least this long.
    TransientAfter(Duration),
    /// Permanent: stop at once with
    /// [`RetryError::NotRetryable`](super::RetryError::NotRetryable).
    Permanent,
}

impl ErrorClass {
    /// The class of an error that implements [`Retryable`].
    pub fn of<E: Retryable + ?Sized>(error: &E) -> Self {
        if !error.is_retryable() {
            ErrorClass::Permanent
        } else if let Some(after) = error.retry_after() {
            ErrorClass::TransientAfter(after)
        } else {
            ErrorClass::Transient
        }
    }

    /// Whether another attempt is worth making.
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorClass::Permanent)
    }

    /// The server's wait hint, if any.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            ErrorClass::TransientAfter(after) => Some(after),
            ErrorClass::Transient | ErrorClass::Permanent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_retry_connection_failures_only() {
        let transient = io::Error::from(io::ErrorKind::ConnectionRefused);
        let permanent = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(transient.is_retryable());
        assert!(!permanent.is_retryable());
        assert_eq!(ErrorClass::of(&permanent), ErrorClass::Permanent);
        assert_eq!(ErrorClass::of(&Box::new(transient)), ErrorClass::Transient);
    }

    #[test]
    fn class_carries_the_hint() {
        struct Busy;
        impl Retryable for Busy {
            fn is_retryable(&self) -> bool {
                true
            }
            fn retry_after(&self) -> Option<Duration> {
                Some(Duration::from_secs(2))
            }
        }
        let class = ErrorClass::of(&Busy);
        assert_eq!(class, ErrorClass::TransientAfter(Duration::from_secs(2)));
        assert!(class.is_retryable());
        assert_eq!(class.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(ErrorClass::Permanent.retry_after(), None);
    }
}
