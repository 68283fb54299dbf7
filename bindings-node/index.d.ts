// Type definitions for the `breakwater` npm package.

/** Stable `code` strings carried by every error this package throws. */
export declare const codes: Readonly<{
  INVALID_ARG: 'ERR_BREAKWATER_INVALID_ARG';
  PANIC: 'ERR_BREAKWATER_PANIC';
  INTERNAL: 'ERR_BREAKWATER_INTERNAL';
  BUDGET_EXHAUSTED: 'ERR_BREAKWATER_BUDGET_EXHAUSTED';
  ATTEMPTS_EXHAUSTED: 'ERR_BREAKWATER_ATTEMPTS_EXHAUSTED';
  NOT_RETRYABLE: 'ERR_BREAKWATER_NOT_RETRYABLE';
  DEADLINE_EXCEEDED: 'ERR_BREAKWATER_DEADLINE_EXCEEDED';
  BREAKER_OPEN: 'ERR_BREAKWATER_BREAKER_OPEN';
  OVERLOADED: 'ERR_BREAKWATER_OVERLOADED';
  THROTTLED: 'ERR_BREAKWATER_THROTTLED';
  RATE_LIMITED: 'ERR_BREAKWATER_RATE_LIMITED';
  DRAIN_INFEASIBLE: 'ERR_BREAKWATER_DRAIN_INFEASIBLE';
  ALLOC_FAILED: 'ERR_BREAKWATER_ALLOC_FAILED';
  ALLOC_IO: 'ERR_BREAKWATER_ALLOC_IO';
  TARBALL_REJECTED: 'ERR_BREAKWATER_TARBALL_REJECTED';
  TARBALL_INVALID: 'ERR_BREAKWATER_TARBALL_INVALID';
  INTEGRITY_MISMATCH: 'ERR_BREAKWATER_INTEGRITY_MISMATCH';
  LOCKFILE_INVALID: 'ERR_BREAKWATER_LOCKFILE_INVALID';
  PACKAGES_MISSING: 'ERR_BREAKWATER_PACKAGES_MISSING';
  NO_SPACE: 'ERR_BREAKWATER_NO_SPACE';
  STORE_CORRUPT: 'ERR_BREAKWATER_STORE_CORRUPT';
  STORE_BUSY: 'ERR_BREAKWATER_STORE_BUSY';
  BUILD_REQUIRED: 'ERR_BREAKWATER_BUILD_REQUIRED';
  PLATFORM_MISMATCH: 'ERR_BREAKWATER_PLATFORM_MISMATCH';
  NATIVE_MISSING: 'ERR_BREAKWATER_NATIVE_MISSING';
}>;

export type ErrorCode = (typeof codes)[keyof typeof codes];

/** An error thrown or rejected by this package. */
export interface BreakwaterError extends Error {
  code: ErrorCode | string;
}

/** ERR_BREAKWATER_BREAKER_OPEN or ERR_BREAKWATER_OVERLOADED: try again after `retryAfterMs`. */
export interface RetryAfterError extends BreakwaterError {
  retryAfterMs: number;
}

/** ERR_BREAKWATER_THROTTLED. */
export interface ThrottledError extends BreakwaterError {
  /** The local rejection probability at the time of the decision. */
  probability: number;
}

/**
 * Why `retry` gave up: `code` is ERR_BREAKWATER_ATTEMPTS_EXHAUSTED,
 * _BUDGET_EXHAUSTED, _DEADLINE_EXCEEDED or _NOT_RETRYABLE, and `cause` is the
 * last error fn threw (absent only when the deadline passed before any
 * attempt failed).
 */
export interface RetryError extends BreakwaterError {
  attempts: number;
  cause?: unknown;
}

/** ERR_BREAKWATER_PACKAGES_MISSING. */
export interface PackagesMissingError extends BreakwaterError {
  /** Lockfile paths of the packages the store lacks. */
  missing: string[];
}

// ---------------------------------------------------------------------------
// Backoff

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
  /** `{ retries }`. */
  stats(): { retries: number };
  /** The validated options. */
  readonly options: BackoffOptions;
  [Symbol.iterator](): Iterator<number>;
}

// ---------------------------------------------------------------------------
// RetryBudget

export interface RetryBudgetOptions {
  /** How long a deposit counts, in ms (1000..=60000). Default 10000. */
  ttlMs?: number;
  /** Retries per second allowed without deposits, per budget instance. Default 10. */
  minRetriesPerSec?: number;
  /** Share of requests that may be retried (0..=1000). Default 0.2. */
  retryRatio?: number;
}

export interface RetryBudgetStats {
  deposits: number;
  granted: number;
  denied: number;
  /** Tokens available now. */
  balance: number;
  /** Whole retries available now. */
  available: number;
}

/** A ratio retry budget shared by every caller of one dependency. */
export declare class RetryBudget {
  constructor(options?: RetryBudgetOptions);
  /** One original request: deposits `retryRatio` of a token. */
  deposit(): void;
  /** May one retry be made? Withdraws a token and returns true if so. */
  tryWithdraw(): boolean;
  stats(): RetryBudgetStats;
}

// ---------------------------------------------------------------------------
// retry

/** What `fn` receives on each attempt. */
export interface AttemptContext {
  /** 1 for the first attempt. */
  attempt: number;
  /** Aborted when the caller's signal aborts or the deadline passes during the attempt. */
  signal: AbortSignal;
}

export interface RetryPolicyOptions {
  /** Total attempts, the first included. Default 3. */
  maxAttempts?: number;
  /** Shared budget: every first attempt deposits, every retry withdraws. */
  budget?: RetryBudget;
  /** Delays between attempts (its own `maxAttempts` must stay unset). Default full jitter, 100 ms doubling to 10 s. */
  backoff?: Backoff | BackoffOptions;
  /** Whether an error is worth another attempt. Default: all but invalid arguments and AbortErrors. */
  retryable?: (error: unknown) => boolean;
  /** Time limit of the whole call, attempts and backoff included, in ms. */
  deadlineMs?: number;
  /** Cap on an error's `retryAfterMs` hint. Default 30000; 0 ignores hints. */
  maxRetryAfterMs?: number;
  /** Seed for reproducible jitter. */
  seed?: number;
  /** Every attempt goes through this breaker (inside `limit`): an open breaker fails the attempt with its `retryAfterMs`. */
  breaker?: CircuitBreaker;
  /** Every attempt goes through this limit (outermost: a shed attempt never reaches the breaker). */
  limit?: ConcurrencyLimit | AdaptiveLimit | RateLimiter | AdaptiveThrottle;
  /** Called before each retry is delayed. A hook that throws becomes a process warning. */
  onRetry?: (info: RetryInfo) => void;
  /** Called once when the run gives up (not on an abort), with the error it rejects with. */
  onGiveUp?: (info: GiveUpInfo) => void;
}

export interface RetryInfo {
  /** The attempt that just failed (1 for the first). */
  attempt: number;
  /** The delay before the next attempt, in ms. */
  delayMs: number;
  /** What the attempt threw. */
  error: unknown;
}

export interface GiveUpInfo {
  /** Attempts made. */
  attempts: number;
  /** Why the run stopped: ERR_BREAKWATER_ATTEMPTS_EXHAUSTED, _BUDGET_EXHAUSTED, _DEADLINE_EXCEEDED or _NOT_RETRYABLE. */
  code: string;
  /** The last error fn threw (undefined if the deadline passed before any attempt failed). */
  error: unknown;
  /** The {@link RetryError} the run rejects with. */
  reason: RetryError;
}

/** What `execute`/`run` of a single policy passes to fn. */
export interface CallContext {
  /** The caller's signal, if one was given. */
  signal?: AbortSignal;
}

export interface RetryOptions extends RetryPolicyOptions {
  /** Aborting rejects with an AbortError and cancels any pending backoff timer. */
  signal?: AbortSignal;
}

export interface RetryStats {
  runs: number;
  successes: number;
  attempts: number;
  retries: number;
  notRetryable: number;
  exhausted: number;
  budgetDenials: number;
  deadlineStops: number;
}

/** A validated, reusable retry configuration. */
export declare class RetryPolicy {
  constructor(options?: RetryPolicyOptions);
  execute<T>(
    fn: (context: AttemptContext) => T | PromiseLike<T>,
    options?: { signal?: AbortSignal; deadlineMs?: number },
  ): Promise<T>;
  stats(): RetryStats;
}

/**
 * Runs `fn` until it resolves, retrying as the options allow. Rejects with a
 * {@link RetryError} (its `cause` is fn's last error), or an AbortError
 * (a DOMException) when `signal` aborts. Never throws synchronously.
 * Options are validated on every call; calls whose options have equal values
 * share one native policy, so an inline options object costs the same as a
 * reused one.
 */
export declare function retry<T>(
  fn: (context: AttemptContext) => T | PromiseLike<T>,
  options?: RetryOptions,
): Promise<T>;

// ---------------------------------------------------------------------------
// CircuitBreaker

export type BreakerState = 'closed' | 'open' | 'half-open';
export type BreakerOutcome = 'success' | 'failure' | 'ignored' | 'cancelled';

export type WindowOptions =
  | { type?: 'count'; calls: number }
  | { type?: 'time'; durationMs: number; buckets?: number };

export interface CircuitBreakerOptions {
  /** Trip after this many failures in a row. Default: no such rule. */
  consecutiveFailures?: number;
  /** Trip at this failure share of the window, in (0, 1]. Default 0.5. */
  failureRateThreshold?: number;
  /** Calls slower than this are slow. Default: not tracked. */
  slowCallDurationMs?: number;
  /** Trip at this slow-call share of the window, in (0, 1]. Default 1. */
  slowCallRateThreshold?: number;
  /** The sliding window. Default: the last 100 calls. */
  window?: WindowOptions;
  /** Calls the window must hold before the rate rules apply. Default 20. */
  minimumCalls?: number;
  /** How long it stays open; grows per trip in a row. Default 30 s doubling to 5 min, no jitter. */
  openWait?: Omit<BackoffOptions, 'maxAttempts' | 'seed'>;
  /** Probe calls admitted when half-open. Default 5. */
  halfOpenProbes?: number;
  /** Seed for reproducible open-wait jitter. */
  seed?: number;
  /** For `execute`: false records the error as ignored (e.g. a 4xx). Default: every error is a failure. */
  isFailure?: (error: unknown) => boolean;
}

export interface BreakerStats {
  state: BreakerState;
  calls: number;
  successes: number;
  failures: number;
  slowCalls: number;
  ignored: number;
  cancelled: number;
  rejections: number;
  trips: number;
  windowCalls: number;
  windowFailureRate: number;
  windowSlowCallRate: number;
  /** Permits handed out and not recorded yet. */
  inFlight: number;
}

/** `'stateChange'`: every transition; the others: entering that state. */
export type BreakerEvent = 'stateChange' | 'open' | 'halfOpen' | 'close';

export interface BreakerStateChange {
  from: BreakerState;
  to: BreakerState;
}

/** Permission to make one call; record its outcome exactly once. */
export declare class BreakerPermit {
  private constructor();
  readonly isProbe: boolean;
  /** Each returns false if the permit was already recorded. */
  recordSuccess(): boolean;
  recordFailure(): boolean;
  recordIgnored(): boolean;
  /** The call was cancelled: frees the permit without an outcome. */
  release(): boolean;
  record(outcome: BreakerOutcome): boolean;
}

export declare class CircuitBreaker {
  constructor(options?: CircuitBreakerOptions);
  /** Throws a {@link RetryAfterError} (ERR_BREAKWATER_BREAKER_OPEN) when open. */
  tryAcquire(): BreakerPermit;
  /**
   * Runs fn through the breaker; rejects with ERR_BREAKWATER_BREAKER_OPEN without calling it when
   * open. When `signal` aborts, rejects with an AbortError and records the call as cancelled.
   */
  execute<T>(fn: (context: CallContext) => T | PromiseLike<T>, options?: SignalOptions): Promise<T>;
  /** State transitions, delivered right after the call that caused them; a throwing listener becomes a warning. */
  on(event: BreakerEvent, listener: (change: BreakerStateChange) => void): this;
  off(event: BreakerEvent, listener: (change: BreakerStateChange) => void): this;
  readonly state: BreakerState;
  stats(): BreakerStats;
}

// ---------------------------------------------------------------------------
// ConcurrencyLimit

export interface ConcurrencyLimitOptions {
  /** Permits held at once. Default 100. */
  maxConcurrent?: number;
  /** Callers that may wait for a permit. Default 100; 0 sheds at once. */
  maxQueued?: number;
  /** How long a caller may wait; `null` for no limit. Default 1000. */
  queueTimeoutMs?: number | null;
  /** Lower bound of `retryAfterMs` hints. Default 10. */
  minRetryAfterMs?: number;
  /** Upper bound of `retryAfterMs` hints. Default 10000. */
  maxRetryAfterMs?: number;
}

export interface LimitStats {
  inFlight: number;
  queued: number;
  maxConcurrent: number;
  maxQueued: number;
  /** Requests refused with ERR_BREAKWATER_OVERLOADED since creation. */
  shed: number;
}

/** One unit of a limit's capacity. */
export declare class LimitPermit {
  private constructor();
  /** Gives the capacity back; returns false if already released. */
  release(): boolean;
  readonly released: boolean;
}

export declare class ConcurrencyLimit {
  constructor(options?: ConcurrencyLimitOptions);
  /** Throws a {@link RetryAfterError} (ERR_BREAKWATER_OVERLOADED) when full. */
  tryAcquire(): LimitPermit;
  /** Waits in the FIFO queue; rejects with ERR_BREAKWATER_OVERLOADED when shed or an AbortError. */
  acquire(options?: { signal?: AbortSignal }): Promise<LimitPermit>;
  /** Runs fn holding a permit; an abort (queued or running) rejects with an AbortError and releases it. */
  run<T>(fn: (context: CallContext) => T | PromiseLike<T>, options?: SignalOptions): Promise<T>;
  readonly inFlight: number;
  stats(): LimitStats;
  setMaxConcurrent(maxConcurrent: number): void;
}

// ---------------------------------------------------------------------------
// AdaptiveThrottle

export interface AdaptiveThrottleOptions {
  /** Trailing window in ms. Default 120000. */
  windowMs?: number;
  /** Buckets of the window (1..=10000). Default 120. */
  buckets?: number;
  /** The SRE book's K, >= 1. Default 2. */
  k?: number;
  /** Seed for reproducible draws. */
  seed?: number;
  /** For `execute`: false counts the error as accepted by the backend (e.g. a 404). Default: every error is a rejection. */
  isRejection?: (error: unknown) => boolean;
}

export interface ThrottleStats {
  requests: number;
  accepts: number;
  rejectProbability: number;
}

export declare class AdaptiveThrottle {
  constructor(options?: AdaptiveThrottleOptions);
  /** Counts a request; throws a {@link ThrottledError} if it must not be sent. */
  tryAcquire(): void;
  /** Counts a request; true if it must not be sent. */
  shouldReject(): boolean;
  recordAccepted(): void;
  recordRejected(): void;
  /** Runs fn unless throttled; an abort rejects with an AbortError (counted as accepted). */
  execute<T>(fn: (context: CallContext) => T | PromiseLike<T>, options?: SignalOptions): Promise<T>;
  readonly rejectProbability: number;
  stats(): ThrottleStats;
}

// ---------------------------------------------------------------------------
// planDrain

export type HostState = 'active' | 'cordoned' | 'draining' | 'drained';
export type AppState = 'starting' | 'running' | 'unhealthy' | 'failed' | 'stopped';
/** A count, or a percentage like '10%'. */
export type Amount = number | `${number}%` | `${number}`;

export interface Fleet {
  hosts: Array<{ id: number; capacity: number; state?: HostState; version?: string; healthy?: boolean }>;
  apps: Array<{ id: number; host: number; state?: AppState }>;
  /** Ids of the hosts to drain, in drain order. */
  drain: number[];
}

export interface DrainLimits {
  /** Hosts draining at once. Default 2. */
  maxDrainingHosts?: number;
  /** Apps unavailable at once. Default '10%'. */
  maxUnavailable?: Amount;
  /** App starts into one receiving host per minute. Default 4. */
  maxStartsPerHostPerMinute?: number;
  /** Room each receiver keeps free. Default '10%'. */
  minFreeCapacity?: Amount;
}

export interface DrainWave {
  hosts: number[];
  newHosts: number[];
  assignments: Array<{ app: number; from: number; to: number; slot: number }>;
  unplaced: Array<{ app: number; host: number }>;
  unavailableBudget: number;
  receivers: Array<{ host: number; capacity: number; load: number; reserve: number; assigned: number }>;
}

/** Plans every wave of the drain; throws ERR_BREAKWATER_DRAIN_INFEASIBLE if it cannot be done within the limits. */
export declare function planDrain(fleet: Fleet, limits?: DrainLimits): DrainWave[];

// ---------------------------------------------------------------------------
// Allocator

export type LinkMode = 'auto' | 'hardlink' | 'reflink' | 'copy';

export interface AllocatorOptions {
  /** The content-addressed store (created if needed). */
  storeDir: string;
  /** Default 'auto' (hardlink, then reflink, then copy). */
  linkMode?: LinkMode;
  /** Materializations at once. Default 4. */
  maxConcurrent?: number;
  /** Allocations that may wait. Default 256. */
  maxQueued?: number;
  /** How long an allocation may wait; `null` for no limit. Default 60000. */
  queueTimeoutMs?: number | null;
  /** Refuse work below this many free bytes; 0 disables. Default 512 MiB. */
  minFreeBytes?: number;
  /**
   * Trees needing a build the allocator does not run (install scripts, `binding.gyp`) are
   * refused with ERR_BREAKWATER_BUILD_REQUIRED. `true` skips every such build, a list skips
   * the named packages' builds; skipped builds are listed in `Allocation.ignoredScripts`.
   */
  ignoreScripts?: boolean | string[];
  /** Install `dev` packages. Default true. */
  includeDev?: boolean;
  /** Install `optional` packages that fit the platform. Default true. */
  includeOptional?: boolean;
  /** The `os` optional packages are filtered for. Default: this system's. */
  os?: string;
  /** The `cpu` optional packages are filtered for. Default: this system's. */
  cpu?: string;
  /** The libc optional packages are filtered for. Default: detected. */
  libc?: 'glibc' | 'musl';
}

export interface Allocation {
  nodeModules: string;
  manifestDigest: string;
  lockfileDigest: string;
  packages: number;
  files: number;
  outcome: 'reused' | 'cloned' | 'materialized';
  hardlinks: number;
  reflinks: number;
  copies: number;
  /** Packages whose build was skipped under `ignoreScripts` (`name@version at path (reasons)`). */
  ignoredScripts: string[];
}

export interface ImportedPackage {
  integrity: string;
  name?: string;
  version?: string;
  files: number;
  alreadyPresent: boolean;
}

export interface VerifyReport {
  ok: boolean;
  problems: string[];
  repaired: boolean;
}

export interface AllocatorStats {
  materializing: number;
  peakMaterializing: number;
  templatesBuilt: number;
  clones: number;
  reused: number;
  shed: number;
  rebuilt: number;
}

export declare class Allocator {
  constructor(options: AllocatorOptions);
  allocate(options: { lockfile: string; appDir: string }): Promise<Allocation>;
  import(paths: string | string[]): Promise<ImportedPackage[]>;
  verify(options: { appDir: string; repair?: boolean; lockfile?: string }): Promise<VerifyReport>;
  stats(): AllocatorStats;
}

// ---------------------------------------------------------------- rate limiting

/** ERR_BREAKWATER_RATE_LIMITED: the next request conforms after `retryAfterMs`. */
export interface RateLimitedError extends BreakwaterError {
  retryAfterMs: number;
}

/** Options of `RateLimiter` (GCRA): `rate` requests per `perMs`, up to `burst` back to back. */
export interface RateLimiterOptions {
  /** Requests per `perMs` in the long run: a whole number >= 1 (default 10). */
  rate?: number;
  /** The period `rate` is counted over, in ms (> 0, default 1000). */
  perMs?: number;
  /** Requests allowed back to back after an idle period (>= 1, default 10). */
  burst?: number;
}

export interface KeyedRateLimiterOptions extends RateLimiterOptions {
  /** Most keys tracked at once (1..=2^31-1, default 10000). */
  maxKeys?: number;
}

export interface RateLimiterStats {
  /** Requests that conformed. */
  allowed: number;
  /** Requests refused. */
  limited: number;
  /** The time between two requests at the steady rate, in ms. */
  emissionIntervalMs: number;
}

export interface KeyedRateLimiterStats extends RateLimiterStats {
  /** Keys tracked now. */
  keys: number;
}

/** Options of calls that can be cancelled. */
export interface SignalOptions {
  signal?: AbortSignal;
}

/** A lock-free GCRA rate limiter. */
export declare class RateLimiter {
  constructor(options?: RateLimiterOptions);
  /** Takes one request's worth of rate if it conforms now: true if taken. */
  check(): boolean;
  /** Like `check`; throws a {@link RateLimitedError} when limited. */
  tryAcquire(): void;
  /** Waits until a request conforms and takes it; rejects with an AbortError if `signal` aborts. */
  untilReady(options?: SignalOptions): Promise<void>;
  /** Runs `fn` if a request conforms now, else rejects with a {@link RateLimitedError}. */
  execute<T>(fn: (context: CallContext) => T | PromiseLike<T>, options?: SignalOptions): Promise<T>;
  stats(): RateLimiterStats;
}

/** One GCRA limit per string key, with bounded memory. */
export declare class KeyedRateLimiter {
  constructor(options?: KeyedRateLimiterOptions);
  check(key: string): boolean;
  tryAcquire(key: string): void;
  untilReady(key: string, options?: SignalOptions): Promise<void>;
  /** Forgets idle keys (never changes a decision); returns how many. */
  evictIdle(): number;
  stats(): KeyedRateLimiterStats;
}

// ---------------------------------------------------------------- adaptive concurrency

/** How a request held by an {@link AdaptivePermit} ended. */
export type LimitOutcome = 'success' | 'dropped' | 'ignored';

interface AdaptiveLimitCommonOptions {
  /** The limit before any sample (default 20). */
  initialLimit?: number;
  /** The lowest limit (>= 1, default 1). */
  minLimit?: number;
  /** The highest limit (default 200, at most 2^31-1). */
  maxLimit?: number;
  /** Lower bound of `retryAfterMs` hints when shedding. */
  minRetryAfterMs?: number;
  /** Upper bound of `retryAfterMs` hints when shedding. */
  maxRetryAfterMs?: number;
  /** `run`: whether a rejection is a sign of overload ('dropped'); else it is 'ignored'. Default: every rejection drops. */
  isDropped?: (err: unknown) => boolean;
}

/** Additive increase, multiplicative decrease. */
export interface AimdOptions extends AdaptiveLimitCommonOptions {
  algorithm: 'aimd';
  /** Added to the limit per healthy sample (default 1). */
  increaseBy?: number;
  /** Factor applied on a drop, in [0.5, 1) (default 0.9). */
  backoffRatio?: number;
  /** A success slower than this counts as a drop, in ms (default 5000). */
  latencyThresholdMs?: number;
}

/** Netflix's Gradient2: long-term vs short-term latency. The default. */
export interface Gradient2Options extends AdaptiveLimitCommonOptions {
  algorithm?: 'gradient2';
  /** Weight of each new target, in (0, 1] (default 0.2). */
  smoothing?: number;
  /** Tolerated slowdown against the long-term average (>= 1, default 1.5). */
  rttTolerance?: number;
  /** Samples in the long-term average (default 600). */
  longWindow?: number;
  /** Headroom added to the target (default 4). */
  queueSize?: number;
}

export type AdaptiveLimitOptions = AimdOptions | Gradient2Options;

export interface AdaptiveLimitStats {
  /** The limit now in force. */
  limit: number;
  inFlight: number;
  /** Permits granted. */
  acquired: number;
  /** Requests shed (ERR_BREAKWATER_OVERLOADED). */
  shed: number;
  successes: number;
  drops: number;
}

export declare class AdaptivePermit {
  private constructor();
  /** Gives the capacity back with the outcome (default 'success'); false if already released. */
  release(outcome?: LimitOutcome, latencyMs?: number): boolean;
  /** `release('success')`: the latency since acquisition is a sample. */
  recordSuccess(): boolean;
  /** `release('dropped')`: timed out or overloaded; lowers the limit. */
  recordDropped(): boolean;
  readonly released: boolean;
}

/** A concurrency limit that adapts to latency and drops (AIMD or Gradient2). */
export declare class AdaptiveLimit {
  constructor(options?: AdaptiveLimitOptions);
  /** Takes a permit or throws a {@link RetryAfterError} (ERR_BREAKWATER_OVERLOADED). */
  tryAcquire(): AdaptivePermit;
  /** Runs `fn` holding a permit; its outcome and latency adapt the limit. */
  run<T>(fn: (context: CallContext) => T | PromiseLike<T>, options?: SignalOptions): Promise<T>;
  /** The limit now in force. */
  readonly currentLimit: number;
  stats(): AdaptiveLimitStats;
}

// ---------------------------------------------------------------- keyed retry budget

export interface KeyedRetryBudgetOptions extends RetryBudgetOptions {
  /** Most keys with their own budget (default 1024). */
  maxKeys?: number;
  /** A key unused this long may be evicted, in ms (>= ttlMs, default 60000). */
  idleTtlMs?: number;
}

export interface KeyedRetryBudgetStats {
  /** Keys with their own budget now. */
  keys: number;
  /** Idle keys evicted for new ones. */
  evictions: number;
  /** Requests of new keys that got the shared overflow budget. */
  overflowed: number;
}

/** One retry budget per string key. */
export declare class KeyedRetryBudget {
  constructor(options?: KeyedRetryBudgetOptions);
  deposit(key: string): void;
  tryWithdraw(key: string): boolean;
  has(key: string): boolean;
  /** The stats of `key`'s own budget (created if absent). */
  budgetStats(key: string): RetryBudgetStats;
  /** `key`'s own budget as a RetryBudget (the same budget), e.g. for `retry`'s `budget`; held keys are never evicted. */
  budgetFor(key: string): RetryBudget;
  evictIdle(): number;
  stats(): KeyedRetryBudgetStats;
}

// ---------------------------------------------------------------- restart backoff

export interface RestartBackoffOptions {
  /** Delay before the first restart, in ms (> 0, default 10000). */
  initialDelayMs?: number;
  /** Cap on any delay, in ms (>= initialDelayMs, default 300000). */
  maxDelayMs?: number;
  /** Growth per consecutive crash (>= 1, default 2). */
  factor?: number;
  /** Default 'none'. */
  jitter?: Jitter;
  /** A run at least this long starts the series again, in ms (default 600000). */
  resetAfterMs?: number;
  /** Seed for reproducible jitter. */
  seed?: number;
}

export interface RestartBackoffStats {
  crashes: number;
  /** How long the task has been running, or null when it is not. */
  uptimeMs: number | null;
}

/** Crash-loop backoff for a supervised task. */
export declare class RestartBackoff {
  constructor(options?: RestartBackoffOptions);
  onStarted(): void;
  /** The delay in ms before starting the task again. */
  onCrash(): number;
  reset(): void;
  readonly crashes: number;
  stats(): RestartBackoffStats;
}

// ---------------------------------------------------------------- signals

export interface HysteresisOptions {
  /** Upper mark (finite, >= low; default 0.9). */
  high?: number;
  /** Lower mark (finite; default 0.8). */
  low?: number;
  /** Consecutive alarming samples to fire (>= 1, default 3). */
  fireAfter?: number;
  /** Consecutive clearing samples to clear (>= 1, default 3). */
  clearAfter?: number;
  /** Which side of the marks is alarming (default 'above'). */
  direction?: 'above' | 'below';
}

export interface HysteresisStats {
  firing: boolean;
  streak: number;
  /** NaN samples ignored. */
  ignored: number;
}

/** A two-mark, N-sample level alarm. */
export declare class Hysteresis {
  constructor(options?: HysteresisOptions);
  /** Feeds one sample; the change it caused, if any. */
  observe(value: number): 'fired' | 'cleared' | null;
  isFiring(): boolean;
  reset(): void;
  stats(): HysteresisStats;
}

export interface EventAggregatorOptions {
  /** Suppression window per fingerprint, in ms (> 0, default 300000). */
  windowMs?: number;
  /** Most fingerprints tracked (default 1000). */
  maxFingerprints?: number;
}

export interface EventSummary {
  fingerprint: string;
  /** Suppressed duplicates (>= 1). */
  count: number;
  /** ms since the epoch. */
  firstSeenMs: number;
  /** ms since the epoch. */
  lastSeenMs: number;
  lastEvent: string;
}

export interface FlushedEvents {
  summaries: EventSummary[];
  /** Fingerprints evicted to bound memory, and the duplicates they carried. */
  evicted: { fingerprints: number; events: number } | null;
}

/** De-duplicates events by fingerprint. */
export declare class EventAggregator {
  constructor(options?: EventAggregatorOptions);
  /** true: emit the event now; false: suppressed (counted in a later summary). */
  record(fingerprint: string, event: string): boolean;
  poll(): FlushedEvents;
  flush(): FlushedEvents;
  /** ms until `poll` has work, or null when nothing is tracked. */
  nextDueMs(): number | null;
  stats(): { fingerprints: number };
}

// ---------------------------------------------------------------- composition

/** Anything `wrap` composes. */
export type Policy = RetryPolicy | CircuitBreaker | ConcurrencyLimit | AdaptiveThrottle | RateLimiter | AdaptiveLimit | PolicyWrap;

/** What a composed policy passes to fn. */
export interface WrapContext {
  /** The innermost retry policy's attempt (1 without one). */
  attempt: number;
  /** The caller's signal (or a retry's per-run signal), if any. */
  signal?: AbortSignal;
}

/** Policies composed by {@link wrap}. */
export declare class PolicyWrap {
  private constructor();
  /** The policies, outermost first. */
  readonly policies: Policy[];
  /** Each composed policy's `stats()`, outermost first. */
  stats(): { policies: object[] };
  /** Runs fn through every policy, outermost first; an abort rejects with an AbortError and releases them all. */
  execute<T>(fn: (context: WrapContext) => T | PromiseLike<T>, options?: SignalOptions): Promise<T>;
}

/**
 * Composes policies, applied outermost-first (as cockatiel's `wrap`):
 * `wrap(retryPolicy, breaker)` sends each attempt through the breaker. Throws a
 * TypeError (ERR_BREAKWATER_INVALID_ARG) for anything that is not a policy.
 */
export declare function wrap(...policies: [Policy, ...Policy[]]): PolicyWrap;
