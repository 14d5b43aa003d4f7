//! HTTP/1 parser tests over realistic bytes: splits at every offset, pipelining, chunked
//! bodies, HEAD, 1xx, 204/304, close-delimited bodies, gaps, garbage and resync.

use super::*;

const GET: &[u8] = b"GET /api/users?id=7 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
const POST: &[u8] = b"POST /api/orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"item\":\"tea\"}\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
const CREATED_CHUNKED: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n";

fn data(bytes: &[u8], ts: u64) -> Chunk<'_> {
    Chunk::Data {
        bytes,
        first_ts: ts,
        last_ts: ts + 1,
    }
}

fn run(reqs: &[&[u8]], resps: &[&[u8]]) -> (Vec<Record>, Stats) {
    let mut c = Conn::new(Limits::default());
    let mut ts = 100;
    for r in reqs {
        c.push_requests(data(r, ts));
        ts += 10;
    }
    for r in resps {
        c.push_responses(data(r, ts));
        ts += 10;
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    (out, c.stats().clone())
}

fn path(r: &Record) -> &str {
    match &r.req.start {
        Start::Request { path, .. } => path,
        Start::Response { .. } => "",
    }
}

fn status(r: &Record) -> u16 {
    match &r.resp.start {
        Start::Response { status, .. } => *status,
        Start::Request { .. } => 0,
    }
}

#[test]
fn a_simple_exchange_parses_with_headers_bodies_and_latency() {
    let (recs, stats) = run(&[POST], &[OK]);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(
        r.req.start,
        Start::Request {
            method: "POST".into(),
            path: "/api/orders".into()
        }
    );
    assert_eq!(r.req.body, b"{\"item\":\"tea\"}\n");
    assert_eq!(r.req.body_size, 15);
    assert_eq!(status(r), 200);
    assert_eq!(r.resp.body, b"hello");
    assert_eq!((r.req.major_version, r.req.minor_version), (1, 1));
    assert_eq!(r.resp.major_version, 1);
    assert_eq!(r.latency_ns(), 111 - 100);
    assert_eq!(stats.parse_errors, 0);
    assert_eq!(
        headers_json(&r.resp.headers),
        r#"{"Server":"nginx/1.22.1","Content-Type":"text/plain","Content-Length":"5","Connection":"keep-alive"}"#
    );
}

#[test]
fn every_split_point_of_a_pipelined_exchange_gives_the_same_records() {
    let reqs = [GET, POST, GET].concat();
    let resps = [OK, CREATED_CHUNKED, OK].concat();
    let (whole, _) = run(&[&reqs], &[&resps]);
    assert_eq!(whole.len(), 3);
    assert_eq!(status(&whole[1]), 201);
    assert_eq!(whole[1].resp.body, b"Wikipedia");
    for split in 1..reqs.len().max(resps.len()) {
        let (a, b) = reqs.split_at(split.min(reqs.len()));
        let (c, d) = resps.split_at(split.min(resps.len()));
        let (recs, stats) = run(&[a, b], &[c, d]);
        assert_eq!(recs.len(), 3, "split at {split}");
        assert_eq!(stats.parse_errors, 0, "split at {split}");
        for (x, y) in recs.iter().zip(&whole) {
            assert_eq!(x.req.start, y.req.start);
            assert_eq!(x.resp.start, y.resp.start);
            assert_eq!(x.resp.body, y.resp.body, "split at {split}");
            assert_eq!(x.req.body, y.req.body, "split at {split}");
        }
    }
}

#[test]
fn byte_by_byte_feeding_works() {
    let mut c = Conn::new(Limits::default());
    for b in POST.chunks(1) {
        c.push_requests(data(b, 1));
    }
    for b in CREATED_CHUNKED.chunks(1) {
        c.push_responses(data(b, 2));
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resp.body, b"Wikipedia");
    assert_eq!(out[0].resp.body_size, 9);
}

#[test]
fn head_responses_have_no_body_even_with_content_length() {
    let head = b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let (recs, _) = run(&[head, GET], &[resp, OK]);
    assert_eq!(recs.len(), 2);
    // Each message starts at its own chunk: run() feeds at ts 100, 110 then 120, 130.
    assert_eq!(recs[1].req.start_ts, 110);
    assert_eq!(recs[1].latency_ns(), 131 - 110);
    assert_eq!(recs[0].resp.body_size, 0);
    assert_eq!(recs[1].resp.body, b"hello");
}

#[test]
fn informational_responses_are_skipped_and_204_304_have_no_body() {
    let put = b"PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
    let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
    let no = b"HTTP/1.1 204 No Content\r\n\r\n";
    let nm = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n";
    let (recs, _) = run(&[put, GET, GET], &[cont, no, nm, OK]);
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs.iter().map(status).collect::<Vec<_>>(),
        vec![204, 304, 200]
    );
}

#[test]
fn close_delimited_bodies_complete_on_close() {
    let resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>bye</html>";
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(b"GET / HTTP/1.0\r\n\r\n", 1));
    c.push_responses(data(resp, 5));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert!(out.is_empty(), "not complete before close");
    c.close();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resp.body, b"<html>bye</html>");
    assert_eq!(out[0].req.minor_version, 0);
}

#[test]
fn large_bodies_are_counted_not_stored() {
    let mut c = Conn::new(Limits {
        max_body: 16,
        ..Limits::default()
    });
    c.push_requests(data(GET, 1));
    c.push_responses(data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n",
        2,
    ));
    let block = vec![b'z'; 64 * 1024];
    for _ in 0..16 {
        c.push_responses(data(&block, 3));
        // The kept 16 body bytes and the two heads' headers, never the 1 MiB.
        assert!(c.buffered_bytes() <= 256, "{}", c.buffered_bytes());
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resp.body_size, 1 << 20);
    assert_eq!(out[0].resp.body.len(), 16);
}

#[test]
fn gaps_inside_bodies_count_toward_size() {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(GET, 1));
    c.push_responses(data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\nabc",
        2,
    ));
    c.push_responses(Chunk::Gap { len: 9990, ts: 3 });
    c.push_responses(data(b"1234567", 4));
    c.push_requests(data(GET, 5));
    c.push_responses(data(OK, 6));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].resp.body_size, 10_000);
    assert!(out[0].resp.notes[0].contains("9990-byte gap"));
    assert_eq!(out[1].resp.body, b"hello");
}

#[test]
fn a_gap_in_headers_resyncs_on_the_next_message() {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(&GET[..20], 1));
    c.push_requests(Chunk::Gap { len: 50, ts: 2 });
    c.push_requests(data(b"ept: */*\r\n\r\n", 3));
    c.push_requests(data(POST, 4));
    c.push_responses(data(
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        5,
    ));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(path(&out[0]), "/api/orders");
    assert_eq!(c.stats().resyncs, 1);
}

#[test]
fn garbage_then_valid_traffic_recovers() {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(b"GET \x00\x01\x02 garbage HTTP/9\r\n\r\n", 1));
    c.push_requests(data(b"\xff\xfe random noise\n", 2));
    c.push_requests(data(GET, 3));
    c.push_responses(data(OK, 4));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(path(&out[0]), "/api/users?id=7");
    assert!(c.stats().parse_errors >= 1);
}

#[test]
fn oversized_heads_are_errors_not_unbounded_buffers() {
    let mut c = Conn::new(Limits {
        max_header_bytes: 1024,
        ..Limits::default()
    });
    c.push_requests(data(b"GET / HTTP/1.1\r\n", 1));
    let junk = vec![b'a'; 4096];
    c.push_requests(data(&junk, 2));
    assert_eq!(c.stats().parse_errors, 1);
    assert!(c.buffered_bytes() < 1024);
}

#[test]
fn switching_protocols_marks_the_connection_upgraded() {
    let up = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(up, 1));
    c.push_responses(data(resp, 2));
    assert!(c.upgraded());
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(status(&out[0]), 101);
}

#[test]
fn repeated_headers_join_in_json() {
    let h = vec![
        ("Set-Cookie".to_string(), "a=1".to_string()),
        ("Set-Cookie".to_string(), "b=\"2\"".to_string()),
    ];
    assert_eq!(headers_json(&h), r#"{"Set-Cookie":"a=1,b=\"2\""}"#);
}

#[test]
fn an_interim_response_does_not_shift_which_request_frames_the_next() {
    // HEAD then GET; the server sends 100, the HEAD's 200 (length but no body), the GET's 200,
    // all in one chunk. The HEAD's response must be framed as HEAD's, not as the GET's.
    let head = b"HEAD /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n";
    let resps = [
        &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        OK,
    ]
    .concat();
    let (recs, stats) = run(&[head, GET], &[&resps]);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].resp.body_size, 0);
    assert_eq!(recs[1].resp.body, b"hello");
    assert_eq!(stats.responses, 3, "the 100 is parsed, then skipped");
}

#[test]
fn chunked_request_bodies_with_extensions_and_trailers_parse() {
    let req = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                3;name=\"x\"\r\nabc\r\n000A\r\n0123456789\r\n0;last\r\nDigest: sha-256=x\r\nExpires: never\r\n\r\n";
    let (recs, stats) = run(&[req], &[OK]);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].req.body, b"abc0123456789");
    assert_eq!(recs[0].req.body_size, 13);
    assert_eq!(stats.parse_errors, 0);
}

#[test]
fn a_gap_inside_a_chunk_counts_and_the_body_continues() {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(GET, 1));
    c.push_responses(data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3ec\r\nab",
        2,
    ));
    c.push_responses(Chunk::Gap { len: 1000, ts: 3 });
    c.push_responses(data(b"yz\r\n2\r\n!!\r\n0\r\n\r\n", 4));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resp.body, b"abyz!!");
    assert_eq!(out[0].resp.body_size, 0x3ec + 2);
    assert_eq!(out[0].resp.notes, ["body had a 1000-byte gap"]);
    assert_eq!(out[0].resp.end_ts, 5);
    assert_eq!(c.stats().gap_bytes, 1000);
}

#[test]
fn a_gap_running_past_a_length_body_ends_it_and_resyncs() {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(&[GET, GET].concat(), 1));
    c.push_responses(data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
        2,
    ));
    // The 5 missing body bytes and the start of the next response's head.
    c.push_responses(Chunk::Gap { len: 12, ts: 3 });
    c.push_responses(data(b"ver: nginx\r\n\r\n", 4));
    c.push_requests(data(GET, 5));
    c.push_responses(data(OK, 6));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out[0].resp.body_size, 10);
    assert_eq!(out[0].resp.body, b"12345");
    assert_eq!(
        out.last().map(|r| r.resp.body.as_slice()),
        Some(&b"hello"[..])
    );
    assert_eq!(c.stats().resyncs, 1);
}

#[test]
fn connect_2xx_upgrades_without_a_body() {
    let req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let resp = b"HTTP/1.1 200 Connection Established\r\n\r\n";
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(req, 1));
    c.push_responses(data(resp, 2));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert!(c.upgraded());
    assert_eq!(path(&out[0]), "example.com:443");
}

#[test]
fn unanswered_requests_are_bounded_oldest_dropped() {
    let mut c = Conn::new(Limits::default());
    for i in 0..MAX_PENDING + 76 {
        let req = format!("GET /r{i} HTTP/1.1\r\n\r\n");
        c.push_requests(data(req.as_bytes(), i as u64));
    }
    assert_eq!(c.stats().unmatched_responses, 76);
    c.push_responses(data(OK, 1_000_000));
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(path(&out[0]), "/r76", "the oldest 76 were dropped");
}

#[test]
fn garbage_then_a_request_recovers_at_every_split_point() {
    let stream = [&b"\x16\x03\x01 noise\r\nGE"[..], b"T-ish\n", GET].concat();
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        let (recs, stats) = run(&[a, b], &[OK]);
        assert_eq!(recs.len(), 1, "split at {at}");
        assert_eq!(path(&recs[0]), "/api/users?id=7", "split at {at}");
        assert!(stats.parse_errors >= 1, "split at {at}");
    }
}

#[test]
fn non_http_bytes_fail_fast_instead_of_filling_the_head_buffer() {
    let mut c = Conn::new(Limits::default());
    let tls = [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        &[0x42; 3000],
    ]
    .concat();
    c.push_requests(data(&tls, 1));
    assert_eq!(c.stats().parse_errors, 1);
    assert!(c.buffered_bytes() <= START_PROBE, "{}", c.buffered_bytes());
}

#[test]
fn unknown_token_methods_and_bare_lf_line_ends_parse() {
    let req = b"PROPFIND /dav HTTP/1.1\nHost: a\nDepth: 1\n\n";
    let resp = b"HTTP/1.1 207 Multi-Status\nContent-Length: 2\n\nok";
    let (recs, stats) = run(&[req], &[resp]);
    assert_eq!(recs.len(), 1, "{stats:?}");
    assert_eq!(
        recs[0].req.headers[1],
        ("Depth".to_string(), "1".to_string())
    );
    assert_eq!(recs[0].resp.body, b"ok");
}

#[test]
fn endless_chunk_size_lines_are_bounded_errors() {
    let mut c = Conn::new(Limits::default());
    c.push_requests(data(GET, 1));
    c.push_responses(data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        2,
    ));
    c.push_responses(data(&[b'f'; 100_000], 3));
    assert_eq!(c.stats().parse_errors, 1);
    assert!(c.buffered_bytes() < 1024, "{}", c.buffered_bytes());
}

#[test]
fn headers_json_escapes_everything_json_requires() {
    let h = vec![
        (
            "X-A".to_string(),
            "quote \" back \\ nl \n tab \t ctl \u{1} é".to_string(),
        ),
        ("x-a".to_string(), "other case stays separate".to_string()),
        ("X-A".to_string(), "joined".to_string()),
    ];
    let v: serde_json::Value = serde_json::from_str(&headers_json(&h)).unwrap();
    assert_eq!(v["X-A"], "quote \" back \\ nl \n tab \t ctl \u{1} é,joined");
    assert_eq!(v["x-a"], "other case stays separate");
    assert_eq!(headers_json(&[]), "{}");
}
