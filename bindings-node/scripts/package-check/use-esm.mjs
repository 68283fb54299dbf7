import * as bw from 'breakwater';
import cjs from 'breakwater';
import { createRequire } from 'node:module';
import { debugPanic } from 'breakwater/testing';

const require = createRequire(import.meta.url);
const { exercise } = require('./exercise.cjs');

// Named imports are the CommonJS objects themselves: one addon, one set of classes.
for (const [name, value] of Object.entries(bw)) {
  if (name !== 'default' && value !== cjs[name]) throw new Error(`ESM export ${name} differs from CJS`);
}
await exercise(bw);
if (typeof debugPanic !== 'function') throw new Error('breakwater/testing has no debugPanic');
console.log('esm ok');
