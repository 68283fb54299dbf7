// Breaker state events from the Rust breaker's subscription.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from '../index.js';
import { assertInvalid, activeTimers } from './helpers.mjs';

const fail = () => Promise.reject(new Error('down'));

test('stateChange, open, halfOpen and close follow the breaker through a trip and a recovery', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 2, openWait: { baseMs: 1, jitter: 'none' }, halfOpenProbes: 1 });
  const events = [];
  const timers = activeTimers();
  breaker.on('stateChange', ({ from, to }) => events.push(`${from}->${to}`));
  breaker.on('open', () => events.push('open'));
  breaker.on('halfOpen', () => events.push('halfOpen'));
  breaker.on('close', () => events.push('close'));
  assert.equal(activeTimers(), timers, 'listening arms no timer');
  await assert.rejects(breaker.execute(fail));
  assert.deepEqual(events, []);
  await assert.rejects(breaker.execute(fail));
  assert.deepEqual(events, ['closed->open', 'open']);
  await new Promise((resolve) => setTimeout(resolve, 10)); // let the 1 ms open wait pass
  const permit = breaker.tryAcquire();
  assert.deepEqual(events.slice(2), ['open->half-open', 'halfOpen']);
  permit.recordSuccess();
  assert.deepEqual(events.slice(4), ['half-open->closed', 'close']);
});

test('off removes a listener; a throwing listener is a warning and the breaker keeps working', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1, openWait: { baseMs: 60_000 } });
  const seen = [];
  const listener = (change) => seen.push(change.to);
  breaker.on('stateChange', listener);
  breaker.on('open', () => {
    throw new Error('listener bug');
  });
  const warnings = [];
  const onWarning = (w) => warnings.push(w.code);
  process.on('warning', onWarning);
  try {
    await assert.rejects(breaker.execute(fail), { message: 'down' });
    assert.deepEqual(seen, ['open']);
    assert.equal(breaker.state, 'open');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(warnings, ['BREAKWATER_LISTENER_THREW']);
  } finally {
    process.off('warning', onWarning);
  }
  assert.equal(breaker.off('stateChange', listener), breaker);
  assert.equal(breaker.off('close', listener), breaker, 'removing an absent listener is a no-op');
});

test('bad event arguments are TypeErrors or RangeErrors', () => {
  const breaker = new CircuitBreaker();
  assertInvalid(() => breaker.on('opened', () => {}), RangeError, 'event');
  assertInvalid(() => breaker.on(1, () => {}), TypeError, 'event');
  assertInvalid(() => breaker.on('open'), TypeError, 'listener');
  assertInvalid(() => breaker.on('open', 'fn'), TypeError, 'listener');
  assertInvalid(() => breaker.off('half-open', () => {}), RangeError, 'event');
  assertInvalid(() => breaker.off('open', null), TypeError, 'listener');
});

test('a permit taken before listening still delivers the change it causes', () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1, openWait: { baseMs: 60_000 } });
  const permit = breaker.tryAcquire();
  const seen = [];
  breaker.on('open', ({ from, to }) => seen.push(`${from}->${to}`));
  permit.recordFailure();
  assert.deepEqual(seen, ['closed->open']);
});
