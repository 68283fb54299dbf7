'use strict';
// `wrap(...policies)`: composition of policies, as cockatiel's `wrap`, through the internal
// execute protocol of lib/policy.js.
const v = require('./validate');
const { typeError } = require('./errors');
const { kExecute } = require('./policy');
const { RetryPolicy, NEVER } = require('./retry');
const { CircuitBreaker } = require('./breaker');
const { ConcurrencyLimit } = require('./limit');
const { AdaptiveThrottle } = require('./throttle');
const { RateLimiter } = require('./rate');
const { AdaptiveLimit } = require('./adaptive');

const EXECUTE_KEYS = ['signal'];

/** Policies composed by `wrap`: `execute(fn)` runs fn through each, outermost first. */
class PolicyWrap {
  #policies;

  constructor(policies) {
    this.#policies = policies;
  }

  /** The composed policies, outermost first. */
  get policies() {
    return [...this.#policies];
  }

  /** `{ policies }`: each composed policy's `stats()`, outermost first. */
  stats() {
    return { policies: this.#policies.map((policy) => policy.stats()) };
  }

  /**
   * Runs `fn({ signal, attempt })` through every policy, the first one outermost: with
   * `wrap(retry, breaker)` each retry attempt goes through the breaker. `attempt` is the
   * innermost retry policy's attempt number (1 without one); `signal` aborts when the caller's
   * `signal` does (or a retry deadline passes). Rejects with the first policy error that is not
   * handled by an outer policy, or with an AbortError.
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
  [kExecute](fn, signal) {
    const policies = this.#policies;
    const step = (i, ctx) => {
      if (i === policies.length) return fn(ctx);
      return policies[i][kExecute]((inner) => step(i + 1, narrow(ctx, inner)), ctx.signal);
    };
    return step(0, { signal, attempt: 1 });
  }
}

/** The context for the next layer: a policy's own signal and attempt win over the outer ones. */
function narrow(outer, inner) {
  if (inner === undefined || inner === null) return outer;
  const signal = inner.signal !== undefined && inner.signal !== NEVER ? inner.signal : outer.signal;
  const attempt = typeof inner.attempt === 'number' ? inner.attempt : outer.attempt;
  return signal === outer.signal && attempt === outer.attempt ? outer : { signal, attempt };
}

const POLICIES = [RetryPolicy, CircuitBreaker, ConcurrencyLimit, AdaptiveThrottle, RateLimiter, AdaptiveLimit, PolicyWrap];

/**
 * Composes policies, applied outermost-first: `wrap(retryPolicy, breaker, limit).execute(fn)`
 * retries calls that each go through the breaker and then the limit. Accepts RetryPolicy,
 * CircuitBreaker, ConcurrencyLimit, AdaptiveThrottle, RateLimiter, AdaptiveLimit and other wraps.
 */
function wrap(...policies) {
  if (policies.length === 0) throw typeError('wrap() needs at least one policy');
  policies.forEach((policy, i) => {
    if (!POLICIES.some((Class) => policy instanceof Class)) {
      throw typeError(
        `wrap() argument ${i + 1} must be a RetryPolicy, CircuitBreaker, ConcurrencyLimit, AdaptiveThrottle, ` +
          `RateLimiter, AdaptiveLimit or a wrap(), got ${v.describe(policy)}`,
      );
    }
  });
  return new PolicyWrap(policies);
}

module.exports = { wrap, PolicyWrap };
