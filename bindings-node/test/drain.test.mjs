import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planDrain, codes } from '../index.js';
import { assertInvalid } from './helpers.mjs';

/** `old` hosts with `perHost` apps each, then `fresh` empty hosts; all of capacity 10. */
function fleet(old, fresh, perHost) {
  return {
    hosts: Array.from({ length: old + fresh }, (_, id) => ({ id, capacity: 10 })),
    apps: Array.from({ length: old * perHost }, (_, id) => ({ id, host: Math.floor(id / perHost) })),
    drain: Array.from({ length: old }, (_, id) => id),
  };
}

test('plans every wave within the limits, as plain objects', () => {
  const waves = planDrain(fleet(4, 4, 4), {
    maxDrainingHosts: 2,
    maxUnavailable: '50%',
    maxStartsPerHostPerMinute: 2,
    minFreeCapacity: 1,
  });
  assert.deepEqual(waves.map((w) => w.hosts), [[0, 1], [2, 3]]);
  for (const wave of waves) {
    assert.equal(Object.getPrototypeOf(wave), Object.prototype);
    assert.equal(wave.assignments.length, 8);
    // The surge limit: at most 2 starts per receiving host per minute slot.
    const perSlot = new Map();
    for (const a of wave.assignments) {
      assert.ok(a.to >= 4, 'only new hosts receive');
      const key = `${a.to}/${a.slot}`;
      perSlot.set(key, (perSlot.get(key) ?? 0) + 1);
    }
    assert.ok([...perSlot.values()].every((n) => n <= 2));
    assert.ok(wave.receivers.every((r) => r.load + r.assigned <= r.capacity - r.reserve));
  }
  const moved = waves.flatMap((w) => w.assignments.map((a) => a.app)).sort((a, b) => a - b);
  assert.deepEqual(moved, Array.from({ length: 16 }, (_, i) => i), 'every app moves exactly once');
});

test('one host at a time when maxDrainingHosts is 1', () => {
  const waves = planDrain(fleet(3, 2, 2), { maxDrainingHosts: 1, maxUnavailable: 2 });
  assert.deepEqual(waves.map((w) => w.hosts), [[0], [1], [2]]);
});

test('an impossible drain throws DRAIN_INFEASIBLE', () => {
  assert.throws(() => planDrain(fleet(3, 0, 2), { maxUnavailable: '100%' }), { code: codes.DRAIN_INFEASIBLE });
  assert.throws(() => planDrain(fleet(2, 1, 9), { maxUnavailable: '100%', minFreeCapacity: 0 }), (err) => {
    assert.equal(err.code, codes.DRAIN_INFEASIBLE);
    assert.match(err.message, /capacity/);
    return true;
  });
});

test('invalid fleets and limits are TypeErrors or RangeErrors naming the field', () => {
  const ok = fleet(1, 1, 1);
  assertInvalid(() => planDrain(null, {}), TypeError, 'fleet');
  assertInvalid(() => planDrain({ ...ok, hosts: 'all' }), TypeError, 'fleet.hosts');
  assertInvalid(() => planDrain({ ...ok, hosts: [{ id: -1, capacity: 1 }] }), RangeError, 'fleet.hosts[0].id');
  assertInvalid(() => planDrain({ ...ok, hosts: [{ id: 0, capacity: '10' }] }), TypeError, 'fleet.hosts[0].capacity');
  assertInvalid(() => planDrain({ ...ok, hosts: [{ id: 0, capacity: 1, state: 'gone' }] }), RangeError, 'fleet.hosts[0].state');
  assertInvalid(() => planDrain({ ...ok, hosts: [{ id: 0, capacity: 1 }, { id: 0, capacity: 1 }] }), RangeError, 'fleet.hosts[1].id');
  assertInvalid(() => planDrain({ ...ok, apps: [{ id: 0, host: 99 }] }), RangeError, 'fleet.apps');
  assertInvalid(() => planDrain({ ...ok, apps: [{ id: 0.5, host: 0 }] }), RangeError, 'fleet.apps[0].id');
  assertInvalid(() => planDrain({ ...ok, drain: [42] }), RangeError, 'fleet.drain');
  assertInvalid(() => planDrain({ ...ok, drain: 0 }), TypeError, 'fleet.drain');
  assertInvalid(() => planDrain(ok, { maxDrainingHosts: 0 }), RangeError, 'maxDrainingHosts');
  assertInvalid(() => planDrain(ok, { maxDrainingHosts: Number.NaN }), RangeError, 'maxDrainingHosts');
  assertInvalid(() => planDrain(ok, { maxUnavailable: 0 }), RangeError, 'maxUnavailable');
  assertInvalid(() => planDrain(ok, { maxUnavailable: '150%' }), RangeError, 'maxUnavailable');
  assertInvalid(() => planDrain(ok, { maxUnavailable: 'many' }), RangeError, 'maxUnavailable');
  assertInvalid(() => planDrain(ok, { maxUnavailable: true }), TypeError, 'maxUnavailable');
  assertInvalid(() => planDrain(ok, { minFreeCapacity: '100%' }), RangeError, 'minFreeCapacity');
  assertInvalid(() => planDrain(ok, { maxStartsPerHostPerMinute: 0 }), RangeError, 'maxStartsPerHostPerMinute');
  assertInvalid(() => planDrain(ok, { parallel: 2 }), TypeError, 'parallel');
});
