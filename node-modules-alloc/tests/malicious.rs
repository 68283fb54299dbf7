//! Malicious tarballs: every rejection names the entry, and nothing is written outside the
//! store (nor anything visible inside it).
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use node_modules_alloc::config::ImportLimits;
use node_modules_alloc::store::{Store, StoreConfig};
use node_modules_alloc::{Error, Rejection};
use support::{Raw, all_paths, raw_tgz};

const OK: &[u8] = b"fine";

fn import_rejects(entries: &[Raw<'_>], expected_entry: &str, check: impl Fn(&Rejection) -> bool) {
    import_rejects_with(StoreConfig::default(), entries, expected_entry, check);
}

fn import_rejects_with(
    config: StoreConfig,
    entries: &[Raw<'_>],
    expected_entry: &str,
    check: impl Fn(&Rejection) -> bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open_with(&store_dir, config).unwrap();
    let before = all_paths(&store_dir);
    let tarball = raw_tgz(entries);
    let path = outside.join("evil.tgz");
    std::fs::write(&path, &tarball).unwrap();
    let err = store.import_tarball_file(&path).unwrap_err();
    match &err {
        Error::Rejected { entry, reason, .. } => {
            assert_eq!(entry, expected_entry, "{err}");
            assert!(check(reason), "unexpected reason: {err}");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(expected_entry) && message.contains("evil.tgz"),
        "{message}"
    );
    assert!(!message.contains('\n'));
    // Nothing was written: not outside, not in the store (no index, no content, no temp file).
    assert_eq!(all_paths(&outside), vec![path]);
    assert_eq!(all_paths(&store_dir), before);
    assert!(store.indexes().unwrap().is_empty());
}

#[test]
fn rejects_absolute_paths() {
    import_rejects(
        &[
            Raw::File("package/ok.js", OK, 0o644),
            Raw::File("/etc/evil", OK, 0o644),
        ],
        "/etc/evil",
        |r| *r == Rejection::AbsolutePath,
    );
}

#[test]
fn rejects_parent_components() {
    import_rejects(
        &[Raw::File("package/../../evil", OK, 0o644)],
        "package/../../evil",
        |r| *r == Rejection::ParentComponent,
    );
    import_rejects(
        &[Raw::File("package/a/../../b", OK, 0o644)],
        "package/a/../../b",
        |r| *r == Rejection::ParentComponent,
    );
}

#[test]
fn rejects_symlinks_that_escape() {
    import_rejects(
        &[Raw::Symlink("package/up", "../../etc")],
        "package/up",
        |r| {
            matches!(
                r,
                Rejection::LinkEscapes {
                    kind: "symlink",
                    ..
                }
            )
        },
    );
    import_rejects(
        &[Raw::Symlink("package/abs", "/etc/passwd")],
        "package/abs",
        |r| {
            matches!(
                r,
                Rejection::LinkEscapes {
                    kind: "symlink",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_writes_and_links_through_symlinks() {
    // `dir -> .` is contained, but `dir/x/../..` climbs one level more than it looks.
    import_rejects(
        &[
            Raw::Symlink("package/dir", "."),
            Raw::Symlink("package/sneaky", "dir/x/../.."),
        ],
        "sneaky",
        |r| matches!(r, Rejection::LinkEscapes { .. }),
    );
    import_rejects(
        &[
            Raw::Symlink("package/lib", "sub"),
            Raw::File("package/lib/x.js", OK, 0o644),
        ],
        "lib/x.js",
        |r| matches!(r, Rejection::LinkEscapes { .. }),
    );
}

#[test]
fn rejects_hardlinks_that_escape_or_dangle() {
    import_rejects(
        &[Raw::Hardlink("package/h", "../../etc/passwd")],
        "package/h",
        |r| {
            matches!(
                r,
                Rejection::LinkEscapes {
                    kind: "hardlink",
                    ..
                }
            )
        },
    );
    import_rejects(
        &[Raw::Hardlink("package/h", "/etc/passwd")],
        "package/h",
        |r| {
            matches!(
                r,
                Rejection::LinkEscapes {
                    kind: "hardlink",
                    ..
                }
            )
        },
    );
    import_rejects(
        &[Raw::Hardlink("package/h", "package/nope")],
        "package/h",
        |r| matches!(r, Rejection::DanglingHardlink { .. }),
    );
}

#[test]
fn rejects_device_files_and_fifos() {
    import_rejects(&[Raw::Char("package/tty")], "package/tty", |r| {
        *r == Rejection::SpecialFile {
            kind: "character device",
        }
    });
    import_rejects(&[Raw::Block("package/sda")], "package/sda", |r| {
        *r == Rejection::SpecialFile {
            kind: "block device",
        }
    });
    import_rejects(&[Raw::Fifo("package/pipe")], "package/pipe", |r| {
        *r == Rejection::SpecialFile { kind: "fifo" }
    });
}

#[test]
fn rejects_entries_over_the_size_limit() {
    let config = StoreConfig {
        limits: ImportLimits {
            max_entry_bytes: 1000,
            ..ImportLimits::default()
        },
        ..StoreConfig::default()
    };
    import_rejects_with(
        config,
        &[
            Raw::File("package/ok", OK, 0o644),
            Raw::Sized("package/big", 5000),
        ],
        "package/big",
        |r| *r == Rejection::EntryTooLarge { limit: 1000 },
    );
}

#[test]
fn rejects_decompression_bombs_by_total_size() {
    // 40 MB of zeros compresses to ~40 KB.
    let config = StoreConfig {
        limits: ImportLimits {
            max_entry_bytes: 30 << 20,
            max_total_bytes: 32 << 20,
            ..ImportLimits::default()
        },
        ..StoreConfig::default()
    };
    let tarball = raw_tgz(&[
        Raw::Sized("package/a", 20 << 20),
        Raw::Sized("package/b", 20 << 20),
    ]);
    assert!(
        tarball.len() < 200_000,
        "a real bomb: {} bytes",
        tarball.len()
    );
    import_rejects_with(
        config,
        &[
            Raw::Sized("package/a", 20 << 20),
            Raw::Sized("package/b", 20 << 20),
        ],
        "package/b",
        |r| *r == Rejection::TotalTooLarge { limit: 32 << 20 },
    );
}

#[test]
fn rejects_too_many_entries() {
    let config = StoreConfig {
        limits: ImportLimits {
            max_entries: 3,
            ..ImportLimits::default()
        },
        ..StoreConfig::default()
    };
    import_rejects_with(
        config,
        &[
            Raw::File("package/1", OK, 0o644),
            Raw::File("package/2", OK, 0o644),
            Raw::File("package/3", OK, 0o644),
            Raw::File("package/4", OK, 0o644),
        ],
        "package/4",
        |r| *r == Rejection::TooManyEntries { limit: 3 },
    );
}

#[test]
fn rejects_oversized_tarballs_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        limits: ImportLimits {
            max_tarball_bytes: 10,
            ..ImportLimits::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open_with(dir.path().join("s1"), config).unwrap();
    let err = store
        .import_tarball_bytes(
            "big.tgz",
            &raw_tgz(&[Raw::File("package/a", OK, 0o644)]),
            None,
            None,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("big.tgz") && err.to_string().contains("limit"),
        "{err}"
    );
    let store = Store::open(dir.path().join("s2")).unwrap();
    let err = store
        .import_tarball_bytes("junk.tgz", b"this is not gzip", None, None)
        .unwrap_err();
    assert!(matches!(err, Error::BadTarball { .. }), "{err}");
}

#[test]
fn rejects_integrity_mismatch_before_unpacking() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let good = raw_tgz(&[Raw::File("package/a", OK, 0o644)]);
    let other = raw_tgz(&[Raw::File("package/b", OK, 0o644)]);
    for expected in [
        node_modules_alloc::integrity::Integrity::sha512_of(&other),
        support::sha1_integrity(&other).parse().unwrap(),
    ] {
        let err = store
            .import_tarball_bytes("a.tgz", &good, Some(&expected), None)
            .unwrap_err();
        assert!(matches!(err, Error::IntegrityMismatch { .. }), "{err}");
    }
    assert!(store.content_files().unwrap().is_empty());
    // The right sha1 form is accepted.
    let sha1 = support::sha1_integrity(&good).parse().unwrap();
    store
        .import_tarball_bytes("a.tgz", &good, Some(&sha1), None)
        .unwrap();
}

#[test]
fn accepts_contained_links_and_any_single_top_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let tarball = raw_tgz(&[
        Raw::File("node-v1.2.3/lib/a.js", OK, 0o644),
        Raw::Symlink("node-v1.2.3/lib/alias.js", "a.js"),
        Raw::Hardlink("node-v1.2.3/lib/b.js", "node-v1.2.3/lib/a.js"),
    ]);
    let imported = store
        .import_tarball_bytes("odd-prefix.tgz", &tarball, None, None)
        .unwrap();
    assert_eq!(imported.files, 3);
    let index = store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap();
    let paths: Vec<&str> = index
        .entries
        .iter()
        .map(node_modules_alloc::store::IndexEntry::path)
        .collect();
    assert_eq!(paths, vec!["lib/a.js", "lib/alias.js", "lib/b.js"]);
}
