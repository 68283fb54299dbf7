//! Lifecycle scripts: which packages of a tree need a build that the allocator does not run.
//!
//! # Why refuse
//!
//! npm runs `preinstall`, `install` and `postinstall` scripts after unpacking a package, and
//! `node-gyp rebuild` for a package that ships a `binding.gyp` without an `install` or
//! `preinstall` script (unless `"gypfile": false`). Native addons (`bcrypt`, `sharp`,
//! `better-sqlite3`) and downloaders (`esbuild`'s postinstall) depend on them. The allocator
//! runs no scripts, so such a tree looks complete and fails at `require` time: it is refused
//! before anything is published ([`Error::BuildRequired`]) unless the operator says the
//! package works without its build ([`IgnoreScripts`]).
//!
//! # What is trusted
//!
//! Both the lockfile's `hasInstallScript` and the package's own `package.json` in the store
//! (the lockfile may be hand-written or stale). The `package.json` is read from the store
//! through its index entry (a well-formed digest, at most `max_package_json_bytes`), with the
//! same lenient typed reader as at import. A `package.json` that cannot be read or parsed
//! (nothing node could load either) counts as declaring no script, with a warning.

use std::fs::File;
use std::io::Read as _;

use serde::{Deserialize, Serialize};

use crate::error::{BuildNeed, BuildReason, Error, Result};
use crate::import::package_json::{Lifecycle, parse_lifecycle};
use crate::lockfile::LockedPackage;
use crate::store::{IndexEntry, PackageIndex, Store};

/// Commands longer than this are cut in messages.
const COMMAND_SHOWN_BYTES: usize = 80;
/// Longest package name accepted in [`IgnoreScripts::packages`] (npm's limit).
const MAX_NAME_BYTES: usize = 214;

/// Packages whose build may be skipped: their tree is published without running their
/// lifecycle scripts. Default: none (a tree needing a build is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IgnoreScripts {
    /// Skip the build of every package (npm's `--ignore-scripts`). The skipped packages are
    /// still reported ([`Allocation::ignored_scripts`](crate::allocator::Allocation::ignored_scripts)).
    pub all: bool,
    /// Names of the packages whose build may be skipped (`bcrypt`, `@scope/name`).
    pub packages: Vec<String>,
}

impl IgnoreScripts {
    /// Checks every name: 1 to 214 bytes, no whitespace or control character.
    pub fn validate(&self) -> std::result::Result<(), resilience_core::ConfigError> {
        for name in &self.packages {
            if name.is_empty()
                || name.len() > MAX_NAME_BYTES
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(resilience_core::ConfigError::new(
                    "ignore_scripts.packages",
                    format!("{name:?} is not a package name"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the build of `need` may be skipped.
    pub fn ignores(&self, need: &BuildNeed) -> bool {
        self.all || self.packages.contains(&need.name)
    }

    /// Splits `needs` into (refused, ignored).
    pub fn split(&self, needs: &[BuildNeed]) -> (Vec<BuildNeed>, Vec<BuildNeed>) {
        needs.iter().cloned().partition(|n| !self.ignores(n))
    }
}

/// Why `pkg` (resolved to `index`, whose `package.json` declares `lifecycle`) needs a build,
/// or `None`.
pub(crate) fn build_need(
    pkg: &LockedPackage,
    index: &PackageIndex,
    lifecycle: &Lifecycle,
) -> Option<BuildNeed> {
    let mut reasons = Vec::new();
    if pkg.has_install_script {
        reasons.push(BuildReason::LockfileFlag);
    }
    let mut install_script = false;
    for (stage, command) in &lifecycle.scripts {
        install_script |= *stage != "postinstall";
        reasons.push(BuildReason::Script {
            stage,
            command: cut(command),
        });
    }
    let gyp = index.entries.iter().any(|e| e.path() == "binding.gyp");
    if gyp && !install_script && lifecycle.gypfile != Some(false) {
        reasons.push(BuildReason::BindingGyp);
    }
    if reasons.is_empty() {
        return None;
    }
    Some(BuildNeed {
        name: pkg.name.clone(),
        version: pkg.version.clone().or_else(|| index.version.clone()),
        path: pkg.path.clone(),
        reasons,
    })
}

/// What the package's `package.json` in the store declares for installing it (scripts,
/// `gypfile`, `os`/`cpu`/`libc`); empty (with a warning) when it cannot be read.
pub(crate) fn read_package_json(
    store: &Store,
    pkg: &LockedPackage,
    index: &PackageIndex,
) -> Lifecycle {
    read_lifecycle(store, pkg, index).unwrap_or_default()
}

fn read_lifecycle(store: &Store, pkg: &LockedPackage, index: &PackageIndex) -> Option<Lifecycle> {
    let (digest, size, exec) = index.entries.iter().find_map(|e| match e {
        IndexEntry::File {
            path,
            digest,
            size,
            exec,
        } if path == "package.json" => Some((digest, *size, *exec)),
        _ => None,
    })?;
    let warn = |reason: String| {
        tracing::warn!(package = %pkg.path, reason = %reason, "cannot read the package's package.json from the store; only the lockfile's hasInstallScript is checked");
    };
    let limit = store.config().limits.max_package_json_bytes;
    if digest.len() != 128
        || !digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        warn(format!("malformed digest {digest:?} in its index"));
        return None;
    }
    if size > limit {
        warn(format!(
            "{size} bytes, over max_package_json_bytes ({limit})"
        ));
        return None;
    }
    let path = store.file_path(digest, exec);
    let mut bytes = Vec::new();
    let read = File::open(&path)
        .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(Error::io("cannot read", &path));
    if let Err(e) = read {
        warn(e.to_string());
        return None;
    }
    match parse_lifecycle(&bytes) {
        Ok(lifecycle) => Some(lifecycle),
        Err(e) => {
            warn(format!("invalid JSON: {e}"));
            None
        }
    }
}

/// A command cut to [`COMMAND_SHOWN_BYTES`] for messages.
fn cut(command: &str) -> String {
    if command.len() <= COMMAND_SHOWN_BYTES {
        return command.to_owned();
    }
    let mut end = COMMAND_SHOWN_BYTES;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", command.get(..end).unwrap_or_default())
}

/// Refuses `needs` unless `ignore` allows each; returns the ignored ones (logged).
pub(crate) fn enforce(
    needs: &[BuildNeed],
    ignore: &IgnoreScripts,
    name: &resilience_core::InstanceName,
) -> Result<Vec<BuildNeed>> {
    let (refused, ignored) = ignore.split(needs);
    for need in &ignored {
        tracing::warn!(name = %name, package = %need.path, build = %need, "build skipped (ignore_scripts): the package is installed without running it");
    }
    if refused.is_empty() {
        return Ok(ignored);
    }
    tracing::warn!(name = %name, packages = refused.len(), "tree refused: packages need a build the allocator does not run");
    Err(Error::BuildRequired { packages: refused })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(name: &str) -> BuildNeed {
        BuildNeed {
            name: name.to_owned(),
            version: Some("1.0.0".to_owned()),
            path: format!("node_modules/{name}"),
            reasons: vec![BuildReason::BindingGyp],
        }
    }

    #[test]
    fn ignore_list_splits_and_validates() {
        let needs = [need("bcrypt"), need("sharp")];
        let ignore = IgnoreScripts {
            all: false,
            packages: vec!["sharp".to_owned()],
        };
        ignore.validate().unwrap();
        let (refused, ignored) = ignore.split(&needs);
        assert_eq!(refused, [need("bcrypt")]);
        assert_eq!(ignored, [need("sharp")]);
        let all = IgnoreScripts {
            all: true,
            ..IgnoreScripts::default()
        };
        assert_eq!(all.split(&needs).0.len(), 0);
        let (refused, _) = IgnoreScripts::default().split(&needs);
        assert_eq!(refused.len(), 2);
        for bad in ["", "a b", "x\n", &"n".repeat(215)] {
            let ignore = IgnoreScripts {
                all: false,
                packages: vec![bad.to_owned()],
            };
            assert!(ignore.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn enforce_lists_every_refused_package() {
        let name = resilience_core::InstanceName::unnamed();
        let err = enforce(
            &[need("bcrypt"), need("sharp")],
            &IgnoreScripts::default(),
            &name,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bcrypt@1.0.0 at node_modules/bcrypt")
                && text.contains("sharp@1.0.0 at node_modules/sharp")
                && text.contains("--ignore-scripts"),
            "{text}"
        );
        assert!(matches!(err, Error::BuildRequired { ref packages } if packages.len() == 2));
        assert!(
            enforce(&[], &IgnoreScripts::default(), &name)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn long_commands_are_cut() {
        assert_eq!(cut("node x.js"), "node x.js");
        let long = "é".repeat(100);
        let shown = cut(&long);
        assert!(shown.len() <= COMMAND_SHOWN_BYTES + 3 && shown.ends_with('…'));
    }
}
