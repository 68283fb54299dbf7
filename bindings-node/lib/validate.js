'use strict';
// Argument checks run before anything crosses into Rust: napi's own
// conversion errors are plain `Error`s with codes like `NumberExpected`,
// so types are checked here (TypeError) and ranges either here or in Rust
// (RangeError), always with code ERR_BREAKWATER_INVALID_ARG.
const { typeError, rangeError } = require('./errors');

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `string '${value}'` : typeof value;
}

function options(name, value) {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw typeError(`${name} must be an object, got ${describe(value)}`);
  }
  return value;
}

function knownKeys(name, value, allowed) {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw typeError(`${name} has an unknown option \`${key}\`; expected one of ${allowed.join(', ')}`);
    }
  }
}

function number(name, value, { min = -Infinity, max = Infinity, integer = false, optional = true } = {}) {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'number') {
    throw typeError(`\`${name}\` must be a number, got ${describe(value)}`);
  }
  if (Number.isNaN(value)) throw rangeError(`\`${name}\` must not be NaN`);
  if (integer && !Number.isInteger(value)) {
    throw rangeError(`\`${name}\` must be a whole number, got ${value}`);
  }
  if (value < min || value > max) {
    throw rangeError(`\`${name}\` must be in ${min}..=${max}, got ${value}`);
  }
  return value;
}

function string(name, value, { oneOf, optional = true } = {}) {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string') {
    throw typeError(`\`${name}\` must be a string, got ${describe(value)}`);
  }
  if (oneOf && !oneOf.includes(value)) {
    throw rangeError(`\`${name}\` must be one of ${oneOf.map((v) => `'${v}'`).join(', ')}, got '${value}'`);
  }
  return value;
}

function func(name, value, { optional = true } = {}) {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'function') {
    throw typeError(`\`${name}\` must be a function, got ${describe(value)}`);
  }
  return value;
}

function instance(name, value, Class, { optional = true } = {}) {
  if (value === undefined && optional) return undefined;
  if (!(value instanceof Class)) {
    throw typeError(`\`${name}\` must be a ${Class.name}, got ${describe(value)}`);
  }
  return value;
}

function boolean(name, value, { optional = true } = {}) {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'boolean') {
    throw typeError(`\`${name}\` must be a boolean, got ${describe(value)}`);
  }
  return value;
}

module.exports = { options, knownKeys, number, string, func, instance, boolean, describe, typeError };

/** An optional AbortSignal (anything with a boolean `aborted` and addEventListener). */
function signal(name, value) {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || typeof value.aborted !== 'boolean' ||
      typeof value.addEventListener !== 'function') {
    throw typeError(`\`${name}\` must be an AbortSignal, got ${describe(value)}`);
  }
  return value;
}

/** The `signal` of an optional `{ signal }` options object (other keys rejected). */
function signalOption(input, allowed = ['signal']) {
  if (input === undefined) return undefined;
  const o = options('options', input);
  knownKeys('options', o, allowed);
  return signal('signal', o.signal);
}

module.exports.signal = signal;
module.exports.signalOption = signalOption;
