//! `pnpm-lock.yaml` v9 reader: the dependency graph of the root importer, laid out as a
//! hoisted `node_modules` (what pnpm installs with `node-linker=hoisted`) by the `hoist` module.
//!
//! A v9 lockfile splits a package in two: `packages` holds what does not depend on the
//! install (`name@version` → tarball `resolution.integrity`, `os`/`cpu`/`libc`), `snapshots`
//! holds the resolved dependencies of each *instance* (`name@version(peer@version)...`: the
//! same files, resolved against different peers). A dependency is written `name: version` (a
//! snapshot key `name@version...`), or `alias: real-name@version` (npm aliases).
//!
//! Read strictly, like the npm lockfiles: anything this allocator cannot install exactly is an
//! error naming the key, never a silently different tree. Refused today: lockfile versions
//! other than 9, `patchedDependencies` (the patch would not be applied), workspaces (importers
//! other than `.`, and `link:` dependencies), `file:` and git dependencies, and packages
//! without an `integrity`.
//!
//! Peer instances: two snapshots of the same `name@version` have the same files, so the
//! hoisted tree holds one copy wherever Node's resolution lets both dependents find it; a
//! peer resolves from where the package is placed, as with pnpm's hoisted linker.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::hoist::{self, Edge, EdgeKind, Graph, Node};
use super::{LockedLink, LockedPackage, string_or_list, valid_package_name, workspace_target};
use crate::integrity::Integrity;

/// Where an error is: the lockfile location and what is wrong with it.
pub(super) type Problem = (String, String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPnpmLock {
    lockfile_version: Option<VersionText>,
    #[serde(default)]
    importers: BTreeMap<String, RawImporter>,
    #[serde(default)]
    packages: BTreeMap<String, RawPackage>,
    #[serde(default)]
    snapshots: BTreeMap<String, Option<RawSnapshot>>,
    #[serde(default)]
    patched_dependencies: Option<BTreeMap<String, serde_json::Value>>,
}

/// `lockfileVersion: '9.0'` (pnpm quotes it; a bare `9.0` is a number).
#[derive(Deserialize)]
#[serde(untagged)]
enum VersionText {
    Text(String),
    Number(f64),
}

impl VersionText {
    fn major(&self) -> Option<u64> {
        match self {
            VersionText::Text(text) => text.split('.').next()?.trim().parse().ok(),
            // Finite, non-negative and small: a cast of anything else would be meaningless.
            VersionText::Number(n) if n.is_finite() && (0.0..1e6).contains(n) =>
            {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(n.trunc() as u64)
            }
            VersionText::Number(_) => None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawImporter {
    #[serde(default)]
    dependencies: BTreeMap<String, RawImporterDep>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, RawImporterDep>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, RawImporterDep>,
}

#[derive(Deserialize)]
struct RawImporterDep {
    version: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPackage {
    resolution: Option<RawResolution>,
    name: Option<String>,
    version: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    os: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    cpu: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    libc: Option<Vec<String>>,
    #[serde(default)]
    requires_build: bool,
    bundled_dependencies: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct RawResolution {
    integrity: Option<String>,
    tarball: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    directory: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSnapshot {
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, String>,
}

/// Parses a `pnpm-lock.yaml` and lays its importers out as hoisted install paths, with the
/// root importer's `link:` dependencies as workspace links.
pub(super) fn packages(text: &str) -> Result<(Vec<LockedPackage>, Vec<LockedLink>), Problem> {
    // The parser's own budgets (aliases, depth, scalar bytes) stay on; the node and event
    // caps are raised to fit lockfiles of the largest real apps (~200,000 packages at most).
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 4_000_000,
            max_events: 8_000_000,
        },
    };
    let raw: RawPnpmLock = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        // The first line: the parser adds a multi-line snippet of the input.
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default().to_owned();
        ("(document)".to_owned(), format!("invalid YAML: {first}"))
    })?;
    let major = raw.lockfile_version.as_ref().and_then(VersionText::major);
    if major != Some(9) {
        let found = major.map_or_else(|| "missing".to_owned(), |m| m.to_string());
        return Err((
            "lockfileVersion".to_owned(),
            format!(
                "pnpm lockfile version {found} is not supported (need 9; regenerate it with pnpm 9 or later: `pnpm install --lockfile-only`)"
            ),
        ));
    }
    if raw
        .patched_dependencies
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err((
            "patchedDependencies".to_owned(),
            "patched dependencies are not supported (the patches would not be applied); install this app with pnpm".to_owned(),
        ));
    }
    let mut roots = Vec::new();
    let mut workspace_links = Vec::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut locked_links = Vec::new();
    let mut workspace_roots = Vec::new();
    for (importer, deps) in &raw.importers {
        let root = importer == ".";
        let importer_dir = if root {
            String::new()
        } else {
            workspace_target(importer)
                .map_err(|reason| (format!("importers[{importer:?}]"), reason))?
        };
        let mut edges = Vec::new();
        for (group, kind, list) in [
            ("dependencies", EdgeKind::Prod, &deps.dependencies),
            ("devDependencies", EdgeKind::Dev, &deps.dev_dependencies),
            (
                "optionalDependencies",
                EdgeKind::Optional,
                &deps.optional_dependencies,
            ),
        ] {
            for (name, dep) in list {
                let loc = format!("importers[{importer:?}].{group}[{name:?}]");
                if let Some(path) = dep.version.strip_prefix("link:") {
                    let target = join_workspace(&importer_dir, path)
                        .and_then(|t| workspace_target(&t))
                        .map_err(|reason| (loc.clone(), reason))?;
                    if !valid_package_name(name) {
                        return Err((loc, format!("invalid dependency name {name:?}")));
                    }
                    if root {
                        links.insert(name.clone(), target.clone());
                        locked_links.push(LockedLink {
                            path: format!("node_modules/{name}"),
                            target,
                            dev: kind == EdgeKind::Dev,
                            optional: kind == EdgeKind::Optional,
                        });
                    } else {
                        // Resolved from the workspace folder, Node finds the app's links.
                        workspace_links.push((loc, name.clone(), target));
                    }
                    continue;
                }
                edges.push((name.clone(), dep.version.clone(), kind, loc));
            }
        }
        if root {
            roots = edges;
        } else {
            workspace_roots.push((importer_dir, edges));
        }
    }
    for (loc, name, target) in &workspace_links {
        if links.get(name) != Some(target) {
            return Err((
                loc.clone(),
                format!(
                    "the workspace link {name:?} -> {target} is not linked in the app's node_modules (a workspace's own node_modules is not supported)"
                ),
            ));
        }
    }
    let (graph, roots, workspaces) = build_graph(&raw, roots, workspace_roots)?;
    let packages = hoist::layout(&graph, &roots, &links, &workspaces)
        .map_err(|reason| ("importers".to_owned(), reason))?;
    Ok((packages, locked_links))
}

/// `dir` joined with a relative `path` (`packages/a` + `../b` = `packages/b`); an error when
/// it would leave the app.
fn join_workspace(dir: &str, path: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "workspace folder {path:?} (from {dir:?}) must stay inside the app"
                    ));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// At most this many package instances (snapshots) in one lockfile.
const MAX_NODES: usize = 200_000;

/// Every snapshot reachable from `roots` (breadth first), as graph nodes with their edges.
type ImporterEdges = Vec<(String, String, EdgeKind, String)>;

#[allow(clippy::type_complexity)]
fn build_graph(
    raw: &RawPnpmLock,
    roots: ImporterEdges,
    workspaces: Vec<(String, ImporterEdges)>,
) -> Result<(Graph, Vec<Edge>, Vec<(String, Vec<Edge>)>), Problem> {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys: Vec<String> = Vec::new();
    let importer_edges = |list: ImporterEdges,
                          keys: &mut Vec<String>,
                          index: &mut BTreeMap<String, usize>|
     -> Result<Vec<Edge>, Problem> {
        let mut edges = Vec::new();
        for (name, reference, kind, loc) in list {
            let target = dependency_key(&name, &reference, &loc)?;
            let target = intern(target, keys, index)?;
            edges.push(Edge { name, target, kind });
        }
        Ok(edges)
    };
    let root_edges = importer_edges(roots, &mut keys, &mut index)?;
    let mut workspace_edges = Vec::new();
    for (folder, list) in workspaces {
        workspace_edges.push((folder, importer_edges(list, &mut keys, &mut index)?));
    }
    let mut graph = Graph::default();
    let empty = RawSnapshot::default(); // `name@1.0.0: {}` or a bare `name@1.0.0:`
    let mut next = 0;
    // `keys` grows while it is walked: each new key is visited once, in order.
    while let Some(key) = keys.get(next).cloned() {
        next += 1;
        let package_key = strip_peers(&key);
        let Some(package) = raw.packages.get(package_key) else {
            return Err((
                format!("packages[{package_key:?}]"),
                format!("missing (referenced as {key:?})"),
            ));
        };
        let mut node = package_node(package_key, package)?;
        let bundled = bundled_names(package);
        if let Some(snapshot) = raw.snapshots.get(&key) {
            let snapshot = snapshot.as_ref().unwrap_or(&empty);
            for (deps, kind, group) in [
                (&snapshot.dependencies, EdgeKind::Prod, "dependencies"),
                (
                    &snapshot.optional_dependencies,
                    EdgeKind::Optional,
                    "optionalDependencies",
                ),
            ] {
                for (dep, reference) in deps {
                    if bundled.iter().any(|b| b == dep) {
                        continue; // shipped inside this package's tarball
                    }
                    let loc = format!("snapshots[{key:?}].{group}[{dep:?}]");
                    let target = dependency_key(dep, reference, &loc)?;
                    let target = intern(target, &mut keys, &mut index)?;
                    node.edges.push(Edge {
                        name: dep.clone(),
                        target,
                        kind,
                    });
                }
            }
        } else if raw.snapshots.is_empty() {
            return Err((
                "snapshots".to_owned(),
                "missing: a v9 lockfile lists each package's dependencies there".to_owned(),
            ));
        }
        graph.nodes.push(node);
    }
    Ok((graph, root_edges, workspace_edges))
}

/// The id of snapshot `key`, added to `keys` when new.
fn intern(
    key: String,
    keys: &mut Vec<String>,
    index: &mut BTreeMap<String, usize>,
) -> Result<usize, Problem> {
    if let Some(&id) = index.get(&key) {
        return Ok(id);
    }
    if keys.len() >= MAX_NODES {
        return Err((
            "snapshots".to_owned(),
            format!("more than {MAX_NODES} package instances"),
        ));
    }
    let id = keys.len();
    keys.push(key.clone());
    index.insert(key, id);
    Ok(id)
}

/// The snapshot key of dependency `name: reference` (at `loc`), with the name checked.
fn dependency_key(name: &str, reference: &str, loc: &str) -> Result<String, Problem> {
    if !valid_package_name(name) {
        return Err((loc.to_owned(), format!("invalid dependency name {name:?}")));
    }
    snapshot_key(name, reference).map_err(|reason| (loc.to_owned(), reason))
}

/// The node for `packages[key]`, without its edges.
fn package_node(key: &str, package: &RawPackage) -> Result<Node, Problem> {
    let loc = |field: &str| format!("packages[{key:?}].{field}");
    let Some((key_name, key_version)) = split_key(key) else {
        return Err((
            format!("packages[{key:?}]"),
            "not a `name@version` key".to_owned(),
        ));
    };
    let resolution = package.resolution.as_ref();
    if let Some(kind) = resolution.and_then(|r| r.kind.as_deref()) {
        return Err((
            loc("resolution.type"),
            format!("{kind} dependencies are not supported (only registry tarballs)"),
        ));
    }
    if resolution.is_some_and(|r| r.directory.is_some()) || key_version.starts_with("file:") {
        return Err((
            loc("resolution"),
            "`file:` dependencies are not supported (only registry tarballs)".to_owned(),
        ));
    }
    let Some(text) = resolution.and_then(|r| r.integrity.as_deref()) else {
        let hint = resolution
            .and_then(|r| r.tarball.as_deref())
            .map(|t| format!(" (tarball {t})"))
            .unwrap_or_default();
        return Err((
            loc("resolution.integrity"),
            format!("missing integrity{hint}"),
        ));
    };
    let integrity: Integrity = text
        .parse()
        .map_err(|e| (loc("resolution.integrity"), format!("{e}")))?;
    let name = package.name.clone().unwrap_or_else(|| key_name.to_owned());
    if !valid_package_name(&name) {
        return Err((loc("name"), format!("invalid package name {name:?}")));
    }
    Ok(Node {
        package_key: key.to_owned(),
        name,
        version: package
            .version
            .clone()
            .or_else(|| Some(key_version.to_owned())),
        integrity,
        os: package.os.clone().unwrap_or_default(),
        cpu: package.cpu.clone().unwrap_or_default(),
        libc: package.libc.clone().unwrap_or_default(),
        requires_build: package.requires_build,
        edges: Vec::new(),
    })
}

/// Names listed in `bundledDependencies` (a list; `true` means every dependency, which a
/// lockfile then does not list separately).
fn bundled_names(package: &RawPackage) -> Vec<String> {
    match &package.bundled_dependencies {
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The snapshot key a dependency `name: reference` points at.
fn snapshot_key(name: &str, reference: &str) -> Result<String, String> {
    if reference.is_empty() {
        return Err("empty version".to_owned());
    }
    if let Some(path) = reference.strip_prefix("link:") {
        return Err(format!(
            "workspace link {path:?} is not supported (pnpm workspaces and `link:` dependencies)"
        ));
    }
    if reference.starts_with("file:") {
        return Err("`file:` dependencies are not supported".to_owned());
    }
    let base = strip_peers(reference);
    // `real-name@version` (an npm alias) names another package; `1.2.3` is a version of `name`.
    if base.get(1..).is_some_and(|rest| rest.contains('@')) {
        Ok(reference.to_owned())
    } else {
        Ok(format!("{name}@{reference}"))
    }
}

/// `a@1.0.0(b@2.0.0)` → `a@1.0.0`: the `packages` key of a snapshot key.
fn strip_peers(key: &str) -> &str {
    key.find('(').map_or(key, |i| key.get(..i).unwrap_or(key))
}

/// `@s/a@1.0.0` → (`@s/a`, `1.0.0`).
fn split_key(key: &str) -> Option<(&str, &str)> {
    let at = key.get(1..)?.find('@')? + 1;
    let (name, version) = (key.get(..at)?, key.get(at + 1..)?);
    (!name.is_empty() && !version.is_empty()).then_some((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_and_lose_their_peer_suffix() {
        assert_eq!(split_key("@s/a@1.0.0"), Some(("@s/a", "1.0.0")));
        assert_eq!(split_key("a@1.0.0"), Some(("a", "1.0.0")));
        assert_eq!(split_key("a"), None);
        assert_eq!(split_key("@s/a"), None);
        assert_eq!(strip_peers("a@1.0.0(b@2.0.0(c@1.0.0))(d@1.0.0)"), "a@1.0.0");
        assert_eq!(
            snapshot_key("a", "1.0.0(b@2.0.0)").unwrap(),
            "a@1.0.0(b@2.0.0)"
        );
        assert_eq!(
            snapshot_key("sw", "string-width@4.2.3").unwrap(),
            "string-width@4.2.3"
        );
        assert_eq!(snapshot_key("x", "@s/y@1.0.0").unwrap(), "@s/y@1.0.0");
        assert!(snapshot_key("x", "link:../x").unwrap_err().contains("link"));
        assert!(snapshot_key("x", "").is_err());
    }

    #[test]
    fn version_text_major() {
        assert_eq!(VersionText::Text("9.0".into()).major(), Some(9));
        assert_eq!(VersionText::Number(9.0).major(), Some(9));
        assert_eq!(VersionText::Number(f64::NAN).major(), None);
        assert_eq!(VersionText::Number(-1.0).major(), None);
        assert_eq!(VersionText::Text("x".into()).major(), None);
    }
}
