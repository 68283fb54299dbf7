//! The allocator: lockfile in, ready `node_modules` out — once, atomically, under a bound.
//!
//! # Why
//!
//! A surge of allocations must not overwhelm the host nor leave an app on a corrupted tree
//! (the [README](https://github.com/breakwater-rs/breakwater/tree/main/node-modules-alloc#readme)
//! tells the 2019 outage this comes from). These properties prevent that:
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

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::ConcurrencyLimit;
use resilience_core::{InstanceName, Named};
use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::fsutil::touch;
use crate::lifecycle::enforce;
use crate::lockfile::Lockfile;
use crate::manifest::{Manifest, Plan};
use crate::materialize::TreeStats;
use crate::platform::Platform;
use crate::store::Store;

mod admit;
mod config;
mod marker;
mod observe;
mod publish;
mod report;
mod staging;
mod stats;
mod template;
mod verify;

pub use crate::lifecycle::IgnoreScripts;
pub use crate::platform::PlatformConfig;
pub use admit::{FreeSpace, StatvfsFreeSpace};
pub use config::AllocatorConfig;
pub use marker::MARKER;
use marker::{TreeState, tree_state};
use observe::{AllocationEnd, Metrics, Rebuilt, Started};
pub use report::{Allocation, Outcome, VerifyReport};
use staging::lock_dir;
pub use stats::AllocatorStats;
use stats::{Gauges, Materializing, Queued};

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
    /// The `name` field of every event and label of every metric (`""` when unnamed).
    name: InstanceName,
    metrics: Metrics,
    /// Fetches packages the store lacks before the tree is planned again.
    #[cfg(feature = "fetch")]
    fetcher: Option<crate::fetch::Fetcher>,
}

/// Allocates `node_modules` trees from a [`Store`]. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Allocator {
    inner: Arc<Inner>,
}

impl Allocator {
    /// An allocator over `store` with the system clock and `statvfs` free-space guard.
    ///
    /// With the `metrics` feature, the allocator registers its metric handles here (see
    /// `docs/metrics.md`): install the recorder before building allocators.
    pub fn new(store: Store, config: AllocatorConfig) -> Result<Self> {
        Self::with_clock(store, config, SharedClock::system())
    }

    /// An allocator named by its configuration file: a [`Named<AllocatorConfig>`] reads the
    /// allocator's keys plus an optional `name`.
    ///
    /// ```
    /// use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
    /// use node_modules_alloc::store::Store;
    /// use resilience_core::Named;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config: Named<AllocatorConfig> =
    ///     serde_json::from_str(r#"{ "name": "ci-runners", "link_mode": "copy" }"#)?;
    /// let allocator = Allocator::from_named(Store::open(dir.path())?, config)?;
    /// assert_eq!(allocator.name().as_str(), "ci-runners");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_named(store: Store, config: Named<AllocatorConfig>) -> Result<Self> {
        let name = config
            .instance_name()
            .map_err(|e| resilience_core::ConfigError::new("name", e.to_string()))?;
        Self::build(store, config.config, SharedClock::system(), name)
    }

    /// An allocator whose limit uses `clock` (queue timeouts, `retry_after`).
    pub fn with_clock(store: Store, config: AllocatorConfig, clock: impl Clock) -> Result<Self> {
        Self::build(store, config, clock, InstanceName::unnamed())
    }

    /// Registers the metric handles once, under the final name.
    fn build(
        store: Store,
        config: AllocatorConfig,
        clock: impl Clock,
        name: InstanceName,
    ) -> Result<Self> {
        config.validate()?;
        let clock = clock.into_shared();
        // The store-wide limit carries the allocator's name (its shed and queue series).
        let limit = ConcurrencyLimit::from_named(
            resilience_core::Named {
                name: name.is_named().then(|| name.as_str().to_owned()),
                config: config.limit.clone(),
            },
            clock.clone(),
        )
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
                metrics: Metrics::new(&name),
                name,
                #[cfg(feature = "fetch")]
                fetcher: None,
            }),
        })
    }

    /// Names the allocator: the name is the `name` field of its tracing events and spans and
    /// the `name` label of its metrics. Call it right after construction, like
    /// [`Self::with_free_space`]: a clone made earlier keeps its own name and counters.
    ///
    /// With the `metrics` feature, the handles are registered again under the name; the
    /// unnamed series registered by [`Self::new`] stay at zero in the recorder. To register
    /// only named series, build the allocator with [`Self::from_named`].
    ///
    /// ```
    /// use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
    /// use node_modules_alloc::store::Store;
    /// use resilience_core::InstanceName;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let allocator = Allocator::new(Store::open(dir.path())?, AllocatorConfig::default())?
    ///     .named(InstanceName::new("ci-runners")?);
    /// assert_eq!(allocator.name().as_str(), "ci-runners");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn named(self, name: InstanceName) -> Self {
        let inner = self.into_inner();
        Self {
            inner: Arc::new(Inner {
                metrics: Metrics::new(&name),
                limit: inner.limit.named(name.clone()),
                name,
                ..inner
            }),
        }
    }

    /// The instance name (`""` when unnamed).
    pub fn name(&self) -> &InstanceName {
        &self.inner.name
    }

    /// The inner state, or a fresh copy of it (same store, configuration, limit, clock and
    /// name; new probe, counters and metric handles) when other clones share it.
    fn into_inner(self) -> Inner {
        Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            store: arc.store.clone(),
            config: arc.config.clone(),
            limit: arc.limit.clone(),
            clock: arc.clock.clone(),
            free_space: Box::new(StatvfsFreeSpace),
            flights: Mutex::new(HashMap::new()),
            gauges: Gauges::default(),
            metrics: Metrics::new(&arc.name),
            name: arc.name.clone(),
            #[cfg(feature = "fetch")]
            fetcher: arc.fetcher.clone(),
        })
    }

    /// Replaces the free-space probe (tests simulate a full disk with it). Call it right after
    /// construction: a clone made earlier keeps the previous probe and its own counters.
    #[must_use]
    pub fn with_free_space(self, probe: impl FreeSpace + 'static) -> Self {
        let inner = self.into_inner();
        Self {
            inner: Arc::new(Inner {
                free_space: Box::new(probe),
                ..inner
            }),
        }
    }

    /// Fetches packages the store lacks (from the lockfile's `resolved` URLs or the
    /// configured registries) instead of failing with [`Error::MissingPackages`]; an offline
    /// fetcher turns that error into [`Error::Offline`]. The fetcher should fill this
    /// allocator's store. Call it right after construction, like [`Self::with_free_space`].
    #[cfg(feature = "fetch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
    #[must_use]
    pub fn with_fetcher(self, fetcher: crate::fetch::Fetcher) -> Self {
        let inner = self.into_inner();
        Self {
            inner: Arc::new(Inner {
                fetcher: Some(fetcher),
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
        let started = Started::now();
        let span = tracing::info_span!(
            "allocate",
            name = %self.inner.name,
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
        let end = AllocationEnd::of(&result, |a| a.outcome);
        self.inner.metrics.allocation(end, started);
        match &result {
            Ok(a) => {
                span.record("outcome", tracing::field::display(a.outcome));
            }
            Err(e) => {
                span.record("outcome", "error");
                span.in_scope(
                    || tracing::warn!(name = %self.inner.name, outcome = end.label(), error = %e, "allocation failed"),
                );
            }
        }
        result
    }

    async fn allocate_inner(&self, lockfile: Lockfile, app_dir: PathBuf) -> Result<Allocation> {
        let (_work, plan) = match self.work_and_plan(lockfile.clone(), app_dir.clone()).await {
            #[cfg(feature = "fetch")]
            Err(Error::MissingPackages { missing }) if self.inner.fetcher.is_some() => {
                self.fetch_missing(&lockfile, missing).await?;
                self.work_and_plan(lockfile, app_dir.clone()).await?
            }
            other => other?,
        };
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
        let queued = self.queued();
        let _permit = self.acquire_permit().await?;
        let _slot = self
            .admit(Some(Arc::clone(&plan)), &app_dir, deadline)
            .await?;
        drop(queued);
        let _gauge = Materializing::enter(&self.inner.gauges, &self.inner.metrics);

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
                self.inner.metrics.rebuilt(Rebuilt::App);
                tracing::warn!(name = %self.inner.name, problem, "published tree damaged; rebuilding it");
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
        tracing::info!(name = %self.inner.name, %outcome, hardlinks = stats.hardlinks, reflinks = stats.reflinks, copies = stats.copies, "node_modules published");
        Ok(Self::allocation(&plan, &app_dir, outcome, stats))
    }

    /// Registers the allocation as work in flight, plans the tree, sweeps if due.
    async fn work_and_plan(
        &self,
        lockfile: Lockfile,
        app_dir: PathBuf,
    ) -> Result<(crate::work::WorkGuard, Plan)> {
        let this = self.clone();
        blocking(move || {
            // Registered before the store is read: a gc through any clone of this handle now
            // refuses to run until the allocation is over.
            let work = this.inner.store.work();
            let plan = this.plan_for(&lockfile, &app_dir)?;
            this.inner.store.sweep_if_due(&this.inner.config.sweep);
            Ok((work, plan))
        })
        .await
    }

    /// Fetches the packages the plan found missing (all of them at once).
    #[cfg(feature = "fetch")]
    async fn fetch_missing(
        &self,
        lockfile: &Lockfile,
        missing: Vec<crate::MissingPackage>,
    ) -> Result<()> {
        let Some(fetcher) = &self.inner.fetcher else {
            return Err(Error::MissingPackages { missing });
        };
        let wanted: std::collections::HashSet<&str> =
            missing.iter().map(|m| m.path.as_str()).collect();
        let (lock, selection, platform) = (
            lockfile.clone(),
            self.inner.config.selection,
            self.platform(),
        );
        // Reads the lockfile again (its `resolved` URLs): off the async threads.
        let requests = blocking(move || {
            Ok(crate::fetch::Fetcher::requests(
                &lock, &selection, &platform,
            ))
        })
        .await?;
        let requests: Vec<_> = requests
            .into_iter()
            .filter(|r| wanted.contains(r.path.as_str()))
            .collect();
        tracing::info!(name = %self.inner.name, missing = missing.len(), "packages missing from the store: fetching them");
        fetcher.fetch(requests).await.map(drop)
    }

    /// Counts this caller as waiting for admission until the guard is dropped.
    fn queued(&self) -> Queued<'_> {
        Queued::enter(&self.inner.metrics)
    }

    fn reused(&self, plan: &Plan, app_dir: &Path) -> Allocation {
        self.inner.gauges.reused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(name = %self.inner.name, "existing tree is valid; reused");
        Self::allocation(plan, app_dir, Outcome::Reused, TreeStats::default())
    }

    /// Re-saves the plan's manifest if gc removed it, and stamps it as used (gc keeps
    /// manifests used within its retention; `verify` needs them). Best effort.
    fn keep_manifest(&self, plan: &Plan) {
        let store = &self.inner.store;
        let path = store.dir("manifests").join(format!("{}.json", plan.digest));
        if !path.exists()
            && let Err(e) = plan.manifest.save(store)
        {
            tracing::debug!(name = %self.inner.name, error = %e, "cannot restore manifest");
            return;
        }
        touch_manifest(store, &plan.digest, &self.inner.name);
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
            // The allocation passed `enforce`: every build left in the plan was ignored.
            ignored_scripts: plan.builds.clone(),
        }
    }

    /// Resolves `lockfile` for the configured platform and refuses it when a package needs a
    /// build that [`IgnoreScripts`] does not allow — before anything is written or an existing
    /// tree reused: such a tree would look complete and fail at `require` time.
    /// [`Self::plan`], and the lockfile's workspace folders checked in `app_dir`.
    fn plan_for(&self, lockfile: &Lockfile, app_dir: &Path) -> Result<Plan> {
        let plan = self.plan(lockfile)?;
        crate::workspaces::check(lockfile, self.inner.config.selection, app_dir)?;
        Ok(plan)
    }

    fn plan(&self, lockfile: &Lockfile) -> Result<Plan> {
        let plan = Manifest::plan_on(
            &self.inner.store,
            lockfile,
            &self.inner.config.selection,
            &self.platform(),
        )?;
        enforce(
            &plan.builds,
            &self.inner.config.ignore_scripts,
            &self.inner.name,
        )?;
        Ok(plan)
    }

    /// The platform packages are filtered for: this system's, with the configured overrides.
    fn platform(&self) -> Platform {
        Platform::current().with_overrides(&self.inner.config.platform)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    // The blocking thread works inside the caller's span (`allocate`, `verify`): its events
    // carry the allocation's fields.
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(result) => result,
        Err(join) => Err(Error::io("blocking task failed", PathBuf::new())(
            io::Error::other(join.to_string()),
        )),
    }
}

/// Stamps a manifest as used (gc keeps manifests used within its retention). Best effort.
fn touch_manifest(store: &Store, digest: &str, name: &InstanceName) {
    let path = store.dir("manifests").join(format!("{digest}.json"));
    if let Err(e) = touch(&path) {
        tracing::debug!(name = %name, path = %path.display(), error = %e, "cannot stamp manifest as used");
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
}
