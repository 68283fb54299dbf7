//! The configuration error shared by every validated config in this crate.
//!
//! Configs are plain structs with public fields and a `Default` equal to the
//! reference parameters. They are validated when turned into their runtime
//! type (`RetryBudget::new(config)`, `Backoff::new(config)`, ...), and an
//! invalid value is always an error naming the field, never a silent clamp.

use std::borrow::Cow;

/// A configuration value is out of range or inconsistent.
///
/// ```
/// use resilience_core::backoff::{Backoff, BackoffConfig};
///
/// let err = Backoff::new(BackoffConfig { factor: 0.5, ..BackoffConfig::default() }).unwrap_err();
/// assert_eq!(err.field(), "factor");
/// assert!(err.to_string().contains("factor"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{field}`: {reason}")]
pub struct ConfigError {
    field: Cow<'static, str>,
    reason: String,
}

impl ConfigError {
    /// An error for `field` (the config's field name) with a reason that
    /// says what is accepted, e.g. `"must be in 0..=1000, got NaN"`.
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The offending field. Nested configs are joined with dots
    /// (`"backoff.factor"`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Prefixes the field with the name of the enclosing config field.
    #[must_use]
    pub fn nested(self, parent: &str) -> Self {
        ConfigError {
            field: Cow::Owned(format!("{parent}.{}", self.field)),
            reason: self.reason,
        }
    }
}

impl From<crate::name::InvalidName> for ConfigError {
    /// An invalid instance name is an invalid `name` field.
    fn from(error: crate::name::InvalidName) -> Self {
        ConfigError::new("name", error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_errors_name_the_full_path() {
        let err = ConfigError::new("factor", "must be >= 1").nested("backoff");
        assert_eq!(err.field(), "backoff.factor");
        assert_eq!(
            err.to_string(),
            "invalid configuration `backoff.factor`: must be >= 1"
        );
    }
}
