//! Cross-crate integration tests of Breakwater.
//!
//! Every crate specifies itself in its own `tests/`. The incidents, though,
//! were failures *between* components: a surge of app starts met a
//! `node_modules` allocator that could not say "later", and the on-call was
//! flooded by one notification per failed start. The tests of this crate
//! (in its `tests/` directory) pin down that the pieces compose the way the
//! design promises:
//!
//! - `allocator_surge_with_retry`: `node-modules-alloc`'s load shedding
//!   (`Overloaded { retry_after }`) driven by `resilience-core`'s
//!   `RetryPolicy`, which honours the hint, until every app has a verified
//!   tree.
//! - `drain_events_aggregated`: a `fleet-drain` drain onto receivers that
//!   fail many starts reports them through `resilience-core`'s
//!   `EventAggregator`: few notifications, no failure lost.
//! - `replay_contract`: the JSON document of `incident-replay` (design §6)
//!   that outside tools read.
//!
//! This library holds the fixtures they share: npm package tarballs and
//! `package-lock.json` files built in memory, so no test needs a network.
//!
//! ```
//! use breakwater_tests::{Package, lockfile};
//!
//! let left_pad = Package::new("left-pad", "1.3.0").with_file("README.md", b"pads");
//! let tarball = left_pad.tarball()?;
//! assert_eq!(&tarball[..2], &[0x1f, 0x8b], "gzip magic");
//! assert!(left_pad.integrity()?.starts_with("sha512-"));
//!
//! let lock: serde_json::Value = serde_json::from_str(&lockfile(&[left_pad])?)?;
//! assert_eq!(lock["lockfileVersion"], 3);
//! assert_eq!(lock["packages"]["node_modules/left-pad"]["version"], "1.3.0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::io;

use node_modules_alloc::integrity::Integrity;

/// An npm package to put into a store: `package/package.json` plus files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name (`name` in `package.json`).
    pub name: String,
    /// Its version.
    pub version: String,
    /// Files besides `package.json`: path inside the package, content.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Package {
    /// A package with one `index.js` that names it.
    pub fn new(name: &str, version: &str) -> Self {
        Package {
            name: name.to_owned(),
            version: version.to_owned(),
            files: vec![(
                "index.js".to_owned(),
                format!("module.exports = '{name}@{version}';\n").into_bytes(),
            )],
        }
    }

    /// Adds a file (`path` relative to the package root).
    #[must_use]
    pub fn with_file(mut self, path: &str, content: &[u8]) -> Self {
        self.files.push((path.to_owned(), content.to_vec()));
        self
    }

    /// The gzip-compressed tarball, as a registry serves it. Deterministic:
    /// the same package always gives the same bytes (fixed mtime and modes).
    pub fn tarball(&self) -> io::Result<Vec<u8>> {
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "name": self.name,
            "version": self.version,
        }))?;
        let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gzip);
        let entries = std::iter::once(("package.json", manifest.as_slice()))
            .chain(self.files.iter().map(|(p, c)| (p.as_str(), c.as_slice())));
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_600_000_000);
            builder.append_data(&mut header, format!("package/{path}"), content)?;
        }
        builder.into_inner()?.finish()
    }

    /// The SRI integrity (`sha512-…`) of [`Package::tarball`], as a lockfile
    /// records it.
    pub fn integrity(&self) -> io::Result<String> {
        Ok(Integrity::sha512_of(&self.tarball()?).to_string())
    }
}

/// A `package-lock.json` (version 3) installing each package at
/// `node_modules/<name>`.
pub fn lockfile(packages: &[Package]) -> io::Result<String> {
    let mut entries = serde_json::Map::new();
    entries.insert(
        String::new(),
        serde_json::json!({ "name": "app", "version": "1.0.0" }),
    );
    for package in packages {
        entries.insert(
            format!("node_modules/{}", package.name),
            serde_json::json!({
                "version": package.version,
                "resolved": format!(
                    "https://example.invalid/{0}/-/{0}-{1}.tgz",
                    package.name, package.version
                ),
                "integrity": package.integrity()?,
            }),
        );
    }
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "name": "app",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": true,
        "packages": entries,
    }))?)
}
