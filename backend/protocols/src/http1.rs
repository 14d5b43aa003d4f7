//! Incremental HTTP/1.x parsing of both directions of one connection, and stitching of
//! requests with responses (FIFO, so keep-alive and pipelining work).
//!
//! Start lines and headers go through `httparse`; it parses a complete head, so this module
//! buffers a head (bounded by [`Limits::max_header_bytes`]) and drives body framing itself:
//! `httparse` has no body state machine, and no maintained crate parses bodies incrementally
//! over a stream that can have gaps. Bodies are never buffered beyond [`Limits::max_body`]:
//! the rest is counted. A gap inside a body only counts toward its size; a gap anywhere else,
//! or bytes that do not parse, drop the partial message and resynchronise on the next
//! plausible start line, so garbage never poisons a connection for long.

use std::collections::VecDeque;

use crate::{Chunk, infer::HTTP_METHODS};

/// Bounds on what one connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Body bytes kept per message; the true size is always counted.
    pub max_body: usize,
    /// Bytes of start line + headers at most; larger heads are parse errors.
    pub max_header_bytes: usize,
    /// Headers per message at most.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 64,
        }
    }
}

/// Requests waiting for a response, at most; older ones are dropped and counted.
const MAX_PENDING: usize = 1024;
/// A chunk-size or trailer line longer than this is a parse error.
const MAX_LINE: usize = 4096;

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `METHOD target HTTP/1.x`.
    Request {
        /// The method.
        method: String,
        /// The request target.
        path: String,
    },
    /// `HTTP/1.x status reason`.
    Response {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// One parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its start line.
    pub start: Start,
    /// `x` of `HTTP/1.x`.
    pub minor_version: u8,
    /// Headers in order, values as (lossy) UTF-8.
    pub headers: Vec<(String, String)>,
    /// The first [`Limits::max_body`] bytes of the (de-chunked) body.
    pub body: Vec<u8>,
    /// The body's true size, including bytes lost in gaps.
    pub body_size: u64,
    /// When its first byte moved (ns).
    pub start_ts: u64,
    /// When its last byte moved (ns).
    pub end_ts: u64,
    /// What went wrong while parsing it, if anything (gaps).
    pub notes: Vec<String>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request and its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request.
    pub req: Message,
    /// The response.
    pub resp: Message,
}

impl Record {
    /// From the request's first byte to the response's last, in ns.
    pub fn latency_ns(&self) -> u64 {
        self.resp.end_ts.saturating_sub(self.req.start_ts)
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests parsed.
    pub requests: u64,
    /// Responses parsed (1xx included).
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Heads or framing that did not parse.
    pub parse_errors: u64,
    /// Times a direction skipped bytes to find the next message.
    pub resyncs: u64,
    /// Responses with no request to match, and requests dropped unanswered.
    pub unmatched_responses: u64,
    /// Bytes lost in gaps.
    pub gap_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
}

#[derive(Debug)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug)]
enum State {
    /// Collecting a head in `buf`; `start_ts` of its first byte.
    Head { start_ts: Option<u64> },
    /// Reading a body.
    Body { msg: Message, body: Body },
    /// Skipping bytes until something looks like a start line.
    Resync,
}

#[derive(Debug)]
struct Direction {
    side: Side,
    state: State,
    /// The head being collected, or the current chunk-size/trailer line.
    buf: Vec<u8>,
    /// Messages completed, oldest first.
    done: VecDeque<Message>,
}

/// What a response needs to know about its request to find its body.
#[derive(Debug, Clone, Copy)]
struct ReqInfo {
    head: bool,
    connect: bool,
}

impl Direction {
    fn new(side: Side) -> Self {
        Self {
            side,
            state: State::Head { start_ts: None },
            buf: Vec::new(),
            done: VecDeque::new(),
        }
    }

    fn resync(&mut self, stats: &mut Stats) {
        self.buf.clear();
        self.state = State::Resync;
        stats.resyncs += 1;
    }

    fn gap(&mut self, len: u64, ts: u64, stats: &mut Stats) {
        stats.gap_bytes += len;
        match &mut self.state {
            State::Body { msg, body } => {
                let note = |msg: &mut Message| {
                    msg.notes.push(format!("body had a {len}-byte gap"));
                };
                match body {
                    Body::Length(rem) if len <= *rem => {
                        *rem -= len;
                        msg.body_size += len;
                        msg.end_ts = ts;
                        note(msg);
                        if *rem == 0 {
                            self.finish_body();
                        }
                    }
                    Body::Length(rem) => {
                        // The gap runs past this message's end: keep what is known, then
                        // look for the next message.
                        msg.body_size += *rem;
                        msg.end_ts = ts;
                        note(msg);
                        self.finish_body();
                        self.resync(stats);
                    }
                    Body::UntilClose => {
                        msg.body_size += len;
                        msg.end_ts = ts;
                        note(msg);
                    }
                    Body::Chunked(ChunkState::Data(rem)) if len <= *rem => {
                        *rem -= len;
                        msg.body_size += len;
                        msg.end_ts = ts;
                        note(msg);
                        if *rem == 0 {
                            *body = Body::Chunked(ChunkState::DataEnd);
                        }
                    }
                    Body::Chunked(_) => self.resync(stats),
                }
            }
            State::Head { .. } => self.resync(stats),
            State::Resync => {}
        }
    }

    fn finish_body(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Head { start_ts: None });
        if let State::Body { msg, .. } = state {
            self.done.push_back(msg);
        }
    }

    /// Feeds bytes. `req` tells a response how its request framed it (HEAD, CONNECT).
    fn data(
        &mut self,
        mut data: &[u8],
        first_ts: u64,
        last_ts: u64,
        limits: &Limits,
        stats: &mut Stats,
        req: &mut dyn FnMut(usize) -> Option<ReqInfo>,
    ) {
        while !data.is_empty() {
            match &mut self.state {
                State::Resync => match find_start(data, self.side) {
                    Some(p) => {
                        data = &data[p..];
                        self.state = State::Head { start_ts: None };
                    }
                    None => return,
                },
                State::Head { start_ts } => {
                    if start_ts.is_none() {
                        // Skip blank lines between messages (RFC 9112 §2.2).
                        if self.buf.is_empty() {
                            let skip = data.iter().take_while(|b| **b == b'\r' || **b == b'\n');
                            let n = skip.count();
                            data = &data[n..];
                            if data.is_empty() {
                                return;
                            }
                        }
                        *start_ts = Some(first_ts);
                    }
                    let start_ts = start_ts.unwrap_or(first_ts);
                    let old = self.buf.len();
                    let from = old.saturating_sub(3);
                    self.buf.extend_from_slice(data);
                    let Some(end) = head_end(&self.buf[from..]).map(|e| e + from) else {
                        if self.buf.len() > limits.max_header_bytes {
                            stats.parse_errors += 1;
                            self.resync(stats);
                        }
                        return;
                    };
                    let consumed = end - old;
                    data = &data[consumed..];
                    match parse_head(&self.buf[..end], self.side, limits) {
                        Ok((start, minor_version, headers)) => {
                            self.buf.clear();
                            let msg = Message {
                                start,
                                minor_version,
                                headers,
                                body: Vec::new(),
                                body_size: 0,
                                start_ts,
                                end_ts: last_ts,
                                notes: Vec::new(),
                            };
                            let body = match self.side {
                                Side::Request => {
                                    stats.requests += 1;
                                    request_body(&msg)
                                }
                                Side::Response => {
                                    stats.responses += 1;
                                    let info = match msg.start {
                                        // 1xx responses precede the real one.
                                        Start::Response { status, .. }
                                            if (100..200).contains(&status) =>
                                        {
                                            None
                                        }
                                        _ => req(self.done.len()),
                                    };
                                    response_body(&msg, info)
                                }
                            };
                            match body {
                                Ok(Some(body)) => self.state = State::Body { msg, body },
                                Ok(None) => {
                                    self.state = State::Head { start_ts: None };
                                    self.done.push_back(msg);
                                }
                                Err(()) => {
                                    stats.parse_errors += 1;
                                    self.resync(stats);
                                }
                            }
                        }
                        Err(()) => {
                            stats.parse_errors += 1;
                            self.resync(stats);
                        }
                    }
                }
                State::Body { msg, body } => {
                    msg.end_ts = last_ts;
                    match body {
                        Body::Length(rem) => {
                            let n = (*rem).min(data.len() as u64) as usize;
                            keep(msg, &data[..n], limits);
                            *rem -= n as u64;
                            data = &data[n..];
                            if *rem == 0 {
                                self.finish_body();
                            }
                        }
                        Body::UntilClose => {
                            keep(msg, data, limits);
                            return;
                        }
                        Body::Chunked(cs) => match cs {
                            ChunkState::Size => {
                                let Some((line, rest)) = take_line(&mut self.buf, data) else {
                                    if self.buf.len() > MAX_LINE {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                    return;
                                };
                                data = rest;
                                match chunk_size(&line) {
                                    Some(0) => *cs = ChunkState::Trailers,
                                    Some(n) => *cs = ChunkState::Data(n),
                                    None => {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                }
                            }
                            ChunkState::Data(rem) => {
                                let n = (*rem).min(data.len() as u64) as usize;
                                keep(msg, &data[..n], limits);
                                *rem -= n as u64;
                                data = &data[n..];
                                if *rem == 0 {
                                    *cs = ChunkState::DataEnd;
                                }
                            }
                            ChunkState::DataEnd => {
                                let Some((line, rest)) = take_line(&mut self.buf, data) else {
                                    if self.buf.len() > 2 {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                    return;
                                };
                                data = rest;
                                if line.is_empty() {
                                    *cs = ChunkState::Size;
                                } else {
                                    stats.parse_errors += 1;
                                    self.resync(stats);
                                }
                            }
                            ChunkState::Trailers => {
                                let Some((line, rest)) = take_line(&mut self.buf, data) else {
                                    if self.buf.len() > MAX_LINE {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                    return;
                                };
                                data = rest;
                                if line.is_empty() {
                                    self.finish_body();
                                }
                            }
                        },
                    }
                }
            }
        }
    }

    fn close(&mut self) {
        if matches!(
            self.state,
            State::Body {
                body: Body::UntilClose,
                ..
            }
        ) {
            self.finish_body();
        }
    }
}

fn keep(msg: &mut Message, bytes: &[u8], limits: &Limits) {
    msg.body_size += bytes.len() as u64;
    let room = limits.max_body.saturating_sub(msg.body.len());
    msg.body.extend_from_slice(&bytes[..room.min(bytes.len())]);
}

/// Takes one line (without CRLF/LF) from `buf` + `data`; returns it and the rest of `data`.
/// Without a newline, `data` is appended to `buf`.
fn take_line<'a>(buf: &mut Vec<u8>, data: &'a [u8]) -> Option<(Vec<u8>, &'a [u8])> {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => {
            buf.extend_from_slice(&data[..i]);
            let mut line = std::mem::take(buf);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Some((line, &data[i + 1..]))
        }
        None => {
            buf.extend_from_slice(data);
            None
        }
    }
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|b| *b == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The index just past the blank line ending a head, if `buf` holds one.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Where in `data` a message of `side` plausibly starts, at a line start.
fn find_start(data: &[u8], side: Side) -> Option<usize> {
    (0..data.len()).find(|&p| {
        (p == 0 || data[p - 1] == b'\n')
            && match side {
                Side::Response => data[p..].starts_with(b"HTTP/1."),
                Side::Request => HTTP_METHODS
                    .iter()
                    .any(|m| data[p..].starts_with(m) && data.get(p + m.len()) == Some(&b' ')),
            }
    })
}

type Head = (Start, u8, Vec<(String, String)>);

fn parse_head(buf: &[u8], side: Side, limits: &Limits) -> Result<Head, ()> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let convert = |hs: &[httparse::Header<'_>]| {
        hs.iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    match side {
        Side::Request => {
            let mut r = httparse::Request::new(&mut headers);
            match r.parse(buf) {
                Ok(httparse::Status::Complete(_)) => Ok((
                    Start::Request {
                        method: r.method.unwrap_or_default().to_string(),
                        path: r.path.unwrap_or_default().to_string(),
                    },
                    r.version.unwrap_or(1),
                    convert(r.headers),
                )),
                _ => Err(()),
            }
        }
        Side::Response => {
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(buf) {
                Ok(httparse::Status::Complete(_)) => Ok((
                    Start::Response {
                        status: r.code.unwrap_or_default(),
                        reason: r.reason.unwrap_or_default().to_string(),
                    },
                    r.version.unwrap_or(1),
                    convert(r.headers),
                )),
                _ => Err(()),
            }
        }
    }
}

fn is_chunked(msg: &Message) -> bool {
    msg.header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

fn content_length(msg: &Message) -> Result<Option<u64>, ()> {
    match msg.header("content-length") {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| ()),
    }
}

fn request_body(msg: &Message) -> Result<Option<Body>, ()> {
    if is_chunked(msg) {
        return Ok(Some(Body::Chunked(ChunkState::Size)));
    }
    Ok(match content_length(msg)? {
        Some(0) | None => None,
        Some(n) => Some(Body::Length(n)),
    })
}

fn response_body(msg: &Message, req: Option<ReqInfo>) -> Result<Option<Body>, ()> {
    let Start::Response { status, .. } = msg.start else {
        return Err(());
    };
    let head = req.is_some_and(|r| r.head);
    let connect_ok = req.is_some_and(|r| r.connect) && (200..300).contains(&status);
    if head || (100..200).contains(&status) || status == 204 || status == 304 || connect_ok {
        return Ok(None);
    }
    if is_chunked(msg) {
        return Ok(Some(Body::Chunked(ChunkState::Size)));
    }
    Ok(match content_length(msg)? {
        Some(0) => None,
        Some(n) => Some(Body::Length(n)),
        None => Some(Body::UntilClose),
    })
}

/// Both directions of one connection, and the pairing of their messages.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    requests: Direction,
    responses: Direction,
    records: VecDeque<Record>,
    stats: Stats,
    upgraded: bool,
}

impl Conn {
    /// A connection with no bytes seen yet.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            requests: Direction::new(Side::Request),
            responses: Direction::new(Side::Response),
            records: VecDeque::new(),
            stats: Stats::default(),
            upgraded: false,
        }
    }

    /// Bytes the client sent, in order.
    pub fn push_requests(&mut self, chunk: Chunk<'_>) {
        match chunk {
            Chunk::Data {
                bytes,
                first_ts,
                last_ts,
            } => self.requests.data(
                bytes,
                first_ts,
                last_ts,
                &self.limits,
                &mut self.stats,
                &mut |_| None,
            ),
            Chunk::Gap { len, ts } => self.requests.gap(len, ts, &mut self.stats),
        }
        if self.requests.done.len() > MAX_PENDING {
            self.requests.done.pop_front();
            self.stats.unmatched_responses += 1;
        }
        self.pair();
    }

    /// Bytes the server sent, in order.
    pub fn push_responses(&mut self, chunk: Chunk<'_>) {
        let reqs = &self.requests.done;
        // The request a response answers: the oldest one not yet answered, skipping the
        // responses already complete but not yet paired.
        let mut info = |answered: usize| {
            reqs.get(answered).map(|m| {
                let method = match &m.start {
                    Start::Request { method, .. } => method.as_str(),
                    Start::Response { .. } => "",
                };
                ReqInfo {
                    head: method.eq_ignore_ascii_case("HEAD"),
                    connect: method.eq_ignore_ascii_case("CONNECT"),
                }
            })
        };
        match chunk {
            Chunk::Data {
                bytes,
                first_ts,
                last_ts,
            } => self.responses.data(
                bytes,
                first_ts,
                last_ts,
                &self.limits,
                &mut self.stats,
                &mut info,
            ),
            Chunk::Gap { len, ts } => self.responses.gap(len, ts, &mut self.stats),
        }
        self.pair();
    }

    fn pair(&mut self) {
        while let Some(resp) = self.responses.done.front() {
            let status = match resp.start {
                Start::Response { status, .. } => status,
                Start::Request { .. } => 0,
            };
            if (100..200).contains(&status) && status != 101 {
                self.responses.done.pop_front();
                continue;
            }
            let Some(req) = self.requests.done.pop_front() else {
                // A response before its request is parsed: wait for the request, unless the
                // request can no longer come (its direction lost sync).
                if matches!(self.requests.state, State::Resync) || self.responses.done.len() > 1 {
                    self.responses.done.pop_front();
                    self.stats.unmatched_responses += 1;
                    continue;
                }
                return;
            };
            let Some(resp) = self.responses.done.pop_front() else {
                return;
            };
            let connect = matches!(&req.start, Start::Request { method, .. } if method.eq_ignore_ascii_case("CONNECT"));
            if status == 101 || (connect && (200..300).contains(&status)) {
                self.upgraded = true;
            }
            self.stats.records += 1;
            self.records.push_back(Record { req, resp });
        }
    }

    /// Moves completed records to `out`, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        out.extend(self.records.drain(..));
    }

    /// The connection closed: a response delimited by the close is complete now.
    pub fn close(&mut self) {
        self.requests.close();
        self.responses.close();
        self.pair();
        let unanswered = self.requests.done.len() as u64 + self.responses.done.len() as u64;
        self.stats.unmatched_responses += unanswered;
        self.requests.done.clear();
        self.responses.done.clear();
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the connection switched protocols (101, CONNECT): stop feeding it.
    pub fn upgraded(&self) -> bool {
        self.upgraded
    }

    /// Bytes buffered now (heads and lines in progress, kept bodies), for memory accounting.
    pub fn buffered_bytes(&self) -> usize {
        let body = |d: &Direction| match &d.state {
            State::Body { msg, .. } => msg.body.len(),
            _ => 0,
        };
        let done = |d: &Direction| d.done.iter().map(|m| m.body.len()).sum::<usize>();
        self.requests.buf.len()
            + self.responses.buf.len()
            + body(&self.requests)
            + body(&self.responses)
            + done(&self.requests)
            + done(&self.responses)
    }
}

/// Headers as a JSON object (Pixie's `req_headers` format); repeated names are joined by `,`.
pub fn headers_json(headers: &[(String, String)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in headers {
        match map.get_mut(k) {
            Some(serde_json::Value::String(s)) => {
                s.push(',');
                s.push_str(v);
            }
            _ => {
                map.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
        }
    }
    serde_json::Value::Object(map).to_string()
}

/// The fuzz body shared by the cargo-fuzz target and the stable-Rust stand-in test: the first
/// byte picks split sizes, `0xff` bytes become gaps, bytes alternate between directions by
/// segment. Panics only if the parser breaks an invariant (memory bound).
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let mut conn = Conn::new(Limits {
        max_body: 64,
        max_header_bytes: 2048,
        max_headers: 16,
    });
    let mut out = Vec::new();
    let mut i = 0u64;
    while !rest.is_empty() {
        let n = (usize::from(seed % 31) + 1 + (i as usize * 7) % 13).min(rest.len());
        let (seg, tail) = rest.split_at(n);
        rest = tail;
        let chunk = if seg[0] == 0xff {
            Chunk::Gap {
                len: u64::from(seg.len() as u32 * 3),
                ts: i,
            }
        } else {
            Chunk::Data {
                bytes: seg,
                first_ts: i,
                last_ts: i + 1,
            }
        };
        if (i + u64::from(seed)).is_multiple_of(2) {
            conn.push_requests(chunk);
        } else {
            conn.push_responses(chunk);
        }
        conn.drain(&mut out);
        assert!(conn.buffered_bytes() <= 2048 * 2 + 64 * 2 * (MAX_PENDING + 2) + 4096 * 2);
        i += 1;
    }
    conn.close();
    conn.drain(&mut out);
}

#[cfg(test)]
mod tests;
