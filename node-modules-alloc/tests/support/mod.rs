//! Test helpers: build tarballs, npm caches and lockfiles in memory (no network).
#![allow(dead_code, unreachable_pub, missing_docs)]
// Test support code: panicking on a broken fixture is the right behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use node_modules_alloc::integrity::Integrity;
use sha1::Digest as _;

/// One raw tar entry, written without the tar crate's path sanitation.
pub enum Raw<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str),
    Block(&'a str),
    /// A file whose header claims `claimed` bytes (data is `claimed` zero bytes).
    Sized(&'a str, u64),
    /// A file whose full name is carried by a GNU long-name (`L`) entry before its header.
    LongName(&'a str, &'a [u8]),
    /// A symlink whose target is carried by a GNU long-link (`K`) entry before its header.
    LongLink(&'a str, &'a str),
}

fn raw_header(
    name: &str,
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    link: Option<&str>,
) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        let bytes = name.as_bytes();
        old.name[..bytes.len()].copy_from_slice(bytes);
        if let Some(link) = link {
            let l = link.as_bytes();
            old.linkname[..l.len()].copy_from_slice(l);
        }
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(1_600_000_000);
    header.set_cksum();
    header
}

/// A gzip-compressed tarball from raw entries.
pub fn raw_tgz(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for entry in entries {
        match entry {
            Raw::File(name, data, mode) => {
                let h = raw_header(
                    name,
                    tar::EntryType::Regular,
                    data.len() as u64,
                    *mode,
                    None,
                );
                builder.append(&h, *data).unwrap();
            }
            Raw::Dir(name) => {
                let h = raw_header(name, tar::EntryType::Directory, 0, 0o755, None);
                builder.append(&h, std::io::empty()).unwrap();
            }
            Raw::Symlink(name, target) => {
                let h = raw_header(name, tar::EntryType::Symlink, 0, 0o777, Some(target));
                builder.append(&h, std::io::empty()).unwrap();
            }
            Raw::Hardlink(name, target) => {
                let h = raw_header(name, tar::EntryType::Link, 0, 0o644, Some(target));
                builder.append(&h, std::io::empty()).unwrap();
            }
            Raw::Fifo(name) => {
                let h = raw_header(name, tar::EntryType::Fifo, 0, 0o644, None);
                builder.append(&h, std::io::empty()).unwrap();
            }
            Raw::Char(name) => {
                let h = raw_header(name, tar::EntryType::Char, 0, 0o644, None);
                builder.append(&h, std::io::empty()).unwrap();
            }
            Raw::Block(name) => {
                let h = raw_header(name, tar::EntryType::Block, 0, 0o644, None);
                builder.append(&h, std::io::empty()).unwrap();
            }
            Raw::Sized(name, size) => {
                let h = raw_header(name, tar::EntryType::Regular, *size, 0o644, None);
                builder
                    .append(&h, std::io::repeat(0).take_n(*size))
                    .unwrap();
            }
            Raw::LongName(name, data) => {
                let l = raw_header(
                    "././@LongLink",
                    tar::EntryType::GNULongName,
                    name.len() as u64 + 1,
                    0o644,
                    None,
                );
                builder
                    .append(&l, &*[name.as_bytes(), b"\0"].concat())
                    .unwrap();
                let short: String = name.chars().take(100).collect();
                let h = raw_header(
                    &short,
                    tar::EntryType::Regular,
                    data.len() as u64,
                    0o644,
                    None,
                );
                builder.append(&h, *data).unwrap();
            }
            Raw::LongLink(name, target) => {
                let k = raw_header(
                    "././@LongLink",
                    tar::EntryType::GNULongLink,
                    target.len() as u64 + 1,
                    0o644,
                    None,
                );
                builder
                    .append(&k, &*[target.as_bytes(), b"\0"].concat())
                    .unwrap();
                let h = raw_header(
                    name,
                    tar::EntryType::Symlink,
                    0,
                    0o777,
                    Some("././@LongLink"),
                );
                builder.append(&h, std::io::empty()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

trait TakeN: std::io::Read + Sized {
    fn take_n(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeN for R {}

/// A test package: name, version, files (path inside package, content, mode), bins.
#[derive(Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub files: Vec<(String, Vec<u8>, u32)>,
    pub bins: BTreeMap<String, String>,
    /// Extra top-level fields of its `package.json` (`scripts`, `gypfile`, ...).
    pub json: serde_json::Map<String, serde_json::Value>,
}

impl Pkg {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            files: vec![(
                "index.js".to_owned(),
                format!("module.exports = '{name}@{version}';\n").into_bytes(),
                0o644,
            )],
            bins: BTreeMap::new(),
            json: serde_json::Map::new(),
        }
    }

    /// Sets a top-level field of its `package.json`.
    pub fn json(mut self, key: &str, value: serde_json::Value) -> Self {
        self.json.insert(key.to_owned(), value);
        self
    }

    pub fn file(mut self, path: &str, content: &[u8], mode: u32) -> Self {
        self.files.push((path.to_owned(), content.to_vec(), mode));
        self
    }

    pub fn bin(mut self, name: &str, path: &str) -> Self {
        self.bins.insert(name.to_owned(), path.to_owned());
        self
    }

    pub fn package_json(&self) -> Vec<u8> {
        let mut json = serde_json::json!({ "name": self.name, "version": self.version });
        if !self.bins.is_empty() {
            json["bin"] = serde_json::to_value(&self.bins).unwrap();
        }
        for (key, value) in &self.json {
            json[key] = value.clone();
        }
        serde_json::to_vec_pretty(&json).unwrap()
    }

    pub fn tgz(&self) -> Vec<u8> {
        let json = self.package_json();
        let mut entries = vec![Raw::Dir("package/")];
        let names: Vec<String> = self
            .files
            .iter()
            .map(|(p, _, _)| format!("package/{p}"))
            .collect();
        entries.push(Raw::File("package/package.json", &json, 0o644));
        for ((_, data, mode), name) in self.files.iter().zip(&names) {
            entries.push(Raw::File(name, data, *mode));
        }
        raw_tgz(&entries)
    }

    pub fn integrity(&self) -> String {
        Integrity::sha512_of(&self.tgz()).to_string()
    }
}

/// One lockfile entry: install path, package, extra JSON fields.
pub struct LockEntry {
    pub path: String,
    pub pkg: Pkg,
    pub extra: serde_json::Value,
}

pub fn entry(path: &str, pkg: &Pkg) -> LockEntry {
    LockEntry {
        path: path.to_owned(),
        pkg: pkg.clone(),
        extra: serde_json::json!({}),
    }
}

/// A `package-lock.json` (v3) for the entries.
pub fn lockfile(entries: &[LockEntry]) -> String {
    let mut packages = serde_json::Map::new();
    packages.insert(
        String::new(),
        serde_json::json!({ "name": "app", "version": "1.0.0" }),
    );
    for e in entries {
        let mut v = serde_json::json!({
            "version": e.pkg.version,
            "resolved": format!("https://example.invalid/{}/-/{}.tgz", e.pkg.name, e.pkg.version),
            "integrity": e.pkg.integrity(),
        });
        if !e.pkg.bins.is_empty() {
            v["bin"] = serde_json::to_value(&e.pkg.bins).unwrap();
        }
        if let Some(extra) = e.extra.as_object() {
            for (k, x) in extra {
                v[k] = x.clone();
            }
        }
        packages.insert(e.path.clone(), v);
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": packages,
    }))
    .unwrap()
}

/// Writes the tarballs of `pkgs` into `dir` as `<name>-<version>.tgz`.
pub fn write_tarballs(dir: &Path, pkgs: &[&Pkg]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    pkgs.iter()
        .map(|p| {
            let path = dir.join(format!("{}-{}.tgz", p.name.replace('/', "-"), p.version));
            std::fs::write(&path, p.tgz()).unwrap();
            path
        })
        .collect()
}

/// Writes an npm `_cacache` holding `tarballs` (key, bytes, announced integrity).
pub fn write_cacache(cache: &Path, items: &[(&str, &[u8], String)]) {
    for (key, bytes, integrity) in items {
        let parsed: Integrity = integrity.parse().unwrap();
        let hash = parsed.strongest().unwrap();
        let hex = hash.hex();
        let content = cache
            .join("content-v2")
            .join(hash.algorithm.name())
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(&hex[4..]);
        std::fs::create_dir_all(content.parent().unwrap()).unwrap();
        std::fs::write(&content, bytes).unwrap();
        let bucket_hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        let bucket = cache
            .join("index-v5")
            .join(&bucket_hash[..2])
            .join(&bucket_hash[2..4])
            .join(&bucket_hash[4..]);
        std::fs::create_dir_all(bucket.parent().unwrap()).unwrap();
        let json = serde_json::json!({ "key": key, "integrity": integrity, "time": 1, "size": bytes.len(), "metadata": {} }).to_string();
        let line = format!(
            "\n{}\t{}",
            hex::encode(sha1::Sha1::digest(json.as_bytes())),
            json
        );
        let mut old = std::fs::read_to_string(&bucket).unwrap_or_default();
        old.push_str(&line);
        std::fs::write(&bucket, old).unwrap();
    }
}

pub fn sha1_integrity(bytes: &[u8]) -> String {
    format!(
        "sha1-{}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes))
    )
}

/// Every file under `root` (relative path → content or symlink target), for byte comparisons.
pub fn snapshot(root: &Path) -> BTreeMap<String, (String, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    (
                        "link".into(),
                        std::fs::read_link(&path)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned()
                            .into_bytes(),
                    ),
                );
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                let kind = format!("file:{:o}", meta.permissions().mode() & 0o111);
                out.insert(rel, (kind, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// Lists every path under `root` (to prove nothing was written elsewhere).
pub fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for entry in rd {
                let path = entry.unwrap().path();
                if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.push(path.clone());
                }
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A tar stream written block by block, with nothing checked or fixed up: for hostile shapes
/// (bad checksums, lying sizes, metadata entries, trailing garbage) that `tar::Builder` refuses
/// to produce.
#[derive(Default)]
pub struct RawTar {
    pub bytes: Vec<u8>,
}

/// A PAX extended-header record `"<len> <key>=<value>\n"` with its self-inclusive length.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // `<digits> <key>=<value>\n`: the length counts its own digits.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    assert_eq!(out.len(), len);
    out
}

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    /// One header block. `name` longer than 100 bytes is cut (as real writers do before a long
    /// name entry); `size` is written as claimed, whatever body follows.
    pub fn header(&mut self, name: &[u8], kind: u8, size: u64, link: &[u8]) -> &mut Self {
        self.header_with(name, kind, size, link, true)
    }

    pub fn header_with(
        &mut self,
        name: &[u8],
        kind: u8,
        size: u64,
        link: &[u8],
        good_checksum: bool,
    ) -> &mut Self {
        let mut h = [0u8; 512];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        if size < 0o77_777_777_777 {
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        } else {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        h[136..148].copy_from_slice(b"13000000000\0");
        h[156] = kind;
        let l = link.len().min(100);
        h[157..157 + l].copy_from_slice(&link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let mut sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        if !good_checksum {
            sum += 1;
        }
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&h);
        self
    }

    /// `data`, padded with zeros to a whole block.
    pub fn body(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.header(name.as_bytes(), b'0', data.len() as u64, b"")
            .body(data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.header(name.as_bytes(), b'5', 0, b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), b'2', 0, target.as_bytes())
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), b'1', 0, target.as_bytes())
    }

    /// A metadata entry (`L`, `K`, `x`, `g`) holding `data`.
    pub fn meta(&mut self, kind: u8, data: &[u8]) -> &mut Self {
        let name: &[u8] = match kind {
            b'L' | b'K' => b"././@LongLink",
            b'g' => b"pax_global_header",
            _ => b"PaxHeader",
        };
        self.header(name, kind, data.len() as u64, b"").body(data)
    }

    /// A GNU long name (`L`) entry: `name` plus its NUL terminator.
    pub fn long_name(&mut self, name: &[u8]) -> &mut Self {
        self.meta(b'L', &[name, b"\0"].concat())
    }

    /// A GNU long link (`K`) entry: `target` plus its NUL terminator.
    pub fn long_link(&mut self, target: &[u8]) -> &mut Self {
        self.meta(b'K', &[target, b"\0"].concat())
    }

    /// A PAX extended header (`x`) with the given records.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.meta(b'x', &data)
    }

    /// A PAX global header (`g`) with the given records.
    pub fn global_pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.meta(b'g', &data)
    }

    /// Raw bytes, unpadded.
    pub fn raw(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        self
    }

    /// The end-of-archive marker: two zero blocks.
    pub fn end(&mut self) -> &mut Self {
        self.bytes.extend(std::iter::repeat_n(0u8, 1024));
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    pub fn tgz(&mut self) -> Vec<u8> {
        gzip(&self.finish())
    }
}

/// One gzip member holding `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A package tarball (`package/` prefix added) with a `package.json` naming `name` and its
/// `bins`, regular files (path, content) and symlinks (path, target), all relative to the
/// package root. Symlinks are written raw, so they may point anywhere the importer accepts.
pub fn package_tgz(
    name: &str,
    bins: &[(&str, &str)],
    files: &[(&str, &[u8])],
    links: &[(&str, &str)],
) -> Vec<u8> {
    let mut json = serde_json::json!({ "name": name, "version": "1.0.0" });
    if !bins.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = bins
            .iter()
            .map(|(b, t)| ((*b).to_owned(), serde_json::Value::from(*t)))
            .collect();
        json["bin"] = serde_json::Value::Object(map);
    }
    let json = serde_json::to_vec(&json).unwrap();
    let file_names: Vec<String> = files.iter().map(|(p, _)| format!("package/{p}")).collect();
    let link_names: Vec<String> = links.iter().map(|(p, _)| format!("package/{p}")).collect();
    let mut entries = vec![Raw::File("package/package.json", &json, 0o644)];
    for ((_, data), name) in files.iter().zip(&file_names) {
        entries.push(Raw::File(name, data, 0o644));
    }
    for ((_, target), name) in links.iter().zip(&link_names) {
        entries.push(Raw::Symlink(name, target));
    }
    raw_tgz(&entries)
}

/// A `package-lock.json` (v3) for raw tarballs: (install path, tarball, extra JSON fields such
/// as `bin` or `inBundle`). Entries with `inBundle: true` get no integrity.
pub fn raw_lockfile(entries: &[(&str, &[u8], serde_json::Value)]) -> String {
    let mut packages = serde_json::Map::new();
    packages.insert(
        String::new(),
        serde_json::json!({ "name": "app", "version": "1.0.0" }),
    );
    for (path, tarball, extra) in entries {
        let mut v = serde_json::json!({ "version": "1.0.0" });
        if extra.get("inBundle") != Some(&serde_json::Value::Bool(true)) {
            v["integrity"] = Integrity::sha512_of(tarball).to_string().into();
        }
        if let Some(extra) = extra.as_object() {
            for (k, x) in extra {
                v[k] = x.clone();
            }
        }
        packages.insert((*path).to_owned(), v);
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": packages,
    }))
    .unwrap()
}

/// Writes a store file back as a crash could have left it: `bytes` as content, the mode and
/// mtime it had before (a power loss after a non-synced rename keeps the metadata, not the data).
pub fn damage_keeping_metadata(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, bytes).unwrap();
    set_mtime(path, meta.mtime());
    std::fs::set_permissions(path, meta.permissions()).unwrap();
}

/// Rewrites a (possibly hardlinked, read-only) file in place, as patch-package or an editor
/// does: `chmod u+w`, open for writing without truncating, same-length bytes.
pub fn edit_in_place(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(path).unwrap().len(), bytes.len() as u64);
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o200)).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
}

/// Whether the filesystem holding `dir` supports reflinks (FICLONE).
pub fn reflink_supported(dir: &Path) -> bool {
    let src = dir.join(".reflink-probe-src");
    let dst = dir.join(".reflink-probe-dst");
    std::fs::write(&src, b"probe").unwrap();
    let ok = reflink_copy::reflink(&src, &dst).is_ok();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    ok
}

/// Sets a file's mtime (utimensat, no write access needed), as `touch -d` would.
pub fn set_mtime(path: &Path, secs: i64) {
    let time = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: time,
            last_modification: time,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}
