'use strict';
// `breakwater/testing`: hooks for testing the addon itself, not part of the public API.
const native = require('./lib/native');

/** Panics inside Rust on purpose; the addon turns it into an `ERR_BREAKWATER_PANIC` error. */
function debugPanic(message) {
  return native.__debugPanic(String(message));
}

module.exports = { debugPanic };
