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
//! `ManualClock` that follows simulated time: `RetryBudget`, `Backoff`,
//! `Deadline`-style budgets of the client's deadline, `CircuitBreaker`,
//! `AdaptiveThrottle`, `ConcurrencyLimit` (load shedding), `RestartBackoff`
//! and `SlowStart`.

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
use futures::task::noop_waker_ref;
use resilience_core::backoff::{BackoffConfig, Jitter};
use resilience_core::breaker::{BreakerConfig, BreakerPermit, CircuitBreaker, WindowConfig};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::{Clock, ManualClock};
use resilience_core::limit::{
    ConcurrencyLimit, ConcurrencyLimitConfig, ConcurrencyPermit, Overloaded,
};
use resilience_core::restart::{RestartBackoff, RestartBackoffConfig, SlowStart, SlowStartConfig};
use resilience_core::retry::{
    ErrorClass, RetryConfig, RetryDecision, RetryErrorKind, RetryPolicy, RetryRun,
};
use resilience_core::throttle::{AdaptiveThrottle, AdaptiveThrottleConfig};

use super::params::Nov2019Params;
use super::policy::Mechanisms;
use super::report::{Nov2019Outcome, Timeline};
use crate::replay::error::ReplayError;
use crate::replay::events::{EventQueue, Micros, SECOND, ms};

type AcquireFuture = Pin<Box<dyn Future<Output = Result<ConcurrencyPermit, Overloaded>> + Send>>;

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
    /// Once a second: sample the timeline.
    Tick,
}

struct Client {
    bucket: usize,
    deadline: Micros,
    proxy: usize,
    attempts: u32,
    answered: bool,
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
    _permit: Option<ConcurrencyPermit>,
}

struct Server {
    up: bool,
    /// When the current process finished booting (`None`: warm since before the run).
    booted_at: Option<Micros>,
    bad: bool,
    /// The version the next boot runs.
    target_bad: bool,
    incarnation: u32,
    in_service: Vec<InService>,
    /// Naive servers: everything accepted beyond the workers.
    queue: VecDeque<Key>,
    /// Shedding servers: attempts waiting in the `ConcurrencyLimit`'s queue.
    waiting: VecDeque<(Key, AcquireFuture)>,
    limit: Option<ConcurrencyLimit>,
    restart: Option<RestartBackoff>,
    slow_start: Option<SlowStart>,
}

impl Server {
    fn held(&self) -> usize {
        self.in_service.len() + self.queue.len() + self.waiting.len()
    }
}

/// Counters beyond the timeline.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    crashes: u64,
    shed: u64,
    budget_denied: u64,
    throttled: u64,
    breaker_rejected: u64,
    deadline_stops: u64,
    wasted: u64,
}

struct Sim<'p> {
    p: &'p Nov2019Params,
    m: Mechanisms,
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
    tl: Timeline,
    c: Counters,
}

/// Runs one policy on the model and returns its outcome.
pub fn run(p: &Nov2019Params, m: Mechanisms, seed: u64) -> Result<Nov2019Outcome, ReplayError> {
    p.validate()?;
    let mut sim = Sim::new(p, m, seed)?;
    sim.run();
    Ok(sim.finish())
}

impl<'p> Sim<'p> {
    #[allow(clippy::too_many_lines)] // builds every proxy's and server's library types
    fn new(p: &'p Nov2019Params, m: Mechanisms, seed: u64) -> Result<Self, ReplayError> {
        let clock = ManualClock::new();
        let epoch = clock.now();
        let mut rng = fastrand::Rng::with_seed(seed);
        let retry_config = retry_config(p, m);
        retry_config.validate()?;
        let mut proxies = Vec::with_capacity(p.proxies);
        for _ in 0..p.proxies {
            let mut retry = RetryPolicy::new(retry_config.clone())?
                .with_clock(clock.clone())
                .with_seed(rng.u64(..));
            if m.retry_budget {
                retry = retry.with_budget(Arc::new(RetryBudget::with_clock(
                    RetryBudgetConfig {
                        ttl: Duration::from_secs(10),
                        min_retries_per_sec: p.budget_min_retries_per_sec,
                        retry_ratio: p.budget_ratio,
                    },
                    clock.clone(),
                )?));
            }
            let throttle = if m.throttle {
                Some(AdaptiveThrottle::with_seed(
                    AdaptiveThrottleConfig {
                        window: Duration::from_secs(p.throttle_window_s),
                        buckets: u32::try_from(p.throttle_window_s.clamp(1, 600)).unwrap_or(600),
                        k: p.throttle_k,
                    },
                    clock.clone(),
                    rng.u64(..),
                )?)
            } else {
                None
            };
            let mut breakers = Vec::new();
            if m.breaker {
                for _ in 0..p.servers {
                    breakers.push(CircuitBreaker::with_clock_and_seed(
                        BreakerConfig {
                            failure_rate_threshold: p.breaker_failure_rate,
                            window: WindowConfig::Count { calls: 20 },
                            minimum_calls: 10,
                            open_wait: BackoffConfig {
                                base: Duration::from_millis(p.breaker_open_ms),
                                max: Duration::from_millis(p.breaker_open_ms.saturating_mul(8)),
                                factor: 2.0,
                                jitter: Jitter::Equal,
                                max_attempts: None,
                            },
                            half_open_probes: 2,
                            ..BreakerConfig::default()
                        },
                        clock.clone(),
                        rng.u64(..),
                    )?);
                }
            }
            proxies.push(Proxy {
                retry,
                throttle,
                breakers,
            });
        }
        let mut servers = Vec::with_capacity(p.servers);
        for _ in 0..p.servers {
            let limit = if m.load_shedding {
                Some(ConcurrencyLimit::with_clock(
                    ConcurrencyLimitConfig {
                        max_concurrent: p.workers_per_server,
                        max_queued: p.shed_queue,
                        ..ConcurrencyLimitConfig::default()
                    },
                    clock.clone(),
                )?)
            } else {
                None
            };
            let restart = if m.restart_backoff {
                let mut rb = RestartBackoff::with_seed(
                    RestartBackoffConfig {
                        jitter: Jitter::Equal,
                        ..RestartBackoffConfig::default()
                    },
                    clock.clone(),
                    rng.u64(..),
                )?;
                rb.on_started();
                Some(rb)
            } else {
                None
            };
            let slow_start = if m.slow_start {
                Some(SlowStart::with_clock(
                    SlowStartConfig {
                        duration: Duration::from_secs(p.slow_start_s.max(1)),
                        ..SlowStartConfig::default()
                    },
                    clock.clone(),
                )?)
            } else {
                None
            };
            servers.push(Server {
                up: true,
                booted_at: None,
                bad: false,
                target_bad: false,
                incarnation: 0,
                in_service: Vec::new(),
                queue: VecDeque::new(),
                waiting: VecDeque::new(),
                limit,
                restart,
                slow_start,
            });
        }
        // Servers that have been up for long are warm.
        if let Some(first) = servers.first()
            && first.slow_start.is_some()
        {
            clock.advance(Duration::from_secs(p.slow_start_s.saturating_add(1)));
        }
        let start_offset = clock.now() - epoch;
        let horizon = p.horizon_s * SECOND;
        let buckets = usize::try_from(p.horizon_s).unwrap_or(usize::MAX);
        let mut sim = Sim {
            p,
            m,
            rng,
            clock,
            epoch: epoch + start_offset,
            now: 0,
            horizon,
            q: EventQueue::default(),
            clients: Slab::default(),
            attempts: Slab::default(),
            proxies,
            servers,
            next_slot: 0,
            tl: Timeline::new(buckets),
            c: Counters::default(),
        };
        sim.q.push(0, Ev::Arrive);
        sim.q.push(0, Ev::Tick);
        let spread = p.rollout_spread_s * SECOND;
        let n = p.servers as u64;
        for server in 0..p.servers {
            let offset = spread * server as u64 / n.max(1);
            sim.q.push(
                p.deploy_at_s * SECOND + offset,
                Ev::Redeploy { server, bad: true },
            );
            sim.q.push(
                p.revert_at_s * SECOND + offset,
                Ev::Redeploy { server, bad: false },
            );
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
        (self.p.network_ms * 1_000.0) as Micros
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
            Ev::Tick => {
                let b = Self::bucket(self.now);
                let up = self.servers.iter().filter(|s| s.up).count();
                self.tl.sample_servers_up(b, up);
                self.q.push(self.now + SECOND, Ev::Tick);
            }
        }
    }

    fn on_arrive(&mut self) {
        let gap = -(1.0 - self.rng.f64()).ln() / self.p.client_rps;
        self.q
            .push(self.now + (gap * 1e6).max(1.0) as Micros, Ev::Arrive);
        let bucket = Self::bucket(self.now);
        self.tl.offered(bucket);
        let proxy = self.rng.usize(..self.p.proxies);
        // A full slab (2^32 live clients) cannot happen before memory runs
        // out; the arrival would simply be lost.
        let Ok(client) = self.clients.insert(Client {
            bucket,
            deadline: self.now + ms(self.p.client_timeout_ms),
            proxy,
            attempts: 0,
            answered: false,
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
        client.attempts += 1;
        // The first attempt deposits into the budget (every request does,
        // failed or not).
        client.retry.begin_attempt();
        let proxy = client.proxy;
        let deadline = client.deadline;
        if self.m.deadline && self.now >= deadline {
            self.c.deadline_stops += 1;
            self.finish_client(client_key);
            return;
        }
        if let Some(throttle) = &self.proxies[proxy].throttle
            && throttle.should_reject()
        {
            // Rejected locally: fail fast, and do not retry what the
            // throttle just refused.
            self.c.throttled += 1;
            self.finish_client(client_key);
            return;
        }
        let start = self.rng.usize(..self.p.servers);
        let mut chosen = None;
        if self.m.breaker {
            for k in 0..self.p.servers {
                let server = (start + k) % self.p.servers;
                if let Ok(permit) = self.proxies[proxy].breakers[server].try_acquire() {
                    chosen = Some((server, Some(permit)));
                    break;
                }
            }
        } else {
            chosen = Some((start, None));
        }
        let Some((server, breaker)) = chosen else {
            // Every breaker of this proxy is open: fail fast.
            self.c.breaker_rejected += 1;
            self.finish_client(client_key);
            return;
        };
        let Ok(attempt) = self.attempts.insert(Attempt {
            client: client_key,
            proxy,
            breaker,
        }) else {
            // 2^32 attempts in flight: unreachable in practice; give up.
            self.finish_client(client_key);
            return;
        };
        let bucket = Self::bucket(self.now);
        self.tl.server_attempt(bucket);
        let mut timeout = ms(self.p.attempt_timeout_ms);
        if self.m.deadline {
            timeout = timeout.min(deadline.saturating_sub(self.now));
        }
        let net = self.network();
        self.q
            .push(self.now + net, Ev::AtServer { attempt, server });
        self.q
            .push(self.now + timeout.max(1), Ev::AttemptTimeout(attempt));
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

    /// Server `s` receives `attempt` (even if its proxy already gave up on
    /// it: the request was on the wire and costs the server the same work).
    fn accept(&mut self, s: usize, attempt: Key) {
        let server = &mut self.servers[s];
        if !server.up {
            return self.respond(attempt, false, 0);
        }
        if let Some(slow) = &server.slow_start
            && !slow.should_admit(&mut self.rng)
        {
            self.c.shed += 1;
            let retry_after = ms(1_000);
            return self.respond(attempt, false, retry_after);
        }
        if let Some(limit) = server.limit.clone() {
            let mut fut: AcquireFuture = Box::pin(async move { limit.acquire().await });
            match poll_once(&mut fut) {
                Poll::Ready(Ok(permit)) => self.start_service(s, attempt, Some(permit)),
                Poll::Ready(Err(overloaded)) => {
                    self.c.shed += 1;
                    let hint =
                        u64::try_from(overloaded.retry_after.as_micros()).unwrap_or(u64::MAX);
                    self.respond(attempt, false, hint);
                }
                Poll::Pending => self.servers[s].waiting.push_back((attempt, fut)),
            }
        } else if server.in_service.len() < self.p.workers_per_server {
            self.start_service(s, attempt, None);
        } else {
            server.queue.push_back(attempt);
        }
        self.check_memory(s);
    }

    fn memory_per_request(&self, s: usize) -> f64 {
        if self.servers[s].bad {
            self.p.bad_memory_factor
        } else {
            1.0
        }
    }

    fn check_memory(&mut self, s: usize) {
        let held = self.servers[s].held() as f64;
        if held * self.memory_per_request(s) > self.p.memory_limit {
            self.crash(s, true);
        }
    }

    /// Service-time multiplier of a server still warming up after boot.
    fn cold_factor(&self, s: usize) -> f64 {
        let Some(booted) = self.servers[s].booted_at else {
            return 1.0;
        };
        let warmup = (self.p.warmup_s * SECOND) as f64;
        if warmup <= 0.0 {
            return 1.0;
        }
        let progress = ((self.now.saturating_sub(booted)) as f64 / warmup).min(1.0);
        1.0 + (self.p.cold_service_factor - 1.0) * (1.0 - progress)
    }

    fn start_service(&mut self, s: usize, attempt: Key, permit: Option<ConcurrencyPermit>) {
        let release = if self.servers[s].bad {
            self.p.bad_service_factor
        } else {
            1.0
        };
        let mean = self.p.service_ms * release * self.cold_factor(s);
        let service = -(1.0 - self.rng.f64()).ln() * mean * 1_000.0;
        self.next_slot += 1;
        let slot = self.next_slot;
        let server = &mut self.servers[s];
        server.in_service.push(InService {
            slot,
            attempt,
            _permit: permit,
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
        let attempt = done.attempt;
        // Releasing the permit hands capacity to the next waiter.
        drop(done);
        self.respond(attempt, true, 0);
        self.pull_next(s);
    }

    fn pull_next(&mut self, s: usize) {
        if self.servers[s].limit.is_some() {
            while let Some((attempt, mut fut)) = self.servers[s].waiting.pop_front() {
                match poll_once(&mut fut) {
                    Poll::Ready(Ok(permit)) => self.start_service(s, attempt, Some(permit)),
                    Poll::Ready(Err(overloaded)) => {
                        self.c.shed += 1;
                        let hint =
                            u64::try_from(overloaded.retry_after.as_micros()).unwrap_or(u64::MAX);
                        self.respond(attempt, false, hint);
                    }
                    Poll::Pending => {
                        self.servers[s].waiting.push_front((attempt, fut));
                        break;
                    }
                }
            }
        } else {
            while self.servers[s].in_service.len() < self.p.workers_per_server {
                let Some(attempt) = self.servers[s].queue.pop_front() else {
                    break;
                };
                self.start_service(s, attempt, None);
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
        let mut failed: Vec<Key> = server.in_service.drain(..).map(|e| e.attempt).collect();
        failed.extend(server.queue.drain(..));
        failed.extend(server.waiting.drain(..).map(|(a, _)| a));
        for attempt in failed {
            self.respond(attempt, false, 0);
        }
        if out_of_memory && was_up {
            self.c.crashes += 1;
            let b = Self::bucket(self.now);
            self.tl.crash(b);
            let mut delay = ms(self.p.boot_ms);
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
        server.booted_at = Some(self.now);
        server.bad = server.target_bad;
        if let Some(restart) = &mut server.restart {
            restart.on_started();
        }
        if let Some(slow) = &mut server.slow_start {
            slow.restart();
        }
    }

    fn on_redeploy(&mut self, s: usize, bad: bool) {
        self.servers[s].target_bad = bad;
        self.crash(s, false);
        let server = &mut self.servers[s];
        if let Some(restart) = &mut server.restart {
            // A new deployment is a new process lineage: its crash history
            // starts afresh.
            restart.reset();
        }
        let incarnation = server.incarnation;
        let boot = ms(self.p.boot_ms);
        self.q.push(
            self.now + boot,
            Ev::ServerUp {
                server: s,
                incarnation,
            },
        );
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
            if let Some(client) = self.clients.get_mut(a.client)
                && !client.answered
                && self.now <= client.deadline
            {
                client.answered = true;
                let bucket = client.bucket;
                self.tl.succeeded(bucket);
            }
            self.finish_client(a.client);
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
        let Some(client) = self.clients.get_mut(client_key) else {
            return;
        };
        if client.answered {
            return self.finish_client(client_key);
        }
        let remaining = if self.m.deadline {
            Duration::from_micros(client.deadline.saturating_sub(self.now))
        } else {
            Duration::MAX
        };
        let class = ErrorClass::TransientAfter(Duration::from_micros(retry_after));
        match client.retry.on_failure(class, remaining) {
            RetryDecision::Retry { delay } => {
                let delay = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
                self.q
                    .push(self.now.saturating_add(delay), Ev::Retry(client_key));
            }
            RetryDecision::Stop(kind) => {
                match kind {
                    RetryErrorKind::BudgetExhausted => self.c.budget_denied += 1,
                    RetryErrorKind::DeadlineExceeded => self.c.deadline_stops += 1,
                    _ => {}
                }
                self.finish_client(client_key);
            }
        }
    }

    fn finish_client(&mut self, client: Key) {
        self.clients.remove(client);
    }

    fn finish(self) -> Nov2019Outcome {
        Nov2019Outcome::from_timeline(
            self.p,
            self.tl,
            self.c.crashes,
            self.c.shed,
            self.c.budget_denied,
            self.c.throttled + self.c.breaker_rejected,
            self.c.wasted,
        )
    }
}

/// The proxies' retry policy. Without the `backoff` mechanism a retry goes
/// out at once (1 µs later) and the server's Retry-After hint is ignored, as
/// a naive proxy does.
fn retry_config(p: &Nov2019Params, m: Mechanisms) -> RetryConfig {
    let (backoff, max_retry_after) = if m.backoff {
        (
            BackoffConfig {
                base: Duration::from_millis(p.backoff_base_ms),
                max: Duration::from_millis(p.backoff_max_ms),
                factor: 2.0,
                jitter: Jitter::Full,
                max_attempts: None,
            },
            Duration::from_millis(p.max_retry_after_ms),
        )
    } else {
        (
            BackoffConfig {
                base: Duration::from_micros(1),
                max: Duration::from_micros(1),
                factor: 1.0,
                jitter: Jitter::None,
                max_attempts: None,
            },
            Duration::ZERO,
        )
    };
    RetryConfig {
        max_attempts: p.max_attempts,
        backoff,
        max_retry_after,
        per_attempt_timeout: None,
        overall_timeout: None,
    }
}

fn poll_once(fut: &mut AcquireFuture) -> Poll<Result<ConcurrencyPermit, Overloaded>> {
    let mut cx = Context::from_waker(noop_waker_ref());
    fut.as_mut().poll(&mut cx)
}
