//! Fetching packages missing from the store from a registry (feature `fetch`).
//!
//! # Why through resilience-core
//!
//! A fleet of hosts allocating at once turns one registry hiccup into a retry storm against
//! it, exactly the loop of the November 2019 outage (see resilience-core's docs). Every
//! download therefore goes through the same mechanisms as the rest of Breakwater:
//!
//! * a [`ConcurrencyLimit`](resilience_core::limit::ConcurrencyLimit) on connections per
//!   registry host (`scheme://host[:port]`);
//! * a [`RetryPolicy`] per package (connection errors,
//!   broken-off bodies, HTTP 429 and 5xx are retried; 4xx and integrity mismatches are not),
//!   with jittered backoff that waits at least the server's `Retry-After`, and a
//!   [`RetryBudget`] shared by every package, so that a
//!   failing registry gets at most a share of extra load;
//! * a [`Deadline`] per package bounding all its
//!   attempts and backoffs (an attempt in flight when it passes is cancelled);
//! * a [`CircuitBreaker`](resilience_core::breaker::CircuitBreaker) per registry host: once
//!   it opens, the remaining packages fail fast instead of hammering it.
//!
//! # Why nothing partial reaches the store
//!
//! The body is hashed while it streams in (the strongest algorithm of the lockfile's SRI
//! integrity: sha512, or sha1 for old packages) and bounded by the store's
//! `max_tarball_bytes`. Only a complete body whose digest matches is handed to the store's
//! tarball import ([`Store::import_tarball_bytes`]), which checks every entry (the hardening
//! rules of [`crate::import`]) and publishes the package index last. A download that breaks
//! off, a process killed mid-download, or bytes that do not match leave nothing in the store.
//!
//! # Where packages come from
//!
//! The lockfile's `resolved` URL, or the registry configured for the package's scope
//! ([`Registries`]: `--registry`, `.npmrc`'s `registry=` and `@scope:registry=`) as
//! `REGISTRY/NAME/-/BASE-VERSION.tgz`. A registry-shaped `resolved` URL is fetched from the
//! configured registry when one is (`replace_registry_host`). Credentials
//! (`//host/:_authToken=`) go only to URLs under their prefix and are never logged.

mod config;
mod hosts;
mod http;
mod npmrc;
pub(crate) mod resolved;
pub(crate) mod url;

pub use config::FetchConfig;
pub use npmrc::{Credential, Registries, Secret};

use std::fmt;
use std::sync::Arc;

use resilience_core::budget::RetryBudget;
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::deadline::Deadline;
use resilience_core::retry::{RetryError, RetryPolicy};

use crate::error::{Error, MissingPackage, Result};
use crate::import::Imported;
use crate::integrity::Integrity;
use crate::lockfile::{Lockfile, Selection};
use crate::platform::Platform;
use crate::store::Store;
use hosts::Hosts;
use http::{AttemptError, HttpClient};
use url::{Url, url_safe_name, url_safe_version};

/// One package to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The install path in the lockfile (`node_modules/a`).
    pub path: String,
    /// The package name (the real one for aliases).
    pub name: String,
    /// Its version (needed to build a registry URL).
    pub version: Option<String>,
    /// The tarball's integrity: the download must match it.
    pub integrity: Integrity,
    /// The lockfile's `resolved` URL, if any.
    pub resolved: Option<String>,
}

impl FetchRequest {
    /// `name@version at path`, for messages.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v} at {}", self.name, self.path),
            None => format!("{} at {}", self.name, self.path),
        }
    }
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Distinct tarballs the selection needs.
    pub needed: usize,
    /// Of them, already complete in the store.
    pub already_present: usize,
    /// Packages downloaded and imported.
    pub fetched: Vec<Imported>,
    /// Bytes downloaded (compressed).
    pub bytes: u64,
}

/// Progress of a fetch, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// Downloads begin: this many packages are missing.
    Started {
        /// Packages to download.
        packages: usize,
    },
    /// A chunk of this many bytes arrived.
    Bytes(u64),
    /// A package is in the store.
    Imported {
        /// `name@version at path`.
        package: String,
    },
}

type Progress = Arc<dyn Fn(&FetchEvent) + Send + Sync>;

struct Inner {
    store: Store,
    config: FetchConfig,
    registries: Registries,
    /// Built on the first download (TLS roots are loaded then): a fetcher that finds every
    /// package in the store costs nothing.
    client: tokio::sync::OnceCell<HttpClient>,
    policy: RetryPolicy,
    hosts: Hosts,
    imports: tokio::sync::Semaphore,
}

/// Downloads packages missing from a [`Store`]. Cheap to clone; `Send + Sync`. Needs a tokio
/// runtime with I/O and time enabled.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
    progress: Option<Progress>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("store", &self.inner.store.path())
            .field("config", &self.inner.config)
            .field("registries", &self.inner.registries)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher into `store` with the system clock.
    pub fn new(store: Store, config: FetchConfig, registries: Registries) -> Result<Self> {
        Self::with_clock(store, config, registries, SharedClock::system())
    }

    /// A fetcher whose backoff, budget, breakers, limits and deadlines use `clock`.
    pub fn with_clock(
        store: Store,
        config: FetchConfig,
        registries: Registries,
        clock: impl Clock,
    ) -> Result<Self> {
        config.validate()?;
        let clock = clock.into_shared();
        let budget = Arc::new(
            RetryBudget::with_clock(config.budget.clone(), clock.clone())
                .map_err(|e| e.nested("budget"))?,
        );
        let policy = RetryPolicy::new(config.retry.clone())
            .map_err(|e| e.nested("retry"))?
            .with_clock(clock.clone())
            .with_budget(budget);
        let imports = match config.max_parallel_imports {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            n => n,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                hosts: Hosts::new(config.per_host.clone(), config.breaker.clone(), clock),
                client: tokio::sync::OnceCell::new(),
                store,
                config,
                registries,
                policy,
                imports: tokio::sync::Semaphore::new(imports),
            }),
            progress: None,
        })
    }

    /// Calls `progress` with every [`FetchEvent`] (from the fetch's tasks).
    #[must_use]
    pub fn with_progress(mut self, progress: impl Fn(&FetchEvent) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.inner.config
    }

    /// The store packages are imported into.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn emit(&self, event: &FetchEvent) {
        if let Some(progress) = &self.progress {
            progress(event);
        }
    }

    /// The packages of `lockfile` selected for `platform` (optional packages that do not fit
    /// are left out), with their `resolved` URLs.
    pub fn requests(
        lockfile: &Lockfile,
        selection: &Selection,
        platform: &Platform,
    ) -> Vec<FetchRequest> {
        let resolved = std::fs::read_to_string(lockfile.file())
            .map(|text| resolved::resolved_urls(&text))
            .unwrap_or_default();
        lockfile
            .select_on(selection, platform)
            .map(|p| FetchRequest {
                path: p.path.clone(),
                name: p.name.clone(),
                version: p.version.clone(),
                integrity: p.integrity.clone(),
                resolved: resolved.get(&p.path).cloned(),
            })
            .collect()
    }

    /// Fills the store with every package of `lockfile` that `selection` and `platform`
    /// select and the store lacks (`pnpm fetch`).
    pub async fn fetch_lockfile(
        &self,
        lockfile: &Lockfile,
        selection: &Selection,
        platform: &Platform,
    ) -> Result<FetchReport> {
        let lockfile = lockfile.clone();
        let (selection, platform) = (*selection, platform.clone());
        let requests =
            blocking(move || Ok(Self::requests(&lockfile, &selection, &platform))).await?;
        self.fetch(requests).await
    }

    /// Fetches every request whose tarball the store lacks (each distinct integrity once).
    /// Offline, the missing ones are an [`Error::Offline`] listing them all. When packages
    /// fail, the others are still fetched and imported; one failure is returned as is,
    /// several as [`Error::FetchFailed`] with the first.
    pub async fn fetch(&self, requests: Vec<FetchRequest>) -> Result<FetchReport> {
        let store = self.inner.store.clone();
        let (needed, missing) = blocking(move || {
            let mut seen = std::collections::HashSet::new();
            let mut missing = Vec::new();
            let mut needed = 0;
            for request in requests {
                if !seen.insert(request.integrity.to_string()) {
                    continue;
                }
                needed += 1;
                let present = store
                    .read_index(&request.integrity)?
                    .is_some_and(|index| store.has_all_files(&index));
                if !present {
                    missing.push(request);
                }
            }
            Ok((needed, missing))
        })
        .await?;
        let mut report = FetchReport {
            needed,
            already_present: needed - missing.len(),
            ..FetchReport::default()
        };
        if missing.is_empty() {
            return Ok(report);
        }
        if self.inner.config.offline {
            tracing::warn!(
                missing = missing.len(),
                "offline: packages missing from the store are not fetched"
            );
            return Err(Error::Offline {
                missing: missing
                    .iter()
                    .map(|r| MissingPackage {
                        path: r.path.clone(),
                        integrity: r.integrity.to_string(),
                    })
                    .collect(),
            });
        }
        self.emit(&FetchEvent::Started {
            packages: missing.len(),
        });
        tracing::info!(
            packages = missing.len(),
            "fetching packages missing from the store"
        );
        let labels: Vec<String> = missing.iter().map(FetchRequest::label).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, request) in missing.into_iter().enumerate() {
            let this = self.clone();
            tasks.spawn(async move { (i, this.fetch_one(request).await) });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(result) => results.push(result),
                Err(e) => {
                    return Err(Error::io("fetch task failed", std::path::PathBuf::new())(
                        std::io::Error::other(e.to_string()),
                    ));
                }
            }
        }
        results.sort_by_key(|(i, _)| *i);
        let mut errors = Vec::new();
        for (i, result) in results {
            match result {
                Ok((imported, bytes)) => {
                    report.bytes += bytes;
                    report.fetched.push(imported);
                }
                Err(e) => errors.push((labels.get(i).cloned().unwrap_or_default(), e)),
            }
        }
        let failed = errors.len();
        let packages = errors.iter().map(|(label, _)| label.clone()).collect();
        match (errors.into_iter().next(), failed) {
            (None, _) => Ok(report),
            (Some((_, e)), 1) => Err(e),
            (Some((_, first)), failed) => Err(Error::FetchFailed {
                failed,
                packages,
                first: Box::new(first),
            }),
        }
    }

    /// The URL to fetch `request` from (see the module docs).
    fn url_for(&self, request: &FetchRequest) -> Result<Url> {
        let registry = self.inner.registries.registry_for(&request.name);
        let version = request
            .version
            .as_deref()
            .filter(|v| url_safe_version(v) && url_safe_name(&request.name));
        if let Some(resolved) = request.resolved.as_deref().and_then(Url::parse) {
            if self.inner.config.replace_registry_host
                && let (Some(registry), Some(version)) = (registry, version)
                && resolved.is_registry_tarball_of(&request.name, version)
            {
                return Ok(registry.tarball(&request.name, version));
            }
            return Ok(resolved);
        }
        match (registry, version) {
            (Some(registry), Some(version)) => Ok(registry.tarball(&request.name, version)),
            _ => Err(Error::NoRegistry {
                package: request.label(),
            }),
        }
    }

    /// Downloads (under the retry policy, the host's limit and breaker, the package's
    /// deadline) and imports one package; returns it and the bytes downloaded.
    async fn fetch_one(&self, request: FetchRequest) -> Result<(Imported, u64)> {
        let package = request.label();
        let url = self.url_for(&request)?;
        let host_key = url.host_key();
        let host = self.inner.hosts.get(&host_key)?;
        let credential = self
            .inner
            .registries
            .credential_for(&url)
            .map(|(prefix, c)| (prefix.to_owned(), c.clone()));
        let limit = self.inner.store.config().limits.max_tarball_bytes;
        let deadline = Deadline::after(
            self.inner.policy.clock().clone(),
            self.inner.config.package_deadline,
        );
        let progress = self.progress.clone();
        let on_bytes = move |n: u64| {
            if let Some(progress) = &progress {
                progress(&FetchEvent::Bytes(n));
            }
        };
        let on_bytes: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(on_bytes);
        let timeout = self.inner.config.connect_timeout;
        let client = self
            .inner
            .client
            .get_or_try_init(|| async move { http::client(timeout) })
            .await?
            .clone();
        let result = self
            .inner
            .policy
            .run_with_deadline(&deadline, |attempt| {
                let (host, client, url) = (Arc::clone(&host), client.clone(), url.clone());
                let credential = credential.as_ref().map(|(_, c)| c.clone());
                let integrity = request.integrity.clone();
                let on_bytes = Arc::clone(&on_bytes);
                let package = package.clone();
                async move {
                    let breaker = host.breaker.try_acquire().map_err(|open| {
                        tracing::warn!(package = %package, host = %url.host_key(), retry_after_ms = open.retry_after.as_millis() as u64, "circuit breaker open: not fetching");
                        AttemptError::BreakerOpen(open.retry_after)
                    })?;
                    let permit = host.limit.acquire().await.map_err(|overloaded| {
                        AttemptError::Connect(format!(
                            "too many downloads queued for the host (retry after {:?})",
                            overloaded.retry_after
                        ))
                    })?;
                    let result =
                        http::download(&client, &url, credential.as_ref(), &integrity, limit, &*on_bytes)
                            .await;
                    drop(permit);
                    match &result {
                        Ok(bytes) => {
                            breaker.record_success();
                            tracing::debug!(package = %package, url = %url, attempt, bytes = bytes.len(), "downloaded");
                        }
                        Err(e) => {
                            if e.is_registry_failure() {
                                breaker.record_failure();
                            } else {
                                breaker.record_ignored();
                            }
                            tracing::debug!(package = %package, url = %url, attempt, error = %e, "download attempt failed");
                        }
                    }
                    result
                }
            })
            .await;
        let bytes = result.map_err(|e| {
            let token_for = credential.as_ref().map(|(p, _)| p.as_str());
            self.describe(&e, &request.name, &package, &url, token_for)
        })?;
        let downloaded = bytes.len() as u64;
        let _import = self.inner.imports.acquire().await.map_err(|e| {
            Error::io("import slots closed", std::path::PathBuf::new())(std::io::Error::other(
                e.to_string(),
            ))
        })?;
        let store = self.inner.store.clone();
        let (label, integrity) = (format!("{package} from {url}"), request.integrity.clone());
        let imported =
            blocking(move || store.import_tarball_bytes(&label, &bytes, Some(&integrity), None))
                .await?;
        self.emit(&FetchEvent::Imported {
            package: package.clone(),
        });
        tracing::info!(package = %package, url = %url, bytes = downloaded, files = imported.files, "fetched package");
        Ok((imported, downloaded))
    }

    /// The crate error for a download that gave up.
    fn describe(
        &self,
        error: &RetryError<AttemptError>,
        name: &str,
        package: &str,
        url: &Url,
        token_for: Option<&str>,
    ) -> Error {
        let attempts = error.attempts();
        let why = match error {
            RetryError::NotRetryable { error, .. } => {
                return self.permanent(error, name, package, url, token_for, attempts);
            }
            RetryError::AttemptsExhausted { .. } => "all attempts failed".to_owned(),
            RetryError::BudgetExhausted { .. } => {
                tracing::warn!(package = %package, url = %url, attempts, "retry denied: the retry budget is exhausted (the registry is failing for many packages)");
                "the retry budget is exhausted (the registry is failing for many packages)"
                    .to_owned()
            }
            RetryError::DeadlineExceeded { .. } => {
                tracing::warn!(package = %package, url = %url, attempts, deadline = ?self.inner.config.package_deadline, "package deadline passed");
                format!(
                    "the package deadline of {:?} passed",
                    self.inner.config.package_deadline
                )
            }
        };
        Error::RegistryUnreachable {
            package: package.to_owned(),
            url: url.to_string(),
            attempts,
            why,
            last_error: error.last_error().map_or_else(
                || "none (cut off by the deadline)".to_owned(),
                ToString::to_string,
            ),
        }
    }

    fn permanent(
        &self,
        error: &AttemptError,
        name: &str,
        package: &str,
        url: &Url,
        token_for: Option<&str>,
        attempts: u32,
    ) -> Error {
        match error {
            AttemptError::Status { status, .. } if *status == 401 || *status == 403 => {
                tracing::warn!(package = %package, url = %url, status, credential_sent = token_for.is_some(), "registry requires authentication");
                let registry = self
                    .inner
                    .registries
                    .registry_for(name)
                    .map_or_else(|| url.clone(), Clone::clone);
                let mut dart = registry.nerf_dart();
                if registry.host != url.host || registry.port != url.port {
                    dart = format!("//{}/", url.authority());
                }
                if !dart.ends_with('/') {
                    dart.push('/');
                }
                Error::AuthRequired {
                    package: package.to_owned(),
                    url: url.to_string(),
                    status: *status,
                    token_for: token_for.map(ToOwned::to_owned),
                    nerf_dart: dart,
                }
            }
            AttemptError::Status { status, .. } => Error::HttpStatus {
                package: package.to_owned(),
                url: url.to_string(),
                status: *status,
            },
            AttemptError::Integrity { expected, actual } => {
                tracing::warn!(package = %package, url = %url, expected = %expected, actual = %actual, "integrity mismatch: downloaded bytes refused");
                Error::IntegrityMismatch {
                    what: format!("{package} downloaded from {url}"),
                    expected: expected.clone(),
                    actual: actual.clone(),
                }
            }
            AttemptError::TooLarge { limit } => Error::BadTarball {
                tarball: format!("{package} from {url}"),
                reason: format!("tarball is larger than the limit of {limit} bytes"),
            },
            AttemptError::BreakerOpen(retry_after) => Error::CircuitOpen {
                package: package.to_owned(),
                host: url.host_key(),
                retry_after: *retry_after,
            },
            AttemptError::Connect(_) | AttemptError::Body(_) => Error::RegistryUnreachable {
                package: package.to_owned(),
                url: url.to_string(),
                attempts,
                why: "the error is not retryable".to_owned(),
                last_error: error.to_string(),
            },
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(
            Error::io("blocking task failed", std::path::PathBuf::new())(std::io::Error::other(
                join.to_string(),
            )),
        ),
    }
}
