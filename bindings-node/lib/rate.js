'use strict';
// `RateLimiter` and `KeyedRateLimiter`: resilience-core's GCRA rate limiter. Every decision is one
// synchronous crossing (`check()` returns -1 or the wait in ms); `untilReady` waits in JS.
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { rateLimited, sleep, abortError } = require('./errors');
const { kExecute, abortable } = require('./policy');

const KEYS = ['rate', 'perMs', 'burst'];
const KEYED_KEYS = [...KEYS, 'maxKeys'];
const EXECUTE_KEYS = ['signal'];

function rateOptions(input, keys) {
  const o = v.options('options', input);
  v.knownKeys('options', o, keys);
  return {
    rate: v.number('rate', o.rate, { min: 1, max: 2 ** 32 - 1, integer: true }),
    perMs: v.number('perMs', o.perMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
    burst: v.number('burst', o.burst, { min: 1, max: 2 ** 32 - 1, integer: true }),
    maxKeys: keys === KEYED_KEYS ? v.number('maxKeys', o.maxKeys, { min: 1, max: limits.maxU31, integer: true }) : undefined,
  };
}

function key(value) {
  if (typeof value !== 'string') v.string('key', value, { optional: false });
  return value;
}

/** Waits until `check()` conforms (-1), or the signal aborts. */
async function waitReady(check, signal) {
  for (;;) {
    if (signal !== undefined && signal.aborted) throw abortError(signal);
    const wait = check();
    if (wait < 0) return;
    await sleep(Math.max(1, Math.ceil(wait)), signal);
  }
}

/**
 * A GCRA rate limiter: `rate` requests per `perMs` in the long run, up to `burst` back to back.
 * Defaults: 10 per 1000 ms, burst 10.
 */
class RateLimiter {
  /** Bound native methods (see src/rate.rs). */
  #n;

  constructor(options) {
    this.#n = native.rateCreate(rateOptions(options, KEYS));
  }

  /** Takes one request's worth of rate if it conforms now: true if taken, false if limited. */
  check() {
    return this.#n.check() < 0;
  }

  /** Like `check`, but throws ERR_BREAKWATER_RATE_LIMITED (with `retryAfterMs`) when limited. */
  tryAcquire() {
    const wait = this.#n.check();
    if (wait >= 0) throw rateLimited(wait);
  }

  /** Waits until a request conforms and takes it; rejects with an AbortError if `signal` aborts. */
  async untilReady(options) {
    const signal = v.signalOption(options);
    const n = this.#n;
    await waitReady(() => n.check(), signal);
  }

  /**
   * Runs `fn()` if a request conforms now; otherwise rejects with ERR_BREAKWATER_RATE_LIMITED
   * without calling it (wrap it in `retry` to wait and try again).
   */
  execute(fn, options) {
    // Not async: no extra promise layer around the protocol call; invalid arguments reject.
    let signal;
    try {
      if (typeof fn !== 'function') v.func('fn', fn, { optional: false });
      signal = v.signalOption(options, EXECUTE_KEYS);
    } catch (err) {
      return Promise.reject(err);
    }
    return this[kExecute](fn, signal);
  }

  /** @internal The execute protocol (lib/policy.js). */
  async [kExecute](fn, signal) {
    if (signal !== undefined && signal.aborted) throw abortError(signal);
    const wait = this.#n.check();
    if (wait >= 0) throw rateLimited(wait);
    return abortable(fn({ signal }), signal);
  }

  /** Decisions so far: allowed, limited, emissionIntervalMs. */
  stats() {
    const { allowed, limited, emissionIntervalMs } = this.#n.stats();
    return { allowed, limited, emissionIntervalMs };
  }
}

/**
 * One GCRA limit per string key (tenant, host, endpoint), at most `maxKeys` tracked (idle keys
 * are forgotten first). Defaults: 10 per 1000 ms, burst 10, maxKeys 10000.
 */
class KeyedRateLimiter {
  #n;

  constructor(options) {
    this.#n = native.keyedRateCreate(rateOptions(options, KEYED_KEYS));
  }

  /** Takes one request of `key`'s rate if it conforms now: true if taken. */
  check(k) {
    return this.#n.check(key(k)) < 0;
  }

  /** Like `check`, but throws ERR_BREAKWATER_RATE_LIMITED (with `retryAfterMs`). */
  tryAcquire(k) {
    const wait = this.#n.check(key(k));
    if (wait >= 0) throw rateLimited(wait);
  }

  /** Waits until a request for `key` conforms and takes it. */
  async untilReady(k, options) {
    key(k);
    const signal = v.signalOption(options);
    const n = this.#n;
    await waitReady(() => n.check(k), signal);
  }

  /** Forgets every idle key (never changes a decision); returns how many. */
  evictIdle() {
    return this.#n.evictIdle();
  }

  /** Decisions so far (allowed, limited, emissionIntervalMs) and keys tracked. */
  stats() {
    return this.#n.stats();
  }
}

module.exports = { RateLimiter, KeyedRateLimiter };
