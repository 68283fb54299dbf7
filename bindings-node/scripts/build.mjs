// Builds the native addon from source with the napi-rs CLI (`@napi-rs/cli`, a devDependency):
// `breakwater.<platform>.node` next to index.js, and the generated loader `binding.js` (with the
// native layer's types in `binding.d.ts`) that picks the binary for this platform, either that
// local file or the installed platform package (`breakwater-<platform>`).
//
//   node scripts/build.mjs            # debug build (fast to compile)
//   node scripts/build.mjs --release  # optimized build
//
// No prebuilt binary is ever downloaded. `binding.js` and `binding.d.ts` are checked in; the
// test command fails when a build changes them (they are generated from the Rust definitions).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const release = process.argv.includes('--release');
const napi = join(packageDir, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');

const args = [
  napi,
  'build',
  '--platform',
  '--manifest-path',
  'Cargo.toml',
  '--output-dir',
  '.',
  '--js',
  'binding.js',
  '--dts',
  'binding.d.ts',
];
if (release) args.push('--release');
process.stderr.write(`building the addon (${release ? 'release' : 'debug'}): napi ${args.slice(1).join(' ')}\n`);
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: 'inherit' });
if (result.error) {
  process.stderr.write(`error: could not run the napi-rs CLI (${result.error.message}); run \`npm ci\` first\n`);
  process.exit(1);
}
process.exit(result.status ?? 1);
