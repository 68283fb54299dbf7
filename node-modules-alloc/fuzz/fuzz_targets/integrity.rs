//! Fuzz target `integrity`: see `node_modules_alloc::fuzzing::check_integrity` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = node_modules_alloc::fuzzing::check_integrity(data) {
        panic!("{violation}");
    }
});
