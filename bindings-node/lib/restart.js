'use strict';
// `RestartBackoff`: crash-loop backoff for a supervised task, from resilience-core.
const native = require('./native');
const v = require('./validate');
const { JITTERS } = require('./backoff');

const KEYS = ['initialDelayMs', 'maxDelayMs', 'factor', 'jitter', 'resetAfterMs', 'seed'];

/**
 * The delay before restarting a crashed task (Kubernetes' CrashLoopBackOff): `initialDelayMs`
 * (10000) growing by `factor` (2) up to `maxDelayMs` (300000); a run of at least `resetAfterMs`
 * (600000) starts the series again. Call `onStarted()` when the task starts and `onCrash()` when
 * it crashes, then wait the returned delay.
 */
class RestartBackoff {
  #n;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    const ms = (name) => v.number(name, o[name], { min: 0, max: Number.MAX_SAFE_INTEGER });
    this.#n = native.restartCreate({
      initialDelayMs: ms('initialDelayMs'),
      maxDelayMs: ms('maxDelayMs'),
      factor: v.number('factor', o.factor, { min: 1, max: Number.MAX_VALUE }),
      jitter: v.string('jitter', o.jitter, { oneOf: JITTERS }),
      resetAfterMs: ms('resetAfterMs'),
      seed: v.number('seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
    });
  }

  /** The task (re)started now. */
  onStarted() {
    this.#n.onStarted();
  }

  /** The task crashed now: the delay in ms to wait before starting it again. */
  onCrash() {
    return this.#n.onCrash();
  }

  /** Forgets the crash series: the next crash gets `initialDelayMs`. */
  reset() {
    this.#n.reset();
  }

  /** Consecutive crashes in the current series. */
  get crashes() {
    return this.#n.stats().crashes;
  }

  /** crashes, uptimeMs (null when the task is not running). */
  stats() {
    const { crashes, uptimeMs } = this.#n.stats();
    return { crashes, uptimeMs: uptimeMs ?? null };
  }
}

module.exports = { RestartBackoff };
