//! One download attempt over hyper 1 + rustls: status handling, `Retry-After`, the size
//! limit and the integrity hash computed while the body streams in.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use resilience_core::retry::Retryable;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::npmrc::Credential;
use super::url::Url;
use crate::error::{Error, Result};
use crate::integrity::{Algorithm, Hash, Integrity};

/// The pooled HTTP/1.1 client (plain HTTP and HTTPS).
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A client with Mozilla's root certificates (rustls, ring), HTTP/1.1, keep-alive.
pub(crate) fn client(connect_timeout: Duration) -> Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| {
            Error::Config(resilience_core::ConfigError::new(
                "tls",
                format!("cannot set up TLS: {e}"),
            ))
        })?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(tls))
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// No response: connection refused or reset, TLS failure, connect timeout.
    Connect(String),
    /// A status other than 200.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The body broke off (connection closed mid-download, length mismatch).
    Body(String),
    /// The tarball is larger than the store accepts.
    TooLarge { limit: u64 },
    /// The bytes do not hash to the lockfile's integrity.
    Integrity { expected: String, actual: String },
    /// The host's breaker refused the attempt.
    BreakerOpen(Duration),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connection failed: {e}"),
            Self::Status {
                status,
                retry_after,
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(after) = retry_after {
                    write!(f, " (Retry-After: {}s)", after.as_secs())?;
                }
                Ok(())
            }
            Self::Body(e) => write!(f, "download broke off: {e}"),
            Self::TooLarge { limit } => write!(f, "tarball larger than {limit} bytes"),
            Self::Integrity { expected, actual } => {
                write!(f, "integrity mismatch: expected {expected}, got {actual}")
            }
            Self::BreakerOpen(after) => write!(f, "circuit breaker open for {after:?}"),
        }
    }
}

impl Retryable for AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Body(_) => true,
            Self::Status { status, .. } => *status == 429 || (500..600).contains(status),
            Self::TooLarge { .. } | Self::Integrity { .. } | Self::BreakerOpen(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl AttemptError {
    /// Whether the failure says the registry is unhealthy (counts for its breaker).
    pub(crate) fn is_registry_failure(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Body(_))
            || matches!(self, Self::Status { status, .. } if *status == 429 || *status >= 500)
    }
}

/// `Retry-After` in seconds (an HTTP date is not used: the backoff applies).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The whole chain of an error, on one line (hyper's top-level messages say little).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Hashes the body as it arrives with the strongest algorithm of the expected integrity.
enum StreamHasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl StreamHasher {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(Sha1::new()),
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Sha384 => Self::Sha384(Sha384::new()),
            Algorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Redirects followed per attempt (registries may send tarballs to a CDN).
const MAX_REDIRECTS: usize = 5;

/// The URL a `Location` header points to: absolute `http(s)` URLs, or absolute paths on the
/// same origin.
fn redirect_target(from: &Url, location: &str) -> Option<Url> {
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme = if from.https { "https" } else { "http" };
        return Url::parse(&format!("{scheme}://{}{location}", from.authority()));
    }
    Url::parse(location)
}

/// One GET, the credential (if any) as `Authorization`.
async fn get(
    client: &HttpClient,
    url: &Url,
    credential: Option<&Credential>,
) -> std::result::Result<http::Response<hyper::body::Incoming>, AttemptError> {
    let mut request = http::Request::builder()
        .method(http::Method::GET)
        .uri(url.request_uri())
        .header(http::header::ACCEPT, "application/octet-stream")
        .header(
            http::header::USER_AGENT,
            concat!("node-modules-alloc/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(credential) = credential {
        let mut value = http::HeaderValue::from_str(&credential.header_value())
            .map_err(|_| AttemptError::Connect("credential is not a valid header value".into()))?;
        value.set_sensitive(true);
        request = request.header(http::header::AUTHORIZATION, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| AttemptError::Connect(format!("invalid request: {e}")))?;
    client
        .request(request)
        .await
        .map_err(|e| AttemptError::Connect(chain(&e)))
}

/// One GET of `url` (following up to 5 redirects): the verified bytes, or why not.
/// `on_bytes` is told of every chunk.
pub(crate) async fn download(
    client: &HttpClient,
    url: &Url,
    credential: Option<&Credential>,
    expected: &Integrity,
    limit: u64,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> std::result::Result<Vec<u8>, AttemptError> {
    let mut current = url.clone();
    let mut response = None;
    for _ in 0..=MAX_REDIRECTS {
        // A credential goes only to the registry it belongs to: never to a redirect target
        // on another scheme, host or port (a CDN serving the registry's tarballs).
        let credential = credential.filter(|_| current.host_key() == url.host_key());
        let answer = get(client, &current, credential).await?;
        let status = answer.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308)
            && let Some(next) = answer
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| redirect_target(&current, location))
        {
            current = next;
            continue;
        }
        if status != 200 {
            return Err(AttemptError::Status {
                status,
                retry_after: retry_after(answer.headers()),
            });
        }
        response = Some(answer);
        break;
    }
    let Some(response) = response else {
        return Err(AttemptError::Status {
            status: 310,
            retry_after: None,
        });
    };
    let announced = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(AttemptError::TooLarge { limit });
    }
    let algorithm = expected.strongest_algorithm().unwrap_or(Algorithm::Sha512);
    let mut hasher = StreamHasher::new(algorithm);
    let capacity = announced.unwrap_or(0).min(limit).min(16 << 20);
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AttemptError::Body(chain(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if (bytes.len() as u64).saturating_add(data.len() as u64) > limit {
            return Err(AttemptError::TooLarge { limit });
        }
        hasher.update(&data);
        bytes.extend_from_slice(&data);
        on_bytes(data.len() as u64);
    }
    let digest = hasher.finish();
    let matches = expected
        .hashes()
        .iter()
        .any(|h| h.algorithm == algorithm && h.digest == digest);
    if !matches {
        return Err(AttemptError::Integrity {
            expected: expected.to_string(),
            actual: Hash { algorithm, digest }.to_string(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let s = |status| AttemptError::Status {
            status,
            retry_after: None,
        };
        assert!(s(429).is_retryable() && s(503).is_retryable());
        assert!(!s(404).is_retryable() && !s(401).is_retryable());
        assert!(s(503).is_registry_failure() && !s(404).is_registry_failure());
        assert!(AttemptError::Connect("refused".into()).is_retryable());
        assert!(
            !AttemptError::Integrity {
                expected: String::new(),
                actual: String::new()
            }
            .is_retryable()
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(" 7"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
