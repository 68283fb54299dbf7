'use strict';
// `KeyedRetryBudget`: one retry budget per key (per downstream), from resilience-core.
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const pending = require('./pending');
const { adoptBudget } = require('./budget');

const KEYS = ['ttlMs', 'minRetriesPerSec', 'retryRatio', 'maxKeys', 'idleTtlMs'];

function key(value) {
  if (typeof value !== 'string') v.string('key', value, { optional: false });
  return value;
}

/**
 * One `RetryBudget` per string key, so that one failing downstream cannot spend the retries of
 * the others. At most `maxKeys` keys (default 1024) get their own budget; idle ones (unused for
 * `idleTtlMs`, default 60000) are evicted for new keys, and when every key is active, new keys
 * share one overflow budget. Each key's budget takes RetryBudget's options.
 */
class KeyedRetryBudget {
  #n;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    this.#n = native.keyedBudgetCreate({
      ttlMs: v.number('ttlMs', o.ttlMs, { min: limits.minBudgetTtlMs, max: limits.maxBudgetTtlMs }),
      minRetriesPerSec: v.number('minRetriesPerSec', o.minRetriesPerSec, { min: 0, max: 2 ** 32 - 1, integer: true }),
      retryRatio: v.number('retryRatio', o.retryRatio, { min: 0, max: limits.maxRetryRatio }),
      maxKeys: v.number('maxKeys', o.maxKeys, { min: 1, max: limits.maxU31, integer: true }),
      idleTtlMs: v.number('idleTtlMs', o.idleTtlMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
    });
  }

  /** Records an original request to `key` (earns it retry tokens). */
  deposit(k) {
    pending.flush();
    this.#n.deposit(key(k));
  }

  /** Spends a token of `key` for a retry: true if the retry may be sent. */
  tryWithdraw(k) {
    pending.flush();
    return this.#n.tryWithdraw(key(k));
  }

  /** Whether `key` has its own budget now. */
  has(k) {
    return this.#n.has(key(k));
  }

  /** The stats of `key`'s budget (as `RetryBudget#stats`); creates it if absent. */
  budgetStats(k) {
    pending.flush();
    return this.#n.budgetStats(key(k));
  }

  /**
   * `key`'s own budget as a `RetryBudget` (the same budget, not a copy), to pass to `retry` as
   * `budget`. While that object is alive, the key counts as held and is never evicted.
   */
  budgetFor(k) {
    pending.flush();
    return adoptBudget(native.budgetAdopt(this.#n.budgetFor(key(k))));
  }

  /** Forgets idle keys; returns how many. */
  evictIdle() {
    pending.flush();
    return this.#n.evictIdle();
  }

  /** keys, evictions, overflowed. */
  stats() {
    pending.flush();
    return this.#n.stats();
  }
}

module.exports = { KeyedRetryBudget };
