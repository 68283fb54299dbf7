//! Entry points of the `cargo fuzz` targets (`node-modules-alloc/fuzz/`) and of their
//! regression test (`tests/fuzz_regressions.rs`). Behind the off-by-default `fuzzing` feature;
//! not a stable API.
//!
//! # Why here
//!
//! Every parser of this crate reads untrusted input: tarballs and their `package.json`, entry
//! paths, lockfiles, integrity strings. Each `check_*` function feeds raw fuzzer bytes to one
//! parser and checks the invariants the rest of the crate relies on (nothing lands outside the
//! package, a bin never names a path, an integrity round-trips). They live in the library so
//! that the fuzz targets and the replay of committed crash inputs run the very same code, and
//! a crash found once stays fixed without `cargo fuzz`. They return a [`Violation`] instead of
//! panicking (library code never panics); the fuzz target turns it into a crash.
//!
//! Two parsers are crate-internal, so thin wrappers expose them: [`normalize_entry_path`] and
//! [`package_json_bins`].
//!
//! ```
//! use node_modules_alloc::fuzzing;
//!
//! assert_eq!(fuzzing::normalize_entry_path("package/lib/a.js").unwrap(), ["lib", "a.js"]);
//! assert!(fuzzing::check_path_normalize(b"package/../../etc/passwd").is_ok());
//! assert!(fuzzing::check_integrity(b"sha1-qUqP5cyxm6YcTAhz05Hph5gvu9M=").is_ok());
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::config::ImportLimits;
use crate::error::Rejection;
use crate::integrity::Integrity;
use crate::lockfile::{Lockfile, Selection};
use crate::store::{IndexEntry, Store, StoreConfig};

/// An invariant that an input broke: the fuzz target panics with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {what}")]
pub struct Violation {
    /// The fuzz target (`lockfile`, `import_tarball`, ...).
    pub target: &'static str,
    /// What went wrong, naming the offending value.
    pub what: String,
}

fn violation(target: &'static str, what: String) -> Violation {
    Violation { target, what }
}

/// The tarball entry-path normalizer: splits and validates a raw tar entry path and removes
/// its top directory (`package/lib/a.js` → `["lib", "a.js"]`).
pub fn normalize_entry_path(raw: &str) -> Result<Vec<String>, Rejection> {
    crate::import::paths::normalize_entry_path(raw.as_bytes(), &ImportLimits::default())
}

/// The `bin` of a tarball's `package.json` (`name` → path inside the package); `None` when the
/// bytes are not a JSON document.
pub fn package_json_bins(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    crate::import::package_json::parse_package_json_bins(bytes)
        .ok()
        .map(|package| package.bins)
}

/// The store configuration of the `import_tarball` target and its replay: limits small enough
/// that no input can make an import slow or big.
pub fn store_config() -> StoreConfig {
    StoreConfig {
        limits: ImportLimits {
            max_tarball_bytes: 64 << 10,
            max_entry_bytes: 64 << 10,
            max_total_bytes: 256 << 10,
            max_entries: 64,
            ..ImportLimits::default()
        },
        sync_content: false,
    }
}

/// A bin name that is a plain file name: `.bin/<name>` cannot leave `.bin`.
fn bin_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.contains(['/', '\\', '\0']) {
        Some("contains `/`, `\\` or NUL")
    } else {
        None
    }
}

/// A bin target that stays inside its package: not absolute, and no `..` climbs above the
/// package root (`lib/../cli.js` is fine, `../cli.js` is not).
fn bin_target_problem(target: &str) -> Option<&'static str> {
    if target.starts_with('/') {
        return Some("is absolute");
    }
    let mut depth = 0_usize;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return Some("climbs out of the package with `..`"),
            },
            _ => depth += 1,
        }
    }
    None
}

fn check_bins(target: &'static str, bins: &BTreeMap<String, String>) -> Result<(), Violation> {
    for (name, path) in bins {
        if let Some(problem) = bin_name_problem(name) {
            return Err(violation(
                target,
                format!("bin name {name:?} (-> {path:?}) {problem}"),
            ));
        }
        if let Some(problem) = bin_target_problem(path) {
            return Err(violation(
                target,
                format!("bin {name:?} target {path:?} {problem}"),
            ));
        }
    }
    Ok(())
}

/// A relative path of plain components: no empty, `.` or `..` component, no `\`.
fn relative_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("is empty")
    } else if path.starts_with('/') {
        Some("is absolute")
    } else if path.contains('\\') {
        Some("contains `\\`")
    } else if path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        Some("has an empty, `.` or `..` component")
    } else {
        None
    }
}

/// Whether a symlink at `path` pointing to `target` stays inside the package (an independent
/// walk over depths, not the importer's own resolver).
fn link_stays_inside(path: &str, target: &str) -> bool {
    if target.starts_with('/') || target.starts_with('\\') {
        return false;
    }
    let mut depth = path.split('/').count().saturating_sub(1);
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

/// Rewrites the checksum of every tar header, walking from one header to the next by the
/// entry sizes, until a zero block or the end.
fn fix_tar_checksums(tar: &mut [u8]) {
    const BLOCK: usize = 512;
    let mut offset = 0_usize;
    while let Some(header) = tar.get_mut(offset..offset.saturating_add(BLOCK)) {
        if header.iter().all(|&b| b == 0) {
            break;
        }
        // The checksum is computed with its own field as spaces: 6 octal digits, NUL, space.
        if let Some(field) = header.get_mut(148..156) {
            field.fill(b' ');
        }
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        if let Some(field) = header.get_mut(148..156) {
            for (dst, src) in field.iter_mut().zip(format!("{sum:06o}\0 ").bytes()) {
                *dst = src;
            }
        }
        let size = header
            .get(124..136)
            .and_then(|field| std::str::from_utf8(field).ok())
            .and_then(|text| {
                usize::from_str_radix(text.trim_matches(|c: char| c == ' ' || c == '\0'), 8).ok()
            })
            .unwrap_or(0);
        let data = size.div_ceil(BLOCK).saturating_mul(BLOCK);
        offset = offset.saturating_add(BLOCK).saturating_add(data);
    }
}

/// `import_tarball`: the first byte selects how the rest is fed to
/// [`Store::import_tarball_bytes`]: even = as the `.tgz` itself (the gzip layer), odd =
/// gzip-compressed first (so the tar layer is reached), and with bit 1 set too (`3`, `7`, ...)
/// after rewriting every tar header's checksum (so that mutated headers reach the importer
/// instead of failing the checksum). An accepted package's index must only hold relative paths
/// without `..`, symlinks that stay inside, and safe bins; a refused one leaves no index;
/// importing it again must find it complete.
pub fn check_import_tarball(store: &Store, data: &[u8]) -> Result<(), Violation> {
    const T: &str = "import_tarball";
    let Some((mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let tarball = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut tar = rest.to_vec();
        if mode & 2 != 0 {
            fix_tar_checksums(&mut tar);
        }
        let rest = tar.as_slice();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        match gz.write_all(rest).and_then(|()| gz.finish()) {
            Ok(bytes) => bytes,
            Err(_) => return Ok(()), // writing to a Vec does not fail
        }
    };
    let key = Integrity::sha512_of(&tarball);
    let imported = match store.import_tarball_bytes("fuzz.tgz", &tarball, None, None) {
        Ok(imported) => imported,
        // A refused tarball leaves nothing visible.
        Err(refused) => {
            return match store.read_index(&key) {
                Ok(None) => Ok(()),
                other => Err(violation(
                    T,
                    format!("refused ({refused}) but the index lookup gave {other:?}"),
                )),
            };
        }
    };
    let index = store
        .read_index(&key)
        .map_err(|e| violation(T, format!("imported package has no readable index: {e}")))?
        .ok_or_else(|| violation(T, "imported package has no index".to_owned()))?;
    if index.integrity != imported.integrity || index.entries.len() != imported.files {
        return Err(violation(
            T,
            format!("index {index:?} does not describe the import {imported:?}"),
        ));
    }
    for entry in &index.entries {
        let path = entry.path();
        if let Some(problem) = relative_path_problem(path) {
            return Err(violation(T, format!("entry path {path:?} {problem}")));
        }
        if let IndexEntry::Symlink { target, .. } = entry
            && !link_stays_inside(path, target)
        {
            return Err(violation(
                T,
                format!("symlink {path:?} -> {target:?} escapes the package"),
            ));
        }
    }
    check_bins(T, &index.bins)?;
    match store.import_tarball_bytes("fuzz.tgz", &tarball, None, None) {
        Ok(again) if again.already_present && again.integrity == imported.integrity => Ok(()),
        other => Err(violation(
            T,
            format!("importing the same tarball again gave {other:?}"),
        )),
    }
}

/// `lockfile`: [`Lockfile::parse`] (as `package-lock.json` and as `pnpm-lock.yaml`) and
/// [`Lockfile::select`] with every [`Selection`]: a
/// selected package is an install path `node_modules/...` without `..`, empty or `.`
/// components, and its bins are safe.
pub fn check_lockfile(data: &[u8]) -> Result<(), Violation> {
    let text = String::from_utf8_lossy(data);
    // Each input is read as both formats: JSON text is also YAML, and the seeds hold both.
    for file in ["package-lock.json", "pnpm-lock.yaml"] {
        if let Ok(lockfile) = Lockfile::parse(file, &text) {
            check_parsed_lockfile(&lockfile)?;
        }
    }
    Ok(())
}

fn check_parsed_lockfile(lockfile: &Lockfile) -> Result<(), Violation> {
    const T: &str = "lockfile";
    // Workspace links: at the top of node_modules, to a folder that cannot leave the app.
    for link in lockfile.links() {
        if !link.path.starts_with("node_modules/") || relative_path_problem(&link.path).is_some() {
            return Err(violation(
                T,
                format!("link path {:?} is not a top-level install path", link.path),
            ));
        }
        if let Some(problem) = relative_path_problem(&link.target) {
            return Err(violation(
                T,
                format!("link target {:?} {problem}", link.target),
            ));
        }
    }
    for include_dev in [false, true] {
        for include_optional in [false, true] {
            let selection = Selection {
                include_dev,
                include_optional,
            };
            // Every platform: required packages that do not fit are listed, never selected away.
            for platform in fuzz_platforms() {
                let kept = lockfile.select_on(&selection, &platform).count();
                let unfit = lockfile.unfit_required(&selection, &platform).len();
                let required = lockfile
                    .packages()
                    .iter()
                    .filter(|p| !p.is_optional())
                    .count();
                if unfit > required || kept > lockfile.packages().len() {
                    return Err(violation(
                        T,
                        format!("{unfit} unfit of {required} required, {kept} kept"),
                    ));
                }
            }
            for pkg in lockfile.select(&selection) {
                let path = &pkg.path;
                if !path.starts_with("node_modules/") {
                    return Err(violation(
                        T,
                        format!("selected path {path:?} is not under node_modules/"),
                    ));
                }
                if let Some(problem) = relative_path_problem(path) {
                    return Err(violation(T, format!("selected path {path:?} {problem}")));
                }
                check_bins(T, &pkg.bins)?;
            }
        }
    }
    Ok(())
}

fn fuzz_platforms() -> [crate::platform::Platform; 3] {
    use crate::platform::{Libc, Platform};
    let linux = |libc| Platform {
        os: "linux".to_owned(),
        cpu: "x64".to_owned(),
        libc,
    };
    [
        linux(Some(Libc::Glibc)),
        linux(Some(Libc::Musl)),
        Platform {
            os: "darwin".to_owned(),
            cpu: "arm64".to_owned(),
            libc: None,
        },
    ]
}

/// `integrity`: a parsed [`Integrity`] prints to a string that parses back to an equal value,
/// has at least one hash, strongest first; [`Integrity::matches`] answers for any data.
pub fn check_integrity(data: &[u8]) -> Result<(), Violation> {
    const T: &str = "integrity";
    let text = String::from_utf8_lossy(data);
    let Ok(integrity) = text.parse::<Integrity>() else {
        return Ok(());
    };
    let printed = integrity.to_string();
    match printed.parse::<Integrity>() {
        Ok(again) if again == integrity => {}
        other => {
            return Err(violation(
                T,
                format!(
                    "{text:?} parsed to {integrity:?}, printed as {printed:?}, which parses to {other:?}"
                ),
            ));
        }
    }
    let hashes = integrity.hashes();
    let weaker_first = hashes
        .iter()
        .zip(hashes.iter().skip(1))
        .any(|(a, b)| a.algorithm < b.algorithm);
    if hashes.is_empty() || weaker_first {
        return Err(violation(
            T,
            format!("{text:?} parsed to hashes not sorted strongest first: {hashes:?}"),
        ));
    }
    let _ = integrity.matches(data);
    Ok(())
}

/// `package_json_bins`: every bin parsed from a tarball's `package.json` has a plain file name
/// (no `/`, `\`, NUL, not `.` or `..`) and a target that is not absolute and does not climb
/// out of the package with `..`.
pub fn check_package_json_bins(data: &[u8]) -> Result<(), Violation> {
    // The lifecycle reader sees the same bytes: it keeps only non-empty install-stage scripts.
    if let Ok(lifecycle) = crate::import::package_json::parse_lifecycle(data)
        && let Some((stage, command)) = lifecycle.scripts.iter().find(|(stage, command)| {
            !crate::import::package_json::INSTALL_STAGES.contains(stage)
                || command.trim().is_empty()
        })
    {
        return Err(violation(
            "package_json_bins",
            format!("lifecycle script {stage:?} -> {command:?} kept"),
        ));
    }
    match package_json_bins(data) {
        Some(bins) => check_bins("package_json_bins", &bins),
        None => Ok(()),
    }
}

/// `path_normalize`: an accepted entry path has no empty, `.` or `..` component and is not
/// absolute; a path with a leading `/` or `\`, or a `..` component, is refused.
pub fn check_path_normalize(data: &[u8]) -> Result<(), Violation> {
    const T: &str = "path_normalize";
    let Ok(raw) = std::str::from_utf8(data) else {
        return Ok(()); // the importer refuses non-UTF-8 paths before normalizing
    };
    let absolute = raw.starts_with(['/', '\\']);
    let parent = raw.split(['/', '\\']).any(|p| p == "..");
    match normalize_entry_path(raw) {
        Ok(parts) => {
            if absolute || parent {
                return Err(violation(T, format!("{raw:?} was accepted as {parts:?}")));
            }
            if let Some(part) = parts
                .iter()
                .find(|p| p.is_empty() || *p == "." || *p == ".." || p.contains(['/', '\\']))
            {
                return Err(violation(
                    T,
                    format!("{raw:?} normalized to {parts:?} with the component {part:?}"),
                ));
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// `fetch_inputs` (feature `fetch`): what the fetcher reads from a lockfile and `.npmrc`. Every
/// line that parses as a URL prints without credentials, query or fragment and parses back to
/// the same URL; a registry tarball URL built from it for a name and version the fetcher
/// accepts stays under the registry's path; `resolved` URLs read from the input (as a
/// lockfile) are `http(s)` URLs; `.npmrc` reading never panics, and a credential is only
/// found for URLs under its prefix.
#[cfg(feature = "fetch")]
pub fn check_fetch_inputs(data: &[u8]) -> Result<(), Violation> {
    use crate::fetch::url::{Url, url_safe_name, url_safe_version};
    const T: &str = "fetch_inputs";
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let Some(url) = Url::parse(line) else {
            continue;
        };
        let printed = url.to_string();
        let authority = printed.split('/').nth(2).unwrap_or_default();
        if authority.contains('@') || printed.contains('?') || printed.contains('#') {
            return Err(violation(T, format!("{line:?} printed as {printed:?}")));
        }
        match Url::parse(&printed) {
            Some(again) if again.to_string() == printed && again.host_key() == url.host_key() => {}
            other => {
                return Err(violation(
                    T,
                    format!("{line:?} printed as {printed:?}, which parses to {other:?}"),
                ));
            }
        }
        for (name, version) in [("a", "1.0.0"), ("@s/b", "2.0.0-rc.1")] {
            if url_safe_name(name) && url_safe_version(version) {
                let tarball = url.tarball(name, version);
                let base = url.path.trim_end_matches('/');
                if !tarball.path.starts_with(base)
                    || !tarball.is_registry_tarball_of(name, version)
                    || tarball.host_key() != url.host_key()
                {
                    return Err(violation(
                        T,
                        format!("registry {printed:?}: tarball of {name}@{version} is {tarball}"),
                    ));
                }
            }
        }
    }
    for (path, resolved) in crate::fetch::resolved::resolved_urls(&text) {
        if !(resolved.starts_with("http://") || resolved.starts_with("https://")) {
            return Err(violation(
                T,
                format!("resolved {resolved:?} kept for {path:?}"),
            ));
        }
    }
    let mut registries = crate::fetch::Registries::new();
    if registries
        .apply(std::path::Path::new(".npmrc"), &text, &|_| None)
        .is_ok()
    {
        for line in text.lines() {
            if let Some(url) = Url::parse(line)
                && let Some((prefix, _)) = registries.credential_for(&url)
                && !url.nerf_dart().starts_with(prefix)
            {
                return Err(violation(
                    T,
                    format!("credential of {prefix:?} found for {url}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_tar_checksums_are_accepted() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_path("package/a.js").unwrap();
        header.set_cksum();
        builder.append(&header, &b"abc"[..]).unwrap();
        builder.append(&header, &b"abc"[..]).unwrap();
        let mut bytes = builder.into_inner().unwrap();
        // Break both headers: a new name without updating the checksum.
        for offset in [0, 1024] {
            bytes[offset + 8] = b'b';
        }
        let entries = |bytes: &[u8]| -> Result<usize, std::io::Error> {
            let mut archive = tar::Archive::new(bytes);
            archive
                .entries()?
                .map(|e| e.map(|_| ()))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.len())
        };
        assert!(entries(&bytes).is_err(), "the checksum is checked");
        fix_tar_checksums(&mut bytes);
        assert_eq!(entries(&bytes).unwrap(), 2);
    }

    #[test]
    fn link_walk_model_matches_simple_cases() {
        assert!(link_stays_inside("lib/l", "../index.js"));
        assert!(!link_stays_inside("lib/l", "../../x"));
        assert!(!link_stays_inside("l", "/etc/passwd"));
        assert!(link_stays_inside("a/b/c", "./../../d"));
    }

    #[test]
    fn bin_checks_name_the_problem() {
        let bins = BTreeMap::from([("../x".to_owned(), "cli.js".to_owned())]);
        let err = check_bins("t", &bins).unwrap_err();
        assert!(err.what.contains("\"../x\""), "{err}");
        let bins = BTreeMap::from([("x".to_owned(), "../cli.js".to_owned())]);
        assert!(check_bins("t", &bins).is_err());
        let bins = BTreeMap::from([("x".to_owned(), "bin/../cli.js".to_owned())]);
        assert!(check_bins("t", &bins).is_ok());
    }
}
