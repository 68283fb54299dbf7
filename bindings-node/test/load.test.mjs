// A bounded loopback load test: a proxy in front of an upstream that fails
// every request. With a shared RetryBudget the upstream sees at most 1.25x
// the proxy's incoming requests; without one, every request is tried
// `maxAttempts` times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { retry, RetryBudget } from '../index.js';

const REQUESTS = 200;
const CONCURRENCY = 10;
const MAX_ATTEMPTS = 3;

function request(agent, port, path = '/') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

async function scenario(budget) {
  let upstreamHits = 0;
  const upstream = http.createServer((req, res) => {
    upstreamHits++;
    res.writeHead(503, { 'content-type': 'text/plain' }).end('unavailable');
  });
  const upstreamPort = await listen(upstream);
  const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const options = { maxAttempts: MAX_ATTEMPTS, backoff: { baseMs: 1, maxMs: 5, jitter: 'full' }, budget };

  let incoming = 0;
  const proxy = http.createServer(async (req, res) => {
    incoming++;
    try {
      await retry(async () => {
        const status = await request(upstreamAgent, upstreamPort, req.url);
        if (status >= 500) throw Object.assign(new Error(`upstream answered ${status}`), { status });
        return status;
      }, options);
      res.writeHead(200).end();
    } catch (err) {
      res.writeHead(502, { 'x-breakwater-code': err.code ?? 'unknown' }).end();
    }
  });
  const proxyPort = await listen(proxy);
  const clientAgent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  const statuses = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        next++;
        statuses.push(await request(clientAgent, proxyPort));
      }
    }),
  );
  const elapsed = performance.now() - started;
  clientAgent.destroy();
  upstreamAgent.destroy();
  proxy.close();
  upstream.close();
  await Promise.all([once(proxy, 'close'), once(upstream, 'close')]);
  return { incoming, upstreamHits, statuses, elapsed };
}

test('a shared retry budget keeps upstream load within 1.25x of incoming requests', { timeout: 60_000 }, async (t) => {
  const budget = new RetryBudget({ ttlMs: 60_000, minRetriesPerSec: 0, retryRatio: 0.2 });
  const withBudget = await scenario(budget);
  const without = await scenario(undefined);

  const ratioWith = withBudget.upstreamHits / withBudget.incoming;
  const ratioWithout = without.upstreamHits / without.incoming;
  t.diagnostic(
    `with budget: ${withBudget.incoming} incoming -> ${withBudget.upstreamHits} upstream (${ratioWith.toFixed(2)}x) in ${withBudget.elapsed.toFixed(0)} ms`,
  );
  t.diagnostic(
    `without budget: ${without.incoming} incoming -> ${without.upstreamHits} upstream (${ratioWithout.toFixed(2)}x) in ${without.elapsed.toFixed(0)} ms`,
  );

  assert.equal(withBudget.incoming, REQUESTS);
  assert.equal(without.incoming, REQUESTS);
  assert.ok(withBudget.statuses.every((s) => s === 502));
  assert.ok(ratioWith <= 1.25, `with the budget the upstream saw ${ratioWith}x`);
  assert.ok(ratioWith > 1, `the budget still allows some retries (${ratioWith}x)`);
  assert.equal(without.upstreamHits, REQUESTS * MAX_ATTEMPTS, 'without a budget every attempt is made');
  const stats = budget.stats();
  assert.equal(stats.deposits, REQUESTS);
});
