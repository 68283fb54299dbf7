//! The tree as a whole is safe: links are judged over the merged tree, not per package, and
//! nothing is ever written outside the app's `node_modules` (or the template directory), in
//! any link mode, whatever several packages ship together.
//!
//! Every package here passes the importer's per-package checks (each link stays inside its own
//! package); only together do they redirect writes or links. The sandbox is
//! `ROOT/outer/inner/{store,app}` with canary files in `ROOT`, `outer` and `inner`: an escape of
//! a few directories lands in the sandbox, where it is seen.
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

use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig, MARKER};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::manifest::{Manifest, ManifestEntry};
use node_modules_alloc::store::Store;
use serde_json::json;
use support::{all_paths, package_tgz, raw_lockfile};

const MODES: [LinkMode; 4] = [
    LinkMode::Auto,
    LinkMode::Hardlink,
    LinkMode::Reflink,
    LinkMode::Copy,
];
const CANARY: &[u8] = b"canary: must stay untouched\n";
const EVIL: &[u8] = b"written through a link\n";

struct Sandbox {
    root: tempfile::TempDir,
    store: Store,
    app: PathBuf,
    lock: PathBuf,
    outside_before: Vec<PathBuf>,
}

impl Sandbox {
    /// Imports `packages` (label, tarball) and writes the lockfile.
    fn new(packages: &[(&str, &[u8])], lock: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("outer/inner");
        fs::create_dir_all(&inner).unwrap();
        for dir in [root.path(), &root.path().join("outer"), &inner] {
            fs::write(dir.join("canary.txt"), CANARY).unwrap();
        }
        let store = Store::open(inner.join("store")).unwrap();
        for (label, tarball) in packages {
            store
                .import_tarball_bytes(label, tarball, None, None)
                .unwrap();
        }
        let lock_path = inner.join("package-lock.json");
        fs::write(&lock_path, lock).unwrap();
        let app = inner.join("app");
        fs::create_dir_all(&app).unwrap();
        let mut sandbox = Self {
            root,
            store,
            app,
            lock: lock_path,
            outside_before: Vec::new(),
        };
        sandbox.outside_before = sandbox.outside();
        sandbox
    }

    fn allocator(&self, mode: LinkMode) -> Allocator {
        Allocator::new(
            self.store.clone(),
            AllocatorConfig {
                link_mode: mode,
                min_free_bytes: 0,
                ..AllocatorConfig::default()
            },
        )
        .unwrap()
    }

    /// Every path of the sandbox outside the store and the app.
    fn outside(&self) -> Vec<PathBuf> {
        all_paths(self.root.path())
            .into_iter()
            .filter(|p| !p.starts_with(self.store.path()) && !p.starts_with(&self.app))
            .collect()
    }

    /// Nothing appeared or changed outside the store and the app.
    fn assert_untouched(&self, mode: LinkMode) {
        assert_eq!(
            self.outside(),
            self.outside_before,
            "{mode}: something was written outside the store and the app"
        );
        for dir in [
            self.root.path().to_path_buf(),
            self.root.path().join("outer"),
            self.root.path().join("outer/inner"),
        ] {
            assert_eq!(
                fs::read(dir.join("canary.txt")).unwrap(),
                CANARY,
                "{mode}: canary in {} was overwritten",
                dir.display()
            );
        }
        assert_no_stray_files(self.store.path(), mode);
    }
}

/// The store holds only its own layout: nothing was written through a link into it.
fn assert_no_stray_files(store: &Path, mode: LinkMode) {
    for entry in fs::read_dir(store).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            [
                "files",
                "index",
                "manifests",
                "templates",
                "locks",
                "slots",
                "queue",
                "tmp",
                "staging",
                "quarantine",
                "store.lock"
            ]
            .contains(&name.as_str()),
            "{mode}: stray {name:?} in the store"
        );
    }
}

/// Allocating with every link mode is refused with an error naming every one of `names`, and
/// nothing is written outside the store and the app (nor a tree published).
async fn refused_in_every_mode(packages: &[(&str, &[u8])], lock: &str, names: &[&str]) {
    for mode in MODES {
        let sandbox = Sandbox::new(packages, lock);
        let result = sandbox
            .allocator(mode)
            .allocate(&sandbox.lock, &sandbox.app)
            .await;
        sandbox.assert_untouched(mode);
        let err = match result {
            Ok(allocation) => panic!(
                "{mode}: allocation succeeded ({:?}); expected a refusal naming {names:?}",
                allocation.stats
            ),
            Err(e) => e,
        };
        assert!(
            matches!(err, Error::Lockfile { .. }),
            "{mode}: expected a refusal of the lockfile's tree, got {err}"
        );
        let message = err.to_string();
        for name in names {
            assert!(
                message.contains(name),
                "{mode}: error does not name {name}: {message}"
            );
        }
        assert!(!message.contains('\n'));
        assert!(
            !sandbox.app.join("node_modules").exists(),
            "{mode}: a tree was published"
        );
    }
}

fn z_package() -> Vec<u8> {
    // `aaa-evil.txt` sorts before `canary.txt`: in hardlink mode the old layout wrote it before
    // failing on the existing canary; in copy mode it overwrote the canary.
    package_tgz(
        "z",
        &[],
        &[
            ("aaa-evil.txt", EVIL),
            ("canary.txt", EVIL),
            ("index.js", b"module.exports = 'z';\n"),
        ],
        &[],
    )
}

#[tokio::test]
async fn a_parent_symlink_at_a_nested_install_path_cannot_redirect_the_nested_package() {
    // `a` ships `node_modules/z -> ../lib`: harmless inside `a`, but `z` is installed exactly
    // there, so z's files would be written into a's `lib/`.
    let a = package_tgz(
        "a",
        &[],
        &[("lib/util.js", b"exports.u = 1;\n")],
        &[("node_modules/z", "../lib")],
    );
    let z = z_package();
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        ("node_modules/a/node_modules/z", &z, json!({})),
    ]);
    refused_in_every_mode(
        &[("a", &a), ("z", &z)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/z"],
    )
    .await;
}

#[tokio::test]
async fn a_parent_symlink_at_a_nested_install_path_cannot_climb_out_through_a_sibling_link() {
    // c's `up` points to c's own root; a's link goes through it and then up seven levels, which
    // a's importer sees as "back to a's root". Laid out, `z` is written above the store.
    let c = package_tgz(
        "c",
        &[],
        &[("index.js", b"module.exports = 'c';\n")],
        &[("d1/d2/d3/d4/up", "../../../..")],
    );
    let a = package_tgz(
        "a",
        &[],
        &[],
        &[(
            "node_modules/z",
            "../node_modules/c/d1/d2/d3/d4/up/../../../../../../..",
        )],
    );
    let z = z_package();
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        ("node_modules/a/node_modules/c", &c, json!({})),
        ("node_modules/a/node_modules/z", &z, json!({})),
    ]);
    refused_in_every_mode(
        &[("a", &a), ("c", &c), ("z", &z)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/z"],
    )
    .await;
}

#[tokio::test]
async fn a_link_chain_across_two_packages_cannot_point_or_write_outside() {
    // a: `lib/escape` goes through b's `up` link and climbs out; `node_modules/z -> ../lib/escape`
    // sends z's files there. b's and a's links each stay inside their own package.
    let b = package_tgz(
        "b",
        &[],
        &[("index.js", b"module.exports = 'b';\n")],
        &[("d1/d2/d3/up", "../../..")],
    );
    let a = package_tgz(
        "a",
        &[],
        &[],
        &[
            (
                "lib/escape",
                "../node_modules/b/d1/d2/d3/up/../../../../../..",
            ),
            ("node_modules/z", "../lib/escape"),
        ],
    );
    let z = z_package();
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        ("node_modules/a/node_modules/b", &b, json!({})),
        ("node_modules/a/node_modules/z", &z, json!({})),
    ]);
    // z's files would go through a's link: the error names both.
    refused_in_every_mode(
        &[("a", &a), ("b", &b), ("z", &z)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/z"],
    )
    .await;

    // The read-side half alone: a link that resolves outside the app (through b's link) is
    // refused too, naming the package whose link it goes through.
    let a_only = package_tgz(
        "a",
        &[],
        &[],
        &[(
            "lib/escape",
            "../node_modules/b/d1/d2/d3/up/../../../../../..",
        )],
    );
    let lock = raw_lockfile(&[
        ("node_modules/a", &a_only, json!({})),
        ("node_modules/a/node_modules/b", &b, json!({})),
    ]);
    refused_in_every_mode(
        &[("a", &a_only), ("b", &b)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/b"],
    )
    .await;
}

#[tokio::test]
async fn a_package_file_cannot_shadow_a_nested_packages_bin() {
    let tool = package_tgz(
        "tool",
        &[("tool", "cli.js")],
        &[("cli.js", b"#!/usr/bin/env node\nconsole.log('tool');\n")],
        &[],
    );
    let a = package_tgz(
        "a",
        &[],
        &[("node_modules/.bin/tool", b"#!/bin/sh\necho pwned\n")],
        &[],
    );
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        (
            "node_modules/a/node_modules/tool",
            &tool,
            json!({ "bin": { "tool": "cli.js" } }),
        ),
    ]);
    refused_in_every_mode(
        &[("a", &a), ("tool", &tool)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/tool"],
    )
    .await;
}

#[tokio::test]
async fn a_bin_link_must_resolve_into_the_package_that_declared_it() {
    // tool's `cli.js -> lib/cli.js` is dangling inside tool; a ships `node_modules/tool/lib`
    // pointing at its own `evil/`, so `.bin/tool` would run a's code.
    let tool = package_tgz(
        "tool",
        &[("tool", "cli.js")],
        &[],
        &[("cli.js", "lib/cli.js")],
    );
    let a = package_tgz(
        "a",
        &[],
        &[("evil/cli.js", b"#!/bin/sh\necho pwned\n")],
        &[("node_modules/tool/lib", "../../evil")],
    );
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        (
            "node_modules/a/node_modules/tool",
            &tool,
            json!({ "bin": { "tool": "cli.js" } }),
        ),
    ]);
    refused_in_every_mode(
        &[("a", &a), ("tool", &tool)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/tool"],
    )
    .await;
}

#[tokio::test]
async fn a_symlinked_bin_directory_cannot_receive_another_packages_bin_links() {
    let tool = package_tgz(
        "tool",
        &[("tool", "cli.js")],
        &[("cli.js", b"#!/usr/bin/env node\n")],
        &[],
    );
    let a = package_tgz(
        "a",
        &[],
        &[("evil-bin/keep", b"")],
        &[("node_modules/.bin", "../evil-bin")],
    );
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        (
            "node_modules/a/node_modules/tool",
            &tool,
            json!({ "bin": { "tool": "cli.js" } }),
        ),
    ]);
    refused_in_every_mode(
        &[("a", &a), ("tool", &tool)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/tool"],
    )
    .await;
}

#[tokio::test]
async fn a_file_where_another_package_must_be_a_directory_is_a_conflict() {
    let a = package_tgz("a", &[], &[("node_modules/z", b"not a directory")], &[]);
    let z = z_package();
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        ("node_modules/a/node_modules/z", &z, json!({})),
    ]);
    refused_in_every_mode(
        &[("a", &a), ("z", &z)],
        &lock,
        &["node_modules/a", "node_modules/a/node_modules/z"],
    )
    .await;
}

#[tokio::test]
async fn bundled_dependencies_and_links_inside_a_package_are_accepted() {
    // a bundles x (regular files under its own node_modules/x, `inBundle` in the lockfile),
    // links into its own bundle and to its own files; tool's bin lands in a/node_modules/.bin.
    let a = package_tgz(
        "a",
        &[],
        &[
            ("index.js", b"module.exports = require('x');\n"),
            ("node_modules/x/index.js", b"module.exports = 'x';\n"),
            ("node_modules/x/package.json", br#"{"name":"x"}"#),
        ],
        &[
            ("lib/alias.js", "../index.js"),
            ("lib/x", "../node_modules/x"),
        ],
    );
    let tool = package_tgz(
        "tool",
        &[("tool", "bin/cli.js")],
        &[("lib/cli.js", b"#!/usr/bin/env node\n")],
        &[("bin/cli.js", "../lib/cli.js")],
    );
    let lock = raw_lockfile(&[
        ("node_modules/a", &a, json!({})),
        (
            "node_modules/a/node_modules/x",
            b"",
            json!({ "inBundle": true }),
        ),
        (
            "node_modules/a/node_modules/tool",
            &tool,
            json!({ "bin": { "tool": "bin/cli.js" } }),
        ),
    ]);
    for mode in MODES {
        let sandbox = Sandbox::new(&[("a", &a), ("tool", &tool)], &lock);
        let result = sandbox
            .allocator(mode)
            .allocate(&sandbox.lock, &sandbox.app)
            .await;
        sandbox.assert_untouched(mode);
        match result {
            Ok(_) => {}
            Err(Error::Io { source, .. })
                if mode == LinkMode::Reflink
                    && !support::reflink_supported(sandbox.store.path()) =>
            {
                // No reflinks on this filesystem: a clean I/O error, nothing written.
                drop(source);
                continue;
            }
            Err(e) => panic!("{mode}: {e}"),
        }
        let nm = sandbox.app.join("node_modules");
        assert_eq!(
            fs::read(nm.join("a/node_modules/x/index.js")).unwrap(),
            b"module.exports = 'x';\n"
        );
        assert_eq!(
            fs::read(nm.join("a/lib/x/index.js")).unwrap(),
            b"module.exports = 'x';\n"
        );
        assert_eq!(
            fs::read_link(nm.join("a/node_modules/.bin/tool")).unwrap(),
            Path::new("../tool/bin/cli.js")
        );
        assert_eq!(
            fs::read(nm.join("a/node_modules/.bin/tool")).unwrap(),
            b"#!/usr/bin/env node\n"
        );
        assert!(
            fs::symlink_metadata(nm.join("a/node_modules/x"))
                .unwrap()
                .is_dir()
        );
    }
}

/// Writes a manifest straight into the store (as a damaged or hostile store could hold it) and
/// points an app's marker at it, so that `verify --repair` lays it out without a lockfile.
fn forged_manifest_app(sandbox: &Sandbox, entries: Vec<ManifestEntry>) {
    let manifest = Manifest { entries };
    let digest = manifest.save(&sandbox.store).unwrap();
    let nm = sandbox.app.join("node_modules");
    fs::create_dir_all(&nm).unwrap();
    fs::write(
        nm.join(MARKER),
        json!({ "manifest": digest, "lockfile": null }).to_string(),
    )
    .unwrap();
}

/// Manifests a hostile store could hold, all linking the content `digest`.
fn forgeries(digest: &str) -> Vec<Vec<ManifestEntry>> {
    let evil = |path: &str| ManifestEntry::File {
        path: path.into(),
        digest: digest.into(),
        size: EVIL.len() as u64,
        exec: false,
    };
    vec![
        // A symlink, then a file below it.
        vec![
            ManifestEntry::Symlink {
                path: "a/node_modules/z".into(),
                target: "../../../../../..".into(),
            },
            evil("a/node_modules/z/aaa-evil.txt"),
        ],
        // `..` components in an entry path.
        vec![evil("a/../../../aaa-evil.txt")],
        // A symlink that leaves the tree.
        vec![
            evil("a/index.js"),
            ManifestEntry::Symlink {
                path: "a/up".into(),
                target: "../../canary.txt".into(),
            },
        ],
    ]
}

#[tokio::test]
async fn a_forged_manifest_is_never_laid_out_through_a_link_or_above_the_tree() {
    let digest = node_modules_alloc::integrity::sha512_hex(EVIL);
    for (i, entries) in forgeries(&digest).into_iter().enumerate() {
        for mode in MODES {
            let sandbox = Sandbox::new(&[], r#"{"lockfileVersion": 3, "packages": {}}"#);
            assert_eq!(sandbox.store.put_bytes(EVIL, false).unwrap(), digest);
            forged_manifest_app(&sandbox, entries.clone());
            let result = sandbox
                .allocator(mode)
                .verify(&sandbox.app, true, None)
                .await;
            sandbox.assert_untouched(mode);
            assert!(
                result.is_err(),
                "forgery {i}, {mode}: the forged tree was laid out: {result:?}"
            );
        }
    }
}
