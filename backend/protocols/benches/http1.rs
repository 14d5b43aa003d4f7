//! HTTP/1 parser throughput on a realistic mix: small GETs, 1 KiB JSON POSTs, 16 KiB chunked
//! responses, pipelined on one keep-alive connection, fed in 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_protocols::{
    Chunk,
    http1::{Conn, Limits},
};

fn mix() -> (Vec<u8>, Vec<u8>, usize) {
    let mut reqs = Vec::new();
    let mut resps = Vec::new();
    let json = format!("{{\"data\":\"{}\"}}", "x".repeat(1010));
    let chunk = "y".repeat(4096);
    let mut n = 0;
    for i in 0..300 {
        match i % 3 {
            0 => {
                reqs.extend_from_slice(format!("GET /api/users/{i} HTTP/1.1\r\nHost: svc\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n").as_bytes());
                resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"id\":1,\"ok\":tru}");
            }
            1 => {
                reqs.extend_from_slice(format!("POST /api/orders HTTP/1.1\r\nHost: svc\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}", json.len()).as_bytes());
                resps.extend_from_slice(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
            }
            _ => {
                reqs.extend_from_slice(b"GET /report HTTP/1.1\r\nHost: svc\r\n\r\n");
                resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                for _ in 0..4 {
                    resps.extend_from_slice(format!("1000\r\n{chunk}\r\n").as_bytes());
                }
                resps.extend_from_slice(b"0\r\n\r\n");
            }
        }
        n += 1;
    }
    (reqs, resps, n)
}

fn bench(c: &mut Criterion) {
    let (reqs, resps, n) = mix();
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes((reqs.len() + resps.len()) as u64));
    g.bench_function("parse_mix_4k_chunks", |b| {
        b.iter(|| {
            let mut conn = Conn::new(Limits::default());
            let mut out = Vec::with_capacity(n);
            for (q, s) in reqs.chunks(4096).zip(resps.chunks(4096)) {
                conn.push_requests(Chunk::Data {
                    bytes: q,
                    first_ts: 1,
                    last_ts: 2,
                });
                conn.push_responses(Chunk::Data {
                    bytes: s,
                    first_ts: 3,
                    last_ts: 4,
                });
                conn.drain(&mut out);
            }
            for s in resps.chunks(4096).skip(reqs.len().div_ceil(4096)) {
                conn.push_responses(Chunk::Data {
                    bytes: s,
                    first_ts: 3,
                    last_ts: 4,
                });
            }
            conn.drain(&mut out);
            assert_eq!(out.len(), n);
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
