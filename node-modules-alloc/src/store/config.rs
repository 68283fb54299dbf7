//! [`StoreConfig`] and [`GcConfig`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ImportLimits;
use crate::error::Result;

/// Store configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Limits applied to every imported tarball.
    pub limits: ImportLimits,
    /// fsync content files before publishing them, and their `files/xx/` directory after (index
    /// files, manifests, templates and markers are always synced). Off by default: a process
    /// crash cannot tear a renamed file; a power loss can leave empty content, which the next
    /// import of the same content replaces, allocations detect (size) and `verify` repairs.
    pub sync_content: bool,
}

impl StoreConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), resilience_core::ConfigError> {
        self.limits.validate().map_err(|e| e.nested("limits"))
    }
}

/// Configuration of [`Store::gc_with`](super::Store::gc_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Manifests (`manifests/<digest>.json`) that no template uses are removed once nothing
    /// used them for this long. Allocations (including reuses of an intact tree) and
    /// verifications stamp the manifest they use, and `verify` needs the manifest of a tree to
    /// check it without its lockfile, so this is how long an app may go without allocation or
    /// verification and still verify from its marker alone after a gc (an allocation restores
    /// the manifest). Default 30 days; 0 removes every manifest no template uses.
    #[serde(with = "humantime_serde")]
    pub manifest_retention: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            manifest_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl GcConfig {
    /// Checks every field (every retention, zero included, is valid).
    pub fn validate(&self) -> Result<(), resilience_core::ConfigError> {
        Ok(())
    }
}
