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
//! let params = Nov2019Params { horizon_s: 120, deploy_at_s: 20, revert_at_s: 60, client_rps: 200.0, ..Nov2019Params::default() };
//! let report = nov2019::run(&params, 1, false, &|_| {})?;
//! assert!(report.breakwater.amplification < report.naive.amplification);
//! # Ok::<(), breakwater_examples::replay::ReplayError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod replay;
