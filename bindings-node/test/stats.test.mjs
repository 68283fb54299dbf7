// Every class has stats() returning a plain object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as bw from '../index.js';

test('every class has stats() returning a plain object', () => {
  const store = mkdtempSync(join(tmpdir(), 'breakwater-stats-'));
  try {
    const instances = {
      AdaptiveLimit: new bw.AdaptiveLimit(),
      AdaptiveThrottle: new bw.AdaptiveThrottle(),
      Allocator: new bw.Allocator({ storeDir: store }),
      Backoff: new bw.Backoff(),
      CircuitBreaker: new bw.CircuitBreaker(),
      ConcurrencyLimit: new bw.ConcurrencyLimit(),
      EventAggregator: new bw.EventAggregator(),
      Hysteresis: new bw.Hysteresis(),
      KeyedRateLimiter: new bw.KeyedRateLimiter(),
      KeyedRetryBudget: new bw.KeyedRetryBudget(),
      PolicyWrap: bw.wrap(new bw.CircuitBreaker(), new bw.ConcurrencyLimit()),
      RateLimiter: new bw.RateLimiter(),
      RestartBackoff: new bw.RestartBackoff(),
      RetryBudget: new bw.RetryBudget(),
      RetryPolicy: new bw.RetryPolicy(),
    };
    const permits = ['AdaptivePermit', 'BreakerPermit', 'LimitPermit'];
    const classes = Object.keys(bw).filter((k) => /^[A-Z]/.test(k) && !permits.includes(k)).sort();
    assert.deepEqual(Object.keys(instances).sort(), classes, 'every exported class is checked');
    for (const [name, instance] of Object.entries(instances)) {
      const stats = instance.stats();
      assert.equal(Object.getPrototypeOf(stats), Object.prototype, name);
      assert.ok(Object.keys(stats).length > 0, name);
      assert.deepEqual(JSON.parse(JSON.stringify(stats)), stats, `${name}: JSON round trip`);
    }
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
});
