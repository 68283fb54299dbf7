//! `node-modules-alloc`: import tarballs into a store, allocate `node_modules` trees from
//! lockfiles, verify and repair them, garbage-collect the store.
//!
//! Exit status (the crate README documents the same table):
//! - 0 on success (`verify --repair` that fixed every problem included);
//! - 1 on error (one line on stderr naming the cause);
//! - 2 on usage errors (invalid flag values included; clap's whole message, on one line);
//! - 3 when `verify` found problems and did not repair them (one line on stderr: how many, the
//!   first one); an error that stops `verify` itself (unreadable directory, ...) is still 1;
//! - 75 (`EX_TEMPFAIL`) when the allocator is overloaded or the disk is nearly full, so callers
//!   know that retrying later can succeed. When overloaded, the line ends with
//!   `(Retry-After: N)`, N whole seconds as in the HTTP header.
//!
//! `--json` prints exactly one JSON object on stdout per command, errors included (see the
//! README for its keys); `-q` prints nothing but errors; `-v` logs debug events on stderr.
//! `--store` defaults to the `BREAKWATER_STORE` environment variable.
//!
//! The concurrency limit of `allocate` holds for the whole store: every process using it
//! shares `--max-concurrent` materializations and `--max-queued` waiting places.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use node_modules_alloc::allocator::{
    Allocation, Allocator, AllocatorConfig, Outcome, VerifyReport,
};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::fetch::{FetchConfig, FetchEvent, FetchReport, Fetcher, Registries};
use node_modules_alloc::import::ImportSummary;
use node_modules_alloc::lockfile::{Lockfile, Selection};
use node_modules_alloc::platform::Libc;
use node_modules_alloc::platform::{Platform, PlatformConfig};
use node_modules_alloc::store::Store;
use node_modules_alloc::{BuildNeed, Error, MissingPackage};
use serde_json::{Value, json};

/// Success.
const EXIT_OK: u8 = 0;
/// An error (I/O, a refused tarball, a missing package, ...).
const EXIT_ERROR: u8 = 1;
/// A usage error: unknown flag, missing argument, invalid value.
const EXIT_USAGE: u8 = 2;
/// `verify` found problems and did not repair them.
const EXIT_PROBLEMS: u8 = 3;
/// Overloaded or nearly full disk: retrying later can succeed (`EX_TEMPFAIL`).
const EXIT_TEMPFAIL: u8 = 75;

/// The environment variable `--store` defaults to.
const STORE_ENV: &str = "BREAKWATER_STORE";

// Doc comments are the `--help` text: plain words, no Markdown backticks.
#[allow(clippy::doc_markdown)]
#[derive(Parser, Debug)]
#[command(
    name = "node-modules-alloc",
    version,
    about = "Crash-safe node_modules allocation from a content-addressed store"
)]
struct Cli {
    /// Store directory (created if missing). Default: the BREAKWATER_STORE environment variable.
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// How files get into trees: auto (hardlink, falling back to reflink, then copy), hardlink,
    /// reflink or copy.
    #[arg(long, global = true, default_value = "auto", value_name = "MODE")]
    link_mode: LinkMode,
    /// Print one JSON object on stdout describing what the command did (errors included), and
    /// nothing else on stdout; no progress.
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing but errors (no summary, no progress, no logs).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log debug events on stderr (RUST_LOG, when set, chooses the filter instead).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

// Doc comments are the `--help` text: plain words, no Markdown backticks.
#[allow(clippy::doc_markdown)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Import .tgz files, directories of them, or an npm cache (_cacache).
    Import {
        /// Tarballs, directories, or npm cache directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Allocate APP_DIR/node_modules for a package-lock.json (v1, v2 or v3) or a pnpm-lock.yaml (v9).
    Allocate {
        /// The lockfile.
        #[arg(long, value_name = "FILE")]
        lockfile: PathBuf,
        /// The app directory; node_modules is published inside it.
        #[arg(long, value_name = "DIR")]
        app_dir: PathBuf,
        /// Skip dev dependencies.
        #[arg(long)]
        omit_dev: bool,
        /// Skip optional dependencies.
        #[arg(long)]
        omit_optional: bool,
        /// Refuse to allocate when less than this many bytes are free (0 disables).
        #[arg(long, value_name = "BYTES")]
        min_free_bytes: Option<u64>,
        /// Materializations (template builds and clones) running at once on the store, across
        /// every process using it (default 4).
        #[arg(long, value_name = "N")]
        max_concurrent: Option<usize>,
        /// Allocations that may wait for a slot, store-wide; beyond them, exit 75 at once
        /// (default 256).
        #[arg(long, value_name = "N")]
        max_queued: Option<usize>,
        #[command(flatten)]
        tree: TreeArgs,
        #[command(flatten)]
        fetch: FetchArgs,
    },
    /// Download every package of a lockfile that the store lacks, without allocating (like
    /// pnpm fetch).
    Fetch {
        /// The lockfile.
        #[arg(long, value_name = "FILE")]
        lockfile: PathBuf,
        /// Skip dev dependencies.
        #[arg(long)]
        omit_dev: bool,
        /// Skip optional dependencies.
        #[arg(long)]
        omit_optional: bool,
        /// Fetch optional packages for this os instead of this system's.
        #[arg(long, value_name = "OS")]
        os: Option<String>,
        /// Fetch optional packages for this cpu instead of this system's.
        #[arg(long, value_name = "CPU")]
        cpu: Option<String>,
        /// Fetch optional packages for this libc instead of the detected one (glibc or musl).
        #[arg(long, value_name = "LIBC")]
        libc: Option<Libc>,
        #[command(flatten)]
        fetch: FetchArgs,
    },
    /// Verify APP_DIR/node_modules by re-hashing every file; exit 3 on problems.
    Verify {
        /// The app directory.
        #[arg(long, value_name = "DIR")]
        app_dir: PathBuf,
        /// Rebuild the tree (and quarantine/re-import corrupt store files).
        #[arg(long)]
        repair: bool,
        /// Lockfile to rebuild from when the tree's marker is unusable
        /// (default APP_DIR/package-lock.json, else npm-shrinkwrap.json, else pnpm-lock.yaml).
        #[arg(long, value_name = "FILE")]
        lockfile: Option<PathBuf>,
        #[command(flatten)]
        tree: TreeArgs,
    },
    /// Remove templates, unreferenced content and leftovers from the store.
    Gc,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Import { .. } => "import",
            Self::Allocate { .. } => "allocate",
            Self::Fetch { .. } => "fetch",
            Self::Verify { .. } => "verify",
            Self::Gc => "gc",
        }
    }
}

/// What `allocate` and `verify --repair` may install: builds to skip, the platform.
// Doc comments are the `--help` text: plain words, no Markdown backticks.
#[allow(clippy::doc_markdown)]
#[derive(clap::Args, Debug, Default)]
struct TreeArgs {
    /// Install this package without the build it needs (lifecycle scripts or binding.gyp,
    /// never run by the allocator) instead of refusing the tree; repeat for several. Without
    /// NAME: every package (each one skipped is printed on stderr).
    #[arg(long, value_name = "NAME", num_args = 0..=1, action = clap::ArgAction::Append)]
    ignore_scripts: Option<Vec<String>>,
    /// Filter packages for this os instead of this system's (linux, darwin, win32, ...).
    #[arg(long, value_name = "OS")]
    os: Option<String>,
    /// Filter packages for this cpu instead of this system's (x64, arm64, ...).
    #[arg(long, value_name = "CPU")]
    cpu: Option<String>,
    /// Filter packages for this libc instead of the detected one (glibc or musl).
    #[arg(long, value_name = "LIBC")]
    libc: Option<Libc>,
}

impl TreeArgs {
    fn apply(self, config: &mut AllocatorConfig) {
        match self.ignore_scripts {
            Some(names) if names.is_empty() => config.ignore_scripts.all = true,
            Some(names) => config.ignore_scripts.packages = names,
            None => {}
        }
        config.platform.os = self.os;
        config.platform.cpu = self.cpu;
        config.platform.libc = self.libc;
    }
}

/// Where missing packages come from (allocate and fetch).
// Doc comments are the `--help` text: plain words, no Markdown backticks.
#[allow(clippy::doc_markdown)]
#[derive(clap::Args, Debug, Default)]
struct FetchArgs {
    /// Registry for packages without a resolved URL (and for registry URLs of the lockfile),
    /// overriding registry= of .npmrc. Scoped registries and tokens come from .npmrc (the
    /// lockfile's directory, then NPM_CONFIG_USERCONFIG or ~/.npmrc).
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// Never touch the network: packages missing from the store are an error listing them.
    #[arg(long)]
    offline: bool,
    /// A JSON file with the fetch settings (connections per host, retries, budget, breaker,
    /// package deadline; see the README).
    #[arg(long, value_name = "FILE")]
    fetch_config: Option<PathBuf>,
}

impl FetchArgs {
    /// The fetcher: settings from --fetch-config, registries from .npmrc and --registry.
    fn fetcher(&self, store: &Store, lockfile: &Path, out: Output) -> Result<Fetcher, Error> {
        let mut config = match &self.fetch_config {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| Error::Io {
                    action: "cannot read",
                    path: file.clone(),
                    source: e,
                })?;
                serde_json::from_str::<FetchConfig>(&text).map_err(|e| {
                    Error::Config(resilience_core::ConfigError::new(
                        "fetch_config",
                        format!("{}: {e}", file.display()),
                    ))
                })?
            }
            None => FetchConfig::default(),
        };
        config.offline |= self.offline;
        let project = lockfile
            .parent()
            .map_or_else(|| PathBuf::from(".npmrc"), |dir| dir.join(".npmrc"));
        let user = std::env::var_os("NPM_CONFIG_USERCONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".npmrc")));
        let files: Vec<PathBuf> = std::iter::once(project).chain(user).collect();
        let mut registries = Registries::load(&files, |name| std::env::var(name).ok())?;
        if let Some(url) = &self.registry {
            registries = registries.with_registry(url)?;
        }
        let fetcher = Fetcher::new(store.clone(), config, registries)?;
        Ok(match fetch_bar(out) {
            Some(bar) => fetcher.with_progress(move |event| match event {
                FetchEvent::Started { packages } => {
                    bar.set_length(*packages as u64);
                    bar.reset();
                }
                FetchEvent::Bytes(n) => {
                    bar.set_message(format!("{} downloaded", human_bytes(bar_bytes(&bar, *n))));
                }
                FetchEvent::Imported { .. } => bar.inc(1),
                _ => {}
            }),
            None => fetcher,
        })
    }
}

/// A bar of packages (and bytes) for fetches, for a human on a terminal.
fn fetch_bar(out: Output) -> Option<indicatif::ProgressBar> {
    out.progress.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("fetching {bar:30} {pos}/{len} {msg} {elapsed}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    })
}

/// Total bytes so far, kept in the bar's own state (its `prefix`).
fn bar_bytes(bar: &indicatif::ProgressBar, n: u64) -> u64 {
    let total = bar.prefix().parse::<u64>().unwrap_or(0).saturating_add(n);
    bar.set_prefix(total.to_string());
    total
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

/// How the command talks: machine output, quiet, progress.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
    quiet: bool,
    progress: bool,
}

impl Output {
    /// A human line on stdout (neither with `--json` nor with `-q`).
    fn say(self, line: &str) {
        if !self.json && !self.quiet {
            println!("{line}");
        }
    }

    /// A spinner on stderr while `message` runs, when a human watches a terminal.
    fn spinner(self, message: String) -> Option<indicatif::ProgressBar> {
        self.progress.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            {
                bar.set_style(style);
            }
            bar.set_message(message);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }
}

/// Progress bars only for a human watching a terminal: never with `--json` or `-q`.
fn show_progress(stderr_is_terminal: bool, json: bool, quiet: bool) -> bool {
    stderr_is_terminal && !json && !quiet
}

/// What a command did: the exit code, the JSON `outcome`, and its own JSON keys.
struct Done {
    code: u8,
    outcome: &'static str,
    fields: Value,
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The exit code and JSON `outcome` of an error, and its stderr line.
fn describe(error: &Error) -> (u8, &'static str, String, Option<u64>) {
    // Whole seconds, rounded up (never 0: that would invite an immediate retry storm).
    let retry_after = match error {
        Error::Overloaded { retry_after } => {
            Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
        }
        _ => None,
    };
    let suffix = retry_after
        .map(|n| format!(" (Retry-After: {n})"))
        .unwrap_or_default();
    let line = format!("{}{suffix}", one_line(&error.to_string()));
    let (code, outcome) = match error {
        Error::Overloaded { .. } => (EXIT_TEMPFAIL, "overloaded"),
        Error::InsufficientSpace { .. } => (EXIT_TEMPFAIL, "insufficient_space"),
        Error::Offline { .. } => (EXIT_ERROR, "offline"),
        // An invalid flag value (e.g. `--max-concurrent 0`) is a usage error.
        Error::Config(_) => (EXIT_USAGE, "usage_error"),
        _ => (EXIT_ERROR, "error"),
    };
    (code, outcome, line, retry_after)
}

/// Packages needing a build, for JSON (`build_required`, `ignored_scripts`).
fn builds_json(needs: &[BuildNeed]) -> Value {
    needs
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "version": n.version,
                "path": n.path,
                "reasons": n.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The JSON keys an error carries besides its message: the packages it lists.
fn error_fields(error: &Error) -> Value {
    match error {
        Error::BuildRequired { packages } => json!({ "build_required": builds_json(packages) }),
        Error::Offline { missing } | Error::MissingPackages { missing } => {
            json!({ "missing": missing_json(missing) })
        }
        Error::PlatformMismatch { platform, packages } => json!({
            "platform": platform,
            "platform_mismatch": packages
                .iter()
                .map(|p| json!({
                    "name": p.name,
                    "version": p.version,
                    "path": p.path,
                    "reason": p.reason,
                }))
                .collect::<Vec<_>>(),
        }),
        _ => json!({}),
    }
}

/// Missing packages, for JSON (`missing`).
fn missing_json(missing: &[MissingPackage]) -> Value {
    missing
        .iter()
        .map(|m| json!({ "path": m.path, "integrity": m.integrity }))
        .collect()
}

/// The one JSON object of a command that failed before or while running.
fn error_json(command: Option<&str>, outcome: &str, code: u8, message: &str) -> Value {
    json!({
        "command": command,
        "outcome": outcome,
        "exit_code": code,
        "error": message,
    })
}

/// The subcommand named in raw arguments (for the JSON object of a usage error).
fn command_in(args: &[OsString]) -> Option<&'static str> {
    args.iter().skip(1).find_map(|arg| match arg.to_str()? {
        "import" => Some("import"),
        "allocate" => Some("allocate"),
        "fetch" => Some("fetch"),
        "verify" => Some("verify"),
        "gc" => Some("gc"),
        _ => None,
    })
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &args),
    };
    init_logging(&cli);
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
        progress: show_progress(std::io::stderr().is_terminal(), cli.json, cli.quiet),
    };
    let command = cli.command.name();
    let Some(store_dir) = cli.store.clone().or_else(|| {
        std::env::var_os(STORE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }) else {
        let message = format!("--store DIR is required (or set {STORE_ENV})");
        eprintln!("node-modules-alloc: error: {message}");
        if out.json {
            println!(
                "{}",
                error_json(Some(command), "usage_error", EXIT_USAGE, &message)
            );
        }
        return ExitCode::from(EXIT_USAGE);
    };

    let started = Instant::now();
    let mut open_store = Duration::ZERO;
    let result = run(cli, &store_dir, out, &mut open_store);
    let total = started.elapsed();
    let timings = json!({
        "total": seconds(total),
        "open_store": seconds(open_store),
        "command": seconds(total.saturating_sub(open_store)),
    });
    let (code, mut object) = match result {
        Ok(done) => {
            let mut object = json!({
                "command": command,
                "outcome": done.outcome,
                "exit_code": done.code,
            });
            merge(&mut object, done.fields);
            (done.code, object)
        }
        Err(e) => {
            let (code, outcome, line, retry_after) = describe(&e);
            eprintln!("node-modules-alloc: error: {line}");
            let mut object = error_json(Some(command), outcome, code, &line);
            if let Some(n) = retry_after {
                merge(&mut object, json!({ "retry_after_seconds": n }));
            }
            merge(&mut object, error_fields(&e));
            (code, object)
        }
    };
    if out.json {
        merge(
            &mut object,
            json!({ "store": store_dir.display().to_string(), "seconds": timings }),
        );
        println!("{object}");
    }
    ExitCode::from(code)
}

/// Adds the keys of `extra` (an object) to `object`.
fn merge(object: &mut Value, extra: Value) {
    if let (Value::Object(object), Value::Object(extra)) = (object, extra) {
        object.extend(extra);
    }
}

/// Help and version go to stdout (exit 0); anything else is a usage error: clap's whole
/// message (which names the missing or unknown flag) on one stderr line, exit 2.
fn usage_error(e: &clap::Error, args: &[OsString]) -> ExitCode {
    if matches!(
        e.kind(),
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
    ) {
        print!("{e}");
        return ExitCode::SUCCESS;
    }
    let rendered = one_line(&e.to_string());
    let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    eprintln!("node-modules-alloc: error: {message}");
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| a.as_os_str() != "--")
        .any(|a| a.as_os_str() == "--json");
    if json {
        println!(
            "{}",
            error_json(command_in(args), "usage_error", EXIT_USAGE, message)
        );
    }
    ExitCode::from(EXIT_USAGE)
}

/// `-q`: errors only; `RUST_LOG` when set; `-v`: debug events of the allocator and of
/// resilience-core; otherwise no log output.
fn init_logging(cli: &Cli) {
    let filter = if cli.quiet {
        Some(tracing_subscriber::EnvFilter::new("error"))
    } else if std::env::var_os("RUST_LOG").is_some() {
        Some(tracing_subscriber::EnvFilter::from_default_env())
    } else if cli.verbose {
        Some(tracing_subscriber::EnvFilter::new(
            "node_modules_alloc=debug,resilience_core=debug",
        ))
    } else {
        None
    };
    if let Some(filter) = filter {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn run(cli: Cli, store_dir: &Path, out: Output, open_store: &mut Duration) -> Result<Done, Error> {
    let opening = Instant::now();
    let store = Store::open(store_dir)?;
    *open_store = opening.elapsed();
    match cli.command {
        Command::Import { paths } => {
            let summary = import(&store, &paths, out)?;
            Ok(imported(&summary, out))
        }
        Command::Allocate {
            lockfile,
            app_dir,
            omit_dev,
            omit_optional,
            min_free_bytes,
            max_concurrent,
            max_queued,
            tree,
            fetch,
        } => {
            let mut config = AllocatorConfig {
                link_mode: cli.link_mode,
                ..AllocatorConfig::default()
            };
            config.selection.include_dev = !omit_dev;
            config.selection.include_optional = !omit_optional;
            if let Some(bytes) = min_free_bytes {
                config.min_free_bytes = bytes;
            }
            if let Some(n) = max_concurrent {
                config.limit.max_concurrent = n;
            }
            if let Some(n) = max_queued {
                config.limit.max_queued = n;
            }
            tree.apply(&mut config);
            let fetcher = fetch.fetcher(&store, &lockfile, out)?;
            let allocator = Allocator::new(store, config)?.with_fetcher(fetcher);
            let spinner = out.spinner(format!(
                "allocating {}",
                app_dir.join("node_modules").display()
            ));
            let allocation = runtime()?.block_on(allocator.allocate(&lockfile, &app_dir));
            if let Some(spinner) = spinner {
                spinner.finish_and_clear();
            }
            Ok(allocated(
                &allocation?,
                &app_dir,
                &lockfile,
                cli.link_mode,
                out,
            ))
        }
        Command::Fetch {
            lockfile,
            omit_dev,
            omit_optional,
            os,
            cpu,
            libc,
            fetch,
        } => {
            let selection = Selection {
                include_dev: !omit_dev,
                include_optional: !omit_optional,
            };
            fetch_command(
                &store,
                &lockfile,
                selection,
                &PlatformConfig { os, cpu, libc },
                &fetch,
                out,
            )
        }
        Command::Verify {
            app_dir,
            repair,
            lockfile,
            tree,
        } => {
            let mut config = AllocatorConfig {
                link_mode: cli.link_mode,
                ..AllocatorConfig::default()
            };
            tree.apply(&mut config);
            let allocator = Allocator::new(store, config)?;
            let spinner = out.spinner(format!(
                "verifying {}",
                app_dir.join("node_modules").display()
            ));
            let report = runtime()?.block_on(allocator.verify(&app_dir, repair, lockfile));
            if let Some(spinner) = spinner {
                spinner.finish_and_clear();
            }
            Ok(verified(&report?, &app_dir, repair, out))
        }
        Command::Gc => gc_command(&store, out),
    }
}

/// Prints an import's summary.
fn imported(summary: &ImportSummary, out: Output) -> Done {
    out.say(&format!(
        "imported {} package(s), {} already present",
        summary.imported(),
        summary.already_present()
    ));
    let packages: Vec<Value> = summary
        .packages
        .iter()
        .map(|p| {
            json!({
                "integrity": p.integrity,
                "name": p.name,
                "version": p.version,
                "files": p.files,
                "already_present": p.already_present,
            })
        })
        .collect();
    Done {
        code: EXIT_OK,
        outcome: "ok",
        fields: json!({
            "imported": summary.imported(),
            "already_present": summary.already_present(),
            "packages": packages,
        }),
    }
}

/// `gc`: removes what nothing uses from the store.
fn gc_command(store: &Store, out: Output) -> Result<Done, Error> {
    let spinner = out.spinner("collecting garbage".to_owned());
    let report = store.gc();
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let report = report?;
    out.say(&format!(
        "removed {} file(s), {} template(s), {} leftover(s)",
        report.files_removed, report.templates_removed, report.scratch_removed
    ));
    Ok(Done {
        code: EXIT_OK,
        outcome: "ok",
        fields: json!({
            "files_removed": report.files_removed,
            "templates_removed": report.templates_removed,
            "scratch_removed": report.scratch_removed,
            "manifests_removed": report.manifests_removed,
        }),
    })
}

/// `fetch`: fills the store from a lockfile.
fn fetch_command(
    store: &Store,
    lockfile: &Path,
    selection: Selection,
    overrides: &PlatformConfig,
    fetch: &FetchArgs,
    out: Output,
) -> Result<Done, Error> {
    overrides.validate()?;
    let platform = Platform::current().with_overrides(overrides);
    let fetcher = fetch.fetcher(store, lockfile, out)?;
    let parsed = Lockfile::from_path(lockfile)?;
    let report =
        fetch_runtime()?.block_on(fetcher.fetch_lockfile(&parsed, &selection, &platform))?;
    Ok(fetched(&report, lockfile, out))
}

/// Prints a fetch's summary.
fn fetched(report: &FetchReport, lockfile: &Path, out: Output) -> Done {
    out.say(&format!(
        "fetched {} package(s) ({} bytes), {} already in the store",
        report.fetched.len(),
        report.bytes,
        report.already_present
    ));
    let packages: Vec<Value> = report
        .fetched
        .iter()
        .map(|p| {
            json!({
                "integrity": p.integrity,
                "name": p.name,
                "version": p.version,
                "files": p.files,
            })
        })
        .collect();
    Done {
        code: EXIT_OK,
        outcome: "ok",
        fields: json!({
            "lockfile": lockfile.display().to_string(),
            "needed": report.needed,
            "already_present": report.already_present,
            "fetched": report.fetched.len(),
            "bytes": report.bytes,
            "packages": packages,
        }),
    }
}

/// Prints an allocation's summary.
fn allocated(
    allocation: &Allocation,
    app_dir: &Path,
    lockfile: &Path,
    link_mode: LinkMode,
    out: Output,
) -> Done {
    out.say(&format!(
        "{} {} ({} packages, {} files, {})",
        allocation.outcome,
        allocation.node_modules.display(),
        allocation.packages,
        allocation.files,
        link_mode
    ));
    if !allocation.ignored_scripts.is_empty() && !out.quiet {
        eprintln!(
            "node-modules-alloc: warning: {} package(s) installed without the build they need (--ignore-scripts): {}",
            allocation.ignored_scripts.len(),
            one_line(
                &allocation
                    .ignored_scripts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
    }
    let stats = allocation.stats;
    Done {
        code: EXIT_OK,
        outcome: match allocation.outcome {
            Outcome::Reused => "reused",
            Outcome::Cloned => "cloned",
            Outcome::Materialized => "materialized",
        },
        fields: json!({
            "app_dir": app_dir.display().to_string(),
            "lockfile": lockfile.display().to_string(),
            "node_modules": allocation.node_modules.display().to_string(),
            "manifest_digest": allocation.manifest_digest,
            "lockfile_digest": allocation.lockfile_digest,
            "packages": allocation.packages,
            "files": allocation.files,
            "link_mode": link_mode.to_string(),
            "ignored_scripts": builds_json(&allocation.ignored_scripts),
            "placed": {
                "files": stats.files,
                "hardlinks": stats.hardlinks,
                "reflinks": stats.reflinks,
                "copies": stats.copies,
                "symlinks": stats.symlinks,
            },
        }),
    }
}

/// Prints a verification's result; exit 3 for problems left unrepaired.
fn verified(report: &VerifyReport, app_dir: &Path, repair: bool, out: Output) -> Done {
    let node_modules = app_dir.join("node_modules");
    for problem in &report.problems {
        out.say(problem);
    }
    let (code, outcome) = if report.problems.is_empty() {
        out.say(&format!("ok {}", node_modules.display()));
        (EXIT_OK, "ok")
    } else if report.repaired {
        out.say(&format!("repaired {}", node_modules.display()));
        (EXIT_OK, "repaired")
    } else {
        eprintln!(
            "node-modules-alloc: error: {} problem(s) in {} (first: {}); run verify --repair",
            report.problems.len(),
            app_dir.display(),
            report
                .problems
                .first()
                .map(|p| one_line(p))
                .unwrap_or_default()
        );
        (EXIT_PROBLEMS, "problems")
    };
    let store = report.store.as_ref().map(|s| {
        json!({
            "checked": s.checked,
            "quarantined": s.quarantined,
            "reimported": s.reimported,
            "unrecoverable": s.unrecoverable,
            "templates_removed": s.templates_removed,
        })
    });
    Done {
        code,
        outcome,
        fields: json!({
            "app_dir": app_dir.display().to_string(),
            "node_modules": node_modules.display().to_string(),
            "repair": repair,
            "repaired": report.repaired,
            "problems": report.problems,
            "store_report": store,
        }),
    }
}

/// The runtime of `allocate` and `verify`: one thread (the work runs on blocking threads), with
/// network and timers for the downloads of an allocation missing packages.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            action: "cannot start runtime",
            path: PathBuf::new(),
            source: e,
        })
}

/// The runtime of `fetch`: two workers, so that hashing downloads overlaps with the network.
fn fetch_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            action: "cannot start runtime",
            path: PathBuf::new(),
            source: e,
        })
}

fn import(store: &Store, paths: &[PathBuf], out: Output) -> Result<ImportSummary, Error> {
    let mut sources = Vec::new();
    for path in paths {
        sources.extend(store.discover(path)?);
    }
    // A progress bar only for long imports, and only for a human watching a terminal.
    let bar = (sources.len() >= 20 && out.progress).then(|| {
        let bar = indicatif::ProgressBar::new(sources.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar
    });
    let mut summary = ImportSummary::default();
    for source in &sources {
        if let Some(bar) = &bar {
            bar.set_message(source.label.clone());
        }
        match store.import_source(source) {
            Ok(imported) => summary.packages.push(imported),
            Err(e) => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                return Err(e);
            }
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_for_a_human_on_a_terminal() {
        assert!(show_progress(true, false, false));
        assert!(!show_progress(false, false, false));
        assert!(!show_progress(true, true, false));
        assert!(!show_progress(true, false, true));
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            EXIT_OK,
            EXIT_ERROR,
            EXIT_USAGE,
            EXIT_PROBLEMS,
            EXIT_TEMPFAIL,
        ];
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }

    #[test]
    fn overload_rounds_retry_after_up_and_exits_75() {
        let (code, outcome, line, retry) = describe(&Error::Overloaded {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(
            (code, outcome, retry),
            (EXIT_TEMPFAIL, "overloaded", Some(2))
        );
        assert!(line.ends_with("(Retry-After: 2)"), "{line}");
    }

    #[test]
    fn usage_json_names_the_subcommand() {
        let args: Vec<OsString> = ["nma", "--json", "verify"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(command_in(&args), Some("verify"));
    }
}
