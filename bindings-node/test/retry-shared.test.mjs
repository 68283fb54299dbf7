// `retry(fn, options)` shares native policies between calls by option values, and reports
// first-attempt successes in batches (lib/pending.js). These tests fail if either changes what
// a call does: different values must never share a policy, a changed options object must never
// reuse a stale one, and every reader sees every deposit made before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { retry, RetryPolicy, RetryBudget, KeyedRetryBudget, Backoff, codes } from '../index.js';
import { assertRejectsInvalid, activeTimers } from './helpers.mjs';

const require = createRequire(import.meta.url);
const native = require('../lib/native.js');
const pending = require('../lib/pending.js');

const fast = { baseMs: 1, maxMs: 2, jitter: 'none' };
const ok = async () => 'ok';

function failing(times) {
  let calls = 0;
  return async () => {
    calls++;
    if (calls <= times) throw new Error(`failure ${calls}`);
    return `ok after ${calls}`;
  };
}

/** Runs `body` counting the native retry policies it builds. */
async function countingPolicies(body) {
  const create = native.retryPolicyCreate;
  let created = 0;
  native.retryPolicyCreate = (options) => {
    created++;
    return create(options);
  };
  try {
    await body();
  } finally {
    native.retryPolicyCreate = create;
  }
  return created;
}

test('inline options objects with equal values build one native policy between them', async () => {
  const budget = new RetryBudget();
  const created = await countingPolicies(async () => {
    for (let i = 0; i < 50; i++) {
      await retry(ok, { maxAttempts: 3, budget, backoff: { baseMs: 5, jitter: 'none' } });
      await retry(ok, { budget, maxAttempts: 3, backoff: { jitter: 'none', baseMs: 5 } });
    }
  });
  assert.equal(created, 1);
  assert.equal(budget.stats().deposits, 100);
});

test('inline options with different budgets never share a policy', async () => {
  const empty = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 0 });
  const rich = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 1 });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(retry(failing(1), { maxAttempts: 2, budget: empty, backoff: fast }), {
      code: codes.BUDGET_EXHAUSTED,
    });
    assert.equal(await retry(failing(1), { maxAttempts: 2, budget: rich, backoff: fast }), 'ok after 2');
  }
  assert.equal(await retry(ok, { maxAttempts: 2, budget: empty, backoff: fast }), 'ok');
  const [e, r] = [empty.stats(), rich.stats()];
  assert.equal(e.deposits, 4);
  assert.equal(e.denied, 3);
  assert.equal(e.granted, 0);
  assert.equal(r.deposits, 3);
  assert.equal(r.granted, 3);
});

test('inline options with different native values never share a policy', async () => {
  const budget = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 10 });
  await retry(ok, { maxAttempts: 1, budget });
  await assert.rejects(retry(failing(1), { maxAttempts: 1, budget }), (err) => {
    assert.equal(err.code, codes.ATTEMPTS_EXHAUSTED);
    assert.equal(err.attempts, 1);
    return true;
  });
  assert.equal(await retry(failing(2), { maxAttempts: 3, budget, backoff: fast }), 'ok after 3');
  const delays = [];
  const onRetry = ({ delayMs }) => delays.push(delayMs);
  await retry(failing(1), { budget, backoff: { baseMs: 3, jitter: 'none' }, onRetry });
  await retry(failing(1), { budget, backoff: { baseMs: 4, jitter: 'none' }, onRetry });
  await retry(failing(1), { budget, backoff: new Backoff({ baseMs: 5, jitter: 'none' }), onRetry });
  await retry(failing(1), { budget, backoff: new Backoff({ baseMs: 6, jitter: 'none' }), onRetry });
  assert.deepEqual(delays, [3, 4, 5, 6]);
  // A retryAfterMs hint: maxRetryAfterMs 0 ignores it, unset honours it.
  const hintedOnce = () => {
    let calls = 0;
    return async () => {
      calls++;
      if (calls === 1) throw Object.assign(new Error('busy'), { retryAfterMs: 7 });
      return 'ok';
    };
  };
  delays.length = 0;
  await retry(hintedOnce(), { budget, backoff: { baseMs: 1, jitter: 'none' }, maxRetryAfterMs: 0, onRetry });
  await retry(hintedOnce(), { budget, backoff: { baseMs: 1, jitter: 'none' }, onRetry });
  assert.deepEqual(delays, [1, 7]);
});

test('per-call options (retryable, hooks) stay per call on a shared policy', async () => {
  const budget = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 10 });
  await assert.rejects(retry(failing(1), { budget, backoff: fast, retryable: () => false }), {
    code: codes.NOT_RETRYABLE,
  });
  assert.equal(await retry(failing(1), { budget, backoff: fast }), 'ok after 2');
  let given = 0;
  await assert.rejects(retry(failing(5), { budget, maxAttempts: 2, backoff: fast, onGiveUp: () => given++ }));
  await assert.rejects(retry(failing(5), { budget, maxAttempts: 2, backoff: fast }));
  assert.equal(given, 1);
});

test('a mutated options object never reuses a stale policy', async () => {
  const empty = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 0 });
  const rich = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 1 });
  const backoff = { baseMs: 3, jitter: 'none' };
  const delays = [];
  const options = { maxAttempts: 2, budget: rich, backoff, onRetry: ({ delayMs }) => delays.push(delayMs) };
  assert.equal(await retry(failing(1), options), 'ok after 2');
  options.budget = empty;
  await assert.rejects(retry(failing(1), options), { code: codes.BUDGET_EXHAUSTED });
  options.budget = rich;
  backoff.baseMs = 4; // the nested object changes too
  assert.equal(await retry(failing(1), options), 'ok after 2');
  options.maxAttempts = 1;
  await assert.rejects(retry(failing(1), options), { code: codes.ATTEMPTS_EXHAUSTED });
  assert.deepEqual(delays, [3, 4]);
  backoff.maxMs = 1; // now below baseMs: invalid, checked again
  options.maxAttempts = 2;
  await assertRejectsInvalid(retry(failing(1), options), RangeError, 'backoff.maxMs');
  delete backoff.maxMs;
  options.extra = true;
  await assertRejectsInvalid(retry(ok, options), TypeError, 'extra');
});

test('first-attempt successes are reported before anything reads the policy or its budget', async () => {
  const budget = new RetryBudget();
  for (let i = 0; i < 5; i++) await retry(ok, { budget });
  assert.ok(pending.waitingCount() >= 5, 'successes are batched');
  assert.equal(budget.stats().deposits, 5);
  assert.equal(pending.waitingCount(), 0);

  const keyed = new KeyedRetryBudget({ minRetriesPerSec: 0, retryRatio: 0.5 });
  const own = keyed.budgetFor('a');
  await retry(ok, { budget: own });
  await retry(ok, { budget: own });
  assert.equal(keyed.tryWithdraw('a'), true, 'two deposits of 0.5 make one retry');

  const policy = new RetryPolicy({ budget });
  for (let i = 0; i < 3; i++) await policy.execute(ok);
  const stats = policy.stats();
  assert.equal(stats.runs, 3);
  assert.equal(stats.successes, 3);
  assert.equal(stats.attempts, 3);
  assert.equal(budget.stats().deposits, 8);
});

test('a failed run sees the deposits of the successes before it', async () => {
  // Every deposit is 0.5 of a token and nothing else funds a retry: the retry after two
  // successes is granted only if both of their deposits reached the budget first.
  const budget = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 0.5 });
  await retry(ok, { budget, backoff: fast });
  assert.equal(await retry(failing(1), { budget, backoff: fast }), 'ok after 2');
  assert.equal(budget.stats().granted, 1);
});

test('batched successes are reported at once past a bound, and never keep the process alive', async () => {
  const before = activeTimers();
  const budget = new RetryBudget();
  for (let i = 0; i < pending.MAX_PENDING + 10; i++) await retry(ok, { budget });
  assert.ok(pending.waitingCount() < pending.MAX_PENDING);
  assert.equal(activeTimers(), before);
  assert.equal(budget.stats().deposits, pending.MAX_PENDING + 10);
});

test('a seeded policy numbers its runs as if no success were batched', async () => {
  // Run n of a seeded policy uses the jitter seed of n: runs that succeeded in a batch must
  // still count before a later run's delays are drawn.
  const backoff = { baseMs: 1_000, maxMs: 1_000_000, jitter: 'full' };
  const delaysAfter = async (successes) => {
    const policy = new RetryPolicy({ maxAttempts: 2, backoff, seed: 42 });
    for (let i = 0; i < successes; i++) await policy.execute(ok);
    let delay;
    const controller = new AbortController();
    const onRetry = ({ delayMs }) => {
      delay = delayMs;
      controller.abort(); // no need to wait for the delay
    };
    const run = new RetryPolicy({ maxAttempts: 2, backoff, seed: 42, onRetry });
    for (let i = 0; i < successes; i++) await run.execute(ok);
    await assert.rejects(run.execute(failing(1), { signal: controller.signal }), { name: 'AbortError' });
    return [delay, policy.stats().runs];
  };
  const [d0] = await delaysAfter(0);
  const [d3, runs] = await delaysAfter(3);
  assert.equal(runs, 3);
  assert.equal(typeof d0, 'number');
  assert.notEqual(d0, d3, 'run 3 draws other jitter than run 0');
  const [again] = await delaysAfter(3);
  assert.equal(again, d3, 'and the same as any other run 3');
});

test('remembered option values are validated again as soon as one changes', async () => {
  const budget = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 10 });
  const backoff = new Backoff({ baseMs: 1, maxMs: 2, jitter: 'none' });
  const options = { budget, backoff, maxAttempts: 2 };
  assert.equal(await retry(ok, options), 'ok');
  assert.equal(await retry(ok, { budget, backoff, maxAttempts: 2 }), 'ok');
  await assertRejectsInvalid(retry(ok, { budget, backoff, maxAttempts: 2, extra: 1 }), TypeError, 'extra');
  options.maxAttempts = 0;
  await assertRejectsInvalid(retry(ok, options), RangeError, 'maxAttempts');
  options.maxAttempts = 2;
  options.retryable = 'no';
  await assertRejectsInvalid(retry(ok, options), TypeError, 'retryable');
  options.retryable = () => false;
  await assert.rejects(retry(failing(1), options), { code: codes.NOT_RETRYABLE });
  delete options.retryable;
  assert.equal(await retry(failing(1), options), 'ok after 2');
  options.deadlineMs = -1;
  await assertRejectsInvalid(retry(ok, options), RangeError, 'deadlineMs');
  delete options.deadlineMs;
  options.onGiveUp = 5;
  await assertRejectsInvalid(retry(ok, options), TypeError, 'onGiveUp');
  delete options.onGiveUp;
  options.budget = {};
  await assertRejectsInvalid(retry(ok, options), TypeError, 'budget');
  const inherited = Object.create({ maxAttempts: 1 });
  inherited.budget = budget;
  await assert.rejects(retry(failing(1), inherited), { code: codes.ATTEMPTS_EXHAUSTED });
});
