//! Repairing the store after corruption: [`Store::verify`].
//!
//! Why a module of its own: repairing needs three mechanisms the store itself must not know
//! about — the manifests (which templates link a bad file), and the importer (re-import a
//! package from its recorded source). Written here as an `impl Store` extension, it keeps
//! the imports one way: `repair` depends on `store`, `manifest` and `import`; `store`
//! depends on none of them. Callers see one `Store` API either way.

use std::collections::BTreeSet;
use std::fs;

use crate::error::{Error, Result};
use crate::integrity::Integrity;
use crate::manifest::Manifest;
use crate::store::{IndexEntry, Store, StoreReport};

impl Store {
    /// Re-hashes every store file (content, not size or mtime). Mismatching files are
    /// quarantined, templates linking them are removed (each once no clone reads it), and their
    /// packages are re-imported from their recorded source when it still exists.
    pub fn verify(&self) -> Result<StoreReport> {
        let _work = self.work();
        let mut report = StoreReport::default();
        let mut bad = BTreeSet::new();
        for (digest, exec) in self.content_files()? {
            report.checked += 1;
            if !self.verify_file(&digest, exec)? {
                self.quarantine(&digest, exec)?;
                report
                    .quarantined
                    .push(format!("{digest}{}", if exec { "-exec" } else { "" }));
                bad.insert(digest);
            }
        }
        if bad.is_empty() {
            return Ok(report);
        }
        report.templates_removed = self.remove_templates_with(&bad)?;
        self.reimport_affected(&bad, &mut report)?;
        Ok(report)
    }

    /// Re-imports every package that references one of `bad` (content digests) from its source.
    pub(crate) fn reimport_affected(
        &self,
        bad: &BTreeSet<String>,
        report: &mut StoreReport,
    ) -> Result<()> {
        for index in self.indexes()? {
            let affected = index.entries.iter().any(|e| match e {
                IndexEntry::File { digest, .. } => bad.contains(digest),
                IndexEntry::Symlink { .. } => false,
            });
            if !affected {
                continue;
            }
            match index.source.as_deref().filter(|s| s.exists()) {
                Some(source) => {
                    let expected: Integrity = index.integrity.parse()?;
                    match self.import_tarball_file_expecting(source, Some(&expected), true) {
                        Ok(_) => {
                            tracing::info!(integrity = %index.integrity, source = %source.display(), "re-imported package after quarantine");
                            report.reimported.push(index.integrity.clone());
                        }
                        Err(e) => {
                            tracing::warn!(integrity = %index.integrity, error = %e, "re-import failed");
                            report.unrecoverable.push(index.integrity.clone());
                        }
                    }
                }
                None => report.unrecoverable.push(index.integrity.clone()),
            }
        }
        Ok(())
    }

    /// Removes templates whose manifest links one of `bad`; returns how many.
    pub(crate) fn remove_templates_with(&self, bad: &BTreeSet<String>) -> Result<usize> {
        let dir = self.dir("templates");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io("cannot read", &dir))? {
            let entry = entry.map_err(Error::io("cannot read", &dir))?;
            let digest = entry.file_name().to_string_lossy().into_owned();
            let uses_bad = match Manifest::load(self, &digest) {
                Ok(manifest) => manifest.digests().any(|d| bad.contains(d)),
                Err(_) => true,
            };
            if uses_bad {
                self.discard_template(&digest)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
