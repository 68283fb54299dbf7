//! Adapter names ↔ controller ids: the [`NameMap`].
//!
//! Real platforms name hosts and apps with strings (`node-a`,
//! `payments-7f9c`); the controller, the planner and the journal work with
//! small copyable ids ([`HostId`], [`AppId`]). An adapter keeps one
//! [`NameMap`] and asks it for the id of every name it reads from its
//! platform ([`NameMap::host_id`], [`NameMap::app_id`]: an id is assigned
//! on first sight) and for the name of every id the controller hands back
//! ([`NameMap::host_name`], [`NameMap::app_name`]).
//!
//! # Stable across restarts
//!
//! The journal stores host ids (the drain's targets, its waves, the drained
//! hosts), so a restarted controller must map the same names to the same
//! ids. New assignments are therefore journaled too, as
//! [`JournalRecord::NamesAssigned`], *before* any record that uses them:
//!
//! - a [`DrainController`](crate::drain::DrainController) given the map
//!   ([`DrainController::with_names`](crate::drain::DrainController::with_names))
//!   appends the pending assignments before each of its own records;
//! - anyone else persists them with [`NameMap::persist`] (or takes them
//!   with [`NameMap::take_pending`] and appends the record itself) before
//!   acting on the ids;
//! - on restart, [`NameMap::from_records`] rebuilds the map from the
//!   journal; names first seen after that get the next free ids.
//!
//! Journals written before this record existed hold none: they read as
//! before (an empty map).
//!
//! # Valid names
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of UTF-8 without control
//! characters; anything else is a [`NameError`], never a silent rewrite.
//!
//! # Example
//!
//! ```
//! use fleet_drain::journal::{Journal, MemoryJournal};
//! use fleet_drain::names::NameMap;
//!
//! futures::executor::block_on(async {
//!     let mut journal = MemoryJournal::new();
//!     let names = NameMap::new();
//!     let a = names.host_id("node-a")?;
//!     let web = names.app_id("web-1")?;
//!     assert_eq!(names.host_id("node-a")?, a); // same name, same id
//!     assert_eq!(names.host_name(a).as_deref(), Some("node-a"));
//!     assert_eq!(names.app_name(web).as_deref(), Some("web-1"));
//!     assert_eq!(names.persist(&mut journal).await?, 2); // journaled before use
//!
//!     // A restarted controller reads the same ids back from the journal.
//!     let restored = NameMap::from_records(&journal.records().await?)?;
//!     assert_eq!(restored.find_host("node-a"), Some(a));
//!     assert_ne!(restored.host_id("node-b")?, a); // new names get new ids
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::error::NameError;
use crate::fleet::{AppId, HostId};
use crate::journal::{Journal, JournalError, JournalRecord};

/// Longest accepted name, in bytes (a DNS name's limit).
pub const MAX_NAME_LEN: usize = 253;

/// Checks a name (see the [module docs](self)).
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            prefix: name.chars().take(32).collect(),
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if let Some((position, _)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(NameError::ControlCharacter {
            kind,
            name: name.to_owned(),
            position,
        });
    }
    Ok(())
}

/// One direction-pair of the map for one kind of id.
#[derive(Debug)]
struct Table<Id> {
    kind: &'static str,
    by_name: HashMap<String, Id>,
    by_id: HashMap<Id, String>,
    next: u32,
    pending: Vec<(Id, String)>,
}

impl<Id: Copy + Eq + Hash> Table<Id> {
    fn new(kind: &'static str) -> Self {
        Table {
            kind,
            by_name: HashMap::new(),
            by_id: HashMap::new(),
            next: 0,
            pending: Vec::new(),
        }
    }

    fn id(&mut self, name: &str, make: fn(u32) -> Id) -> Result<Id, NameError> {
        if let Some(&id) = self.by_name.get(name) {
            return Ok(id);
        }
        validate_name(self.kind, name)?;
        let raw = self.next;
        self.next = raw
            .checked_add(1)
            .ok_or(NameError::Exhausted { kind: self.kind })?;
        let id = make(raw);
        self.by_name.insert(name.to_owned(), id);
        self.by_id.insert(id, name.to_owned());
        self.pending.push((id, name.to_owned()));
        Ok(id)
    }

    /// Adds a journaled assignment.
    fn restore(&mut self, id: Id, raw: u32, name: &str) -> Result<(), NameError> {
        validate_name(self.kind, name)?;
        let conflict = |existing: String| NameError::Conflict {
            kind: self.kind,
            name: name.to_owned(),
            id: raw,
            existing,
        };
        match (self.by_name.get(name), self.by_id.get(&id)) {
            (Some(&known), _) if known != id => {
                return Err(conflict("a different id for this name".to_owned()));
            }
            (_, Some(known)) if known != name => return Err(conflict(format!("`{known}`"))),
            _ => {}
        }
        self.by_name.insert(name.to_owned(), id);
        self.by_id.insert(id, name.to_owned());
        self.next = self.next.max(raw.saturating_add(1));
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    hosts: Table<HostId>,
    apps: Table<AppId>,
}

/// Names of hosts and apps ↔ their ids. Thread-safe; clones share the map.
/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct NameMap {
    inner: Arc<Mutex<Inner>>,
}

impl Default for NameMap {
    fn default() -> Self {
        Self::new()
    }
}

impl NameMap {
    /// An empty map: ids from 0 in order of first sight.
    pub fn new() -> Self {
        NameMap {
            inner: Arc::new(Mutex::new(Inner {
                hosts: Table::new("host"),
                apps: Table::new("app"),
            })),
        }
    }

    /// The map journaled in `records` ([`JournalRecord::NamesAssigned`];
    /// other records are skipped). Nothing is pending.
    ///
    /// # Errors
    ///
    /// [`NameError::Conflict`] if the records map a name to two ids or an
    /// id to two names; a validation error for a journaled invalid name.
    pub fn from_records(records: &[JournalRecord]) -> Result<Self, NameError> {
        let map = NameMap::new();
        {
            let mut inner = map.lock();
            for record in records {
                if let JournalRecord::NamesAssigned { hosts, apps } = record {
                    for (id, name) in hosts {
                        inner.hosts.restore(*id, id.0, name)?;
                    }
                    for (id, name) in apps {
                        inner.apps.restore(*id, id.0, name)?;
                    }
                }
            }
        }
        Ok(map)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation leaves the tables consistent before it can fail.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of host `name`, assigned (and pending) on first sight.
    pub fn host_id(&self, name: &str) -> Result<HostId, NameError> {
        self.lock().hosts.id(name, HostId)
    }

    /// The id of app `name`, assigned (and pending) on first sight.
    pub fn app_id(&self, name: &str) -> Result<AppId, NameError> {
        self.lock().apps.id(name, AppId)
    }

    /// The id of host `name` if it has one (assigns nothing).
    pub fn find_host(&self, name: &str) -> Option<HostId> {
        self.lock().hosts.by_name.get(name).copied()
    }

    /// The id of app `name` if it has one (assigns nothing).
    pub fn find_app(&self, name: &str) -> Option<AppId> {
        self.lock().apps.by_name.get(name).copied()
    }

    /// The name of host `id`, if known.
    pub fn host_name(&self, id: HostId) -> Option<String> {
        self.lock().hosts.by_id.get(&id).cloned()
    }

    /// The name of app `id`, if known.
    pub fn app_name(&self, id: AppId) -> Option<String> {
        self.lock().apps.by_id.get(&id).cloned()
    }

    /// Whether assignments wait to be journaled.
    pub fn has_pending(&self) -> bool {
        let inner = self.lock();
        !inner.hosts.pending.is_empty() || !inner.apps.pending.is_empty()
    }

    /// The assignments not yet journaled, as one record, and forgets them
    /// (`None` if there are none). The caller must append the record
    /// before using the ids; if the append fails, hand it back with
    /// [`NameMap::requeue`].
    pub fn take_pending(&self) -> Option<JournalRecord> {
        let mut inner = self.lock();
        if inner.hosts.pending.is_empty() && inner.apps.pending.is_empty() {
            return None;
        }
        Some(JournalRecord::NamesAssigned {
            hosts: std::mem::take(&mut inner.hosts.pending),
            apps: std::mem::take(&mut inner.apps.pending),
        })
    }

    /// Puts back a record from [`NameMap::take_pending`] whose append
    /// failed (other records are ignored).
    pub fn requeue(&self, record: JournalRecord) {
        if let JournalRecord::NamesAssigned { hosts, apps } = record {
            let mut inner = self.lock();
            let later_hosts = std::mem::replace(&mut inner.hosts.pending, hosts);
            inner.hosts.pending.extend(later_hosts);
            let later_apps = std::mem::replace(&mut inner.apps.pending, apps);
            inner.apps.pending.extend(later_apps);
        }
    }

    /// Appends the pending assignments to `journal` (one record); returns
    /// how many were written (0: nothing pending, nothing appended). On
    /// error they stay pending.
    pub async fn persist(&self, journal: &mut dyn Journal) -> Result<usize, JournalError> {
        let Some(record) = self.take_pending() else {
            return Ok(0);
        };
        let count = match &record {
            JournalRecord::NamesAssigned { hosts, apps } => hosts.len() + apps.len(),
            _ => 0,
        };
        match journal.append(&record).await {
            Ok(()) => Ok(count),
            Err(error) => {
                self.requeue(record);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::MemoryJournal;

    #[test]
    fn ids_are_assigned_once_and_map_both_ways() {
        let names = NameMap::new();
        let a = names.host_id("node-a").unwrap();
        let b = names.host_id("node-b").unwrap();
        assert_ne!(a, b);
        assert_eq!(names.host_id("node-a").unwrap(), a);
        assert_eq!(names.host_name(b).as_deref(), Some("node-b"));
        // Hosts and apps are separate id spaces.
        let web = names.app_id("node-a").unwrap();
        assert_eq!(names.app_name(web).as_deref(), Some("node-a"));
        assert_eq!(names.find_app("nope"), None);
        assert_eq!(names.host_name(HostId(99)), None);
        // Clones share the map.
        assert_eq!(names.clone().find_host("node-b"), Some(b));
    }

    #[test]
    fn invalid_names_are_refused() {
        let names = NameMap::new();
        assert_eq!(
            names.host_id("").unwrap_err(),
            NameError::Empty { kind: "host" }
        );
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            names.app_id(&long).unwrap_err(),
            NameError::TooLong { len, .. } if len == MAX_NAME_LEN + 1
        ));
        assert!(names.app_id(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert!(matches!(
            names.host_id("a\nb").unwrap_err(),
            NameError::ControlCharacter { position: 1, .. }
        ));
        assert_eq!(names.find_host("a\nb"), None);
    }

    #[test]
    fn pending_assignments_survive_a_restart_through_the_journal() {
        futures::executor::block_on(async {
            let mut journal = MemoryJournal::new();
            let names = NameMap::new();
            let a = names.host_id("a").unwrap();
            let x = names.app_id("x").unwrap();
            assert!(names.has_pending());
            assert_eq!(names.persist(&mut journal).await.unwrap(), 2);
            assert!(!names.has_pending());
            assert_eq!(names.persist(&mut journal).await.unwrap(), 0);
            let b = names.host_id("b").unwrap();
            journal
                .append(&JournalRecord::HostDrained { host: a })
                .await
                .unwrap();
            let record = names.take_pending().unwrap();
            journal.append(&record).await.unwrap();

            let restored = NameMap::from_records(&journal.records().await.unwrap()).unwrap();
            assert!(!restored.has_pending());
            assert_eq!(restored.find_host("a"), Some(a));
            assert_eq!(restored.find_host("b"), Some(b));
            assert_eq!(restored.find_app("x"), Some(x));
            let c = restored.host_id("c").unwrap();
            assert!(c != a && c != b);
            assert_eq!(
                restored.take_pending(),
                Some(JournalRecord::NamesAssigned {
                    hosts: vec![(c, "c".into())],
                    apps: vec![],
                })
            );
        });
    }

    #[test]
    fn a_requeued_record_stays_pending_in_order() {
        let names = NameMap::new();
        let a = names.host_id("a").unwrap();
        let record = names.take_pending().unwrap();
        let b = names.host_id("b").unwrap();
        names.requeue(record);
        assert_eq!(
            names.take_pending(),
            Some(JournalRecord::NamesAssigned {
                hosts: vec![(a, "a".into()), (b, "b".into())],
                apps: vec![],
            })
        );
    }

    #[test]
    fn conflicting_journals_are_refused() {
        let records = [
            JournalRecord::NamesAssigned {
                hosts: vec![(HostId(0), "a".into())],
                apps: vec![],
            },
            JournalRecord::NamesAssigned {
                hosts: vec![(HostId(1), "a".into())],
                apps: vec![],
            },
        ];
        assert!(matches!(
            NameMap::from_records(&records).unwrap_err(),
            NameError::Conflict { kind: "host", .. }
        ));
        let records = [
            JournalRecord::NamesAssigned {
                hosts: vec![],
                apps: vec![(AppId(3), "x".into())],
            },
            JournalRecord::NamesAssigned {
                hosts: vec![],
                apps: vec![(AppId(3), "y".into())],
            },
        ];
        assert!(matches!(
            NameMap::from_records(&records).unwrap_err(),
            NameError::Conflict { kind: "app", .. }
        ));
    }

    #[test]
    fn older_journal_records_still_parse_and_names_round_trip() {
        let old = r#"{"type":"host_drained","host":3}"#;
        let record: JournalRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record, JournalRecord::HostDrained { host: HostId(3) });
        let names = JournalRecord::NamesAssigned {
            hosts: vec![(HostId(1), "node-a".into())],
            apps: vec![(AppId(2), "web".into())],
        };
        let json = serde_json::to_string(&names).unwrap();
        assert_eq!(serde_json::from_str::<JournalRecord>(&json).unwrap(), names);
    }
}
