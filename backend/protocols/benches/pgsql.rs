//! PostgreSQL parser throughput on a realistic mix: a driver's prepared INSERTs and SELECTs
//! (Bind/Execute/Sync with binary parameters, a row back per SELECT) and simple queries,
//! in batches fed in 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_protocols::{
    Chunk,
    pgsql::{Conn, Limits},
};

fn msg(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn bind(stmt: &[u8], params: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![0];
    p.extend_from_slice(stmt);
    p.push(0);
    p.extend_from_slice(&1i16.to_be_bytes());
    p.extend_from_slice(&1i16.to_be_bytes());
    p.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for v in params {
        p.extend_from_slice(&(v.len() as i32).to_be_bytes());
        p.extend_from_slice(v);
    }
    p.extend_from_slice(&1i16.to_be_bytes());
    p.extend_from_slice(&1i16.to_be_bytes());
    msg(b'B', &p)
}

/// The bytes of a batch: (frontend, backend).
type Batch = (Vec<u8>, Vec<u8>);

fn mix() -> (Vec<Batch>, usize) {
    let (mut fe, mut be) = (Vec::new(), Vec::new());
    fe.extend(msg(b'P', b"s1\0INSERT INTO items VALUES ($1, $2)\0\0\0"));
    fe.extend(msg(b'P', b"s2\0SELECT name FROM items WHERE id = $1\0\0\0"));
    fe.extend(msg(b'S', b""));
    be.extend(msg(b'1', b""));
    be.extend(msg(b'1', b""));
    be.extend(msg(b'Z', b"I"));
    let mut batches = vec![(fe, be)];
    let mut n = 0;
    for b in 0..20i32 {
        let (mut fe, mut be) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let id = b * 100 + i;
            let name = format!("customer-name-{id}");
            match i % 3 {
                0 => {
                    fe.extend(bind(b"s1", &[&id.to_be_bytes(), name.as_bytes()]));
                    fe.extend(msg(b'E', b"\0\0\0\0\0"));
                    fe.extend(msg(b'S', b""));
                    be.extend(msg(b'2', b""));
                    be.extend(msg(b'C', b"INSERT 0 1\0"));
                    be.extend(msg(b'Z', b"I"));
                }
                1 => {
                    fe.extend(bind(b"s2", &[&id.to_be_bytes()]));
                    fe.extend(msg(b'E', b"\0\0\0\0\0"));
                    fe.extend(msg(b'S', b""));
                    be.extend(msg(b'2', b""));
                    let mut row = 1i16.to_be_bytes().to_vec();
                    row.extend_from_slice(&(name.len() as i32).to_be_bytes());
                    row.extend_from_slice(name.as_bytes());
                    be.extend(msg(b'D', &row));
                    be.extend(msg(b'C', b"SELECT 1\0"));
                    be.extend(msg(b'Z', b"I"));
                }
                _ => {
                    fe.extend(msg(
                        b'Q',
                        format!("SELECT count(*) FROM items WHERE id < {id}\0").as_bytes(),
                    ));
                    be.extend(msg(
                        b'T',
                        &[
                            0, 1, b'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 8, 0, 0, 0, 0,
                            0, 0,
                        ],
                    ));
                    be.extend(msg(b'D', &[0, 1, 0, 0, 0, 2, b'4', b'2']));
                    be.extend(msg(b'C', b"SELECT 1\0"));
                    be.extend(msg(b'Z', b"I"));
                }
            }
            n += 1;
        }
        batches.push((fe, be));
    }
    (batches, n)
}

fn bench(c: &mut Criterion) {
    let (batches, n) = mix();
    let bytes: usize = batches.iter().map(|(q, s)| q.len() + s.len()).sum();
    let mut g = c.benchmark_group("pgsql");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("parse_mix_4k_chunks", |b| {
        b.iter(|| {
            let mut conn = Conn::new(Limits::default());
            let mut out = Vec::with_capacity(n);
            for (fe, be) in &batches {
                for q in fe.chunks(4096) {
                    conn.push_requests(Chunk::Data {
                        bytes: q,
                        first_ts: 1,
                        last_ts: 2,
                    });
                }
                for s in be.chunks(4096) {
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
