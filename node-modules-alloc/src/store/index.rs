//! Package indexes: the files of one tarball, keyed by its integrity.

use std::collections::BTreeMap;
use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Store;
use crate::bins::{normalize_bin_target, validate_bin_name};
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::integrity::{Hash, Integrity};

/// One entry of a package index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum IndexEntry {
    /// A regular file.
    File {
        /// Path inside the package (`lib/index.js`), top directory removed.
        path: String,
        /// sha512 hex of the content.
        digest: String,
        /// Size in bytes.
        size: u64,
        /// Whether the file is executable (tarball mode had an x bit, or it is a declared bin).
        exec: bool,
    },
    /// A symbolic link that stays inside the package.
    Symlink {
        /// Path inside the package.
        path: String,
        /// Link target, relative.
        target: String,
    },
}

impl IndexEntry {
    /// The entry's path inside the package.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// The package index of one tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageIndex {
    /// The tarball's sha512 integrity.
    pub integrity: String,
    /// The tarball's sha1 integrity.
    pub sha1: String,
    /// `name` from the package's `package.json`, if any.
    pub name: Option<String>,
    /// `version` from the package's `package.json`, if any.
    pub version: Option<String>,
    /// Declared bins (`name` → path inside the package).
    pub bins: BTreeMap<String, String>,
    /// Entries, sorted by path.
    pub entries: Vec<IndexEntry>,
    /// Where the tarball was imported from (used to re-import quarantined files).
    pub source: Option<PathBuf>,
    /// Other integrity hashes (sha256, sha384 from a custom cache) that the tarball's bytes
    /// were verified against and under which this index is also filed. A lookup by a hash that
    /// is neither `integrity`, `sha1` nor listed here does not accept the index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_keys: Vec<String>,
}

impl Store {
    fn index_path(&self, hash: &Hash) -> PathBuf {
        self.dir("index")
            .join(format!("{}-{}.json", hash.algorithm.name(), hash.hex()))
    }

    /// Looks a package up by its integrity: by each hash of the strongest algorithm present,
    /// as npm's `ssri` checks data (a weaker sha1 listed next to a sha512 is never used to find
    /// a package the sha512 does not name).
    ///
    /// An index is only accepted under a hash it carries (its `integrity`, its `sha1`, or one of
    /// its `verified_keys`): an index file found under another name — planted, or written by an
    /// older version that filed packages under unverified hashes — is ignored with a warning,
    /// so one package can never answer for another's integrity. Bins whose name or target the
    /// importer would refuse today (an index written by an older version) are dropped with a
    /// warning, so they are never linked.
    pub fn read_index(&self, integrity: &Integrity) -> Result<Option<PackageIndex>> {
        let Some(strongest) = integrity.strongest_algorithm() else {
            return Ok(None);
        };
        for hash in integrity
            .hashes()
            .iter()
            .filter(|h| h.algorithm == strongest)
        {
            let path = self.index_path(hash);
            match fs::read(&path) {
                Ok(bytes) => {
                    let mut index: PackageIndex =
                        serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    if index_carries(&index, hash) {
                        drop_invalid_bins(&mut index, &path);
                        return Ok(Some(index));
                    }
                    tracing::warn!(
                        index = %path.display(),
                        integrity = %hash,
                        found = %index.integrity,
                        "package index does not carry the hash it is filed under; ignored"
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot read", path)(e)),
            }
        }
        Ok(None)
    }

    /// Writes a package index under each hash of `keys` (atomic, synced). Every key must have
    /// been verified against the tarball's bytes (see `import`), and be one that
    /// [`Store::read_index`] accepts for this index.
    pub(crate) fn write_index(&self, index: &PackageIndex, keys: &Integrity) -> Result<()> {
        let bytes = serde_json::to_vec(index).map_err(|e| Error::Malformed {
            path: self.dir("index"),
            reason: e.to_string(),
        })?;
        for hash in keys.hashes() {
            if !index_carries(index, hash) {
                return Err(Error::Malformed {
                    path: self.index_path(hash),
                    reason: format!(
                        "refusing to file package {} under {hash}, a hash it does not carry",
                        index.integrity
                    ),
                });
            }
            atomic_write(
                &self.dir("tmp"),
                &self.index_path(hash),
                &bytes,
                true,
                0o644,
            )?;
        }
        Ok(())
    }

    /// Whether every file an index lists is present in the store (each content variant checked
    /// once, however many entries share it).
    pub(crate) fn has_all_files(&self, index: &PackageIndex) -> bool {
        let mut checked = std::collections::HashSet::new();
        index.entries.iter().all(|e| match e {
            IndexEntry::File {
                digest, exec, size, ..
            } => {
                !checked.insert((digest.as_str(), *exec))
                    || self.content_intact(digest, *exec, *size)
            }
            IndexEntry::Symlink { .. } => true,
        })
    }

    /// All package indexes (deduplicated by sha512 integrity).
    pub fn indexes(&self) -> Result<Vec<PackageIndex>> {
        let dir = self.dir("index");
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("sha512-") {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(Error::io("cannot read", &path))?;
            let index: PackageIndex =
                serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            out.insert(index.integrity.clone(), index);
        }
        Ok(out.into_values().collect())
    }
}

/// Removes bins whose name or target an importer of today would have refused.
fn drop_invalid_bins(index: &mut PackageIndex, path: &Path) {
    index.bins.retain(|name, target| {
        let valid = validate_bin_name(name).is_ok()
            && normalize_bin_target(target).is_ok_and(|t| t == *target);
        if !valid {
            tracing::warn!(index = %path.display(), bin = %name, target = %target, "invalid bin in package index dropped: it will not be linked");
        }
        valid
    });
}

/// Whether `index` is the package of `hash`: its sha512 `integrity`, its `sha1`, or a recorded
/// verified key.
fn index_carries(index: &PackageIndex, hash: &Hash) -> bool {
    let key = hash.to_string();
    let own = |text: &str| {
        text.parse::<Integrity>()
            .is_ok_and(|i| i.hashes().contains(hash))
    };
    own(&index.integrity) || own(&index.sha1) || index.verified_keys.contains(&key)
}
