'use strict';
// The internal execute protocol every policy implements, so that `wrap(...)` and `retry`'s
// `breaker`/`limit` options can compose them:
//
//   policy[kExecute](fn, signal) -> Promise
//
// runs `fn({ signal })` once under the policy (`signal` may be undefined). When `signal` aborts,
// the promise rejects at once with an AbortError (see errors.abortError) and the policy releases
// what it holds (a breaker permit is recorded as cancelled, a limit permit is released); fn's
// own promise is left to settle on its own. Invalid arguments are checked by the public methods,
// never here.
const { abortError } = require('./errors');

const kExecute = Symbol.for('breakwater.execute');

/** `value` (a promise or not), or an AbortError as soon as `signal` aborts. */
function abortable(value, signal) {
  if (signal === undefined) return value;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve(value).then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Calls a user hook or listener; an exception becomes a process warning, never a failed call. */
function callHook(hook, arg, what) {
  try {
    hook(arg);
  } catch (err) {
    try {
      process.emitWarning(`breakwater: a ${what} threw: ${err instanceof Error ? err.message : String(err)}`, {
        code: 'BREAKWATER_LISTENER_THREW',
        detail: err instanceof Error ? err.stack : undefined,
      });
    } catch {
      // Nothing more can be done.
    }
  }
}

module.exports = { kExecute, abortable, callHook };
