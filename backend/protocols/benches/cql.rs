//! CQL parser throughput on a realistic v4 mix: a driver's prepared INSERTs (EXECUTE with
//! bound values answered VOID), prepared SELECTs answered with a few rows, and plain QUERYs,
//! pipelined on 32 streams with responses out of order (windows of up to 32 requests, then
//! their responses), fed in 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_protocols::{
    Chunk,
    cql::{Conn, Limits},
};

fn env(version: u8, stream: i16, op: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![version, 0];
    v.extend_from_slice(&stream.to_be_bytes());
    v.push(op);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn long_string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Query parameters (v4): LOCAL_QUORUM, values, page size 5000.
fn params(b: &mut Vec<u8>, values: &[&[u8]]) {
    b.extend_from_slice(&6u16.to_be_bytes());
    b.push(if values.is_empty() { 0x04 } else { 0x05 });
    if !values.is_empty() {
        b.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            b.extend_from_slice(&(v.len() as i32).to_be_bytes());
            b.extend_from_slice(v);
        }
    }
    b.extend_from_slice(&5000i32.to_be_bytes());
}

fn prepare(stream: i16, q: &str, id: u8) -> (Vec<u8>, Vec<u8>) {
    let mut b = Vec::new();
    long_string(&mut b, q);
    let mut r = 4i32.to_be_bytes().to_vec();
    r.extend_from_slice(&16u16.to_be_bytes());
    r.extend_from_slice(&[id; 16]);
    // Prepared metadata: no bind columns listed; result metadata: none.
    r.extend_from_slice(&4i32.to_be_bytes());
    r.extend_from_slice(&0i32.to_be_bytes());
    r.extend_from_slice(&0i32.to_be_bytes());
    r.extend_from_slice(&4i32.to_be_bytes());
    r.extend_from_slice(&0i32.to_be_bytes());
    (env(4, stream, 0x09, &b), env(0x84, stream, 0x08, &r))
}

fn execute(stream: i16, id: u8, values: &[&[u8]]) -> Vec<u8> {
    let mut b = 16u16.to_be_bytes().to_vec();
    b.extend_from_slice(&[id; 16]);
    params(&mut b, values);
    env(4, stream, 0x0a, &b)
}

fn rows(stream: i16, names: &[String]) -> Vec<u8> {
    let mut r = 2i32.to_be_bytes().to_vec();
    r.extend_from_slice(&1i32.to_be_bytes());
    r.extend_from_slice(&2i32.to_be_bytes());
    string(&mut r, "shop");
    string(&mut r, "customers");
    string(&mut r, "id");
    r.extend_from_slice(&0x09u16.to_be_bytes());
    string(&mut r, "name");
    r.extend_from_slice(&0x0du16.to_be_bytes());
    r.extend_from_slice(&(names.len() as i32).to_be_bytes());
    for (i, n) in names.iter().enumerate() {
        r.extend_from_slice(&4i32.to_be_bytes());
        r.extend_from_slice(&(i as i32).to_be_bytes());
        r.extend_from_slice(&(n.len() as i32).to_be_bytes());
        r.extend_from_slice(n.as_bytes());
    }
    env(0x84, stream, 0x08, &r)
}

/// The bytes of a batch: (client, server).
type Batch = (Vec<u8>, Vec<u8>);

fn mix() -> (Vec<Batch>, usize) {
    let (p1, r1) = prepare(0, "INSERT INTO customers (id, name) VALUES (?, ?)", 1);
    let (p2, r2) = prepare(1, "SELECT id, name FROM customers WHERE id = ?", 2);
    let mut batches = vec![([p1, p2].concat(), [r1, r2].concat())];
    let mut n = 2;
    for b in 0..20i32 {
        let (mut fe, mut be) = (Vec::new(), Vec::new());
        let mut window = Vec::new();
        for i in 0..100i32 {
            let id = b * 100 + i;
            let stream = (i % 32) as i16;
            let name = format!("customer-name-{id}");
            let resp = match i % 3 {
                0 => {
                    fe.extend(execute(stream, 1, &[&id.to_be_bytes(), name.as_bytes()]));
                    env(0x84, stream, 0x08, &1i32.to_be_bytes())
                }
                1 => {
                    fe.extend(execute(stream, 2, &[&id.to_be_bytes()]));
                    rows(
                        stream,
                        &[name.clone(), format!("{name}-b"), format!("{name}-c")],
                    )
                }
                _ => {
                    let mut q = Vec::new();
                    long_string(
                        &mut q,
                        &format!("SELECT count(*) FROM customers WHERE bucket = {id}"),
                    );
                    params(&mut q, &[]);
                    fe.extend(env(4, stream, 0x07, &q));
                    rows(stream, &[String::from("42")])
                }
            };
            window.push(resp);
            n += 1;
            if window.len() == 32 || i == 99 {
                // The server answers a window of streams out of order; the driver reuses a
                // stream only once it is answered.
                for r in window.drain(..).rev() {
                    be.extend(r);
                }
                batches.push((std::mem::take(&mut fe), std::mem::take(&mut be)));
            }
        }
    }
    (batches, n)
}

fn bench(c: &mut Criterion) {
    let (batches, n) = mix();
    let bytes: usize = batches.iter().map(|(q, s)| q.len() + s.len()).sum();
    let mut g = c.benchmark_group("cql");
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
            assert_eq!(conn.stats().parse_errors, 0);
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
