//! Making a laid-out tree durable before its completion marker is written.
//!
//! # Why in the background
//!
//! Every directory of a tree (a new directory entry lives in its parent) and every copied or
//! cloned file (its data) must reach the disk before the marker says "complete", or a power
//! loss could leave a marked tree with missing or empty files. One `fsync` typically costs a
//! device cache flush (milliseconds on virtual disks) even when little is dirty, and a tree has
//! hundreds of directories: done in line, one by one, they would cost far more than the layout
//! itself. The writer hands each directory to this queue as soon as it is done with it (and
//! each copied file right after writing it); a few worker threads fsync them while the layout
//! goes on, and concurrent flushes are merged by the block layer. [`SyncQueue::finish`] waits
//! for all of them and reports the first failure. The queue is bounded, so the number of open
//! descriptors stays bounded too.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use rustix::fd::OwnedFd;

/// Worker threads per tree: enough for the block layer to merge flushes.
const WORKERS: usize = 8;
/// Descriptors waiting for a worker (the writer blocks beyond that).
const QUEUE: usize = 64;

/// A failed fsync: the path (relative to the tree root) and the error.
pub(crate) type SyncFailure = (String, io::Error);

type Job = (String, OwnedFd);

/// Background fsyncs of one tree, scoped to the layout.
#[derive(Debug)]
pub(crate) struct SyncQueue<'scope> {
    sender: Option<SyncSender<Job>>,
    workers: Vec<ScopedJoinHandle<'scope, Option<SyncFailure>>>,
    /// First failure of an fsync done in line (when no worker could be started).
    inline_failure: Mutex<Option<SyncFailure>>,
}

impl<'scope> SyncQueue<'scope> {
    /// Starts the workers in `scope`. When no thread can be started, fsyncs run in line.
    pub(crate) fn start(scope: &'scope Scope<'scope, '_>) -> Self {
        let (sender, receiver) = sync_channel::<Job>(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
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
            sender: (!workers.is_empty()).then_some(sender),
            workers,
            inline_failure: Mutex::new(None),
        }
    }

    /// Queues `fd` (a directory or a file, at `path` relative to the tree root) for fsync.
    pub(crate) fn push(&self, path: String, fd: OwnedFd) {
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

    /// Waits for every queued fsync; the first failure, if any.
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
        std::thread::scope(|scope| {
            let queue = SyncQueue::start(scope);
            for i in 0..200 {
                queue.push(format!("d{i}"), open_dir(dir.path()).unwrap());
            }
            assert!(queue.finish().is_ok());
        });
        // fsync of a socket fails with EINVAL.
        let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        std::thread::scope(|scope| {
            let queue = SyncQueue::start(scope);
            queue.push("a/socket".to_owned(), OwnedFd::from(socket));
            let (path, _) = queue.finish().unwrap_err();
            assert_eq!(path, "a/socket");
        });
    }
}
