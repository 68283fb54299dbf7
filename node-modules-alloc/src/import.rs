//! Importing tarballs into the store: from `.tgz` files, directories of them, or an npm cache.
//!
//! # Why so strict
//!
//! A tarball is untrusted input that ends up next to running code. The importer verifies the
//! tarball's SRI integrity before unpacking anything, then checks every entry: absolute paths,
//! `..` components, symlinks or hardlinks that escape the package (or traverse another link),
//! device files and FIFOs, and entries or totals over the [`ImportLimits`]
//! (decompression bombs) are refused with an error naming the entry. The first path component
//! (`package/` in npm tarballs, or any other single prefix) is removed, as npm does. Content is
//! written to temporary files and renamed into the store; the package index is published last,
//! so a crash or a rejection leaves nothing visible.
//!
//! ```
//! use node_modules_alloc::store::Store;
//!
//! # fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
//! #     let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
//! #     for (path, data) in files {
//! #         let mut header = tar::Header::new_gnu();
//! #         header.set_size(data.len() as u64);
//! #         header.set_mode(0o644);
//! #         header.set_cksum();
//! #         builder.append_data(&mut header, path, *data).unwrap();
//! #     }
//! #     builder.into_inner().unwrap().finish().unwrap()
//! # }
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("store"))?;
//! let tarball = tgz(&[
//!     ("package/package.json", br#"{"name":"left-pad","version":"1.3.0"}"#),
//!     ("package/index.js", b"module.exports = (s) => s;\n"),
//! ]);
//! let imported = store.import_tarball_bytes("left-pad-1.3.0.tgz", &tarball, None, None)?;
//! assert_eq!(imported.name.as_deref(), Some("left-pad"));
//! assert_eq!(imported.files, 2);
//! // Importing is idempotent.
//! assert!(store.import_tarball_bytes("again.tgz", &tarball, None, None)?.already_present);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha512};

use crate::config::ImportLimits;
use crate::error::{Error, Rejection, Result};
use crate::integrity::Integrity;
use crate::store::{IndexEntry, PackageIndex, Store};

/// One imported package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The tarball's sha512 integrity.
    pub integrity: String,
    /// `name` from `package.json`.
    pub name: Option<String>,
    /// `version` from `package.json`.
    pub version: Option<String>,
    /// Number of files and symlinks.
    pub files: usize,
    /// The package was already complete in the store; nothing was written.
    pub already_present: bool,
}

/// What an import of several sources did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Every package seen, in order.
    pub packages: Vec<Imported>,
}

impl ImportSummary {
    /// Packages newly written.
    pub fn imported(&self) -> usize {
        self.packages.iter().filter(|p| !p.already_present).count()
    }

    /// Packages that were already present.
    pub fn already_present(&self) -> usize {
        self.packages.iter().filter(|p| p.already_present).count()
    }
}

/// A unit of import work found by [`Store::discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSource {
    /// The tarball on disk (a `.tgz` file or npm cache content).
    pub path: PathBuf,
    /// The integrity the cache announced for it, verified before unpacking.
    pub expected: Option<Integrity>,
    /// A human label (file name or cache key) for errors.
    pub label: String,
}

/// Removes the temporary files of an unfinished import when dropped.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

struct PendingFile {
    path: String,
    digest: String,
    size: u64,
    exec: bool,
    tmp: PathBuf,
}

/// Splits and validates an entry path; returns its components with the top directory removed.
fn normalize_path(raw: &str) -> Result<Vec<String>, Rejection> {
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(Rejection::AbsolutePath);
    }
    let mut parts = Vec::new();
    for part in raw.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(Rejection::ParentComponent),
            p => parts.push(p.to_owned()),
        }
    }
    if parts.is_empty() {
        return Ok(parts);
    }
    parts.remove(0);
    Ok(parts)
}

/// Resolves a symlink target relative to the link's directory; `None` if it escapes.
fn resolve_link(link_parts: &[String], target: &str) -> Option<Vec<String>> {
    if target.starts_with('/') || target.starts_with('\\') {
        return None;
    }
    let mut out: Vec<String> = link_parts
        .split_last()
        .map(|(_, dir)| dir.to_vec())
        .unwrap_or_default();
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p.to_owned()),
        }
    }
    Some(out)
}

fn reject(label: &str, entry: &str, reason: Rejection) -> Error {
    Error::Rejected {
        tarball: label.to_owned(),
        entry: entry.to_owned(),
        reason,
    }
}

fn bad(label: &str, reason: impl std::fmt::Display) -> Error {
    Error::BadTarball {
        tarball: label.to_owned(),
        reason: reason.to_string(),
    }
}

/// Parses `bin` of a `package.json` into `name → normalized path`.
fn package_bins(json: &serde_json::Value) -> BTreeMap<String, String> {
    let mut bins = BTreeMap::new();
    match json.get("bin") {
        Some(serde_json::Value::String(path)) => {
            if let Some(name) = json.get("name").and_then(|n| n.as_str()) {
                let short = name.rsplit('/').next().unwrap_or(name);
                bins.insert(short.to_owned(), normalize_bin_path(path));
            }
        }
        Some(serde_json::Value::Object(map)) => {
            for (name, path) in map {
                if let Some(path) = path.as_str() {
                    bins.insert(name.clone(), normalize_bin_path(path));
                }
            }
        }
        _ => {}
    }
    bins
}

/// `./bin/cli.js` → `bin/cli.js`.
pub(crate) fn normalize_bin_path(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// State of one tarball being unpacked.
struct Unpacker<'a> {
    store: &'a Store,
    label: &'a str,
    limits: ImportLimits,
    temps: TempFiles,
    files: Vec<PendingFile>,
    by_path: HashMap<String, usize>,
    symlinks: BTreeMap<String, String>,
    package_json: Option<Vec<u8>>,
    total: u64,
    count: u64,
}

impl Unpacker<'_> {
    fn reject(&self, entry: &str, reason: Rejection) -> Error {
        reject(self.label, entry, reason)
    }

    fn add_total(&mut self, raw: &str, n: u64) -> Result<()> {
        self.total = self.total.saturating_add(n);
        if self.total > self.limits.max_total_bytes {
            return Err(self.reject(
                raw,
                Rejection::TotalTooLarge {
                    limit: self.limits.max_total_bytes,
                },
            ));
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType as T;
        self.count += 1;
        let raw_bytes = entry.path_bytes().into_owned();
        let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
        if self.count > self.limits.max_entries {
            return Err(self.reject(
                &raw,
                Rejection::TooManyEntries {
                    limit: self.limits.max_entries,
                },
            ));
        }
        if std::str::from_utf8(&raw_bytes).is_err() {
            return Err(self.reject(&raw, Rejection::NonUtf8Path));
        }
        let parts = normalize_path(&raw).map_err(|r| self.reject(&raw, r))?;
        let kind = entry.header().entry_type();
        let special = |kind| Err(reject(self.label, &raw, Rejection::SpecialFile { kind }));
        match kind {
            T::Directory | T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {
                return Ok(());
            }
            T::Char => return special("character device"),
            T::Block => return special("block device"),
            T::Fifo => return special("fifo"),
            T::Regular | T::Continuous | T::Symlink | T::Link => {}
            _ => return special("unsupported"),
        }
        if parts.is_empty() {
            // The top directory itself, or a file outside any top directory.
            tracing::debug!(tarball = self.label, entry = %raw, "skipping entry outside the top directory");
            return Ok(());
        }
        let link_name = entry
            .link_name_bytes()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default();
        match kind {
            T::Symlink => self.symlink(&raw, &parts, link_name),
            T::Link => self.hardlink(&raw, parts.join("/"), link_name),
            _ => {
                if entry.size() > self.limits.max_entry_bytes {
                    return Err(self.reject(
                        &raw,
                        Rejection::EntryTooLarge {
                            limit: self.limits.max_entry_bytes,
                        },
                    ));
                }
                let exec = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                self.regular(&mut entry, &raw, parts.join("/"), exec)
            }
        }
    }

    fn symlink(&mut self, raw: &str, parts: &[String], target: String) -> Result<()> {
        if target.is_empty() || resolve_link(parts, &target).is_none() {
            return Err(self.reject(
                raw,
                Rejection::LinkEscapes {
                    kind: "symlink",
                    target,
                },
            ));
        }
        self.symlinks.insert(parts.join("/"), target);
        Ok(())
    }

    fn hardlink(&mut self, raw: &str, path: String, target: String) -> Result<()> {
        let Ok(target_parts) = normalize_path(&target) else {
            return Err(self.reject(
                raw,
                Rejection::LinkEscapes {
                    kind: "hardlink",
                    target,
                },
            ));
        };
        let Some(source) = self
            .by_path
            .get(&target_parts.join("/"))
            .and_then(|&i| self.files.get(i))
        else {
            return Err(self.reject(raw, Rejection::DanglingHardlink { target }));
        };
        let pending = PendingFile {
            path: path.clone(),
            digest: source.digest.clone(),
            size: source.size,
            exec: source.exec,
            tmp: source.tmp.clone(),
        };
        self.add_total(raw, pending.size)?;
        self.symlinks.remove(&path);
        self.by_path.insert(path, self.files.len());
        self.files.push(pending);
        Ok(())
    }

    fn regular(
        &mut self,
        entry: &mut impl Read,
        raw: &str,
        path: String,
        exec: bool,
    ) -> Result<()> {
        let max_entry = self.limits.max_entry_bytes;
        let tmp = self.store.temp_path();
        self.temps.0.push(tmp.clone());
        let mut out = File::create(&tmp).map_err(Error::io("cannot create", &tmp))?;
        let mut hasher = Sha512::new();
        let mut size: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let keep_json = path == "package.json";
        let mut json_buf = Vec::new();
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| bad(self.label, format!("entry {raw:?}: {e}")))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > max_entry {
                return Err(self.reject(raw, Rejection::EntryTooLarge { limit: max_entry }));
            }
            self.add_total(raw, n as u64)?;
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            out.write_all(chunk)
                .map_err(Error::io("cannot write", &tmp))?;
            if keep_json {
                json_buf.extend_from_slice(chunk);
            }
        }
        drop(out);
        if keep_json {
            self.package_json = Some(json_buf);
        }
        self.symlinks.remove(&path);
        self.by_path.insert(path.clone(), self.files.len());
        self.files.push(PendingFile {
            path,
            digest: hex::encode(hasher.finalize()),
            size,
            exec,
            tmp,
        });
        Ok(())
    }

    /// Links must not be traversed by other entries: a path through a symlink could resolve
    /// outside the package even when every target looks contained on its own.
    fn check_link_traversal(&self) -> Result<()> {
        let link_paths: HashSet<&str> = self.symlinks.keys().map(String::as_str).collect();
        let traverses = |parts: &[&str]| {
            (1..parts.len()).any(|i| {
                parts
                    .get(..i)
                    .is_some_and(|p| link_paths.contains(p.join("/").as_str()))
            })
        };
        for (path, target) in &self.symlinks {
            let parts: Vec<&str> = path.split('/').collect();
            // Walking the target must not pass through another link before its last component.
            let mut cur: Vec<&str> = parts
                .split_last()
                .map(|(_, d)| d.to_vec())
                .unwrap_or_default();
            let steps: Vec<&str> = target
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect();
            let mut through_link = false;
            for (i, step) in steps.iter().enumerate() {
                if *step == ".." {
                    cur.pop();
                } else {
                    cur.push(step);
                    through_link |=
                        i + 1 < steps.len() && link_paths.contains(cur.join("/").as_str());
                }
            }
            if traverses(&parts) || through_link {
                return Err(self.reject(
                    path,
                    Rejection::LinkEscapes {
                        kind: "symlink",
                        target: target.clone(),
                    },
                ));
            }
        }
        for file in &self.files {
            let parts: Vec<&str> = file.path.split('/').collect();
            if traverses(&parts) {
                return Err(self.reject(
                    &file.path,
                    Rejection::LinkEscapes {
                        kind: "symlink",
                        target: "(path traverses a symlink)".to_owned(),
                    },
                ));
            }
        }
        Ok(())
    }

    /// Publishes content (executable variants where needed) and returns the index.
    fn finish(self, bytes: &[u8], sha512: &str) -> Result<PackageIndex> {
        let (name, version, bins) = match self
            .package_json
            .as_deref()
            .map(serde_json::from_slice::<serde_json::Value>)
        {
            Some(Ok(json)) => (
                json.get("name").and_then(|v| v.as_str()).map(str::to_owned),
                json.get("version")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                package_bins(&json),
            ),
            _ => (None, None, BTreeMap::new()),
        };
        let bin_targets: HashSet<&str> = bins.values().map(String::as_str).collect();
        // Last occurrence of a path wins (tar semantics).
        let mut final_entries: BTreeMap<String, IndexEntry> = BTreeMap::new();
        let mut published: HashSet<(String, bool)> = HashSet::new();
        for file in &self.files {
            if self.symlinks.contains_key(&file.path) {
                continue;
            }
            let exec = file.exec || bin_targets.contains(file.path.as_str());
            if published.insert((file.digest.clone(), exec))
                && !self.store.content_intact(&file.digest, exec, file.size)
            {
                if file.tmp.exists() {
                    self.store.publish_temp(&file.tmp, &file.digest, exec)?;
                } else {
                    // The temporary file was consumed by the other variant of the same content.
                    self.store.ensure_variant(&file.digest, exec)?;
                }
            }
            final_entries.insert(
                file.path.clone(),
                IndexEntry::File {
                    path: file.path.clone(),
                    digest: file.digest.clone(),
                    size: file.size,
                    exec,
                },
            );
        }
        for (path, target) in &self.symlinks {
            final_entries.insert(
                path.clone(),
                IndexEntry::Symlink {
                    path: path.clone(),
                    target: target.clone(),
                },
            );
        }
        Ok(PackageIndex {
            integrity: sha512.to_owned(),
            sha1: format!(
                "sha1-{}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    Sha1::digest(bytes)
                )
            ),
            name,
            version,
            bins,
            entries: final_entries.into_values().collect(),
            source: None,
        })
    }
}

impl Store {
    /// Imports one `.tgz` file.
    pub fn import_tarball_file(&self, path: impl AsRef<Path>) -> Result<Imported> {
        self.import_tarball_file_expecting(path.as_ref(), None, false)
    }

    pub(crate) fn import_tarball_file_expecting(
        &self,
        path: &Path,
        expected: Option<&Integrity>,
        force: bool,
    ) -> Result<Imported> {
        let label = path.display().to_string();
        let limit = self.config().limits.max_tarball_bytes;
        let file = File::open(path).map_err(Error::io("cannot open", path))?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(Error::io("cannot read", path))?;
        if bytes.len() as u64 > limit {
            return Err(bad(
                &label,
                format!("tarball is larger than the limit of {limit} bytes"),
            ));
        }
        let source = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.import_inner(&label, &bytes, expected, Some(source), force)
    }

    /// Imports a tarball held in memory. `expected`, when given, must match the bytes (sha512 or
    /// sha1 form); `source` is recorded to re-import the package if its files get corrupted.
    pub fn import_tarball_bytes(
        &self,
        label: &str,
        bytes: &[u8],
        expected: Option<&Integrity>,
        source: Option<PathBuf>,
    ) -> Result<Imported> {
        if bytes.len() as u64 > self.config().limits.max_tarball_bytes {
            return Err(bad(
                label,
                format!(
                    "tarball is larger than the limit of {} bytes",
                    self.config().limits.max_tarball_bytes
                ),
            ));
        }
        self.import_inner(label, bytes, expected, source, false)
    }

    fn import_inner(
        &self,
        label: &str,
        bytes: &[u8],
        expected: Option<&Integrity>,
        source: Option<PathBuf>,
        force: bool,
    ) -> Result<Imported> {
        let actual = Integrity::all_of(bytes);
        if let Some(expected) = expected
            && !expected.matches(bytes)
        {
            return Err(Error::IntegrityMismatch {
                what: label.to_owned(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let sha512 = format!(
            "sha512-{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                Sha512::digest(bytes)
            )
        );
        if !force
            && let Some(existing) = self.read_index(&actual)?
            && self.has_all_files(&existing)
        {
            tracing::debug!(tarball = label, integrity = %sha512, "package already in store");
            return Ok(Imported {
                integrity: existing.integrity,
                name: existing.name,
                version: existing.version,
                files: existing.entries.len(),
                already_present: true,
            });
        }
        let mut index = self.unpack(label, bytes, &sha512)?;
        index.source = source;
        let mut keys = actual;
        if let Some(expected) = expected {
            // Also answer to the exact form the caller used (e.g. sha256 from a custom cache).
            let mut all: Vec<String> = keys.hashes().iter().map(ToString::to_string).collect();
            all.extend(expected.hashes().iter().map(ToString::to_string));
            keys = all.join(" ").parse()?;
        }
        self.write_index(&index, &keys)?;
        tracing::info!(tarball = label, integrity = %index.integrity, files = index.entries.len(), "imported package");
        Ok(Imported {
            integrity: index.integrity.clone(),
            name: index.name.clone(),
            version: index.version.clone(),
            files: index.entries.len(),
            already_present: false,
        })
    }

    /// Unpacks and checks every entry, publishes content, returns the index (not yet written).
    fn unpack(&self, label: &str, bytes: &[u8], sha512: &str) -> Result<PackageIndex> {
        let mut unpacker = Unpacker {
            store: self,
            label,
            limits: self.config().limits,
            temps: TempFiles(Vec::new()),
            files: Vec::new(),
            by_path: HashMap::new(),
            symlinks: BTreeMap::new(),
            package_json: None,
            total: 0,
            count: 0,
        };
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let entries = archive.entries().map_err(|e| bad(label, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| bad(label, format!("unreadable archive: {e}")))?;
            unpacker.entry(entry)?;
        }
        unpacker.check_link_traversal()?;
        unpacker.finish(bytes, sha512)
    }

    /// Finds the tarballs under `path`: a `.tgz` file, a directory searched recursively for
    /// `.tgz` files, or an npm cache (`_cacache` itself or a directory containing it).
    pub fn discover(&self, path: impl AsRef<Path>) -> Result<Vec<ImportSource>> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(Error::io("cannot read", path))?;
        if meta.is_file() {
            return Ok(vec![ImportSource {
                path: path.to_path_buf(),
                expected: None,
                label: path.display().to_string(),
            }]);
        }
        if path.join("index-v5").is_dir() {
            return discover_cacache(path);
        }
        if path.join("_cacache").join("index-v5").is_dir() {
            return discover_cacache(&path.join("_cacache"));
        }
        let mut out = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = fs::read_dir(&dir)
                .map_err(Error::io("cannot read", &dir))?
                .filter_map(std::result::Result::ok)
                .collect();
            entries.sort_by_key(fs::DirEntry::file_name);
            for entry in entries {
                let p = entry.path();
                let ft = entry.file_type().map_err(Error::io("cannot read", &p))?;
                if ft.is_dir() {
                    stack.push(p);
                } else if ft.is_file() && p.extension().is_some_and(|e| e == "tgz") {
                    out.push(ImportSource {
                        label: p.display().to_string(),
                        path: p,
                        expected: None,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Imports one discovered source.
    pub fn import_source(&self, source: &ImportSource) -> Result<Imported> {
        let result =
            self.import_tarball_file_expecting(&source.path, source.expected.as_ref(), false);
        match result {
            Err(Error::IntegrityMismatch {
                expected, actual, ..
            }) => Err(Error::IntegrityMismatch {
                what: source.label.clone(),
                expected,
                actual,
            }),
            other => other,
        }
    }

    /// Imports every tarball found under `path` (see [`Store::discover`]).
    pub fn import_path(&self, path: impl AsRef<Path>) -> Result<ImportSummary> {
        let mut summary = ImportSummary::default();
        for source in self.discover(path)? {
            summary.packages.push(self.import_source(&source)?);
        }
        Ok(summary)
    }
}

#[derive(serde::Deserialize)]
struct CacheEntry {
    key: String,
    integrity: Option<String>,
}

/// Reads npm's `_cacache/index-v5` buckets: lines `\n<sha1 hex of json>\t<json>`, last entry per
/// key wins, `integrity: null` deletes. Content lives under `content-v2/<algo>/<hex…>`.
fn discover_cacache(cacache: &Path) -> Result<Vec<ImportSource>> {
    let index = cacache.join("index-v5");
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut stack = vec![index];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let p = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
                continue;
            }
            let text = fs::read_to_string(&p).map_err(Error::io("cannot read", &p))?;
            for line in text.lines().filter(|l| !l.is_empty()) {
                let Some((hash, json)) = line.split_once('\t') else {
                    continue;
                };
                if hex::encode(Sha1::digest(json.as_bytes())) != hash {
                    tracing::debug!(bucket = %p.display(), "skipping corrupt cache index line");
                    continue;
                }
                if let Ok(e) = serde_json::from_str::<CacheEntry>(json) {
                    latest.insert(e.key, e.integrity);
                }
            }
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (key, integrity) in latest {
        let Some(integrity) = integrity else { continue };
        let parsed: Integrity = integrity.parse()?;
        let Some(hash) = parsed.strongest() else {
            continue;
        };
        let hex = hash.hex();
        let (a, rest) = hex.split_at(hex.len().min(2));
        let (b, c) = rest.split_at(rest.len().min(2));
        let content = cacache
            .join("content-v2")
            .join(hash.algorithm.name())
            .join(a)
            .join(b)
            .join(c);
        if !seen.insert(content.clone()) {
            continue;
        }
        // Only tarballs: npm also caches registry metadata (JSON) in the same store.
        let mut magic = [0u8; 2];
        let is_gzip = File::open(&content)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == [0x1f, 0x8b];
        if !is_gzip {
            continue;
        }
        out.push(ImportSource {
            path: content,
            expected: Some(parsed),
            label: key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_any_single_top_directory() {
        assert_eq!(
            normalize_path("package/lib/a.js").unwrap(),
            vec!["lib", "a.js"]
        );
        assert_eq!(normalize_path("node-v1/./a.js").unwrap(), vec!["a.js"]);
        assert_eq!(normalize_path("/etc/passwd"), Err(Rejection::AbsolutePath));
        assert_eq!(
            normalize_path("package/../x"),
            Err(Rejection::ParentComponent)
        );
    }

    #[test]
    fn resolves_links_inside_and_refuses_escapes() {
        let link = vec!["lib".to_owned(), "l".to_owned()];
        assert_eq!(
            resolve_link(&link, "../index.js").unwrap(),
            vec!["index.js"]
        );
        assert!(resolve_link(&link, "../../x").is_none());
        assert!(resolve_link(&link, "/etc/passwd").is_none());
    }

    proptest::proptest! {
        /// Whatever the tarball says, an accepted path has no `..`, no empty component and no
        /// leading `/`, and a resolved link target stays inside the package.
        #[test]
        fn accepted_paths_and_links_stay_inside(
            parts in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "..", ".", "", "node_modules"]), 0..8),
            target in proptest::collection::vec(proptest::sample::select(vec!["a", "..", ".", ""]), 0..6),
            absolute in proptest::bool::ANY,
        ) {
            let raw = format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"));
            if let Ok(components) = normalize_path(&raw) {
                proptest::prop_assert!(!absolute);
                proptest::prop_assert!(components.iter().all(|c| !c.is_empty() && c != ".." && c != "."));
                let target = target.join("/");
                // Independent model: walk depths; going above the package root is an escape.
                let mut depth = (components.len() as i64 - 1).max(0);
                let mut escaped = target.starts_with('/');
                for part in target.split('/') {
                    match part {
                        "" | "." => {}
                        ".." => { depth -= 1; escaped |= depth < 0; }
                        _ => depth += 1,
                    }
                }
                match resolve_link(&components, &target) {
                    Some(resolved) => {
                        proptest::prop_assert!(!escaped);
                        proptest::prop_assert_eq!(resolved.len() as i64, depth.max(0));
                        proptest::prop_assert!(resolved.iter().all(|c| c != ".." && !c.is_empty()));
                    }
                    None => proptest::prop_assert!(escaped),
                }
            }
        }
    }

    #[test]
    fn bins_from_string_and_map() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"name":"@s/tool","bin":"./cli.js"}"#).unwrap();
        assert_eq!(package_bins(&json).get("tool").unwrap(), "cli.js");
        let json: serde_json::Value =
            serde_json::from_str(r#"{"bin":{"a":"bin/a","b":"./b"}}"#).unwrap();
        assert_eq!(package_bins(&json).len(), 2);
    }
}
