//! MySQL parser throughput on a realistic mix: a driver's prepared INSERTs and SELECTs
//! (COM_STMT_EXECUTE with typed parameters, binary rows back) and text queries returning a
//! few rows, EOF-style, in batches fed in 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_protocols::{
    Chunk,
    mysql::{Conn, Limits},
};

fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

fn lenenc(s: &[u8]) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s);
    v
}

fn coldef(seq: u8, name: &str, t: u8) -> Vec<u8> {
    let mut p = Vec::new();
    for s in [
        &b"def"[..],
        b"shop",
        b"items",
        b"items",
        name.as_bytes(),
        name.as_bytes(),
    ] {
        p.extend(lenenc(s));
    }
    p.extend_from_slice(&[0x0c, 0x21, 0, 0, 1, 0, 0, t, 0, 0, 0, 0, 0]);
    pkt(seq, &p)
}

fn eof(seq: u8) -> Vec<u8> {
    pkt(seq, &[0xfe, 0, 0, 2, 0])
}

fn ok(affected: u8, id: u8) -> Vec<u8> {
    pkt(1, &[0, affected, id, 2, 0, 0, 0])
}

fn prepare(fe: &mut Vec<u8>, be: &mut Vec<u8>, id: u32, sql: &str, params: u16, cols: u16) {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    fe.extend(pkt(0, &p));
    let mut r = vec![0];
    r.extend_from_slice(&id.to_le_bytes());
    r.extend_from_slice(&cols.to_le_bytes());
    r.extend_from_slice(&params.to_le_bytes());
    r.extend_from_slice(&[0, 0, 0]);
    be.extend(pkt(1, &r));
    let mut seq = 2;
    for n in [params, cols] {
        for _ in 0..n {
            be.extend(coldef(seq, "?", 0xfd));
            seq += 1;
        }
        if n > 0 {
            be.extend(eof(seq));
            seq += 1;
        }
    }
}

/// The bytes of a batch: (client, server).
type Batch = (Vec<u8>, Vec<u8>);

fn mix() -> (Vec<Batch>, usize) {
    let (mut fe, mut be) = (Vec::new(), Vec::new());
    prepare(
        &mut fe,
        &mut be,
        1,
        "INSERT INTO items (id, name) VALUES (?, ?)",
        2,
        0,
    );
    prepare(
        &mut fe,
        &mut be,
        2,
        "SELECT name FROM items WHERE id = ?",
        1,
        1,
    );
    let mut batches = vec![(fe, be)];
    let mut n = 2;
    for b in 0..20u32 {
        let (mut fe, mut be) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let id = b * 100 + i;
            let name = format!("customer-name-{id}");
            match i % 3 {
                0 => {
                    let mut p = vec![0x17];
                    p.extend_from_slice(&1u32.to_le_bytes());
                    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 8, 0, 0xfd, 0]);
                    p.extend_from_slice(&u64::from(id).to_le_bytes());
                    p.extend(lenenc(name.as_bytes()));
                    fe.extend(pkt(0, &p));
                    be.extend(ok(1, id as u8));
                }
                1 => {
                    let mut p = vec![0x17];
                    p.extend_from_slice(&2u32.to_le_bytes());
                    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 8, 0]);
                    p.extend_from_slice(&u64::from(id).to_le_bytes());
                    fe.extend(pkt(0, &p));
                    be.extend(pkt(1, &[1]));
                    be.extend(coldef(2, "name", 0xfd));
                    be.extend(eof(3));
                    let mut row = vec![0, 0];
                    row.extend(lenenc(name.as_bytes()));
                    be.extend(pkt(4, &row));
                    be.extend(eof(5));
                }
                _ => {
                    let mut p = vec![0x03];
                    p.extend_from_slice(
                        format!("SELECT id, name FROM items WHERE id < {id} LIMIT 5").as_bytes(),
                    );
                    fe.extend(pkt(0, &p));
                    be.extend(pkt(1, &[2]));
                    be.extend(coldef(2, "id", 3));
                    be.extend(coldef(3, "name", 0xfd));
                    be.extend(eof(4));
                    for r in 0..5u8 {
                        let mut row = lenenc(format!("{}", id + u32::from(r)).as_bytes());
                        row.extend(lenenc(name.as_bytes()));
                        be.extend(pkt(5 + r, &row));
                    }
                    be.extend(eof(10));
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
    let mut g = c.benchmark_group("mysql");
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
