//! `package-lock.json` v1 (npm 5 and 6): the nested `dependencies` tree, read-only.
//!
//! Each entry of `dependencies` is a package installed at `node_modules/<name>` below its
//! parent, with `version`, `resolved`, `integrity`, `dev`, `optional`, `bundled`, `requires`
//! (ignored: the tree is already resolved) and its own nested `dependencies`. Every entry is
//! mapped onto the `packages` entry a v2 lockfile would hold for it (install path
//! `node_modules/a/node_modules/b`) and checked by the same code: names, integrity, paths.
//!
//! Hostile input: the walk is iterative (no recursion on the input's nesting, which `serde_json`
//! already bounds at 128 levels); a name is at most 214 bytes (npm's limit) and is checked
//! before any path is built from it; parents' paths are shared, not copied, while children wait
//! to be read; and the install paths of all packages together are bounded
//! ([`MAX_TOTAL_PATH_BYTES`]), so a small file cannot expand into huge paths.
//!
//! What v1 does not carry: `bin`, `hasInstallScript` and `os`/`cpu`/`libc`. The allocator
//! reads all three from the package's own `package.json` in the store anyway (bins at import,
//! scripts and platform restrictions when planning the tree), so a v1 optional package that
//! excludes the platform is left out as with v2.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Deserialize;

use super::{LockedPackage, parse_entry};

/// npm's longest package name.
const MAX_NAME_BYTES: usize = 214;
/// Longest sum of the install paths of every package of a v1 lockfile.
pub(super) const MAX_TOTAL_PATH_BYTES: usize = 64 << 20;

/// The top level of a v1 lockfile.
#[derive(Deserialize)]
pub(super) struct RawLockV1 {
    pub(super) dependencies: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawDepV1 {
    version: Option<String>,
    integrity: Option<String>,
    resolved: Option<String>,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    bundled: bool,
    dependencies: Option<BTreeMap<String, serde_json::Value>>,
}

/// The packages of a v1 `dependencies` tree, sorted by install path; on an error, its
/// location (`dependencies["node_modules/a/node_modules/b"]`) and reason.
pub(super) fn packages(
    top: BTreeMap<String, serde_json::Value>,
) -> Result<Vec<LockedPackage>, (String, String)> {
    let mut out = Vec::new();
    let mut total = 0usize;
    let root: Rc<str> = Rc::from("");
    // (parent install path, name, entry); popped parents first.
    let mut stack: Vec<(Rc<str>, String, serde_json::Value)> = top
        .into_iter()
        .rev()
        .map(|(name, value)| (Rc::clone(&root), name, value))
        .collect();
    while let Some((parent, name, value)) = stack.pop() {
        if name.len() > MAX_NAME_BYTES {
            return Err((
                format!("dependencies of {:?}", display_parent(&parent)),
                format!(
                    "a package name of {} bytes, over npm's limit of {MAX_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        let path: Rc<str> = if parent.is_empty() {
            Rc::from(format!("node_modules/{name}"))
        } else {
            Rc::from(format!("{parent}/node_modules/{name}"))
        };
        total = total.saturating_add(path.len());
        let loc = format!("dependencies[{path:?}]");
        if total > MAX_TOTAL_PATH_BYTES {
            return Err((
                loc,
                format!(
                    "install paths add up to more than {MAX_TOTAL_PATH_BYTES} bytes (too deep or too many packages)"
                ),
            ));
        }
        let dep: RawDepV1 = serde_json::from_value(value)
            .map_err(|e| (loc.clone(), format!("invalid entry: {e}")))?;
        if let Some(children) = dep.dependencies {
            stack.extend(
                children
                    .into_iter()
                    .rev()
                    .map(|(child, value)| (Rc::clone(&path), child, value)),
            );
        }
        if dep.bundled {
            // Shipped inside the parent's tarball (v2's `inBundle`).
            continue;
        }
        let version = dep.version.unwrap_or_default();
        if version.starts_with("file:") || version.starts_with("link:") {
            return Err((
                format!("{loc}.version"),
                "linked packages (`file:` dependencies) are not supported".to_owned(),
            ));
        }
        // An alias (`npm:real-name@1.2.3`): the real package's name and version.
        let (real_name, version) = match version.strip_prefix("npm:") {
            Some(alias) => match alias.rsplit_once('@').filter(|(n, _)| !n.is_empty()) {
                Some((n, v)) => (Some(n.to_owned()), v.to_owned()),
                None => (None, alias.to_owned()),
            },
            None => (None, version),
        };
        let mut entry = serde_json::Map::new();
        entry.insert("dev".to_owned(), dep.dev.into());
        entry.insert("optional".to_owned(), dep.optional.into());
        if !version.is_empty() {
            entry.insert("version".to_owned(), version.into());
        }
        if let Some(integrity) = dep.integrity {
            entry.insert("integrity".to_owned(), integrity.into());
        }
        if let Some(resolved) = dep.resolved {
            entry.insert("resolved".to_owned(), resolved.into());
        }
        if let Some(real_name) = real_name {
            entry.insert("name".to_owned(), real_name.into());
        }
        match parse_entry(&path, serde_json::Value::Object(entry)) {
            Ok(Some(pkg)) => out.push(pkg),
            Ok(None) => {}
            Err((location, reason)) => {
                let field = location
                    .rsplit_once("].")
                    .map(|(_, f)| format!(".{f}"))
                    .unwrap_or_default();
                return Err((format!("{loc}{field}"), reason));
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn display_parent(parent: &str) -> &str {
    if parent.is_empty() { "(root)" } else { parent }
}

#[cfg(test)]
mod tests {
    use super::super::{Lockfile, Selection};

    const SRI: &str = "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEQmvAVlFhTbEvJSKeG3nSMoYfTRPl5+ac4VBKQA/KV1lIw==";
    const SHA1: &str = "sha1-qUqP5cyxm6YcTAhz05Hph5gvu9M=";

    #[test]
    fn nested_v1_tree_maps_onto_install_paths() {
        let text = format!(
            r#"{{"name": "app", "version": "1.0.0", "lockfileVersion": 1, "requires": true,
              "dependencies": {{
                "a": {{"version": "1.0.0", "resolved": "https://r.invalid/a.tgz", "integrity": "{SRI}",
                       "requires": {{"b": "^1.0.0"}},
                       "dependencies": {{
                         "b": {{"version": "1.0.0", "integrity": "{SHA1}",
                                "dependencies": {{"@s/c": {{"version": "3.0.0", "integrity": "{SRI}", "optional": true}}}}}},
                         "bundled-dep": {{"version": "9.9.9", "bundled": true}}
                       }}}},
                "b": {{"version": "2.0.0", "integrity": "{SRI}", "dev": true}},
                "alias": {{"version": "npm:@real/pkg@4.5.6", "integrity": "{SRI}"}}
              }}}}"#
        );
        let lockfile = Lockfile::parse("package-lock.json", &text).unwrap();
        assert_eq!(lockfile.version(), 1);
        let got: Vec<(&str, &str, Option<&str>, bool, bool)> = lockfile
            .packages()
            .iter()
            .map(|p| {
                (
                    p.path.as_str(),
                    p.name.as_str(),
                    p.version.as_deref(),
                    p.dev,
                    p.optional,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("node_modules/a", "a", Some("1.0.0"), false, false),
                (
                    "node_modules/a/node_modules/b",
                    "b",
                    Some("1.0.0"),
                    false,
                    false
                ),
                (
                    "node_modules/a/node_modules/b/node_modules/@s/c",
                    "@s/c",
                    Some("3.0.0"),
                    false,
                    true
                ),
                (
                    "node_modules/alias",
                    "@real/pkg",
                    Some("4.5.6"),
                    false,
                    false
                ),
                ("node_modules/b", "b", Some("2.0.0"), true, false),
            ]
        );
        assert_eq!(lockfile.packages()[1].integrity.to_string(), SHA1);
        let no_dev = Selection {
            include_dev: false,
            ..Selection::default()
        };
        assert_eq!(lockfile.select(&no_dev).count(), 4);
        // No dependencies at all: an empty tree.
        let empty = Lockfile::parse("x", r#"{"lockfileVersion": 1}"#).unwrap();
        assert!(empty.packages().is_empty());
    }

    #[test]
    fn hostile_or_unsupported_v1_entries_are_errors_naming_the_path() {
        let cases = [
            (
                r#"{"..": {"version": "1.0.0", "integrity": "SRI"}}"#.to_owned(),
                "node_modules/..",
            ),
            (
                r#"{"a/../../etc": {"version": "1.0.0", "integrity": "SRI"}}"#.to_owned(),
                "node_modules/a/../../etc",
            ),
            (
                r#"{"a": {"version": "1.0.0"}}"#.to_owned(),
                "dependencies[\"node_modules/a\"].integrity",
            ),
            (
                r#"{"a": {"version": "file:../a"}}"#.to_owned(),
                "dependencies[\"node_modules/a\"].version",
            ),
            (
                r#"{"a": {"version": 1}}"#.to_owned(),
                "dependencies[\"node_modules/a\"]",
            ),
            (
                format!(r#"{{"{}": {{"version": "1.0.0"}}}}"#, "n".repeat(215)),
                "over npm's limit",
            ),
            (
                r#"{"a": {"integrity": "SRI", "dependencies": {"@s": {"integrity": "SRI"}}}}"#
                    .to_owned(),
                "node_modules/a/node_modules/@s",
            ),
        ];
        for (deps, expected) in cases {
            let text = format!(
                r#"{{"lockfileVersion": 1, "dependencies": {}}}"#,
                deps.replace("SRI", SRI)
            );
            let err = Lockfile::parse("package-lock.json", &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
        assert!(Lockfile::parse("x", r#"{"lockfileVersion": 1, "dependencies": []}"#).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 10_000;
        let mut text = String::from(r#"{"lockfileVersion": 1, "dependencies": "#);
        for _ in 0..depth {
            text.push_str(r#"{"a": {"version": "1.0.0", "dependencies": "#);
        }
        text.push_str("{}");
        for _ in 0..depth {
            text.push_str("}}");
        }
        text.push('}');
        assert!(Lockfile::parse("x", &text).is_err());
    }
}
