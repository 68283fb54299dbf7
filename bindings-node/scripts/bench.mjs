// Per-call overhead of breakwater's retry, breaker and concurrency limit against cockatiel's
// (and opossum's breaker, and a bare `await`), on the same trivial async function, in one
// process.
//
//   npm run bench                  # builds the release addon first
//   node scripts/bench.mjs --no-build [--rounds 15] [--iterations 100000] [--json]
//
// The variants run interleaved (a shuffled order in every round) so that load from other
// processes hits them alike; the report gives each one's median ns per call over the rounds and
// its ratio to its anchor (cockatiel's counterpart; opossum's `fire` as a second breaker anchor).
// `retry(fn, { ... })` is measured both with an options object written inline (a new object per
// call, as people write it) and with one hoisted out of the loop. Not part of the test suite.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
if (!args.includes('--no-build')) {
  execFileSync(process.execPath, [join(here, 'build.mjs'), '--release'], { stdio: 'inherit' });
}
const rounds = flag('--rounds', 15);
const iterations = flag('--iterations', 100_000);

const require = createRequire(import.meta.url);
const bw = require('../index.js');
const cockatiel = require('cockatiel');
const Opossum = require('opossum');
const versionOf = (name) => require(`${name}/package.json`).version;

const fn = async () => 1;

const budget = new bw.RetryBudget();
const backoff = new bw.Backoff({ baseMs: 50, maxMs: 2_000 });
const hoisted = { maxAttempts: 3, budget, backoff };
const policy = new bw.RetryPolicy({ maxAttempts: 3, budget, backoff });
const breaker = new bw.CircuitBreaker({ consecutiveFailures: 5 });
const limit = new bw.ConcurrencyLimit({ maxConcurrent: 10, maxQueued: 0 });

const cRetry = cockatiel.retry(cockatiel.handleAll, {
  maxAttempts: 3,
  backoff: new cockatiel.ExponentialBackoff(),
});
const cBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, {
  halfOpenAfter: 10_000,
  breaker: new cockatiel.ConsecutiveBreaker(5),
});
const cBulkhead = cockatiel.bulkhead(10, 0);
const opossum = new Opossum(fn, { timeout: false, resetTimeout: 10_000 });

const C = `cockatiel ${versionOf('cockatiel')}`;
const O = `opossum ${versionOf('opossum')}`;
const BARE = 'bare await fn()';
const C_RETRY = `${C} retry(handleAll).execute(fn)`;
const C_BREAKER = `${C} circuitBreaker(...).execute(fn)`;
const C_BULKHEAD = `${C} bulkhead(10).execute(fn)`;
const O_FIRE = `${O} new CircuitBreaker(fn).fire()`;

// [name, call, anchors]
const variants = [
  [BARE, () => fn(), []],
  ['breakwater retry(fn, { maxAttempts, budget, backoff }) inline', () => bw.retry(fn, { maxAttempts: 3, budget, backoff }), [C_RETRY]],
  ['breakwater retry(fn, options) hoisted options', () => bw.retry(fn, hoisted), [C_RETRY]],
  ['breakwater retry(fn, { budget }) inline', () => bw.retry(fn, { budget }), [C_RETRY]],
  ['breakwater RetryPolicy.execute(fn)', () => policy.execute(fn), [C_RETRY]],
  [C_RETRY, () => cRetry.execute(fn), []],
  ['breakwater breaker.execute(fn)', () => breaker.execute(fn), [C_BREAKER, O_FIRE]],
  [C_BREAKER, () => cBreaker.execute(fn), []],
  [O_FIRE, () => opossum.fire(), []],
  ['breakwater limit.run(fn)', () => limit.run(fn), [C_BULKHEAD]],
  [C_BULKHEAD, () => cBulkhead.execute(fn), []],
];

async function measure(call, n) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await call();
  return Number(process.hrtime.bigint() - start) / n;
}

function shuffle(list) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const load = () => loadavg()[0].toFixed(2);
const loadBefore = load();

// Warm-up: let V8 optimize every path.
for (const [, call] of variants) await measure(call, Math.min(iterations, 50_000));

const samples = new Map(variants.map(([name]) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, call] of shuffle([...variants])) {
    samples.get(name).push(await measure(call, iterations));
  }
}

const medians = Object.fromEntries([...samples].map(([name, xs]) => [name, median(xs)]));
console.log(
  `node ${process.version}, ${rounds} rounds x ${iterations} calls, medians (ns/call); ` +
    `1-min load average ${loadBefore} before, ${load()} after`,
);
for (const [name, , anchors] of variants) {
  const ns = medians[name];
  const ratios = anchors.map((anchor) => `${(ns / medians[anchor]).toFixed(2)}x ${anchor.split(' ')[0]}`).join(', ');
  const overBare = (ns / medians[BARE]).toFixed(1);
  console.log(`  ${name.padEnd(64)} ${ns.toFixed(0).padStart(6)} ns  ${overBare.padStart(5)}x bare${ratios ? `  ${ratios}` : ''}`);
}
if (args.includes('--json')) console.log(JSON.stringify(medians));
