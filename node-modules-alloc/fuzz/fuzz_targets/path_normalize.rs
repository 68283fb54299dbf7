//! Fuzz target `path_normalize`: see `node_modules_alloc::fuzzing::check_path_normalize` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = node_modules_alloc::fuzzing::check_path_normalize(data) {
        panic!("{violation}");
    }
});
