//! Helpers of the local-fleet tests: start the binary, talk raw HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Starts `local-fleet` and returns it with its base URL.
pub(crate) async fn local_fleet(dir: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-fleet"))
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next_line()
        .await
        .unwrap()
        .expect("local-fleet exited before listening");
    let url = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// A one-shot HTTP/1.0 request: (status, body).
pub(crate) async fn request(
    url: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let authority = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

pub(crate) async fn app_port(url: &str, app: &str) -> u16 {
    let (status, body) = request(url, "GET", &format!("/v1/apps/{app}"), "").await;
    assert_eq!(status, 200, "{body}");
    u16::try_from(body["port"].as_u64().unwrap()).unwrap()
}

/// Every app's loopback port, by name (apps without a process left out).
pub(crate) async fn ports(url: &str) -> Vec<(String, u16)> {
    let (status, apps) = request(url, "GET", "/v1/apps", "").await;
    assert_eq!(status, 200, "{apps}");
    apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            Some((
                a["name"].as_str()?.to_owned(),
                u16::try_from(a["port"].as_u64()?).ok()?,
            ))
        })
        .collect()
}

/// Status of `GET /` on a loopback port, `None` if nothing answers.
pub(crate) async fn hit(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// SIGTERM to a child we started.
pub(crate) fn terminate(child: &Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}
