'use strict';
// Stable error codes and constructors shared by the JS wrapper.

const codes = Object.freeze({
  INVALID_ARG: 'ERR_BREAKWATER_INVALID_ARG',
  PANIC: 'ERR_BREAKWATER_PANIC',
  INTERNAL: 'ERR_BREAKWATER_INTERNAL',
  BUDGET_EXHAUSTED: 'ERR_BREAKWATER_BUDGET_EXHAUSTED',
  ATTEMPTS_EXHAUSTED: 'ERR_BREAKWATER_ATTEMPTS_EXHAUSTED',
  NOT_RETRYABLE: 'ERR_BREAKWATER_NOT_RETRYABLE',
  DEADLINE_EXCEEDED: 'ERR_BREAKWATER_DEADLINE_EXCEEDED',
  BREAKER_OPEN: 'ERR_BREAKWATER_BREAKER_OPEN',
  OVERLOADED: 'ERR_BREAKWATER_OVERLOADED',
  THROTTLED: 'ERR_BREAKWATER_THROTTLED',
  DRAIN_INFEASIBLE: 'ERR_BREAKWATER_DRAIN_INFEASIBLE',
  ALLOC_FAILED: 'ERR_BREAKWATER_ALLOC_FAILED',
  ALLOC_IO: 'ERR_BREAKWATER_ALLOC_IO',
  TARBALL_REJECTED: 'ERR_BREAKWATER_TARBALL_REJECTED',
  TARBALL_INVALID: 'ERR_BREAKWATER_TARBALL_INVALID',
  INTEGRITY_MISMATCH: 'ERR_BREAKWATER_INTEGRITY_MISMATCH',
  LOCKFILE_INVALID: 'ERR_BREAKWATER_LOCKFILE_INVALID',
  PACKAGES_MISSING: 'ERR_BREAKWATER_PACKAGES_MISSING',
  NO_SPACE: 'ERR_BREAKWATER_NO_SPACE',
  STORE_CORRUPT: 'ERR_BREAKWATER_STORE_CORRUPT',
  STORE_BUSY: 'ERR_BREAKWATER_STORE_BUSY',
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

/**
 * The rejection of an operation cancelled through an AbortSignal: a
 * DOMException named 'AbortError' whose `cause` is the signal's reason, as
 * Node's own promise APIs do.
 */
function abortError(signal) {
  return new DOMException('The operation was aborted', { name: 'AbortError', cause: signal.reason });
}

function isAbortError(err) {
  return err !== null && typeof err === 'object' && err.name === 'AbortError';
}

function breakerOpen(retryAfterMs) {
  return codedError(
    codes.BREAKER_OPEN,
    `circuit breaker is open: the dependency failed recently and is given time to recover; retry after ${Math.ceil(retryAfterMs)} ms`,
    { retryAfterMs },
  );
}

function overloaded(retryAfterMs) {
  return codedError(
    codes.OVERLOADED,
    `overloaded: concurrency limit reached, retry after ${Math.ceil(retryAfterMs)} ms`,
    { retryAfterMs },
  );
}

function throttled(probability) {
  return codedError(
    codes.THROTTLED,
    `request throttled locally: the backend accepted too few recent requests (rejection probability ${probability.toFixed(3)})`,
    { probability },
  );
}

module.exports = {
  codes,
  typeError,
  rangeError,
  codedError,
  abortError,
  isAbortError,
  breakerOpen,
  overloaded,
  throttled,
};
