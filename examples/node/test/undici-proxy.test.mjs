// A short run of undici-proxy.mjs: the goals of the full run, on 2 s per proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main, parseOptions } from '../undici-proxy.mjs';

test('in a full outage breakwater keeps the upstream at <= 1.25x and p99 within the deadline', { timeout: 120_000 }, async (t) => {
  const deadlineMs = 250;
  const results = await main(['--seconds', '2', '--connections', '16', '--deadline-ms', String(deadlineMs), '--json']);
  const side = Object.fromEntries(results.map((r) => [r.side, r]));
  for (const r of results) t.diagnostic(JSON.stringify(r));

  // The hand-written loop tries every request MAX_ATTEMPTS (3) times.
  assert.ok(side.naive.amplification > 2.5, `naive amplification ${side.naive.amplification}`);

  const b = side['budget+breaker'];
  assert.ok(b.proxy_requests > 100, 'the load reached the proxy');
  assert.ok(b.amplification <= 1.25, `budget+breaker amplification ${b.amplification}`);
  assert.ok(b.proxy_p99_ms <= deadlineMs, `budget+breaker p99 ${b.proxy_p99_ms} ms`);

  // Budget alone: 20 % of requests plus the floor (10 retries/s, its 10 s reserve spent once).
  const budget = side.budget;
  const floor = (10 * 10 + 10 * 2) / budget.proxy_requests;
  assert.ok(budget.amplification <= 1.2 + floor + 0.01, `budget amplification ${budget.amplification} (floor share ${floor})`);
  assert.ok(budget.proxy_p99_ms <= deadlineMs + 50, `budget p99 ${budget.proxy_p99_ms} ms`);
});

test('bad options are refused with the usage line', () => {
  for (const argv of [['--seconds', '0'], ['--connections', 'x'], ['--deadline-ms', '1.5']]) {
    assert.throws(() => parseOptions(argv), (err) => err instanceof RangeError && /usage:/.test(err.message), argv.join(' '));
  }
  assert.throws(() => parseOptions(['--bogus']), TypeError);
});
