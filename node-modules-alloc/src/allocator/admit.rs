//! Admission: whether a materialization may start now.
//!
//! Why: under a surge, work that cannot finish soon must be refused fast (with a
//! `retry_after`), not queued without bound or started on a full disk. The order is the
//! lock order of the [module documentation](super): in-process permit (FIFO, bounded queue) →
//! store-wide slot (see `crate::admission`), reserving the bytes the tree will write → the
//! [`FreeSpace`] guard.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use resilience_core::clock::Clock;
use resilience_core::limit::ConcurrencyPermit;

use super::marker::read_marker;
use super::observe::Shed;
use super::{Allocator, blocking};
use crate::admission::{Demand, Need, Slot, StoreWide, copies_data, tree_bytes};
use crate::error::{Error, Result};
use crate::manifest::Plan;

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

impl Allocator {
    /// When a caller starting to wait now is shed (in-process and store-wide queue together).
    pub(super) fn queue_deadline(&self) -> Option<std::time::Instant> {
        let timeout = self.inner.config.limit.queue_timeout?;
        self.inner.clock.now().checked_add(timeout)
    }

    /// A permit of the in-process limit (FIFO), or `Overloaded`.
    pub(super) async fn acquire_permit(&self) -> Result<ConcurrencyPermit> {
        match self.inner.limit.acquire().await {
            Ok(permit) => Ok(permit),
            Err(overloaded) => {
                self.inner.gauges.shed.fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.shed(Shed::Queue);
                tracing::warn!(name = %self.inner.name, retry_after = ?overloaded.retry_after, "allocation shed: too many queued");
                Err(Error::Overloaded {
                    retry_after: overloaded.retry_after,
                })
            }
        }
    }

    /// A store-wide slot (see the `admission` module), reserving the estimated bytes of
    /// materializing `plan` into `app_dir` (none without a plan).
    pub(super) async fn admit(
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
        match &admitted {
            Err(Error::Overloaded { .. }) => {
                self.inner.gauges.shed.fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.shed(Shed::StoreQueue);
            }
            Err(Error::InsufficientSpace { .. }) => self.inner.metrics.shed(Shed::DiskSpace),
            _ => {}
        }
        admitted
    }

    /// What materializing `plan` into `app_dir` asks of the store-wide admission: a tree on
    /// the app's filesystem, plus one on the store's when the template has to be built.
    pub(super) fn demand(&self, plan: Option<&Plan>, app_dir: &Path) -> Result<Demand> {
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
            name: self.inner.name.clone(),
        })
    }

    pub(super) fn check_space(&self, app_dir: &Path) -> Result<()> {
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
                self.inner.metrics.shed(Shed::DiskSpace);
                tracing::warn!(name = %self.inner.name, path = %path.display(), available, required, "refusing allocation: disk nearly full");
                return Err(Error::InsufficientSpace {
                    path: path.to_path_buf(),
                    available,
                    required,
                });
            }
        }
        Ok(())
    }
}
