//! Native core of the `breakwater` npm package.
//!
//! This crate is a thin napi-rs adapter: every decision is made by the Rust
//! crates (`resilience-core`, `fleet-drain`, `node-modules-alloc`); this layer
//! only converts values. The JavaScript wrapper in `index.js` validates
//! argument types (throwing `TypeError`/`RangeError` with
//! `code === 'ERR_BREAKWATER_INVALID_ARG'`) and loops and awaits in JS, asking
//! the native side for decisions through cheap synchronous calls: crossing
//! into Rust synchronously costs about 125–325 ns, while Rust awaiting a JS
//! promise through a `ThreadsafeFunction` costs about 170 µs.
//!
//! No export may abort the Node process: every export runs its body through
//! [`error::guard`], which turns a Rust panic into a JS `Error` with code
//! `ERR_BREAKWATER_PANIC`.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod adaptive;
pub mod alloc;
pub mod backoff;
pub mod bind;
pub mod breaker;
pub mod budget;
pub mod codes;
pub mod constants;
pub mod debug;
pub mod drain;
pub mod error;
pub mod handles;
pub mod keyed_budget;
pub mod limit;
pub mod rate;
pub mod restart;
pub mod retry;
pub mod signal;
pub mod throttle;
