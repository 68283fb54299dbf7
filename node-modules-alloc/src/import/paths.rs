//! Entry paths and link targets: normalization and name limits.
//!
//! # Why limits before anything else
//!
//! node-tar's `excessively-deep.tar` holds one entry whose path is 444 749 bytes of `a/a/a/...`
//! (222 000 levels). Any work per component, let alone per prefix, turns that into minutes of
//! CPU. So the whole-path length (`max_path_bytes`, `PATH_MAX`) is checked first, in O(1); then a
//! single pass splits the path, checking each component's length (`max_component_bytes`,
//! `NAME_MAX`) and the depth (`max_depth`) as it goes. Everything here is linear in the name.
//!
//! The first component (`package/` in npm tarballs, or any other single prefix) is removed,
//! as npm does; `.` and empty components are dropped; `..`, absolute paths, NUL bytes and empty
//! names are refused.

use crate::config::ImportLimits;
use crate::error::Rejection;

/// Entry names longer than this are shown cut in errors.
const DISPLAY_CUT: usize = 100;

/// A readable form of an entry name for errors and events: the name itself when short, else
/// its first 100 bytes and its real length (`a/a/a/…(444749 bytes)`).
pub(crate) fn display_name(raw: &[u8]) -> String {
    if raw.len() <= 2 * DISPLAY_CUT {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let head = raw.get(..DISPLAY_CUT).unwrap_or(raw);
    format!("{}…({} bytes)", String::from_utf8_lossy(head), raw.len())
}

/// Splits and validates an entry path; returns its components with the top directory removed.
///
/// This is the entry point the `fuzzing` feature wraps: whatever the bytes, it returns an error
/// or components that are non-empty, not `.` or `..`, free of `/`, `\` and NUL, within the
/// component limit, at most `max_depth` of them.
pub(crate) fn normalize_entry_path(
    raw: &[u8],
    limits: &ImportLimits,
) -> Result<Vec<String>, Rejection> {
    let len = raw.len() as u64;
    if len > limits.max_path_bytes {
        return Err(Rejection::PathTooLong {
            len,
            limit: limits.max_path_bytes,
        });
    }
    if raw.is_empty() {
        return Err(Rejection::EmptyPath);
    }
    if raw.contains(&0) {
        return Err(Rejection::NulInPath);
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(Rejection::NonUtf8Path);
    };
    if text.starts_with(['/', '\\']) {
        return Err(Rejection::AbsolutePath);
    }
    let mut parts = Vec::new();
    let mut top_seen = false;
    // Byte offset just past the current component and its separator.
    let mut next = 0;
    for part in text.split(['/', '\\']) {
        next += part.len() + 1;
        match part {
            "" | "." => {}
            ".." => return Err(Rejection::ParentComponent),
            p => {
                let len = p.len() as u64;
                if len > limits.max_component_bytes {
                    return Err(Rejection::ComponentTooLong {
                        len,
                        limit: limits.max_component_bytes,
                    });
                }
                if !top_seen {
                    top_seen = true;
                } else if (parts.len() as u64) < limits.max_depth {
                    parts.push(p.to_owned());
                } else {
                    // Count the rest without keeping it, to report the real depth.
                    let rest = text.get(next..).unwrap_or_default();
                    let depth = parts.len() as u64 + 1 + target_components(rest);
                    return Err(Rejection::TooDeep {
                        depth,
                        limit: limits.max_depth,
                    });
                }
            }
        }
    }
    Ok(parts)
}

/// Resolves a symlink target relative to the link's directory; `None` if it escapes the
/// package (absolute, or `..` above the root). Linear in the link's depth plus the target.
pub(crate) fn resolve_link(link_parts: &[String], target: &str) -> Option<Vec<String>> {
    if target.starts_with(['/', '\\']) {
        return None;
    }
    let mut out: Vec<&str> = link_parts
        .split_last()
        .map(|(_, dir)| dir.iter().map(String::as_str).collect())
        .unwrap_or_default();
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    Some(out.into_iter().map(str::to_owned).collect())
}

/// Components of a link target (`.` and empty ones excluded), for the work budget.
pub(crate) fn target_components(target: &str) -> u64 {
    target
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<Vec<String>, Rejection> {
        normalize_entry_path(raw.as_bytes(), &ImportLimits::default())
    }

    #[test]
    fn normalizes_any_single_top_directory() {
        assert_eq!(norm("package/lib/a.js").unwrap(), vec!["lib", "a.js"]);
        assert_eq!(norm("node-v1/./a.js").unwrap(), vec!["a.js"]);
        assert_eq!(norm("./package//a.js").unwrap(), vec!["a.js"]);
        assert_eq!(norm("package/").unwrap(), Vec::<String>::new());
        assert_eq!(norm("/etc/passwd"), Err(Rejection::AbsolutePath));
        assert_eq!(norm("package/../x"), Err(Rejection::ParentComponent));
        assert_eq!(norm(""), Err(Rejection::EmptyPath));
        assert_eq!(norm("package/a\0b"), Err(Rejection::NulInPath));
        assert_eq!(
            normalize_entry_path(b"package/\xff", &ImportLimits::default()),
            Err(Rejection::NonUtf8Path)
        );
    }

    #[test]
    fn refuses_names_over_the_limits_naming_the_sizes() {
        let long = format!("package/{}", "a/".repeat(3000));
        assert_eq!(
            norm(&long),
            Err(Rejection::PathTooLong {
                len: long.len() as u64,
                limit: 4096
            })
        );
        let wide = format!("package/{}", "c".repeat(256));
        assert_eq!(
            norm(&wide),
            Err(Rejection::ComponentTooLong {
                len: 256,
                limit: 255
            })
        );
        let deep = format!("package/{}x", "d/".repeat(200));
        assert_eq!(
            norm(&deep),
            Err(Rejection::TooDeep {
                depth: 201,
                limit: 128
            })
        );
        let at_limit = format!("package/{}x", "d/".repeat(127));
        assert_eq!(norm(&at_limit).unwrap().len(), 128);
    }

    #[test]
    fn display_name_cuts_long_names_and_tells_their_length() {
        assert_eq!(display_name(b"package/a.js"), "package/a.js");
        let long = "a/".repeat(1000);
        let shown = display_name(long.as_bytes());
        assert!(shown.starts_with("a/a/"), "{shown}");
        assert!(shown.ends_with("…(2000 bytes)"), "{shown}");
        assert!(shown.len() < 130);
    }

    #[test]
    fn normalizing_a_huge_deep_path_is_fast() {
        // excessively-deep.tar's path, with the limits raised out of the way: still linear.
        let limits = ImportLimits {
            max_path_bytes: 1 << 20,
            max_depth: 1 << 20,
            ..ImportLimits::default()
        };
        let path = format!("package/{}", "a/".repeat(222_000));
        let start = std::time::Instant::now();
        assert_eq!(
            normalize_entry_path(path.as_bytes(), &limits)
                .unwrap()
                .len(),
            222_000
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn resolves_links_inside_and_refuses_escapes() {
        let link = vec!["lib".to_owned(), "l".to_owned()];
        assert_eq!(
            resolve_link(&link, "../index.js").unwrap(),
            vec!["index.js"]
        );
        assert!(resolve_link(&link, "../../x").is_none());
        assert!(resolve_link(&link, "/etc/passwd").is_none());
        assert_eq!(target_components("./a//b/../c"), 4);
    }

    proptest::proptest! {
        /// Whatever the tarball says, an accepted path has no `..`, no empty component and no
        /// leading `/`, and a resolved link target stays inside the package.
        #[test]
        fn accepted_paths_and_links_stay_inside(
            parts in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "..", ".", "", "node_modules"]), 0..8),
            target in proptest::collection::vec(proptest::sample::select(vec!["a", "..", ".", ""]), 0..6),
            absolute in proptest::bool::ANY,
        ) {
            let raw = format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"));
            if let Ok(components) = norm(&raw) {
                proptest::prop_assert!(!absolute);
                proptest::prop_assert!(components.iter().all(|c| !c.is_empty() && c != ".." && c != "."));
                let target = target.join("/");
                // Independent model: walk depths; going above the package root is an escape.
                let mut depth = (components.len() as i64 - 1).max(0);
                let mut escaped = target.starts_with('/');
                for part in target.split('/') {
                    match part {
                        "" | "." => {}
                        ".." => { depth -= 1; escaped |= depth < 0; }
                        _ => depth += 1,
                    }
                }
                match resolve_link(&components, &target) {
                    Some(resolved) => {
                        proptest::prop_assert!(!escaped);
                        proptest::prop_assert_eq!(resolved.len() as i64, depth.max(0));
                        proptest::prop_assert!(resolved.iter().all(|c| c != ".." && !c.is_empty()));
                    }
                    None => proptest::prop_assert!(escaped),
                }
            }
        }

        /// Arbitrary bytes never panic, and an accepted path respects every limit.
        #[test]
        fn arbitrary_bytes_are_refused_or_within_limits(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let limits = ImportLimits { max_component_bytes: 8, max_depth: 4, ..ImportLimits::default() };
            if let Ok(parts) = normalize_entry_path(&raw, &limits) {
                proptest::prop_assert!(parts.len() <= 4);
                for p in &parts {
                    proptest::prop_assert!(!p.is_empty() && p.len() <= 8 && p != "." && p != "..");
                    proptest::prop_assert!(!p.contains(['/', '\\', '\0']));
                }
            }
        }
    }
}
