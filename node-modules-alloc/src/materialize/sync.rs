//! Making a laid-out tree durable before its completion marker is written.
//!
//! # Why, and why not one `fsync` per directory in line
//!
//! Every directory of a tree (a new directory entry lives in its parent) and every copied or
//! cloned file (its data) must reach the disk before the marker says "complete", or a power
//! loss could leave a marked tree with missing or empty files. The obvious way — `fsync` each
//! directory and each copied file — is correct on every filesystem but slow: one `fsync` costs
//! a device cache flush even when little is dirty (about 4 ms on the virtual disks we measured,
//! ext4 without a journal), and a tree has hundreds of directories: done in line they cost
//! seconds, far more than the layout. Two barriers, both correct on every filesystem:
//!
//! * [`Barrier::Filesystem`] — one `syncfs(2)` of the tree's filesystem after the layout: it
//!   writes back every dirty inode and block of that filesystem (ours, and whatever other
//!   processes left dirty) and flushes the device once. Chosen when writing back the system's
//!   dirty data (`Dirty` + `Writeback` of `/proc/meminfo`) should take less time than the
//!   per-directory fsyncs: at most [`SYNCFS_DIRTY_BYTES_PER_DIR`] per directory of the tree.
//! * [`Barrier::Descriptors`] — otherwise (or when `/proc/meminfo` cannot be read), each
//!   directory is fsynced as soon as the writer leaves it, and each copied file right after it
//!   is written, by a pool of worker threads while the layout goes on: concurrent flushes are
//!   merged by the block layer, and no call waits for other processes' data.
//!
//! [`SyncQueue::finish`] waits for every sync and reports the first failure. The queue is
//! bounded, so the number of open descriptors stays bounded too.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use rustix::fd::OwnedFd;

/// Worker threads per tree in [`Barrier::Descriptors`] mode: enough for the block layer to
/// merge many flushes.
const WORKERS: usize = 32;
/// Descriptors waiting for a worker (the writer blocks beyond that).
const QUEUE: usize = 64;
/// Dirty data (system-wide) that one directory of the tree "pays for" when choosing one
/// `syncfs` over per-directory fsyncs: a per-directory fsync costs about one device flush
/// (~4 ms) shared by the ~32 concurrent ones, ~0.1 ms, during which a disk writes about 8 KiB
/// at a pessimistic 64 MiB/s. A tree of 600 directories thus accepts ~5 MiB of dirty data.
pub(crate) const SYNCFS_DIRTY_BYTES_PER_DIR: u64 = 8 << 10;

/// How a tree is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Barrier {
    /// One `syncfs` of the tree's filesystem at the end.
    Filesystem,
    /// `fsync` of every directory and copied file, in the background.
    Descriptors,
}

impl Barrier {
    /// The cheaper barrier for a tree of `dirs` directories (see the module docs).
    pub(crate) fn choose(dirs: usize) -> Self {
        let dirty = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| dirty_bytes(&text));
        let budget = SYNCFS_DIRTY_BYTES_PER_DIR.saturating_mul(dirs as u64);
        let barrier = match dirty {
            Some(dirty) if dirty <= budget => Self::Filesystem,
            _ => Self::Descriptors,
        };
        tracing::debug!(?barrier, dirs, dirty, budget, "durability barrier chosen");
        barrier
    }
}

/// `Dirty` + `Writeback` of `/proc/meminfo`, in bytes.
fn dirty_bytes(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line
            .get(name.len()..)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        kib.checked_mul(1024)
    };
    field("Dirty:")?.checked_add(field("Writeback:")?)
}

/// A failed sync: the path (relative to the tree root) and the error.
pub(crate) type SyncFailure = (String, io::Error);

type Job = (String, OwnedFd);

/// The syncs of one tree, scoped to the layout.
#[derive(Debug)]
pub(crate) struct SyncQueue<'scope> {
    barrier: Barrier,
    sender: Option<SyncSender<Job>>,
    workers: Vec<ScopedJoinHandle<'scope, Option<SyncFailure>>>,
    /// [`Barrier::Filesystem`]: one descriptor of the tree, synced by `finish`.
    anchor: Mutex<Option<Job>>,
    /// First failure of an fsync done in line (when no worker could be started).
    inline_failure: Mutex<Option<SyncFailure>>,
}

impl<'scope> SyncQueue<'scope> {
    /// Prepares `barrier`; for [`Barrier::Descriptors`], starts the workers in `scope` (when no
    /// thread can be started, fsyncs run in line).
    pub(crate) fn start(scope: &'scope Scope<'scope, '_>, barrier: Barrier) -> Self {
        let (sender, receiver) = sync_channel::<Job>(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = Vec::new();
        let count = if barrier == Barrier::Descriptors {
            WORKERS
        } else {
            0
        };
        for _ in 0..count {
            let receiver = Arc::clone(&receiver);
            match std::thread::Builder::new()
                .name("nma-fsync".to_owned())
                .spawn_scoped(scope, move || work(&receiver))
            {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot start an fsync worker");
                    break;
                }
            }
        }
        Self {
            barrier,
            sender: (!workers.is_empty()).then_some(sender),
            workers,
            anchor: Mutex::new(None),
            inline_failure: Mutex::new(None),
        }
    }

    /// Hands over `fd` (a directory or a file of the tree, at `path` relative to its root) once
    /// nothing more is written through it.
    pub(crate) fn push(&self, path: String, fd: OwnedFd) {
        if self.barrier == Barrier::Filesystem {
            let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
            anchor.get_or_insert((path, fd));
            return;
        }
        let job = match &self.sender {
            Some(sender) => match sender.send((path, fd)) {
                Ok(()) => return,
                // Every worker is gone (they only stop when the queue closes): sync in line.
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            None => (path, fd),
        };
        if let Err(e) = rustix::fs::fsync(&job.1) {
            self.inline_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert((job.0, e.into()));
        }
    }

    /// Waits for every sync (runs the `syncfs`); the first failure, if any.
    pub(crate) fn finish(mut self) -> Result<(), SyncFailure> {
        drop(self.sender.take());
        let mut failure = self
            .inline_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for worker in self.workers.drain(..) {
            let result = worker.join().unwrap_or_else(|_| {
                Some((String::new(), io::Error::other("an fsync worker panicked")))
            });
            if failure.is_none() {
                failure = result;
            }
        }
        let anchor = self
            .anchor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((path, fd)) = anchor
            && let Err(e) = rustix::fs::syncfs(&fd)
            && failure.is_none()
        {
            failure = Some((path, e.into()));
        }
        failure.map_or(Ok(()), Err)
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) -> Option<SyncFailure> {
    let mut failure = None;
    loop {
        let job = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok((path, fd)) = job else {
            return failure;
        };
        if let Err(e) = rustix::fs::fsync(&fd)
            && failure.is_none()
        {
            failure = Some((path, e.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::open_dir;

    #[test]
    fn syncs_everything_queued_and_reports_failures_by_path() {
        let dir = tempfile::tempdir().unwrap();
        for barrier in [Barrier::Descriptors, Barrier::Filesystem] {
            std::thread::scope(|scope| {
                let queue = SyncQueue::start(scope, barrier);
                for i in 0..200 {
                    queue.push(format!("d{i}"), open_dir(dir.path()).unwrap());
                }
                assert!(queue.finish().is_ok());
            });
        }
        // fsync of a socket fails with EINVAL.
        let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        std::thread::scope(|scope| {
            let queue = SyncQueue::start(scope, Barrier::Descriptors);
            queue.push("a/socket".to_owned(), OwnedFd::from(socket));
            let (path, _) = queue.finish().unwrap_err();
            assert_eq!(path, "a/socket");
        });
    }

    #[test]
    fn reads_dirty_bytes_from_meminfo() {
        let meminfo = "MemTotal: 100 kB\nDirty:             108 kB\nWriteback:        12 kB\n";
        assert!(matches!(
            Barrier::choose(0),
            Barrier::Descriptors | Barrier::Filesystem
        ));
        assert_eq!(dirty_bytes(meminfo), Some(120 * 1024));
        assert_eq!(dirty_bytes("Dirty: x kB\nWriteback: 0 kB\n"), None);
        assert_eq!(dirty_bytes(""), None);
    }
}
