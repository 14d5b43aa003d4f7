//! The HTTP/1 parser over a captured-style curl -> nginx keep-alive exchange (pipelined GET,
//! JSON POST, chunked event stream with extension and trailer, HEAD): fed whole, byte by byte,
//! and split at every offset, it must give the same records every time.

use pxtop_protocols::{
    Chunk,
    http1::{Conn, Limits, Record, Start, headers_json},
};

const REQS: &[u8] = include_bytes!("fixtures/curl_nginx_keepalive.req");
const RESPS: &[u8] = include_bytes!("fixtures/curl_nginx_keepalive.resp");

/// Feeds the request stream cut into `reqs` pieces, then the response stream cut into `resps`,
/// with increasing timestamps, and returns every record.
fn feed(reqs: &[&[u8]], resps: &[&[u8]]) -> (Vec<Record>, Conn) {
    let mut c = Conn::new(Limits::default());
    let mut ts = 1_000;
    for (side, pieces) in [(0, reqs), (1, resps)] {
        for p in pieces {
            let chunk = Chunk::Data {
                bytes: p,
                first_ts: ts,
                last_ts: ts + 5,
            };
            if side == 0 {
                c.push_requests(chunk);
            } else {
                c.push_responses(chunk);
            }
            ts += 10;
        }
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    (out, c)
}

/// What identifies a record's content, timestamps aside.
fn summary(r: &Record) -> (Start, Start, Vec<u8>, Vec<u8>, u64, u64, String) {
    (
        r.req.start.clone(),
        r.resp.start.clone(),
        r.req.body.clone(),
        r.resp.body.clone(),
        r.req.body_size,
        r.resp.body_size,
        headers_json(&r.resp.headers),
    )
}

#[test]
fn whole_streams_give_four_records_with_bodies() {
    let (recs, c) = feed(&[REQS], &[RESPS]);
    assert_eq!(recs.len(), 4);
    let paths: Vec<_> = recs
        .iter()
        .map(|r| match &r.req.start {
            Start::Request { method, path } => format!("{method} {path}"),
            Start::Response { .. } => String::new(),
        })
        .collect();
    assert_eq!(
        paths,
        [
            "GET /index.html",
            "POST /api/v1/orders?dry_run=true",
            "GET /stream",
            "HEAD /index.html"
        ]
    );
    assert!(recs[0].resp.body.starts_with(b"<!DOCTYPE html>"));
    assert_eq!(recs[0].resp.body_size, 117);
    assert_eq!(recs[1].req.body_size, 58);
    assert!(recs[1].req.body.starts_with(b"{\"customer\":\"c-1042\""));
    assert_eq!(
        recs[1].resp.start,
        Start::Response {
            status: 201,
            reason: "Created".into()
        }
    );
    assert_eq!(recs[2].resp.body, b"data: first event\ndata: second event");
    assert_eq!(recs[2].resp.body_size, 36);
    assert_eq!(recs[3].resp.body_size, 0, "HEAD response has no body");
    assert!(headers_json(&recs[0].req.headers).contains(r#""User-Agent":"curl/8.5.0""#));
    let stats = c.stats();
    assert_eq!((stats.requests, stats.responses, stats.records), (4, 4, 4));
    assert_eq!((stats.parse_errors, stats.resyncs), (0, 0));
}

#[test]
fn byte_by_byte_gives_the_same_records() {
    let (whole, _) = feed(&[REQS], &[RESPS]);
    let reqs: Vec<&[u8]> = REQS.chunks(1).collect();
    let resps: Vec<&[u8]> = RESPS.chunks(1).collect();
    let (bytes, c) = feed(&reqs, &resps);
    assert_eq!(
        bytes.iter().map(summary).collect::<Vec<_>>(),
        whole.iter().map(summary).collect::<Vec<_>>()
    );
    assert_eq!(c.stats().parse_errors, 0);
}

#[test]
fn every_split_point_of_both_streams_gives_the_same_records() {
    let (whole, _) = feed(&[REQS], &[RESPS]);
    let want: Vec<_> = whole.iter().map(summary).collect();
    for at in 0..=REQS.len() {
        let (a, b) = REQS.split_at(at);
        let (recs, _) = feed(&[a, b], &[RESPS]);
        assert_eq!(
            recs.iter().map(summary).collect::<Vec<_>>(),
            want,
            "req split {at}"
        );
    }
    for at in 0..=RESPS.len() {
        let (a, b) = RESPS.split_at(at);
        let (recs, _) = feed(&[REQS], &[a, b]);
        assert_eq!(
            recs.iter().map(summary).collect::<Vec<_>>(),
            want,
            "resp split {at}"
        );
    }
}

#[test]
fn timestamps_come_from_the_chunks_holding_first_and_last_bytes() {
    // Requests: one chunk at ts 1000..1005. Responses: per message, so each has its own ts.
    let (_, cuts) = messages();
    let (recs, _) = feed(&[REQS], &cuts);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.req.start_ts, 1_000);
        let resp_ts = 1_010 + 10 * i as u64;
        assert_eq!((r.resp.start_ts, r.resp.end_ts), (resp_ts, resp_ts + 5));
        assert_eq!(r.latency_ns(), resp_ts + 5 - 1_000);
    }
}

/// The fixture streams cut into messages: (requests, responses), four each. Requests start at
/// a method after a blank line or at 0; responses wherever `HTTP/1.1 ` starts a line.
fn messages() -> (Vec<&'static [u8]>, Vec<&'static [u8]>) {
    fn cut(stream: &'static [u8], is_start: impl Fn(&[u8]) -> bool) -> Vec<&'static [u8]> {
        let mut at: Vec<usize> = (0..stream.len())
            .filter(|&p| (p == 0 || stream[p - 1] == b'\n') && is_start(&stream[p..]))
            .collect();
        at.push(stream.len());
        at.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
    }
    let reqs = cut(REQS, |s| {
        [&b"GET /"[..], b"POST /", b"HEAD /"]
            .iter()
            .any(|m| s.starts_with(m))
    });
    let resps = cut(RESPS, |s| s.starts_with(b"HTTP/1.1 "));
    (reqs, resps)
}

fn pairs(out: &[Record]) -> Vec<String> {
    out.iter()
        .map(|r| match (&r.req.start, &r.resp.start) {
            (Start::Request { method, path }, Start::Response { status, .. }) => {
                format!("{method} {path} {status}")
            }
            _ => String::new(),
        })
        .collect()
}

#[test]
fn the_fixture_cuts_into_four_messages_each_way() {
    let (reqs, resps) = messages();
    assert_eq!((reqs.len(), resps.len()), (4, 4));
    assert!(reqs[1].starts_with(b"POST ") && reqs[1].ends_with(b"}]}\n\n"));
    assert!(resps[2].ends_with(b"X-Checksum: 9f2c\r\n\r\n"));
}

#[test]
fn a_gap_hiding_a_request_head_on_keep_alive_loses_only_that_exchange() {
    // Sequential keep-alive: each request, then its response. The POST's head is cut by a gap.
    let (reqs, resps) = messages();
    let mut c = Conn::new(Limits::default());
    let mut ts = 0;
    let mut tick = || {
        ts += 10;
        ts
    };
    for (i, (q, s)) in reqs.iter().zip(&resps).enumerate() {
        let t = tick();
        if i == 1 {
            c.push_requests(Chunk::Data {
                bytes: &q[..30],
                first_ts: t,
                last_ts: t,
            });
            c.push_requests(Chunk::Gap {
                len: (q.len() - 30) as u64,
                ts: t,
            });
        } else {
            c.push_requests(Chunk::Data {
                bytes: q,
                first_ts: t,
                last_ts: t,
            });
        }
        let t = tick();
        c.push_responses(Chunk::Data {
            bytes: s,
            first_ts: t,
            last_ts: t,
        });
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(
        pairs(&out),
        [
            "GET /index.html 200",
            "GET /stream 200",
            "HEAD /index.html 200"
        ]
    );
    assert_eq!(out[1].resp.body, b"data: first event\ndata: second event");
    let stats = c.stats();
    assert_eq!((stats.resyncs, stats.unmatched_responses), (1, 1));
}

#[test]
fn capture_starting_mid_request_body_drops_the_orphan_response() {
    // The first bytes seen are the tail of the POST body, then its 201; later traffic pairs.
    let (reqs, resps) = messages();
    let mut c = Conn::new(Limits::default());
    let tail = &reqs[1][reqs[1].len() - 20..];
    c.push_requests(Chunk::Data {
        bytes: tail,
        first_ts: 1,
        last_ts: 1,
    });
    c.push_responses(Chunk::Data {
        bytes: resps[1],
        first_ts: 2,
        last_ts: 2,
    });
    c.push_requests(Chunk::Data {
        bytes: reqs[2],
        first_ts: 3,
        last_ts: 3,
    });
    c.push_responses(Chunk::Data {
        bytes: resps[2],
        first_ts: 4,
        last_ts: 4,
    });
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(pairs(&out), ["GET /stream 200"]);
    assert_eq!(c.stats().unmatched_responses, 1);
    assert!(c.stats().parse_errors >= 1);
}

#[test]
fn a_response_seen_before_its_request_still_pairs() {
    // Events of the two directions can be processed out of order; the response's timestamps
    // still say it came after the request.
    let (reqs, resps) = messages();
    let mut c = Conn::new(Limits::default());
    c.push_responses(Chunk::Data {
        bytes: resps[0],
        first_ts: 20,
        last_ts: 21,
    });
    let mut out = Vec::new();
    c.drain(&mut out);
    assert!(out.is_empty());
    c.push_requests(Chunk::Data {
        bytes: reqs[0],
        first_ts: 10,
        last_ts: 11,
    });
    c.drain(&mut out);
    assert_eq!(pairs(&out), ["GET /index.html 200"]);
    assert_eq!(out[0].latency_ns(), 11);
}

#[test]
fn a_request_lost_in_a_pipeline_misaligns_at_most_until_the_pipeline_drains() {
    // Pipelined with a lost POST head, the 201 cannot be told apart from the answer to the
    // next request (FIFO is all HTTP/1 offers). Once the pipeline drains, pairing is right.
    let (reqs, resps) = messages();
    let mut c = Conn::new(Limits::default());
    c.push_requests(Chunk::Data {
        bytes: reqs[0],
        first_ts: 1,
        last_ts: 1,
    });
    c.push_requests(Chunk::Gap {
        len: reqs[1].len() as u64,
        ts: 1,
    });
    c.push_requests(Chunk::Data {
        bytes: reqs[2],
        first_ts: 1,
        last_ts: 1,
    });
    for (i, s) in resps[..3].iter().enumerate() {
        c.push_responses(Chunk::Data {
            bytes: s,
            first_ts: 10 + i as u64,
            last_ts: 10 + i as u64,
        });
    }
    // Later, sequential traffic.
    c.push_requests(Chunk::Data {
        bytes: reqs[3],
        first_ts: 20,
        last_ts: 20,
    });
    c.push_responses(Chunk::Data {
        bytes: resps[3],
        first_ts: 30,
        last_ts: 30,
    });
    let mut out = Vec::new();
    c.drain(&mut out);
    let got = pairs(&out);
    assert_eq!(got.last().map(String::as_str), Some("HEAD /index.html 200"));
    assert_eq!(got[0], "GET /index.html 200");
    assert_eq!(c.stats().unmatched_responses, 1);
}
