'use strict';
const bw = require('breakwater');
const { debugPanic } = require('breakwater/testing');
const { exercise } = require('./exercise.cjs');

(async () => {
  await exercise(bw);
  try {
    debugPanic('x');
    throw new Error('debugPanic did not throw');
  } catch (err) {
    if (err.code !== 'ERR_BREAKWATER_PANIC') throw err;
  }
  let encapsulated = false;
  try {
    require('breakwater/lib/native');
  } catch (err) {
    encapsulated = err.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
  }
  if (!encapsulated) throw new Error('breakwater/lib/native is reachable: the exports map leaks internals');
  console.log('cjs ok');
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
