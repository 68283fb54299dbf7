'use strict';
// `planDrain(fleet, limits)`: fleet-drain's wave planner over plain objects.
const { limits, parseAmount } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { typeError } = require('./errors');

const LIMIT_KEYS = ['maxDrainingHosts', 'maxUnavailable', 'maxStartsPerHostPerMinute', 'minFreeCapacity'];
const HOST_STATES = ['active', 'cordoned', 'draining', 'drained'];
const APP_STATES = ['starting', 'running', 'unhealthy', 'failed', 'stopped'];
const ID = { min: 0, max: 2 ** 32 - 1, integer: true, optional: false };

function array(name, value) {
  if (!Array.isArray(value)) throw typeError(`\`${name}\` must be an array, got ${v.describe(value)}`);
  return value;
}

/** A count (whole number) or a percentage string like '10%'; normalized to a string. */
function amount(name, value) {
  if (value === undefined) return undefined;
  if (typeof value === 'number') {
    v.number(name, value, { min: 0, max: limits.maxAmountCount, integer: true });
    return String(value);
  }
  if (typeof value !== 'string') throw typeError(`\`${name}\` must be a whole number or a percentage like '10%', got ${v.describe(value)}`);
  // fleet-drain's own parser (RangeError with ERR_BREAKWATER_INVALID_ARG on a bad amount).
  return parseAmount(name, value);
}

function fleetInput(input) {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw typeError(`\`fleet\` must be an object, got ${v.describe(input)}`);
  }
  v.knownKeys('fleet', input, ['hosts', 'apps', 'drain']);
  const hosts = array('fleet.hosts', input.hosts).map((h, i) => {
    const name = `fleet.hosts[${i}]`;
    const o = v.options(name, h ?? null);
    v.knownKeys(name, o, ['id', 'capacity', 'state', 'version', 'healthy']);
    return {
      id: v.number(`${name}.id`, o.id, ID),
      capacity: v.number(`${name}.capacity`, o.capacity, ID),
      state: v.string(`${name}.state`, o.state, { oneOf: HOST_STATES }),
      version: v.string(`${name}.version`, o.version),
      healthy: v.boolean(`${name}.healthy`, o.healthy),
    };
  });
  const apps = array('fleet.apps', input.apps ?? []).map((a, i) => {
    const name = `fleet.apps[${i}]`;
    const o = v.options(name, a ?? null);
    v.knownKeys(name, o, ['id', 'host', 'state']);
    return {
      id: v.number(`${name}.id`, o.id, ID),
      host: v.number(`${name}.host`, o.host, ID),
      state: v.string(`${name}.state`, o.state, { oneOf: APP_STATES }),
    };
  });
  const drain = array('fleet.drain', input.drain).map((h, i) => v.number(`fleet.drain[${i}]`, h, ID));
  return { hosts, apps, drain };
}

/**
 * Plans every wave of draining `fleet.drain` (host ids, in order) within
 * `limits`: which hosts drain in each wave and a receiver (and start minute)
 * for every app on them. Throws ERR_BREAKWATER_DRAIN_INFEASIBLE when the
 * drain cannot be done within the limits.
 */
function planDrain(fleet, limits) {
  const f = fleetInput(fleet);
  const o = v.options('limits', limits);
  v.knownKeys('limits', o, LIMIT_KEYS);
  const l = {
    maxDrainingHosts: v.number('maxDrainingHosts', o.maxDrainingHosts, { min: 1, max: 2 ** 32 - 1, integer: true }),
    maxUnavailable: amount('maxUnavailable', o.maxUnavailable),
    maxStartsPerHostPerMinute: v.number('maxStartsPerHostPerMinute', o.maxStartsPerHostPerMinute, {
      min: 1,
      max: 2 ** 32 - 1,
      integer: true,
    }),
    minFreeCapacity: amount('minFreeCapacity', o.minFreeCapacity),
  };
  return native.planDrain(f, l);
}

module.exports = { planDrain };
