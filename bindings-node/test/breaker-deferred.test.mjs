// A CircuitBreaker records an execute() success with its next acquire (one crossing for both)
// when no record time counts (no slow-call tracking, a count window). These tests fail if that
// deferral reorders outcomes or hides one from a reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from '../index.js';
import { activeTimers } from './helpers.mjs';

const ok = async () => 'ok';
const fail = async () => {
  throw new Error('down');
};

test('a deferred success is recorded before a later failure (consecutive failures reset in order)', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 2 });
  await assert.rejects(breaker.execute(fail));
  assert.equal(await breaker.execute(ok), 'ok');
  await assert.rejects(breaker.execute(fail));
  assert.equal(breaker.state, 'closed', 'fail, success, fail is not two failures in a row');
  await assert.rejects(breaker.execute(fail));
  assert.equal(breaker.state, 'open');
});

test('a deferred success is recorded before the failure of a call that was in flight', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 2 });
  await assert.rejects(breaker.execute(fail));
  let failSlow;
  const slow = breaker.execute(() => new Promise((_, reject) => (failSlow = reject)));
  assert.equal(await breaker.execute(ok), 'ok');
  failSlow(new Error('down'));
  await assert.rejects(slow);
  assert.equal(breaker.state, 'closed', 'the success ended between the two failures');
});

test('a deferred success is recorded before a manual permit is taken or recorded', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 2 });
  const early = breaker.tryAcquire();
  await assert.rejects(breaker.execute(fail));
  await breaker.execute(ok);
  early.recordFailure();
  assert.equal(breaker.state, 'closed', 'the success came between the two failures');

  const other = new CircuitBreaker({ consecutiveFailures: 2 });
  await assert.rejects(other.execute(fail));
  await other.execute(ok);
  other.tryAcquire().recordFailure();
  assert.equal(other.state, 'closed', 'the success came before the permit was taken');
  await assert.rejects(other.execute(fail));
  assert.equal(other.state, 'open');
});

test('stats and state see every success at once', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 3 });
  for (let i = 0; i < 3; i++) await breaker.execute(ok);
  const stats = breaker.stats();
  assert.equal(stats.successes, 3);
  assert.equal(stats.calls, 3);
  assert.equal(stats.inFlight, 0);
});

test('listeners added after a deferred success get the transitions that follow it, right after each call', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 1 });
  await breaker.execute(ok);
  const seen = [];
  breaker.on('stateChange', ({ from, to }) => seen.push(`${from}->${to}`));
  await assert.rejects(breaker.execute(fail));
  assert.deepEqual(seen, ['closed->open']);
});

test('breakers with slow-call tracking or a time window record every success at once', async () => {
  for (const options of [{ slowCallDurationMs: 60_000 }, { window: { type: 'time', durationMs: 60_000 } }]) {
    const breaker = new CircuitBreaker({ consecutiveFailures: 2, ...options });
    await breaker.execute(ok);
    await assert.rejects(breaker.execute(fail));
    await assert.rejects(breaker.execute(fail));
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.stats().successes, 1);
  }
});

test('a deferred success never keeps the process alive', async () => {
  const before = activeTimers();
  const breaker = new CircuitBreaker();
  await breaker.execute(ok);
  assert.equal(activeTimers(), before);
  assert.equal(breaker.stats().successes, 1);
});
