//! The allocator's configuration: [`AllocatorConfig`].
//!
//! Why its own file: the configuration is what an operator reads and tunes (limits, link
//! mode, free-space threshold, sweep); it is serde with `deny_unknown_fields` and validated
//! before an [`Allocator`](super::Allocator) exists, so it depends on nothing of the
//! allocator's machinery.

use resilience_core::ConfigError;
use resilience_core::limit::ConcurrencyLimitConfig;
use serde::{Deserialize, Serialize};

use crate::config::LinkMode;
use crate::error::Result;
use crate::lifecycle::IgnoreScripts;
use crate::lockfile::Selection;
use crate::platform::PlatformConfig;
use crate::sweep::SweepConfig;

/// Allocator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocatorConfig {
    /// How files get into trees. Default [`LinkMode::Auto`].
    pub link_mode: LinkMode,
    /// Bound on concurrent materializations (template builds and clones into apps) and on the
    /// queue in front of them, for the whole store: in this process, and across every process
    /// using the store (`STORE/slots/`, `STORE/queue/`). Default: 4 at once (the work is
    /// disk-bound), 256 queued, shed after 60 s in the queue (in-process and store-wide queue
    /// together).
    pub limit: ConcurrencyLimitConfig,
    /// Refuse work when the store's or the app's filesystem has fewer free bytes than this,
    /// once the estimated bytes of this allocation and of every allocation already admitted
    /// on the store are subtracted. Default 512 MiB; 0 disables the guard.
    pub min_free_bytes: u64,
    /// Which lockfile packages to install.
    pub selection: Selection,
    /// When allocations sweep leftover scratch from the store. Default: at most once a
    /// minute, entries at least an hour old.
    pub sweep: SweepConfig,
    /// Packages installed without the build they need (lifecycle scripts, `binding.gyp`),
    /// which the allocator never runs. Default: none — a tree with such a package is refused
    /// ([`Error::BuildRequired`](crate::Error::BuildRequired)).
    pub ignore_scripts: IgnoreScripts,
    /// Overrides of the detected platform (`os`, `cpu`, `libc`) that packages are filtered
    /// for. Default: none (this system's).
    pub platform: PlatformConfig,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            link_mode: LinkMode::Auto,
            limit: ConcurrencyLimitConfig {
                max_concurrent: 4,
                max_queued: 256,
                queue_timeout: Some(std::time::Duration::from_secs(60)),
                ..ConcurrencyLimitConfig::default()
            },
            min_free_bytes: 512 << 20,
            selection: Selection::default(),
            sweep: SweepConfig::default(),
            ignore_scripts: IgnoreScripts::default(),
            platform: PlatformConfig::default(),
        }
    }
}

impl AllocatorConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limit.validate().map_err(|e| e.nested("limit"))?;
        self.sweep.validate().map_err(|e| e.nested("sweep"))?;
        self.ignore_scripts.validate()?;
        self.platform.validate().map_err(|e| e.nested("platform"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::Allocator;
    use crate::store::Store;

    #[test]
    fn default_config_is_valid_and_serde_round_trips() {
        let config = AllocatorConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: AllocatorConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        assert!(serde_json::from_str::<AllocatorConfig>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn invalid_limit_is_rejected_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut config = AllocatorConfig::default();
        config.limit.max_concurrent = 0;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        assert!(Allocator::new(store, config).is_err());
    }

    #[test]
    fn scripts_and_platform_are_read_and_validated() {
        let config: AllocatorConfig = serde_json::from_str(
            r#"{"ignore_scripts": {"packages": ["bcrypt"]}, "platform": {"libc": "musl"}}"#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.ignore_scripts.packages, ["bcrypt"]);
        assert!(!config.ignore_scripts.all);
        let bad: AllocatorConfig =
            serde_json::from_str(r#"{"ignore_scripts": {"packages": [""]}}"#).unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("ignore_scripts")
        );
        let bad: AllocatorConfig =
            serde_json::from_str(r#"{"platform": {"cpu": "X 64"}}"#).unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("platform"));
        assert!(serde_json::from_str::<AllocatorConfig>(r#"{"ignore_scripts": true}"#).is_err());
    }
}
