//! Redis parser throughput on a realistic mix: pipelined SET (100-byte values), GET, MGET of
//! ten keys and INCR, with their replies, fed in 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_protocols::{
    Chunk,
    redis::{Conn, Limits},
};

fn cmd(words: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// The bytes of a pipelined batch: (commands, replies).
type Batch = (Vec<u8>, Vec<u8>);

/// Pipelined batches of 100 commands.
fn mix() -> (Vec<Batch>, usize) {
    let n = 2000;
    let batches = (0..n / 100)
        .map(|b| batch(b * 100..(b + 1) * 100))
        .collect();
    (batches, n)
}

fn batch(range: std::ops::Range<usize>) -> Batch {
    let value = "v".repeat(100);
    let (mut reqs, mut resps) = (Vec::new(), Vec::new());
    for i in range {
        let key = format!("user:{i}:session");
        match i % 4 {
            0 => {
                reqs.extend(cmd(&["SET".into(), key, value.clone()]));
                resps.extend_from_slice(b"+OK\r\n");
            }
            1 => {
                reqs.extend(cmd(&["GET".into(), key]));
                resps.extend_from_slice(format!("$100\r\n{value}\r\n").as_bytes());
            }
            2 => {
                let mut w = vec!["MGET".to_string()];
                w.extend((0..10).map(|k| format!("user:{k}:session")));
                reqs.extend(cmd(&w));
                resps.extend_from_slice(b"*10\r\n");
                for k in 0..10 {
                    if k % 3 == 0 {
                        resps.extend_from_slice(b"$-1\r\n");
                    } else {
                        resps.extend_from_slice(format!("$100\r\n{value}\r\n").as_bytes());
                    }
                }
            }
            _ => {
                reqs.extend(cmd(&["INCR".into(), format!("counter:{i}")]));
                resps.extend_from_slice(format!(":{i}\r\n").as_bytes());
            }
        }
    }
    (reqs, resps)
}

fn bench(c: &mut Criterion) {
    let (batches, n) = mix();
    let bytes: usize = batches.iter().map(|(q, s)| q.len() + s.len()).sum();
    let mut g = c.benchmark_group("redis");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("parse_mix_4k_chunks", |b| {
        b.iter(|| {
            let mut conn = Conn::new(Limits::default());
            let mut out = Vec::with_capacity(n);
            for (reqs, resps) in &batches {
                for q in reqs.chunks(4096) {
                    conn.push_requests(Chunk::Data {
                        bytes: q,
                        first_ts: 1,
                        last_ts: 2,
                    });
                }
                for s in resps.chunks(4096) {
                    conn.push_responses(Chunk::Data {
                        bytes: s,
                        first_ts: 3,
                        last_ts: 4,
                    });
                }
                conn.drain(&mut out);
            }
            assert_eq!(out.len(), n);
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
