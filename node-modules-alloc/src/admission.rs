//! Store-wide admission: the concurrency limit, the queue and free-space reservations hold
//! for every process using a store, not for one.
//!
//! # Why
//!
//! An in-process limit bounds one process. A host runs many allocator processes at once (one
//! CLI per app being placed, several agents): with a limit of 4 each, 12 processes run 48
//! materializations on one disk — the thrashing this crate exists to prevent. And a
//! free-space check that every process makes on its own admits them all against the same free
//! bytes.
//!
//! # How
//!
//! ```text
//! STORE/slots/<i>.lock          execution slots, i < max_concurrent: exclusive flock held for
//!                               the whole materialization; the file records the holder's pid,
//!                               start time and reserved bytes per filesystem
//! STORE/slots/admission.lock    serializes admissions (held only to scan slots and check space)
//! STORE/queue/<i>.lock          queue places, i < max_queued
//! ```
//!
//! * Slots are taken with a non-blocking exclusive `flock`. A crash releases every lock, so a
//!   dead process never holds a slot; only reservations of *held* slots count, so its record
//!   does not either.
//! * A caller finding no free slot takes a free queue place (non-blocking) or is shed at once
//!   with [`Error::Overloaded`]. A queued caller polls the slots with jittered exponential
//!   backoff ([`Backoff`], 2 ms growing to 20 ms: a materialization holds its slot for tens of
//!   milliseconds, and a slot left free while every waiter sleeps is lost time) until its
//!   deadline, measured on the allocator's injected [`Clock`], then is shed. The order across
//!   processes is not FIFO (`flock` cannot wait for "any of N"); inside a process, the
//!   in-process limit in front of this one keeps FIFO order.
//! * Every admission runs under `admission.lock`: it scans the slots, takes a free one, checks
//!   free space *minus what the holders of the other slots reserved*, and writes its own
//!   reservation before the next admission can look. So two processes never admit against
//!   the same free bytes.
//! * `retry_after` when shedding: the mean time the running materializations have been
//!   running (an estimate of how long they still need) × (1 + waiting / `max_concurrent`),
//!   within the limit config's `min_retry_after..=max_retry_after`.
//!
//! # Estimated bytes
//!
//! [`tree_bytes`] estimates what one tree costs on disk: with copies (copy and reflink modes,
//! and auto mode across filesystems, where hardlinks are impossible) every file's size rounded
//! up to 4 KiB blocks; always [`DIR_BYTES`] per directory and [`ENTRY_BYTES`] per entry
//! (directory entries, inodes of symlinks and copies). An allocation reserves one tree on the
//! app's filesystem, plus one on the store's when its template has to be built. Bytes already
//! written by a running materialization are both gone from `statvfs` and still reserved: the
//! guard errs on the safe side.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use resilience_core::InstanceName;
use resilience_core::backoff::{Backoff, BackoffConfig, Jitter};
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::ConcurrencyLimitConfig;
use serde::{Deserialize, Serialize};

use crate::config::LinkMode;
use crate::error::{Error, Result};
use crate::fsutil::{create_dirs, unix_micros};
use crate::locks::{LockFile, LockMode};
use crate::manifest::{Manifest, ManifestEntry};
use crate::store::Store;

/// Estimated bytes of one directory (one block).
pub(crate) const DIR_BYTES: u64 = 4096;
/// Estimated bytes of one entry: its directory entry and, for copies and symlinks, its inode.
pub(crate) const ENTRY_BYTES: u64 = 256;
const BLOCK: u64 = 4096;
const ADMISSION_LOCK: &str = "admission.lock";

/// Estimated bytes a tree of `manifest` takes on disk (see the module documentation).
pub(crate) fn tree_bytes(manifest: &Manifest, copies: bool) -> u64 {
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    let mut data: u64 = 0;
    for entry in &manifest.entries {
        let mut path = entry.path();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if !dirs.insert(parent) {
                break; // its ancestors are in already
            }
            path = parent;
        }
        if copies && let ManifestEntry::File { size, .. } = entry {
            data = data.saturating_add(size.div_ceil(BLOCK).saturating_mul(BLOCK));
        }
    }
    let dirs = dirs.len() as u64 + 1;
    let entries = manifest.entries.len() as u64;
    dirs.saturating_mul(DIR_BYTES)
        .saturating_add(entries.saturating_mul(ENTRY_BYTES))
        .saturating_add(data)
}

/// Whether trees placed with `mode` copy file data (rather than hardlink it), given whether
/// the source and the tree share a filesystem.
pub(crate) fn copies_data(mode: LinkMode, same_filesystem: bool) -> bool {
    match mode {
        LinkMode::Copy | LinkMode::Reflink => true,
        LinkMode::Hardlink => false,
        LinkMode::Auto => !same_filesystem,
    }
}

/// Bytes an admission will write on the filesystem holding `path` (device `dev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) bytes: u64,
}

/// Free bytes on the filesystem holding a path.
pub(crate) type Available<'a> = &'a (dyn Fn(&Path) -> io::Result<u64> + Sync);

/// What one admission asks for.
#[derive(Debug, Clone)]
pub(crate) struct Demand {
    /// Slots, queue places and `retry_after` bounds.
    pub(crate) limit: ConcurrencyLimitConfig,
    /// The free-space threshold (0: no check).
    pub(crate) min_free_bytes: u64,
    /// Bytes to reserve.
    pub(crate) needs: Vec<Need>,
    /// The admitting allocator's name (the `name` field of the events).
    pub(crate) name: InstanceName,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotRecord {
    pid: u32,
    started_unix_us: u64,
    reserved: Vec<Reserved>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reserved {
    dev: u64,
    bytes: u64,
}

/// A held store-wide execution slot: one materialization runs while it lives. Dropping it
/// logs "materialization finished", clears the reservation, then releases the slot.
#[derive(Debug)]
#[must_use = "the slot is held only while the guard lives"]
pub(crate) struct Slot {
    index: usize,
    lock: LockFile,
    name: InstanceName,
}

impl Drop for Slot {
    fn drop(&mut self) {
        tracing::info!(
            name = %self.name,
            slot = self.index,
            at_unix_us = unix_micros(),
            "materialization finished"
        );
        if let Err(e) = self.lock.file().set_len(0) {
            // Harmless: the record of a free slot is never read.
            tracing::debug!(name = %self.name, slot = self.index, error = %e, "cannot clear slot record");
        }
    }
}

enum Attempt {
    Admitted(Slot),
    /// Every slot is held; how long the running ones have been running, on average.
    Full {
        running_for: Option<Duration>,
    },
}

/// The store-wide slots and queue of one store.
#[derive(Debug, Clone)]
pub(crate) struct StoreWide {
    slots: PathBuf,
    queue: PathBuf,
}

impl StoreWide {
    pub(crate) fn new(store: &Store) -> Self {
        Self {
            slots: store.dir("slots"),
            queue: store.dir("queue"),
        }
    }

    /// Takes an execution slot: at once if one is free, else after waiting in the store-wide
    /// queue until `deadline` (`None`: no deadline). Blocks the calling thread.
    pub(crate) fn admit(
        &self,
        demand: &Demand,
        available: Available<'_>,
        clock: &SharedClock,
        deadline: Option<Instant>,
    ) -> Result<Slot> {
        let running_for = match self.try_take_slot(demand, available)? {
            Attempt::Admitted(slot) => return Ok(slot),
            Attempt::Full { running_for } => running_for,
        };
        let Some(place) = self.try_enqueue(demand.limit.max_queued)? else {
            let retry_after = retry_after(&demand.limit, running_for, demand.limit.max_queued);
            tracing::warn!(
                name = %demand.name,
                ?retry_after,
                max_concurrent = demand.limit.max_concurrent,
                max_queued = demand.limit.max_queued,
                "allocation shed: every store-wide slot and queue place is taken"
            );
            return Err(Error::Overloaded { retry_after });
        };
        tracing::info!(
            name = %demand.name,
            max_concurrent = demand.limit.max_concurrent,
            "every store-wide slot is taken; queued"
        );
        let mut backoff = Backoff::new(poll_backoff())?;
        let mut running_for = running_for;
        loop {
            let now = clock.now();
            let remaining = match deadline {
                Some(deadline) if now >= deadline => {
                    let retry_after = retry_after(&demand.limit, running_for, 0);
                    tracing::warn!(
                        name = %demand.name,
                        ?retry_after,
                        "allocation shed: waited the whole queue timeout for a store-wide slot"
                    );
                    return Err(Error::Overloaded { retry_after });
                }
                Some(deadline) => deadline - now,
                None => Duration::MAX,
            };
            let delay = backoff.next_delay().unwrap_or(poll_backoff().max);
            std::thread::sleep(delay.min(remaining));
            match self.try_take_slot(demand, available)? {
                Attempt::Admitted(slot) => {
                    drop(place);
                    return Ok(slot);
                }
                Attempt::Full { running_for: now } => running_for = now.or(running_for),
            }
        }
    }

    fn slot_path(&self, index: usize) -> PathBuf {
        self.slots.join(format!("{index}.lock"))
    }

    fn try_take_slot(&self, demand: &Demand, available: Available<'_>) -> Result<Attempt> {
        create_dirs(&self.slots)?;
        let _serial = LockFile::acquire(&self.slots.join(ADMISSION_LOCK), LockMode::Exclusive)?;
        let mut free = None;
        let mut held = Held::default();
        for index in 0..demand.limit.max_concurrent {
            let path = self.slot_path(index);
            match LockFile::try_acquire(&path, LockMode::Exclusive)? {
                Some(lock) if free.is_none() => free = Some((index, lock)),
                Some(_) => {}
                None => held.account(&path),
            }
        }
        // Slots beyond our limit (processes configured with a higher one) reserve space too.
        for path in self.slots_beyond(demand.limit.max_concurrent)? {
            if LockFile::try_acquire(&path, LockMode::Exclusive)?.is_none() {
                held.account(&path);
            }
        }
        let Some((index, lock)) = free else {
            return Ok(Attempt::Full {
                running_for: held.mean_running(),
            });
        };
        let mut by_dev: BTreeMap<u64, (&Path, u64)> = BTreeMap::new();
        for need in &demand.needs {
            let slot = by_dev.entry(need.dev).or_insert((&need.path, 0));
            slot.1 = slot.1.saturating_add(need.bytes);
        }
        if demand.min_free_bytes > 0 {
            for (dev, (path, bytes)) in &by_dev {
                let available =
                    available(path).map_err(Error::io("cannot measure free space of", *path))?;
                let others = held.reserved.get(dev).copied().unwrap_or(0);
                let left = available.saturating_sub(others);
                if left.saturating_sub(*bytes) < demand.min_free_bytes {
                    tracing::warn!(
                        name = %demand.name,
                        path = %path.display(),
                        available,
                        reserved_by_others = others,
                        needed = bytes,
                        required = demand.min_free_bytes,
                        "refusing allocation: not enough free space once running allocations' reservations are counted"
                    );
                    return Err(Error::InsufficientSpace {
                        path: path.to_path_buf(),
                        available: left,
                        required: demand.min_free_bytes.saturating_add(*bytes),
                    });
                }
            }
        }
        let record = SlotRecord {
            pid: std::process::id(),
            started_unix_us: unix_micros(),
            reserved: by_dev
                .iter()
                .map(|(dev, (_, bytes))| Reserved {
                    dev: *dev,
                    bytes: *bytes,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Malformed {
            path: lock.path().to_path_buf(),
            reason: e.to_string(),
        })?;
        lock.file()
            .set_len(0)
            .and_then(|()| lock.file().write_all_at(&bytes, 0))
            .map_err(Error::io("cannot write slot record", lock.path()))?;
        tracing::info!(
            name = %demand.name,
            slot = index,
            reserved_bytes = by_dev.values().map(|(_, b)| *b).sum::<u64>(),
            at_unix_us = record.started_unix_us,
            "materialization started"
        );
        Ok(Attempt::Admitted(Slot {
            index,
            lock,
            name: demand.name.clone(),
        }))
    }

    /// Existing slot files with an index of `max_concurrent` or more.
    fn slots_beyond(&self, max_concurrent: usize) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.slots).map_err(Error::io("cannot read", &self.slots))? {
            let entry = entry.map_err(Error::io("cannot read", &self.slots))?;
            let name = entry.file_name();
            let index = name
                .to_str()
                .and_then(|n| n.strip_suffix(".lock"))
                .and_then(|n| n.parse::<usize>().ok());
            if index.is_some_and(|i| i >= max_concurrent) {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    /// Takes a free queue place, if any (starting at a random one to spread contention).
    fn try_enqueue(&self, max_queued: usize) -> Result<Option<LockFile>> {
        if max_queued == 0 {
            return Ok(None);
        }
        create_dirs(&self.queue)?;
        let start = fastrand::usize(..max_queued);
        for k in 0..max_queued {
            let index = (start + k) % max_queued;
            let path = self.queue.join(format!("{index}.lock"));
            if let Some(place) = LockFile::try_acquire(&path, LockMode::Exclusive)? {
                return Ok(Some(place));
            }
        }
        Ok(None)
    }
}

/// What the holders of the other slots reserved, and how long they have been running.
#[derive(Default)]
struct Held {
    reserved: BTreeMap<u64, u64>,
    running: Vec<u64>,
}

impl Held {
    fn account(&mut self, path: &Path) {
        // A record being cleared (its holder finishing) reads as empty: nothing reserved.
        let Some(record) = fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SlotRecord>(&bytes).ok())
        else {
            return;
        };
        for r in record.reserved {
            let total = self.reserved.entry(r.dev).or_default();
            *total = total.saturating_add(r.bytes);
        }
        self.running
            .push(unix_micros().saturating_sub(record.started_unix_us));
    }

    fn mean_running(&self) -> Option<Duration> {
        let n = self.running.len() as u64;
        let sum = self.running.iter().fold(0u64, |a, b| a.saturating_add(*b));
        sum.checked_div(n).map(Duration::from_micros)
    }
}

fn poll_backoff() -> BackoffConfig {
    BackoffConfig {
        base: Duration::from_millis(2),
        max: Duration::from_millis(20),
        factor: 2.0,
        jitter: Jitter::Equal,
        max_attempts: None,
    }
}

/// The `retry_after` hint of a shed caller (see the module documentation).
fn retry_after(
    limit: &ConcurrencyLimitConfig,
    running_for: Option<Duration>,
    waiting: usize,
) -> Duration {
    let Some(running_for) = running_for else {
        return limit.min_retry_after;
    };
    let factor = 1.0 + waiting as f64 / limit.max_concurrent.max(1) as f64;
    Duration::try_from_secs_f64(running_for.as_secs_f64() * factor)
        .unwrap_or(limit.max_retry_after)
        .clamp(limit.min_retry_after, limit.max_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_concurrent: usize, max_queued: usize) -> ConcurrencyLimitConfig {
        ConcurrencyLimitConfig {
            max_concurrent,
            max_queued,
            queue_timeout: Some(Duration::from_secs(1)),
            ..ConcurrencyLimitConfig::default()
        }
    }

    fn demand(max_concurrent: usize, max_queued: usize, needs: Vec<Need>) -> Demand {
        Demand {
            limit: limit(max_concurrent, max_queued),
            min_free_bytes: 100,
            needs,
            name: InstanceName::unnamed(),
        }
    }

    #[test]
    fn slots_bound_admissions_and_are_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let wide = StoreWide::new(&store);
        let free = |_: &Path| Ok(u64::MAX);
        let clock = SharedClock::system();
        let d = demand(2, 0, vec![]);
        let a = wide.admit(&d, &free, &clock, None).unwrap();
        let b = wide.admit(&d, &free, &clock, None).unwrap();
        assert!(matches!(
            wide.admit(&d, &free, &clock, None),
            Err(Error::Overloaded { .. })
        ));
        drop(a);
        let c = wide.admit(&d, &free, &clock, None).unwrap();
        drop((b, c));
    }

    #[test]
    fn reservations_of_held_slots_count_against_later_admissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let wide = StoreWide::new(&store);
        let free = |_: &Path| Ok(1_000);
        let clock = SharedClock::system();
        let need = |bytes| Need {
            path: dir.path().to_path_buf(),
            dev: 7,
            bytes,
        };
        let first = wide
            .admit(&demand(4, 0, vec![need(600)]), &free, &clock, None)
            .unwrap();
        let err = wide
            .admit(&demand(4, 0, vec![need(400)]), &free, &clock, None)
            .unwrap_err();
        let Error::InsufficientSpace {
            available,
            required,
            ..
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!((available, required), (400, 500));
        drop(first);
        drop(
            wide.admit(&demand(4, 0, vec![need(400)]), &free, &clock, None)
                .unwrap(),
        );
    }

    #[test]
    fn a_queued_caller_is_shed_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let wide = StoreWide::new(&store);
        let free = |_: &Path| Ok(u64::MAX);
        let clock = SharedClock::system();
        let d = demand(1, 1, vec![]);
        let _held = wide.admit(&d, &free, &clock, None).unwrap();
        let deadline = clock.now() + Duration::from_millis(50);
        let err = wide.admit(&d, &free, &clock, Some(deadline)).unwrap_err();
        assert!(matches!(err, Error::Overloaded { .. }), "{err}");
    }

    #[test]
    fn retry_after_grows_with_running_time_and_waiting_callers_within_bounds() {
        let l = limit(2, 8);
        assert_eq!(retry_after(&l, None, 8), l.min_retry_after);
        assert_eq!(
            retry_after(&l, Some(Duration::from_secs(1)), 2),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_after(&l, Some(Duration::from_secs(3600)), 8),
            l.max_retry_after
        );
    }

    #[test]
    fn tree_bytes_counts_directories_entries_and_copied_blocks() {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "entries": [
                {"type": "file", "path": "a/b/x.js", "digest": "d", "size": 1, "exec": false},
                {"type": "file", "path": "a/y.js", "digest": "d", "size": 5000, "exec": false},
                {"type": "symlink", "path": ".bin/x", "target": "../a/b/x.js"}
            ]
        }))
        .unwrap();
        // Directories: root, a, a/b, .bin.
        assert_eq!(
            tree_bytes(&manifest, false),
            4 * DIR_BYTES + 3 * ENTRY_BYTES
        );
        assert_eq!(
            tree_bytes(&manifest, true),
            4 * DIR_BYTES + 3 * ENTRY_BYTES + 3 * BLOCK
        );
    }
}
