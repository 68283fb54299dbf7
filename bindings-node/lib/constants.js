'use strict';
// Error codes, enum spellings and range limits, read from the Rust definitions
// (src/constants.rs) once at load time: no table is copied by hand across the boundary.
const native = require('./native');

const raw = native.constants();

const codes = Object.freeze(
  Object.fromEntries(Object.entries(raw.codes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
);
const breakerStates = Object.freeze([...raw.breakerStates]);
const breakerOutcomes = Object.freeze(Object.fromEntries(raw.breakerOutcomes.map((name, i) => [name, i])));
const limitOutcomes = Object.freeze(Object.fromEntries(raw.limitOutcomes.map((name, i) => [name, i])));
const limits = Object.freeze({ ...raw.limits });

module.exports = { codes, breakerStates, breakerOutcomes, limitOutcomes, limits, parseAmount: native.parseAmount };
