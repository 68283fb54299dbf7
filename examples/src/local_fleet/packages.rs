//! The apps' code and their dependencies: two tiny npm packages built as
//! tarballs in memory (no network), imported into each host's
//! node-modules-alloc store, and the files of one app directory.

use std::io;
use std::path::Path;

use node_modules_alloc::integrity::Integrity;
use node_modules_alloc::store::Store;

/// A package: name, version, files under `package/`.
struct Package {
    name: &'static str,
    version: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const PACKAGES: &[Package] = &[
    Package {
        name: "bw-greeting",
        version: "1.0.0",
        files: &[
            (
                "package.json",
                r#"{"name":"bw-greeting","version":"1.0.0","main":"index.js"}"#,
            ),
            (
                "index.js",
                "'use strict';\nmodule.exports = (app, host) => `hello from ${app} on ${host}`;\n",
            ),
        ],
    },
    Package {
        name: "bw-healthz",
        version: "1.0.0",
        files: &[
            (
                "package.json",
                r#"{"name":"bw-healthz","version":"1.0.0","main":"index.js"}"#,
            ),
            (
                "index.js",
                "'use strict';\nconst started = Date.now();\nmodule.exports = (app, host) => JSON.stringify({ ok: true, app, host, uptime_ms: Date.now() - started });\n",
            ),
        ],
    },
];

/// The server every app runs: `/healthz` and `/`, on an ephemeral loopback
/// port it prints as `listening PORT`. `BW_FAIL_START=1` makes it exit at
/// once (a start failure, for tests).
pub const SERVER_JS: &str = r"'use strict';
const http = require('http');
const greet = require('bw-greeting');
const healthz = require('bw-healthz');
const app = process.env.BW_APP || 'app';
const host = process.env.BW_HOST || 'host';
if (process.env.BW_FAIL_START === '1') {
  console.error(`${app}: simulated start failure on ${host}`);
  process.exit(1);
}
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(healthz(app, host));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(greet(app, host) + '\n');
});
server.keepAliveTimeout = 1000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
";

/// The fixture packages as tarballs, with their integrities.
#[derive(Debug, Clone)]
pub struct Fixtures {
    tarballs: Vec<(String, Vec<u8>)>,
    lockfile: String,
}

impl Fixtures {
    /// Builds the tarballs and the lockfile every app uses.
    pub fn build() -> io::Result<Self> {
        let mut tarballs = Vec::with_capacity(PACKAGES.len());
        let mut entries = Vec::with_capacity(PACKAGES.len());
        let mut deps = Vec::with_capacity(PACKAGES.len());
        for package in PACKAGES {
            let tgz = tarball(package)?;
            let integrity = Integrity::sha512_of(&tgz);
            entries.push(format!(
                r#""node_modules/{name}": {{"version": "{version}", "integrity": "{integrity}"}}"#,
                name = package.name,
                version = package.version,
            ));
            deps.push(format!(r#""{}": "{}""#, package.name, package.version));
            tarballs.push((format!("{}-{}.tgz", package.name, package.version), tgz));
        }
        let lockfile = format!(
            r#"{{"name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {{"": {{"name": "app", "version": "1.0.0", "dependencies": {{{deps}}}}}, {entries}}}}}"#,
            deps = deps.join(", "),
            entries = entries.join(", "),
        );
        Ok(Fixtures { tarballs, lockfile })
    }

    /// Imports every tarball into `store`.
    pub fn import(&self, store: &Store) -> node_modules_alloc::Result<()> {
        for (name, bytes) in &self.tarballs {
            store.import_tarball_bytes(name, bytes, None, None)?;
        }
        Ok(())
    }

    /// Writes an app's `package.json`, `package-lock.json` and `server.js`
    /// into `dir` (created if needed).
    pub fn write_app(&self, dir: &Path, app: &str) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let deps: Vec<String> = PACKAGES
            .iter()
            .map(|p| format!(r#""{}": "{}""#, p.name, p.version))
            .collect();
        std::fs::write(
            dir.join("package.json"),
            format!(
                r#"{{"name": "app", "version": "1.0.0", "private": true, "description": "{app}", "main": "server.js", "dependencies": {{{}}}}}"#,
                deps.join(", ")
            ),
        )?;
        std::fs::write(dir.join("package-lock.json"), &self.lockfile)?;
        std::fs::write(dir.join("server.js"), SERVER_JS)
    }
}

fn tarball(package: &Package) -> io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, data) in package.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, format!("package/{path}"), data.as_bytes())?;
    }
    builder.into_inner()?.finish()
}
