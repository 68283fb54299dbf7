//! Closed-state successes counted without the breaker's lock.
//!
//! In the closed state a fast success can never trip the breaker, so it does
//! not need the lock: it is counted in a per-thread stripe, and the counts
//! are folded into the window under the lock by the next operation that
//! takes it (a failure, a slow call, a read of the metrics, a transition),
//! before that operation does anything else. A run of calls therefore sees
//! exactly the window it would see if every success had taken the lock.
//!
//! Each stripe word packs `tag << 32 | count`. The tag names the epoch and
//! the window bucket the counts belong to; it is written only under the
//! lock (when the counts are taken), and a success only counts itself on a
//! stripe whose tag is its own, with a compare-exchange, so a count never
//! lands in another epoch or bucket than the one it was tagged with, and
//! taking the counts (a swap) never loses or repeats one.

use std::sync::atomic::Ordering;

use crate::stripe::{self, Padded};
use crate::sync::AtomicU64;

const COUNT_MASK: u64 = (1 << 32) - 1;
/// A stripe this full sends its successes through the lock (which empties
/// it), long before the 32-bit count could overflow.
const FLUSH_AT: u64 = 1 << 31;

/// A tag no success carries: published while a success could still trip
/// the breaker (the window holds fewer than `minimum_calls` calls: one more
/// call can bring the rate rules into force), so that every success takes
/// the lock and the trip check runs on it.
pub(super) const LOCKED: u64 = 1 << 31;

/// The tag of an epoch and bucket: 16 bits of epoch, 15 of bucket. Two
/// different pairs share a tag only 65,536 transitions or 32,768 buckets
/// apart, far more than a call can be in flight between reading its tag and
/// counting itself; even then, one success would land in the wrong window.
pub(super) fn tag(epoch: u64, bucket: u64) -> u64 {
    ((epoch & 0xFFFF) << 15) | (bucket & 0x7FFF)
}

#[derive(Debug)]
pub(super) struct Tally {
    stripes: Box<[Padded<AtomicU64>]>,
}

impl Tally {
    pub(super) fn new(tag: u64) -> Self {
        Tally {
            stripes: (0..stripe::stripe_count())
                .map(|_| Padded(AtomicU64::new(tag << 32)))
                .collect(),
        }
    }

    /// Counts one success under `tag`; `false` (nothing counted) when the
    /// stripe carries another tag or is full: the caller takes the lock.
    pub(super) fn try_count(&self, tag: u64) -> bool {
        let stripe = stripe::pick(&self.stripes);
        let mut word = stripe.load(Ordering::Acquire);
        loop {
            if word >> 32 != tag || word & COUNT_MASK >= FLUSH_AT {
                return false;
            }
            match stripe.compare_exchange_weak(word, word + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(current) => word = current,
            }
        }
    }

    /// Takes every stripe's count (under the breaker's lock) and retags the
    /// stripes with `tag`.
    pub(super) fn take(&self, tag: u64) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.0.swap(tag << 32, Ordering::AcqRel) & COUNT_MASK)
            .sum()
    }
}
