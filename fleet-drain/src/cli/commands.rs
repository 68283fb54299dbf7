//! `plan`, `run`, `status` and the control commands.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{Either, select};

use super::adapter::Adapter;
use super::config::CliConfig;
use super::control::{self, Control, ControlSocket, Pausable};
use super::{CliError, exit};
use fleet_drain::drain::{DrainController, DrainEvent};
use fleet_drain::fleet::{AppState, DrainFleet, FleetSnapshot, HostId, HostState};
use fleet_drain::journal::{DrainProgress, FileJournal, Journal, JournalError, JournalRecord};
use fleet_drain::plan::Planner;

/// The journal's records, read without locking (none if it does not exist).
fn journal_records(config: &CliConfig) -> Result<Vec<JournalRecord>, CliError> {
    if !config.journal.file.exists() {
        return Ok(Vec::new());
    }
    Ok(FileJournal::read(&config.journal.file)?)
}

fn names(adapter: &Adapter, hosts: &[HostId]) -> String {
    hosts
        .iter()
        .map(|&h| adapter.name(h))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `plan`: every wave the planner would run from the fleet as it is now
/// (and the journal's progress), applied to a copy of the fleet in turn.
pub(super) async fn plan(config: &CliConfig) -> Result<u8, CliError> {
    let records = journal_records(config)?;
    let adapter = Adapter::build(&config.adapter, &records)?;
    let targets = adapter.resolve(&config.targets).await?;
    let progress = DrainProgress::from_records(&records);
    if let Some(reason) = &progress.aborted {
        return Err(CliError::Aborted(format!(
            "the journal says the drain was aborted: {reason}"
        )));
    }
    let adapter_error = |e: fleet_drain::FleetError| CliError::Adapter(e.to_string());
    let mut hosts = adapter.fleet.hosts().await.map_err(adapter_error)?;
    let mut apps = adapter.fleet.apps().await.map_err(adapter_error)?;
    let planner = Planner::new(config.drain.limits.clone())
        .map_err(|e| CliError::Config(format!("limits: {e}")))?;
    let mut remaining: Vec<HostId> = targets
        .iter()
        .copied()
        .filter(|t| !progress.is_drained(*t))
        .collect();
    let snapshot = FleetSnapshot::new(hosts.clone(), apps.clone()).map_err(adapter_error)?;
    planner
        .check_feasible(&snapshot, &remaining)
        .map_err(|e| CliError::Drain(e.into()))?;
    println!(
        "plan: {} hosts to drain ({} already drained), {} apps on them; limits: {} hosts at once, {} starts per receiver per minute, {} at once",
        remaining.len(),
        targets.len() - remaining.len(),
        apps.iter().filter(|a| remaining.contains(&a.host)).count(),
        config.drain.limits.max_draining_hosts,
        config.drain.limits.max_starts_per_host_per_minute,
        config.drain.limits.max_concurrent_starts_per_host,
    );
    let mut wave = progress.waves;
    let mut rounds = 0_usize;
    while !remaining.is_empty() {
        rounds += 1;
        if rounds > 10 * targets.len() + 100 {
            return Err(CliError::Io(
                "the plan does not converge: the limits leave no room to move apps".into(),
            ));
        }
        let snapshot = FleetSnapshot::new(hosts.clone(), apps.clone()).map_err(adapter_error)?;
        let plan = planner
            .next_wave(&snapshot, &remaining)
            .map_err(|e| CliError::Drain(e.into()))?;
        if plan.assignments().is_empty() && plan.new_hosts().is_empty() {
            return Err(CliError::Io(format!(
                "no wave fits within the limits now ({} apps unplaced): check max_unavailable and receiver room",
                plan.unplaced().len()
            )));
        }
        let mut per_receiver: BTreeMap<String, usize> = BTreeMap::new();
        for a in plan.assignments() {
            *per_receiver.entry(adapter.name(a.to)).or_default() += 1;
        }
        let moves = per_receiver
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        if plan.new_hosts().is_empty() {
            println!(
                "wave {wave} (continued): {} apps -> {moves}",
                plan.assignments().len()
            );
        } else {
            wave += 1;
            println!(
                "wave {wave}: drain {} ({} apps) -> {moves}",
                names(&adapter, plan.new_hosts()),
                plan.assignments().len()
            );
        }
        // Apply the wave to the copy.
        for a in plan.assignments() {
            if let Some(app) = apps.iter_mut().find(|x| x.id == a.app) {
                app.host = a.to;
                app.state = AppState::Running;
            }
        }
        let draining: HashSet<HostId> = plan.hosts().iter().copied().collect();
        for host in hosts.iter_mut().filter(|h| draining.contains(&h.id)) {
            let empty = !apps.iter().any(|a| a.host == host.id);
            host.state = if empty {
                HostState::Drained
            } else {
                HostState::Draining
            };
        }
        remaining.retain(|t| {
            hosts
                .iter()
                .find(|h| h.id == *t)
                .is_none_or(|h| h.state != HostState::Drained)
        });
    }
    println!("plan: {wave} waves in all (dry run: nothing was changed)");
    Ok(exit::OK)
}

/// Opens (and locks) the journal for `run`; `None` if it says the drain
/// finished.
async fn open_journal(
    config: &CliConfig,
) -> Result<Option<(FileJournal, Vec<JournalRecord>)>, CliError> {
    let mut journal = FileJournal::open(&config.journal.file).map_err(|e| match e {
        JournalError::Locked { path } => CliError::Io(format!(
            "another fleet-drain run holds the journal {} (use `status`, `pause`, `resume` or `abort`)",
            path.display()
        )),
        other => CliError::Journal(other),
    })?;
    if let Some(tail) = &journal.recovery().discarded {
        println!(
            "journal: discarded a torn final record ({} bytes at offset {})",
            tail.discarded_bytes, tail.offset
        );
    }
    let records = journal.records().await?;
    let progress = DrainProgress::from_records(&records);
    if let Some(reason) = &progress.aborted {
        return Err(CliError::Aborted(format!(
            "the journal {} says the drain was aborted ({reason}); start a new drain with a new journal",
            config.journal.file.display()
        )));
    }
    if progress.finished {
        return Ok(None);
    }
    Ok(Some((journal, records)))
}

/// `run`: drains to completion, printing progress; resumes from the
/// journal.
pub(super) async fn run(config: CliConfig) -> Result<u8, CliError> {
    let Some((journal, records)) = open_journal(&config).await? else {
        println!("done: the journal says this drain already finished");
        return Ok(exit::OK);
    };
    let adapter = Arc::new(Adapter::build(&config.adapter, &records)?);
    let targets = adapter.resolve(&config.targets).await?;
    // The recorder goes in before the controller registers its series.
    let _metrics = match &config.metrics {
        Some(metrics) => {
            let endpoint = super::metrics::serve(metrics.listen).await?;
            println!("metrics: http://{}/metrics", endpoint.address);
            Some(endpoint)
        }
        None => None,
    };
    let control = Control::new();
    let fleet: Arc<dyn DrainFleet> = Arc::new(Pausable {
        inner: Arc::clone(&adapter.fleet),
        control: Arc::clone(&control),
    });
    let mut controller = DrainController::new(config.drain.clone(), fleet, Box::new(journal))
        .map_err(|e| CliError::Config(e.to_string()))?;
    if let Some(names) = &adapter.names {
        controller = controller.with_names(names.clone());
    }
    {
        let (adapter, control) = (Arc::clone(&adapter), Arc::clone(&control));
        let total = targets.len();
        controller.on_event(move |event| print_event(&adapter, &control, total, event));
    }
    control.update(|s| s.targets = targets.len());
    let _socket = ControlSocket::bind(&config.socket(), Arc::clone(&control))?;
    println!(
        "run: draining {} hosts; control socket {}",
        targets.len(),
        config.socket().display()
    );
    let ticker = tokio::spawn(print_progress(
        Arc::clone(&adapter),
        Arc::clone(&control),
        targets.clone(),
        config.progress_interval(),
    ));
    let started = Instant::now();
    let outcome = {
        let run = Box::pin(controller.run(&targets));
        let aborted = Box::pin(control.aborted());
        match select(run, aborted).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(((), _)) => None,
        }
    };
    ticker.abort();
    match outcome {
        Some(Ok(report)) => {
            println!(
                "done: {} hosts drained, {} apps moved, {} failed starts, {} waves{} in {:.1?}",
                report.hosts_drained,
                report.apps_migrated,
                report.failed_starts,
                report.waves,
                if report.resumed { " (resumed)" } else { "" },
                started.elapsed()
            );
            Ok(exit::OK)
        }
        Some(Err(error)) => Err(error.into()),
        None => {
            // Stop the controller (its journal handle goes with it), then
            // journal the abort so no later run continues this drain.
            drop(controller);
            let reason = "aborted by an operator (fleet-drain abort)".to_owned();
            let mut journal = FileJournal::open(&config.journal.file)?;
            journal
                .append(&JournalRecord::Aborted {
                    reason: reason.clone(),
                })
                .await?;
            println!(
                "aborted: {reason}; hosts left draining stay draining until an operator puts them back"
            );
            Err(CliError::Aborted(reason))
        }
    }
}

/// One progress line per drain event worth a line.
fn print_event(adapter: &Adapter, control: &Control, total: usize, event: &DrainEvent) {
    match event {
        DrainEvent::Started { targets, resumed } => {
            println!(
                "started: {targets} hosts to drain{}",
                if *resumed {
                    " (resumed from the journal)"
                } else {
                    ""
                }
            );
        }
        DrainEvent::WaveStarted { wave, hosts, apps } => {
            println!(
                "wave {wave}: draining {} ({apps} apps to move)",
                names(adapter, hosts)
            );
        }
        DrainEvent::HostDrained { host } => {
            let mut drained = 0;
            control.update(|s| {
                s.hosts_drained += 1;
                drained = s.hosts_drained;
            });
            println!(
                "drained {} ({drained}/{total} this run)",
                adapter.name(*host)
            );
        }
        DrainEvent::Paused { reason, .. } => {
            control.update(|s| s.gate = format!("paused: {reason}"));
            println!("gate: paused: {reason}");
        }
        DrainEvent::Resumed { paused_for, .. } => {
            control.update(|s| s.gate = "proceed".into());
            println!("gate: proceed (paused for {paused_for:.1?})");
        }
        DrainEvent::StartFailed {
            app, host, error, ..
        } => {
            println!("start failed: {app} on {}: {error}", adapter.name(*host));
        }
        DrainEvent::ReceiverExcluded { host, moved, .. } => {
            println!(
                "receiver excluded: {} ({moved} apps re-planned)",
                adapter.name(*host)
            );
        }
        DrainEvent::Aborted { reason } => println!("gate: abort: {reason}"),
        _ => {}
    }
}

/// Prints a progress line every `every`: hosts drained, apps moving and
/// where, apps left on the targets, the gate and the operator's switch.
async fn print_progress(
    adapter: Arc<Adapter>,
    control: Arc<Control>,
    targets: Vec<HostId>,
    every: Duration,
) {
    let targets: HashSet<HostId> = targets.into_iter().collect();
    let mut first_left: Option<usize> = None;
    loop {
        tokio::time::sleep(every).await;
        let (Ok(hosts), Ok(apps)) = (adapter.fleet.hosts().await, adapter.fleet.apps().await)
        else {
            continue;
        };
        let drained = hosts
            .iter()
            .filter(|h| targets.contains(&h.id) && h.state == HostState::Drained)
            .count();
        let left = apps.iter().filter(|a| targets.contains(&a.host)).count();
        let first = *first_left.get_or_insert(left);
        let mut starting: BTreeMap<String, usize> = BTreeMap::new();
        for app in apps.iter().filter(|a| a.state == AppState::Starting) {
            *starting.entry(adapter.name(app.host)).or_default() += 1;
        }
        let moving: usize = starting.values().sum();
        control.update(|s| {
            s.apps_moving = moving;
            s.apps_moved = first.saturating_sub(left) as u64;
            s.starting_per_receiver = starting.iter().map(|(k, v)| (k.clone(), *v)).collect();
        });
        let status = control.status();
        let per_receiver = if starting.is_empty() {
            "-".to_owned()
        } else {
            starting
                .iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "progress: drained {drained}/{} hosts, {left} apps left on them, {moving} moving, starts per receiver: {per_receiver}, gate: {}, operator: {}",
            targets.len(),
            status.gate,
            status.state
        );
    }
}

/// `status`: the running controller's view, else the journal's.
pub(super) async fn status(config: &CliConfig) -> Result<u8, CliError> {
    match control::send(&config.socket(), "status").await {
        Ok(reply) => {
            println!(
                "running: {}",
                reply
                    .get("status")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
        }
        Err(CliError::NotRunning(_)) => println!(
            "running: no controller answers on {}",
            config.socket().display()
        ),
        Err(other) => return Err(other),
    }
    let records = journal_records(config)?;
    if records.is_empty() {
        println!(
            "journal: {} holds no drain yet",
            config.journal.file.display()
        );
        return Ok(exit::OK);
    }
    let progress = DrainProgress::from_records(&records);
    // Names journaled by the adapter, if it journals them; ids otherwise.
    let names = fleet_drain::names::NameMap::from_records(&records).ok();
    let label = |hosts: &[HostId]| {
        hosts
            .iter()
            .map(|&h| {
                names
                    .as_ref()
                    .and_then(|n| n.host_name(h))
                    .unwrap_or_else(|| h.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let state = if progress.finished {
        "finished".to_owned()
    } else if let Some(reason) = &progress.aborted {
        format!("aborted ({reason})")
    } else {
        "in progress".to_owned()
    };
    println!(
        "journal: {state}; {} of {} hosts drained, {} waves; draining: [{}]; drained: [{}]",
        progress.drained.len(),
        progress.targets.as_ref().map_or(0, Vec::len),
        progress.waves,
        label(&progress.draining),
        label(&progress.drained)
    );
    Ok(exit::OK)
}

/// `pause`, `resume`, `abort`.
pub(super) async fn steer(config: &CliConfig, command: &str) -> Result<u8, CliError> {
    let reply = control::send(&config.socket(), command).await?;
    let state = reply
        .pointer("/status/state")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown");
    println!("{command}: ok (controller {state})");
    Ok(exit::OK)
}
