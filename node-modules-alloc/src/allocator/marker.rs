//! The completion marker, and what it says about a published tree.
//!
//! Why: a tree is complete only once its marker (holding the manifest digest) is in place.
//! The marker is written with the tree under a pending name, made durable with it, and
//! renamed into place last ([`seal`]); a tree without a valid marker is never reused.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::sync_dir;
use crate::manifest::Plan;
use crate::materialize::{PendingMarker, quick_check};

/// Name of the completion marker inside a published tree (and a template).
pub const MARKER: &str = ".breakwater-alloc.json";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Marker {
    pub(super) manifest: String,
    pub(super) lockfile: Option<String>,
}

/// State of a published tree with respect to a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TreeState {
    /// Marker of this plan, and the tree matches it.
    Valid,
    /// Marker of this plan, but the tree does not match it (the problem found).
    Damaged(String),
    /// No tree, or a tree of another plan or without a valid marker.
    Absent,
}

/// Whether `APP_DIR/node_modules` carries a valid marker for this plan and matches it.
/// Read-only and silent (callers count and log damage).
pub(super) fn tree_state(plan: &Plan, app_dir: &Path) -> TreeState {
    let nm = app_dir.join("node_modules");
    match read_marker(&nm) {
        Some(marker) if marker.manifest == plan.digest => match quick_check(&plan.manifest, &nm) {
            None => TreeState::Valid,
            Some(problem) => TreeState::Damaged(problem),
        },
        _ => TreeState::Absent,
    }
}

pub(super) fn read_marker(tree: &Path) -> Option<Marker> {
    let bytes = fs::read(tree.join(MARKER)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Temporary name of a completion marker written with the tree (see [`PendingMarker`]).
pub(super) const PENDING_MARKER: &str = ".breakwater-alloc.pending";

pub(super) fn marker_bytes(tree: &Path, manifest: &str, lockfile: Option<&str>) -> Result<Vec<u8>> {
    let marker = Marker {
        manifest: manifest.to_owned(),
        lockfile: lockfile.map(str::to_owned),
    };
    serde_json::to_vec(&marker).map_err(|e| Error::Malformed {
        path: tree.join(MARKER),
        reason: e.to_string(),
    })
}

pub(super) fn pending(bytes: &[u8]) -> PendingMarker<'_> {
    PendingMarker {
        name: PENDING_MARKER,
        bytes,
    }
}

/// Puts the completion marker, written and made durable with the tree, into place: the tree
/// is complete from now on (one rename, one directory fsync).
pub(super) fn seal(tree: &Path) -> Result<()> {
    let marker = tree.join(MARKER);
    fs::rename(tree.join(PENDING_MARKER), &marker).map_err(Error::io("cannot write", &marker))?;
    sync_dir(tree)
}
