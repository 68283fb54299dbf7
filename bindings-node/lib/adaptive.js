'use strict';
// `AdaptiveLimit`: a concurrency limit that adapts to latency and drops (AIMD or Gradient2),
// from resilience-core. Permits are numbers in Rust; the latency is measured there.
const { limits, limitOutcomes } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { overloaded, abortError } = require('./errors');
const { kExecute, abortable } = require('./policy');

const COMMON = ['algorithm', 'initialLimit', 'minLimit', 'maxLimit', 'minRetryAfterMs', 'maxRetryAfterMs', 'isDropped'];
const AIMD = ['increaseBy', 'backoffRatio', 'latencyThresholdMs'];
const GRADIENT2 = ['smoothing', 'rttTolerance', 'longWindow', 'queueSize'];
const ALGORITHMS = ['aimd', 'gradient2'];
const OUTCOMES = Object.keys(limitOutcomes);
const RUN_KEYS = ['signal'];

function adaptiveOptions(input) {
  const o = v.options('options', input);
  const algorithm = v.string('algorithm', o.algorithm, { oneOf: ALGORITHMS }) ?? 'gradient2';
  v.knownKeys('options', o, [...COMMON, ...(algorithm === 'aimd' ? AIMD : GRADIENT2)]);
  const count = (name, min) => v.number(name, o[name], { min, max: limits.maxU31, integer: true });
  const ms = (name) => v.number(name, o[name], { min: 0, max: Number.MAX_SAFE_INTEGER });
  return {
    algorithm,
    initialLimit: count('initialLimit', 1),
    minLimit: count('minLimit', 1),
    maxLimit: count('maxLimit', 1),
    increaseBy: count('increaseBy', 1),
    backoffRatio: v.number('backoffRatio', o.backoffRatio, { min: 0.5, max: 1 }),
    latencyThresholdMs: ms('latencyThresholdMs'),
    smoothing: v.number('smoothing', o.smoothing, { min: 0, max: 1 }),
    rttTolerance: v.number('rttTolerance', o.rttTolerance, { min: 1, max: Number.MAX_VALUE }),
    longWindow: count('longWindow', 1),
    queueSize: count('queueSize', 0),
    minRetryAfterMs: ms('minRetryAfterMs'),
    maxRetryAfterMs: ms('maxRetryAfterMs'),
  };
}

/** One unit of an adaptive limit; release it once with the request's outcome. */
class AdaptivePermit {
  #n;
  #key;
  #released = false;

  constructor(n, key) {
    this.#n = n;
    this.#key = key;
  }

  /**
   * Gives the capacity back. `outcome`: 'success' (the latency is a sample), 'dropped' (timed
   * out or overloaded: lowers the limit) or 'ignored' (no sample). `latencyMs` overrides the
   * latency measured since acquisition. Returns false if already released.
   */
  release(outcome = 'success', latencyMs) {
    v.string('outcome', outcome, { oneOf: OUTCOMES, optional: false });
    v.number('latencyMs', latencyMs, { min: 0, max: Number.MAX_SAFE_INTEGER });
    if (this.#released) return false;
    this.#released = true;
    return this.#n.release(this.#key, limitOutcomes[outcome], latencyMs ?? -1);
  }

  /** `release('success')`. */
  recordSuccess() {
    return this.release('success');
  }

  /** `release('dropped')`. */
  recordDropped() {
    return this.release('dropped');
  }

  /** Whether `release()` was called. */
  get released() {
    return this.#released;
  }
}

/**
 * A concurrency limit that finds the capacity of a dependency by itself: it grows while requests
 * are fast and shrinks on drops (AIMD) or when latency rises above its long-term average
 * (Gradient2, the default). Requests above the limit are shed with ERR_BREAKWATER_OVERLOADED.
 */
class AdaptiveLimit {
  #n;
  #isDropped;

  constructor(options) {
    const checked = adaptiveOptions(options);
    this.#isDropped = v.func('isDropped', options?.isDropped);
    this.#n = native.adaptiveLimitCreate(checked);
  }

  /** Takes a permit or throws ERR_BREAKWATER_OVERLOADED (with `retryAfterMs`); never waits. */
  tryAcquire() {
    const key = this.#n.tryAcquire();
    if (key < 0) throw overloaded(-1 - key);
    return new AdaptivePermit(this.#n, key);
  }

  /**
   * Runs `fn({ signal })` holding a permit. A resolution is a 'success' sample; a rejection is
   * 'dropped' (unless the `isDropped` option says otherwise: then 'ignored'). If `signal` aborts
   * first, rejects with an AbortError and releases the permit as 'ignored'.
   */
  run(fn, options) {
    // Not async: no extra promise layer around the protocol call; invalid arguments reject.
    let signal;
    try {
      if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
      signal = v.signalOption(options, RUN_KEYS);
    } catch (err) {
      return Promise.reject(err);
    }
    return this[kExecute](fn, signal);
  }

  /** @internal The execute protocol (lib/policy.js). */
  async [kExecute](fn, signal) {
    if (signal !== undefined && signal.aborted) throw abortError(signal);
    const n = this.#n;
    const key = n.tryAcquire();
    if (key < 0) throw overloaded(-1 - key);
    let outcome = limitOutcomes.ignored;
    try {
      const value = await abortable(fn({ signal }), signal);
      outcome = limitOutcomes.success;
      return value;
    } catch (err) {
      if (!(signal !== undefined && signal.aborted)) {
        let dropped = true;
        if (this.#isDropped !== undefined) {
          try {
            dropped = Boolean(this.#isDropped(err));
          } catch {
            dropped = true;
          }
        }
        outcome = dropped ? limitOutcomes.dropped : limitOutcomes.ignored;
      }
      throw err;
    } finally {
      n.release(key, outcome, -1);
    }
  }

  /** The limit now in force. */
  get currentLimit() {
    return this.#n.limit();
  }

  /** limit, inFlight, acquired, shed, successes, drops. */
  stats() {
    return this.#n.stats();
  }
}

module.exports = { AdaptiveLimit, AdaptivePermit };
