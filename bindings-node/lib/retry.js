'use strict';
// `retry(fn, options)` and `RetryPolicy`: the loop runs here, in JS, and
// awaits the user's function; every decision (deposit, may I retry, how long
// to wait, the Retry-After cap, the deadline check) is the Rust
// RetryPolicy's, asked through synchronous calls. A first attempt that
// succeeds does not cross into Rust at once: it is counted in lib/pending.js
// and reported in batches (`ok(count)`); the first failure creates a native
// run that decides each further step.
//
// `retry(fn, options)` validates its options on every call (cheap checks in
// JS) and shares one native policy between calls whose options have equal
// field values (see `planOf`), so an options object written inline costs the
// same as a reused one.
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { codes, codedError, abortError, isAbortError, typeError } = require('./errors');
const { RetryBudget, budgetKey } = require('./budget');
const { Backoff, backoffOptions } = require('./backoff');
const { CircuitBreaker } = require('./breaker');
const { ConcurrencyLimit } = require('./limit');
const { AdaptiveLimit } = require('./adaptive');
const { RateLimiter } = require('./rate');
const { AdaptiveThrottle } = require('./throttle');
const { kExecute, callHook } = require('./policy');
const pending = require('./pending');

const POLICY_KEYS = [
  'maxAttempts', 'budget', 'backoff', 'retryable', 'deadlineMs', 'maxRetryAfterMs', 'seed',
  'breaker', 'limit', 'onRetry', 'onGiveUp',
];
const LIMITS = [ConcurrencyLimit, AdaptiveLimit, RateLimiter, AdaptiveThrottle];
const RETRY_KEYS = [...POLICY_KEYS, 'signal'];
const EXECUTE_KEYS = ['signal', 'deadlineMs'];

// Stop codes returned by NativeRetryRun.onFailure (see src/retry.rs).
const STOP = {
  [-1]: [codes.ATTEMPTS_EXHAUSTED, 'all attempts failed'],
  [-2]: [codes.BUDGET_EXHAUSTED, 'retry budget exhausted'],
  [-3]: [codes.DEADLINE_EXCEEDED, 'deadline exceeded'],
  [-4]: [codes.NOT_RETRYABLE, 'error is not retryable'],
};

const NEVER = new AbortController().signal;
const FIRST = Object.freeze({ attempt: 1, signal: NEVER });

/** The default classifier: everything is retryable except invalid arguments and cancellations. */
function defaultRetryable(err) {
  return !(err !== null && typeof err === 'object' && (err.code === codes.INVALID_ARG || isAbortError(err)));
}

function hintOf(err) {
  if (err === null || typeof err !== 'object') return -1;
  const ms = err.retryAfterMs;
  return typeof ms === 'number' && ms >= 0 && ms < Infinity ? ms : -1;
}

function describeError(err) {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return typeof err;
  }
}

function stopError(code, why, attempts, lastError, hasError) {
  const plural = attempts === 1 ? 'attempt' : 'attempts';
  const message = hasError
    ? `${why} after ${attempts} ${plural}: ${describeError(lastError)}`
    : `${why} after ${attempts} ${plural}`;
  return codedError(code, message, { attempts }, hasError ? lastError : undefined);
}

function signalOption(name, value) {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || typeof value.aborted !== 'boolean' || typeof value.addEventListener !== 'function') {
    throw require('./errors').typeError(`\`${name}\` must be an AbortSignal, got ${v.describe(value)}`);
  }
  return value;
}

function deadlineOption(name, value) {
  return v.number(name, value, { min: 0, max: limits.maxU31 });
}

const backoffs = new WeakMap();

/** Equal validated backoff options give equal keys (a number's string form is exact). */
function backoffKey(b) {
  return `${b.baseMs},${b.maxMs},${b.factor},${b.jitter},${b.maxAttempts},${b.seed}`;
}

/** A Backoff's validated options and their key, computed once (a Backoff's options never change). */
function backoffOf(backoff) {
  let known = backoffs.get(backoff);
  if (known === undefined) {
    const options = backoff.options;
    known = { options, key: backoffKey(options) };
    backoffs.set(backoff, known);
  }
  return known;
}

/**
 * Validates policy options (unknown keys are the caller's check). Returns the checked fields,
 * with `backoff` as the native side takes it and `backoffKey` naming its values.
 */
function policyOptions(o) {
  const maxAttempts = v.number('maxAttempts', o.maxAttempts, { min: 1, max: 2 ** 32 - 1, integer: true });
  const budget = v.instance('budget', o.budget, RetryBudget);
  let backoff;
  let keyOfBackoff;
  if (o.backoff instanceof Backoff) {
    const known = backoffOf(o.backoff);
    backoff = known.options;
    keyOfBackoff = known.key;
  } else if (o.backoff !== undefined) {
    backoff = backoffOptions('backoff', o.backoff);
    keyOfBackoff = backoffKey(backoff);
  }
  const retryable = v.func('retryable', o.retryable);
  const deadlineMs = deadlineOption('deadlineMs', o.deadlineMs);
  const maxRetryAfterMs = v.number('maxRetryAfterMs', o.maxRetryAfterMs, { min: 0, max: Number.MAX_SAFE_INTEGER });
  const seed = v.number('seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true });
  const breaker = v.instance('breaker', o.breaker, CircuitBreaker);
  if (o.limit !== undefined && !LIMITS.some((Class) => o.limit instanceof Class)) {
    throw typeError(
      `\`limit\` must be a ConcurrencyLimit, AdaptiveLimit, RateLimiter or AdaptiveThrottle, got ${v.describe(o.limit)}`,
    );
  }
  return {
    maxAttempts,
    budget,
    backoff,
    backoffKey: keyOfBackoff,
    retryable,
    deadlineMs,
    maxRetryAfterMs,
    seed,
    breaker,
    limit: o.limit,
    onRetry: v.func('onRetry', o.onRetry),
    onGiveUp: v.func('onGiveUp', o.onGiveUp),
  };
}

/** A new native policy: its bound methods `n` and its oks not reported yet (lib/pending.js). */
function nativeEntry(c) {
  const n = native.retryPolicyCreate({
    maxAttempts: c.maxAttempts,
    backoff: c.backoff,
    maxRetryAfterMs: c.maxRetryAfterMs,
    budget: c.budget === undefined ? undefined : budgetKey(c.budget),
    seed: c.seed,
  });
  return { n, pending: 0, plain: undefined, maxAttempts: undefined, backoffKey: undefined, maxRetryAfterMs: undefined, seed: undefined };
}

/** What a run needs: the native entry and the checked JS-side options. */
function planFor(entry, c) {
  return {
    entry,
    retryable: c.retryable ?? defaultRetryable,
    deadlineMs: c.deadlineMs,
    breaker: c.breaker,
    limit: c.limit,
    onRetry: c.onRetry,
    onGiveUp: c.onGiveUp,
  };
}

/**
 * `fn` with each attempt run through `limit` (outermost: a shed attempt never reaches the
 * breaker) and then `breaker`, when given.
 */
function guardAttempts(fn, breaker, limit) {
  const signalOf = (ctx) => (ctx.signal === NEVER ? undefined : ctx.signal);
  const throughBreaker = breaker === undefined ? fn : (ctx) => breaker[kExecute](() => fn(ctx), signalOf(ctx));
  return limit === undefined ? throughBreaker : (ctx) => limit[kExecute](() => throughBreaker(ctx), signalOf(ctx));
}

/** Sleeps `ms`, or rejects as soon as `signal` aborts (clearing the timer). */
function sleep(ms, signal) {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Marks why a run's internal controller aborted. */
const DEADLINE = Symbol('deadline');

/** Calls onRetry before a retry is delayed. */
function retrying(plan, attempt, delayMs, error) {
  if (plan.onRetry !== undefined) callHook(plan.onRetry, { attempt, delayMs, error }, "retry 'onRetry' hook");
}

/** Calls onGiveUp with the error the run is about to reject with; returns it. */
function givingUp(plan, err) {
  if (plan.onGiveUp !== undefined) {
    callHook(plan.onGiveUp, { attempts: err.attempts, code: err.code, error: err.cause, reason: err }, "retry 'onGiveUp' hook");
  }
  return err;
}

/** The native policy of `plan`, after every batched ok was reported (so run numbers and deposits are in order). */
function nativeOf(plan) {
  pending.flush();
  return plan.entry.n;
}

/** The loop; arguments already validated. */
async function runPlan(plan, fn, signal, deadlineMs) {
  if (plan.breaker !== undefined || plan.limit !== undefined) fn = guardAttempts(fn, plan.breaker, plan.limit);
  if (signal === undefined && deadlineMs === undefined) {
    // The hot path: no timers, no listeners, no crossing on success.
    let value;
    try {
      value = await fn(FIRST);
    } catch (err) {
      return retryAfterFailure(plan, fn, err);
    }
    pending.ok(plan.entry);
    return value;
  }
  return runGuarded(plan, fn, signal, deadlineMs);
}

async function retryAfterFailure(plan, fn, firstError) {
  const run = nativeOf(plan).run();
  let err = firstError;
  let attempt = 1;
  for (;;) {
    const delay = run.onFailure(Boolean(plan.retryable(err)), hintOf(err), Infinity);
    if (delay < 0) {
      const [code, why] = STOP[delay];
      throw givingUp(plan, stopError(code, why, attempt, err, true));
    }
    retrying(plan, attempt, delay, err);
    if (delay > 0) await sleep(delay);
    attempt = run.beginAttempt();
    try {
      const value = await fn({ attempt, signal: NEVER });
      run.onSuccess();
      return value;
    } catch (e) {
      err = e;
    }
  }
}

async function runGuarded(plan, fn, userSignal, deadlineMs) {
  if (userSignal !== undefined && userSignal.aborted) throw abortError(userSignal);
  const started = performance.now();
  const controller = new AbortController();
  const signal = controller.signal;
  const onUserAbort = () => controller.abort(userSignal.reason);
  if (userSignal !== undefined) userSignal.addEventListener('abort', onUserAbort, { once: true });
  let deadlineTimer;
  if (deadlineMs !== undefined) {
    deadlineTimer = setTimeout(() => controller.abort(DEADLINE), deadlineMs);
  }
  // Settles (rejects) when the run is aborted by the caller or the deadline.
  const aborted = new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  aborted.catch(() => {});
  const remaining = () => (deadlineMs === undefined ? Infinity : deadlineMs - (performance.now() - started));

  let run;
  let err;
  let hasError = false;
  let begun = 0;
  try {
    let attempt = 1;
    for (;;) {
      if (signal.aborted || remaining() <= 0) break;
      begun = attempt;
      try {
        const value = await Promise.race([fn({ attempt, signal }), aborted]);
        if (run === undefined) pending.ok(plan.entry);
        else run.onSuccess();
        return value;
      } catch (e) {
        if (signal.aborted) break;
        err = e;
        hasError = true;
      }
      run ??= nativeOf(plan).run();
      const delay = run.onFailure(Boolean(plan.retryable(err)), hintOf(err), remaining());
      if (delay < 0) {
        const [code, why] = STOP[delay];
        throw givingUp(plan, stopError(code, why, attempt, err, true));
      }
      retrying(plan, attempt, delay, err);
      try {
        if (delay > 0) await sleep(delay, signal);
      } catch {
        break;
      }
      if (remaining() <= 0) break;
      attempt = run.beginAttempt();
    }
    // Aborted by the caller, or the deadline passed. An attempt was made
    // unless the deadline passed before the first one could start.
    const attemptMade = begun > 0;
    if (userSignal !== undefined && userSignal.aborted && signal.reason !== DEADLINE) {
      // Like a dropped Rust future: the run and its first attempt count
      // (the first attempt deposits), no outcome does.
      if (run === undefined) nativeOf(plan).run();
      throw abortError(userSignal);
    }
    if (run !== undefined) {
      const attempts = run.attempts;
      run.stopAtDeadline();
      throw givingUp(plan, stopError(codes.DEADLINE_EXCEEDED, `deadline of ${deadlineMs} ms exceeded`, attempts, err, hasError));
    }
    if (attemptMade) nativeOf(plan).run().stopAtDeadline();
    else nativeOf(plan).expired();
    throw givingUp(plan, stopError(codes.DEADLINE_EXCEEDED, `deadline of ${deadlineMs} ms exceeded`, attemptMade ? 1 : 0, err, hasError));
  } finally {
    if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
    if (userSignal !== undefined) userSignal.removeEventListener('abort', onUserAbort);
  }
}

/**
 * A validated, reusable retry configuration with its own native policy and
 * counters. `retry(fn, options)` shares one native policy between calls
 * whose options have equal field values; build a RetryPolicy to have
 * counters of your own.
 */
class RetryPolicy {
  #plan;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, POLICY_KEYS);
    const checked = policyOptions(o);
    this.#plan = planFor(nativeEntry(checked), checked);
  }

  /** @internal The execute protocol (lib/policy.js): `fn` gets `{ attempt, signal }`. */
  [kExecute](fn, signal) {
    return runPlan(this.#plan, fn, signal, this.#plan.deadlineMs);
  }

  /**
   * Runs `fn({ attempt, signal })` until it resolves or the policy gives up.
   * Never throws synchronously: invalid arguments reject.
   */
  execute(fn, options) {
    try {
      if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
      let signal;
      let deadlineMs = this.#plan.deadlineMs;
      if (options !== undefined) {
        const o = v.options('options', options);
        v.knownKeys('options', o, EXECUTE_KEYS);
        signal = signalOption('signal', o.signal);
        if (o.deadlineMs !== undefined) deadlineMs = deadlineOption('deadlineMs', o.deadlineMs);
      }
      return runPlan(this.#plan, fn, signal, deadlineMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Counters since creation (shared by every run of this policy). */
  stats() {
    return nativeOf(this.#plan).stats();
  }

  /** @internal The loop; arguments already validated. */
  _run(fn, signal, deadlineMs) {
    return runPlan(this.#plan, fn, signal, deadlineMs);
  }
}

// Native policies shared by `retry` calls, by field values: one table per budget (dropped with
// it), one for calls without a budget. An entry is found by every option the native policy is
// built from (maxAttempts, backoff, maxRetryAfterMs, seed); the other options live in the plan,
// per call. A table remembers the entry it returned last (calls with one budget mostly repeat
// the same options: no key to build or hash) and keeps its SHARED_PER_TABLE newest entries.
const SHARED_PER_TABLE = 32;
const byBudget = new WeakMap();
const unbudgeted = { last: undefined, entries: new Map(), memo: undefined };

function sameNative(entry, c) {
  return (
    entry.maxAttempts === c.maxAttempts &&
    entry.backoffKey === c.backoffKey &&
    entry.maxRetryAfterMs === c.maxRetryAfterMs &&
    entry.seed === c.seed
  );
}

function nativeKey(c) {
  return `${c.maxAttempts}|${c.maxRetryAfterMs}|${c.seed}|${c.backoffKey}`;
}

/** The shared native policy for the checked options `c`. */
function sharedEntry(c) {
  let table = unbudgeted;
  if (c.budget !== undefined) {
    table = byBudget.get(c.budget);
    if (table === undefined) {
      table = { last: undefined, entries: new Map(), memo: undefined };
      byBudget.set(c.budget, table);
    }
  }
  if (table.last !== undefined && sameNative(table.last, c)) return table.last;
  const key = nativeKey(c);
  let entry = table.entries.get(key);
  if (entry === undefined) {
    entry = nativeEntry(c);
    entry.maxAttempts = c.maxAttempts;
    entry.backoffKey = c.backoffKey;
    entry.maxRetryAfterMs = c.maxRetryAfterMs;
    entry.seed = c.seed;
    if (table.entries.size >= SHARED_PER_TABLE) table.entries.delete(table.entries.keys().next().value);
    table.entries.set(key, entry);
  }
  table.last = entry;
  return entry;
}

/**
 * Whether `o` holds exactly the values `memo` was validated and planned with. Only values whose
 * validity cannot change are remembered: primitives, functions and instances (a Backoff's
 * options never change); never a plain `backoff` object, which may be mutated.
 */
function sameRaw(memo, o) {
  return (
    memo.maxAttempts === o.maxAttempts &&
    memo.backoff === o.backoff &&
    memo.retryable === o.retryable &&
    memo.deadlineMs === o.deadlineMs &&
    memo.maxRetryAfterMs === o.maxRetryAfterMs &&
    memo.seed === o.seed &&
    memo.breaker === o.breaker &&
    memo.limit === o.limit &&
    memo.onRetry === o.onRetry &&
    memo.onGiveUp === o.onGiveUp
  );
}

/**
 * The plan of one `retry` call: validates `o` and finds (or builds) the native policy for its
 * values. Each table remembers the raw option values of its last validated call: a call with
 * the same values (an options object written inline in a loop, or a reused one) skips
 * re-validating them.
 */
function planOf(o) {
  v.knownKeys('options', o, RETRY_KEYS);
  const table = o.budget === undefined ? unbudgeted : byBudget.get(o.budget);
  const memo = table?.memo;
  if (memo !== undefined && sameRaw(memo, o)) return memo.plan;
  const c = policyOptions(o);
  const entry = sharedEntry(c);
  let plan;
  if (c.retryable === undefined && c.breaker === undefined && c.limit === undefined && c.onRetry === undefined && c.onGiveUp === undefined) {
    // The common case: no per-call options beyond the native ones; deadlineMs is passed per run.
    entry.plain ??= planFor(entry, { ...c, deadlineMs: undefined });
    plan = entry.plain;
  } else {
    plan = planFor(entry, c);
  }
  if (o.backoff === undefined || o.backoff instanceof Backoff) {
    (c.budget === undefined ? unbudgeted : byBudget.get(c.budget)).memo = {
      maxAttempts: o.maxAttempts,
      backoff: o.backoff,
      retryable: o.retryable,
      deadlineMs: o.deadlineMs,
      maxRetryAfterMs: o.maxRetryAfterMs,
      seed: o.seed,
      breaker: o.breaker,
      limit: o.limit,
      onRetry: o.onRetry,
      onGiveUp: o.onGiveUp,
      plan,
    };
  }
  return plan;
}

let defaultPlan;

/**
 * Runs `fn({ attempt, signal })` until it resolves, retrying failures as the
 * options allow. Resolves with fn's value; rejects with an error whose
 * `code` says why retrying stopped and whose `cause` is the last error, or
 * with an AbortError when `signal` aborts. Never throws synchronously.
 *
 * The options are validated on every call, and calls whose options have
 * equal values share one native policy, so an options object written inline
 * costs the same as a reused one.
 */
function retry(fn, options) {
  try {
    if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
    if (options === undefined) {
      defaultPlan ??= planOf({});
      return runPlan(defaultPlan, fn, undefined, undefined);
    }
    if (options === null || typeof options !== 'object' || Array.isArray(options)) v.options('options', options);
    const plan = planOf(options);
    const signal = options.signal === undefined ? undefined : signalOption('signal', options.signal);
    return runPlan(plan, fn, signal, options.deadlineMs);
  } catch (err) {
    return Promise.reject(err);
  }
}

module.exports = { retry, RetryPolicy, defaultRetryable, sleep, NEVER };
