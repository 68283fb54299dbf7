// Per-call overhead of breakwater's retry, breaker and concurrency limit against cockatiel's
// (and opossum's breaker, and a bare `await`), on the same trivial async function.
//
//   npm run bench                  # builds the release addon first
//   node scripts/bench.mjs --no-build [--rounds 15] [--iterations 100000] [--json]
//
// Each variant runs in its own child process (so that no variant's code is optimized, or left
// polymorphic, by another's), and the parent asks them for a measurement in turn, a shuffled
// order in every round, so that load from other processes hits them alike. The report gives each
// one's median ns per call over the rounds and its ratio to its anchor (cockatiel's
// counterpart; opossum's `fire` as a second breaker anchor). `retry(fn, { ... })` is measured
// with an options object written inline (a new object per call, as people write it) and with
// one hoisted out of the loop. Not part of the test suite.
import { execFileSync, fork } from 'node:child_process';
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
const worker = args.includes('--worker') ? args[args.indexOf('--worker') + 1] : undefined;
if (worker === undefined && !args.includes('--no-build')) {
  execFileSync(process.execPath, [join(here, 'build.mjs'), '--release'], { stdio: 'inherit' });
}
const rounds = flag('--rounds', 15);
const iterations = flag('--iterations', 100_000);

const require = createRequire(import.meta.url);
const versionOf = (name) => require(`${name}/package.json`).version;
const C = `cockatiel ${versionOf('cockatiel')}`;
const O = `opossum ${versionOf('opossum')}`;
const BARE = 'bare await fn()';
const C_RETRY = `${C} retry(handleAll).execute(fn)`;
const C_BREAKER = `${C} circuitBreaker(...).execute(fn)`;
const C_BULKHEAD = `${C} bulkhead(10).execute(fn)`;
const O_FIRE = `${O} new CircuitBreaker(fn).fire()`;

const fn = async () => 1;
const bw = () => require('../index.js');
const cockatiel = () => require('cockatiel');
const retryFields = () => {
  const { RetryBudget, Backoff } = bw();
  return { maxAttempts: 3, budget: new RetryBudget(), backoff: new Backoff({ baseMs: 50, maxMs: 2_000 }) };
};

// [name, setup() -> call, anchors]: setup runs in the variant's own process only.
const variants = [
  [BARE, () => () => fn(), []],
  [
    'breakwater retry(fn, { maxAttempts, budget, backoff }) inline',
    () => {
      const { retry } = bw();
      const { budget, backoff } = retryFields();
      return () => retry(fn, { maxAttempts: 3, budget, backoff });
    },
    [C_RETRY],
  ],
  [
    'breakwater retry(fn, options) hoisted options',
    () => {
      const { retry } = bw();
      const options = retryFields();
      return () => retry(fn, options);
    },
    [C_RETRY],
  ],
  [
    'breakwater retry(fn, { budget }) inline',
    () => {
      const { retry } = bw();
      const { budget } = retryFields();
      return () => retry(fn, { budget });
    },
    [C_RETRY],
  ],
  [
    'breakwater RetryPolicy.execute(fn)',
    () => {
      const policy = new (bw().RetryPolicy)(retryFields());
      return () => policy.execute(fn);
    },
    [C_RETRY],
  ],
  [
    C_RETRY,
    () => {
      const c = cockatiel();
      const policy = c.retry(c.handleAll, { maxAttempts: 3, backoff: new c.ExponentialBackoff() });
      return () => policy.execute(fn);
    },
    [],
  ],
  [
    'breakwater breaker.execute(fn)',
    () => {
      const breaker = new (bw().CircuitBreaker)({ consecutiveFailures: 5 });
      return () => breaker.execute(fn);
    },
    [C_BREAKER, O_FIRE],
  ],
  [
    C_BREAKER,
    () => {
      const c = cockatiel();
      const breaker = c.circuitBreaker(c.handleAll, { halfOpenAfter: 10_000, breaker: new c.ConsecutiveBreaker(5) });
      return () => breaker.execute(fn);
    },
    [],
  ],
  [
    O_FIRE,
    () => {
      const Opossum = require('opossum');
      const breaker = new Opossum(fn, { timeout: false, resetTimeout: 10_000 });
      return () => breaker.fire();
    },
    [],
  ],
  [
    'breakwater limit.run(fn)',
    () => {
      const limit = new (bw().ConcurrencyLimit)({ maxConcurrent: 10, maxQueued: 0 });
      return () => limit.run(fn);
    },
    [C_BULKHEAD],
  ],
  [
    C_BULKHEAD,
    () => {
      const bulkhead = cockatiel().bulkhead(10, 0);
      return () => bulkhead.execute(fn);
    },
    [],
  ],
];

/** [wall-clock ns per call, CPU ns per call (all of the process's threads, GC included)]. */
async function measure(call, n) {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await call();
  const wall = Number(process.hrtime.bigint() - start) / n;
  const used = process.cpuUsage(cpu);
  return [wall, ((used.user + used.system) * 1000) / n];
}

if (worker !== undefined) {
  // A variant's process: warm up, then measure whenever the parent asks.
  const call = variants[Number(worker)][1]();
  await measure(call, Math.min(iterations, 50_000));
  process.on('message', async (n) => process.send(await measure(call, n)));
  process.send('ready');
} else {
  await main();
}

function shuffle(list) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The next message of `child`. */
function reply(child) {
  return new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`a bench worker exited with ${code}`)));
  });
}

async function main() {
  const load = () => loadavg()[0].toFixed(2);
  const loadBefore = load();
  const self = fileURLToPath(import.meta.url);
  const children = [];
  // Started and warmed up one at a time, so that warm-ups do not compete.
  for (let i = 0; i < variants.length; i++) {
    const child = fork(self, ['--worker', String(i), '--iterations', String(iterations)], { stdio: 'inherit' });
    await reply(child);
    child.removeAllListeners('exit');
    children.push(child);
  }
  const samples = variants.map(() => []);
  const cpuSamples = variants.map(() => []);
  try {
    for (let round = 0; round < rounds; round++) {
      for (const i of shuffle(variants.map((_, j) => j))) {
        const answer = reply(children[i]);
        children[i].send(iterations);
        const [wall, cpu] = await answer;
        samples[i].push(wall);
        cpuSamples[i].push(cpu);
        children[i].removeAllListeners('exit');
      }
    }
  } finally {
    for (const child of children) child.kill();
  }
  const medians = Object.fromEntries(variants.map(([name], i) => [name, median(samples[i])]));
  const cpuMedians = Object.fromEntries(variants.map(([name], i) => [name, median(cpuSamples[i])]));
  console.log(
    `node ${process.version}, ${rounds} rounds x ${iterations} calls, one process per variant, ` +
      `medians; 1-min load average ${loadBefore} before, ${load()} after`,
  );
  const table = (title, m) => {
    console.log(title);
    for (const [name, , anchors] of variants) {
      const ns = m[name];
      const ratios = anchors.map((anchor) => `${(ns / m[anchor]).toFixed(2)}x ${anchor.split(' ')[0]}`).join(', ');
      const overBare = (ns / m[BARE]).toFixed(1);
      console.log(`  ${name.padEnd(64)} ${ns.toFixed(0).padStart(6)} ns  ${overBare.padStart(5)}x bare${ratios ? `  ${ratios}` : ''}`);
    }
  };
  table('wall-clock ns per call:', medians);
  // CPU time of the variant's own process: what other processes' load disturbs least.
  table('CPU ns per call (the process, all threads):', cpuMedians);
  if (args.includes('--json')) console.log(JSON.stringify({ wall: medians, cpu: cpuMedians }));
}
