//! HTTP/2 parser throughput on a realistic gRPC mix on one connection: unary calls with small
//! protobuf messages (OK and error trailers), 1 KiB JSON POSTs, 16 KiB responses split into
//! DATA frames, four streams interleaved, header blocks HPACK-encoded with the dynamic table
//! in use, fed in 4 KiB chunks like socket reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loona_hpack::Encoder;
use pxtop_protocols::{
    Chunk,
    http2::{Conn, Limits, PREFACE},
};

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    v.extend_from_slice(&[kind, flags]);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn block(enc: &mut Encoder<'_>, h: &[(&str, &str)]) -> Vec<u8> {
    enc.encode(h.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
}

fn grpc(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

/// The bytes of a batch: (client, server).
type Batch = (Vec<u8>, Vec<u8>);

fn mix() -> (Vec<Batch>, usize) {
    let (mut c, mut s) = (Encoder::new(), Encoder::new());
    let mut reqs = PREFACE.to_vec();
    reqs.extend(frame(4, 0, 0, &[0, 2, 0, 0, 0, 0]));
    let mut resps = frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let json = format!("{{\"data\":\"{}\"}}", "x".repeat(1010));
    let big = vec![b'y'; 16 * 1024];
    let mut n = 0;
    let mut batches = Vec::new();
    for batch in 0..75u32 {
        let ids: Vec<u32> = (0..4).map(|k| 1 + 2 * (batch * 4 + k)).collect();
        // Four requests, then their responses interleaved frame by frame.
        let mut resp_frames: Vec<Vec<Vec<u8>>> = Vec::new();
        for (k, &id) in ids.iter().enumerate() {
            let mut frames = Vec::new();
            match k {
                0 | 1 => {
                    let path = format!("/shop.Orders/Get{k}");
                    let h = block(
                        &mut c,
                        &[
                            (":method", "POST"),
                            (":scheme", "http"),
                            (":path", &path),
                            (":authority", "orders:50051"),
                            ("content-type", "application/grpc"),
                            ("te", "trailers"),
                            ("grpc-timeout", "5S"),
                        ],
                    );
                    reqs.extend(frame(1, 4, id, &h));
                    reqs.extend(frame(
                        0,
                        1,
                        id,
                        &grpc(format!("\x08{id}\x12\x06c-{id}").as_bytes()),
                    ));
                    frames.push(frame(
                        1,
                        4,
                        id,
                        &block(
                            &mut s,
                            &[(":status", "200"), ("content-type", "application/grpc")],
                        ),
                    ));
                    frames.push(frame(0, 0, id, &grpc(&[0x0a; 60])));
                    let status = if k == 0 { "0" } else { "5" };
                    frames.push(frame(1, 5, id, &block(&mut s, &[("grpc-status", status)])));
                }
                2 => {
                    let h = block(
                        &mut c,
                        &[
                            (":method", "POST"),
                            (":scheme", "http"),
                            (":path", "/api/orders"),
                            (":authority", "svc"),
                            ("content-type", "application/json"),
                        ],
                    );
                    reqs.extend(frame(1, 4, id, &h));
                    reqs.extend(frame(0, 1, id, json.as_bytes()));
                    frames.push(frame(1, 5, id, &block(&mut s, &[(":status", "201")])));
                }
                _ => {
                    let h = block(
                        &mut c,
                        &[
                            (":method", "GET"),
                            (":scheme", "http"),
                            (":path", "/report"),
                            (":authority", "svc"),
                        ],
                    );
                    reqs.extend(frame(1, 5, id, &h));
                    frames.push(frame(
                        1,
                        4,
                        id,
                        &block(&mut s, &[(":status", "200"), ("content-type", "text/csv")]),
                    ));
                    for (i, part) in big.chunks(4096).enumerate() {
                        let last = i == big.len() / 4096 - 1;
                        frames.push(frame(0, u8::from(last), id, part));
                    }
                }
            }
            resp_frames.push(frames);
            n += 1;
        }
        let most = resp_frames.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..most {
            for f in &resp_frames {
                if let Some(f) = f.get(i) {
                    resps.extend_from_slice(f);
                }
            }
        }
        batches.push((std::mem::take(&mut reqs), std::mem::take(&mut resps)));
    }
    (batches, n)
}

fn bench(c: &mut Criterion) {
    let (batches, n) = mix();
    let bytes: usize = batches.iter().map(|(q, s)| q.len() + s.len()).sum();
    let mut g = c.benchmark_group("http2");
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
