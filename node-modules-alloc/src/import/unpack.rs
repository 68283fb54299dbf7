//! One tarball being unpacked: every entry checked, content hashed into temporary files, the
//! package index built last.
//!
//! # Why each step is linear
//!
//! Every per-entry step (path normalization, link resolution, the hardlink lookup, the
//! link-traversal check, building the index) is linear in the entry's path and target, and
//! `max_total_components` bounds their sum: the CPU time of an import is bounded by the limits,
//! whatever the tarball. Small files (up to 64 KiB) are hashed in memory first, and content
//! already in the store or already seen in this tarball is never written again, so a tarball
//! of 100 000 identical tiny files costs 100 000 hashes, not 100 000 temporary files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha512};

use super::links::LinkSet;
use super::package_json::{PackageJson, parse_package_json_bins};
use super::paths::{display_name, normalize_entry_path, resolve_link, target_components};
use super::tar_stream::{StreamEntry, read_error};
use crate::config::ImportLimits;
use crate::error::{Error, Rejection, Result};
use crate::store::{IndexEntry, PackageIndex, Store};

/// Files up to this size are read into memory and hashed before any temporary file is made.
const SMALL_FILE: u64 = 64 * 1024;

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
}

/// State of one tarball being unpacked.
pub(crate) struct Unpacker<'a> {
    store: &'a Store,
    label: &'a str,
    limits: ImportLimits,
    temps: TempFiles,
    files: Vec<PendingFile>,
    by_path: HashMap<String, usize>,
    symlinks: HashMap<String, String>,
    /// Content seen, by digest: the temporary file holding it, or `None` when the store
    /// already had it.
    contents: HashMap<String, Option<PathBuf>>,
    package_json: Option<Vec<u8>>,
    /// Unpacked size: file data plus one copy per hardlink.
    unpacked: u64,
    entries: u64,
    components: u64,
}

impl<'a> Unpacker<'a> {
    pub(crate) fn new(store: &'a Store, label: &'a str, limits: ImportLimits) -> Self {
        Self {
            store,
            label,
            limits,
            temps: TempFiles(Vec::new()),
            files: Vec::new(),
            by_path: HashMap::new(),
            symlinks: HashMap::new(),
            contents: HashMap::new(),
            package_json: None,
            unpacked: 0,
            entries: 0,
            components: 0,
        }
    }

    fn reject(&self, entry: &str, reason: Rejection) -> Error {
        Error::Rejected {
            tarball: self.label.to_owned(),
            entry: entry.to_owned(),
            reason,
        }
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadTarball {
            tarball: self.label.to_owned(),
            reason,
        }
    }

    fn add_unpacked(&mut self, entry: &str, n: u64) -> Result<()> {
        self.unpacked = self.unpacked.saturating_add(n);
        if self.unpacked > self.limits.max_total_bytes {
            return Err(self.reject(
                entry,
                Rejection::TotalTooLarge {
                    limit: self.limits.max_total_bytes,
                },
            ));
        }
        Ok(())
    }

    /// Charges `n` path components to the import's work budget.
    fn spend(&mut self, entry: &str, n: u64) -> Result<()> {
        self.components = self.components.saturating_add(n);
        if self.components > self.limits.max_total_components {
            return Err(self.reject(
                entry,
                Rejection::TooManyComponents {
                    limit: self.limits.max_total_components,
                },
            ));
        }
        Ok(())
    }

    /// Checks and records one entry.
    pub(crate) fn entry(&mut self, entry: &mut StreamEntry<'_>) -> Result<()> {
        use tar::EntryType as T;
        self.entries += 1;
        let name = display_name(&entry.path);
        if self.entries > self.limits.max_entries {
            return Err(self.reject(
                &name,
                Rejection::TooManyEntries {
                    limit: self.limits.max_entries,
                },
            ));
        }
        let parts =
            normalize_entry_path(&entry.path, &self.limits).map_err(|r| self.reject(&name, r))?;
        self.spend(&name, parts.len() as u64 + 1)?;
        let special = |kind| Err(self.reject(&name, Rejection::SpecialFile { kind }));
        match entry.kind {
            T::Directory => return Ok(()),
            T::Char => return special("character device"),
            T::Block => return special("block device"),
            T::Fifo => return special("fifo"),
            T::Regular | T::Continuous | T::Symlink | T::Link => {}
            _ => return special("unsupported"),
        }
        if parts.is_empty() {
            // The top directory itself, or a file outside any top directory.
            tracing::debug!(tarball = self.label, entry = %name, "skipping entry outside the top directory");
            return Ok(());
        }
        match entry.kind {
            T::Symlink => {
                let target = self.link_target(&name, &entry.link)?;
                self.symlink(&name, &parts, target)
            }
            T::Link => {
                let target = self.link_target(&name, &entry.link)?;
                self.hardlink(&name, parts.join("/"), target)
            }
            _ => {
                let exec = entry.mode & 0o111 != 0;
                self.regular(&mut *entry.data, &name, parts.join("/"), entry.size, exec)
            }
        }
    }

    /// A link target within the limits, as UTF-8, charged to the work budget.
    fn link_target(&mut self, name: &str, raw: &[u8]) -> Result<String> {
        let len = raw.len() as u64;
        if len > self.limits.max_link_target_bytes {
            return Err(self.reject(
                name,
                Rejection::LinkTargetTooLong {
                    len,
                    limit: self.limits.max_link_target_bytes,
                },
            ));
        }
        if raw.contains(&0) {
            return Err(self.reject(name, Rejection::NulInPath));
        }
        let Ok(target) = std::str::from_utf8(raw) else {
            return Err(self.reject(name, Rejection::NonUtf8Path));
        };
        self.spend(name, target_components(target))?;
        Ok(target.to_owned())
    }

    fn symlink(&mut self, name: &str, parts: &[String], target: String) -> Result<()> {
        if target.is_empty() || resolve_link(parts, &target).is_none() {
            return Err(self.reject(
                name,
                Rejection::LinkEscapes {
                    kind: "symlink",
                    target,
                },
            ));
        }
        self.symlinks.insert(parts.join("/"), target);
        Ok(())
    }

    fn hardlink(&mut self, name: &str, path: String, target: String) -> Result<()> {
        if target.is_empty() {
            return Err(self.reject(name, Rejection::DanglingHardlink { target }));
        }
        let Ok(target_parts) = normalize_entry_path(target.as_bytes(), &self.limits) else {
            return Err(self.reject(
                name,
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
            return Err(self.reject(name, Rejection::DanglingHardlink { target }));
        };
        let pending = PendingFile {
            path: path.clone(),
            digest: source.digest.clone(),
            size: source.size,
            exec: source.exec,
        };
        self.add_unpacked(name, pending.size)?;
        self.symlinks.remove(&path);
        self.by_path.insert(path, self.files.len());
        self.files.push(pending);
        Ok(())
    }

    fn regular(
        &mut self,
        data: &mut dyn Read,
        name: &str,
        path: String,
        size: u64,
        exec: bool,
    ) -> Result<()> {
        if size > self.limits.max_entry_bytes {
            return Err(self.reject(
                name,
                Rejection::EntryTooLarge {
                    limit: self.limits.max_entry_bytes,
                },
            ));
        }
        let keep_json = path == "package.json";
        if keep_json && size > self.limits.max_package_json_bytes {
            return Err(self.reject(
                name,
                Rejection::PackageJsonTooLarge {
                    limit: self.limits.max_package_json_bytes,
                },
            ));
        }
        let digest = if size <= SMALL_FILE {
            self.small_file(data, name, size, keep_json)?
        } else {
            self.large_file(data, name, size, keep_json)?
        };
        self.symlinks.remove(&path);
        self.by_path.insert(path.clone(), self.files.len());
        self.files.push(PendingFile {
            path,
            digest,
            size,
            exec,
        });
        Ok(())
    }

    /// Whether the store holds an intact copy of this content (either variant): a truncated or
    /// modified file at the address does not count, so the fresh bytes replace it.
    fn in_store(&self, digest: &str, size: u64) -> bool {
        self.store.content_intact(digest, false, size)
            || self.store.content_intact(digest, true, size)
    }

    /// Reads a small file into memory; writes it to a temporary file only if its content is
    /// new to the store and to this tarball.
    fn small_file(
        &mut self,
        data: &mut dyn Read,
        name: &str,
        size: u64,
        keep_json: bool,
    ) -> Result<String> {
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
        data.take(size)
            .read_to_end(&mut buf)
            .map_err(|e| read_error(self.label, name, &e))?;
        if buf.len() as u64 != size {
            return Err(self.bad(format!("entry {name:?}: archive ends inside its data")));
        }
        self.add_unpacked(name, size)?;
        let digest = hex::encode(Sha512::digest(&buf));
        if !self.contents.contains_key(&digest) {
            let tmp = if self.in_store(&digest, size) {
                None
            } else {
                let tmp = self.store.temp_path();
                self.temps.0.push(tmp.clone());
                fs::write(&tmp, &buf).map_err(Error::io("cannot write", &tmp))?;
                Some(tmp)
            };
            self.contents.insert(digest.clone(), tmp);
        }
        if keep_json {
            self.package_json = Some(buf);
        }
        Ok(digest)
    }

    /// Streams a large file into a temporary file while hashing it.
    fn large_file(
        &mut self,
        data: &mut dyn Read,
        name: &str,
        size: u64,
        keep_json: bool,
    ) -> Result<String> {
        let tmp = self.store.temp_path();
        self.temps.0.push(tmp.clone());
        let mut out = File::create(&tmp).map_err(Error::io("cannot create", &tmp))?;
        let mut hasher = Sha512::new();
        let mut read: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let mut json = Vec::new();
        loop {
            let n = data
                .read(&mut buf)
                .map_err(|e| read_error(self.label, name, &e))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            self.add_unpacked(name, n as u64)?;
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            out.write_all(chunk)
                .map_err(Error::io("cannot write", &tmp))?;
            if keep_json {
                json.extend_from_slice(chunk);
            }
        }
        drop(out);
        if read != size {
            return Err(self.bad(format!("entry {name:?}: archive ends inside its data")));
        }
        let digest = hex::encode(hasher.finalize());
        if self.contents.contains_key(&digest) || self.in_store(&digest, size) {
            let _ = fs::remove_file(&tmp);
            self.contents.entry(digest.clone()).or_insert(None);
        } else {
            self.contents.insert(digest.clone(), Some(tmp));
        }
        if keep_json {
            self.package_json = Some(json);
        }
        Ok(digest)
    }

    /// Links must not be traversed by other entries: a path through a symlink could resolve
    /// outside the package even when every target looks contained on its own. Linear in the
    /// total length of paths and targets (see [`LinkSet`]).
    pub(crate) fn check_link_traversal(&self) -> Result<()> {
        if self.symlinks.is_empty() {
            return Ok(());
        }
        let set = LinkSet::new(&self.symlinks);
        let mut links: Vec<(&String, &String)> = self.symlinks.iter().collect();
        links.sort_unstable();
        for (path, target) in links {
            if set.link_prefix_of(path).is_some() || set.target_passes_through_link(path, target) {
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
            if set.link_prefix_of(&file.path).is_some() {
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
    pub(crate) fn finish(self, sha512: &str, sha1: &str) -> Result<PackageIndex> {
        let mut package = match self.package_json.as_deref().map(parse_package_json_bins) {
            Some(Ok(package)) => package,
            Some(Err(e)) => {
                tracing::warn!(tarball = self.label, error = %e, "package.json is not readable JSON; no name, version or bins taken from it");
                PackageJson::default()
            }
            None => PackageJson::default(),
        };
        // Last occurrence of a path wins (tar semantics); a symlink wins over a file only if
        // it came later (a later file removed it from `symlinks`).
        let mut finals: BTreeMap<&str, Option<&PendingFile>> = BTreeMap::new();
        for file in &self.files {
            if !self.symlinks.contains_key(&file.path) {
                finals.insert(&file.path, Some(file));
            }
        }
        for path in self.symlinks.keys() {
            finals.insert(path, None);
        }
        package.expand_bin_dir(finals.keys().copied());
        for skipped in &package.skipped {
            tracing::warn!(
                tarball = self.label,
                package = package.name.as_deref().unwrap_or("(unnamed)"),
                bin = %skipped.name,
                target = %skipped.target,
                reason = %skipped.reason,
                "invalid bin in package.json skipped: it will not be linked"
            );
        }
        let bin_targets: HashSet<&str> = package.bins.values().map(String::as_str).collect();
        let mut published: HashSet<(&str, bool)> = HashSet::new();
        let mut entries = Vec::with_capacity(finals.len());
        for (path, file) in finals {
            let Some(file) = file else {
                let target = self.symlinks.get(path).cloned().unwrap_or_default();
                entries.push(IndexEntry::Symlink {
                    path: path.to_owned(),
                    target,
                });
                continue;
            };
            let exec = file.exec || bin_targets.contains(path);
            if published.insert((&file.digest, exec))
                && !self.store.content_intact(&file.digest, exec, file.size)
            {
                match self.contents.get(&file.digest) {
                    Some(Some(tmp)) if tmp.exists() => {
                        self.store.publish_temp(tmp, &file.digest, exec)?;
                    }
                    // The store had it, or the other variant consumed the temporary file.
                    _ => self.store.ensure_variant(&file.digest, exec)?,
                }
            }
            entries.push(IndexEntry::File {
                path: path.to_owned(),
                digest: file.digest.clone(),
                size: file.size,
                exec,
            });
        }
        Ok(PackageIndex {
            integrity: sha512.to_owned(),
            sha1: sha1.to_owned(),
            name: package.name,
            version: package.version,
            bins: package.bins,
            entries,
            source: None,
            verified_keys: Vec::new(),
        })
    }
}
