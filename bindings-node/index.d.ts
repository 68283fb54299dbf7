// Type definitions for the `breakwater` npm package.

/** Stable `code` strings carried by every error this package throws. */
export declare const codes: Readonly<{
  INVALID_ARG: 'ERR_BREAKWATER_INVALID_ARG';
  PANIC: 'ERR_BREAKWATER_PANIC';
  BUDGET_EXHAUSTED: 'ERR_BREAKWATER_BUDGET_EXHAUSTED';
  ATTEMPTS_EXHAUSTED: 'ERR_BREAKWATER_ATTEMPTS_EXHAUSTED';
  NOT_RETRYABLE: 'ERR_BREAKWATER_NOT_RETRYABLE';
  DEADLINE_EXCEEDED: 'ERR_BREAKWATER_DEADLINE_EXCEEDED';
  BREAKER_OPEN: 'ERR_BREAKWATER_BREAKER_OPEN';
  OVERLOADED: 'ERR_BREAKWATER_OVERLOADED';
  THROTTLED: 'ERR_BREAKWATER_THROTTLED';
  NATIVE_MISSING: 'ERR_BREAKWATER_NATIVE_MISSING';
}>;

/** An error thrown or rejected by this package. */
export interface BreakwaterError extends Error {
  code: string;
}

export type Jitter = 'none' | 'full' | 'equal' | 'decorrelated';

export interface BackoffOptions {
  /** Delay before the first retry, in ms. Default 100. */
  baseMs?: number;
  /** Cap on any single delay, in ms. Default 10000. */
  maxMs?: number;
  /** Growth per retry, >= 1. Default 2. */
  factor?: number;
  /** Randomization. Default 'full'. */
  jitter?: Jitter;
  /** Total attempts (first included); unset for no limit. */
  maxAttempts?: number;
  /** Seed for reproducible jitter. */
  seed?: number;
}

/** Exponential backoff with jitter: the delays of one retry sequence. */
export declare class Backoff implements Iterable<number> {
  constructor(options?: BackoffOptions);
  /** The next delay in ms, or `null` once `maxAttempts` is used up. */
  nextDelayMs(): number | null;
  /** Starts the sequence again. */
  reset(): void;
  /** Delays handed out since creation or the last reset. */
  readonly retries: number;
  /** The validated options. */
  readonly options: BackoffOptions;
  [Symbol.iterator](): Iterator<number>;
}
