//! What hostile tarballs cost to refuse (issue #21): node-tar's `excessively-deep.tar` shape
//! (one entry with a 444 KB `a/a/a/...` path, as a GNU long name and as a PAX `path`), a
//! 444 KB GNU long-link target, 100 000 tiny entries, a chain of 10 000 symlinks and a package
//! over the total component budget. Each import goes into a fresh store (setup not timed).
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/support/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{Raw, RawTar, raw_tgz};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use node_modules_alloc::store::Store;

fn deep_path(bytes: usize) -> String {
    let mut path = String::from("package");
    while path.len() < bytes {
        path.push_str("/a");
    }
    path
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let deep = deep_path(444_749);
    let pax_path = format!("./{deep}");
    let mut tiny = RawTar::new();
    tiny.file(
        "package/package.json",
        br#"{"name":"many","version":"1.0.0"}"#,
    );
    for i in 1..100_000 {
        tiny.file(&format!("package/f{i}"), b"");
    }
    let mut chain = RawTar::new();
    chain.file("package/l0", b"end of the chain\n");
    for i in 1..=10_000 {
        chain.symlink(&format!("package/l{i}"), &format!("l{}", i - 1));
    }
    let dir = format!("package/{}", "d/".repeat(109));
    let mut budget = RawTar::new();
    for i in 0..40_000 {
        let path = format!("{dir}f{i}");
        budget.long_name(path.as_bytes()).file(&path, b"");
    }
    vec![
        (
            "deep-gnu-long-name",
            raw_tgz(&[Raw::LongName(&deep, b"hi\n")]),
        ),
        (
            "deep-pax-path",
            RawTar::new()
                .pax(&[("path", pax_path.as_bytes())])
                .file(&pax_path[..100], b"hi\n")
                .end()
                .tgz(),
        ),
        (
            "long-link-target",
            raw_tgz(&[Raw::LongLink(
                "package/link",
                deep.trim_start_matches("package/"),
            )]),
        ),
        ("tiny-entries-100k", tiny.end().tgz()),
        ("symlink-chain-10k", chain.end().tgz()),
        ("component-budget-40k-x-111", budget.end().tgz()),
    ]
}

fn hostile_import(c: &mut Criterion) {
    let mut group = c.benchmark_group("hostile_import");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, tarball) in cases() {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let store = Store::open(dir.path().join("store")).unwrap();
                    (dir, store)
                },
                |(dir, store)| {
                    let result = store.import_tarball_bytes(name, &tarball, None, None);
                    black_box(result.is_ok());
                    (dir, store)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, hostile_import);
criterion_main!(benches);
