//! Property tests of the breaker's state machine against a reference model:
//! for random sequences of acquire / record / drop / advance,
//! - no call is admitted while open before the wait has elapsed, and the
//!   rejection's `retry_after` is exactly the rest of the wait;
//! - half-open never has more than `half_open_probes` probes outstanding, and
//!   admits a probe exactly when a slot is free;
//! - a closed breaker admits every call;
//! - the open wait follows the backoff and resets after a close.
// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{
    BreakerConfig, BreakerPermit, BreakerState, CircuitBreaker, Outcome, WindowConfig,
};
use resilience_core::clock::{Clock, ManualClock};

const SLOW: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Drop(usize),
    Advance(Duration),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), prop_oneof![
            3 => Just(Outcome::Failure),
            2 => Just(Outcome::Success),
            1 => Just(Outcome::Ignored),
        ]).prop_map(|(i, o)| Op::Record(i, o)),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => (0u64..3_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (
        prop_oneof![Just(None), (1u32..5).prop_map(Some)],
        prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
        any::<bool>(),
        prop_oneof![
            (2u32..20).prop_map(|calls| WindowConfig::Count { calls }),
            (1u64..20, 1u32..10).prop_map(|(s, buckets)| WindowConfig::Time {
                duration: Duration::from_secs(s),
                buckets,
            }),
        ],
        1u32..10,
        1u32..4,
    )
        .prop_map(
            |(consecutive, rate, slow, window, minimum, probes)| BreakerConfig {
                consecutive_failures: consecutive,
                failure_rate_threshold: rate,
                slow_call_duration: slow.then_some(SLOW),
                slow_call_rate_threshold: 0.5,
                minimum_calls: match window {
                    WindowConfig::Count { calls } => minimum.min(calls),
                    WindowConfig::Time { .. } => minimum,
                },
                window,
                open_wait: BackoffConfig {
                    base: Duration::from_secs(1),
                    max: Duration::from_secs(8),
                    factor: 2.0,
                    jitter: Jitter::None,
                    max_attempts: None,
                },
                half_open_probes: probes,
            },
        )
}

struct Held {
    permit: BreakerPermit,
    /// The half-open episode it is a probe of.
    episode: Option<u64>,
    started: Instant,
}

#[derive(Debug)]
struct Model {
    state: BreakerState,
    open_until: Instant,
    trips_in_a_row: u32,
    episode: u64,
    outstanding: u32,
    successes: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_breaker_follows_the_reference_model(
        config in config(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::with_clock(config.clone(), clock.clone()).unwrap();
        let mut events = breaker.subscribe();
        let mut model = Model {
            state: BreakerState::Closed,
            open_until: clock.now(),
            trips_in_a_row: 0,
            episode: 0,
            outstanding: 0,
            successes: 0,
        };
        let mut held: Vec<Held> = Vec::new();
        let probes = config.half_open_probes;

        for op in ops {
            let now = clock.now();
            match op {
                Op::Acquire => {
                    let result = breaker.try_acquire();
                    match model.state {
                        BreakerState::Closed => prop_assert!(result.is_ok(), "closed must admit"),
                        BreakerState::Open => {
                            if now < model.open_until {
                                let err = result.as_ref().err();
                                prop_assert!(err.is_some(), "admitted while open before the wait elapsed");
                                prop_assert_eq!(err.unwrap().retry_after, model.open_until - now);
                            } else {
                                prop_assert!(result.is_ok(), "wait elapsed: a probe must go through");
                            }
                        }
                        BreakerState::HalfOpen => {
                            let free = model.outstanding + model.successes < probes;
                            prop_assert_eq!(result.is_ok(), free, "probe admission in {:?}", model);
                        }
                    }
                    if let Ok(permit) = result {
                        // An open breaker whose wait elapsed becomes half-open here.
                        if model.state == BreakerState::Open {
                            let change = events.try_recv().unwrap();
                            prop_assert_eq!(change.to, BreakerState::HalfOpen);
                            prop_assert_eq!(change.at, now);
                            model.state = BreakerState::HalfOpen;
                            model.episode += 1;
                            model.outstanding = 0;
                            model.successes = 0;
                        }
                        let is_probe = model.state == BreakerState::HalfOpen;
                        prop_assert_eq!(permit.is_probe(), is_probe);
                        if is_probe {
                            model.outstanding += 1;
                        }
                        prop_assert!(model.outstanding <= probes);
                        held.push(Held {
                            permit,
                            episode: is_probe.then_some(model.episode),
                            started: now,
                        });
                    }
                }
                Op::Record(i, _) | Op::Drop(i) if !held.is_empty() => {
                    let Held { permit, episode, started } = held.swap_remove(i % held.len());
                    let current_probe = model.state == BreakerState::HalfOpen
                        && episode == Some(model.episode);
                    if current_probe {
                        model.outstanding -= 1;
                    }
                    match op {
                        Op::Record(_, outcome) => {
                            let slow = config.slow_call_duration.is_some() && now - started > SLOW;
                            if current_probe && outcome == Outcome::Success && !slow {
                                model.successes += 1;
                            }
                            permit.record(outcome);
                        }
                        _ => drop(permit),
                    }
                }
                Op::Record(..) | Op::Drop(_) => {}
                Op::Advance(by) => clock.advance(by),
            }

            // Apply the transitions the operation caused.
            while let Ok(change) = events.try_recv() {
                prop_assert_eq!(change.from, model.state);
                prop_assert_eq!(change.at, clock.now());
                match change.to {
                    BreakerState::Open => {
                        let wait = config.open_wait.ceiling(model.trips_in_a_row);
                        model.trips_in_a_row += 1;
                        model.open_until = change.at + wait;
                    }
                    BreakerState::Closed => {
                        prop_assert_eq!(model.state, BreakerState::HalfOpen);
                        prop_assert_eq!(model.successes, probes, "closed without enough probe successes");
                        model.trips_in_a_row = 0;
                    }
                    BreakerState::HalfOpen => prop_assert!(false, "half-open only on acquire"),
                }
                model.state = change.to;
                model.outstanding = 0;
                model.successes = 0;
            }
            prop_assert_eq!(breaker.state(), model.state);
            prop_assert!(model.outstanding <= probes);
        }
        // Every permit completes; the metrics account for all of them.
        let outstanding = held.len() as u64;
        let before = breaker.metrics().calls;
        drop(held);
        prop_assert_eq!(breaker.metrics().calls, before + outstanding);
    }
}
