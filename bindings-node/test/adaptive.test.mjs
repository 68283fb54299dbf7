import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveLimit, AdaptivePermit, codes } from '../index.js';
import { assertInvalid, assertRejectsInvalid } from './helpers.mjs';

test('AIMD: sheds above the limit, grows on busy successes, shrinks on drops', () => {
  const limit = new AdaptiveLimit({ algorithm: 'aimd', initialLimit: 2, maxLimit: 10 });
  assert.equal(limit.currentLimit, 2);
  const a = limit.tryAcquire();
  const b = limit.tryAcquire();
  assert.ok(a instanceof AdaptivePermit);
  assert.throws(() => limit.tryAcquire(), (err) => err.code === codes.OVERLOADED && err.retryAfterMs >= 0);
  assert.equal(a.release('success', 1), true);
  assert.equal(a.released, true);
  assert.equal(a.release('success'), false);
  assert.equal(limit.currentLimit, 3);
  assert.equal(b.recordDropped(), true);
  assert.equal(b.recordSuccess(), false);
  assert.ok(limit.currentLimit < 3);
  assert.deepEqual(limit.stats(), { limit: limit.currentLimit, inFlight: 0, acquired: 2, shed: 1, successes: 1, drops: 1 });
});

test('ignored releases feed no sample', () => {
  const limit = new AdaptiveLimit({ algorithm: 'aimd', initialLimit: 1 });
  limit.tryAcquire().release('ignored');
  assert.equal(limit.currentLimit, 1);
  assert.equal(limit.stats().inFlight, 0);
});

test('Gradient2 (the default) grows while busy and fast, shrinks when latency rises', () => {
  const limit = new AdaptiveLimit({ initialLimit: 10, minLimit: 1, maxLimit: 100 });
  const wave = (latencyMs) => {
    const permits = [];
    for (let i = 0; i < limit.currentLimit; i++) permits.push(limit.tryAcquire());
    for (const p of permits) p.release('success', latencyMs);
  };
  for (let i = 0; i < 5; i++) wave(10);
  const grown = limit.currentLimit;
  assert.ok(grown > 10, `grown to ${grown}`);
  for (let i = 0; i < 5; i++) wave(1000);
  assert.ok(limit.currentLimit < grown, `shrunk to ${limit.currentLimit}`);
});

test('run: success and drop outcomes, isDropped, abort releases the permit', async () => {
  const limit = new AdaptiveLimit({ algorithm: 'aimd', initialLimit: 1, isDropped: (err) => err.status === 503 });
  assert.equal(await limit.run(async () => 'ok'), 'ok');
  await assert.rejects(limit.run(async () => Promise.reject(Object.assign(new Error('nf'), { status: 404 }))));
  await assert.rejects(limit.run(async () => Promise.reject(Object.assign(new Error('busy'), { status: 503 }))));
  let stats = limit.stats();
  assert.equal(stats.successes, 1);
  assert.equal(stats.drops, 1);
  assert.equal(stats.inFlight, 0);
  const controller = new AbortController();
  const running = limit.run(() => new Promise(() => {}), { signal: controller.signal });
  assert.equal(limit.stats().inFlight, 1);
  controller.abort();
  await assert.rejects(running, { name: 'AbortError' });
  stats = limit.stats();
  assert.equal(stats.inFlight, 0);
  assert.equal(stats.drops, 1);
  await assert.rejects(limit.run(() => 1, { signal: AbortSignal.abort() }), { name: 'AbortError' });
});

test('invalid adaptive limit arguments are TypeErrors or RangeErrors naming them', async () => {
  assertInvalid(() => new AdaptiveLimit('aimd'), TypeError, 'options');
  assertInvalid(() => new AdaptiveLimit({ algorithm: 'vegas' }), RangeError, 'algorithm');
  assertInvalid(() => new AdaptiveLimit({ algorithm: 5 }), TypeError, 'algorithm');
  assertInvalid(() => new AdaptiveLimit({ smoothing: 0.5, algorithm: 'aimd' }), TypeError, 'smoothing');
  assertInvalid(() => new AdaptiveLimit({ backoffRatio: 0.9 }), TypeError, 'backoffRatio');
  assertInvalid(() => new AdaptiveLimit({ initialLimit: 0 }), RangeError, 'initialLimit');
  assertInvalid(() => new AdaptiveLimit({ initialLimit: 1.5 }), RangeError, 'initialLimit');
  assertInvalid(() => new AdaptiveLimit({ minLimit: 0 }), RangeError, 'minLimit');
  assertInvalid(() => new AdaptiveLimit({ maxLimit: 2 ** 31 }), RangeError, 'maxLimit');
  assertInvalid(() => new AdaptiveLimit({ initialLimit: 50, maxLimit: 10 }), RangeError);
  assertInvalid(() => new AdaptiveLimit({ algorithm: 'aimd', backoffRatio: 0.2 }), RangeError, 'backoffRatio');
  assertInvalid(() => new AdaptiveLimit({ algorithm: 'aimd', backoffRatio: 1 }), RangeError, 'backoffRatio');
  assertInvalid(() => new AdaptiveLimit({ algorithm: 'aimd', latencyThresholdMs: 0 }), RangeError, 'latencyThresholdMs');
  assertInvalid(() => new AdaptiveLimit({ algorithm: 'aimd', increaseBy: 0 }), RangeError, 'increaseBy');
  assertInvalid(() => new AdaptiveLimit({ smoothing: 0 }), RangeError, 'smoothing');
  assertInvalid(() => new AdaptiveLimit({ rttTolerance: 0.5 }), RangeError, 'rttTolerance');
  assertInvalid(() => new AdaptiveLimit({ longWindow: 0 }), RangeError, 'longWindow');
  assertInvalid(() => new AdaptiveLimit({ isDropped: true }), TypeError, 'isDropped');
  assertInvalid(() => new AdaptiveLimit({ minRetryAfterMs: -1 }), RangeError, 'minRetryAfterMs');
  const limit = new AdaptiveLimit();
  const permit = limit.tryAcquire();
  assertInvalid(() => permit.release('ok'), RangeError, 'outcome');
  assertInvalid(() => permit.release(1), TypeError, 'outcome');
  assertInvalid(() => permit.release('success', -1), RangeError, 'latencyMs');
  assertInvalid(() => permit.release('success', '5'), TypeError, 'latencyMs');
  assert.equal(permit.release(), true);
  await assertRejectsInvalid(limit.run(5), TypeError, 'fn');
  await assertRejectsInvalid(limit.run(() => 1, { signal: 1 }), TypeError, 'signal');
  await assertRejectsInvalid(limit.run(() => 1, { wait: true }), TypeError, 'wait');
});

test('release outcomes: index.d.ts and Rust agree', async () => {
  const { readFileSync } = await import('node:fs');
  const { createRequire } = await import('node:module');
  const rust = createRequire(import.meta.url)('../lib/native.js').constants();
  const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');
  const match = dts.match(/export type LimitOutcome = ([^;]+);/);
  assert.ok(match);
  assert.deepEqual(match[1].split('|').map((p) => p.trim().replace(/^'|'$/g, '')), rust.limitOutcomes);
});
