import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator, codes } from '../index.js';
import { tgz, integrity } from './tarball.mjs';
import { assertInvalid } from './helpers.mjs';

function workspace(t) {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-alloc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tarballs = join(dir, 'tarballs');
  mkdirSync(tarballs);
  return { dir, tarballs };
}

const packages = {
  'left-pad': {
    version: '1.3.0',
    files: {
      'package/package.json': JSON.stringify({ name: 'left-pad', version: '1.3.0', main: 'index.js' }),
      'package/index.js': "module.exports = (s, n) => String(s).padStart(n);\n",
      'package/lib/util.js': 'exports.x = 1;\n',
    },
  },
  hello: {
    version: '2.0.0',
    bin: { hello: 'cli.js' },
    files: {
      'package/package.json': JSON.stringify({ name: 'hello', version: '2.0.0', bin: { hello: 'cli.js' } }),
      'package/cli.js': "#!/usr/bin/env node\nconsole.log('hello');\n",
    },
  },
};

/** Writes the tarballs and a package-lock.json v3 naming them; returns the lockfile path. */
function prepare({ dir, tarballs }, names = Object.keys(packages), extra = {}) {
  const lock = { name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'app' } } };
  for (const name of names) {
    const pkg = packages[name];
    const bytes = tgz(pkg.files);
    writeFileSync(join(tarballs, `${name}-${pkg.version}.tgz`), bytes);
    lock.packages[`node_modules/${name}`] = {
      version: pkg.version,
      integrity: integrity(bytes),
      ...(pkg.bin ? { bin: pkg.bin } : {}),
    };
  }
  Object.assign(lock.packages, extra);
  const lockfile = join(dir, 'package-lock.json');
  writeFileSync(lockfile, JSON.stringify(lock, null, 2));
  return lockfile;
}

test('imports generated tarballs and allocates, clones and reuses trees', async (t) => {
  const ws = workspace(t);
  const lockfile = prepare(ws);
  const allocator = new Allocator({ storeDir: join(ws.dir, 'store'), minFreeBytes: 0 });

  const imported = await allocator.import([ws.tarballs]);
  assert.deepEqual(imported.map((p) => p.name).sort(), ['hello', 'left-pad']);
  assert.ok(imported.every((p) => p.integrity.startsWith('sha512-') && !p.alreadyPresent));
  const again = await allocator.import(ws.tarballs);
  assert.ok(again.every((p) => p.alreadyPresent), 'importing twice stores once');

  const app1 = join(ws.dir, 'app1');
  const first = await allocator.allocate({ lockfile, appDir: app1 });
  assert.equal(first.outcome, 'materialized');
  assert.equal(first.packages, 2);
  assert.equal(first.nodeModules, join(app1, 'node_modules'));
  assert.equal(readFileSync(join(app1, 'node_modules/left-pad/index.js'), 'utf8'), packages['left-pad'].files['package/index.js']);
  assert.ok(existsSync(join(app1, 'node_modules/left-pad/lib/util.js')));
  assert.ok(existsSync(join(app1, 'node_modules/.bin/hello')));
  assert.ok(statSync(join(app1, 'node_modules/hello/cli.js')).mode & 0o100, 'the bin is executable');

  const app2 = join(ws.dir, 'app2');
  assert.equal((await allocator.allocate({ lockfile, appDir: app2 })).outcome, 'cloned');
  assert.equal((await allocator.allocate({ lockfile, appDir: app1 })).outcome, 'reused');

  const report = await allocator.verify({ appDir: app1 });
  assert.equal(report.ok, true, report.problems.join('; '));
  const stats = allocator.stats();
  assert.equal(stats.templatesBuilt, 1);
  assert.equal(stats.reused, 1);
});

test('concurrent allocations of one lockfile materialize it once', async (t) => {
  const ws = workspace(t);
  const lockfile = prepare(ws);
  const allocator = new Allocator({ storeDir: join(ws.dir, 'store'), minFreeBytes: 0 });
  await allocator.import([ws.tarballs]);
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) => allocator.allocate({ lockfile, appDir: join(ws.dir, `app${i}`) })),
  );
  assert.equal(results.filter((r) => r.outcome === 'materialized').length, 1);
  assert.equal(allocator.stats().templatesBuilt, 1);
});

test('a package missing from the store fails with PACKAGES_MISSING naming it', async (t) => {
  const ws = workspace(t);
  prepare(ws, ['left-pad']);
  const lockfile = prepare(ws, ['left-pad'], {
    'node_modules/ghost': { version: '0.0.1', integrity: integrity(Buffer.from('not imported')) },
  });
  const allocator = new Allocator({ storeDir: join(ws.dir, 'store'), minFreeBytes: 0 });
  await allocator.import([ws.tarballs]);
  await assert.rejects(allocator.allocate({ lockfile, appDir: join(ws.dir, 'app') }), (err) => {
    assert.equal(err.code, codes.PACKAGES_MISSING);
    assert.deepEqual(err.missing, ['node_modules/ghost']);
    return true;
  });
  assert.equal(existsSync(join(ws.dir, 'app/node_modules')), false, 'no partial tree is published');
});

test('a hostile tarball is rejected on import', async (t) => {
  const ws = workspace(t);
  writeFileSync(join(ws.tarballs, 'evil-1.0.0.tgz'), tgz({ 'package/package.json': '{}', '../../evil.js': 'pwned' }));
  const allocator = new Allocator({ storeDir: join(ws.dir, 'store'), minFreeBytes: 0 });
  await assert.rejects(allocator.import([ws.tarballs]), { code: codes.TARBALL_REJECTED });
  assert.equal(existsSync(join(ws.dir, 'evil.js')), false);
});

test('a malformed lockfile fails with LOCKFILE_INVALID', async (t) => {
  const ws = workspace(t);
  const lockfile = join(ws.dir, 'package-lock.json');
  writeFileSync(lockfile, '{ "lockfileVersion": 3, "packages": ');
  const allocator = new Allocator({ storeDir: join(ws.dir, 'store'), minFreeBytes: 0 });
  await assert.rejects(allocator.allocate({ lockfile, appDir: join(ws.dir, 'app') }), { code: codes.LOCKFILE_INVALID });
});

test('invalid allocator arguments are TypeErrors or RangeErrors naming the option', async (t) => {
  const ws = workspace(t);
  const storeDir = join(ws.dir, 'store');
  assertInvalid(() => new Allocator(), TypeError, 'storeDir');
  assertInvalid(() => new Allocator({ storeDir: 42 }), TypeError, 'storeDir');
  assertInvalid(() => new Allocator({ storeDir: '' }), RangeError, 'storeDir');
  assertInvalid(() => new Allocator({ storeDir, linkMode: 'symlink' }), RangeError, 'linkMode');
  assertInvalid(() => new Allocator({ storeDir, maxConcurrent: 0 }), RangeError, 'maxConcurrent');
  assertInvalid(() => new Allocator({ storeDir, maxQueued: -1 }), RangeError, 'maxQueued');
  assertInvalid(() => new Allocator({ storeDir, queueTimeoutMs: 0 }), RangeError, 'queueTimeoutMs');
  assertInvalid(() => new Allocator({ storeDir, minFreeBytes: -1 }), RangeError, 'minFreeBytes');
  assertInvalid(() => new Allocator({ storeDir, store: 'x' }), TypeError, 'store');
  const allocator = new Allocator({ storeDir, minFreeBytes: 0 });
  await assert.rejects(allocator.allocate(), { name: 'TypeError', code: codes.INVALID_ARG });
  await assert.rejects(allocator.allocate({ lockfile: 1, appDir: 'x' }), { name: 'TypeError', code: codes.INVALID_ARG });
  await assert.rejects(allocator.allocate({ lockfile: 'x', appDir: '' }), { name: 'RangeError', code: codes.INVALID_ARG });
  await assert.rejects(allocator.import([1]), { name: 'TypeError', code: codes.INVALID_ARG });
  await assert.rejects(allocator.verify({ appDir: 'x', repair: 'yes' }), { name: 'TypeError', code: codes.INVALID_ARG });
});

test('ignoreScripts, platform and selection options reach the allocator', async (t) => {
  const ws = workspace(t);
  const native = {
    version: '1.0.0',
    files: {
      'package/package.json': JSON.stringify({ name: 'native', version: '1.0.0', scripts: { install: 'node-gyp rebuild' } }),
      'package/index.js': 'module.exports = 1;\n',
    },
  };
  const bytes = tgz(native.files);
  writeFileSync(join(ws.tarballs, 'native-1.0.0.tgz'), bytes);
  const lockfile = prepare(ws, ['left-pad'], {
    'node_modules/native': { version: '1.0.0', integrity: integrity(bytes), hasInstallScript: true, dev: true },
  });
  const storeDir = join(ws.dir, 'store');
  const strict = new Allocator({ storeDir, minFreeBytes: 0 });
  await strict.import(ws.tarballs);
  await assert.rejects(strict.allocate({ lockfile, appDir: join(ws.dir, 'a') }), { code: codes.BUILD_REQUIRED });

  const lenient = new Allocator({ storeDir, minFreeBytes: 0, ignoreScripts: ['native'] });
  const done = await lenient.allocate({ lockfile, appDir: join(ws.dir, 'b') });
  assert.deepEqual(done.ignoredScripts.length, 1);
  assert.match(done.ignoredScripts[0], /^native@1\.0\.0 at node_modules\/native/);

  // Without dev packages the build is not needed at all.
  const prod = new Allocator({ storeDir, minFreeBytes: 0, includeDev: false });
  const lean = await prod.allocate({ lockfile, appDir: join(ws.dir, 'c') });
  assert.equal(lean.packages, 1);
  assert.deepEqual(lean.ignoredScripts, []);

  // A platform that does not fit a required package.
  const musl = join(ws.dir, 'musl');
  mkdirSync(musl);
  const only = prepare({ dir: musl, tarballs: ws.tarballs }, ['left-pad']);
  const lock = JSON.parse(readFileSync(only, 'utf8'));
  lock.packages['node_modules/left-pad'].libc = ['musl'];
  writeFileSync(only, JSON.stringify(lock));
  const glibc = new Allocator({ storeDir, minFreeBytes: 0, os: 'linux', cpu: 'x64', libc: 'glibc' });
  await assert.rejects(glibc.allocate({ lockfile: only, appDir: join(musl, 'app') }), { code: codes.PLATFORM_MISMATCH });

  assertInvalid(() => new Allocator({ storeDir, libc: 'bionic' }), RangeError, 'libc');
  assertInvalid(() => new Allocator({ storeDir, ignoreScripts: 'all' }), TypeError, 'ignoreScripts');
  assertInvalid(() => new Allocator({ storeDir, ignoreScripts: [1] }), TypeError, 'ignoreScripts[0]');
  assertInvalid(() => new Allocator({ storeDir, os: 'Linux!' }), RangeError, 'os');
});
