// ESM entry of `breakwater`: the same objects as the CommonJS entry (`index.js`), so a program
// that mixes `import` and `require` shares one addon instance and one set of classes.
import cjs from './index.js';

export const {
  AdaptiveThrottle,
  Allocator,
  Backoff,
  BreakerPermit,
  CircuitBreaker,
  ConcurrencyLimit,
  LimitPermit,
  RetryBudget,
  RetryPolicy,
  codes,
  planDrain,
  retry,
} = cjs;

export default cjs;
