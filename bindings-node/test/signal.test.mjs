import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hysteresis, EventAggregator } from '../index.js';
import { assertInvalid } from './helpers.mjs';

test('hysteresis fires and clears only after consecutive samples beyond each mark', () => {
  const disk = new Hysteresis({ high: 0.9, low: 0.8, fireAfter: 2, clearAfter: 2 });
  assert.equal(disk.observe(0.95), null);
  assert.equal(disk.observe(0.85), null); // inside the band: breaks the streak
  assert.equal(disk.observe(0.95), null);
  assert.equal(disk.observe(0.95), 'fired');
  assert.equal(disk.isFiring(), true);
  assert.equal(disk.observe(NaN), null);
  assert.equal(disk.observe(0.5), null);
  assert.equal(disk.observe(0.5), 'cleared');
  assert.deepEqual(disk.stats(), { firing: false, streak: 0, ignored: 1 });
  disk.observe(1);
  disk.reset();
  assert.deepEqual(disk.stats(), { firing: false, streak: 0, ignored: 1 });
});

test("direction 'below' fires on low values", () => {
  const healthy = new Hysteresis({ high: 0.9, low: 0.5, fireAfter: 1, clearAfter: 1, direction: 'below' });
  assert.equal(healthy.observe(0.4), 'fired');
  assert.equal(healthy.observe(0.95), 'cleared');
});

test('the aggregator emits the first event of a fingerprint and summarizes duplicates', () => {
  const events = new EventAggregator({ windowMs: 60_000 });
  assert.equal(events.record('disk-full:/var', 'disk full on /var'), true);
  assert.equal(events.record('disk-full:/var', 'disk full on /var (2)'), false);
  assert.equal(events.record('disk-full:/var', 'disk full on /var (3)'), false);
  assert.equal(events.record('oom', 'out of memory'), true);
  assert.deepEqual(events.poll(), { summaries: [], evicted: null });
  const due = events.nextDueMs();
  assert.ok(due > 0 && due <= 60_000, String(due));
  assert.deepEqual(events.stats(), { fingerprints: 2 });
  const { summaries, evicted } = events.flush();
  assert.equal(evicted, null);
  assert.equal(summaries.length, 1);
  assert.equal(summaries[0].fingerprint, 'disk-full:/var');
  assert.equal(summaries[0].count, 2);
  assert.equal(summaries[0].lastEvent, 'disk full on /var (3)');
  assert.ok(summaries[0].lastSeenMs >= summaries[0].firstSeenMs);
  assert.ok(Math.abs(summaries[0].lastSeenMs - Date.now()) < 60_000);
  assert.equal(events.nextDueMs(), null);
});

test('evicted fingerprints are reported', () => {
  const events = new EventAggregator({ maxFingerprints: 1 });
  events.record('a', '1');
  events.record('a', '2');
  events.record('b', '1');
  const { evicted } = events.poll();
  assert.deepEqual(evicted, { fingerprints: 1, events: 1 });
});

test('invalid signal arguments are TypeErrors or RangeErrors naming them', () => {
  assertInvalid(() => new Hysteresis(0.9), TypeError, 'options');
  assertInvalid(() => new Hysteresis({ mark: 1 }), TypeError, 'mark');
  assertInvalid(() => new Hysteresis({ high: '1' }), TypeError, 'high');
  assertInvalid(() => new Hysteresis({ high: Infinity }), RangeError, 'high');
  assertInvalid(() => new Hysteresis({ low: NaN }), RangeError, 'low');
  assertInvalid(() => new Hysteresis({ high: 0.1, low: 0.5 }), RangeError, 'high');
  assertInvalid(() => new Hysteresis({ fireAfter: 0 }), RangeError, 'fireAfter');
  assertInvalid(() => new Hysteresis({ clearAfter: 1.5 }), RangeError, 'clearAfter');
  assertInvalid(() => new Hysteresis({ direction: 'up' }), RangeError, 'direction');
  assertInvalid(() => new Hysteresis().observe('0.5'), TypeError, 'value');
  assertInvalid(() => new EventAggregator(1), TypeError, 'options');
  assertInvalid(() => new EventAggregator({ window: 1 }), TypeError, 'window');
  assertInvalid(() => new EventAggregator({ windowMs: 0 }), RangeError, 'windowMs');
  assertInvalid(() => new EventAggregator({ windowMs: -1 }), RangeError, 'windowMs');
  assertInvalid(() => new EventAggregator({ maxFingerprints: 0 }), RangeError, 'maxFingerprints');
  assertInvalid(() => new EventAggregator({ maxFingerprints: 2 ** 31 }), RangeError, 'maxFingerprints');
  const events = new EventAggregator();
  assertInvalid(() => events.record(1, 'x'), TypeError, 'fingerprint');
  assertInvalid(() => events.record('f', { message: 'x' }), TypeError, 'event');
});
