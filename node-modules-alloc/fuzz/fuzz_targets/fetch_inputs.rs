//! Fuzz target `fetch_inputs`: see `node_modules_alloc::fuzzing::check_fetch_inputs` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = node_modules_alloc::fuzzing::check_fetch_inputs(data) {
        panic!("{violation}");
    }
});
