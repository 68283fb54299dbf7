//! `pnpm-lock.yaml` v9: a real lockfile (written by pnpm 9 for `tests/fixtures/pnpm-app`, next
//! to the `package-lock.json` npm 10 wrote for the same `package.json`) lays out as the same
//! hoisted tree npm installs; hostile and unsupported lockfiles are refused naming the key.
// Test helpers build YAML text and panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::format_push_string
)]

use std::collections::BTreeMap;
use std::path::Path;

use node_modules_alloc::lockfile::{LockedPackage, Lockfile};
use proptest::prelude::*;

fn fixture(name: &str) -> Lockfile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pnpm-app")
        .join(name);
    Lockfile::from_path(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn by_path(lockfile: &Lockfile) -> BTreeMap<&str, &LockedPackage> {
    lockfile
        .packages()
        .iter()
        .map(|p| (p.path.as_str(), p))
        .collect()
}

#[test]
fn a_real_pnpm_lockfile_lays_out_as_npms_hoisted_tree() {
    let pnpm = fixture("pnpm-lock.yaml");
    let npm = fixture("package-lock.json");
    assert_eq!(pnpm.version(), 9);
    let (pnpm, npm) = (by_path(&pnpm), by_path(&npm));
    let pnpm_paths: Vec<&&str> = pnpm.keys().collect();
    let npm_paths: Vec<&&str> = npm.keys().collect();
    assert_eq!(pnpm_paths, npm_paths);
    for (path, n) in &npm {
        let p = pnpm[path];
        assert_eq!(p.integrity, n.integrity, "{path}");
        assert_eq!(p.name, n.name, "{path}");
        assert_eq!(p.version, n.version, "{path}");
        assert_eq!(
            (p.dev, p.optional, p.dev_optional),
            (n.dev, n.optional, n.dev_optional),
            "{path}: dev/optional/devOptional"
        );
        assert_eq!((&p.os, &p.cpu), (&n.os, &n.cpu), "{path}");
    }
}

const SRI: &str = "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEQmvAVlFhTbEvJSKeG3nSMoYfTRPl5+ac4VBKQA/KV1lIw==";

/// A v9 lockfile: root `dependencies`, and packages `name@version` with their dependencies.
fn lockfile(root: &[(&str, &str)], packages: &[(&str, &[(&str, &str)])]) -> String {
    let mut text = String::from("lockfileVersion: '9.0'\n\nimporters:\n  .:\n    dependencies:\n");
    for (name, version) in root {
        text += &format!("      '{name}':\n        specifier: '*'\n        version: '{version}'\n");
    }
    text += "\npackages:\n";
    for (key, _) in packages {
        let key = key.split('(').next().unwrap_or(key);
        text += &format!("  '{key}':\n    resolution: {{integrity: {SRI}}}\n");
    }
    text += "\nsnapshots:\n";
    for (key, deps) in packages {
        if deps.is_empty() {
            text += &format!("  '{key}': {{}}\n");
        } else {
            text += &format!("  '{key}':\n");
            text += "    dependencies:\n";
            for (name, version) in *deps {
                text += &format!("      '{name}': '{version}'\n");
            }
        }
    }
    text
}

fn parse(text: &str) -> Result<Lockfile, String> {
    Lockfile::parse("pnpm-lock.yaml", text).map_err(|e| e.to_string())
}

#[test]
fn conflicting_versions_nest_where_node_finds_them() {
    let text = lockfile(
        &[("a", "1.0.0"), ("b", "2.0.0"), ("alias", "c@1.0.0")],
        &[
            ("a@1.0.0", &[("b", "1.0.0"), ("c", "1.0.0")]),
            ("b@1.0.0", &[("c", "2.0.0")]),
            ("b@2.0.0", &[]),
            ("c@1.0.0", &[]),
            ("c@2.0.0", &[]),
        ],
    );
    let lock = parse(&text).unwrap();
    let got: Vec<(String, String)> = lock
        .packages()
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                format!("{}@{}", p.name, p.version.clone().unwrap_or_default()),
            )
        })
        .collect();
    let want = [
        ("node_modules/a", "a@1.0.0"),
        // b@2 holds the top: a's b@1 nests under a.
        ("node_modules/a/node_modules/b", "b@1.0.0"),
        // a (placed first) takes the top `c` for c@1; b@1 under a cannot use it, and putting
        // c@2 in a's folder would change what a resolves: c@2 nests under b.
        ("node_modules/a/node_modules/b/node_modules/c", "c@2.0.0"),
        ("node_modules/alias", "c@1.0.0"),
        ("node_modules/b", "b@2.0.0"),
        ("node_modules/c", "c@1.0.0"),
    ];
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(p, k)| ((*p).to_owned(), (*k).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn unsupported_and_hostile_lockfiles_are_refused_naming_the_place() {
    let ok = lockfile(&[("a", "1.0.0")], &[("a@1.0.0", &[])]);
    assert!(parse(&ok).is_ok());
    let cases: Vec<(String, &str)> = vec![
        (ok.replace("'9.0'", "'6.0'"), "version 6"),
        (
            format!("{ok}\npatchedDependencies:\n  a@1.0.0: patches/a.patch\n"),
            "patchedDependencies",
        ),
        (
            ok.replace("  .:\n", "  ../x:\n    dependencies: {}\n  .:\n"),
            "importers[\"../x\"]",
        ),
        (
            ok.replace("version: '1.0.0'", "version: 'link:../outside'"),
            "must stay inside the app",
        ),
        (
            // A workspace needing another version of a package the app has at the top.
            ok.replace(
                "  .:\n",
                "  packages/x:\n    dependencies:\n      a: {specifier: '2', version: 2.0.0}\n  .:\n",
            )
            .replace("\nsnapshots:\n", "  'a@2.0.0':\n    resolution: {integrity: SRI}\n\nsnapshots:\n")
            .replace("integrity: SRI", &format!("integrity: {SRI}")),
            "workspace \"packages/x\"",
        ),
        (
            // A link between workspaces that the app does not link.
            ok.replace(
                "  .:\n",
                "  packages/x:\n    dependencies:\n      y: {specifier: 'workspace:*', version: 'link:../y'}\n  .:\n",
            ),
            "not linked in the app's node_modules",
        ),
        (
            ok.replace("version: '1.0.0'", "version: 'file:../a'"),
            "file:",
        ),
        (
            ok.replace(
                &format!("{{integrity: {SRI}}}"),
                "{tarball: 'https://example.test/a.tgz'}",
            ),
            "missing integrity (tarball https://example.test/a.tgz)",
        ),
        (
            ok.replace(
                &format!("{{integrity: {SRI}}}"),
                "{type: git, repo: 'x', commit: 'y'}",
            ),
            "git dependencies",
        ),
        (
            ok.replace(&format!("{{integrity: {SRI}}}"), "{integrity: 'md5-abc'}"),
            "resolution.integrity",
        ),
        (
            ok.replace("'a':\n        specifier", "'../a':\n        specifier"),
            "invalid dependency name",
        ),
        (
            ok.replace(
                "  'a@1.0.0':\n    resolution",
                "  'b@1.0.0':\n    resolution",
            ),
            "packages[\"a@1.0.0\"]: missing",
        ),
        (
            "lockfileVersion: '9.0'\nimporters: [1, 2]\n".to_owned(),
            "invalid YAML",
        ),
        ("a: &x [*x]\n".to_owned(), "invalid YAML"),
    ];
    for (text, want) in cases {
        let err = parse(&text).expect_err(want);
        assert!(err.contains(want), "{want:?} not in {err}");
        assert!(err.contains("pnpm-lock.yaml"), "{err}");
    }
}

#[test]
fn a_cycle_of_conflicting_versions_is_an_error_not_a_hang() {
    let text = lockfile(
        &[("a", "1.0.0")],
        &[
            ("a@1.0.0", &[("b", "1.0.0")]),
            ("b@1.0.0", &[("a", "2.0.0")]),
            ("a@2.0.0", &[("b", "2.0.0")]),
            ("b@2.0.0", &[("a", "1.0.0")]),
        ],
    );
    let err = parse(&text).unwrap_err();
    assert!(err.contains("cannot lay out"), "{err}");
}

#[test]
fn many_conflicting_versions_lay_out_without_quadratic_work() {
    // 20,000 packages, each needing its own version of `x`: a hostile lockfile of ~2 MB.
    let n = 20_000;
    let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let versions: Vec<String> = (0..n).map(|i| format!("1.0.{i}")).collect();
    let root: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1.0.0")).collect();
    let keys: Vec<String> = names.iter().map(|n| format!("{n}@1.0.0")).collect();
    let xkeys: Vec<String> = versions.iter().map(|v| format!("x@{v}")).collect();
    let deps: Vec<[(&str, &str); 1]> = versions.iter().map(|v| [("x", v.as_str())]).collect();
    let mut packages: Vec<(&str, &[(&str, &str)])> = Vec::new();
    for (key, dep) in keys.iter().zip(&deps) {
        packages.push((key.as_str(), dep.as_slice()));
    }
    for key in &xkeys {
        packages.push((key.as_str(), &[]));
    }
    let lock = parse(&lockfile(&root, &packages)).unwrap();
    assert_eq!(lock.packages().len(), 2 * n);
    assert!(lock.packages().iter().any(|p| p.path == "node_modules/x"));
    assert!(
        lock.packages()
            .iter()
            .any(|p| p.path == "node_modules/p7/node_modules/x")
    );
}

/// Node's resolution of `name` from the package installed at `path`.
fn resolve<'a>(
    paths: &BTreeMap<&str, &'a LockedPackage>,
    path: &str,
    name: &str,
) -> Option<&'a LockedPackage> {
    let mut dir = path.to_owned();
    loop {
        let candidate = if dir.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{dir}/node_modules/{name}")
        };
        if let Some(p) = paths.get(candidate.as_str()) {
            return Some(p);
        }
        if dir.is_empty() {
            return None;
        }
        // Up one package: drop `/node_modules/<name>` (scoped names are not generated here).
        dir = match dir.rfind("/node_modules/") {
            Some(i) => dir[..i].to_owned(),
            None => String::new(),
        };
    }
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the graph, every package finds each of its dependencies at the version its
    /// snapshot names, by Node's resolution from where it is installed.
    #[test]
    fn every_dependency_resolves_to_the_locked_version(
        root in proptest::collection::btree_map(0..5usize, 0..3usize, 1..5),
        deps in proptest::collection::vec(proptest::collection::btree_map(0..5usize, 0..3usize, 0..4), 15),
        acyclic in any::<bool>(),
    ) {
        // Acyclic: a package depends only on names after its own, so a layout must exist.
        let deps: Vec<BTreeMap<usize, usize>> = deps
            .into_iter()
            .enumerate()
            .map(|(i, d)| if acyclic { d.into_iter().filter(|&(n, _)| n > i / 3).collect() } else { d })
            .collect();
        let key = |n: usize, v: usize| format!("{}@{v}.0.0", NAMES[n]);
        let version = |v: usize| format!("{v}.0.0");
        let root_v: Vec<(String, String)> = root.iter().map(|(&n, &v)| (NAMES[n].to_owned(), version(v))).collect();
        let root_r: Vec<(&str, &str)> = root_v.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let dep_v: Vec<Vec<(String, String)>> = deps.iter().map(|d| d.iter().map(|(&n, &v)| (NAMES[n].to_owned(), version(v))).collect()).collect();
        let dep_r: Vec<Vec<(&str, &str)>> = dep_v.iter().map(|d| d.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()).collect();
        let keys: Vec<String> = (0..15).map(|i| key(i / 3, i % 3)).collect();
        let packages: Vec<(&str, &[(&str, &str)])> = keys.iter().zip(&dep_r).map(|(k, d)| (k.as_str(), d.as_slice())).collect();
        let text = lockfile(&root_r, &packages);
        let lock = match parse(&text) {
            Ok(lock) => lock,
            Err(e) => {
                prop_assert!(!acyclic && e.contains("cannot lay out"), "{e}");
                return Ok(());
            }
        };
        let paths = by_path(&lock);
        for (name, v) in &root_v {
            let top = paths.get(format!("node_modules/{name}").as_str());
            prop_assert_eq!(top.and_then(|p| p.version.clone()), Some(v.clone()));
        }
        for p in lock.packages() {
            let index = NAMES.iter().position(|n| *n == p.name).unwrap() * 3
                + p.version.as_deref().and_then(|v| v.split('.').next()).and_then(|v| v.parse::<usize>().ok()).unwrap();
            for (name, v) in &dep_v[index] {
                let found = resolve(&paths, &p.path, name);
                prop_assert_eq!(found.and_then(|f| f.version.clone()), Some(v.clone()), "{} needs {}@{}", p.path, name, v);
            }
        }
    }
}
