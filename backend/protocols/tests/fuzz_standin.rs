//! Runs the fuzz target's body over pseudo-random inputs on stable Rust, so every CI run
//! exercises it: mutations of real HTTP traffic and pure noise must never panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use pxtop_protocols::http1::fuzz_one;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfff;x\r\nzz\r\n0\r\nT: 1\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\nHTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 304 N\r\n\r\n",
];

#[test]
fn mutated_traffic_and_noise_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..4000 {
        let mut input: Vec<u8> = if round % 4 == 3 {
            (0..rng.next() % 512).map(|_| rng.next() as u8).collect()
        } else {
            let base = SEEDS[round % SEEDS.len()];
            let mut v = base.repeat(1 + (rng.next() % 4) as usize);
            for _ in 0..rng.next() % 8 {
                let i = (rng.next() as usize) % v.len();
                v[i] = rng.next() as u8;
            }
            v
        };
        input.insert(0, rng.next() as u8);
        fuzz_one(&input);
    }
}
