'use strict';
// Loads the native addon built by `npm run build` (scripts/build.mjs).
const { join } = require('node:path');

let native;
try {
  native = require(join(__dirname, '..', 'breakwater.node'));
} catch (cause) {
  const err = new Error(
    'breakwater: the native addon is not built or failed to load; run `npm run build` in the package directory ' +
      `(${cause && cause.message})`,
    { cause },
  );
  err.code = 'ERR_BREAKWATER_NATIVE_MISSING';
  throw err;
}

module.exports = native;
