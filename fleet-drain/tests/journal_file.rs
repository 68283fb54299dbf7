//! `FileJournal` on disk: one controller per journal (advisory lock), and
//! corruption in the middle is an error naming the offset, never a silent
//! truncation of the good records after it.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc
)]

use fleet_drain::fleet::HostId;
use fleet_drain::journal::{FileJournal, Journal, JournalError, JournalRecord};
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
        JournalRecord::HostDrained { host: HostId(2) },
    ]
}

/// Writes `records()` and returns the offset where each frame starts.
fn write(path: &std::path::Path) -> Vec<u64> {
    let mut journal = FileJournal::open(path).unwrap();
    let mut offsets = Vec::new();
    for r in records() {
        offsets.push(std::fs::metadata(path).unwrap().len());
        block_on(journal.append(&r)).unwrap();
    }
    offsets
}

#[test]
fn a_second_controller_opening_the_same_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    let mut journal = FileJournal::open(&path).unwrap();
    block_on(journal.append(&records()[0])).unwrap();
    drop(journal);
    // Another controller (process) holds the journal: its flock.
    let other = std::fs::File::open(&path).unwrap();
    other.lock().unwrap();
    let error = FileJournal::open(&path).unwrap_err();
    match &error {
        JournalError::Locked { path: locked } => assert_eq!(locked, &path),
        other => panic!("unexpected error: {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("locked by another controller"),
        "{message}"
    );
    assert!(message.contains("drain.journal"), "{message}");
    // Nothing was touched, and the journal opens once the other one stops.
    drop(other);
    let mut journal = FileJournal::open(&path).unwrap();
    assert_eq!(block_on(journal.records()).unwrap(), records()[..1]);
}

#[test]
fn a_controller_holds_the_journal_lock_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    let journal = FileJournal::open(&path).unwrap();
    let probe = std::fs::File::open(&path).unwrap();
    assert!(probe.try_lock().is_err(), "the journal is not locked");
    // A reader in the same process shares the lock; it ends with the last.
    let reader = FileJournal::open(&path).unwrap();
    drop(journal);
    assert!(
        probe.try_lock().is_err(),
        "the lock ended with a share left"
    );
    drop(reader);
    probe.try_lock().unwrap();
}

#[test]
fn a_corrupt_record_in_the_middle_is_an_error_naming_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    let offsets = write(&path);
    let original = std::fs::read(&path).unwrap();
    // A flipped bit in the payload of the second record.
    let mut bytes = original.clone();
    let at = usize::try_from(offsets[1]).unwrap() + 36 + 3;
    bytes[at] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();
    let error = FileJournal::open(&path).unwrap_err();
    match &error {
        JournalError::Corrupt {
            offset, next_good, ..
        } => {
            assert_eq!(*offset, offsets[1]);
            assert_eq!(*next_good, offsets[2]);
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("corrupt record at offset {}", offsets[1])),
        "{message}"
    );
    assert!(
        message.contains(&format!("from offset {}", offsets[2])),
        "{message}"
    );
    // Nothing was truncated: the good records after it are still there.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // A garbage length in the middle is caught the same way.
    let mut bytes = original;
    let at = usize::try_from(offsets[2]).unwrap();
    bytes[at..at + 4].copy_from_slice(&[0xff; 4]);
    std::fs::write(&path, &bytes).unwrap();
    let message = FileJournal::open(&path).unwrap_err().to_string();
    assert!(
        message.contains(&format!("corrupt record at offset {}", offsets[2])),
        "{message}"
    );
}

#[test]
fn a_torn_final_frame_is_still_cut_back_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.journal");
    let offsets = write(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 7).unwrap();
    drop(file);
    let mut journal = FileJournal::open(&path).unwrap();
    let tail = journal.recovery().discarded.clone().unwrap();
    assert_eq!(tail.offset, offsets[3]);
    assert_eq!(block_on(journal.records()).unwrap(), records()[..3]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), offsets[3]);
}
