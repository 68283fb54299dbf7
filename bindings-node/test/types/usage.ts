// Compiled with `tsc --noEmit` by the test command: the declarations in
// index.d.ts must describe how the package is meant to be used.
import {
  AdaptiveLimit,
  wrap,
  type BreakerStateChange,
  type GiveUpInfo,
  AdaptiveThrottle,
  EventAggregator,
  Hysteresis,
  KeyedRateLimiter,
  KeyedRetryBudget,
  RateLimiter,
  RestartBackoff,
  type LimitOutcome,
  type RateLimitedError,
  Allocator,
  Backoff,
  CircuitBreaker,
  ConcurrencyLimit,
  RetryBudget,
  RetryPolicy,
  codes,
  planDrain,
  retry,
  type Allocation,
  type BreakerState,
  type BreakwaterError,
  type DrainWave,
  type Jitter,
  type RetryAfterError,
  type RetryError,
} from '../../index.js';

const jitter: Jitter = 'decorrelated';
const backoff = new Backoff({ baseMs: 50, maxMs: 2_000, factor: 2, jitter, seed: 1 });
const first: number | null = backoff.nextDelayMs();
const all: number[] = [...new Backoff({ maxAttempts: 4 })];
backoff.reset();

function isBreakwaterError(err: unknown): err is BreakwaterError {
  return err instanceof Error && typeof (err as BreakwaterError).code === 'string';
}

async function main(): Promise<void> {
  const budget = new RetryBudget({ ttlMs: 10_000, minRetriesPerSec: 10, retryRatio: 0.2 });
  budget.deposit();
  const mayRetry: boolean = budget.tryWithdraw();
  const deposits: number = budget.stats().deposits;

  const controller = new AbortController();
  const value: number = await retry(async ({ attempt, signal }) => (signal.aborted ? 0 : attempt), {
    maxAttempts: 4,
    budget,
    backoff: { baseMs: 10, jitter: 'full' },
    signal: controller.signal,
    retryable: (err) => !(err instanceof TypeError),
    deadlineMs: 5_000,
  });
  const text: string = await retry(() => 'sync values work too');
  try {
    await retry(async () => {
      throw new Error('down');
    }, { budget, backoff });
  } catch (err) {
    if (isBreakwaterError(err) && err.code === codes.BUDGET_EXHAUSTED) {
      const retryError = err as RetryError;
      const attempts: number = retryError.attempts;
      void attempts;
    }
  }
  const policy = new RetryPolicy({ maxAttempts: 2, budget });
  const viaPolicy: string = await policy.execute(async () => 'ok', { deadlineMs: 100 });
  const retries: number = policy.stats().retries;

  const breaker = new CircuitBreaker({
    consecutiveFailures: 5,
    window: { type: 'time', durationMs: 60_000, buckets: 12 },
    openWait: { baseMs: 1_000, maxMs: 30_000 },
    isFailure: (err) => (err as { status?: number }).status !== 404,
  });
  const state: BreakerState = breaker.state;
  const permit = breaker.tryAcquire();
  const probe: boolean = permit.isProbe;
  permit.record('success');
  const fromBreaker: number = await breaker.execute(async () => 42);
  try {
    breaker.tryAcquire().recordFailure();
  } catch (err) {
    if (isBreakwaterError(err) && err.code === codes.BREAKER_OPEN) {
      const wait: number = (err as RetryAfterError).retryAfterMs;
      void wait;
    }
  }

  const limit = new ConcurrencyLimit({ maxConcurrent: 8, maxQueued: 16, queueTimeoutMs: null });
  const held = await limit.acquire({ signal: controller.signal });
  held.release();
  const limited: string = await limit.run(async () => 'done');
  limit.setMaxConcurrent(4);
  const inFlight: number = limit.inFlight + limit.stats().queued;

  const throttle = new AdaptiveThrottle({ k: 2, windowMs: 60_000, buckets: 60 });
  if (!throttle.shouldReject()) throttle.recordAccepted();
  const p: number = throttle.rejectProbability;
  const throttled: number = await throttle.execute(() => 1);

  const waves: DrainWave[] = planDrain(
    { hosts: [{ id: 0, capacity: 10 }, { id: 1, capacity: 10, state: 'active' }], apps: [{ id: 0, host: 0 }], drain: [0] },
    { maxDrainingHosts: 1, maxUnavailable: '10%', minFreeCapacity: 1 },
  );
  const moved: number = waves[0]?.assignments[0]?.to ?? -1;

  const allocator = new Allocator({ storeDir: '/tmp/store', linkMode: 'auto', maxConcurrent: 4, minFreeBytes: 0 });
  await allocator.import(['/tmp/tarballs']);
  const allocation: Allocation = await allocator.allocate({ lockfile: 'package-lock.json', appDir: '/srv/app' });
  const outcome: 'reused' | 'cloned' | 'materialized' = allocation.outcome;
  const report = await allocator.verify({ appDir: '/srv/app', repair: true });
  const ok: boolean = report.ok && allocator.stats().shed === 0;

  void [first, all, mayRetry, deposits, value, text, viaPolicy, retries, state, probe, fromBreaker];
  void [limited, inFlight, p, throttled, moved, outcome, ok];
}

void main;

// Invalid uses must not compile.
// @ts-expect-error jitter is one of four names
new Backoff({ jitter: 'sometimes' });
// @ts-expect-error budget must be a RetryBudget
void retry(async () => 1, { budget: { ttlMs: 1 } });
// @ts-expect-error storeDir is required
new Allocator({});

async function newClasses(): Promise<void> {
  const limiter = new RateLimiter({ rate: 100, perMs: 1_000, burst: 20 });
  const taken: boolean = limiter.check();
  await limiter.untilReady({ signal: AbortSignal.timeout(1_000) });
  const got: string = await limiter.execute(async () => 'ok');
  try {
    limiter.tryAcquire();
  } catch (err) {
    const wait: number = (err as RateLimitedError).retryAfterMs;
  }
  const perTenant = new KeyedRateLimiter({ rate: 10, maxKeys: 1_000 });
  const tenantOk: boolean = perTenant.check('tenant-a');
  const keys: number = perTenant.stats().keys;

  const adaptive = new AdaptiveLimit({ algorithm: 'aimd', initialLimit: 10, backoffRatio: 0.9 });
  const outcome: LimitOutcome = 'dropped';
  adaptive.tryAcquire().release(outcome, 12);
  const current: number = adaptive.currentLimit;
  adaptive.tryAcquire().recordSuccess();
  const body: number = await new AdaptiveLimit({ smoothing: 0.2 }).run(async () => 1);

  const budgets = new KeyedRetryBudget({ retryRatio: 0.1, maxKeys: 64 });
  budgets.deposit('users');
  const retryUsers: boolean = budgets.tryWithdraw('users');
  const overflowed: number = budgets.stats().overflowed;
  await retry(async () => 1, { budget: budgets.budgetFor('users') });

  const restart = new RestartBackoff({ initialDelayMs: 1_000, jitter: 'equal' });
  restart.onStarted();
  const delay: number = restart.onCrash();
  const uptime: number | null = restart.stats().uptimeMs;

  const disk = new Hysteresis({ high: 0.9, low: 0.8, direction: 'above' });
  const change: 'fired' | 'cleared' | null = disk.observe(0.95);
  const events = new EventAggregator({ windowMs: 60_000 });
  if (events.record('oom', 'out of memory')) {
    const summaries = events.flush().summaries.map((s) => s.count);
  }
}
void newClasses;

async function composition(): Promise<void> {
  const breaker = new CircuitBreaker({ consecutiveFailures: 5 });
  const limit = new ConcurrencyLimit({ maxConcurrent: 10 });
  breaker.on('stateChange', (change: BreakerStateChange) => console.log(change.from, change.to));
  const onOpen = () => {};
  breaker.on('open', onOpen).off('open', onOpen);
  const signal = AbortSignal.timeout(1_000);
  const a: number = await breaker.execute(async ({ signal: s }) => (s?.aborted ? 0 : 1), { signal });
  const b: string = await limit.run(async () => 'x', { signal });
  const shed: number = limit.stats().shed;
  const c: number = await retry(async ({ attempt }) => attempt, {
    breaker,
    limit,
    onRetry: ({ attempt, delayMs, error }) => console.log(attempt, delayMs, error),
    onGiveUp: (info: GiveUpInfo) => console.log(info.code, info.attempts),
  });
  const policy = wrap(new RetryPolicy({ maxAttempts: 3 }), breaker, limit, new RateLimiter());
  const d: number = await policy.execute(async ({ attempt, signal: s }) => attempt, { signal });
  const nested = wrap(policy, new AdaptiveThrottle());
}
void composition;
