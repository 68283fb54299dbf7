//! Configuration: import limits (against decompression bombs) and the link mode.
//!
//! Limits exist because a tarball is untrusted input: a 40 KB `.tgz` can unpack to gigabytes,
//! and a host that fills its disk while allocating one app's `node_modules` breaks every other
//! app on it. Every limit is a plain field with a reference default and is validated: a zero
//! limit is an error, never a silent "unlimited".
//!
//! ```
//! use node_modules_alloc::config::{ImportLimits, LinkMode};
//!
//! let limits = ImportLimits { max_entry_bytes: 1 << 20, ..ImportLimits::default() };
//! limits.validate()?;
//! assert_eq!("reflink".parse::<LinkMode>(), Ok(LinkMode::Reflink));
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Size and count limits applied to every imported tarball.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportLimits {
    /// Largest compressed tarball accepted (it is read into memory to be verified before it is
    /// unpacked). Default 256 MiB.
    pub max_tarball_bytes: u64,
    /// Largest single unpacked entry. Default 256 MiB.
    pub max_entry_bytes: u64,
    /// Largest unpacked package (sum of entries). Default 1 GiB.
    pub max_total_bytes: u64,
    /// Most entries in one package. Default 100 000.
    pub max_entries: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_tarball_bytes: 256 << 20,
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

impl ImportLimits {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("max_tarball_bytes", self.max_tarball_bytes),
            ("max_entry_bytes", self.max_entry_bytes),
            ("max_total_bytes", self.max_total_bytes),
            ("max_entries", self.max_entries),
        ] {
            if value == 0 {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        if self.max_entry_bytes > self.max_total_bytes {
            return Err(ConfigError::new(
                "max_entry_bytes",
                "must not exceed max_total_bytes",
            ));
        }
        Ok(())
    }
}

/// How files get from the store into a `node_modules` tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Hardlink; on `EXDEV` (other filesystem), `EPERM` or `EMLINK` (link count cap, 65 000 on
    /// ext4) fall back to a reflink, then to a copy.
    #[default]
    Auto,
    /// Hardlink only (an error if impossible).
    Hardlink,
    /// Reflink (copy-on-write clone) only.
    Reflink,
    /// Plain copy.
    Copy,
}

impl fmt::Display for LinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Hardlink => "hardlink",
            Self::Reflink => "reflink",
            Self::Copy => "copy",
        })
    }
}

/// Error of [`LinkMode::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid link mode {0:?}: expected auto, hardlink, reflink or copy")]
pub struct ParseLinkModeError(pub String);

impl FromStr for LinkMode {
    type Err = ParseLinkModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "hardlink" => Ok(Self::Hardlink),
            "reflink" => Ok(Self::Reflink),
            "copy" => Ok(Self::Copy),
            other => Err(ParseLinkModeError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_valid() {
        ImportLimits::default().validate().unwrap();
    }

    #[test]
    fn zero_limits_are_rejected_naming_the_field() {
        for field in [
            "max_tarball_bytes",
            "max_entry_bytes",
            "max_total_bytes",
            "max_entries",
        ] {
            let mut limits = ImportLimits::default();
            match field {
                "max_tarball_bytes" => limits.max_tarball_bytes = 0,
                "max_entry_bytes" => limits.max_entry_bytes = 0,
                "max_total_bytes" => limits.max_total_bytes = 0,
                _ => limits.max_entries = 0,
            }
            let err = limits.validate().unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn entry_limit_above_total_is_rejected() {
        let limits = ImportLimits {
            max_entry_bytes: 10,
            max_total_bytes: 5,
            ..ImportLimits::default()
        };
        assert!(limits.validate().is_err());
    }

    #[test]
    fn limits_deserialize_with_defaults_and_deny_unknown_fields() {
        let limits: ImportLimits = serde_json::from_str(r#"{"max_entries": 5}"#).unwrap();
        assert_eq!(limits.max_entries, 5);
        assert_eq!(
            limits.max_total_bytes,
            ImportLimits::default().max_total_bytes
        );
        assert!(serde_json::from_str::<ImportLimits>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn link_mode_parses_and_displays() {
        for mode in [
            LinkMode::Auto,
            LinkMode::Hardlink,
            LinkMode::Reflink,
            LinkMode::Copy,
        ] {
            assert_eq!(mode.to_string().parse::<LinkMode>(), Ok(mode));
        }
        assert!("symlink".parse::<LinkMode>().is_err());
    }
}
