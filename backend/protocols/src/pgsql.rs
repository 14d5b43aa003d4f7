//! PostgreSQL (frontend/backend protocol 3.0): simple queries and the extended protocol
//! (Parse/Bind/Execute with named and unnamed statements) stitched to their outcomes.
//!
//! Written here rather than with `postgres-protocol`: that crate parses backend messages but
//! only writes frontend ones, and the agent must read both directions of captured traffic,
//! resynchronise after gaps and mid-stream joins, and skip large data rows without buffering
//! them. Every message is a tag byte and a 4-byte length (startup-phase messages lack the tag),
//! so the framing is small.
//!
//! Records, after Pixie's `pgsql_events`: `req_cmd` is `QUERY` (simple query), `EXECUTE` (an
//! extended-protocol execution; `req` is the statement text and its bound parameters, as
//! `query=[...] params=[...]`; binary parameters, whose types travel in other messages, show
//! as text when printable, as integers when 2, 4 or 8 bytes, else as hex), or `PARSE`/`BIND` when those fail. `resp` is the command
//! tags (`SELECT 3`, `INSERT 0 1`; several joined by `; `), or the error as
//! `SEVERITY SQLSTATE: message`. The startup and authentication exchange, parameter statuses,
//! notices and notifications produce no records; an SSL or GSS encryption request answered `S`
//! / `G` ends parsing (what follows is TLS).
//!
//! After a gap or garbage, a direction drops its buffer and waits for a chunk that frames
//! whole; a gap on the server side also drops the outstanding requests, whose outcomes are
//! gone.

use std::collections::{HashMap, VecDeque};

use crate::Chunk;

/// Bounds on what one connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes buffered per direction for one message; larger data rows are skipped unbuffered,
    /// larger other messages are dropped (counted) and the direction resynchronises.
    pub max_buffer: usize,
    /// Characters of statement text and of each parameter kept.
    pub max_text: usize,
    /// Outstanding requests, at most; older ones are dropped and counted.
    pub max_pending: usize,
    /// Prepared statements and portals remembered per connection, at most.
    pub max_statements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_buffer: 1 << 20,
            max_text: 4096,
            max_pending: 1024,
            max_statements: 4096,
        }
    }
}

/// Startup-phase request codes (after the length, instead of a protocol version).
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
const PROTOCOL_3: u32 = 0x0003_0000;

/// Frontend message tags.
const FRONTEND_TAGS: &[u8] = b"QPBEDCSHXpdcfF";
/// Backend message tags.
const BACKEND_TAGS: &[u8] = b"RSKZTDCEN123ntsIAGHWcdV";

/// A statement or failed step and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `QUERY`, `EXECUTE`, `PARSE` or `BIND` (`req_cmd`).
    pub cmd: String,
    /// The statement, with bound parameters for `EXECUTE` (`req`).
    pub req: String,
    /// Command tags or the error (`resp`).
    pub resp: String,
    /// Data rows returned.
    pub rows: u64,
    /// When the request's first byte moved (ns).
    pub start_ts: u64,
    /// When its outcome's last byte moved (ns).
    pub end_ts: u64,
}

impl Record {
    /// From the request's first byte to the outcome's last, in ns.
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start_ts)
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frontend messages parsed.
    pub requests: u64,
    /// Backend messages parsed.
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Messages that did not frame or parse.
    pub parse_errors: u64,
    /// Times a direction dropped its bytes to resynchronise (gaps included).
    pub resyncs: u64,
    /// Outcomes with no request, and requests dropped without an outcome.
    pub unmatched: u64,
}

#[derive(Debug)]
enum Kind {
    /// The startup exchange, which ends at the first ReadyForQuery.
    Startup,
    Query,
    Parse,
    Bind,
    Execute,
    Describe,
    Close,
    Sync,
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    req: String,
    start_ts: u64,
    tags: Vec<String>,
    error: Option<String>,
    rows: u64,
}

#[derive(Debug, Default)]
struct Dir {
    buf: Vec<u8>,
    start_ts: u64,
    broken: bool,
    /// Bytes of an oversized data row still to skip.
    skip: usize,
}

/// One connection's PostgreSQL state.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    req: Dir,
    resp: Dir,
    pending: VecDeque<Pending>,
    statements: HashMap<String, String>,
    portals: HashMap<String, String>,
    /// The client asked for SSL/GSS encryption: the server answers with one byte.
    encryption_answer: bool,
    /// Encrypted from here on: nothing more to parse.
    encrypted: bool,
    /// After an extended-protocol error the server skips to the next Sync.
    skipping_to_sync: bool,
    out: Vec<Record>,
    stats: Stats,
}

enum Frame<'a> {
    /// A tagged message: tag, payload, bytes used.
    Tagged(u8, &'a [u8], usize),
    /// A startup-phase message: code, bytes used.
    Startup(u32, usize),
    /// A tagged message too large to buffer: tag, total length.
    Oversized(u8, usize),
    Incomplete,
    Garbage,
}

fn frame(buf: &[u8], frontend: bool, max: usize) -> Frame<'_> {
    let Some(&tag) = buf.first() else {
        return Frame::Incomplete;
    };
    if frontend && tag == 0 {
        if buf.len() < 8 {
            return Frame::Incomplete;
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let code = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let known = matches!(
            code,
            SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST | PROTOCOL_3
        );
        if !known || !(8..=10_000).contains(&len) {
            return Frame::Garbage;
        }
        if buf.len() < len {
            return Frame::Incomplete;
        }
        return Frame::Startup(code, len);
    }
    let tags = if frontend {
        FRONTEND_TAGS
    } else {
        BACKEND_TAGS
    };
    if !tags.contains(&tag) {
        return Frame::Garbage;
    }
    if buf.len() < 5 {
        return Frame::Incomplete;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=1 << 30).contains(&len) {
        return Frame::Garbage;
    }
    if len + 1 > max {
        return Frame::Oversized(tag, len + 1);
    }
    if buf.len() < len + 1 {
        return Frame::Incomplete;
    }
    Frame::Tagged(tag, &buf[5..len + 1], len + 1)
}

/// Whether `bytes` is whole messages and nothing else.
fn whole(bytes: &[u8], frontend: bool, max: usize) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        match frame(&bytes[at..], frontend, max) {
            Frame::Tagged(_, _, n) | Frame::Startup(_, n) => at += n,
            _ => return false,
        }
    }
    at > 0
}

/// A NUL-terminated string at the start of `b`, and the rest.
fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == 0)?;
    Some((&b[..i], &b[i + 1..]))
}

fn text(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(b);
    if b.len() > max && s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push_str("...");
        t
    } else {
        s.into_owned()
    }
}

fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// A Bind's portal, statement name and rendered parameters.
fn parse_bind(p: &[u8], max: usize) -> Option<(String, String, Vec<String>)> {
    let (portal, rest) = cstr(p)?;
    let (stmt, rest) = cstr(rest)?;
    let nfmt = usize::try_from(i16_at(rest, 0)?).ok()?;
    let mut at = 2;
    let mut formats = Vec::with_capacity(nfmt.min(64));
    for _ in 0..nfmt {
        formats.push(i16_at(rest, at)?);
        at += 2;
    }
    let nparams = usize::try_from(i16_at(rest, at)?).ok()?;
    at += 2;
    let mut params = Vec::with_capacity(nparams.min(64));
    for i in 0..nparams {
        let len = i32_at(rest, at)?;
        at += 4;
        if len < 0 {
            params.push("NULL".to_string());
            continue;
        }
        let v = rest.get(at..at + len as usize)?;
        at += len as usize;
        let binary = match formats.len() {
            0 => false,
            1 => formats[0] == 1,
            _ => formats.get(i).copied() == Some(1),
        };
        params.push(if binary {
            binary_param(v, max)
        } else {
            format!("'{}'", text(v, max).replace('\'', "''"))
        });
    }
    Some((
        String::from_utf8_lossy(portal).into_owned(),
        String::from_utf8_lossy(stmt).into_owned(),
        params,
    ))
}

/// A binary-format parameter without its type (the OIDs come in other messages): printable
/// UTF-8 as text, 2/4/8 bytes as a big-endian integer, anything else as hex.
fn binary_param(v: &[u8], max: usize) -> String {
    let printable =
        !v.is_empty() && std::str::from_utf8(v).is_ok_and(|s| s.chars().all(|c| !c.is_control()));
    if printable {
        return format!("'{}'", text(v, max).replace('\'', "''"));
    }
    match v.len() {
        2 => i16::from_be_bytes([v[0], v[1]]).to_string(),
        4 => i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
        8 => i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]).to_string(),
        _ => {
            let hex: String = v.iter().take(max / 2).map(|b| format!("{b:02x}")).collect();
            format!("'\\x{hex}'")
        }
    }
}

/// An ErrorResponse's fields as `SEVERITY SQLSTATE: message`.
fn error_text(p: &[u8]) -> String {
    let (mut severity, mut code, mut message) = ("", "", String::new());
    let mut rest = p;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let Some((value, tail)) = cstr(tail) else {
            break;
        };
        match field {
            b'S' => severity = std::str::from_utf8(value).unwrap_or(""),
            b'C' => code = std::str::from_utf8(value).unwrap_or(""),
            b'M' => message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
        rest = tail;
    }
    format!("{severity} {code}: {message}")
}

impl Conn {
    /// A connection with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            req: Dir::default(),
            resp: Dir::default(),
            pending: VecDeque::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            encryption_answer: false,
            encrypted: false,
            skipping_to_sync: false,
            out: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Bytes the client sent.
    pub fn push_requests(&mut self, chunk: Chunk<'_>) {
        self.push(chunk, true);
    }

    /// Bytes the server sent.
    pub fn push_responses(&mut self, chunk: Chunk<'_>) {
        self.push(chunk, false);
    }

    /// Moves the finished records to `out`.
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        out.append(&mut self.out);
    }

    /// The connection closed: requests still outstanding are counted.
    pub fn close(&mut self) {
        self.stats.unmatched += self.pending.len() as u64;
        self.pending.clear();
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes held waiting for messages to complete.
    pub fn buffered_bytes(&self) -> usize {
        self.req.buf.len() + self.resp.buf.len()
    }

    /// Whether the connection switched to TLS/GSS encryption (nothing more is parsed).
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    fn push(&mut self, chunk: Chunk<'_>, frontend: bool) {
        if self.encrypted {
            return;
        }
        match chunk {
            Chunk::Gap { .. } => {
                self.stats.resyncs += 1;
                let dir = if frontend {
                    &mut self.req
                } else {
                    &mut self.resp
                };
                *dir = Dir {
                    broken: true,
                    ..Dir::default()
                };
                if !frontend {
                    self.stats.unmatched += self.pending.len() as u64;
                    self.pending.clear();
                }
            }
            Chunk::Data {
                mut bytes,
                first_ts,
                last_ts,
            } => {
                if !frontend && self.encryption_answer && self.resp.buf.is_empty() {
                    // The one-byte answer to an SSL/GSS request.
                    self.encryption_answer = false;
                    match bytes.first() {
                        Some(b'S' | b'G') => {
                            self.encrypted = true;
                            return;
                        }
                        Some(b'N') => bytes = &bytes[1..],
                        _ => {}
                    }
                }
                let max = self.limits.max_buffer;
                let dir = if frontend {
                    &mut self.req
                } else {
                    &mut self.resp
                };
                if dir.skip > 0 {
                    let n = dir.skip.min(bytes.len());
                    dir.skip -= n;
                    bytes = &bytes[n..];
                }
                if bytes.is_empty() {
                    return;
                }
                if dir.broken {
                    if !whole(bytes, frontend, max) {
                        self.stats.resyncs += 1;
                        return;
                    }
                    dir.broken = false;
                }
                if dir.buf.is_empty() {
                    dir.start_ts = first_ts;
                }
                dir.buf.extend_from_slice(bytes);
                self.parse(frontend, first_ts, last_ts);
            }
        }
    }

    fn parse(&mut self, frontend: bool, first_ts: u64, last_ts: u64) {
        let max = self.limits.max_buffer;
        let mut at = 0;
        loop {
            let dir = if frontend {
                &mut self.req
            } else {
                &mut self.resp
            };
            if at >= dir.buf.len() {
                break;
            }
            let start_ts = if at == 0 { dir.start_ts } else { first_ts };
            // NB: copied out so the handlers may borrow self.
            let (tag, payload, used) = match frame(&dir.buf[at..], frontend, max) {
                Frame::Tagged(t, p, n) => (Some(t), p.to_vec(), n),
                Frame::Startup(code, n) => {
                    if code == SSL_REQUEST || code == GSSENC_REQUEST {
                        self.encryption_answer = true;
                    }
                    if code == PROTOCOL_3 {
                        self.expect(Kind::Startup, String::new(), start_ts);
                    }
                    self.stats.requests += 1;
                    at += n;
                    continue;
                }
                Frame::Oversized(t, total) if matches!(t, b'D' | b'd') => {
                    // A large row or copy chunk: counted, skipped without buffering.
                    let have = dir.buf.len() - at;
                    dir.skip = total.saturating_sub(have);
                    at = dir.buf.len();
                    if !frontend
                        && t == b'D'
                        && let Some(p) = self.pending.front_mut()
                    {
                        p.rows += 1;
                    }
                    continue;
                }
                Frame::Incomplete => break,
                Frame::Oversized(..) | Frame::Garbage => {
                    self.stats.parse_errors += 1;
                    self.stats.resyncs += 1;
                    *dir = Dir {
                        broken: true,
                        ..Dir::default()
                    };
                    return;
                }
            };
            at += used;
            if let Some(tag) = tag {
                if frontend {
                    self.on_request(tag, &payload, start_ts);
                } else {
                    self.on_response(tag, &payload, last_ts);
                }
            }
        }
        let dir = if frontend {
            &mut self.req
        } else {
            &mut self.resp
        };
        let consumed = at.min(dir.buf.len());
        dir.buf.drain(..consumed);
        if consumed > 0 && !dir.buf.is_empty() {
            dir.start_ts = first_ts;
        }
    }

    fn expect(&mut self, kind: Kind, req: String, start_ts: u64) {
        if self.pending.len() >= self.limits.max_pending {
            self.pending.pop_front();
            self.stats.unmatched += 1;
        }
        self.pending.push_back(Pending {
            kind,
            req,
            start_ts,
            tags: Vec::new(),
            error: None,
            rows: 0,
        });
    }

    fn remember(map: &mut HashMap<String, String>, key: String, value: String, max: usize) {
        if map.len() >= max && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, value);
    }

    fn on_request(&mut self, tag: u8, p: &[u8], start_ts: u64) {
        self.stats.requests += 1;
        let max = self.limits.max_text;
        match tag {
            b'Q' => {
                let sql = cstr(p).map_or(p, |(s, _)| s);
                self.expect(Kind::Query, text(sql, max), start_ts);
            }
            b'P' => {
                let Some((name, rest)) = cstr(p) else {
                    self.stats.parse_errors += 1;
                    return;
                };
                let sql = cstr(rest).map_or(rest, |(s, _)| s);
                let sql = text(sql, max);
                let name = String::from_utf8_lossy(name).into_owned();
                Self::remember(
                    &mut self.statements,
                    name,
                    sql.clone(),
                    self.limits.max_statements,
                );
                self.expect(Kind::Parse, sql, start_ts);
            }
            b'B' => {
                let Some((portal, stmt, params)) = parse_bind(p, max) else {
                    self.stats.parse_errors += 1;
                    return;
                };
                let sql = self
                    .statements
                    .get(&stmt)
                    .cloned()
                    .unwrap_or_else(|| format!("<statement {stmt:?} prepared before capture>"));
                let req = format!("query=[{sql}] params=[{}]", params.join(", "));
                Self::remember(
                    &mut self.portals,
                    portal,
                    req.clone(),
                    self.limits.max_statements,
                );
                self.expect(Kind::Bind, req, start_ts);
            }
            b'E' => {
                let portal = cstr(p).map_or(&b""[..], |(s, _)| s);
                let portal = String::from_utf8_lossy(portal);
                let req = self
                    .portals
                    .get(portal.as_ref())
                    .cloned()
                    .unwrap_or_else(|| format!("<portal {portal:?} bound before capture>"));
                self.expect(Kind::Execute, req, start_ts);
            }
            b'D' => self.expect(Kind::Describe, String::new(), start_ts),
            b'C' => {
                // Close of a statement ('S') or portal ('P'): forget it.
                if let Some((&what, rest)) = p.split_first() {
                    let name = cstr(rest).map_or(rest, |(s, _)| s);
                    let name = String::from_utf8_lossy(name).into_owned();
                    if what == b'S' {
                        self.statements.remove(&name);
                    } else {
                        self.portals.remove(&name);
                    }
                }
                self.expect(Kind::Close, String::new(), start_ts);
            }
            b'S' => self.expect(Kind::Sync, String::new(), start_ts),
            _ => {}
        }
    }

    fn finish(&mut self, cmd: &str, p: Pending, end_ts: u64) {
        let resp = match &p.error {
            Some(e) => e.clone(),
            None => p.tags.join("; "),
        };
        self.stats.records += 1;
        self.out.push(Record {
            cmd: cmd.to_string(),
            req: p.req,
            resp,
            rows: p.rows,
            start_ts: p.start_ts,
            end_ts,
        });
    }

    fn on_response(&mut self, tag: u8, p: &[u8], end_ts: u64) {
        self.stats.responses += 1;
        match tag {
            // Asynchronous or startup-phase messages: no request of ours.
            b'R' | b'S' | b'K' | b'N' | b'A' | b'V' => return,
            _ => {}
        }
        if tag == b'Z' {
            self.skipping_to_sync = false;
        } else if self.skipping_to_sync {
            return;
        }
        let Some(head) = self.pending.front_mut() else {
            if tag != b'Z' {
                self.stats.unmatched += 1;
            }
            return;
        };
        match (&head.kind, tag) {
            (_, b'E') => {
                head.error = Some(error_text(p));
                let Some(head) = self.pending.pop_front() else {
                    return;
                };
                match head.kind {
                    Kind::Query => {
                        // The query ends at ReadyForQuery: keep it until then.
                        self.pending.push_front(head);
                    }
                    Kind::Execute => self.finish("EXECUTE", head, end_ts),
                    Kind::Parse => self.finish("PARSE", head, end_ts),
                    Kind::Bind => self.finish("BIND", head, end_ts),
                    _ => {}
                }
                let front = self.pending.front().map(|h| &h.kind);
                if !matches!(front, None | Some(Kind::Query)) {
                    // The server skips everything up to the next Sync.
                    self.skipping_to_sync = true;
                    while let Some(h) = self.pending.front() {
                        if matches!(h.kind, Kind::Sync) {
                            break;
                        }
                        self.pending.pop_front();
                    }
                }
            }
            (Kind::Query, b'C') => head.tags.push(text(cstr(p).map_or(p, |(s, _)| s), 256)),
            (Kind::Query, b'I') => head.tags.push("EMPTY".into()),
            (Kind::Query | Kind::Execute, b'D') => head.rows += 1,
            (Kind::Query | Kind::Sync | Kind::Startup, b'Z') => {
                if let Some(h) = self.pending.pop_front()
                    && matches!(h.kind, Kind::Query)
                {
                    self.finish("QUERY", h, end_ts);
                }
            }
            (Kind::Execute, b'C' | b's' | b'I') => {
                let tag_text = match tag {
                    b'C' => text(cstr(p).map_or(p, |(s, _)| s), 256),
                    b's' => "SUSPENDED".into(),
                    _ => "EMPTY".into(),
                };
                if let Some(mut h) = self.pending.pop_front() {
                    h.tags.push(tag_text);
                    self.finish("EXECUTE", h, end_ts);
                }
            }
            (Kind::Parse, b'1')
            | (Kind::Bind, b'2')
            | (Kind::Close, b'3')
            | (Kind::Describe, b'T' | b'n') => {
                self.pending.pop_front();
            }
            (_, b'Z') => {
                // ReadyForQuery with something else at the head: we lost track; realign.
                self.stats.unmatched += self.pending.len() as u64;
                self.pending.clear();
            }
            _ => {}
        }
    }
}

/// Feeds `data` to a connection as alternating frontend/backend chunks (split at 0xff, a
/// leading 0xfe makes a gap), for fuzzing: must never panic, whatever the input.
pub fn fuzz_one(data: &[u8]) -> Stats {
    let mut c = Conn::new(Limits {
        max_buffer: 4096,
        ..Limits::default()
    });
    let mut out = Vec::new();
    for (i, part) in data.split(|&b| b == 0xff).enumerate() {
        let chunk = if part.first() == Some(&0xfe) {
            Chunk::Gap {
                len: part.len() as u64,
                ts: i as u64,
            }
        } else {
            Chunk::Data {
                bytes: part,
                first_ts: i as u64,
                last_ts: i as u64,
            }
        };
        if i % 2 == 0 {
            c.push_requests(chunk);
        } else {
            c.push_responses(chunk);
        }
        c.drain(&mut out);
    }
    c.close();
    c.stats().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn cs(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p);
            v.push(0);
        }
        v
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

    fn ready() -> Vec<u8> {
        msg(b'Z', b"I")
    }

    fn error(code: &str, m: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for (f, v) in [(b'S', "ERROR"), (b'C', code), (b'M', m)] {
            p.push(f);
            p.extend_from_slice(v.as_bytes());
            p.push(0);
        }
        p.push(0);
        msg(b'E', &p)
    }

    fn startup() -> Vec<u8> {
        let mut p = PROTOCOL_3.to_be_bytes().to_vec();
        p.extend(cs(&[b"user", b"postgres", b""]));
        let mut v = ((p.len() + 4) as u32).to_be_bytes().to_vec();
        v.extend(p);
        v
    }

    #[test]
    fn simple_queries_with_tags_rows_and_errors_after_a_skipped_startup() {
        let mut reqs = startup();
        reqs.extend(msg(b'Q', &cs(&[b"SELECT 1; SELECT 2"])));
        reqs.extend(msg(b'Q', &cs(&[b"SELECT * FROM nope"])));
        let mut resps = msg(b'R', &0u32.to_be_bytes());
        resps.extend(msg(b'S', &cs(&[b"server_version", b"15.18"])));
        resps.extend(msg(b'K', &[0; 8]));
        resps.extend(ready());
        resps.extend(msg(b'T', &[0, 0]));
        resps.extend(msg(b'D', &[0, 0]));
        resps.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        resps.extend(msg(b'T', &[0, 0]));
        resps.extend(msg(b'D', &[0, 0]));
        resps.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        resps.extend(ready());
        resps.extend(error("42P01", "relation \"nope\" does not exist"));
        resps.extend(ready());
        let (r, s) = run(&reqs, &resps);
        let got: Vec<(&str, &str, &str, u64)> = r
            .iter()
            .map(|r| (r.cmd.as_str(), r.req.as_str(), r.resp.as_str(), r.rows))
            .collect();
        assert_eq!(
            got,
            [
                ("QUERY", "SELECT 1; SELECT 2", "SELECT 1; SELECT 1", 2),
                (
                    "QUERY",
                    "SELECT * FROM nope",
                    "ERROR 42P01: relation \"nope\" does not exist",
                    0
                ),
            ]
        );
        assert_eq!((s.parse_errors, s.unmatched), (0, 0));
        assert_eq!(r[0].latency_ns(), 101);
    }

    fn bind(portal: &[u8], stmt: &[u8], params: &[Option<&[u8]>], binary: bool) -> Vec<u8> {
        let mut p = cs(&[portal, stmt]);
        if binary {
            p.extend_from_slice(&1i16.to_be_bytes());
            p.extend_from_slice(&1i16.to_be_bytes());
        } else {
            p.extend_from_slice(&0i16.to_be_bytes());
        }
        p.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for v in params {
            match v {
                Some(v) => {
                    p.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    p.extend_from_slice(v);
                }
                None => p.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        p.extend_from_slice(&0i16.to_be_bytes());
        msg(b'B', &p)
    }

    #[test]
    fn extended_protocol_binds_named_and_unnamed_statements_to_executions() {
        let mut reqs = Vec::new();
        let mut parse = cs(&[b"s1", b"SELECT $1::int + $2"]);
        parse.extend_from_slice(&0i16.to_be_bytes());
        reqs.extend(msg(b'P', &parse));
        reqs.extend(bind(b"", b"s1", &[Some(b"1"), Some(b"it's")], false));
        reqs.extend(msg(b'D', b"P\0"));
        reqs.extend(msg(b'E', &[0, 0, 0, 0, 0]));
        reqs.extend(msg(b'S', b""));
        // The unnamed statement, binary and NULL parameters, and a failing execution.
        let mut parse = cs(&[b"", b"INSERT INTO t VALUES ($1, $2)"]);
        parse.extend_from_slice(&0i16.to_be_bytes());
        reqs.extend(msg(b'P', &parse));
        reqs.extend(bind(b"", b"", &[Some(&[0, 7]), None], true));
        reqs.extend(msg(b'E', &[0, 0, 0, 0, 0]));
        reqs.extend(msg(b'S', b""));
        let mut resps = msg(b'1', b"");
        resps.extend(msg(b'2', b""));
        resps.extend(msg(b'T', &[0, 0]));
        resps.extend(msg(b'D', &[0, 0]));
        resps.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        resps.extend(ready());
        resps.extend(msg(b'1', b""));
        resps.extend(msg(b'2', b""));
        resps.extend(error("23505", "duplicate key"));
        resps.extend(ready());
        let (r, s) = run(&reqs, &resps);
        let got: Vec<(&str, &str, &str)> = r
            .iter()
            .map(|r| (r.cmd.as_str(), r.req.as_str(), r.resp.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "EXECUTE",
                    "query=[SELECT $1::int + $2] params=['1', 'it''s']",
                    "SELECT 1"
                ),
                (
                    "EXECUTE",
                    "query=[INSERT INTO t VALUES ($1, $2)] params=[7, NULL]",
                    "ERROR 23505: duplicate key"
                ),
            ]
        );
        assert_eq!(r[0].rows, 1);
        assert_eq!((s.parse_errors, s.unmatched), (0, 0), "{s:?}");
    }

    #[test]
    fn a_failed_parse_skips_to_sync() {
        let mut reqs = Vec::new();
        let mut parse = cs(&[b"", b"SELEC 1"]);
        parse.extend_from_slice(&0i16.to_be_bytes());
        reqs.extend(msg(b'P', &parse));
        reqs.extend(bind(b"", b"", &[], false));
        reqs.extend(msg(b'E', &[0, 0, 0, 0, 0]));
        reqs.extend(msg(b'S', b""));
        reqs.extend(msg(b'Q', &cs(&[b"SELECT 1"])));
        let mut resps = error("42601", "syntax error");
        resps.extend(ready());
        resps.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        resps.extend(ready());
        let (r, _) = run(&reqs, &resps);
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.cmd.as_str(), r.resp.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("PARSE", "ERROR 42601: syntax error"),
                ("QUERY", "SELECT 1")
            ]
        );
    }

    #[test]
    fn ssl_request_answered_n_continues_and_s_stops() {
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        let mut c = Conn::new(Limits::default());
        c.push_requests(data(&ssl, 1));
        c.push_responses(data(b"N", 2));
        let mut reqs = startup();
        reqs.extend(msg(b'Q', &cs(&[b"SELECT 1"])));
        c.push_requests(data(&reqs, 3));
        let mut resps = ready();
        resps.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        resps.extend(ready());
        c.push_responses(data(&resps, 4));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(c.stats().parse_errors, 0);

        let mut c = Conn::new(Limits::default());
        c.push_requests(data(&ssl, 1));
        c.push_responses(data(b"S", 2));
        c.push_requests(data(b"\x16\x03\x01\x00\x05hello", 3));
        assert!(c.encrypted());
        assert_eq!(c.stats().parse_errors, 0);
    }

    #[test]
    fn splits_at_every_offset_give_the_same_records() {
        let mut reqs = Vec::new();
        let mut resps = Vec::new();
        for i in 0..10 {
            reqs.extend(msg(b'Q', &cs(&[format!("SELECT {i}").as_bytes()])));
            resps.extend(msg(b'T', &[0, 0]));
            resps.extend(msg(b'D', &[0, 0]));
            resps.extend(msg(b'C', &cs(&[b"SELECT 1"])));
            resps.extend(ready());
        }
        let (want, _) = run(&reqs, &resps);
        assert_eq!(want.len(), 10);
        for cut in 0..resps.len() {
            let mut c = Conn::new(Limits::default());
            let (a, b) = reqs.split_at(cut.min(reqs.len()));
            c.push_requests(data(a, 100));
            c.push_requests(data(b, 100));
            let (a, b) = resps.split_at(cut);
            c.push_responses(data(a, 200));
            c.push_responses(data(b, 200));
            let mut got = Vec::new();
            c.drain(&mut got);
            let key = |v: &[Record]| -> Vec<(String, String)> {
                v.iter().map(|r| (r.req.clone(), r.resp.clone())).collect()
            };
            assert_eq!(key(&got), key(&want), "cut {cut}");
        }
    }

    #[test]
    fn gaps_garbage_and_oversized_rows_never_give_wrong_records() {
        let mut c = Conn::new(Limits {
            max_buffer: 64,
            ..Limits::default()
        });
        c.push_requests(data(&msg(b'Q', &cs(&[b"SELECT big"])), 1));
        // A data row larger than the buffer: skipped, counted.
        let mut row = msg(b'D', &[b'x'; 200]);
        row.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        row.extend(ready());
        c.push_responses(data(&row[..50], 2));
        c.push_responses(data(&row[50..], 3));
        // A gap on the server side loses the outcome of the next query.
        c.push_requests(data(&msg(b'Q', &cs(&[b"SELECT lost"])), 4));
        c.push_responses(Chunk::Gap { len: 9, ts: 5 });
        c.push_responses(data(b"\x00garbage", 6));
        c.push_requests(data(&msg(b'Q', &cs(&[b"SELECT 2"])), 7));
        let mut resps = msg(b'C', &cs(&[b"SELECT 1"]));
        resps.extend(ready());
        c.push_responses(data(&resps, 8));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<(&str, &str, u64)> = out
            .iter()
            .map(|r| (r.req.as_str(), r.resp.as_str(), r.rows))
            .collect();
        assert_eq!(
            got,
            [("SELECT big", "SELECT 1", 1), ("SELECT 2", "SELECT 1", 0)]
        );
        assert_eq!(c.stats().unmatched, 1);
    }

    #[test]
    fn fuzz_one_survives_mutations() {
        let mut seed = msg(b'Q', &cs(&[b"SELECT 1"]));
        seed.push(0xff);
        seed.extend(msg(b'C', &cs(&[b"SELECT 1"])));
        seed.extend(ready());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut d = seed.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % d.len();
                d[i] = (x >> 32) as u8;
            }
            fuzz_one(&d);
        }
    }
}
