//! Instance names: which breaker opened, which budget denied a retry.
//!
//! Every mechanism can carry a name. It appears as the `name` field of every tracing event the
//! instance emits and as the `name` label of every metric it records (feature `metrics`).
//!
//! Names are attached in one of two ways, so that existing struct literals of the configuration
//! types (`RetryBudgetConfig { ttl, min_retries_per_sec, retry_ratio }`) keep compiling:
//! - in code, with the instance's `named(..)` builder;
//! - in a configuration file, by wrapping the configuration in [`Named`]: the file gains an
//!   optional `name` key next to the configuration's own keys.
//!
//! ```
//! use resilience_core::Named;
//! use resilience_core::budget::RetryBudgetConfig;
//!
//! let cfg: Named<RetryBudgetConfig> =
//!     serde_json::from_str(r#"{ "name": "payments", "ttl": "10s", "retry_ratio": 0.1 }"#)?;
//! assert_eq!(cfg.name.as_deref(), Some("payments"));
//! assert_eq!(cfg.config.retry_ratio, 0.1);
//!
//! // The wrapped configuration still rejects keys it does not know.
//! let typo = serde_json::from_str::<Named<RetryBudgetConfig>>(r#"{ "name": "x", "ttl_s": 3 }"#);
//! assert!(typo.is_err());
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// Longest accepted instance name, in bytes. Names become metric labels and log fields: a
/// label of kilobytes is a mistake, not a name.
pub const MAX_NAME_LEN: usize = 128;

/// A configuration with an optional instance name.
///
/// Serialized as the configuration's own keys plus an optional `name` key. Deserializing keeps
/// the configuration's validation of unknown keys (`deny_unknown_fields`), which a plain
/// `#[serde(flatten)]` would silently drop.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Named<C> {
    /// The instance name, if any (see [`InstanceName::new`] for the rules).
    pub name: Option<String>,
    /// The wrapped configuration.
    pub config: C,
}

impl<C> Named<C> {
    /// Wraps `config` with a name.
    pub fn new(name: impl Into<String>, config: C) -> Self {
        Self {
            name: Some(name.into()),
            config,
        }
    }

    /// Wraps `config` without a name.
    pub fn unnamed(config: C) -> Self {
        Self { name: None, config }
    }

    /// The validated name (`InstanceName::unnamed()` when there is none).
    ///
    /// # Errors
    /// [`InvalidName`] when the name breaks the rules of [`InstanceName::new`].
    pub fn instance_name(&self) -> Result<InstanceName, InvalidName> {
        match &self.name {
            Some(name) => InstanceName::new(name),
            None => Ok(InstanceName::unnamed()),
        }
    }
}

impl<C> From<C> for Named<C> {
    fn from(config: C) -> Self {
        Self::unnamed(config)
    }
}

impl<C: Serialize> Serialize for Named<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = serde_json::to_value(&self.config).map_err(ser::Error::custom)?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(ser::Error::custom(
                "a named configuration must serialize as a map",
            ));
        };
        if let Some(name) = &self.name {
            map.insert("name".to_owned(), serde_json::Value::String(name.clone()));
        }
        map.serialize(serializer)
    }
}

impl<'de, C: DeserializeOwned> Deserialize<'de> for Named<C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let name = match map.remove("name") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(name)) => Some(name),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "`name` must be a string, found {other}"
                )));
            }
        };
        if let Some(name) = &name {
            InstanceName::new(name).map_err(de::Error::custom)?;
        }
        let config = C::deserialize(serde_json::Value::Object(map)).map_err(de::Error::custom)?;
        Ok(Self { name, config })
    }
}

/// A validated instance name, cheap to clone (shared).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct InstanceName(Option<Arc<str>>);

impl InstanceName {
    /// Validates a name: 1 to [`MAX_NAME_LEN`] bytes, no control characters.
    ///
    /// # Errors
    /// [`InvalidName`] describing which rule the name breaks.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(InvalidName::TooLong { len: name.len() });
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidName::ControlCharacter);
        }
        Ok(Self(Some(Arc::from(name))))
    }

    /// No name: events and labels show `""`.
    pub const fn unnamed() -> Self {
        Self(None)
    }

    /// The name, or `""` when unnamed.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether a name was given.
    pub fn is_named(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an instance name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// `name = ""`.
    #[error("instance name is empty: leave `name` out for an unnamed instance")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error(
        "instance name is {len} bytes long; the limit is {MAX_NAME_LEN} (it becomes a metric label)"
    )]
    TooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// Contains a control character (newline, tab, ...).
    #[error("instance name contains a control character; names appear in logs and metric labels")]
    ControlCharacter,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::RetryBudgetConfig;

    #[test]
    fn round_trips_with_and_without_a_name() {
        let named = Named::new("db", RetryBudgetConfig::default());
        let json = serde_json::to_string(&named).unwrap();
        assert!(json.contains(r#""name":"db""#), "{json}");
        let back: Named<RetryBudgetConfig> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, named);

        let plain: Named<RetryBudgetConfig> = serde_json::from_str("{}").unwrap();
        assert_eq!(plain.name, None);
        assert_eq!(plain.instance_name().unwrap().as_str(), "");
    }

    #[test]
    fn rejects_bad_names_and_unknown_keys() {
        for bad in [
            r#"{"name": ""}"#,
            r#"{"name": 3}"#,
            r#"{"name": "a\nb"}"#,
            r#"{"nam": "x"}"#,
        ] {
            assert!(
                serde_json::from_str::<Named<RetryBudgetConfig>>(bad).is_err(),
                "{bad}"
            );
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            InstanceName::new(&long),
            Err(InvalidName::TooLong {
                len: MAX_NAME_LEN + 1
            })
        );
    }

    #[test]
    fn reads_from_toml() {
        let cfg: Named<RetryBudgetConfig> =
            toml::from_str("name = \"edge\"\nttl = \"5s\"\nmin_retries_per_sec = 1\n").unwrap();
        assert_eq!(cfg.name.as_deref(), Some("edge"));
        assert_eq!(cfg.config.ttl, std::time::Duration::from_secs(5));
    }
}
