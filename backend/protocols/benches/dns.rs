//! DNS parser throughput on real dig <-> dnsmasq exchanges (A, AAAA, a CNAME chain, MX,
//! NXDOMAIN, TXT, SRV, PTR, all with EDNS), renumbered to 2,000 distinct transactions in
//! batches of 100 queries then 100 replies: as UDP datagrams, and as a TCP stream fed in
//! 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_protocols::{
    Chunk,
    dns::{Conn, Limits, Transport},
};

const UDP_REQ: &[u8] = include_bytes!("../tests/fixtures/dns/udp.req");
const UDP_RESP: &[u8] = include_bytes!("../tests/fixtures/dns/udp.resp");

fn datagrams(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while b.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        v.push(b[2..2 + n].to_vec());
        b = &b[2 + n..];
    }
    v
}

/// Batches of (queries, replies), each message with its transaction id rewritten.
type Batch = (Vec<Vec<u8>>, Vec<Vec<u8>>);

fn mix() -> (Vec<Batch>, usize) {
    let (qs, rs) = (datagrams(UDP_REQ), datagrams(UDP_RESP));
    let mut batches = Vec::new();
    let mut n = 0u16;
    for _ in 0..20 {
        let (mut bq, mut br) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let k = i % qs.len();
            let (mut q, mut r) = (qs[k].clone(), rs[k].clone());
            q[..2].copy_from_slice(&n.to_be_bytes());
            r[..2].copy_from_slice(&n.to_be_bytes());
            bq.push(q);
            br.push(r);
            n += 1;
        }
        batches.push((bq, br));
    }
    (batches, usize::from(n))
}

fn stream(msgs: &[Vec<u8>]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| [&(m.len() as u16).to_be_bytes()[..], m].concat())
        .collect()
}

fn bench(c: &mut Criterion) {
    let (batches, n) = mix();
    let bytes: usize = batches
        .iter()
        .map(|(q, r)| q.iter().chain(r).map(Vec::len).sum::<usize>())
        .sum();
    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("udp_datagrams", |b| {
        b.iter(|| {
            let mut conn = Conn::new(Limits::default(), Transport::Udp);
            let mut out = Vec::with_capacity(n);
            for (qs, rs) in &batches {
                for q in qs {
                    conn.push_requests(Chunk::Data {
                        bytes: q,
                        first_ts: 1,
                        last_ts: 1,
                    });
                }
                for r in rs {
                    conn.push_responses(Chunk::Data {
                        bytes: r,
                        first_ts: 2,
                        last_ts: 2,
                    });
                }
                conn.drain(&mut out);
            }
            assert_eq!(out.len(), n);
            out
        })
    });
    let streams: Vec<(Vec<u8>, Vec<u8>)> = batches
        .iter()
        .map(|(q, r)| (stream(q), stream(r)))
        .collect();
    let tcp_bytes: usize = streams.iter().map(|(q, r)| q.len() + r.len()).sum();
    g.throughput(Throughput::Bytes(tcp_bytes as u64));
    g.bench_function("tcp_4k_chunks", |b| {
        b.iter(|| {
            let mut conn = Conn::new(Limits::default(), Transport::Tcp);
            let mut out = Vec::with_capacity(n);
            for (qs, rs) in &streams {
                for q in qs.chunks(4096) {
                    conn.push_requests(Chunk::Data {
                        bytes: q,
                        first_ts: 1,
                        last_ts: 1,
                    });
                }
                for r in rs.chunks(4096) {
                    conn.push_responses(Chunk::Data {
                        bytes: r,
                        first_ts: 2,
                        last_ts: 2,
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
