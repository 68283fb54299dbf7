//! Exploration across receivers, decay of failed levels and resuming from
//! journaled limits, on a `ManualClock`.

use std::time::Duration;

use resilience_core::clock::{Clock, ManualClock};

use super::adaptive::AdaptiveStarts;
use super::{AdaptiveStartsConfig, StartExplorationConfig};
use crate::fleet::{Host, HostId, HostState};
use crate::journal::LearnedStartLimit;

const PROBATION: Duration = Duration::from_secs(150);
const DECAY: Duration = Duration::from_secs(600);
const ALMOST_DECAY: Duration = Duration::from_secs(599);
/// One probation plus one growth window.
const CYCLE: Duration = Duration::from_secs(170);

/// Host 0 probes at 2×, host 1 at 4× the trusted level; hosts 2..20 run at
/// the trusted level.
fn starts(clock: &ManualClock, learned: &[LearnedStartLimit]) -> AdaptiveStarts {
    let mut starts = AdaptiveStarts::new(
        AdaptiveStartsConfig {
            initial_limit: 4,
            increase_by: 2,
            ..AdaptiveStartsConfig::default()
        },
        Some(StartExplorationConfig {
            level_factors: vec![2.0, 4.0],
            receivers_per_level: 1,
            max_receiver_share: 0.1,
            starts_per_probe: 5,
            min_passed: 3,
            retry_failed_after: Some(DECAY),
        }),
        Some(PROBATION),
        clock.clone().into_shared(),
    )
    .unwrap();
    starts.restore(learned);
    for id in 0..20 {
        starts
            .register(&Host {
                id: HostId(id),
                capacity: 300,
                state: HostState::Active,
                version: "v2".into(),
            })
            .unwrap();
    }
    starts
}

#[test]
fn a_few_receivers_probe_higher_levels_and_the_class_jumps_to_one_that_passed() {
    let clock = ManualClock::new();
    let mut s = starts(&clock, &[]);
    assert_eq!(s.limit(HostId(0)), Some(8));
    assert_eq!(s.limit(HostId(1)), Some(16));
    assert_eq!(s.limit(HostId(2)), Some(4));
    assert_eq!(s.snapshot()[0].probes, 2);
    // Two passes at 8 are not enough evidence; the third is.
    assert!(s.on_confirmed(HostId(0), 8).is_none());
    assert!(s.on_confirmed(HostId(0), 8).is_none());
    // Passes at other levels (a ramp) do not add up to evidence for 8.
    assert!(s.on_confirmed(HostId(1), 9).is_none());
    let change = s.on_confirmed(HostId(0), 8).unwrap();
    assert_eq!((change.from, change.to), (4, 8));
    assert_eq!(s.limit(HostId(2)), Some(8));
    // The probes move up with the class.
    assert_eq!(s.limit(HostId(0)), Some(16));
    assert_eq!(s.limit(HostId(1)), Some(32));
    let report = s.snapshot();
    assert_eq!((report[0].confirmed, report[0].promotions), (8, 1));
}

#[test]
fn a_failure_at_a_probe_level_caps_the_class_below_it_without_cutting() {
    let clock = ManualClock::new();
    let mut s = starts(&clock, &[]);
    let now = clock.now();
    assert!(s.on_failure(HostId(1), now, 16).is_none());
    assert_eq!(s.snapshot()[0].failed_at, Some(16));
    assert_eq!(s.snapshot()[0].cuts, 0);
    assert_eq!(s.limit(HostId(2)), Some(4));
    // The 4× probe now stays below the failed level.
    assert_eq!(s.limit(HostId(1)), Some(15));
    // A failure below the trusted level cuts it, and caps the class.
    let cut = s.on_failure(HostId(5), now, 3).unwrap();
    assert_eq!((cut.from, cut.to), (4, 2));
    assert_eq!(s.snapshot()[0].failed_at, Some(3));
    assert_eq!(s.limit(HostId(2)), Some(2));
    // No probe level fits between the trusted level and the failed one.
    assert_eq!(s.limit(HostId(0)), Some(2));
}

#[test]
fn each_probe_receiver_runs_a_bounded_number_of_starts_above_the_trusted_level_per_cycle() {
    let clock = ManualClock::new();
    let mut s = starts(&clock, &[]);
    for _ in 0..5 {
        assert_eq!(s.limit(HostId(1)), Some(16));
        s.on_begin(HostId(1), 16);
    }
    // Its budget is spent: back at the trusted level until the cycle ends.
    assert_eq!(s.limit(HostId(1)), Some(4));
    // Starts at the trusted level do not spend the other probe's budget.
    s.on_begin(HostId(0), 4);
    assert_eq!(s.limit(HostId(0)), Some(8));
    clock.advance(CYCLE);
    assert_eq!(s.limit(HostId(1)), Some(16));
}

#[test]
fn a_failed_level_decays_one_level_per_period_and_a_new_failure_resets_it() {
    let clock = ManualClock::new();
    let mut s = starts(&clock, &[]);
    let now = clock.now();
    s.on_failure(HostId(1), now, 6);
    assert_eq!(s.snapshot()[0].failed_at, Some(6));
    // The 4× probe just below the failed level.
    assert_eq!(s.limit(HostId(1)), Some(5));
    clock.advance(ALMOST_DECAY);
    assert_eq!(s.snapshot()[0].failed_at, Some(6));
    clock.advance(Duration::from_secs(1));
    // The failed level itself may be probed again.
    assert_eq!(s.snapshot()[0].failed_at, Some(7));
    assert_eq!(s.limit(HostId(1)), Some(6));
    clock.advance(DECAY);
    assert_eq!(s.snapshot()[0].failed_at, Some(8));
    assert_eq!(s.limit(HostId(1)), Some(7));
    // Failing again there caps it again, for another full period.
    s.on_failure(HostId(1), clock.now(), 7);
    assert_eq!(s.snapshot()[0].failed_at, Some(7));
    clock.advance(ALMOST_DECAY);
    assert_eq!(s.snapshot()[0].failed_at, Some(7));
}

#[test]
fn passes_at_or_above_a_failing_level_do_not_come_back_when_it_decays() {
    let clock = ManualClock::new();
    let mut s = starts(&clock, &[]);
    for _ in 0..2 {
        s.on_confirmed(HostId(1), 16);
    }
    s.on_failure(HostId(1), clock.now(), 12);
    clock.advance(DECAY * 10);
    // One more pass at 16 makes 1, not 3: no promotion.
    assert!(s.on_confirmed(HostId(1), 16).is_none());
    assert_eq!(s.snapshot()[0].confirmed, 0);
}

#[test]
fn a_class_resumes_at_its_journaled_limit_and_changes_are_handed_out_once() {
    let clock = ManualClock::new();
    let learned = LearnedStartLimit {
        capacity: 300,
        version: "v2".into(),
        limit: 10,
        confirmed: 10,
        failed_at: Some(12),
    };
    let mut s = starts(&clock, std::slice::from_ref(&learned));
    assert_eq!(s.limit(HostId(2)), Some(10));
    let report = s.snapshot();
    assert_eq!((report[0].confirmed, report[0].failed_at), (10, Some(12)));
    // Probes stay below the journaled failed level.
    assert_eq!(s.limit(HostId(0)), Some(11));
    assert!(s.take_changed().is_empty());
    s.on_failure(HostId(2), clock.now(), 10);
    let changed = s.take_changed();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].failed_at, Some(10));
    assert!(changed[0].limit < 10);
    assert!(s.take_changed().is_empty());
}
