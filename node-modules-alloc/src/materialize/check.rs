//! Cheap structural checks of a laid-out tree, and what to do when they fail.
//!
//! # Why mtime
//!
//! A hardlinked file of an app is the store file and the template's file. An app that rewrites
//! it in place with content of the same size (patch-package, an editor) keeps its size and
//! perhaps its mode; only a re-hash proves the content. Re-hashing every file of every tree at
//! every allocation would cost more than the allocation, but the write itself moved the
//! file's mtime, and every store file carries a fixed one ([`CONTENT_MTIME`]). So the check
//! that already stats every staged file ([`quick_check`]) compares type, size, mode *and*
//! mtime; only the files that differ are re-hashed ([`check_staged`]): intact content gets its
//! metadata back (a `chmod`, a `touch`, or a store of an older version with arbitrary mtimes:
//! re-hashed once, then fixed), modified content sends the caller to rebuild from verified
//! store files. A file whose content *and* mtime were both forged back escapes this check;
//! `verify` re-hashes everything.
//!
//! [`CONTENT_MTIME`]: crate::store::CONTENT_MTIME

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType};

use super::dirs::{DirWalker, split};
use crate::error::Result;
use crate::fsutil::{CONTENT_MTIME_SECS, open_dir};
use crate::manifest::{Manifest, ManifestEntry};
use crate::store::Store;

/// One entry of a tree that differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mismatch {
    /// Index of the manifest entry.
    entry: usize,
    /// What differs.
    problem: String,
    /// `(dev, ino)` of the file found, when it is a regular file.
    inode: Option<(u64, u64)>,
}

/// Checks every entry of the tree at `root` against the manifest: files are regular files with
/// the size, mode (0444/0555) and mtime of published content, symlinks have their target.
/// Directories are walked without following links. Returns at most `limit` mismatches.
fn mismatches(manifest: &Manifest, root: &Path, limit: usize) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut walker = match open_dir(root) {
        Ok(fd) => DirWalker::new(fd, false),
        Err(e) => {
            return vec![Mismatch {
                entry: 0,
                problem: format!("{} cannot be opened: {e}", root.display()),
                inode: None,
            }];
        }
    };
    for (i, entry) in manifest.entries.iter().enumerate() {
        if out.len() >= limit {
            break;
        }
        let path = entry.path();
        let (parent, name) = split(path);
        let mismatch = |problem: String, inode| Mismatch {
            entry: i,
            problem,
            inode,
        };
        let dir = match walker.enter(&parent, &mut |_, _| {}) {
            Ok(dir) => dir,
            Err(e) => {
                out.push(mismatch(format!("{path} is missing ({e})"), None));
                continue;
            }
        };
        let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            out.push(mismatch(format!("{path} is missing"), None));
            continue;
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        match entry {
            ManifestEntry::File { size, exec, .. } => {
                if let Some(problem) = file_problem(&stat, *size, *exec) {
                    let inode =
                        (problem != FileProblem::NotRegular).then_some((stat.st_dev, stat.st_ino));
                    out.push(mismatch(problem.describe(path), inode));
                }
            }
            ManifestEntry::Symlink { target, .. } => {
                let found = rustix::fs::readlinkat(dir, name, Vec::new()).ok();
                if kind != FileType::Symlink
                    || found.as_ref().map(std::ffi::CString::as_bytes) != Some(target.as_bytes())
                {
                    out.push(mismatch(
                        format!("{path} is not the expected symlink"),
                        None,
                    ));
                }
            }
        }
    }
    out
}

/// How a regular file of a tree differs from its manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileProblem {
    /// Not a regular file.
    NotRegular,
    /// Another size.
    Size,
    /// Another mode than 0444/0555 (the mode found).
    Mode(u32),
    /// Not the published mtime: the file was written to.
    Mtime,
}

impl FileProblem {
    fn describe(self, path: &str) -> String {
        match self {
            Self::NotRegular => format!("{path} is not a regular file"),
            Self::Size => format!("{path} differs from the manifest (size)"),
            Self::Mode(mode) => format!("{path} differs from the manifest (mode {mode:o})"),
            Self::Mtime => format!("{path} was modified (its mtime is not the published one)"),
        }
    }
}

/// Compares what `lstat` found at a file's place with the file's manifest entry: a regular
/// file with the `size`, mode 0444 (0555 with `exec`) and mtime of published content.
pub(super) fn file_problem(stat: &rustix::fs::Stat, size: u64, exec: bool) -> Option<FileProblem> {
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Some(FileProblem::NotRegular);
    }
    let mode = stat.st_mode & 0o7777;
    let expected = if exec { 0o555 } else { 0o444 };
    if u64::try_from(stat.st_size).ok() != Some(size) {
        Some(FileProblem::Size)
    } else if mode != expected {
        Some(FileProblem::Mode(mode))
    } else if stat.st_mtime != CONTENT_MTIME_SECS || stat.st_mtime_nsec != 0 {
        Some(FileProblem::Mtime)
    } else {
        None
    }
}

/// Cheap structural check of a tree against its manifest: every entry exists with the right
/// type, size, mode and mtime (files) or target (symlinks). Content is checked by `verify`,
/// which re-hashes. Returns the first problem.
pub(crate) fn quick_check(manifest: &Manifest, root: &Path) -> Option<String> {
    mismatches(manifest, root, 1)
        .into_iter()
        .next()
        .map(|m| m.problem)
}

/// The state of a freshly staged tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Staged {
    /// It matches its manifest.
    Intact,
    /// It matches now: this many store files shared with it (hardlinks) had lost their
    /// published mode or mtime but kept their content, and got their metadata back.
    Restored(usize),
    /// It does not match, for the reason given: its source must not be used again.
    Damaged(String),
}

/// Checks a staged tree; files that differ and are hardlinks of store files are re-hashed, and
/// their metadata restored when the content is intact (see the module docs).
pub(crate) fn check_staged(store: &Store, manifest: &Manifest, root: &Path) -> Result<Staged> {
    let found = mismatches(manifest, root, usize::MAX);
    let Some(first) = found.first() else {
        return Ok(Staged::Intact);
    };
    let mut shared = BTreeSet::new();
    for mismatch in &found {
        let store_file = match manifest.entries.get(mismatch.entry) {
            Some(ManifestEntry::File { digest, exec, .. }) => Some((digest, *exec)),
            _ => None,
        };
        let Some((digest, exec)) = store_file else {
            return Ok(Staged::Damaged(mismatch.problem.clone()));
        };
        let store_inode = fs::symlink_metadata(store.file_path(digest, exec))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if mismatch.inode.is_none() || mismatch.inode != store_inode {
            return Ok(Staged::Damaged(mismatch.problem.clone()));
        }
        shared.insert((digest.clone(), exec));
    }
    for (digest, exec) in &shared {
        if !store.revalidate(digest, *exec)? {
            tracing::warn!(digest, exec, problem = %first.problem, "a hardlinked store file was modified in place");
            return Ok(Staged::Damaged(format!(
                "{} (the store file's content no longer matches its digest)",
                first.problem
            )));
        }
    }
    match quick_check(manifest, root) {
        None => Ok(Staged::Restored(shared.len())),
        Some(problem) => Ok(Staged::Damaged(problem)),
    }
}
