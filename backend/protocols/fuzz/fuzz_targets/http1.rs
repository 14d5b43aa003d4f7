//! Fuzz target: arbitrary bytes, split at arbitrary points, with gaps, into both directions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::http1::fuzz_one(data);
});
