//! Sweeping the scratch that failed operations and dead processes leave in a store in use.
//!
//! # Why
//!
//! `Store::open` removes leftovers only when nobody else uses the store. A long-lived process
//! (a host agent allocating for months) holds the store all the time, so that moment never
//! comes again: temporary files and half-built templates of crashed helpers, trash of discarded
//! templates, and the lock files of templates that no longer exist would pile up without bound.
//! Allocations therefore trigger a sweep, at most once per [`SweepConfig::interval`].
//!
//! # What is removed, and why that is safe
//!
//! Scratch names carry the pid of the process that made them (`tpl-4242-Xk3…`). An entry of
//! `tmp/` or `staging/` is removed when
//!
//! * its process no longer exists, and it is older than [`SweepConfig::min_age`]. The pid
//!   check protects long operations (a build may take longer than `min_age`); the age protects
//!   scratch of processes in another pid namespace sharing the store (their pids mean nothing
//!   here). A pid reused by an unrelated process makes an entry look alive: it is kept (the
//!   safe side) until gc or the next `Store::open` with nobody else;
//! * it is this process's own, older than `min_age`, and this process has nothing else in
//!   flight (no other work guard alive): a leftover of a failed operation of ours;
//! * it is trash (`staging/trash-…`, a discarded template renamed away: nobody reads it) whose
//!   process is gone or which is older than `min_age`.
//!
//! A lock file `locks/<digest>.lock` whose template does not exist is deleted while holding
//! it exclusively (taken without waiting: a held lock means a build or clone in flight), after
//! checking again under the lock that the template still does not exist; lockers verify that
//! the path still names the inode they locked (see the `locks` module), so a lock file deleted
//! under a waiter is never trusted.
//!
//! Entries whose name does not carry a pid are left alone; `manifests/` is pruned by gc
//! ([`GcConfig::manifest_retention`](crate::store::GcConfig)).
//!
//! # Example
//!
//! ```
//! use node_modules_alloc::store::Store;
//! use node_modules_alloc::sweep::SweepConfig;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let report = store.sweep(&SweepConfig::default())?;
//! assert_eq!(report.removed(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{age, process_alive, remove_tree, unique_name_pid};
use crate::locks::{LockFile, LockMode};
use crate::store::Store;
use crate::work::process_work;

/// When and what the scratch sweep removes.
///
/// Durations (de)serialize in human form (`"1m"`, `"1h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// Least time between two sweeps triggered by allocations on one store handle. Default
    /// 60 s; 0 sweeps on every allocation.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Scratch younger than this is never removed, whoever made it. Default 1 h. Must be > 0.
    #[serde(with = "humantime_serde")]
    pub min_age: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            min_age: Duration::from_secs(3600),
        }
    }
}

impl SweepConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_age.is_zero() {
            return Err(ConfigError::new(
                "min_age",
                "must be greater than zero: scratch of a process in another pid namespace \
                 sharing the store would be removed while in use",
            ));
        }
        Ok(())
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries removed from `tmp/`.
    pub tmp_removed: usize,
    /// Entries removed from `staging/` (half-built templates and trash).
    pub staging_removed: usize,
    /// Lock files of templates that no longer exist, removed.
    pub locks_removed: usize,
}

impl SweepReport {
    /// Everything removed.
    pub fn removed(&self) -> usize {
        self.tmp_removed + self.staging_removed + self.locks_removed
    }
}

// The sweep methods of `Store`, written here as an extension: `sweep` depends on `store`,
// never the reverse.
impl Store {
    /// Removes scratch of failed operations and dead processes, and lock files of templates
    /// that no longer exist, while other handles and processes may use the store (see the
    /// [module documentation](crate::sweep) for what is removed and why it is safe).
    pub fn sweep(&self, config: &SweepConfig) -> Result<SweepReport> {
        config.validate()?;
        let _work = self.work();
        self.sweep_holding_work(config)
    }

    /// [`Store::sweep`] when due (see [`SweepConfig::interval`]), for a caller that holds one
    /// work guard. Best effort: a failure is logged, never returned.
    pub(crate) fn sweep_if_due(&self, config: &SweepConfig) {
        if !self.claim_sweep(config.interval) {
            return;
        }
        if let Err(e) = self.sweep_holding_work(config) {
            tracing::warn!(store = %self.path().display(), error = %e, "scratch sweep failed");
        }
    }

    fn sweep_holding_work(&self, config: &SweepConfig) -> Result<SweepReport> {
        // The caller's own guard is the only work of this process: our scratch is leftover.
        let idle = process_work() <= 1;
        let report = SweepReport {
            tmp_removed: sweep_dir(&self.dir("tmp"), config, idle)?,
            staging_removed: sweep_dir(&self.dir("staging"), config, idle)?,
            locks_removed: self.sweep_locks()?,
        };
        if report.removed() > 0 {
            tracing::info!(
                store = %self.path().display(),
                tmp_removed = report.tmp_removed,
                staging_removed = report.staging_removed,
                locks_removed = report.locks_removed,
                "swept leftover scratch"
            );
        }
        Ok(report)
    }

    fn sweep_locks(&self) -> Result<usize> {
        let dir = self.dir("locks");
        let templates = self.dir("templates");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(digest) = name.strip_suffix(".lock") else {
                continue;
            };
            if templates.join(digest).exists() {
                continue;
            }
            // Held: a build or a clone is in flight. Free: nobody can be using the template
            // until we release it, so "does not exist" cannot change under us.
            let Some(lock) = LockFile::try_acquire(&entry.path(), LockMode::Exclusive)? else {
                continue;
            };
            if templates.join(digest).exists() {
                continue;
            }
            lock.remove()?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Removes the leftover entries of one scratch directory (see the module documentation).
fn sweep_dir(dir: &Path, config: &SweepConfig, idle: bool) -> Result<usize> {
    let own = std::process::id();
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(Error::io("cannot read", dir))? {
        let entry = entry.map_err(Error::io("cannot read", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = unique_name_pid(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue; // removed meanwhile
        };
        let old = age(&meta) >= config.min_age;
        let dead = pid != own && !process_alive(pid);
        let leftover = if name.starts_with("trash-") {
            dead || old
        } else if pid == own {
            idle && old
        } else {
            dead && old
        };
        if !leftover {
            continue;
        }
        let path = entry.path();
        let result = if meta.is_dir() {
            remove_tree(&path)
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(Error::io("cannot remove", &path)(e))
                }
                _ => Ok(()),
            }
        };
        match result {
            Ok(()) => {
                tracing::debug!(path = %path.display(), pid, "removed leftover scratch");
                removed += 1;
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove leftover scratch"),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_serde_round_trips() {
        let config = SweepConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"1m\""), "{json}");
        let back: SweepConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        assert!(serde_json::from_str::<SweepConfig>(r#"{"every": "1s"}"#).is_err());
    }

    #[test]
    fn zero_min_age_is_rejected_naming_the_field() {
        let err = SweepConfig {
            min_age: Duration::ZERO,
            ..SweepConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "min_age");
    }

    #[test]
    fn lock_files_of_missing_templates_are_removed_unless_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::create_dir_all(store.dir("templates").join("kept")).unwrap();
        for digest in ["kept", "gone", "busy"] {
            fs::write(store.template_lock_path(digest), b"").unwrap();
        }
        let busy = store.template_lock("busy", LockMode::Shared).unwrap();
        let report = store.sweep(&SweepConfig::default()).unwrap();
        assert_eq!(report.locks_removed, 1);
        assert!(store.template_lock_path("kept").exists());
        assert!(store.template_lock_path("busy").exists());
        assert!(!store.template_lock_path("gone").exists());
        drop(busy);
    }
}
