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
        assert_eq!(infer(b"GE"), None);
    }
}
