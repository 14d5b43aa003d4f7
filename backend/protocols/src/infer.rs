//! Protocol inference from the first bytes of one direction of a connection: a table of cheap,
//! allocation-free recognisers, one per protocol, tried in order. New protocols add a row.

use crate::{MessageKind, Protocol};

type Recogniser = fn(&[u8]) -> Option<MessageKind>;

/// The recognisers, most specific first.
const RECOGNISERS: &[(Protocol, Recogniser)] = &[
    (Protocol::Http1, http1),
    (Protocol::Http2, http2),
    (Protocol::Redis, redis),
    (Protocol::Pgsql, pgsql),
    (Protocol::Mysql, mysql),
    (Protocol::Dns, dns),
    (Protocol::Cql, cql),
];

/// The protocol and message kind `buf` (the start of a message) looks like, if any.
pub fn infer(buf: &[u8]) -> Option<(Protocol, MessageKind)> {
    RECOGNISERS
        .iter()
        .find_map(|(p, f)| f(buf).map(|k| (*p, k)))
}

/// Methods of RFC 9110 plus PATCH.
pub(crate) const HTTP_METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

fn http1(buf: &[u8]) -> Option<MessageKind> {
    if let Some(rest) = buf.strip_prefix(b"HTTP/1.") {
        let ok = rest.len() >= 5
            && matches!(rest[0], b'0' | b'1')
            && rest[1] == b' '
            && rest[2..5].iter().all(u8::is_ascii_digit);
        return ok.then_some(MessageKind::Response);
    }
    let m = HTTP_METHODS.iter().find(|m| buf.starts_with(m))?;
    let rest = &buf[m.len()..];
    let ok = rest.len() >= 2
        && rest[0] == b' '
        && (rest[1] == b'/' || rest[1] == b'*' || rest[1].is_ascii_alphabetic());
    ok.then_some(MessageKind::Request)
}

/// The HTTP/2 client connection preface (at least its `PRI * HTTP/2.0\r\n` line). A connection
/// joined later is not recognised: its frames have no cheap signature, and its header blocks
/// could not be decoded anyway.
fn http2(buf: &[u8]) -> Option<MessageKind> {
    let n = buf.len().min(crate::http2::PREFACE.len());
    (n >= 16 && buf[..n] == crate::http2::PREFACE[..n]).then_some(MessageKind::Request)
}

/// A Redis command: an array of 1-999 bulk strings whose first is a word (`*3\r\n$3\r\nSET`).
/// Replies are not recognised: a connection is taken up at its next command.
fn redis(buf: &[u8]) -> Option<MessageKind> {
    let rest = buf.strip_prefix(b"*")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || rest[0] == b'0' {
        return None;
    }
    let rest = rest[digits..].strip_prefix(b"\r\n$")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=2).contains(&digits) {
        return None;
    }
    let word = rest[digits..].strip_prefix(b"\r\n")?;
    let ok = word.first().is_some_and(u8::is_ascii_alphabetic);
    ok.then_some(MessageKind::Request)
}

/// A PostgreSQL client's first words: a startup message (protocol 3.0), an SSL or GSS
/// encryption request, or a simple query (`Q`, a sane length, then SQL text).
fn pgsql(buf: &[u8]) -> Option<MessageKind> {
    let be32 = |b: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)) };
    if buf.first() == Some(&0) {
        let len = be32(buf)?;
        let code = be32(buf.get(4..)?)?;
        let ok = match code {
            0x0003_0000 => (9..=10_000).contains(&len),
            80_877_103 | 80_877_104 => len == 8,
            _ => false,
        };
        return ok.then_some(MessageKind::Request);
    }
    let rest = buf.strip_prefix(b"Q")?;
    let len = be32(rest)? as usize;
    let sql = rest.get(4..)?;
    let ok = (5..=1 << 24).contains(&len)
        && sql
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || c.is_ascii_whitespace() || *c == b'(')
        && sql
            .iter()
            .take(len.min(sql.len()).saturating_sub(5))
            .take(64)
            .all(|&c| c >= 0x09);
    ok.then_some(MessageKind::Request)
}

/// A MySQL client's command (sequence 0: `COM_QUERY`/`COM_STMT_PREPARE`/`COM_INIT_DB` with
/// text starting like SQL, `COM_STMT_EXECUTE` with its iteration count of 1) or a server
/// greeting (sequence 0, protocol 10, a version). After PostgreSQL: a PG simple query whose
/// length byte is `0x16` also reads as an 81-byte `COM_STMT_PREPARE`.
fn mysql(buf: &[u8]) -> Option<MessageKind> {
    let h = buf.get(..5)?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    if h[3] != 0 {
        return None;
    }
    if h[4] == 0x0a {
        let ok = (16..=1024).contains(&len) && buf.get(5).is_some_and(u8::is_ascii_digit);
        return ok.then_some(MessageKind::Response);
    }
    let payload = buf.get(4..buf.len().min(4 + len))?;
    let ok = match h[4] {
        0x02 | 0x03 | 0x16 => {
            let text = &payload[1..];
            let text = if h[4] == 0x03 {
                text.strip_prefix(&[0, 1]).unwrap_or(text)
            } else {
                text
            };
            len >= 3
                && text.first().is_some_and(|c| {
                    c.is_ascii_alphabetic() || c.is_ascii_whitespace() || matches!(c, b'(' | b'/')
                })
        }
        0x17 => true,
        _ => false,
    };
    (ok && crate::mysql::plausible_command(payload, len)).then_some(MessageKind::Request)
}

/// A plain DNS query (see `dns::is_plain_query`): a whole UDP datagram, or a TCP message whose
/// 2-byte length prefix is exactly the rest of `buf`. Responses are not recognised.
fn dns(buf: &[u8]) -> Option<MessageKind> {
    let tcp = buf.len() > 2
        && usize::from(u16::from_be_bytes([buf[0], buf[1]])) == buf.len() - 2
        && crate::dns::is_plain_query(&buf[2..]);
    (tcp || crate::dns::is_plain_query(buf)).then_some(MessageKind::Request)
}

/// A CQL request envelope header: version 3-5 without the response bit, flags within the
/// defined ones, a request opcode a client opens with (STARTUP, OPTIONS, QUERY, PREPARE,
/// EXECUTE, BATCH) and a plausible length (none for OPTIONS, under 10,000 for STARTUP, under
/// 256 MiB otherwise); a QUERY's or PREPARE's text length must fit the body when visible.
/// Responses are not recognised: a connection is taken up at its next request.
fn cql(buf: &[u8]) -> Option<MessageKind> {
    let h = buf.get(..9)?;
    if !(3..=5).contains(&h[0]) || h[1] > 0x1f {
        return None;
    }
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
    let ok = match h[4] {
        0x05 => len == 0,
        0x01 => (2..10_000).contains(&len),
        0x07 | 0x09 => {
            let text = buf
                .get(9..13)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            (4..1 << 28).contains(&len) && text.is_none_or(|t| t <= len - 4)
        }
        0x0a | 0x0d => (3..1 << 28).contains(&len),
        _ => false,
    };
    ok.then_some(MessageKind::Request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_http1_and_redis_commands_and_nothing_else() {
        let r = Some((Protocol::Http1, MessageKind::Request));
        let s = Some((Protocol::Http1, MessageKind::Response));
        assert_eq!(infer(b"GET / HTTP/1.1\r\n"), r);
        assert_eq!(infer(b"OPTIONS * HTTP/1.1\r\n"), r);
        assert_eq!(infer(b"CONNECT example.com:443 HTTP/1.1\r\n"), r);
        assert_eq!(infer(b"HTTP/1.1 200 OK\r\n"), s);
        assert_eq!(infer(b"HTTP/1.0 404 Not Found\r\n"), s);
        assert_eq!(infer(b"HTTP/2 200"), None);
        assert_eq!(infer(b"GETX / HTTP/1.1"), None);
        assert_eq!(infer(b"\x16\x03\x01\x02\x00"), None, "TLS");
        assert_eq!(
            infer(b"*3\r\n$3\r\nSET\r\n"),
            Some((Protocol::Redis, MessageKind::Request))
        );
        assert_eq!(
            infer(b"*1\r\n$4\r\nPING\r\n"),
            Some((Protocol::Redis, MessageKind::Request))
        );
        assert_eq!(infer(b"*0\r\n"), None);
        assert_eq!(infer(b"+OK\r\n"), None, "a reply");
        assert_eq!(infer(b"*3\r\n:1\r\n"), None);
        let pg = Some((Protocol::Pgsql, MessageKind::Request));
        assert_eq!(infer(b"Q\0\0\0\x0dSELECT 1;\0"), pg);
        assert_eq!(infer(b"\0\0\0\x08\x04\xd2\x16\x2f"), pg, "SSLRequest");
        assert_eq!(
            infer(b"\0\0\0\x28\0\x03\0\0user\0postgres\0"),
            pg,
            "startup"
        );
        assert_eq!(infer(b"Q\xff\xff\xff\xffSELECT"), None);
        assert_eq!(infer(b"\0\0\0\x08\0\0\0\0"), None);
        let h2 = Some((Protocol::Http2, MessageKind::Request));
        assert_eq!(infer(b"PRI * HTTP/2.0\r\n"), h2, "HTTP/2 preface line");
        assert_eq!(infer(crate::http2::PREFACE), h2);
        assert_eq!(infer(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04\0"), h2);
        assert_eq!(infer(b"PRI * HTTP/2.0"), None, "too short to tell");
        assert_eq!(infer(b"PRI * HTTP/2.0\r\n\r\nXX"), None);
        assert_eq!(infer(b"PRI * HTTP/1.1\r\n\r\n"), None);
        assert_eq!(infer(b"\0\0\x12\x04\0\0\0\0\0"), None, "server SETTINGS");
        assert_eq!(infer(b""), None);
        let cql = Some((Protocol::Cql, MessageKind::Request));
        assert_eq!(infer(b"\x04\0\0\0\x05\0\0\0\0"), cql, "OPTIONS v4");
        assert_eq!(
            infer(b"\x05\0\0\x01\x01\0\0\0\x16\0\x01\0\x0bCQL_VERSION"),
            cql,
            "STARTUP v5"
        );
        assert_eq!(
            infer(b"\x04\0\0\x07\x07\0\0\0\x12\0\0\0\x0bSELECT now"),
            cql,
            "QUERY"
        );
        assert_eq!(
            infer(b"\x04\0\0\x07\x07\0\0\0\x12\0\0\x10\x0bSELECT now"),
            None,
            "query text longer than the body"
        );
        assert_eq!(
            infer(b"\x84\0\0\0\x02\0\0\0\0"),
            None,
            "READY is a response"
        );
        assert_eq!(
            infer(b"\x04\0\0\0\x05\0\0\0\x01"),
            None,
            "OPTIONS with a body"
        );
        assert_eq!(infer(b"\x04\0\0\0\x08\0\0\0\x04"), None, "RESULT opcode");
        assert_eq!(infer(b"\x02\0\0\0\x05\0\0\0\0"), None, "v2");
        assert_eq!(infer(b"\x04\x40\0\0\x05\0\0\0\0"), None, "bad flags");
        assert_eq!(infer(b"GE"), None);
    }

    #[test]
    fn recognises_mysql_commands_and_greetings_without_stealing_others() {
        let q = Some((Protocol::Mysql, MessageKind::Request));
        assert_eq!(infer(b"\x09\0\0\0\x03SELECT 1"), q);
        assert_eq!(infer(b"\x0b\0\0\0\x03select 1;\n"), q);
        assert_eq!(infer(b"\x0a\0\0\0\x16SELECT ?"), q, "prepare");
        assert_eq!(infer(b"\x05\0\0\0\x02test"), q, "init db");
        assert_eq!(
            infer(b"\x0b\0\0\0\x03\0\x01SELECT 1"),
            q,
            "query attributes"
        );
        let exec = b"\x0e\0\0\0\x17\x01\0\0\0\0\x01\0\0\0\0\x01\x08\0";
        assert_eq!(infer(exec), q);
        assert_eq!(
            infer(b"\x64\0\0\0\x0a5.5.5-10.11.19-MariaDB\0"),
            Some((Protocol::Mysql, MessageKind::Response))
        );
        // Not commands: a continuation or auth packet, an execute with a bad iteration count,
        // binary where SQL should be, the middle of a stream.
        assert_eq!(infer(b"\x09\0\0\x01\x03SELECT 1"), None);
        assert_eq!(
            infer(b"\x0e\0\0\0\x17\x01\0\0\0\0\x07\0\0\0\0\x01\x08\0"),
            None
        );
        assert_eq!(infer(b"\x09\0\0\0\x03\x01\x02\x03\x04"), None);
        assert_eq!(infer(b"\x05\0\0\0\x0e"), None, "ping: too little to tell");
        assert_eq!(infer(b"E id > 10 ORDER BY name"), None);
        // The other protocols keep their traffic.
        let pg = Some((Protocol::Pgsql, MessageKind::Request));
        assert_eq!(infer(b"Q\0\0\0\x16SELECT 1 FROM t AS x;\0"), pg);
        assert_eq!(infer(b"Q\0\0\0\x0dSELECT 1;\0"), pg);
        assert_eq!(infer(b"\0\0\0\x08\x04\xd2\x16\x2f"), pg);
        assert_eq!(
            infer(b"*2\r\n$3\r\nGET\r\n"),
            Some((Protocol::Redis, MessageKind::Request))
        );
        assert_eq!(
            infer(b"GET / HTTP/1.1\r\n"),
            Some((Protocol::Http1, MessageKind::Request))
        );
        assert_eq!(infer(b"\x16\x03\x01\x00\x03\x01\x00\x00"), None, "TLS");
    }

    /// `dig example.com` (EDNS with a cookie) and a bare query, as datagram and TCP message.
    const DIG_QUERY: &[u8] = b"\x68\x13\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\x07example\x03com\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0c\x00\x0a\x00\x08\xb2\xe1\xbc\xa7\x73\x64\x4b\xb3";
    const BARE_QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04_srv\x04corp\x04test\x00\x00\x21\x00\x01";

    #[test]
    fn recognises_dns_queries_over_udp_and_tcp_strictly() {
        let q = Some((Protocol::Dns, MessageKind::Request));
        assert_eq!(infer(DIG_QUERY), q);
        assert_eq!(infer(BARE_QUERY), q);
        let mut tcp = (DIG_QUERY.len() as u16).to_be_bytes().to_vec();
        tcp.extend_from_slice(DIG_QUERY);
        assert_eq!(infer(&tcp), q);
        // A wrong length prefix, a truncated or extended datagram.
        tcp[1] += 1;
        assert_eq!(infer(&tcp), None);
        assert_eq!(infer(&DIG_QUERY[..DIG_QUERY.len() - 12]), None);
        assert_eq!(infer(&[BARE_QUERY, b"x"].concat()), None);
        // A response, two questions, an answer count, a compressed or odd name, class 0.
        let with = |i: usize, b: u8| {
            let mut v = BARE_QUERY.to_vec();
            v[i] = b;
            v
        };
        for (i, b) in [
            (2, 0x81),
            (3, 0x80),
            (5, 2),
            (7, 1),
            (12, 0xc0),
            (14, b'.'),
            (29, 0),
            (31, 0),
        ] {
            assert_eq!(infer(&with(i, b)), None, "byte {i} = {b:#x}");
        }
        // AD and CD may be set in queries (dig sets AD).
        assert_eq!(infer(&with(3, 0x30)), q);
        assert_eq!(infer(&with(2, 0x00)), q, "RD clear");
    }

    #[test]
    fn dns_does_not_take_other_protocols_bytes() {
        for other in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"*1\r\n$4\r\nPING\r\n",
            b"+OK\r\n",
            b"\0\0\0\x08\x04\xd2\x16\x2f",
            b"\0\0\0\x28\0\x03\0\0user\0postgres\0database\0x\0\0",
            b"Q\0\0\0\x0dSELECT 1;\0",
            // MySQL COM_QUERY and server greeting.
            b"\x09\0\0\0\x03SELECT 1",
            b"\x4a\0\0\0\x0a8.0.36\0\x08\0\0\0abcdefgh\0\xff\xf7",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        ] {
            let got = infer(other).map(|(p, _)| p);
            assert_ne!(got, Some(Protocol::Dns), "{other:?}");
        }
        assert_eq!(infer(b"\0\x01\x02"), None);
        assert_eq!(infer(&[0; 12]), None);
    }
}
