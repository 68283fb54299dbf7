// ESM entry of `breakwater/testing` (see testing.js).
import cjs from './testing.js';

export const { debugPanic } = cjs;
export default cjs;
