//! Replays every committed fuzz input — the seeds (`fuzz/seeds/<target>/`) and the inputs
//! that once crashed a target (`fuzz/regressions/<target>/`) — through the same entry points
//! as the cargo-fuzz targets (`node_modules_alloc::fuzzing`), so a crash found once stays fixed
//! without cargo-fuzz or a nightly toolchain. Passes with an empty `regressions/` too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use node_modules_alloc::fuzzing::{self, Violation};
use node_modules_alloc::store::Store;

/// Every committed input of `target` (README files aside), sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue; // no committed input of this kind yet
        };
        for entry in dir {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_file() && !name.starts_with('.') && !name.starts_with("README") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target`; fails listing every violation.
fn replay(target: &str, mut check: impl FnMut(&[u8]) -> Result<(), Violation>) -> usize {
    let files = inputs(target);
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).unwrap();
            check(&data)
                .err()
                .map(|v| format!("{}: {v}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    files.len()
}

#[test]
fn import_tarball_inputs_keep_their_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), fuzzing::store_config()).unwrap();
    let replayed = replay("import_tarball", |data| {
        fuzzing::check_import_tarball(&store, data)
    });
    assert!(replayed > 0, "the seeds are committed");
}

#[test]
fn lockfile_inputs_keep_their_invariants() {
    assert!(replay("lockfile", fuzzing::check_lockfile) > 0);
}

#[test]
fn integrity_inputs_keep_their_invariants() {
    assert!(replay("integrity", fuzzing::check_integrity) > 0);
}

#[test]
fn package_json_bins_inputs_keep_their_invariants() {
    assert!(replay("package_json_bins", fuzzing::check_package_json_bins) > 0);
}

#[test]
fn path_normalize_inputs_keep_their_invariants() {
    assert!(replay("path_normalize", fuzzing::check_path_normalize) > 0);
}

/// The seeds exercise both outcomes of the importer, so the invariants above are not
/// vacuous: at least one seed is accepted (its index is checked) and one refused.
#[test]
fn import_tarball_seeds_include_accepted_and_refused_tarballs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), fuzzing::store_config()).unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for path in inputs("import_tarball") {
        let data = std::fs::read(&path).unwrap();
        let Some((mode, rest)) = data.split_first() else {
            continue;
        };
        let tarball = if mode & 1 == 0 {
            rest.to_vec()
        } else {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).unwrap();
            gz.finish().unwrap()
        };
        match store.import_tarball_bytes("seed.tgz", &tarball, None, None) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted >= 3 && refused >= 5,
        "accepted {accepted}, refused {refused}"
    );
}

#[cfg(feature = "fetch")]
#[test]
fn fetch_inputs_keep_their_invariants() {
    assert!(replay("fetch_inputs", fuzzing::check_fetch_inputs) > 0);
}
