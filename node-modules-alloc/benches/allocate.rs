//! Allocation of a warm template into a fresh app dir, against the naive baseline the
//! allocator replaces: unpacking every tarball of the app into its `node_modules`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use node_modules_alloc::allocator::{Allocator, AllocatorConfig};
use node_modules_alloc::integrity::Integrity;
use node_modules_alloc::store::Store;

fn tarball(name: &str, files: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut add = |path: String, data: Vec<u8>| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, data.as_slice())
            .unwrap();
    };
    add(
        "package/package.json".into(),
        format!(r#"{{"name":"{name}","version":"1.0.0"}}"#).into_bytes(),
    );
    for i in 0..files {
        add(
            format!("package/lib/f{i}.js"),
            format!("// {name} {i}\n{}", "x".repeat(512 + i)).into_bytes(),
        );
    }
    add("package/LICENSE".into(), b"MIT\n".repeat(64));
    builder.into_inner().unwrap().finish().unwrap()
}

fn naive_unpack(tarballs: &[(String, Vec<u8>)], app: &Path) {
    for (name, bytes) in tarballs {
        let dest = app.join("node_modules").join(name);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().into_owned();
            let rel: std::path::PathBuf = path.components().skip(1).collect();
            let target = dest.join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            entry.unpack(&target).unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let tarballs: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("pkg{i}"), tarball(&format!("pkg{i}"), 30)))
        .collect();
    let store = Store::open(dir.path().join("store")).unwrap();
    let mut packages = serde_json::Map::new();
    packages.insert(String::new(), serde_json::json!({}));
    for (name, bytes) in &tarballs {
        store.import_tarball_bytes(name, bytes, None, None).unwrap();
        packages.insert(format!("node_modules/{name}"), serde_json::json!({ "version": "1.0.0", "integrity": Integrity::sha512_of(bytes).to_string() }));
    }
    let lock = dir.path().join("package-lock.json");
    std::fs::write(
        &lock,
        serde_json::json!({ "lockfileVersion": 3, "packages": packages }).to_string(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let allocator = Allocator::new(
        store,
        AllocatorConfig {
            min_free_bytes: 0,
            ..AllocatorConfig::default()
        },
    )
    .unwrap();
    runtime
        .block_on(allocator.allocate(&lock, dir.path().join("warm")))
        .unwrap();

    let apps = dir.path().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let mut group = c.benchmark_group("allocate_60_packages_1920_files");
    group.sample_size(20);
    group.bench_function("node_modules_alloc_clone", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(&apps).unwrap(),
            |app| {
                black_box(
                    runtime
                        .block_on(allocator.allocate(&lock, app.path()))
                        .unwrap(),
                );
                app
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("baseline_unpack_every_tarball", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(&apps).unwrap(),
            |app| {
                naive_unpack(&tarballs, app.path());
                app
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
