//! Restarting crashed tasks without crash-looping, and warming restarted
//! instances up gently.
//!
//! # Why?
//!
//! An overloaded instance that crashes, is restarted at once and receives
//! its full share of traffic at once crashes again: a crash loop that can
//! keep a fleet down for hours after the cause is fixed (see the
//! [crate docs](crate)). Recovery needs instances that can start *without
//! receiving traffic*. Two mechanisms break that loop:
//!
//! - [`RestartBackoff`] (Kubernetes' `CrashLoopBackOff`): each consecutive
//!   crash doubles the delay before the next start, from 10 s up to 5 min, so
//!   a crashing instance stops adding load (and log noise); a run of 10 min
//!   without a crash resets the series. [`supervise`] drives an async task
//!   with it and stops on a shutdown signal.
//! - [`SlowStart`]: a freshly started instance admits only a share of its
//!   traffic, rising from `initial` to 100 % over `duration`, so caches, pools
//!   and JITs warm up before the instance carries a full load.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::{Clock, ManualClock};
//! use resilience_core::restart::{RestartBackoff, RestartBackoffConfig, SlowStart, SlowStartConfig};
//!
//! let clock = ManualClock::new();
//! let mut restarts = RestartBackoff::with_clock(RestartBackoffConfig::default(), clock.clone())?;
//! restarts.on_started();
//! assert_eq!(restarts.on_crash(), Duration::from_secs(10));
//! restarts.on_started();
//! assert_eq!(restarts.on_crash(), Duration::from_secs(20));
//!
//! // Restarted: ramp from 10 % to 100 % of traffic over 30 s.
//! restarts.on_started();
//! let warmup = SlowStart::with_clock(SlowStartConfig::default(), clock.clone())?;
//! assert!((warmup.admit_fraction() - 0.1).abs() < 1e-9);
//! clock.advance(Duration::from_secs(15));
//! assert!((warmup.admit_fraction() - 0.55).abs() < 1e-9);
//! clock.advance(Duration::from_secs(15));
//! assert!(warmup.is_warm());
//!
//! // Ten minutes of clean running: the next crash starts the series again.
//! clock.advance(Duration::from_secs(600));
//! assert_eq!(restarts.on_crash(), Duration::from_secs(10));
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```

mod backoff;
mod slow_start;
mod supervisor;

pub use backoff::{RestartBackoff, RestartBackoffConfig};
pub use slow_start::{SlowStart, SlowStartConfig};
pub use supervisor::{SupervisorExit, SupervisorReport, supervise};
