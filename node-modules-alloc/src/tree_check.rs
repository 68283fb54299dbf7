//! Safety rules of an assembled tree, checked over the *merged* tree rather than per package.
//!
//! # Why
//!
//! The importer checks each package on its own: its links stay inside it, its files never go
//! through its own links. That is not enough once packages are laid out together. A parent
//! package can ship a symlink exactly where a nested dependency is installed (then the
//! dependency's files are written wherever the link points), ship files inside a nested
//! package's directory, or a link of one package can go through a link of another and climb
//! out of the tree, although each link "stays inside" its own package. The rules checked here,
//! in time linear in the size of the tree:
//!
//! * every entry path is relative, made of plain components (no empty, `.` or `..` one);
//! * no entry lies below another entry: below a file it would be a conflict, below a symlink it
//!   would be written through it (prefixes are hashed incrementally, so each path is scanned
//!   once);
//! * every symlink, resolved lexically within the tree (following the tree's other symlinks, at
//!   most [`MAX_HOPS`] of them), stays inside the tree; with package ownership given, it must
//!   land inside the package that ships it (for `.bin` links: the package that declared the bin).
//!   A package's bundled dependencies are its own files, so links into them are fine.
//!
//! The rules show through [`Manifest::plan`](crate::manifest::Manifest::plan) (with package
//! ownership) and through every layout of a manifest (without).

use std::collections::HashMap;

/// Symlinks followed while resolving one link, as the kernel's limit (`ELOOP` after 40).
pub(crate) const MAX_HOPS: usize = 40;

/// One entry of the tree, as the checks see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    /// Path relative to the tree root, `/`-separated.
    pub(crate) path: &'a str,
    /// `Some(target)` for a symlink.
    pub(crate) link: Option<&'a str>,
    /// Index of the package that ships the entry (or declared the bin), when known.
    pub(crate) owner: Option<usize>,
    /// A workspace link: it points outside the tree on purpose (to a folder of the app, checked
    /// by the allocator), so its own target is not resolved here. Entries below it and links
    /// through it are still refused.
    pub(crate) external: bool,
}

/// Why a tree is refused. Indexes refer to the items (and package roots) given to [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// An entry path that is empty, absolute, or has an empty, `.` or `..` component or a NUL.
    BadPath { entry: usize },
    /// An entry below a file entry.
    UnderFile { entry: usize, file: usize },
    /// An entry below a symlink entry: it would be written through the link.
    ThroughLink { entry: usize, link: usize },
    /// A symlink that resolves outside the tree (above its root, absolute, or a loop). `via`
    /// lists the other symlinks followed.
    Escapes { link: usize, via: Vec<usize> },
    /// A symlink that resolves to `resolved`, which is not inside its owner's package but
    /// inside `package` (or no package at all).
    Foreign {
        link: usize,
        resolved: String,
        package: Option<usize>,
        via: Vec<usize>,
    },
}

/// FNV-1a, fed byte by byte so that the hash of every prefix of a path is available while the
/// path is scanned once.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const START: Self = Self(0xcbf2_9ce4_8422_2325);

    fn byte(self, b: u8) -> Self {
        Self((self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }

    fn bytes(self, bytes: &[u8]) -> Self {
        bytes.iter().fold(self, |h, &b| h.byte(b))
    }

    /// The hash of `prefix + "/" + component` (of `component` alone at the root).
    fn push(self, at_root: bool, component: &str) -> Self {
        let h = if at_root { self } else { self.byte(b'/') };
        h.bytes(component.as_bytes())
    }
}

/// Paths hashed whole, looked up by the hash of a prefix (candidates are compared exactly).
#[derive(Debug, Default)]
struct PathIndex {
    by_hash: HashMap<u64, Vec<usize>>,
}

impl PathIndex {
    fn insert(&mut self, path: &str, index: usize) {
        self.by_hash
            .entry(Fnv::START.bytes(path.as_bytes()).0)
            .or_default()
            .push(index);
    }

    /// The index whose path equals `candidate` (hashed `hash`), if any.
    fn find(&self, hash: Fnv, candidate: impl Fn(usize) -> bool) -> Option<usize> {
        self.by_hash
            .get(&hash.0)
            .and_then(|found| found.iter().copied().find(|&i| candidate(i)))
    }
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Checks the tree `items` (in any order). With `roots` (each package's directory, relative to
/// the tree root, indexed like [`Item::owner`]), links must also stay inside their owner.
pub(crate) fn check(items: &[Item<'_>], roots: Option<&[&str]>) -> Result<(), Violation> {
    let mut all = PathIndex::default();
    let mut links = PathIndex::default();
    for (i, item) in items.iter().enumerate() {
        if !valid_path(item.path) {
            return Err(Violation::BadPath { entry: i });
        }
        all.insert(item.path, i);
        if item.link.is_some() {
            links.insert(item.path, i);
        }
    }
    // No entry below another one: each path scanned once, prefixes hashed on the way.
    for (i, item) in items.iter().enumerate() {
        let mut hash = Fnv::START;
        for (pos, &b) in item.path.as_bytes().iter().enumerate() {
            if b == b'/' {
                let prefix = item.path.get(..pos).unwrap_or_default();
                let found = all.find(hash, |j| items.get(j).is_some_and(|e| e.path == prefix));
                if let Some(j) = found {
                    return Err(match items.get(j).and_then(|e| e.link) {
                        Some(_) => Violation::ThroughLink { entry: i, link: j },
                        None => Violation::UnderFile { entry: i, file: j },
                    });
                }
            }
            hash = hash.byte(b);
        }
    }
    let mut root_index = PathIndex::default();
    for (p, root) in roots.unwrap_or_default().iter().enumerate() {
        root_index.insert(root, p);
    }
    for (i, item) in items.iter().enumerate() {
        let Some(target) = item.link else { continue };
        if item.external {
            continue;
        }
        let (resolved, via) = resolve(items, &links, i, item.path, target)?;
        let Some(roots) = roots else { continue };
        // The deepest package root containing the resolved path owns it.
        let mut hash = Fnv::START;
        let mut package = None;
        for (depth, component) in resolved.iter().enumerate() {
            hash = hash.push(depth == 0, component);
            let prefix_len = depth + 1;
            let matches = |p: usize| {
                roots.get(p).is_some_and(|root| {
                    root.split('/')
                        .eq(resolved.iter().take(prefix_len).copied())
                })
            };
            if let Some(p) = root_index.find(hash, matches) {
                package = Some(p);
            }
        }
        if package.is_none() || package != item.owner {
            return Err(Violation::Foreign {
                link: i,
                resolved: resolved.join("/"),
                package,
                via,
            });
        }
    }
    Ok(())
}

/// Resolves the symlink `items[index]` lexically within the tree, following the tree's other
/// symlinks. Returns the resolved components and the symlinks followed.
fn resolve<'a>(
    items: &[Item<'a>],
    links: &PathIndex,
    index: usize,
    path: &'a str,
    target: &'a str,
) -> Result<(Vec<&'a str>, Vec<usize>), Violation> {
    let escapes = |via: Vec<usize>| Violation::Escapes { link: index, via };
    let mut via = Vec::new();
    let mut current: Vec<&str> = path.split('/').collect();
    current.pop();
    // Hash of every prefix of `current` (hashes[d] covers the first d + 1 components).
    let mut hashes: Vec<Fnv> = Vec::with_capacity(current.len() + 8);
    for (depth, component) in current.iter().enumerate() {
        let base = hashes.last().copied().unwrap_or(Fnv::START);
        hashes.push(base.push(depth == 0, component));
    }
    // Components still to walk, last first.
    let mut pending: Vec<&str> = Vec::new();
    if !push_target(&mut pending, target) {
        return Err(escapes(via));
    }
    while let Some(component) = pending.pop() {
        match component {
            "" | "." => {}
            ".." => {
                if current.pop().is_none() {
                    return Err(escapes(via));
                }
                hashes.pop();
            }
            name => {
                let base = hashes.last().copied().unwrap_or(Fnv::START);
                let hash = base.push(current.is_empty(), name);
                current.push(name);
                hashes.push(hash);
                let is_current = |j: usize| {
                    items
                        .get(j)
                        .is_some_and(|e| e.path.split('/').eq(current.iter().copied()))
                };
                if let Some(j) = links.find(hash, is_current) {
                    if via.len() >= MAX_HOPS {
                        return Err(escapes(via));
                    }
                    via.push(j);
                    current.pop();
                    hashes.pop();
                    let next = items.get(j).and_then(|e| e.link).unwrap_or_default();
                    if !push_target(&mut pending, next) {
                        return Err(escapes(via));
                    }
                }
            }
        }
    }
    Ok((current, via))
}

/// Queues the components of a relative link target; `false` for an absolute one.
fn push_target<'a>(pending: &mut Vec<&'a str>, target: &'a str) -> bool {
    if target.starts_with('/') || target.contains('\0') {
        return false;
    }
    pending.extend(target.split('/').rev());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, owner: usize) -> Item<'_> {
        Item {
            path,
            link: None,
            owner: Some(owner),
            external: false,
        }
    }

    fn link<'a>(path: &'a str, target: &'a str, owner: usize) -> Item<'a> {
        Item {
            path,
            link: Some(target),
            owner: Some(owner),
            external: false,
        }
    }

    const ROOTS: &[&str] = &["a", "a/node_modules/b", "c"];

    #[test]
    fn accepts_links_inside_their_package_and_its_bundled_files() {
        let items = [
            file("a/index.js", 0),
            file("a/node_modules/x/index.js", 0),
            link("a/lib/x", "../node_modules/x", 0),
            link("a/lib/self", "..", 0),
            file("a/node_modules/b/cli.js", 1),
            link("a/node_modules/.bin/b", "../b/cli.js", 1),
            link("c/alias", "./lib/../index.js", 2),
        ];
        assert_eq!(check(&items, Some(ROOTS)), Ok(()));
        assert_eq!(check(&items, None), Ok(()));
    }

    #[test]
    fn refuses_entries_through_links_and_under_files() {
        let items = [
            link("a/node_modules/b", "../lib", 0),
            file("a/node_modules/b/index.js", 1),
        ];
        assert_eq!(
            check(&items, None),
            Err(Violation::ThroughLink { entry: 1, link: 0 })
        );
        let items = [
            file("a/node_modules/b", 0),
            file("a/node_modules/b/index.js", 1),
        ];
        assert_eq!(
            check(&items, Some(ROOTS)),
            Err(Violation::UnderFile { entry: 1, file: 0 })
        );
    }

    #[test]
    fn refuses_bad_paths() {
        for path in ["", "/abs", "a//b", "a/./b", "a/../b", "a/b/", "a\0b"] {
            assert_eq!(
                check(&[file(path, 0)], None),
                Err(Violation::BadPath { entry: 0 }),
                "{path:?}"
            );
        }
    }

    #[test]
    fn follows_links_of_other_packages_and_refuses_escapes() {
        // b's `up` points to b's root; a's link climbs out through it.
        let items = [
            link("a/node_modules/b/d1/d2/up", "../..", 1),
            link("a/lib/out", "../node_modules/b/d1/d2/up/../../../../..", 0),
        ];
        assert_eq!(
            check(&items, Some(ROOTS)),
            Err(Violation::Escapes {
                link: 1,
                via: vec![0]
            })
        );
        for target in ["/etc/passwd", "../../..", "..\0"] {
            assert!(matches!(
                check(&[link("a/x", target, 0)], None),
                Err(Violation::Escapes { .. })
            ));
        }
    }

    #[test]
    fn refuses_links_into_another_package() {
        let items = [
            file("a/node_modules/b/index.js", 1),
            link("a/lib/b", "../node_modules/b", 0),
        ];
        assert_eq!(
            check(&items, Some(ROOTS)),
            Err(Violation::Foreign {
                link: 1,
                resolved: "a/node_modules/b".into(),
                package: Some(1),
                via: vec![]
            })
        );
        // Without ownership only escapes are refused.
        assert_eq!(check(&items, None), Ok(()));
    }

    #[test]
    fn link_loops_are_bounded() {
        let items = [link("a/x", "y", 0), link("a/y", "x", 0)];
        assert!(matches!(
            check(&items, Some(ROOTS)),
            Err(Violation::Escapes { via, .. }) if via.len() == MAX_HOPS
        ));
    }

    #[test]
    fn scales_linearly() {
        // 20,000 entries 8 levels deep and 2,000 links: well under a second even unoptimized.
        let paths: Vec<String> = (0..20_000)
            .map(|i| format!("p{}/lib/d1/d2/d3/d4/d5/f{i}.js", i % 100))
            .collect();
        let targets: Vec<(String, String)> = (0..2_000)
            .map(|i| {
                (
                    format!("p{}/alias{i}", i % 100),
                    format!("lib/d1/d2/d3/d4/d5/f{i}.js"),
                )
            })
            .collect();
        let roots: Vec<String> = (0..100).map(|p| format!("p{p}")).collect();
        let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
        let mut items: Vec<Item<'_>> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| file(p, i % 100))
            .collect();
        items.extend(
            targets
                .iter()
                .enumerate()
                .map(|(i, (p, t))| link(p, t, i % 100)),
        );
        let started = std::time::Instant::now();
        assert_eq!(check(&items, Some(&roots)), Ok(()));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
