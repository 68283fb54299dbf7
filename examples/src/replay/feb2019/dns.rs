//! Booting the new fleet: every new host registers itself with a DNS API
//! whose rate limit is a hidden truth ("We got rate-limited by AWS as we
//! query Route53 when booting new machines").
//!
//! # Model
//!
//! All `new_hosts` boot at once; each makes `dns_calls_per_boot` calls one
//! after the other. The provider's limit is a resilience-core
//! `RateLimiter` (GCRA, `dns_api_rate_per_s`, burst `dns_api_burst`): a
//! call beyond it is throttled and retried after `dns_retry_s` doubled per
//! attempt (at most 20 s) with ±50 % jitter. The naive boot calls
//! directly. Breakwater's boot process calls through its own `RateLimiter`
//! (`dns_client_rate_per_s`, one limiter for the whole boot, e.g. in the
//! launch process that registers hosts): a call waits for it before
//! reaching the provider. The new fleet is ready when the last host
//! completed its calls; the migration starts then (both sides), and
//! its times are counted from there. Every throttled call is a warning.

use std::time::Duration;

use resilience_core::clock::ManualClock;
use resilience_core::rate::{RateLimiter, RateLimiterConfig};
use serde::Serialize;

use super::params::{FebNaive, FebSetup, FebWorld};
use crate::replay::error::ReplayError;
use crate::replay::events::{EventQueue, Micros, SECOND};
use crate::replay::prometheus::build_named;

/// What booting the new fleet took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BootOutcome {
    /// Seconds until every new host was registered.
    pub boot_s: f64,
    /// Calls that reached the DNS API.
    pub dns_calls: u64,
    /// Of those, calls the API throttled.
    pub dns_throttled: u64,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    call: u32,
    attempt: u32,
}

/// Boots the new fleet; `client` is the boot process's own limiter
/// (`None`: calls go straight to the API).
pub fn boot(
    setup: &FebSetup,
    world: &FebWorld,
    naive: &FebNaive,
    client: Option<&RateLimiterConfig>,
    seed: u64,
) -> Result<BootOutcome, ReplayError> {
    let clock = ManualClock::new();
    // The platform's own API limit (the hidden world), named as such in `--metrics-out`.
    let api = build_named(
        "feb2019.world.dns-api",
        || {
            RateLimiter::with_clock(
                RateLimiterConfig {
                    rate: world.dns_api_rate_per_s,
                    per: Duration::from_secs(1),
                    burst: world.dns_api_burst,
                },
                clock.clone(),
            )
        },
        RateLimiter::named,
    )?;
    let client = client
        .map(|c| {
            build_named(
                "feb2019.breakwater.dns-client",
                || RateLimiter::with_clock(c.clone(), clock.clone()),
                RateLimiter::named,
            )
        })
        .transpose()?;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xD25_B007);
    let mut queue = EventQueue::default();
    for _ in 0..setup.new_hosts {
        queue.push(
            0,
            Call {
                call: 0,
                attempt: 0,
            },
        );
    }
    let mut out = BootOutcome::default();
    let mut now: Micros = 0;
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    while let Some((at, ev)) = queue.pop() {
        if at > now {
            clock.advance(Duration::from_micros(at - now));
            now = at;
        }
        if let Some(client) = &client
            && let Err(limited) = client.check()
        {
            queue.push(now + micros(limited.retry_after).max(1), ev);
            continue;
        }
        out.dns_calls += 1;
        if api.check().is_ok() {
            if ev.call + 1 < setup.dns_calls_per_boot {
                queue.push(
                    now,
                    Call {
                        call: ev.call + 1,
                        attempt: 0,
                    },
                );
            } else {
                out.boot_s = clock.elapsed().as_secs_f64().max(out.boot_s);
            }
        } else {
            out.dns_throttled += 1;
            let backoff = (naive.dns_retry_s * 2f64.powi(ev.attempt.min(16) as i32)).min(20.0)
                * (0.5 + rng.f64());
            let delay = (backoff * SECOND as f64).max(1.0) as Micros;
            queue.push(
                now + delay,
                Call {
                    call: ev.call,
                    attempt: ev.attempt + 1,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_limiter_below_the_api_limit_is_never_throttled() {
        let (setup, world, naive) = (
            FebSetup::default(),
            FebWorld::default(),
            FebNaive::default(),
        );
        let raw = boot(&setup, &world, &naive, None, 1).unwrap();
        assert!(raw.dns_throttled > 100, "{raw:?}");
        let limited = boot(
            &setup,
            &world,
            &naive,
            Some(&RateLimiterConfig {
                rate: 4,
                per: Duration::from_secs(1),
                burst: 1,
            }),
            1,
        )
        .unwrap();
        assert_eq!(limited.dns_throttled, 0);
        assert_eq!(limited.dns_calls, 200);
        // 200 calls at 4 per second.
        assert!((limited.boot_s - 49.75).abs() < 0.5, "{limited:?}");
    }
}
