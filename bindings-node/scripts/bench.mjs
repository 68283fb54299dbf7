// Per-call overhead of breakwater's retry and breaker against cockatiel's,
// on the same trivial async function, in one process.
//
//   npm run bench                  # builds the release addon first
//   node scripts/bench.mjs --no-build [--rounds 15] [--iterations 200000]
//
// The variants run interleaved (a shuffled order in every round) so that
// load from other processes hits them alike; the report gives each one's
// median ns per call over the rounds, and the ratio to its cockatiel
// counterpart. Not part of the test suite.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

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
const iterations = flag('--iterations', 200_000);

const require = createRequire(import.meta.url);
const bw = require('../index.js');
const cockatiel = require('cockatiel');

const fn = async () => 1;

const budget = new bw.RetryBudget();
const retryOptions = { budget, maxAttempts: 3 };
const policy = new bw.RetryPolicy({ budget, maxAttempts: 3 });
const breaker = new bw.CircuitBreaker({ consecutiveFailures: 5 });

const cRetry = cockatiel.retry(cockatiel.handleAll, {
  maxAttempts: 3,
  backoff: new cockatiel.ExponentialBackoff(),
});
const cBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, {
  halfOpenAfter: 10_000,
  breaker: new cockatiel.ConsecutiveBreaker(5),
});

const variants = {
  'bare await fn()': () => fn(),
  'breakwater retry(fn, { budget })': () => bw.retry(fn, retryOptions),
  'breakwater RetryPolicy.execute(fn)': () => policy.execute(fn),
  'cockatiel retry(handleAll).execute(fn)': () => cRetry.execute(fn),
  'breakwater breaker.execute(fn)': () => breaker.execute(fn),
  'cockatiel circuitBreaker(...).execute(fn)': () => cBreaker.execute(fn),
};

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

// Warm-up: let V8 optimize every path.
for (const call of Object.values(variants)) await measure(call, Math.min(iterations, 50_000));

const samples = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const name of shuffle(Object.keys(variants))) {
    samples[name].push(await measure(variants[name], iterations));
  }
}

const medians = Object.fromEntries(Object.entries(samples).map(([name, xs]) => [name, median(xs)]));
const baseline = {
  'breakwater retry(fn, { budget })': 'cockatiel retry(handleAll).execute(fn)',
  'breakwater RetryPolicy.execute(fn)': 'cockatiel retry(handleAll).execute(fn)',
  'breakwater breaker.execute(fn)': 'cockatiel circuitBreaker(...).execute(fn)',
};
console.log(`node ${process.version}, ${rounds} rounds x ${iterations} calls, medians (ns/call):`);
for (const [name, ns] of Object.entries(medians)) {
  const base = baseline[name];
  const ratio = base ? `  ${(ns / medians[base]).toFixed(2)}x cockatiel` : '';
  console.log(`  ${name.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns${ratio}`);
}
if (args.includes('--json')) console.log(JSON.stringify(medians));
