'use strict';
// `Hysteresis` and `EventAggregator`: resilience-core's signal conditioning.
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');

const HYSTERESIS_KEYS = ['high', 'low', 'fireAfter', 'clearAfter', 'direction'];
const DIRECTIONS = ['above', 'below'];
const CHANGES = [null, 'fired', 'cleared'];

/**
 * A level alarm that fires and clears on two separate marks, each only after several consecutive
 * samples, so a value hovering around one mark does not flap. Defaults: fires above 0.9 for 3
 * samples, clears below 0.8 for 3 samples (`direction: 'below'` reverses the sides).
 */
class Hysteresis {
  #n;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, HYSTERESIS_KEYS);
    const finite = (name) => v.number(name, o[name], { min: -Number.MAX_VALUE, max: Number.MAX_VALUE });
    this.#n = native.hysteresisCreate({
      high: finite('high'),
      low: finite('low'),
      fireAfter: v.number('fireAfter', o.fireAfter, { min: 1, max: 2 ** 32 - 1, integer: true }),
      clearAfter: v.number('clearAfter', o.clearAfter, { min: 1, max: 2 ** 32 - 1, integer: true }),
      direction: v.string('direction', o.direction, { oneOf: DIRECTIONS }),
    });
  }

  /**
   * Feeds one sample: 'fired', 'cleared' or null (no change). NaN samples are ignored (counted
   * in `stats().ignored`).
   */
  observe(value) {
    if (typeof value !== 'number') v.number('value', value, { optional: false });
    return CHANGES[this.#n.observe(value)];
  }

  /** Whether the signal is firing. */
  isFiring() {
    return this.#n.stats().firing;
  }

  /** Back to cleared, forgetting the current streak. */
  reset() {
    this.#n.reset();
  }

  /** firing, streak, ignored. */
  stats() {
    return this.#n.stats();
  }
}

const AGGREGATOR_KEYS = ['windowMs', 'maxFingerprints'];

/**
 * De-duplicates events by fingerprint: `record` says whether to emit an event now (the first of
 * its fingerprint in a window of `windowMs`, default 300000); duplicates are counted and handed
 * back as summaries by `poll()` once their window closes (or by `flush()`). At most
 * `maxFingerprints` (1000) are tracked; evictions are reported, never lost silently. Events are
 * strings (a message, or JSON).
 */
class EventAggregator {
  #n;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, AGGREGATOR_KEYS);
    this.#n = native.aggregatorCreate({
      windowMs: v.number('windowMs', o.windowMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
      maxFingerprints: v.number('maxFingerprints', o.maxFingerprints, { min: 1, max: limits.maxU31, integer: true }),
    });
  }

  /** Records an event: true if it should be emitted now, false if it was suppressed. */
  record(fingerprint, event) {
    if (typeof fingerprint !== 'string') v.string('fingerprint', fingerprint, { optional: false });
    if (typeof event !== 'string') v.string('event', event, { optional: false });
    return this.#n.record(fingerprint, event);
  }

  /** Summaries whose window closed, and evictions since the last report. */
  poll() {
    return report(this.#n.poll());
  }

  /** Every pending summary now (shutdown); forgets every fingerprint. */
  flush() {
    return report(this.#n.flush());
  }

  /** Milliseconds until `poll()` has work, or null when nothing is tracked. */
  nextDueMs() {
    const ms = this.#n.nextDueMs();
    return ms < 0 ? null : ms;
  }

  /** fingerprints tracked. */
  stats() {
    return { fingerprints: this.#n.size() };
  }
}

function report({ summaries, evicted }) {
  return { summaries, evicted: evicted ?? null };
}

module.exports = { Hysteresis, EventAggregator };
