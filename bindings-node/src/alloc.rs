//! `Allocator`: node-modules-alloc's crash-safe, load-shedding
//! `node_modules` allocator.
//!
//! Allocation, import and verification are file-system work: they run as
//! async methods on the addon's tokio runtime (blocking steps on its
//! blocking pool) and never block the event loop. Async exports cannot
//! throw a coded JS error themselves (they have no `Env`), so they resolve
//! to a tagged result, `{ ok }` or `{ error: { code, message, ... } }`, and
//! the JS wrapper rejects with the coded error. A panic inside them becomes
//! an `ERR_BREAKWATER_PANIC` result, like everywhere else.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;

use futures::FutureExt;
use napi::Env;
use napi_derive::napi;
use node_modules_alloc::Error as AllocError;
use node_modules_alloc::allocator::{Allocation, Allocator, AllocatorConfig, Outcome};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::lifecycle::IgnoreScripts;
use node_modules_alloc::platform::Libc;
use node_modules_alloc::store::Store;

use crate::codes;
use crate::error::{
    BwError, BwResult, INVALID_ARG, PANIC, duration_ms, from_config_ms, guard, to_ms, whole_usize,
};

/// Options of `new Allocator(...)`, type-checked by the JS wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct AllocatorOptions {
    /// The store directory (created if needed).
    pub store_dir: String,
    /// `'auto' | 'hardlink' | 'reflink' | 'copy'` (default auto).
    pub link_mode: Option<String>,
    /// Materializations at once (default 4).
    pub max_concurrent: Option<f64>,
    /// Allocations that may wait (default 256).
    pub max_queued: Option<f64>,
    /// How long an allocation may wait in the queue, in ms (default 60000).
    pub queue_timeout_ms: Option<f64>,
    /// `true`: queued allocations wait without a timeout.
    pub no_queue_timeout: Option<bool>,
    /// Refuse work below this many free bytes (default 512 MiB; 0 disables).
    pub min_free_bytes: Option<f64>,
    /// Builds that may be skipped (`all`, or package names); checked by the JS wrapper.
    pub ignore_scripts: Option<IgnoreScriptsInput>,
    /// Install `dev` packages (default true).
    pub include_dev: Option<bool>,
    /// Install `optional` packages that fit the platform (default true).
    pub include_optional: Option<bool>,
    /// The `os` optional packages are filtered for (default this system's).
    pub os: Option<String>,
    /// The `cpu` optional packages are filtered for (default this system's).
    pub cpu: Option<String>,
    /// `'glibc' | 'musl'` (default detected).
    pub libc: Option<String>,
}

/// `ignoreScripts`: `true` skips every build, or the names whose build may be skipped.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct IgnoreScriptsInput {
    /// Skip every build.
    pub all: bool,
    /// Package names whose build may be skipped.
    pub packages: Vec<String>,
}

/// Why an async operation failed.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct Failure {
    /// A stable `ERR_BREAKWATER_*` code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// `'range'` for an invalid argument (a `RangeError`), else unset.
    pub kind: Option<String>,
    /// The shedding hint of `ERR_BREAKWATER_OVERLOADED`.
    pub retry_after_ms: Option<f64>,
    /// Lockfile paths of `ERR_BREAKWATER_PACKAGES_MISSING`.
    pub missing: Option<Vec<String>>,
}

/// A ready `node_modules` tree.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AllocationOut {
    /// `appDir/node_modules`.
    pub node_modules: String,
    /// Digest of the tree's manifest.
    pub manifest_digest: String,
    /// Digest of the selected lockfile entries.
    pub lockfile_digest: String,
    /// Packages installed.
    pub packages: f64,
    /// Regular files in the tree.
    pub files: f64,
    /// `'reused' | 'cloned' | 'materialized'`.
    pub outcome: String,
    /// Files hardlinked into the app.
    pub hardlinks: f64,
    /// Files reflinked into the app.
    pub reflinks: f64,
    /// Files copied into the app.
    pub copies: f64,
    /// Packages whose build was skipped under `ignoreScripts` (`name@version at path`).
    pub ignored_scripts: Vec<String>,
}

/// `allocate`'s tagged result.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AllocateResult {
    /// The allocation, on success.
    pub ok: Option<AllocationOut>,
    /// The failure, otherwise.
    pub error: Option<Failure>,
}

/// One imported package.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ImportedOut {
    /// The tarball's sha512 integrity.
    pub integrity: String,
    /// `name` from `package.json`.
    pub name: Option<String>,
    /// `version` from `package.json`.
    pub version: Option<String>,
    /// Files and symlinks.
    pub files: f64,
    /// It was already in the store.
    pub already_present: bool,
}

/// `import`'s tagged result.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ImportResult {
    /// Every package seen, on success.
    pub ok: Option<Vec<ImportedOut>>,
    /// The failure, otherwise.
    pub error: Option<Failure>,
}

/// A verification report.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct VerifyOut {
    /// No problem left.
    pub ok: bool,
    /// What was found.
    pub problems: Vec<String>,
    /// Whether a repair was made.
    pub repaired: bool,
}

/// `verify`'s tagged result.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct VerifyResult {
    /// The report, on success.
    pub ok: Option<VerifyOut>,
    /// The failure, otherwise.
    pub error: Option<Failure>,
}

/// Counters of an allocator.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AllocatorStatsOut {
    /// Materializations running now.
    pub materializing: f64,
    /// Highest `materializing` seen.
    pub peak_materializing: f64,
    /// Templates built.
    pub templates_built: f64,
    /// Allocations that cloned a template.
    pub clones: f64,
    /// Allocations answered by an existing valid tree.
    pub reused: f64,
    /// Allocations shed with `ERR_BREAKWATER_OVERLOADED`.
    pub shed: f64,
    /// Damaged templates rebuilt.
    pub rebuilt: f64,
}

/// The stable code of an allocator error.
pub fn code_of(err: &AllocError) -> &'static str {
    match err {
        AllocError::Io { .. } => codes::ALLOC_IO,
        AllocError::Rejected { .. } => codes::TARBALL_REJECTED,
        AllocError::BadTarball { .. } => codes::TARBALL_INVALID,
        AllocError::IntegrityMismatch { .. } | AllocError::InvalidIntegrity(_) => {
            codes::INTEGRITY_MISMATCH
        }
        AllocError::Lockfile { .. } => codes::LOCKFILE_INVALID,
        AllocError::MissingPackages { .. } => codes::PACKAGES_MISSING,
        AllocError::InsufficientSpace { .. } => codes::NO_SPACE,
        AllocError::Overloaded { .. } => codes::OVERLOADED,
        AllocError::CorruptStore { .. } | AllocError::Malformed { .. } => codes::STORE_CORRUPT,
        AllocError::StoreBusy { .. } => codes::STORE_BUSY,
        AllocError::BuildRequired { .. } => codes::BUILD_REQUIRED,
        AllocError::PlatformMismatch { .. } => codes::PLATFORM_MISMATCH,
        AllocError::Config(_) => INVALID_ARG,
        _ => codes::ALLOC_FAILED,
    }
}

/// The JS-facing failure of an allocator error.
pub fn failure(err: &AllocError) -> Failure {
    let code = code_of(err);
    let (message, kind) = match err {
        AllocError::Config(e) => (
            from_config_ms(e, MS_FIELDS).message().to_owned(),
            Some("range".to_owned()),
        ),
        other => (other.to_string(), None),
    };
    Failure {
        code: code.to_owned(),
        message,
        kind,
        retry_after_ms: match err {
            AllocError::Overloaded { retry_after } => Some(to_ms(*retry_after)),
            _ => None,
        },
        missing: match err {
            AllocError::MissingPackages { missing } => {
                Some(missing.iter().map(|m| m.path.clone()).collect())
            }
            _ => None,
        },
    }
}

fn panic_failure() -> Failure {
    Failure {
        code: PANIC.to_owned(),
        message: "internal error (Rust panic) in the allocator".to_owned(),
        kind: None,
        retry_after_ms: None,
        missing: None,
    }
}

const MS_FIELDS: &[&str] = &[
    "limit.queue_timeout",
    "limit.min_retry_after",
    "limit.max_retry_after",
];

/// Runs `work`, turning a panic into a failure.
async fn caught<T>(work: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(panic_failure()))
}

/// Builds a validated allocator config from JS options.
pub fn allocator_config(options: &AllocatorOptions) -> BwResult<AllocatorConfig> {
    let d = AllocatorConfig::default();
    let mut config = d.clone();
    if let Some(mode) = &options.link_mode {
        config.link_mode =
            LinkMode::from_str(mode).map_err(|e| BwError::range(format!("`linkMode`: {e}")))?;
    }
    if let Some(n) = options.max_concurrent {
        config.limit.max_concurrent = whole_usize("maxConcurrent", n)?;
    }
    if let Some(n) = options.max_queued {
        config.limit.max_queued = whole_usize("maxQueued", n)?;
    }
    if options.no_queue_timeout == Some(true) {
        config.limit.queue_timeout = None;
    } else if let Some(ms) = options.queue_timeout_ms {
        config.limit.queue_timeout = Some(duration_ms("queueTimeoutMs", ms)?);
    }
    if let Some(bytes) = options.min_free_bytes {
        config.min_free_bytes = whole_usize("minFreeBytes", bytes)? as u64;
    }
    if let Some(ignore) = &options.ignore_scripts {
        config.ignore_scripts = IgnoreScripts {
            all: ignore.all,
            packages: ignore.packages.clone(),
        };
    }
    if let Some(dev) = options.include_dev {
        config.selection.include_dev = dev;
    }
    if let Some(optional) = options.include_optional {
        config.selection.include_optional = optional;
    }
    config.platform.os.clone_from(&options.os);
    config.platform.cpu.clone_from(&options.cpu);
    if let Some(libc) = &options.libc {
        config.platform.libc =
            Some(Libc::from_str(libc).map_err(|e| BwError::range(format!("`libc`: {e}")))?);
    }
    config.validate().map_err(|e| {
        // The JS options are flat: `limit.max_concurrent` is `maxConcurrent`.
        // So are `platform.os` (`os`) and `ignore_scripts.*` (`ignoreScripts`).
        let field = e
            .field()
            .trim_start_matches("limit.")
            .trim_start_matches("platform.");
        let field = if field.starts_with("ignore_scripts") {
            "ignore_scripts"
        } else {
            field
        };
        let name = if MS_FIELDS.contains(&e.field()) {
            format!("{}Ms", crate::error::camel_case(field))
        } else {
            crate::error::camel_case(field)
        };
        BwError::range(format!("invalid option `{name}`: {}", e.reason()))
    })?;
    Ok(config)
}

fn allocation(a: &Allocation) -> AllocationOut {
    AllocationOut {
        node_modules: a.node_modules.to_string_lossy().into_owned(),
        manifest_digest: a.manifest_digest.clone(),
        lockfile_digest: a.lockfile_digest.clone(),
        packages: a.packages as f64,
        files: a.files as f64,
        outcome: match a.outcome {
            Outcome::Reused => "reused",
            Outcome::Cloned => "cloned",
            Outcome::Materialized => "materialized",
        }
        .to_owned(),
        hardlinks: a.stats.hardlinks as f64,
        reflinks: a.stats.reflinks as f64,
        ignored_scripts: a.ignored_scripts.iter().map(ToString::to_string).collect(),
        copies: a.stats.copies as f64,
    }
}

/// The allocator over one store.
#[napi]
#[derive(Debug)]
pub struct NativeAllocator {
    inner: Allocator,
}

#[napi]
impl NativeAllocator {
    /// Opens (creating if needed) the store and builds the allocator.
    #[napi(constructor)]
    pub fn new(env: Env, options: AllocatorOptions) -> napi::Result<Self> {
        guard(&env, || {
            let config = allocator_config(&options)?;
            let store = Store::open(&options.store_dir).map_err(|e| {
                let f = failure(&e);
                BwError::coded(code_of(&e), format!("cannot open the store: {}", f.message))
            })?;
            let inner =
                Allocator::new(store, config).map_err(|e| BwError::coded(code_of(&e), e))?;
            Ok(NativeAllocator { inner })
        })
    }

    /// Allocates `appDir/node_modules` for the lockfile.
    #[napi]
    pub async fn allocate(
        &self,
        lockfile: String,
        app_dir: String,
    ) -> napi::Result<AllocateResult> {
        let allocator = self.inner.clone();
        let result = caught(async move {
            allocator
                .allocate(&lockfile, &app_dir)
                .await
                .map(|a| allocation(&a))
                .map_err(|e| failure(&e))
        })
        .await;
        Ok(match result {
            Ok(a) => AllocateResult {
                ok: Some(a),
                error: None,
            },
            Err(f) => AllocateResult {
                ok: None,
                error: Some(f),
            },
        })
    }

    /// Imports `.tgz` files, directories of them, or an npm cache.
    #[napi]
    pub async fn import(&self, paths: Vec<String>) -> napi::Result<ImportResult> {
        let allocator = self.inner.clone();
        let result = caught(async move {
            let work = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                for path in &paths {
                    let summary = allocator.store().import_path(path)?;
                    out.extend(summary.packages.into_iter().map(|p| ImportedOut {
                        integrity: p.integrity,
                        name: p.name,
                        version: p.version,
                        files: p.files as f64,
                        already_present: p.already_present,
                    }));
                }
                Ok::<_, AllocError>(out)
            });
            match work.await {
                Ok(result) => result.map_err(|e| failure(&e)),
                Err(_) => Err(panic_failure()),
            }
        })
        .await;
        Ok(match result {
            Ok(packages) => ImportResult {
                ok: Some(packages),
                error: None,
            },
            Err(f) => ImportResult {
                ok: None,
                error: Some(f),
            },
        })
    }

    /// Verifies (and with `repair`, repairs) an app's tree.
    #[napi]
    pub async fn verify(
        &self,
        app_dir: String,
        repair: bool,
        lockfile: Option<String>,
    ) -> napi::Result<VerifyResult> {
        let allocator = self.inner.clone();
        let result = caught(async move {
            allocator
                .verify(&app_dir, repair, lockfile.map(Into::into))
                .await
                .map(|report| VerifyOut {
                    ok: report.is_ok(),
                    problems: report.problems,
                    repaired: report.repaired,
                })
                .map_err(|e| failure(&e))
        })
        .await;
        Ok(match result {
            Ok(report) => VerifyResult {
                ok: Some(report),
                error: None,
            },
            Err(f) => VerifyResult {
                ok: None,
                error: Some(f),
            },
        })
    }

    /// Counters and gauges.
    #[napi]
    pub fn stats(&self) -> AllocatorStatsOut {
        let s = self.inner.stats();
        AllocatorStatsOut {
            materializing: s.materializing as f64,
            peak_materializing: s.peak_materializing as f64,
            templates_built: s.templates_built as f64,
            clones: s.clones as f64,
            reused: s.reused as f64,
            shed: s.shed as f64,
            rebuilt: s.rebuilt as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn options_map_onto_the_config() {
        let config = allocator_config(&AllocatorOptions {
            store_dir: "s".into(),
            link_mode: Some("copy".into()),
            max_concurrent: Some(2.0),
            queue_timeout_ms: Some(500.0),
            min_free_bytes: Some(0.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.link_mode, LinkMode::Copy);
        assert_eq!(config.limit.max_concurrent, 2);
        assert_eq!(config.limit.queue_timeout, Some(Duration::from_millis(500)));
        assert_eq!(config.min_free_bytes, 0);
    }

    #[test]
    fn invalid_options_name_the_js_option() {
        for (options, name) in [
            (
                AllocatorOptions {
                    max_concurrent: Some(0.0),
                    ..Default::default()
                },
                "maxConcurrent",
            ),
            (
                AllocatorOptions {
                    queue_timeout_ms: Some(0.0),
                    ..Default::default()
                },
                "queueTimeoutMs",
            ),
            (
                AllocatorOptions {
                    link_mode: Some("symlink".into()),
                    ..Default::default()
                },
                "linkMode",
            ),
        ] {
            let err = allocator_config(&options).unwrap_err();
            assert_eq!(err.code(), INVALID_ARG);
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }

    #[test]
    fn errors_get_stable_codes() {
        let shed = AllocError::Overloaded {
            retry_after: Duration::from_millis(250),
        };
        let f = failure(&shed);
        assert_eq!(f.code, "ERR_BREAKWATER_OVERLOADED");
        assert_eq!(f.retry_after_ms, Some(250.0));
        let busy = AllocError::StoreBusy { path: "/s".into() };
        assert_eq!(code_of(&busy), "ERR_BREAKWATER_STORE_BUSY");
        let build = AllocError::BuildRequired {
            packages: Vec::new(),
        };
        assert_eq!(code_of(&build), "ERR_BREAKWATER_BUILD_REQUIRED");
        let unfit = AllocError::PlatformMismatch {
            platform: "linux x64 glibc".into(),
            packages: Vec::new(),
        };
        assert_eq!(code_of(&unfit), "ERR_BREAKWATER_PLATFORM_MISMATCH");
    }
}
