//! Configuration: import limits (against decompression bombs and hostile names) and the link mode.
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

/// Size, count and name limits applied to every imported tarball.
///
/// The name limits are checked as each header is read, before any work per path component,
/// so that a hostile name costs at most one linear pass over bytes already bounded by
/// `max_meta_entry_bytes`. `max_total_components` bounds the work of a whole import: every
/// per-entry step (path normalization, link resolution, the link-traversal checks, building
/// the index) is linear in the entry's components, so their sum bounds the importer's CPU time.
/// They are configurable fields rather than constants because a store that serves unusual
/// packages (deep vendored trees, generated code) may need to raise one, visibly, in its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportLimits {
    /// Largest compressed tarball accepted (it is read into memory to be verified before it is
    /// unpacked). Default 256 MiB.
    pub max_tarball_bytes: u64,
    /// Largest single unpacked entry. Default 256 MiB.
    pub max_entry_bytes: u64,
    /// Largest unpacked package: every byte that leaves the gzip decoder counts (headers,
    /// metadata entries, data of skipped entries, padding), and so do hardlinked copies.
    /// Default 1 GiB.
    pub max_total_bytes: u64,
    /// Most entries in one package. Default 100 000.
    pub max_entries: u64,
    /// Longest entry path, in bytes, as written in the tarball (GNU long name or PAX `path`
    /// included). Default 4096 (Linux `PATH_MAX`).
    pub max_path_bytes: u64,
    /// Longest path component, in bytes. Default 255 (Linux `NAME_MAX`).
    pub max_component_bytes: u64,
    /// Deepest entry, in path components below the package's top directory (`package/`):
    /// `package/a/b/c.js` is 3 deep. Default 128: npm packages, bundled dependencies included,
    /// stay far below it, while 4096 bytes of `a/a/a/...` would be 2048 deep.
    pub max_depth: u64,
    /// Longest symlink or hardlink target, in bytes. Default 4096 (`PATH_MAX`).
    pub max_link_target_bytes: u64,
    /// Most path components in one package: the sum over every entry of the components of its
    /// path and link target. Default 4 000 000 (100 000 entries 40 deep).
    pub max_total_components: u64,
    /// Largest metadata entry (GNU long name `L`, long link `K`, PAX headers `x` and `g`),
    /// refused before it is read. Default 1 MiB (node-tar's `maxMetaEntrySize`).
    pub max_meta_entry_bytes: u64,
    /// Largest `package.json` at the package root. It is the one file kept in memory (to read
    /// `name`, `version` and `bin`); a larger one is refused. Default 4 MiB.
    pub max_package_json_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_tarball_bytes: 256 << 20,
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_entries: 100_000,
            max_path_bytes: 4096,
            max_component_bytes: 255,
            max_depth: 128,
            max_link_target_bytes: 4096,
            max_total_components: 4_000_000,
            max_meta_entry_bytes: 1 << 20,
            max_package_json_bytes: 4 << 20,
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
            ("max_path_bytes", self.max_path_bytes),
            ("max_component_bytes", self.max_component_bytes),
            ("max_depth", self.max_depth),
            ("max_link_target_bytes", self.max_link_target_bytes),
            ("max_total_components", self.max_total_components),
            ("max_meta_entry_bytes", self.max_meta_entry_bytes),
            ("max_package_json_bytes", self.max_package_json_bytes),
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
        if self.max_component_bytes > self.max_path_bytes {
            return Err(ConfigError::new(
                "max_component_bytes",
                "must not exceed max_path_bytes",
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
            "max_path_bytes",
            "max_component_bytes",
            "max_depth",
            "max_link_target_bytes",
            "max_total_components",
            "max_meta_entry_bytes",
            "max_package_json_bytes",
        ] {
            let mut limits = ImportLimits::default();
            match field {
                "max_tarball_bytes" => limits.max_tarball_bytes = 0,
                "max_entry_bytes" => limits.max_entry_bytes = 0,
                "max_total_bytes" => limits.max_total_bytes = 0,
                "max_entries" => limits.max_entries = 0,
                "max_path_bytes" => limits.max_path_bytes = 0,
                "max_component_bytes" => limits.max_component_bytes = 0,
                "max_depth" => limits.max_depth = 0,
                "max_link_target_bytes" => limits.max_link_target_bytes = 0,
                "max_total_components" => limits.max_total_components = 0,
                "max_meta_entry_bytes" => limits.max_meta_entry_bytes = 0,
                _ => limits.max_package_json_bytes = 0,
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
    fn component_limit_above_path_limit_is_rejected() {
        let limits = ImportLimits {
            max_component_bytes: 5000,
            ..ImportLimits::default()
        };
        let err = limits.validate().unwrap_err();
        assert!(err.to_string().contains("max_component_bytes"), "{err}");
    }

    #[test]
    fn name_limits_default_to_path_max_and_name_max() {
        let limits = ImportLimits::default();
        assert_eq!(limits.max_path_bytes, 4096);
        assert_eq!(limits.max_component_bytes, 255);
        assert_eq!(limits.max_depth, 128);
        assert_eq!(limits.max_link_target_bytes, 4096);
        assert_eq!(limits.max_total_components, 4_000_000);
        assert_eq!(limits.max_meta_entry_bytes, 1 << 20);
        let parsed: ImportLimits = serde_json::from_str(r#"{"max_depth": 64}"#).unwrap();
        assert_eq!(parsed.max_depth, 64);
        assert_eq!(parsed.max_path_bytes, 4096);
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
