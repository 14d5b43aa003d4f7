//! The DNS parser over real dig <-> dnsmasq exchanges recorded on loopback (see
//! `fixtures/dns/record.py`): UDP datagrams in order, reversed, duplicated and with one lost,
//! and a TCP keep-open stream split at every offset.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use pxtop_protocols::{
    Chunk,
    dns::{Conn, Limits, Record, Transport},
};

const UDP_REQ: &[u8] = include_bytes!("fixtures/dns/udp.req");
const UDP_RESP: &[u8] = include_bytes!("fixtures/dns/udp.resp");
const TCP_REQ: &[u8] = include_bytes!("fixtures/dns/tcp.req");
const TCP_RESP: &[u8] = include_bytes!("fixtures/dns/tcp.resp");

/// The datagrams of a fixture file (each written after a 2-byte length).
fn datagrams(mut b: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    while b.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        v.push(&b[2..2 + n]);
        b = &b[2 + n..];
    }
    v
}

fn data(b: &[u8], ts: u64) -> Chunk<'_> {
    Chunk::Data {
        bytes: b,
        first_ts: ts,
        last_ts: ts,
    }
}

fn short(r: &Record) -> String {
    format!(
        "{} {} {} {}",
        r.query_name, r.query_type, r.rcode_name, r.resp_body
    )
}

fn udp(order: &[usize], resp_order: &[usize]) -> (Vec<Record>, Conn) {
    let (qs, rs) = (datagrams(UDP_REQ), datagrams(UDP_RESP));
    let mut c = Conn::new(Limits::default(), Transport::Udp);
    for (t, &i) in order.iter().enumerate() {
        c.push_requests(data(qs[i], 1_000 + t as u64));
    }
    for (t, &i) in resp_order.iter().enumerate() {
        c.push_responses(data(rs[i], 2_000 + t as u64));
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    (out, c)
}

/// What dig asked and dnsmasq answered, in order.
const WANT_UDP: [&str; 8] = [
    r#"a.example.test A NOERROR {"answers":[{"name":"a.example.test","type":"A","addr":"10.1.2.3"}]}"#,
    r#"host.corp.test AAAA NOERROR {"answers":[{"name":"host.corp.test","type":"AAAA","addr":"fd00::5"}]}"#,
    r#"alias.corp.test A NOERROR {"answers":[{"name":"alias.corp.test","type":"CNAME","cname":"www.corp.test"},{"name":"www.corp.test","type":"CNAME","cname":"host.corp.test"},{"name":"host.corp.test","type":"A","addr":"10.0.0.5"}]}"#,
    r#"corp.test MX NOERROR {"answers":[{"name":"corp.test","type":"MX","preference":10,"exchange":"mail.corp.test"}]}"#,
    r#"nope.corp.test A NXDOMAIN {"answers":[]}"#,
    r#"corp.test TXT NOERROR {"answers":[{"name":"corp.test","type":"TXT","txt":"v=spf1 -all"}]}"#,
    r#"_ldap._tcp.corp.test SRV NOERROR {"answers":[{"name":"_ldap._tcp.corp.test","type":"SRV","priority":0,"weight":100,"port":389,"target":"host.corp.test"}]}"#,
    r#"5.0.0.10.in-addr.arpa PTR NOERROR {"answers":[{"name":"5.0.0.10.in-addr.arpa","type":"PTR","ptr":"host.corp.test"}]}"#,
];

#[test]
fn udp_exchange_gives_one_record_per_query() {
    let all: Vec<usize> = (0..8).collect();
    let (recs, c) = udp(&all, &all);
    for r in &recs {
        for json in [&r.req_header, &r.req_body, &r.resp_header, &r.resp_body] {
            serde_json::from_str::<serde_json::Value>(json).unwrap();
        }
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }
    let got: Vec<String> = recs.iter().map(short).collect();
    assert_eq!(got, WANT_UDP);
    // dig sets RD and AD and adds an EDNS OPT record; dnsmasq answers authoritatively.
    assert_eq!(
        recs[0].req_header,
        r#"{"txid":2842,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":1,"cd":0,"rcode":0,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":1}"#
    );
    assert_eq!(
        recs[0].resp_header,
        r#"{"txid":2842,"qr":1,"opcode":0,"aa":1,"tc":0,"rd":1,"ra":1,"ad":0,"cd":0,"rcode":0,"num_queries":1,"num_answers":1,"num_auth":0,"num_addl":1}"#
    );
    assert_eq!(
        recs[0].req_body,
        r#"{"queries":[{"name":"a.example.test","type":"A"}]}"#
    );
    assert_eq!(recs[4].rcode, 3);
    let s = c.stats();
    assert_eq!((s.requests, s.responses, s.records), (8, 8, 8));
    assert_eq!((s.parse_errors, s.unmatched, s.duplicates), (0, 0, 0));
}

#[test]
fn udp_replies_reversed_duplicated_and_lost_still_match() {
    // Query 2 is retried, reply 5 is lost, reply 0 arrives twice, all replies in reverse.
    let (recs, mut c) = udp(&[0, 1, 2, 2, 3, 4, 5, 6, 7], &[7, 6, 4, 3, 2, 1, 0, 0]);
    let mut got: Vec<String> = recs.iter().map(short).collect();
    got.sort();
    let mut want: Vec<String> = WANT_UDP
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, s)| s.to_string())
        .collect();
    want.sort();
    assert_eq!(got, want);
    let s = c.stats().clone();
    assert_eq!(
        (s.requests, s.records, s.duplicates, s.unmatched),
        (9, 7, 2, 0)
    );
    c.close();
    assert_eq!(c.stats().expired, 1);
}

#[test]
fn tcp_keepopen_stream_split_at_every_offset_gives_the_same_records() {
    let run = |cut: usize| {
        let mut c = Conn::new(Limits::default(), Transport::Tcp);
        let (a, b) = TCP_REQ.split_at(cut.min(TCP_REQ.len()));
        c.push_requests(data(a, 1));
        c.push_requests(data(b, 2));
        let (a, b) = TCP_RESP.split_at(cut.min(TCP_RESP.len()));
        c.push_responses(data(a, 3));
        c.push_responses(data(b, 4));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(c.stats().parse_errors, 0, "cut at {cut}");
        assert_eq!(c.buffered_bytes(), 0);
        out.iter().map(short).collect::<Vec<_>>()
    };
    let want = run(0);
    assert_eq!(
        want,
        [
            WANT_UDP[0],
            WANT_UDP[2],
            WANT_UDP[1],
            WANT_UDP[3],
            WANT_UDP[4]
        ]
    );
    for cut in 1..=TCP_RESP.len() {
        assert_eq!(run(cut), want, "cut at {cut}");
    }
}

#[test]
fn real_queries_are_inferred_as_dns_and_replies_are_not() {
    use pxtop_protocols::{MessageKind, Protocol, infer::infer};
    for q in datagrams(UDP_REQ) {
        assert_eq!(infer(q), Some((Protocol::Dns, MessageKind::Request)));
    }
    let first = 2 + usize::from(u16::from_be_bytes([TCP_REQ[0], TCP_REQ[1]]));
    assert_eq!(
        infer(&TCP_REQ[..first]),
        Some((Protocol::Dns, MessageKind::Request))
    );
    for r in datagrams(UDP_RESP) {
        assert_eq!(infer(r), None);
    }
}

/// libFuzzer found an answer whose record decodes but whose `Display` (hickory's) fails;
/// rendering it used `to_string`, which panics on that. The input is kept as found.
#[test]
fn fuzz_regression_rdata_display_error() {
    let input = include_bytes!("fixtures/fuzz/dns-rdata-display.bin");
    let stats = pxtop_protocols::dns::fuzz_one(input);
    assert!(stats.records <= input.len() as u64, "{stats:?}");
}
