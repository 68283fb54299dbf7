import { test } from 'node:test';
import assert from 'node:assert/strict';
import bw from '../index.js';
import { debugPanic } from '../testing.js';

test('a Rust panic becomes a JS error and the process lives on', () => {
  for (let i = 0; i < 3; i++) {
    assert.throws(
      () => debugPanic('deliberate'),
      (err) => err instanceof Error && err.code === 'ERR_BREAKWATER_PANIC' && /deliberate/.test(err.message),
    );
  }
  // Still alive and working after the panics.
  assert.equal(new bw.Backoff({ jitter: 'none' }).nextDelayMs(), 100);
});

test('every error code is a stable ERR_BREAKWATER_* string', () => {
  for (const code of Object.values(bw.codes)) assert.match(code, /^ERR_BREAKWATER_[A-Z_]+$/);
});

test('the panic hook is not part of the public exports', () => {
  assert.equal(bw.__debugPanic, undefined);
  assert.equal(Object.keys(bw).some((name) => /panic/i.test(name)), false);
});
