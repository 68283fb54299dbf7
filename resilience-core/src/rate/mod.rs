//! Rate limiting with the generic cell rate algorithm (GCRA): a
//! [`RateLimiter`] (lock-free) and a [`KeyedRateLimiter`] (one limit per key).
//!
//! # Why?
//!
//! When many callers share a provider's quota (a fleet booting at once, each
//! host calling a DNS API), the provider rate-limits the account and every
//! caller fails on errors that have nothing to do with it (see the
//! [crate docs](crate)). A provider's limit is a fact of life;
//! hitting it is not. A caller that knows the limit should limit *itself*
//! slightly below it, spreading its calls out and waiting locally
//! ([`RateLimiter::until_ready`]) instead of collecting 429s, retrying them,
//! and burning the shared quota for everyone else.
//!
//! # The algorithm
//!
//! GCRA is a token bucket expressed as a single timestamp, the *theoretical
//! arrival time* (TAT): the time at which the limiter would be back to empty
//! if requests kept coming at exactly the configured rate. With emission
//! interval `T = per / rate`, a request at `now` conforms if
//! `max(TAT, now) + T - burst × T <= now`, and then moves the TAT to
//! `max(TAT, now) + T`. Consequences:
//!
//! - after an idle period, `burst` requests are allowed back to back; then
//!   one per `T`;
//! - over any interval of length `d`, at most `burst + rate × d / per`
//!   requests are allowed;
//! - a denied request changes nothing and gets an exact `retry_after`.
//!
//! One `u64` of state means [`RateLimiter::check`] is a lock-free
//! compare-and-swap loop.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::clock::ManualClock;
//! use resilience_core::rate::{RateLimited, RateLimiter, RateLimiterConfig};
//!
//! // Stay under a provider's 5 requests per second, in bursts of at most 2.
//! let clock = ManualClock::new();
//! let dns_api = RateLimiter::with_clock(
//!     RateLimiterConfig { rate: 5, per: Duration::from_secs(1), burst: 2 },
//!     clock.clone(),
//! )?;
//! assert!(dns_api.check().is_ok());
//! assert!(dns_api.check().is_ok());
//! assert_eq!(
//!     dns_api.check(),
//!     Err(RateLimited { retry_after: Duration::from_millis(200) })
//! );
//! clock.advance(Duration::from_millis(200));
//! assert!(dns_api.check().is_ok());
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```
//!
//! In async code, `dns_api.until_ready().await` waits (on the limiter's
//! clock) instead of failing.

mod error;
mod gcra;
mod keyed;

pub use error::RateLimited;
pub use gcra::{RateLimiter, RateLimiterConfig};
pub use keyed::{KeyedRateLimiter, KeyedRateLimiterConfig};
