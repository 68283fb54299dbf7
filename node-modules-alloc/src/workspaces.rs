//! Workspace links of an app: `node_modules/<name>` → a folder of the app (npm workspaces'
//! `"link": true` entries, pnpm's `link:` dependencies).
//!
//! The lockfile only admits relative targets made of plain components; this checks, for one
//! app directory, that each folder exists, is a directory, and still lies inside the app once
//! symlinks on the way are resolved — a tree is never published with a dangling link or one
//! that leaves the app.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::lockfile::{Lockfile, Selection};

/// Checks every workspace link `selection` keeps against `app_dir`.
pub(crate) fn check(lockfile: &Lockfile, selection: Selection, app_dir: &Path) -> Result<()> {
    for link in lockfile.select_links(&selection) {
        let refuse = |reason: String| Error::Lockfile {
            file: lockfile.file().to_path_buf(),
            location: format!("packages[{:?}]", link.path),
            reason,
        };
        let folder = app_dir.join(&link.target);
        let resolved = fs::canonicalize(&folder).map_err(|e| {
            refuse(format!(
                "workspace folder {} cannot be used: {e} (run the allocation from the app's checkout)",
                folder.display()
            ))
        })?;
        // The folder exists, so the app directory does too.
        let app = fs::canonicalize(app_dir)
            .map_err(Error::io("cannot resolve app directory", app_dir))?;
        if !resolved.starts_with(&app) {
            return Err(refuse(format!(
                "workspace folder {} resolves to {}, outside the app {}",
                folder.display(),
                resolved.display(),
                app.display()
            )));
        }
        if !resolved.is_dir() {
            return Err(refuse(format!(
                "workspace folder {} is not a directory",
                folder.display()
            )));
        }
    }
    Ok(())
}
