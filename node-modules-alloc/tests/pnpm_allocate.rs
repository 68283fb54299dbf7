//! Allocating from a `pnpm-lock.yaml` v9: the hoisted tree is materialized, verified, its bins
//! come from the packages' own `package.json` (pnpm records only `hasBin`), and `verify
//! --repair` finds the pnpm lockfile when the app has no `package-lock.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;

use node_modules_alloc::allocator::{Allocator, AllocatorConfig, Outcome};
use node_modules_alloc::store::Store;
use support::{Pkg, write_tarballs};

fn pnpm_lock(pkgs: &[&Pkg]) -> String {
    let integrity = |name: &str, version: &str| {
        pkgs.iter()
            .find(|p| p.name == name && p.version == version)
            .unwrap()
            .integrity()
    };
    format!(
        r"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      a:
        specifier: ^1.0.0
        version: 1.0.0
      b:
        specifier: ^2.0.0
        version: 2.0.0
    devDependencies:
      '@scope/tool':
        specifier: 3.1.4
        version: 3.1.4(b@2.0.0)

packages:

  '@scope/tool@3.1.4':
    resolution: {{integrity: {tool}}}
    hasBin: true
    peerDependencies:
      b: '*'

  a@1.0.0:
    resolution: {{integrity: {a}}}

  b@1.0.0:
    resolution: {{integrity: {b1}}}

  b@2.0.0:
    resolution: {{integrity: {b2}}}

snapshots:

  '@scope/tool@3.1.4(b@2.0.0)':
    dependencies:
      b: 2.0.0

  a@1.0.0:
    dependencies:
      b: 1.0.0

  b@1.0.0: {{}}

  b@2.0.0: {{}}
",
        tool = integrity("@scope/tool", "3.1.4"),
        a = integrity("a", "1.0.0"),
        b1 = integrity("b", "1.0.0"),
        b2 = integrity("b", "2.0.0"),
    )
}

#[tokio::test]
async fn allocates_and_repairs_from_a_pnpm_lockfile() {
    let dir = tempfile::tempdir().unwrap();
    let pkgs = [
        Pkg::new("a", "1.0.0"),
        Pkg::new("b", "1.0.0"),
        Pkg::new("b", "2.0.0"),
        Pkg::new("@scope/tool", "3.1.4")
            .file("cli.js", b"#!/usr/bin/env node\n", 0o644)
            .bin("tool", "./cli.js"),
    ];
    let refs: Vec<&Pkg> = pkgs.iter().collect();
    write_tarballs(&dir.path().join("tarballs"), &refs);
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import_path(dir.path().join("tarballs")).unwrap();
    let app = dir.path().join("app");
    fs::create_dir_all(&app).unwrap();
    let lock = app.join("pnpm-lock.yaml");
    fs::write(&lock, pnpm_lock(&refs)).unwrap();

    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap();
    let allocation = allocator.allocate(&lock, &app).await.unwrap();
    assert_eq!(allocation.outcome, Outcome::Materialized);
    assert_eq!(allocation.packages, 4);
    let nm = app.join("node_modules");
    let read = |p: &str| fs::read_to_string(nm.join(p)).unwrap();
    assert_eq!(read("b/index.js"), "module.exports = 'b@2.0.0';\n");
    assert_eq!(
        read("a/node_modules/b/index.js"),
        "module.exports = 'b@1.0.0';\n"
    );
    assert_eq!(
        fs::read_link(nm.join(".bin/tool"))
            .unwrap()
            .to_str()
            .unwrap(),
        "../@scope/tool/cli.js"
    );

    // Damage the tree: verify --repair rebuilds it from the app's pnpm-lock.yaml.
    fs::remove_file(nm.join(".breakwater-alloc.json")).unwrap();
    fs::remove_dir_all(nm.join("a")).unwrap();
    let report = allocator.verify(&app, true, None).await.unwrap();
    assert!(!report.problems.is_empty());
    assert_eq!(
        read("a/node_modules/b/index.js"),
        "module.exports = 'b@1.0.0';\n"
    );
}
