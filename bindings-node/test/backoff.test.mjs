import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../index.js';
import { assertInvalid } from './helpers.mjs';

test('no jitter doubles up to the cap', () => {
  const backoff = new Backoff({ baseMs: 100, maxMs: 1000, factor: 2, jitter: 'none' });
  const delays = Array.from({ length: 6 }, () => backoff.nextDelayMs());
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoff.retries, 6);
  backoff.reset();
  assert.equal(backoff.nextDelayMs(), 100);
});

test('maxAttempts ends the sequence', () => {
  const backoff = new Backoff({ jitter: 'none', maxAttempts: 3 });
  assert.deepEqual([...backoff], [100, 200]);
  assert.equal(backoff.nextDelayMs(), null);
});

test('the same seed gives the same jittered delays', () => {
  for (const jitter of ['full', 'equal', 'decorrelated']) {
    const a = new Backoff({ jitter, seed: 42 });
    const b = new Backoff({ jitter, seed: 42 });
    const da = Array.from({ length: 10 }, () => a.nextDelayMs());
    const db = Array.from({ length: 10 }, () => b.nextDelayMs());
    assert.deepEqual(da, db, jitter);
    for (const d of da) assert.ok(d >= 0 && d <= 10_000);
  }
});

test('invalid options are TypeErrors or RangeErrors naming the option', () => {
  assertInvalid(() => new Backoff('fast'), TypeError, 'options');
  assertInvalid(() => new Backoff({ baseMs: '100' }), TypeError, 'baseMs');
  assertInvalid(() => new Backoff({ baseMs: Number.NaN }), RangeError, 'baseMs');
  assertInvalid(() => new Backoff({ baseMs: -1 }), RangeError, 'baseMs');
  assertInvalid(() => new Backoff({ baseMs: 0 }), RangeError, 'baseMs');
  assertInvalid(() => new Backoff({ maxMs: Infinity }), RangeError, 'maxMs');
  assertInvalid(() => new Backoff({ baseMs: 500, maxMs: 100 }), RangeError, 'maxMs');
  assertInvalid(() => new Backoff({ factor: 0.5 }), RangeError, 'factor');
  assertInvalid(() => new Backoff({ jitter: 'sometimes' }), RangeError, 'jitter');
  assertInvalid(() => new Backoff({ maxAttempts: 0 }), RangeError, 'maxAttempts');
  assertInvalid(() => new Backoff({ maxAttempts: 1.5 }), RangeError, 'maxAttempts');
  assertInvalid(() => new Backoff({ seed: -1 }), RangeError, 'seed');
  assertInvalid(() => new Backoff({ bogus: 1 }), TypeError, 'bogus');
});
