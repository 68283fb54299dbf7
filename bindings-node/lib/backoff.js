'use strict';
const native = require('./native');
const v = require('./validate');

const JITTERS = ['none', 'full', 'equal', 'decorrelated'];
const KEYS = ['baseMs', 'maxMs', 'factor', 'jitter', 'maxAttempts', 'seed'];

/** Validates backoff options and returns the object the native side takes. */
function backoffOptions(name, input) {
  const o = v.options(name, input);
  v.knownKeys(name, o, KEYS);
  return {
    baseMs: v.number(`${name}.baseMs`, o.baseMs, { min: 0 }),
    maxMs: v.number(`${name}.maxMs`, o.maxMs, { min: 0 }),
    factor: v.number(`${name}.factor`, o.factor, { min: 1, max: Number.MAX_VALUE }),
    jitter: v.string(`${name}.jitter`, o.jitter, { oneOf: JITTERS }),
    maxAttempts: v.number(`${name}.maxAttempts`, o.maxAttempts, { min: 1, max: 2 ** 32 - 1, integer: true }),
    seed: v.number(`${name}.seed`, o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
  };
}

/**
 * Exponential backoff with jitter: the delays of one retry sequence.
 * Defaults: baseMs 100, maxMs 10000, factor 2, jitter 'full', no attempt limit.
 */
class Backoff {
  #native;
  #options;

  constructor(options) {
    this.#options = backoffOptions('options', options);
    this.#native = new native.NativeBackoff(this.#options);
  }

  /** The next delay in milliseconds, or `null` once `maxAttempts` is used up. */
  nextDelayMs() {
    const ms = this.#native.nextDelayMs();
    return ms < 0 ? null : ms;
  }

  /** Starts the sequence again (after a success). */
  reset() {
    this.#native.reset();
  }

  /** Delays handed out since creation or the last reset. */
  get retries() {
    return this.#native.retries;
  }

  /** `{ retries }`: delays handed out since creation or the last reset. */
  stats() {
    return { retries: this.#native.retries };
  }

  /** The validated options, for building further sequences. */
  get options() {
    return { ...this.#options };
  }

  *[Symbol.iterator]() {
    for (;;) {
      const ms = this.nextDelayMs();
      if (ms === null) return;
      yield ms;
    }
  }
}

module.exports = { Backoff, backoffOptions, JITTERS };
