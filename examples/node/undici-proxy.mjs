// A proxy built on undici in front of an upstream that is fully down (every request answers 503
// after a few milliseconds), driven by autocannon for a bounded time. Three proxies take turns:
//
//   naive          3 attempts with exponential backoff, as a hand-written retry loop does
//   budget         breakwater `retry` with a shared RetryBudget and a deadline
//   budget+breaker the same, each attempt through a CircuitBreaker that fails fast while open
//
// For each it prints what the upstream saw per request the proxy got (amplification; the
// incident's goal is <= 1.25x) and the proxy's p99 latency against its deadline.
//
//   (cd bindings-node && npm run build)          # once
//   (cd examples/node && npm ci)                 # once: undici, autocannon
//   node examples/node/undici-proxy.mjs [--seconds 10] [--connections 32] [--deadline-ms 250] [--json]
import http from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import autocannon from 'autocannon';

const require = createRequire(import.meta.url);
const { retry, RetryBudget, CircuitBreaker, codes } = require('../../bindings-node/index.js');

const USAGE = 'usage: node undici-proxy.mjs [--seconds N] [--connections N] [--deadline-ms N] [--json]';

export function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '10' },
      connections: { type: 'string', default: '32' },
      'deadline-ms': { type: 'string', default: '250' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const whole = (name, min, max) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`--${name} must be a whole number in ${min}..=${max}, got '${values[name]}'\n${USAGE}`);
    return n;
  };
  return {
    help: values.help,
    seconds: whole('seconds', 1, 3600),
    connections: whole('connections', 1, 10_000),
    deadlineMs: whole('deadline-ms', 10, 600_000),
    json: values.json,
  };
}

const UPSTREAM_DELAY_MS = 2;
const MAX_ATTEMPTS = 3;

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/** One attempt against the upstream through undici; a 5xx is a failure. */
async function attempt(pool) {
  const { statusCode, body } = await pool.request({ path: '/', method: 'GET' });
  await body.dump();
  if (statusCode >= 500) throw Object.assign(new Error(`upstream answered ${statusCode}`), { status: statusCode });
  return statusCode;
}

/** The three proxies: each returns a function handling one request (throws to answer 5xx). */
function strategies(deadlineMs) {
  return {
    naive: () => async (pool) => {
      for (let i = 1; ; i++) {
        try {
          return await attempt(pool);
        } catch (err) {
          if (i >= MAX_ATTEMPTS) throw err;
          await sleep(10 * 2 ** (i - 1));
        }
      }
    },
    budget: () => {
      const options = {
        maxAttempts: MAX_ATTEMPTS,
        budget: new RetryBudget(),
        backoff: { baseMs: 10, maxMs: 100, jitter: 'full' },
        deadlineMs,
      };
      return (pool) => retry(() => attempt(pool), options);
    },
    'budget+breaker': () => {
      const breaker = new CircuitBreaker({ openWait: { baseMs: 500, maxMs: 5_000 } });
      const options = {
        maxAttempts: MAX_ATTEMPTS,
        budget: new RetryBudget(),
        backoff: { baseMs: 10, maxMs: 100, jitter: 'full' },
        deadlineMs,
        retryable: (err) => err.code !== codes.BREAKER_OPEN,
      };
      return (pool) => retry(() => breaker.execute(() => attempt(pool)), options);
    },
  };
}

async function runSide(name, makeHandler, { seconds, connections }) {
  let upstreamRequests = 0;
  const upstream = http.createServer((req, res) => {
    upstreamRequests++;
    setTimeout(() => res.writeHead(503, { 'content-type': 'text/plain' }).end('down'), UPSTREAM_DELAY_MS);
  });
  const upstreamPort = await listen(upstream);
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128 });
  const handle = makeHandler();

  let proxyRequests = 0;
  const latenciesMs = [];
  const proxy = http.createServer(async (req, res) => {
    proxyRequests++;
    const started = performance.now();
    let status = 200;
    try {
      await handle(pool);
    } catch (err) {
      status = err.code === codes.BREAKER_OPEN || err.cause?.code === codes.BREAKER_OPEN ? 503 : 502;
    }
    res.writeHead(status).end();
    latenciesMs.push(performance.now() - started);
  });
  const proxyPort = await listen(proxy);

  const load = await autocannon({ url: `http://127.0.0.1:${proxyPort}/`, connections, duration: seconds });

  await new Promise((resolve) => proxy.close(resolve));
  await pool.close();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));

  latenciesMs.sort((a, b) => a - b);
  return {
    side: name,
    proxy_requests: proxyRequests,
    upstream_requests: upstreamRequests,
    amplification: proxyRequests === 0 ? 0 : upstreamRequests / proxyRequests,
    proxy_p99_ms: percentile(latenciesMs, 0.99),
    client_p99_ms: load.latency.p99,
    client_errors: load.errors,
  };
}

export async function main(argv) {
  const options = parseOptions(argv);
  if (options.help) {
    console.log(USAGE);
    return [];
  }
  const results = [];
  for (const [name, make] of Object.entries(strategies(options.deadlineMs))) {
    results.push(await runSide(name, make, options));
  }
  if (options.json) {
    console.log(JSON.stringify({ seconds: options.seconds, connections: options.connections, deadline_ms: options.deadlineMs, sides: results }, null, 2));
  } else {
    console.log(`full upstream outage, ${options.connections} connections, ${options.seconds} s per proxy, deadline ${options.deadlineMs} ms`);
    console.log('proxy            requests  upstream  amplification  proxy p99  client p99');
    for (const r of results) {
      const ok = r.amplification <= 1.25 && r.proxy_p99_ms <= options.deadlineMs ? '' : '  (misses the goal)';
      console.log(
        `${r.side.padEnd(16)} ${String(r.proxy_requests).padStart(8)} ${String(r.upstream_requests).padStart(9)}` +
          ` ${r.amplification.toFixed(2).padStart(13)}x ${r.proxy_p99_ms.toFixed(1).padStart(8)} ms ${String(r.client_p99_ms).padStart(8)} ms${r.side === 'naive' ? '' : ok}`,
      );
    }
    console.log('goal: amplification <= 1.25x and proxy p99 <= the deadline (breakwater sides)');
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof RangeError ? err.message : err);
    process.exit(2);
  });
}
