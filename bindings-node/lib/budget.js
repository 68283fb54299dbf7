'use strict';
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const pending = require('./pending');

const KEYS = ['ttlMs', 'minRetriesPerSec', 'retryRatio'];

let keyOf;
/** Set by `adoptBudget` for the one constructor call it makes. */
let adopting;

/**
 * A retry budget shared by every caller of one dependency: each original
 * request deposits `retryRatio` of a token, each retry withdraws one,
 * deposits expire after `ttlMs`, and a floor of `minRetriesPerSec` (per
 * budget instance) keeps a trickle of retries at low traffic.
 * Defaults (Finagle's): ttlMs 10000, minRetriesPerSec 10, retryRatio 0.2.
 */
class RetryBudget {
  /** Bound native methods (see src/budget.rs). */
  #n;

  constructor(options) {
    if (adopting !== undefined) {
      this.#n = adopting;
      adopting = undefined;
      return;
    }
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    const checked = {
      ttlMs: v.number('ttlMs', o.ttlMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
      minRetriesPerSec: v.number('minRetriesPerSec', o.minRetriesPerSec, { min: 0, max: 2 ** 32 - 1, integer: true }),
      retryRatio: v.number('retryRatio', o.retryRatio, { min: 0, max: limits.maxRetryRatio }),
    };
    this.#n = native.budgetCreate(checked);
  }

  static {
    keyOf = (budget) => budget.#n.key;
  }

  /** One original request: deposits `retryRatio` of a token. */
  deposit() {
    pending.flush();
    this.#n.deposit();
  }

  /** May one retry be made? Withdraws a token and returns true if so. */
  tryWithdraw() {
    pending.flush();
    return this.#n.tryWithdraw();
  }

  /** Counters since creation and the current balance. */
  stats() {
    pending.flush();
    return this.#n.stats();
  }
}

/** A RetryBudget around bound native methods made elsewhere (a keyed budget's per-key budget). */
function adoptBudget(n) {
  adopting = n;
  try {
    return new RetryBudget();
  } finally {
    adopting = undefined;
  }
}

module.exports = { RetryBudget, budgetKey: (budget) => keyOf(budget), adoptBudget };
