//! The discrete-event simulation of November 2019.
//!
//! Clients send Poisson traffic to proxies; proxies forward each request to an
//! API server and retry failures; servers process requests with a fixed number
//! of workers, hold everything they accepted in memory, and crash when that
//! memory exceeds their limit, failing everything they hold. A timed-out
//! attempt keeps its server busy (wasted work) while its retry arrives. That
//! is what makes the naive system *metastable*: once retries have pushed the
//! servers over, every restarted server is flooded again, long after the bad
//! release is gone.
//!
//! Every Breakwater mechanism is the real library type, driven on a
//! `ManualClock` that follows simulated time: the proxies' retries are the
//! library's one retry engine (`RetryPolicy::start_run` → `RetryRun`, with
//! its `RetryBudget`, jittered `Backoff`, Retry-After cap and deadline),
//! `CircuitBreaker`, `AdaptiveThrottle`, `ConcurrencyLimit` or
//! `AdaptiveLimit` (load shedding), `RestartBackoff` and `SlowStart` (its
//! ramp weighting the proxies' choice of server, or refusing at the
//! server); the staged side's release goes out through fleet-drain's
//! `Rollout` (see [`super::fleet`]). The servers' memory guard is the
//! simulation's own: one comparison of the memory a server holds with a
//! share of its limit, both read by the server at run time (no library type
//! reads a heap).
//!
//! The simulation reads the hidden [`World`](super::params::World); the
//! sides' configurations come from [`super::policy::side_config`], which
//! cannot.

// Indices in this module are internal ids (proxy, server, time bucket) that
// are bounded by construction, never user input.
#![allow(clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use breakwater_slab::{Key, Slab};
use fleet_drain::fleet::AppState;
use futures::task::noop_waker_ref;
use resilience_core::breaker::{BreakerPermit, CircuitBreaker};
use resilience_core::budget::RetryBudget;
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::limit::{
    AdaptiveLimit, AdaptivePermit, ConcurrencyLimit, ConcurrencyPermit, Overloaded,
};
use resilience_core::restart::{RestartBackoff, SlowStart};
use resilience_core::retry::{ErrorClass, RetryDecision, RetryErrorKind, RetryPolicy, RetryRun};
use resilience_core::throttle::AdaptiveThrottle;

use super::fleet::{Command, StagedDeploy};
use super::params::{Nov2019Params, SlowStartAt};
use super::policy::{Mechanisms, Side, SideConfig, side_config};
use super::report::{Counters, Nov2019Outcome, Timeline};
use crate::replay::error::ReplayError;
use crate::replay::events::{EventQueue, Micros, SECOND, ms};
use crate::replay::prometheus::build_named;

type AcquireFuture = Pin<Box<dyn Future<Output = Result<Permit, Overloaded>> + Send>>;

/// A server's admission permit: of its fixed or of its adaptive limit.
enum Permit {
    Fixed(ConcurrencyPermit),
    Adaptive(AdaptivePermit),
}

impl Permit {
    /// The request completed: an adaptive limit gets its latency sample
    /// (from admission to completion, the wait for a worker included).
    fn complete(self) {
        match self {
            Permit::Fixed(permit) => drop(permit),
            Permit::Adaptive(permit) => permit.record_success(),
        }
    }
}

/// A server's concurrency limit, cheap to clone into an acquire future.
#[derive(Clone)]
enum Limit {
    Fixed(ConcurrencyLimit),
    Adaptive(AdaptiveLimit),
}

impl Limit {
    fn acquire(&self) -> AcquireFuture {
        match self.clone() {
            Limit::Fixed(limit) => {
                Box::pin(async move { limit.acquire().await.map(Permit::Fixed) })
            }
            Limit::Adaptive(limit) => {
                Box::pin(async move { limit.acquire().await.map(Permit::Adaptive) })
            }
        }
    }
}

/// What one simulation run replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSpec {
    /// The side (decides the deploy, the fix, and which policy).
    pub side: Side,
    /// The mechanisms the proxies and servers use.
    pub mechanisms: Mechanisms,
    /// Simulated duration, seconds.
    pub horizon_s: u64,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// Next client request arrives.
    Arrive,
    /// An attempt reaches its server.
    AtServer { attempt: Key, server: usize },
    /// A server finished an attempt (ignored if the server crashed meanwhile).
    ServiceDone {
        server: usize,
        slot: u64,
        incarnation: u32,
    },
    /// The server's answer reaches the proxy.
    Response {
        attempt: Key,
        ok: bool,
        retry_after: Micros,
    },
    /// The proxy's per-attempt timeout fires.
    AttemptTimeout(Key),
    /// A backed-off retry fires.
    Retry(Key),
    /// A server process finished booting.
    ServerUp { server: usize, incarnation: u32 },
    /// A rolling deploy (`bad = true`) or revert replaces one server's process.
    Redeploy { server: usize, bad: bool },
    /// The operators divert traffic and restart proxies and servers.
    Fix,
    /// Once a second: sample the timeline, expire queued waiters, step the
    /// staged rollout.
    Tick,
}

struct Client {
    bucket: usize,
    deadline: Micros,
    proxy: usize,
    /// Proxies of an older generation were replaced by the operator fix.
    generation: u32,
    /// The proxy's retry engine for this request (the library's `RetryRun`).
    retry: RetryRun,
}

struct Attempt {
    client: Key,
    proxy: usize,
    breaker: Option<BreakerPermit>,
}

struct Proxy {
    /// Every retry decision of this proxy: attempts, backoff, Retry-After,
    /// deadline, then the budget (`RetryRun`, as in the library's executor).
    retry: RetryPolicy,
    throttle: Option<AdaptiveThrottle>,
    breakers: Vec<CircuitBreaker>,
}

struct InService {
    slot: u64,
    attempt: Key,
    permit: Option<Permit>,
}

#[allow(clippy::struct_excessive_bools)] // independent facts about one process
struct Server {
    up: bool,
    /// When the current process finished booting (`None`: warm since before the run).
    booted_at: Option<Micros>,
    bad: bool,
    /// The version the next boot runs.
    target_bad: bool,
    /// Down for a deploy (starting) rather than after a crash (failed).
    deploying: bool,
    incarnation: u32,
    in_service: Vec<InService>,
    /// Admitted attempts waiting for a worker (with their permit, if any).
    queue: VecDeque<(Key, Option<Permit>)>,
    /// Shedding servers: attempts waiting in the `ConcurrencyLimit`'s queue.
    waiting: VecDeque<(Key, AcquireFuture)>,
    limit: Option<Limit>,
    restart: Option<RestartBackoff>,
    slow_start: Option<SlowStart>,
    /// Health-check window: attempts answered, and refused or lost.
    health_ok: u32,
    health_err: u32,
}

impl Server {
    fn held(&self) -> usize {
        self.in_service.len() + self.queue.len() + self.waiting.len()
    }
}

struct Sim<'p> {
    p: &'p Nov2019Params,
    spec: RunSpec,
    config: SideConfig,
    rng: fastrand::Rng,
    clock: ManualClock,
    epoch: Instant,
    now: Micros,
    horizon: Micros,
    q: EventQueue<Ev>,
    clients: Slab<Client>,
    attempts: Slab<Attempt>,
    proxies: Vec<Proxy>,
    servers: Vec<Server>,
    next_slot: u64,
    generation: u32,
    /// Share of arriving requests the load balancer passes on (operator fix).
    admit: Admission,
    staged: Option<StagedDeploy>,
    tl: Timeline,
    c: Counters,
}

#[derive(Debug, Clone, Copy)]
enum Admission {
    All,
    Ramp { from: Micros, over: Micros },
}

/// Runs one side on the model and returns its outcome.
pub fn run(p: &Nov2019Params, spec: RunSpec, seed: u64) -> Result<Nov2019Outcome, ReplayError> {
    p.validate()?;
    let mut sim = Sim::new(p, spec, seed)?;
    sim.run();
    Ok(sim.finish())
}

impl<'p> Sim<'p> {
    #[allow(clippy::too_many_lines)] // builds every proxy's and server's library types
    fn new(p: &'p Nov2019Params, spec: RunSpec, seed: u64) -> Result<Self, ReplayError> {
        let clock = ManualClock::new();
        let epoch = clock.now();
        let mut rng = fastrand::Rng::with_seed(seed);
        let s = &p.setup;
        let config = side_config(s, &p.naive, &p.breakwater, spec.mechanisms)?;
        // Instances of one kind share a name (`nov2019.<side>.<kind>`): their counters add up
        // in `--metrics-out`, as one service's proxies would in one dashboard.
        let name = |kind: &str| format!("nov2019.{}.{kind}", spec.side.key());
        let mut proxies = Vec::with_capacity(s.proxies);
        for _ in 0..s.proxies {
            let mut retry = build_named(
                &name("retry"),
                || RetryPolicy::new(config.retry.clone()),
                RetryPolicy::named,
            )?
            .with_clock(clock.clone())
            .with_seed(rng.u64(..));
            if let Some(budget) = &config.budget {
                retry = retry.with_budget(Arc::new(build_named(
                    &name("retry-budget"),
                    || RetryBudget::with_clock(budget.clone(), clock.clone()),
                    RetryBudget::named,
                )?));
            }
            let throttle = match &config.throttle {
                Some(t) => Some(build_named(
                    &name("throttle"),
                    || AdaptiveThrottle::with_seed(t.clone(), clock.clone(), rng.u64(..)),
                    AdaptiveThrottle::named,
                )?),
                None => None,
            };
            let mut breakers = Vec::new();
            if let Some(b) = &config.breaker {
                for _ in 0..s.servers {
                    breakers.push(build_named(
                        &name("breaker"),
                        || {
                            CircuitBreaker::with_clock_and_seed(
                                b.clone(),
                                clock.clone(),
                                rng.u64(..),
                            )
                        },
                        CircuitBreaker::named,
                    )?);
                }
            }
            proxies.push(Proxy {
                retry,
                throttle,
                breakers,
            });
        }
        let mut servers = Vec::with_capacity(s.servers);
        for _ in 0..s.servers {
            let limit = match (&config.limit, &config.adaptive_limit) {
                (Some(l), _) => Some(Limit::Fixed(build_named(
                    &name("limit"),
                    || ConcurrencyLimit::with_clock(l.clone(), clock.clone()),
                    ConcurrencyLimit::named,
                )?)),
                (None, Some(a)) => Some(Limit::Adaptive(new_adaptive_limit(
                    &name("adaptive-limit"),
                    a,
                    &clock,
                )?)),
                (None, None) => None,
            };
            let restart = match &config.restart {
                Some(r) => {
                    let mut rb = build_named(
                        &name("restart"),
                        || RestartBackoff::with_seed(r.clone(), clock.clone(), rng.u64(..)),
                        RestartBackoff::named,
                    )?;
                    rb.on_started();
                    Some(rb)
                }
                None => None,
            };
            let slow_start = match &config.slow_start {
                Some(ss) => Some(SlowStart::with_clock(ss.clone(), clock.clone())?),
                None => None,
            };
            servers.push(Server {
                up: true,
                booted_at: None,
                bad: false,
                target_bad: false,
                deploying: false,
                incarnation: 0,
                in_service: Vec::new(),
                queue: VecDeque::new(),
                waiting: VecDeque::new(),
                limit,
                restart,
                slow_start,
                health_ok: 0,
                health_err: 0,
            });
        }
        // Servers that have been up for long are past their slow start.
        if let Some(ss) = &config.slow_start {
            clock.advance(ss.duration + Duration::from_secs(1));
        }
        let start_offset = clock.now() - epoch;
        let horizon_s = spec.horizon_s.min(s.horizon_s);
        let staged = if spec.side == Side::Staged {
            Some(StagedDeploy::new(&p.staged, s.servers, &clock)?)
        } else {
            None
        };
        let buckets = usize::try_from(horizon_s).unwrap_or(usize::MAX);
        let mut sim = Sim {
            p,
            spec,
            config,
            rng,
            clock,
            epoch: epoch + start_offset,
            now: 0,
            horizon: horizon_s * SECOND,
            q: EventQueue::default(),
            clients: Slab::default(),
            attempts: Slab::default(),
            proxies,
            servers,
            next_slot: 0,
            generation: 0,
            admit: Admission::All,
            staged,
            tl: Timeline::new(buckets),
            c: Counters::default(),
        };
        sim.q.push(0, Ev::Arrive);
        sim.q.push(0, Ev::Tick);
        let spread = s.rollout_spread_s * SECOND;
        let n = s.servers as u64;
        for server in 0..s.servers {
            let offset = spread * server as u64 / n.max(1);
            if spec.side != Side::Staged {
                sim.q.push(
                    s.deploy_at_s * SECOND + offset,
                    Ev::Redeploy { server, bad: true },
                );
            }
            sim.q.push(
                s.revert_at_s * SECOND + offset,
                Ev::Redeploy { server, bad: false },
            );
        }
        if spec.side == Side::OperatorFix {
            sim.q.push(p.operator_fix.fix_at_s * SECOND, Ev::Fix);
        }
        Ok(sim)
    }

    fn run(&mut self) {
        while let Some((at, ev)) = self.q.pop() {
            if at > self.horizon {
                break;
            }
            self.now = at;
            self.clock
                .advance_to(self.epoch + Duration::from_micros(at));
            self.handle(ev);
        }
    }

    fn bucket(at: Micros) -> usize {
        usize::try_from(at / SECOND).unwrap_or(usize::MAX)
    }

    fn network(&self) -> Micros {
        (self.p.world.network_ms * 1_000.0) as Micros
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Arrive => self.on_arrive(),
            Ev::AtServer { attempt, server } => self.accept(server, attempt),
            Ev::ServiceDone {
                server,
                slot,
                incarnation,
            } => self.on_service_done(server, slot, incarnation),
            Ev::Response {
                attempt,
                ok,
                retry_after,
            } => self.on_response(attempt, ok, retry_after),
            Ev::AttemptTimeout(a) => self.on_attempt_failed(a, 0),
            Ev::Retry(c) => self.launch_attempt(c),
            Ev::ServerUp {
                server,
                incarnation,
            } => self.on_server_up(server, incarnation),
            Ev::Redeploy { server, bad } => self.on_redeploy(server, bad),
            Ev::Fix => self.on_fix(),
            Ev::Tick => self.on_tick(),
        }
    }

    fn on_tick(&mut self) {
        let b = Self::bucket(self.now);
        let up = self.servers.iter().filter(|s| s.up).count();
        let bad = self.servers.iter().filter(|s| s.up && s.bad).count();
        self.tl.sample_servers(b, up, bad);
        let outage = (self.p.setup.deploy_at_s * SECOND..self.p.setup.revert_at_s * SECOND)
            .contains(&self.now);
        if outage {
            self.c.peak_bad_servers = self.c.peak_bad_servers.max(bad as u64);
        }
        // Queued waiters past their queue timeout are shed even while no
        // request completes.
        for s in 0..self.servers.len() {
            if self.servers[s].up && !self.servers[s].waiting.is_empty() {
                self.pull_next(s);
            }
        }
        self.step_rollout();
        self.q.push(self.now + SECOND, Ev::Tick);
    }

    /// The staged side: publish each server's health every check interval,
    /// then poll the rollout and apply what it asked for.
    fn step_rollout(&mut self) {
        let deploy = self.p.setup.deploy_at_s * SECOND;
        let revert = self.p.setup.revert_at_s * SECOND;
        if self.now < deploy || self.staged.is_none() {
            return;
        }
        if self.now >= revert {
            // The operators revert: whatever the rollout was doing stops.
            self.staged = None;
            return;
        }
        let interval = self.p.staged.health_check_interval_s * SECOND;
        if (self.now - deploy).is_multiple_of(interval.max(1)) {
            let threshold = self.p.staged.health_max_error_share;
            let slow_start = self
                .config
                .slow_start
                .as_ref()
                .map_or(0, |ss| u64::try_from(ss.duration.as_micros()).unwrap_or(0));
            for i in 0..self.servers.len() {
                let server = &mut self.servers[i];
                let (ok, err) = (server.health_ok, server.health_err);
                server.health_ok = 0;
                server.health_err = 0;
                let state = if !server.up {
                    if server.deploying {
                        AppState::Starting
                    } else {
                        AppState::Failed
                    }
                } else if server
                    .booted_at
                    .is_some_and(|at| self.now.saturating_sub(at) < slow_start)
                    && err == 0
                {
                    AppState::Starting
                } else if ok + err > 0 && f64::from(err) > threshold * f64::from(ok + err) {
                    AppState::Unhealthy
                } else {
                    AppState::Running
                };
                if let Some(staged) = &self.staged {
                    staged.set_state(i, state);
                }
            }
        }
        let commands = self.staged.as_mut().map(StagedDeploy::poll);
        for command in commands.into_iter().flatten() {
            match command {
                Command::Start(i) if i < self.servers.len() => self.on_redeploy(i, true),
                Command::Stop(i) if i < self.servers.len() => self.on_redeploy(i, false),
                _ => {}
            }
        }
        if let Some(staged) = &self.staged
            && !staged.running()
        {
            self.c.rollout_aborted = matches!(staged.outcome, Some(Err(_)));
        }
    }

    fn on_arrive(&mut self) {
        let gap = -(1.0 - self.rng.f64()).ln() / self.p.setup.client_rps;
        self.q
            .push(self.now + (gap * 1e6).max(1.0) as Micros, Ev::Arrive);
        let bucket = Self::bucket(self.now);
        self.tl.offered(bucket);
        let admitted = match self.admit {
            Admission::All => true,
            Admission::Ramp { from, over } => {
                if self.now >= from.saturating_add(over) {
                    self.admit = Admission::All;
                    true
                } else {
                    let share = self.now.saturating_sub(from) as f64 / over.max(1) as f64;
                    self.rng.f64() < share
                }
            }
        };
        if !admitted {
            self.c.diverted += 1;
            return;
        }
        let proxy = self.rng.usize(..self.p.setup.proxies);
        // A full slab (2^32 live clients) cannot happen before memory runs
        // out; the arrival would simply be lost.
        let Ok(client) = self.clients.insert(Client {
            bucket,
            deadline: self.now + ms(self.p.setup.client_timeout_ms),
            proxy,
            generation: self.generation,
            retry: self.proxies[proxy].retry.start_run(),
        }) else {
            return;
        };
        self.launch_attempt(client);
    }

    /// The proxy sends (or locally refuses) the next attempt of `client`.
    fn launch_attempt(&mut self, client_key: Key) {
        let Some(client) = self.clients.get_mut(client_key) else {
            return;
        };
        if client.generation != self.generation {
            // Its proxy was replaced by the operator fix.
            self.clients.remove(client_key);
            return;
        }
        let proxy = client.proxy;
        let deadline = client.deadline;
        if self.config.deadline && self.now >= deadline {
            // The caller's deadline passed before the attempt could start.
            if let Some(client) = self.clients.remove(client_key) {
                client.retry.stop_at_deadline();
            }
            self.c.deadline_stops += 1;
            return;
        }
        // The first attempt deposits into the budget (every request does,
        // failed or not).
        client.retry.begin_attempt();
        if let Some(throttle) = &self.proxies[proxy].throttle
            && throttle.should_reject()
        {
            // Rejected locally: fail fast, and do not retry what the
            // throttle just refused.
            self.c.throttled += 1;
            self.clients.remove(client_key);
            return;
        }
        let servers = self.servers.len();
        let start = self.rng.usize(..servers);
        let mut chosen = None;
        if self.config.breaker.is_some() {
            for k in 0..servers {
                let server = (start + k) % servers;
                if let Ok(permit) = self.proxies[proxy].breakers[server].try_acquire() {
                    chosen = Some((server, Some(permit)));
                    break;
                }
            }
        } else if self.config.slow_start.is_some()
            && self.config.slow_start_at == SlowStartAt::Balancer
        {
            chosen = Some((self.pick_by_slow_start(), None));
        } else {
            chosen = Some((start, None));
        }
        let Some((server, breaker)) = chosen else {
            // Every breaker of this proxy is open: fail fast.
            self.c.breaker_rejected += 1;
            self.clients.remove(client_key);
            return;
        };
        let Ok(attempt) = self.attempts.insert(Attempt {
            client: client_key,
            proxy,
            breaker,
        }) else {
            // 2^32 attempts in flight: unreachable in practice; give up.
            self.clients.remove(client_key);
            return;
        };
        let bucket = Self::bucket(self.now);
        self.tl.server_attempt(bucket);
        let mut timeout = ms(self.p.setup.attempt_timeout_ms);
        if self.config.deadline {
            timeout = timeout.min(deadline.saturating_sub(self.now));
        }
        let net = self.network();
        self.q
            .push(self.now + net, Ev::AtServer { attempt, server });
        self.q
            .push(self.now + timeout.max(1), Ev::AttemptTimeout(attempt));
    }

    /// A load balancer's slow start: each server is picked in proportion to
    /// its ramp (`SlowStart::admit_fraction`, 1 once warm), so a restarted
    /// server gets less traffic than its warm peers and the same as peers
    /// that restarted with it. The proxies learn of a restart from the
    /// server's health check.
    fn pick_by_slow_start(&mut self) -> usize {
        let weight = |s: &Server| s.slow_start.as_ref().map_or(1.0, SlowStart::admit_fraction);
        let total: f64 = self.servers.iter().map(weight).sum();
        let mut draw = self.rng.f64() * total;
        for (i, server) in self.servers.iter().enumerate() {
            draw -= weight(server);
            if draw < 0.0 {
                return i;
            }
        }
        self.servers.len().saturating_sub(1)
    }

    fn respond(&mut self, attempt: Key, ok: bool, retry_after: Micros) {
        let net = self.network();
        self.q.push(
            self.now + net,
            Ev::Response {
                attempt,
                ok,
                retry_after,
            },
        );
    }

    fn in_outage(&self) -> bool {
        let s = &self.p.setup;
        (s.deploy_at_s * SECOND..s.revert_at_s * SECOND).contains(&self.now)
    }

    /// Server `s` receives `attempt` (even if its proxy already gave up on
    /// it: the request was on the wire and costs the server the same work).
    fn accept(&mut self, s: usize, attempt: Key) {
        if self.in_outage() {
            self.c.outage_received += 1;
            if self.servers[s].up && self.servers[s].bad {
                self.c.outage_received_bad += 1;
            }
        }
        let server = &mut self.servers[s];
        if !server.up {
            return self.respond(attempt, false, 0);
        }
        if let Some(share) = self.config.memory_guard_share
            && (server.held() + 1) as f64 * self.memory_per_request(s)
                > share * self.p.world.memory_limit
        {
            // The server's own heap reading (in use, per request, limit):
            // admitting one more would take it past the guard.
            self.c.shed += 1;
            self.c.memory_shed += 1;
            self.servers[s].health_err += 1;
            return self.respond(attempt, false, ms(10));
        }
        let server = &mut self.servers[s];
        if let Some(slow) = &server.slow_start
            && self.config.slow_start_at == SlowStartAt::Server
            && !slow.should_admit(&mut self.rng)
        {
            self.c.shed += 1;
            let retry_after = ms(1_000);
            return self.respond(attempt, false, retry_after);
        }
        if let Some(limit) = &server.limit {
            let mut fut = limit.acquire();
            match poll_once(&mut fut) {
                Poll::Ready(Ok(permit)) => self.admit(s, attempt, Some(permit)),
                Poll::Ready(Err(overloaded)) => self.shed(s, attempt, &overloaded),
                Poll::Pending => self.servers[s].waiting.push_back((attempt, fut)),
            }
        } else {
            self.admit(s, attempt, None);
        }
        self.check_memory(s);
    }

    fn shed(&mut self, s: usize, attempt: Key, overloaded: &Overloaded) {
        self.c.shed += 1;
        self.servers[s].health_err += 1;
        let hint = u64::try_from(overloaded.retry_after.as_micros()).unwrap_or(u64::MAX);
        self.respond(attempt, false, hint);
    }

    /// An admitted attempt starts at once if a worker is free, or waits for one.
    fn admit(&mut self, s: usize, attempt: Key, permit: Option<Permit>) {
        if self.servers[s].in_service.len() < self.p.world.workers_per_server {
            self.start_service(s, attempt, permit);
        } else {
            self.servers[s].queue.push_back((attempt, permit));
        }
    }

    fn memory_per_request(&self, s: usize) -> f64 {
        if self.servers[s].bad {
            self.p.world.bad_memory_factor
        } else {
            1.0
        }
    }

    fn check_memory(&mut self, s: usize) {
        let held = self.servers[s].held() as f64;
        if held * self.memory_per_request(s) > self.p.world.memory_limit {
            self.crash(s, true);
        }
    }

    /// Service-time multiplier of a server still warming up after boot.
    fn cold_factor(&self, s: usize) -> f64 {
        let Some(booted) = self.servers[s].booted_at else {
            return 1.0;
        };
        let warmup = (self.p.world.warmup_s * SECOND) as f64;
        if warmup <= 0.0 {
            return 1.0;
        }
        let progress = ((self.now.saturating_sub(booted)) as f64 / warmup).min(1.0);
        1.0 + (self.p.world.cold_service_factor - 1.0) * (1.0 - progress)
    }

    fn start_service(&mut self, s: usize, attempt: Key, permit: Option<Permit>) {
        let w = &self.p.world;
        let release = if self.servers[s].bad {
            w.bad_service_factor
        } else {
            1.0
        };
        let mean = w.service_ms * release * self.cold_factor(s);
        let service = -(1.0 - self.rng.f64()).ln() * mean * 1_000.0;
        self.next_slot += 1;
        let slot = self.next_slot;
        let server = &mut self.servers[s];
        server.in_service.push(InService {
            slot,
            attempt,
            permit,
        });
        let incarnation = server.incarnation;
        self.q.push(
            self.now + (service as Micros).max(1),
            Ev::ServiceDone {
                server: s,
                slot,
                incarnation,
            },
        );
    }

    fn on_service_done(&mut self, s: usize, slot: u64, incarnation: u32) {
        let server = &mut self.servers[s];
        if server.incarnation != incarnation {
            return;
        }
        let Some(pos) = server.in_service.iter().position(|e| e.slot == slot) else {
            return;
        };
        let done = server.in_service.swap_remove(pos);
        server.health_ok += 1;
        let attempt = done.attempt;
        // Releasing the permit hands capacity to the next waiter.
        if let Some(permit) = done.permit {
            permit.complete();
        }
        self.respond(attempt, true, 0);
        self.pull_next(s);
    }

    /// Fills free workers from the admitted queue, then admits waiters the
    /// limit now lets in (or sheds those past their queue timeout).
    fn pull_next(&mut self, s: usize) {
        let workers = self.p.world.workers_per_server;
        while self.servers[s].in_service.len() < workers {
            let Some((attempt, permit)) = self.servers[s].queue.pop_front() else {
                break;
            };
            self.start_service(s, attempt, permit);
        }
        if self.servers[s].limit.is_some() {
            while let Some((attempt, mut fut)) = self.servers[s].waiting.pop_front() {
                match poll_once(&mut fut) {
                    Poll::Ready(Ok(permit)) => self.admit(s, attempt, Some(permit)),
                    Poll::Ready(Err(overloaded)) => self.shed(s, attempt, &overloaded),
                    Poll::Pending => {
                        self.servers[s].waiting.push_front((attempt, fut));
                        break;
                    }
                }
            }
        }
    }

    /// The server process dies (out of memory) or is replaced (deploy):
    /// everything it holds fails.
    fn crash(&mut self, s: usize, out_of_memory: bool) {
        let server = &mut self.servers[s];
        server.incarnation = server.incarnation.wrapping_add(1);
        let was_up = server.up;
        server.up = false;
        server.deploying = !out_of_memory;
        let mut failed: Vec<Key> = server.in_service.drain(..).map(|e| e.attempt).collect();
        failed.extend(server.queue.drain(..).map(|(a, _)| a));
        failed.extend(server.waiting.drain(..).map(|(a, _)| a));
        server.health_err = server
            .health_err
            .saturating_add(u32::try_from(failed.len()).unwrap_or(u32::MAX));
        for attempt in failed {
            self.respond(attempt, false, 0);
        }
        if out_of_memory && was_up {
            self.c.crashes += 1;
            let b = Self::bucket(self.now);
            self.tl.crash(b);
            let mut delay = ms(self.p.world.boot_ms);
            if let Some(restart) = &mut self.servers[s].restart {
                delay += u64::try_from(restart.on_crash().as_micros()).unwrap_or(u64::MAX);
            }
            let incarnation = self.servers[s].incarnation;
            self.q.push(
                self.now + delay,
                Ev::ServerUp {
                    server: s,
                    incarnation,
                },
            );
        }
    }

    fn on_server_up(&mut self, s: usize, incarnation: u32) {
        let server = &mut self.servers[s];
        if server.incarnation != incarnation {
            return;
        }
        server.up = true;
        server.deploying = false;
        server.booted_at = Some(self.now);
        server.bad = server.target_bad;
        if let Some(restart) = &mut server.restart {
            restart.on_started();
        }
        if let Some(slow) = &mut server.slow_start {
            slow.restart();
        }
        // A new process starts a new adaptive limit from its initial value
        // (a fixed limit has nothing to forget).
        if let (Some(Limit::Adaptive(_)), Some(config)) =
            (&self.servers[s].limit, &self.config.adaptive_limit)
        {
            let name = format!("nov2019.{}.adaptive-limit", self.spec.side.key());
            match new_adaptive_limit(&name, config, &self.clock) {
                Ok(limit) => self.servers[s].limit = Some(Limit::Adaptive(limit)),
                Err(error) => {
                    // Unreachable: the configuration was validated when the
                    // first limit was built from it.
                    tracing::warn!(%error, server = s, "adaptive limit not rebuilt");
                }
            }
        }
    }

    /// Restarts server `s` on the bad release or the one before. A revert
    /// leaves servers that never got the bad release alone.
    fn on_redeploy(&mut self, s: usize, bad: bool) {
        if !bad && !self.servers[s].target_bad && !self.servers[s].bad {
            return;
        }
        self.restart_process(s, bad);
    }

    fn restart_process(&mut self, s: usize, bad: bool) {
        self.servers[s].target_bad = bad;
        self.crash(s, false);
        let server = &mut self.servers[s];
        if let Some(restart) = &mut server.restart {
            // A new deployment is a new process lineage: its crash history
            // starts afresh.
            restart.reset();
        }
        let incarnation = server.incarnation;
        let boot = ms(self.p.world.boot_ms);
        self.q.push(
            self.now + boot,
            Ev::ServerUp {
                server: s,
                incarnation,
            },
        );
    }

    /// The report's fix: traffic diverted away from the proxies, new proxies
    /// (every request they held is gone), every server restarted without
    /// traffic, then traffic restored in a ramp.
    fn on_fix(&mut self) {
        let f = &self.p.operator_fix;
        self.generation = self.generation.wrapping_add(1);
        for s in 0..self.servers.len() {
            self.restart_process(s, false);
        }
        // Nothing passes before the ramp starts (a share of 0), then a
        // linearly growing share.
        self.admit = Admission::Ramp {
            from: f.fix_ramp_at_s * SECOND,
            over: (f.fix_ramp_s * SECOND).max(1),
        };
    }

    fn on_response(&mut self, attempt: Key, ok: bool, retry_after: Micros) {
        if ok {
            let Some(a) = self.attempts.remove(attempt) else {
                // The proxy timed out long ago: the server did wasted work.
                self.c.wasted += 1;
                return;
            };
            if let Some(permit) = a.breaker {
                permit.record_success();
            }
            if let Some(throttle) = &self.proxies[a.proxy].throttle {
                throttle.record_accepted();
            }
            if let Some(client) = self.clients.remove(a.client) {
                if client.generation == self.generation && self.now <= client.deadline {
                    self.tl.succeeded(client.bucket);
                }
                client.retry.on_success();
            }
        } else {
            self.on_attempt_failed(attempt, retry_after);
        }
    }

    /// The attempt failed: refused, reset by a crash, shed, or timed out at
    /// the proxy. Whatever comes second for the same attempt is ignored.
    fn on_attempt_failed(&mut self, attempt: Key, retry_after: Micros) {
        let Some(a) = self.attempts.remove(attempt) else {
            return;
        };
        if let Some(permit) = a.breaker {
            permit.record_failure();
        }
        if let Some(throttle) = &self.proxies[a.proxy].throttle {
            throttle.record_rejected_by_backend();
        }
        self.maybe_retry(a.client, retry_after);
    }

    /// The proxy decides whether and when to retry `client_key`: the
    /// library's `RetryRun` checks the attempts left, computes the delay
    /// (backoff, at least the capped Retry-After hint), stops if the retry
    /// would start past the deadline, and only then asks the budget.
    fn maybe_retry(&mut self, client_key: Key, retry_after: Micros) {
        let now = self.now;
        let with_deadline = self.config.deadline;
        let Some(client) = self.clients.get_mut(client_key) else {
            return;
        };
        let remaining = if with_deadline {
            Duration::from_micros(client.deadline.saturating_sub(now))
        } else {
            Duration::MAX
        };
        let class = ErrorClass::TransientAfter(Duration::from_micros(retry_after));
        match client.retry.on_failure(class, remaining) {
            RetryDecision::Retry { delay } => {
                let delay = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
                self.q
                    .push(now.saturating_add(delay), Ev::Retry(client_key));
            }
            RetryDecision::Stop(kind) => {
                match kind {
                    RetryErrorKind::BudgetExhausted => self.c.budget_denied += 1,
                    RetryErrorKind::DeadlineExceeded => self.c.deadline_stops += 1,
                    _ => {}
                }
                self.clients.remove(client_key);
            }
        }
    }

    fn finish(self) -> Nov2019Outcome {
        Nov2019Outcome::from_timeline(self.p, self.spec.horizon_s, self.tl, &self.c)
    }
}

fn new_adaptive_limit(
    name: &str,
    config: &resilience_core::limit::AdaptiveLimitConfig,
    clock: &ManualClock,
) -> Result<AdaptiveLimit, resilience_core::ConfigError> {
    build_named(
        name,
        || AdaptiveLimit::with_clock(config.clone(), clock.clone()),
        AdaptiveLimit::named,
    )
}

fn poll_once(fut: &mut AcquireFuture) -> Poll<Result<Permit, Overloaded>> {
    let mut cx = Context::from_waker(noop_waker_ref());
    fut.as_mut().poll(&mut cx)
}
