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
//!
//! Pairing is FIFO (all HTTP/1 offers for pipelining), guarded by time: a response that began
//! before the oldest waiting request did answers a lost request and is dropped, and responses
//! completed while the request direction is resynchronising are dropped, so a loss on
//! sequential keep-alive costs one exchange instead of shifting every later pair.

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
/// Longest method token accepted before a head is called garbage.
const MAX_METHOD: usize = 20;
/// Bytes enough to recognise a start line when resynchronising (`OPTIONS ` / `HTTP/1.`).
const START_PROBE: usize = 8;

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
    /// Its start line (`req_method`/`req_path`, `resp_status`/`resp_message`). HTTP/2 has no
    /// reason phrase: its responses carry an empty `reason`.
    pub start: Start,
    /// `major_version`: 1 for HTTP/1.x, 2 for HTTP/2 (see [`crate::http2`]).
    pub major_version: u8,
    /// `minor_version`: `x` of `HTTP/1.x`; 0 for HTTP/2.
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
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
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

    /// In resync: the rest of `data` from the next plausible start line, if any. A line start
    /// that might begin a message but is cut by the chunk's end is carried in `buf` (at most a
    /// few bytes), so a start line split across chunks is still found.
    fn scan<'a>(&mut self, data: &'a [u8]) -> Option<&'a [u8]> {
        if !self.buf.is_empty() {
            let carried = self.buf.len();
            let need = START_PROBE.saturating_sub(carried);
            let mut probe = std::mem::take(&mut self.buf);
            probe.extend_from_slice(&data[..need.min(data.len())]);
            match starts_message(&probe, self.side) {
                Some(true) => {
                    // The head continues with `data`; keep only the carried bytes.
                    probe.truncate(carried);
                    self.buf = probe;
                    return Some(data);
                }
                None if data.len() < need => {
                    self.buf = probe;
                    return None;
                }
                _ => {}
            }
        }
        if let Some(p) = find_start(data, self.side) {
            return Some(&data[p..]);
        }
        let tail = match data.iter().rposition(|b| *b == b'\n') {
            Some(i) => &data[i + 1..],
            None => data,
        };
        if !tail.is_empty() && starts_message(tail, self.side).is_none() {
            self.buf.extend_from_slice(tail);
        }
        None
    }

    /// In a head: buffers or parses it, starts the body; returns the unconsumed rest of `data`.
    fn head<'a>(
        &mut self,
        mut data: &'a [u8],
        first_ts: u64,
        last_ts: u64,
        limits: &Limits,
        stats: &mut Stats,
        req: &mut dyn FnMut(usize) -> Option<ReqInfo>,
    ) -> &'a [u8] {
        let State::Head { start_ts } = &mut self.state else {
            return data;
        };
        if start_ts.is_none() && self.buf.is_empty() {
            // Skip blank lines between messages (RFC 9112 §2.2).
            let n = data
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            data = &data[n..];
            if data.is_empty() {
                return data;
            }
        }
        let start_ts = *start_ts.get_or_insert(first_ts);
        let (parsed, rest) = if self.buf.is_empty() {
            // Fast path: the whole head is in this chunk, parse it in place.
            if plausible(data, self.side) == Some(false) {
                stats.parse_errors += 1;
                self.resync(stats);
                return &data[1..];
            }
            match head_end(data) {
                Some(end) if end <= limits.max_header_bytes => {
                    (parse_head(&data[..end], self.side, limits), &data[end..])
                }
                Some(end) => (Err(()), &data[end..]),
                None if data.len() > limits.max_header_bytes => {
                    stats.parse_errors += 1;
                    self.resync(stats);
                    return &data[limits.max_header_bytes..];
                }
                None => {
                    self.buf.extend_from_slice(data);
                    return &[];
                }
            }
        } else {
            let old = self.buf.len();
            let from = old.saturating_sub(3);
            // Never hold more than the limit (+1 to tell "too long" from "exactly full").
            let take = data
                .len()
                .min((limits.max_header_bytes + 1).saturating_sub(old));
            self.buf.extend_from_slice(&data[..take]);
            if old <= MAX_METHOD && plausible(&self.buf, self.side) == Some(false) {
                // Dropping the buffered bytes guarantees progress; `data` is scanned again.
                stats.parse_errors += 1;
                self.resync(stats);
                return data;
            }
            match head_end(&self.buf[from..]) {
                Some(e) => {
                    let end = e + from;
                    let rest = &data[end.saturating_sub(old).min(data.len())..];
                    let parsed = if end <= limits.max_header_bytes {
                        parse_head(&self.buf[..end], self.side, limits)
                    } else {
                        Err(())
                    };
                    (parsed, rest)
                }
                None if self.buf.len() > limits.max_header_bytes => {
                    stats.parse_errors += 1;
                    self.resync(stats);
                    return &data[take..];
                }
                None => return &[],
            }
        };
        self.buf.clear();
        let Ok((start, minor_version, headers)) = parsed else {
            stats.parse_errors += 1;
            self.resync(stats);
            return rest;
        };
        let msg = Message {
            start,
            major_version: 1,
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
                // 1xx responses precede the real one and answer no request of their own.
                let info = if is_interim(&msg) {
                    None
                } else {
                    req(self.done.iter().filter(|m| !is_interim(m)).count())
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
        rest
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
                State::Resync => match self.scan(data) {
                    Some(rest) => {
                        data = rest;
                        self.state = State::Head { start_ts: None };
                    }
                    None => return,
                },
                State::Head { .. } => {
                    data = self.head(data, first_ts, last_ts, limits, stats, req);
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
                                let Some(rest) = take_line(&mut self.buf, data, MAX_LINE) else {
                                    if self.buf.len() > MAX_LINE {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                    return;
                                };
                                data = rest;
                                let size = chunk_size(&self.buf);
                                self.buf.clear();
                                match size {
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
                                let Some(rest) = take_line(&mut self.buf, data, 2) else {
                                    if self.buf.len() > 1 {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                    return;
                                };
                                data = rest;
                                let empty = self.buf.is_empty();
                                self.buf.clear();
                                if empty {
                                    *cs = ChunkState::Size;
                                } else {
                                    stats.parse_errors += 1;
                                    self.resync(stats);
                                }
                            }
                            ChunkState::Trailers => {
                                let Some(rest) = take_line(&mut self.buf, data, MAX_LINE) else {
                                    if self.buf.len() > MAX_LINE {
                                        stats.parse_errors += 1;
                                        self.resync(stats);
                                    }
                                    return;
                                };
                                data = rest;
                                let empty = self.buf.is_empty();
                                self.buf.clear();
                                if empty {
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

/// Collects one line in `buf` from `data`: once the newline is seen, `buf` holds the line
/// (without CR/LF) and the rest of `data` is returned. `buf` never grows past `cap` + 1 bytes,
/// so a line without end cannot eat memory; callers treat a longer `buf` as an error.
fn take_line<'a>(buf: &mut Vec<u8>, data: &'a [u8], cap: usize) -> Option<&'a [u8]> {
    let room = (cap + 1).saturating_sub(buf.len());
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => {
            buf.extend_from_slice(&data[..i.min(room)]);
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            Some(&data[i + 1..])
        }
        None => {
            buf.extend_from_slice(&data[..data.len().min(room)]);
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

/// Where in `data` a message of `side` plausibly starts, at a line start (a chunk's first byte
/// counts as one: after a gap nothing better is known).
fn find_start(data: &[u8], side: Side) -> Option<usize> {
    (0..data.len()).find(|&p| {
        (p == 0 || data[p - 1] == b'\n') && starts_message(&data[p..], side) == Some(true)
    })
}

/// Whether `buf` begins like a message of `side` for resync: a known method and a space, or
/// `HTTP/1.`. `None` while `buf` is too short to tell.
fn starts_message(buf: &[u8], side: Side) -> Option<bool> {
    let mut undecided = false;
    let mut check = |prefix: &[u8], then_space: bool| {
        let need = prefix.len() + usize::from(then_space);
        if buf.len() >= need {
            buf.starts_with(prefix) && (!then_space || buf[prefix.len()] == b' ')
        } else {
            undecided |= prefix.starts_with(&buf[..buf.len().min(prefix.len())]);
            false
        }
    };
    let found = match side {
        Side::Response => check(b"HTTP/1.", false),
        Side::Request => HTTP_METHODS.iter().any(|m| check(m, true)),
    };
    if found {
        Some(true)
    } else if undecided {
        None
    } else {
        Some(false)
    }
}

/// Whether `buf` can begin a start line of `side` at all (any token method, as `httparse`
/// accepts): `Some(false)` lets garbage fail fast instead of filling the head buffer.
fn plausible(buf: &[u8], side: Side) -> Option<bool> {
    match side {
        Side::Response => {
            let n = buf.len().min(7);
            if buf[..n] != b"HTTP/1."[..n] {
                Some(false)
            } else if n == 7 {
                Some(true)
            } else {
                None
            }
        }
        Side::Request => {
            for (i, b) in buf.iter().take(MAX_METHOD + 1).enumerate() {
                if *b == b' ' {
                    return Some(i > 0);
                }
                if !(b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)) {
                    return Some(false);
                }
            }
            if buf.len() > MAX_METHOD {
                Some(false)
            } else {
                None
            }
        }
    }
}

/// A 1xx response other than 101: it precedes the final response to the same request.
fn is_interim(msg: &Message) -> bool {
    matches!(msg.start, Start::Response { status, .. } if (100..200).contains(&status) && status != 101)
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
            if is_interim(resp) {
                self.responses.done.pop_front();
                continue;
            }
            let Some(req) = self.requests.done.front() else {
                // A response before its request is parsed (the directions' events can arrive
                // out of order): wait for the request, unless it can no longer come because
                // its direction lost sync, or too many responses wait.
                if matches!(self.requests.state, State::Resync)
                    || self.responses.done.len() > MAX_PENDING
                {
                    self.responses.done.pop_front();
                    self.stats.unmatched_responses += 1;
                    continue;
                }
                return;
            };
            if req.start_ts > resp.start_ts {
                // The response began before the oldest waiting request did, so it answers a
                // request that was lost (gap, resync, capture started mid-connection). Pairing
                // it anyway would shift every later pair by one.
                self.responses.done.pop_front();
                self.stats.unmatched_responses += 1;
                continue;
            }
            let (Some(req), Some(resp)) = (
                self.requests.done.pop_front(),
                self.responses.done.pop_front(),
            ) else {
                return;
            };
            let status = match resp.start {
                Start::Response { status, .. } => status,
                Start::Request { .. } => 0,
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

    /// Bytes held now (heads and lines in progress, parsed headers and kept bodies of messages
    /// not yet drained), for memory accounting.
    pub fn buffered_bytes(&self) -> usize {
        let msg = |m: &Message| {
            m.body.len()
                + m.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        };
        let dir = |d: &Direction| {
            let current = match &d.state {
                State::Body { msg: m, .. } => msg(m),
                State::Head { .. } | State::Resync => 0,
            };
            d.buf.len() + current + d.done.iter().map(msg).sum::<usize>()
        };
        let records = self
            .records
            .iter()
            .map(|r| msg(&r.req) + msg(&r.resp))
            .sum::<usize>();
        dir(&self.requests) + dir(&self.responses) + records
    }
}

/// Headers as a JSON object (Pixie's `req_headers` format); repeated names are joined by `,`.
pub fn headers_json(headers: &[(String, String)]) -> String {
    // NB: written directly, one allocation per call: building a serde_json Map (an IndexMap
    // plus a String per name and value) was a visible share of the agent's CPU per request.
    let mut out = String::with_capacity(
        2 + headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push('{');
    let mut first = true;
    for (i, (k, v)) in headers.iter().enumerate() {
        if headers[..i].iter().any(|(p, _)| p == k) {
            continue; // joined into its first occurrence
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(&mut out, k);
        out.push_str(":\"");
        push_json_escaped(&mut out, v);
        for (_, more) in headers[i + 1..].iter().filter(|(p, _)| p == k) {
            out.push(',');
            push_json_escaped(&mut out, more);
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_escaped(out, s);
    out.push('"');
}

/// JSON string escaping (RFC 8259 §7) without the quotes.
fn push_json_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The fuzz body shared by the cargo-fuzz target and the stable-Rust stand-in test.
///
/// Input layout: `[n, s_hi, s_lo, control × n, payload…]`. The payload is split into a
/// request stream (its first `s` bytes, `s` big-endian) and a response stream. Control bytes, cycled, say what
/// happens next: bit 7 picks the direction, bits 0..=5 give a length 1..=64, and bit 6 turns
/// the segment into a gap (its bytes skipped, as the capture would have missed them). So every
/// split point, interleaving and gap placement is reachable. Panics only if the parser breaks
/// an invariant (memory bound, records out of thin air); returns the connection's counters so
/// the stand-in test can also check outcomes of well-formed inputs.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) -> Stats {
    const DEFAULT_CONTROL: &[u8] = &[0x07, 0x87];
    let limits = Limits {
        max_body: 64,
        max_header_bytes: 2048,
        max_headers: 16,
    };
    let (control, payload) = match data {
        [n, hi, lo, rest @ ..] => {
            let n = usize::from(*n).min(rest.len());
            let (control, payload) = rest.split_at(n);
            let split = usize::from(u16::from_be_bytes([*hi, *lo])).min(payload.len());
            (control, payload.split_at(split))
        }
        _ => (&[][..], (data, &[][..])),
    };
    let control = if control.is_empty() {
        DEFAULT_CONTROL
    } else {
        control
    };
    let (mut reqs, mut resps) = payload;
    let bound = 2 * (MAX_PENDING + 2) * (limits.max_header_bytes + limits.max_body)
        + 2 * (limits.max_header_bytes + MAX_LINE + 2);
    let mut conn = Conn::new(limits);
    let mut out = Vec::new();
    let mut ts = 0u64;
    for &c in control.iter().cycle() {
        if reqs.is_empty() && resps.is_empty() {
            break;
        }
        let to_requests = if c & 0x80 == 0 {
            !reqs.is_empty()
        } else {
            resps.is_empty()
        };
        let stream = if to_requests { &mut reqs } else { &mut resps };
        let n = (usize::from(c & 0x3f) + 1).min(stream.len());
        let (seg, tail) = stream.split_at(n);
        *stream = tail;
        ts += 1 + u64::from(c & 3);
        let chunk = if c & 0x40 != 0 {
            Chunk::Gap { len: n as u64, ts }
        } else {
            Chunk::Data {
                bytes: seg,
                first_ts: ts,
                last_ts: ts,
            }
        };
        if to_requests {
            conn.push_requests(chunk);
        } else {
            conn.push_responses(chunk);
        }
        conn.drain(&mut out);
        assert!(
            conn.buffered_bytes() <= bound,
            "{} bytes buffered",
            conn.buffered_bytes()
        );
    }
    conn.close();
    conn.drain(&mut out);
    let stats = conn.stats();
    assert_eq!(stats.records, out.len() as u64);
    assert!(stats.records <= stats.requests.min(stats.responses));
    for r in &out {
        assert!(r.req.body.len() <= limits.max_body && r.resp.body.len() <= limits.max_body);
        assert!(r.resp.body_size >= r.resp.body.len() as u64);
    }
    stats.clone()
}

#[cfg(test)]
mod tests;
