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
//! * **Bounded work, shed excess.** A [`ConcurrencyLimit`] bounds concurrent materializations
//!   in this process (FIFO), and store-wide slots (lock files shared by every process using
//!   the store) bound them across processes; bounded queues turn a surge into fast
//!   [`Error::Overloaded`] answers with a `retry_after` instead of a host thrashing its disk.
//!   Callers piling up on one app are admitted first and lock the app directory after, so
//!   they are queued or shed too instead of blocking on its lock. A free-space guard refuses
//!   work on a nearly full disk instead of publishing a truncated tree, and counts the bytes
//!   that the allocations it already admitted (in any process) are about to write.
//! * **Clean as you go.** gc refuses while work is in flight through any handle; a template is
//!   discarded only once no clone reads it, and a damaged one is rebuilt from the store;
//!   scratch of failed operations and dead processes is swept while the store is in use.
//!
//! # Lock order
//!
//! In-process permit → store-wide queue place → store-wide slot → app directory → template.
//! The cheap "already up to date" check runs before all of them (read-only) and again under
//! the app-directory lock.
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
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use resilience_core::ConfigError;
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig, ConcurrencyPermit};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::admission::{Demand, Need, Slot, StoreWide, copies_data, tree_bytes};
use crate::config::LinkMode;
use crate::error::{Error, Result};
use crate::fsutil::{remove_tree, sync_dir, touch, unique_name};
use crate::lockfile::{Lockfile, Selection};
use crate::locks::LockMode;
use crate::manifest::{Manifest, ManifestEntry, Plan};
use crate::materialize::{
    Built, PendingMarker, Staged, TreeStats, build_from_store, check_staged, clone_tree,
    quick_check,
};
use crate::store::{Store, StoreReport, hash_file};
use crate::sweep::SweepConfig;

/// Name of the completion marker inside a published tree (and a template).
pub const MARKER: &str = ".breakwater-alloc.json";
const STAGING_PREFIX: &str = ".node_modules.staging-";

/// Allocator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocatorConfig {
    /// How files get into trees. Default [`LinkMode::Auto`].
    pub link_mode: LinkMode,
    /// Bound on concurrent materializations (template builds and clones into apps) and on the
    /// queue in front of them, for the whole store: in this process, and across every process
    /// using the store (`STORE/slots/`, `STORE/queue/`). Default: 4 at once (the work is
    /// disk-bound), 256 queued, shed after 60 s in the queue (in-process and store-wide queue
    /// together).
    pub limit: ConcurrencyLimitConfig,
    /// Refuse work when the store's or the app's filesystem has fewer free bytes than this,
    /// once the estimated bytes of this allocation and of every allocation already admitted
    /// on the store are subtracted. Default 512 MiB; 0 disables the guard.
    pub min_free_bytes: u64,
    /// Which lockfile packages to install.
    pub selection: Selection,
    /// When allocations sweep leftover scratch from the store. Default: at most once a
    /// minute, entries at least an hour old.
    pub sweep: SweepConfig,
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
            sweep: SweepConfig::default(),
        }
    }
}

impl AllocatorConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limit.validate().map_err(|e| e.nested("limit"))?;
        self.sweep.validate().map_err(|e| e.nested("sweep"))
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
    /// Measures the store-wide queue timeout.
    clock: SharedClock,
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
        let clock = clock.into_shared();
        let limit = ConcurrencyLimit::with_clock(config.limit.clone(), clock.clone())
            .map_err(|e| e.nested("limit"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                limit,
                clock,
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
            clock: arc.clock.clone(),
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
        let (_work, plan) = blocking(move || {
            // Registered before the store is read: a gc through any clone of this handle now
            // refuses to run until the allocation is over.
            let work = this.inner.store.work();
            let plan = Manifest::plan(&this.inner.store, &lockfile, &this.inner.config.selection)?;
            this.inner.store.sweep_if_due(&this.inner.config.sweep);
            Ok((work, plan))
        })
        .await?;
        let plan = Arc::new(plan);
        let span = tracing::Span::current();
        span.record(
            "lockfile_digest",
            plan.lockfile_digest.get(..16).unwrap_or_default(),
        );
        span.record("packages", plan.packages);
        span.record("files", plan.manifest.files());

        // Cheap and read-only, so before any admission: an up-to-date tree costs nothing.
        let this = self.clone();
        let up_to_date = {
            let plan = Arc::clone(&plan);
            let app_dir = app_dir.clone();
            blocking(move || {
                fs::create_dir_all(&app_dir)
                    .map_err(Error::io("cannot create app directory", &app_dir))?;
                let valid = tree_state(&plan, &app_dir) == TreeState::Valid;
                if valid {
                    this.keep_manifest(&plan);
                }
                Ok(valid)
            })
            .await?
        };
        if up_to_date {
            return Ok(self.reused(&plan, &app_dir));
        }

        let deadline = self.queue_deadline();
        self.check_space(&app_dir)?;
        let _permit = self.acquire_permit().await?;
        let _slot = self
            .admit(Some(Arc::clone(&plan)), &app_dir, deadline)
            .await?;
        let _gauge = Materializing::enter(&self.inner.gauges);

        // The app lock comes after admission: callers piling up on one app wait in the
        // bounded queues (or are shed), not on this lock.
        let this = self.clone();
        let (app_lock, tree) = {
            let plan = Arc::clone(&plan);
            let app_dir = app_dir.clone();
            blocking(move || {
                let lock = lock_dir(&app_dir, true)?;
                // Again under the lock: the previous holder may just have published it.
                let tree = tree_state(&plan, &app_dir);
                if tree == TreeState::Valid {
                    this.keep_manifest(&plan);
                }
                Ok((lock, tree))
            })
            .await?
        };
        match tree {
            TreeState::Valid => {
                drop(app_lock);
                return Ok(self.reused(&plan, &app_dir));
            }
            TreeState::Damaged(problem) => {
                self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(problem, "published tree damaged; rebuilding it");
            }
            TreeState::Absent => {}
        }

        let built = self.single_flight_template(&plan).await?;
        let this = self.clone();
        let stats = {
            let plan = Arc::clone(&plan);
            let app_dir = app_dir.clone();
            blocking(move || {
                let stats = this.clone_and_publish(&plan, &app_dir);
                drop(app_lock);
                if stats.is_ok() {
                    this.keep_manifest(&plan);
                }
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

    /// [`Self::ensure_template`], once per template at a time in this process (across
    /// processes, the template lock does the same).
    async fn single_flight_template(&self, plan: &Arc<Plan>) -> Result<bool> {
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

    fn reused(&self, plan: &Plan, app_dir: &Path) -> Allocation {
        self.inner.gauges.reused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("existing tree is valid; reused");
        Self::allocation(plan, app_dir, Outcome::Reused, TreeStats::default())
    }

    /// When a caller starting to wait now is shed (in-process and store-wide queue together).
    fn queue_deadline(&self) -> Option<std::time::Instant> {
        let timeout = self.inner.config.limit.queue_timeout?;
        self.inner.clock.now().checked_add(timeout)
    }

    /// A permit of the in-process limit (FIFO), or `Overloaded`.
    async fn acquire_permit(&self) -> Result<ConcurrencyPermit> {
        match self.inner.limit.acquire().await {
            Ok(permit) => Ok(permit),
            Err(overloaded) => {
                self.inner.gauges.shed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(retry_after = ?overloaded.retry_after, "allocation shed: too many queued");
                Err(Error::Overloaded {
                    retry_after: overloaded.retry_after,
                })
            }
        }
    }

    /// A store-wide slot (see the `admission` module), reserving the estimated bytes of
    /// materializing `plan` into `app_dir` (none without a plan).
    async fn admit(
        &self,
        plan: Option<Arc<Plan>>,
        app_dir: &Path,
        deadline: Option<std::time::Instant>,
    ) -> Result<Slot> {
        let this = self.clone();
        let app_dir = app_dir.to_path_buf();
        let admitted = blocking(move || {
            let demand = this.demand(plan.as_deref(), &app_dir)?;
            let probe = |path: &Path| this.inner.free_space.available_bytes(path);
            StoreWide::new(&this.inner.store).admit(&demand, &probe, &this.inner.clock, deadline)
        })
        .await;
        if matches!(admitted, Err(Error::Overloaded { .. })) {
            self.inner.gauges.shed.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// What materializing `plan` into `app_dir` asks of the store-wide admission: a tree on
    /// the app's filesystem, plus one on the store's when the template has to be built.
    fn demand(&self, plan: Option<&Plan>, app_dir: &Path) -> Result<Demand> {
        use std::os::unix::fs::MetadataExt;
        let mut needs = Vec::new();
        if let Some(plan) = plan {
            let store = self.inner.store.path();
            let dev = |path: &Path| {
                fs::metadata(path)
                    .map(|m| m.dev())
                    .map_err(Error::io("cannot stat", path))
            };
            let (store_dev, app_dev) = (dev(store)?, dev(app_dir)?);
            let mode = self.inner.config.link_mode;
            let template = self.inner.store.dir("templates").join(&plan.digest);
            if read_marker(&template).is_none_or(|m| m.manifest != plan.digest) {
                needs.push(Need {
                    path: store.to_path_buf(),
                    dev: store_dev,
                    bytes: tree_bytes(&plan.manifest, copies_data(mode, true)),
                });
            }
            needs.push(Need {
                path: app_dir.to_path_buf(),
                dev: app_dev,
                bytes: tree_bytes(&plan.manifest, copies_data(mode, store_dev == app_dev)),
            });
        }
        Ok(Demand {
            limit: self.inner.config.limit.clone(),
            min_free_bytes: self.inner.config.min_free_bytes,
            needs,
        })
    }

    /// Re-saves the plan's manifest if gc removed it, and stamps it as used (gc keeps
    /// manifests used within its retention; `verify` needs them). Best effort.
    fn keep_manifest(&self, plan: &Plan) {
        let store = &self.inner.store;
        let path = store.dir("manifests").join(format!("{}.json", plan.digest));
        if !path.exists()
            && let Err(e) = plan.manifest.save(store)
        {
            tracing::debug!(error = %e, "cannot restore manifest");
            return;
        }
        touch_manifest(store, &plan.digest);
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

    /// Makes sure the template for `plan` exists; returns whether this call built it.
    ///
    /// Holds the template's lock exclusively while building; [`Self::verify_content`] may
    /// then discard *other* templates (waiting for their locks), never this one (it does not
    /// exist while it is being built), so the lock order stays acyclic.
    fn ensure_template(&self, plan: &Plan) -> Result<bool> {
        let store = &self.inner.store;
        let template = store.dir("templates").join(&plan.digest);
        // Fast path: a published template with a valid marker (shared lock, concurrent clones).
        {
            let _shared = store.template_lock(&plan.digest, LockMode::Shared)?;
            if read_marker(&template).is_some_and(|m| m.manifest == plan.digest) {
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
                (true, None) => return Ok(false),
                (_, problem) => {
                    self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(template = %plan.digest, problem = problem.as_deref().unwrap_or("invalid marker"), "template invalid; rebuilding it");
                    store.discard_template_locked(&plan.digest, &lock)?;
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
        drop(lock);
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
    /// publishes it with one rename. The caller holds the app-dir lock. A template found
    /// missing or damaged (files deleted, or changed through a hardlink) is rebuilt from the
    /// store and cloned again; should it vanish once more, the tree is built from the store.
    fn clone_and_publish(&self, plan: &Plan, app_dir: &Path) -> Result<TreeStats> {
        remove_stale_staging(app_dir)?;
        let staging = app_dir.join(unique_name(STAGING_PREFIX));
        fs::create_dir(&staging).map_err(Error::io("cannot create", &staging))?;
        let result = (|| {
            let marker = marker_bytes(&staging, &plan.digest, Some(&plan.lockfile_digest))?;
            let stats = if let Some(stats) = self.clone_template(plan, &staging, &marker)? {
                stats
            } else {
                reset_dir(&staging)?;
                self.ensure_template(plan)?;
                if let Some(stats) = self.clone_template(plan, &staging, &marker)? {
                    stats
                } else {
                    reset_dir(&staging)?;
                    self.build_from_store(plan, &staging, &marker)?
                }
            };
            seal(&staging)?;
            publish(&staging, &app_dir.join("node_modules"))?;
            Ok(stats)
        })();
        if result.is_err() {
            let _ = remove_tree(&staging);
        }
        result
    }

    /// Clones the template into `staging` under its shared lock. `Ok(None)` when there is no
    /// valid template, or it was found damaged (it is then discarded, once no clone reads it).
    fn clone_template(
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
            // Files changed through a hardlink are re-hashed: intact content gets its metadata
            // back, modified content is never handed out (the template is rebuilt below).
            Ok(Built::Done(stats)) => match check_staged(store, &plan.manifest, staging)? {
                Staged::Intact => return Ok(Some(stats)),
                Staged::Restored(files) => {
                    self.inner.gauges.rebuilt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(template = %plan.digest, files, "store files changed through a hardlink kept their content; their mode and mtime were restored");
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
        tracing::warn!(template = %plan.digest, problem, "template damaged; discarding it and rebuilding it from the store");
        let exclusive = store.template_lock(&plan.digest, LockMode::Exclusive)?;
        if identity(&template) == seen {
            store.discard_template_locked(&plan.digest, &exclusive)?;
        } // else someone replaced it meanwhile: the new one is checked when cloned.
        Ok(None)
    }

    /// Builds the tree in `staging` straight from verified store files.
    fn build_from_store(&self, plan: &Plan, staging: &Path, marker: &[u8]) -> Result<TreeStats> {
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
        let store = self.inner.store.clone();
        let work = blocking(move || Ok(store.work())).await?;
        // A repair is a materialization: it is admitted like an allocation (before the app
        // lock), reserving nothing it cannot know yet beyond the threshold.
        let admitted = if repair {
            let deadline = self.queue_deadline();
            let permit = self.acquire_permit().await?;
            Some((permit, self.admit(None, &app_dir, deadline).await?))
        } else {
            None
        };
        let this = self.clone();
        let report = blocking(move || this.verify_blocking(&app_dir, repair, lockfile)).await;
        drop((admitted, work));
        report
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
                        touch_manifest(store, &marker.manifest);
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

/// State of a published tree with respect to a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TreeState {
    /// Marker of this plan, and the tree matches it.
    Valid,
    /// Marker of this plan, but the tree does not match it (the problem found).
    Damaged(String),
    /// No tree, or a tree of another plan or without a valid marker.
    Absent,
}

/// Whether `APP_DIR/node_modules` carries a valid marker for this plan and matches it.
/// Read-only and silent (callers count and log damage).
fn tree_state(plan: &Plan, app_dir: &Path) -> TreeState {
    let nm = app_dir.join("node_modules");
    match read_marker(&nm) {
        Some(marker) if marker.manifest == plan.digest => match quick_check(&plan.manifest, &nm) {
            None => TreeState::Valid,
            Some(problem) => TreeState::Damaged(problem),
        },
        _ => TreeState::Absent,
    }
}

/// Stamps a manifest as used (gc keeps manifests used within its retention). Best effort.
fn touch_manifest(store: &Store, digest: &str) {
    let path = store.dir("manifests").join(format!("{digest}.json"));
    if let Err(e) = touch(&path) {
        tracing::debug!(path = %path.display(), error = %e, "cannot stamp manifest as used");
    }
}

/// Empties a staging directory for another attempt.
fn reset_dir(dir: &Path) -> Result<()> {
    remove_tree(dir)?;
    fs::create_dir(dir).map_err(Error::io("cannot create", dir))
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
