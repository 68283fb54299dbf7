'use strict';
// `AdaptiveThrottle`: client-side adaptive throttling (Google SRE book).
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { throttled, abortError } = require('./errors');
const { kExecute, abortable } = require('./policy');

const KEYS = ['windowMs', 'buckets', 'k', 'seed', 'isRejection'];

/**
 * Rejects requests locally with probability
 * max(0, (requests - k * accepts) / (requests + 1)) over a trailing window,
 * so a backend that is rejecting most requests stops receiving them.
 * Defaults: windowMs 120000 in 120 buckets, k 2.
 */
class AdaptiveThrottle {
  /** Bound native methods (see src/throttle.rs). */
  #n;
  #isRejection;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    const checked = {
      windowMs: v.number('windowMs', o.windowMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
      buckets: v.number('buckets', o.buckets, { min: 1, max: limits.maxThrottleBuckets, integer: true }),
      k: v.number('k', o.k, { min: 1, max: Number.MAX_VALUE }),
      seed: v.number('seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
    };
    this.#isRejection = v.func('isRejection', o.isRejection);
    this.#n = native.throttleCreate(checked);
  }

  /** Counts one request; throws ERR_BREAKWATER_THROTTLED (with `probability`) if it must not be sent. */
  tryAcquire() {
    const p = this.#n.tryAcquire();
    if (p >= 0) throw throttled(p);
  }

  /** Counts one request; true if it must not be sent. */
  shouldReject() {
    return this.#n.tryAcquire() >= 0;
  }

  /** The backend accepted a request. */
  recordAccepted() {
    this.#n.recordAccepted();
  }

  /** The backend rejected a request (overloaded, throttled, timed out). */
  recordRejected() {
    this.#n.recordRejected();
  }

  /**
   * Runs `fn({ signal })` unless throttled (then rejects with ERR_BREAKWATER_THROTTLED
   * without calling it); a resolution counts as accepted, a rejection as
   * rejected by the backend (unless the `isRejection` option says otherwise).
   * When `signal` aborts, rejects at once with an AbortError; the request then
   * counts as accepted (a cancellation says nothing against the backend).
   */
  execute(fn, options) {
    // Not async: no extra promise layer around the protocol call; invalid arguments reject.
    let signal;
    try {
      if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
      signal = options === undefined ? undefined : v.signalOption(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this[kExecute](fn, signal);
  }

  /** @internal The execute protocol (lib/policy.js). */
  async [kExecute](fn, signal) {
    if (signal !== undefined && signal.aborted) throw abortError(signal);
    const n = this.#n;
    const p = n.tryAcquire();
    if (p >= 0) throw throttled(p);
    let value;
    try {
      value = signal === undefined ? await fn(NO_SIGNAL) : await abortable(fn({ signal }), signal);
    } catch (err) {
      let rejected = !(signal !== undefined && signal.aborted);
      if (rejected && this.#isRejection !== undefined) {
        try {
          rejected = Boolean(this.#isRejection(err));
        } catch {
          rejected = true;
        }
      }
      if (rejected) n.recordRejected();
      else n.recordAccepted();
      throw err;
    }
    n.recordAccepted();
    return value;
  }

  /** The probability the next request is rejected locally. */
  get rejectProbability() {
    return this.#n.stats().rejectProbability;
  }

  /** Requests and accepts over the current window, and the rejection probability. */
  stats() {
    return this.#n.stats();
  }
}

const NO_SIGNAL = Object.freeze({ signal: undefined });

module.exports = { AdaptiveThrottle };
