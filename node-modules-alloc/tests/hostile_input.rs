//! Hostile tarballs must be cheap to refuse (issue #21).
//!
//! Every tarball here is generated in the test: the shapes of node-tar's hostile fixtures
//! (`excessively-deep.tar`: one entry with a 444 KB `a/a/a/...` path, bad checksums, PAX and GNU
//! metadata corner cases...) and a few of our own (100 000 tiny entries, a chain of 10 000
//! symlinks, a huge GNU long-link target, a package that blows the total component budget).
//! Each one ends in a clean import or a clean error, never a panic or a hang, well within a
//! generous time bound, and nothing is written outside the store.
//!
//! When `BREAKWATER_NODE_TAR_FIXTURES` points at node-tar's `test/fixtures` directory (a local
//! checkout; the files are never copied into this repository), every `*.tar` / `*.tgz` in it is
//! also imported, as is and re-rooted under `package/`, and one line per fixture is printed.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use node_modules_alloc::import::Imported;
use node_modules_alloc::store::{IndexEntry, Store, StoreConfig};
use node_modules_alloc::{Error, Rejection};
use support::{Raw, RawTar, all_paths, gzip, raw_tgz};

/// Far above what any case should take (< 1 s): the bound only catches pathological work.
const BOUND: Duration = Duration::from_secs(10);
/// A case still running after this is reported as a hang.
const HANG: Duration = Duration::from_secs(60);

struct Outcome {
    result: Result<Imported, Error>,
    elapsed: Duration,
    store: Store,
    _dir: tempfile::TempDir,
}

/// Imports `tarball` into a fresh store; fails the test on a hang or on anything written
/// outside the store (or, for a refused tarball, anything visible inside it).
fn import(case: &str, tarball: Vec<u8>, config: StoreConfig) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open_with(&store_dir, config).unwrap();
    let before = all_paths(&store_dir);
    let (tx, rx) = mpsc::channel();
    let worker = store.clone();
    let label = format!("{case}.tgz");
    std::thread::spawn(move || {
        let start = Instant::now();
        let result = worker.import_tarball_bytes(&label, &tarball, None, None);
        let _ = tx.send((result, start.elapsed()));
    });
    let (result, elapsed) = rx
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{case}: import did not finish within {HANG:?}"));
    println!(
        "{case}: {} in {elapsed:?}",
        match &result {
            Ok(imported) => format!("imported ({} files)", imported.files),
            Err(e) => format!("refused: {}", short(&e.to_string())),
        }
    );
    assert!(all_paths(&outside).is_empty(), "{case}: wrote outside");
    if result.is_err() {
        assert_eq!(all_paths(&store_dir), before, "{case}: refused but wrote");
        assert!(store.indexes().unwrap().is_empty());
    }
    Outcome {
        result,
        elapsed,
        store,
        _dir: dir,
    }
}

fn short(message: &str) -> String {
    if message.len() <= 300 {
        return message.to_owned();
    }
    let mut end = 300;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

fn within_bound(case: &str, outcome: &Outcome) {
    assert!(
        outcome.elapsed < BOUND,
        "{case} took {:?} (bound {BOUND:?})",
        outcome.elapsed
    );
}

/// The rejection of a refused import, with its (shortened) entry name.
fn rejection(case: &str, outcome: &Outcome) -> (String, Rejection) {
    match &outcome.result {
        Err(Error::Rejected { entry, reason, .. }) => (entry.clone(), reason.clone()),
        Err(other) => panic!("{case}: expected a rejection, got {other}"),
        Ok(imported) => panic!("{case}: expected a rejection, imported {imported:?}"),
    }
}

fn paths_of(outcome: &Outcome) -> Vec<String> {
    let imported = outcome.result.as_ref().unwrap();
    let index = outcome
        .store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap();
    index.entries.iter().map(|e| e.path().to_owned()).collect()
}

/// `package/a/a/a/...` of about `bytes` bytes.
fn deep_path(bytes: usize) -> String {
    let mut path = String::from("package");
    while path.len() < bytes {
        path.push_str("/a");
    }
    path
}

// ---------------------------------------------------------------------------------------------
// Issue #21: expensive shapes, each refused (or imported where legitimate) in well under 1 s.
// ---------------------------------------------------------------------------------------------

/// node-tar's `excessively-deep.tar`, as a GNU long name: 444 749 bytes, ~222 000 levels.
/// Refused as soon as the name is read: longer than `PATH_MAX` (4096 bytes).
#[test]
fn deep_path_in_a_gnu_long_name_is_refused_quickly() {
    let path = deep_path(444_749);
    let tarball = raw_tgz(&[Raw::LongName(&path, b"hi\n")]);
    let outcome = import("deep-gnu-long-name", tarball, StoreConfig::default());
    let (entry, reason) = rejection("deep-gnu-long-name", &outcome);
    assert!(
        matches!(reason, Rejection::PathTooLong { limit: 4096, .. }),
        "{reason}"
    );
    // The entry is named readably: its start and its real length, not 444 KB of `a/`.
    assert!(entry.starts_with("package/a/a/"), "{entry}");
    let length = format!("{} bytes", path.len());
    assert!(entry.len() < 200 && entry.contains(&length), "{entry}");
    within_bound("deep-gnu-long-name", &outcome);
}

/// The same path carried by a PAX `path` record, exactly as in `excessively-deep.tar`.
#[test]
fn deep_path_in_a_pax_header_is_refused_quickly() {
    let path = format!("./{}", deep_path(444_749));
    let tarball = RawTar::new()
        .pax(&[("path", path.as_bytes())])
        .file(&path[..100], b"hi\n")
        .end()
        .tgz();
    let outcome = import("deep-pax-path", tarball, StoreConfig::default());
    let (entry, reason) = rejection("deep-pax-path", &outcome);
    assert!(
        matches!(reason, Rejection::PathTooLong { limit: 4096, .. }),
        "{reason}"
    );
    assert!(entry.len() < 200, "{entry}");
    within_bound("deep-pax-path", &outcome);
}

/// Under `PATH_MAX` but 2000 levels deep: refused by the depth limit (128 below `package/`).
#[test]
fn path_deeper_than_the_depth_limit_is_refused() {
    let mut path = String::from("package");
    for _ in 0..2000 {
        path.push_str("/a");
    }
    let tarball = raw_tgz(&[Raw::LongName(&path, b"hi\n")]);
    let outcome = import("too-deep", tarball, StoreConfig::default());
    let (_, reason) = rejection("too-deep", &outcome);
    assert!(
        matches!(
            reason,
            Rejection::TooDeep {
                depth: 2000,
                limit: 128
            }
        ),
        "{reason}"
    );
    within_bound("too-deep", &outcome);
}

/// A component longer than `NAME_MAX` (255 bytes) is refused.
#[test]
fn component_longer_than_name_max_is_refused() {
    let path = format!("package/{}", "c".repeat(300));
    let tarball = raw_tgz(&[Raw::LongName(&path, b"hi\n")]);
    let outcome = import("long-component", tarball, StoreConfig::default());
    let (_, reason) = rejection("long-component", &outcome);
    assert!(
        matches!(
            reason,
            Rejection::ComponentTooLong {
                len: 300,
                limit: 255
            }
        ),
        "{reason}"
    );
}

/// 100 000 entries (the default `max_entries`), empty files: legitimate by the limits, so it is
/// imported, and cheaply (identical content is hashed in memory and stored once).
#[test]
fn hundred_thousand_tiny_entries_are_imported_quickly() {
    let mut tar = RawTar::new();
    tar.file(
        "package/package.json",
        br#"{"name":"many","version":"1.0.0"}"#,
    );
    for i in 1..100_000 {
        tar.file(&format!("package/f{i}"), b"");
    }
    let tarball = tar.end().tgz();
    let outcome = import("tiny-entries", tarball, StoreConfig::default());
    let imported = outcome.result.as_ref().unwrap();
    assert_eq!(imported.files, 100_000);
    assert_eq!(outcome.store.content_files().unwrap().len(), 2);
    within_bound("tiny-entries", &outcome);
}

/// `l1 -> l0`, `l2 -> l1`, ... 10 000 symlinks, each contained: legitimate (the kernel stops
/// following after 40 hops, which is harmless), imported in linear time.
#[test]
fn ten_thousand_chained_symlinks_are_imported_quickly() {
    let mut tar = RawTar::new();
    tar.file("package/l0", b"end of the chain\n");
    for i in 1..=10_000 {
        tar.symlink(&format!("package/l{i}"), &format!("l{}", i - 1));
    }
    let tarball = tar.end().tgz();
    let outcome = import("symlink-chain", tarball, StoreConfig::default());
    assert_eq!(outcome.result.as_ref().unwrap().files, 10_001);
    within_bound("symlink-chain", &outcome);
}

/// Symlinks chained *through* each other (`d1 -> d0/x`, where `d0` is itself a link): refused
/// (a path through a link can leave the package), and just as cheaply.
#[test]
fn symlinks_traversing_each_other_are_refused_quickly() {
    let mut tar = RawTar::new();
    tar.file("package/d0", b"x\n");
    for i in 1..=10_000 {
        tar.symlink(&format!("package/d{i}"), &format!("d{}/x", i - 1));
    }
    let tarball = tar.end().tgz();
    let outcome = import("symlink-traversal-chain", tarball, StoreConfig::default());
    let (_, reason) = rejection("symlink-traversal-chain", &outcome);
    assert!(matches!(reason, Rejection::LinkEscapes { .. }), "{reason}");
    within_bound("symlink-traversal-chain", &outcome);
}

/// A GNU long link (`K`) with a 444 KB target: refused, target longer than 4096 bytes.
#[test]
fn huge_gnu_long_link_target_is_refused_quickly() {
    let target = deep_path(444_749);
    let target = target.trim_start_matches("package/");
    let tarball = raw_tgz(&[Raw::LongLink("package/link", target)]);
    let outcome = import("long-link-target", tarball, StoreConfig::default());
    let (entry, reason) = rejection("long-link-target", &outcome);
    assert_eq!(entry, "package/link");
    assert!(
        matches!(reason, Rejection::LinkTargetTooLong { limit: 4096, .. }),
        "{reason}"
    );
    within_bound("long-link-target", &outcome);
}

/// 40 000 entries 110 levels deep: each entry is within every per-entry limit, but together
/// they exceed the total work budget (4 000 000 path components per import).
#[test]
fn total_component_budget_is_enforced_quickly() {
    let dir = format!("package/{}", "d/".repeat(109));
    let mut tar = RawTar::new();
    for i in 0..40_000 {
        let path = format!("{dir}f{i}");
        tar.long_name(path.as_bytes()).file(&path, b"");
    }
    let tarball = tar.end().tgz();
    let outcome = import("component-budget", tarball, StoreConfig::default());
    let (_, reason) = rejection("component-budget", &outcome);
    assert!(
        matches!(reason, Rejection::TooManyComponents { limit: 4_000_000 }),
        "{reason}"
    );
    within_bound("component-budget", &outcome);
}

// ---------------------------------------------------------------------------------------------
// The shapes of node-tar's hostile fixtures, generated here: raw (not gzip), gzipped as is, and
// re-rooted under `package/`. Each ends in a clean import or a clean error.
// ---------------------------------------------------------------------------------------------

const LONG_DIR: &str = "long-path/r/e/a/l/l/y/-/d/e/e/p/-/f/o/l/d/e/r/-/p/a/t/h";

fn c_name(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", "c".repeat(len - prefix.len()))
}

/// One node-tar fixture shape, with every path under `root` (`""` or `"package/"`).
fn shape(name: &str, root: &str) -> Vec<u8> {
    let r = |p: &str| format!("{root}{p}");
    let mut t = RawTar::new();
    match name {
        "bad-cksum" => {
            t.file(&r("one-byte.txt"), b"a");
            t.header_with(r("nne-byte.txt").as_bytes(), b'0', 1, b"", false)
                .body(b"a");
        }
        "body-byte-counts" => {
            t.file(&r("1024-bytes.txt"), &[b'x'; 1024])
                .file(&r("512-bytes.txt"), &[b'x'; 512])
                .file(&r("one-byte.txt"), b"a")
                .file(&r("zero-byte.txt"), b"");
        }
        "emptypax" => {
            let star = r("🌟.txt");
            t.pax(&[("path", star.as_bytes()), ("ctime", b"1491843956")])
                .file(&star, &[b'*'; 106])
                .meta(b'x', b"")
                .file(&r("one-byte.txt"), b"a");
        }
        "global-header" => {
            t.global_pax(&[("path", r("ab").as_bytes())])
                .file(&r("one-byte.txt"), b"a");
        }
        "links-invalid" => {
            // A regular file with a link name, a hardlink to nothing, a symlink to it.
            t.header(r("hardlink-1").as_bytes(), b'0', 26, b"hardlink-2")
                .body(&[b'h'; 26])
                .hardlink(&r("hardlink-2"), "")
                .symlink(&r("symlink"), "hardlink-2");
        }
        "long-paths" => long_paths(&mut t, &r),
        "long-pax" => {
            let p120 = r(&c_name("120-byte-filename-", 120));
            let comment = "all work and no play makes johnny a tar boy ".repeat(24);
            t.pax(&[("path", p120.as_bytes()), ("comment", comment.as_bytes())])
                .file(&p120, &[b'1'; 100]);
        }
        "next-file-has-long" => {
            let p170 = c_name("170-byte-filename-", 170);
            t.long_name(r(&p170).as_bytes())
                .file(&r(&p170), &[b'1'; 100])
                .long_link(p170.as_bytes())
                .symlink(&r("longlink"), "././@LongSymLink");
        }
        "null-byte" => {
            let dir = "this_is_a_really_long_directory_name_with_a_lot_of_characters";
            let file = r(&format!(
                "{dir}/this_is_a_really_long_tgz_file_with_a_lot_of_characters.tgz"
            ));
            t.dir(&r(&format!("{dir}/")))
                .long_name(file.as_bytes())
                .file(&file, &[0u8; 200]);
            // Padded to a 10 KiB record with zero blocks, as GNU tar does.
            t.end().raw(&[0u8; 512 * 14]);
            return t.finish();
        }
        "null-byte-inside-name" => {
            t.long_name(&[r("evil").as_bytes(), b"\0/../../x"].concat())
                .file(&r("evil"), b"x");
        }
        "path-missing" => {
            t.file("", b"a");
        }
        "trailing-slash-corner-case" => {
            let dir = r(&c_name("99-byte-dirname-", 99));
            let a = format!("{dir}/a-truly-unlucky-file-beyond-130-byte-path-length.txt");
            let b = format!("{dir}/some-unlucky-file.txt");
            t.dir(&format!("{dir}/"))
                .long_name(a.as_bytes())
                .file(&a, &[b'a'; 560])
                .long_name(b.as_bytes())
                .file(&b, &[b'b'; 560]);
        }
        "utf8" => {
            for p in ["Ω.txt", "🌟.txt"] {
                t.pax(&[("path", r(p).as_bytes())])
                    .file(&r(p), "Ω".as_bytes());
            }
            let deep = r(&format!("{LONG_DIR}/Ω.txt"));
            t.pax(&[("path", deep.as_bytes())])
                .file(&deep, "Ω".as_bytes());
        }
        other => panic!("unknown shape {other}"),
    }
    t.end().finish()
}

/// `long-paths.tar`: 100/120/170-byte names (PAX), a deep directory chain, ustar prefixes.
fn long_paths(t: &mut RawTar, r: &dyn Fn(&str) -> String) {
    let p120 = r(&c_name("120-byte-filename-", 120));
    let p170 = r(&c_name("170-byte-filename-", 170));
    t.file(&r(&c_name("100-byte-filename-", 100)), &[b'1'; 100])
        .pax(&[("path", p120.as_bytes()), ("atime", b"1491843717")])
        .file(&p120, &[b'1'; 100])
        .pax(&[("path", p170.as_bytes())])
        .file(&p170, &[b'1'; 100]);
    let mut dir = String::new();
    for part in LONG_DIR.split('/') {
        dir.push_str(part);
        dir.push('/');
        t.dir(&r(&dir));
    }
    let deep = r(&format!("{LONG_DIR}/{}", "c".repeat(120)));
    t.file(&r(&format!("{LONG_DIR}/a.txt")), b"short\n")
        .pax(&[("path", deep.as_bytes())])
        .file(&deep, &[b'c'; 100])
        .pax(&[("path", r(&format!("{LONG_DIR}/Ω.txt")).as_bytes())])
        .file(&r(&format!("{LONG_DIR}/Ω.txt")), "Ω".as_bytes());
}

const SHAPES: &[&str] = &[
    "bad-cksum",
    "body-byte-counts",
    "emptypax",
    "global-header",
    "links-invalid",
    "long-paths",
    "long-pax",
    "next-file-has-long",
    "null-byte",
    "null-byte-inside-name",
    "path-missing",
    "trailing-slash-corner-case",
    "utf8",
];

#[test]
fn node_tar_fixture_shapes_end_in_a_clean_import_or_a_clean_error() {
    for name in SHAPES {
        // Not gzip at all: a clean error.
        let raw = shape(name, "package/");
        let outcome = import(&format!("{name} (raw tar)"), raw, StoreConfig::default());
        assert!(
            matches!(outcome.result, Err(Error::BadTarball { .. })),
            "{name}: raw tar must be refused as not gzip"
        );
        // As is (no `package/` prefix): whatever happens, it is clean.
        let outcome = import(
            &format!("{name} (as is)"),
            gzip(&shape(name, "")),
            StoreConfig::default(),
        );
        within_bound(name, &outcome);
        // Re-rooted under `package/`: the outcome npm's own extractor would agree with.
        let case = format!("{name} (package/)");
        let outcome = import(
            &case,
            gzip(&shape(name, "package/")),
            StoreConfig::default(),
        );
        within_bound(name, &outcome);
        match *name {
            "bad-cksum" => assert!(
                matches!(&outcome.result, Err(Error::BadTarball { reason, .. }) if reason.contains("checksum")),
                "{case}"
            ),
            "links-invalid" => {
                let (entry, reason) = rejection(&case, &outcome);
                assert_eq!(entry, "package/hardlink-2");
                assert!(
                    matches!(reason, Rejection::DanglingHardlink { .. }),
                    "{reason}"
                );
            }
            "null-byte-inside-name" => {
                let (_, reason) = rejection(&case, &outcome);
                assert_eq!(reason, Rejection::NulInPath);
            }
            "path-missing" => {
                let (_, reason) = rejection(&case, &outcome);
                assert_eq!(reason, Rejection::EmptyPath);
            }
            "body-byte-counts" => {
                let index = index_of(&outcome);
                let sizes: Vec<(String, u64)> = index
                    .entries
                    .iter()
                    .map(|e| match e {
                        IndexEntry::File { path, size, .. } => (path.clone(), *size),
                        IndexEntry::Symlink { path, .. } => (path.clone(), u64::MAX),
                    })
                    .collect();
                assert_eq!(
                    sizes,
                    vec![
                        ("1024-bytes.txt".to_owned(), 1024),
                        ("512-bytes.txt".to_owned(), 512),
                        ("one-byte.txt".to_owned(), 1),
                        ("zero-byte.txt".to_owned(), 0),
                    ]
                );
            }
            "emptypax" => assert_eq!(paths_of(&outcome), vec!["one-byte.txt", "🌟.txt"]),
            "global-header" => assert_eq!(paths_of(&outcome), vec!["one-byte.txt"]),
            "long-paths" => assert_eq!(paths_of(&outcome).len(), 6),
            "long-pax" => assert_eq!(paths_of(&outcome), vec![c_name("120-byte-filename-", 120)]),
            "next-file-has-long" => {
                let index = index_of(&outcome);
                assert!(index.entries.iter().any(|e| matches!(e,
                    IndexEntry::Symlink { path, target } if path == "longlink" && target.len() == 170)));
            }
            "null-byte" => assert_eq!(paths_of(&outcome).len(), 1),
            "trailing-slash-corner-case" => assert_eq!(paths_of(&outcome).len(), 2),
            "utf8" => assert_eq!(paths_of(&outcome).len(), 3),
            other => panic!("no expectation for {other}"),
        }
    }
}

fn index_of(outcome: &Outcome) -> node_modules_alloc::store::PackageIndex {
    let imported = outcome
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("expected an import: {e}"));
    outcome
        .store
        .read_index(&imported.integrity.parse().unwrap())
        .unwrap()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// node-tar's real fixtures, when a local checkout is pointed at.
// ---------------------------------------------------------------------------------------------

fn fixture_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            fixture_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "tar" || e == "tgz") {
            out.push(path);
        }
    }
}

/// Rewrites a tar with every path under `package/`, using the `tar` crate (which handles long
/// names and PAX on both sides). `None` when the `tar` crate cannot read the fixture.
fn reroot(tar_bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut builder = tar::Builder::new(Vec::new());
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = format!(
            "package/{}",
            String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./")
        );
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            let target = if kind.is_hard_link() && !target.is_empty() {
                format!("package/{target}")
            } else {
                target
            };
            builder
                .append_link(&mut header, &path, &target)
                .map_err(|e| e.to_string())?;
        } else {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| e.to_string())?;
            builder
                .append_data(&mut header, &path, data.as_slice())
                .map_err(|e| e.to_string())?;
        }
    }
    builder.into_inner().map_err(|e| e.to_string())
}

#[test]
fn node_tar_fixtures_end_in_a_clean_import_or_a_clean_error() {
    let Some(dir) = std::env::var_os("BREAKWATER_NODE_TAR_FIXTURES") else {
        println!("BREAKWATER_NODE_TAR_FIXTURES not set: node-tar fixtures skipped");
        return;
    };
    let dir = PathBuf::from(dir);
    let mut files = Vec::new();
    fixture_files(&dir, &mut files);
    assert!(
        !files.is_empty(),
        "no *.tar / *.tgz under {}",
        dir.display()
    );
    let mut table = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(&dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let bytes = std::fs::read(&file).unwrap();
        let is_gzip = bytes.starts_with(&[0x1f, 0x8b]);
        let tar_bytes = if is_gzip {
            let mut out = Vec::new();
            let decoded = std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(bytes.as_slice()),
                &mut out,
            );
            decoded.ok().map(|_| out)
        } else {
            Some(bytes.clone())
        };
        let gz = if is_gzip { bytes } else { gzip(&bytes) };
        let outcome = import(&format!("{name} (as is)"), gz, StoreConfig::default());
        table.push(format!("| {name} | as is | {} |", describe(&outcome)));
        let rerooted = tar_bytes
            .ok_or_else(|| "not a readable gzip stream".to_owned())
            .and_then(|t| reroot(&t));
        match rerooted {
            Ok(tar) => {
                let outcome = import(
                    &format!("{name} (package/)"),
                    gzip(&tar),
                    StoreConfig::default(),
                );
                table.push(format!("| {name} | package/ | {} |", describe(&outcome)));
            }
            Err(e) => table.push(format!(
                "| {name} | package/ | not re-rootable: the tar crate cannot read it ({e}) |"
            )),
        }
    }
    println!("| fixture | variant | outcome |\n|---|---|---|");
    for line in table {
        println!("{line}");
    }
}

fn describe(outcome: &Outcome) -> String {
    match &outcome.result {
        Ok(imported) => format!("imported, {} files, {:?}", imported.files, outcome.elapsed),
        Err(e) => format!(
            "refused: {} ({:?})",
            short(&e.to_string()).replace('|', "\\|"),
            outcome.elapsed
        ),
    }
}
