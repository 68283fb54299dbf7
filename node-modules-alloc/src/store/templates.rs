//! Template locks and template removal.

use std::fs::{self};
use std::io::{self};
use std::path::PathBuf;

use super::Store;
use crate::error::{Error, Result};
use crate::fsutil::{remove_tree, unique_name};
use crate::locks::{LockFile, LockMode};

impl Store {
    /// The lock file of one template (`locks/<digest>.lock`).
    pub(crate) fn template_lock_path(&self, digest: &str) -> PathBuf {
        self.dir("locks").join(format!("{digest}.lock"))
    }

    /// Locks one template: shared to read (clone) it, exclusive to build or discard it.
    pub(crate) fn template_lock(&self, digest: &str, mode: LockMode) -> Result<LockFile> {
        LockFile::acquire(&self.template_lock_path(digest), mode)
    }

    /// Hides a template atomically (rename into `staging/`) and deletes it, once no clone
    /// reads it: waits for the template's lock exclusively. A caller that already holds that
    /// lock must use [`Store::discard_template_locked`] (locking it again through another
    /// descriptor would wait for itself forever).
    pub(crate) fn discard_template(&self, digest: &str) -> Result<()> {
        let lock = self.template_lock(digest, LockMode::Exclusive)?;
        self.discard_template_locked(digest, &lock)
    }

    /// [`Store::discard_template`] for a caller holding the template's lock exclusively.
    pub(crate) fn discard_template_locked(&self, digest: &str, lock: &LockFile) -> Result<()> {
        let path = self.dir("templates").join(digest);
        if lock.mode() != LockMode::Exclusive || lock.path() != self.template_lock_path(digest) {
            return Err(Error::io(
                "cannot remove template without holding its lock exclusively",
                path,
            )(io::Error::from(io::ErrorKind::InvalidInput)));
        }
        let trash = self.dir("staging").join(unique_name("trash-"));
        match fs::rename(&path, &trash) {
            Ok(()) => {
                tracing::info!(template = digest, "template discarded");
                remove_tree(&trash)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove template", path)(e)),
        }
    }
}
