'use strict';
// Batched reports of retry runs whose first attempt succeeded ("oks").
//
// Such a run needs no decision, only bookkeeping in the Rust RetryPolicy (count the run, the
// attempt and the success, deposit into the budget), and one crossing into Rust costs more
// than the rest of the run. So `retry` counts oks here per native policy and reports them in
// one `ok(count)` call:
//   - before anything reads or changes a policy or a budget (a failed run's decisions, any
//     RetryBudget or KeyedRetryBudget method, RetryPolicy#stats): `flush()`, so every reader
//     sees every deposit made before it, in order, and a policy's run numbers (its seeded
//     jitter) are those of unbatched runs;
//   - at the latest FLUSH_AFTER_MS after the first unreported ok (an unref'd timer: it never
//     keeps the process alive), so a deposit starts its budget TTL at most that much late;
//   - at once when MAX_PENDING oks are waiting.
// The algorithm stays in Rust: this only delays when it hears of successes.

/** Longest delay of a report, in ms. */
const FLUSH_AFTER_MS = 10;
/** Oks waiting that force a report at once. */
const MAX_PENDING = 1024;

/** Entries (`{ n, pending }`: a native policy's bound methods and its unreported oks) with oks waiting. */
let dirty = [];
let waiting = 0;
let timer;

/** Reports every waiting ok. Never throws. */
function flush() {
  if (dirty.length === 0) return;
  const entries = dirty;
  dirty = [];
  waiting = 0;
  for (const entry of entries) {
    const count = entry.pending;
    if (count === 0) continue;
    entry.pending = 0;
    try {
      entry.n.ok(count);
    } catch {
      // Counters only; a failure here cannot be reported to any caller.
    }
  }
}

function arm() {
  if (timer === undefined) {
    timer = setTimeout(flush, FLUSH_AFTER_MS);
    timer.unref();
  } else {
    timer.refresh();
  }
}

/** One run of `entry`'s policy succeeded at its first attempt. */
function ok(entry) {
  if (entry.pending++ === 0) {
    dirty.push(entry);
    if (dirty.length === 1) arm();
  }
  if (++waiting >= MAX_PENDING) flush();
}

/** Oks not reported yet (for tests). */
function waitingCount() {
  return waiting;
}

module.exports = { ok, flush, waitingCount, FLUSH_AFTER_MS, MAX_PENDING };
