'use strict';
// `CircuitBreaker`: resilience-core's breaker. A call through `execute` costs one or two
// synchronous crossings (acquire, record); the permit stays in Rust. Without slow-call tracking
// and with a count window (where a record's time does not count), a success is recorded with the
// next acquire (one crossing for both), before anything else reads or changes the breaker, and
// at the latest 10 ms later (lib/pending.js).
const native = require('./native');
const v = require('./validate');
const { breakerOpen, isAbortError, typeError, abortError } = require('./errors');
const { kExecute, abortable, callHook } = require('./policy');
const { backoffOptions } = require('./backoff');
const pending = require('./pending');

const KEYS = [
  'consecutiveFailures',
  'failureRateThreshold',
  'slowCallDurationMs',
  'slowCallRateThreshold',
  'window',
  'minimumCalls',
  'openWait',
  'halfOpenProbes',
  'seed',
  'isFailure',
];
const { breakerStates: STATES, breakerOutcomes: OUTCOME, limits } = require('./constants');

function windowOptions(value) {
  if (value === undefined) return undefined;
  const w = v.options('window', value);
  v.knownKeys('window', w, ['type', 'calls', 'durationMs', 'buckets']);
  const type = v.string('window.type', w.type, { oneOf: ['count', 'time'] }) ??
    (w.durationMs !== undefined ? 'time' : 'count');
  if (type === 'count') {
    if (w.durationMs !== undefined || w.buckets !== undefined) {
      throw typeError('a count `window` takes `calls` only; use `durationMs` and `buckets` with `type: \'time\'`');
    }
    return { calls: v.number('window.calls', w.calls, { min: 1, max: 2 ** 32 - 1, integer: true, optional: false }) };
  }
  if (w.calls !== undefined) {
    throw typeError('a time `window` takes `durationMs` and `buckets`; use `calls` with `type: \'count\'`');
  }
  return {
    durationMs: v.number('window.durationMs', w.durationMs, { min: 0, max: Number.MAX_SAFE_INTEGER, optional: false }),
    buckets: v.number('window.buckets', w.buckets, { min: 1, max: limits.maxWindowBuckets, integer: true }),
  };
}

/** Validates breaker options; returns [native options, isFailure]. */
function breakerOptions(input) {
  const o = v.options('options', input);
  v.knownKeys('options', o, KEYS);
  const share = { min: 0, max: 1 };
  const nativeOptions = {
    consecutiveFailures: v.number('consecutiveFailures', o.consecutiveFailures, { min: 1, max: 2 ** 32 - 1, integer: true }),
    failureRateThreshold: v.number('failureRateThreshold', o.failureRateThreshold, share),
    slowCallDurationMs: v.number('slowCallDurationMs', o.slowCallDurationMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
    slowCallRateThreshold: v.number('slowCallRateThreshold', o.slowCallRateThreshold, share),
    window: windowOptions(o.window),
    minimumCalls: v.number('minimumCalls', o.minimumCalls, { min: 1, max: 2 ** 32 - 1, integer: true }),
    openWait: o.openWait === undefined ? undefined : backoffOptions('openWait', o.openWait),
    halfOpenProbes: v.number('halfOpenProbes', o.halfOpenProbes, { min: 1, max: 2 ** 32 - 1, integer: true }),
    seed: v.number('seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
  };
  return [nativeOptions, v.func('isFailure', o.isFailure)];
}

// Permits handed to user code are cancelled if they are garbage-collected
// without a record, so a forgotten permit never holds a half-open probe
// slot forever.
const forgotten = new FinalizationRegistry(({ breaker, key }) => {
  try {
    breaker.record(key, OUTCOME.cancelled);
  } catch {
    // The breaker is gone too.
  }
});

/** Permission to make one call; record how it ended exactly once. */
class BreakerPermit {
  #breaker;
  #key;
  #after;
  #before;
  #done = false;

  constructor(breaker, key, after, before) {
    this.#breaker = breaker;
    this.#key = key;
    this.#after = after;
    this.#before = before;
    forgotten.register(this, { breaker, key }, this);
  }

  #record(outcome) {
    if (this.#done) return false;
    this.#done = true;
    forgotten.unregister(this);
    if (this.#before !== undefined) this.#before();
    this.#breaker.record(this.#key, outcome);
    if (this.#after !== undefined) this.#after();
    return true;
  }

  /** Whether this is a half-open probe call. */
  get isProbe() {
    return !this.#done && this.#breaker.isProbe(this.#key);
  }

  /** The dependency did its job. Returns false if already recorded. */
  recordSuccess() {
    return this.#record(OUTCOME.success);
  }

  /** The dependency failed. Returns false if already recorded. */
  recordFailure() {
    return this.#record(OUTCOME.failure);
  }

  /** The outcome says nothing about the dependency (e.g. a 4xx). */
  recordIgnored() {
    return this.#record(OUTCOME.ignored);
  }

  /** The call was cancelled: frees the permit without an outcome. */
  release() {
    return this.#record(OUTCOME.cancelled);
  }

  /** `record('success' | 'failure' | 'ignored' | 'cancelled')`. */
  record(outcome) {
    const code = OUTCOME[v.string('outcome', outcome, { oneOf: Object.keys(OUTCOME), optional: false })];
    return this.#record(code);
  }
}

/**
 * A circuit breaker: closed while the dependency is healthy, open (failing
 * calls fast with ERR_BREAKWATER_BREAKER_OPEN and `retryAfterMs`) after too
 * many failures, half-open to let a few probes test recovery.
 */
class CircuitBreaker {
  /** Bound native methods (see src/breaker.rs). */
  #n;
  #isFailure;
  /** Listeners by event name, or undefined while there are none (then nothing is drained). */
  #listeners;
  #drain = () => {
    if (this.#listeners !== undefined) this.#emitChanges();
  };
  /** Key of a permit whose success is recorded with the next acquire (or flush), or -1. */
  #deferred = -1;
  /** Whether successes may be deferred: no slow-call tracking and a count window (a record's time does not count). */
  #mayDefer;
  /** Whether lib/pending.js will call `flushDeferred` at its next flush. */
  #registered = false;
  #owner = {
    flushDeferred: () => {
      this.#registered = false;
      this.#flushDeferred();
    },
  };
  #flush = () => this.#flushDeferred();

  constructor(options) {
    const [nativeOptions, isFailure] = breakerOptions(options);
    this.#n = native.breakerCreate(nativeOptions);
    this.#isFailure = isFailure;
    this.#mayDefer = nativeOptions.slowCallDurationMs === undefined &&
      (nativeOptions.window === undefined || nativeOptions.window.calls !== undefined);
  }

  /** Records the deferred success, if any. */
  #flushDeferred() {
    const key = this.#deferred;
    if (key < 0) return;
    this.#deferred = -1;
    this.#n.recordSuccess(key);
    if (this.#listeners !== undefined) this.#emitChanges();
  }

  /** The deferred success's key (-1 for none), for `acquire` to record first. */
  #takeDeferred() {
    const key = this.#deferred;
    this.#deferred = -1;
    return key;
  }

  /**
   * Asks to make one call: returns a permit to record the outcome with, or
   * throws ERR_BREAKWATER_BREAKER_OPEN (with `retryAfterMs`).
   */
  tryAcquire() {
    const key = this.#n.acquire(this.#takeDeferred());
    if (this.#listeners !== undefined) this.#emitChanges();
    if (key < 0) throw breakerOpen(-1 - key);
    return new BreakerPermit(this.#n, key, this.#drain, this.#flush);
  }

  /**
   * Runs `fn({ signal })` through the breaker: rejects with ERR_BREAKWATER_BREAKER_OPEN
   * without calling it when open; records a resolution as a success and a
   * rejection as a failure (an AbortError as cancelled; with the `isFailure`
   * option, errors it returns false for as ignored) and passes it on. When
   * `signal` aborts, rejects at once with an AbortError and records the call
   * as cancelled.
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
    const key = n.acquire(this.#takeDeferred());
    if (this.#listeners !== undefined) this.#emitChanges();
    if (key < 0) throw breakerOpen(-1 - key);
    let value;
    try {
      value = signal === undefined ? await fn(NO_SIGNAL) : await abortable(fn({ signal }), signal);
    } catch (err) {
      const outcome = signal !== undefined && signal.aborted ? OUTCOME.cancelled : this.#outcomeOf(err);
      this.#flushDeferred();
      n.record(key, outcome);
      if (this.#listeners !== undefined) this.#emitChanges();
      throw err;
    }
    if (this.#mayDefer && this.#deferred < 0 && this.#listeners === undefined) {
      this.#deferred = key;
      if (!this.#registered) {
        this.#registered = true;
        pending.later(this.#owner);
      }
      return value;
    }
    n.recordSuccess(key);
    if (this.#listeners !== undefined) this.#emitChanges();
    return value;
  }

  #outcomeOf(err) {
    if (isAbortError(err)) return OUTCOME.cancelled;
    if (this.#isFailure === undefined) return OUTCOME.failure;
    let failure;
    try {
      failure = this.#isFailure(err);
    } catch {
      failure = true;
    }
    return failure ? OUTCOME.failure : OUTCOME.ignored;
  }

  /**
   * Adds a listener: `'stateChange'` gets `{ from, to }` on every transition;
   * `'open'`, `'halfOpen'` and `'close'` get the same object when the breaker
   * enters that state. Transitions come from the Rust breaker's subscription
   * and are delivered right after the call that caused them (no timer, no
   * thread: nothing keeps the process alive). A listener that throws becomes
   * a process warning; it never breaks the breaker or the call.
   */
  on(event, listener) {
    v.string('event', event, { oneOf: EVENTS, optional: false });
    v.func('listener', listener, { optional: false });
    this.#flushDeferred();
    if (this.#listeners === undefined) {
      this.#n.subscribe();
      this.#listeners = new Map();
    }
    const list = this.#listeners.get(event) ?? [];
    this.#listeners.set(event, [...list, listener]);
    return this;
  }

  /** Removes a listener added with `on` (the last one removed ends the subscription). */
  off(event, listener) {
    v.string('event', event, { oneOf: EVENTS, optional: false });
    v.func('listener', listener, { optional: false });
    if (this.#listeners === undefined) return this;
    const list = this.#listeners.get(event);
    if (list !== undefined) {
      const i = list.lastIndexOf(listener);
      if (i >= 0) {
        const rest = list.filter((_, j) => j !== i);
        if (rest.length > 0) this.#listeners.set(event, rest);
        else this.#listeners.delete(event);
      }
    }
    if (this.#listeners.size === 0) {
      this.#listeners = undefined;
      this.#n.unsubscribe();
    }
    return this;
  }

  #emitChanges() {
    const changes = this.#n.drainChanges();
    for (let i = 0; i + 1 < changes.length; i += 2) {
      const change = { from: STATES[changes[i]], to: STATES[changes[i + 1]] };
      const listeners = this.#listeners;
      if (listeners === undefined) return;
      for (const listener of listeners.get('stateChange') ?? []) callHook(listener, change, "breaker 'stateChange' listener");
      const named = STATE_EVENT[change.to];
      for (const listener of listeners.get(named) ?? []) callHook(listener, change, `breaker '${named}' listener`);
    }
  }

  /** `'closed' | 'open' | 'half-open'`. */
  get state() {
    this.#flushDeferred();
    const state = STATES[this.#n.state()];
    if (this.#listeners !== undefined) this.#emitChanges();
    return state;
  }

  /** Counters since creation and the current window. */
  stats() {
    this.#flushDeferred();
    const stats = this.#n.stats();
    if (this.#listeners !== undefined) this.#emitChanges();
    return stats;
  }
}

const NO_SIGNAL = Object.freeze({ signal: undefined });
const EVENTS = ['stateChange', 'open', 'halfOpen', 'close'];
const STATE_EVENT = { closed: 'close', open: 'open', 'half-open': 'halfOpen' };

module.exports = { CircuitBreaker, BreakerPermit };
