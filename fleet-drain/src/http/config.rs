//! [`HttpFleetConfig`]: where the platform is, how long to wait, how to retry.

use std::time::Duration;

use resilience_core::ConfigError;
use resilience_core::budget::RetryBudgetConfig;
use resilience_core::retry::RetryConfig;
use serde::{Deserialize, Serialize};

/// Configuration of an [`HttpFleet`](super::HttpFleet) (TOML or JSON, human
/// durations). Validated by [`HttpFleet::from_config`](super::HttpFleet::from_config).
///
/// ```
/// use fleet_drain::http::HttpFleetConfig;
///
/// let config: HttpFleetConfig = toml::from_str(r#"
///     url = "http://127.0.0.1:7070"
///     migrate_timeout = "90s"
///     [retry]
///     max_attempts = 5
/// "#)?;
/// assert!(config.validate().is_ok());
/// assert_eq!(config.request_timeout.as_secs(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFleetConfig {
    /// The platform's base URL, `http://host:port` with an optional path
    /// prefix; the adapter appends `/v1/...`. Only `http` is supported.
    pub url: String,
    /// Time limit of each attempt of every call but migrate. Default 10 s.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time limit of each attempt of a migrate (which blocks until the
    /// app's start succeeded or failed). Default 120 s.
    #[serde(default = "default_migrate_timeout", with = "humantime_serde")]
    pub migrate_timeout: Duration,
    /// Time limit of establishing a TCP connection. Default 3 s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries of failed calls (connection errors, timeouts, 5xx, 429).
    /// `per_attempt_timeout` must stay unset: the timeouts above are the
    /// per-attempt limits.
    #[serde(default = "default_retry")]
    pub retry: RetryConfig,
    /// The budget that caps retries across all calls of this adapter.
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_migrate_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        ..RetryConfig::default()
    }
}

impl HttpFleetConfig {
    /// A configuration with every default for the platform at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        HttpFleetConfig {
            url: url.into(),
            request_timeout: default_request_timeout(),
            migrate_timeout: default_migrate_timeout(),
            connect_timeout: default_connect_timeout(),
            retry: default_retry(),
            retry_budget: RetryBudgetConfig::default(),
        }
    }

    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        BaseUrl::parse(&self.url)?;
        for (field, value) in [
            ("request_timeout", self.request_timeout),
            ("migrate_timeout", self.migrate_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        self.retry.validate().map_err(|e| e.nested("retry"))?;
        if self.retry.per_attempt_timeout.is_some() {
            return Err(ConfigError::new(
                "per_attempt_timeout",
                "must be unset for the HTTP adapter: set `request_timeout` and `migrate_timeout` instead",
            )
            .nested("retry"));
        }
        self.retry_budget
            .validate()
            .map_err(|e| e.nested("retry_budget"))?;
        Ok(())
    }
}

/// A validated base URL: `authority` and a path prefix without a trailing
/// slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    pub(crate) authority: String,
    pub(crate) prefix: String,
}

impl BaseUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, ConfigError> {
        let uri: http::Uri = url.parse().map_err(|e| {
            ConfigError::new(
                "url",
                format!("`{url}` is not a URL ({e}); expected http://HOST:PORT"),
            )
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(ConfigError::new(
                    "url",
                    format!(
                        "scheme `{other}` is not supported; only http:// (put a TLS proxy in front)"
                    ),
                ));
            }
            None => {
                return Err(ConfigError::new(
                    "url",
                    format!("`{url}` has no scheme; expected http://HOST:PORT"),
                ));
            }
        }
        let authority = uri
            .authority()
            .map(ToString::to_string)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ConfigError::new("url", format!("`{url}` has no host")))?;
        if authority.contains('@') {
            return Err(ConfigError::new(
                "url",
                "must not carry credentials (user@host)",
            ));
        }
        if uri.query().is_some() {
            return Err(ConfigError::new("url", "must not have a query string"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(BaseUrl { authority, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let base = BaseUrl::parse("http://127.0.0.1:7070/").unwrap();
        assert_eq!(base.authority, "127.0.0.1:7070");
        assert_eq!(base.prefix, "");
        let base = BaseUrl::parse("http://fleet.local/api/").unwrap();
        assert_eq!(base.prefix, "/api");
        for bad in [
            "https://x",
            "127.0.0.1:80",
            "http://u:p@x",
            "http://x/?a=1",
            "not a url",
        ] {
            assert_eq!(BaseUrl::parse(bad).unwrap_err().field(), "url", "{bad}");
        }
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut config = HttpFleetConfig::new("http://127.0.0.1:1");
        assert!(config.validate().is_ok());
        config.migrate_timeout = Duration::ZERO;
        assert_eq!(config.validate().unwrap_err().field(), "migrate_timeout");
        let mut config = HttpFleetConfig::new("http://127.0.0.1:1");
        config.retry.per_attempt_timeout = Some(Duration::from_secs(1));
        assert_eq!(
            config.validate().unwrap_err().field(),
            "retry.per_attempt_timeout"
        );
        let mut config = HttpFleetConfig::new("http://127.0.0.1:1");
        config.retry.max_attempts = 0;
        assert_eq!(config.validate().unwrap_err().field(), "retry.max_attempts");
    }
}
