//! Invariants of child deadlines over random offsets.

use std::time::Duration;

use proptest::prelude::*;
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::deadline::Deadline;

proptest! {
    #[test]
    fn a_child_never_outlives_its_parent(
        parent_ms in 0u64..100_000,
        children_ms in prop::collection::vec(0u64..200_000, 1..8),
        elapsed_ms in 0u64..150_000,
    ) {
        let clock = ManualClock::new();
        let parent = Deadline::after(clock.clone(), Duration::from_millis(parent_ms));
        clock.advance(Duration::from_millis(elapsed_ms));
        let mut current = parent.clone();
        for child_ms in children_ms {
            let limit = Duration::from_millis(child_ms);
            let child = current.child(limit);
            prop_assert!(child.instant() <= current.instant());
            prop_assert!(child.instant() <= parent.instant());
            prop_assert!(child.remaining() <= limit);
            prop_assert!(child.remaining() <= parent.remaining());
            prop_assert_eq!(child.is_expired(), child.remaining().is_zero());
            prop_assert_eq!(
                child.instant(),
                current.instant().map(|at| at.min(clock.now() + limit))
            );
            current = child;
        }
    }
}
