//! The content-addressed package store.
//!
//! # Why a store
//!
//! Allocating `node_modules` by unpacking tarballs per app is slow and, under a surge of
//! migrating apps, it is exactly the work that fails half-way and leaves apps booting on a
//! corrupted tree. The store unpacks every tarball once, keeps each
//! file once (addressed by the sha512 of its content, so a `LICENSE` shared by 300 packages is
//! stored once), and lets the allocator build trees out of hardlinks.
//!
//! # Layout and crash safety
//!
//! ```text
//! STORE/store.lock                  shared by every user, exclusive for cleanup and gc
//! STORE/files/ab/cdef…              content (sha512 hex), mode 0444
//! STORE/files/ab/cdef…-exec         the same content as its own executable inode, mode 0555
//! STORE/index/sha512-<hex>.json     package index keyed by the tarball's integrity
//! STORE/index/sha1-<hex>.json       the same index under the tarball's sha1 integrity
//! STORE/manifests/<digest>.json     a materialized tree's manifest, by its sha512 digest
//! STORE/templates/<digest>/         a ready tree, published by rename, with a marker
//! STORE/locks/<digest>.lock         single-flight lock of one template (deleted with it)
//! STORE/slots/<i>.lock              store-wide execution slots and their space reservations
//! STORE/queue/<i>.lock              store-wide queue places
//! STORE/tmp/, STORE/staging/        work in progress (removed on open when nobody uses the
//!                                   store, and swept while in use: see `sweep`)
//! STORE/quarantine/                 store files whose content no longer matched their digest
//! ```
//!
//! Every visible file is written to `tmp/` first and renamed into place, so a crash never leaves
//! a half-written file under a content address, an index entry or a marker. Index entries are
//! written after all the files they list.
//!
//! # The hardlink hazard, and executables
//!
//! A hardlinked `node_modules` file *is* the store file: an app that edits it edits the store.
//! Store files are therefore read-only (0444/0555) and carry one fixed mtime ([`CONTENT_MTIME`]):
//! an in-place write moves it, so the allocator's per-file `lstat` of every staged tree notices
//! the edit before the inode is linked again, and re-hashes the file. `verify` re-hashes content
//! (never trusts size or mtime), and a file whose content no longer matches its address is moved
//! to `quarantine/`, re-imported from its recorded source when available, and never linked again.
//! A file at a content address that does not look as published (size, mode, mtime: e.g. empty
//! after a power loss) is replaced by the next import of the same content.
//! The permission bits live on the inode too, so `chmod +x` on a linked file would change the
//! store file and every other tree linking it. We never chmod a linked file: an executable file
//! (tarball mode with an x bit, or a declared `bin`) is stored as a *separate* inode with the
//! `-exec` suffix and mode 0555, and trees link whichever variant they need.
//!
//! ```
//! use node_modules_alloc::store::Store;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let digest = store.put_bytes(b"module.exports = 42;\n", false)?;
//! assert!(store.file_path(&digest, false).exists());
//! assert!(store.verify_file(&digest, false)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod content;
mod gc;
mod index;
mod report;
mod templates;

pub use config::{GcConfig, StoreConfig};
pub(crate) use content::hash_file;
pub use index::{IndexEntry, PackageIndex};
pub use report::{GcReport, StoreReport};

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fsutil::{CONTENT_MTIME_SECS, create_dirs};
use crate::work::{WorkGuard, WorkTracker};

/// The modification time (seconds since the epoch, 1985-10-26T08:15:00Z, npm's fixed mtime of
/// packed files) of every published content file, and of every file of a tree laid out from
/// the store. An in-place write moves a file's mtime, so cheap checks (one `lstat`) catch an
/// app rewriting a hardlinked file before the inode is linked into another tree.
pub const CONTENT_MTIME: i64 = CONTENT_MTIME_SECS;

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    config: StoreConfig,
    lock: File,
    /// Work in flight through this handle and its clones (gc refuses while there is some).
    work: Arc<WorkTracker>,
    /// When the last scratch sweep of this handle started.
    last_sweep: Mutex<Option<Instant>>,
}

/// A content-addressed package store on disk. Cheap to clone; `Send + Sync`.
///
/// Several processes may use one store at once: every write is atomic and idempotent. Opening
/// a store takes a shared lock on `store.lock` for the lifetime of the handle; when no other
/// handle holds it, leftovers of crashed processes (`tmp/`, `staging/`, `locks/`) are removed.
/// While the store is in use, allocations sweep leftovers instead (see [`Store::sweep`]).
/// Work through a handle (allocations, imports, verifications) is counted, so that
/// [`Store::gc`] through any clone of it refuses to run meanwhile.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

const SUBDIRS: [&str; 10] = [
    "files",
    "index",
    "manifests",
    "templates",
    "locks",
    "slots",
    "queue",
    "tmp",
    "staging",
    "quarantine",
];

impl Store {
    /// Opens (creating if needed) the store at `root` with the default configuration.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(root, StoreConfig::default())
    }

    /// Opens (creating if needed) the store at `root`.
    pub fn open_with(root: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        config.validate()?;
        let root = root.as_ref().to_path_buf();
        create_dirs(&root)?;
        for sub in SUBDIRS {
            create_dirs(&root.join(sub))?;
        }
        let lock_path = root.join("store.lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(Error::io("cannot open lock", &lock_path))?;
        let store = Self {
            inner: Arc::new(Inner {
                root,
                config,
                lock,
                work: Arc::default(),
                last_sweep: Mutex::new(None),
            }),
        };
        if store.inner.lock.try_lock().is_ok() {
            let removed = store.clean_scratch(false)?;
            if removed > 0 {
                tracing::info!(store = %store.path().display(), removed, "removed stale staging and temporary files");
            }
        }
        store
            .inner
            .lock
            .lock_shared()
            .map_err(Error::io("cannot lock", &lock_path))?;
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn dir(&self, sub: &str) -> PathBuf {
        self.inner.root.join(sub)
    }

    /// Registers work in flight on this handle (allocation, template build, import,
    /// verification): [`Store::gc`] refuses to run until it is dropped. Waits while a gc of
    /// this handle runs.
    pub(crate) fn work(&self) -> WorkGuard {
        self.inner.work.begin_work()
    }

    /// Whether a sweep is due (none yet, or the last one started `interval` ago or more); if
    /// so, records that one starts now, so concurrent callers do not sweep twice.
    pub(crate) fn claim_sweep(&self, interval: Duration) -> bool {
        let mut last = self
            .inner
            .last_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.saturating_duration_since(at) < interval) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests;
