import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter, KeyedRateLimiter, codes } from '../index.js';
import { assertInvalid, assertRejectsInvalid, activeTimers } from './helpers.mjs';

const HOUR = 3_600_000;

test('the burst conforms, then the rate limits with a retryAfterMs hint', () => {
  const limiter = new RateLimiter({ rate: 1, perMs: HOUR, burst: 3 });
  assert.equal(limiter.check(), true);
  limiter.tryAcquire();
  assert.equal(limiter.check(), true);
  assert.equal(limiter.check(), false);
  assert.throws(() => limiter.tryAcquire(), (err) => {
    assert.equal(err.code, codes.RATE_LIMITED);
    assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= HOUR, String(err.retryAfterMs));
    return true;
  });
  assert.deepEqual(limiter.stats(), { allowed: 3, limited: 2, emissionIntervalMs: HOUR });
});

test('execute runs fn only when the request conforms', async () => {
  const limiter = new RateLimiter({ rate: 1, perMs: HOUR, burst: 1 });
  assert.equal(await limiter.execute(() => 'ran'), 'ran');
  let calls = 0;
  await assert.rejects(limiter.execute(() => calls++), (err) => err.code === codes.RATE_LIMITED);
  assert.equal(calls, 0);
});

test('untilReady resolves once a request conforms', async () => {
  const limiter = new RateLimiter({ rate: 1000, perMs: 1000, burst: 1 });
  limiter.tryAcquire();
  await limiter.untilReady();
  assert.equal(limiter.stats().allowed, 2);
});

test('untilReady rejects with an AbortError and clears its timer when the signal aborts', async () => {
  const limiter = new RateLimiter({ rate: 1, perMs: HOUR, burst: 1 });
  limiter.tryAcquire();
  const before = activeTimers();
  const controller = new AbortController();
  const waiting = limiter.untilReady({ signal: controller.signal });
  controller.abort(new Error('stop'));
  await assert.rejects(waiting, (err) => err.name === 'AbortError' && err.cause.message === 'stop');
  assert.equal(activeTimers(), before);
  await assert.rejects(limiter.untilReady({ signal: AbortSignal.abort() }), { name: 'AbortError' });
  await assert.rejects(limiter.execute(() => 1, { signal: AbortSignal.abort() }), { name: 'AbortError' });
});

test('a keyed limiter limits each key separately and bounds its keys', () => {
  const limiter = new KeyedRateLimiter({ rate: 1, perMs: HOUR, burst: 1, maxKeys: 2 });
  assert.equal(limiter.check('a'), true);
  assert.equal(limiter.check('a'), false);
  assert.equal(limiter.check('b'), true);
  assert.throws(() => limiter.tryAcquire('b'), (err) => err.code === codes.RATE_LIMITED && err.retryAfterMs > 0);
  assert.equal(limiter.check('c'), true);
  const stats = limiter.stats();
  assert.equal(stats.keys, 2);
  assert.equal(stats.allowed, 3);
  assert.equal(stats.limited, 2);
  assert.equal(limiter.evictIdle(), 0);
});

test('a keyed untilReady waits for its own key and honours its signal', async () => {
  const limiter = new KeyedRateLimiter({ rate: 1000, perMs: 1000, burst: 1 });
  limiter.tryAcquire('k');
  await limiter.untilReady('k');
  const slow = new KeyedRateLimiter({ rate: 1, perMs: HOUR, burst: 1 });
  slow.tryAcquire('k');
  const controller = new AbortController();
  const waiting = slow.untilReady('k', { signal: controller.signal });
  controller.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
});

test('invalid rate limiter arguments are TypeErrors or RangeErrors naming them', async () => {
  for (const Class of [RateLimiter, KeyedRateLimiter]) {
    assertInvalid(() => new Class(5), TypeError, 'options');
    assertInvalid(() => new Class(null), TypeError, 'options');
    assertInvalid(() => new Class({ limit: 1 }), TypeError, 'limit');
    assertInvalid(() => new Class({ rate: '10' }), TypeError, 'rate');
    assertInvalid(() => new Class({ rate: 0 }), RangeError, 'rate');
    assertInvalid(() => new Class({ rate: 1.5 }), RangeError, 'rate');
    assertInvalid(() => new Class({ rate: 2 ** 32 }), RangeError, 'rate');
    assertInvalid(() => new Class({ burst: 0 }), RangeError, 'burst');
    assertInvalid(() => new Class({ burst: NaN }), RangeError, 'burst');
    assertInvalid(() => new Class({ perMs: -1 }), RangeError, 'perMs');
    assertInvalid(() => new Class({ perMs: 0 }), RangeError, 'perMs');
  }
  assertInvalid(() => new RateLimiter({ maxKeys: 5 }), TypeError, 'maxKeys');
  assertInvalid(() => new KeyedRateLimiter({ maxKeys: 0 }), RangeError, 'maxKeys');
  assertInvalid(() => new KeyedRateLimiter({ maxKeys: 2 ** 31 }), RangeError, 'maxKeys');
  const limiter = new RateLimiter();
  await assertRejectsInvalid(limiter.execute('fn'), TypeError, 'fn');
  await assertRejectsInvalid(limiter.execute(() => 1, { signal: {} }), TypeError, 'signal');
  await assertRejectsInvalid(limiter.execute(() => 1, { timeout: 1 }), TypeError, 'timeout');
  await assertRejectsInvalid(limiter.untilReady(7), TypeError, 'options');
  const keyed = new KeyedRateLimiter();
  assertInvalid(() => keyed.check(1), TypeError, 'key');
  assertInvalid(() => keyed.tryAcquire(undefined), TypeError, 'key');
  await assertRejectsInvalid(keyed.untilReady({}), TypeError, 'key');
  await assertRejectsInvalid(keyed.untilReady('k', { signal: 'x' }), TypeError, 'signal');
});
