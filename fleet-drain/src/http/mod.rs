//! A [`DrainFleet`](crate::fleet::DrainFleet) over HTTP: [`HttpFleet`] drains any
//! platform that implements the small JSON contract of
//! [`docs/http-contract.md`](https://github.com/breakwater-rs/breakwater/blob/main/fleet-drain/docs/http-contract.md)
//! (list hosts, list apps, set a host's state, migrate an app and wait, an
//! app's health).
//!
//! Every call has a timeout (`request_timeout`, `migrate_timeout`); failed
//! calls that may succeed later (connection errors, timeouts, 5xx, 429) are
//! retried through a resilience-core [`RetryPolicy`](resilience_core::retry::RetryPolicy)
//! with a [`RetryBudget`](resilience_core::budget::RetryBudget) and jittered
//! backoff, honouring `Retry-After`; a migrate is retried with the same
//! `request_id`, so the platform never starts the app twice. A platform that
//! answers garbage gets a [`FleetError::BadResponse`](crate::FleetError::BadResponse)
//! naming the call and what is wrong.
//!
//! ```no_run
//! use fleet_drain::fleet::DrainFleet;
//! use fleet_drain::http::{HttpFleet, HttpFleetConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config: HttpFleetConfig = toml::from_str(r#"url = "http://127.0.0.1:7070""#)?;
//! let fleet = HttpFleet::from_config(&config)?;
//! let snapshot = fleet.snapshot().await?;
//! println!("{} hosts, {} apps", snapshot.hosts().len(), snapshot.total_apps());
//! # Ok(()) }
//! ```

mod client;
mod config;
mod errors;
mod fleet;
pub mod wire;

pub use config::HttpFleetConfig;
pub use fleet::HttpFleet;
