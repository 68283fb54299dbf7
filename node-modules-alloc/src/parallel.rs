//! Splitting file-system work over the cores: contiguous slices, one thread each.
//!
//! Why: laying a tree out and re-hashing its store files are thousands of independent system
//! calls (or reads); one thread leaves the other cores idle while every call waits in the
//! kernel. A few threads, each over a contiguous slice of sorted work (so each keeps its
//! directories open and its cache warm), finish in a fraction of the time. Starting a thread
//! costs about as much as a few dozen such calls, so small jobs stay on the caller's thread.

use std::num::NonZero;

/// At most this many workers, whatever the number of cores: beyond it they mostly wait for
/// each other on the filesystem's locks.
pub(crate) const MAX_WORKERS: usize = 8;

/// How many workers share `items` items: one per core, at most [`MAX_WORKERS`], each with at
/// least `min_per_worker` items (at least one worker).
pub(crate) fn workers_for(items: usize, min_per_worker: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
    cores
        .min(MAX_WORKERS)
        .min(items / min_per_worker.max(1))
        .max(1)
}

/// Runs `work` over `items` split into `workers` contiguous slices (in order), the first on the
/// calling thread and the others on scoped threads named `name`; returns the results in slice
/// order. A slice whose thread cannot be started runs on the calling thread. A panicking worker
/// panics the caller, as sequential code would.
pub(crate) fn run_slices<'a, T, R, F>(items: &'a [T], workers: usize, name: &str, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&'a [T]) -> R + Sync,
{
    let per_worker = items.len().div_ceil(workers.max(1)).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let mut slices = items.chunks(per_worker);
        let first = slices.next().unwrap_or_default();
        // In slice order: a started thread, or a slice to work on in line.
        let mut rest = Vec::new();
        for slice in slices {
            match std::thread::Builder::new()
                .name(name.to_owned())
                .spawn_scoped(scope, move || work(slice))
            {
                Ok(handle) => rest.push(Ok(handle)),
                Err(e) => {
                    tracing::debug!(error = %e, worker = name, "cannot start a worker; working in line");
                    rest.push(Err(slice));
                }
            }
        }
        let mut results = vec![work(first)];
        for next in rest {
            match next {
                Ok(handle) => match handle.join() {
                    Ok(result) => results.push(result),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(slice) => results.push(work(slice)),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_item_once_in_order() {
        let items: Vec<usize> = (0..1000).collect();
        for workers in [1, 2, 3, 7, 1000, 5000] {
            let results = run_slices(&items, workers, "test", <[usize]>::to_vec);
            assert!(results.len() <= workers.max(1));
            assert_eq!(results.concat(), items, "{workers} workers");
        }
        assert_eq!(run_slices(&[] as &[u8], 4, "test", <[u8]>::len), vec![0]);
    }

    #[test]
    fn small_jobs_stay_on_one_worker() {
        assert_eq!(workers_for(10, 256), 1);
        assert_eq!(workers_for(0, 0), 1);
        assert!(workers_for(1 << 20, 1) <= MAX_WORKERS);
    }
}
