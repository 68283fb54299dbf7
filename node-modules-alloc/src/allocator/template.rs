//! Templates: one ready tree per manifest in the store, built once, cloned by every app.
//!
//! Why: identical lockfiles produce identical manifests; building their tree once (single
//! flight in the process, a template lock across processes) and cloning it afterwards turns
//! a surge of identical allocations into one build. Store content is re-hashed before it
//! is linked into a template, and a damaged template is discarded and rebuilt.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::marker::{marker_bytes, pending, read_marker, seal};
use super::observe::{Rebuilt, Started};
use super::{Allocator, blocking};
use crate::error::{Error, Result};
use crate::fsutil::{remove_tree, sync_dir, unique_name};
use crate::locks::LockMode;
use crate::manifest::{Manifest, ManifestEntry, Plan};
use crate::materialize::{
    Built, Staged, TreeStats, build_from_store, check_staged, clone_tree, quick_check,
};
use crate::parallel::{run_slices, workers_for};
use crate::store::StoreReport;

/// Contents (a digest, with both its variants) per re-hashing worker, at least: a content is
/// one `open` and a few KiB of hashing, so smaller jobs are not worth a thread.
const MIN_CONTENTS_PER_WORKER: usize = 64;

impl Allocator {
    /// [`Self::ensure_template`], once per template at a time in this process (across
    /// processes, the template lock does the same).
    pub(super) async fn single_flight_template(&self, plan: &Arc<Plan>) -> Result<bool> {
        let flight = {
            let mut flights = self
                .inner
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(flights.entry(plan.digest.clone()).or_default())
        };
        let _single = flight.lock().await;
        let this = self.clone();
        let built = {
            let plan = Arc::clone(plan);
            blocking(move || this.ensure_template(&plan)).await
        };
        // Forget the flight once nobody else waits on it (the map stays bounded).
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::strong_count(&flight) == 2 {
            flights.remove(&plan.digest);
        }
        built
    }

    /// Makes sure the template for `plan` exists; returns whether this call built it.
    ///
    /// Holds the template's lock exclusively while building; [`Self::verify_content`] may
    /// then discard *other* templates (waiting for their locks), never this one (it does not
    /// exist while it is being built), so the lock order stays acyclic.
    pub(super) fn ensure_template(&self, plan: &Plan) -> Result<bool> {
        let store = &self.inner.store;
        let template = store.dir("templates").join(&plan.digest);
        // Fast path: a published template with a valid marker (shared lock, concurrent clones).
        {
            let _shared = store.template_lock(&plan.digest, LockMode::Shared)?;
            if read_marker(&template).is_some_and(|m| m.manifest == plan.digest) {
                self.inner.metrics.template_reused();
                return Ok(false);
            }
        }
        // Slow path: one builder per template across processes.
        let lock = store.template_lock(&plan.digest, LockMode::Exclusive)?;
        if template.exists() {
            let valid = read_marker(&template).is_some_and(|m| m.manifest == plan.digest);
            match (
                valid,
                valid
                    .then(|| quick_check(&plan.manifest, &template))
                    .flatten(),
            ) {
                (true, None) => {
                    self.inner.metrics.template_reused();
                    return Ok(false);
                }
                (_, problem) => {
                    self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                    self.inner.metrics.rebuilt(Rebuilt::Template);
                    tracing::warn!(name = %self.inner.name, template = %plan.digest, problem = problem.as_deref().unwrap_or("invalid marker"), "template invalid; rebuilding it");
                    store.discard_template_locked(&plan.digest, &lock)?;
                }
            }
        }
        let started = Started::now();
        plan.manifest.save(store)?;
        self.verify_content(&plan.manifest)?;
        let staging = store.dir("staging").join(unique_name("tpl-"));
        fs::create_dir(&staging).map_err(Error::io("cannot create", &staging))?;
        let result = (|| {
            let marker = marker_bytes(&staging, &plan.digest, None)?;
            build_from_store(
                &plan.manifest,
                &staging,
                self.inner.config.link_mode,
                store,
                Some(pending(&marker)),
            )?;
            seal(&staging)?;
            fs::rename(&staging, &template)
                .map_err(Error::io("cannot publish template", &template))?;
            sync_dir(&store.dir("templates"))
        })();
        if result.is_err() {
            let _ = remove_tree(&staging);
        }
        result?;
        drop(lock);
        self.inner
            .gauges
            .templates_built
            .fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.template_built(started);
        tracing::info!(name = %self.inner.name, template = %plan.digest, files = plan.manifest.files(), "template materialized");
        Ok(true)
    }

    /// Re-hashes every store file the manifest uses (creating executable variants as needed).
    /// Corrupt files are quarantined and their packages re-imported; never linked.
    pub(super) fn verify_content(&self, manifest: &Manifest) -> Result<()> {
        let store = &self.inner.store;
        let mut needed = BTreeSet::new();
        for entry in &manifest.entries {
            if let ManifestEntry::File { digest, exec, .. } = entry {
                needed.insert((digest.clone(), *exec));
            }
        }
        // Both variants of one content in the same slice: an executable variant is made from
        // the other one, and a corrupt one is quarantined before its sibling is looked at.
        let mut groups: Vec<Vec<(&str, bool)>> = Vec::new();
        for (digest, exec) in &needed {
            match groups.last_mut() {
                Some(group) if group.first().is_some_and(|(d, _)| d == digest) => {
                    group.push((digest, *exec));
                }
                _ => groups.push(vec![(digest, *exec)]),
            }
        }
        let workers = workers_for(groups.len(), MIN_CONTENTS_PER_WORKER);
        tracing::debug!(name = %self.inner.name, contents = groups.len(), workers, "re-hashing store files");
        let slices = run_slices(&groups, workers, "nma-verify", |slice| {
            let mut bad = Vec::new();
            for (digest, exec) in slice.iter().flatten() {
                if store.ensure_variant(digest, *exec).is_err()
                    || !store.verify_file(digest, *exec)?
                {
                    store.quarantine(digest, *exec)?;
                    bad.push((*digest).to_owned());
                } else {
                    store.restore_mode(digest, *exec)?;
                }
            }
            Ok::<_, Error>(bad)
        });
        let mut bad = BTreeSet::new();
        for slice in slices {
            bad.extend(slice?);
        }
        if bad.is_empty() {
            return Ok(());
        }
        let mut report = StoreReport::default();
        store.remove_templates_with(&bad)?;
        store.reimport_affected(&bad, &mut report)?;
        for (digest, exec) in needed.iter().filter(|(d, _)| bad.contains(d)) {
            if store.ensure_variant(digest, *exec).is_err() || !store.verify_file(digest, *exec)? {
                return Err(Error::CorruptStore {
                    digest: digest.clone(),
                    integrity: report.unrecoverable.join(" "),
                });
            }
        }
        Ok(())
    }

    /// Clones the template into `staging` under its shared lock. `Ok(None)` when there is no
    /// valid template, or it was found damaged (it is then discarded, once no clone reads it).
    pub(super) fn clone_template(
        &self,
        plan: &Plan,
        staging: &Path,
        marker: &[u8],
    ) -> Result<Option<TreeStats>> {
        use std::os::unix::fs::MetadataExt;
        let store = &self.inner.store;
        let template = store.dir("templates").join(&plan.digest);
        let identity = |path: &Path| fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let shared = store.template_lock(&plan.digest, LockMode::Shared)?;
        if read_marker(&template).is_none_or(|m| m.manifest != plan.digest) {
            // No template (verify or gc removed it), or an invalid marker: the caller rebuilds it.
            return Ok(None);
        }
        let seen = identity(&template);
        let cloned = clone_tree(
            &plan.manifest,
            staging,
            self.inner.config.link_mode,
            &template,
            Some(pending(marker)),
        );
        let problem = match cloned {
            // Every file was checked as it was placed (`lstat`: type, size, mode, mtime).
            Ok(Built::Done(stats)) => return Ok(Some(stats)),
            // Files changed through a hardlink are re-hashed: intact content gets its metadata
            // back, modified content is never handed out (the template is rebuilt below).
            Ok(Built::Differs(stats)) => match check_staged(store, &plan.manifest, staging)? {
                Staged::Intact => return Ok(Some(stats)),
                Staged::Restored(files) => {
                    self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(name = %self.inner.name, template = %plan.digest, files, "store files changed through a hardlink kept their content; their mode and mtime were restored");
                    return Ok(Some(stats));
                }
                Staged::Damaged(problem) => problem,
            },
            // E.g. a file lost by a power loss after the marker was written, or deleted.
            Ok(Built::SourceDamaged(problem)) => problem,
            Err(e) => match quick_check(&plan.manifest, &template) {
                // Files of the template were deleted (its marker is still valid).
                Some(problem) => problem,
                // The template is intact: the failure is the app's (full disk, ...).
                None => return Err(e),
            },
        };
        drop(shared);
        self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.rebuilt(Rebuilt::Template);
        tracing::warn!(name = %self.inner.name, template = %plan.digest, problem, "template damaged; discarding it and rebuilding it from the store");
        let exclusive = store.template_lock(&plan.digest, LockMode::Exclusive)?;
        if identity(&template) == seen {
            store.discard_template_locked(&plan.digest, &exclusive)?;
        } // else someone replaced it meanwhile: the new one is checked when cloned.
        Ok(None)
    }

    /// Builds the tree in `staging` straight from verified store files.
    pub(super) fn build_from_store(
        &self,
        plan: &Plan,
        staging: &Path,
        marker: &[u8],
    ) -> Result<TreeStats> {
        let store = &self.inner.store;
        self.verify_content(&plan.manifest)?;
        let stats = build_from_store(
            &plan.manifest,
            staging,
            self.inner.config.link_mode,
            store,
            Some(pending(marker)),
        )?;
        if let Some(problem) = quick_check(&plan.manifest, staging) {
            return Err(Error::Malformed {
                path: staging.to_path_buf(),
                reason: format!("staged tree failed verification: {problem}"),
            });
        }
        Ok(stats)
    }
}
