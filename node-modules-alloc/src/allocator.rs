//! The allocator: lockfile in, ready `node_modules` out — once, atomically, under a bound.
//!
//! # Why
//!
//! In the February 2019 incident a surge of apps migrating onto fewer hosts overwhelmed the
//! per-host component that allocates `node_modules`, and some apps started on a corrupted tree.
//! Three properties prevent that here:
//!
//! * **Atomic publish.** A tree is built in a staging directory next to the app (same
//!   filesystem), checked against its manifest, given a completion marker holding the manifest
//!   digest, and published with one `rename` (an atomic exchange when a tree already exists).
//!   A crash at any moment leaves either the old tree, or the new complete one, plus a hidden
//!   staging directory that the next allocation (or `verify --repair`) removes. A tree is reused
//!   only if its marker is valid and it matches its manifest.
//! * **Work once.** Identical lockfiles produce identical manifests and share one template in
//!   the store, built once (single-flight inside a process through an async mutex per digest,
//!   across processes through a lock file per template); later allocations clone it.
//! * **Bounded work, shed excess.** A [`ConcurrencyLimit`] bounds concurrent materializations;
//!   its bounded queue turns a surge into fast [`Error::Overloaded`] answers with a
//!   `retry_after` instead of a host thrashing its disk. A free-space guard refuses work on a
//!   nearly full disk instead of publishing a truncated tree.
//!
//! # Example
//!
//! ```
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
//! use node_modules_alloc::allocator::{Allocator, AllocatorConfig, Outcome};
//! use node_modules_alloc::integrity::Integrity;
//! use node_modules_alloc::store::Store;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("store"))?;
//! let tarball = tgz(&[("package/index.js", b"module.exports = 1;\n")]);
//! store.import_tarball_bytes("one-1.0.0.tgz", &tarball, None, None)?;
//!
//! let lock = format!(
//!     r#"{{"lockfileVersion": 3, "packages": {{"": {{}}, "node_modules/one": {{"version": "1.0.0", "integrity": "{}"}}}}}}"#,
//!     Integrity::sha512_of(&tarball),
//! );
//! std::fs::write(dir.path().join("package-lock.json"), lock)?;
//!
//! let allocator = Allocator::new(store, AllocatorConfig::default())?;
//! let app = dir.path().join("app");
//! let first = allocator.allocate(dir.path().join("package-lock.json"), &app).await?;
//! assert_eq!(first.outcome, Outcome::Materialized);
//! assert!(app.join("node_modules/one/index.js").exists());
//! let again = allocator.allocate(dir.path().join("package-lock.json"), &app).await?;
//! assert_eq!(again.outcome, Outcome::Reused);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use resilience_core::ConfigError;
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::config::LinkMode;
use crate::error::{Error, Result};
use crate::fsutil::{remove_tree, sync_dir, unique_name};
use crate::lockfile::{Lockfile, Selection};
use crate::manifest::{Manifest, ManifestEntry, Plan};
use crate::materialize::{
    Built, PendingMarker, Staged, TreeStats, build_from_store, check_staged, clone_tree,
    quick_check,
};
use crate::store::{Store, StoreReport, hash_file};

/// Name of the completion marker inside a published tree (and a template).
pub const MARKER: &str = ".breakwater-alloc.json";
const STAGING_PREFIX: &str = ".node_modules.staging-";

/// Allocator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocatorConfig {
    /// How files get into trees. Default [`LinkMode::Auto`].
    pub link_mode: LinkMode,
    /// Bound on concurrent materializations and on the queue in front of them. Default: 4
    /// at once (the work is disk-bound), 256 queued, shed after 60 s in the queue.
    pub limit: ConcurrencyLimitConfig,
    /// Refuse work when the store's or the app's filesystem has fewer free bytes than this.
    /// Default 512 MiB; 0 disables the guard.
    pub min_free_bytes: u64,
    /// Which lockfile packages to install.
    pub selection: Selection,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            link_mode: LinkMode::Auto,
            limit: ConcurrencyLimitConfig {
                max_concurrent: 4,
                max_queued: 256,
                queue_timeout: Some(std::time::Duration::from_secs(60)),
                ..ConcurrencyLimitConfig::default()
            },
            min_free_bytes: 512 << 20,
            selection: Selection::default(),
        }
    }
}

impl AllocatorConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limit.validate().map_err(|e| e.nested("limit"))
    }
}

/// Measures free space; injectable so tests can simulate a full disk.
pub trait FreeSpace: Send + Sync + fmt::Debug {
    /// Bytes available to unprivileged users on the filesystem holding `path`.
    fn available_bytes(&self, path: &Path) -> io::Result<u64>;
}

/// [`FreeSpace`] through `statvfs(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatvfsFreeSpace;

impl FreeSpace for StatvfsFreeSpace {
    fn available_bytes(&self, path: &Path) -> io::Result<u64> {
        let stat = rustix::fs::statvfs(path)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}

/// What an allocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The app already had this exact, valid tree.
    Reused,
    /// A template existed; it was cloned into the app.
    Cloned,
    /// This call built the template, then cloned it.
    Materialized,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reused => "reused",
            Self::Cloned => "cloned",
            Self::Materialized => "materialized",
        })
    }
}

/// A ready tree.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// `APP_DIR/node_modules`.
    pub node_modules: PathBuf,
    /// Digest of the tree's manifest (also in the completion marker).
    pub manifest_digest: String,
    /// Digest of the selected lockfile entries.
    pub lockfile_digest: String,
    /// Packages installed.
    pub packages: usize,
    /// Regular files in the tree.
    pub files: usize,
    /// What happened.
    pub outcome: Outcome,
    /// How files were placed in the app (zero when reused).
    pub stats: TreeStats,
}

/// Counters and gauges of an allocator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Materializations running now.
    pub materializing: usize,
    /// Highest `materializing` seen.
    pub peak_materializing: usize,
    /// Templates built by this allocator.
    pub templates_built: u64,
    /// Allocations that cloned a template into an app.
    pub clones: u64,
    /// Allocations answered by an existing valid tree.
    pub reused: u64,
    /// Allocations refused with `Overloaded`.
    pub shed: u64,
    /// Trees (templates or app trees) found invalid and rebuilt.
    pub rebuilt: u64,
}

/// Problems found by [`Allocator::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// One line per problem.
    pub problems: Vec<String>,
    /// Whether `repair` rebuilt the tree (problems then describe what was found before).
    pub repaired: bool,
    /// Store re-hash results for content the tree uses, when corruption was found.
    pub store: Option<StoreReport>,
}

impl VerifyReport {
    /// No problems, or all repaired.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() || self.repaired
    }
}

#[derive(Debug, Default)]
struct Gauges {
    materializing: AtomicUsize,
    peak: AtomicUsize,
    templates_built: AtomicU64,
    clones: AtomicU64,
    reused: AtomicU64,
    shed: AtomicU64,
    rebuilt: AtomicU64,
}

/// Decrements the materializing gauge on drop.
struct Materializing<'a>(&'a Gauges);

impl<'a> Materializing<'a> {
    fn enter(gauges: &'a Gauges) -> Self {
        // Relaxed: the gauge is statistics; the bound itself is enforced by the limit's permits.
        let now = gauges.materializing.fetch_add(1, Ordering::Relaxed) + 1;
        gauges.peak.fetch_max(now, Ordering::Relaxed);
        Self(gauges)
    }
}

impl Drop for Materializing<'_> {
    fn drop(&mut self) {
        self.0.materializing.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: AllocatorConfig,
    limit: ConcurrencyLimit,
    free_space: Box<dyn FreeSpace>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    gauges: Gauges,
}

/// Allocates `node_modules` trees from a [`Store`]. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Allocator {
    inner: Arc<Inner>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    manifest: String,
    lockfile: Option<String>,
}

impl Allocator {
    /// An allocator over `store` with the system clock and `statvfs` free-space guard.
    pub fn new(store: Store, config: AllocatorConfig) -> Result<Self> {
        Self::with_clock(store, config, SharedClock::system())
    }

    /// An allocator whose limit uses `clock` (queue timeouts, `retry_after`).
    pub fn with_clock(store: Store, config: AllocatorConfig, clock: impl Clock) -> Result<Self> {
        config.validate()?;
        let limit = ConcurrencyLimit::with_clock(config.limit.clone(), clock)
            .map_err(|e| e.nested("limit"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                limit,
                free_space: Box::new(StatvfsFreeSpace),
                flights: Mutex::new(HashMap::new()),
                gauges: Gauges::default(),
            }),
        })
    }

    /// Replaces the free-space probe (tests simulate a full disk with it). Call it right after
    /// construction: a clone made earlier keeps the previous probe and its own counters.
    #[must_use]
    pub fn with_free_space(self, probe: impl FreeSpace + 'static) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            store: arc.store.clone(),
            config: arc.config.clone(),
            limit: arc.limit.clone(),
            free_space: Box::new(StatvfsFreeSpace),
            flights: Mutex::new(HashMap::new()),
            gauges: Gauges::default(),
        });
        Self {
            inner: Arc::new(Inner {
                free_space: Box::new(probe),
                ..inner
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &AllocatorConfig {
        &self.inner.config
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> AllocatorStats {
        let g = &self.inner.gauges;
        AllocatorStats {
            materializing: g.materializing.load(Ordering::Relaxed),
            peak_materializing: g.peak.load(Ordering::Relaxed),
            templates_built: g.templates_built.load(Ordering::Relaxed),
            clones: g.clones.load(Ordering::Relaxed),
            reused: g.reused.load(Ordering::Relaxed),
            shed: g.shed.load(Ordering::Relaxed),
            rebuilt: g.rebuilt.load(Ordering::Relaxed),
        }
    }

    /// Allocates `APP_DIR/node_modules` for the lockfile at `lockfile`.
    pub async fn allocate(
        &self,
        lockfile: impl AsRef<Path>,
        app_dir: impl AsRef<Path>,
    ) -> Result<Allocation> {
        let path = lockfile.as_ref().to_path_buf();
        let lockfile = blocking(move || Lockfile::from_path(&path)).await?;
        self.allocate_lockfile(&lockfile, app_dir).await
    }

    /// Allocates `APP_DIR/node_modules` for a parsed lockfile.
    pub async fn allocate_lockfile(
        &self,
        lockfile: &Lockfile,
        app_dir: impl AsRef<Path>,
    ) -> Result<Allocation> {
        let app_dir = app_dir.as_ref().to_path_buf();
        let span = tracing::info_span!(
            "allocate",
            app_dir = %app_dir.display(),
            lockfile_digest = tracing::field::Empty,
            packages = tracing::field::Empty,
            files = tracing::field::Empty,
            link_mode = %self.inner.config.link_mode,
            outcome = tracing::field::Empty,
        );
        let result = self
            .allocate_inner(lockfile.clone(), app_dir)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(a) => {
                span.record("outcome", tracing::field::display(a.outcome));
            }
            Err(e) => {
                span.record("outcome", "error");
                span.in_scope(|| tracing::warn!(error = %e, "allocation failed"));
            }
        }
        result
    }

    async fn allocate_inner(&self, lockfile: Lockfile, app_dir: PathBuf) -> Result<Allocation> {
        let this = self.clone();
        let plan = Arc::new(
            blocking(move || {
                Manifest::plan(&this.inner.store, &lockfile, &this.inner.config.selection)
            })
            .await?,
        );
        let span = tracing::Span::current();
        span.record(
            "lockfile_digest",
            plan.lockfile_digest.get(..16).unwrap_or_default(),
        );
        span.record("packages", plan.packages);
        span.record("files", plan.manifest.files());

        let this = self.clone();
        let (app_lock, reused) = {
            let plan = Arc::clone(&plan);
            let app_dir = app_dir.clone();
            blocking(move || {
                fs::create_dir_all(&app_dir)
                    .map_err(Error::io("cannot create app directory", &app_dir))?;
                let lock = lock_dir(&app_dir, true)?;
                let reused = this.reusable(&plan, &app_dir);
                Ok((lock, reused))
            })
            .await?
        };
        if reused {
            self.inner.gauges.reused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("existing tree is valid; reused");
            drop(app_lock);
            return Ok(Self::allocation(
                &plan,
                &app_dir,
                Outcome::Reused,
                TreeStats::default(),
            ));
        }

        self.check_space(&app_dir)?;
        let _permit = match self.inner.limit.acquire().await {
            Ok(permit) => permit,
            Err(overloaded) => {
                self.inner.gauges.shed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(retry_after = ?overloaded.retry_after, "allocation shed: too many queued");
                return Err(Error::Overloaded {
                    retry_after: overloaded.retry_after,
                });
            }
        };
        let _gauge = Materializing::enter(&self.inner.gauges);

        let flight = {
            let mut flights = self
                .inner
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(flights.entry(plan.digest.clone()).or_default())
        };
        let plan_digest = plan.digest.clone();
        let built = {
            let _single = flight.lock().await;
            let this = self.clone();
            let plan = Arc::clone(&plan);
            let built = blocking(move || this.ensure_template(&plan)).await;
            // Forget the flight once nobody else waits on it (the map stays bounded).
            let mut flights = self
                .inner
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if Arc::strong_count(&flight) == 2 {
                flights.remove(&plan_digest);
            }
            built?
        };
        let this = self.clone();
        let stats = {
            let plan = Arc::clone(&plan);
            let app_dir = app_dir.clone();
            blocking(move || {
                let stats = this.clone_and_publish(&plan, &app_dir);
                drop(app_lock);
                stats
            })
            .await?
        };
        self.inner.gauges.clones.fetch_add(1, Ordering::Relaxed);
        let outcome = if built {
            Outcome::Materialized
        } else {
            Outcome::Cloned
        };
        tracing::info!(%outcome, hardlinks = stats.hardlinks, reflinks = stats.reflinks, copies = stats.copies, "node_modules published");
        Ok(Self::allocation(&plan, &app_dir, outcome, stats))
    }

    fn allocation(plan: &Plan, app_dir: &Path, outcome: Outcome, stats: TreeStats) -> Allocation {
        Allocation {
            node_modules: app_dir.join("node_modules"),
            manifest_digest: plan.digest.clone(),
            lockfile_digest: plan.lockfile_digest.clone(),
            packages: plan.packages,
            files: plan.manifest.files(),
            outcome,
            stats,
        }
    }

    fn check_space(&self, app_dir: &Path) -> Result<()> {
        let required = self.inner.config.min_free_bytes;
        if required == 0 {
            return Ok(());
        }
        for path in [self.inner.store.path(), app_dir] {
            let available = self
                .inner
                .free_space
                .available_bytes(path)
                .map_err(Error::io("cannot measure free space of", path))?;
            if available < required {
                tracing::warn!(path = %path.display(), available, required, "refusing allocation: disk nearly full");
                return Err(Error::InsufficientSpace {
                    path: path.to_path_buf(),
                    available,
                    required,
                });
            }
        }
        Ok(())
    }

    /// Whether `APP_DIR/node_modules` carries a valid marker for this plan and matches it.
    fn reusable(&self, plan: &Plan, app_dir: &Path) -> bool {
        let nm = app_dir.join("node_modules");
        match read_marker(&nm) {
            Some(marker) if marker.manifest == plan.digest => {
                match quick_check(&plan.manifest, &nm) {
                    None => true,
                    Some(problem) => {
                        self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(problem, "published tree damaged; rebuilding it");
                        false
                    }
                }
            }
            _ => false,
        }
    }

    /// Makes sure the template for `plan` exists; returns whether this call built it.
    fn ensure_template(&self, plan: &Plan) -> Result<bool> {
        let store = &self.inner.store;
        let lock_path = store.dir("locks").join(format!("{}.lock", plan.digest));
        let lock = open_lock(&lock_path)?;
        let template = store.dir("templates").join(&plan.digest);
        // Fast path: a published template with a valid marker (shared lock, concurrent clones).
        lock.lock_shared()
            .map_err(Error::io("cannot lock", &lock_path))?;
        if read_marker(&template).is_some_and(|m| m.manifest == plan.digest) {
            return Ok(false);
        }
        lock.unlock()
            .map_err(Error::io("cannot unlock", &lock_path))?;
        // Slow path: one builder per template across processes.
        lock.lock().map_err(Error::io("cannot lock", &lock_path))?;
        if template.exists() {
            let valid = read_marker(&template).is_some_and(|m| m.manifest == plan.digest);
            match (
                valid,
                valid
                    .then(|| quick_check(&plan.manifest, &template))
                    .flatten(),
            ) {
                (true, None) => return Ok(false),
                (_, problem) => {
                    self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(template = %plan.digest, problem = problem.as_deref().unwrap_or("invalid marker"), "template invalid; rebuilding it");
                    store.discard_template(&plan.digest)?;
                }
            }
        }
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
        self.inner
            .gauges
            .templates_built
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(template = %plan.digest, files = plan.manifest.files(), "template materialized");
        Ok(true)
    }

    /// Re-hashes every store file the manifest uses (creating executable variants as needed).
    /// Corrupt files are quarantined and their packages re-imported; never linked.
    fn verify_content(&self, manifest: &Manifest) -> Result<()> {
        let store = &self.inner.store;
        let mut needed = BTreeSet::new();
        for entry in &manifest.entries {
            if let ManifestEntry::File { digest, exec, .. } = entry {
                needed.insert((digest.clone(), *exec));
            }
        }
        let mut bad = BTreeSet::new();
        for (digest, exec) in &needed {
            if store.ensure_variant(digest, *exec).is_err() || !store.verify_file(digest, *exec)? {
                store.quarantine(digest, *exec)?;
                bad.insert(digest.clone());
            } else {
                store.restore_mode(digest, *exec)?;
            }
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

    /// Clones the template into a staging dir of the app, checks it, marks it complete and
    /// publishes it with one rename. The caller holds the app-dir lock.
    fn clone_and_publish(&self, plan: &Plan, app_dir: &Path) -> Result<TreeStats> {
        let store = &self.inner.store;
        remove_stale_staging(app_dir)?;
        let staging = app_dir.join(unique_name(STAGING_PREFIX));
        fs::create_dir(&staging).map_err(Error::io("cannot create", &staging))?;
        let result = (|| {
            let lock_path = store.dir("locks").join(format!("{}.lock", plan.digest));
            let lock = open_lock(&lock_path)?;
            lock.lock_shared()
                .map_err(Error::io("cannot lock", &lock_path))?;
            let template = store.dir("templates").join(&plan.digest);
            let marker = marker_bytes(&staging, &plan.digest, Some(&plan.lockfile_digest))?;
            let from_store = |staging: &Path| {
                self.verify_content(&plan.manifest)?;
                build_from_store(
                    &plan.manifest,
                    staging,
                    self.inner.config.link_mode,
                    store,
                    Some(pending(&marker)),
                )
            };
            let (mut stats, damaged) =
                if read_marker(&template).is_some_and(|m| m.manifest == plan.digest) {
                    match clone_tree(
                        &plan.manifest,
                        &staging,
                        self.inner.config.link_mode,
                        &template,
                        Some(pending(&marker)),
                    )? {
                        Built::Done(stats) => (stats, None),
                        // E.g. a file lost by a power loss after the marker was written.
                        Built::SourceDamaged(problem) => (TreeStats::default(), Some(problem)),
                    }
                } else {
                    // The template vanished (store verify removed it): build from verified store files.
                    (from_store(&staging)?, None)
                };
            drop(lock);
            let damaged = match damaged {
                Some(problem) => Some(problem),
                // Files changed through a hardlink: re-hash them; intact content gets its
                // metadata back, modified content is never handed out (rebuild below).
                None => match check_staged(store, &plan.manifest, &staging)? {
                    Staged::Intact => None,
                    Staged::Restored(files) => {
                        self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(template = %plan.digest, files, "store files changed through a hardlink kept their content; their mode and mtime were restored");
                        None
                    }
                    Staged::Damaged(problem) => Some(problem),
                },
            };
            if let Some(problem) = damaged {
                // The template was damaged (e.g. an app edited or chmod-ed a hardlinked file):
                // discard it once no clone reads it, and build from verified store files.
                self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(template = %plan.digest, problem, "template damaged; discarding it and rebuilding from the store");
                {
                    let exclusive = open_lock(&lock_path)?;
                    exclusive
                        .lock()
                        .map_err(Error::io("cannot lock", &lock_path))?;
                    store.discard_template(&plan.digest)?;
                }
                remove_tree(&staging)?;
                fs::create_dir(&staging).map_err(Error::io("cannot create", &staging))?;
                stats = from_store(&staging)?;
                if let Some(problem) = quick_check(&plan.manifest, &staging) {
                    return Err(Error::Malformed {
                        path: staging.clone(),
                        reason: format!("staged tree failed verification: {problem}"),
                    });
                }
            }
            seal(&staging)?;
            publish(&staging, &app_dir.join("node_modules"))?;
            Ok(stats)
        })();
        if result.is_err() {
            let _ = remove_tree(&staging);
        }
        result
    }

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
        let this = self.clone();
        let app_dir = app_dir.as_ref().to_path_buf();
        blocking(move || this.verify_blocking(&app_dir, repair, lockfile)).await
    }

    fn verify_blocking(
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
        let lockfile = lockfile.unwrap_or_else(|| app_dir.join("package-lock.json"));
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
        remove_stale_staging(app_dir)?;
        let plan = match manifest {
            Some(manifest) => {
                let digest = manifest.digest();
                Plan {
                    packages: 0,
                    lockfile_digest: read_marker(&nm)
                        .and_then(|m| m.lockfile)
                        .unwrap_or_default(),
                    digest,
                    manifest,
                }
            }
            None if lockfile.exists() => {
                let parsed = Lockfile::from_path(&lockfile)?;
                Manifest::plan(store, &parsed, &self.inner.config.selection)?
            }
            None => {
                if fs::symlink_metadata(&nm).is_err() && report.problems.len() > 1 {
                    // Only stale staging was wrong and nothing was ever published: cleaned.
                }
                return Err(Error::io("cannot repair", app_dir)(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no usable completion marker and no package-lock.json to rebuild from",
                )));
            }
        };
        self.check_space(app_dir)?;
        self.ensure_template(&plan)?;
        self.clone_and_publish(&plan, app_dir)?;
        self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(app_dir = %app_dir.display(), problems = report.problems.len(), "tree rebuilt by verify --repair");
        report.repaired = true;
        Ok(report)
    }
}

/// Re-hashes every file of a tree against its manifest.
fn check_tree_content(
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(Error::io("blocking task failed", PathBuf::new())(
            io::Error::other(join.to_string()),
        )),
    }
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Error::io("cannot open lock", path))
}

/// Locks a directory itself (flock on its descriptor): no lock file litters the app dir.
fn lock_dir(dir: &Path, exclusive: bool) -> Result<File> {
    let file = File::open(dir).map_err(Error::io("cannot open", dir))?;
    let locked = if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    };
    locked.map_err(Error::io("cannot lock", dir))?;
    Ok(file)
}

fn read_marker(tree: &Path) -> Option<Marker> {
    let bytes = fs::read(tree.join(MARKER)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Temporary name of a completion marker written with the tree (see [`PendingMarker`]).
const PENDING_MARKER: &str = ".breakwater-alloc.pending";

fn marker_bytes(tree: &Path, manifest: &str, lockfile: Option<&str>) -> Result<Vec<u8>> {
    let marker = Marker {
        manifest: manifest.to_owned(),
        lockfile: lockfile.map(str::to_owned),
    };
    serde_json::to_vec(&marker).map_err(|e| Error::Malformed {
        path: tree.join(MARKER),
        reason: e.to_string(),
    })
}

fn pending(bytes: &[u8]) -> PendingMarker<'_> {
    PendingMarker {
        name: PENDING_MARKER,
        bytes,
    }
}

/// Puts the completion marker, written and made durable with the tree, into place: the tree
/// is complete from now on (one rename, one directory fsync).
fn seal(tree: &Path) -> Result<()> {
    let marker = tree.join(MARKER);
    fs::rename(tree.join(PENDING_MARKER), &marker).map_err(Error::io("cannot write", &marker))?;
    sync_dir(tree)
}

fn stale_staging(app_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(app_dir).map_err(Error::io("cannot read", app_dir))? {
        let entry = entry.map_err(Error::io("cannot read", app_dir))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Removes staging leftovers; only called while holding the app-dir lock exclusively, so every
/// staging directory present belongs to a dead process.
fn remove_stale_staging(app_dir: &Path) -> Result<()> {
    for stale in stale_staging(app_dir)? {
        tracing::info!(path = %stale.display(), "removing stale staging directory");
        remove_tree(&stale)?;
    }
    Ok(())
}

/// Publishes `staging` as `target` atomically: exchange when `target` exists (then delete the
/// old tree, now at the staging name), plain rename otherwise.
fn publish(staging: &Path, target: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if fs::symlink_metadata(target).is_ok() {
        match renameat_with(CWD, staging, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => {}
            Err(e)
                if e == rustix::io::Errno::INVAL
                    || e == rustix::io::Errno::NOSYS
                    || e == rustix::io::Errno::OPNOTSUPP =>
            {
                // No RENAME_EXCHANGE on this filesystem: move the old tree aside first. The
                // window without a node_modules is visible, but never a partial one.
                let aside = staging.with_file_name(unique_name(&format!("{STAGING_PREFIX}old-")));
                fs::rename(target, &aside).map_err(Error::io("cannot move aside", target))?;
                fs::rename(staging, target).map_err(Error::io("cannot publish", target))?;
                if let Some(parent) = target.parent() {
                    sync_dir(parent)?;
                }
                return remove_tree(&aside);
            }
            Err(e) => return Err(Error::io("cannot publish", target)(e.into())),
        }
        if let Some(parent) = target.parent() {
            sync_dir(parent)?;
        }
        // `staging` now holds the old tree.
        remove_tree(staging)
    } else {
        fs::rename(staging, target).map_err(Error::io("cannot publish", target))?;
        match target.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Allocator>();
        assert_send_sync::<Allocation>();
    }

    #[test]
    fn default_config_is_valid_and_serde_round_trips() {
        let config = AllocatorConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: AllocatorConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        assert!(serde_json::from_str::<AllocatorConfig>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn invalid_limit_is_rejected_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut config = AllocatorConfig::default();
        config.limit.max_concurrent = 0;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        assert!(Allocator::new(store, config).is_err());
    }

    #[test]
    fn publish_replaces_an_existing_tree_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("node_modules");
        fs::create_dir_all(target.join("old")).unwrap();
        let staging = dir.path().join(format!("{STAGING_PREFIX}x"));
        fs::create_dir_all(staging.join("new")).unwrap();
        publish(&staging, &target).unwrap();
        assert!(target.join("new").exists());
        assert!(!target.join("old").exists());
        assert!(!staging.exists());
    }
}
