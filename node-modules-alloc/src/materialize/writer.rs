//! Laying a whole tree out from its manifest, never through a link.
//!
//! The manifest is first checked on its own ([`Manifest::check_layout`]): plain relative paths,
//! no entry below another one, symlinks resolving inside the tree. Then:
//!
//! 1. the regular files, in manifest (path) order, are split into contiguous slices, one per
//!    worker thread (one per core, at most 8, at least 256 files each: `crate::parallel`).
//!    Each worker walks its slice with its own stack of open directories ([`DirWalker`]): every
//!    directory is created with `mkdirat` (an `EEXIST` from a neighbouring worker is fine) and
//!    opened with `O_NOFOLLOW` from its parent's descriptor, every file is placed relative to
//!    its directory's descriptor ([`place`]). When cloning a template, each placed file is
//!    `lstat`ed right away and compared with its entry (type, size, mode, mtime), which spares
//!    a second walk of the tree when everything matches ([`Built::Done`]);
//! 2. symlinks are created last, once every worker is done and every file and directory
//!    exists — so even a manifest that slipped past the check cannot have a file written
//!    through one of its own links (the link's path is a real directory by then, and
//!    `symlinkat` fails);
//! 3. each directory, once a worker leaves it, and each copied or cloned file is handed to the
//!    sync queue ([`SyncQueue`]: one `syncfs` at the end, or background fsyncs of every
//!    descriptor), which is drained before returning. A directory shared by two workers is
//!    handed over by each, after its own entries: every entry is covered by a later sync. The
//!    completion marker is written under a temporary name before that barrier
//!    ([`PendingMarker`]) and renamed into place by the caller after its checks: a marker
//!    never appears before the whole tree is durable.
//!
//! When the source is another tree (a template), it is walked the same way: a template damaged
//! into holding a symlink where a directory was is reported as damaged, never followed.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::AtFlags;

use super::TreeStats;
use super::check::file_problem;
use super::dirs::{DirWalker, split};
use super::place::{self, Endpoint, Ops};
use super::sync::{Barrier, SyncQueue};
use crate::config::LinkMode;
use crate::error::{Error, Result};
use crate::fsutil::{join_rel, open_dir};
use crate::manifest::{Manifest, ManifestEntry};
use crate::parallel::{run_slices, workers_for};
use crate::store::Store;

/// The outcome of laying a tree out from another tree.
#[derive(Debug)]
pub(crate) enum Built {
    /// The tree is complete and durable (and, when the caller asked for checks, every file
    /// matched its manifest entry as it was placed).
    Done(TreeStats),
    /// The tree is complete and durable, but some placed files did not match their manifest
    /// entries (only when the caller asked for checks): the caller looks closer.
    Differs(TreeStats),
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
        Check::Skip,
        &place::SYSTEM,
    )? {
        Built::Done(stats) | Built::Differs(stats) => Ok(stats),
        Built::SourceDamaged(reason) => Err(Error::Malformed {
            path: store.path().join("files"),
            reason,
        }),
    }
}

/// Lays `manifest` out under `dest` (an existing, empty directory) from the tree `template`,
/// checking every file as it is placed (`lstat`: type, size, mode, mtime): [`Built::Done`]
/// when each matched its entry, [`Built::Differs`] when some did not.
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
        Check::Placed,
        &place::SYSTEM,
    )
}

/// Whether each placed file is checked against the manifest as it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// No (the caller checks the tree, or trusts its source).
    Skip,
    /// `lstat` of every placed file, compared with its entry (see [`Built::Differs`]).
    Placed,
}

fn build(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    source: Source<'_>,
    marker: Option<PendingMarker<'_>>,
    check: Check,
    ops: &Ops<'_>,
) -> Result<Built> {
    let workers = workers_for(manifest.files(), MIN_FILES_PER_WORKER);
    build_with(manifest, dest, mode, source, marker, check, ops, workers)
}

/// [`build`] with `workers` threads placing files.
#[allow(clippy::too_many_arguments)]
fn build_with(
    manifest: &Manifest,
    dest: &Path,
    mode: LinkMode,
    source: Source<'_>,
    marker: Option<PendingMarker<'_>>,
    check: Check,
    ops: &Ops<'_>,
    workers: usize,
) -> Result<Built> {
    manifest.check_layout().map_err(|reason| Error::Malformed {
        path: dest.to_path_buf(),
        reason: format!("refusing to lay out an unsafe tree: {reason}"),
    })?;
    let root = open_dir(dest).map_err(Error::io("cannot open", dest))?;
    let template = match source {
        Source::Store(_) => None,
        Source::Tree(path) => match open_dir(path) {
            Ok(fd) => Some(fd),
            Err(e) => {
                return Ok(Built::SourceDamaged(format!(
                    "template {}: {e}",
                    path.display()
                )));
            }
        },
    };
    let barrier = Barrier::choose(directories(manifest));
    tracing::debug!(workers, files = manifest.files(), "laying the tree out");
    let job = Job {
        dest,
        root: &root,
        workers,
        mode,
        source,
        template: template.as_ref(),
        check,
        ops,
    };
    std::thread::scope(|scope| {
        let queue = SyncQueue::start(scope, barrier);
        let laid_out = lay_out(manifest, &job, &queue).and_then(|built| {
            if let (Built::Done(_) | Built::Differs(_), Some(marker)) = (&built, marker) {
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

/// What every worker of one layout shares.
struct Job<'a> {
    dest: &'a Path,
    /// `dest`, open.
    root: &'a OwnedFd,
    /// How many threads place the files.
    workers: usize,
    mode: LinkMode,
    source: Source<'a>,
    /// The source tree's root ([`Source::Tree`]).
    template: Option<&'a OwnedFd>,
    check: Check,
    ops: &'a Ops<'a>,
}

/// Files per worker below which a tree is laid out by fewer workers.
const MIN_FILES_PER_WORKER: usize = 256;

/// The outcome of one worker.
enum Part {
    /// Its files are placed: counts, and how many differ from the manifest.
    Done(TreeStats, usize),
    /// See [`Built::SourceDamaged`].
    SourceDamaged(String),
    /// Stopped because another worker failed.
    Cancelled,
}

/// Lays the tree out: the regular files in contiguous slices of the sorted manifest, one per
/// worker (each creates the directories on its way, see `DirWalker`), then — once every worker
/// is done — the symlinks, then hands the root to the sync queue.
fn lay_out(manifest: &Manifest, job: &Job<'_>, queue: &SyncQueue<'_>) -> Result<Built> {
    let files: Vec<&ManifestEntry> = manifest
        .entries
        .iter()
        .filter(|e| matches!(e, ManifestEntry::File { .. }))
        .collect();
    let cancel = AtomicBool::new(false);
    let parts = run_slices(&files, job.workers, "nma-link", |slice| {
        place_files(slice, job, queue, &cancel)
    });
    let mut stats = TreeStats::default();
    let mut differs = 0;
    let mut damaged = None;
    for part in parts {
        match part? {
            Part::Done(part, part_differs) => {
                stats.add(&part);
                differs += part_differs;
            }
            Part::SourceDamaged(problem) => {
                damaged.get_or_insert(problem);
            }
            Part::Cancelled => {}
        }
    }
    if let Some(problem) = damaged {
        return Ok(Built::SourceDamaged(problem));
    }
    let root = job
        .root
        .try_clone()
        .map_err(Error::io("cannot open", job.dest))?;
    let mut out = DirWalker::new(root, true);
    let mut closed = |path: String, fd: OwnedFd| queue.push(path, fd);
    // Symlinks last: every file and directory exists, so none is written through a link.
    for entry in &manifest.entries {
        let ManifestEntry::Symlink { path, target } = entry else {
            continue;
        };
        let (parent, name) = split(path);
        let dir = out
            .enter(&parent, &mut closed)
            .map_err(|e| walk_failed(job.dest, e))?;
        rustix::fs::symlinkat(target.as_str(), dir, name)
            .map_err(|e| Error::io("cannot create symlink", join_rel(job.dest, path))(e.into()))?;
        stats.symlinks += 1;
    }
    let root = out.finish(&mut closed);
    queue.push(String::new(), root);
    Ok(if differs == 0 {
        Built::Done(stats)
    } else {
        tracing::debug!(differs, "placed files differ from the manifest");
        Built::Differs(stats)
    })
}

fn walk_failed(dest: &Path, e: super::dirs::WalkError) -> Error {
    Error::io("cannot create directory", join_rel(dest, &e.dir))(e.source)
}

/// Places one slice of the manifest's regular files, each directory created (or opened) from
/// its parent's descriptor on the way. Stops early once another worker failed (`cancel`), and
/// sets it when failing.
fn place_files(
    files: &[&ManifestEntry],
    job: &Job<'_>,
    queue: &SyncQueue<'_>,
    cancel: &AtomicBool,
) -> Result<Part> {
    let part = place_files_uncancelled(files, job, queue, cancel);
    if !matches!(part, Ok(Part::Done(..))) {
        cancel.store(true, Ordering::Relaxed);
    }
    part
}

fn place_files_uncancelled(
    files: &[&ManifestEntry],
    job: &Job<'_>,
    queue: &SyncQueue<'_>,
    cancel: &AtomicBool,
) -> Result<Part> {
    let dest = job.dest;
    let root = job
        .root
        .try_clone()
        .map_err(Error::io("cannot open", dest))?;
    let mut out = DirWalker::new(root, true);
    let mut template = match (job.source, job.template) {
        (Source::Tree(path), Some(fd)) => match fd.try_clone() {
            Ok(fd) => Some(DirWalker::new(fd, false)),
            Err(e) => return Err(Error::io("cannot open", path)(e)),
        },
        (Source::Tree(path), None) => {
            return Ok(Part::SourceDamaged(format!(
                "template {} not open",
                path.display()
            )));
        }
        (Source::Store(_), _) => None,
    };
    let mut closed = |path: String, fd: OwnedFd| queue.push(path, fd);
    let mut stats = TreeStats::default();
    let mut differs = 0;
    for entry in files {
        if cancel.load(Ordering::Relaxed) {
            drop(out.finish(&mut closed));
            return Ok(Part::Cancelled);
        }
        let ManifestEntry::File {
            path,
            digest,
            exec,
            size,
        } = entry
        else {
            continue;
        };
        let (parent, name) = split(path);
        let dir = out
            .enter(&parent, &mut closed)
            .map_err(|e| walk_failed(dest, e))?;
        let store_path;
        let src = match (job.source, template.as_mut()) {
            (Source::Tree(_), Some(walker)) => match walker.enter(&parent, &mut |_, _| {}) {
                Ok(fd) => Endpoint {
                    dir: fd.as_fd(),
                    name: OsStr::new(name),
                },
                Err(e) => return Ok(Part::SourceDamaged(format!("{path}: {e}"))),
            },
            (Source::Store(store), _) => {
                store_path = store.file_path(digest, *exec);
                Endpoint {
                    dir: rustix::fs::CWD,
                    name: store_path.as_os_str(),
                }
            }
            (Source::Tree(path), None) => {
                return Ok(Part::SourceDamaged(format!(
                    "template {} not open",
                    path.display()
                )));
            }
        };
        let target = Endpoint {
            dir: dir.as_fd(),
            name: OsStr::new(name),
        };
        match place::place(src, target, job.mode, *exec, job.ops) {
            Ok((placed, file)) => {
                stats.count(placed);
                if let Some(file) = file {
                    queue.push(path.clone(), OwnedFd::from(file));
                }
            }
            Err(e) if matches!(job.source, Source::Tree(_)) && source_problem(&e) => {
                return Ok(Part::SourceDamaged(format!("{path}: {e}")));
            }
            Err(e) => return Err(Error::io("cannot place file", join_rel(dest, path))(e)),
        }
        if job.check == Check::Placed {
            let found = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW);
            if found.map_or(true, |stat| file_problem(&stat, *size, *exec).is_some()) {
                differs += 1;
            }
        }
    }
    // The root is synced once, after the symlinks: this descriptor is not needed for it.
    drop(out.finish(&mut closed));
    Ok(Part::Done(stats, differs))
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
            let root = open_dir(&dest).unwrap();
            let job = Job {
                dest: &dest,
                root: &root,
                workers: 1,
                mode: LinkMode::Hardlink,
                source: Source::Store(&store),
                template: None,
                check: Check::Skip,
                ops: &place::SYSTEM,
            };
            let result = lay_out(&manifest, &job, &queue);
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

    /// Packages with nested directories, a scope, shared content and `.bin` links, sorted.
    fn nested_manifest(store: &Store, packages: usize) -> Manifest {
        let content = |bytes: &[u8]| (store.put_bytes(bytes, false).unwrap(), bytes.len() as u64);
        let shared = content(b"MIT");
        let mut entries = Vec::new();
        for p in 0..packages {
            let own = content(format!("pkg {p}").as_bytes());
            let dirs = [
                format!("pkg{p:03}"),
                format!("@scope/pkg{p:03}"),
                format!("pkg{p:03}/node_modules/dep"),
            ];
            for dir in dirs {
                for name in ["index.js", "lib/a.js", "lib/deep/b/c.js", "LICENSE"] {
                    let (digest, size) = if name == "LICENSE" { &shared } else { &own };
                    entries.push(ManifestEntry::File {
                        path: format!("{dir}/{name}"),
                        digest: digest.clone(),
                        size: *size,
                        exec: false,
                    });
                }
            }
            entries.push(link(
                &format!(".bin/tool{p:03}"),
                &format!("../pkg{p:03}/index.js"),
            ));
        }
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        Manifest { entries }
    }

    /// Every entry below `root`: path, kind, and the inode (files) or target (symlinks).
    fn tree(root: &Path) -> Vec<(String, String)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let meta = fs::symlink_metadata(&path).unwrap();
                let what = if meta.is_dir() {
                    stack.push(path);
                    "dir".to_owned()
                } else if meta.is_symlink() {
                    format!("-> {}", fs::read_link(&path).unwrap().display())
                } else {
                    format!("inode {} mode {:o}", meta.ino(), meta.mode() & 0o7777)
                };
                out.push((rel, what));
            }
        }
        out.sort();
        out
    }

    fn clone_with(manifest: &Manifest, dest: &Path, template: &Path, workers: usize) -> Built {
        fs::create_dir(dest).unwrap();
        build_with(
            manifest,
            dest,
            LinkMode::Hardlink,
            Source::Tree(template),
            None,
            Check::Placed,
            &place::SYSTEM,
            workers,
        )
        .unwrap()
    }

    #[test]
    fn a_parallel_clone_of_a_nested_template_is_identical_to_a_sequential_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let manifest = nested_manifest(&store, 30);
        let template = dir.path().join("template");
        fs::create_dir(&template).unwrap();
        build_from_store(&manifest, &template, LinkMode::Hardlink, &store, None).unwrap();
        let expected = tree(&template);
        assert_eq!(
            expected
                .iter()
                .filter(|(_, w)| w.starts_with("inode"))
                .count(),
            manifest.files()
        );
        for workers in [1, 2, 4, 7, 1000] {
            let dest = dir.path().join(format!("clone-{workers}"));
            let built = clone_with(&manifest, &dest, &template, workers);
            assert!(
                matches!(built, Built::Done(s) if s.files == manifest.files() && s.symlinks == 30),
                "{workers}: {built:?}"
            );
            assert_eq!(tree(&dest), expected, "{workers} workers");
        }
    }

    #[test]
    fn parallel_workers_report_a_modified_or_missing_template_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let manifest = nested_manifest(&store, 30);
        let template = dir.path().join("template");
        fs::create_dir(&template).unwrap();
        build_from_store(&manifest, &template, LinkMode::Copy, &store, None).unwrap();
        // A file near the end (the last worker's slice) written to in place: its mtime moved.
        let modified = template.join("pkg028/lib/a.js");
        fs::set_permissions(
            &modified,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        fs::write(&modified, b"pkg 29").unwrap();
        fs::set_permissions(
            &modified,
            std::os::unix::fs::PermissionsExt::from_mode(0o444),
        )
        .unwrap();
        let built = clone_with(&manifest, &dir.path().join("modified"), &template, 4);
        assert!(matches!(built, Built::Differs(_)), "{built:?}");
        // A file missing in the middle (the second worker's slice).
        fs::remove_file(template.join("pkg010/lib/deep/b/c.js")).unwrap();
        let built = clone_with(&manifest, &dir.path().join("missing"), &template, 4);
        assert!(
            matches!(&built, Built::SourceDamaged(p) if p.contains("pkg010/lib/deep/b/c.js")),
            "{built:?}"
        );
    }
}
