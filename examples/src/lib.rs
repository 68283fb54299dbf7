//! Example programs for Breakwater.
//!
//! The main one is `incident-replay`, which replays the two incidents that
//! motivated Breakwater on a deterministic simulation driving the real
//! library types:
//!
//! ```sh
//! cargo run --release -p breakwater-examples --bin incident-replay
//! ```
//!
//! The simulation is also a library, so tests and other tools can run it:
//!
//! ```
//! use breakwater_examples::replay::nov2019::{self, Nov2019Params};
//!
//! let mut params = Nov2019Params::default();
//! (params.setup.horizon_s, params.setup.deploy_at_s, params.setup.revert_at_s) = (120, 20, 60);
//! let report = nov2019::run(&params, 1, false, &|_| {})?;
//! assert!(report.breakwater.amplification < report.naive.amplification);
//! # Ok::<(), breakwater_examples::replay::ReplayError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod local_fleet;
pub mod replay;
