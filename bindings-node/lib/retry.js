'use strict';
// `retry(fn, options)` and `RetryPolicy`: the loop runs here, in JS, and
// awaits the user's function; every decision (deposit, may I retry, how long
// to wait, the Retry-After cap, the deadline check) is the Rust
// RetryPolicy's, asked through synchronous calls. A first attempt that
// succeeds crosses into Rust once (`retryOk`); the first failure creates a
// native run that decides each further step.
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

/** Validates policy options and returns [native options, retryable, deadlineMs]. */
function policyOptions(o) {
  const maxAttempts = v.number('maxAttempts', o.maxAttempts, { min: 1, max: 2 ** 32 - 1, integer: true });
  const budget = v.instance('budget', o.budget, RetryBudget);
  let backoff;
  if (o.backoff instanceof Backoff) {
    backoff = o.backoff.options;
  } else if (o.backoff !== undefined) {
    backoff = backoffOptions('backoff', o.backoff);
  }
  const retryable = v.func('retryable', o.retryable) ?? defaultRetryable;
  const deadlineMs = deadlineOption('deadlineMs', o.deadlineMs);
  const maxRetryAfterMs = v.number('maxRetryAfterMs', o.maxRetryAfterMs, { min: 0, max: Number.MAX_SAFE_INTEGER });
  const seed = v.number('seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true });
  const nativeOptions = {
    maxAttempts,
    backoff,
    maxRetryAfterMs,
    budget: budget === undefined ? undefined : budgetKey(budget),
    seed,
  };
  const breaker = v.instance('breaker', o.breaker, CircuitBreaker);
  if (o.limit !== undefined && !LIMITS.some((Class) => o.limit instanceof Class)) {
    throw typeError(
      `\`limit\` must be a ConcurrencyLimit, AdaptiveLimit, RateLimiter or AdaptiveThrottle, got ${v.describe(o.limit)}`,
    );
  }
  const hooks = { onRetry: v.func('onRetry', o.onRetry), onGiveUp: v.func('onGiveUp', o.onGiveUp) };
  return [nativeOptions, retryable, deadlineMs, { breaker, limit: o.limit, ...hooks }];
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

/**
 * A validated, reusable retry configuration. `retry(fn, options)` builds one
 * per options object; build one yourself to share it explicitly.
 */
class RetryPolicy {
  /** Bound native methods (see src/retry.rs). */
  #n;
  #retryable;
  #deadlineMs;
  #breaker;
  #limit;
  #onRetry;
  #onGiveUp;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, POLICY_KEYS);
    const [nativeOptions, retryable, deadlineMs, extra] = policyOptions(o);
    this.#n = native.retryPolicyCreate(nativeOptions);
    this.#retryable = retryable;
    this.#deadlineMs = deadlineMs;
    this.#breaker = extra.breaker;
    this.#limit = extra.limit;
    this.#onRetry = extra.onRetry;
    this.#onGiveUp = extra.onGiveUp;
  }

  /** @internal The execute protocol (lib/policy.js): `fn` gets `{ attempt, signal }`. */
  [kExecute](fn, signal) {
    return this._run(fn, signal, this.#deadlineMs);
  }

  /** Calls onRetry before a retry is delayed. */
  #retrying(attempt, delayMs, error) {
    if (this.#onRetry !== undefined) callHook(this.#onRetry, { attempt, delayMs, error }, "retry 'onRetry' hook");
  }

  /** Calls onGiveUp with the error the run is about to reject with; returns it. */
  #givingUp(err) {
    if (this.#onGiveUp !== undefined) {
      callHook(this.#onGiveUp, { attempts: err.attempts, code: err.code, error: err.cause, reason: err }, "retry 'onGiveUp' hook");
    }
    return err;
  }

  /**
   * Runs `fn({ attempt, signal })` until it resolves or the policy gives up.
   * Never throws synchronously: invalid arguments reject.
   */
  execute(fn, options) {
    try {
      if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
      let signal;
      let deadlineMs = this.#deadlineMs;
      if (options !== undefined) {
        const o = v.options('options', options);
        v.knownKeys('options', o, EXECUTE_KEYS);
        signal = signalOption('signal', o.signal);
        if (o.deadlineMs !== undefined) deadlineMs = deadlineOption('deadlineMs', o.deadlineMs);
      }
      return this._run(fn, signal, deadlineMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Counters since creation (shared by every run of this policy). */
  stats() {
    return this.#n.stats();
  }

  /** @internal The loop; arguments already validated. */
  async _run(fn, signal, deadlineMs) {
    if (this.#breaker !== undefined || this.#limit !== undefined) fn = guardAttempts(fn, this.#breaker, this.#limit);
    if (signal === undefined && deadlineMs === undefined) {
      // The hot path: no timers, no listeners, one crossing on success.
      let value;
      try {
        value = await fn(FIRST);
      } catch (err) {
        return this.#retryAfterFailure(fn, err);
      }
      this.#n.ok();
      return value;
    }
    return this.#runGuarded(fn, signal, deadlineMs);
  }

  async #retryAfterFailure(fn, firstError) {
    const run = this.#n.run();
    let err = firstError;
    let attempt = 1;
    for (;;) {
      const delay = run.onFailure(Boolean(this.#retryable(err)), hintOf(err), Infinity);
      if (delay < 0) {
        const [code, why] = STOP[delay];
        throw this.#givingUp(stopError(code, why, attempt, err, true));
      }
      this.#retrying(attempt, delay, err);
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

  async #runGuarded(fn, userSignal, deadlineMs) {
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
          if (run === undefined) this.#n.ok();
          else run.onSuccess();
          return value;
        } catch (e) {
          if (signal.aborted) break;
          err = e;
          hasError = true;
        }
        run ??= this.#n.run();
        const delay = run.onFailure(Boolean(this.#retryable(err)), hintOf(err), remaining());
        if (delay < 0) {
          const [code, why] = STOP[delay];
          throw this.#givingUp(stopError(code, why, attempt, err, true));
        }
        this.#retrying(attempt, delay, err);
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
        if (run === undefined) this.#n.run();
        throw abortError(userSignal);
      }
      if (run !== undefined) {
        const attempts = run.attempts;
        run.stopAtDeadline();
        throw this.#givingUp(stopError(codes.DEADLINE_EXCEEDED, `deadline of ${deadlineMs} ms exceeded`, attempts, err, hasError));
      }
      if (attemptMade) this.#n.run().stopAtDeadline();
      else this.#n.expired();
      throw this.#givingUp(stopError(codes.DEADLINE_EXCEEDED, `deadline of ${deadlineMs} ms exceeded`, attemptMade ? 1 : 0, err, hasError));
    } finally {
      if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
      if (userSignal !== undefined) userSignal.removeEventListener('abort', onUserAbort);
    }
  }
}

const cache = new WeakMap();

function cachedPolicy(o) {
  const hit = cache.get(o);
  if (
    hit !== undefined &&
    hit.maxAttempts === o.maxAttempts &&
    hit.budget === o.budget &&
    hit.backoff === o.backoff &&
    hit.retryable === o.retryable &&
    hit.deadlineMs === o.deadlineMs &&
    hit.maxRetryAfterMs === o.maxRetryAfterMs &&
    hit.seed === o.seed &&
    hit.breaker === o.breaker &&
    hit.limit === o.limit &&
    hit.onRetry === o.onRetry &&
    hit.onGiveUp === o.onGiveUp
  ) {
    return hit.policy;
  }
  v.knownKeys('options', o, RETRY_KEYS);
  const { signal: _signal, ...policyOnly } = o;
  const policy = new RetryPolicy(policyOnly);
  cache.set(o, {
    policy,
    maxAttempts: o.maxAttempts,
    budget: o.budget,
    backoff: o.backoff,
    retryable: o.retryable,
    deadlineMs: o.deadlineMs,
    maxRetryAfterMs: o.maxRetryAfterMs,
    seed: o.seed,
    breaker: o.breaker,
    limit: o.limit,
    onRetry: o.onRetry,
    onGiveUp: o.onGiveUp,
  });
  return policy;
}

let defaultPolicy;

/**
 * Runs `fn({ attempt, signal })` until it resolves, retrying failures as the
 * options allow. Resolves with fn's value; rejects with an error whose
 * `code` says why retrying stopped and whose `cause` is the last error, or
 * with an AbortError when `signal` aborts. Never throws synchronously.
 *
 * The validated policy is cached per options object (and rebuilt when one
 * of its top-level fields changes), so passing the same options object on
 * every call costs nothing extra.
 */
function retry(fn, options) {
  try {
    if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
    if (options === undefined) {
      defaultPolicy ??= new RetryPolicy();
      return defaultPolicy._run(fn, undefined, undefined);
    }
    if (options === null || typeof options !== 'object' || Array.isArray(options)) v.options('options', options);
    const policy = cachedPolicy(options);
    const signal = options.signal === undefined ? undefined : signalOption('signal', options.signal);
    return policy._run(fn, signal, options.deadlineMs);
  } catch (err) {
    return Promise.reject(err);
  }
}

module.exports = { retry, RetryPolicy, defaultRetryable, sleep, NEVER };
