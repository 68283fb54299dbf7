//! Lays a resolved dependency graph out as a hoisted `node_modules` tree (npm's layout, pnpm's
//! `node-linker=hoisted`): every package as high up as Node's module resolution allows.
//!
//! Packages are placed breadth first. A dependency `name` of a package at some path is
//! satisfied if resolution from there (its own `node_modules`, then each ancestor's) already
//! finds the same package (`name@version`; peer instances share files). Otherwise it is placed
//! in the highest `node_modules` on that path that (1) is below any folder where resolution
//! would find a *different* `name`, and (2) would not change what an already placed package
//! below that folder resolves `name` to. The package's own `node_modules` always qualifies, so
//! a layout always exists; a hostile graph that would need an endless nesting is cut by
//! [`MAX_DEPTH`] and [`MAX_INSTALLS`] (both errors, never a partial tree).
//!
//! The `dev`/`optional`/`devOptional` flags follow npm: a package is `optional` when every
//! path from the app to it goes through an optional dependency, `dev` when only development
//! dependencies reach it, `devOptional` when it is needed by both an optional production path
//! and the development tree.

use std::collections::{BTreeMap, VecDeque};

use super::LockedPackage;
use crate::integrity::Integrity;

/// Deepest nesting of `node_modules` folders a layout may need.
pub(super) const MAX_DEPTH: usize = 128;
/// Most install paths a layout may need: [`INSTALLS_PER_PACKAGE`] per package instance of the
/// graph (real trees duplicate a package a few times at most), and never more than this.
pub(super) const MAX_INSTALLS: usize = 500_000;
/// See [`MAX_INSTALLS`].
pub(super) const INSTALLS_PER_PACKAGE: usize = 16;

/// How a dependency is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EdgeKind {
    /// `dependencies`.
    Prod,
    /// The app's `devDependencies`.
    Dev,
    /// `optionalDependencies`.
    Optional,
}

/// A dependency: under folder `name`, package instance `target`.
#[derive(Debug, Clone)]
pub(super) struct Edge {
    pub(super) name: String,
    pub(super) target: usize,
    pub(super) kind: EdgeKind,
}

/// One package instance and its dependencies.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// `name@version`: instances with the same key have the same files.
    pub(super) package_key: String,
    pub(super) name: String,
    pub(super) version: Option<String>,
    pub(super) integrity: Integrity,
    pub(super) os: Vec<String>,
    pub(super) cpu: Vec<String>,
    pub(super) libc: Vec<String>,
    pub(super) requires_build: bool,
    pub(super) edges: Vec<Edge>,
}

/// Package instances; edges index into `nodes`.
#[derive(Debug, Default)]
pub(super) struct Graph {
    pub(super) nodes: Vec<Node>,
}

/// A folder of the tree: the app (index 0, no package) or an installed package.
struct Folder {
    package: Option<usize>,
    name: String,
    parent: usize,
    depth: usize,
    children: BTreeMap<String, usize>,
    /// Folders in this one's subtree, itself included.
    size: usize,
    /// What this folder's package resolved each dependency name to.
    resolved: BTreeMap<String, usize>,
}

/// A resolved dependency: `from` finds `name` at folder `to`.
struct Resolution {
    from: usize,
    to: usize,
    kind: EdgeKind,
}

struct Tree<'g> {
    graph: &'g Graph,
    max_installs: usize,
    folders: Vec<Folder>,
    /// Resolutions by dependency name.
    resolutions: BTreeMap<String, Vec<Resolution>>,
    /// Workspace links in the app's `node_modules`: name → folder.
    links: BTreeMap<String, String>,
}

/// The install paths of the app whose direct dependencies are `roots`. `links` (name →
/// workspace folder) occupy the app's `node_modules/<name>`; `workspaces` are the dependencies
/// of each workspace folder (by folder), which Node resolves from the app's `node_modules`:
/// they must be placed there (a conflict is an error: a workspace's own `node_modules` is not
/// supported).
pub(super) fn layout(
    graph: &Graph,
    roots: &[Edge],
    links: &BTreeMap<String, String>,
    workspaces: &[(String, Vec<Edge>)],
) -> Result<Vec<LockedPackage>, String> {
    let max_installs = graph
        .nodes
        .len()
        .saturating_mul(INSTALLS_PER_PACKAGE)
        .saturating_add(64)
        .min(MAX_INSTALLS);
    let mut tree = Tree {
        graph,
        max_installs,
        folders: vec![Folder {
            package: None,
            name: String::new(),
            parent: 0,
            depth: 0,
            children: BTreeMap::new(),
            size: 1,
            resolved: BTreeMap::new(),
        }],
        resolutions: BTreeMap::new(),
        links: links.clone(),
    };
    for name in links.keys() {
        let id = tree.folders.len();
        tree.folders.push(Folder {
            package: None,
            name: name.clone(),
            parent: 0,
            depth: 1,
            children: BTreeMap::new(),
            size: 1,
            resolved: BTreeMap::new(),
        });
        if let Some(root) = tree.folders.first_mut() {
            root.children.insert(name.clone(), id);
            root.size += 1;
        }
    }
    let mut queue = VecDeque::new();
    for edge in roots {
        queue.extend(tree.resolve(0, edge)?);
    }
    for (folder, edges) in workspaces {
        for edge in edges {
            let placed = tree
                .resolve(0, edge)
                .map_err(|e| format!("workspace {folder:?}: {e}"))?;
            queue.extend(placed);
        }
    }
    while let Some(folder) = queue.pop_front() {
        let Some(package) = tree.folders.get(folder).and_then(|f| f.package) else {
            continue;
        };
        let edges = graph
            .nodes
            .get(package)
            .map_or(&[][..], |n| n.edges.as_slice());
        for edge in edges {
            if let Some(placed) = tree.resolve(folder, edge)? {
                queue.push_back(placed);
            }
        }
    }
    tree.packages()
}

impl Tree<'_> {
    fn key(&self, folder: usize) -> Option<&str> {
        let package = self.folders.get(folder)?.package?;
        Some(self.graph.nodes.get(package)?.package_key.as_str())
    }

    fn parent(&self, folder: usize) -> usize {
        self.folders.get(folder).map_or(0, |f| f.parent)
    }

    /// Whether `folder` is `ancestor` or inside it.
    fn within(&self, mut folder: usize, ancestor: usize) -> bool {
        for _ in 0..=MAX_DEPTH {
            if folder == ancestor {
                return true;
            }
            if folder == 0 {
                return false;
            }
            folder = self.parent(folder);
        }
        false
    }

    /// Resolves `edge` from `from`, placing the package if needed; the new folder, if any.
    fn resolve(&mut self, from: usize, edge: &Edge) -> Result<Option<usize>, String> {
        let target_key = self
            .graph
            .nodes
            .get(edge.target)
            .map(|n| n.package_key.as_str())
            .ok_or("dependency edge to an unknown package")?;
        // `from`, its parent, ..., the app: where Node looks for `edge.name`, in order.
        let mut chain = vec![from];
        let mut at = from;
        while at != 0 {
            at = self.parent(at);
            chain.push(at);
        }
        let found = chain.iter().position(|&f| {
            self.folders
                .get(f)
                .is_some_and(|f| f.children.contains_key(&edge.name))
        });
        if let Some(j) = found {
            let existing = chain
                .get(j)
                .and_then(|&f| self.folders.get(f))
                .and_then(|f| f.children.get(&edge.name).copied());
            if let Some(existing) = existing
                && self.key(existing) == Some(target_key)
            {
                self.record(&edge.name, from, existing, edge.kind);
                return Ok(None);
            }
        }
        let limit = found.unwrap_or(chain.len());
        if limit == 0 {
            if from == 0
                && let Some(folder) = self.links.get(&edge.name)
            {
                return Err(format!(
                    "dependency {:?} ({target_key}) conflicts with the workspace link node_modules/{} -> {folder}",
                    edge.name, edge.name
                ));
            }
            return Err(format!(
                "two different packages are declared as dependency {:?} of the same package",
                edge.name
            ));
        }
        // Highest first: the app's node_modules is the last entry of the chain.
        let level = (0..limit)
            .rev()
            .filter_map(|i| chain.get(i).copied())
            .find(|&level| !self.would_shadow(level, &edge.name, target_key))
            .unwrap_or(from);
        let depth = self.folders.get(level).map_or(0, |f| f.depth) + 1;
        if depth > MAX_DEPTH {
            return Err(format!(
                "cannot lay out the dependency graph: {:?} would be nested more than {MAX_DEPTH} node_modules deep (a cycle of conflicting versions?)",
                edge.name
            ));
        }
        if self.folders.len() > self.max_installs {
            return Err(format!(
                "cannot lay out the dependency graph: more than {} install paths for {} packages (a cycle of conflicting versions?)",
                self.max_installs,
                self.graph.nodes.len()
            ));
        }
        let id = self.folders.len();
        self.folders.push(Folder {
            package: Some(edge.target),
            name: edge.name.clone(),
            parent: level,
            depth,
            children: BTreeMap::new(),
            size: 1,
            resolved: BTreeMap::new(),
        });
        if let Some(folder) = self.folders.get_mut(level) {
            folder.children.insert(edge.name.clone(), id);
        }
        let mut at = level;
        for _ in 0..=MAX_DEPTH {
            if let Some(folder) = self.folders.get_mut(at) {
                folder.size += 1;
            }
            if at == 0 {
                break;
            }
            at = self.parent(at);
        }
        self.record(&edge.name, from, id, edge.kind);
        Ok(Some(id))
    }

    /// Whether placing `name` (package `key`) in `level`'s `node_modules` would change what a
    /// package already placed in `level` or below resolves `name` to.
    fn would_shadow(&self, level: usize, name: &str, key: &str) -> bool {
        // A resolution `from` → `to` breaks when `from` is in `level`'s subtree and `to` is
        // not found below `level` (a new folder in `level` would be found first).
        let breaks = |from: usize, to: usize| {
            let holder = self.parent(to);
            self.within(from, level)
                && !(holder != level && self.within(holder, level))
                && self.key(to) != Some(key)
        };
        let Some(resolutions) = self.resolutions.get(name) else {
            return false;
        };
        let subtree = self.folders.get(level).map_or(0, |f| f.size);
        // Whichever is smaller: the subtree's folders, or every resolution of `name`.
        if subtree <= resolutions.len() {
            let mut stack = vec![level];
            while let Some(folder) = stack.pop() {
                let Some(f) = self.folders.get(folder) else {
                    continue;
                };
                if let Some(&to) = f.resolved.get(name)
                    && breaks(folder, to)
                {
                    return true;
                }
                stack.extend(f.children.values().copied());
            }
            false
        } else {
            resolutions.iter().any(|r| breaks(r.from, r.to))
        }
    }

    fn record(&mut self, name: &str, from: usize, to: usize, kind: EdgeKind) {
        if let Some(folder) = self.folders.get_mut(from) {
            folder.resolved.insert(name.to_owned(), to);
        }
        self.resolutions
            .entry(name.to_owned())
            .or_default()
            .push(Resolution { from, to, kind });
    }

    /// Folders reachable from the app through resolutions: starting with the app's
    /// dependencies of `start` kinds, following only `follow` kinds.
    fn reachable(&self, start: &[EdgeKind], follow: &[EdgeKind]) -> Vec<bool> {
        let mut out_edges: Vec<Vec<(usize, EdgeKind)>> = vec![Vec::new(); self.folders.len()];
        for r in self.resolutions.values().flatten() {
            if let Some(list) = out_edges.get_mut(r.from) {
                list.push((r.to, r.kind));
            }
        }
        let mut seen = vec![false; self.folders.len()];
        let mut queue: VecDeque<usize> = out_edges
            .first()
            .into_iter()
            .flatten()
            .filter(|(_, kind)| start.contains(kind))
            .map(|&(to, _)| to)
            .collect();
        while let Some(folder) = queue.pop_front() {
            match seen.get_mut(folder) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            for &(to, kind) in out_edges.get(folder).into_iter().flatten() {
                if follow.contains(&kind) {
                    queue.push_back(to);
                }
            }
        }
        seen
    }

    fn path(&self, folder: usize) -> String {
        let mut names = Vec::new();
        let mut at = folder;
        while at != 0 && names.len() <= MAX_DEPTH {
            if let Some(f) = self.folders.get(at) {
                names.push(f.name.as_str());
            }
            at = self.parent(at);
        }
        names.reverse();
        names
            .iter()
            .map(|n| format!("node_modules/{n}"))
            .collect::<Vec<_>>()
            .join("/")
    }

    fn packages(&self) -> Result<Vec<LockedPackage>, String> {
        use EdgeKind::{Dev, Optional, Prod};
        let required = self.reachable(&[Prod], &[Prod]);
        let production = self.reachable(&[Prod, Optional], &[Prod, Optional]);
        let dev_required = self.reachable(&[Dev], &[Prod]);
        let development = self.reachable(&[Dev], &[Prod, Optional]);
        let flag = |v: &Vec<bool>, i: usize| v.get(i).copied().unwrap_or(false);
        let mut out = Vec::with_capacity(self.folders.len().saturating_sub(1));
        for (i, folder) in self.folders.iter().enumerate().skip(1) {
            let Some(node) = folder.package.and_then(|p| self.graph.nodes.get(p)) else {
                continue;
            };
            let (mut dev, mut optional, mut dev_optional) = (false, false, false);
            if !flag(&required, i) {
                if flag(&production, i) && !flag(&development, i) {
                    optional = true;
                } else if !flag(&production, i) {
                    dev = true;
                    optional = !flag(&dev_required, i);
                } else {
                    dev_optional = true;
                }
            }
            let path = self.path(i);
            if super::install_names(&path).is_none() {
                return Err(format!("invalid install path {path:?}"));
            }
            out.push(LockedPackage {
                path,
                name: node.name.clone(),
                version: node.version.clone(),
                integrity: node.integrity.clone(),
                bins: BTreeMap::new(),
                dev,
                optional,
                dev_optional,
                peer: false,
                os: node.os.clone(),
                cpu: node.cpu.clone(),
                libc: node.libc.clone(),
                has_install_script: node.requires_build,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}
