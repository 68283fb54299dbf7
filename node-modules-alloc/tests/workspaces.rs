//! Workspaces: npm's `"link": true` entries and pnpm's `link:` dependencies become symlinks
//! from the app's `node_modules` to the workspace folder, which must exist inside the app;
//! the workspace's dependencies are hoisted to the app's `node_modules`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::fs;
use std::path::Path;

use node_modules_alloc::allocator::{Allocator, AllocatorConfig, Outcome};
use node_modules_alloc::store::Store;
use support::{Pkg, write_tarballs};

fn npm_lock(a: &Pkg) -> String {
    serde_json::json!({
        "name": "app", "lockfileVersion": 3,
        "packages": {
            "": { "name": "app", "workspaces": ["packages/*"] },
            "node_modules/@app/web": { "resolved": "packages/web", "link": true },
            "packages/web": { "name": "@app/web", "version": "1.0.0", "dependencies": { "a": "^1.0.0" } },
            "node_modules/a": { "version": "1.0.0", "integrity": a.integrity() }
        }
    })
    .to_string()
}

fn setup() -> (tempfile::TempDir, Allocator, Pkg) {
    let dir = tempfile::tempdir().unwrap();
    let a = Pkg::new("a", "1.0.0");
    write_tarballs(&dir.path().join("tarballs"), &[&a]);
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import_path(dir.path().join("tarballs")).unwrap();
    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap();
    (dir, allocator, a)
}

fn app_with_workspace(root: &Path, name: &str) -> std::path::PathBuf {
    let app = root.join(name);
    fs::create_dir_all(app.join("packages/web")).unwrap();
    fs::write(
        app.join("packages/web/index.js"),
        "module.exports = 'web';\n",
    )
    .unwrap();
    app
}

#[tokio::test]
async fn npm_workspace_links_point_into_the_app_and_survive_template_reuse() {
    let (dir, allocator, a) = setup();
    for (i, name) in ["app1", "app2"].iter().enumerate() {
        let app = app_with_workspace(dir.path(), name);
        let lock = app.join("package-lock.json");
        fs::write(&lock, npm_lock(&a)).unwrap();
        let allocation = allocator.allocate(&lock, &app).await.unwrap();
        if i == 1 {
            assert_eq!(
                allocation.outcome,
                Outcome::Cloned,
                "the template is reused"
            );
        }
        let nm = app.join("node_modules");
        assert_eq!(
            fs::read_link(nm.join("@app/web"))
                .unwrap()
                .to_str()
                .unwrap(),
            "../../packages/web"
        );
        assert_eq!(
            fs::read_to_string(nm.join("@app/web/index.js")).unwrap(),
            "module.exports = 'web';\n",
            "the link resolves to this app's own folder"
        );
        assert!(nm.join("a/index.js").exists());
        let report = allocator.verify(&app, false, None).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[tokio::test]
async fn a_missing_or_escaping_workspace_folder_is_refused_before_publishing() {
    let (dir, allocator, a) = setup();
    // Missing folder.
    let app = dir.path().join("missing");
    fs::create_dir_all(&app).unwrap();
    let lock = app.join("package-lock.json");
    fs::write(&lock, npm_lock(&a)).unwrap();
    let err = allocator
        .allocate(&lock, &app)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("packages/web") && err.contains("node_modules/@app/web"),
        "{err}"
    );
    assert!(!app.join("node_modules").exists(), "nothing published");

    // A folder that is a symlink out of the app.
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let app = dir.path().join("escaping");
    fs::create_dir_all(app.join("packages")).unwrap();
    std::os::unix::fs::symlink(&outside, app.join("packages/web")).unwrap();
    let lock = app.join("package-lock.json");
    fs::write(&lock, npm_lock(&a)).unwrap();
    let err = allocator
        .allocate(&lock, &app)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the app"), "{err}");
    assert!(!app.join("node_modules").exists(), "nothing published");
}

fn pnpm_lock(a: &Pkg, b_dep: &str) -> String {
    format!(
        r"lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      '@app/web':
        specifier: workspace:*
        version: link:packages/web

  packages/web:
    dependencies:
      a:
        specifier: ^1.0.0
        version: {b_dep}
      '@app/web':
        specifier: workspace:*
        version: link:.

packages:

  a@1.0.0:
    resolution: {{integrity: {integrity}}}

snapshots:

  a@1.0.0: {{}}
",
        integrity = a.integrity()
    )
}

#[tokio::test]
async fn pnpm_workspaces_link_their_folder_and_hoist_their_dependencies() {
    let (dir, allocator, a) = setup();
    let app = app_with_workspace(dir.path(), "pnpm");
    let lock = app.join("pnpm-lock.yaml");
    fs::write(&lock, pnpm_lock(&a, "1.0.0")).unwrap();
    allocator.allocate(&lock, &app).await.unwrap();
    let nm = app.join("node_modules");
    assert_eq!(
        fs::read_link(nm.join("@app/web"))
            .unwrap()
            .to_str()
            .unwrap(),
        "../../packages/web"
    );
    assert!(
        nm.join("a/index.js").exists(),
        "the workspace's dependency is hoisted"
    );

    // A workspace dependency missing from `packages` names the importer.
    let bad = pnpm_lock(&a, "2.0.0");
    let err = node_modules_alloc::lockfile::Lockfile::parse("pnpm-lock.yaml", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a@2.0.0"), "{err}");
}
