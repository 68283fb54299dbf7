//! Laying trees out: files from the store (or from a template) by hardlink, reflink or copy,
//! relative to open directory handles, never through a link.
//!
//! # Why
//!
//! Hardlinks are the fastest and cost no space, but they fail across filesystems (`EXDEV`),
//! where the kernel or a security policy forbids them (`EPERM`), and when an inode reaches its
//! link cap (`EMLINK`: 65 000 on ext4 — a popular file linked into many apps hits it). In
//! [`LinkMode::Auto`] such failures fall back to a reflink (copy-on-write clone) and then to a
//! plain copy. Files keep only the executable bit (0444 or 0555), never the tarball's other
//! mode bits, and a linked file is never chmod-ed (see [`crate::store`]).
//!
//! A tree is written by packages that do not trust each other. Path-based calls
//! (`create_dir_all`, `link(2)` on a path) follow symlinks in every component, so a symlink that
//! one package ships where another package's files go would redirect those writes — possibly
//! out of the tree. [`Manifest::plan`](crate::manifest::Manifest::plan) refuses such trees; the
//! layout does not rely on it (module `writer`): every directory is created and opened from its
//! parent's descriptor with `O_NOFOLLOW`, every file is created relative to its directory's
//! descriptor (`linkat`, `O_CREAT | O_EXCL | O_NOFOLLOW`), and symlinks are created last, after
//! every file and directory. The tree is made durable before the caller writes the completion
//! marker (module `sync`).
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

mod check;
mod dirs;
mod place;
mod sync;
mod writer;

use std::io;
use std::path::Path;

use rustix::fd::AsFd;

use crate::config::LinkMode;
use crate::fsutil::open_dir;

pub(crate) use check::{Staged, check_staged, quick_check};
pub(crate) use writer::{Built, PendingMarker, build_from_store, clone_tree};

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
    fn add(&mut self, other: &Self) {
        self.files += other.files;
        self.hardlinks += other.hardlinks;
        self.reflinks += other.reflinks;
        self.copies += other.copies;
        self.symlinks += other.symlinks;
    }

    fn count(&mut self, placed: Placed) {
        self.files += 1;
        match placed {
            Placed::Hardlink => self.hardlinks += 1,
            Placed::Reflink => self.reflinks += 1,
            Placed::Copy => self.copies += 1,
        }
    }
}

/// Places `src` at `dst` according to `mode` (`dst` must not exist). The parent directories
/// are trusted paths; the file itself is never followed if it is a symlink. Copies and clones
/// get mode 0444 (0555 with `exec`) and keep the source's mtime.
pub fn place_file(src: &Path, dst: &Path, mode: LinkMode, exec: bool) -> io::Result<Placed> {
    let split = |path: &Path| -> io::Result<(rustix::fd::OwnedFd, std::ffi::OsString)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Ok((open_dir(parent)?, name.to_owned()))
    };
    let (src_dir, src_name) = split(src)?;
    let (dst_dir, dst_name) = split(dst)?;
    let (placed, _file) = place::place(
        place::Endpoint {
            dir: src_dir.as_fd(),
            name: &src_name,
        },
        place::Endpoint {
            dir: dst_dir.as_fd(),
            name: &dst_name,
        },
        mode,
        exec,
        &place::SYSTEM,
    )?;
    Ok(placed)
}
