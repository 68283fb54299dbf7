//! `local-fleet`: a fleet of real Node processes behind fleet-drain's HTTP
//! contract. See `breakwater_examples::local_fleet`.

use std::io::IsTerminal;
use std::process::ExitCode;

use breakwater_examples::local_fleet::{Args, Platform, Spec, server};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,breakwater_examples=info")
            }),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("local-fleet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-fleet: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let spec = Spec::from_args(&args)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let apps = spec.hosts * spec.apps_per_host;
    let platform = tokio::select! {
        platform = Platform::start(spec) => platform?,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    };
    // The line tests and scripts wait for.
    println!("listening on http://{addr} ({apps} apps running)");
    server::serve(platform.clone(), listener, async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    platform.shutdown().await;
    Ok(())
}
