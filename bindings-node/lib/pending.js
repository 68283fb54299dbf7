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
//
// A CircuitBreaker defers a success record the same way (to its next acquire, one crossing for
// both; see lib/breaker.js) and registers here with `later(owner)` so that the timer reports it
// too: `owner.flushDeferred()` is called at the next flush.

/** Longest delay of a report, in ms. */
const FLUSH_AFTER_MS = 10;
/** Oks waiting that force a report at once. */
const MAX_PENDING = 1024;

/** Entries (`{ n, pending }`: a native policy's bound methods and its unreported oks) with oks waiting. */
let dirty = [];
let waiting = 0;
let timer;
/** Owners (`{ flushDeferred() }`) with a deferred record, reported at the next flush. */
let owners = [];

/** Reports every waiting ok and deferred record. Never throws. */
function flush() {
  if (owners.length !== 0) {
    const list = owners;
    owners = [];
    for (const owner of list) {
      try {
        owner.flushDeferred();
      } catch {
        // As below: nothing to report to.
      }
    }
  }
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
    if (dirty.length === 1 && owners.length === 0) arm();
  }
  if (++waiting >= MAX_PENDING) flush();
}

/** `owner` has deferred a record: `owner.flushDeferred()` at the next flush (register once until then). */
function later(owner) {
  owners.push(owner);
  if (owners.length === 1 && dirty.length === 0) arm();
}

/** Oks not reported yet (for tests). */
function waitingCount() {
  return waiting;
}

module.exports = { ok, later, flush, waitingCount, FLUSH_AFTER_MS, MAX_PENDING };
