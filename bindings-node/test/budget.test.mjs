import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from '../index.js';
import { assertInvalid } from './helpers.mjs';

test('a budget without a floor allows retryRatio retries per request', () => {
  const budget = new RetryBudget({ ttlMs: 10_000, minRetriesPerSec: 0, retryRatio: 0.2 });
  assert.equal(budget.tryWithdraw(), false, 'nothing deposited yet');
  for (let i = 0; i < 10; i++) budget.deposit();
  assert.equal(budget.tryWithdraw(), true);
  assert.equal(budget.tryWithdraw(), true);
  assert.equal(budget.tryWithdraw(), false, '10 requests x 0.2 = 2 retries');
  const stats = budget.stats();
  assert.equal(stats.deposits, 10);
  assert.equal(stats.granted, 2);
  assert.equal(stats.denied, 2);
  assert.equal(stats.available, 0);
});

test('the default floor allows 10 retries per second over the 10 s ttl', () => {
  const budget = new RetryBudget();
  let granted = 0;
  while (budget.tryWithdraw()) granted++;
  assert.equal(granted, 100);
});

test('invalid budget options are TypeErrors or RangeErrors naming the option', () => {
  assertInvalid(() => new RetryBudget(42), TypeError, 'options');
  assertInvalid(() => new RetryBudget(null), TypeError, 'options');
  assertInvalid(() => new RetryBudget({ ttlMs: '10s' }), TypeError, 'ttlMs');
  assertInvalid(() => new RetryBudget({ ttlMs: Number.NaN }), RangeError, 'ttlMs');
  assertInvalid(() => new RetryBudget({ ttlMs: -1 }), RangeError, 'ttlMs');
  assertInvalid(() => new RetryBudget({ ttlMs: Infinity }), RangeError, 'ttlMs');
  assertInvalid(() => new RetryBudget({ ttlMs: 500 }), RangeError, 'ttlMs');
  assertInvalid(() => new RetryBudget({ ttlMs: 61_000 }), RangeError, 'ttlMs');
  assertInvalid(() => new RetryBudget({ retryRatio: -0.1 }), RangeError, 'retryRatio');
  assertInvalid(() => new RetryBudget({ retryRatio: 1001 }), RangeError, 'retryRatio');
  assertInvalid(() => new RetryBudget({ retryRatio: Number.NaN }), RangeError, 'retryRatio');
  assertInvalid(() => new RetryBudget({ minRetriesPerSec: 1.5 }), RangeError, 'minRetriesPerSec');
  assertInvalid(() => new RetryBudget({ minRetriesPerSec: -1 }), RangeError, 'minRetriesPerSec');
  assertInvalid(() => new RetryBudget({ minRetriesPerSec: true }), TypeError, 'minRetriesPerSec');
  assertInvalid(() => new RetryBudget({ ratio: 0.2 }), TypeError, 'ratio');
});
