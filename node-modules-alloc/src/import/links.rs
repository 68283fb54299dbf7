//! No entry may pass through a symlink of the package.
//!
//! # Why, and why by prefix hashes
//!
//! A path through a link (`lib/x.js` where `lib -> ../..`) or a link target through another
//! link (`sneaky -> dir/x/../..` where `dir -> .`) can resolve outside the package even when
//! every link target looks contained on its own. So no file path, link path or intermediate
//! step of a link target may be a symlink of the package, whatever the order of the entries.
//!
//! Checking that by joining every prefix of every path costs O(depth²) per entry (minutes for
//! node-tar's `excessively-deep.tar`). Instead every prefix gets a hash computed incrementally,
//! one component at a time, with a randomly keyed `SipHash` (so a tarball cannot be built to
//! collide), and is looked up in the set of the symlinks' hashes; only a hit (a real link, or
//! a 2⁻⁶⁴ accident) is confirmed by comparing strings. The whole check is linear in the total
//! length of the paths and targets.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// The package's symlinks, for prefix lookups.
pub(crate) struct LinkSet<'a> {
    state: RandomState,
    hashes: HashSet<u64>,
    links: &'a HashMap<String, String>,
}

impl<'a> LinkSet<'a> {
    /// Indexes `links` (path → target, paths joined with `/`).
    pub(crate) fn new(links: &'a HashMap<String, String>) -> Self {
        let state = RandomState::new();
        let hashes = links
            .keys()
            .map(|path| {
                let mut h = state.build_hasher();
                for part in path.split('/') {
                    push(&mut h, part);
                }
                h.finish()
            })
            .collect();
        Self {
            state,
            hashes,
            links,
        }
    }

    fn is_link(&self, hash: u64, parts: &[&str]) -> bool {
        self.hashes.contains(&hash) && self.links.contains_key(&parts.join("/"))
    }

    /// The first proper prefix of `path` that is a symlink, if any.
    pub(crate) fn link_prefix_of(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut h = self.state.build_hasher();
        let dirs = parts.split_last().map_or(&[][..], |(_, d)| d);
        for (i, part) in dirs.iter().enumerate() {
            push(&mut h, part);
            let prefix = dirs.get(..=i).unwrap_or_default();
            if self.is_link(h.finish(), prefix) {
                return Some(prefix.join("/"));
            }
        }
        None
    }

    /// Whether resolving `target` from the symlink at `link` steps through another symlink
    /// before its last component (or leaves the package).
    pub(crate) fn target_passes_through_link(&self, link: &str, target: &str) -> bool {
        let mut cur: Vec<&str> = link.split('/').collect();
        cur.pop();
        let mut states = Vec::with_capacity(cur.len() + 1);
        let mut h = self.state.build_hasher();
        states.push(h.clone());
        for part in &cur {
            push(&mut h, part);
            states.push(h.clone());
        }
        let steps: Vec<&str> = target
            .split(['/', '\\'])
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for (i, step) in steps.iter().enumerate() {
            if *step == ".." {
                if cur.pop().is_none() {
                    return true;
                }
                states.pop();
                continue;
            }
            let Some(top) = states.last() else {
                return true;
            };
            let mut h = top.clone();
            push(&mut h, step);
            cur.push(step);
            let hash = h.finish();
            states.push(h);
            if i + 1 < steps.len() && self.is_link(hash, &cur) {
                return true;
            }
        }
        false
    }
}

/// Extends a prefix hash by one component. `0xff` never occurs in UTF-8, so the encoding of a
/// component sequence is unambiguous.
fn push(h: &mut impl Hasher, part: &str) {
    h.write(part.as_bytes());
    h.write_u8(0xff);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn finds_paths_through_links() {
        let map = links(&[("lib", "sub"), ("a/b", "c")]);
        let set = LinkSet::new(&map);
        assert_eq!(set.link_prefix_of("lib/x.js").as_deref(), Some("lib"));
        assert_eq!(set.link_prefix_of("a/b/c/d").as_deref(), Some("a/b"));
        assert_eq!(set.link_prefix_of("lib"), None);
        assert_eq!(set.link_prefix_of("a/bc/d"), None);
        assert_eq!(set.link_prefix_of("libx/y"), None);
    }

    #[test]
    fn finds_targets_through_links() {
        let map = links(&[("dir", "."), ("sneaky", "dir/x/../..")]);
        let set = LinkSet::new(&map);
        assert!(set.target_passes_through_link("sneaky", "dir/x/../.."));
        assert!(!set.target_passes_through_link("other", "dir"));
        assert!(!set.target_passes_through_link("d/other", "../dir"));
        assert!(set.target_passes_through_link("other", "../x"));
        assert!(set.target_passes_through_link("a/other", "../dir/y"));
    }

    #[test]
    fn deep_paths_are_checked_in_linear_time() {
        let map = links(&[("l", "x")]);
        let set = LinkSet::new(&map);
        let deep = "a/".repeat(200_000) + "f";
        let start = std::time::Instant::now();
        assert_eq!(set.link_prefix_of(&deep), None);
        assert!(!set.target_passes_through_link(&deep, &deep));
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }
}
