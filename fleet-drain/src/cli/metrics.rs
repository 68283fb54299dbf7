//! `[metrics] listen = "127.0.0.1:9184"`: the controller's metrics
//! (`docs/metrics.md`, through the `metrics` facade) in the Prometheus text
//! format, served to any HTTP GET on that address for as long as `run`
//! runs.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::CliError;

/// The exporter's task; stops when dropped.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    pub(crate) address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs the Prometheus recorder (before the controller registers its
/// series) and serves it on `listen`.
pub(crate) async fn serve(listen: SocketAddr) -> Result<MetricsEndpoint, CliError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Io(format!("[metrics] listen = \"{listen}\": {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Io(format!("[metrics] listen = \"{listen}\": {e}")))?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| CliError::Io(format!("installing the metrics recorder: {e}")))?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Err(error) = answer(stream, &handle).await {
                            tracing::debug!(%error, "metrics request failed");
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "metrics accept failed"),
            }
        }
    });
    Ok(MetricsEndpoint { address, task })
}

/// Reads the request head (whatever it asks for) and answers with the
/// metrics.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    handle.run_upkeep();
    let body = handle.render();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
