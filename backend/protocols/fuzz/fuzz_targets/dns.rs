//! Fuzz target: arbitrary bytes as alternating DNS query/response chunks (UDP datagrams or a
//! TCP stream, by the first byte), with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pxtop_protocols::dns::fuzz_one(data);
});
