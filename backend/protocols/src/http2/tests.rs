//! HTTP/2 parser tests over frames built here (header blocks from `loona-hpack`'s encoder, so
//! the dynamic table is really used): gRPC unary and errors, interleaving, CONTINUATION,
//! padding, 1xx, resets, push, table size settings, gaps, mid-stream joins, splits, garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use loona_hpack::Encoder;

use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = len.to_be_bytes()[1..].to_vec();
    v.extend_from_slice(&[kind, flags]);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn hdrs(enc: &mut Encoder<'_>, h: &[(&str, &str)]) -> Vec<u8> {
    enc.encode(h.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

/// A gRPC message: compressed flag, big-endian length, bytes.
fn grpc(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

fn req_headers(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":scheme", "http".into()),
        (":path", path.into()),
        (":authority", "127.0.0.1:50051".into()),
        ("content-type", "application/grpc".into()),
        ("te", "trailers".into()),
        ("user-agent", "grpc-python/1.51.1".into()),
    ]
}

fn enc(enc: &mut Encoder<'_>, h: &[(&'static str, String)]) -> Vec<u8> {
    enc.encode(h.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
}

/// A client and a server of one connection, writing frames.
struct Peer {
    client: Encoder<'static>,
    server: Encoder<'static>,
    reqs: Vec<u8>,
    resps: Vec<u8>,
}

impl Peer {
    fn new() -> Self {
        let mut reqs = PREFACE.to_vec();
        reqs.extend(settings(&[(2, 0), (4, 65000)]));
        let mut resps = settings(&[(3, 100)]);
        resps.extend(frame(SETTINGS, ACK, 0, b""));
        reqs.extend(frame(SETTINGS, ACK, 0, b""));
        Self {
            client: Encoder::new(),
            server: Encoder::new(),
            reqs,
            resps,
        }
    }

    fn unary(&mut self, id: u32, path: &str, body: &[u8], status: u32, msg: &str) {
        let h = enc(&mut self.client, &req_headers(path));
        self.reqs.extend(frame(HEADERS, END_HEADERS, id, &h));
        self.reqs.extend(frame(DATA, END_STREAM, id, &grpc(body)));
        let h = hdrs(
            &mut self.server,
            &[(":status", "200"), ("content-type", "application/grpc")],
        );
        self.resps.extend(frame(HEADERS, END_HEADERS, id, &h));
        if status == 0 {
            self.resps
                .extend(frame(DATA, 0, id, &grpc(b"\x0a\x05hello")));
        }
        let status = status.to_string();
        let mut t = vec![("grpc-status", status.as_str())];
        if !msg.is_empty() {
            t.push(("grpc-message", msg));
        }
        let t = hdrs(&mut self.server, &t);
        self.resps
            .extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &t));
    }
}

fn data(b: &[u8], ts: u64) -> Chunk<'_> {
    Chunk::Data {
        bytes: b,
        first_ts: ts,
        last_ts: ts + 1,
    }
}

fn run(reqs: &[u8], resps: &[u8]) -> (Vec<Record>, Stats) {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(reqs, 100));
    c.push_responses(data(resps, 200));
    let mut out = Vec::new();
    c.drain(&mut out);
    (out, c.stats().clone())
}

fn path(r: &Record) -> &str {
    match &r.req.start {
        Start::Request { path, .. } => path,
        Start::Response { .. } => "?",
    }
}

fn status(r: &Record) -> u16 {
    match &r.resp.start {
        Start::Response { status, .. } => *status,
        Start::Request { .. } => 999,
    }
}

#[test]
fn a_grpc_unary_call_stitches_headers_body_and_trailers() {
    let mut p = Peer::new();
    p.unary(1, "/helloworld.Greeter/SayHello", b"\x0a\x03bob", 0, "");
    p.unary(3, "/helloworld.Greeter/SayHello", b"\x0a\x05alice", 0, "");
    let (recs, stats) = run(&p.reqs, &p.resps);
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!(
        r.req.start,
        Start::Request {
            method: "POST".into(),
            path: "/helloworld.Greeter/SayHello".into()
        }
    );
    assert_eq!((r.req.major_version, r.req.minor_version), (2, 0));
    assert_eq!(status(r), 200);
    assert_eq!(r.req.body, grpc(b"\x0a\x03bob"));
    assert_eq!(r.req.body_size, 10);
    assert_eq!(r.resp.body, grpc(b"\x0a\x05hello"));
    assert_eq!(r.grpc_status(), Some(0));
    assert!(r.is_grpc());
    assert_eq!(r.req.header(":authority"), Some("127.0.0.1:50051"));
    assert_eq!(r.req.header("te"), Some("trailers"));
    // The second call's headers came from the dynamic table.
    assert_eq!(
        recs[1].req.headers,
        recs[0]
            .req
            .headers
            .iter()
            .map(|(k, v)| (
                k.clone(),
                if k == ":path" {
                    "/helloworld.Greeter/SayHello".into()
                } else {
                    v.clone()
                }
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(recs[1].req.body, grpc(b"\x0a\x05alice"));
    assert_eq!(
        crate::http1::headers_json(&r.resp.headers),
        r#"{":status":"200","content-type":"application/grpc","grpc-status":"0"}"#
    );
    assert!(r.req.notes.is_empty() && r.resp.notes.is_empty(), "{r:?}");
    assert_eq!(r.latency_ns(), 201 - 100);
    assert_eq!(
        (
            stats.requests,
            stats.responses,
            stats.records,
            stats.parse_errors
        ),
        (2, 2, 2, 0)
    );
}

#[test]
fn grpc_errors_give_status_and_percent_decoded_message() {
    let mut p = Peer::new();
    p.unary(1, "/svc/Fail", b"", 5, "user%20not%20found: %E2%9C%93%zz");
    let (recs, _) = run(&p.reqs, &p.resps);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].grpc_status(), Some(5));
    assert_eq!(
        recs[0].grpc_message().as_deref(),
        Some("user not found: \u{2713}%zz")
    );
    assert_eq!(recs[0].resp.body_size, 0);
}

#[test]
fn interleaved_streams_continuation_padding_and_priority() {
    let mut c = Encoder::new();
    let mut s = Encoder::new();
    let mut reqs = PREFACE.to_vec();
    reqs.extend(settings(&[]));
    // Stream 1: HEADERS with PRIORITY and padding, split into a CONTINUATION.
    let h1 = hdrs(
        &mut c,
        &[
            (":method", "GET"),
            (":path", "/a"),
            ("x-long", &"v".repeat(300)),
        ],
    );
    let mut p = vec![3]; // pad length
    p.extend_from_slice(&[0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    p.extend_from_slice(&h1[..10]);
    p.extend_from_slice(&[0, 0, 0]);
    reqs.extend(frame(HEADERS, PADDED | PRIORITY_FLAG | END_STREAM, 1, &p));
    // Stream 3 starts while 1 is unanswered.
    let h3 = hdrs(&mut c, &[(":method", "POST"), (":path", "/b")]);
    let mut early = reqs.clone();
    early.extend(frame(CONTINUATION, END_HEADERS, 1, &h1[10..]));
    reqs = early;
    reqs.extend(frame(HEADERS, END_HEADERS, 3, &h3));
    reqs.extend(frame(DATA, PADDED, 3, b"\x02ab\0\0"));
    reqs.extend(frame(PING, 0, 0, &[0; 8]));
    reqs.extend(frame(0xaa, 0, 0, b"unknown extension frame"));
    reqs.extend(frame(WINDOW_UPDATE, 0, 3, &[0, 0, 1, 0]));
    reqs.extend(frame(DATA, END_STREAM, 3, b"cd"));
    let mut resps = settings(&[]);
    let r3 = hdrs(&mut s, &[(":status", "201")]);
    let r1 = hdrs(
        &mut s,
        &[(":status", "200"), ("content-type", "text/plain")],
    );
    resps.extend(frame(HEADERS, END_HEADERS, 3, &r3));
    resps.extend(frame(HEADERS, END_HEADERS, 1, &r1));
    resps.extend(frame(DATA, 0, 1, b"one"));
    resps.extend(frame(DATA, END_STREAM, 3, b"three"));
    resps.extend(frame(DATA, END_STREAM, 1, b"-more"));
    resps.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    let (recs, stats) = run(&reqs, &resps);
    let got: Vec<(&str, u16, &[u8], &[u8])> = recs
        .iter()
        .map(|r| (path(r), status(r), &r.req.body[..], &r.resp.body[..]))
        .collect();
    assert_eq!(
        got,
        [
            ("/b", 201, &b"abcd"[..], &b"three"[..]),
            ("/a", 200, &b""[..], &b"one-more"[..])
        ]
    );
    assert_eq!(recs[1].req.header("x-long").map(str::len), Some(300));
    assert_eq!(stats.parse_errors, 0);
}

#[test]
fn informational_responses_are_skipped() {
    let mut c = Encoder::new();
    let mut s = Encoder::new();
    let mut reqs = PREFACE.to_vec();
    let h = hdrs(
        &mut c,
        &[
            (":method", "PUT"),
            (":path", "/up"),
            ("expect", "100-continue"),
        ],
    );
    reqs.extend(frame(HEADERS, END_HEADERS, 1, &h));
    reqs.extend(frame(DATA, END_STREAM, 1, b"payload"));
    let mut resps = settings(&[]);
    resps.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &hdrs(&mut s, &[(":status", "100")]),
    ));
    resps.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &hdrs(&mut s, &[(":status", "204")]),
    ));
    let (recs, stats) = run(&reqs, &resps);
    assert_eq!(recs.len(), 1);
    assert_eq!(status(&recs[0]), 204);
    assert_eq!(stats.responses, 1);
}

#[test]
fn rst_stream_completes_a_stream_as_reset() {
    let mut c = Encoder::new();
    let mut reqs = PREFACE.to_vec();
    reqs.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &hdrs(&mut c, &[(":method", "POST"), (":path", "/slow")]),
    ));
    reqs.extend(frame(DATA, 0, 1, b"partial"));
    reqs.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    let (recs, stats) = run(&reqs, &settings(&[]));
    assert_eq!(recs.len(), 1);
    assert_eq!(status(&recs[0]), 0);
    assert_eq!(recs[0].req.body, b"partial");
    assert!(
        recs[0]
            .resp
            .notes
            .iter()
            .any(|n| n == "stream reset by client: CANCEL"),
        "{:?}",
        recs[0].resp.notes
    );
    assert_eq!(stats.resets, 1);
}

#[test]
fn server_push_becomes_a_record() {
    let mut c = Encoder::new();
    let mut s = Encoder::new();
    let mut reqs = PREFACE.to_vec();
    reqs.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &hdrs(&mut c, &[(":method", "GET"), (":path", "/")]),
    ));
    let mut resps = settings(&[]);
    let mut pp = 2u32.to_be_bytes().to_vec();
    pp.extend(hdrs(&mut s, &[(":method", "GET"), (":path", "/style.css")]));
    resps.extend(frame(PUSH_PROMISE, END_HEADERS, 1, &pp));
    resps.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &hdrs(&mut s, &[(":status", "200")]),
    ));
    resps.extend(frame(
        HEADERS,
        END_HEADERS,
        2,
        &hdrs(&mut s, &[(":status", "200")]),
    ));
    resps.extend(frame(DATA, END_STREAM, 2, b"body{}"));
    let (recs, _) = run(&reqs, &resps);
    let paths: Vec<&str> = recs.iter().map(path).collect();
    assert_eq!(paths, ["/", "/style.css"]);
    assert_eq!(recs[1].resp.body, b"body{}");
}

/// A size update to 8192 and a 5000-byte header indexed, then referenced by index.
fn big_table_exchange(announce: bool) -> (Vec<Record>, Stats) {
    let mut c = Encoder::new();
    let mut s = Encoder::new();
    s.set_max_table_size(8192);
    let mut reqs = PREFACE.to_vec();
    reqs.extend(if announce {
        settings(&[(HEADER_TABLE_SIZE, 8192)])
    } else {
        settings(&[])
    });
    let big = "x".repeat(5000);
    let mut resps = settings(&[]);
    for id in [1, 3] {
        let h = hdrs(&mut c, &[(":method", "GET"), (":path", "/big")]);
        reqs.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &h));
        let mut block = if id == 1 {
            vec![0x3f, 0xe1, 0x3f]
        } else {
            Vec::new()
        };
        block.extend(hdrs(&mut s, &[(":status", "200"), ("x-big", &big)]));
        resps.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
    }
    run(&reqs, &resps)
}

#[test]
fn settings_header_table_size_is_honoured() {
    let (recs, stats) = big_table_exchange(true);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.resp.header("x-big").map(str::len), Some(5000));
        assert!(r.resp.notes.is_empty());
    }
    assert_eq!(stats.parse_errors, 0);
    // Unannounced, the size update is a decoding error: no headers from then on, said so.
    let (recs, stats) = big_table_exchange(false);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert!(r.resp.headers.is_empty());
        assert!(r.resp.notes[0].starts_with("hpack: "), "{:?}", r.resp.notes);
    }
    assert_eq!(stats.parse_errors, 1);
}

#[test]
fn joining_mid_stream_stitches_without_headers() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", b"first", 0, "");
    let (skip_q, skip_s) = (p.reqs.len(), p.resps.len());
    p.unary(3, "/svc/A", b"second", 7, "denied");
    let (recs, stats) = run(&p.reqs[skip_q..], &p.resps[skip_s..]);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.req.headers.is_empty() && r.resp.headers.is_empty());
    assert_eq!(path(r), "");
    assert_eq!(status(r), 0);
    assert_eq!(r.req.body, grpc(b"second"));
    assert_eq!(r.grpc_status(), None, "not guessed");
    assert_eq!(r.req.notes, ["hpack: state unknown (joined mid-stream)"]);
    assert_eq!(r.resp.notes, ["hpack: state unknown (joined mid-stream)"]);
    assert_eq!(stats.undecoded_blocks, 3);
}

#[test]
fn a_gap_inside_data_only_counts_toward_the_body() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", &[7; 100], 0, "");
    p.unary(3, "/svc/B", b"b", 0, "");
    let data_at = p
        .reqs
        .windows(5)
        .position(|w| w == [0, 0, 105, DATA, END_STREAM])
        .unwrap();
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(&p.reqs[..data_at + 9 + 20], 1));
    c.push_requests(Chunk::Gap { len: 50, ts: 2 });
    c.push_requests(data(&p.reqs[data_at + 9 + 70..], 3));
    c.push_responses(data(&p.resps, 4));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].req.body_size, 105);
    assert_eq!(out[0].req.body.len(), 55);
    assert_eq!(out[0].req.notes, ["body had a gap"]);
    assert_eq!(path(&out[1]), "/svc/B", "HPACK state kept");
    assert_eq!(c.stats().resyncs, 0);
}

#[test]
fn a_gap_across_frames_poisons_the_direction_for_the_rest_of_the_connection() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", b"a", 0, "");
    let cut = p.reqs.len();
    p.unary(3, "/svc/B", b"b", 0, "");
    let cut2 = p.reqs.len();
    p.unary(5, "/svc/C", b"c", 0, "");
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(&p.reqs[..cut], 1));
    c.push_requests(Chunk::Gap {
        len: (cut2 - cut) as u64,
        ts: 2,
    });
    c.push_requests(data(&p.reqs[cut2..], 3));
    c.push_responses(data(&p.resps, 4));
    let mut out = Vec::new();
    c.drain(&mut out);
    // Stream 3's request is gone; its response is dropped once stream 5 shows up.
    let got: Vec<(&str, u16)> = out.iter().map(|r| (path(r), status(r))).collect();
    assert_eq!(got, [("/svc/A", 200), ("", 200)]);
    assert!(
        out[1].req.notes[0].contains("gap"),
        "{:?}",
        out[1].req.notes
    );
    assert_eq!(out[1].grpc_status(), Some(0), "the response side is intact");
    assert_eq!(c.stats().unmatched, 1);
}

#[test]
fn the_response_may_be_fed_before_its_request() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", b"a", 0, "");
    let mut c = Conn::new(Limits::default());
    c.push_responses(data(&p.resps, 5));
    c.push_requests(data(&p.reqs, 1));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(path(&out[0]), "/svc/A");
}

#[test]
fn bodies_are_capped_with_the_true_size_kept() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", &[1; 5000], 0, "");
    let (recs, _) = run(&p.reqs, &p.resps);
    assert_eq!(recs[0].req.body.len(), 1024);
    assert_eq!(recs[0].req.body_size, 5005);
}

#[test]
fn too_many_open_streams_drop_the_oldest() {
    let mut c = Encoder::new();
    let mut reqs = PREFACE.to_vec();
    for id in (1..=41).step_by(2) {
        let h = hdrs(&mut c, &[(":method", "GET"), (":path", "/x")]);
        reqs.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &h));
    }
    let mut conn = Conn::new(Limits {
        max_streams: 8,
        ..Limits::default()
    });
    conn.push_requests(data(&reqs, 1));
    assert_eq!(conn.open_streams(), 8);
    assert_eq!(conn.stats().unmatched, 13);
    conn.close();
    assert_eq!(conn.stats().unmatched, 21);
}

#[test]
fn splits_at_every_offset_give_the_same_records() {
    let mut p = Peer::new();
    for i in 0..6u32 {
        p.unary(1 + 2 * i, &format!("/svc/M{i}"), &[i as u8; 20], i % 3, "m");
    }
    let (want, _) = run(&p.reqs, &p.resps);
    assert_eq!(want.len(), 6);
    let key = |v: &[Record]| -> Vec<(Message, Message)> {
        v.iter()
            .map(|r| {
                let mut r = r.clone();
                for m in [&mut r.req, &mut r.resp] {
                    m.start_ts = 0;
                    m.end_ts = 0;
                }
                (r.req, r.resp)
            })
            .collect()
    };
    for cut in 0..p.reqs.len().max(p.resps.len()) {
        let mut c = Conn::new(Limits::default());
        let (a, b) = p.reqs.split_at(cut.min(p.reqs.len()));
        c.push_requests(data(a, 100));
        c.push_requests(data(b, 110));
        let (a, b) = p.resps.split_at(cut.min(p.resps.len()));
        c.push_responses(data(a, 200));
        c.push_responses(data(b, 210));
        let mut got = Vec::new();
        c.drain(&mut got);
        assert_eq!(key(&got), key(&want), "cut {cut}");
    }
    // Byte by byte.
    let mut c = Conn::new(Limits::default());
    for b in p.reqs.chunks(1) {
        c.push_requests(data(b, 1));
    }
    for b in p.resps.chunks(1) {
        c.push_responses(data(b, 2));
    }
    let mut got = Vec::new();
    c.drain(&mut got);
    assert_eq!(key(&got), key(&want));
}

#[test]
fn garbage_and_huge_lengths_resync_without_wrong_records() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", b"a", 0, "");
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(&p.reqs, 1));
    // Garbage then a frame header claiming 16 MiB of an unknown type on stream 0.
    c.push_requests(data(b"\xff\xff\xff\x04\x00\x00\x00\x00\x01 garbage", 2));
    c.push_requests(data(&[0xff; 40], 3));
    c.push_responses(data(&p.resps, 4));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(path(&out[0]), "/svc/A");
    assert_eq!(c.stats().parse_errors, 1);
    // A later, plausible chunk is framed again; its headers are not decoded.
    let mut p2 = Peer::new();
    p2.unary(1, "/svc/A", b"a", 0, "");
    let (q0, s0) = (p2.reqs.len(), p2.resps.len());
    p2.unary(3, "/svc/B", b"b", 0, "");
    c.push_requests(data(&p2.reqs[q0..], 5));
    c.push_responses(data(&p2.resps[s0..], 6));
    c.drain(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(path(&out[1]), "");
    assert!(out[1].req.headers.is_empty());
    assert_eq!(
        out[1].grpc_status(),
        Some(0),
        "the response side kept its state"
    );
    assert!(c.stats().resyncs >= 1);
}

#[test]
fn fuzz_one_survives_mutations() {
    let mut p = Peer::new();
    p.unary(1, "/svc/A", b"abc", 0, "");
    p.unary(3, "/svc/B", b"def", 2, "boom");
    let mut seed = p.reqs[PREFACE.len()..].to_vec();
    seed.push(0xff);
    seed.extend_from_slice(&p.resps);
    let want = fuzz_one(&seed);
    assert_eq!(want.records, 2);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..3000 {
        let mut d = seed.clone();
        for _ in 0..1 + round % 4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % d.len();
            d[i] = (x >> 32) as u8;
        }
        fuzz_one(&d);
    }
}
