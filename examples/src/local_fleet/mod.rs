//! `local-fleet`: a platform of real processes on this machine, behind
//! fleet-drain's HTTP contract (`fleet-drain/docs/http-contract.md`).
//!
//! Each host is a directory (`DIR/hosts/NAME`) with its own
//! node-modules-alloc store, filled from two fixture packages built in
//! memory (no network). Each app is a small Node HTTP server
//! (`server.js`, depending on both packages) listening on an ephemeral
//! loopback port; before `node` starts, the host's allocator allocates the
//! app's `node_modules` from its lockfile. A migrate allocates on the
//! receiver, starts the app, waits for `GET /healthz` to answer 200, then
//! stops the old process; health is that same GET.
//!
//! Modules: `spec` (command line) and `packages` (fixtures, app files) are
//! leaves; `process` (a `node` process in its own group) and `probe` (the
//! health GET) are mechanisms; `platform` holds the state and operations;
//! `server` maps HTTP onto it.

pub mod packages;
pub mod platform;
pub mod probe;
pub mod process;
pub mod server;
pub mod spec;

pub use platform::{AppView, HostView, Platform, Stats};
pub use spec::{Args, Spec};
