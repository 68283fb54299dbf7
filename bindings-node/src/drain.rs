//! `planDrain(fleet, limits)`: fleet-drain's wave planner as a pure
//! function over plain objects.
//!
//! Every wave is `Planner::next_wave`'s decision. Between waves the plan is
//! applied to a what-if copy of the fleet (the wave's apps run on their
//! receivers, its hosts are drained), so the result lists all the waves a
//! drain within the limits would take, assuming every start succeeds.

use std::str::FromStr;

use fleet_drain::fleet::{App, AppId, AppState, FleetSnapshot, Host, HostId, HostState};
use fleet_drain::plan::{Amount, DrainLimits, DrainPlan, Planner};
use fleet_drain::{FleetError, PlanError};
use napi::Env;
use napi_derive::napi;

use crate::error::{BwError, BwResult, from_config, guard, whole_u32};

pub use crate::codes::DRAIN_INFEASIBLE;

/// A host of the fleet.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct HostInput {
    /// Unique id (a whole number).
    pub id: f64,
    /// How many apps it can run.
    pub capacity: f64,
    /// `'active' | 'cordoned' | 'draining' | 'drained'` (default active).
    pub state: Option<String>,
    /// The software version it runs.
    pub version: Option<String>,
    /// Whether it may receive apps (default true).
    pub healthy: Option<bool>,
}

/// An app placed on a host.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AppInput {
    /// Unique id (a whole number).
    pub id: f64,
    /// The id of its host.
    pub host: f64,
    /// `'starting' | 'running' | 'unhealthy' | 'failed' | 'stopped'`
    /// (default running).
    pub state: Option<String>,
}

/// The fleet and the hosts to drain, in order.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct FleetInput {
    /// Every host.
    pub hosts: Vec<HostInput>,
    /// Every app.
    pub apps: Vec<AppInput>,
    /// Ids of the hosts to drain, in drain order.
    pub drain: Vec<f64>,
}

/// Drain limits; amounts as strings (`"5"`, `"10%"`), normalized by the JS
/// wrapper.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct LimitsInput {
    /// Hosts draining at once.
    pub max_draining_hosts: Option<f64>,
    /// Apps unavailable at once: a count or a percent of all apps.
    pub max_unavailable: Option<String>,
    /// App starts into one receiving host per minute.
    pub max_starts_per_host_per_minute: Option<f64>,
    /// Room each receiver keeps free: a count or a percent of its capacity.
    pub min_free_capacity: Option<String>,
}

/// One app's move.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AssignmentOut {
    /// The app.
    pub app: u32,
    /// The draining host it leaves.
    pub from: u32,
    /// The receiving host.
    pub to: u32,
    /// The minute (from the wave's start) in which it may start.
    pub slot: u32,
}

/// An app that found no receiver in its wave.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct UnplacedOut {
    /// The app.
    pub app: u32,
    /// Its host.
    pub host: u32,
}

/// A receiving host's load in a wave.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ReceiverOut {
    /// The host.
    pub host: u32,
    /// Its capacity.
    pub capacity: u32,
    /// Apps on it before the wave.
    pub load: u32,
    /// Slots it keeps free.
    pub reserve: u32,
    /// Apps the wave assigns to it.
    pub assigned: u32,
}

/// One wave.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct WaveOut {
    /// Hosts draining in this wave.
    pub hosts: Vec<u32>,
    /// Hosts that start draining in this wave.
    pub new_hosts: Vec<u32>,
    /// Every app's move.
    pub assignments: Vec<AssignmentOut>,
    /// Apps left without a receiver.
    pub unplaced: Vec<UnplacedOut>,
    /// Apps that may be unavailable at once.
    pub unavailable_budget: f64,
    /// The receivers and their load.
    pub receivers: Vec<ReceiverOut>,
}

fn id(name: &str, value: f64) -> BwResult<u32> {
    whole_u32(name, value)
}

fn host_state(name: &str, value: Option<&str>) -> BwResult<HostState> {
    match value.unwrap_or("active") {
        "active" => Ok(HostState::Active),
        "cordoned" => Ok(HostState::Cordoned),
        "draining" => Ok(HostState::Draining),
        "drained" => Ok(HostState::Drained),
        other => Err(BwError::range(format!(
            "`{name}` must be one of 'active', 'cordoned', 'draining', 'drained', got '{other}'"
        ))),
    }
}

fn app_state(name: &str, value: Option<&str>) -> BwResult<AppState> {
    match value.unwrap_or("running") {
        "starting" => Ok(AppState::Starting),
        "running" => Ok(AppState::Running),
        "unhealthy" => Ok(AppState::Unhealthy),
        "failed" => Ok(AppState::Failed),
        "stopped" => Ok(AppState::Stopped),
        other => Err(BwError::range(format!(
            "`{name}` must be one of 'starting', 'running', 'unhealthy', 'failed', 'stopped', got '{other}'"
        ))),
    }
}

fn amount(name: &str, value: Option<&str>, default: Amount) -> BwResult<Amount> {
    value.map_or(Ok(default), |text| {
        Amount::from_str(text).map_err(|reason| BwError::range(format!("`{name}`: {reason}")))
    })
}

/// Validated limits (defaults for unset ones).
pub fn limits(input: &LimitsInput) -> BwResult<DrainLimits> {
    let d = DrainLimits::default();
    let limits = DrainLimits {
        max_draining_hosts: input
            .max_draining_hosts
            .map_or(Ok(d.max_draining_hosts), |n| {
                whole_u32("maxDrainingHosts", n)
            })?,
        max_unavailable: amount(
            "maxUnavailable",
            input.max_unavailable.as_deref(),
            d.max_unavailable,
        )?,
        max_starts_per_host_per_minute: input
            .max_starts_per_host_per_minute
            .map_or(Ok(d.max_starts_per_host_per_minute), |n| {
                whole_u32("maxStartsPerHostPerMinute", n)
            })?,
        max_concurrent_starts_per_host: d.max_concurrent_starts_per_host,
        min_free_capacity: amount(
            "minFreeCapacity",
            input.min_free_capacity.as_deref(),
            d.min_free_capacity,
        )?,
    };
    limits.validate().map_err(|e| from_config(&e))?;
    Ok(limits)
}

/// A validated fleet.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The hosts.
    pub hosts: Vec<Host>,
    /// Whether each host (same order) may receive apps.
    pub healthy: Vec<bool>,
    /// The apps.
    pub apps: Vec<App>,
    /// The hosts to drain, in order.
    pub drain: Vec<HostId>,
}

/// The fleet as hosts and apps, plus the hosts to drain.
pub fn fleet(input: &FleetInput) -> BwResult<Parsed> {
    let mut hosts = Vec::with_capacity(input.hosts.len());
    let mut healthy = Vec::with_capacity(input.hosts.len());
    let mut seen = std::collections::HashSet::new();
    for (i, h) in input.hosts.iter().enumerate() {
        let host_id = id(&format!("fleet.hosts[{i}].id"), h.id)?;
        if !seen.insert(host_id) {
            return Err(BwError::range(format!(
                "`fleet.hosts[{i}].id`: host {host_id} appears twice"
            )));
        }
        hosts.push(Host {
            id: HostId(host_id),
            capacity: whole_u32(&format!("fleet.hosts[{i}].capacity"), h.capacity)?,
            state: host_state(&format!("fleet.hosts[{i}].state"), h.state.as_deref())?,
            version: h.version.clone().unwrap_or_default(),
        });
        healthy.push(h.healthy.unwrap_or(true));
    }
    let mut apps = Vec::with_capacity(input.apps.len());
    let mut seen = std::collections::HashSet::new();
    for (i, a) in input.apps.iter().enumerate() {
        let app_id = id(&format!("fleet.apps[{i}].id"), a.id)?;
        if !seen.insert(app_id) {
            return Err(BwError::range(format!(
                "`fleet.apps[{i}].id`: app {app_id} appears twice"
            )));
        }
        apps.push(App {
            id: AppId(app_id),
            host: HostId(id(&format!("fleet.apps[{i}].host"), a.host)?),
            state: app_state(&format!("fleet.apps[{i}].state"), a.state.as_deref())?,
        });
    }
    let drain = input
        .drain
        .iter()
        .enumerate()
        .map(|(i, &h)| id(&format!("fleet.drain[{i}]"), h).map(HostId))
        .collect::<BwResult<Vec<_>>>()?;
    Ok(Parsed {
        hosts,
        healthy,
        apps,
        drain,
    })
}

fn snapshot(hosts: &[Host], healthy: &[bool], apps: &[App]) -> BwResult<FleetSnapshot> {
    let mut snapshot = FleetSnapshot::new(hosts.to_vec(), apps.to_vec()).map_err(|e| match e {
        FleetError::UnknownHost(host) => BwError::range(format!(
            "`fleet.apps`: an app is placed on {host}, which is not in `fleet.hosts`"
        )),
        other => BwError::range(format!("`fleet`: {other}")),
    })?;
    for (host, &ok) in hosts.iter().zip(healthy) {
        snapshot.set_host_healthy(host.id, ok);
    }
    Ok(snapshot)
}

fn plan_error(err: PlanError) -> BwError {
    match err {
        PlanError::Config(e) => from_config(&e),
        PlanError::UnknownHost(host) => {
            BwError::range(format!("`fleet.drain`: {host} is not in `fleet.hosts`"))
        }
        other => BwError::coded(DRAIN_INFEASIBLE, other.to_string()),
    }
}

fn wave(plan: &DrainPlan) -> WaveOut {
    WaveOut {
        hosts: plan.hosts().iter().map(|h| h.0).collect(),
        new_hosts: plan.new_hosts().iter().map(|h| h.0).collect(),
        assignments: plan
            .assignments()
            .iter()
            .map(|a| AssignmentOut {
                app: a.app.0,
                from: a.from.0,
                to: a.to.0,
                slot: a.slot,
            })
            .collect(),
        unplaced: plan
            .unplaced()
            .iter()
            .map(|(app, host)| UnplacedOut {
                app: app.0,
                host: host.0,
            })
            .collect(),
        unavailable_budget: plan.unavailable_budget() as f64,
        receivers: plan
            .receivers()
            .iter()
            .map(|r| ReceiverOut {
                host: r.host.0,
                capacity: r.capacity,
                load: r.load,
                reserve: r.reserve,
                assigned: r.assigned,
            })
            .collect(),
    }
}

/// Plans every wave of draining `fleet.drain` within `limits`.
pub fn plan_all(input: &FleetInput, limits_input: &LimitsInput) -> BwResult<Vec<WaveOut>> {
    let planner = Planner::new(limits(limits_input)?).map_err(|e| from_config(&e))?;
    let Parsed {
        mut hosts,
        healthy,
        mut apps,
        drain: targets,
    } = fleet(input)?;
    let first = snapshot(&hosts, &healthy, &apps)?;
    planner
        .check_feasible(&first, &targets)
        .map_err(plan_error)?;

    let mut waves = Vec::new();
    let mut current = first;
    // Every productive wave drains at least one host or moves one app.
    let bound = targets.len().saturating_add(apps.len()).saturating_add(1);
    for _ in 0..bound {
        let pending = targets.iter().any(|t| {
            current
                .host(*t)
                .is_some_and(|h| h.state != HostState::Drained)
        });
        if !pending {
            return Ok(waves);
        }
        let plan = planner.next_wave(&current, &targets).map_err(plan_error)?;
        if plan.is_empty() || (plan.assignments().is_empty() && !plan.unplaced().is_empty()) {
            return Err(BwError::coded(
                DRAIN_INFEASIBLE,
                "the drain cannot progress within the limits (no host could be drained in the next wave)",
            ));
        }
        // What if the wave succeeds: its apps run on their receivers, and its
        // hosts without unplaced apps are drained.
        for a in plan.assignments() {
            if let Some(app) = apps.iter_mut().find(|app| app.id == a.app) {
                app.host = a.to;
                app.state = AppState::Running;
            }
        }
        for host in &mut hosts {
            if plan.hosts().contains(&host.id) {
                let stuck = plan.unplaced().iter().any(|(_, h)| *h == host.id);
                host.state = if stuck {
                    HostState::Draining
                } else {
                    HostState::Drained
                };
            }
        }
        waves.push(wave(&plan));
        current = snapshot(&hosts, &healthy, &apps)?;
    }
    Err(BwError::coded(
        DRAIN_INFEASIBLE,
        "the drain did not finish within the expected number of waves",
    ))
}

/// Plans every wave of the drain; throws `ERR_BREAKWATER_DRAIN_INFEASIBLE`
/// when it cannot be done within the limits.
#[napi(js_name = "planDrain")]
pub fn plan_drain(env: Env, fleet: FleetInput, limits: LimitsInput) -> napi::Result<Vec<WaveOut>> {
    guard(&env, || plan_all(&fleet, &limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARG;

    fn fleet_of(old: u32, new: u32, apps_per_old: u32) -> FleetInput {
        let hosts = (0..old + new)
            .map(|i| HostInput {
                id: f64::from(i),
                capacity: 10.0,
                state: None,
                version: None,
                healthy: None,
            })
            .collect();
        let apps = (0..old * apps_per_old)
            .map(|i| AppInput {
                id: f64::from(i),
                host: f64::from(i / apps_per_old),
                state: None,
            })
            .collect();
        FleetInput {
            hosts,
            apps,
            drain: (0..old).map(f64::from).collect(),
        }
    }

    #[test]
    fn every_target_is_drained_within_the_limits() {
        let limits = LimitsInput {
            max_draining_hosts: Some(1.0),
            max_unavailable: Some("50%".into()),
            max_starts_per_host_per_minute: Some(2.0),
            min_free_capacity: Some("1".into()),
        };
        let waves = plan_all(&fleet_of(3, 3, 3), &limits).unwrap();
        assert_eq!(waves.len(), 3, "one host per wave");
        for (i, w) in waves.iter().enumerate() {
            assert_eq!(w.hosts, vec![i as u32]);
            assert_eq!(w.assignments.len(), 3);
            assert!(w.assignments.iter().all(|a| a.to >= 3));
        }
    }

    #[test]
    fn infeasible_drains_and_bad_input_are_reported() {
        let err = plan_all(
            &fleet_of(3, 0, 3),
            &LimitsInput {
                max_unavailable: Some("100%".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), DRAIN_INFEASIBLE);

        let mut bad = fleet_of(1, 1, 1);
        bad.drain = vec![7.0];
        let err = plan_all(&bad, &LimitsInput::default()).unwrap_err();
        assert_eq!(err.code(), INVALID_ARG);
        assert!(err.message().contains("fleet.drain"));

        let err = plan_all(
            &fleet_of(1, 1, 1),
            &LimitsInput {
                max_draining_hosts: Some(0.0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            err.message().contains("maxDrainingHosts"),
            "{}",
            err.message()
        );
    }
}
