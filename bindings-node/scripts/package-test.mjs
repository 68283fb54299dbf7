// Packs `breakwater` and this platform's binary package (`breakwater-<platform>`), installs both
// tarballs into a new project with no Rust toolchain on PATH, and runs scripts that use every
// export through CommonJS `require` and ESM `import` (scripts/package-check/). Then removes the
// platform package and checks the error a user without a binary gets.
//
//   npm run build && npm run test:package
//
// Needs the addon built for this platform first (`npm run build` or `build:debug`).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync,
  readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));

function fail(message) {
  process.stderr.write(`package test: ${message}\n`);
  process.exit(1);
}

function onPath(name, path) {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return null;
}

function platform() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'win32') return `${base}-msvc`;
  if (process.platform !== 'linux') return base;
  return `${base}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

const npmCli = process.env.npm_execpath ?? (onPath('npm', process.env.PATH ?? '') && realpathSync(onPath('npm', process.env.PATH)));
if (!npmCli) fail('cannot find npm');

function run(cmd, args, { cwd, env = process.env, allowFailure = false } = {}) {
  const result = spawnSync(cmd, args, { cwd, env, encoding: 'utf8' });
  if (!allowFailure && result.status !== 0) {
    fail(`\`${[cmd, ...args].join(' ')}\` in ${cwd} exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

function npm(args, options) {
  return run(process.execPath, [npmCli, ...args], options);
}

const target = platform();
const binary = `breakwater.${target}.node`;
if (!existsSync(join(packageDir, binary))) fail(`${binary} is not built: run \`npm run build\` first`);
const platformDir = join(packageDir, 'npm', target);
if (!existsSync(join(platformDir, 'package.json'))) fail(`npm/${target} is missing: ${target} is not in napi.targets`);

const work = mkdtempSync(join(tmpdir(), 'breakwater-package-'));
try {
  // 1. The platform package: its manifest plus the binary, as a publish step would assemble it.
  const stage = join(work, 'platform');
  mkdirSync(stage);
  copyFileSync(join(platformDir, 'package.json'), join(stage, 'package.json'));
  copyFileSync(join(packageDir, binary), join(stage, binary));
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  npm(['pack', '--silent', '--pack-destination', tarballs], { cwd: stage });
  // 2. The main package as a publish step assembles it (`napi pre-publish`): the packed files,
  // plus `optionalDependencies` on every platform package. They are not in the checked-in
  // package.json: the platform packages do not exist before a release, and `npm ci` in this
  // repository must not look for them.
  const packed = join(work, 'packed');
  mkdirSync(packed);
  npm(['pack', '--silent', '--pack-destination', packed], { cwd: packageDir });
  run('tar', ['-xzf', join(packed, `breakwater-${manifest.version}.tgz`), '-C', packed]);
  const publishDir = join(packed, 'package');
  const published = JSON.parse(readFileSync(join(publishDir, 'package.json'), 'utf8'));
  published.optionalDependencies = Object.fromEntries(
    readdirSync(join(packageDir, 'npm')).sort().map((dir) => {
      const platformManifest = JSON.parse(readFileSync(join(packageDir, 'npm', dir, 'package.json'), 'utf8'));
      return [platformManifest.name, platformManifest.version];
    }),
  );
  writeFileSync(join(publishDir, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
  npm(['pack', '--silent', '--pack-destination', tarballs], { cwd: publishDir });
  const main = join(tarballs, `breakwater-${manifest.version}.tgz`);
  const native = join(tarballs, `breakwater-${target}-${manifest.version}.tgz`);
  for (const file of [main, native]) if (!existsSync(file)) fail(`npm pack did not write ${file}`);

  // The main tarball carries JS and types only: no binary, no Rust sources.
  const listing = run('tar', ['-tzf', main]).stdout.split('\n').filter(Boolean);
  const leaked = listing.filter((f) => f.endsWith('.node') || f.endsWith('.rs') || f.endsWith('Cargo.toml'));
  if (leaked.length > 0) fail(`the main tarball contains ${leaked.join(', ')}`);

  // 3. A PATH with node and npm but no cargo/rustc.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  const path = [bin, ...(process.env.PATH ?? '').split(delimiter).filter(
    (dir) => dir && !onPath('cargo', dir) && !onPath('rustc', dir),
  )].join(delimiter);
  if (onPath('cargo', path) || onPath('rustc', path)) fail('could not strip cargo/rustc from PATH');
  const env = { ...process.env, PATH: path };
  for (const key of Object.keys(env)) if (key.startsWith('CARGO') || key.startsWith('RUSTUP')) delete env[key];

  // 4. Install both tarballs into a new project. `--offline`: the other platforms' optional
  // packages are never fetched (npm skips optional dependencies it cannot get).
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  npm(['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', main, native], { cwd: app, env });
  const installed = readdirSync(join(app, 'node_modules')).sort();
  if (!installed.includes('breakwater') || !installed.includes(`breakwater-${target}`)) {
    fail(`installed ${installed.join(', ')}: expected breakwater and breakwater-${target}`);
  }

  // 5. Every export, CommonJS and ESM.
  for (const file of readdirSync(join(packageDir, 'scripts', 'package-check'))) {
    copyFileSync(join(packageDir, 'scripts', 'package-check', file), join(app, file));
  }
  for (const script of ['use-cjs.cjs', 'use-esm.mjs']) {
    const out = run(process.execPath, [script], { cwd: app, env });
    process.stdout.write(`package test: ${script}: ${out.stdout.trim()}\n`);
  }

  // 6. Without the platform package: an error that names the platform.
  rmSync(join(app, 'node_modules', `breakwater-${target}`), { recursive: true });
  const missing = run(process.execPath, ['-e', `
    try { require('breakwater'); console.log('loaded'); }
    catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message, platform: err.platform, supported: err.supportedPlatforms })); }
  `], { cwd: app, env });
  const error = JSON.parse(missing.stdout);
  if (error.code !== 'ERR_BREAKWATER_NATIVE_MISSING' || error.platform !== target || !error.message.includes(target)) {
    fail(`unexpected error without the platform package: ${missing.stdout}`);
  }
  if (!error.supported.includes(target) || error.supported.length !== manifest.napi.targets.length) {
    fail(`the error lists the wrong platforms: ${error.supported}`);
  }
  process.stdout.write(`package test: without the binary: ${error.message.split(' (')[0]}\n`);
  process.stdout.write('package test: ok\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
