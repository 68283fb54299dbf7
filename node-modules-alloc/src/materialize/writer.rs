//! Laying a whole tree out from its manifest, never through a link.
//!
//! The manifest is first checked on its own ([`Manifest::check_layout`]): plain relative paths,
//! no entry below another one, symlinks resolving inside the tree. Then, walking the sorted
//! entries with a stack of open directories ([`DirWalker`]):
//!
//! 1. every directory is created with `mkdirat` and opened with `O_NOFOLLOW` from its parent's
//!    descriptor, every file is placed relative to its directory's descriptor ([`place`]);
//! 2. symlinks are created last, once every file and directory exists — so even a manifest
//!    that slipped past the check cannot have a file written through one of its own links (the
//!    link's path is a real directory by then, and `symlinkat` fails);
//! 3. each directory, once left, and each copied or cloned file is handed to the sync queue
//!    ([`SyncQueue`]: one `syncfs` at the end, or background fsyncs of every descriptor), which
//!    is drained before returning. The completion marker is written under a temporary name
//!    before that barrier ([`PendingMarker`]) and renamed into place by the caller after its
//!    checks: a marker never appears before the whole tree is durable.
//!
//! When the source is another tree (a template), it is walked the same way: a template damaged
//! into holding a symlink where a directory was is reported as damaged, never followed.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

use rustix::fd::{AsFd, OwnedFd};

use super::TreeStats;
use super::dirs::{DirWalker, split};
use super::place::{self, Endpoint, Ops};
use super::sync::{Barrier, SyncQueue};
use crate::config::LinkMode;
use crate::error::{Error, Result};
use crate::fsutil::{join_rel, open_dir};
use crate::manifest::{Manifest, ManifestEntry};
use crate::store::Store;

/// The outcome of laying a tree out from another tree.
#[derive(Debug)]
pub(crate) enum Built {
    /// The tree is complete and durable.
    Done(TreeStats),
    /// The source tree is missing an entry or holds something else where a directory or a
    /// regular file should be (described); the destination is incomplete.
    SourceDamaged(String),
}

/// A completion marker to write at the root of the tree, under a temporary name, *before* the
/// tree is made durable: the durability barrier then covers it too, and the caller renames it
/// into place (one rename and one directory fsync) once the tree has passed its checks — so a
/// marker is durable as soon as it appears, without a flush of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingMarker<'a> {
    /// Temporary name at the root of the tree.
    pub(crate) name: &'a str,
    /// Content.
    pub(crate) bytes: &'a [u8],
}

/// Where the files come from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// The store's content files (trusted paths).
    Store(&'a Store),
    /// Another tree with the same layout (a template).
    Tree(&'a Path),
}

/// Lays `manifest` out under `dest` (an existing, empty directory) from the store's content
/// files, which the caller has verified.
pub(crate) fn build_from_store(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    store: &Store,
    marker: Option<PendingMarker<'_>>,
) -> Result<TreeStats> {
    match build(
        manifest,
        dest,
        mode,
        Source::Store(store),
        marker,
        &place::SYSTEM,
    )? {
        Built::Done(stats) => Ok(stats),
        Built::SourceDamaged(reason) => Err(Error::Malformed {
            path: store.path().join("files"),
            reason,
        }),
    }
}

/// Lays `manifest` out under `dest` (an existing, empty directory) from the tree `template`.
pub(crate) fn clone_tree(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    template: &Path,
    marker: Option<PendingMarker<'_>>,
) -> Result<Built> {
    build(
        manifest,
        dest,
        mode,
        Source::Tree(template),
        marker,
        &place::SYSTEM,
    )
}

fn build(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    source: Source<'_>,
    marker: Option<PendingMarker<'_>>,
    ops: &Ops<'_>,
) -> Result<Built> {
    manifest.check_layout().map_err(|reason| Error::Malformed {
        path: dest.to_path_buf(),
        reason: format!("refusing to lay out an unsafe tree: {reason}"),
    })?;
    let root = open_dir(dest).map_err(Error::io("cannot open", dest))?;
    let mut template = match source {
        Source::Store(_) => None,
        Source::Tree(path) => match open_dir(path) {
            Ok(fd) => Some(DirWalker::new(fd, false)),
            Err(e) => {
                return Ok(Built::SourceDamaged(format!(
                    "template {}: {e}",
                    path.display()
                )));
            }
        },
    };
    let barrier = Barrier::choose(directories(manifest));
    std::thread::scope(|scope| {
        let queue = SyncQueue::start(scope, barrier);
        let laid_out = lay_out(
            manifest,
            dest,
            mode,
            source,
            template.as_mut(),
            root,
            &queue,
            ops,
        )
        .and_then(|built| {
            if let (Built::Done(_), Some(marker)) = (&built, marker) {
                let path = dest.join(marker.name);
                let root = open_dir(dest).map_err(Error::io("cannot open", dest))?;
                let file = write_new(&root, marker.name, marker.bytes)
                    .map_err(Error::io("cannot write", &path))?;
                queue.push(marker.name.to_owned(), file);
            }
            Ok(built)
        });
        let synced = queue.finish();
        let built = laid_out?;
        synced.map_err(|(path, e)| Error::io("cannot sync", join_rel(dest, &path))(e))?;
        Ok(built)
    })
}

#[allow(clippy::too_many_arguments)]
fn lay_out(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    source: Source<'_>,
    mut template: Option<&mut DirWalker>,
    root: OwnedFd,
    queue: &SyncQueue<'_>,
    ops: &Ops<'_>,
) -> Result<Built> {
    let mut stats = TreeStats::default();
    let mut out = DirWalker::new(root, true);
    let mut closed = |path: String, fd: OwnedFd| queue.push(path, fd);
    let walk_failed = |e: super::dirs::WalkError| {
        Error::io("cannot create directory", join_rel(dest, &e.dir))(e.source)
    };
    for entry in &manifest.entries {
        let ManifestEntry::File {
            path, digest, exec, ..
        } = entry
        else {
            continue;
        };
        let (parent, name) = split(path);
        let dir = out.enter(&parent, &mut closed).map_err(walk_failed)?;
        let store_path;
        let src = match (source, template.as_deref_mut()) {
            (Source::Tree(_), Some(walker)) => match walker.enter(&parent, &mut |_, _| {}) {
                Ok(fd) => Endpoint {
                    dir: fd.as_fd(),
                    name: OsStr::new(name),
                },
                Err(e) => return Ok(Built::SourceDamaged(format!("{path}: {e}"))),
            },
            (Source::Store(store), _) => {
                store_path = store.file_path(digest, *exec);
                Endpoint {
                    dir: rustix::fs::CWD,
                    name: store_path.as_os_str(),
                }
            }
            (Source::Tree(path), None) => {
                return Ok(Built::SourceDamaged(format!(
                    "template {} not open",
                    path.display()
                )));
            }
        };
        let target = Endpoint {
            dir: dir.as_fd(),
            name: OsStr::new(name),
        };
        match place::place(src, target, mode, *exec, ops) {
            Ok((placed, file)) => {
                stats.count(placed);
                if let Some(file) = file {
                    queue.push(path.clone(), OwnedFd::from(file));
                }
            }
            Err(e) if matches!(source, Source::Tree(_)) && source_problem(&e) => {
                return Ok(Built::SourceDamaged(format!("{path}: {e}")));
            }
            Err(e) => return Err(Error::io("cannot place file", join_rel(dest, path))(e)),
        }
    }
    // Symlinks last: every file and directory exists, so none is written through a link.
    for entry in &manifest.entries {
        let ManifestEntry::Symlink { path, target } = entry else {
            continue;
        };
        let (parent, name) = split(path);
        let dir = out.enter(&parent, &mut closed).map_err(walk_failed)?;
        rustix::fs::symlinkat(target.as_str(), dir, name)
            .map_err(|e| Error::io("cannot create symlink", join_rel(dest, path))(e.into()))?;
        stats.symlinks += 1;
    }
    let root = out.finish(&mut closed);
    queue.push(String::new(), root);
    Ok(Built::Done(stats))
}

/// How many directories the tree has (every proper prefix of an entry path, and the root).
fn directories(manifest: &Manifest) -> usize {
    let mut dirs = std::collections::HashSet::new();
    for entry in &manifest.entries {
        let path = entry.path();
        for (pos, b) in path.bytes().enumerate() {
            if b == b'/' {
                dirs.insert(path.get(..pos).unwrap_or_default());
            }
        }
    }
    dirs.len() + 1
}

/// Creates `name` in `dir` (exclusively, never through a symlink), read-only, with `bytes`.
fn write_new(dir: &OwnedFd, name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let file = std::fs::File::from(rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?);
    io::Write::write_all(&mut &file, bytes)?;
    Ok(OwnedFd::from(file))
}

/// Errors that say the source tree lacks the entry or holds something else there.
fn source_problem(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
        || [
            rustix::io::Errno::NOENT,
            rustix::io::Errno::LOOP,
            rustix::io::Errno::NOTDIR,
        ]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn file(path: &str, digest: &str) -> ManifestEntry {
        ManifestEntry::File {
            path: path.into(),
            digest: digest.into(),
            size: 1,
            exec: false,
        }
    }

    fn link(path: &str, target: &str) -> ManifestEntry {
        ManifestEntry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }

    #[test]
    fn a_template_with_a_symlinked_directory_is_damaged_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let digest = store.put_bytes(b"x", false).unwrap();
        let manifest = Manifest {
            entries: vec![file("a/lib/x.js", &digest)],
        };
        // The template's `a/lib` became a symlink to a directory outside holding `x.js`.
        let template = dir.path().join("template");
        let outside = dir.path().join("outside");
        fs::create_dir_all(template.join("a")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("x.js"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, template.join("a/lib")).unwrap();
        for mode in [LinkMode::Auto, LinkMode::Hardlink, LinkMode::Copy] {
            let dest = dir.path().join(format!("dest-{mode}"));
            fs::create_dir(&dest).unwrap();
            let built = clone_tree(&manifest, &dest, mode, &template, None).unwrap();
            assert!(
                matches!(built, Built::SourceDamaged(_)),
                "{mode}: {built:?}"
            );
        }
    }

    #[test]
    fn a_symlink_already_in_the_destination_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let digest = store.put_bytes(b"x", false).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        for mode in [LinkMode::Auto, LinkMode::Hardlink, LinkMode::Copy] {
            let dest = dir.path().join(format!("dest-{mode}"));
            fs::create_dir_all(dest.join("a")).unwrap();
            // Someone planted `a/lib -> outside` in the staging directory.
            std::os::unix::fs::symlink(&outside, dest.join("a/lib")).unwrap();
            let manifest = Manifest {
                entries: vec![file("a/lib/x.js", &digest)],
            };
            let err = build_from_store(&manifest, &dest, mode, &store, None).unwrap_err();
            assert!(err.to_string().contains("a/lib"), "{err}");
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{mode}");
        }
    }

    #[test]
    fn symlinks_come_last_so_no_file_goes_through_one() {
        // The layout check refuses this manifest; below it, the writer alone must not write
        // through the link either: the file makes `a/z` a real directory, the link then fails.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let digest = store.put_bytes(b"x", false).unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let manifest = Manifest {
            entries: vec![link("a/z", "../.."), file("a/z/evil", &digest)],
        };
        assert!(manifest.check_layout().is_err());
        let stats = std::thread::scope(|scope| {
            let queue = SyncQueue::start(scope, Barrier::Descriptors);
            let result = lay_out(
                &manifest,
                &dest,
                LinkMode::Hardlink,
                Source::Store(&store),
                None,
                open_dir(&dest).unwrap(),
                &queue,
                &place::SYSTEM,
            );
            queue.finish().unwrap();
            result
        });
        assert!(stats.is_err());
        assert!(dest.join("a/z").is_dir());
        assert!(dest.join("a/z/evil").is_file());
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn lays_out_files_directories_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let digest = store.put_bytes(b"x", false).unwrap();
        let manifest = Manifest {
            entries: vec![
                link(".bin/x", "../a/x.js"),
                file("a/b/c/d.js", &digest),
                file("a/x.js", &digest),
                file("b/y.js", &digest),
            ],
        };
        for mode in [LinkMode::Auto, LinkMode::Hardlink, LinkMode::Copy] {
            let dest = dir.path().join(format!("dest-{mode}"));
            fs::create_dir(&dest).unwrap();
            let stats = build_from_store(&manifest, &dest, mode, &store, None).unwrap();
            assert_eq!((stats.files, stats.symlinks), (3, 1));
            assert_eq!(fs::read(dest.join(".bin/x")).unwrap(), b"x");
            let clone = dir.path().join(format!("clone-{mode}"));
            fs::create_dir(&clone).unwrap();
            let built = clone_tree(&manifest, &clone, mode, &dest, None).unwrap();
            assert!(matches!(built, Built::Done(s) if s.files == 3), "{built:?}");
            assert_eq!(fs::read(clone.join("a/b/c/d.js")).unwrap(), b"x");
        }
    }
}
