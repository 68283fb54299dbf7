import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retry, RetryPolicy, RetryBudget, Backoff, codes } from '../index.js';
import { assertRejectsInvalid, activeTimers } from './helpers.mjs';

const fast = { baseMs: 1, maxMs: 2, jitter: 'none' };

function failing(times, make = (n) => new Error(`failure ${n}`)) {
  const calls = [];
  const fn = async (ctx) => {
    calls.push(ctx);
    if (calls.length <= times) throw make(calls.length);
    return `ok after ${calls.length}`;
  };
  return { fn, calls };
}

test('resolves with the value of a first attempt that succeeds', async () => {
  const { fn, calls } = failing(0);
  assert.equal(await retry(fn), 'ok after 1');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].attempt, 1);
  assert.equal(calls[0].signal.aborted, false);
});

test('retries failures until fn resolves, numbering the attempts', async () => {
  const { fn, calls } = failing(2);
  assert.equal(await retry(fn, { maxAttempts: 3, backoff: fast }), 'ok after 3');
  assert.deepEqual(calls.map((c) => c.attempt), [1, 2, 3]);
});

test('a synchronous throw is a failed attempt like a rejection', async () => {
  let n = 0;
  const value = await retry(
    () => {
      n++;
      if (n === 1) throw new Error('sync');
      return 'second';
    },
    { backoff: fast },
  );
  assert.equal(value, 'second');
});

test('gives up after maxAttempts with ATTEMPTS_EXHAUSTED and the last error as cause', async () => {
  const { fn, calls } = failing(Infinity);
  await assert.rejects(retry(fn, { maxAttempts: 4, backoff: fast }), (err) => {
    assert.equal(err.code, codes.ATTEMPTS_EXHAUSTED);
    assert.equal(err.attempts, 4);
    assert.equal(err.cause.message, 'failure 4');
    assert.match(err.message, /all attempts failed after 4 attempts: failure 4/);
    return true;
  });
  assert.equal(calls.length, 4);
});

test('a non-retryable error stops at once with NOT_RETRYABLE', async () => {
  const { fn, calls } = failing(Infinity, () => Object.assign(new Error('bad request'), { status: 400 }));
  await assert.rejects(
    retry(fn, { maxAttempts: 5, backoff: fast, retryable: (err) => err.status >= 500 }),
    (err) => err.code === codes.NOT_RETRYABLE && err.cause.status === 400 && err.attempts === 1,
  );
  assert.equal(calls.length, 1);
});

test('invalid-argument errors thrown by fn are not retried by default', async () => {
  let calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        new Backoff({ baseMs: -1 });
      },
      { backoff: fast },
    ),
    (err) => err.code === codes.NOT_RETRYABLE && err.cause instanceof RangeError,
  );
  assert.equal(calls, 1);
});

test('the budget stops retries with BUDGET_EXHAUSTED and counts every first attempt', async () => {
  const budget = new RetryBudget({ minRetriesPerSec: 0, retryRatio: 0.5 });
  const outcomes = [];
  for (let i = 0; i < 4; i++) {
    const { fn } = failing(Infinity);
    outcomes.push(await retry(fn, { budget, maxAttempts: 2, backoff: fast }).catch((err) => err.code));
  }
  // Each request deposits 0.5: every second failure may retry once.
  assert.deepEqual(outcomes, [
    codes.BUDGET_EXHAUSTED,
    codes.ATTEMPTS_EXHAUSTED,
    codes.BUDGET_EXHAUSTED,
    codes.ATTEMPTS_EXHAUSTED,
  ]);
  const stats = budget.stats();
  assert.equal(stats.deposits, 4);
  assert.equal(stats.granted, 2);
  assert.equal(stats.denied, 2);
});

test('a retryAfterMs hint is honoured, capped at maxRetryAfterMs', async () => {
  const hinted = (ms) => failing(1, () => Object.assign(new Error('busy'), { retryAfterMs: ms }));
  let { fn } = hinted(60);
  let started = performance.now();
  await retry(fn, { backoff: fast });
  assert.ok(performance.now() - started >= 55, 'waited for the hint');

  ({ fn } = hinted(60_000));
  started = performance.now();
  await retry(fn, { backoff: fast, maxRetryAfterMs: 20 });
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 15 && elapsed < 5_000, `capped wait, took ${elapsed} ms`);
});

test('a Backoff instance sets the delays', async () => {
  const { fn } = failing(2);
  const started = performance.now();
  await retry(fn, { maxAttempts: 3, backoff: new Backoff({ baseMs: 20, maxMs: 40, jitter: 'none' }) });
  assert.ok(performance.now() - started >= 55, '20 ms + 40 ms of backoff');
});

test('the deadline stops instead of sleeping past it', async () => {
  const { fn, calls } = failing(Infinity);
  const started = performance.now();
  await assert.rejects(
    retry(fn, { maxAttempts: 5, deadlineMs: 200, backoff: { baseMs: 1_000, jitter: 'none' } }),
    (err) => err.code === codes.DEADLINE_EXCEEDED && err.cause.message === 'failure 1' && err.attempts === 1,
  );
  assert.equal(calls.length, 1);
  assert.ok(performance.now() - started < 150, 'gave up at once, without sleeping');
});

test('the deadline cuts off an attempt in flight and aborts its signal', async () => {
  let seen;
  const hang = ({ signal }) => {
    seen = signal;
    return new Promise(() => {});
  };
  const started = performance.now();
  await assert.rejects(retry(hang, { deadlineMs: 30 }), (err) => {
    assert.equal(err.code, codes.DEADLINE_EXCEEDED);
    assert.equal(err.attempts, 1);
    assert.equal(err.cause, undefined, 'no attempt returned an error');
    return true;
  });
  assert.ok(performance.now() - started < 1_000);
  assert.equal(seen.aborted, true);
});

test('a zero deadline makes no attempt', async () => {
  let calls = 0;
  await assert.rejects(
    retry(async () => calls++, { deadlineMs: 0 }),
    (err) => err.code === codes.DEADLINE_EXCEEDED && err.attempts === 0,
  );
  assert.equal(calls, 0);
});

test('an abort during backoff rejects with an AbortError and cancels the timer', async () => {
  const baseline = activeTimers();
  const controller = new AbortController();
  const { fn, calls } = failing(Infinity);
  const pending = retry(fn, { maxAttempts: 5, signal: controller.signal, backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 'none' } });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calls.length, 1);
  assert.ok(activeTimers() > baseline, 'a backoff timer is pending');
  const reason = new Error('client went away');
  controller.abort(reason);
  await assert.rejects(pending, (err) => {
    assert.ok(err instanceof DOMException);
    assert.equal(err.name, 'AbortError');
    assert.equal(err.cause, reason);
    return true;
  });
  assert.equal(activeTimers(), baseline, 'no timer left behind');
  assert.equal(calls.length, 1);
});

test('an abort during an attempt rejects at once and aborts the attempt signal', async () => {
  const controller = new AbortController();
  let seen;
  const pending = retry(
    ({ signal }) => {
      seen = signal;
      return new Promise(() => {});
    },
    { signal: controller.signal },
  );
  await new Promise((resolve) => setImmediate(resolve));
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  assert.equal(seen.aborted, true);
});

test('an already aborted signal rejects without calling fn', async () => {
  let calls = 0;
  await assert.rejects(retry(async () => calls++, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(calls, 0);
});

test('a RetryPolicy counts runs, attempts, retries and outcomes', async () => {
  const policy = new RetryPolicy({ maxAttempts: 2, backoff: fast });
  await policy.execute(failing(0).fn);
  await policy.execute(failing(1).fn);
  await policy.execute(failing(5).fn).catch(() => {});
  await policy.execute(failing(5).fn, { deadlineMs: 1_000 }).catch(() => {});
  const stats = policy.stats();
  assert.equal(stats.runs, 4);
  assert.equal(stats.successes, 2);
  assert.equal(stats.attempts, 7);
  assert.equal(stats.retries, 3);
  assert.equal(stats.exhausted, 2);
});

test('an options object is validated once and re-validated when changed', async () => {
  const options = { maxAttempts: 1, backoff: fast };
  await assert.rejects(retry(failing(1).fn, options), { code: codes.ATTEMPTS_EXHAUSTED });
  options.maxAttempts = 2;
  assert.equal(await retry(failing(1).fn, options), 'ok after 2');
  options.maxAttempts = 0;
  await assertRejectsInvalid(retry(failing(1).fn, options), RangeError, 'maxAttempts');
});

test('invalid arguments reject with TypeErrors or RangeErrors naming the option', async () => {
  const ok = async () => 1;
  await assertRejectsInvalid(retry('fn'), TypeError, 'fn');
  await assertRejectsInvalid(retry(ok, 3), TypeError, 'options');
  await assertRejectsInvalid(retry(ok, { maxAttempts: '3' }), TypeError, 'maxAttempts');
  await assertRejectsInvalid(retry(ok, { maxAttempts: 0 }), RangeError, 'maxAttempts');
  await assertRejectsInvalid(retry(ok, { maxAttempts: 1.5 }), RangeError, 'maxAttempts');
  await assertRejectsInvalid(retry(ok, { maxAttempts: Number.NaN }), RangeError, 'maxAttempts');
  await assertRejectsInvalid(retry(ok, { maxAttempts: Infinity }), RangeError, 'maxAttempts');
  await assertRejectsInvalid(retry(ok, { budget: {} }), TypeError, 'budget');
  await assertRejectsInvalid(retry(ok, { backoff: 'fast' }), TypeError, 'backoff');
  await assertRejectsInvalid(retry(ok, { backoff: { baseMs: -1 } }), RangeError, 'backoff.baseMs');
  await assertRejectsInvalid(retry(ok, { backoff: { baseMs: 500, maxMs: 100 } }), RangeError, 'backoff.maxMs');
  await assertRejectsInvalid(retry(ok, { backoff: { maxAttempts: 3 } }), RangeError, 'backoff.maxAttempts');
  await assertRejectsInvalid(retry(ok, { retryable: true }), TypeError, 'retryable');
  await assertRejectsInvalid(retry(ok, { deadlineMs: -1 }), RangeError, 'deadlineMs');
  await assertRejectsInvalid(retry(ok, { deadlineMs: Number.NaN }), RangeError, 'deadlineMs');
  await assertRejectsInvalid(retry(ok, { deadlineMs: Infinity }), RangeError, 'deadlineMs');
  await assertRejectsInvalid(retry(ok, { deadlineMs: '1s' }), TypeError, 'deadlineMs');
  await assertRejectsInvalid(retry(ok, { maxRetryAfterMs: -5 }), RangeError, 'maxRetryAfterMs');
  await assertRejectsInvalid(retry(ok, { seed: -1 }), RangeError, 'seed');
  await assertRejectsInvalid(retry(ok, { signal: 'abort' }), TypeError, 'signal');
  await assertRejectsInvalid(retry(ok, { attempts: 3 }), TypeError, 'attempts');
  await assertRejectsInvalid(new RetryPolicy().execute(ok, { signal: {} }), TypeError, 'signal');
  await assertRejectsInvalid(new RetryPolicy().execute(ok, { deadlineMs: -1 }), RangeError, 'deadlineMs');
  await assertRejectsInvalid(new RetryPolicy().execute(null), TypeError, 'fn');
  assert.throws(() => new RetryPolicy({ maxAttempts: 0 }), { code: codes.INVALID_ARG, name: 'RangeError' });
});
