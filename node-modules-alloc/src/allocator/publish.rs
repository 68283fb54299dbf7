//! Publishing a tree: clone the template into staging, check it, seal it, rename it in place.
//!
//! Why: an app must see either its old complete tree or the new complete one, never a
//! partial one, whatever crashes. [`publish`] is one atomic exchange (or a rename when no
//! tree exists yet).

use std::fs;
use std::path::Path;

use super::Allocator;
use super::marker::{marker_bytes, seal};
use super::staging::{STAGING_PREFIX, remove_stale_staging, reset_dir};
use crate::error::{Error, Result};
use crate::fsutil::{remove_tree, sync_dir, unique_name};
use crate::manifest::Plan;
use crate::materialize::TreeStats;

impl Allocator {
    /// Clones the template into a staging dir of the app, checks it, marks it complete and
    /// publishes it with one rename. The caller holds the app-dir lock. A template found
    /// missing or damaged (files deleted, or changed through a hardlink) is rebuilt from the
    /// store and cloned again; should it vanish once more, the tree is built from the store.
    pub(super) fn clone_and_publish(&self, plan: &Plan, app_dir: &Path) -> Result<TreeStats> {
        remove_stale_staging(app_dir, &self.inner.name)?;
        let staging = app_dir.join(unique_name(STAGING_PREFIX));
        fs::create_dir(&staging).map_err(Error::io("cannot create", &staging))?;
        let result = (|| {
            let marker = marker_bytes(&staging, &plan.digest, Some(&plan.lockfile_digest))?;
            let stats = if let Some(stats) = self.clone_template(plan, &staging, &marker)? {
                stats
            } else {
                reset_dir(&staging)?;
                self.ensure_template(plan)?;
                if let Some(stats) = self.clone_template(plan, &staging, &marker)? {
                    stats
                } else {
                    reset_dir(&staging)?;
                    self.build_from_store(plan, &staging, &marker)?
                }
            };
            seal(&staging)?;
            publish(&staging, &app_dir.join("node_modules"))?;
            Ok(stats)
        })();
        match &result {
            Ok(stats) => self.inner.metrics.linked(stats, &plan.manifest),
            Err(_) => {
                let _ = remove_tree(&staging);
            }
        }
        result
    }
}

/// Publishes `staging` as `target` atomically: exchange when `target` exists (then delete the
/// old tree, now at the staging name), plain rename otherwise.
pub(super) fn publish(staging: &Path, target: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if fs::symlink_metadata(target).is_ok() {
        match renameat_with(CWD, staging, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => {}
            Err(e)
                if e == rustix::io::Errno::INVAL
                    || e == rustix::io::Errno::NOSYS
                    || e == rustix::io::Errno::OPNOTSUPP =>
            {
                // No RENAME_EXCHANGE on this filesystem: move the old tree aside first. The
                // window without a node_modules is visible, but never a partial one.
                let aside = staging.with_file_name(unique_name(&format!("{STAGING_PREFIX}old-")));
                fs::rename(target, &aside).map_err(Error::io("cannot move aside", target))?;
                fs::rename(staging, target).map_err(Error::io("cannot publish", target))?;
                if let Some(parent) = target.parent() {
                    sync_dir(parent)?;
                }
                return remove_tree(&aside);
            }
            Err(e) => return Err(Error::io("cannot publish", target)(e.into())),
        }
        if let Some(parent) = target.parent() {
            sync_dir(parent)?;
        }
        // `staging` now holds the old tree.
        remove_tree(staging)
    } else {
        fs::rename(staging, target).map_err(Error::io("cannot publish", target))?;
        match target.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replaces_an_existing_tree_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("node_modules");
        fs::create_dir_all(target.join("old")).unwrap();
        let staging = dir.path().join(format!("{STAGING_PREFIX}x"));
        fs::create_dir_all(staging.join("new")).unwrap();
        publish(&staging, &target).unwrap();
        assert!(target.join("new").exists());
        assert!(!target.join("old").exists());
        assert!(!staging.exists());
    }
}
