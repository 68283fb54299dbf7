//! A minimal HTTP/1.0 health probe: `GET /healthz` on a loopback port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether `GET /healthz` on `127.0.0.1:port` answers 200 within `timeout`.
pub async fn healthz(port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, status(port, "/healthz")).await,
        Ok(Some(200))
    )
}

/// The status code of `GET path` on `127.0.0.1:port`, `None` on any failure.
pub async fn status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0_u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n)?);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace().nth(1)?.parse().ok()
}
