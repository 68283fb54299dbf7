//! Fetch test helpers: a controllable loopback HTTP/1.1 server (each request answered by a
//! scripted reply: a tarball, a status with `Retry-After`, a body cut off half-way, silence),
//! and a manual clock whose short sleeps (backoffs, `Retry-After` waits) complete at once while
//! long ones (package deadlines) wait for the test to advance it.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience_core::clock::{Clock, ManualClock, Sleep};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Sleeps up to this long complete at once (and move the clock); longer ones wait.
pub const HORIZON: Duration = Duration::from_secs(120);

/// A manual clock that auto-advances through short sleeps only.
#[derive(Debug, Clone, Default)]
pub struct HorizonClock {
    pub clock: ManualClock,
}

impl Clock for HorizonClock {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        if deadline <= self.clock.now() + HORIZON {
            self.clock.advance_to(deadline);
        }
        self.clock.sleep_until(deadline)
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with these bytes.
    Body(Vec<u8>),
    /// 200 announcing the whole body, sending `sent` bytes of it, then closing.
    CutOff(Vec<u8>, usize),
    /// This status, with `Retry-After: secs` when given.
    Status(u16, Option<u64>),
    /// Reads the request and never answers (until the server is dropped).
    Silence,
    /// `302 Found` to this location.
    Redirect(String),
    /// 200 announcing the whole body, sending `sent` bytes of it, then nothing more (the
    /// server's `stalled` is notified once they are written).
    Stall(Vec<u8>, usize),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    /// When it arrived, on the test's clock.
    pub at: Duration,
}

#[derive(Default)]
struct Script {
    /// Replies per path, in order; the last one repeats.
    replies: HashMap<String, VecDeque<Reply>>,
    seen: Vec<Seen>,
}

/// A loopback registry whose answers the test scripts.
pub struct TestServer {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
    pub requests: Arc<tokio::sync::Notify>,
    pub stalled: Arc<tokio::sync::Notify>,
}

impl TestServer {
    pub async fn start(clock: ManualClock) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let requests = Arc::new(tokio::sync::Notify::new());
        let stalled = Arc::new(tokio::sync::Notify::new());
        let task = {
            let script = Arc::clone(&script);
            let requests = Arc::clone(&requests);
            let stalled = Arc::clone(&stalled);
            tokio::spawn(async move {
                let mut connections = Vec::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        break;
                    };
                    let script = Arc::clone(&script);
                    let requests = Arc::clone(&requests);
                    let stalled = Arc::clone(&stalled);
                    let clock = clock.clone();
                    connections.push(tokio::spawn(async move {
                        serve(stream, script, requests, stalled, clock).await;
                    }));
                }
            })
        };
        Self {
            addr,
            script,
            task,
            requests,
            stalled,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Scripts the replies to `path` (the last one repeats).
    pub fn on(&self, path: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .unwrap()
            .replies
            .insert(path.to_owned(), replies.into());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    /// Stops accepting and drops every connection: later connections are refused.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    script: Arc<Mutex<Script>>,
    requests: Arc<tokio::sync::Notify>,
    stalled: Arc<tokio::sync::Notify>,
    clock: ManualClock,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_owned());
    let reply = {
        let mut script = script.lock().unwrap();
        script.seen.push(Seen {
            path: path.clone(),
            authorization,
            at: clock.elapsed(),
        });
        match script.replies.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.pop_front().unwrap(),
            Some(queue) => queue.front().cloned().unwrap_or(Reply::Status(404, None)),
            None => Reply::Status(404, None),
        }
    };
    requests.notify_one();
    match reply {
        Reply::Body(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        Reply::CutOff(body, sent) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body[..sent.min(body.len())]).await;
            let _ = stream.flush().await;
        }
        Reply::Status(status, retry_after) => {
            let extra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
        }
        Reply::Silence => {
            std::future::pending::<()>().await;
        }
        Reply::Redirect(location) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
        }
        Reply::Stall(body, sent) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body[..sent.min(body.len())]).await;
            let _ = stream.flush().await;
            stalled.notify_one();
            std::future::pending::<()>().await;
        }
    }
    let _ = stream.shutdown().await;
}

/// `/NAME/-/BASE-VERSION.tgz`
pub fn tarball_path(name: &str, version: &str) -> String {
    let base = name.rsplit('/').next().unwrap();
    format!("/{name}/-/{base}-{version}.tgz")
}
