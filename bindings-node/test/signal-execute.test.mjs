// `signal` on every execute/run: an abort rejects at once with an AbortError and releases what
// the policy holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveThrottle, CircuitBreaker, ConcurrencyLimit, RateLimiter, AdaptiveLimit, codes } from '../index.js';
import { assertRejectsInvalid } from './helpers.mjs';

const pending = () => new Promise(() => {});

test('CircuitBreaker#execute: an abort rejects and records the call as cancelled', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1 });
  const controller = new AbortController();
  let seen;
  const running = breaker.execute(({ signal }) => {
    seen = signal;
    return pending();
  }, { signal: controller.signal });
  controller.abort(new Error('client went away'));
  await assert.rejects(running, (err) => err.name === 'AbortError' && err.cause.message === 'client went away');
  assert.equal(seen, controller.signal);
  const stats = breaker.stats();
  assert.equal(stats.cancelled, 1);
  assert.equal(stats.failures, 0);
  assert.equal(stats.inFlight, 0);
  assert.equal(breaker.state, 'closed');
  await assert.rejects(breaker.execute(() => 1, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(breaker.stats().calls, stats.calls);
  assert.equal(await breaker.execute(() => 'ok', { signal: new AbortController().signal }), 'ok');
});

test('AdaptiveThrottle#execute: an abort rejects without counting against the backend', async () => {
  const throttle = new AdaptiveThrottle({ seed: 1 });
  const controller = new AbortController();
  const running = throttle.execute(pending, { signal: controller.signal });
  controller.abort();
  await assert.rejects(running, { name: 'AbortError' });
  const stats = throttle.stats();
  assert.equal(stats.requests, 1);
  assert.equal(stats.accepts, 1);
  await assert.rejects(throttle.execute(() => 1, { signal: AbortSignal.abort() }), { name: 'AbortError' });
});

test('ConcurrencyLimit#run: an abort while fn runs releases the permit', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 0 });
  const controller = new AbortController();
  const running = limit.run(pending, { signal: controller.signal });
  assert.equal(limit.inFlight, 1);
  controller.abort();
  await assert.rejects(running, { name: 'AbortError' });
  assert.equal(limit.inFlight, 0);
  assert.equal(await limit.run(() => 'free again'), 'free again');
  await assert.rejects(limit.run(() => 1, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(limit.inFlight, 0);
});

test('ConcurrencyLimit#stats counts shed requests', async () => {
  const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueued: 0 });
  const held = limit.tryAcquire();
  assert.throws(() => limit.tryAcquire(), (err) => err.code === codes.OVERLOADED);
  await assert.rejects(limit.run(() => 1), (err) => err.code === codes.OVERLOADED);
  await assert.rejects(limit.acquire(), (err) => err.code === codes.OVERLOADED);
  held.release();
  const stats = limit.stats();
  assert.equal(stats.shed, 3);
  assert.equal(stats.inFlight, 0);
});

test('every execute/run rejects a bad signal with ERR_BREAKWATER_INVALID_ARG', async () => {
  const targets = [
    (o) => new CircuitBreaker().execute(() => 1, o),
    (o) => new AdaptiveThrottle().execute(() => 1, o),
    (o) => new ConcurrencyLimit().run(() => 1, o),
    (o) => new RateLimiter().execute(() => 1, o),
    (o) => new AdaptiveLimit().run(() => 1, o),
  ];
  for (const call of targets) {
    await assertRejectsInvalid(call({ signal: 'abort' }), TypeError, 'signal');
    await assertRejectsInvalid(call({ signal: null }), TypeError, 'signal');
    await assertRejectsInvalid(call(5), TypeError, 'options');
    await assertRejectsInvalid(call({ sigal: AbortSignal.abort() }), TypeError, 'sigal');
  }
});
