'use strict';
// Loads the native addon through the loader the napi-rs CLI generates (`binding.js`): it picks
// `breakwater.<platform>.node` next to the package (a source build) or the installed platform
// package `breakwater-<platform>` (an npm install).
const { join } = require('node:path');
const { existsSync, readFileSync } = require('node:fs');

const packageDir = join(__dirname, '..');

const ARCH = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' };

/** `x86_64-unknown-linux-gnu` -> `linux-x64-gnu`, as napi-rs names platform packages. */
function platformOf(triple) {
  const [arch, ...rest] = triple.split('-');
  const tail = rest.join('-');
  const cpu = ARCH[arch] ?? arch;
  if (tail.includes('apple-darwin')) return `darwin-${cpu}`;
  if (tail.includes('windows')) return `win32-${cpu}-${rest[rest.length - 1]}`;
  if (tail.includes('linux')) return `linux-${cpu}-${rest[rest.length - 1]}`;
  return `${tail}-${cpu}`;
}

/** The platforms this version builds (`napi.targets`): `linux-x64-gnu`, `darwin-arm64`, ... */
function supportedPlatforms() {
  try {
    const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
    return (manifest.napi?.targets ?? []).map(platformOf).sort();
  } catch {
    return [];
  }
}

/** This process's platform, spelled as the platform packages are. */
function currentPlatform() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'win32') return `${base}-msvc`;
  if (process.platform !== 'linux') return base;
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
  const glibc = report?.header?.glibcVersionRuntime;
  return `${base}-${glibc ? 'gnu' : 'musl'}`;
}

function missing(cause) {
  const platform = currentPlatform();
  const supported = supportedPlatforms();
  const sourceCheckout = existsSync(join(packageDir, 'Cargo.toml'));
  const hint = sourceCheckout
    ? 'this is a source checkout: run `npm run build` in the package directory'
    : supported.includes(platform)
      ? `reinstall so that the optional dependency breakwater-${platform} is installed ` +
        '(it is skipped by `--no-optional`/`--omit=optional`)'
      : `no prebuilt binary exists for ${platform}; supported platforms: ${supported.join(', ')}`;
  const err = new Error(
    `breakwater: the native addon for ${platform} could not be loaded; ${hint} (${cause?.message ?? cause})`,
    { cause },
  );
  err.code = 'ERR_BREAKWATER_NATIVE_MISSING';
  err.platform = platform;
  err.supportedPlatforms = supported;
  return err;
}

let native;
try {
  native = require(join(packageDir, 'binding.js'));
} catch (cause) {
  throw missing(cause);
}

module.exports = native;
