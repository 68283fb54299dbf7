//! Importing tarballs into the store: from `.tgz` files, directories of them, or an npm cache.
//!
//! # Why so strict
//!
//! A tarball is untrusted input that ends up next to running code. The importer verifies the
//! tarball's SRI integrity before unpacking anything, then checks every entry: absolute paths,
//! `..` components, symlinks or hardlinks that escape the package (or traverse another link),
//! device files and FIFOs, and entries or totals over the [`ImportLimits`](crate::config::ImportLimits)
//! (decompression bombs, hostile names) are refused with an error naming the entry. The first
//! path component (`package/` in npm tarballs, or any other single prefix) is removed, as npm
//! does. Content is written to temporary files and renamed into the store; the package index is
//! published last, so a crash or a rejection leaves nothing visible.
//!
//! # Why refusing must be cheap
//!
//! A hostile tarball should cost less to refuse than it cost to make. Every limit is checked as
//! soon as the bytes it bounds are known, before any work that depends on them, and every step
//! is linear in what it reads, so an import's CPU time and memory are bounded by the limits,
//! whatever the tarball: node-tar's `excessively-deep.tar` (a 444 KB path) used to take minutes
//! and be accepted; it is now refused in about a millisecond.
//!
//! # Which hashes find a package again
//!
//! The package index is filed under the sha512 and sha1 the importer computed from the bytes,
//! plus any other hash of the caller's integrity that the bytes were verified against
//! (sha256/sha384 from a custom cache). A hash the bytes do not match — say, another package's
//! sha1 listed next to a correct sha512 in a crafted npm cache entry — is never used as a key:
//! it would let one cache entry answer for another package.
//!
//! The pieces, leaves first: `paths` (normalization and name limits), `tar_stream` (bounded
//! decompression, GNU and PAX metadata), `links` (the link-traversal check), `package_json`
//! (name, version, bins), `unpack` (one tarball), `cacache` (npm's cache), and the `Store`
//! methods below that tie them together.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::integrity::{Algorithm, Digests, Integrity};
use crate::store::{PackageIndex, Store};

mod cacache;
mod links;
pub(crate) mod package_json;
pub(crate) mod paths;
mod tar_stream;
mod unpack;

use unpack::Unpacker;

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

fn bad(label: &str, reason: impl std::fmt::Display) -> Error {
    Error::BadTarball {
        tarball: label.to_owned(),
        reason: reason.to_string(),
    }
}

// The import methods of `Store`, written here as an extension: `import` depends on `store`,
// never the reverse (the store module calls none of them; `crate::repair` re-imports). Kept
// as methods, not free functions, because `store.import_*` is the public API callers use.
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

    /// Imports a tarball held in memory. `expected`, when given, must match the bytes (by npm's
    /// `ssri` rule: a hash of its strongest algorithm must match); `source` is recorded to
    /// re-import the package if its files get corrupted.
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
        // Work in flight: gc through any clone of this handle waits for the import.
        let _work = self.work();
        let mut digests = Digests::new(bytes);
        let sha512 = digests.hash(Algorithm::Sha512);
        let sha1 = digests.hash(Algorithm::Sha1);
        let actual = Integrity::from_hashes([sha512.clone(), sha1.clone()])
            .ok_or_else(|| bad(label, "no hash computed"))?;
        if let Some(expected) = expected
            && expected.matching_with(&mut digests).is_none()
        {
            return Err(Error::IntegrityMismatch {
                what: label.to_owned(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let (sha512, sha1) = (sha512.to_string(), sha1.to_string());
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
        let mut index = self.unpack(label, bytes, &sha512, &sha1)?;
        index.source = source;
        let keys = verified_keys(label, &actual, expected, &mut digests, &mut index);
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
    fn unpack(&self, label: &str, bytes: &[u8], sha512: &str, sha1: &str) -> Result<PackageIndex> {
        let limits = self.config().limits;
        let mut unpacker = Unpacker::new(self, label, limits);
        tar_stream::for_each_entry(bytes, label, &limits, |entry| unpacker.entry(entry))?;
        unpacker.check_link_traversal()?;
        unpacker.finish(sha512, sha1)
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
            return cacache::discover_cacache(path);
        }
        if path.join("_cacache").join("index-v5").is_dir() {
            return cacache::discover_cacache(&path.join("_cacache"));
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

/// The hashes the index is filed under: the sha512 and sha1 computed from the bytes, and every
/// other hash of `expected` that the bytes were verified against (recorded in the index, so
/// that a lookup can check it). A hash the bytes do not match is never a key.
fn verified_keys(
    label: &str,
    actual: &Integrity,
    expected: Option<&Integrity>,
    digests: &mut Digests<'_>,
    index: &mut PackageIndex,
) -> Integrity {
    let mut keys = actual.hashes().to_vec();
    for hash in expected.map(Integrity::hashes).unwrap_or_default() {
        if keys.contains(hash) {
            continue;
        }
        if digests.get(hash.algorithm) == hash.digest.as_slice() {
            index.verified_keys.push(hash.to_string());
            keys.push(hash.clone());
        } else {
            tracing::warn!(
                tarball = label,
                hash = %hash,
                integrity = %index.integrity,
                "a hash announced for the tarball does not match its bytes; the package is not filed under it"
            );
        }
    }
    Integrity::from_hashes(keys).unwrap_or_else(|| actual.clone())
}
