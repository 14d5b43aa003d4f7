//! Fuzz target: arbitrary bytes as alternating Redis command/reply chunks, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::redis::fuzz_one(data);
});
