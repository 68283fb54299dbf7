// A small HTTP proxy on loopback in front of a flaky upstream, protected by
// breakwater: every request is retried with jittered backoff, but only as
// far as a RetryBudget shared by all requests allows, and a CircuitBreaker
// fails requests fast while the upstream is down instead of piling load on
// it. It runs a bounded load (three phases: flaky, down, recovered), prints
// what the client, the proxy and the upstream saw, and exits by itself.
//
//   (cd bindings-node && npm run build)   # once
//   node examples/node/retrying-proxy.mjs
import http from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { retry, RetryBudget, CircuitBreaker, codes } = require('../../bindings-node/index.js');

const PHASES = [
  { name: 'flaky (20 % of requests fail)', failRate: 0.2, ms: 1_500 },
  { name: 'down (every request fails)', failRate: 1, ms: 1_500 },
  { name: 'recovered', failRate: 0, ms: 1_500 },
];
const CONCURRENCY = 8;
const PAUSE_MS = 5; // between two requests of one client worker

// --- the flaky upstream -----------------------------------------------------
let phase = PHASES[0];
const upstreamSeen = { total: 0, failed: 0 };
const upstream = http.createServer((req, res) => {
  upstreamSeen.total++;
  if (Math.random() < phase.failRate) {
    upstreamSeen.failed++;
    res.writeHead(503, { 'retry-after': '0' }).end('try again');
    return;
  }
  setTimeout(() => res.writeHead(200).end('hello'), 1);
});

// --- the proxy --------------------------------------------------------------
// One budget and one breaker for the one upstream, shared by every request.
const budget = new RetryBudget({ ttlMs: 10_000, minRetriesPerSec: 5, retryRatio: 0.2 });
const breaker = new CircuitBreaker({
  window: { calls: 50 },
  minimumCalls: 20,
  failureRateThreshold: 0.5,
  openWait: { baseMs: 100, maxMs: 400 },
  halfOpenProbes: 5,
});
const retryOptions = {
  maxAttempts: 3,
  budget,
  backoff: { baseMs: 5, maxMs: 50, jitter: 'full' },
  deadlineMs: 2_000,
  // An open breaker is not worth another attempt from this request.
  retryable: (err) => err.code !== codes.BREAKER_OPEN,
};
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function get(port, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
  });
}

const proxyOutcomes = {};
const proxy = http.createServer(async (req, res) => {
  let status;
  try {
    await retry(
      () =>
        breaker.execute(async () => {
          const upstreamStatus = await get(upstreamPort, upstreamAgent);
          if (upstreamStatus >= 500) throw Object.assign(new Error(`upstream ${upstreamStatus}`), { status: upstreamStatus });
        }),
      retryOptions,
    );
    status = 200;
    res.writeHead(200).end('ok');
  } catch (err) {
    // Fail fast with a hint instead of hammering the upstream.
    status = err.code === codes.NOT_RETRYABLE && err.cause?.code === codes.BREAKER_OPEN ? 503 : 502;
    const retryAfter = err.cause?.retryAfterMs;
    res
      .writeHead(status, retryAfter ? { 'retry-after': String(Math.ceil(retryAfter / 1000)) } : {})
      .end(err.code);
  }
  proxyOutcomes[status] = (proxyOutcomes[status] ?? 0) + 1;
});

upstream.listen(0, '127.0.0.1');
proxy.listen(0, '127.0.0.1');
await Promise.all([once(upstream, 'listening'), once(proxy, 'listening')]);
const upstreamPort = upstream.address().port;
const proxyPort = proxy.address().port;

// --- a bounded client load ---------------------------------------------------
const clientAgent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
console.log(`upstream on :${upstreamPort}, proxy on :${proxyPort}\n`);
console.log('phase                           client    ok   5xx  upstream  amplification  breaker');
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
for (const p of PHASES) {
  phase = p;
  const before = upstreamSeen.total;
  const ends = performance.now() + p.ms;
  let sent = 0;
  let ok = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < ends) {
        sent++;
        if ((await get(proxyPort, clientAgent)) === 200) ok++;
        await pause(PAUSE_MS);
      }
    }),
  );
  const hits = upstreamSeen.total - before;
  console.log(
    `${p.name.padEnd(31)} ${String(sent).padStart(6)} ${String(ok).padStart(5)} ${String(sent - ok).padStart(5)}` +
      `${String(hits).padStart(10)} ${(hits / sent).toFixed(2).padStart(13)}x  ${breaker.state}`,
  );
}

const b = budget.stats();
const s = breaker.stats();
console.log(`\nretry budget: ${b.deposits} deposits, ${b.granted} retries granted, ${b.denied} denied`);
console.log(`breaker: ${s.trips} trip(s), ${s.rejections} calls failed fast while open, now ${s.state}`);
console.log(`proxy answers: ${JSON.stringify(proxyOutcomes)}`);

clientAgent.destroy();
upstreamAgent.destroy();
proxy.close();
upstream.close();
