// The Node example must run against the built addon and exit by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('examples/node/retrying-proxy.mjs runs a bounded load and exits by itself', { timeout: 120_000 }, async (t) => {
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(process.execPath, [join(root, 'examples/node/retrying-proxy.mjs')], { timeout: 110_000 }, (err, out, errOut) =>
      err ? reject(Object.assign(err, { stderr: errOut })) : resolve({ stdout: out }),
    );
  });
  for (const line of stdout.trim().split('\n')) t.diagnostic(line);
  assert.match(stdout, /retry budget: \d+ deposits, \d+ retries granted/);
  assert.match(stdout, /breaker: [1-9]\d* trip\(s\)/, 'the outage trips the breaker');
  const recovered = stdout.match(/recovered\s+(\d+)\s+(\d+)/);
  assert.ok(recovered && Number(recovered[2]) > 0, 'requests succeed again after the recovery');
});
