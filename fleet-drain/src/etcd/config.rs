//! [`EtcdConfig`]: where etcd is, how long leases live, and the fleet-wide
//! disruption budget.

use std::path::PathBuf;
use std::time::Duration;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Configuration of an [`EtcdCoordinator`](super::EtcdCoordinator) (serde:
/// TOML or JSON, durations like `"2s"`).
///
/// `Default`: `http://127.0.0.1:2379`, prefix `/breakwater/fleet-drain`,
/// a 10 s lease renewed every `lease_ttl / 3`, a controller stops acting
/// `lease_ttl / 4` before its lease could expire, 2 s per request, etcd
/// polled every 500 ms while waiting, a budget of 2 draining hosts and
/// 4 concurrent starts per receiver, no auth, no TLS.
///
/// ```
/// use fleet_drain::etcd::EtcdConfig;
///
/// let config: EtcdConfig = toml::from_str(r#"
///     endpoints = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
///     key_prefix = "/breakwater/prod-eu"
///     lease_ttl = "5s"
///     [budget]
///     max_draining_hosts = 30
///     max_concurrent_starts_per_receiver = 4
/// "#)?;
/// config.validate()?;
/// assert_eq!(config.keepalive_interval(), std::time::Duration::from_secs(5) / 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdConfig {
    /// etcd client URLs (`http://host:port` or `https://…`). At least one.
    pub endpoints: Vec<String>,
    /// Every key of the coordination lives under this prefix; controllers
    /// that share a fleet-wide budget must use the same one. Starts with
    /// `/`, does not end with `/`, no whitespace.
    pub key_prefix: String,
    /// TTL of the controller's lease: a crashed or partitioned leader is
    /// replaced within about this time. Whole seconds, >= 1 s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often the lease is renewed; `None`: `lease_ttl / 3`. Must be
    /// > 0 and at most `lease_ttl / 2`.
    #[serde(with = "humantime_serde::option")]
    pub keepalive_interval: Option<Duration>,
    /// A leader stops acting this long before its lease could expire
    /// (counted from the last renewal it *sent*); `None`: `lease_ttl / 4`.
    /// Covers clock-rate differences and request latency. Must be > 0 and
    /// less than `lease_ttl - keepalive_interval`.
    #[serde(with = "humantime_serde::option")]
    pub safety_margin: Option<Duration>,
    /// Timeout of each etcd request (and of connecting). > 0.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often etcd is polled while waiting (for leadership, for room in
    /// the budget, for etcd to come back). > 0.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The fleet-wide disruption budget shared by every controller under
    /// `key_prefix`.
    pub budget: BudgetLimits,
    /// User and password, if etcd has authentication enabled.
    pub auth: Option<EtcdAuth>,
    /// TLS settings for `https://` endpoints (needs the `etcd-tls`
    /// feature).
    pub tls: Option<EtcdTls>,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            key_prefix: "/breakwater/fleet-drain".into(),
            lease_ttl: Duration::from_secs(10),
            keepalive_interval: None,
            safety_margin: None,
            request_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(500),
            budget: BudgetLimits::default(),
            auth: None,
            tls: None,
        }
    }
}

/// The fleet-wide disruption budget: what all controllers under one key
/// prefix may do *together*. Every controller must configure the same
/// budget (the first one stores it in etcd; a controller with a different
/// one is refused). `Default`: 2 hosts draining, 4 concurrent starts per
/// receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetLimits {
    /// Hosts draining at once across every controller. >= 1.
    pub max_draining_hosts: u32,
    /// App starts in progress into one receiving host at once, across
    /// every controller. >= 1.
    pub max_concurrent_starts_per_receiver: u32,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            max_draining_hosts: 2,
            max_concurrent_starts_per_receiver: 4,
        }
    }
}

impl BudgetLimits {
    /// Checks both limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_draining_hosts == 0 {
            return Err(ConfigError::new(
                "max_draining_hosts",
                "must be at least 1: a budget of 0 hosts lets no drain progress",
            ));
        }
        if self.max_concurrent_starts_per_receiver == 0 {
            return Err(ConfigError::new(
                "max_concurrent_starts_per_receiver",
                "must be at least 1: a budget of 0 starts lets no app move",
            ));
        }
        Ok(())
    }
}

/// etcd user credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdAuth {
    /// User name. Not empty.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// TLS files for `https://` endpoints (PEM).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdTls {
    /// CA certificate that signed etcd's server certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// Client private key (with `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Server name to verify, if it differs from the endpoint's host.
    pub domain: Option<String>,
}

impl EtcdConfig {
    /// The effective renewal interval.
    pub fn keepalive_interval(&self) -> Duration {
        self.keepalive_interval.unwrap_or(self.lease_ttl / 3)
    }

    /// The effective safety margin.
    pub fn safety_margin(&self) -> Duration {
        self.safety_margin.unwrap_or(self.lease_ttl / 4)
    }

    /// The lease TTL in whole seconds, as etcd takes it.
    pub(crate) fn ttl_secs(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs()).unwrap_or(i64::MAX)
    }

    /// Checks every field; the error names the first invalid one
    /// (`budget.…`, `auth.…`, `tls.…` for nested ones).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(ConfigError::new(
                "endpoints",
                "must list at least one etcd URL like \"http://127.0.0.1:2379\"",
            ));
        }
        for endpoint in &self.endpoints {
            let rest = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                return Err(ConfigError::new(
                    "endpoints",
                    format!("`{endpoint}` is not an http:// or https:// URL with a host"),
                ));
            }
        }
        let prefix = &self.key_prefix;
        if !prefix.starts_with('/')
            || prefix.len() < 2
            || prefix.ends_with('/')
            || prefix.contains(char::is_whitespace)
        {
            return Err(ConfigError::new(
                "key_prefix",
                format!(
                    "`{prefix}` must start with `/`, not end with `/`, have a name and no whitespace (e.g. \"/breakwater/prod\")"
                ),
            ));
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            return Err(ConfigError::new(
                "lease_ttl",
                format!(
                    "must be a whole number of seconds >= 1s (etcd leases have second granularity), got {:?}",
                    self.lease_ttl
                ),
            ));
        }
        let interval = self.keepalive_interval();
        if interval.is_zero() || interval > self.lease_ttl / 2 {
            return Err(ConfigError::new(
                "keepalive_interval",
                format!(
                    "must be > 0 and at most lease_ttl / 2 ({:?}) so one lost renewal does not lose the lease, got {interval:?}",
                    self.lease_ttl / 2
                ),
            ));
        }
        let margin = self.safety_margin();
        if margin.is_zero() || margin >= self.lease_ttl.saturating_sub(interval) {
            return Err(ConfigError::new(
                "safety_margin",
                format!(
                    "must be > 0 and less than lease_ttl - keepalive_interval ({:?}), got {margin:?}",
                    self.lease_ttl.saturating_sub(interval)
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new(
                "request_timeout",
                "must be greater than zero",
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::new(
                "poll_interval",
                "must be greater than zero",
            ));
        }
        self.budget.validate().map_err(|e| e.nested("budget"))?;
        if let Some(auth) = &self.auth
            && auth.user.is_empty()
        {
            return Err(ConfigError::new("auth.user", "must not be empty"));
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(ConfigError::new(
                    "tls.key_file",
                    "`cert_file` and `key_file` go together (mutual TLS needs both)",
                ));
            }
            if !cfg!(feature = "etcd-tls") {
                return Err(ConfigError::new(
                    "tls",
                    "TLS needs fleet-drain built with the `etcd-tls` feature",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(config: &EtcdConfig) -> String {
        config.validate().unwrap_err().field().to_owned()
    }

    #[test]
    fn default_is_valid_and_derives_interval_and_margin() {
        let config = EtcdConfig::default();
        config.validate().unwrap();
        assert_eq!(config.keepalive_interval(), Duration::from_secs(10) / 3);
        assert_eq!(config.safety_margin(), Duration::from_millis(2500));
    }

    #[test]
    fn rejects_missing_or_malformed_endpoints() {
        let mut config = EtcdConfig {
            endpoints: vec![],
            ..EtcdConfig::default()
        };
        assert_eq!(field(&config), "endpoints");
        for bad in ["127.0.0.1:2379", "http://", "http://a b", "ftp://x"] {
            config.endpoints = vec![bad.into()];
            assert_eq!(field(&config), "endpoints", "{bad}");
        }
        config.endpoints = vec!["https://etcd-0:2379".into()];
        config.validate().unwrap();
    }

    #[test]
    fn rejects_bad_prefixes() {
        for bad in ["", "/", "x/y", "/x/", "/a b"] {
            let config = EtcdConfig {
                key_prefix: bad.into(),
                ..EtcdConfig::default()
            };
            assert_eq!(field(&config), "key_prefix", "{bad:?}");
        }
    }

    #[test]
    fn rejects_zero_fractional_and_sub_second_ttls() {
        for bad in [0, 500, 1500] {
            let config = EtcdConfig {
                lease_ttl: Duration::from_millis(bad),
                ..EtcdConfig::default()
            };
            assert_eq!(field(&config), "lease_ttl", "{bad}");
        }
    }

    #[test]
    fn rejects_intervals_and_margins_that_could_lose_the_lease() {
        let base = EtcdConfig {
            lease_ttl: Duration::from_secs(2),
            ..EtcdConfig::default()
        };
        for bad in [Duration::ZERO, Duration::from_millis(1001)] {
            let config = EtcdConfig {
                keepalive_interval: Some(bad),
                ..base.clone()
            };
            assert_eq!(field(&config), "keepalive_interval");
        }
        for bad in [Duration::ZERO, Duration::from_millis(1400)] {
            let config = EtcdConfig {
                safety_margin: Some(bad),
                ..base.clone()
            };
            assert_eq!(field(&config), "safety_margin");
        }
        for (name, config) in [
            (
                "request_timeout",
                EtcdConfig {
                    request_timeout: Duration::ZERO,
                    ..base.clone()
                },
            ),
            (
                "poll_interval",
                EtcdConfig {
                    poll_interval: Duration::ZERO,
                    ..base.clone()
                },
            ),
        ] {
            assert_eq!(field(&config), name);
        }
    }

    #[test]
    fn rejects_zero_budgets_by_nested_name() {
        let mut config = EtcdConfig::default();
        config.budget.max_draining_hosts = 0;
        assert_eq!(field(&config), "budget.max_draining_hosts");
        let mut config = EtcdConfig::default();
        config.budget.max_concurrent_starts_per_receiver = 0;
        assert_eq!(field(&config), "budget.max_concurrent_starts_per_receiver");
    }

    #[test]
    fn rejects_empty_users_and_half_mutual_tls() {
        let config = EtcdConfig {
            auth: Some(EtcdAuth {
                user: String::new(),
                password: "x".into(),
            }),
            ..EtcdConfig::default()
        };
        assert_eq!(field(&config), "auth.user");
        let config = EtcdConfig {
            tls: Some(EtcdTls {
                cert_file: Some("c.pem".into()),
                ..EtcdTls::default()
            }),
            ..EtcdConfig::default()
        };
        assert_eq!(field(&config), "tls.key_file");
    }

    #[test]
    fn password_is_redacted_in_debug_output() {
        let auth = EtcdAuth {
            user: "drain".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<EtcdConfig>("lease_tll = \"2s\"").unwrap_err();
        assert!(err.to_string().contains("lease_tll"), "{err}");
    }
}
