//! # node-modules-alloc
//!
//! TODO crate docs
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod config;
mod error;
mod fsutil;
pub mod import;
pub mod integrity;
pub mod lockfile;
pub mod manifest;
pub mod materialize;
pub mod store;

pub use error::{Error, MissingPackage, Rejection, Result};
