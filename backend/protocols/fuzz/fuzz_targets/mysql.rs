//! Fuzz target: arbitrary bytes as alternating MySQL client/server chunks, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::mysql::fuzz_one(data);
});
