//! `package-lock.json` v2 and v3 reader, v1 (read-only, mapped onto the same model: see
//! the `v1` module), and `pnpm-lock.yaml` v9 (its graph laid out as a hoisted tree: see the
//! `pnpm` and `hoist` modules).
//!
//! The lockfile is the allocation request: every entry of its `packages` map is an install
//! path (`node_modules/a/node_modules/@scope/b`) with the tarball integrity that must end up
//! there, plus its `bin` entries. Only what is needed to build the tree is read, strictly: an
//! unsupported feature (`link: true` workspaces, `file:` links in v1) is an error naming the path in
//! the lockfile, never a silently incomplete `node_modules`.
//!
//! ```
//! use node_modules_alloc::lockfile::{Lockfile, Selection};
//!
//! let text = r#"{
//!   "name": "app", "lockfileVersion": 3,
//!   "packages": {
//!     "": { "name": "app", "dependencies": { "left-pad": "^1.3.0" } },
//!     "node_modules/left-pad": {
//!       "version": "1.3.0",
//!       "integrity": "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEQmvAVlFhTbEvJSKeG3nSMoYfTRPl5+ac4VBKQA/KV1lIw==",
//!       "dev": true
//!     }
//!   }
//! }"#;
//! let lockfile = Lockfile::parse("package-lock.json", text)?;
//! assert_eq!(lockfile.packages().len(), 1);
//! assert_eq!(lockfile.select(&Selection::default()).count(), 1);
//! assert_eq!(lockfile.select(&Selection { include_dev: false, ..Selection::default() }).count(), 0);
//! # Ok::<(), node_modules_alloc::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bins::{normalize_bin_target, validate_bin_name};
use crate::error::{Error, Result, UnfitPackage};
use crate::integrity::Integrity;
use crate::platform::Platform;

mod hoist;
mod pnpm;
mod v1;

/// One package to install.
#[allow(clippy::struct_excessive_bools)] // mirrors the lockfile's independent flags
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// Install path relative to the app dir (`node_modules/a/node_modules/b`).
    pub path: String,
    /// Package name (from the path, or the `name` field for aliases).
    pub name: String,
    /// `version`, if present.
    pub version: Option<String>,
    /// The tarball integrity.
    pub integrity: Integrity,
    /// Declared bins: name → path inside the package (normalized, no `./`).
    pub bins: BTreeMap<String, String>,
    /// Only needed for development.
    pub dev: bool,
    /// Optional dependency (its absence is not fatal for npm when the platform does not match).
    pub optional: bool,
    /// Both a dev and an optional dependency.
    pub dev_optional: bool,
    /// A peer dependency.
    pub peer: bool,
    /// `os` restriction (`["linux", "!win32"]`).
    pub os: Vec<String>,
    /// `cpu` restriction.
    pub cpu: Vec<String>,
    /// `libc` restriction (`["glibc"]`, `["musl"]`).
    pub libc: Vec<String>,
    /// `hasInstallScript`: npm found `preinstall`/`install`/`postinstall` scripts (or a
    /// `binding.gyp`) in the package.
    pub has_install_script: bool,
}

impl LockedPackage {
    /// Whether the package's `os`/`cpu`/`libc` restrictions allow the current platform
    /// ([`Platform::current`]).
    pub fn platform_matches(&self) -> bool {
        self.fits(Platform::current())
    }

    /// Whether the package's `os`/`cpu`/`libc` restrictions allow `platform`.
    pub fn fits(&self, platform: &Platform) -> bool {
        self.unfit_reason(platform).is_none()
    }

    /// Why the package's restrictions exclude `platform` (`None` when it fits).
    pub fn unfit_reason(&self, platform: &Platform) -> Option<String> {
        platform.mismatch(&self.os, &self.cpu, &self.libc)
    }

    /// Optional for this install (`optional` or `devOptional`): skipped when it does not fit.
    pub fn is_optional(&self) -> bool {
        self.optional || self.dev_optional
    }
}

/// A workspace link: `node_modules/<name>` is a symlink to a folder of the app (npm's
/// `"link": true` entries, pnpm's `link:` dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedLink {
    /// Install path relative to the app dir (`node_modules/ws-a`, `node_modules/@s/b`).
    pub path: String,
    /// The linked folder, relative to the app dir (`packages/a`): plain components only, so it
    /// cannot leave the app.
    pub target: String,
    /// Only needed for development.
    pub dev: bool,
    /// Optional.
    pub optional: bool,
}

/// Checks a workspace folder path relative to the app: non-empty plain components (no `.`,
/// `..`, empty, `\\` or NUL), at most 4096 bytes. Returns it with `./` and a trailing `/`
/// dropped.
fn workspace_target(raw: &str) -> std::result::Result<String, String> {
    let trimmed = raw.strip_prefix("./").unwrap_or(raw).trim_end_matches('/');
    let plain = !trimmed.is_empty()
        && trimmed.len() <= 4096
        && !trimmed.starts_with('/')
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']));
    if plain {
        Ok(trimmed.to_owned())
    } else {
        Err(format!(
            "workspace folder {raw:?} must be a relative path inside the app (no `..`)"
        ))
    }
}

/// Which packages of a lockfile to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selection {
    /// Install `dev` packages (npm's default for `npm ci`). Default true.
    pub include_dev: bool,
    /// Install `optional` packages whose `os`/`cpu` match. Default true.
    pub include_optional: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            include_dev: true,
            include_optional: true,
        }
    }
}

/// A parsed `package-lock.json` (v1, v2 or v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    file: PathBuf,
    version: u64,
    packages: Vec<LockedPackage>,
    links: Vec<LockedLink>,
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(rename = "lockfileVersion")]
    lockfile_version: Option<u64>,
    packages: Option<BTreeMap<String, serde_json::Value>>,
}

#[allow(clippy::struct_excessive_bools)] // mirrors the lockfile's independent flags
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPackage {
    name: Option<String>,
    version: Option<String>,
    integrity: Option<String>,
    resolved: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    dev_optional: bool,
    #[serde(default)]
    peer: bool,
    #[serde(default)]
    in_bundle: bool,
    bin: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "string_or_list")]
    os: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    cpu: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    libc: Option<Vec<String>>,
    #[serde(default)]
    has_install_script: bool,
}

/// A platform restriction: a list of strings, or one string (npm accepts both).
fn string_or_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(
        Option::<OneOrMany>::deserialize(deserializer)?.map(|v| match v {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }),
    )
}

/// Splits `node_modules/a/node_modules/@s/b` into package names, validating each.
fn install_names(path: &str) -> Option<Vec<String>> {
    let mut parts = path.split('/').peekable();
    let mut names = Vec::new();
    while let Some(part) = parts.next() {
        if part != "node_modules" {
            return None;
        }
        let first = parts.next()?;
        let name = if first.starts_with('@') {
            let second = parts.next()?;
            if !valid_name_part(first.get(1..)?) || !valid_name_part(second) {
                return None;
            }
            format!("{first}/{second}")
        } else {
            if !valid_name_part(first) {
                return None;
            }
            first.to_owned()
        };
        names.push(name);
    }
    (!names.is_empty()).then_some(names)
}

/// A package name: `name` or `@scope/name`, each part a valid folder name, at most 214 bytes
/// (npm's limit).
fn valid_package_name(name: &str) -> bool {
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => scoped.split_once('/').is_some_and(|(scope, rest)| {
            valid_name_part(scope) && valid_name_part(rest) && !rest.contains('/')
        }),
        None => valid_name_part(name) && !name.contains('/'),
    }
}

fn valid_name_part(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part != "node_modules"
        && !part.contains(['\\', '\0'])
}

/// The `"link": true` entries of a v2/v3 `packages` map: workspace folders (`resolved`,
/// relative to the app) linked at install paths.
fn npm_links(
    map: &BTreeMap<String, serde_json::Value>,
) -> std::result::Result<Vec<LockedLink>, (String, String)> {
    let mut links = Vec::new();
    for (path, value) in map {
        if value.get("link") != Some(&serde_json::Value::Bool(true)) {
            continue;
        }
        let loc = |field: &str| format!("packages[{path:?}].{field}");
        if install_names(path).is_none() {
            return Err((
                format!("packages[{path:?}]"),
                "not an install path of the form node_modules/<name>[/node_modules/<name>...]"
                    .to_owned(),
            ));
        }
        if path.matches("node_modules/").count() > 1 {
            return Err((
                format!("packages[{path:?}]"),
                "a nested workspace link is not supported (only links in the app's node_modules)"
                    .to_owned(),
            ));
        }
        let Some(resolved) = value.get("resolved").and_then(serde_json::Value::as_str) else {
            return Err((
                loc("resolved"),
                "a link entry must name its folder".to_owned(),
            ));
        };
        let target = workspace_target(resolved).map_err(|reason| (loc("resolved"), reason))?;
        let flag = |key: &str| value.get(key) == Some(&serde_json::Value::Bool(true));
        links.push(LockedLink {
            path: path.clone(),
            target,
            dev: flag("dev") || flag("devOptional"),
            optional: flag("optional") || flag("devOptional"),
        });
    }
    Ok(links)
}

/// Parses one `packages` entry; `Ok(None)` for entries provided by a parent (bundled).
fn parse_entry(
    path: &str,
    value: serde_json::Value,
) -> std::result::Result<Option<LockedPackage>, (String, String)> {
    let loc = |field: &str| {
        if field.is_empty() {
            format!("packages[{path:?}]")
        } else {
            format!("packages[{path:?}].{field}")
        }
    };
    let pkg: RawPackage =
        serde_json::from_value(value).map_err(|e| (loc(""), format!("invalid entry: {e}")))?;
    if pkg.link {
        return Err((
            loc("link"),
            "a link entry must have a `resolved` folder".to_owned(),
        ));
    }
    let Some(names) = install_names(path) else {
        return Err((
            loc(""),
            "not an install path of the form node_modules/<name>[/node_modules/<name>...]"
                .to_owned(),
        ));
    };
    if pkg.in_bundle {
        // Shipped inside the parent's tarball; the parent's files provide it.
        return Ok(None);
    }
    let Some(integrity_text) = pkg.integrity else {
        let hint = pkg
            .resolved
            .map(|r| format!(" (resolved {r})"))
            .unwrap_or_default();
        return Err((loc("integrity"), format!("missing integrity{hint}")));
    };
    let integrity: Integrity = integrity_text
        .parse()
        .map_err(|e| (loc("integrity"), format!("{e}")))?;
    let mut bins = BTreeMap::new();
    match pkg.bin {
        None => {}
        Some(serde_json::Value::Object(map)) => {
            for (name, target) in map {
                let Some(target) = target.as_str() else {
                    return Err((
                        loc(&format!("bin.{name}")),
                        "bin target must be a string".to_owned(),
                    ));
                };
                let normalized = validate_bin_name(&name)
                    .and_then(|()| normalize_bin_target(target))
                    .map_err(|e| {
                        (
                            loc(&format!("bin.{name}")),
                            format!("invalid bin {name:?} -> {target:?}: {e}"),
                        )
                    })?;
                bins.insert(name, normalized);
            }
        }
        Some(_) => return Err((loc("bin"), "expected an object of name -> path".to_owned())),
    }
    let name = names.last().cloned().unwrap_or_default();
    Ok(Some(LockedPackage {
        name: pkg.name.unwrap_or(name),
        path: path.to_owned(),
        version: pkg.version,
        integrity,
        bins,
        dev: pkg.dev,
        optional: pkg.optional,
        dev_optional: pkg.dev_optional,
        peer: pkg.peer,
        os: pkg.os.unwrap_or_default(),
        cpu: pkg.cpu.unwrap_or_default(),
        libc: pkg.libc.unwrap_or_default(),
        has_install_script: pkg.has_install_script,
    }))
}

impl Lockfile {
    /// Reads and parses a lockfile from disk.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(Error::io("cannot read lockfile", path))?;
        Self::parse(path, &text)
    }

    /// Parses lockfile text; `file` is used in error messages, and its name picks the format:
    /// `pnpm-lock.yaml` (or any `.yaml`/`.yml` file) is read as a pnpm v9 lockfile, anything
    /// else as a `package-lock.json` (`npm-shrinkwrap.json`).
    pub fn parse(file: impl AsRef<Path>, text: &str) -> Result<Self> {
        let file = file.as_ref().to_path_buf();
        let err = |location: String, reason: String| Error::Lockfile {
            file: file.clone(),
            location,
            reason,
        };
        if is_pnpm_lockfile(&file) {
            let (packages, links) =
                pnpm::packages(text).map_err(|(location, reason)| err(location, reason))?;
            return Ok(Self {
                file,
                version: PNPM_VERSION,
                packages,
                links,
            });
        }
        let raw: RawLock = serde_json::from_str(text)
            .map_err(|e| err("(document)".to_owned(), format!("invalid JSON: {e}")))?;
        let version = raw.lockfile_version.unwrap_or(0);
        if version == 1 {
            let raw: v1::RawLockV1 = serde_json::from_str(text)
                .map_err(|e| err("dependencies".to_owned(), format!("invalid: {e}")))?;
            let packages = v1::packages(raw.dependencies.unwrap_or_default())
                .map_err(|(location, reason)| err(location, reason))?;
            return Ok(Self {
                file,
                version,
                packages,
                links: Vec::new(),
            });
        }
        if !(2..=3).contains(&version) {
            return Err(err(
                "lockfileVersion".to_owned(),
                format!(
                    "version {version} is not supported (need 1, 2 or 3; run `npm install --lockfile-version 3`)"
                ),
            ));
        }
        let Some(map) = raw.packages else {
            return Err(err(
                "packages".to_owned(),
                "missing `packages` map".to_owned(),
            ));
        };
        let links = npm_links(&map).map_err(|(location, reason)| err(location, reason))?;
        let mut packages = Vec::new();
        for (path, value) in map {
            if path.is_empty() || links.iter().any(|l| l.path == path) {
                continue; // the root project itself, or a workspace link
            }
            if !path.starts_with("node_modules/") {
                // A workspace folder's own entry (its package.json, not installed) is fine;
                // a package installed inside it is not supported.
                if links.iter().any(|l| l.target == path) {
                    continue;
                }
                if let Some(link) = links
                    .iter()
                    .find(|l| path.starts_with(&format!("{}/node_modules/", l.target)))
                {
                    return Err(err(
                        format!("packages[{path:?}]"),
                        format!(
                            "a workspace's own node_modules ({}/node_modules) is not supported: only dependencies hoisted to the app's node_modules are",
                            link.target
                        ),
                    ));
                }
            }
            if let Some(pkg) =
                parse_entry(&path, value).map_err(|(location, reason)| err(location, reason))?
            {
                packages.push(pkg);
            }
        }
        Ok(Self {
            file,
            version,
            packages,
            links,
        })
    }

    /// The lockfile on disk (as given).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// `lockfileVersion`: 1, 2 or 3 for `package-lock.json`, 9 for `pnpm-lock.yaml`.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every package entry, sorted by install path.
    pub fn packages(&self) -> &[LockedPackage] {
        &self.packages
    }

    /// Every workspace link, sorted by install path.
    pub fn links(&self) -> &[LockedLink] {
        &self.links
    }

    /// The workspace links to create under `selection` (their `dev`/`optional` flags; no
    /// platform filter: a workspace is the app's own code).
    pub fn select_links<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> impl Iterator<Item = &'a LockedLink> + 'a {
        self.links.iter().filter(move |l| {
            (!l.dev || selection.include_dev) && (!l.optional || selection.include_optional)
        })
    }

    /// The packages to install under `selection` on this platform ([`Platform::current`]).
    pub fn select<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> impl Iterator<Item = &'a LockedPackage> + 'a {
        self.select_on(selection, Platform::current())
    }

    /// The packages to install under `selection` on `platform`: optional packages whose
    /// `os`/`cpu`/`libc` exclude it are skipped. Required packages are kept whatever their
    /// restrictions: [`Lockfile::unfit_required`] lists those that do not fit.
    pub fn select_on<'a>(
        &'a self,
        selection: &'a Selection,
        platform: &'a Platform,
    ) -> impl Iterator<Item = &'a LockedPackage> + 'a {
        self.packages
            .iter()
            .filter(move |p| selected(p, *selection) && (!p.is_optional() || p.fits(platform)))
    }

    /// The required (not optional) packages selected by `selection` that do not fit
    /// `platform`, each with the reason: such a tree cannot work on it.
    pub fn unfit_required(&self, selection: &Selection, platform: &Platform) -> Vec<UnfitPackage> {
        self.packages
            .iter()
            .filter(|p| selected(p, *selection) && !p.is_optional())
            .filter_map(|p| {
                p.unfit_reason(platform).map(|reason| UnfitPackage {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    path: p.path.clone(),
                    reason,
                })
            })
            .collect()
    }
}

/// The lockfile of the app in `app_dir`: `package-lock.json`, else `npm-shrinkwrap.json`, else
/// `pnpm-lock.yaml` (the first that exists; `package-lock.json` when none does).
pub fn default_lockfile(app_dir: &Path) -> PathBuf {
    ["package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml"]
        .iter()
        .map(|name| app_dir.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| app_dir.join("package-lock.json"))
}

/// [`Lockfile::version`] of a `pnpm-lock.yaml`.
const PNPM_VERSION: u64 = 9;

/// Whether `file` names a pnpm lockfile (`pnpm-lock.yaml`, or any YAML file).
fn is_pnpm_lockfile(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Whether `selection` keeps `p` (dev and optional flags only, not the platform).
fn selected(p: &LockedPackage, selection: Selection) -> bool {
    if p.dev && !selection.include_dev {
        return false;
    }
    if p.optional && !selection.include_optional {
        return false;
    }
    !(p.dev_optional && !(selection.include_dev || selection.include_optional))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRI: &str = "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEQmvAVlFhTbEvJSKeG3nSMoYfTRPl5+ac4VBKQA/KV1lIw==";

    fn lock(packages: &str, version: u64) -> String {
        format!(r#"{{"lockfileVersion": {version}, "packages": {{"": {{}}, {packages}}}}}"#)
    }

    #[test]
    fn reads_nested_and_scoped_paths_with_bins_and_flags() {
        let text = lock(
            &format!(
                r#""node_modules/a": {{"integrity": "{SRI}", "bin": {{"a": "./bin/a.js"}}}},
                   "node_modules/a/node_modules/@s/b": {{"integrity": "{SRI}", "optional": true, "peer": true}},
                   "node_modules/c": {{"integrity": "{SRI}", "dev": true}}"#
            ),
            2,
        );
        let lockfile = Lockfile::parse("package-lock.json", &text).unwrap();
        let pkgs = lockfile.packages();
        assert_eq!(pkgs.len(), 3);
        assert_eq!(pkgs[0].bins.get("a").unwrap(), "bin/a.js");
        assert_eq!(pkgs[1].name, "@s/b");
        assert!(pkgs[1].optional && pkgs[1].peer);
        assert!(pkgs[2].dev);
        let no_dev = Selection {
            include_dev: false,
            ..Selection::default()
        };
        assert_eq!(lockfile.select(&no_dev).count(), 2);
    }

    #[test]
    fn workspace_links_are_read_and_their_own_node_modules_refused() {
        let text = lock(
            &format!(
                r#""node_modules/ws": {{"resolved": "packages/ws", "link": true}},
                   "node_modules/@s/tool": {{"resolved": "./tools/t/", "link": true, "dev": true}},
                   "packages/ws": {{"name": "ws", "version": "1.0.0", "dependencies": {{"a": "1"}}}},
                   "tools/t": {{"name": "@s/tool", "version": "0.1.0"}},
                   "node_modules/a": {{"integrity": "{SRI}"}}"#
            ),
            3,
        );
        let lockfile = Lockfile::parse("package-lock.json", &text).unwrap();
        assert_eq!(lockfile.packages().len(), 1);
        let links: Vec<(&str, &str, bool)> = lockfile
            .links()
            .iter()
            .map(|l| (l.path.as_str(), l.target.as_str(), l.dev))
            .collect();
        assert_eq!(
            links,
            [
                ("node_modules/@s/tool", "tools/t", true),
                ("node_modules/ws", "packages/ws", false)
            ]
        );
        let no_dev = Selection {
            include_dev: false,
            ..Selection::default()
        };
        assert_eq!(lockfile.select_links(&no_dev).count(), 1);

        for (bad, want) in [
            (
                format!(
                    r#""node_modules/ws": {{"resolved": "packages/ws", "link": true}},
                       "packages/ws/node_modules/a": {{"integrity": "{SRI}"}}"#
                ),
                "own node_modules",
            ),
            (
                r#""node_modules/ws": {"resolved": "../outside", "link": true}"#.to_owned(),
                "inside the app",
            ),
            (
                r#""node_modules/ws": {"resolved": "/etc", "link": true}"#.to_owned(),
                "inside the app",
            ),
            (
                r#""node_modules/ws": {"link": true}"#.to_owned(),
                "resolved",
            ),
            (
                r#""node_modules/a/node_modules/ws": {"resolved": "packages/ws", "link": true}"#
                    .to_owned(),
                "nested workspace link",
            ),
        ] {
            let err = Lockfile::parse("package-lock.json", &lock(&bad, 3))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want:?} not in {err}");
        }
    }

    #[test]
    fn refuses_unknown_versions_missing_integrity_and_bad_paths() {
        let err = Lockfile::parse("x", r#"{"lockfileVersion": 4, "packages": {}}"#).unwrap_err();
        assert!(err.to_string().contains("lockfileVersion"), "{err}");
        let err = Lockfile::parse("x", &lock(r#""node_modules/a": {"version": "1.0.0"}"#, 3))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("packages[\"node_modules/a\"].integrity"),
            "{err}"
        );
        for bad in [
            "node_modules/..",
            "lib/a",
            "node_modules/a/../../etc",
            "node_modules/@s",
        ] {
            let err = Lockfile::parse(
                "x",
                &lock(&format!(r#""{bad}": {{"integrity": "{SRI}"}}"#), 3),
            )
            .unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = Lockfile::parse(
            "x",
            &lock(
                &format!(r#""node_modules/a": {{"integrity": "{SRI}", "bin": {{"../x": "a"}}}}"#),
                3,
            ),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bin"), "{err}");
    }

    #[test]
    fn skips_optional_packages_for_other_platforms() {
        let text = lock(
            &format!(
                r#""node_modules/fsevents": {{"integrity": "{SRI}", "optional": true, "os": ["!{}"]}}"#,
                match std::env::consts::OS {
                    "macos" => "darwin",
                    o => o,
                }
            ),
            3,
        );
        let lockfile = Lockfile::parse("x", &text).unwrap();
        assert_eq!(lockfile.select(&Selection::default()).count(), 0);
    }

    fn glibc_x64() -> Platform {
        Platform {
            os: "linux".to_owned(),
            cpu: "x64".to_owned(),
            libc: Some(crate::platform::Libc::Glibc),
        }
    }

    #[test]
    fn optional_packages_are_filtered_by_libc() {
        let text = lock(
            &format!(
                r#""node_modules/@img/sharp-linux-x64": {{"version": "0.33.5", "integrity": "{SRI}", "optional": true, "os": ["linux"], "cpu": ["x64"], "libc": ["glibc"]}},
                   "node_modules/@img/sharp-linuxmusl-x64": {{"version": "0.33.5", "integrity": "{SRI}", "optional": true, "os": ["linux"], "cpu": ["x64"], "libc": ["musl"]}},
                   "node_modules/sharp": {{"version": "0.33.5", "integrity": "{SRI}", "hasInstallScript": true}}"#
            ),
            3,
        );
        let lockfile = Lockfile::parse("x", &text).unwrap();
        let selection = Selection::default();
        let glibc = glibc_x64();
        let picked: Vec<&str> = lockfile
            .select_on(&selection, &glibc)
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(
            picked,
            ["node_modules/@img/sharp-linux-x64", "node_modules/sharp"]
        );
        let musl = Platform {
            libc: Some(crate::platform::Libc::Musl),
            ..glibc_x64()
        };
        let picked: Vec<&str> = lockfile
            .select_on(&selection, &musl)
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(
            picked,
            [
                "node_modules/@img/sharp-linuxmusl-x64",
                "node_modules/sharp"
            ]
        );
        let unknown = Platform {
            libc: None,
            ..glibc_x64()
        };
        assert_eq!(lockfile.select_on(&selection, &unknown).count(), 1);
        assert!(lockfile.unfit_required(&selection, &glibc).is_empty());
        assert!(lockfile.packages()[2].has_install_script);
        assert!(!lockfile.packages()[0].has_install_script);
    }

    #[test]
    fn required_packages_that_do_not_fit_are_listed() {
        let text = lock(
            &format!(
                r#""node_modules/musl-only": {{"version": "1.0.0", "integrity": "{SRI}", "libc": ["musl"]}},
                   "node_modules/mac-only": {{"version": "2.0.0", "integrity": "{SRI}", "os": ["darwin"], "dev": true}},
                   "node_modules/arm-only": {{"integrity": "{SRI}", "cpu": ["arm64"], "devOptional": true}},
                   "node_modules/fine": {{"integrity": "{SRI}", "os": ["linux"]}}"#
            ),
            3,
        );
        let lockfile = Lockfile::parse("x", &text).unwrap();
        let glibc = glibc_x64();
        let unfit = lockfile.unfit_required(&Selection::default(), &glibc);
        let named: Vec<String> = unfit.iter().map(ToString::to_string).collect();
        assert_eq!(named.len(), 2, "{named:?}");
        assert!(
            named[0].starts_with("mac-only@2.0.0 at node_modules/mac-only: os"),
            "{named:?}"
        );
        assert!(
            named[1].starts_with("musl-only@1.0.0 at node_modules/musl-only: libc"),
            "{named:?}"
        );
        // A dev package not installed is not required.
        let no_dev = Selection {
            include_dev: false,
            ..Selection::default()
        };
        assert_eq!(lockfile.unfit_required(&no_dev, &glibc).len(), 1);
        // Required packages stay selected (the caller refuses them); the optional one is skipped.
        assert_eq!(lockfile.select_on(&Selection::default(), &glibc).count(), 3);
    }

    #[test]
    fn platform_fields_are_lists_or_one_string_else_errors_naming_the_entry() {
        let text = lock(
            &format!(r#""node_modules/a": {{"integrity": "{SRI}", "libc": "glibc"}}"#),
            3,
        );
        let lockfile = Lockfile::parse("x", &text).unwrap();
        assert_eq!(lockfile.packages()[0].libc, ["glibc"]);
        let text = lock(
            &format!(r#""node_modules/a": {{"integrity": "{SRI}", "libc": [1]}}"#),
            3,
        );
        let err = Lockfile::parse("x", &text).unwrap_err().to_string();
        assert!(err.contains("node_modules/a"), "{err}");
        let text = lock(
            &format!(r#""node_modules/a": {{"integrity": "{SRI}", "hasInstallScript": "yes"}}"#),
            3,
        );
        assert!(Lockfile::parse("x", &text).is_err());
    }
}
