//! `HttpFleet` against an in-test fake platform on 127.0.0.1:0 (a raw hyper
//! server implementing docs/http-contract.md in memory, with injected
//! faults).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fleet_drain::fleet::DrainFleet;
use fleet_drain::http::wire::{
    AppList, ErrorBody, HostList, MigrateRequest, SetStateRequest, WireApp, WireHost,
};
use fleet_drain::http::{HttpFleet, HttpFleetConfig};
use fleet_drain::{AppState, FleetError, HostState};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use resilience_core::clock::{ManualClock, SharedClock};
use tokio::net::TcpListener;

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Bytes,
}

/// What the fake answers.
enum Reply {
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Never answers (the client's timeout fires).
    Hang,
}

fn json(status: u16, value: &impl serde::Serialize) -> Reply {
    Reply::Answer {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: serde_json::to_string(value).unwrap(),
    }
}

fn raw(status: u16, body: &str) -> Reply {
    Reply::Answer {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    json(status, &ErrorBody::new(code, message))
}

/// The in-memory platform: the contract's semantics, migrate idempotent by
/// `request_id`.
#[derive(Debug, Default)]
struct Platform {
    hosts: Vec<WireHost>,
    apps: Vec<WireApp>,
    /// Starts actually made, per app.
    starts: HashMap<String, u32>,
    /// Finished migrations by request id: (app, to, answer).
    requests: HashMap<String, (String, String, WireApp)>,
}

impl Platform {
    fn new(hosts: &[(&str, u32)], apps: &[(&str, &str)]) -> Self {
        Platform {
            hosts: hosts
                .iter()
                .map(|&(name, capacity)| WireHost {
                    name: name.into(),
                    capacity,
                    state: HostState::Active,
                    version: "v1".into(),
                })
                .collect(),
            apps: apps
                .iter()
                .map(|&(name, host)| WireApp {
                    name: name.into(),
                    host: host.into(),
                    state: AppState::Running,
                })
                .collect(),
            ..Platform::default()
        }
    }

    fn handle(&mut self, req: &Seen) -> Reply {
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", ["v1", "hosts"]) => json(
                200,
                &HostList {
                    hosts: self.hosts.clone(),
                },
            ),
            ("GET", ["v1", "apps"]) => json(
                200,
                &AppList {
                    apps: self.apps.clone(),
                },
            ),
            ("GET", ["v1", "apps", name]) => match self.apps.iter().find(|a| a.name == *name) {
                Some(app) => json(200, app),
                None => error(404, "unknown_app", &format!("no app named {name}")),
            },
            ("PUT", ["v1", "hosts", name, "state"]) => {
                let Ok(body) = serde_json::from_slice::<SetStateRequest>(&req.body) else {
                    return error(400, "invalid_request", "bad body");
                };
                match self.hosts.iter_mut().find(|h| h.name == *name) {
                    Some(host) => {
                        host.state = body.state;
                        json(200, host)
                    }
                    None => error(404, "unknown_host", &format!("no host named {name}")),
                }
            }
            ("POST", ["v1", "apps", name, "migrate"]) => {
                let Some(answer) = self.migrate(name, &req.body) else {
                    return error(400, "invalid_request", "bad body");
                };
                answer
            }
            _ => error(404, "not_found", "no such endpoint"),
        }
    }

    /// Starts the app once per request id; `None` for a bad body.
    fn migrate(&mut self, name: &str, body: &[u8]) -> Option<Reply> {
        let body: MigrateRequest = serde_json::from_slice(body).ok()?;
        if let Some((app, to, answer)) = self.requests.get(&body.request_id) {
            if app != name || *to != body.to {
                return Some(error(409, "request_id_conflict", "reused"));
            }
            return Some(json(200, answer));
        }
        if !self.hosts.iter().any(|h| h.name == body.to) {
            return Some(error(404, "unknown_host", &format!("no host {}", body.to)));
        }
        let app = self.apps.iter_mut().find(|a| a.name == name)?;
        app.host.clone_from(&body.to);
        app.state = AppState::Running;
        let answer = app.clone();
        *self.starts.entry(name.to_owned()).or_default() += 1;
        self.requests.insert(
            body.request_id,
            (name.to_owned(), body.to.clone(), answer.clone()),
        );
        Some(json(200, &answer))
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A fake platform server; every request is recorded.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Fake {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = Arc::clone(&handler);
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        let log = Arc::clone(&log);
                        async move {
                            let method = request.method().to_string();
                            let path = request.uri().path().to_owned();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let seen = Seen { method, path, body };
                            log.lock().unwrap().push(seen.clone());
                            match handler(&seen) {
                                Reply::Answer {
                                    status,
                                    headers,
                                    body,
                                } => {
                                    let mut response = Response::builder().status(status);
                                    for (name, value) in headers {
                                        response = response.header(name, value);
                                    }
                                    Ok::<_, Infallible>(
                                        response.body(Full::new(Bytes::from(body))).unwrap(),
                                    )
                                }
                                Reply::Hang => futures::future::pending().await,
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Fake { url, seen }
    }

    /// A fake running `platform`.
    async fn platform(platform: Platform) -> (Fake, Arc<Mutex<Platform>>) {
        let platform = Arc::new(Mutex::new(platform));
        let state = Arc::clone(&platform);
        let fake = Fake::start(move |req| state.lock().unwrap().handle(req)).await;
        (fake, platform)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }
}

/// Fast backoff on a manual clock in auto-advance mode: waits take no real
/// time and the clock records how long they were.
fn adapter(url: &str) -> (HttpFleet, ManualClock) {
    let mut config = HttpFleetConfig::new(url);
    config.request_timeout = Duration::from_secs(30);
    config.migrate_timeout = Duration::from_secs(30);
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    let fleet = HttpFleet::with_clock(&config, SharedClock::new(clock.clone())).unwrap();
    (fleet, clock)
}

fn two_hosts() -> Platform {
    Platform::new(
        &[("old-1", 4), ("new-1", 4)],
        &[("app-a", "old-1"), ("app-b", "old-1")],
    )
}

#[tokio::test]
async fn happy_path_lists_cordons_migrates_and_reports_health() {
    let (fake, platform) = Fake::platform(two_hosts()).await;
    let (fleet, _clock) = adapter(&fake.url);

    let snapshot = fleet.snapshot().await.unwrap();
    assert_eq!(snapshot.hosts().len(), 2);
    assert_eq!(snapshot.total_apps(), 2);
    let old = fleet.host_id("old-1").unwrap();
    let new = fleet.host_id("new-1").unwrap();
    assert_ne!(old, new);
    assert_eq!(snapshot.apps_on(old).len(), 2);
    assert_eq!(snapshot.host(new).unwrap().capacity, 4);
    let app = fleet.app_id("app-b").unwrap();
    assert_eq!(fleet.app_name(app).as_deref(), Some("app-b"));

    fleet.cordon(old).await.unwrap();
    assert_eq!(platform.lock().unwrap().hosts[0].state, HostState::Cordoned);
    fleet.migrate(app, new).await.unwrap();
    assert_eq!(fleet.app_health(app).await.unwrap(), AppState::Running);
    let snapshot = fleet.snapshot().await.unwrap();
    assert_eq!(snapshot.apps_on(new).len(), 1);
    // Ids stay the same across listings.
    assert_eq!(fleet.host_id("old-1"), Some(old));
    assert_eq!(snapshot.apps_on(new)[0].id, app);

    let migrate = fake
        .seen()
        .into_iter()
        .find(|s| s.method == "POST")
        .unwrap();
    assert_eq!(migrate.path, "/v1/apps/app-b/migrate");
    let body: MigrateRequest = serde_json::from_slice(&migrate.body).unwrap();
    assert_eq!(body.to, "new-1");
    assert_eq!(body.timeout_ms, 30_000);
    assert!(fleet_drain::http::wire::is_valid_request_id(
        &body.request_id
    ));
    assert_eq!(fleet.retry_stats().retries, 0);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_honouring_retry_after() {
    let platform = Arc::new(Mutex::new(two_hosts()));
    let calls = Arc::new(Mutex::new(0_u32));
    let state = Arc::clone(&platform);
    let counter = Arc::clone(&calls);
    let fake = Fake::start(move |req| {
        if req.path == "/v1/hosts" {
            let mut n = counter.lock().unwrap();
            *n += 1;
            match *n {
                1 => return raw(502, "<html>bad gateway</html>"),
                2 => {
                    return Reply::Answer {
                        status: 429,
                        headers: vec![("retry-after", "7".into())],
                        body: serde_json::to_string(&ErrorBody::new("overloaded", "slow down"))
                            .unwrap(),
                    };
                }
                _ => {}
            }
        }
        state.lock().unwrap().handle(req)
    })
    .await;
    let (fleet, clock) = adapter(&fake.url);

    let hosts = fleet.hosts().await.unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(fake.count("GET", "/v1/hosts"), 3);
    assert_eq!(fleet.retry_stats().retries, 2);
    // The adapter waited at least the 7 s the platform asked for.
    assert!(
        clock.elapsed() >= Duration::from_secs(7),
        "{:?}",
        clock.elapsed()
    );
}

#[tokio::test]
async fn persistent_server_errors_give_up_as_unavailable_naming_the_endpoint() {
    let fake = Fake::start(|_| error(503, "maintenance", "down for maintenance")).await;
    let (fleet, _clock) = adapter(&fake.url);
    let err = fleet.apps().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let FleetError::Unavailable(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("GET"), "{message}");
    assert!(message.contains("/v1/apps"), "{message}");
    assert!(message.contains("maintenance"), "{message}");
    assert!(message.contains("4 attempts"), "{message}");
    assert_eq!(fake.count("GET", "/v1/apps"), 4);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_map_to_fleet_errors() {
    let platform = Arc::new(Mutex::new(two_hosts()));
    let state = Arc::clone(&platform);
    let fake = Fake::start(move |req| match req.path.as_str() {
        "/v1/hosts/new-1/state" => error(404, "unknown_host", "new-1 was removed"),
        "/v1/hosts/old-1/state" => error(409, "invalid_transition", "old-1 still runs 2 apps"),
        "/v1/apps/app-a/migrate" => error(422, "start_failed", "exit code 1: EADDRINUSE"),
        "/v1/apps/app-b/migrate" => error(409, "busy", "app-b is starting"),
        "/v1/apps/app-a" => error(400, "invalid_request", "bad name"),
        _ => state.lock().unwrap().handle(req),
    })
    .await;
    let (fleet, _clock) = adapter(&fake.url);
    fleet.snapshot().await.unwrap();
    let old = fleet.host_id("old-1").unwrap();
    let new = fleet.host_id("new-1").unwrap();
    let a = fleet.app_id("app-a").unwrap();
    let b = fleet.app_id("app-b").unwrap();

    assert_eq!(
        fleet.uncordon(new).await.unwrap_err(),
        FleetError::UnknownHost(new)
    );
    let err = fleet
        .set_host_state(old, HostState::Drained)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FleetError::InvalidTransition { host, from: HostState::Active, to: HostState::Drained, hint }
                if *host == old && hint.contains("still runs 2 apps")
        ),
        "{err:?}"
    );
    let err = fleet.migrate(a, new).await.unwrap_err();
    assert_eq!(
        err,
        FleetError::StartFailed {
            app: a,
            host: new,
            reason: "exit code 1: EADDRINUSE".into()
        }
    );
    assert_eq!(
        fleet.migrate(b, new).await.unwrap_err(),
        FleetError::Busy { app: b }
    );
    let err = fleet.app_health(a).await.unwrap_err();
    assert!(
        matches!(&err, FleetError::InvalidArgument(m) if m.contains("invalid_request") && m.contains("/v1/apps/app-a")),
        "{err:?}"
    );
    // Each refused call was sent exactly once.
    for (method, path) in [
        ("PUT", "/v1/hosts/new-1/state"),
        ("PUT", "/v1/hosts/old-1/state"),
        ("POST", "/v1/apps/app-a/migrate"),
        ("POST", "/v1/apps/app-b/migrate"),
        ("GET", "/v1/apps/app-a"),
    ] {
        assert_eq!(fake.count(method, path), 1, "{method} {path}");
    }
    assert_eq!(fleet.retry_stats().retries, 0);
}

/// Every garbage answer is a non-retryable `BadResponse` naming the call.
#[tokio::test]
async fn garbage_answers_are_bad_responses_naming_the_endpoint() {
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "not json",
            raw(200, "<html>hello</html>"),
            "not this call's JSON",
        ),
        (
            "missing field",
            raw(
                200,
                r#"{"hosts":[{"name":"h","state":"active","version":"v1"}]}"#,
            ),
            "missing field `capacity`",
        ),
        (
            "unknown state",
            raw(
                200,
                r#"{"hosts":[{"name":"h","capacity":1,"state":"melting","version":"v1"}]}"#,
            ),
            "melting",
        ),
        (
            "duplicate host",
            raw(
                200,
                r#"{"hosts":[{"name":"h","capacity":1,"state":"active","version":"v1"},{"name":"h","capacity":1,"state":"active","version":"v1"}]}"#,
            ),
            "listed twice",
        ),
        (
            "bad name",
            raw(
                200,
                r#"{"hosts":[{"name":"a/b","capacity":1,"state":"active","version":"v1"}]}"#,
            ),
            "not a valid name",
        ),
        (
            "4xx without error body",
            raw(404, "Not Found"),
            "without the contract's error body",
        ),
        ("redirect", raw(302, ""), "not used by the contract"),
    ];
    for (what, reply, needle) in cases {
        let reply = Mutex::new(Some(reply));
        let fake = Fake::start(move |_| reply.lock().unwrap().take().unwrap_or(Reply::Hang)).await;
        let (fleet, _clock) = adapter(&fake.url);
        let err = fleet.hosts().await.unwrap_err();
        assert!(!err.is_retryable(), "{what}: {err}");
        let FleetError::BadResponse { endpoint, reason } = &err else {
            panic!("{what}: {err:?}");
        };
        assert!(endpoint.contains("/v1/hosts"), "{what}: {endpoint}");
        assert!(reason.contains(needle), "{what}: {reason}");
        assert_eq!(fake.count("GET", "/v1/hosts"), 1, "{what}");
    }
}

#[tokio::test]
async fn apps_on_unlisted_hosts_are_bad_responses() {
    let platform = Arc::new(Mutex::new(two_hosts()));
    let state = Arc::clone(&platform);
    let fake = Fake::start(move |req| match req.path.as_str() {
        "/v1/apps" => raw(
            200,
            r#"{"apps":[{"name":"x","host":"ghost","state":"running"}]}"#,
        ),
        _ => state.lock().unwrap().handle(req),
    })
    .await;
    let (fleet, _clock) = adapter(&fake.url);
    let err = fleet.snapshot().await.unwrap_err();
    assert!(
        matches!(&err, FleetError::BadResponse { endpoint, reason }
            if endpoint.contains("GET /v1/apps") && reason.contains("`ghost`")),
        "{err:?}"
    );
}

#[tokio::test]
async fn migrate_answers_that_contradict_the_request_are_bad_responses() {
    let platform = Arc::new(Mutex::new(two_hosts()));
    let state = Arc::clone(&platform);
    let fake = Fake::start(move |req| match req.path.as_str() {
        "/v1/apps/app-a/migrate" => {
            raw(200, r#"{"name":"app-a","host":"old-1","state":"running"}"#)
        }
        "/v1/apps/app-b/migrate" => raw(200, r#"{"name":"app-b","host":"new-1","state":"failed"}"#),
        _ => state.lock().unwrap().handle(req),
    })
    .await;
    let (fleet, _clock) = adapter(&fake.url);
    fleet.snapshot().await.unwrap();
    let new = fleet.host_id("new-1").unwrap();
    for (app, needle) in [("app-a", "on host `old-1`"), ("app-b", "state failed")] {
        let id = fleet.app_id(app).unwrap();
        let err = fleet.migrate(id, new).await.unwrap_err();
        assert!(
            matches!(&err, FleetError::BadResponse { endpoint, reason }
                if endpoint.contains(&format!("/v1/apps/{app}/migrate")) && reason.contains(needle)),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn refused_connections_are_retried_then_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (fleet, _clock) = adapter(&url);
    let err = fleet.hosts().await.unwrap_err();
    let FleetError::Unavailable(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("connection to 127.0.0.1:"), "{message}");
    assert!(message.contains("4 attempts"), "{message}");
    assert_eq!(fleet.retry_stats().attempts, 4);
}

/// A migrate whose answer is lost (a timeout, then a 503) is retried with
/// the same `request_id`: the platform starts the app once.
#[tokio::test]
async fn a_retried_migrate_starts_the_app_once() {
    let platform = Arc::new(Mutex::new(two_hosts()));
    let state = Arc::clone(&platform);
    let attempts = Arc::new(Mutex::new(0_u32));
    let counter = Arc::clone(&attempts);
    let fake = Fake::start(move |req| {
        let reply = state.lock().unwrap().handle(req);
        if req.method == "POST" {
            let mut n = counter.lock().unwrap();
            *n += 1;
            // The platform did the work, but the first answer never comes
            // and the second is a proxy's 503.
            match *n {
                1 => return Reply::Hang,
                2 => return raw(503, "upstream reset"),
                _ => {}
            }
        }
        reply
    })
    .await;
    let mut config = HttpFleetConfig::new(&fake.url);
    // The one real timeout of this file: the hung first attempt.
    config.migrate_timeout = Duration::from_millis(300);
    let clock = ManualClock::new();
    clock.set_auto_advance(true);
    let fleet = HttpFleet::with_clock(&config, SharedClock::new(clock)).unwrap();
    fleet.snapshot().await.unwrap();
    let app = fleet.app_id("app-a").unwrap();
    let new = fleet.host_id("new-1").unwrap();

    fleet.migrate(app, new).await.unwrap();

    let posts: Vec<MigrateRequest> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 3);
    assert!(posts.iter().all(|p| p.request_id == posts[0].request_id));
    assert_eq!(platform.lock().unwrap().starts["app-a"], 1);
    assert_eq!(fleet.retry_stats().retries, 2);

    // A new logical migration is a new request id: the app is started again.
    fleet.migrate(app, new).await.unwrap();
    let last: MigrateRequest = serde_json::from_slice(
        &fake
            .seen()
            .into_iter()
            .rfind(|s| s.method == "POST")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_ne!(last.request_id, posts[0].request_id);
    assert_eq!(platform.lock().unwrap().starts["app-a"], 2);
}

#[test]
fn config_reads_human_durations_and_refuses_invalid_values() {
    let config: HttpFleetConfig = toml::from_str(
        r#"
        url = "http://127.0.0.1:7070"
        request_timeout = "2s"
        migrate_timeout = "3m"
        [retry]
        max_attempts = 6
        backoff = { base = "50ms", max = "2s" }
        [retry_budget]
        retry_ratio = 0.5
        "#,
    )
    .unwrap();
    assert_eq!(config.migrate_timeout, Duration::from_secs(180));
    assert_eq!(config.retry.max_attempts, 6);
    config.validate().unwrap();

    let unknown = toml::from_str::<HttpFleetConfig>("url = \"http://x\"\ntimeout = \"1s\"");
    assert!(unknown.unwrap_err().to_string().contains("timeout"));

    for (text, field) in [
        ("url = \"https://fleet\"", "url"),
        (
            "url = \"http://x\"\nrequest_timeout = \"0s\"",
            "request_timeout",
        ),
        (
            "url = \"http://x\"\n[retry]\nper_attempt_timeout = \"1s\"",
            "retry.per_attempt_timeout",
        ),
        (
            "url = \"http://x\"\n[retry_budget]\nretry_ratio = -1.0",
            "retry_budget.retry_ratio",
        ),
    ] {
        let config: HttpFleetConfig = toml::from_str(text).unwrap();
        let err = HttpFleet::from_config(&config).unwrap_err();
        assert_eq!(err.field(), field, "{text}");
    }
}

/// The adapter maps names through the `NameMap` it is given (the one a
/// restarted controller restores from its journal), and shares it.
#[tokio::test]
async fn ids_come_from_the_name_map_given() {
    let (fake, _platform) = Fake::platform(two_hosts()).await;
    let names = fleet_drain::names::NameMap::new();
    let preset = names.host_id("new-1").unwrap();
    let app = names.app_id("app-b").unwrap();
    let (fleet, _clock) = adapter(&fake.url);
    let fleet = fleet.with_names(names.clone());
    let snapshot = fleet.snapshot().await.unwrap();
    assert_eq!(fleet.host_id("new-1"), Some(preset));
    assert_eq!(snapshot.apps_on(fleet.host_id("old-1").unwrap()).len(), 2);
    assert!(snapshot.apps().any(|a| a.id == app));
    // Names first seen by the adapter land in the shared map, to journal.
    assert!(names.find_host("old-1").is_some());
    assert!(fleet.names().find_app("app-a").is_some());
    assert!(names.has_pending());
}

/// A migrate that fails for want of an answer (every attempt lost) leaves
/// its outcome unknown: the controller's next migrate of the same app to
/// the same host reuses the request id, and the platform, which did the
/// work the first time, answers without starting the app again.
#[tokio::test]
async fn a_migrate_repeated_after_unknown_outcome_reuses_its_request_id() {
    let platform = Arc::new(Mutex::new(two_hosts()));
    let state = Arc::clone(&platform);
    let posts = Arc::new(Mutex::new(0_u32));
    let counter = Arc::clone(&posts);
    let fake = Fake::start(move |req| {
        let reply = state.lock().unwrap().handle(req);
        if req.method == "POST" {
            let mut n = counter.lock().unwrap();
            *n += 1;
            // Every attempt of the first migrate is lost behind a proxy.
            if *n <= 4 {
                return raw(502, "bad gateway");
            }
        }
        reply
    })
    .await;
    let (fleet, _clock) = adapter(&fake.url);
    fleet.snapshot().await.unwrap();
    let app = fleet.app_id("app-a").unwrap();
    let new = fleet.host_id("new-1").unwrap();
    let old = fleet.host_id("old-1").unwrap();

    let err = fleet.migrate(app, new).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    fleet.migrate(app, new).await.unwrap();
    let ids: Vec<String> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| {
            serde_json::from_slice::<MigrateRequest>(&s.body)
                .unwrap()
                .request_id
        })
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(platform.lock().unwrap().starts["app-a"], 1);

    // Settled: the next migrate (back to old-1) is a new operation.
    fleet.migrate(app, old).await.unwrap();
    let last = fake
        .seen()
        .into_iter()
        .rfind(|s| s.method == "POST")
        .unwrap();
    let last: MigrateRequest = serde_json::from_slice(&last.body).unwrap();
    assert_ne!(last.request_id, ids[0]);
    assert_eq!(platform.lock().unwrap().starts["app-a"], 2);
}
