//! Fetching from a real registry: verdaccio 6.8 started by `scripts/verdaccio.sh` (see
//! `scripts/test.sh`), seeded with tarballs built here. The CLI fills a store from a
//! lockfile (`fetch`), allocates from it offline, allocates with on-demand fetching, and
//! reads a scope's registry and token from `.npmrc` (an `@private/` package needs the token).
//!
//! Without `BREAKWATER_NPM_REGISTRY` the tests print a notice and pass, except with `CI`
//! set, where they fail: the registry tests must run in CI.
#![cfg(feature = "cli")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha1::Digest as _;
use support::{Pkg, entry, lockfile};

struct Registry {
    url: String,
    storage: PathBuf,
    token: String,
}

/// The registry under test. Unset: a failure in CI, a notice (and `None`) elsewhere.
fn registry() -> Option<Registry> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let (Some(url), Some(storage), Some(token)) = (
        var("BREAKWATER_NPM_REGISTRY"),
        var("BREAKWATER_NPM_REGISTRY_STORAGE"),
        var("BREAKWATER_NPM_REGISTRY_TOKEN"),
    ) {
        return Some(Registry {
            url,
            storage: PathBuf::from(storage),
            token,
        });
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "BREAKWATER_NPM_REGISTRY is not set but CI is: the registry tests must run in CI. \
         Start one with `scripts/verdaccio.sh ensure && eval \"$(scripts/verdaccio.sh start)\"`."
    );
    eprintln!(
        "notice: BREAKWATER_NPM_REGISTRY is not set; skipping this registry test \
         (run `scripts/verdaccio.sh ensure && eval \"$(scripts/verdaccio.sh start)\"`)"
    );
    None
}

/// A name no other test or run uses (verdaccio's storage outlives one test).
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

impl Registry {
    /// Publishes `pkg` by writing verdaccio's storage layout (read on every request).
    fn publish(&self, pkg: &Pkg) {
        let tgz = pkg.tgz();
        let base = pkg.name.rsplit('/').next().unwrap();
        let file = format!("{base}-{}.tgz", pkg.version);
        let dir = self.storage.join(&pkg.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&file), &tgz).unwrap();
        let shasum = hex::encode(sha1::Sha1::digest(&tgz));
        let manifest = serde_json::json!({
            "name": pkg.name,
            "versions": { &pkg.version: {
                "name": pkg.name, "version": pkg.version,
                "dist": { "tarball": self.tarball(pkg), "shasum": shasum, "integrity": pkg.integrity() },
            }},
            "dist-tags": { "latest": pkg.version },
            "_attachments": { &file: { "shasum": shasum, "version": pkg.version } },
            "_distfiles": {}, "_uplinks": {}, "_rev": "1-0000000000000001", "time": {},
        });
        std::fs::write(
            dir.join("package.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    }

    fn tarball(&self, pkg: &Pkg) -> String {
        let base = pkg.name.rsplit('/').next().unwrap();
        format!("{}{}/-/{base}-{}.tgz", self.url, pkg.name, pkg.version)
    }

    /// `//127.0.0.1:PORT/`
    fn nerf_dart(&self) -> String {
        format!("//{}", self.url.split_once("://").unwrap().1)
    }
}

/// A lockfile as npm writes it against the registry (`resolved` = its tarball URL).
fn write_lock(dir: &Path, registry: &Registry, pkgs: &[&Pkg]) -> PathBuf {
    let entries: Vec<_> = pkgs
        .iter()
        .map(|p| {
            let mut e = entry(&format!("node_modules/{}", p.name), p);
            e.extra = serde_json::json!({ "resolved": registry.tarball(p) });
            e
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("package-lock.json");
    std::fs::write(&path, lockfile(&entries)).unwrap();
    path
}

fn cli(store: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_node-modules-alloc"))
        .arg("--json")
        .arg("--store")
        .arg(store)
        .args(args)
        // Only the project's .npmrc: never the user's.
        .env("NPM_CONFIG_USERCONFIG", store.join("no-user-npmrc"))
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (output, json)
}

fn packages() -> (Pkg, Pkg, Pkg) {
    (
        Pkg::new(&unique("bw-left"), "1.0.0").file("lib/a.js", b"exports.a = 1;\n", 0o644),
        Pkg::new(&format!("@bw/{}", unique("right")), "2.0.0")
            .bin("right", "cli.js")
            .file("cli.js", b"#!/usr/bin/env node\n", 0o755),
        Pkg::new(&unique("bw-third"), "0.1.0"),
    )
}

#[test]
fn fetch_then_allocate_offline_against_a_real_registry() {
    let Some(registry) = registry() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = packages();
    for p in [&a, &b, &c] {
        registry.publish(p);
    }
    let app = dir.path().join("app");
    let lock = write_lock(&app, &registry, &[&a, &b, &c]);
    let store = dir.path().join("store");
    let lock_arg = lock.to_str().unwrap();

    // Offline first: nothing in the store, every package named, no network.
    let (out, json) = cli(
        &store,
        &[
            "allocate",
            "--offline",
            "--lockfile",
            lock_arg,
            "--app-dir",
            app.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert_eq!(json["outcome"], "offline", "{json}");
    assert_eq!(json["missing"].as_array().unwrap().len(), 3, "{json}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("offline: 3 package(s) missing from the store"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("node_modules/{}", b.name)),
        "{stderr}"
    );

    // `fetch` fills the store from the registry without allocating.
    let (out, json) = cli(&store, &["fetch", "--lockfile", lock_arg]);
    assert!(
        out.status.success(),
        "{json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (json["needed"].as_u64(), json["fetched"].as_u64()),
        (Some(3), Some(3)),
        "{json}"
    );
    assert!(!app.join("node_modules").exists());

    // Now offline allocation works and the tree is complete.
    let (out, json) = cli(
        &store,
        &[
            "allocate",
            "--offline",
            "--lockfile",
            lock_arg,
            "--app-dir",
            app.to_str().unwrap(),
            "--min-free-bytes",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "{json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["packages"], 3);
    assert_eq!(
        std::fs::read(app.join(format!("node_modules/{}/lib/a.js", a.name))).unwrap(),
        b"exports.a = 1;\n"
    );
    assert!(app.join("node_modules/.bin/right").exists());
    let (out, json) = cli(&store, &["verify", "--app-dir", app.to_str().unwrap()]);
    assert!(out.status.success(), "{json}");
}

#[test]
fn allocate_fetches_on_demand_from_the_registry_of_npmrc() {
    let Some(registry) = registry() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = packages();
    registry.publish(&a);
    registry.publish(&b);
    let app = dir.path().join("app");
    let lock = write_lock(&app, &registry, &[&a, &b]);
    // The lockfile names another registry host, as one written elsewhere would: the
    // registry of .npmrc serves the packages.
    let text = std::fs::read_to_string(&lock)
        .unwrap()
        .replace(&registry.url, "https://registry.invalid/");
    std::fs::write(&lock, text).unwrap();
    std::fs::write(app.join(".npmrc"), format!("registry={}\n", registry.url)).unwrap();
    let store = dir.path().join("store");
    let (out, json) = cli(
        &store,
        &[
            "allocate",
            "--lockfile",
            lock.to_str().unwrap(),
            "--app-dir",
            app.to_str().unwrap(),
            "--min-free-bytes",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "{json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["outcome"], "materialized", "{json}");
    assert!(
        app.join(format!("node_modules/{}/index.js", b.name))
            .exists()
    );
}

#[test]
fn an_auth_required_scope_needs_the_token_of_npmrc() {
    let Some(registry) = registry() else { return };
    let dir = tempfile::tempdir().unwrap();
    let private = Pkg::new(&format!("@private/{}", unique("secret")), "1.0.0");
    registry.publish(&private);
    let app = dir.path().join("app");
    let lock = write_lock(&app, &registry, &[&private]);
    let store = dir.path().join("store");
    let lock_arg = lock.to_str().unwrap();

    // No token: an actionable error naming the .npmrc line to add.
    std::fs::write(
        app.join(".npmrc"),
        format!("@private:registry={}\n", registry.url),
    )
    .unwrap();
    let (out, json) = cli(&store, &["fetch", "--lockfile", lock_arg]);
    assert_eq!(out.status.code(), Some(1), "{json}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("requires authentication (HTTP 401)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "add `{}:_authToken=${{TOKEN}}` to .npmrc",
            registry.nerf_dart()
        )),
        "{stderr}"
    );

    // A wrong token: refused, and never printed.
    std::fs::write(
        app.join(".npmrc"),
        format!(
            "@private:registry={}\n{}:_authToken=not-the-token\n",
            registry.url,
            registry.nerf_dart()
        ),
    )
    .unwrap();
    let (out, json) = cli(&store, &["fetch", "--lockfile", lock_arg]);
    assert_eq!(out.status.code(), Some(1), "{json}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was refused"), "{stderr}");
    assert!(
        !stderr.contains("not-the-token") && !json.to_string().contains("not-the-token"),
        "{stderr}"
    );

    // The token, from the environment as CI passes secrets: fetched.
    std::fs::write(
        app.join(".npmrc"),
        format!(
            "@private:registry={}\n{}:_authToken=${{BREAKWATER_NPM_REGISTRY_TOKEN}}\n",
            registry.url,
            registry.nerf_dart()
        ),
    )
    .unwrap();
    let (out, json) = cli(&store, &["fetch", "--lockfile", lock_arg]);
    assert!(
        out.status.success(),
        "{json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["fetched"], 1, "{json}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&registry.token));
}
