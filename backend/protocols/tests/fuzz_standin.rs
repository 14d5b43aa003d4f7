//! Runs the fuzz target's body (`http1::fuzz_one`) over a few thousand pseudo-random inputs on
//! stable Rust, so every CI run exercises it: real traffic split and interleaved at random
//! points with random gaps, mutated traffic, and pure noise must never panic or hold memory
//! beyond the bound `fuzz_one` asserts.

use pxtop_protocols::http1::fuzz_one;

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// (request stream, response stream, records per repetition) of realistic traffic.
const SEEDS: &[(&[u8], &[u8], u64)] = &[
    (
        b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Length: 3\r\n\r\nabc",
        1,
    ),
    (
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nzz\r\n0\r\nT: 1\r\n\r\n",
        1,
    ),
    (
        b"HEAD / HTTP/1.0\r\n\r\nPUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 N\r\n\r\n",
        2,
    ),
    (
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.0 200 OK\r\n\r\nclose-delimited body",
        // The close-delimited body swallows every later repetition.
        0,
    ),
];

fn input(rng: &mut Rng, round: usize) -> Vec<u8> {
    let control: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
    encode(&control, round, rng).0
}

/// A `fuzz_one` input from `control` and round-dependent traffic, and how many times the seed
/// traffic repeats in it.
fn encode(control: &[u8], round: usize, rng: &mut Rng) -> (Vec<u8>, u64) {
    let mut times = 1;
    let (mut reqs, mut resps) = if round % 5 == 4 {
        let noise = |rng: &mut Rng| (0..rng.below(600)).map(|_| rng.next() as u8).collect();
        (noise(rng), noise(rng))
    } else {
        let (q, s, _) = SEEDS[round % SEEDS.len()];
        times = 1 + rng.below(4);
        (q.repeat(times), s.repeat(times))
    };
    if round % 5 == 1 || round % 5 == 3 {
        for v in [&mut reqs, &mut resps] {
            for _ in 0..rng.below(6) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
            }
        }
    }
    let split = u16::try_from(reqs.len()).unwrap_or(u16::MAX);
    let mut out = vec![control.len() as u8];
    out.extend_from_slice(&split.to_be_bytes());
    out.extend_from_slice(control);
    out.extend_from_slice(&reqs);
    out.extend_from_slice(&resps);
    (out, times as u64)
}

#[test]
fn random_splits_gaps_mutations_and_noise_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..5000 {
        fuzz_one(&input(&mut rng, round));
    }
}

#[test]
fn degenerate_inputs_never_panic() {
    for data in [
        &b""[..],
        b"\x00",
        b"\x00\x00",
        b"\xff\xff\xff",
        b"\x05\x00\x00",
        b"\x01\x00\x10\x40GET / HTTP/1.1\r\n\r\n",
    ] {
        fuzz_one(data);
    }
}

#[test]
fn clean_traffic_split_anywhere_gives_every_record() {
    // Control bytes with bits 6 and 7 clear: no gaps, all requests before responses, segment
    // sizes random. Rounds % 5 == 0 and 2 leave the seeds unmutated.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in (0..2000).filter(|r| r % 5 == 0 || r % 5 == 2) {
        let control: Vec<u8> = (0..1 + rng.below(16))
            .map(|_| rng.next() as u8 & 0x3f)
            .collect();
        let (data, times) = encode(&control, round, &mut rng);
        let (_, _, per_rep) = SEEDS[round % SEEDS.len()];
        let stats = fuzz_one(&data);
        assert_eq!(stats.parse_errors, 0, "round {round}");
        assert_eq!(stats.resyncs, 0, "round {round}");
        let want = if per_rep == 0 { 2 } else { per_rep * times };
        assert_eq!(stats.records, want, "round {round}, {times} repetitions");
    }
}

/// The Redis target's body over mutated real traffic and noise: no panic, bounded buffers.
#[test]
fn redis_fuzz_one_survives_mutated_traffic_and_noise() {
    let seed: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\xff+OK\r\n$1\r\nv\r\n\xff*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n\xff>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n%1\r\n+a\r\n*1\r\n_\r\n";
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..5000 {
        let data: Vec<u8> = if round % 4 == 3 {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = seed.to_vec();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            d
        };
        let _ = pxtop_protocols::redis::fuzz_one(&data);
    }
}

/// The PostgreSQL target's body over mutated real traffic and noise: no panic.
#[test]
fn pgsql_fuzz_one_survives_mutated_traffic_and_noise() {
    let seed: &[u8] = b"\0\0\0\x08\x04\xd2\x16\x2f\xffN\xffQ\0\0\0\x0dSELECT 1;\0P\0\0\0\x10s1\0SELECT 1\0\0\0B\0\0\0\x0e\0s1\0\0\0\0\0\0\0E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04\xffT\0\0\0\x06\0\0D\0\0\0\x06\0\0C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I1\0\0\0\x042\0\0\0\x04E\0\0\0\x0bSERROR\0\0Z\0\0\0\x05I";
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    for round in 0..5000 {
        let data: Vec<u8> = if round % 4 == 3 {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = seed.to_vec();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            d
        };
        let _ = pxtop_protocols::pgsql::fuzz_one(&data);
    }
}

/// The DNS target's body over mutated real traffic (UDP and TCP) and noise: no panic,
/// bounded buffers and pending queries (asserted inside `fuzz_one`).
#[test]
fn dns_fuzz_one_survives_mutated_traffic_and_noise() {
    let udp_q: &[u8] = include_bytes!("fixtures/dns/udp.req");
    let udp_r: &[u8] = include_bytes!("fixtures/dns/udp.resp");
    let tcp_q: &[u8] = include_bytes!("fixtures/dns/tcp.req");
    let tcp_r: &[u8] = include_bytes!("fixtures/dns/tcp.resp");
    // Mode byte (even: UDP, odd: TCP), then a query and its reply; the UDP fixtures carry
    // 2-byte lengths, dropped here to get datagrams.
    let seeds: [Vec<u8>; 2] = [
        [&[0u8][..], &udp_q[2..57], &[0xff], &udp_r[2..61]].concat(),
        [&[1u8][..], tcp_q, &[0xff], tcp_r].concat(),
    ];
    assert_eq!(pxtop_protocols::dns::fuzz_one(&seeds[0]).records, 1);
    let mut rng = Rng(0x1405_7b7e_f767_814f);
    for round in 0..5000 {
        let data: Vec<u8> = if round % 4 == 3 {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = seeds[round % 2].clone();
            for _ in 0..1 + rng.below(6) {
                let i = 1 + rng.below(d.len() - 1);
                d[i] = rng.next() as u8;
            }
            d
        };
        let _ = pxtop_protocols::dns::fuzz_one(&data);
    }
}

/// The CQL target's body over mutated v4 and v5 traffic and noise: no panic, bounded buffers
/// (`fuzz_one` asserts the bound).
#[test]
fn cql_fuzz_one_survives_mutated_traffic_and_noise() {
    // OPTIONS/STARTUP in v5 envelopes, then a QUERY in a v5 segment; SUPPORTED/READY, then a
    // VOID result in a segment; a v4 QUERY/ERROR pair with a pushed EVENT.
    let seed: &[u8] = b"\x05\0\0\0\x05\0\0\0\0\x05\0\0\x01\x01\0\0\0\x16\0\x01\0\x0bCQL_VERSION\0\x053.0.0\x1c\0\x02\x9e\x1a\x05\x05\0\0\x02\x07\0\0\0\x13\0\0\0\x08SELECT 1\0\x01\0\0\0\0\0\0\0\0\xff\x85\0\0\0\x06\0\0\0\x02\0\0\x85\0\0\x01\x02\0\0\0\0\xff\x04\0\0\x03\x07\0\0\0\x0f\0\0\0\x08SELECT 2\0\x01\0\xff\x84\0\0\x03\0\0\0\0\x0a\0\0\x22\0\0\x04oops\x84\0\xff\xff\x0c\0\0\0\x04\0\0\0\0";
    let mut rng = Rng(0x1405_7b7e_f767_814f);
    for round in 0..5000 {
        let data: Vec<u8> = if round % 4 == 3 {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = seed.to_vec();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            d
        };
        let _ = pxtop_protocols::cql::fuzz_one(&data);
    }
}
