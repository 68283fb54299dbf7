//! Faults: unusable store directories, missing packages, a full disk, concurrent imports from
//! two processes, and the CLI's exit codes and one-line errors.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use node_modules_alloc::allocator::{Allocator, AllocatorConfig, FreeSpace};
use node_modules_alloc::store::Store;
use node_modules_alloc::{Error, MissingPackage};
use support::{Pkg, entry, lockfile, write_tarballs};

const BIN: &str = env!("CARGO_BIN_EXE_node-modules-alloc");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "stderr must be exactly one line: {text:?}"
    );
    text.trim_end().to_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_store_path_that_is_a_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    assert!(Store::open(&file).is_err());
    let out = run(&["--store", s(&file), "gc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("not-a-dir"));
}

#[test]
fn an_unwritable_store_fails_cleanly_without_visible_state() {
    // We may run as root, where permission bits do not stop writes: make the temporary
    // directory unusable instead (a regular file where the directory should be).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    fs::remove_dir(store.path().join("tmp")).unwrap();
    fs::write(store.path().join("tmp"), b"in the way").unwrap();
    let pkg = Pkg::new("a", "1.0.0");
    let err = store
        .import_tarball_bytes("a.tgz", &pkg.tgz(), None, None)
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("tmp"), "{err}");
    assert!(store.indexes().unwrap().is_empty());
    assert!(store.content_files().unwrap().is_empty());
}

#[tokio::test]
async fn missing_packages_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let present = Pkg::new("present", "1.0.0");
    let gone1 = Pkg::new("gone1", "1.0.0");
    let gone2 = Pkg::new("@s/gone2", "2.0.0");
    store
        .import_tarball_bytes("p", &present.tgz(), None, None)
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[
            entry("node_modules/present", &present),
            entry("node_modules/gone1", &gone1),
            entry("node_modules/present/node_modules/@s/gone2", &gone2),
        ]),
    )
    .unwrap();
    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap();
    let err = allocator
        .allocate(&lock, dir.path().join("app"))
        .await
        .unwrap_err();
    let Error::MissingPackages { missing } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        missing,
        &vec![
            MissingPackage {
                path: "node_modules/gone1".into(),
                integrity: gone1.integrity()
            },
            MissingPackage {
                path: "node_modules/present/node_modules/@s/gone2".into(),
                integrity: gone2.integrity()
            },
        ]
    );
    // The CLI fetches missing packages unless --offline: offline, the one line lists them all.
    let out = run(&[
        "--store",
        s(&dir.path().join("store")),
        "allocate",
        "--offline",
        "--lockfile",
        s(&lock),
        "--app-dir",
        s(&dir.path().join("app")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(
        line.contains(&gone1.integrity()) && line.contains(&gone2.integrity()),
        "{line}"
    );
    assert!(!dir.path().join("app/node_modules").exists());
}

#[derive(Debug)]
struct NearlyFull;
impl FreeSpace for NearlyFull {
    fn available_bytes(&self, _: &Path) -> std::io::Result<u64> {
        Ok(4096)
    }
}

#[tokio::test]
async fn a_full_disk_refuses_work_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let pkg = Pkg::new("a", "1.0.0");
    store
        .import_tarball_bytes("a", &pkg.tgz(), None, None)
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    fs::write(&lock, lockfile(&[entry("node_modules/a", &pkg)])).unwrap();
    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 1 << 20,
            ..AllocatorConfig::default()
        },
    )
    .unwrap()
    .with_free_space(NearlyFull);
    let app = dir.path().join("app");
    let err = allocator.allocate(&lock, &app).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InsufficientSpace {
                available: 4096,
                required: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&app).unwrap().count(),
        0,
        "no staging, no node_modules"
    );
    assert_eq!(
        fs::read_dir(dir.path().join("store/templates"))
            .unwrap()
            .count(),
        0
    );

    // Through the CLI: a threshold above any disk simulates a full one; exit 75 (retry later).
    let out = run(&[
        "--store",
        s(&dir.path().join("store")),
        "allocate",
        "--lockfile",
        s(&lock),
        "--app-dir",
        s(&app),
        "--min-free-bytes",
        "18446744073709551615",
    ]);
    assert_eq!(out.status.code(), Some(75));
    assert!(stderr_line(&out).contains("not enough free space"));
}

#[test]
fn concurrent_imports_from_two_processes_are_safe() {
    let dir = tempfile::tempdir().unwrap();
    let pkgs: Vec<Pkg> = (0..40)
        .map(|i| {
            Pkg::new(&format!("p{i}"), "1.0.0")
                .file("LICENSE", b"shared license", 0o644)
                .file("x.js", format!("{i}").as_bytes(), 0o755)
        })
        .collect();
    let refs: Vec<&Pkg> = pkgs.iter().collect();
    write_tarballs(&dir.path().join("tarballs"), &refs);
    let store_dir = dir.path().join("store");
    let spawn = || {
        Command::new(BIN)
            .args([
                "--store",
                s(&store_dir),
                "import",
                s(&dir.path().join("tarballs")),
            ])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let store = Store::open(&store_dir).unwrap();
    assert_eq!(store.indexes().unwrap().len(), 40);
    let report = store.verify().unwrap();
    assert!(report.quarantined.is_empty());
    // 40 index.js + 40 x.js + 1 shared LICENSE + package.json files.
    assert_eq!(report.checked, store.content_files().unwrap().len());
    assert_eq!(fs::read_dir(store_dir.join("tmp")).unwrap().count(), 0);
    for p in &pkgs {
        let index = store
            .read_index(&p.integrity().parse().unwrap())
            .unwrap()
            .unwrap();
        assert!(index.entries.len() == 4);
    }
}

#[test]
fn cli_exit_codes_and_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // Usage errors: exit 2, one line.
    let out = run(&["--store", s(&store)]);
    assert_eq!(out.status.code(), Some(2));
    stderr_line(&out);
    let out = run(&["--store", s(&store), "gc", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("--bogus"));
    let out = run(&[
        "--store",
        s(&store),
        "allocate",
        "--lockfile",
        "x",
        "--app-dir",
        "y",
        "--link-mode",
        "symlink",
    ]);
    assert_eq!(out.status.code(), Some(2));
    stderr_line(&out);
    // Missing lockfile: exit 1 naming it.
    let out = run(&[
        "--store",
        s(&store),
        "allocate",
        "--lockfile",
        s(&dir.path().join("nope.json")),
        "--app-dir",
        s(&dir.path().join("app")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("nope.json"));
    // A workspace link whose folder the app lacks: exit 1 naming the lockfile path.
    let lock = dir.path().join("package-lock.json");
    fs::write(&lock, r#"{"lockfileVersion":3,"packages":{"":{},"node_modules/ws":{"resolved":"packages/ws","link":true}}}"#).unwrap();
    let out = run(&[
        "--store",
        s(&store),
        "allocate",
        "--lockfile",
        s(&lock),
        "--app-dir",
        s(&dir.path().join("app")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("node_modules/ws"));
    // A malicious tarball: exit 1 naming the entry.
    let evil = dir.path().join("evil.tgz");
    fs::write(
        &evil,
        support::raw_tgz(&[support::Raw::File("package/../../x", b"x", 0o644)]),
    )
    .unwrap();
    let out = run(&["--store", s(&store), "import", s(&evil)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("package/../../x"));
}

#[test]
fn cli_success_path_verify_failure_and_repair() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let lock = dir.path().join("package-lock.json");
    // Success path: import, allocate, verify, damage, verify fails, repair, gc.
    let pkg = Pkg::new("a", "1.0.0");
    write_tarballs(&dir.path().join("t"), &[&pkg]);
    assert!(
        run(&["--store", s(&store), "import", s(&dir.path().join("t"))])
            .status
            .success()
    );
    fs::write(&lock, lockfile(&[entry("node_modules/a", &pkg)])).unwrap();
    let app = dir.path().join("app");
    let out = run(&[
        "--store",
        s(&store),
        "allocate",
        "--lockfile",
        s(&lock),
        "--app-dir",
        s(&app),
        "--link-mode",
        "copy",
        "--min-free-bytes",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run(&["--store", s(&store), "verify", "--app-dir", s(&app)])
            .status
            .success()
    );
    fs::remove_file(app.join("node_modules/a/index.js")).unwrap();
    // Problems found (not an I/O error): exit 3.
    let out = run(&["--store", s(&store), "verify", "--app-dir", s(&app)]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr_line(&out).contains("a/index.js"));
    let out = run(&[
        "--store",
        s(&store),
        "verify",
        "--app-dir",
        s(&app),
        "--repair",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(app.join("node_modules/a/index.js").exists());
    assert!(run(&["--store", s(&store), "gc"]).status.success());
}
