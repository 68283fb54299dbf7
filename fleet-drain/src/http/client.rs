//! The transport: one JSON call to the platform, with a per-call timeout and
//! retries through a resilience-core [`RetryPolicy`] and [`RetryBudget`].
//!
//! Calls are by the platform's names; mapping them to ids is `fleet.rs`'s job.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use resilience_core::ConfigError;
use resilience_core::budget::RetryBudget;
use resilience_core::clock::SharedClock;
use resilience_core::retry::RetryPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::{BaseUrl, HttpFleetConfig};
use super::errors::{CallError, give_up};
use super::wire::{
    AppList, ErrorBody, HostList, MigrateRequest, SetStateRequest, WireApp, WireHost,
};
use crate::ids::HostState;

/// Largest response body read (a platform answering a 1 GB page is broken).
const MAX_BODY: usize = 16 << 20;
/// How much of a bad body is quoted in an error.
const QUOTE: usize = 200;

/// A client of one platform.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: BaseUrl,
    policy: RetryPolicy,
    request_timeout: Duration,
    migrate_timeout: Duration,
}

/// One call: what to send, how long to wait.
struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Option<Bytes>,
    timeout: Duration,
}

impl Client {
    pub(crate) fn new(config: &HttpFleetConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = BaseUrl::parse(&config.url)?;
        let budget = Arc::new(RetryBudget::with_clock(
            config.retry_budget.clone(),
            clock.clone(),
        )?);
        let policy = RetryPolicy::new(config.retry.clone())?
            .with_clock(clock)
            .with_budget(budget);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            http,
            base,
            policy,
            request_timeout: config.request_timeout,
            migrate_timeout: config.migrate_timeout,
        })
    }

    /// The base URL, for messages.
    pub(crate) fn url(&self) -> String {
        format!("http://{}{}", self.base.authority, self.base.prefix)
    }

    /// The retry policy (its stats, for tests and metrics).
    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// `GET /v1/hosts`.
    pub(crate) async fn hosts(&self) -> Result<Vec<WireHost>, CallError> {
        let list: HostList = self.get("/v1/hosts").await?;
        Ok(list.hosts)
    }

    /// `GET /v1/apps`.
    pub(crate) async fn apps(&self) -> Result<Vec<WireApp>, CallError> {
        let list: AppList = self.get("/v1/apps").await?;
        Ok(list.apps)
    }

    /// `GET /v1/apps/{app}`.
    pub(crate) async fn app(&self, app: &str) -> Result<WireApp, CallError> {
        self.get(&format!("/v1/apps/{app}")).await
    }

    /// `PUT /v1/hosts/{host}/state`.
    pub(crate) async fn set_host_state(
        &self,
        host: &str,
        state: HostState,
    ) -> Result<WireHost, CallError> {
        let call = Call {
            method: Method::PUT,
            path: &format!("/v1/hosts/{host}/state"),
            body: Some(json(&SetStateRequest { state })),
            timeout: self.request_timeout,
        };
        self.call(call).await
    }

    /// `POST /v1/apps/{app}/migrate` with `request_id`, the same on every
    /// retry of this call.
    pub(crate) async fn migrate(
        &self,
        app: &str,
        to: &str,
        request_id: &str,
    ) -> Result<WireApp, CallError> {
        let request = MigrateRequest {
            to: to.to_owned(),
            request_id: request_id.to_owned(),
            timeout_ms: u64::try_from(self.migrate_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        tracing::debug!(app, to, request_id = %request.request_id, "migrate requested");
        let call = Call {
            method: Method::POST,
            path: &format!("/v1/apps/{app}/migrate"),
            body: Some(json(&request)),
            timeout: self.migrate_timeout,
        };
        self.call(call).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call(Call {
            method: Method::GET,
            path,
            body: None,
            timeout: self.request_timeout,
        })
        .await
    }

    /// One call, retried.
    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, CallError> {
        let endpoint = format!("{} {}{}", call.method, self.url(), call.path);
        let result = self
            .policy
            .run(|attempt| {
                tracing::trace!(endpoint = %endpoint, attempt, "platform call");
                self.attempt(&call, &endpoint)
            })
            .await;
        result.map_err(|error| {
            let error = give_up(error, &endpoint);
            tracing::warn!(endpoint = %endpoint, error = %error, "platform call failed");
            error
        })
    }

    /// One attempt of a call, bounded by its timeout. Network timeouts run
    /// on tokio's timer (like the connect timeout); backoff and
    /// `Retry-After` waits on the policy's clock.
    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        endpoint: &str,
    ) -> Result<T, CallError> {
        let (status, retry_after, body) =
            match tokio::time::timeout(call.timeout, self.exchange(call, endpoint)).await {
                Ok(result) => result?,
                Err(_elapsed) => {
                    return Err(CallError::Timeout {
                        endpoint: endpoint.to_owned(),
                        after: call.timeout,
                    });
                }
            };
        interpret(endpoint, status, retry_after, &body)
    }

    /// Sends the request and reads the whole response.
    async fn exchange(
        &self,
        call: &Call<'_>,
        endpoint: &str,
    ) -> Result<(StatusCode, Option<Duration>, Bytes), CallError> {
        let connection_error = |reason: String| CallError::Connection {
            endpoint: endpoint.to_owned(),
            authority: self.base.authority.clone(),
            reason,
        };
        let uri = format!(
            "http://{}{}{}",
            self.base.authority, self.base.prefix, call.path
        );
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(uri)
            .header(http::header::ACCEPT, "application/json");
        if call.body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(call.body.clone().unwrap_or_default()))
            .map_err(|e| CallError::BadResponse {
                endpoint: endpoint.to_owned(),
                reason: format!("the request could not be built ({e}): check the names"),
            })?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| connection_error(error_chain(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::BadResponse {
                        endpoint: endpoint.to_owned(),
                        reason: format!("the response body is larger than {MAX_BODY} bytes"),
                    }
                } else {
                    connection_error(format!("reading the response body: {e}"))
                }
            })?
            .to_bytes();
        Ok((status, retry_after, body))
    }
}

/// Turns a whole response into the call's result.
fn interpret<T: DeserializeOwned>(
    endpoint: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<T, CallError> {
    let bad = |reason: String| CallError::BadResponse {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| {
            bad(format!(
                "status {status} but the body is not this call's JSON of the contract ({e}); \
                 it starts with `{}` (see docs/http-contract.md)",
                quote(body)
            ))
        });
    }
    let error: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match error {
        Some(ErrorBody { error }) => (error.code, error.message),
        None => (format!("http_{}", status.as_u16()), quote(body)),
    };
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(CallError::Transient {
            endpoint: endpoint.to_owned(),
            status: status.as_u16(),
            code,
            message,
            retry_after,
        })
    } else if status.is_client_error() {
        if code.starts_with("http_") {
            return Err(bad(format!(
                "status {status} without the contract's error body \
                 {{\"error\": {{\"code\", \"message\"}}}}; body starts with `{message}`"
            )));
        }
        Err(CallError::Refused {
            endpoint: endpoint.to_owned(),
            status: status.as_u16(),
            code,
            message,
        })
    } else {
        Err(bad(format!(
            "status {status} is not used by the contract (2xx, 4xx with an error body, 429, 5xx)"
        )))
    }
}

fn json<T: Serialize>(value: &T) -> Bytes {
    // Serializing these plain structs cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// 32 random hex digits: unique per logical migration.
pub(crate) fn new_request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// The first bytes of a body, printable.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut quoted: String = text.chars().take(QUOTE).collect();
    if text.chars().count() > QUOTE {
        quoted.push('…');
    }
    quoted.escape_debug().to_string()
}

/// An error with its sources, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        use resilience_core::retry::Retryable;
        let e = interpret::<HostList>("GET /v1/hosts", StatusCode::SERVICE_UNAVAILABLE, None, b"")
            .unwrap_err();
        assert!(e.is_retryable());
        let e = interpret::<HostList>(
            "GET /v1/hosts",
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            br#"{"error":{"code":"overloaded","message":"slow down"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = interpret::<HostList>(
            "GET /v1/hosts",
            StatusCode::NOT_FOUND,
            None,
            br#"{"error":{"code":"unknown_host","message":"no"}}"#,
        )
        .unwrap_err();
        assert!(!e.is_retryable());
        assert!(matches!(e, CallError::Refused { ref code, .. } if code == "unknown_host"));
        let e = interpret::<HostList>("GET /v1/hosts", StatusCode::NOT_FOUND, None, b"<html>")
            .unwrap_err();
        assert!(matches!(e, CallError::BadResponse { .. }), "{e}");
        let e = interpret::<HostList>("GET /v1/hosts", StatusCode::FOUND, None, b"").unwrap_err();
        assert!(matches!(e, CallError::BadResponse { .. }), "{e}");
        let e = interpret::<HostList>("GET /v1/hosts", StatusCode::OK, None, b"{\"hosts\":3}")
            .unwrap_err();
        assert!(e.to_string().contains("GET /v1/hosts"), "{e}");
        assert!(!e.is_retryable());
    }
}
