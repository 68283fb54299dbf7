'use strict';
// Uses every export of `breakwater` once, as an installed package (see ../package-test.mjs).
// `bw` is the module object: from `require('breakwater')` or the ESM named imports.
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const EXPORTS = [
  'AdaptiveLimit', 'AdaptivePermit', 'AdaptiveThrottle', 'Allocator', 'Backoff', 'BreakerPermit',
  'CircuitBreaker', 'ConcurrencyLimit', 'EventAggregator', 'Hysteresis', 'KeyedRateLimiter',
  'KeyedRetryBudget', 'LimitPermit', 'PolicyWrap', 'RateLimiter', 'RestartBackoff', 'RetryBudget',
  'RetryPolicy', 'codes', 'planDrain', 'retry', 'wrap',
];

async function exercise(bw) {
  assert.deepEqual(Object.keys(bw).filter((k) => k !== 'default').sort(), [...EXPORTS].sort());

  assert.match(bw.codes.INVALID_ARG, /^ERR_BREAKWATER_/);

  const backoff = new bw.Backoff({ jitter: 'none', baseMs: 10 });
  assert.equal(backoff.nextDelayMs(), 10);

  const budget = new bw.RetryBudget();
  budget.deposit();
  assert.equal(typeof budget.tryWithdraw(), 'boolean');
  assert.equal(typeof budget.stats().deposits, 'number');

  let calls = 0;
  const value = await bw.retry(() => {
    calls += 1;
    if (calls < 2) throw new Error('once');
    return 'ok';
  }, { maxAttempts: 3, budget, backoff: { jitter: 'none', baseMs: 1 } });
  assert.equal(value, 'ok');
  const policy = new bw.RetryPolicy({ maxAttempts: 2 });
  assert.equal(await policy.execute(() => 7), 7);
  assert.equal(policy.stats().runs, 1);

  const breaker = new bw.CircuitBreaker();
  const changes = [];
  breaker.on('stateChange', (change) => changes.push(change));
  assert.equal(await breaker.execute(() => 'through'), 'through');
  const permit = breaker.tryAcquire();
  assert.ok(permit instanceof bw.BreakerPermit);
  assert.equal(permit.recordSuccess(), true);
  assert.equal(breaker.stats().state, 'closed');
  assert.deepEqual(changes, []);

  const limit = new bw.ConcurrencyLimit({ maxConcurrent: 1 });
  const held = limit.tryAcquire();
  assert.ok(held instanceof bw.LimitPermit);
  held.release();
  assert.equal(await limit.run(async () => 'ran'), 'ran');

  const throttle = new bw.AdaptiveThrottle();
  assert.equal(await throttle.execute(() => 1), 1);
  assert.equal(typeof throttle.stats(), 'object');

  const rate = new bw.RateLimiter({ rate: 1, perMs: 60_000, burst: 1 });
  assert.equal(rate.check(), true);
  assert.throws(() => rate.tryAcquire(), (err) => err.code === bw.codes.RATE_LIMITED);
  const keyedRate = new bw.KeyedRateLimiter({ rate: 1, burst: 1 });
  assert.equal(keyedRate.check('a'), true);
  assert.equal(keyedRate.stats().keys, 1);

  const adaptive = new bw.AdaptiveLimit({ algorithm: 'aimd', initialLimit: 1 });
  const adaptivePermit = adaptive.tryAcquire();
  assert.ok(adaptivePermit instanceof bw.AdaptivePermit);
  assert.equal(adaptivePermit.release('success', 1), true);
  assert.equal(await adaptive.run(async () => 'adapted'), 'adapted');

  const keyedBudget = new bw.KeyedRetryBudget();
  keyedBudget.deposit('users');
  assert.equal(keyedBudget.stats().keys, 1);

  const restart = new bw.RestartBackoff({ initialDelayMs: 10 });
  assert.equal(restart.onCrash(), 10);

  const signal = new bw.Hysteresis({ fireAfter: 1 });
  assert.equal(signal.observe(1), 'fired');
  const events = new bw.EventAggregator();
  assert.equal(events.record('f', 'e'), true);
  assert.equal(events.record('f', 'e'), false);
  assert.equal(events.flush().summaries.length, 1);

  const composed = bw.wrap(new bw.RetryPolicy({ maxAttempts: 2 }), new bw.CircuitBreaker(), new bw.ConcurrencyLimit());
  assert.ok(composed instanceof bw.PolicyWrap);
  assert.equal(await composed.execute(({ attempt }) => attempt, { signal: new AbortController().signal }), 1);

  const waves = bw.planDrain({
    hosts: [{ id: 1, capacity: 10 }, { id: 2, capacity: 10 }],
    apps: [{ id: 1, host: 1 }],
    drain: [1],
  }, { maxUnavailable: 1 });
  assert.ok(Array.isArray(waves) && waves.length >= 1);

  const store = mkdtempSync(join(tmpdir(), 'breakwater-package-store-'));
  try {
    const allocator = new bw.Allocator({ storeDir: store });
    assert.deepEqual(await allocator.import([]), []);
    assert.equal(allocator.stats().templatesBuilt, 0);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

module.exports = { exercise, EXPORTS };
