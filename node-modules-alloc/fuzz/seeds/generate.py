#!/usr/bin/env python3
"""Writes the committed seed corpora of the node-modules-alloc fuzz targets.

Run from anywhere: `python3 node-modules-alloc/fuzz/seeds/generate.py`. Deterministic (no
timestamps), standard library only. A few small valid and invalid inputs per target; the
fuzzer's own corpus grows under target/fuzz-corpus/, never here.
"""
import gzip
import io
import json
import pathlib
import shutil
import tarfile

HERE = pathlib.Path(__file__).resolve().parent


def tar(entries):
    """entries: (name, kind, data_or_linkname, mode); kinds: file, dir, symlink, hardlink, fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = mode
            info.uname = info.gname = ""
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    # tarfile pads to a 10 KiB record: keep the entries and the two zero end blocks only.
    end = len(raw.rstrip(b"\0"))
    end = (end + 511) // 512 * 512
    return raw[: end + 1024]


def pkg_json(**fields):
    return json.dumps(fields, separators=(",", ":"))


HELLO = [
    ("package/package.json", "file", pkg_json(name="hello", version="1.0.0", bin={"hello": "cli.js"}), 0o644),
    ("package/cli.js", "file", "#!/usr/bin/env node\nconsole.log('hello');\n", 0o755),
]


def import_tarball():
    # First byte: even = the bytes are the .tgz itself, odd = gzip-compressed by the target,
    # 3 = gzip-compressed after the target rewrote every tar header checksum.
    def raw(name, entries):
        return name, b"\x01" + tar(entries)

    def fixsum(name, entries):
        return name, b"\x03" + tar(entries)

    def tgz(name, entries):
        return name, b"\x00" + gzip.compress(tar(entries), mtime=0)

    return [
        tgz("valid-hello.tgz", HELLO),
        raw("valid-hello.tar", HELLO),
        fixsum("valid-hello-checksums-rewritten.tar", HELLO),
        raw("valid-links-and-dirs.tar", [
            ("package/", "dir", None, 0o755),
            ("package/package.json", "file", pkg_json(name="@scope/tool", version="2.0.0", bin="./bin/tool.js"), 0o644),
            ("package/bin/tool.js", "file", "require('../lib/a');\n", 0o644),
            ("package/lib/a.js", "file", "module.exports = 1;\n", 0o644),
            ("package/lib/link.js", "symlink", "./a.js", 0o777),
            ("package/copy.js", "hardlink", "package/lib/a.js", 0o644),
        ]),
        raw("valid-any-top-dir.tar", [("node-v1/index.js", "file", "x", 0o644), ("node-v1/README", "file", "", 0o644)]),
        raw("invalid-parent-component.tar", [("package/../evil.js", "file", "x", 0o644)]),
        raw("invalid-absolute.tar", [("/etc/evil", "file", "x", 0o644)]),
        raw("invalid-symlink-escape.tar", [("package/l", "symlink", "../../etc/passwd", 0o777)]),
        raw("invalid-hardlink-dangling.tar", [("package/h", "hardlink", "package/nope", 0o644)]),
        raw("invalid-fifo.tar", [("package/f", "fifo", None, 0o644)]),
        raw("invalid-through-symlink.tar", [
            ("package/d", "symlink", "lib", 0o777),
            ("package/d/x.js", "file", "x", 0o644),
        ]),
        fixsum("invalid-symlink-escape-checksums-rewritten.tar", [("package/l", "symlink", "../x", 0o777)]),
        ("invalid-not-gzip.bin", b"\x00not a gzip stream"),
        ("invalid-empty.bin", b""),
    ]


SRI = "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEQmvAVlFhTbEvJSKeG3nSMoYfTRPl5+ac4VBKQA/KV1lIw=="
SHA1 = "sha1-qUqP5cyxm6YcTAhz05Hph5gvu9M="


def lockfile():
    def lock(version, packages):
        return json.dumps({"name": "app", "lockfileVersion": version, "packages": {"": {"name": "app"}, **packages}}, indent=1)

    return [
        ("valid-v3.json", lock(3, {
            "node_modules/a": {"version": "1.0.0", "integrity": SRI, "bin": {"a": "./bin/a.js"}},
            "node_modules/a/node_modules/@s/b": {"integrity": SHA1, "optional": True, "peer": True, "os": ["linux", "!win32"], "cpu": ["x64"]},
            "node_modules/c": {"integrity": f"{SRI} {SHA1}", "dev": True},
            "node_modules/d": {"integrity": SRI, "devOptional": True},
            "node_modules/e/node_modules/f": {"inBundle": True},
            "node_modules/alias": {"name": "real-name", "integrity": SRI},
        })),
        ("valid-v2.json", lock(2, {"node_modules/left-pad": {"version": "1.3.0", "integrity": SRI}})),
        ("invalid-v1.json", json.dumps({"lockfileVersion": 1, "dependencies": {}})),
        ("valid-workspaces.json", lock(3, {
            "node_modules/ws": {"resolved": "packages/ws", "link": True},
            "packages/ws": {"name": "ws", "version": "1.0.0"},
            "node_modules/a": {"integrity": SRI},
        })),
        ("invalid-link.json", lock(3, {"node_modules/ws": {"resolved": "../outside", "link": True}})),
        ("invalid-workspace-node-modules.json", lock(3, {
            "node_modules/ws": {"resolved": "packages/ws", "link": True},
            "packages/ws/node_modules/a": {"integrity": SRI},
        })),
        ("invalid-path.json", lock(3, {"node_modules/a/../../etc": {"integrity": SRI}})),
        ("invalid-bin-name.json", lock(3, {"node_modules/a": {"integrity": SRI, "bin": {"../x": "a.js"}}})),
        ("invalid-missing-integrity.json", lock(3, {"node_modules/a": {"version": "1.0.0"}})),
        ("invalid-not-json.txt", "{\"lockfileVersion\": 3, "),
        # pnpm-lock.yaml v9: a real one (pnpm 9 wrote it for tests/fixtures/pnpm-app), nesting,
        # an alias, platform fields, and a cycle of conflicting versions (an error).
        ("v1-nested.json", V1_NESTED),
        ("valid-pnpm-v9.yaml", (HERE.parent.parent / "tests/fixtures/pnpm-app/pnpm-lock.yaml").read_text()),
        ("pnpm-nested.yaml", PNPM_NESTED.replace("SRI", SRI)),
        ("pnpm-cycle.yaml", PNPM_CYCLE.replace("SRI", SRI)),
        ("pnpm-workspaces.yaml", PNPM_WORKSPACES.replace("SRI", SRI)),
    ]


V1_NESTED = """{"lockfileVersion": 1, "requires": true, "dependencies": {"a": {"version": "1.0.0", "integrity": "sha1-qUqP5cyxm6YcTAhz05Hph5gvu9M=", "dependencies": {"@s/b": {"version": "npm:@r/b@2.0.0", "integrity": "sha1-qUqP5cyxm6YcTAhz05Hph5gvu9M=", "optional": true}, "c": {"version": "1.0.0", "bundled": true}}}}}"""

PNPM_NESTED = """lockfileVersion: '9.0'
importers:
  .:
    dependencies:
      a: {specifier: '1', version: 1.0.0}
      b: {specifier: '2', version: 2.0.0}
      al: {specifier: 'npm:c@1', version: c@1.0.0}
packages:
  a@1.0.0: {resolution: {integrity: SRI}, os: [linux], libc: [glibc]}
  b@1.0.0: {resolution: {integrity: SRI}}
  b@2.0.0: {resolution: {integrity: SRI}}
  c@1.0.0: {resolution: {integrity: SRI}}
snapshots:
  a@1.0.0: {dependencies: {b: 1.0.0}, optionalDependencies: {c: 1.0.0}}
  b@1.0.0: {}
  b@2.0.0: {}
  c@1.0.0: {}
"""

PNPM_WORKSPACES = """lockfileVersion: '9.0'
importers:
  .:
    dependencies:
      web: {specifier: 'workspace:*', version: 'link:packages/web'}
  packages/web:
    dependencies:
      a: {specifier: '1', version: 1.0.0}
      web: {specifier: 'workspace:*', version: 'link:.'}
packages:
  a@1.0.0: {resolution: {integrity: SRI}}
snapshots:
  a@1.0.0: {}
"""

PNPM_CYCLE = """lockfileVersion: '9.0'
importers:
  .:
    dependencies:
      a: {specifier: '1', version: 1.0.0}
packages:
  a@1.0.0: {resolution: {integrity: SRI}}
  a@2.0.0: {resolution: {integrity: SRI}}
  b@1.0.0: {resolution: {integrity: SRI}}
  b@2.0.0: {resolution: {integrity: SRI}}
snapshots:
  a@1.0.0: {dependencies: {b: 1.0.0}}
  b@1.0.0: {dependencies: {a: 2.0.0}}
  a@2.0.0: {dependencies: {b: 2.0.0}}
  b@2.0.0: {dependencies: {a: 1.0.0}}
"""


def integrity():
    return [
        ("valid-sha512.txt", SRI),
        ("valid-sha1.txt", SHA1),
        ("valid-both-and-option.txt", f"{SHA1} {SRI}?foo"),
        ("valid-unknown-algorithm-skipped.txt", "md5-AAAAAAAAAAAAAAAAAAAAAA== sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ("valid-whitespace.txt", f"\t{SRI}\n {SRI} "),
        ("invalid-base64.txt", "sha512-!!!"),
        ("invalid-length.txt", "sha512-AAAA"),
        ("invalid-no-dash.txt", "nonsense"),
    ]


def package_json_bins():
    return [
        ("valid-string-bin.json", pkg_json(name="hello", bin="./cli.js")),
        ("valid-scoped-string-bin.json", pkg_json(name="@scope/tool", bin="bin/tool.js")),
        ("valid-map-bin.json", pkg_json(name="x", bin={"a": "bin/a", "b": "./b.js", "c": "./lib/../c.js"})),
        ("valid-directories-bin.json", json.dumps({"name": "x", "directories": {"bin": "./bin"}})),
        ("valid-no-bin.json", pkg_json(name="x", version="1.0.0")),
        ("invalid-bin-type.json", json.dumps({"name": "x", "bin": 42})),
        ("invalid-not-json.txt", "{\"bin\": "),
    ]


def path_normalize():
    return [
        ("valid-package-json.txt", "package/package.json"),
        ("valid-dot-and-double-slash.txt", "package/./lib//a.js"),
        ("valid-backslashes.txt", "package\\lib\\a.js"),
        ("valid-top-dir-only.txt", "package/"),
        ("invalid-absolute.txt", "/etc/passwd"),
        ("invalid-absolute-backslash.txt", "\\windows\\system32"),
        ("invalid-parent.txt", "package/../../x"),
        ("invalid-empty.txt", ""),
    ]


def main():
    for target, seeds in [
        ("import_tarball", import_tarball()),
        ("lockfile", lockfile()),
        ("integrity", integrity()),
        ("package_json_bins", package_json_bins()),
        ("path_normalize", path_normalize()),
    ]:
        out = HERE / target
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for name, data in seeds:
            (out / name).write_bytes(data.encode() if isinstance(data, str) else data)


if __name__ == "__main__":
    main()
