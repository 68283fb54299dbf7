import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartBackoff } from '../index.js';
import { assertInvalid } from './helpers.mjs';

test('delays double per consecutive crash up to the cap', () => {
  const backoff = new RestartBackoff({ initialDelayMs: 100, maxDelayMs: 350 });
  const delays = [];
  for (let i = 0; i < 4; i++) {
    backoff.onStarted();
    delays.push(backoff.onCrash());
  }
  assert.deepEqual(delays, [100, 200, 350, 350]);
  assert.equal(backoff.crashes, 4);
  assert.deepEqual(backoff.stats(), { crashes: 4, uptimeMs: null });
  backoff.reset();
  assert.equal(backoff.crashes, 0);
  assert.equal(backoff.onCrash(), 100);
});

test('uptime is reported while running; a seeded jitter is reproducible', () => {
  const backoff = new RestartBackoff();
  backoff.onStarted();
  assert.equal(typeof backoff.stats().uptimeMs, 'number');
  const a = new RestartBackoff({ jitter: 'full', seed: 9 });
  const b = new RestartBackoff({ jitter: 'full', seed: 9 });
  const seq = (x) => [x.onCrash(), x.onCrash(), x.onCrash()];
  assert.deepEqual(seq(a), seq(b));
});

test('invalid restart backoff arguments are TypeErrors or RangeErrors naming them', () => {
  assertInvalid(() => new RestartBackoff('10s'), TypeError, 'options');
  assertInvalid(() => new RestartBackoff({ delay: 1 }), TypeError, 'delay');
  assertInvalid(() => new RestartBackoff({ initialDelayMs: 0 }), RangeError, 'initialDelayMs');
  assertInvalid(() => new RestartBackoff({ initialDelayMs: '1' }), TypeError, 'initialDelayMs');
  assertInvalid(() => new RestartBackoff({ initialDelayMs: 1000, maxDelayMs: 10 }), RangeError, 'maxDelayMs');
  assertInvalid(() => new RestartBackoff({ factor: 0.5 }), RangeError, 'factor');
  assertInvalid(() => new RestartBackoff({ jitter: 'some' }), RangeError, 'jitter');
  assertInvalid(() => new RestartBackoff({ resetAfterMs: 0 }), RangeError, 'resetAfterMs');
  assertInvalid(() => new RestartBackoff({ resetAfterMs: -5 }), RangeError, 'resetAfterMs');
  assertInvalid(() => new RestartBackoff({ seed: 1.5 }), RangeError, 'seed');
});
