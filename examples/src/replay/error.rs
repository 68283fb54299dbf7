//! Errors of the replay: bad parameters and output failures.

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A scenario parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter as written on the command line (`nov.servers`).
        name: String,
        /// What is accepted.
        reason: String,
    },
    /// `--set` named no known parameter, or its value has the wrong type.
    #[error("cannot set `{name}`: {reason}")]
    BadOverride {
        /// The key given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A library type refused the configuration the replay derived.
    #[error("library configuration rejected: {0}")]
    Config(#[from] resilience_core::ConfigError),
    /// The simulated fleet or controller failed (a bug in the model, or
    /// parameters it cannot run with).
    #[error("simulation failed: {0}")]
    Simulation(String),
    /// Writing charts or JSON failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing a chart failed.
    #[error("cannot draw chart {path}: {reason}")]
    Chart {
        /// The SVG file.
        path: String,
        /// The plotting backend's message.
        reason: String,
    },
}

/// Checks `condition`, or returns an [`ReplayError::InvalidParam`].
pub(crate) fn ensure(
    condition: bool,
    name: &str,
    reason: impl Into<String>,
) -> Result<(), ReplayError> {
    if condition {
        Ok(())
    } else {
        Err(ReplayError::InvalidParam {
            name: name.to_owned(),
            reason: reason.into(),
        })
    }
}
