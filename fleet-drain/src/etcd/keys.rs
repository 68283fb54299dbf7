//! The key layout under the configured prefix.
//!
//! ```text
//! <prefix>/budget/limits                    the fleet-wide budget (JSON), written once
//! <prefix>/budget/epoch/hosts               bumped by every host reservation
//! <prefix>/budget/hosts/<host>              a host slot (lease-bound)
//! <prefix>/budget/epoch/starts/<receiver>   bumped by every start reservation into <receiver>
//! <prefix>/budget/starts/<receiver>/<app>   a start slot (lease-bound)
//! <prefix>/leader/<drain>                   the leader of <drain> (lease-bound)
//! <prefix>/journal/<drain>/<seq>            the journal of <drain>, one record per key
//! ```

use resilience_core::ConfigError;

use crate::fleet::{AppId, HostId};

use super::error::EtcdError;

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// Drain names become key segments: keep them plain.
    pub(crate) fn check_name(drain: &str) -> Result<(), EtcdError> {
        if drain.is_empty()
            || !drain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(EtcdError::Config(ConfigError::new(
                "drain",
                format!("`{drain}` must be a non-empty name of letters, digits, `-`, `_`, `.`"),
            )));
        }
        Ok(())
    }

    pub(crate) fn budget_limits(&self) -> String {
        format!("{}/budget/limits", self.prefix)
    }

    pub(crate) fn hosts_epoch(&self) -> String {
        format!("{}/budget/epoch/hosts", self.prefix)
    }

    pub(crate) fn hosts_dir(&self) -> String {
        format!("{}/budget/hosts/", self.prefix)
    }

    pub(crate) fn host_slot(&self, host: HostId) -> String {
        format!("{}{}", self.hosts_dir(), host.0)
    }

    pub(crate) fn starts_epoch(&self, receiver: HostId) -> String {
        format!("{}/budget/epoch/starts/{}", self.prefix, receiver.0)
    }

    pub(crate) fn starts_root(&self) -> String {
        format!("{}/budget/starts/", self.prefix)
    }

    pub(crate) fn starts_dir(&self, receiver: HostId) -> String {
        format!("{}/budget/starts/{}/", self.prefix, receiver.0)
    }

    pub(crate) fn start_slot(&self, receiver: HostId, app: AppId) -> String {
        format!("{}{}", self.starts_dir(receiver), app.0)
    }

    pub(crate) fn leader(&self, drain: &str) -> String {
        format!("{}/leader/{drain}", self.prefix)
    }

    pub(crate) fn journal_dir(&self, drain: &str) -> String {
        format!("{}/journal/{drain}/", self.prefix)
    }

    pub(crate) fn journal_entry(&self, drain: &str, seq: usize) -> String {
        format!("{}{seq:012}", self.journal_dir(drain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        let keys = Keys::new("/bw");
        assert_eq!(keys.host_slot(HostId(7)), "/bw/budget/hosts/7");
        assert_eq!(
            keys.start_slot(HostId(2), AppId(9)),
            "/bw/budget/starts/2/9"
        );
        assert_eq!(keys.journal_entry("d", 3), "/bw/journal/d/000000000003");
        assert_eq!(keys.leader("d"), "/bw/leader/d");
        // The epoch keys are outside the slot directories they guard.
        assert!(!keys.hosts_epoch().starts_with(&keys.hosts_dir()));
        assert!(
            !keys
                .starts_epoch(HostId(2))
                .starts_with(&keys.starts_dir(HostId(2)))
        );
    }

    #[test]
    fn drain_names_are_plain() {
        for bad in ["", "a/b", "a b", "ü"] {
            assert!(Keys::check_name(bad).is_err(), "{bad:?}");
        }
        Keys::check_name("drain-2019.02_eu").unwrap();
    }
}
