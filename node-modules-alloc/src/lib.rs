//! # node-modules-alloc
//!
//! A crash-safe, load-shedding `node_modules` allocator over a content-addressed package
//! store. Why it exists (the February 2019 outage) is told once, in the
//! [README](https://github.com/breakwater-rs/breakwater/tree/main/node-modules-alloc#readme).
//!
//! * [`store`]: files by sha512 of content (stored once), a package index by the tarball's SRI
//!   integrity, atomic writes, read-only files, `verify` by re-hashing, quarantine.
//! * [`import`]: `.tgz` files, directories of them and npm caches (`_cacache`), integrity
//!   verified, hostile entries (absolute paths, `..`, escaping links, devices, bombs) refused.
//! * [`lockfile`]: `package-lock.json` v2/v3 (and v1, read-only) and `pnpm-lock.yaml` v9 (laid out hoisted); [`platform`]: `os`/`cpu`/`libc` filtering (libc
//!   detected once); [`lifecycle`]: trees needing a build the allocator does not run are refused.
//! * [`manifest`] and [`materialize`]: the tree description and hardlink → reflink → copy.
//! * [`allocator`]: single-flight templates, a [`ConcurrencyLimit`](resilience_core::limit::ConcurrencyLimit)
//!   with a bounded queue in front of a store-wide one (slot lock files shared by every
//!   process), staging + one atomic rename + completion marker, a free-space guard that
//!   reserves what it admits.
//! * [`fetch`] (feature `fetch`): packages missing from the store are downloaded from the
//!   lockfile's `resolved` URL or the configured registry (`.npmrc`), integrity checked while
//!   streaming, through a per-host concurrency limit and breaker, a retry policy with a budget
//!   and `Retry-After`, and a deadline per package; `--offline` never touches the network.
//! * [`sweep`]: scratch of failed operations and dead processes is removed while the store is
//!   in use, so nothing grows without bound under a long-lived process.
//!
//! The `node-modules-alloc` binary wraps it:
//!
//! ```text
//! node-modules-alloc --store DIR import PATH...
//! node-modules-alloc --store DIR fetch --lockfile FILE [--registry URL] [--offline]
//! node-modules-alloc --store DIR allocate --lockfile FILE --app-dir DIR [--link-mode auto|hardlink|reflink|copy]
//! node-modules-alloc --store DIR verify --app-dir DIR [--repair]
//! node-modules-alloc --store DIR gc
//! ```
//!
//! (`--json`, `-q`/`-v`, `BREAKWATER_STORE` and the exit codes: see the README.)
//!
//! # Features
//!
//! * `cli` (default): the binary (clap, indicatif, tracing-subscriber); turns `fetch` on.
//! * `fetch`: the [`fetch`] module and [`Allocator::with_fetcher`](allocator::Allocator::with_fetcher)
//!   (hyper 1, hyper-util, rustls with ring and Mozilla's roots). Off: no HTTP code.
//! * `metrics`: the allocator records `breakwater_allocator_*` metrics through the
//!   [`metrics`](https://docs.rs/metrics) facade (the table is in `docs/metrics.md`). The crate
//!   never installs a recorder; install yours before building an
//!   [`Allocator`](allocator::Allocator), which registers its handles when built. Off: no
//!   metrics code is compiled in.
//! * `fuzzing`: entry points of the fuzz targets (hidden, not a stable API).
//!
//! An allocator can be named ([`Allocator::from_named`](allocator::Allocator::from_named) with a
//! [`Named`](resilience_core::Named) configuration, or
//! [`Allocator::named`](allocator::Allocator::named)): the name is the `name` field of its
//! tracing spans and events and the `name` label of its metrics.
//!
//! # Example
//!
//! ```
//! # fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
//! #     let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
//! #     for (path, data) in files {
//! #         let mut header = tar::Header::new_gnu();
//! #         header.set_size(data.len() as u64);
//! #         header.set_mode(0o644);
//! #         header.set_cksum();
//! #         builder.append_data(&mut header, path, *data).unwrap();
//! #     }
//! #     builder.into_inner().unwrap().finish().unwrap()
//! # }
//! use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
//! use node_modules_alloc::integrity::Integrity;
//! use node_modules_alloc::store::Store;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("store"))?;
//! let tarball = tgz(&[
//!     ("package/package.json", br#"{"name":"hello","version":"1.0.0","bin":{"hello":"cli.js"}}"#),
//!     ("package/cli.js", b"#!/usr/bin/env node\nconsole.log('hello');\n"),
//! ]);
//! store.import_tarball_bytes("hello-1.0.0.tgz", &tarball, None, None)?;
//!
//! let lockfile = dir.path().join("package-lock.json");
//! std::fs::write(&lockfile, format!(
//!     r#"{{"lockfileVersion": 3, "packages": {{"": {{}},
//!         "node_modules/hello": {{"version": "1.0.0", "integrity": "{}", "bin": {{"hello": "cli.js"}}}}}}}}"#,
//!     Integrity::sha512_of(&tarball),
//! ))?;
//!
//! let allocator = Allocator::new(store, AllocatorConfig::default())?;
//! let app = dir.path().join("app");
//! let allocation = allocator.allocate(&lockfile, &app).await?;
//! assert_eq!(allocation.packages, 1);
//! assert!(app.join("node_modules/.bin/hello").exists());
//! assert!(allocator.verify(&app, false, None).await?.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod admission;
pub mod allocator;
mod bins;
pub mod config;
mod error;
#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
pub mod fetch;
mod fsutil;
#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod integrity;
pub mod lifecycle;
pub mod lockfile;
mod locks;
pub mod manifest;
pub mod materialize;
mod parallel;
pub mod platform;
mod repair;
pub mod store;
pub mod sweep;
mod tree_check;
mod work;
mod workspaces;

pub use error::{BuildNeed, BuildReason, Error, MissingPackage, Rejection, Result, UnfitPackage};
