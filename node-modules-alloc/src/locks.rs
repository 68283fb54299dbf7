//! Lock files that may be deleted: one helper, used for every lock file of the store.
//!
//! # Why
//!
//! A store that lives for months creates a lock file per template (`locks/<digest>.lock`);
//! never deleting them lets `locks/` grow without bound. But deleting a lock file naively
//! breaks mutual exclusion: A opens the file, B (holding the lock) deletes it and unlocks, A
//! locks the now *unlinked* inode while C creates a fresh file at the same path and locks that
//! one — A and C both believe they hold "the" lock. The cure is a protocol every user follows:
//!
//! * whoever deletes a lock file does so while holding it exclusively ([`LockFile::remove`]);
//! * after locking, a locker checks that the path still names the inode it locked (`fstat` of
//!   its descriptor against `stat` of the path) and starts over otherwise.
//!
//! [`LockFile::acquire`] and [`LockFile::try_acquire`] implement the second half; every lock
//! file of the store (templates, store-wide slots and queue places, the admission lock) goes
//! through them. The two exceptions are never deleted: `store.lock`, held shared by each
//! handle for its lifetime, and app directories, locked through their own descriptor.
//!
//! # Self-deadlock
//!
//! `flock` locks belong to the *open file description*, not to the process: a thread that
//! holds a lock through one [`LockFile`] and asks for a conflicting lock on the same path
//! through another one waits for itself forever. Code that runs while its caller holds a lock
//! therefore takes the held guard (the `_locked` variants, e.g. `Store::discard_template_locked`)
//! instead of locking again.
//!
//! # Order
//!
//! Locks are taken in this order, never the other way round: in-process permit, store-wide
//! queue place, store-wide slot (`slots/admission.lock` only briefly, never while waiting for
//! anything), app directory, template. A thread holding a template lock may wait for another
//! template's lock only to discard that (existing) template; the holder of an existing
//! template's exclusive lock never waits for the lock of a template that does not exist.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Shared (readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Many holders at once (e.g. clones reading a template).
    Shared,
    /// One holder (e.g. the builder of a template).
    Exclusive,
}

/// A held lock on a lock file; released when dropped.
#[derive(Debug)]
pub(crate) struct LockFile {
    file: File,
    path: PathBuf,
    mode: LockMode,
}

impl LockFile {
    /// Locks `path` (creating the file if needed), waiting as long as it takes.
    pub(crate) fn acquire(path: &Path, mode: LockMode) -> Result<Self> {
        match Self::lock(path, mode, true)? {
            Some(lock) => Ok(lock),
            None => Err(Error::io("cannot lock", path)(io::Error::from(
                io::ErrorKind::WouldBlock,
            ))),
        }
    }

    /// Locks `path` (creating the file if needed) if nobody holds a conflicting lock;
    /// `Ok(None)` otherwise.
    pub(crate) fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<Self>> {
        Self::lock(path, mode, false)
    }

    fn lock(path: &Path, mode: LockMode, wait: bool) -> Result<Option<Self>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(Error::io("cannot open lock", path))?;
            let locked = match (mode, wait) {
                (LockMode::Shared, true) => file.lock_shared().map(|()| true),
                (LockMode::Exclusive, true) => file.lock().map(|()| true),
                (LockMode::Shared, false) => untried(file.try_lock_shared()),
                (LockMode::Exclusive, false) => untried(file.try_lock()),
            }
            .map_err(Error::io("cannot lock", path))?;
            if !locked {
                return Ok(None);
            }
            if same_inode(&file, path)? {
                return Ok(Some(Self {
                    file,
                    path: path.to_path_buf(),
                    mode,
                }));
            }
            // Deleted (and maybe re-created) between our open and our lock: the lock we hold
            // is on an orphan inode. Drop it and lock whatever the path names now.
            tracing::debug!(path = %path.display(), "lock file replaced while waiting; locking the new one");
        }
    }

    /// The lock file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How the lock is held.
    pub(crate) fn mode(&self) -> LockMode {
        self.mode
    }

    /// The open lock file (slot files carry a small record).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Deletes the lock file while holding it exclusively, then releases it. Lockers that
    /// opened the old file notice (their inode check fails) and lock a fresh one.
    pub(crate) fn remove(self) -> Result<()> {
        if self.mode != LockMode::Exclusive {
            return Err(Error::io(
                "cannot remove a lock file held shared",
                &self.path,
            )(io::Error::from(io::ErrorKind::InvalidInput)));
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove lock file", &self.path)(e)),
        }
    }
}

fn untried(result: std::result::Result<(), TryLockError>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Whether `path` still names the inode open as `file`.
fn same_inode(file: &File, path: &Path) -> Result<bool> {
    let held = file
        .metadata()
        .map_err(Error::io("cannot stat lock", path))?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot stat lock", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let a = LockFile::acquire(&path, LockMode::Shared).unwrap();
        let b = LockFile::try_acquire(&path, LockMode::Shared).unwrap();
        assert!(b.is_some());
        assert!(
            LockFile::try_acquire(&path, LockMode::Exclusive)
                .unwrap()
                .is_none()
        );
        drop((a, b));
        let c = LockFile::try_acquire(&path, LockMode::Exclusive).unwrap();
        assert!(c.is_some());
        assert!(
            LockFile::try_acquire(&path, LockMode::Shared)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_lock_file_deleted_while_waiting_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let holder = LockFile::acquire(&path, LockMode::Exclusive).unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || LockFile::acquire(&path, LockMode::Exclusive).unwrap())
        };
        // Give the waiter time to open the old file (if it has not, the test still passes:
        // it then opens the new one directly).
        std::thread::sleep(std::time::Duration::from_millis(50));
        holder.remove().unwrap();
        let waiter = waiter.join().unwrap();
        // The waiter holds the lock on the file the path names now, so a third party is
        // excluded from it.
        let held = waiter.file().metadata().unwrap();
        let named = fs::metadata(&path).unwrap();
        assert_eq!((held.dev(), held.ino()), (named.dev(), named.ino()));
        assert!(
            LockFile::try_acquire(&path, LockMode::Exclusive)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn only_an_exclusive_holder_may_remove_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let shared = LockFile::acquire(&path, LockMode::Shared).unwrap();
        assert!(shared.remove().is_err());
        assert!(path.exists());
        LockFile::acquire(&path, LockMode::Exclusive)
            .unwrap()
            .remove()
            .unwrap();
        assert!(!path.exists());
    }
}
