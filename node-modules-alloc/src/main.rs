//! `node-modules-alloc`: import tarballs into a store, allocate `node_modules` trees from
//! lockfiles, verify and repair them, garbage-collect the store.
//!
//! Exit status: 0 on success; 1 on error (one line on stderr naming the cause); 2 on usage
//! errors (invalid flag values included); 75 (`EX_TEMPFAIL`) when the allocator is overloaded or the disk is nearly full, so
//! callers know that retrying later can succeed. When overloaded, the line ends with
//! `(Retry-After: N)`, N whole seconds as in the HTTP header.
//!
//! The concurrency limit of `allocate` holds for the whole store: every process using it
//! shares `--max-concurrent` materializations and `--max-queued` waiting places.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use node_modules_alloc::Error;
use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::config::LinkMode;
use node_modules_alloc::import::ImportSummary;
use node_modules_alloc::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "node-modules-alloc",
    version,
    about = "Crash-safe node_modules allocation from a content-addressed store"
)]
struct Cli {
    /// Store directory (created if missing).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// How files get into trees: auto (hardlink, falling back to reflink, then copy), hardlink,
    /// reflink or copy.
    #[arg(long, global = true, default_value = "auto", value_name = "MODE")]
    link_mode: LinkMode,
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
    /// Allocate APP_DIR/node_modules for a package-lock.json (v2/v3).
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
    },
    /// Verify APP_DIR/node_modules by re-hashing every file; exit non-zero on problems.
    Verify {
        /// The app directory.
        #[arg(long, value_name = "DIR")]
        app_dir: PathBuf,
        /// Rebuild the tree (and quarantine/re-import corrupt store files).
        #[arg(long)]
        repair: bool,
        /// Lockfile to rebuild from when the tree's marker is unusable
        /// (default APP_DIR/package-lock.json).
        #[arg(long, value_name = "FILE")]
        lockfile: Option<PathBuf>,
    },
    /// Remove templates, unreferenced content and leftovers from the store.
    Gc,
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fail(error: &Error) -> ExitCode {
    let retry = match error {
        // Whole seconds, rounded up (never 0: that would invite an immediate retry storm).
        Error::Overloaded { retry_after } => format!(
            " (Retry-After: {})",
            retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
        ),
        _ => String::new(),
    };
    eprintln!(
        "node-modules-alloc: error: {}{retry}",
        one_line(&error.to_string())
    );
    match error {
        Error::Overloaded { .. } | Error::InsufficientSpace { .. } => ExitCode::from(75),
        // An invalid flag value (e.g. `--max-concurrent 0`) is a usage error.
        Error::Config(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("node-modules-alloc: {}", one_line(first));
            return ExitCode::from(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let Some(store_dir) = cli.store.clone() else {
        eprintln!("node-modules-alloc: error: --store DIR is required");
        return ExitCode::from(2);
    };
    match run(cli, &store_dir) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn run(cli: Cli, store_dir: &Path) -> Result<ExitCode, Error> {
    let store = Store::open(store_dir)?;
    match cli.command {
        Command::Import { paths } => {
            let summary = import(&store, &paths)?;
            println!(
                "imported {} package(s), {} already present",
                summary.imported(),
                summary.already_present()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Allocate {
            lockfile,
            app_dir,
            omit_dev,
            omit_optional,
            min_free_bytes,
            max_concurrent,
            max_queued,
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
            let allocator = Allocator::new(store, config)?;
            let allocation = runtime()?.block_on(allocator.allocate(&lockfile, &app_dir))?;
            println!(
                "{} {} ({} packages, {} files, {})",
                allocation.outcome,
                allocation.node_modules.display(),
                allocation.packages,
                allocation.files,
                cli.link_mode
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            app_dir,
            repair,
            lockfile,
        } => {
            let config = AllocatorConfig {
                link_mode: cli.link_mode,
                ..AllocatorConfig::default()
            };
            let allocator = Allocator::new(store, config)?;
            let report = runtime()?.block_on(allocator.verify(&app_dir, repair, lockfile))?;
            for problem in &report.problems {
                println!("{problem}");
            }
            if report.problems.is_empty() {
                println!("ok {}", app_dir.join("node_modules").display());
                Ok(ExitCode::SUCCESS)
            } else if report.repaired {
                println!("repaired {}", app_dir.join("node_modules").display());
                Ok(ExitCode::SUCCESS)
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
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Gc => {
            let report = store.gc()?;
            println!(
                "removed {} file(s), {} template(s), {} leftover(s)",
                report.files_removed, report.templates_removed, report.scratch_removed
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::Io {
            action: "cannot start runtime",
            path: PathBuf::new(),
            source: e,
        })
}

fn import(store: &Store, paths: &[PathBuf]) -> Result<ImportSummary, Error> {
    let mut sources = Vec::new();
    for path in paths {
        sources.extend(store.discover(path)?);
    }
    // A progress bar only for long imports, and only for a human watching a terminal.
    let bar = (sources.len() >= 20 && std::io::stderr().is_terminal()).then(|| {
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
        summary.packages.push(store.import_source(source)?);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}
