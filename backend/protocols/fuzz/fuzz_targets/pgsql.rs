//! Fuzz target: arbitrary bytes as alternating PostgreSQL frontend/backend chunks, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::pgsql::fuzz_one(data);
});
