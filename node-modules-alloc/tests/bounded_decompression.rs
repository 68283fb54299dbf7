//! Bounded decompression (issue #12, point 4): every byte that leaves the gzip decoder counts
//! against `max_total_bytes` — metadata entries, data of skipped entries and what follows the
//! end of the archive included; metadata entries over 1 MiB are refused before they are read;
//! every gzip member is read; nothing after the end-of-archive marker is ignored unread.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use node_modules_alloc::config::ImportLimits;
use node_modules_alloc::import::Imported;
use node_modules_alloc::store::{Store, StoreConfig};
use node_modules_alloc::{Error, Rejection};
use support::{RawTar, all_paths, gzip, pax_record};

fn limited(total: u64) -> StoreConfig {
    StoreConfig {
        limits: ImportLimits {
            max_total_bytes: total,
            max_entry_bytes: total,
            ..ImportLimits::default()
        },
        ..StoreConfig::default()
    }
}

/// Imports into a fresh store; a refused tarball must leave the store as it was.
fn import(
    config: StoreConfig,
    tarball: &[u8],
) -> (Result<Imported, Error>, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), config).unwrap();
    let before = all_paths(store.path());
    let result = store.import_tarball_bytes("bomb.tgz", tarball, None, None);
    if result.is_err() {
        assert_eq!(all_paths(store.path()), before);
    }
    (result, store, dir)
}

fn rejection(result: &Result<Imported, Error>) -> (String, Rejection) {
    match result {
        Err(Error::Rejected { entry, reason, .. }) => (entry.clone(), reason.clone()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn bad_tarball(result: &Result<Imported, Error>) -> String {
    match result {
        Err(Error::BadTarball { reason, .. }) => reason.clone(),
        other => panic!("expected a bad tarball, got {other:?}"),
    }
}

/// A 4000-byte path within every name limit (components of 200 bytes).
fn long_path(i: usize) -> String {
    let mut path = String::from("package");
    while path.len() < 3900 {
        path.push('/');
        path.push_str(&"x".repeat(200));
    }
    format!("{path}/f{i}")
}

#[test]
fn gnu_long_name_metadata_counts_against_the_total() {
    // 400 empty files, each named by a 4 KB GNU long name: ~2 MB of metadata, no data at all.
    let mut tar = RawTar::new();
    for i in 0..400 {
        let path = long_path(i);
        tar.long_name(path.as_bytes()).file(&path[..100], b"");
    }
    let tarball = tar.end().tgz();
    assert!(tarball.len() < 100_000, "a bomb: {} bytes", tarball.len());
    let (result, _, _dir) = import(limited(1 << 20), &tarball);
    let (_, reason) = rejection(&result);
    assert_eq!(reason, Rejection::TotalTooLarge { limit: 1 << 20 });
}

#[test]
fn pax_metadata_bomb_is_refused_by_the_total_naming_the_entry() {
    // 80 PAX headers of ~1 MiB of `comment` (ignored by every reader) before tiny files.
    let comment = vec![b'z'; (1 << 20) - 100];
    let mut tar = RawTar::new();
    for i in 0..80 {
        tar.pax(&[("comment", &comment)])
            .file(&format!("package/f{i}"), b"");
    }
    let tarball = tar.end().tgz();
    assert!(tarball.len() < 1_000_000, "a bomb: {} bytes", tarball.len());
    let (result, _, _dir) = import(limited(32 << 20), &tarball);
    let (entry, reason) = rejection(&result);
    assert_eq!(reason, Rejection::TotalTooLarge { limit: 32 << 20 });
    assert_eq!(entry, "PaxHeader", "names the metadata entry being read");
}

#[test]
fn data_of_skipped_entries_counts_against_the_total() {
    // A directory entry and a file outside the top directory are skipped, their data too:
    // still decompressed, so still counted.
    for (name, kind) in [("package/dir/", b'5'), ("outside.bin", b'0')] {
        let tarball = RawTar::new()
            .file("package/a.js", b"ok")
            .header(name.as_bytes(), kind, 40 << 20, b"")
            .body(&vec![0u8; 40 << 20])
            .end()
            .tgz();
        let (result, _, _dir) = import(limited(32 << 20), &tarball);
        let (entry, reason) = rejection(&result);
        assert_eq!(
            reason,
            Rejection::TotalTooLarge { limit: 32 << 20 },
            "{name}"
        );
        assert_eq!(entry, name);
    }
}

#[test]
fn every_gzip_member_is_read() {
    // `a` in the first member, `b` in the second: both are part of the tarball.
    let first = gzip(&RawTar::new().file("package/a.js", b"a").finish());
    let second = gzip(&RawTar::new().file("package/b.js", b"b").end().finish());
    let tarball = [first, second].concat();
    let (result, store, _dir) = import(StoreConfig::default(), &tarball);
    let imported = result.unwrap();
    let index = store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap();
    let paths: Vec<&str> = index
        .entries
        .iter()
        .map(node_modules_alloc::store::IndexEntry::path)
        .collect();
    assert_eq!(paths, vec!["a.js", "b.js"]);
}

#[test]
fn entries_after_the_end_of_archive_marker_are_refused() {
    // A second gzip member holding a file after the end-of-archive marker of the first: some
    // readers (GNU tar -i) would extract it, so it is an error, not silently dropped.
    let first = gzip(&RawTar::new().file("package/a.js", b"a").end().finish());
    let second = gzip(&RawTar::new().file("package/hidden.js", b"h").end().finish());
    let (result, _, _dir) = import(StoreConfig::default(), &[first, second].concat());
    let reason = bad_tarball(&result);
    assert!(
        reason.contains("after the end-of-archive marker"),
        "{reason}"
    );
    // Same in one member.
    let tarball = RawTar::new()
        .file("package/a.js", b"a")
        .end()
        .raw(b"trailing garbage")
        .tgz();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    bad_tarball(&result);
    // Garbage after the gzip stream itself.
    let tarball = [
        gzip(&RawTar::new().file("package/a.js", b"a").end().finish()),
        b"not gzip".to_vec(),
    ]
    .concat();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    bad_tarball(&result);
}

#[test]
fn zero_padding_after_the_end_of_archive_is_read_and_accepted() {
    let tarball = RawTar::new()
        .file("package/a.js", b"a")
        .end()
        .raw(&[0u8; 9216])
        .tgz();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    assert_eq!(result.unwrap().files, 1);
    // ...but counted: a zero bomb after the marker is still a bomb.
    let tarball = RawTar::new()
        .file("package/a.js", b"a")
        .end()
        .raw(&vec![0u8; 40 << 20])
        .tgz();
    let (result, _, _dir) = import(limited(32 << 20), &tarball);
    let (entry, reason) = rejection(&result);
    assert_eq!(reason, Rejection::TotalTooLarge { limit: 32 << 20 });
    assert_eq!(entry, "(after the end of the archive)");
}

#[test]
fn metadata_entries_over_one_mib_are_refused_before_they_are_read() {
    let comment = vec![b'z'; (1 << 20) + 1];
    let tarball = RawTar::new()
        .pax(&[("comment", &comment)])
        .file("package/a.js", b"a")
        .end()
        .tgz();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    let (entry, reason) = rejection(&result);
    assert_eq!(entry, "PaxHeader");
    assert!(
        matches!(
            reason,
            Rejection::MetadataTooLarge {
                kind: "PAX header",
                limit: 1_048_576,
                ..
            }
        ),
        "{reason}"
    );
    // A header announcing 64 GiB of long name, with nothing behind it: refused from the
    // header alone, nothing allocated.
    let tarball = RawTar::new()
        .header(b"././@LongLink", b'L', 64 << 30, b"")
        .end()
        .tgz();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    let (_, reason) = rejection(&result);
    assert_eq!(
        reason,
        Rejection::MetadataTooLarge {
            kind: "GNU long name",
            size: 64 << 30,
            limit: 1 << 20
        }
    );
}

#[test]
fn pax_size_must_agree_with_the_header() {
    // The header says 3 bytes, PAX says 515: readers honouring one or the other would find
    // different entries after it.
    let tarball = RawTar::new()
        .pax(&[("size", b"515")])
        .file("package/a.js", b"abc")
        .file("package/b.js", b"b")
        .end()
        .tgz();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    let (_, reason) = rejection(&result);
    assert!(
        matches!(&reason, Rejection::BadMetadata { reason, .. } if reason.contains("size")),
        "{reason}"
    );
    // Agreeing is fine.
    let tarball = RawTar::new()
        .pax(&[("size", b"3")])
        .file("package/a.js", b"abc")
        .end()
        .tgz();
    let (result, _, _dir) = import(StoreConfig::default(), &tarball);
    assert_eq!(result.unwrap().files, 1);
}

#[test]
fn contradictory_or_dangling_metadata_is_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two long names for one entry",
            RawTar::new()
                .long_name(b"package/a")
                .long_name(b"package/b")
                .file("package/c", b"c")
                .end()
                .tgz(),
        ),
        (
            "PAX path and GNU long name disagree",
            RawTar::new()
                .long_name(b"package/a")
                .pax(&[("path", b"package/b")])
                .file("package/c", b"c")
                .end()
                .tgz(),
        ),
        (
            "metadata at the end of the archive",
            RawTar::new()
                .file("package/c", b"c")
                .long_name(b"package/a")
                .end()
                .tgz(),
        ),
        (
            "global linkpath",
            RawTar::new()
                .global_pax(&[("linkpath", b"/etc/passwd")])
                .file("package/c", b"c")
                .end()
                .tgz(),
        ),
        (
            "malformed PAX record",
            RawTar::new()
                .meta(b'x', b"99 path=a\n")
                .file("package/c", b"c")
                .end()
                .tgz(),
        ),
    ];
    for (case, tarball) in cases {
        let (result, _, _dir) = import(StoreConfig::default(), &tarball);
        let (_, reason) = rejection(&result);
        assert!(
            matches!(reason, Rejection::BadMetadata { .. }),
            "{case}: {reason}"
        );
    }
}

#[test]
fn pax_records_name_entries_like_npm_does() {
    // PAX `path` wins over the header name; a global `path` is ignored (node-tar ignores it).
    let long = format!("package/{}/file.js", "d".repeat(150));
    let record = pax_record("path", long.as_bytes());
    let tarball = RawTar::new()
        .global_pax(&[("path", b"package/evil"), ("comment", b"git archive")])
        .meta(b'x', &record)
        .file("package/short-name", b"x")
        .end()
        .tgz();
    let (result, store, _dir) = import(StoreConfig::default(), &tarball);
    let imported = result.unwrap();
    let index = store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap();
    let paths: Vec<&str> = index
        .entries
        .iter()
        .map(node_modules_alloc::store::IndexEntry::path)
        .collect();
    assert_eq!(paths, vec![long.trim_start_matches("package/")]);
}
