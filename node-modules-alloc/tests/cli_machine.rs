//! The CLI speaks to machines: `--json` (one object per command, the documented keys), `-q`,
//! `verify`'s own exit code for problems, clap's whole usage message, `BREAKWATER_STORE`.
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{Pkg, entry, lockfile, write_tarballs};

const BIN: &str = env!("CARGO_BIN_EXE_node-modules-alloc");

/// Runs the binary without `BREAKWATER_STORE` or `RUST_LOG` from the caller's environment.
fn run(args: &[&str]) -> Output {
    cmd().args(args).output().unwrap()
}

fn cmd() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("BREAKWATER_STORE").env_remove("RUST_LOG");
    cmd
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exactly one JSON object on stdout (one line), parsed.
fn json(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "stdout must be one JSON object on one line: {text:?}"
    );
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(value.is_object(), "{value}");
    value
}

fn assert_keys(value: &Value, keys: &[&str]) {
    for key in keys {
        assert!(value.get(key).is_some(), "missing key {key:?} in {value}");
    }
}

/// Keys of every object of a command that ran (README: "JSON output").
const COMMON: &[&str] = &["command", "outcome", "exit_code", "store", "seconds"];

struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    tarballs: PathBuf,
    lock: PathBuf,
    app: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("a", "1.0.0").file("lib/b.js", b"module.exports = 2;\n", 0o644);
    let tarballs = dir.path().join("t");
    write_tarballs(&tarballs, &[&pkg]);
    let lock = dir.path().join("package-lock.json");
    fs::write(&lock, lockfile(&[entry("node_modules/a", &pkg)])).unwrap();
    Fixture {
        store: dir.path().join("store"),
        app: dir.path().join("app"),
        tarballs,
        lock,
        _dir: dir,
    }
}

fn allocate_args<'a>(f: &'a Fixture, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--store",
        s(&f.store),
        "allocate",
        "--lockfile",
        s(&f.lock),
        "--app-dir",
        s(&f.app),
        "--link-mode",
        "copy",
        "--min-free-bytes",
        "0",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn json_objects_carry_the_documented_keys() {
    let f = fixture();
    let out = run(&["--json", "--store", s(&f.store), "import", s(&f.tarballs)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_keys(&v, COMMON);
    assert_keys(&v, &["imported", "already_present", "packages"]);
    assert_eq!(v["command"], "import");
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["imported"], 1);
    assert_eq!(v["packages"][0]["name"], "a");
    for key in ["total", "open_store", "command"] {
        assert!(v["seconds"][key].as_f64().unwrap() >= 0.0, "{v}");
    }

    // `--json` may come after the subcommand too (a global flag).
    let out = run(&allocate_args(&f, &["--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_keys(&v, COMMON);
    assert_keys(
        &v,
        &[
            "app_dir",
            "lockfile",
            "node_modules",
            "manifest_digest",
            "lockfile_digest",
            "packages",
            "files",
            "link_mode",
            "placed",
        ],
    );
    assert_eq!(v["command"], "allocate");
    assert_eq!(v["outcome"], "materialized");
    assert_eq!(v["link_mode"], "copy");
    assert_eq!(v["files"], 3, "package.json, index.js, lib/b.js");
    assert_eq!(v["placed"]["copies"], 3);
    let out = run(&allocate_args(&f, &["--json"]));
    assert_eq!(json(&out)["outcome"], "reused");

    let out = run(&[
        "--json",
        "--store",
        s(&f.store),
        "verify",
        "--app-dir",
        s(&f.app),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_keys(&v, COMMON);
    assert_keys(
        &v,
        &[
            "app_dir",
            "node_modules",
            "repair",
            "repaired",
            "problems",
            "store_report",
        ],
    );
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["problems"], Value::Array(vec![]));
    assert_eq!(v["store"], s(&f.store), "the store path, not the report");
    assert_eq!(v["store_report"], Value::Null);

    let out = run(&["--json", "--store", s(&f.store), "gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_keys(&v, COMMON);
    assert_keys(
        &v,
        &[
            "files_removed",
            "templates_removed",
            "scratch_removed",
            "manifests_removed",
        ],
    );
    assert_eq!(v["templates_removed"], 1);
}

#[test]
fn an_error_is_one_json_object_too() {
    // With the exit code and the stderr line's message.
    let f = fixture();
    let out = run(&[
        "--json",
        "--store",
        s(&f.store),
        "allocate",
        "--lockfile",
        "/nonexistent/package-lock.json",
        "--app-dir",
        s(&f.app),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_keys(&v, COMMON);
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["exit_code"], 1);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/package-lock.json"),
        "{v}"
    );
}

#[test]
fn verify_with_problems_exits_3_and_repair_exits_0() {
    let f = fixture();
    assert!(
        run(&["--store", s(&f.store), "import", s(&f.tarballs)])
            .status
            .success()
    );
    assert!(run(&allocate_args(&f, &[])).status.success());
    // Tamper: same length, other bytes (a copied tree: the store is not touched).
    let file = f.app.join("node_modules/a/lib/b.js");
    let mut perms = fs::metadata(&file).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&file, perms).unwrap();
    fs::write(&file, b"module.exports = 3;\n").unwrap();

    let out = run(&["--store", s(&f.store), "verify", "--app-dir", s(&f.app)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let line = stderr(&out);
    assert_eq!(line.trim_end().lines().count(), 1, "{line:?}");
    assert!(line.contains("a/lib/b.js"), "{line}");

    let out = run(&[
        "--json",
        "--store",
        s(&f.store),
        "verify",
        "--app-dir",
        s(&f.app),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let v = json(&out);
    assert_eq!(v["outcome"], "problems");
    assert_eq!(v["exit_code"], 3);
    assert!(
        v["problems"][0].as_str().unwrap().contains("a/lib/b.js"),
        "{v}"
    );

    // The I/O-error code stays 1: a missing app directory is not "problems found".
    let out = run(&[
        "--store",
        s(&f.store),
        "verify",
        "--app-dir",
        s(&f.app.join("nope")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = run(&[
        "--json",
        "--store",
        s(&f.store),
        "verify",
        "--app-dir",
        s(&f.app),
        "--repair",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "repaired");
    assert_eq!(v["repaired"], true);
    assert_eq!(
        fs::read(&file).unwrap(),
        b"module.exports = 2;\n",
        "repaired content"
    );
}

#[test]
fn usage_errors_show_the_missing_flag_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = run(&["--store", s(&store), "allocate", "--lockfile", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--app-dir"),
        "the missing flag is named: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(out.stdout.is_empty());

    // With --json, the usage error is also the command's one object.
    let out = run(&["--json", "--store", s(&store), "verify"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["outcome"], "usage_error");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["command"], "verify");
    assert!(v["error"].as_str().unwrap().contains("--app-dir"), "{v}");

    // -q and -v contradict each other.
    let out = run(&["-q", "-v", "--store", s(&store), "gc"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn store_comes_from_breakwater_store_and_the_flag_wins() {
    let f = fixture();
    let out = cmd()
        .env("BREAKWATER_STORE", &f.store)
        .args(["import", s(&f.tarballs)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(f.store.join("index").is_dir(), "the store was created");

    let other = f.store.with_file_name("other-store");
    let out = cmd()
        .env("BREAKWATER_STORE", &f.store)
        .args(["--json", "--store", s(&other), "gc"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["store"], s(&other));

    // Neither: a usage error naming both ways.
    let out = run(&["gc"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--store") && err.contains("BREAKWATER_STORE"),
        "{err}"
    );
}

#[test]
fn quiet_prints_nothing_on_success_but_still_reports_errors() {
    let f = fixture();
    for args in [
        vec!["-q", "--store", s(&f.store), "import", s(&f.tarballs)],
        allocate_args(&f, &["-q"]),
        vec![
            "--quiet",
            "--store",
            s(&f.store),
            "verify",
            "--app-dir",
            s(&f.app),
        ],
        vec!["-q", "--store", s(&f.store), "gc"],
    ] {
        let out = cmd().args(&args).env("RUST_LOG", "debug").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
    // Without -q the same commands say what they did.
    let out = run(&["--store", s(&f.store), "gc"]);
    assert!(!out.stdout.is_empty());
    // Errors still reach stderr.
    let out = run(&[
        "-q",
        "--store",
        s(&f.store),
        "verify",
        "--app-dir",
        s(&f.app.join("x")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out).trim_end().lines().count(), 1);
}

#[test]
fn verbose_logs_debug_events_with_the_allocation_span() {
    let f = fixture();
    assert!(
        run(&["--store", s(&f.store), "import", s(&f.tarballs)])
            .status
            .success()
    );
    let out = cmd().args(allocate_args(&f, &["-v"])).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("allocate"), "{err}");
    assert!(err.contains("DEBUG") || err.contains("INFO"), "{err}");
    // The human summary stays on stdout.
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("materialized "));
}

#[test]
fn a_tree_needing_a_build_is_refused_in_json_and_allowed_by_ignore_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Pkg::new("a", "1.0.0");
    let native = Pkg::new("bcrypt", "5.1.1").file("binding.gyp", b"{}\n", 0o644);
    let tarballs = dir.path().join("t");
    write_tarballs(&tarballs, &[&plain, &native]);
    let lock = dir.path().join("package-lock.json");
    fs::write(
        &lock,
        lockfile(&[
            entry("node_modules/a", &plain),
            entry("node_modules/bcrypt", &native),
        ]),
    )
    .unwrap();
    let f = Fixture {
        store: dir.path().join("store"),
        app: dir.path().join("app"),
        tarballs,
        lock,
        _dir: dir,
    };
    assert!(
        run(&["--store", s(&f.store), "import", s(&f.tarballs)])
            .status
            .success()
    );

    let out = run(&allocate_args(&f, &["--json"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert_keys(&v, COMMON);
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["build_required"][0]["name"], "bcrypt");
    assert_eq!(v["build_required"][0]["version"], "5.1.1");
    assert_eq!(v["build_required"][0]["path"], "node_modules/bcrypt");
    assert_eq!(
        v["build_required"][0]["reasons"][0],
        "binding.gyp (node-gyp rebuild)"
    );
    assert_eq!(v["build_required"].as_array().unwrap().len(), 1);
    assert!(stderr(&out).contains("bcrypt@5.1.1 at node_modules/bcrypt"));
    assert!(!f.app.join("node_modules").exists());

    // Another name does not help.
    let out = run(&allocate_args(&f, &["--ignore-scripts", "a"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = run(&allocate_args(
        &f,
        &["--json", "--ignore-scripts", "bcrypt"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["ignored_scripts"][0]["path"], "node_modules/bcrypt");
    assert!(
        stderr(&out).contains("warning: 1 package(s) installed without the build"),
        "{}",
        stderr(&out)
    );
    assert!(f.app.join("node_modules/bcrypt/binding.gyp").exists());

    // Without a name: every package; `-q` silences the warning.
    let out = run(&allocate_args(&f, &["--ignore-scripts", "-q"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = run(&allocate_args(&f, &["--ignore-scripts"]));
    assert!(stderr(&out).contains("bcrypt@5.1.1"), "{}", stderr(&out));

    // Platform flags are validated like any value.
    let out = run(&allocate_args(&f, &["--libc", "uclibc"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&allocate_args(&f, &["--ignore-scripts", "--os", "Linux!"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
