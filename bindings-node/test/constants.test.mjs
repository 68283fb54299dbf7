// The JS layer and index.d.ts against the Rust definitions (src/constants.rs): error codes,
// enum spellings and range limits have one source of truth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import bw from '../index.js';

const require = createRequire(import.meta.url);
const native = require('../lib/native.js');
const rust = native.constants();
const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');

function union(name) {
  const match = dts.match(new RegExp(`export type ${name} = ([^;]+);`));
  assert.ok(match, `index.d.ts declares ${name}`);
  return match[1].split('|').map((part) => part.trim().replace(/^'|'$/g, ''));
}

test('codes: the JS object, index.d.ts and Rust agree', () => {
  assert.deepEqual({ ...bw.codes }, rust.codes);
  const block = dts.match(/export declare const codes: Readonly<\{([^}]*)\}>/);
  assert.ok(block, 'index.d.ts declares codes');
  const declared = Object.fromEntries(
    [...block[1].matchAll(/(\w+): '([A-Z_]+)'/g)].map(([, key, code]) => [key, code]),
  );
  assert.deepEqual(declared, rust.codes);
});

test('the loader spells NATIVE_MISSING as Rust does', () => {
  const loader = readFileSync(new URL('../lib/native.js', import.meta.url), 'utf8');
  assert.ok(loader.includes(`'${rust.codes.NATIVE_MISSING}'`));
});

test('breaker states and outcomes: index.d.ts and Rust agree', () => {
  assert.deepEqual(union('BreakerState'), rust.breakerStates);
  assert.deepEqual(union('BreakerOutcome'), rust.breakerOutcomes);
  const breaker = new bw.CircuitBreaker();
  assert.equal(breaker.state, rust.breakerStates[0]);
});

test('range limits come from Rust and are enforced at exactly those bounds', () => {
  const { limits } = rust;
  assert.equal(limits.maxU31, 2 ** 31 - 1);
  new bw.RetryBudget({ retryRatio: limits.maxRetryRatio });
  assert.throws(() => new bw.RetryBudget({ retryRatio: limits.maxRetryRatio * 1.001 }), RangeError);
  new bw.AdaptiveThrottle({ buckets: limits.maxThrottleBuckets, windowMs: limits.maxThrottleBuckets });
  assert.throws(() => new bw.AdaptiveThrottle({ buckets: limits.maxThrottleBuckets + 1 }), RangeError);
  assert.throws(
    () => new bw.CircuitBreaker({ window: { type: 'time', durationMs: 1e9, buckets: limits.maxWindowBuckets + 1 } }),
    RangeError,
  );
  new bw.ConcurrencyLimit({ maxConcurrent: limits.maxU31 });
  assert.throws(() => new bw.ConcurrencyLimit({ maxConcurrent: limits.maxU31 + 1 }), RangeError);
});

test('drain amounts are parsed by fleet-drain itself', () => {
  const fleet = { hosts: [{ id: 1, capacity: 10 }, { id: 2, capacity: 10 }], apps: [{ id: 1, host: 1 }], drain: [1] };
  assert.ok(bw.planDrain(fleet, { maxUnavailable: '100%' }).length >= 1);
  for (const bad of ['10 %%', '-5', 'ten', '150%', '']) {
    assert.throws(
      () => bw.planDrain(fleet, { maxUnavailable: bad }),
      (err) => err instanceof RangeError && err.code === bw.codes.INVALID_ARG && /maxUnavailable/.test(err.message),
      bad,
    );
  }
});
