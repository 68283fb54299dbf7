//! What callers get back: [`Allocation`] (with its [`Outcome`]) and [`VerifyReport`].
//!
//! Why its own file: these are the allocator's public results, read by the CLI, the Node
//! bindings and tests; they carry data only.

use std::fmt;
use std::path::PathBuf;

use crate::error::BuildNeed;
use crate::materialize::TreeStats;
use crate::store::StoreReport;

/// What an allocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The app already had this exact, valid tree.
    Reused,
    /// A template existed; it was cloned into the app.
    Cloned,
    /// This call built the template, then cloned it.
    Materialized,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reused => "reused",
            Self::Cloned => "cloned",
            Self::Materialized => "materialized",
        })
    }
}

/// A ready tree.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// `APP_DIR/node_modules`.
    pub node_modules: PathBuf,
    /// Digest of the tree's manifest (also in the completion marker).
    pub manifest_digest: String,
    /// Digest of the selected lockfile entries.
    pub lockfile_digest: String,
    /// Packages installed.
    pub packages: usize,
    /// Regular files in the tree.
    pub files: usize,
    /// What happened.
    pub outcome: Outcome,
    /// How files were placed in the app (zero when reused).
    pub stats: TreeStats,
    /// Packages that need a build the allocator does not run, installed without it because
    /// [`IgnoreScripts`](super::IgnoreScripts) allowed it (empty otherwise: such a tree is
    /// refused with [`Error::BuildRequired`](crate::Error::BuildRequired)).
    pub ignored_scripts: Vec<BuildNeed>,
}

/// Problems found by [`Allocator::verify`](super::Allocator::verify).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// One line per problem.
    pub problems: Vec<String>,
    /// Whether `repair` rebuilt the tree (problems then describe what was found before).
    pub repaired: bool,
    /// Store re-hash results for content the tree uses, when corruption was found.
    pub store: Option<StoreReport>,
}

impl VerifyReport {
    /// No problems, or all repaired.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() || self.repaired
    }
}
