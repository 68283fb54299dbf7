// retry with `breaker`/`limit`, the onRetry/onGiveUp hooks and wrap(...policies).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdaptiveLimit, AdaptiveThrottle, CircuitBreaker, ConcurrencyLimit, PolicyWrap, RateLimiter, RetryBudget,
  RetryPolicy, codes, retry, wrap,
} from '../index.js';
import { assertInvalid, assertRejectsInvalid } from './helpers.mjs';

const fast = { jitter: 'none', baseMs: 1, maxMs: 1 };

function failing(times) {
  let calls = 0;
  const fn = () => {
    calls += 1;
    if (calls <= times) throw new Error(`failure ${calls}`);
    return calls;
  };
  return [fn, () => calls];
}

test('retry: every attempt goes through the breaker', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 5 });
  const [fn] = failing(2);
  assert.equal(await retry(fn, { maxAttempts: 3, backoff: fast, breaker }), 3);
  const stats = breaker.stats();
  assert.equal(stats.calls, 3);
  assert.equal(stats.failures, 2);
  assert.equal(stats.successes, 1);
});

test('retry: an open breaker stops the attempts from reaching fn', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1, openWait: { baseMs: 60_000 } });
  const [fn, calls] = failing(10);
  await assert.rejects(retry(fn, { maxAttempts: 3, backoff: fast, maxRetryAfterMs: 0, breaker }), (err) => {
    assert.equal(err.code, codes.ATTEMPTS_EXHAUSTED);
    assert.equal(err.cause.code, codes.BREAKER_OPEN);
    return true;
  });
  assert.equal(calls(), 1);
  assert.equal(breaker.stats().rejections, 2);
});

test('retry: attempts go through the limit, outside the breaker (a shed attempt is no breaker failure)', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 0 });
  const breaker = new CircuitBreaker({ consecutiveFailures: 1 });
  const held = limit.tryAcquire();
  await assert.rejects(retry(() => 1, { maxAttempts: 2, backoff: fast, maxRetryAfterMs: 0, limit, breaker }), (err) => err.cause.code === codes.OVERLOADED);
  held.release();
  assert.equal(breaker.stats().calls, 0);
  assert.equal(limit.stats().shed, 2);
  assert.equal(await retry(() => 'through', { limit, breaker }), 'through');
  assert.equal(limit.inFlight, 0);
  for (const other of [new AdaptiveLimit(), new RateLimiter(), new AdaptiveThrottle()]) {
    assert.equal(await retry(() => 'ok', { limit: other }), 'ok');
  }
});

test('retry: onRetry before each retry, onGiveUp once with the final error', async () => {
  const retries = [];
  const giveUps = [];
  const [fn] = failing(10);
  const options = {
    maxAttempts: 3,
    backoff: fast,
    onRetry: (info) => retries.push(info),
    onGiveUp: (info) => giveUps.push(info),
  };
  const rejection = await retry(fn, options).catch((err) => err);
  assert.equal(rejection.code, codes.ATTEMPTS_EXHAUSTED);
  assert.deepEqual(retries.map((r) => [r.attempt, r.delayMs, r.error.message]), [[1, 1, 'failure 1'], [2, 1, 'failure 2']]);
  assert.equal(giveUps.length, 1);
  assert.equal(giveUps[0].attempts, 3);
  assert.equal(giveUps[0].code, codes.ATTEMPTS_EXHAUSTED);
  assert.equal(giveUps[0].error.message, 'failure 3');
  assert.equal(giveUps[0].reason, rejection);
  // The guarded path (signal/deadline) calls them too; a budget refusal is a give-up.
  const budget = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 0 });
  const seen = [];
  await assert.rejects(
    retry(() => Promise.reject(new Error('x')), { budget, signal: new AbortController().signal, onGiveUp: (i) => seen.push(i.code) }),
    (err) => err.code === codes.BUDGET_EXHAUSTED,
  );
  assert.deepEqual(seen, [codes.BUDGET_EXHAUSTED]);
});

test('retry: a hook that throws becomes a warning and changes nothing', async () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w.code);
  process.on('warning', onWarning);
  try {
    const [fn] = failing(1);
    const value = await retry(fn, {
      backoff: fast,
      onRetry: () => {
        throw new Error('hook bug');
      },
    });
    assert.equal(value, 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(warnings, ['BREAKWATER_LISTENER_THREW']);
  } finally {
    process.off('warning', onWarning);
  }
});

test('retry: bad breaker, limit and hook options are TypeErrors', async () => {
  await assertRejectsInvalid(retry(() => 1, { breaker: {} }), TypeError, 'breaker');
  await assertRejectsInvalid(retry(() => 1, { breaker: new ConcurrencyLimit() }), TypeError, 'breaker');
  await assertRejectsInvalid(retry(() => 1, { limit: new CircuitBreaker() }), TypeError, 'limit');
  await assertRejectsInvalid(retry(() => 1, { limit: 5 }), TypeError, 'limit');
  await assertRejectsInvalid(retry(() => 1, { onRetry: 'log' }), TypeError, 'onRetry');
  await assertRejectsInvalid(retry(() => 1, { onGiveUp: {} }), TypeError, 'onGiveUp');
  assertInvalid(() => new RetryPolicy({ limit: null }), TypeError, 'limit');
});

test('wrap: policies apply outermost-first', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 10 });
  const [fn] = failing(2);
  const retried = wrap(new RetryPolicy({ maxAttempts: 3, backoff: fast }), breaker);
  assert.ok(retried instanceof PolicyWrap);
  assert.equal(await retried.execute(fn), 3);
  assert.equal(breaker.stats().calls, 3, 'each attempt went through the breaker');

  const outer = new CircuitBreaker({ consecutiveFailures: 10 });
  const [fn2] = failing(2);
  assert.equal(await wrap(outer, new RetryPolicy({ maxAttempts: 3, backoff: fast })).execute(fn2), 3);
  assert.equal(outer.stats().calls, 1, 'the breaker saw one call around all attempts');
});

test('wrap: fn gets the attempt and the signal; nested wraps and every policy kind compose', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 2 });
  const policy = wrap(
    new AdaptiveThrottle(),
    wrap(new RetryPolicy({ maxAttempts: 2, backoff: fast }), new RateLimiter({ rate: 100, burst: 100 })),
    limit,
    new AdaptiveLimit(),
    new CircuitBreaker(),
  );
  const attempts = [];
  const value = await policy.execute(({ attempt, signal }) => {
    attempts.push(attempt);
    assert.equal(signal, undefined);
    if (attempt === 1) throw new Error('once');
    return 'done';
  });
  assert.equal(value, 'done');
  assert.deepEqual(attempts, [1, 2]);
  assert.equal(limit.inFlight, 0);
  const controller = new AbortController();
  const seen = [];
  assert.equal(await policy.execute(({ signal }) => seen.push(signal) && 'x', { signal: controller.signal }), 'x');
  assert.equal(seen.length, 1);
  assert.ok(seen[0] instanceof AbortSignal);
});

test('wrap: an abort rejects with an AbortError and releases every policy', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1 });
  const breaker = new CircuitBreaker();
  const policy = wrap(new RetryPolicy({ maxAttempts: 3 }), limit, breaker);
  const controller = new AbortController();
  const running = policy.execute(() => new Promise(() => {}), { signal: controller.signal });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(limit.inFlight, 1);
  controller.abort();
  await assert.rejects(running, { name: 'AbortError' });
  assert.equal(limit.inFlight, 0);
  assert.equal(breaker.stats().inFlight, 0);
  assert.equal(breaker.stats().cancelled, 1);
});

test('wrap: bad arguments are TypeErrors with ERR_BREAKWATER_INVALID_ARG', async () => {
  assertInvalid(() => wrap(), TypeError, 'at least one');
  assertInvalid(() => wrap({ execute: () => 1 }), TypeError, 'argument 1');
  assertInvalid(() => wrap(new CircuitBreaker(), null), TypeError, 'argument 2');
  assertInvalid(() => wrap(new RetryBudget()), TypeError, 'RetryBudget' === 'x' ? '' : 'argument 1');
  const policy = wrap(new CircuitBreaker());
  await assertRejectsInvalid(policy.execute('fn'), TypeError, 'fn');
  await assertRejectsInvalid(policy.execute(() => 1, { signal: 1 }), TypeError, 'signal');
  await assertRejectsInvalid(policy.execute(() => 1, { deadline: 1 }), TypeError, 'deadline');
});
