//! Scratch cleanup on open and garbage collection.

use std::collections::BTreeSet;
use std::fs::{self};
use std::io::{self};
use std::time::Duration;

use super::{GcConfig, GcReport, IndexEntry, Store};
use crate::error::{Error, Result};
use crate::fsutil::{age, remove_tree};

impl Store {
    /// Removes `tmp/`, `staging/` and `locks/` contents (and `quarantine/` when `quarantine` is
    /// set). Only call while holding the store lock exclusively: then no other handle or
    /// process has anything in flight, and no lock file is held.
    pub(super) fn clean_scratch(&self, quarantine: bool) -> Result<usize> {
        let mut removed = 0;
        let dirs: &[&str] = if quarantine {
            &["tmp", "staging", "locks", "quarantine"]
        } else {
            &["tmp", "staging", "locks"]
        };
        for sub in dirs {
            let dir = self.dir(sub);
            for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
                let entry = entry.map_err(Error::io("cannot read", &dir))?;
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let result = if is_dir {
                    remove_tree(&path)
                } else {
                    match fs::remove_file(&path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            Err(Error::io("cannot remove", &path)(e))
                        }
                        _ => Ok(()),
                    }
                };
                result?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Garbage-collects the store with the default [`GcConfig`]: see [`Store::gc_with`].
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with(&GcConfig::default())
    }

    /// Garbage-collects the store: removes every template (caches, rebuilt on demand), lock
    /// files, manifests no template uses and nothing used within
    /// [`GcConfig::manifest_retention`], content not referenced by any package index, temporary
    /// files and quarantined files.
    ///
    /// Needs the store to itself: fails with [`Error::StoreBusy`] when another handle or
    /// process uses it, or when work is in flight through this very handle or a clone of it
    /// (an allocation, a template build, an import, a verification). New work through this
    /// handle waits until the gc is done.
    pub fn gc_with(&self, config: &GcConfig) -> Result<GcReport> {
        config.validate()?;
        let busy = || Error::StoreBusy {
            path: self.path().to_path_buf(),
        };
        let _collecting = match self.inner.work.begin_gc() {
            Ok(guard) => guard,
            Err(in_flight) => {
                tracing::info!(store = %self.path().display(), in_flight, "gc refused: work in flight on this store handle");
                return Err(busy());
            }
        };
        let lock = &self.inner.lock;
        if lock.try_lock().is_err() {
            let _ = lock.lock_shared();
            tracing::info!(store = %self.path().display(), "gc refused: another handle or process uses the store");
            return Err(busy());
        }
        let result = self.gc_locked(config);
        let relock = lock
            .lock_shared()
            .map_err(Error::io("cannot lock", self.dir("store.lock")));
        let report = result?;
        relock?;
        tracing::info!(
            files_removed = report.files_removed,
            templates_removed = report.templates_removed,
            scratch_removed = report.scratch_removed,
            manifests_removed = report.manifests_removed,
            "store garbage-collected"
        );
        Ok(report)
    }

    fn gc_locked(&self, config: &GcConfig) -> Result<GcReport> {
        let mut report = GcReport {
            scratch_removed: self.clean_scratch(true)?,
            ..GcReport::default()
        };
        let templates = self.dir("templates");
        for entry in fs::read_dir(&templates).map_err(Error::io("cannot read", &templates))? {
            let entry = entry.map_err(Error::io("cannot read", &templates))?;
            remove_tree(&entry.path())?;
            report.templates_removed += 1;
        }
        report.manifests_removed = self.remove_unused_manifests(config.manifest_retention)?;
        let mut live = BTreeSet::new();
        for index in self.indexes()? {
            for entry in index.entries {
                if let IndexEntry::File { digest, .. } = entry {
                    live.insert(digest);
                }
            }
        }
        for (digest, exec) in self.content_files()? {
            if !live.contains(&digest) {
                let path = self.file_path(&digest, exec);
                fs::remove_file(&path).map_err(Error::io("cannot remove", &path))?;
                report.files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Removes manifests that no template uses and that nothing used within `retention`.
    fn remove_unused_manifests(&self, retention: Duration) -> Result<usize> {
        let dir = self.dir("manifests");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(digest) = name.strip_suffix(".json") else {
                continue;
            };
            if self.dir("templates").join(digest).exists() {
                continue;
            }
            let path = entry.path();
            let meta = entry.metadata().map_err(Error::io("cannot stat", &path))?;
            if age(&meta) < retention {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove", &path)(e)),
            }
        }
        Ok(removed)
    }
}
