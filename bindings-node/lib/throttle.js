'use strict';
// `AdaptiveThrottle`: client-side adaptive throttling (Google SRE book).
const native = require('./native');
const v = require('./validate');
const { throttled } = require('./errors');

const KEYS = ['windowMs', 'buckets', 'k', 'seed', 'isRejection'];

/**
 * Rejects requests locally with probability
 * max(0, (requests - k * accepts) / (requests + 1)) over a trailing window,
 * so a backend that is rejecting most requests stops receiving them.
 * Defaults: windowMs 120000 in 120 buckets, k 2.
 */
class AdaptiveThrottle {
  #handle;
  #key;
  #isRejection;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    const checked = {
      windowMs: v.number('windowMs', o.windowMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
      buckets: v.number('buckets', o.buckets, { min: 1, max: 10_000, integer: true }),
      k: v.number('k', o.k, { min: 1, max: Number.MAX_VALUE }),
      seed: v.number('seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
    };
    this.#isRejection = v.func('isRejection', o.isRejection);
    this.#handle = native.throttleCreate(checked);
    this.#key = this.#handle.key;
  }

  /** Counts one request; throws ERR_BREAKWATER_THROTTLED (with `probability`) if it must not be sent. */
  tryAcquire() {
    const p = native.throttleTryAcquire(this.#key);
    if (p >= 0) throw throttled(p);
  }

  /** Counts one request; true if it must not be sent. */
  shouldReject() {
    return native.throttleTryAcquire(this.#key) >= 0;
  }

  /** The backend accepted a request. */
  recordAccepted() {
    native.throttleRecordAccepted(this.#key);
  }

  /** The backend rejected a request (overloaded, throttled, timed out). */
  recordRejected() {
    native.throttleRecordRejected(this.#key);
  }

  /**
   * Runs `fn()` unless throttled (then rejects with ERR_BREAKWATER_THROTTLED
   * without calling it); a resolution counts as accepted, a rejection as
   * rejected by the backend (unless the `isRejection` option says otherwise).
   */
  async execute(fn) {
    if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
    const p = native.throttleTryAcquire(this.#key);
    if (p >= 0) throw throttled(p);
    let value;
    try {
      value = await fn();
    } catch (err) {
      let rejected = true;
      if (this.#isRejection !== undefined) {
        try {
          rejected = Boolean(this.#isRejection(err));
        } catch {
          rejected = true;
        }
      }
      if (rejected) native.throttleRecordRejected(this.#key);
      else native.throttleRecordAccepted(this.#key);
      throw err;
    }
    native.throttleRecordAccepted(this.#key);
    return value;
  }

  /** The probability the next request is rejected locally. */
  get rejectProbability() {
    return native.throttleStats(this.#key).rejectProbability;
  }

  /** Requests and accepts over the current window, and the rejection probability. */
  stats() {
    return native.throttleStats(this.#key);
  }
}

module.exports = { AdaptiveThrottle };
