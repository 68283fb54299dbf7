'use strict';
// breakwater: Node bindings of the Breakwater Rust crates.
//
// Every decision (budgets, backoff, breaker states, limits, drain plans,
// allocation) is made in Rust; this thin layer validates arguments, loops
// and awaits in JS, and turns results into idiomatic errors with stable
// `code` strings.
const { codes } = require('./lib/errors');
const { Backoff } = require('./lib/backoff');
const { RetryBudget } = require('./lib/budget');
const { retry, RetryPolicy } = require('./lib/retry');
const { CircuitBreaker, BreakerPermit } = require('./lib/breaker');
const { ConcurrencyLimit, LimitPermit } = require('./lib/limit');
const { AdaptiveThrottle } = require('./lib/throttle');
const { planDrain } = require('./lib/drain');
const { Allocator } = require('./lib/alloc');
const { RateLimiter, KeyedRateLimiter } = require('./lib/rate');
const { AdaptiveLimit, AdaptivePermit } = require('./lib/adaptive');
const { KeyedRetryBudget } = require('./lib/keyedBudget');
const { RestartBackoff } = require('./lib/restart');
const { Hysteresis, EventAggregator } = require('./lib/signal');
const { wrap, PolicyWrap } = require('./lib/wrap');

module.exports = {
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
};
