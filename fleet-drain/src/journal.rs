//! Durable drain progress: the [`Journal`] trait and an append-only
//! [`FileJournal`].
//!
//! # Why a journal?
//!
//! A drain of a large fleet runs for hours. If the controller crashes or is
//! redeployed half way, a restart that starts from scratch would begin new
//! waves on top of the hosts still draining (exceeding
//! `max_draining_hosts`) or drain a host twice. The controller therefore
//! writes its intent *before* acting: a [`JournalRecord::WaveStarted`]
//! before it marks hosts draining, [`JournalRecord::HostDrained`] once a
//! host is empty. A restarted controller replays the journal
//! ([`DrainProgress`]) and continues the wave in progress.
//!
//! # File format
//!
//! [`FileJournal`] appends one frame per record and fsyncs it:
//!
//! ```text
//! [payload length: u32 little-endian][SHA-256 of payload: 32 bytes][payload: JSON]
//! ```
//!
//! On open, every frame is checked. A truncated or corrupted *final*
//! frame (a crash in the middle of a write, a torn sector, a flipped bit
//! in the last record) is never silently accepted: the last good record
//! wins, the bad tail is reported ([`Recovery::discarded`], a `warn`
//! event) and truncated away before anything new is appended.
//!
//! A bad frame *followed by good ones* is not a torn write: cutting there
//! would silently throw away every durable record after it. Opening such a
//! file fails with an error naming the offset of the bad record (see
//! [`FileJournal::open`]); the file is left untouched for inspection.
//!
//! An append that fails half way (a full disk, an I/O error) is cut back
//! to the last good record before the next append is written, so a later
//! record never lands behind a torn frame.
//!
//! # One controller per journal
//!
//! [`FileJournal::open`] takes an exclusive advisory lock on the file
//! (`flock`), held until the journal is dropped. A second controller (in
//! another process) opening the same journal gets an error at once
//! instead of interleaving its records with the first one's. Within one
//! process, opening a journal the process already holds shares the lock
//! (tools and tests that read back the journal of a running controller);
//! appends from two handles in one process are not coordinated.
//!
//! The trait is small and async so that a remote store (etcd) can
//! implement it too.
//!
//! # Example
//!
//! ```
//! use fleet_drain::fleet::HostId;
//! use fleet_drain::journal::{DrainProgress, FileJournal, Journal, JournalRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("drain.journal");
//! futures::executor::block_on(async {
//!     let mut journal = FileJournal::open(&path)?;
//!     journal.append(&JournalRecord::DrainStarted { targets: vec![HostId(1), HostId(2)] }).await?;
//!     journal.append(&JournalRecord::WaveStarted { wave: 1, hosts: vec![HostId(1)] }).await?;
//!     drop(journal); // a crash
//!
//!     let mut journal = FileJournal::open(&path)?;
//!     assert!(journal.recovery().discarded.is_none());
//!     let progress = DrainProgress::from_records(&journal.records().await?);
//!     assert_eq!(progress.draining, [HostId(1)]);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::error::JournalError;
use crate::fleet::{AppId, HostId};

/// Journals this process holds the lock of: canonical path -> (the locked
/// handle, how many `FileJournal`s share it).
static LOCKS: LazyLock<Mutex<HashMap<PathBuf, (File, usize)>>> = LazyLock::new(Mutex::default);

/// This process's share of a journal's lock; the last one unlocks.
#[derive(Debug)]
struct LockShare(PathBuf);

impl Drop for LockShare {
    fn drop(&mut self) {
        let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, count)) = locks.get_mut(&self.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Closing the handle releases the flock.
                locks.remove(&self.0);
            }
        }
    }
}

/// Takes (or shares, within this process) the exclusive lock of `path`.
fn lock(path: &Path) -> io::Result<LockShare> {
    let key = std::fs::canonicalize(path)?;
    let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, count)) = locks.get_mut(&key) {
        *count += 1;
        return Ok(LockShare(key));
    }
    let handle = File::open(&key)?;
    match handle.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "locked by another process",
            ));
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    locks.insert(key.clone(), (handle, 1));
    Ok(LockShare(key))
}

/// Largest accepted record payload.
const MAX_RECORD: usize = 16 * 1024 * 1024;
/// Length prefix plus SHA-256.
const HEADER: usize = 4 + 32;

/// One step of a drain's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JournalRecord {
    /// The drain began, with the hosts it drains (in order).
    DrainStarted {
        /// Hosts to drain.
        targets: Vec<HostId>,
    },
    /// A wave began draining these (new) hosts. Written before the hosts
    /// are marked draining.
    WaveStarted {
        /// Wave number, from 1.
        wave: u32,
        /// Hosts the wave starts draining.
        hosts: Vec<HostId>,
    },
    /// A host is empty and marked drained.
    HostDrained {
        /// The host.
        host: HostId,
    },
    /// The drain finished.
    Finished,
    /// The drain was aborted.
    Aborted {
        /// Why.
        reason: String,
    },
    /// A receiver class's learned start concurrency changed (adaptive
    /// starts): a restarted controller resumes the class at it.
    StartLimitLearned(LearnedStartLimit),
    /// Adapter names given ids since the last such record
    /// ([`NameMap`](crate::names::NameMap)): journaled before any record
    /// using the ids, so a restarted controller maps the same names to the
    /// same ids. Journals written before this record existed have none.
    NamesAssigned {
        /// New host ids and their names.
        hosts: Vec<(HostId, String)>,
        /// New app ids and their names.
        apps: Vec<(AppId, String)>,
    },
}

/// A receiver class's learned start concurrency, as journaled
/// ([`JournalRecord::StartLimitLearned`]). The class is its receivers'
/// capacity and version (`fleet_drain::drain::ReceiverClass`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedStartLimit {
    /// The class's receiver capacity.
    pub capacity: u32,
    /// The class's receiver version.
    pub version: String,
    /// Concurrent starts per receiver allowed.
    pub limit: u32,
    /// Highest concurrency known safe (passed probation).
    pub confirmed: u32,
    /// Lowest concurrency at which a start failed, if remembered.
    pub failed_at: Option<u32>,
}

/// Durable, ordered storage of [`JournalRecord`]s.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Appends `record`; returns once it is durable.
    async fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError>;

    /// Every record, in append order.
    async fn records(&mut self) -> Result<Vec<JournalRecord>, JournalError>;
}

/// A bad tail found (and removed) when opening a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptTail {
    /// Offset of the first bad byte (the end of the last good record).
    pub offset: u64,
    /// Bytes discarded.
    pub discarded_bytes: u64,
    /// What was wrong.
    pub reason: String,
}

/// What opening a journal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Good records read.
    pub records: usize,
    /// The bad tail that was truncated, if any.
    pub discarded: Option<CorruptTail>,
}

/// An append-only, fsynced, checksummed journal file. See the
/// [module docs](self) for the format.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    file: File,
    records: Vec<JournalRecord>,
    recovery: Recovery,
    /// Length of the good records on disk: where the next frame starts.
    len: u64,
    /// An append failed after possibly writing part of its frame, and
    /// cutting it back failed too: cut before the next append.
    torn: bool,
    /// This journal's share of the file lock.
    _lock: LockShare,
    /// Tests: the next append writes only this many bytes, then fails.
    #[cfg(test)]
    fail_next_append_after: Option<usize>,
}

impl FileJournal {
    /// Opens (or creates) the journal at `path`, locks it, verifies every
    /// record and truncates a torn final frame (reported in
    /// [`FileJournal::recovery`]).
    ///
    /// # Errors
    ///
    /// - [`JournalError::Locked`] if another process has the journal
    ///   open: one controller per journal.
    /// - [`JournalError::Corrupt`] if a record in the middle is corrupt
    ///   (good records follow it), with the offset of the bad record and
    ///   of the next good one; nothing is truncated.
    /// - [`JournalError::Io`] for any other I/O failure.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let lock = lock(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::WouldBlock {
                JournalError::Locked { path: path.clone() }
            } else {
                io(source)
            }
        })?;
        if !existed {
            // Make the new file's directory entry durable too.
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, good_len, problem) = decode(&bytes);
        let mut recovery = Recovery {
            records: records.len(),
            discarded: None,
        };
        if let Some(reason) = problem {
            if let Some(next_good) = next_good_frame(&bytes, good_len) {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: good_len as u64,
                    next_good: next_good as u64,
                    reason: reason.clone(),
                    good_records: records.len(),
                });
            }
            let tail = CorruptTail {
                offset: good_len as u64,
                discarded_bytes: (bytes.len() - good_len) as u64,
                reason,
            };
            tracing::warn!(
                path = %path.display(),
                offset = tail.offset,
                discarded_bytes = tail.discarded_bytes,
                reason = %tail.reason,
                good_records = records.len(),
                "journal tail is corrupt or truncated; keeping the last good record and truncating the rest"
            );
            file.set_len(good_len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
            recovery.discarded = Some(tail);
        }
        Ok(FileJournal {
            path,
            file,
            records,
            recovery,
            len: good_len as u64,
            torn: false,
            _lock: lock,
            #[cfg(test)]
            fail_next_append_after: None,
        })
    }

    /// Cuts the file back to the last good record after a failed append.
    fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_all()?;
        self.torn = false;
        Ok(())
    }

    /// Writes `frame` at the end and makes it durable.
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.fail_next_append_after.take() {
            self.file.write_all(frame.get(..n).unwrap_or(frame))?;
            return Err(io::Error::other("injected failure after a partial write"));
        }
        self.file.write_all(frame)?;
        self.file.sync_data()
    }

    /// What opening found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the good records of the journal at `path` without locking,
    /// truncating or creating anything: for tools that inspect the journal
    /// of a controller running in another process (`fleet-drain status`).
    /// A torn final frame (a write in progress) is left out.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the file cannot be read (including when it
    /// does not exist), [`JournalError::Corrupt`] for a bad record with good
    /// ones after it.
    pub fn read(path: impl AsRef<Path>) -> Result<Vec<JournalRecord>, JournalError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (records, good_len, problem) = decode(&bytes);
        if let Some(reason) = problem
            && let Some(next_good) = next_good_frame(&bytes, good_len)
        {
            return Err(JournalError::Corrupt {
                path: path.to_path_buf(),
                offset: good_len as u64,
                next_good: next_good as u64,
                reason,
                good_records: records.len(),
            });
        }
        Ok(records)
    }
}

/// Encodes one frame.
fn encode(record: &JournalRecord) -> Result<Vec<u8>, JournalError> {
    let payload = serde_json::to_vec(record).map_err(|e| JournalError::Encode(e.to_string()))?;
    if payload.len() > MAX_RECORD {
        return Err(JournalError::TooLarge(payload.len()));
    }
    let len = u32::try_from(payload.len()).map_err(|_| JournalError::TooLarge(payload.len()))?;
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&Sha256::digest(&payload));
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// The offset of the first valid frame (complete, checksummed, decodable)
/// starting after `bad`, if any: good records behind a bad one mean the
/// bad one is corruption in the middle, not a torn final write.
fn next_good_frame(bytes: &[u8], bad: usize) -> Option<usize> {
    (bad + 1..bytes.len()).find(|&at| {
        let Some(rest) = bytes.get(at..) else {
            return false;
        };
        let Some((len_bytes, rest)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let Some((sum, rest)) = rest.split_first_chunk::<32>() else {
            return false;
        };
        let len = u32::from_le_bytes(*len_bytes) as usize;
        if len == 0 || len > MAX_RECORD {
            return false;
        }
        rest.get(..len).is_some_and(|payload| {
            Sha256::digest(payload).as_slice() == sum.as_slice()
                && serde_json::from_slice::<JournalRecord>(payload).is_ok()
        })
    })
}

/// Decodes frames up to the first bad one: (records, bytes of good frames,
/// what was wrong after them).
fn decode(bytes: &[u8]) -> (Vec<JournalRecord>, usize, Option<String>) {
    let mut records = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = bytes.get(offset..).unwrap_or_default();
        let Some((len_bytes, rest)) = rest.split_first_chunk::<4>() else {
            return (records, offset, Some("truncated record header".into()));
        };
        let Some((sum, rest)) = rest.split_first_chunk::<32>() else {
            return (records, offset, Some("truncated record header".into()));
        };
        let len = u32::from_le_bytes(*len_bytes) as usize;
        if len > MAX_RECORD {
            return (
                records,
                offset,
                Some(format!(
                    "record length {len} exceeds the limit (corrupt header)"
                )),
            );
        }
        let Some(payload) = rest.get(..len) else {
            return (
                records,
                offset,
                Some(format!(
                    "truncated record: {len} bytes announced, {} present",
                    rest.len()
                )),
            );
        };
        if Sha256::digest(payload).as_slice() != sum.as_slice() {
            return (records, offset, Some("checksum mismatch".into()));
        }
        match serde_json::from_slice::<JournalRecord>(payload) {
            Ok(record) => records.push(record),
            Err(e) => {
                return (
                    records,
                    offset,
                    Some(format!("checksummed record does not decode: {e}")),
                );
            }
        }
        offset += HEADER + len;
    }
    (records, offset, None)
}

#[async_trait]
impl Journal for FileJournal {
    async fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        let frame = encode(record)?;
        let path = self.path.clone();
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        if self.torn {
            // A previous append failed and could not be cut back then:
            // never write behind its torn frame.
            self.cut_back().map_err(io)?;
        }
        // Where this frame starts (another handle of this process may have
        // appended since).
        self.len = self.file.metadata().map_err(io)?.len();
        if let Err(error) = self.write_frame(&frame) {
            // Part of the frame may be on disk: cut it back now (or, if
            // that fails too, before the next append).
            self.torn = true;
            if let Err(cut) = self.cut_back() {
                tracing::warn!(path = %self.path.display(), %error, %cut, "journal append failed and cutting it back failed; retrying before the next append");
            }
            return Err(io(error));
        }
        self.len += frame.len() as u64;
        self.records.push(record.clone());
        Ok(())
    }

    async fn records(&mut self) -> Result<Vec<JournalRecord>, JournalError> {
        Ok(self.records.clone())
    }
}

/// A journal in memory: for dry runs and tests. Clones share the records,
/// so a "restarted" controller can be handed a clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryJournal {
    records: Arc<Mutex<Vec<JournalRecord>>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the records.
    pub fn snapshot(&self) -> Vec<JournalRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record.clone());
        Ok(())
    }

    async fn records(&mut self) -> Result<Vec<JournalRecord>, JournalError> {
        Ok(self.snapshot())
    }
}

/// A drain's progress, replayed from its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainProgress {
    /// The targets of the drain, if it started.
    pub targets: Option<Vec<HostId>>,
    /// The last wave number started.
    pub waves: u32,
    /// Hosts whose wave started but which are not drained yet, in order.
    pub draining: Vec<HostId>,
    /// Hosts drained, in order.
    pub drained: Vec<HostId>,
    /// How many waves started each host (more than 1 is a bug).
    pub wave_starts: HashMap<HostId, u32>,
    /// Whether the drain finished.
    pub finished: bool,
    /// The abort reason, if it was aborted.
    pub aborted: Option<String>,
    /// The last learned start concurrency of each receiver class, by
    /// capacity and version.
    pub start_limits: Vec<LearnedStartLimit>,
}

impl DrainProgress {
    /// Replays `records` in order.
    pub fn from_records(records: &[JournalRecord]) -> Self {
        let mut progress = DrainProgress::default();
        for record in records {
            match record {
                JournalRecord::DrainStarted { targets } => {
                    progress.targets = Some(targets.clone());
                }
                JournalRecord::WaveStarted { wave, hosts } => {
                    progress.waves = progress.waves.max(*wave);
                    for host in hosts {
                        *progress.wave_starts.entry(*host).or_default() += 1;
                        if !progress.draining.contains(host) && !progress.drained.contains(host) {
                            progress.draining.push(*host);
                        }
                    }
                }
                JournalRecord::HostDrained { host } => {
                    progress.draining.retain(|h| h != host);
                    if !progress.drained.contains(host) {
                        progress.drained.push(*host);
                    }
                }
                JournalRecord::Finished => progress.finished = true,
                JournalRecord::Aborted { reason } => progress.aborted = Some(reason.clone()),
                JournalRecord::StartLimitLearned(learned) => {
                    progress.start_limits.retain(|l| {
                        (l.capacity, &l.version) != (learned.capacity, &learned.version)
                    });
                    progress.start_limits.push(learned.clone());
                }
                // Read by `NameMap::from_records`.
                JournalRecord::NamesAssigned { .. } => {}
            }
        }
        progress
    }

    /// Whether `host` is drained according to the journal.
    pub fn is_drained(&self, host: HostId) -> bool {
        self.drained.contains(&host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn progress_keeps_the_last_learned_start_limit_of_each_class() {
        let learned = |capacity, version: &str, limit| {
            JournalRecord::StartLimitLearned(LearnedStartLimit {
                capacity,
                version: version.into(),
                limit,
                confirmed: limit,
                failed_at: Some(limit + 1),
            })
        };
        let records = [
            learned(300, "v2", 4),
            learned(100, "v2", 6),
            learned(300, "v2", 8),
        ];
        let progress = DrainProgress::from_records(&records);
        let limits: Vec<(u32, u32)> = progress
            .start_limits
            .iter()
            .map(|l| (l.capacity, l.limit))
            .collect();
        assert_eq!(limits, [(100, 6), (300, 8)]);
        // Tagged like every record.
        let json = serde_json::to_string(&records[0]).unwrap_or_default();
        assert!(json.contains(r#""type":"start_limit_learned""#), "{json}");
    }

    fn records() -> Vec<JournalRecord> {
        vec![
            JournalRecord::DrainStarted {
                targets: vec![HostId(1), HostId(2), HostId(3)],
            },
            JournalRecord::WaveStarted {
                wave: 1,
                hosts: vec![HostId(1), HostId(2)],
            },
            JournalRecord::HostDrained { host: HostId(1) },
        ]
    }

    fn write(path: &Path) {
        let mut journal = FileJournal::open(path).unwrap();
        for r in records() {
            block_on(journal.append(&r)).unwrap();
        }
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        write(&path);
        let mut journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.recovery().records, 3);
        assert_eq!(journal.recovery().discarded, None);
        assert_eq!(block_on(journal.records()).unwrap(), records());
        let progress = DrainProgress::from_records(&records());
        assert_eq!(progress.draining, [HostId(2)]);
        assert_eq!(progress.drained, [HostId(1)]);
        assert_eq!(progress.waves, 1);
    }

    #[test]
    fn a_truncated_tail_is_reported_and_cut_at_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        write(&path);
        let full = std::fs::metadata(&path).unwrap().len();
        for cut in [1u64, 5, 36, 40] {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(full - cut).unwrap();
            drop(f);
            let mut journal = FileJournal::open(&path).unwrap();
            let tail = journal.recovery().discarded.clone().expect("tail reported");
            assert!(tail.reason.contains("truncated"), "{}", tail.reason);
            assert_eq!(block_on(journal.records()).unwrap(), records()[..2]);
            // The bad tail is gone: appending continues from the good prefix.
            block_on(journal.append(&records()[2])).unwrap();
            drop(journal);
            let journal = FileJournal::open(&path).unwrap();
            assert_eq!(journal.recovery().discarded, None);
            assert_eq!(journal.recovery().records, 3);
        }
    }

    #[test]
    fn a_corrupted_record_is_detected_by_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        write(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let mut journal = FileJournal::open(&path).unwrap();
        let tail = journal.recovery().discarded.clone().unwrap();
        assert_eq!(tail.reason, "checksum mismatch");
        assert_eq!(block_on(journal.records()).unwrap().len(), 2);
        assert!(std::fs::metadata(&path).unwrap().len() < bytes.len() as u64);
    }

    #[test]
    fn garbage_lengths_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        write(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xff; 40]);
        std::fs::write(&path, &bytes).unwrap();
        let journal = FileJournal::open(&path).unwrap();
        let tail = journal.recovery().discarded.clone().unwrap();
        assert!(tail.reason.contains("exceeds the limit"), "{}", tail.reason);
        assert_eq!(tail.discarded_bytes, 40);
    }

    #[test]
    fn a_failed_append_is_cut_back_before_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = FileJournal::open(&path).unwrap();
        block_on(journal.append(&records()[0])).unwrap();
        let good = std::fs::metadata(&path).unwrap().len();
        // The disk fills up half way through the next frame.
        journal.fail_next_append_after = Some(20);
        block_on(journal.append(&records()[1])).unwrap_err();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        // The controller retries: the record lands right after the good one.
        block_on(journal.append(&records()[1])).unwrap();
        block_on(journal.append(&records()[2])).unwrap();
        drop(journal);
        let mut journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.recovery().discarded, None);
        assert_eq!(block_on(journal.records()).unwrap(), records());
    }

    #[test]
    fn a_torn_frame_that_could_not_be_cut_then_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = FileJournal::open(&path).unwrap();
        block_on(journal.append(&records()[0])).unwrap();
        // A torn frame whose cut-back failed at the time.
        journal.file.write_all(&[1, 2, 3, 4, 5]).unwrap();
        journal.torn = true;
        block_on(journal.append(&records()[1])).unwrap();
        drop(journal);
        let mut journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.recovery().discarded, None);
        assert_eq!(block_on(journal.records()).unwrap(), records()[..2]);
    }

    #[test]
    fn memory_journal_clones_share_records() {
        let journal = MemoryJournal::new();
        let mut writer = journal.clone();
        block_on(writer.append(&JournalRecord::Finished)).unwrap();
        assert_eq!(journal.snapshot(), [JournalRecord::Finished]);
    }
}
