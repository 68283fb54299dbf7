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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::bins::{normalize_bin_target, validate_bin_name};
use crate::config::ImportLimits;
use crate::error::{Error, Result};
use crate::fsutil::{
    CONTENT_MTIME_SECS, age, atomic_write, create_dirs, has_content_mtime, remove_tree,
    set_content_mtime, sync_dir, unique_name,
};
use crate::integrity::{Hash, Integrity};
use crate::locks::{LockFile, LockMode};
use crate::work::{WorkGuard, WorkTracker};

/// The modification time (seconds since the epoch, 1985-10-26T08:15:00Z, npm's fixed mtime of
/// packed files) of every published content file, and of every file of a tree laid out from
/// the store. An in-place write moves a file's mtime, so cheap checks (one `lstat`) catch an
/// app rewriting a hardlinked file before the inode is linked into another tree.
pub const CONTENT_MTIME: i64 = CONTENT_MTIME_SECS;

/// Store configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Limits applied to every imported tarball.
    pub limits: ImportLimits,
    /// fsync content files before publishing them, and their `files/xx/` directory after (index
    /// files, manifests, templates and markers are always synced). Off by default: a process
    /// crash cannot tear a renamed file; a power loss can leave empty content, which the next
    /// import of the same content replaces, allocations detect (size) and `verify` repairs.
    pub sync_content: bool,
}

impl StoreConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), resilience_core::ConfigError> {
        self.limits.validate().map_err(|e| e.nested("limits"))
    }
}

/// One entry of a package index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum IndexEntry {
    /// A regular file.
    File {
        /// Path inside the package (`lib/index.js`), top directory removed.
        path: String,
        /// sha512 hex of the content.
        digest: String,
        /// Size in bytes.
        size: u64,
        /// Whether the file is executable (tarball mode had an x bit, or it is a declared bin).
        exec: bool,
    },
    /// A symbolic link that stays inside the package.
    Symlink {
        /// Path inside the package.
        path: String,
        /// Link target, relative.
        target: String,
    },
}

impl IndexEntry {
    /// The entry's path inside the package.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// The package index of one tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageIndex {
    /// The tarball's sha512 integrity.
    pub integrity: String,
    /// The tarball's sha1 integrity.
    pub sha1: String,
    /// `name` from the package's `package.json`, if any.
    pub name: Option<String>,
    /// `version` from the package's `package.json`, if any.
    pub version: Option<String>,
    /// Declared bins (`name` → path inside the package).
    pub bins: BTreeMap<String, String>,
    /// Entries, sorted by path.
    pub entries: Vec<IndexEntry>,
    /// Where the tarball was imported from (used to re-import quarantined files).
    pub source: Option<PathBuf>,
    /// Other integrity hashes (sha256, sha384 from a custom cache) that the tarball's bytes
    /// were verified against and under which this index is also filed. A lookup by a hash that
    /// is neither `integrity`, `sha1` nor listed here does not accept the index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_keys: Vec<String>,
}

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Store files re-hashed.
    pub checked: usize,
    /// Content digests (with `-exec` suffix for executable variants) that were quarantined.
    pub quarantined: Vec<String>,
    /// Packages re-imported from their source.
    pub reimported: Vec<String>,
    /// Packages whose files were quarantined and whose source is gone.
    pub unrecoverable: Vec<String>,
    /// Templates removed because they linked quarantined content.
    pub templates_removed: usize,
}

impl StoreReport {
    /// Whether the store is fully healthy now (nothing unrecoverable).
    pub fn is_healthy(&self) -> bool {
        self.unrecoverable.is_empty()
    }
}

/// The outcome of [`Store::gc`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Content files not referenced by any package index, removed.
    pub files_removed: usize,
    /// Templates removed (they are caches and are rebuilt on demand).
    pub templates_removed: usize,
    /// Work-in-progress, lock and quarantine entries removed.
    pub scratch_removed: usize,
    /// Manifests removed: no template uses them and nothing used them within
    /// [`GcConfig::manifest_retention`].
    pub manifests_removed: usize,
}

/// Configuration of [`Store::gc_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Manifests (`manifests/<digest>.json`) that no template uses are removed once nothing
    /// used them for this long. Allocations (including reuses of an intact tree) and
    /// verifications stamp the manifest they use, and `verify` needs the manifest of a tree to
    /// check it without its lockfile, so this is how long an app may go without allocation or
    /// verification and still verify from its marker alone after a gc (an allocation restores
    /// the manifest). Default 30 days; 0 removes every manifest no template uses.
    #[serde(with = "humantime_serde")]
    pub manifest_retention: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            manifest_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl GcConfig {
    /// Checks every field (every retention, zero included, is valid).
    pub fn validate(&self) -> Result<(), resilience_core::ConfigError> {
        Ok(())
    }
}

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

    /// Where the content with sha512 hex `digest` lives (`exec` selects the executable variant).
    pub fn file_path(&self, digest: &str, exec: bool) -> PathBuf {
        let (head, tail) = digest.split_at(digest.len().min(2));
        let name = if exec {
            format!("{tail}-exec")
        } else {
            tail.to_owned()
        };
        self.inner.root.join("files").join(head).join(name)
    }

    /// Publishes the temporary file `tmp` (already hashed to `digest`) under its content address,
    /// read-only and with the fixed [`CONTENT_MTIME`]. Idempotent: when the address already
    /// holds intact content (see [`Store::content_intact`]) the temporary file is dropped; a
    /// truncated or otherwise damaged file there (a power loss after a rename that was not
    /// synced) is replaced — it never wins over the fresh copy. With `sync_content`, the file and
    /// its directory are fsynced around the rename.
    pub(crate) fn publish_temp(&self, tmp: &Path, digest: &str, exec: bool) -> Result<()> {
        let target = self.file_path(digest, exec);
        let size = fs::metadata(tmp)
            .map_err(Error::io("cannot stat", tmp))?
            .len();
        if let Ok(existing) = fs::symlink_metadata(&target) {
            if self.content_intact(digest, exec, size) {
                let _ = fs::remove_file(tmp);
                return Ok(());
            }
            if existing.is_file() && existing.len() == size {
                // Metadata only (an older version's mtime, a chmod through a hardlink).
                tracing::debug!(
                    digest,
                    exec,
                    "republishing a store file with its published mode and mtime"
                );
            } else {
                tracing::warn!(
                    digest,
                    exec,
                    size,
                    found = existing.len(),
                    "store file at this content address is damaged (truncated by a crash?); replacing it"
                );
            }
        }
        let sync = self.inner.config.sync_content;
        if let Some(parent) = target.parent()
            && fs::symlink_metadata(parent).is_err()
        {
            create_dirs(parent)?;
            if sync {
                sync_dir(&self.dir("files"))?;
            }
        }
        let mode = if exec { 0o555 } else { 0o444 };
        fs::set_permissions(tmp, fs::Permissions::from_mode(mode))
            .map_err(Error::io("cannot set permissions of", tmp))?;
        set_content_mtime(tmp).map_err(Error::io("cannot set the mtime of", tmp))?;
        if sync {
            File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(Error::io("cannot sync", tmp))?;
        }
        fs::rename(tmp, &target).map_err(Error::io("cannot publish", &target))?;
        match target.parent() {
            Some(parent) if sync => sync_dir(parent),
            _ => Ok(()),
        }
    }

    /// Whether the store holds the `exec` variant of `digest` as it was published: a regular
    /// file of `size` bytes, mode 0444 (0555), mtime [`CONTENT_MTIME`]. A cheap structural check
    /// (one `lstat`), not a re-hash: it catches what a crash leaves (a truncated file) and an
    /// in-place edit (which moves the mtime); [`Store::verify_file`] re-hashes.
    pub fn content_intact(&self, digest: &str, exec: bool, size: u64) -> bool {
        fs::symlink_metadata(self.file_path(digest, exec)).is_ok_and(|meta| {
            meta.is_file()
                && meta.len() == size
                && meta.permissions().mode() & 0o7777 == if exec { 0o555 } else { 0o444 }
                && has_content_mtime(&meta)
        })
    }

    /// A fresh path in `tmp/`.
    pub(crate) fn temp_path(&self) -> PathBuf {
        self.dir("tmp").join(unique_name("t"))
    }

    /// Stores `bytes` and returns their sha512 hex digest.
    pub fn put_bytes(&self, bytes: &[u8], exec: bool) -> Result<String> {
        let digest = hex::encode(Sha512::digest(bytes));
        if self.content_intact(&digest, exec, bytes.len() as u64) {
            return Ok(digest);
        }
        let tmp = self.temp_path();
        fs::write(&tmp, bytes).map_err(Error::io("cannot write", &tmp))?;
        self.publish_temp(&tmp, &digest, exec)?;
        Ok(digest)
    }

    /// Makes sure the `exec` variant of `digest` exists, creating it from the other variant
    /// (re-hashed on the way, so corrupt content is never propagated).
    ///
    /// An existing variant is kept unless it is visibly damaged (its size differs from the
    /// other variant, which carries the published mtime); callers re-hash it before linking it.
    pub fn ensure_variant(&self, digest: &str, exec: bool) -> Result<()> {
        let other = self.file_path(digest, !exec);
        if let Ok(meta) = fs::symlink_metadata(self.file_path(digest, exec)) {
            let damaged = fs::symlink_metadata(&other)
                .is_ok_and(|o| o.is_file() && has_content_mtime(&o) && o.len() != meta.len());
            if meta.is_file() && !damaged {
                return Ok(());
            }
        }
        let bytes = fs::read(&other).map_err(Error::io("cannot read", &other))?;
        if hex::encode(Sha512::digest(&bytes)) != digest {
            self.quarantine(digest, !exec)?;
            return Err(Error::CorruptStore {
                digest: digest.to_owned(),
                integrity: "(executable variant)".to_owned(),
            });
        }
        let tmp = self.temp_path();
        fs::write(&tmp, &bytes).map_err(Error::io("cannot write", &tmp))?;
        self.publish_temp(&tmp, digest, exec)
    }

    /// Re-hashes one store file; `Ok(false)` when it is missing or its content does not match.
    pub fn verify_file(&self, digest: &str, exec: bool) -> Result<bool> {
        let path = self.file_path(digest, exec);
        match hash_file(&path) {
            Ok(actual) => Ok(actual == digest),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("cannot read", path)(e)),
        }
    }

    /// Restores the mode of a store file (0444, or 0555 for the executable variant) if someone
    /// changed it through a hardlink (`chmod` on a linked file changes the shared inode), and its
    /// mtime ([`Store::restore_metadata`]). Call it only on content that was just re-hashed.
    pub fn restore_mode(&self, digest: &str, exec: bool) -> Result<bool> {
        self.restore_metadata(digest, exec)
    }

    /// Restores the published metadata of a store file — mode 0444 (0555) and mtime
    /// [`CONTENT_MTIME`] — after someone changed it through a hardlink, or after an older
    /// version published it with an arbitrary mtime. Returns whether anything changed. Call it
    /// only on content that was just re-hashed: the mtime is what later cheap checks trust.
    pub fn restore_metadata(&self, digest: &str, exec: bool) -> Result<bool> {
        let path = self.file_path(digest, exec);
        let meta = fs::symlink_metadata(&path).map_err(Error::io("cannot stat", &path))?;
        let expected = if exec { 0o555 } else { 0o444 };
        let mode = meta.permissions().mode() & 0o7777;
        let mut changed = false;
        if mode != expected {
            tracing::warn!(
                digest,
                exec,
                mode = format_args!("{mode:o}"),
                "store file mode was changed through a hardlink; restoring it"
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(expected))
                .map_err(Error::io("cannot set permissions of", &path))?;
            changed = true;
        }
        if !has_content_mtime(&meta) {
            tracing::debug!(
                digest,
                exec,
                "store file mtime differs from the published one; restoring it"
            );
            set_content_mtime(&path).map_err(Error::io("cannot set the mtime of", &path))?;
            changed = true;
        }
        Ok(changed)
    }

    /// Re-hashes a store file and, when its content still matches, restores its published
    /// metadata. `Ok(false)` when it is missing or its content no longer matches (the caller
    /// quarantines it).
    pub fn revalidate(&self, digest: &str, exec: bool) -> Result<bool> {
        if !self.verify_file(digest, exec)? {
            return Ok(false);
        }
        self.restore_metadata(digest, exec)?;
        Ok(true)
    }

    /// Moves a store file to `quarantine/` so that it is never linked again.
    pub fn quarantine(&self, digest: &str, exec: bool) -> Result<()> {
        let path = self.file_path(digest, exec);
        let suffix = if exec { "-exec" } else { "" };
        let target = self
            .dir("quarantine")
            .join(unique_name(&format!("{digest}{suffix}.")));
        match fs::rename(&path, &target) {
            Ok(()) => {
                tracing::warn!(digest, exec, quarantine = %target.display(), "quarantined corrupt store file");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot quarantine", path)(e)),
        }
    }

    fn index_path(&self, hash: &Hash) -> PathBuf {
        self.dir("index")
            .join(format!("{}-{}.json", hash.algorithm.name(), hash.hex()))
    }

    /// Looks a package up by its integrity: by each hash of the strongest algorithm present,
    /// as npm's `ssri` checks data (a weaker sha1 listed next to a sha512 is never used to find
    /// a package the sha512 does not name).
    ///
    /// An index is only accepted under a hash it carries (its `integrity`, its `sha1`, or one of
    /// its `verified_keys`): an index file found under another name — planted, or written by an
    /// older version that filed packages under unverified hashes — is ignored with a warning,
    /// so one package can never answer for another's integrity. Bins whose name or target the
    /// importer would refuse today (an index written by an older version) are dropped with a
    /// warning, so they are never linked.
    pub fn read_index(&self, integrity: &Integrity) -> Result<Option<PackageIndex>> {
        let Some(strongest) = integrity.strongest_algorithm() else {
            return Ok(None);
        };
        for hash in integrity
            .hashes()
            .iter()
            .filter(|h| h.algorithm == strongest)
        {
            let path = self.index_path(hash);
            match fs::read(&path) {
                Ok(bytes) => {
                    let mut index: PackageIndex =
                        serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    if index_carries(&index, hash) {
                        drop_invalid_bins(&mut index, &path);
                        return Ok(Some(index));
                    }
                    tracing::warn!(
                        index = %path.display(),
                        integrity = %hash,
                        found = %index.integrity,
                        "package index does not carry the hash it is filed under; ignored"
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot read", path)(e)),
            }
        }
        Ok(None)
    }

    /// Writes a package index under each hash of `keys` (atomic, synced). Every key must have
    /// been verified against the tarball's bytes (see `import`), and be one that
    /// [`Store::read_index`] accepts for this index.
    pub(crate) fn write_index(&self, index: &PackageIndex, keys: &Integrity) -> Result<()> {
        let bytes = serde_json::to_vec(index).map_err(|e| Error::Malformed {
            path: self.dir("index"),
            reason: e.to_string(),
        })?;
        for hash in keys.hashes() {
            if !index_carries(index, hash) {
                return Err(Error::Malformed {
                    path: self.index_path(hash),
                    reason: format!(
                        "refusing to file package {} under {hash}, a hash it does not carry",
                        index.integrity
                    ),
                });
            }
            atomic_write(
                &self.dir("tmp"),
                &self.index_path(hash),
                &bytes,
                true,
                0o644,
            )?;
        }
        Ok(())
    }

    /// Whether every file an index lists is present in the store (each content variant checked
    /// once, however many entries share it).
    pub(crate) fn has_all_files(&self, index: &PackageIndex) -> bool {
        let mut checked = std::collections::HashSet::new();
        index.entries.iter().all(|e| match e {
            IndexEntry::File {
                digest, exec, size, ..
            } => {
                !checked.insert((digest.as_str(), *exec))
                    || self.content_intact(digest, *exec, *size)
            }
            IndexEntry::Symlink { .. } => true,
        })
    }

    /// All package indexes (deduplicated by sha512 integrity).
    pub fn indexes(&self) -> Result<Vec<PackageIndex>> {
        let dir = self.dir("index");
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("sha512-") {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(Error::io("cannot read", &path))?;
            let index: PackageIndex =
                serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            out.insert(index.integrity.clone(), index);
        }
        Ok(out.into_values().collect())
    }

    /// Every content file in the store as `(digest, exec)`.
    pub fn content_files(&self) -> Result<Vec<(String, bool)>> {
        let files = self.dir("files");
        let mut out = Vec::new();
        for head in fs::read_dir(&files).map_err(Error::io("cannot read", &files))? {
            let head = head.map_err(Error::io("cannot read", &files))?;
            let head_name = head.file_name().to_string_lossy().into_owned();
            let head_path = head.path();
            for file in fs::read_dir(&head_path).map_err(Error::io("cannot read", &head_path))? {
                let file = file.map_err(Error::io("cannot read", &head_path))?;
                let name = file.file_name().to_string_lossy().into_owned();
                let (tail, exec) = match name.strip_suffix("-exec") {
                    Some(t) => (t.to_owned(), true),
                    None => (name, false),
                };
                out.push((format!("{head_name}{tail}"), exec));
            }
        }
        out.sort();
        Ok(out)
    }

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

    /// Removes `tmp/`, `staging/` and `locks/` contents (and `quarantine/` when `quarantine` is
    /// set). Only call while holding the store lock exclusively: then no other handle or
    /// process has anything in flight, and no lock file is held.
    fn clean_scratch(&self, quarantine: bool) -> Result<usize> {
        let mut removed = 0;
        let dirs: &[&str] = if quarantine {
            &["tmp", "staging", "locks", "quarantine"]
        } else {
            &["tmp", "staging", "locks"]
        };
        for sub in dirs {
            let dir = self.dir(sub);
            for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
                let entry = entry.map_err(Error::io("cannot read", &dir))?;
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let result = if is_dir {
                    remove_tree(&path)
                } else {
                    match fs::remove_file(&path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            Err(Error::io("cannot remove", &path)(e))
                        }
                        _ => Ok(()),
                    }
                };
                result?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Garbage-collects the store with the default [`GcConfig`]: see [`Store::gc_with`].
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with(&GcConfig::default())
    }

    /// Garbage-collects the store: removes every template (caches, rebuilt on demand), lock
    /// files, manifests no template uses and nothing used within
    /// [`GcConfig::manifest_retention`], content not referenced by any package index, temporary
    /// files and quarantined files.
    ///
    /// Needs the store to itself: fails with [`Error::StoreBusy`] when another handle or
    /// process uses it, or when work is in flight through this very handle or a clone of it
    /// (an allocation, a template build, an import, a verification). New work through this
    /// handle waits until the gc is done.
    pub fn gc_with(&self, config: &GcConfig) -> Result<GcReport> {
        config.validate()?;
        let busy = || Error::StoreBusy {
            path: self.path().to_path_buf(),
        };
        let _collecting = match self.inner.work.begin_gc() {
            Ok(guard) => guard,
            Err(in_flight) => {
                tracing::info!(store = %self.path().display(), in_flight, "gc refused: work in flight on this store handle");
                return Err(busy());
            }
        };
        let lock = &self.inner.lock;
        if lock.try_lock().is_err() {
            let _ = lock.lock_shared();
            tracing::info!(store = %self.path().display(), "gc refused: another handle or process uses the store");
            return Err(busy());
        }
        let result = self.gc_locked(config);
        let relock = lock
            .lock_shared()
            .map_err(Error::io("cannot lock", self.dir("store.lock")));
        let report = result?;
        relock?;
        tracing::info!(
            files_removed = report.files_removed,
            templates_removed = report.templates_removed,
            scratch_removed = report.scratch_removed,
            manifests_removed = report.manifests_removed,
            "store garbage-collected"
        );
        Ok(report)
    }

    fn gc_locked(&self, config: &GcConfig) -> Result<GcReport> {
        let mut report = GcReport {
            scratch_removed: self.clean_scratch(true)?,
            ..GcReport::default()
        };
        let templates = self.dir("templates");
        for entry in fs::read_dir(&templates).map_err(Error::io("cannot read", &templates))? {
            let entry = entry.map_err(Error::io("cannot read", &templates))?;
            remove_tree(&entry.path())?;
            report.templates_removed += 1;
        }
        report.manifests_removed = self.remove_unused_manifests(config.manifest_retention)?;
        let mut live = BTreeSet::new();
        for index in self.indexes()? {
            for entry in index.entries {
                if let IndexEntry::File { digest, .. } = entry {
                    live.insert(digest);
                }
            }
        }
        for (digest, exec) in self.content_files()? {
            if !live.contains(&digest) {
                let path = self.file_path(&digest, exec);
                fs::remove_file(&path).map_err(Error::io("cannot remove", &path))?;
                report.files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Removes manifests that no template uses and that nothing used within `retention`.
    fn remove_unused_manifests(&self, retention: Duration) -> Result<usize> {
        let dir = self.dir("manifests");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(digest) = name.strip_suffix(".json") else {
                continue;
            };
            if self.dir("templates").join(digest).exists() {
                continue;
            }
            let path = entry.path();
            let meta = entry.metadata().map_err(Error::io("cannot stat", &path))?;
            if age(&meta) < retention {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove", &path)(e)),
            }
        }
        Ok(removed)
    }
}

/// Removes bins whose name or target an importer of today would have refused.
fn drop_invalid_bins(index: &mut PackageIndex, path: &Path) {
    index.bins.retain(|name, target| {
        let valid = validate_bin_name(name).is_ok()
            && normalize_bin_target(target).is_ok_and(|t| t == *target);
        if !valid {
            tracing::warn!(index = %path.display(), bin = %name, target = %target, "invalid bin in package index dropped: it will not be linked");
        }
        valid
    });
}

/// Whether `index` is the package of `hash`: its sha512 `integrity`, its `sha1`, or a recorded
/// verified key.
fn index_carries(index: &PackageIndex, hash: &Hash) -> bool {
    let key = hash.to_string();
    let own = |text: &str| {
        text.parse::<Integrity>()
            .is_ok_and(|i| i.hashes().contains(hash))
    };
    own(&index.integrity) || own(&index.sha1) || index.verified_keys.contains(&key)
}

/// sha512 hex of a file's content, streamed.
pub(crate) fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }

    #[test]
    fn identical_content_is_stored_once_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.put_bytes(b"same", false).unwrap();
        let b = store.put_bytes(b"same", false).unwrap();
        assert_eq!(a, b);
        assert_eq!(store.content_files().unwrap().len(), 1);
        let mode = fs::metadata(store.file_path(&a, false))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
    }

    #[test]
    fn executable_variant_is_a_separate_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"#!/bin/sh\n", false).unwrap();
        store.ensure_variant(&d, true).unwrap();
        let plain = fs::metadata(store.file_path(&d, false)).unwrap();
        let exec = fs::metadata(store.file_path(&d, true)).unwrap();
        assert_ne!(plain.ino(), exec.ino());
        assert_eq!(exec.mode() & 0o777, 0o555);
    }

    #[test]
    fn verify_quarantines_corrupt_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"original", false).unwrap();
        let path = store.file_path(&d, false);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"tampered").unwrap();
        let report = store.verify().unwrap();
        assert_eq!(report.quarantined, vec![d.clone()]);
        assert!(!path.exists());
        assert!(!store.verify_file(&d, false).unwrap());
    }

    #[test]
    fn open_removes_stale_staging_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            fs::create_dir_all(store.dir("staging").join("leftover/x")).unwrap();
            fs::write(store.dir("tmp").join("half"), b"partial").unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(store.dir("staging")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn open_keeps_staging_while_another_handle_uses_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        fs::create_dir_all(first.dir("staging").join("busy")).unwrap();
        let _second = Store::open(dir.path()).unwrap();
        assert!(first.dir("staging").join("busy").exists());
        assert!(matches!(first.gc(), Err(Error::StoreBusy { .. })));
    }
}
