//! [`Amount`]: a count or a percentage of a total, as limits are written.

use std::fmt;
use std::str::FromStr;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// A count or a percentage of a total.
///
/// Serialized as an integer (`5`) or a string (`"5"`, `"10%"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AmountRepr", into = "AmountRepr")]
pub enum Amount {
    /// An absolute number.
    Count(u32),
    /// A percentage (0..=100) of the total it applies to.
    Percent(f64),
}

impl Amount {
    /// The amount of `total`, rounding a percentage down.
    pub fn floor_of(&self, total: u64) -> u64 {
        match *self {
            Amount::Count(n) => u64::from(n),
            Amount::Percent(p) => (total as f64 * p / 100.0).floor() as u64,
        }
    }

    /// The amount of `total`, rounding a percentage up.
    pub fn ceil_of(&self, total: u64) -> u64 {
        match *self {
            Amount::Count(n) => u64::from(n),
            Amount::Percent(p) => (total as f64 * p / 100.0).ceil() as u64,
        }
    }

    pub(super) fn check_percent(
        &self,
        field: &'static str,
        allow_zero: bool,
        allow_hundred: bool,
    ) -> Result<(), ConfigError> {
        if let Amount::Percent(p) = *self {
            let low_ok = if allow_zero { p >= 0.0 } else { p > 0.0 };
            let high_ok = if allow_hundred { p <= 100.0 } else { p < 100.0 };
            if !(p.is_finite() && low_ok && high_ok) {
                let range = match (allow_zero, allow_hundred) {
                    (true, false) => "[0, 100)",
                    (false, true) => "(0, 100]",
                    (true, true) => "[0, 100]",
                    (false, false) => "(0, 100)",
                };
                return Err(ConfigError::new(
                    field,
                    format!("percent must be in {range}, got {p}%"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for Amount {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(number) = s.strip_suffix('%') {
            number
                .trim()
                .parse::<f64>()
                .map(Amount::Percent)
                .map_err(|_| format!("`{s}` is not a percentage like \"10%\""))
        } else {
            s.parse::<u32>().map(Amount::Count).map_err(|_| {
                format!("`{s}` is neither a count like 5 nor a percentage like \"10%\"")
            })
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AmountRepr {
    Count(u32),
    Text(String),
}

impl TryFrom<AmountRepr> for Amount {
    type Error = String;

    fn try_from(repr: AmountRepr) -> Result<Self, String> {
        match repr {
            AmountRepr::Count(n) => Ok(Amount::Count(n)),
            AmountRepr::Text(s) => s.parse(),
        }
    }
}

impl From<Amount> for AmountRepr {
    fn from(amount: Amount) -> Self {
        match amount {
            Amount::Count(n) => AmountRepr::Count(n),
            Amount::Percent(_) => AmountRepr::Text(amount.to_string()),
        }
    }
}
