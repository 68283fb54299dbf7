'use strict';
// `ConcurrencyLimit`: resilience-core's bulkhead. `tryAcquire` and the fast
// path of `acquire`/`run` are one synchronous crossing; only a caller that
// has to queue waits on the addon's tokio runtime (never blocking the event
// loop).
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { overloaded, abortError, typeError } = require('./errors');
const { kExecute, abortable } = require('./policy');

const KEYS = ['maxConcurrent', 'maxQueued', 'queueTimeoutMs', 'minRetryAfterMs', 'maxRetryAfterMs'];
const ACQUIRE_KEYS = ['signal'];

function limitOptions(input) {
  const o = v.options('options', input);
  v.knownKeys('options', o, KEYS);
  const ms = { min: 0, max: Number.MAX_SAFE_INTEGER };
  return {
    maxConcurrent: v.number('maxConcurrent', o.maxConcurrent, { min: 1, max: limits.maxU31, integer: true }),
    maxQueued: v.number('maxQueued', o.maxQueued, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
    queueTimeoutMs: o.queueTimeoutMs === null ? undefined : v.number('queueTimeoutMs', o.queueTimeoutMs, ms),
    noQueueTimeout: o.queueTimeoutMs === null,
    minRetryAfterMs: v.number('minRetryAfterMs', o.minRetryAfterMs, ms),
    maxRetryAfterMs: v.number('maxRetryAfterMs', o.maxRetryAfterMs, ms),
  };
}

function signalOf(options) {
  if (options === undefined) return undefined;
  const o = v.options('options', options);
  v.knownKeys('options', o, ACQUIRE_KEYS);
  const signal = o.signal;
  if (signal === undefined) return undefined;
  if (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean') {
    throw typeError(`\`signal\` must be an AbortSignal, got ${v.describe(signal)}`);
  }
  return signal;
}

const forgotten = new FinalizationRegistry(({ limit, key }) => {
  try {
    limit.release(key);
  } catch {
    // The limit is gone too.
  }
});

/** One unit of the limit's capacity; `release()` it when the work is done. */
class LimitPermit {
  #limit;
  #key;
  #released = false;

  constructor(limit, key) {
    this.#limit = limit;
    this.#key = key;
    forgotten.register(this, { limit, key }, this);
  }

  /** Gives the capacity back (to the first queued caller, if any). Idempotent. */
  release() {
    if (this.#released) return false;
    this.#released = true;
    forgotten.unregister(this);
    this.#limit.release(this.#key);
    return true;
  }

  /** Whether `release()` was called. */
  get released() {
    return this.#released;
  }
}
if (typeof Symbol.dispose === 'symbol') {
  LimitPermit.prototype[Symbol.dispose] = function dispose() {
    this.release();
  };
}

/**
 * A bulkhead: at most `maxConcurrent` permits at once, at most `maxQueued`
 * callers waiting (FIFO) for at most `queueTimeoutMs`; everyone else is shed
 * at once with ERR_BREAKWATER_OVERLOADED and a `retryAfterMs` hint.
 */
class ConcurrencyLimit {
  /** Bound native methods (see src/limit.rs). */
  #n;
  #queues;
  /** Requests shed (ERR_BREAKWATER_OVERLOADED) since creation. */
  #shed = 0;

  constructor(options) {
    const checked = limitOptions(options);
    this.#n = native.limitCreate(checked);
    this.#queues = checked.maxQueued !== 0;
  }

  /** Takes a free permit or throws ERR_BREAKWATER_OVERLOADED; never waits. */
  tryAcquire() {
    const key = this.#n.tryAcquire();
    if (key < 0) {
      this.#shed++;
      throw overloaded(-1 - key);
    }
    return new LimitPermit(this.#n, key);
  }

  /**
   * Takes a permit, waiting in the queue if the limit is full. Rejects with
   * ERR_BREAKWATER_OVERLOADED when shed, or an AbortError when `signal` aborts.
   */
  async acquire(options) {
    const signal = signalOf(options);
    return new LimitPermit(this.#n, await this.#acquireKey(signal));
  }

  /**
   * Runs `fn({ signal })` holding a permit (waiting for one like `acquire`), and
   * releases it when fn settles. When `signal` aborts (while queued or while
   * fn runs), rejects at once with an AbortError and releases the permit.
   */
  run(fn, options) {
    // Not async: no extra promise layer around the protocol call; invalid arguments reject.
    let signal;
    try {
      if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
      signal = options === undefined ? undefined : signalOf(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this[kExecute](fn, signal);
  }

  /** @internal The execute protocol (lib/policy.js). */
  async [kExecute](fn, signal) {
    const n = this.#n;
    let key = n.tryAcquire();
    if (key < 0) key = await this.#wait(key, signal);
    else if (signal !== undefined && signal.aborted) {
      n.release(key);
      throw abortError(signal);
    }
    try {
      return signal === undefined ? await fn(NO_SIGNAL) : await abortable(fn({ signal }), signal);
    } finally {
      n.release(key);
    }
  }

  async #acquireKey(signal) {
    if (signal !== undefined && signal.aborted) throw abortError(signal);
    const key = this.#n.tryAcquire();
    return key >= 0 ? key : this.#wait(key, signal);
  }

  /** After a failed fast path (`shed` = -1 - retryAfterMs): queue, or shed. */
  async #wait(shed, signal) {
    if (signal !== undefined && signal.aborted) throw abortError(signal);
    if (!this.#queues) {
      this.#shed++;
      throw overloaded(-1 - shed);
    }
    const limit = this.#n.key;
    if (signal === undefined) {
      const outcome = await native.limitAcquire(limit, -1);
      if (outcome.permit !== undefined && outcome.permit !== null) return outcome.permit;
      this.#shed++;
      throw overloaded(outcome.retryAfterMs ?? 0);
    }
    const ticket = native.limitTicket();
    const onAbort = () => native.limitCancel(ticket);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const outcome = await native.limitAcquire(limit, ticket);
      if (outcome.permit !== undefined && outcome.permit !== null) {
        if (!signal.aborted) return outcome.permit;
        this.#n.release(outcome.permit);
      }
      if (signal.aborted || outcome.cancelled) throw abortError(signal);
      this.#shed++;
      throw overloaded(outcome.retryAfterMs ?? 0);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Permits held right now. */
  get inFlight() {
    return this.#n.inFlight();
  }

  /** Occupancy (inFlight, queued, maxConcurrent, maxQueued) and `shed`: requests refused with ERR_BREAKWATER_OVERLOADED. */
  stats() {
    const stats = this.#n.stats();
    stats.shed = this.#shed;
    return stats;
  }

  /** Changes the limit at run time (queued callers get new capacity at once). */
  setMaxConcurrent(maxConcurrent) {
    v.number('maxConcurrent', maxConcurrent, { min: 1, max: limits.maxU31, integer: true, optional: false });
    this.#n.setMaxConcurrent(maxConcurrent);
  }
}

const NO_SIGNAL = Object.freeze({ signal: undefined });

module.exports = { ConcurrencyLimit, LimitPermit };
