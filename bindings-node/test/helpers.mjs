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
