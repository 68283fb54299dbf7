import assert from 'node:assert/strict';

/** Asserts that `fn` throws a `Class` error with code ERR_BREAKWATER_INVALID_ARG mentioning `mention`. */
export function assertInvalid(fn, Class, mention) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    assert.equal(err.code, 'ERR_BREAKWATER_INVALID_ARG');
    if (mention) assert.match(err.message, new RegExp(mention.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

/** Asserts that the promise rejects with a `Class` error with code ERR_BREAKWATER_INVALID_ARG mentioning `mention`. */
export async function assertRejectsInvalid(promise, Class, mention) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    assert.equal(err.code, 'ERR_BREAKWATER_INVALID_ARG');
    if (mention) assert.match(err.message, new RegExp(mention.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

/** Timers currently keeping the event loop alive. */
export function activeTimers() {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}
