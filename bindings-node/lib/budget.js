'use strict';
const native = require('./native');
const v = require('./validate');

const KEYS = ['ttlMs', 'minRetriesPerSec', 'retryRatio'];

let keyOf;

/**
 * A retry budget shared by every caller of one dependency: each original
 * request deposits `retryRatio` of a token, each retry withdraws one,
 * deposits expire after `ttlMs`, and a floor of `minRetriesPerSec` (per
 * budget instance) keeps a trickle of retries at low traffic.
 * Defaults (Finagle's): ttlMs 10000, minRetriesPerSec 10, retryRatio 0.2.
 */
class RetryBudget {
  #handle;
  #key;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    const checked = {
      ttlMs: v.number('ttlMs', o.ttlMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
      minRetriesPerSec: v.number('minRetriesPerSec', o.minRetriesPerSec, { min: 0, max: 2 ** 32 - 1, integer: true }),
      retryRatio: v.number('retryRatio', o.retryRatio, { min: 0, max: 1000 }),
    };
    this.#handle = native.budgetCreate(checked);
    this.#key = this.#handle.key;
  }

  static {
    keyOf = (budget) => budget.#key;
  }

  /** One original request: deposits `retryRatio` of a token. */
  deposit() {
    native.budgetDeposit(this.#key);
  }

  /** May one retry be made? Withdraws a token and returns true if so. */
  tryWithdraw() {
    return native.budgetTryWithdraw(this.#key);
  }

  /** Counters since creation and the current balance. */
  stats() {
    return native.budgetStats(this.#key);
  }
}

module.exports = { RetryBudget, budgetKey: (budget) => keyOf(budget) };
