//! Staging directories next to the app, and the app directory's lock.
//!
//! Why: a tree is built in a hidden staging directory on the app's filesystem so that
//! publishing is one rename. A crash leaves a staging directory behind; it is recognised
//! by its prefix and removed under the app-directory lock (held exclusively, so whatever
//! staging is present belongs to a dead process).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use resilience_core::InstanceName;

use crate::error::{Error, Result};
use crate::fsutil::remove_tree;

pub(super) const STAGING_PREFIX: &str = ".node_modules.staging-";

/// Empties a staging directory for another attempt.
pub(super) fn reset_dir(dir: &Path) -> Result<()> {
    remove_tree(dir)?;
    fs::create_dir(dir).map_err(Error::io("cannot create", dir))
}

/// Locks a directory itself (flock on its descriptor): no lock file litters the app dir.
pub(super) fn lock_dir(dir: &Path, exclusive: bool) -> Result<File> {
    let file = File::open(dir).map_err(Error::io("cannot open", dir))?;
    let locked = if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    };
    locked.map_err(Error::io("cannot lock", dir))?;
    Ok(file)
}

pub(super) fn stale_staging(app_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(app_dir).map_err(Error::io("cannot read", app_dir))? {
        let entry = entry.map_err(Error::io("cannot read", app_dir))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Removes staging leftovers; only called while holding the app-dir lock exclusively, so every
/// staging directory present belongs to a dead process.
pub(super) fn remove_stale_staging(app_dir: &Path, name: &InstanceName) -> Result<()> {
    for stale in stale_staging(app_dir)? {
        tracing::info!(name = %name, path = %stale.display(), "removing stale staging directory");
        remove_tree(&stale)?;
    }
    Ok(())
}
