use std::fs;
use std::os::unix::fs::PermissionsExt;

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
