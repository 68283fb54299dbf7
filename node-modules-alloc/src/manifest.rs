//! The manifest of a `node_modules` tree: every file (content digest, size, executable bit)
//! and symlink, sorted by path. Its sha512 digest names the tree: identical lockfiles give
//! identical manifests, hence one template, and the completion marker of a published tree
//! holds this digest.
//!
//! ```
//! use node_modules_alloc::manifest::{Manifest, ManifestEntry};
//!
//! let manifest = Manifest {
//!     entries: vec![ManifestEntry::Symlink { path: ".bin/tool".into(), target: "../tool/cli.js".into() }],
//! };
//! assert_eq!(manifest.digest(), manifest.clone().digest());
//! assert_eq!(manifest.digest().len(), 128);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::{BuildNeed, Error, MissingPackage, Result, UnfitPackage};
use crate::fsutil::atomic_write;
use crate::integrity::sha512_hex;
use crate::lifecycle::{build_need, read_package_json};
use crate::lockfile::{Lockfile, Selection};
use crate::platform::Platform;
use crate::store::{IndexEntry, Store};
use crate::tree_check::{self, Item, Violation};

/// One entry of a tree, path relative to the `node_modules` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ManifestEntry {
    /// A file linked or copied from the store.
    File {
        /// Path relative to `node_modules`.
        path: String,
        /// sha512 hex of the content.
        digest: String,
        /// Size in bytes.
        size: u64,
        /// Executable variant.
        exec: bool,
    },
    /// A symlink (package symlinks and `.bin` links).
    Symlink {
        /// Path relative to `node_modules`.
        path: String,
        /// Relative link target.
        target: String,
    },
}

impl ManifestEntry {
    /// The entry's path relative to `node_modules`.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// A tree description.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Entries sorted by path.
    pub entries: Vec<ManifestEntry>,
}

/// A lockfile resolved against the store.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The tree to build.
    pub manifest: Manifest,
    /// `manifest.digest()`.
    pub digest: String,
    /// Digest of the selected lockfile entries (path, integrity, bins).
    pub lockfile_digest: String,
    /// Packages installed.
    pub packages: usize,
    /// Packages of the tree that need a build the allocator does not run (lifecycle scripts,
    /// `binding.gyp`), in lockfile order: the allocator refuses the tree unless
    /// [`IgnoreScripts`](crate::allocator::IgnoreScripts) allows each.
    pub builds: Vec<BuildNeed>,
}

impl Manifest {
    /// sha512 hex of the canonical JSON form.
    pub fn digest(&self) -> String {
        sha512_hex(&serde_json::to_vec(self).unwrap_or_default())
    }

    /// Number of regular files.
    pub fn files(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, ManifestEntry::File { .. }))
            .count()
    }

    /// Content digests of all files.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            ManifestEntry::File { digest, .. } => Some(digest.as_str()),
            ManifestEntry::Symlink { .. } => None,
        })
    }

    /// Saves the manifest under `STORE/manifests/<digest>.json` and returns the digest.
    pub fn save(&self, store: &Store) -> Result<String> {
        let digest = self.digest();
        let path = store.dir("manifests").join(format!("{digest}.json"));
        if !path.exists() {
            let bytes = serde_json::to_vec(self).map_err(|e| Error::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            atomic_write(&store.dir("tmp"), &path, &bytes, true, 0o444)?;
        }
        Ok(digest)
    }

    /// Checks that the manifest can be laid out safely on its own: plain relative paths, content
    /// digests of 128 hex digits, no entry below another one, every symlink resolving inside the
    /// tree. (Which package owns what is only known to [`Manifest::plan`], which checks more.)
    /// Returns a description of the first problem.
    pub fn check_layout(&self) -> std::result::Result<(), String> {
        for entry in &self.entries {
            if let ManifestEntry::File { path, digest, .. } = entry
                && (digest.len() != 128
                    || !digest
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            {
                return Err(format!("entry {path:?} has a malformed digest {digest:?}"));
            }
        }
        let items: Vec<Item<'_>> = self.entries.iter().map(item).collect();
        tree_check::check(&items, None).map_err(|violation| {
            let path = |i: usize| self.entries.get(i).map_or("?", ManifestEntry::path);
            let target = |i: usize| match self.entries.get(i) {
                Some(ManifestEntry::Symlink { target, .. }) => target.as_str(),
                _ => "?",
            };
            match violation {
                Violation::BadPath { entry } => {
                    format!("entry {:?} has an unusable path", path(entry))
                }
                Violation::UnderFile { entry, file } => {
                    format!(
                        "entry {:?} lies below the file {:?}",
                        path(entry),
                        path(file)
                    )
                }
                Violation::ThroughLink { entry, link } => format!(
                    "entry {:?} would be written through the symlink {:?}",
                    path(entry),
                    path(link)
                ),
                Violation::Escapes { link, .. } | Violation::Foreign { link, .. } => format!(
                    "symlink {:?} -> {:?} resolves outside the tree",
                    path(link),
                    target(link)
                ),
            }
        })
    }

    /// Loads a saved manifest and checks that it still hashes to `digest`.
    pub fn load(store: &Store, digest: &str) -> Result<Self> {
        let path = store.dir("manifests").join(format!("{digest}.json"));
        let bytes = std::fs::read(&path).map_err(Error::io("cannot read manifest", &path))?;
        let manifest: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.digest() != digest {
            return Err(Error::Malformed {
                path,
                reason: "manifest does not hash to its name".to_owned(),
            });
        }
        manifest.check_layout().map_err(|reason| Error::Malformed {
            path,
            reason: format!("unsafe tree: {reason}"),
        })?;
        Ok(manifest)
    }

    /// Resolves the selected packages of `lockfile` against the store. Fails with
    /// [`Error::MissingPackages`] listing *every* package the store lacks, and with
    /// [`Error::Lockfile`] naming both packages concerned when the packages, laid out together,
    /// would conflict or make the tree unsafe: an entry below another package's file or
    /// symlink, a symlink resolving (through the tree's other symlinks) outside the package that
    /// ships it (a `.bin` link: outside the package that declared the bin), a package entry
    /// where another package's bin link goes.
    ///
    /// Packages are filtered for this platform ([`Platform::current`]): see [`Manifest::plan_on`].
    pub fn plan(store: &Store, lockfile: &Lockfile, selection: &Selection) -> Result<Plan> {
        Self::plan_on(store, lockfile, selection, Platform::current())
    }

    /// [`Manifest::plan`] for `platform`: optional packages whose `os`/`cpu`/`libc` exclude it
    /// are left out, and a required package that does not fit fails with
    /// [`Error::PlatformMismatch`] listing every such package (before the store is read).
    /// [`Plan::builds`] lists the packages that need a build.
    pub fn plan_on(
        store: &Store,
        lockfile: &Lockfile,
        selection: &Selection,
        platform: &Platform,
    ) -> Result<Plan> {
        let unfit = lockfile.unfit_required(selection, platform);
        if !unfit.is_empty() {
            tracing::warn!(platform = %platform, packages = unfit.len(), "tree refused: required packages do not fit the platform");
            return Err(Error::PlatformMismatch {
                platform: platform.to_string(),
                packages: unfit,
            });
        }
        let mut builds = Vec::new();
        let mut tree = Assembly::default();
        let mut missing = Vec::new();
        let mut canonical = Vec::new();
        let refuse = |package: &str, reason: String| Error::Lockfile {
            file: lockfile.file().to_path_buf(),
            location: format!("packages[{package:?}]"),
            reason,
        };
        let mut unfit = Vec::new();
        for pkg in lockfile.select_on(selection, platform) {
            let Some(index) = store.read_index(&pkg.integrity)? else {
                missing.push(MissingPackage {
                    path: pkg.path.clone(),
                    integrity: pkg.integrity.to_string(),
                });
                continue;
            };
            // The package's own `os`/`cpu`/`libc` count too: a v1 lockfile carries none.
            let declared = read_package_json(store, pkg, &index);
            if let Some(reason) = platform.mismatch(&declared.os, &declared.cpu, &declared.libc) {
                if pkg.is_optional() {
                    tracing::debug!(package = %pkg.path, reason = %reason, "optional package skipped: its package.json excludes the platform");
                } else {
                    unfit.push(UnfitPackage {
                        name: pkg.name.clone(),
                        version: pkg.version.clone(),
                        path: pkg.path.clone(),
                        reason: format!("{reason} (in its package.json)"),
                    });
                }
                continue;
            }
            canonical.push((
                pkg.path.clone(),
                pkg.integrity.to_string(),
                pkg.bins.clone(),
            ));
            tree.add_package(pkg, &index)
                .map_err(|reason| refuse(&pkg.path, reason))?;
            builds.extend(build_need(pkg, &index, &declared));
        }
        let mut links = Vec::new();
        for link in lockfile.select_links(selection) {
            tree.add_link(link)
                .map_err(|reason| refuse(&link.path, reason))?;
            links.push((link.path.clone(), link.target.clone()));
        }
        if !missing.is_empty() {
            return Err(Error::MissingPackages { missing });
        }
        if !unfit.is_empty() {
            tracing::warn!(platform = %platform, packages = unfit.len(), "tree refused: required packages do not fit the platform");
            return Err(Error::PlatformMismatch {
                platform: platform.to_string(),
                packages: unfit,
            });
        }
        tree.check().map_err(|(package, reason)| {
            tracing::warn!(package = %package, reason = %reason, "tree refused: packages laid out together are unsafe");
            refuse(&package, reason)
        })?;
        let packages = tree.packages.len();
        let manifest = Self {
            entries: tree.entries.into_values().map(|o| o.entry).collect(),
        };
        // Without links the digest is what it was before workspaces were supported, so existing
        // templates stay valid.
        let canonical = if links.is_empty() {
            serde_json::to_vec(&(canonical, selection))
        } else {
            serde_json::to_vec(&(canonical, links, selection))
        };
        let lockfile_digest = sha512_hex(&canonical.unwrap_or_default());
        Ok(Plan {
            digest: manifest.digest(),
            manifest,
            lockfile_digest,
            packages,
            builds,
        })
    }
}

/// The merged tree being assembled: every entry with the package that ships it.
#[derive(Debug, Default)]
struct Assembly {
    entries: BTreeMap<String, Owned>,
    /// (lockfile path, directory relative to `node_modules`) of every installed package.
    packages: Vec<(String, String)>,
}

impl Assembly {
    fn package_path(&self, i: usize) -> &str {
        self.packages.get(i).map_or("?", |(p, _)| p.as_str())
    }

    /// Adds a package's entries and its `.bin` links; on a conflict, the reason.
    fn add_package(
        &mut self,
        pkg: &crate::lockfile::LockedPackage,
        index: &crate::store::PackageIndex,
    ) -> std::result::Result<(), String> {
        let rel = pkg.path.strip_prefix("node_modules/").unwrap_or(&pkg.path);
        let owner = self.packages.len();
        self.packages.push((pkg.path.clone(), rel.to_owned()));
        let mut bins = index.bins.clone();
        bins.extend(pkg.bins.clone());
        let bin_targets: std::collections::HashSet<&str> =
            bins.values().map(String::as_str).collect();
        for entry in &index.entries {
            let path = format!("{rel}/{}", entry.path());
            let item = match entry {
                IndexEntry::File {
                    digest, size, exec, ..
                } => ManifestEntry::File {
                    path: path.clone(),
                    digest: digest.clone(),
                    size: *size,
                    exec: *exec || bin_targets.contains(entry.path()),
                },
                IndexEntry::Symlink { target, .. } => ManifestEntry::Symlink {
                    path: path.clone(),
                    target: target.clone(),
                },
            };
            let shipped = Owned {
                entry: item,
                owner,
                bin: false,
                external: false,
            };
            if let Some(existing) = self.entries.insert(path.clone(), shipped) {
                return Err(format!(
                    "{path} conflicts with another package's entry (of package {})",
                    self.package_path(existing.owner)
                ));
            }
        }
        // `.bin` lives in the node_modules directory that holds the package.
        let name_depth = if pkg.name.starts_with('@')
            && rel.rsplit('/').nth(1).is_some_and(|s| s.starts_with('@'))
        {
            2
        } else {
            1
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let split = parts.len().saturating_sub(name_depth);
        let parent = parts.get(..split).map(|p| p.join("/")).unwrap_or_default();
        let own = parts.get(split..).map(|p| p.join("/")).unwrap_or_default();
        for (bin, target) in &bins {
            // A map lookup, not a scan of the package's entries: `directories.bin` can declare
            // a bin for every file of a large package.
            let shipped_here = self
                .entries
                .get(&format!("{rel}/{target}"))
                .is_some_and(|e| e.owner == owner && !e.bin);
            if !shipped_here {
                tracing::warn!(package = %pkg.path, bin, target, "bin target missing from package; skipped");
                continue;
            }
            let link = if parent.is_empty() {
                format!(".bin/{bin}")
            } else {
                format!("{parent}/.bin/{bin}")
            };
            match self.entries.get(&link) {
                Some(existing) if existing.bin => {
                    tracing::debug!(package = %pkg.path, bin, "bin already provided by another package");
                    continue;
                }
                Some(existing) => {
                    let shipper = self.package_path(existing.owner);
                    tracing::warn!(package = %pkg.path, bin, shadowed_by = shipper, "bin shadowed by another package's entry; refusing the tree");
                    return Err(format!(
                        "bin {bin:?} would be shadowed by {link:?}, shipped by package {shipper}"
                    ));
                }
                None => {}
            }
            let symlink = ManifestEntry::Symlink {
                path: link.clone(),
                target: format!("../{own}/{target}"),
            };
            self.entries.insert(
                link,
                Owned {
                    entry: symlink,
                    owner,
                    bin: true,
                    external: false,
                },
            );
        }
        Ok(())
    }

    /// Adds a workspace link: `node_modules/<name>` → the app's folder (`../packages/a`).
    fn add_link(&mut self, link: &crate::lockfile::LockedLink) -> std::result::Result<(), String> {
        let rel = link
            .path
            .strip_prefix("node_modules/")
            .unwrap_or(&link.path);
        let target = format!("{}{}", "../".repeat(rel.split('/').count()), link.target);
        if !is_workspace_link_target(rel, &target) {
            return Err(format!(
                "workspace link {rel:?} -> {:?} is not a top-level link into the app",
                link.target
            ));
        }
        let owner = self.packages.len();
        self.packages.push((link.path.clone(), rel.to_owned()));
        let entry = Owned {
            entry: ManifestEntry::Symlink {
                path: rel.to_owned(),
                target,
            },
            owner,
            bin: false,
            external: true,
        };
        if let Some(existing) = self.entries.insert(rel.to_owned(), entry) {
            return Err(format!(
                "workspace link {rel} conflicts with an entry of package {}",
                self.package_path(existing.owner)
            ));
        }
        Ok(())
    }

    /// Checks the merged tree (see [`check_merged_tree`]).
    fn check(&self) -> std::result::Result<(), (String, String)> {
        check_merged_tree(&self.entries, &self.packages)
    }
}

/// A manifest entry with the package that ships it (or declared it, for a bin link).
#[derive(Debug)]
struct Owned {
    entry: ManifestEntry,
    owner: usize,
    bin: bool,
    /// A workspace link (to a folder of the app, outside the tree).
    external: bool,
}

impl Owned {
    fn item(&self) -> Item<'_> {
        Item {
            owner: Some(self.owner),
            external: self.external,
            ..item(&self.entry)
        }
    }
}

/// Whether a symlink at `path` (relative to `node_modules`) pointing at `target` is a workspace
/// link: at the top of the tree (`name` or `@scope/name`), climbing exactly out of
/// `node_modules` (`../` or `../../`) into plain components.
fn is_workspace_link_target(path: &str, target: &str) -> bool {
    let depth = path.split('/').count();
    let up = "../".repeat(depth);
    let top_level = depth == 1 || (depth == 2 && path.starts_with('@'));
    top_level
        && target.strip_prefix(&up).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
        })
}

fn item(entry: &ManifestEntry) -> Item<'_> {
    match entry {
        ManifestEntry::File { path, .. } => Item {
            path,
            link: None,
            owner: None,
            external: false,
        },
        ManifestEntry::Symlink { path, target } => Item {
            path,
            link: Some(target),
            owner: None,
            // A laid-out manifest has no ownership: a workspace link's `../` target is allowed
            // when the manifest is planned (see `Assembly::add_link`), and recognized here by
            // leaving the tree.
            external: is_workspace_link_target(path, target),
        },
    }
}

/// Checks the merged tree; on a violation returns the lockfile path of the package to blame and
/// a reason naming the other package.
fn check_merged_tree(
    entries: &BTreeMap<String, Owned>,
    packages: &[(String, String)],
) -> std::result::Result<(), (String, String)> {
    let list: Vec<&Owned> = entries.values().collect();
    let items: Vec<Item<'_>> = list.iter().map(|o| o.item()).collect();
    let roots: Vec<&str> = packages.iter().map(|(_, rel)| rel.as_str()).collect();
    let Err(violation) = tree_check::check(&items, Some(&roots)) else {
        return Ok(());
    };
    let package = |p: usize| packages.get(p).map_or("?", |(path, _)| path.as_str());
    let at = |i: usize| list.get(i).copied();
    let owner = |i: usize| at(i).map_or("?", |o| package(o.owner));
    let path = |i: usize| at(i).map_or("?", |o| o.entry.path());
    let describe = |i: usize| match at(i) {
        Some(Owned {
            entry: ManifestEntry::Symlink { path, target },
            bin,
            ..
        }) => format!(
            "{} {path:?} -> {target:?}",
            if *bin { "bin link" } else { "symlink" }
        ),
        Some(o) => format!("entry {:?}", o.entry.path()),
        None => "?".to_owned(),
    };
    let through = |via: &[usize]| {
        let mut out = String::new();
        for (n, &v) in via.iter().enumerate() {
            let step = if n == 0 {
                " (through symlink"
            } else {
                ", then"
            };
            let _ = write!(out, "{step} {:?} of package {}", path(v), owner(v));
        }
        if !via.is_empty() {
            out.push(')');
        }
        out
    };
    Err(match violation {
        Violation::BadPath { entry } => (
            owner(entry).to_owned(),
            format!("{} has an unusable path", describe(entry)),
        ),
        Violation::UnderFile { entry, file } => (
            owner(entry).to_owned(),
            format!(
                "{} conflicts with another package's entry: it lies below the file {:?} of package {}",
                describe(entry),
                path(file),
                owner(file)
            ),
        ),
        Violation::ThroughLink { entry, link } => (
            owner(entry).to_owned(),
            format!(
                "{} would be written through {} shipped by package {}",
                describe(entry),
                describe(link),
                owner(link)
            ),
        ),
        Violation::Escapes { link, via } => (
            owner(link).to_owned(),
            format!(
                "{} resolves outside node_modules{}",
                describe(link),
                through(&via)
            ),
        ),
        Violation::Foreign {
            link,
            resolved,
            package: into,
            via,
        } => {
            let into = into.map_or_else(
                || "outside every package".to_owned(),
                |p| format!("into package {}", package(p)),
            );
            let whose = if at(link).is_some_and(|o| o.bin) {
                "that declared the bin"
            } else {
                "that ships it"
            };
            (
                owner(link).to_owned(),
                format!(
                    "{} resolves to {resolved:?}{}, {into}, not into package {} {whose}",
                    describe(link),
                    through(&via),
                    owner(link)
                ),
            )
        }
    })
}
