//! Putting files from the store into a tree: hardlink, reflink or copy.
//!
//! Hardlinks are the fastest and cost no space, but they fail across filesystems (`EXDEV`),
//! where the kernel or a security policy forbids them (`EPERM`), and when an inode reaches its
//! link cap (`EMLINK`: 65 000 on ext4 — a popular file linked into many apps hits it). In
//! [`LinkMode::Auto`] such failures fall back to a reflink (copy-on-write clone) and then to a
//! plain copy. Files keep only the executable bit (0444 or 0555), never the tarball's other
//! mode bits, and a linked file is never chmod-ed (see [`crate::store`]).
//!
//! ```
//! use node_modules_alloc::config::LinkMode;
//! use node_modules_alloc::materialize::{place_file, Placed};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("src"), b"x")?;
//! let placed = place_file(&dir.path().join("src"), &dir.path().join("dst"), LinkMode::Copy, false)?;
//! assert_eq!(placed, Placed::Copy);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::LinkMode;
use crate::error::{Error, Result};
use crate::fsutil::join_rel;
use crate::manifest::{Manifest, ManifestEntry};

/// How one file was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A hardlink to the source inode.
    Hardlink,
    /// A copy-on-write clone.
    Reflink,
    /// A byte copy.
    Copy,
}

/// Counters of one materialization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Regular files placed.
    pub files: usize,
    /// Of which hardlinked.
    pub hardlinks: usize,
    /// Of which reflinked.
    pub reflinks: usize,
    /// Of which copied.
    pub copies: usize,
    /// Symlinks created.
    pub symlinks: usize,
}

impl TreeStats {
    fn count(&mut self, placed: Placed) {
        self.files += 1;
        match placed {
            Placed::Hardlink => self.hardlinks += 1,
            Placed::Reflink => self.reflinks += 1,
            Placed::Copy => self.copies += 1,
        }
    }
}

/// Whether a failed hardlink should fall back to reflink/copy.
pub(crate) fn hardlink_fallback(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if code == rustix::io::Errno::XDEV.raw_os_error()
            || code == rustix::io::Errno::PERM.raw_os_error()
            || code == rustix::io::Errno::MLINK.raw_os_error()
            || code == rustix::io::Errno::NOTSUP.raw_os_error()
            || code == rustix::io::Errno::ACCESS.raw_os_error()
    )
}

/// Places `src` at `dst` according to `mode`.
pub fn place_file(src: &Path, dst: &Path, mode: LinkMode, exec: bool) -> io::Result<Placed> {
    place_file_with(
        src,
        dst,
        mode,
        exec,
        &|s, d| fs::hard_link(s, d),
        &|s, d| reflink_copy::reflink(s, d),
    )
}

type LinkFn<'a> = &'a dyn Fn(&Path, &Path) -> io::Result<()>;

/// [`place_file`] with injectable link operations (fault injection in tests).
pub(crate) fn place_file_with(
    src: &Path,
    dst: &Path,
    mode: LinkMode,
    exec: bool,
    hardlink: LinkFn<'_>,
    reflink: LinkFn<'_>,
) -> io::Result<Placed> {
    let perms = || fs::Permissions::from_mode(if exec { 0o555 } else { 0o444 });
    let copy = || -> io::Result<Placed> {
        fs::copy(src, dst)?;
        fs::set_permissions(dst, perms())?;
        Ok(Placed::Copy)
    };
    let clone = || -> io::Result<Placed> {
        reflink(src, dst)?;
        fs::set_permissions(dst, perms())?;
        Ok(Placed::Reflink)
    };
    match mode {
        LinkMode::Hardlink => hardlink(src, dst).map(|()| Placed::Hardlink),
        LinkMode::Reflink => clone(),
        LinkMode::Copy => copy(),
        LinkMode::Auto => match hardlink(src, dst) {
            Ok(()) => Ok(Placed::Hardlink),
            Err(e) if hardlink_fallback(&e) => {
                tracing::debug!(src = %src.display(), error = %e, "hardlink failed; trying reflink, then copy");
                match clone() {
                    Ok(p) => Ok(p),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
                    Err(_) => {
                        let _ = fs::remove_file(dst);
                        copy()
                    }
                }
            }
            Err(e) => Err(e),
        },
    }
}

/// Builds the tree described by `manifest` under `dest` (which must exist), taking each file
/// from `source(entry)`.
pub(crate) fn build_tree(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    source: &dyn Fn(&str, &str, bool) -> PathBuf,
) -> Result<TreeStats> {
    let mut stats = TreeStats::default();
    let mut created_dirs: HashSet<PathBuf> = HashSet::new();
    for entry in &manifest.entries {
        let target = join_rel(dest, entry.path());
        if let Some(parent) = target.parent()
            && !created_dirs.contains(parent)
        {
            fs::create_dir_all(parent).map_err(Error::io("cannot create directory", parent))?;
            created_dirs.insert(parent.to_path_buf());
        }
        match entry {
            ManifestEntry::File {
                path, digest, exec, ..
            } => {
                let src = source(path, digest, *exec);
                let placed = place_file(&src, &target, mode, *exec)
                    .map_err(Error::io("cannot place file", &target))?;
                stats.count(placed);
            }
            ManifestEntry::Symlink { target: link, .. } => {
                std::os::unix::fs::symlink(link, &target)
                    .map_err(Error::io("cannot create symlink", &target))?;
                stats.symlinks += 1;
            }
        }
    }
    Ok(stats)
}

/// Cheap structural check of a tree against its manifest: every entry exists with the right
/// type, size and executable bit. (Content is checked by `verify`, which re-hashes.)
pub(crate) fn quick_check(manifest: &Manifest, root: &Path) -> Option<String> {
    for entry in &manifest.entries {
        let path = join_rel(root, entry.path());
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Some(format!("{} is missing", entry.path()));
        };
        match entry {
            ManifestEntry::File { size, exec, .. } => {
                if !meta.is_file() || meta.size() != *size || (meta.mode() & 0o111 != 0) != *exec {
                    return Some(format!("{} differs from the manifest", entry.path()));
                }
            }
            ManifestEntry::Symlink { target, .. } => {
                if fs::read_link(&path).ok().as_deref() != Some(Path::new(target)) {
                    return Some(format!("{} is not the expected symlink", entry.path()));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(e: rustix::io::Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }

    #[test]
    fn auto_falls_back_to_copy_on_exdev_eperm_and_emlink() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        for (i, e) in [
            rustix::io::Errno::XDEV,
            rustix::io::Errno::PERM,
            rustix::io::Errno::MLINK,
        ]
        .into_iter()
        .enumerate()
        {
            let dst = dir.path().join(format!("dst{i}"));
            let placed = place_file_with(
                &src,
                &dst,
                LinkMode::Auto,
                true,
                &|_, _| Err(errno(e)),
                &|_, _| Err(errno(rustix::io::Errno::OPNOTSUPP)),
            )
            .unwrap();
            assert_eq!(placed, Placed::Copy);
            assert_eq!(fs::read(&dst).unwrap(), b"content");
            assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o777, 0o555);
        }
    }

    #[test]
    fn auto_prefers_reflink_when_hardlink_fails() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        let dst = dir.path().join("dst");
        let placed = place_file_with(
            &src,
            &dst,
            LinkMode::Auto,
            false,
            &|_, _| Err(errno(rustix::io::Errno::XDEV)),
            &|s, d| fs::copy(s, d).map(|_| ()),
        )
        .unwrap();
        assert_eq!(placed, Placed::Reflink);
    }

    #[test]
    fn strict_hardlink_mode_does_not_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        let err = place_file_with(
            &src,
            &dir.path().join("d"),
            LinkMode::Hardlink,
            false,
            &|_, _| Err(errno(rustix::io::Errno::XDEV)),
            &|_, _| Ok(()),
        )
        .unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::XDEV.raw_os_error())
        );
    }

    #[test]
    fn other_errors_are_not_masked() {
        let dir = tempfile::tempdir().unwrap();
        let err = place_file(
            &dir.path().join("missing"),
            &dir.path().join("d"),
            LinkMode::Auto,
            false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
