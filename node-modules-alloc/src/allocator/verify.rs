//! [`Allocator::verify`](super::Allocator::verify): re-hash a published tree, and repair it.
//!
//! Why: a hardlinked tree shares inodes with the store, so an app that edits a file edits
//! the store. Verification re-hashes every file (never trusts size or mtime); with `repair`,
//! corrupt store content is quarantined and re-imported and the tree is rebuilt.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use tracing::Instrument as _;

use super::marker::read_marker;
use super::observe::{Rebuilt, Started, VerifyEnd};
use super::report::VerifyReport;
use super::staging::{lock_dir, remove_stale_staging, stale_staging};
use super::stats::Materializing;
use super::{Allocator, blocking, touch_manifest};
use crate::error::{Error, Result};
use crate::lockfile::Lockfile;
use crate::manifest::{Manifest, ManifestEntry, Plan};
use crate::store::{StoreReport, hash_file};

impl Allocator {
    /// Verifies `APP_DIR/node_modules` against its manifest, re-hashing every file (not an
    /// mtime/size heuristic). With `repair`, stale staging directories are removed, corrupt store
    /// content is quarantined and re-imported, and the tree is rebuilt and republished from its
    /// manifest (or from `lockfile`, default `APP_DIR/package-lock.json`, when the marker is
    /// unusable).
    pub async fn verify(
        &self,
        app_dir: impl AsRef<Path>,
        repair: bool,
        lockfile: Option<PathBuf>,
    ) -> Result<VerifyReport> {
        let app_dir = app_dir.as_ref().to_path_buf();
        let started = Started::now();
        let span = tracing::info_span!(
            "verify",
            name = %self.inner.name,
            app_dir = %app_dir.display(),
            repair,
            problems = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let result = self
            .verify_inner(app_dir, repair, lockfile)
            .instrument(span.clone())
            .await;
        let end = match &result {
            Ok(report) if report.problems.is_empty() => VerifyEnd::Ok,
            Ok(report) if report.repaired => VerifyEnd::Repaired,
            Ok(_) => VerifyEnd::Problems,
            Err(_) => VerifyEnd::Failed,
        };
        self.inner.metrics.verified(end, started);
        span.record("outcome", end.label());
        match &result {
            Ok(report) => {
                span.record("problems", report.problems.len());
            }
            Err(e) => {
                span.in_scope(
                    || tracing::warn!(name = %self.inner.name, error = %e, "verification failed"),
                );
            }
        }
        result
    }

    async fn verify_inner(
        &self,
        app_dir: PathBuf,
        repair: bool,
        lockfile: Option<PathBuf>,
    ) -> Result<VerifyReport> {
        let store = self.inner.store.clone();
        let work = blocking(move || Ok(store.work())).await?;
        // A repair is a materialization: it is admitted like an allocation (before the app
        // lock), reserving nothing it cannot know yet beyond the threshold.
        let admitted = if repair {
            let deadline = self.queue_deadline();
            let _queued = self.queued();
            let permit = self.acquire_permit().await?;
            Some((permit, self.admit(None, &app_dir, deadline).await?))
        } else {
            None
        };
        // A repair may rebuild the tree: it runs (and counts) as a materialization.
        let _materializing = admitted
            .is_some()
            .then(|| Materializing::enter(&self.inner.gauges, &self.inner.metrics));
        let this = self.clone();
        let report = blocking(move || this.verify_blocking(&app_dir, repair, lockfile)).await;
        drop((admitted, work));
        report
    }

    pub(super) fn verify_blocking(
        &self,
        app_dir: &Path,
        repair: bool,
        lockfile: Option<PathBuf>,
    ) -> Result<VerifyReport> {
        let store = &self.inner.store;
        let mut report = VerifyReport::default();
        if !app_dir.is_dir() {
            return Err(Error::io("cannot verify", app_dir)(io::Error::new(
                io::ErrorKind::NotFound,
                "app directory does not exist",
            )));
        }
        let _lock = lock_dir(app_dir, repair)?;
        for stale in stale_staging(app_dir)? {
            report
                .problems
                .push(format!("stale staging directory {}", stale.display()));
        }
        let nm = app_dir.join("node_modules");
        let lockfile = lockfile.unwrap_or_else(|| crate::lockfile::default_lockfile(app_dir));
        let mut manifest = None;
        let mut bad_digests = BTreeSet::new();
        if fs::symlink_metadata(&nm).is_err() {
            report.problems.push(format!("{} is missing", nm.display()));
        } else {
            match read_marker(&nm) {
                None => report
                    .problems
                    .push(format!("{} has no valid completion marker", nm.display())),
                Some(marker) => match Manifest::load(store, &marker.manifest) {
                    Err(e) => report
                        .problems
                        .push(format!("manifest of {} unusable: {e}", nm.display())),
                    Ok(m) => {
                        touch_manifest(store, &marker.manifest, &self.inner.name);
                        check_tree_content(&m, &nm, &mut report.problems, &mut bad_digests);
                        manifest = Some(m);
                    }
                },
            }
        }
        if !bad_digests.is_empty() {
            // A modified hardlinked file is a modified store file: re-hash what the tree uses.
            let mut store_report = StoreReport::default();
            let mut quarantined = BTreeSet::new();
            for digest in &bad_digests {
                for exec in [false, true] {
                    if store.file_path(digest, exec).exists() && !store.verify_file(digest, exec)? {
                        store_report.checked += 1;
                        if repair {
                            store.quarantine(digest, exec)?;
                            store_report.quarantined.push(digest.clone());
                            quarantined.insert(digest.clone());
                        } else {
                            report
                                .problems
                                .push(format!("store file {digest} is corrupt"));
                        }
                    }
                }
            }
            if repair && !quarantined.is_empty() {
                store_report.templates_removed = store.remove_templates_with(&quarantined)?;
                store.reimport_affected(&quarantined, &mut store_report)?;
            }
            report.store = Some(store_report);
        }
        if report.problems.is_empty() || !repair {
            return Ok(report);
        }
        remove_stale_staging(app_dir, &self.inner.name)?;
        let plan = match manifest {
            Some(manifest) => {
                let digest = manifest.digest();
                // Published by an allocation that already passed the build check.
                Plan {
                    packages: 0,
                    builds: Vec::new(),
                    lockfile_digest: read_marker(&nm)
                        .and_then(|m| m.lockfile)
                        .unwrap_or_default(),
                    digest,
                    manifest,
                }
            }
            None if lockfile.exists() => {
                let parsed = Lockfile::from_path(&lockfile)?;
                self.plan_for(&parsed, app_dir)?
            }
            None => {
                if fs::symlink_metadata(&nm).is_err() && report.problems.len() > 1 {
                    // Only stale staging was wrong and nothing was ever published: cleaned.
                }
                return Err(Error::io("cannot repair", app_dir)(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no usable completion marker and no package-lock.json or pnpm-lock.yaml to rebuild from",
                )));
            }
        };
        self.check_space(app_dir)?;
        self.ensure_template(&plan)?;
        self.clone_and_publish(&plan, app_dir)?;
        self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.rebuilt(Rebuilt::App);
        tracing::warn!(name = %self.inner.name, app_dir = %app_dir.display(), problems = report.problems.len(), "tree rebuilt by verify --repair");
        report.repaired = true;
        Ok(report)
    }
}

/// Re-hashes every file of a tree against its manifest.
pub(super) fn check_tree_content(
    manifest: &Manifest,
    root: &Path,
    problems: &mut Vec<String>,
    bad: &mut BTreeSet<String>,
) {
    use std::os::unix::fs::MetadataExt;
    for entry in &manifest.entries {
        let path = crate::fsutil::join_rel(root, entry.path());
        match entry {
            ManifestEntry::File { digest, exec, .. } => match fs::symlink_metadata(&path) {
                Err(_) => problems.push(format!("{} is missing", entry.path())),
                Ok(meta) if !meta.is_file() => {
                    problems.push(format!("{} is not a file", entry.path()));
                }
                Ok(meta) => {
                    if (meta.mode() & 0o111 != 0) != *exec {
                        problems.push(format!("{} has the wrong executable bit", entry.path()));
                    }
                    match hash_file(&path) {
                        Ok(actual) if actual == *digest => {}
                        Ok(_) => {
                            problems.push(format!(
                                "{} content does not match its digest",
                                entry.path()
                            ));
                            bad.insert(digest.clone());
                        }
                        Err(e) => problems.push(format!("{} unreadable: {e}", entry.path())),
                    }
                }
            },
            ManifestEntry::Symlink { target, .. } => {
                if fs::read_link(&path).ok().as_deref() != Some(Path::new(target)) {
                    problems.push(format!("{} is not the expected symlink", entry.path()));
                }
            }
        }
    }
}
