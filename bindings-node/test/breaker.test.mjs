import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker, codes } from '../index.js';
import { assertInvalid } from './helpers.mjs';

const boom = async () => {
  throw new Error('boom');
};

test('consecutive failures open the breaker, which then fails fast with retryAfterMs', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 3, openWait: { baseMs: 60_000 } });
  assert.equal(breaker.state, 'closed');
  for (let i = 0; i < 3; i++) await assert.rejects(breaker.execute(boom), { message: 'boom' });
  assert.equal(breaker.state, 'open');
  let called = false;
  await assert.rejects(
    breaker.execute(async () => {
      called = true;
    }),
    (err) => err.code === codes.BREAKER_OPEN && err.retryAfterMs > 59_000 && err.retryAfterMs <= 60_000,
  );
  assert.equal(called, false, 'an open breaker does not call fn');
  assert.throws(() => breaker.tryAcquire(), { code: codes.BREAKER_OPEN });
  const stats = breaker.stats();
  assert.equal(stats.state, 'open');
  assert.equal(stats.failures, 3);
  assert.equal(stats.trips, 1);
  assert.equal(stats.rejections, 2);
});

test('after the open wait a probe closes the breaker again', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1, openWait: { baseMs: 20 }, halfOpenProbes: 1 });
  await assert.rejects(breaker.execute(boom));
  assert.equal(breaker.state, 'open');
  await new Promise((resolve) => setTimeout(resolve, 30));
  const probe = breaker.tryAcquire();
  assert.equal(breaker.state, 'half-open');
  assert.equal(probe.isProbe, true);
  assert.throws(() => breaker.tryAcquire(), { code: codes.BREAKER_OPEN }, 'one probe at a time');
  assert.equal(probe.recordSuccess(), true);
  assert.equal(probe.recordSuccess(), false, 'a permit records once');
  assert.equal(breaker.state, 'closed');
});

test('a failure rate over the window trips once minimumCalls are in', async () => {
  const breaker = new CircuitBreaker({ window: { calls: 10 }, minimumCalls: 4, failureRateThreshold: 0.5 });
  await breaker.execute(async () => 1);
  await assert.rejects(breaker.execute(boom));
  await breaker.execute(async () => 1);
  assert.equal(breaker.state, 'closed');
  await assert.rejects(breaker.execute(boom));
  assert.equal(breaker.state, 'open', '2 of 4 calls failed');
  assert.equal(breaker.stats().trips, 1);
});

test('isFailure turns client errors into ignored outcomes; AbortErrors count as cancelled', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1, isFailure: (err) => err.status !== 404 });
  const notFound = Object.assign(new Error('not found'), { status: 404 });
  await assert.rejects(breaker.execute(async () => Promise.reject(notFound)));
  await assert.rejects(breaker.execute(async () => Promise.reject(new DOMException('gone', 'AbortError'))));
  assert.equal(breaker.state, 'closed');
  const stats = breaker.stats();
  assert.equal(stats.ignored, 1);
  assert.equal(stats.cancelled, 1);
  assert.equal(stats.failures, 0);
});

test('permits record each outcome and release frees them', () => {
  const breaker = new CircuitBreaker();
  breaker.tryAcquire().recordSuccess();
  breaker.tryAcquire().recordFailure();
  breaker.tryAcquire().recordIgnored();
  breaker.tryAcquire().record('failure');
  const held = breaker.tryAcquire();
  assert.equal(breaker.stats().inFlight, 1);
  held.release();
  const stats = breaker.stats();
  assert.deepEqual(
    [stats.successes, stats.failures, stats.ignored, stats.cancelled, stats.inFlight],
    [1, 2, 1, 1, 0],
  );
  assertInvalid(() => breaker.tryAcquire().record('maybe'), RangeError, 'outcome');
});

test('a time window is accepted', async () => {
  const breaker = new CircuitBreaker({ window: { type: 'time', durationMs: 10_000, buckets: 10 }, minimumCalls: 2 });
  await assert.rejects(breaker.execute(boom));
  await assert.rejects(breaker.execute(boom));
  assert.equal(breaker.state, 'open');
});

test('invalid breaker options are TypeErrors or RangeErrors naming the option', async () => {
  assertInvalid(() => new CircuitBreaker([]), TypeError, 'options');
  assertInvalid(() => new CircuitBreaker({ consecutiveFailures: 0 }), RangeError, 'consecutiveFailures');
  assertInvalid(() => new CircuitBreaker({ consecutiveFailures: '5' }), TypeError, 'consecutiveFailures');
  assertInvalid(() => new CircuitBreaker({ failureRateThreshold: 0 }), RangeError, 'failureRateThreshold');
  assertInvalid(() => new CircuitBreaker({ failureRateThreshold: 1.5 }), RangeError, 'failureRateThreshold');
  assertInvalid(() => new CircuitBreaker({ failureRateThreshold: Number.NaN }), RangeError, 'failureRateThreshold');
  assertInvalid(() => new CircuitBreaker({ slowCallDurationMs: 0 }), RangeError, 'slowCallDurationMs');
  assertInvalid(() => new CircuitBreaker({ slowCallDurationMs: -1 }), RangeError, 'slowCallDurationMs');
  assertInvalid(() => new CircuitBreaker({ slowCallRateThreshold: 2 }), RangeError, 'slowCallRateThreshold');
  assertInvalid(() => new CircuitBreaker({ window: 100 }), TypeError, 'window');
  assertInvalid(() => new CircuitBreaker({ window: { calls: 0 } }), RangeError, 'window.calls');
  assertInvalid(() => new CircuitBreaker({ window: { calls: 10, durationMs: 10 } }), TypeError, 'window');
  assertInvalid(() => new CircuitBreaker({ window: { type: 'sliding' } }), RangeError, 'window.type');
  assertInvalid(() => new CircuitBreaker({ window: { type: 'time', durationMs: 5, buckets: 10 } }), RangeError, 'window.buckets');
  assertInvalid(() => new CircuitBreaker({ window: { durationMs: Infinity } }), RangeError, 'window.durationMs');
  assertInvalid(() => new CircuitBreaker({ window: { calls: 10 }, minimumCalls: 20 }), RangeError, 'minimumCalls');
  assertInvalid(() => new CircuitBreaker({ minimumCalls: 0 }), RangeError, 'minimumCalls');
  assertInvalid(() => new CircuitBreaker({ openWait: { baseMs: 0 } }), RangeError, 'openWait.baseMs');
  assertInvalid(() => new CircuitBreaker({ openWait: { jitter: 'lots' } }), RangeError, 'openWait.jitter');
  assertInvalid(() => new CircuitBreaker({ openWait: { maxAttempts: 3 } }), RangeError, 'openWait.maxAttempts');
  assertInvalid(() => new CircuitBreaker({ halfOpenProbes: 0 }), RangeError, 'halfOpenProbes');
  assertInvalid(() => new CircuitBreaker({ seed: 1.5 }), RangeError, 'seed');
  assertInvalid(() => new CircuitBreaker({ isFailure: 'yes' }), TypeError, 'isFailure');
  assertInvalid(() => new CircuitBreaker({ threshold: 1 }), TypeError, 'threshold');
  await assert.rejects(new CircuitBreaker().execute(42), { name: 'TypeError', code: codes.INVALID_ARG });
});
