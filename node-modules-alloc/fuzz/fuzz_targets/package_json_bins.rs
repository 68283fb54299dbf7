//! Fuzz target `package_json_bins`: see `node_modules_alloc::fuzzing::check_package_json_bins` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = node_modules_alloc::fuzzing::check_package_json_bins(data) {
        panic!("{violation}");
    }
});
