//! Never silently incomplete: a tree that needs a build the allocator does not run is refused
//! (every such package listed, nothing published) unless `ignore_scripts` allows it; optional
//! packages are filtered by `os`, `cpu` and `libc`; a required package that does not fit the
//! platform is an error naming it.
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

use node_modules_alloc::allocator::{Allocator, AllocatorConfig, IgnoreScripts};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::platform::{Libc, PlatformConfig};
use node_modules_alloc::store::Store;
use node_modules_alloc::{BuildReason, Error};
use serde_json::json;
use support::{LockEntry, Pkg, entry, lockfile, write_tarballs};

fn config(ignore_scripts: IgnoreScripts, platform: PlatformConfig) -> AllocatorConfig {
    AllocatorConfig {
        link_mode: LinkMode::Copy,
        min_free_bytes: 0,
        ignore_scripts,
        platform,
        ..AllocatorConfig::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    lock: std::path::PathBuf,
}

impl Fixture {
    fn new(pkgs: &[&Pkg], entries: &[LockEntry]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_tarballs(&dir.path().join("tarballs"), pkgs);
        let store = Store::open(dir.path().join("store")).unwrap();
        store.import_path(dir.path().join("tarballs")).unwrap();
        let lock = dir.path().join("package-lock.json");
        fs::write(&lock, lockfile(entries)).unwrap();
        Self { dir, lock }
    }

    fn app(&self) -> std::path::PathBuf {
        self.dir.path().join("app")
    }

    fn allocate(&self, config: AllocatorConfig) -> node_modules_alloc::Result<Vec<String>> {
        let store = Store::open(self.dir.path().join("store")).unwrap();
        let allocator = Allocator::new(store, config).unwrap();
        let allocation = rt().block_on(allocator.allocate(&self.lock, self.app()))?;
        Ok(allocation
            .ignored_scripts
            .iter()
            .map(|n| n.path.clone())
            .collect())
    }

    /// Nothing published nor staged in the app, no template built in the store.
    fn assert_nothing_published(&self) {
        let app = self.app();
        let left: Vec<String> = fs::read_dir(&app)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "app dir holds {left:?}");
        assert_eq!(dir_len(&self.dir.path().join("store/templates")), 0);
    }
}

fn dir_len(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, Iterator::count)
}

fn with_extra(path: &str, pkg: &Pkg, extra: serde_json::Value) -> LockEntry {
    LockEntry {
        extra,
        ..entry(path, pkg)
    }
}

/// A plain package and one of each kind of build npm would run, plus packages that need none.
fn build_fixture() -> Fixture {
    let plain = Pkg::new("plain", "1.0.0");
    let native = Pkg::new("native", "2.0.0").file("binding.gyp", b"{\"targets\": []}\n", 0o644);
    let post = Pkg::new("post", "3.0.0").json(
        "scripts",
        json!({"postinstall": "node download-binary.js", "test": "jest"}),
    );
    let flagged = Pkg::new("flagged", "4.0.0");
    let gyp_off = Pkg::new("gyp-off", "5.0.0")
        .file("binding.gyp", b"{}\n", 0o644)
        .json("gypfile", json!(false));
    let pre = Pkg::new("pre", "6.0.0")
        .file("binding.gyp", b"{}\n", 0o644)
        .json("scripts", json!({"preinstall": "node check.js"}));
    let test_only = Pkg::new("test-only", "7.0.0").json("scripts", json!({"test": "x"}));
    Fixture::new(
        &[&plain, &native, &post, &flagged, &gyp_off, &pre, &test_only],
        &[
            entry("node_modules/plain", &plain),
            entry("node_modules/plain/node_modules/native", &native),
            entry("node_modules/post", &post),
            with_extra(
                "node_modules/flagged",
                &flagged,
                json!({"hasInstallScript": true}),
            ),
            entry("node_modules/gyp-off", &gyp_off),
            entry("node_modules/pre", &pre),
            entry("node_modules/test-only", &test_only),
        ],
    )
}

#[test]
fn a_tree_needing_builds_is_refused_listing_every_package_and_nothing_is_published() {
    let f = build_fixture();
    let err = f
        .allocate(config(IgnoreScripts::default(), PlatformConfig::default()))
        .unwrap_err();
    let Error::BuildRequired { packages } = &err else {
        panic!("expected BuildRequired, got {err}");
    };
    let found: Vec<(&str, &str, Option<&str>, &[BuildReason])> = packages
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.path.as_str(),
                n.version.as_deref(),
                n.reasons.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "flagged",
                "node_modules/flagged",
                Some("4.0.0"),
                &[BuildReason::LockfileFlag][..]
            ),
            (
                "native",
                "node_modules/plain/node_modules/native",
                Some("2.0.0"),
                &[BuildReason::BindingGyp][..]
            ),
            (
                "post",
                "node_modules/post",
                Some("3.0.0"),
                &[BuildReason::Script {
                    stage: "postinstall",
                    command: "node download-binary.js".to_owned()
                }][..]
            ),
            // A preinstall script replaces npm's implicit node-gyp rebuild.
            (
                "pre",
                "node_modules/pre",
                Some("6.0.0"),
                &[BuildReason::Script {
                    stage: "preinstall",
                    command: "node check.js".to_owned()
                }][..]
            ),
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("4 package(s) need a build")
            && text.contains("native@2.0.0 at node_modules/plain/node_modules/native")
            && text.contains("--ignore-scripts"),
        "{text}"
    );
    f.assert_nothing_published();
}

#[test]
fn ignoring_some_still_refuses_the_others_and_ignoring_each_publishes() {
    let f = build_fixture();
    let some = IgnoreScripts {
        all: false,
        packages: vec!["native".to_owned(), "post".to_owned()],
    };
    let err = f
        .allocate(config(some, PlatformConfig::default()))
        .unwrap_err();
    let Error::BuildRequired { packages } = &err else {
        panic!("expected BuildRequired, got {err}");
    };
    let names: Vec<&str> = packages.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["flagged", "pre"]);
    f.assert_nothing_published();

    let each = IgnoreScripts {
        all: false,
        packages: ["native", "post", "flagged", "pre"]
            .map(str::to_owned)
            .to_vec(),
    };
    let ignored = f.allocate(config(each, PlatformConfig::default())).unwrap();
    assert_eq!(
        ignored,
        [
            "node_modules/flagged",
            "node_modules/plain/node_modules/native",
            "node_modules/post",
            "node_modules/pre"
        ]
    );
    assert!(f.app().join("node_modules/post/package.json").exists());
    assert!(f.app().join("node_modules/gyp-off/binding.gyp").exists());
}

#[test]
fn ignoring_all_publishes_and_reports_every_skipped_build_even_when_reused() {
    let f = build_fixture();
    let all = IgnoreScripts {
        all: true,
        packages: Vec::new(),
    };
    let ignored = f
        .allocate(config(all.clone(), PlatformConfig::default()))
        .unwrap();
    assert_eq!(ignored.len(), 4);
    // Reusing the published tree checks again: refused without the opt-out...
    let err = f
        .allocate(config(IgnoreScripts::default(), PlatformConfig::default()))
        .unwrap_err();
    assert!(matches!(err, Error::BuildRequired { .. }), "{err}");
    // ...and reported with it.
    assert_eq!(
        f.allocate(config(all, PlatformConfig::default()))
            .unwrap()
            .len(),
        4
    );
}

fn platform(libc: Libc) -> PlatformConfig {
    PlatformConfig {
        os: Some("linux".to_owned()),
        cpu: Some("x64".to_owned()),
        libc: Some(libc),
    }
}

#[test]
fn optional_packages_follow_os_cpu_and_libc() {
    let sharp = Pkg::new("sharp", "0.33.5");
    let gnu = Pkg::new("@img/sharp-linux-x64", "0.33.5");
    let musl = Pkg::new("@img/sharp-linuxmusl-x64", "0.33.5");
    let arm = Pkg::new("@img/sharp-linux-arm64", "0.33.5");
    let mac = Pkg::new("@img/sharp-darwin-x64", "0.33.5");
    let optional = |os: &str, cpu: &str, libc: Option<&str>| {
        let mut extra = json!({"optional": true, "os": [os], "cpu": [cpu]});
        if let Some(libc) = libc {
            extra["libc"] = json!([libc]);
        }
        extra
    };
    let f = Fixture::new(
        &[&sharp, &gnu, &musl, &arm, &mac],
        &[
            entry("node_modules/sharp", &sharp),
            with_extra(
                "node_modules/@img/sharp-linux-x64",
                &gnu,
                optional("linux", "x64", Some("glibc")),
            ),
            with_extra(
                "node_modules/@img/sharp-linuxmusl-x64",
                &musl,
                optional("linux", "x64", Some("musl")),
            ),
            with_extra(
                "node_modules/@img/sharp-linux-arm64",
                &arm,
                optional("linux", "arm64", Some("glibc")),
            ),
            with_extra(
                "node_modules/@img/sharp-darwin-x64",
                &mac,
                optional("darwin", "x64", None),
            ),
        ],
    );
    let installed = |f: &Fixture| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(f.app().join("node_modules/@img"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    f.allocate(config(IgnoreScripts::default(), platform(Libc::Glibc)))
        .unwrap();
    assert_eq!(installed(&f), ["sharp-linux-x64"]);
    assert!(f.app().join("node_modules/sharp/index.js").exists());
    f.allocate(config(IgnoreScripts::default(), platform(Libc::Musl)))
        .unwrap();
    assert_eq!(installed(&f), ["sharp-linuxmusl-x64"]);
    let mac_arm = PlatformConfig {
        os: Some("darwin".to_owned()),
        cpu: Some("arm64".to_owned()),
        libc: None,
    };
    f.allocate(config(IgnoreScripts::default(), mac_arm))
        .unwrap();
    assert!(installed(&f).is_empty(), "{:?}", installed(&f));
}

#[test]
fn a_required_package_that_does_not_fit_is_an_error_naming_it() {
    let app_pkg = Pkg::new("ok", "1.0.0");
    let musl_only = Pkg::new("musl-binary", "1.2.3");
    let win_only = Pkg::new("win-binary", "2.0.0");
    let f = Fixture::new(
        &[&app_pkg, &musl_only, &win_only],
        &[
            entry("node_modules/ok", &app_pkg),
            with_extra(
                "node_modules/musl-binary",
                &musl_only,
                json!({"libc": ["musl"]}),
            ),
            with_extra(
                "node_modules/ok/node_modules/win-binary",
                &win_only,
                json!({"os": ["win32"]}),
            ),
        ],
    );
    let err = f
        .allocate(config(IgnoreScripts::default(), platform(Libc::Glibc)))
        .unwrap_err();
    let Error::PlatformMismatch {
        platform: named,
        packages,
    } = &err
    else {
        panic!("expected PlatformMismatch, got {err}");
    };
    assert_eq!(named, "linux x64 glibc");
    let paths: Vec<&str> = packages.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "node_modules/musl-binary",
            "node_modules/ok/node_modules/win-binary"
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "musl-binary@1.2.3 at node_modules/musl-binary: libc [\"musl\"] excludes glibc"
        ) && text.contains("win-binary@2.0.0"),
        "{text}"
    );
    f.assert_nothing_published();
    // On musl, the Windows package is still refused, alone.
    let err = f
        .allocate(config(IgnoreScripts::default(), platform(Libc::Musl)))
        .unwrap_err();
    assert!(
        matches!(&err, Error::PlatformMismatch { packages, .. } if packages.len() == 1),
        "{err}"
    );
}

#[test]
fn a_v1_lockfile_allocates_and_its_scripts_are_found_in_the_store() {
    // v1 carries no hasInstallScript: the store's package.json is what finds the script.
    let a = Pkg::new("a", "1.0.0")
        .file("cli.js", b"#!/usr/bin/env node\n", 0o644)
        .bin("a-cli", "cli.js");
    let b = Pkg::new("b", "2.0.0");
    let post = Pkg::new("post", "3.0.0").json("scripts", json!({"postinstall": "node x.js"}));
    let dir = tempfile::tempdir().unwrap();
    write_tarballs(&dir.path().join("tarballs"), &[&a, &b, &post]);
    Store::open(dir.path().join("store"))
        .unwrap()
        .import_path(dir.path().join("tarballs"))
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    let v1 = |with_post: bool| {
        let mut deps = json!({
            "a": {"version": "1.0.0", "integrity": a.integrity(), "requires": {"b": "^2.0.0"},
                  "dependencies": {"b": {"version": "2.0.0", "integrity": b.integrity()}}},
        });
        if with_post {
            deps["post"] = json!({"version": "3.0.0", "integrity": post.integrity()});
        }
        json!({"name": "app", "version": "1.0.0", "lockfileVersion": 1, "requires": true, "dependencies": deps})
            .to_string()
    };
    let app = dir.path().join("app");
    let allocator = || {
        let store = Store::open(dir.path().join("store")).unwrap();
        Allocator::new(
            store,
            config(IgnoreScripts::default(), PlatformConfig::default()),
        )
        .unwrap()
    };
    fs::write(&lock, v1(false)).unwrap();
    let allocation = rt().block_on(allocator().allocate(&lock, &app)).unwrap();
    assert_eq!(allocation.packages, 2);
    assert!(app.join("node_modules/a/node_modules/b/index.js").exists());
    // The bin comes from the store's package.json (v1 has no `bin`).
    assert!(app.join("node_modules/.bin/a-cli").exists());

    fs::write(&lock, v1(true)).unwrap();
    let err = rt()
        .block_on(allocator().allocate(&lock, &app))
        .unwrap_err();
    assert!(
        matches!(&err, Error::BuildRequired { packages } if packages.len() == 1 && packages[0].path == "node_modules/post"),
        "{err}"
    );
    // The tree published before is untouched.
    assert!(!app.join("node_modules/post").exists());
    assert!(app.join("node_modules/a/index.js").exists());
}

#[test]
fn restrictions_in_the_stores_package_json_filter_v1_optional_packages() {
    // npm 6's chokidar -> fsevents: optional, darwin only, with an install script. A v1
    // lockfile says none of that: the package's own package.json does.
    let chokidar = Pkg::new("chokidar", "2.1.8");
    let fsevents = Pkg::new("fsevents", "1.2.13")
        .json("os", json!(["darwin"]))
        .json("scripts", json!({"install": "node install.js"}));
    let mac_only = Pkg::new("mac-only", "1.0.0").json("os", json!("darwin"));
    let dir = tempfile::tempdir().unwrap();
    write_tarballs(
        &dir.path().join("tarballs"),
        &[&chokidar, &fsevents, &mac_only],
    );
    Store::open(dir.path().join("store"))
        .unwrap()
        .import_path(dir.path().join("tarballs"))
        .unwrap();
    let lock = dir.path().join("package-lock.json");
    let v1 = |required_mac_only: bool| {
        let mut deps = json!({
            "chokidar": {"version": "2.1.8", "integrity": chokidar.integrity()},
            "fsevents": {"version": "1.2.13", "integrity": fsevents.integrity(), "optional": true},
        });
        if required_mac_only {
            deps["mac-only"] = json!({"version": "1.0.0", "integrity": mac_only.integrity()});
        }
        json!({"lockfileVersion": 1, "dependencies": deps}).to_string()
    };
    let app = dir.path().join("app");
    let allocate = |platform: PlatformConfig| {
        let store = Store::open(dir.path().join("store")).unwrap();
        let allocator = Allocator::new(store, config(IgnoreScripts::default(), platform)).unwrap();
        rt().block_on(allocator.allocate(&lock, &app))
    };
    fs::write(&lock, v1(false)).unwrap();
    let allocation = allocate(platform(Libc::Glibc)).unwrap();
    assert_eq!(allocation.packages, 1);
    assert!(!app.join("node_modules/fsevents").exists());
    // On macOS it is installed, so its install script refuses the tree.
    let darwin = PlatformConfig {
        os: Some("darwin".to_owned()),
        cpu: Some("arm64".to_owned()),
        libc: None,
    };
    let err = allocate(darwin).unwrap_err();
    assert!(
        matches!(&err, Error::BuildRequired { packages } if packages[0].name == "fsevents"),
        "{err}"
    );
    // A required package whose package.json excludes the platform is an error naming it.
    fs::write(&lock, v1(true)).unwrap();
    let err = allocate(platform(Libc::Glibc)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::PlatformMismatch { packages, .. } if packages.len() == 1)
            && text.contains("mac-only@1.0.0 at node_modules/mac-only: os")
            && text.contains("in its package.json"),
        "{text}"
    );
}
