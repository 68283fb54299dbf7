import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConcurrencyLimit, codes } from '../index.js';
import { assertInvalid } from './helpers.mjs';

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('tryAcquire sheds with OVERLOADED and a retryAfterMs hint when full', () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 2, maxQueued: 0, minRetryAfterMs: 25 });
  const a = limit.tryAcquire();
  const b = limit.tryAcquire();
  assert.equal(limit.inFlight, 2);
  assert.throws(() => limit.tryAcquire(), (err) => err.code === codes.OVERLOADED && err.retryAfterMs >= 25);
  assert.equal(a.release(), true);
  assert.equal(a.release(), false, 'release is idempotent');
  limit.tryAcquire().release();
  b.release();
  assert.equal(limit.inFlight, 0);
});

test('acquire waits in the FIFO queue without blocking the event loop', async () => {
  // A queue timeout (rather than none) so that a failing assertion cannot
  // leave a waiter pending forever and hang the test process.
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 10, queueTimeoutMs: 20_000 });
  const held = limit.tryAcquire();
  const order = [];
  const waiters = [1, 2, 3].map((n) =>
    limit.acquire().then((permit) => {
      order.push(n);
      return permit;
    }),
  );
  await tick();
  assert.equal(limit.stats().queued, 3);
  assert.deepEqual(order, [], 'nobody got a permit while it is held');
  held.release();
  const first = await waiters[0];
  first.release();
  (await waiters[1]).release();
  (await waiters[2]).release();
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(limit.inFlight, 0);
});

test('a full queue sheds at once and a queue timeout sheds later', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 1, queueTimeoutMs: 30 });
  const held = limit.tryAcquire();
  const queued = limit.acquire();
  await tick();
  await assert.rejects(limit.acquire(), { code: codes.OVERLOADED });
  await assert.rejects(queued, (err) => err.code === codes.OVERLOADED && typeof err.retryAfterMs === 'number');
  held.release();
});

test('run releases its permit whether fn resolves or rejects', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 0 });
  assert.equal(await limit.run(async () => 7), 7);
  await assert.rejects(limit.run(async () => Promise.reject(new Error('x'))), { message: 'x' });
  assert.equal(limit.inFlight, 0);
  const slow = limit.run(() => new Promise((resolve) => setTimeout(resolve, 20, 'slow')));
  await assert.rejects(limit.run(async () => 1), { code: codes.OVERLOADED });
  assert.equal(await slow, 'slow');
});

test('an abort while queued rejects with an AbortError and frees the queue slot', async (t) => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 1, queueTimeoutMs: null });
  const held = limit.tryAcquire();
  const controller = new AbortController();
  t.after(() => controller.abort()); // never leave the waiter pending
  const waiting = limit.acquire({ signal: controller.signal });
  await tick();
  assert.equal(limit.stats().queued, 1);
  controller.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(limit.stats().queued, 0);
  held.release();
  limit.tryAcquire().release();
  await assert.rejects(limit.acquire({ signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(limit.inFlight, 0);
});

test('setMaxConcurrent hands new capacity to queued callers', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 5, queueTimeoutMs: 20_000 });
  const held = limit.tryAcquire();
  const waiting = limit.acquire();
  await tick();
  limit.setMaxConcurrent(2);
  const permit = await waiting;
  assert.equal(limit.inFlight, 2);
  permit.release();
  held.release();
  assert.equal(limit.stats().maxConcurrent, 2);
});

test('invalid limit options are TypeErrors or RangeErrors naming the option', async () => {
  assertInvalid(() => new ConcurrencyLimit('many'), TypeError, 'options');
  assertInvalid(() => new ConcurrencyLimit({ maxConcurrent: 0 }), RangeError, 'maxConcurrent');
  assertInvalid(() => new ConcurrencyLimit({ maxConcurrent: 2 ** 31 }), RangeError, 'maxConcurrent');
  assertInvalid(() => new ConcurrencyLimit({ maxConcurrent: 1.5 }), RangeError, 'maxConcurrent');
  assertInvalid(() => new ConcurrencyLimit({ maxConcurrent: '8' }), TypeError, 'maxConcurrent');
  assertInvalid(() => new ConcurrencyLimit({ maxQueued: -1 }), RangeError, 'maxQueued');
  assertInvalid(() => new ConcurrencyLimit({ queueTimeoutMs: 0 }), RangeError, 'queueTimeoutMs');
  assertInvalid(() => new ConcurrencyLimit({ queueTimeoutMs: Number.NaN }), RangeError, 'queueTimeoutMs');
  assertInvalid(() => new ConcurrencyLimit({ minRetryAfterMs: 0 }), RangeError, 'minRetryAfterMs');
  assertInvalid(() => new ConcurrencyLimit({ minRetryAfterMs: 100, maxRetryAfterMs: 10 }), RangeError, 'maxRetryAfterMs');
  assertInvalid(() => new ConcurrencyLimit({ maxRetryAfterMs: Infinity }), RangeError, 'maxRetryAfterMs');
  assertInvalid(() => new ConcurrencyLimit({ limit: 3 }), TypeError, 'limit');
  const limit = new ConcurrencyLimit();
  assertInvalid(() => limit.setMaxConcurrent(0), RangeError, 'maxConcurrent');
  assertInvalid(() => limit.setMaxConcurrent('3'), TypeError, 'maxConcurrent');
  await assert.rejects(limit.run('fn'), { name: 'TypeError', code: codes.INVALID_ARG });
  await assert.rejects(limit.acquire({ signal: 'stop' }), { name: 'TypeError', code: codes.INVALID_ARG });
  await assert.rejects(limit.acquire({ wait: true }), { name: 'TypeError', code: codes.INVALID_ARG });
});
