//! Fuzz target: arbitrary bytes as alternating CQL client/server chunks, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::cql::fuzz_one(data);
});
