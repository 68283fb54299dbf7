// Builds the native addon from source with cargo and installs it next to
// index.js as `breakwater.node`. No prebuilt binary is ever downloaded.
//
//   node scripts/build.mjs            # debug build (fast to compile)
//   node scripts/build.mjs --release  # optimized build
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = join(here, '..');
const release = process.argv.includes('--release');

const cargo = process.env.CARGO ?? 'cargo';
const args = ['build', '-p', 'bindings-node', '--lib'];
if (release) args.push('--release');
process.stderr.write(`building the addon: ${cargo} ${args.join(' ')}\n`);
execFileSync(cargo, args, { cwd: packageDir, stdio: 'inherit' });

const metadata = JSON.parse(
  execFileSync(cargo, ['metadata', '--format-version', '1', '--no-deps'], {
    cwd: packageDir,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  }),
);
const profileDir = join(metadata.target_directory, release ? 'release' : 'debug');
const candidates = {
  linux: 'libbindings_node.so',
  darwin: 'libbindings_node.dylib',
  win32: 'bindings_node.dll',
};
const libName = candidates[process.platform] ?? candidates.linux;
const built = join(profileDir, libName);
if (!existsSync(built)) {
  process.stderr.write(`error: cargo finished but ${built} does not exist\n`);
  process.exit(1);
}
// Copy then rename, so a process loading the addon never sees half a file.
const target = join(packageDir, 'breakwater.node');
const staging = `${target}.tmp-${process.pid}`;
copyFileSync(built, staging);
renameSync(staging, target);
process.stderr.write(`installed ${target} (${release ? 'release' : 'debug'})\n`);
