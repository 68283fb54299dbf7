'use strict';
// Stable error codes and constructors shared by the JS wrapper.

// The codes come from Rust (src/constants.rs); see lib/constants.js.
const { codes } = require('./constants');

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

function rateLimited(retryAfterMs) {
  return codedError(
    codes.RATE_LIMITED,
    `rate limited: the next request conforms in ${Math.ceil(retryAfterMs)} ms; wait that long or drop it`,
    { retryAfterMs },
  );
}

/**
 * Resolves after `ms` (a ref'd timer: the caller awaits it), or rejects with
 * an AbortError as soon as `signal` aborts (the timer is cleared).
 */
function sleep(ms, signal) {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms));
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

module.exports.rateLimited = rateLimited;
module.exports.sleep = sleep;
