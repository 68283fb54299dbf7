//! Runs independent simulations on all cores, keeping results in input order
//! (so output does not depend on scheduling).
//!
//! Every item runs on a thread of its own: library types may keep
//! per-thread state (e.g. sampling counters), and a thread reused for a
//! second simulation would carry it over, making results depend on which
//! runs happened to share a thread.

/// `items.iter().map(f)`, at most `available_parallelism` at a time, each
/// on a fresh thread.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .max(1);
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(threads) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|item| scope.spawn(|| f(item))).collect();
            for handle in handles {
                match handle.join() {
                    Ok(r) => results.push(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_input_order() {
        let items: Vec<u32> = (0..17).collect();
        assert_eq!(
            map(&items, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}
