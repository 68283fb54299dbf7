import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveThrottle, codes } from '../index.js';
import { assertInvalid } from './helpers.mjs';

test('a healthy backend is never throttled', async () => {
  const throttle = new AdaptiveThrottle({ seed: 1 });
  for (let i = 0; i < 200; i++) assert.equal(await throttle.execute(async () => i), i);
  const stats = throttle.stats();
  assert.equal(stats.requests, 200);
  assert.equal(stats.accepts, 200);
  assert.equal(throttle.rejectProbability, 0);
});

test('a backend rejecting everything gets most requests throttled locally', async () => {
  const throttle = new AdaptiveThrottle({ seed: 7, k: 2 });
  let sent = 0;
  let throttled = 0;
  for (let i = 0; i < 500; i++) {
    try {
      await throttle.execute(async () => {
        sent++;
        throw new Error('503');
      });
    } catch (err) {
      if (err.code === codes.THROTTLED) {
        throttled++;
        assert.ok(err.probability > 0 && err.probability < 1);
      }
    }
  }
  assert.ok(sent < 50, `sent ${sent} of 500`);
  assert.equal(sent + throttled, 500);
  assert.ok(throttle.rejectProbability > 0.9);
});

test('isRejection keeps client errors counted as accepted', async () => {
  const throttle = new AdaptiveThrottle({ seed: 3, isRejection: (err) => err.status >= 500 });
  for (let i = 0; i < 100; i++) {
    await assert.rejects(throttle.execute(async () => Promise.reject(Object.assign(new Error('nf'), { status: 404 }))));
  }
  assert.equal(throttle.stats().accepts, 100);
  assert.equal(throttle.shouldReject(), false);
  throttle.tryAcquire();
  throttle.recordAccepted();
  throttle.recordRejected();
});

test('invalid throttle options are TypeErrors or RangeErrors naming the option', async () => {
  assertInvalid(() => new AdaptiveThrottle(1), TypeError, 'options');
  assertInvalid(() => new AdaptiveThrottle({ k: 0.5 }), RangeError, 'k');
  assertInvalid(() => new AdaptiveThrottle({ k: Number.NaN }), RangeError, 'k');
  assertInvalid(() => new AdaptiveThrottle({ k: Infinity }), RangeError, 'k');
  assertInvalid(() => new AdaptiveThrottle({ windowMs: 0 }), RangeError, 'windowMs');
  assertInvalid(() => new AdaptiveThrottle({ windowMs: -1 }), RangeError, 'windowMs');
  assertInvalid(() => new AdaptiveThrottle({ buckets: 0 }), RangeError, 'buckets');
  assertInvalid(() => new AdaptiveThrottle({ buckets: 10_001 }), RangeError, 'buckets');
  assertInvalid(() => new AdaptiveThrottle({ buckets: 'ten' }), TypeError, 'buckets');
  assertInvalid(() => new AdaptiveThrottle({ seed: -1 }), RangeError, 'seed');
  assertInvalid(() => new AdaptiveThrottle({ isRejection: 1 }), TypeError, 'isRejection');
  assertInvalid(() => new AdaptiveThrottle({ K: 2 }), TypeError, 'K');
  await assert.rejects(new AdaptiveThrottle().execute(null), { name: 'TypeError', code: codes.INVALID_ARG });
});
