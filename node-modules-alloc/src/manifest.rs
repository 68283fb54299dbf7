//! The manifest of a `node_modules` tree: every file (content digest, size, executable bit)
//! and symlink, sorted by path. Its sha512 digest names the tree: identical lockfiles give
//! identical manifests, hence one template, and the completion marker of a published tree
//! holds this digest.
//!
//! ```
//! use node_modules_alloc::manifest::{Manifest, ManifestEntry};
//!
//! let manifest = Manifest {
//!     entries: vec![ManifestEntry::Symlink { path: ".bin/tool".into(), target: "../tool/cli.js".into() }],
//! };
//! assert_eq!(manifest.digest(), manifest.clone().digest());
//! assert_eq!(manifest.digest().len(), 128);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, MissingPackage, Result};
use crate::fsutil::atomic_write;
use crate::integrity::sha512_hex;
use crate::lockfile::{Lockfile, Selection};
use crate::store::{IndexEntry, Store};

/// One entry of a tree, path relative to the `node_modules` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ManifestEntry {
    /// A file linked or copied from the store.
    File {
        /// Path relative to `node_modules`.
        path: String,
        /// sha512 hex of the content.
        digest: String,
        /// Size in bytes.
        size: u64,
        /// Executable variant.
        exec: bool,
    },
    /// A symlink (package symlinks and `.bin` links).
    Symlink {
        /// Path relative to `node_modules`.
        path: String,
        /// Relative link target.
        target: String,
    },
}

impl ManifestEntry {
    /// The entry's path relative to `node_modules`.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// A tree description.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Entries sorted by path.
    pub entries: Vec<ManifestEntry>,
}

/// A lockfile resolved against the store.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The tree to build.
    pub manifest: Manifest,
    /// `manifest.digest()`.
    pub digest: String,
    /// Digest of the selected lockfile entries (path, integrity, bins).
    pub lockfile_digest: String,
    /// Packages installed.
    pub packages: usize,
}

impl Manifest {
    /// sha512 hex of the canonical JSON form.
    pub fn digest(&self) -> String {
        sha512_hex(&serde_json::to_vec(self).unwrap_or_default())
    }

    /// Number of regular files.
    pub fn files(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, ManifestEntry::File { .. }))
            .count()
    }

    /// Content digests of all files.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            ManifestEntry::File { digest, .. } => Some(digest.as_str()),
            ManifestEntry::Symlink { .. } => None,
        })
    }

    /// Saves the manifest under `STORE/manifests/<digest>.json` and returns the digest.
    pub fn save(&self, store: &Store) -> Result<String> {
        let digest = self.digest();
        let path = store.dir("manifests").join(format!("{digest}.json"));
        if !path.exists() {
            let bytes = serde_json::to_vec(self).map_err(|e| Error::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            atomic_write(&store.dir("tmp"), &path, &bytes, true, 0o444)?;
        }
        Ok(digest)
    }

    /// Loads a saved manifest and checks that it still hashes to `digest`.
    pub fn load(store: &Store, digest: &str) -> Result<Self> {
        let path = store.dir("manifests").join(format!("{digest}.json"));
        let bytes = std::fs::read(&path).map_err(Error::io("cannot read manifest", &path))?;
        let manifest: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.digest() != digest {
            return Err(Error::Malformed {
                path,
                reason: "manifest does not hash to its name".to_owned(),
            });
        }
        Ok(manifest)
    }

    /// Resolves the selected packages of `lockfile` against the store. Fails with
    /// [`Error::MissingPackages`] listing *every* package the store lacks.
    pub fn plan(store: &Store, lockfile: &Lockfile, selection: &Selection) -> Result<Plan> {
        let mut entries: BTreeMap<String, ManifestEntry> = BTreeMap::new();
        let mut missing = Vec::new();
        let mut packages = 0;
        let mut canonical = Vec::new();
        let conflict = |path: &str, what: &str| Error::Lockfile {
            file: lockfile.file().to_path_buf(),
            location: format!("packages[{path:?}]"),
            reason: format!("{what} conflicts with another package's entry"),
        };
        for pkg in lockfile.select(selection) {
            canonical.push((
                pkg.path.clone(),
                pkg.integrity.to_string(),
                pkg.bins.clone(),
            ));
            let Some(index) = store.read_index(&pkg.integrity)? else {
                missing.push(MissingPackage {
                    path: pkg.path.clone(),
                    integrity: pkg.integrity.to_string(),
                });
                continue;
            };
            packages += 1;
            let rel = pkg.path.strip_prefix("node_modules/").unwrap_or(&pkg.path);
            let mut bins = index.bins.clone();
            bins.extend(pkg.bins.clone());
            let bin_targets: std::collections::HashSet<&str> =
                bins.values().map(String::as_str).collect();
            for entry in &index.entries {
                let path = format!("{rel}/{}", entry.path());
                let item = match entry {
                    IndexEntry::File {
                        digest, size, exec, ..
                    } => ManifestEntry::File {
                        path: path.clone(),
                        digest: digest.clone(),
                        size: *size,
                        exec: *exec || bin_targets.contains(entry.path()),
                    },
                    IndexEntry::Symlink { target, .. } => ManifestEntry::Symlink {
                        path: path.clone(),
                        target: target.clone(),
                    },
                };
                if entries.insert(path.clone(), item).is_some() {
                    return Err(conflict(&pkg.path, &path));
                }
            }
            // `.bin` lives in the node_modules directory that holds the package.
            let name_depth = if pkg.name.starts_with('@')
                && rel.rsplit('/').nth(1).is_some_and(|s| s.starts_with('@'))
            {
                2
            } else {
                1
            };
            let parts: Vec<&str> = rel.split('/').collect();
            let split = parts.len().saturating_sub(name_depth);
            let parent = parts.get(..split).map(|p| p.join("/")).unwrap_or_default();
            let own = parts.get(split..).map(|p| p.join("/")).unwrap_or_default();
            for (bin, target) in &bins {
                if !index.entries.iter().any(|e| e.path() == target) {
                    tracing::warn!(package = %pkg.path, bin, target, "bin target missing from package; skipped");
                    continue;
                }
                let link = if parent.is_empty() {
                    format!(".bin/{bin}")
                } else {
                    format!("{parent}/.bin/{bin}")
                };
                if entries.contains_key(&link) {
                    tracing::debug!(package = %pkg.path, bin, "bin already provided by another package");
                    continue;
                }
                entries.insert(
                    link.clone(),
                    ManifestEntry::Symlink {
                        path: link,
                        target: format!("../{own}/{target}"),
                    },
                );
            }
        }
        if !missing.is_empty() {
            return Err(Error::MissingPackages { missing });
        }
        let manifest = Self {
            entries: entries.into_values().collect(),
        };
        let lockfile_digest =
            sha512_hex(&serde_json::to_vec(&(canonical, selection)).unwrap_or_default());
        Ok(Plan {
            digest: manifest.digest(),
            manifest,
            lockfile_digest,
            packages,
        })
    }
}
