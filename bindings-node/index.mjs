// ESM entry of `breakwater`: the same objects as the CommonJS entry (`index.js`), so a program
// that mixes `import` and `require` shares one addon instance and one set of classes.
import cjs from './index.js';

export const {
  AdaptiveLimit,
  AdaptivePermit,
  AdaptiveThrottle,
  Allocator,
  Backoff,
  BreakerPermit,
  CircuitBreaker,
  ConcurrencyLimit,
  EventAggregator,
  Hysteresis,
  KeyedRateLimiter,
  KeyedRetryBudget,
  LimitPermit,
  PolicyWrap,
  RateLimiter,
  RestartBackoff,
  RetryBudget,
  RetryPolicy,
  codes,
  planDrain,
  retry,
  wrap,
} = cjs;

export default cjs;
