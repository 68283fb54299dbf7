//! Error types: every message names the cause (the tarball entry, the lockfile path, the
//! missing integrities, the directory) so that the CLI can print it as one line.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use resilience_core::ConfigError;

use crate::integrity::IntegrityParseError;

/// Why a tarball entry was refused. The importer never writes anything for a tarball that has a
/// rejected entry (all entries are checked before the package index is published).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// An absolute path (`/etc/passwd`).
    #[error("absolute path")]
    AbsolutePath,
    /// A `..` component.
    #[error("path contains a `..` component")]
    ParentComponent,
    /// A path that is not valid UTF-8 (npm cannot express it either).
    #[error("path is not valid UTF-8")]
    NonUtf8Path,
    /// A symlink or hardlink whose target leaves the package.
    #[error("{kind} target {target:?} escapes the package")]
    LinkEscapes {
        /// `symlink` or `hardlink`.
        kind: &'static str,
        /// The link target as written in the tarball.
        target: String,
    },
    /// A hardlink to an entry that is not an earlier regular file of the package.
    #[error("hardlink target {target:?} is not an earlier file of the package")]
    DanglingHardlink {
        /// The link target as written in the tarball.
        target: String,
    },
    /// A device file, FIFO or other special entry.
    #[error("{kind} entries are not allowed")]
    SpecialFile {
        /// `character device`, `block device`, `fifo`, ...
        kind: &'static str,
    },
    /// One entry is larger than `max_entry_bytes`.
    #[error("entry is larger than the limit of {limit} bytes")]
    EntryTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The unpacked package would exceed `max_total_bytes` (a decompression bomb).
    #[error("unpacked package exceeds the limit of {limit} bytes (decompression bomb?)")]
    TotalTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The package has more than `max_entries` entries.
    #[error("package has more than {limit} entries")]
    TooManyEntries {
        /// The configured limit.
        limit: u64,
    },
    /// The entry path is longer than `max_path_bytes` (`PATH_MAX`).
    #[error("path is {len} bytes long, over the limit of {limit} bytes")]
    PathTooLong {
        /// The path's length in bytes.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A path component is longer than `max_component_bytes` (`NAME_MAX`).
    #[error("path component is {len} bytes long, over the limit of {limit} bytes")]
    ComponentTooLong {
        /// The component's length in bytes.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The entry lies more than `max_depth` directories below the package's top directory.
    #[error("path is {depth} levels deep, over the limit of {limit}")]
    TooDeep {
        /// Components below the top directory.
        depth: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A symlink or hardlink target is longer than `max_link_target_bytes`.
    #[error("link target is {len} bytes long, over the limit of {limit} bytes")]
    LinkTargetTooLong {
        /// The target's length in bytes.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The paths and link targets of the package add up to more than `max_total_components`
    /// components (the bound on the importer's work per tarball).
    #[error("paths and link targets add up to more than {limit} components")]
    TooManyComponents {
        /// The configured limit.
        limit: u64,
    },
    /// A metadata entry (GNU long name or long link, PAX header) is larger than
    /// `max_meta_entry_bytes`; refused before it is read.
    #[error("{kind} of {size} bytes is over the limit of {limit} bytes")]
    MetadataTooLarge {
        /// `GNU long name`, `GNU long link`, `PAX header` or `PAX global header`.
        kind: &'static str,
        /// The size its header announces.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A metadata entry is malformed, or metadata entries contradict each other.
    #[error("{kind}: {reason}")]
    BadMetadata {
        /// `GNU long name`, `GNU long link`, `PAX header`, `PAX global header`, or
        /// `metadata entry` (one that describes no entry).
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A path or link target contains a NUL byte (tar readers disagree on where it ends).
    #[error("path or link target contains a NUL byte")]
    NulInPath,
    /// An entry without a path.
    #[error("entry has an empty path")]
    EmptyPath,
    /// The package's `package.json` is larger than `max_package_json_bytes`.
    #[error("package.json is larger than the limit of {limit} bytes")]
    PackageJsonTooLarge {
        /// The configured limit.
        limit: u64,
    },
}

/// One package of a lockfile that the store does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPackage {
    /// The lockfile path (`node_modules/a/node_modules/b`).
    pub path: String,
    /// The integrity the lockfile asks for.
    pub integrity: String,
}

/// Why a package needs a build (a lifecycle script) that the allocator does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildReason {
    /// The lockfile marks the package `hasInstallScript: true`.
    LockfileFlag,
    /// The package's `package.json` (in the store) declares this lifecycle script.
    Script {
        /// `preinstall`, `install` or `postinstall`.
        stage: &'static str,
        /// The command, cut to 80 bytes for messages.
        command: String,
    },
    /// The package ships a `binding.gyp` and no `install`/`preinstall` script: npm runs
    /// `node-gyp rebuild` for it.
    BindingGyp,
}

impl std::fmt::Display for BuildReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LockfileFlag => f.write_str("hasInstallScript in the lockfile"),
            Self::Script { stage, command } => write!(f, "{stage} script {command:?}"),
            Self::BindingGyp => f.write_str("binding.gyp (node-gyp rebuild)"),
        }
    }
}

/// A package of a tree that needs a build the allocator does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildNeed {
    /// The package name (the lockfile's).
    pub name: String,
    /// Its version, when the lockfile or its `package.json` gives one.
    pub version: Option<String>,
    /// The install path in the lockfile (`node_modules/a/node_modules/b`).
    pub path: String,
    /// Every reason found, in the order above.
    pub reasons: Vec<BuildReason>,
}

impl std::fmt::Display for BuildNeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        write!(f, " at {} (", self.path)?;
        for (i, reason) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{reason}")?;
        }
        f.write_str(")")
    }
}

/// A required (not optional) package whose `os`, `cpu` or `libc` excludes this platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfitPackage {
    /// The package name.
    pub name: String,
    /// Its version, when the lockfile gives one.
    pub version: Option<String>,
    /// The install path in the lockfile.
    pub path: String,
    /// Which restriction excludes the platform (`libc ["musl"] excludes glibc`).
    pub reason: String,
}

impl std::fmt::Display for UnfitPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        write!(f, " at {}: {}", self.path, self.reason)
    }
}

/// An error of the store, the importer, the lockfile reader or the allocator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted (`cannot read`, `cannot link`, ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A tarball entry was refused.
    #[error("tarball {tarball}: entry {entry:?} rejected: {reason}")]
    Rejected {
        /// The tarball (file name or cache key).
        tarball: String,
        /// The entry path as written in the tarball.
        entry: String,
        /// Why.
        reason: Rejection,
    },
    /// A tarball is not a readable gzip-compressed tar archive, or exceeds the tarball size limit.
    #[error("tarball {tarball}: {reason}")]
    BadTarball {
        /// The tarball (file name or cache key).
        tarball: String,
        /// What is wrong.
        reason: String,
    },
    /// Content does not hash to the integrity it was announced with.
    #[error("integrity mismatch for {what}: expected {expected}, got {actual}")]
    IntegrityMismatch {
        /// The tarball or cache entry.
        what: String,
        /// The announced integrity.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// An SRI string could not be parsed.
    #[error(transparent)]
    InvalidIntegrity(#[from] IntegrityParseError),
    /// The lockfile is invalid or unsupported.
    #[error("lockfile {file}: {location}: {reason}")]
    Lockfile {
        /// The lockfile on disk.
        file: PathBuf,
        /// Where in the lockfile (`packages["node_modules/a"].integrity`).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// Packages of the lockfile are not in the store: every one is listed.
    #[error("{} package(s) missing from the store (import them first): {}", missing.len(), format_missing(missing))]
    MissingPackages {
        /// All missing packages, in lockfile order.
        missing: Vec<MissingPackage>,
    },
    /// Packages of the lockfile are not in the store and fetching is off (`--offline`, or
    /// [`FetchConfig::offline`](crate::fetch::FetchConfig)): every one is listed, nothing was
    /// requested from the network.
    #[error("offline: {} package(s) missing from the store were not fetched (run `node-modules-alloc fetch` with network access, or import them): {}", missing.len(), format_missing(missing))]
    Offline {
        /// All missing packages, in lockfile order.
        missing: Vec<MissingPackage>,
    },
    /// A package has no URL to be fetched from.
    #[error(
        "cannot fetch {package}: the lockfile gives no resolved URL for it and no registry is configured (pass --registry URL or set registry= in .npmrc)"
    )]
    NoRegistry {
        /// `name@version at path`.
        package: String,
    },
    /// The registry could not be reached, or kept failing (connection errors, timeouts,
    /// HTTP 429 and 5xx), until the retry policy gave up.
    #[error(
        "cannot fetch {package} from {url}: registry unreachable after {attempts} attempt(s), {why}; last error: {last_error}"
    )]
    RegistryUnreachable {
        /// `name@version at path`.
        package: String,
        /// The tarball URL (no credentials, no query).
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Why the fetcher stopped (`all attempts failed`, `the retry budget is exhausted`,
        /// `the package deadline of 5m passed`).
        why: String,
        /// The last attempt's error.
        last_error: String,
    },
    /// The registry answered an HTTP status that retrying cannot change (404, 400, ...).
    #[error("cannot fetch {package}: {url} answered HTTP {status}{}", if *status == 404 { " (not in this registry: check the registry configured for its scope)" } else { "" })]
    HttpStatus {
        /// `name@version at path`.
        package: String,
        /// The tarball URL (no credentials, no query).
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The registry refused the request for lack of (valid) credentials.
    #[error("cannot fetch {package}: {url} requires authentication (HTTP {status}): {}", if let Some(prefix) = token_for { format!("the credential configured for {prefix} was refused") } else { format!("add `{nerf_dart}:_authToken=${{TOKEN}}` to .npmrc") })]
    AuthRequired {
        /// `name@version at path`.
        package: String,
        /// The tarball URL (no credentials, no query).
        url: String,
        /// 401 or 403.
        status: u16,
        /// The `.npmrc` prefix whose credential was sent, if one was.
        token_for: Option<String>,
        /// The `//host[:port]/path/` prefix a credential for this registry would use.
        nerf_dart: String,
    },
    /// The circuit breaker of the registry host is open: it failed repeatedly just before.
    #[error(
        "cannot fetch {package}: the circuit breaker of {host} is open after repeated failures; retry after {retry_after:?}"
    )]
    CircuitOpen {
        /// `name@version at path`.
        package: String,
        /// `scheme://host[:port]`.
        host: String,
        /// When the breaker lets a probe through.
        retry_after: Duration,
    },
    /// Several packages could not be fetched: all are named, the first error is kept.
    #[error("{failed} package(s) could not be fetched ({}); the first error: {first}", packages.join(", "))]
    FetchFailed {
        /// How many packages failed.
        failed: usize,
        /// Every package that failed (`name@version at path`), in lockfile order.
        packages: Vec<String>,
        /// The first failure (in lockfile order).
        first: Box<Error>,
    },
    /// Packages of the tree need a build (`preinstall`/`install`/`postinstall` script, or
    /// `node-gyp rebuild` for a `binding.gyp`) that the allocator does not run: the tree would
    /// look complete and fail at `require` time, so nothing is published. Every such package is
    /// listed; a package known to work without its build can be allowed with
    /// [`IgnoreScripts`](crate::allocator::IgnoreScripts).
    #[error("{} package(s) need a build that node-modules-alloc does not run, nothing was published: {}; if a package works without its build, allow it with --ignore-scripts NAME (config ignore_scripts)", packages.len(), join(packages))]
    BuildRequired {
        /// Every package needing a build, in lockfile order.
        packages: Vec<BuildNeed>,
    },
    /// Required packages of the lockfile do not fit this platform (`os`, `cpu`, `libc`):
    /// every one is listed.
    #[error("{} required package(s) do not fit this platform ({platform}): {}", packages.len(), join(packages))]
    PlatformMismatch {
        /// The platform allocated for (`linux x64 glibc`).
        platform: String,
        /// Every required package that does not fit, in lockfile order.
        packages: Vec<UnfitPackage>,
    },
    /// The free-space guard refused the work.
    #[error("not enough free space on {path}: {available} bytes available, {required} required")]
    InsufficientSpace {
        /// The directory checked.
        path: PathBuf,
        /// Bytes available to unprivileged users.
        available: u64,
        /// The configured threshold.
        required: u64,
    },
    /// Too many allocations are queued: retry later.
    #[error("allocator overloaded: retry after {retry_after:?}")]
    Overloaded {
        /// Suggested delay before retrying.
        retry_after: Duration,
    },
    /// The store holds a file whose content no longer matches its digest, and no source to
    /// re-import it from.
    #[error(
        "store file {digest} is corrupt and no source is available to re-import package {integrity}"
    )]
    CorruptStore {
        /// The content digest (sha512 hex) of the damaged file.
        digest: String,
        /// The package that needs it.
        integrity: String,
    },
    /// Another process holds the store exclusively (e.g. during `gc`), or `gc` found it in use.
    #[error("store {path} is in use by another process")]
    StoreBusy {
        /// The store directory.
        path: PathBuf,
    },
    /// A store file (index, manifest, marker) is malformed.
    #[error("malformed store file {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn format_missing(missing: &[MissingPackage]) -> String {
    missing
        .iter()
        .map(|m| format!("{} ({})", m.path, m.integrity))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
