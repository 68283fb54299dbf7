import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedRetryBudget, RetryBudget, codes, retry } from '../index.js';
import { assertInvalid } from './helpers.mjs';

test('each key spends only its own retries', () => {
  const budgets = new KeyedRetryBudget({ minRetriesPerSec: 0, retryRatio: 0.5 });
  for (let i = 0; i < 100; i++) {
    budgets.deposit('users');
    budgets.tryWithdraw('users');
  }
  budgets.deposit('billing');
  budgets.deposit('billing');
  assert.equal(budgets.tryWithdraw('billing'), true);
  assert.equal(budgets.budgetStats('users').granted, 50);
  assert.equal(budgets.budgetStats('users').denied, 50);
  assert.equal(budgets.has('billing'), true);
  assert.equal(budgets.has('orders'), false);
  assert.deepEqual(budgets.stats(), { keys: 2, evictions: 0, overflowed: 0 });
  assert.equal(budgets.evictIdle(), 0);
});

test('keys beyond maxKeys share the overflow budget', () => {
  const budgets = new KeyedRetryBudget({ maxKeys: 1 });
  budgets.deposit('a');
  budgets.deposit('b');
  budgets.deposit('c');
  const stats = budgets.stats();
  assert.equal(stats.keys, 1);
  assert.equal(stats.overflowed, 2);
  assert.equal(budgets.has('b'), false);
});

test('budgetFor hands out the key\'s own budget, which retry spends from', async () => {
  const budgets = new KeyedRetryBudget({ minRetriesPerSec: 0, retryRatio: 0.5 });
  const users = budgets.budgetFor('users');
  assert.ok(users instanceof RetryBudget);
  users.deposit();
  assert.equal(budgets.budgetStats('users').deposits, 1, 'the same budget');
  await assert.rejects(
    retry(() => Promise.reject(new Error('down')), { budget: users, maxAttempts: 5, backoff: { baseMs: 1, maxMs: 1, jitter: 'none' } }),
    (err) => err.code === codes.BUDGET_EXHAUSTED,
  );
  assert.equal(budgets.budgetStats('users').deposits, 2);
  assert.equal(budgets.budgetStats('billing').deposits, 0, 'other keys untouched');
  assert.equal(budgets.budgetFor('users').stats().deposits, 2);
});

test('invalid keyed budget arguments are TypeErrors or RangeErrors naming them', () => {
  assertInvalid(() => new KeyedRetryBudget([]), TypeError, 'options');
  assertInvalid(() => new KeyedRetryBudget({ ttl: 1 }), TypeError, 'ttl');
  assertInvalid(() => new KeyedRetryBudget({ maxKeys: 0 }), RangeError, 'maxKeys');
  assertInvalid(() => new KeyedRetryBudget({ maxKeys: '1' }), TypeError, 'maxKeys');
  assertInvalid(() => new KeyedRetryBudget({ ttlMs: 10 }), RangeError, 'ttlMs');
  assertInvalid(() => new KeyedRetryBudget({ retryRatio: -1 }), RangeError, 'retryRatio');
  assertInvalid(() => new KeyedRetryBudget({ minRetriesPerSec: 0.5 }), RangeError, 'minRetriesPerSec');
  assertInvalid(() => new KeyedRetryBudget({ idleTtlMs: -1 }), RangeError, 'idleTtlMs');
  assertInvalid(() => new KeyedRetryBudget({ ttlMs: 5000, idleTtlMs: 1000 }), RangeError, 'idleTtlMs');
  const budgets = new KeyedRetryBudget();
  for (const method of ['deposit', 'tryWithdraw', 'has', 'budgetStats', 'budgetFor']) {
    assertInvalid(() => budgets[method](42), TypeError, 'key');
    assertInvalid(() => budgets[method](), TypeError, 'key');
  }
});
