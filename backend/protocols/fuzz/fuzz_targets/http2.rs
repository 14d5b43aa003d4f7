//! Fuzz target: arbitrary bytes as alternating HTTP/2 client/server chunks (a client preface
//! prepended unless the input starts with 0xfd), with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::http2::fuzz_one(data);
});
