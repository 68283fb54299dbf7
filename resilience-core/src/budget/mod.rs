//! Retry budgets: retries limited to a share of recent traffic.
//!
//! # Why budgets and not max retries?
//!
//! A per-request limit ("at most 5 retries") bounds the work per request,
//! not the load on the backend (proxies retrying every failure five times
//! sent recovering servers up to six times their normal load, see the
//! [crate docs](crate)): when
//! everything fails, *every* request retries the maximum and the load
//! multiplies exactly when the backend is weakest.
//!
//! A retry budget bounds retries as a share of traffic instead. Each original
//! request [deposits](RetryBudget::deposit) `retry_ratio` of a token, each
//! retry [withdraws](RetryBudget::try_withdraw) a whole one, and deposits
//! expire after `ttl`. With the default ratio of 0.2 retries can add at most
//! 20 % to the load, however bad the outage. A reserve of
//! `min_retries_per_sec * ttl` tokens (the *floor*) still lets a client with
//! little traffic retry a few times. This is the design of Finagle's
//! `RetryBudget` (and tower's `TpsBudget`), with exact ratios. With the
//! `tower` feature, [`RetryBudget`] implements tower's
//! `tower::retry::budget::Budget`, so a tower retry `Policy` can use it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
//! use resilience_core::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let budget = RetryBudget::with_clock(
//!     RetryBudgetConfig { ttl: Duration::from_secs(10), min_retries_per_sec: 0, retry_ratio: 0.2 },
//!     clock.clone(),
//! )?;
//! // A full outage: every request fails and wants a retry.
//! let mut retries = 0;
//! for _ in 0..100 {
//!     budget.deposit(); // deposit on *every* original request, not only on success
//!     if budget.try_withdraw() {
//!         retries += 1;
//!     }
//! }
//! assert_eq!(retries, 20); // 20 % of the traffic, not 5 retries per request
//! assert_eq!(budget.stats().denied, 80);
//!
//! // Deposits expire after the TTL: without new traffic, no more retries.
//! clock.advance(Duration::from_secs(11));
//! assert!(!budget.try_withdraw());
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```
//!
//! # Deposit on every request
//!
//! Call [`RetryBudget::deposit`] for every original request, before or
//! regardless of its outcome — not only on success. If only successes
//! deposited, a full outage would leave only the floor, and a partial outage
//! would allow fewer retries the more the backend fails.
//!
//! Call [`RetryBudget::try_withdraw`] when you *decide* to retry, before
//! sleeping in backoff: retries waiting in backoff then already count
//! against the budget, and a burst of failures cannot schedule more retries
//! than it allows.
//!
//! # The floor is per instance: share or key budgets
//!
//! `min_retries_per_sec` is granted by *each* `RetryBudget`. Ten retries per
//! second is harmless for one proxy and a storm for 500 proxies (5000 retries
//! per second against a backend that is already down). Therefore:
//!
//! - create **one** budget per process and downstream and share it between
//!   tasks and threads through an [`Arc`](std::sync::Arc) (every method takes
//!   `&self`; the type is `Send + Sync`), rather than one per connection or
//!   request;
//! - size the floor for the whole fleet (`min_retries_per_sec = 0` is valid
//!   for large fleets);
//! - use a [`KeyedRetryBudget`] to give each downstream (route, endpoint) its
//!   own budget, so that one failing downstream cannot spend the retries of
//!   the healthy ones.
//!
//! # Semantics and accuracy
//!
//! The budget's balance, in tokens, is
//! `min_retries_per_sec * ttl + retry_ratio * (deposits within ttl) - (withdrawals within ttl)`,
//! and [`RetryBudget::try_withdraw`] succeeds, taking one token, when the
//! balance is at least one token. Time is divided into slots of at most
//! `ttl / 256` (a power of two of nanoseconds). A deposit expires at the
//! start of the slot whose start is at most `ttl` after the start of its own
//! (so it counts for between `ttl - ttl/128` and `ttl`), and a withdrawal
//! exactly `ttl` after the last withdrawal of its slot (so it counts for at
//! least `ttl`, and at most one slot longer). Both roundings are conservative,
//! which guarantees:
//!
//! - at every granted retry, the retries granted during the preceding `ttl`
//!   are at most `retry_ratio * deposits during that ttl + min_retries_per_sec * ttl`;
//! - after `ttl` without any call, the balance is back at the floor;
//! - over a long steady run the share of retries is within 1 % of
//!   `retry_ratio` (the slot rounding costs under 0.8 %, about 0.2 % with
//!   the default 10 s ttl; deposits are
//!   accounted in integer units of a millionth of a token, so ratios with up
//!   to six decimals are exact and no ratio is rounded to an integer
//!   reciprocal).
//!
//! # Performance
//!
//! Each call reads the clock once (the time decides the slot a deposit
//! belongs to and whether a withdrawal has expired) and otherwise touches a
//! few atomics; the slot ring is only touched when the slot changes. Reading
//! the clock dominates: about two thirds of the time of a deposit plus a
//! withdrawal on Linux. Deposits deliberately do not skip clock reads (for
//! example every n-th call): at low traffic a deposit would then be filed
//! under a slot minutes old and expire at once. The benchmark
//! `benches/retry_budget.rs` compares this type with tower's `TpsBudget`.

mod config;
mod keyed;
mod retry_budget;
#[cfg(feature = "tower")]
mod tower_budget;

pub use self::config::{MAX_RETRY_RATIO, MAX_TTL, MIN_TTL, RetryBudgetConfig};
pub use self::keyed::{KeyedRetryBudget, KeyedRetryBudgetConfig, KeyedRetryBudgetStats};
pub use self::retry_budget::{RetryBudget, RetryBudgetStats};
