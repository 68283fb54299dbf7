//! Per-thread striping for counters that many threads bump at once: a few
//! cache-padded slots, one picked per thread, so that threads which only
//! count do not fight over one cache line. Used by the retry budget's
//! deposits and the circuit breaker's closed-state successes.

/// Most stripes a counter gets (the parallelism is rounded up to a power of
/// two and capped here).
#[cfg_attr(breakwater_loom, allow(dead_code))]
const MAX_STRIPES: usize = 8;

/// A value alone on its cache line(s): 128 bytes covers the adjacent-line
/// prefetcher of current x86 parts.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// Number of stripes: the parallelism rounded up to a power of two, at most
/// [`MAX_STRIPES`] (two under loom).
pub(crate) fn stripe_count() -> usize {
    #[cfg(breakwater_loom)]
    {
        2
    }
    #[cfg(not(breakwater_loom))]
    {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_STRIPES)
            .next_power_of_two()
    }
}

/// The stripe of the calling thread among `stripes` (a non-empty
/// power-of-two slice, from [`stripe_count`]).
#[allow(clippy::indexing_slicing)] // masked by `len - 1` of a non-empty power-of-two slice
pub(crate) fn pick<T>(stripes: &[Padded<T>]) -> &T {
    &stripes[index(stripes.len())].0
}

/// The calling thread's stripe among `len` (a power of two, from
/// [`stripe_count`]).
pub(crate) fn index(len: usize) -> usize {
    thread_index() & len.saturating_sub(1)
}

/// A small per-thread number.
#[cfg(not(breakwater_loom))]
fn thread_index() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

#[cfg(breakwater_loom)]
fn thread_index() -> usize {
    use std::hash::{Hash, Hasher};
    // loom's `ThreadId` hashes its execution id too; its `Debug` form
    // ("ThreadId(n)") is the same in every execution, as loom requires.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{:?}", loom::thread::current().id()).hash(&mut hasher);
    hasher.finish() as usize
}

#[cfg(all(test, not(breakwater_loom)))]
mod tests {
    use super::*;

    #[test]
    fn stripe_count_is_a_power_of_two() {
        let n = stripe_count();
        assert!(n.is_power_of_two() && n <= MAX_STRIPES);
    }

    #[test]
    fn a_thread_keeps_its_stripe() {
        let stripes: Vec<Padded<u32>> = (0..4).map(Padded).collect();
        let first: *const u32 = pick(&stripes);
        assert!(std::ptr::eq(first, pick(&stripes)));
    }
}
