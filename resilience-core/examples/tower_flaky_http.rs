//! A tower client stack with retries, a circuit breaker and load shedding in
//! front of a flaky HTTP server on the loopback interface.
//!
//! The server fails a share of requests with `503 Service Unavailable` and a
//! `Retry-After` header, and has an "outage" in the middle where it fails
//! every request (like the API servers of November 2019). The client sends a
//! bounded number of requests, a few at a time, through
//!
//! ```text
//! RetryLayer (budget, backoff, Retry-After, overall timeout)
//!   -> BreakerLayer (5xx responses and errors count as failures)
//!     -> LimitLayer (at most 4 in flight, sheds the rest at once)
//!       -> hyper client
//! ```
//!
//! and prints what each layer did. Every mechanism is named `flaky-http` and
//! records its metrics (feature `metrics`) into a Prometheus recorder that
//! `main` installs as the global recorder before building them; the server
//! serves them as Prometheus text on `GET /metrics`. Run it with
//! `cargo run -p resilience-core --example tower_flaky_http --features tower,metrics`.
//!
//! The integration test `tests/tower_http.rs` runs [`run`] (and
//! [`run_observed`], with a thread-local recorder, then scrapes `/metrics`)
//! with a manual clock and a small request count.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use resilience_core::Named;
use resilience_core::backoff::BackoffConfig;
use resilience_core::breaker::{BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker, Outcome};
use resilience_core::budget::{RetryBudget, RetryBudgetConfig};
use resilience_core::clock::{Clock, SharedClock};
use resilience_core::limit::{ConcurrencyLimit, ConcurrencyLimitConfig, Overloaded};
use resilience_core::retry::{ErrorClass, RetryConfig, RetryPolicy};
use resilience_core::tower::{
    BoxError, BreakerClassifier, BreakerLayer, ErrorIsFailure, LimitLayer, RetryGaveUp, RetryLayer,
    classify_error, parse_retry_after,
};
use tokio::net::TcpListener;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Requests the client sends.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The client's concurrency limit (below `concurrency`: some are shed).
    pub max_concurrent: usize,
    /// Every n-th server hit fails with 503 outside the outage.
    pub fail_every: u64,
    /// From this server hit on, every request fails with 503 ...
    pub outage_start: u64,
    /// ... until this.
    pub outage_end: OutageEnd,
    /// Pause between the starts of two requests (zero: as fast as the
    /// concurrency allows).
    pub pace: Duration,
    /// How long the server takes per request (zero: answer at once).
    pub server_delay: Duration,
    /// Bound on each request's retry loop (`None`: attempts and budget only).
    pub request_timeout: Option<Duration>,
}

/// When the server's outage ends.
#[derive(Debug, Clone, Copy)]
pub enum OutageEnd {
    /// At this server hit.
    Hit(u64),
    /// This long (real time) after the first failing hit.
    After(Duration),
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            requests: 200,
            concurrency: 6,
            max_concurrent: 4,
            fail_every: 4,
            outage_start: 60,
            outage_end: OutageEnd::After(Duration::from_millis(800)),
            pace: Duration::from_millis(10),
            server_delay: Duration::from_millis(50),
            request_timeout: Some(Duration::from_secs(2)),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests sent by the client.
    pub requests: u64,
    /// Requests the server received (attempts that passed breaker and limit).
    pub server_hits: u64,
    /// Final 200 responses.
    pub ok: u64,
    /// Final 503 responses (retries ended on a retryable response).
    pub unavailable: u64,
    /// Final errors: shed by the limit.
    pub shed: u64,
    /// Final errors: rejected by the open breaker.
    pub rejected: u64,
    /// Final errors: the retry layer gave up on an error.
    pub gave_up: u64,
    /// Final errors of another kind.
    pub other_errors: u64,
    /// Attempts started by the retry layer (first attempts and retries).
    pub attempts: u64,
    /// Retries granted.
    pub retries: u64,
    /// Retries refused by the budget.
    pub budget_denials: u64,
    /// Retry loops stopped by their timeout.
    pub deadline_stops: u64,
    /// Attempts shed by the limit (seen by the retry classifier).
    pub attempts_shed: u64,
    /// Attempts rejected by the breaker (seen by the retry classifier).
    pub attempts_rejected: u64,
    /// Breaker transitions, in order.
    pub breaker_transitions: Vec<(BreakerState, BreakerState)>,
    /// The server's address (it serves `GET /metrics` until the runtime
    /// ends).
    pub server_addr: Option<SocketAddr>,
}

/// The name of every mechanism of the client stack (the `name` label of its
/// metrics).
pub const INSTANCE_NAME: &str = "flaky-http";

/// Where the metrics go: `recorder`, if given, is installed thread-locally
/// while the stack is built (the test's way; `main` installs a global one
/// instead), and `handle` renders what was recorded on `GET /metrics`.
#[derive(Default)]
pub struct Observe<'a> {
    /// A recorder for the stack's metric handles, when no global one is
    /// installed.
    pub recorder: Option<&'a dyn metrics::Recorder>,
    /// Renders the Prometheus text of `GET /metrics` (404 without).
    pub handle: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Observe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe")
            .field("recorder", &self.recorder.is_some())
            .field("handle", &self.handle.is_some())
            .finish()
    }
}

/// Starts the flaky server on `127.0.0.1:0`; returns its address and its hit
/// counter. The server task ends with the runtime.
pub async fn start_flaky_server(
    options: &RunOptions,
) -> Result<(SocketAddr, Arc<AtomicU64>), BoxError> {
    start_server(options, None).await
}

/// [`start_flaky_server`] that also serves `GET /metrics` (Prometheus text
/// rendered by `metrics`; not counted as a hit).
pub async fn start_server(
    options: &RunOptions,
    metrics: Option<PrometheusHandle>,
) -> Result<(SocketAddr, Arc<AtomicU64>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let options = options.clone();
    let outage_began = Arc::new(Mutex::new(None));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let options = options.clone();
            let outage_began = outage_began.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                    if request.uri().path() == "/metrics" {
                        let response = render_metrics(metrics.as_ref());
                        return futures::future::Either::Left(async move {
                            Ok::<_, Infallible>(response)
                        });
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let in_outage = n >= options.outage_start
                        && match options.outage_end {
                            OutageEnd::Hit(end) => n < end,
                            OutageEnd::After(length) => {
                                outage_began.lock().is_ok_and(|mut began| {
                                    began.get_or_insert_with(Instant::now).elapsed() < length
                                })
                            }
                        };
                    let options = options.clone();
                    futures::future::Either::Right(async move {
                        Ok::<_, Infallible>(respond(n, in_outage, &options).await)
                    })
                });
                // A connection error only ends this connection.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), handler)
                    .await;
            });
        }
    });
    Ok((addr, hits))
}

/// `GET /metrics`: the Prometheus text format, or 404 without a handle.
fn render_metrics(metrics: Option<&PrometheusHandle>) -> Response<Full<Bytes>> {
    let Some(handle) = metrics else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"no metrics\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let mut response = Response::new(Full::new(Bytes::from(handle.render())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

async fn respond(hit: u64, in_outage: bool, options: &RunOptions) -> Response<Full<Bytes>> {
    if !options.server_delay.is_zero() {
        tokio::time::sleep(options.server_delay).await;
    }
    let mut response = if in_outage || hit.is_multiple_of(options.fail_every) {
        let mut response = Response::new(Full::new(Bytes::from_static(b"overloaded\n")));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        response
    } else {
        Response::new(Full::new(Bytes::from_static(b"hello\n")))
    };
    response
        .headers_mut()
        .insert("x-hit", http::HeaderValue::from(hit));
    response
}

/// The client stack and the handles `run` reports from.
struct Stack {
    client: BoxCloneService<Request<Empty<Bytes>>, Response<Incoming>, BoxError>,
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    attempts_shed: Arc<AtomicU64>,
    attempts_rejected: Arc<AtomicU64>,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// `RetryLayer` -> `BreakerLayer` -> `LimitLayer` -> hyper client, every
/// mechanism on `clock`.
fn client_stack(clock: &SharedClock, options: &RunOptions) -> Result<Stack, BoxError> {
    // One budget, breaker and limit for the whole client.
    // Built from `Named` configs (as read from a config file with a `name`
    // key): every series is labelled name="flaky-http".
    let budget = Arc::new(RetryBudget::from_named(
        Named::new(
            INSTANCE_NAME,
            RetryBudgetConfig {
                ttl: Duration::from_secs(10),
                min_retries_per_sec: 1,
                retry_ratio: 0.2,
            },
        ),
        clock.clone(),
    )?);
    let policy = RetryPolicy::from_named(Named::new(
        INSTANCE_NAME,
        RetryConfig {
            max_attempts: 3,
            backoff: BackoffConfig {
                base: Duration::from_millis(20),
                max: Duration::from_millis(200),
                ..BackoffConfig::default()
            },
            max_retry_after: Duration::from_millis(200),
            overall_timeout: options.request_timeout,
            ..RetryConfig::default()
        },
    ))?
    .with_clock(clock.clone())
    .with_budget(budget)
    .with_seed(7);
    let breaker = CircuitBreaker::from_named(
        Named::new(
            INSTANCE_NAME,
            BreakerConfig {
                consecutive_failures: Some(5),
                open_wait: BackoffConfig {
                    base: Duration::from_millis(300),
                    ..BreakerConfig::default().open_wait
                },
                half_open_probes: 2,
                ..BreakerConfig::default()
            },
        ),
        clock.clone(),
    )?;
    let limit = ConcurrencyLimit::from_named(
        Named::new(
            INSTANCE_NAME,
            ConcurrencyLimitConfig {
                max_concurrent: options.max_concurrent,
                max_queued: 0,
                ..ConcurrencyLimitConfig::default()
            },
        ),
        clock.clone(),
    )?;

    // The retry classifier retries 503 after its Retry-After and counts the
    // refusals of the layers below it.
    let attempts_shed = Arc::new(AtomicU64::new(0));
    let attempts_rejected = Arc::new(AtomicU64::new(0));
    let (shed_counter, rejected_counter) = (attempts_shed.clone(), attempts_rejected.clone());
    let retry_classifier = move |outcome: Result<&Response<Incoming>, &BoxError>| match outcome {
        Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after)
            .map_or(ErrorClass::Transient, ErrorClass::TransientAfter),
        Ok(_) => ErrorClass::Permanent,
        Err(error) => {
            if error.is::<Overloaded>() {
                shed_counter.fetch_add(1, Ordering::Relaxed);
            } else if error.is::<BreakerOpen>() {
                rejected_counter.fetch_add(1, Ordering::Relaxed);
            }
            classify_error(error)
        }
    };
    // The breaker counts 5xx responses as failures, too.
    let breaker_classifier = |outcome: Result<&Response<Incoming>, &BoxError>| match outcome {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(error) => {
            BreakerClassifier::<Response<Incoming>, BoxError>::classify(&ErrorIsFailure, Err(error))
        }
    };

    let retry = RetryLayer::new(policy).classify(retry_classifier);
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let client = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(BreakerLayer::new(breaker.clone()).classify(breaker_classifier))
        .layer(LimitLayer::new(limit))
        .service(http);
    let policy = retry.policy().clone();
    Ok(Stack {
        client: BoxCloneService::new(client),
        policy,
        breaker,
        attempts_shed,
        attempts_rejected,
    })
}

/// Runs the client stack against a fresh flaky server. Every mechanism uses
/// `clock` (a `SystemClock` in `main`, a `ManualClock` in the test).
pub async fn run(clock: impl Clock, options: RunOptions) -> Result<Report, BoxError> {
    run_observed(clock, options, Observe::default()).await
}

/// [`run`] with the metrics of the stack going where `observe` says, served
/// on the server's `GET /metrics`.
pub async fn run_observed(
    clock: impl Clock,
    options: RunOptions,
    observe: Observe<'_>,
) -> Result<Report, BoxError> {
    let clock = clock.into_shared();
    let (addr, hits) = start_server(&options, observe.handle).await?;

    // The metric handles are registered as the stack is built: the recorder
    // must be in place by then.
    let stack = match observe.recorder {
        Some(recorder) => {
            metrics::with_local_recorder(recorder, || client_stack(&clock, &options))?
        }
        None => client_stack(&clock, &options)?,
    };
    let Stack {
        client,
        policy,
        breaker,
        attempts_shed,
        attempts_rejected,
    } = stack;
    let mut transitions = breaker.subscribe();

    let uri: http::Uri = format!("http://{addr}/").parse()?;
    let mut report = Report {
        requests: options.requests,
        server_addr: Some(addr),
        ..Report::default()
    };
    let pace = options.pace;
    let outcomes = futures::stream::iter(0..options.requests)
        .then(|_| async move {
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        })
        .map(|()| {
            let request = Request::get(uri.clone()).body(Empty::<Bytes>::new());
            let client = client.clone();
            async move {
                match request {
                    Ok(request) => client.oneshot(request).await,
                    Err(error) => Err(error.into()),
                }
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut outcomes = std::pin::pin!(outcomes);
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(response) => {
                let status = response.status();
                // Read the body so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status == StatusCode::OK {
                    report.ok += 1;
                } else {
                    report.unavailable += 1;
                }
            }
            Err(error) if error.is::<Overloaded>() => report.shed += 1,
            Err(error) if error.is::<BreakerOpen>() => report.rejected += 1,
            Err(error) if error.is::<RetryGaveUp>() => report.gave_up += 1,
            Err(_) => report.other_errors += 1,
        }
    }

    let stats = policy.stats();
    report.server_hits = hits.load(Ordering::SeqCst);
    report.attempts = stats.attempts;
    report.retries = stats.retries;
    report.budget_denials = stats.budget_denials;
    report.deadline_stops = stats.deadline_stops;
    report.attempts_shed = attempts_shed.load(Ordering::Relaxed);
    report.attempts_rejected = attempts_rejected.load(Ordering::Relaxed);
    while let Ok(change) = transitions.try_recv() {
        report.breaker_transitions.push((change.from, change.to));
    }
    Ok(report)
}

/// `GET http://{addr}/metrics`: the Prometheus text.
pub async fn scrape(addr: SocketAddr) -> Result<String, BoxError> {
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let response = http.get(format!("http://{addr}/metrics").parse()?).await?;
    if response.status() != StatusCode::OK {
        return Err(format!("GET /metrics answered {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // A binary may install the global recorder (a library never does); it
    // must be in place before the mechanisms are built.
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| "another global metrics recorder is already installed")?;

    let options = RunOptions::default();
    println!(
        "{} requests, {} at a time (limit {}), against a server failing every {}th request and all from hit {} on for a while ({:?})",
        options.requests,
        options.concurrency,
        options.max_concurrent,
        options.fail_every,
        options.outage_start,
        options.outage_end
    );
    let observe = Observe {
        recorder: None,
        handle: Some(handle),
    };
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        run_observed(resilience_core::clock::SystemClock, options, observe),
    )
    .await??;

    println!("server hits:        {}", report.server_hits);
    println!(
        "final outcomes:     {} ok, {} 503 after retries, {} shed, {} breaker-open, {} gave up, {} other",
        report.ok,
        report.unavailable,
        report.shed,
        report.rejected,
        report.gave_up,
        report.other_errors
    );
    println!(
        "retry layer:        {} attempts, {} retries, {} denied by the budget, {} stopped by the timeout",
        report.attempts, report.retries, report.budget_denials, report.deadline_stops
    );
    println!(
        "breaker layer:      {} attempts rejected while open",
        report.attempts_rejected
    );
    for (from, to) in &report.breaker_transitions {
        println!("                    {from} -> {to}");
    }
    println!("limit layer:        {} attempts shed", report.attempts_shed);
    if let Some(addr) = report.server_addr {
        println!("\nGET http://{addr}/metrics (retry and breaker series):");
        let text = scrape(addr).await?;
        for line in text.lines().filter(|line| {
            line.starts_with("breakwater_retry_") || line.starts_with("breakwater_breaker_")
        }) {
            println!("  {line}");
        }
    }
    Ok(())
}
