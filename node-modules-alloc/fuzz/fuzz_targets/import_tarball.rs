//! Fuzz target `import_tarball`: see `node_modules_alloc::fuzzing::check_import_tarball` for
//! the invariants. One store per process in a temporary directory (under `TMPDIR`, which
//! scripts/fuzz.sh points at a scratch directory it removes afterwards), with the small limits
//! of `fuzzing::store_config`; it is replaced every few hundred imports so that it stays small.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use node_modules_alloc::fuzzing;
use node_modules_alloc::store::Store;

struct TempStore {
    store: Store,
    imports: u32,
    // Dropped after `store` (fields drop in declaration order): removes the directory.
    _dir: tempfile::TempDir,
}

const IMPORTS_PER_STORE: u32 = 500;

fn fresh() -> TempStore {
    let dir = tempfile::Builder::new()
        .prefix("nma-fuzz-store-")
        .tempdir()
        .expect("a temporary directory for the fuzz store");
    let store = Store::open_with(dir.path().join("store"), fuzzing::store_config())
        .expect("a fresh store opens");
    TempStore {
        store,
        imports: 0,
        _dir: dir,
    }
}

static STORE: Mutex<Option<TempStore>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = STORE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let state = guard.get_or_insert_with(fresh);
    if state.imports >= IMPORTS_PER_STORE {
        *state = fresh();
    }
    state.imports += 1;
    if let Err(violation) = fuzzing::check_import_tarball(&state.store, data) {
        panic!("{violation}");
    }
});
