//! The package index is keyed only by hashes verified against the tarball's bytes, and a
//! lookup only accepts an index under a hash it carries (issue #12, point 3).
// Helpers outside #[test] fns panic on broken fixtures by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use base64::Engine as _;
use node_modules_alloc::Error;
use node_modules_alloc::integrity::Integrity;
use node_modules_alloc::lockfile::{Lockfile, Selection};
use node_modules_alloc::manifest::Manifest;
use node_modules_alloc::store::Store;
use sha2::Digest as _;
use support::{Pkg, sha1_integrity, write_cacache};

/// A lockfile installing `node_modules/<name>` pinned by `integrity`.
fn lockfile_for(name: &str, integrity: &str) -> Lockfile {
    let text = format!(
        r#"{{"lockfileVersion": 3, "packages": {{"": {{}},
            "node_modules/{name}": {{"version": "1.0.0", "integrity": "{integrity}"}}}}}}"#
    );
    Lockfile::parse("package-lock.json", &text).unwrap()
}

#[test]
fn a_cache_entry_listing_another_packages_sha1_does_not_answer_for_it() {
    let dir = tempfile::tempdir().unwrap();
    // `victim` is an old package, pinned by sha1 only in some app's lockfile.
    let victim = Pkg::new("victim", "1.0.0").tgz();
    let victim_sha1 = sha1_integrity(&victim);
    // A crafted cache entry: `evil`'s tarball, with its correct sha512 plus victim's sha1.
    let evil = Pkg::new("evil", "6.6.6")
        .file("index.js", b"steal()", 0o644)
        .tgz();
    let announced = format!("{} {victim_sha1}", Integrity::sha512_of(&evil));
    write_cacache(
        &dir.path().join("_cacache"),
        &[("make-fetch-happen:request-cache:evil", &evil, announced)],
    );
    let store = Store::open(dir.path().join("store")).unwrap();
    let summary = store.import_path(dir.path()).unwrap();
    assert_eq!(
        summary.imported(),
        1,
        "the sha512 matches: evil is imported"
    );

    // ...but it is not filed under victim's sha1,
    let victim_integrity: Integrity = victim_sha1.parse().unwrap();
    assert!(store.read_index(&victim_integrity).unwrap().is_none());
    // so victim's lockfile does not resolve to evil's files.
    let err = Manifest::plan(
        &store,
        &lockfile_for("victim", &victim_sha1),
        &Selection::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MissingPackages { .. }), "{err}");
    // Evil itself is found by its own hashes.
    assert!(
        store
            .read_index(&sha1_integrity(&evil).parse().unwrap())
            .unwrap()
            .is_some()
    );
}

#[test]
fn an_index_filed_under_a_hash_it_does_not_carry_is_ignored() {
    // As left by an older version that filed packages under unverified hashes, or planted.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let evil = Pkg::new("evil", "6.6.6").tgz();
    let victim = Pkg::new("victim", "1.0.0").tgz();
    store
        .import_tarball_bytes("evil.tgz", &evil, None, None)
        .unwrap();
    let sha512 = Integrity::sha512_of(&evil);
    let hash = sha512.strongest().unwrap();
    let filed = store
        .path()
        .join("index")
        .join(format!("sha512-{}.json", hash.hex()));
    let victim_sha1: Integrity = sha1_integrity(&victim).parse().unwrap();
    let planted = store.path().join("index").join(format!(
        "sha1-{}.json",
        victim_sha1.strongest().unwrap().hex()
    ));
    std::fs::copy(&filed, &planted).unwrap();
    assert!(store.read_index(&victim_sha1).unwrap().is_none());
    assert!(store.read_index(&sha512).unwrap().is_some());
}

#[test]
fn verified_extra_hashes_still_find_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let tarball = Pkg::new("custom", "1.0.0").tgz();
    let sha256 = format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&tarball))
    );
    let expected: Integrity = format!("{} {sha256}", Integrity::sha512_of(&tarball))
        .parse()
        .unwrap();
    store
        .import_tarball_bytes("custom.tgz", &tarball, Some(&expected), None)
        .unwrap();
    let index = store
        .read_index(&sha256.parse().unwrap())
        .unwrap()
        .expect("filed under the verified sha256");
    assert_eq!(index.verified_keys, vec![sha256]);
}

#[test]
fn several_hashes_of_the_strongest_algorithm_are_alternatives_as_in_ssri() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let tarball = Pkg::new("alt", "1.0.0").tgz();
    let other = Pkg::new("other", "1.0.0").tgz();
    let expected: Integrity = format!(
        "{} {}",
        Integrity::sha512_of(&other),
        Integrity::sha512_of(&tarball)
    )
    .parse()
    .unwrap();
    store
        .import_tarball_bytes("alt.tgz", &tarball, Some(&expected), None)
        .unwrap();
    // Only the matching sha512 finds it; the other one was never verified.
    assert!(
        store
            .read_index(&Integrity::sha512_of(&other))
            .unwrap()
            .is_none()
    );
    // A right sha1 next to a wrong sha512 is a mismatch: the weaker hash is not consulted.
    let expected: Integrity = format!(
        "{} {}",
        Integrity::sha512_of(&other),
        sha1_integrity(&tarball)
    )
    .parse()
    .unwrap();
    let err = store
        .import_tarball_bytes("alt.tgz", &tarball, Some(&expected), None)
        .unwrap_err();
    assert!(matches!(err, Error::IntegrityMismatch { .. }), "{err}");
}

#[test]
fn lookups_use_only_the_strongest_algorithm_of_the_integrity() {
    // "sha512 of something else, sha1 of this tarball": by ssri's rule the sha1 is never
    // consulted, so the lookup must not find this tarball through it.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let tarball = Pkg::new("weak", "1.0.0").tgz();
    let other = Pkg::new("other", "1.0.0").tgz();
    store
        .import_tarball_bytes("weak.tgz", &tarball, None, None)
        .unwrap();
    let mixed: Integrity = format!(
        "{} {}",
        Integrity::sha512_of(&other),
        sha1_integrity(&tarball)
    )
    .parse()
    .unwrap();
    assert!(store.read_index(&mixed).unwrap().is_none());
    // The sha1 alone still finds it (old packages are pinned by sha1 only).
    assert!(
        store
            .read_index(&sha1_integrity(&tarball).parse().unwrap())
            .unwrap()
            .is_some()
    );
}
