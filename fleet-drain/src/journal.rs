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
//! On open, every frame is checked. A truncated or corrupted tail (a crash
//! in the middle of a write, a torn sector, a flipped bit) is never
//! silently accepted: the last good record wins, the bad tail is reported
//! ([`Recovery::discarded`], a `warn` event) and truncated away before
//! anything new is appended.
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
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::error::JournalError;
use crate::fleet::HostId;

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
}

impl FileJournal {
    /// Opens (or creates) the journal at `path`, verifying every record and
    /// truncating a bad tail (reported in [`FileJournal::recovery`]).
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
        })
    }

    /// What opening found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
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
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&frame).map_err(io)?;
        self.file.sync_data().map_err(io)?;
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
    fn memory_journal_clones_share_records() {
        let journal = MemoryJournal::new();
        let mut writer = journal.clone();
        block_on(writer.append(&JournalRecord::Finished)).unwrap();
        assert_eq!(journal.snapshot(), [JournalRecord::Finished]);
    }
}
