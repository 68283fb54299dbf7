'use strict';
// Stable error codes and constructors shared by the JS wrapper.

const codes = Object.freeze({
  INVALID_ARG: 'ERR_BREAKWATER_INVALID_ARG',
  PANIC: 'ERR_BREAKWATER_PANIC',
  BUDGET_EXHAUSTED: 'ERR_BREAKWATER_BUDGET_EXHAUSTED',
  ATTEMPTS_EXHAUSTED: 'ERR_BREAKWATER_ATTEMPTS_EXHAUSTED',
  NOT_RETRYABLE: 'ERR_BREAKWATER_NOT_RETRYABLE',
  DEADLINE_EXCEEDED: 'ERR_BREAKWATER_DEADLINE_EXCEEDED',
  BREAKER_OPEN: 'ERR_BREAKWATER_BREAKER_OPEN',
  OVERLOADED: 'ERR_BREAKWATER_OVERLOADED',
  THROTTLED: 'ERR_BREAKWATER_THROTTLED',
  NATIVE_MISSING: 'ERR_BREAKWATER_NATIVE_MISSING',
});

function withCode(err, code, extra) {
  err.code = code;
  if (extra) Object.assign(err, extra);
  return err;
}

function typeError(message) {
  return withCode(new TypeError(message), codes.INVALID_ARG);
}

function rangeError(message) {
  return withCode(new RangeError(message), codes.INVALID_ARG);
}

/** An error with a stable code and optional extra properties (e.g. retryAfterMs). */
function codedError(code, message, extra, cause) {
  const err = cause === undefined ? new Error(message) : new Error(message, { cause });
  return withCode(err, code, extra);
}

module.exports = { codes, typeError, rangeError, codedError };
