//! The HTTP/2 parser over real captures (a recording proxy in front of the servers): a Python
//! gRPC server (grpcio 1.51) answering unary OK, unary NOT_FOUND and a server-streaming call on
//! one connection, and curl 7.88 (`--http2-prior-knowledge`) against nginx 1.22 over h2c: a GET
//! with a body, a JSON POST and a 404. Fed whole, byte by byte and split at every offset, each
//! must give the same records.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use pxtop_protocols::{
    Chunk,
    http1::headers_json,
    http2::{Conn, Limits, Record, Start},
};

const GRPC: (&[u8], &[u8]) = (
    include_bytes!("fixtures/http2/grpc_greeter.req"),
    include_bytes!("fixtures/http2/grpc_greeter.resp"),
);
const GET: (&[u8], &[u8]) = (
    include_bytes!("fixtures/http2/curl_nginx_get.req"),
    include_bytes!("fixtures/http2/curl_nginx_get.resp"),
);
const POST: (&[u8], &[u8]) = (
    include_bytes!("fixtures/http2/curl_nginx_post.req"),
    include_bytes!("fixtures/http2/curl_nginx_post.resp"),
);
const NOT_FOUND: (&[u8], &[u8]) = (
    include_bytes!("fixtures/http2/curl_nginx_404.req"),
    include_bytes!("fixtures/http2/curl_nginx_404.resp"),
);

/// Feeds the request pieces then the response pieces, with increasing timestamps.
fn feed(reqs: &[&[u8]], resps: &[&[u8]]) -> (Vec<Record>, Conn) {
    let mut c = Conn::new(Limits::default());
    let mut ts = 1_000;
    for p in reqs {
        c.push_requests(Chunk::Data {
            bytes: p,
            first_ts: ts,
            last_ts: ts + 5,
        });
        ts += 10;
    }
    for p in resps {
        c.push_responses(Chunk::Data {
            bytes: p,
            first_ts: ts,
            last_ts: ts + 5,
        });
        ts += 10;
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    (out, c)
}

fn line(r: &Record) -> String {
    let (m, p) = match &r.req.start {
        Start::Request { method, path } => (method.as_str(), path.as_str()),
        Start::Response { .. } => ("", ""),
    };
    let s = match &r.resp.start {
        Start::Response { status, .. } => *status,
        Start::Request { .. } => 0,
    };
    format!(
        "{m} {p} -> {s} req={}B/{} resp={}B/{} grpc={:?} {:?}",
        r.req.body.len(),
        r.req.body_size,
        r.resp.body.len(),
        r.resp.body_size,
        r.grpc_status(),
        r.grpc_message()
    )
}

#[test]
fn grpc_unary_error_and_server_streaming_calls() {
    let (recs, c) = feed(&[GRPC.0], &[GRPC.1]);
    let lines: Vec<String> = recs.iter().map(line).collect();
    assert_eq!(
        lines,
        [
            "POST /demo.Greeter/SayHello -> 200 req=10B/10 resp=16B/16 grpc=Some(0) None",
            "POST /demo.Greeter/SayHello -> 200 req=11B/11 resp=0B/0 grpc=Some(5) Some(\"user 'fail' not found: \u{2713}\")",
            "POST /demo.Greeter/Ticks -> 200 req=7B/7 resp=39B/39 grpc=Some(0) None",
            "POST /demo.Greeter/SayHello -> 200 req=12B/12 resp=18B/18 grpc=Some(0) None",
        ]
    );
    let r = &recs[0];
    assert!(r.is_grpc());
    assert_eq!((r.req.major_version, r.req.minor_version), (2, 0));
    assert_eq!(r.req.body, b"\0\0\0\0\x05\x0a\x03bob");
    assert_eq!(r.resp.body, b"\0\0\0\0\x0b\x0a\x09hi, \x0a\x03bob");
    assert_eq!(
        r.req.header("user-agent"),
        Some("grpc-python/1.51.1 grpc-c/29.0.0 (linux; chttp2)")
    );
    // The trailers are merged into the response headers.
    assert_eq!(
        headers_json(&recs[1].resp.headers),
        r#"{":status":"200","content-type":"application/grpc","grpc-status":"5","grpc-message":"user 'fail' not found: %E2%9C%93"}"#
    );
    // Three length-prefixed messages of the stream, raw.
    assert_eq!(recs[2].resp.body.iter().filter(|&&b| b == b't').count(), 3);
    // Later calls decode through the dynamic table filled by earlier ones.
    assert_eq!(recs[3].req.headers, recs[0].req.headers);
    for r in &recs {
        assert!(r.req.notes.is_empty() && r.resp.notes.is_empty());
        assert!(r.req.start_ts < r.resp.end_ts);
    }
    let s = c.stats();
    assert_eq!((s.requests, s.responses, s.records), (4, 4, 4));
    assert_eq!((s.parse_errors, s.resyncs, s.unmatched), (0, 0, 0));
}

#[test]
fn curl_against_nginx_over_h2c() {
    let mut lines = Vec::new();
    for (q, s) in [GET, POST, NOT_FOUND] {
        let (recs, c) = feed(&[q], &[s]);
        assert_eq!(c.stats().parse_errors, 0);
        lines.extend(recs.iter().map(line));
        if let [r] = &recs[..] {
            assert_eq!(r.resp.header("server"), Some("nginx/1.22.1"));
            assert_eq!(r.req.header("user-agent"), Some("curl/7.88.1"));
            assert!(!r.is_grpc());
        }
    }
    assert_eq!(
        lines,
        [
            "GET /index.html -> 200 req=0B/0 resp=56B/56 grpc=None None",
            "POST /echo -> 201 req=12B/12 resp=8B/8 grpc=None None",
            "GET /missing -> 404 req=0B/0 resp=153B/153 grpc=None None",
        ]
    );
    let (recs, _) = feed(&[POST.0], &[POST.1]);
    assert_eq!(recs[0].req.body, br#"{"order":42}"#);
    assert_eq!(recs[0].resp.body, b"created\n");
}

fn summaries(recs: &[Record]) -> Vec<(String, String, String)> {
    recs.iter()
        .map(|r| {
            (
                line(r),
                headers_json(&r.req.headers),
                headers_json(&r.resp.headers),
            )
        })
        .collect()
}

#[test]
fn byte_by_byte_and_every_split_give_the_same_records() {
    for (q, s) in [GRPC, GET, POST, NOT_FOUND] {
        let want = summaries(&feed(&[q], &[s]).0);
        let qs: Vec<&[u8]> = q.chunks(1).collect();
        let ss: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(summaries(&feed(&qs, &ss).0), want);
        for at in 0..=q.len().max(s.len()) {
            let (qa, qb) = q.split_at(at.min(q.len()));
            let (sa, sb) = s.split_at(at.min(s.len()));
            assert_eq!(summaries(&feed(&[qa, qb], &[sa, sb]).0), want, "split {at}");
        }
    }
}

/// Offsets of the frames of `b` whose type is `kind`, after `skip` bytes.
fn frames_of(b: &[u8], skip: usize, kind: u8) -> Vec<usize> {
    let mut at = skip;
    let mut out = Vec::new();
    while at + 9 <= b.len() {
        if b[at + 3] == kind {
            out.push(at);
        }
        at += 9 + u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]]) as usize;
    }
    out
}

#[test]
fn joining_the_grpc_connection_mid_stream_keeps_bodies_but_no_headers() {
    // Start both directions at the second call's HEADERS frame.
    let q = frames_of(GRPC.0, 24, 1)[1];
    let s = frames_of(GRPC.1, 0, 1)[2];
    let (recs, c) = feed(&[&GRPC.0[q..]], &[&GRPC.1[s..]]);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert!(r.req.headers.is_empty() && r.resp.headers.is_empty());
        assert_eq!(r.req.notes, ["hpack: state unknown (joined mid-stream)"]);
        assert_eq!(r.grpc_status(), None);
    }
    assert_eq!(recs[1].resp.body_size, 39, "the stream's three messages");
    assert_eq!(c.stats().parse_errors, 0);
}
