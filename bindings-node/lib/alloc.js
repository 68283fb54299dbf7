'use strict';
// `Allocator`: node-modules-alloc's crash-safe, load-shedding node_modules
// allocator. Every operation runs on the addon's tokio runtime and resolves
// to a tagged result; this wrapper turns failures into coded errors.
const { limits } = require('./constants');
const native = require('./native');
const v = require('./validate');
const { codedError, rangeError } = require('./errors');

const KEYS = [
  'storeDir', 'linkMode', 'maxConcurrent', 'maxQueued', 'queueTimeoutMs', 'minFreeBytes',
  'ignoreScripts', 'includeDev', 'includeOptional', 'os', 'cpu', 'libc',
];
const LINK_MODES = ['auto', 'hardlink', 'reflink', 'copy'];

function unwrap(result) {
  if (result.error) {
    const { code, message, kind, retryAfterMs, missing } = result.error;
    if (kind === 'range') throw rangeError(message);
    const extra = {};
    if (retryAfterMs !== undefined && retryAfterMs !== null) extra.retryAfterMs = retryAfterMs;
    if (missing !== undefined && missing !== null) extra.missing = missing;
    throw codedError(code, message, extra);
  }
  return result.ok;
}

// `true`/`false`, or the names of the packages whose build may be skipped.
function ignoreScripts(value) {
  if (value === undefined || typeof value === 'boolean') return { all: value === true, packages: [] };
  if (!Array.isArray(value)) {
    throw v.typeError(`\`ignoreScripts\` must be a boolean or an array of package names, got ${v.describe(value)}`);
  }
  value.forEach((name, i) => v.string(`ignoreScripts[${i}]`, name, { optional: false }));
  return { all: false, packages: value };
}

function path(name, value) {
  v.string(name, value, { optional: false });
  if (value.length === 0) throw rangeError(`\`${name}\` must not be empty`);
  if (value.includes('\0')) throw rangeError(`\`${name}\` must not contain NUL bytes`);
  return value;
}

/**
 * Allocates `node_modules` trees from a content-addressed store: hardlinked
 * (or reflinked, or copied) into a staging directory, verified, published
 * with one atomic rename; identical lockfiles materialize once; a bounded
 * queue sheds load with ERR_BREAKWATER_OVERLOADED and `retryAfterMs`.
 */
class Allocator {
  #native;

  constructor(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, KEYS);
    const checked = {
      storeDir: path('storeDir', o.storeDir),
      linkMode: v.string('linkMode', o.linkMode, { oneOf: LINK_MODES }),
      maxConcurrent: v.number('maxConcurrent', o.maxConcurrent, { min: 1, max: limits.maxU31, integer: true }),
      maxQueued: v.number('maxQueued', o.maxQueued, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
      queueTimeoutMs:
        o.queueTimeoutMs === null ? undefined : v.number('queueTimeoutMs', o.queueTimeoutMs, { min: 0, max: Number.MAX_SAFE_INTEGER }),
      noQueueTimeout: o.queueTimeoutMs === null,
      minFreeBytes: v.number('minFreeBytes', o.minFreeBytes, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
      ignoreScripts: ignoreScripts(o.ignoreScripts),
      includeDev: v.boolean('includeDev', o.includeDev),
      includeOptional: v.boolean('includeOptional', o.includeOptional),
      os: v.string('os', o.os),
      cpu: v.string('cpu', o.cpu),
      libc: v.string('libc', o.libc, { oneOf: ['glibc', 'musl'] }),
    };
    this.#native = new native.NativeAllocator(checked);
  }

  /**
   * Allocates `appDir/node_modules` for `lockfile` (package-lock.json v1/v2/v3,
   * or pnpm-lock.yaml v9).
   * Resolves with `{ nodeModules, outcome, packages, files, ... }`.
   */
  async allocate(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, ['lockfile', 'appDir']);
    const lockfile = path('lockfile', o.lockfile);
    const appDir = path('appDir', o.appDir);
    return unwrap(await this.#native.allocate(lockfile, appDir));
  }

  /** Imports `.tgz` files, directories of them, or an npm cache into the store. */
  async import(paths) {
    const list = typeof paths === 'string' ? [paths] : paths;
    if (!Array.isArray(list)) v.string('paths', paths, { optional: false });
    list.forEach((p, i) => path(`paths[${i}]`, p));
    return unwrap(await this.#native.import(list));
  }

  /** Verifies an app's tree; with `repair`, rebuilds what is damaged. */
  async verify(options) {
    const o = v.options('options', options);
    v.knownKeys('options', o, ['appDir', 'repair', 'lockfile']);
    const appDir = path('appDir', o.appDir);
    const repair = v.boolean('repair', o.repair) ?? false;
    const lockfile = o.lockfile === undefined ? undefined : path('lockfile', o.lockfile);
    return unwrap(await this.#native.verify(appDir, repair, lockfile));
  }

  /** Counters and gauges. */
  stats() {
    return this.#native.stats();
  }
}

module.exports = { Allocator };
