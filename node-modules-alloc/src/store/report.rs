//! What a verification ([`StoreReport`]) and a garbage collection ([`GcReport`]) found.

/// The outcome of [`Store::verify`](super::Store::verify).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Store files re-hashed.
    pub checked: usize,
    /// Content digests (with `-exec` suffix for executable variants) that were quarantined.
    pub quarantined: Vec<String>,
    /// Packages re-imported from their source.
    pub reimported: Vec<String>,
    /// Packages whose files were quarantined and whose source is gone.
    pub unrecoverable: Vec<String>,
    /// Templates removed because they linked quarantined content.
    pub templates_removed: usize,
}

impl StoreReport {
    /// Whether the store is fully healthy now (nothing unrecoverable).
    pub fn is_healthy(&self) -> bool {
        self.unrecoverable.is_empty()
    }
}

/// The outcome of [`Store::gc`](super::Store::gc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Content files not referenced by any package index, removed.
    pub files_removed: usize,
    /// Templates removed (they are caches and are rebuilt on demand).
    pub templates_removed: usize,
    /// Work-in-progress, lock and quarantine entries removed.
    pub scratch_removed: usize,
    /// Manifests removed: no template uses them and nothing used them within
    /// [`GcConfig::manifest_retention`](super::GcConfig::manifest_retention).
    pub manifests_removed: usize,
}
