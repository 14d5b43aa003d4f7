//! Incremental HTTP/2 (and so gRPC) parsing of both directions of one connection: frames,
//! HPACK header blocks and streams stitched by stream id into request/response records.
//!
//! Records reuse [`http1::Record`](crate::http1::Record) so the agent maps both versions to
//! Pixie's `http_events` the same way: `major_version` 2, `minor_version` 0, `req_method` and
//! `req_path` from `:method` and `:path`, `resp_status` from `:status`, headers (pseudo-headers
//! included, as Pixie shows them) as JSON, trailers merged into the response headers (so
//! `grpc-status` and `grpc-message` are there; see [`Message::grpc_status`]). Bodies are the
//! DATA payloads concatenated, kept up to [`Limits::max_body`] with the true size counted;
//! gRPC's length-prefixed messages are kept as raw bytes for the agent to render. HTTP/2 has no
//! reason phrase: responses carry an empty `reason` (Pixie hard-codes `resp_message` "OK").
//!
//! Header blocks are decoded with `loona-hpack`, the maintained fork of `hpack` (the original
//! was last released in 2016, `httlib-hpack` in 2021): its decoder keeps the dynamic table
//! across blocks, which is what a connection needs. One decoder per direction lives as long as
//! the connection; it accepts dynamic table size updates up to what the peer announced in
//! `SETTINGS_HEADER_TABLE_SIZE` (at least the initial 4096, at most
//! [`Limits::max_table_size`]). Framing is written here: it is small (a 9-byte header), and
//! no frame crate parses a captured byte stream with gaps incrementally without buffering
//! DATA, which is streamed here and never buffered beyond the body limit.
//!
//! HPACK state cannot be rebuilt once bytes are missed: a direction whose start was not seen
//! (no client preface, or a server side not opening with SETTINGS) or that lost framing in a
//! gap decodes no more header blocks for the rest of the connection. Its messages still stitch
//! by stream id (bodies, END_STREAM, resets, timing) but carry no headers and an empty
//! method, path and status 0, with a note saying why (`hpack: state unknown (joined
//! mid-stream)`) instead of headers that might be wrong. A gap inside a DATA payload only
//! counts toward the body's size and keeps everything else. After lost framing a direction
//! waits for a chunk that starts with plausible frame headers.

use std::borrow::Cow;
use std::collections::VecDeque;

use loona_hpack::Decoder;

use crate::Chunk;
pub use crate::http1::{Message, Record, Start};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS_HEADER_TABLE_SIZE.
const HEADER_TABLE_SIZE: u16 = 1;
/// The HPACK dynamic table size before any SETTINGS (RFC 9113 §6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;
/// Notes kept per message at most.
const MAX_NOTES: usize = 8;
/// Records waiting to be drained, at most; older ones are dropped and counted.
const MAX_RECORDS: usize = 4096;

/// Bounds on what one connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Body bytes kept per message; the true size is always counted.
    pub max_body: usize,
    /// Bytes of one header block (HEADERS + CONTINUATION) or other control frame buffered at
    /// most. A larger header block cannot be decoded and ends HPACK decoding of its direction.
    pub max_header_bytes: usize,
    /// Headers (trailers included) kept per message.
    pub max_headers: usize,
    /// Streams open at once; the oldest is dropped (counted in `unmatched`) past this.
    pub max_streams: usize,
    /// Largest HPACK dynamic table accepted (bytes, as HPACK counts them).
    pub max_table_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 64,
            max_streams: 256,
            max_table_size: 64 * 1024,
        }
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Request messages started (HEADERS, PUSH_PROMISE, or DATA of an unseen stream).
    pub requests: u64,
    /// Final response messages started (1xx not counted).
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Frames or header blocks that did not parse.
    pub parse_errors: u64,
    /// Times a direction lost framing and had to find frames again.
    pub resyncs: u64,
    /// Streams dropped without a record: a response with no request, evicted streams,
    /// streams incomplete at close.
    pub unmatched: u64,
    /// Bytes lost in gaps.
    pub gap_bytes: u64,
    /// Header blocks not decoded because the direction's HPACK state was unknown.
    pub undecoded_blocks: u64,
    /// RST_STREAM frames that ended a stream.
    pub resets: u64,
}

impl Message {
    /// `grpc-status` (from the trailers, or a trailers-only response), if present.
    pub fn grpc_status(&self) -> Option<u32> {
        self.header("grpc-status")?.trim().parse().ok()
    }

    /// `grpc-message`, percent-decoded, if present.
    pub fn grpc_message(&self) -> Option<Cow<'_, str>> {
        self.header("grpc-message").map(percent_decode)
    }

    /// Whether its `content-type` is gRPC's (`application/grpc`, `application/grpc+proto`…).
    pub fn is_grpc(&self) -> bool {
        self.header("content-type")
            .is_some_and(|v| v.starts_with("application/grpc"))
    }
}

impl Record {
    /// The response's `grpc-status`.
    pub fn grpc_status(&self) -> Option<u32> {
        self.resp.grpc_status()
    }

    /// The response's `grpc-message`, percent-decoded.
    pub fn grpc_message(&self) -> Option<Cow<'_, str>> {
        self.resp.grpc_message()
    }

    /// Whether the exchange is gRPC (`content_type` = gRPC in `http_events`).
    pub fn is_grpc(&self) -> bool {
        self.req.is_grpc() || self.resp.is_grpc()
    }
}

/// `%XX` decoding of gRPC's message encoding; invalid escapes stay as they are.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Request side at the start: this many bytes of the preface matched.
    Preface(usize),
    /// At or inside frames.
    Framed,
    /// Framing lost: waiting for a chunk that starts with frames.
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct FrameHead {
    len: u32,
    kind: u8,
    flags: u8,
    stream: u32,
}

fn frame_head(b: &[u8]) -> Option<FrameHead> {
    let b = b.get(..9)?;
    Some(FrameHead {
        len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
        kind: b[3],
        flags: b[4],
        stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
    })
}

/// Whether `h` is a frame header a peer could send. `strict` (when finding frames again)
/// also rejects unknown types and undefined flags.
fn plausible(h: &FrameHead, strict: bool) -> bool {
    let on_stream = h.stream != 0;
    let flags_ok = |allowed: u8| !strict || h.flags & !allowed == 0;
    match h.kind {
        DATA => on_stream && flags_ok(END_STREAM | PADDED),
        HEADERS => on_stream && flags_ok(END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG),
        PRIORITY => on_stream && h.len == 5,
        RST_STREAM => on_stream && h.len == 4,
        SETTINGS => !on_stream && h.len.is_multiple_of(6) && flags_ok(ACK),
        PUSH_PROMISE => on_stream && h.len >= 4 && flags_ok(END_HEADERS | PADDED),
        PING => !on_stream && h.len == 8 && flags_ok(ACK),
        GOAWAY => !on_stream && h.len >= 8,
        WINDOW_UPDATE => h.len == 4,
        CONTINUATION => on_stream && flags_ok(END_HEADERS),
        _ => !strict,
    }
}

/// Whether `bytes` (a chunk's start) begins with plausible frames, every header in it
/// checked. Too short to hold a header: no.
fn plausible_chain(bytes: &[u8]) -> bool {
    let mut at = 0;
    let mut seen = false;
    while let Some(h) = bytes.get(at..).and_then(frame_head) {
        if !plausible(&h, true) || h.len > 1 << 20 {
            return false;
        }
        seen = true;
        at += 9 + h.len as usize;
    }
    seen
}

#[derive(Debug)]
struct Frame {
    head: FrameHead,
    /// Payload bytes consumed.
    off: u32,
    /// DATA: the payload range holding data, once known (after the pad length).
    data: Option<(u32, u32)>,
    /// Payload larger than the buffer: not kept.
    oversize: bool,
    /// Payload partly lost in a gap.
    lost: bool,
    start_ts: u64,
}

#[derive(Debug)]
struct Block {
    stream: u32,
    /// PUSH_PROMISE: the promised stream, whose request this block is.
    promised: Option<u32>,
    end_stream: bool,
    buf: Vec<u8>,
    start_ts: u64,
}

/// An HPACK decoder (the crate's type has no `Debug`).
struct Hpack(Decoder<'static>);

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hpack")
    }
}

#[derive(Debug)]
struct Dir {
    side: Side,
    sync: Sync,
    /// The response side has not parsed its first frame yet.
    first_frame: bool,
    head: [u8; 9],
    head_len: usize,
    head_ts: u64,
    frame: Option<Frame>,
    payload: Vec<u8>,
    block: Option<Block>,
    decoder: Hpack,
    /// Why header blocks are no longer decoded, if they are not.
    hpack_lost: Option<String>,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    req: Option<Message>,
    req_done: bool,
    resp: Option<Message>,
    resp_done: bool,
    reset: Option<(String, u64)>,
}

/// What both directions share: the streams and their outcomes.
#[derive(Debug)]
struct Shared {
    limits: Limits,
    streams: Vec<Stream>,
    records: VecDeque<Record>,
    stats: Stats,
    /// Highest client stream id whose request HEADERS were seen.
    req_max_id: u32,
    /// A SETTINGS_HEADER_TABLE_SIZE just announced, for the other direction's decoder.
    table_size: Option<u32>,
}

fn note(m: &mut Message, s: &str) {
    if m.notes.len() < MAX_NOTES && !m.notes.iter().any(|n| n == s) {
        m.notes.push(s.to_string());
    }
}

fn placeholder(side: Side, ts: u64) -> Message {
    Message {
        start: match side {
            Side::Request => Start::Request {
                method: String::new(),
                path: String::new(),
            },
            Side::Response => Start::Response {
                status: 0,
                reason: String::new(),
            },
        },
        major_version: 2,
        minor_version: 0,
        headers: Vec::new(),
        body: Vec::new(),
        body_size: 0,
        start_ts: ts,
        end_ts: ts,
        notes: Vec::new(),
    }
}

fn pseudo<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn status_of(headers: &[(String, String)]) -> u16 {
    pseudo(headers, ":status")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Shared {
    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().rposition(|s| s.id == id)
    }

    /// The stream `id`, created if new (dropping the oldest past the limit).
    fn stream(&mut self, id: u32) -> usize {
        if let Some(i) = self.find(id) {
            return i;
        }
        if self.streams.len() >= self.limits.max_streams.max(1) {
            self.streams.remove(0);
            self.stats.unmatched += 1;
        }
        self.streams.push(Stream {
            id,
            req: None,
            req_done: false,
            resp: None,
            resp_done: false,
            reset: None,
        });
        self.streams.len() - 1
    }

    /// A message of `side` on stream `i`, a placeholder if its headers were not seen.
    fn message(&mut self, i: usize, side: Side, ts: u64) -> &mut Message {
        let s = &mut self.streams[i];
        let slot = match side {
            Side::Request => &mut s.req,
            Side::Response => &mut s.resp,
        };
        slot.get_or_insert_with(|| {
            match side {
                Side::Request => self.stats.requests += 1,
                Side::Response => self.stats.responses += 1,
            }
            let mut m = placeholder(side, ts);
            note(&mut m, "headers not captured (gap or joined mid-stream)");
            m
        })
    }

    #[allow(clippy::too_many_arguments, reason = "one header block's facts")]
    fn headers(
        &mut self,
        side: Side,
        id: u32,
        headers: Option<Vec<(String, String)>>,
        why: Option<&str>,
        end_stream: bool,
        start_ts: u64,
        end_ts: u64,
    ) {
        if side == Side::Request && id % 2 == 1 && id > self.req_max_id {
            self.req_max_id = id;
            self.drop_orphans();
        }
        if side == Side::Response
            && let Some(h) = &headers
            && (100..200).contains(&status_of(h))
        {
            return; // informational: the final response follows
        }
        let i = self.stream(id);
        let max_headers = self.limits.max_headers;
        let s = &mut self.streams[i];
        let slot = match side {
            Side::Request => &mut s.req,
            Side::Response => &mut s.resp,
        };
        match slot {
            None => {
                let mut m = placeholder(side, start_ts);
                if let Some(mut h) = headers {
                    m.start = match side {
                        Side::Request => Start::Request {
                            method: pseudo(&h, ":method").unwrap_or_default().to_string(),
                            path: pseudo(&h, ":path").unwrap_or_default().to_string(),
                        },
                        Side::Response => Start::Response {
                            status: status_of(&h),
                            reason: String::new(),
                        },
                    };
                    h.truncate(max_headers);
                    m.headers = h;
                }
                if let Some(why) = why {
                    note(&mut m, why);
                }
                m.end_ts = end_ts;
                *slot = Some(m);
                match side {
                    Side::Request => self.stats.requests += 1,
                    Side::Response => self.stats.responses += 1,
                }
            }
            Some(m) => {
                // Trailers (or headers after DATA of a stream whose headers were missed).
                if let Some(h) = headers {
                    let room = max_headers.saturating_sub(m.headers.len());
                    if let Start::Response { status: 0, .. } = m.start
                        && m.headers.is_empty()
                    {
                        m.start = Start::Response {
                            status: status_of(&h),
                            reason: String::new(),
                        };
                    }
                    m.headers.extend(h.into_iter().take(room));
                }
                if let Some(why) = why {
                    note(m, why);
                }
                m.end_ts = end_ts;
            }
        }
        if end_stream {
            match side {
                Side::Request => s.req_done = true,
                Side::Response => s.resp_done = true,
            }
        }
        self.try_emit(i);
    }

    fn body(&mut self, side: Side, id: u32, bytes: &[u8], gap: u64, ts: u64) {
        let i = self.stream(id);
        let max = self.limits.max_body;
        let m = self.message(i, side, ts);
        m.body_size += bytes.len() as u64 + gap;
        let room = max.saturating_sub(m.body.len());
        m.body.extend_from_slice(&bytes[..room.min(bytes.len())]);
        if gap > 0 {
            note(m, "body had a gap");
        }
    }

    fn end_data(&mut self, side: Side, id: u32, end_stream: bool, ts: u64) {
        let i = match self.find(id) {
            Some(i) => i,
            None if end_stream => self.stream(id),
            None => return,
        };
        let m = self.message(i, side, ts);
        m.end_ts = ts;
        if end_stream {
            let s = &mut self.streams[i];
            match side {
                Side::Request => s.req_done = true,
                Side::Response => s.resp_done = true,
            }
            self.try_emit(i);
        }
    }

    fn reset(&mut self, by: Side, id: u32, code: u32, ts: u64) {
        let Some(i) = self.find(id) else {
            return;
        };
        self.stats.resets += 1;
        let who = match by {
            Side::Request => "client",
            Side::Response => "server",
        };
        let s = &mut self.streams[i];
        s.reset = Some((format!("stream reset by {who}: {}", error_name(code)), ts));
        self.try_emit(i);
    }

    /// Responses complete whose request can no longer come: the client opened a later stream.
    fn drop_orphans(&mut self) {
        let max = self.req_max_id;
        let before = self.streams.len();
        self.streams
            .retain(|s| !(s.req.is_none() && s.resp_done && s.id % 2 == 1 && s.id < max));
        self.stats.unmatched += (before - self.streams.len()) as u64;
    }

    fn try_emit(&mut self, i: usize) {
        let s = &self.streams[i];
        let ready = s.req.is_some()
            && (s.reset.is_some() || (s.req_done && s.resp_done && s.resp.is_some()));
        let orphan = s.req.is_none()
            && (s.reset.is_some() || (s.resp_done && s.id % 2 == 1 && s.id < self.req_max_id));
        if orphan {
            self.streams.remove(i);
            self.stats.unmatched += 1;
        } else if ready {
            let s = self.streams.remove(i);
            self.emit(s, None);
        }
    }

    fn emit(&mut self, s: Stream, why: Option<&str>) {
        let Some(mut req) = s.req else {
            return;
        };
        let mut resp = match s.resp {
            Some(r) => r,
            None => {
                let ts = s.reset.as_ref().map_or(req.end_ts, |(_, ts)| *ts);
                let mut r = placeholder(Side::Response, ts);
                note(&mut r, "no response");
                r
            }
        };
        if let Some((n, ts)) = &s.reset {
            note(&mut req, n);
            note(&mut resp, n);
            resp.end_ts = resp.end_ts.max(*ts);
        }
        if let Some(why) = why {
            note(&mut req, why);
        }
        self.stats.records += 1;
        if self.records.len() >= MAX_RECORDS {
            self.records.pop_front();
            self.stats.unmatched += 1;
        }
        self.records.push_back(Record { req, resp });
    }
}

/// RFC 9113 §7 error code names.
fn error_name(code: u32) -> Cow<'static, str> {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    match NAMES.get(code as usize) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(format!("error 0x{code:x}")),
    }
}

impl Dir {
    fn new(side: Side) -> Self {
        let mut d = Decoder::new();
        d.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        Self {
            side,
            sync: match side {
                Side::Request => Sync::Preface(0),
                Side::Response => Sync::Framed,
            },
            first_frame: side == Side::Response,
            head: [0; 9],
            head_len: 0,
            head_ts: 0,
            frame: None,
            payload: Vec::new(),
            block: None,
            decoder: Hpack(d),
            hpack_lost: None,
        }
    }

    /// Header blocks of this direction can no longer be decoded, for the reason given.
    fn lose_hpack(&mut self, why: &str) {
        if self.hpack_lost.is_none() {
            self.hpack_lost = Some(why.to_string());
        }
    }

    /// Framing lost: drop what is in progress and look for frames at the next chunk.
    fn lose_framing(&mut self, why: &str, sh: &mut Shared) {
        self.lose_hpack(why);
        self.block = None;
        self.frame = None;
        self.head_len = 0;
        self.payload.clear();
        self.first_frame = false;
        self.sync = Sync::Lost;
        sh.stats.resyncs += 1;
    }

    fn gap(&mut self, len: u64, ts: u64, sh: &mut Shared) {
        sh.stats.gap_bytes += len;
        const LOST: &str = "hpack: state lost in a gap (no headers for the rest of the connection)";
        match self.sync {
            Sync::Lost => {}
            Sync::Preface(_) => {
                self.lose_hpack("hpack: state unknown (joined mid-stream)");
                self.sync = Sync::Lost;
                sh.stats.resyncs += 1;
            }
            Sync::Framed => {
                if self.head_len == 0
                    && let Some(f) = &mut self.frame
                    && len <= u64::from(f.head.len - f.off)
                {
                    // Within the current frame's payload: framing survives.
                    let len32 = len as u32;
                    if f.head.kind == DATA {
                        if f.data.is_none() {
                            // The pad length was lost: count it all as data.
                            f.data = Some((0, f.head.len));
                        }
                        let (from, to) = f.data.unwrap_or((0, 0));
                        let n = (f.off + len32).min(to).saturating_sub(f.off.max(from));
                        sh.body(self.side, f.head.stream, &[], u64::from(n), ts);
                    } else {
                        f.lost = true;
                    }
                    f.off += len32;
                    let header_block = matches!(f.head.kind, HEADERS | CONTINUATION | PUSH_PROMISE);
                    let done = f.off == f.head.len;
                    if header_block {
                        self.lose_hpack(LOST);
                    }
                    if done {
                        self.finish_frame(ts, sh);
                    }
                    return;
                }
                self.lose_framing(LOST, sh);
            }
        }
    }

    fn data(&mut self, mut bytes: &[u8], first_ts: u64, last_ts: u64, sh: &mut Shared) {
        if bytes.is_empty() {
            return;
        }
        match self.sync {
            Sync::Lost => {
                if !plausible_chain(bytes) {
                    return;
                }
                self.sync = Sync::Framed;
            }
            Sync::Preface(n) => {
                let k = (PREFACE.len() - n).min(bytes.len());
                if bytes[..k] == PREFACE[n..n + k] {
                    bytes = &bytes[k..];
                    if n + k < PREFACE.len() {
                        self.sync = Sync::Preface(n + k);
                        return;
                    }
                    self.sync = Sync::Framed;
                } else if n == 0 {
                    self.lose_hpack("hpack: state unknown (joined mid-stream)");
                    if !plausible_chain(bytes) {
                        self.sync = Sync::Lost;
                        sh.stats.resyncs += 1;
                        return;
                    }
                    self.sync = Sync::Framed;
                } else {
                    sh.stats.parse_errors += 1;
                    self.lose_framing("hpack: state unknown (bad connection preface)", sh);
                    return;
                }
            }
            Sync::Framed => {
                if self.first_frame
                    && self.head_len == 0
                    && bytes.len() >= 9
                    && !plausible_chain(bytes)
                {
                    self.lose_framing("hpack: state unknown (joined mid-stream)", sh);
                    return;
                }
            }
        }
        while !bytes.is_empty() {
            let Some(f) = &mut self.frame else {
                if self.head_len == 0 {
                    self.head_ts = first_ts;
                }
                let k = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + k].copy_from_slice(&bytes[..k]);
                self.head_len += k;
                bytes = &bytes[k..];
                if self.head_len < 9 {
                    return;
                }
                self.head_len = 0;
                let Some(h) = frame_head(&self.head) else {
                    return;
                };
                if self.first_frame {
                    // A server opens with SETTINGS: otherwise its start was missed.
                    self.first_frame = false;
                    if !(h.kind == SETTINGS && h.stream == 0 && h.flags & ACK == 0) {
                        self.lose_hpack("hpack: state unknown (joined mid-stream)");
                    }
                }
                if !plausible(&h, false) {
                    sh.stats.parse_errors += 1;
                    self.lose_framing(
                        "hpack: state unknown after a framing error (rest of the connection)",
                        sh,
                    );
                    return;
                }
                if let Some(b) = &self.block
                    && (h.kind != CONTINUATION || h.stream != b.stream)
                {
                    sh.stats.parse_errors += 1;
                    self.block = None;
                    self.lose_hpack("hpack: header block interrupted (rest of the connection)");
                }
                let data = (h.kind == DATA && h.flags & PADDED == 0).then_some((0, h.len));
                self.frame = Some(Frame {
                    head: h,
                    off: 0,
                    data,
                    oversize: false,
                    lost: false,
                    start_ts: self.head_ts,
                });
                self.payload.clear();
                if h.len == 0 {
                    self.finish_frame(last_ts, sh);
                }
                continue;
            };
            let n = ((f.head.len - f.off) as usize).min(bytes.len());
            let (piece, rest) = bytes.split_at(n);
            bytes = rest;
            if f.head.kind == DATA {
                let mut p = piece;
                let mut off = f.off;
                if f.data.is_none()
                    && let Some((&pad, tail)) = p.split_first()
                {
                    // PADDED: the first payload byte is the pad length.
                    f.data = Some(if u32::from(pad) < f.head.len {
                        (1, f.head.len - u32::from(pad))
                    } else {
                        sh.stats.parse_errors += 1;
                        (1, 1)
                    });
                    p = tail;
                    off += 1;
                }
                let (from, to) = f.data.unwrap_or((0, 0));
                let s = off.max(from);
                let e = (off + p.len() as u32).min(to);
                if s < e {
                    let piece = &p[(s - off) as usize..(e - off) as usize];
                    sh.body(self.side, f.head.stream, piece, 0, first_ts);
                }
            } else if self.payload.len() + n <= sh.limits.max_header_bytes {
                self.payload.extend_from_slice(piece);
            } else {
                f.oversize = true;
                self.payload = Vec::new();
            }
            f.off += n as u32;
            if f.off == f.head.len {
                self.finish_frame(last_ts, sh);
            }
        }
    }

    /// A frame's payload is complete (or skipped): act on it.
    fn finish_frame(&mut self, ts: u64, sh: &mut Shared) {
        let Some(f) = self.frame.take() else {
            return;
        };
        let h = f.head;
        let payload = std::mem::take(&mut self.payload);
        let usable = !f.oversize && !f.lost;
        match h.kind {
            DATA => sh.end_data(self.side, h.stream, h.flags & END_STREAM != 0, ts),
            HEADERS | PUSH_PROMISE => {
                let mut promised = None;
                let frag = if usable {
                    let p = if h.kind == HEADERS {
                        fragment(
                            &payload,
                            h.flags,
                            if h.flags & PRIORITY_FLAG != 0 { 5 } else { 0 },
                        )
                    } else {
                        fragment(&payload, h.flags, 4)
                    };
                    if h.kind == PUSH_PROMISE
                        && let Some(id) = payload.get(usize::from(h.flags & PADDED != 0)..)
                        && let Some(id) = id.get(..4)
                    {
                        promised =
                            Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff);
                    }
                    if p.is_none() {
                        sh.stats.parse_errors += 1;
                    }
                    p
                } else {
                    None
                };
                if frag.is_none() {
                    self.lose_hpack(if f.oversize {
                        "hpack: header block too large to decode (rest of the connection)"
                    } else {
                        "hpack: header block lost (rest of the connection)"
                    });
                }
                let block = Block {
                    stream: h.stream,
                    promised: if h.kind == PUSH_PROMISE {
                        Some(promised.unwrap_or(0))
                    } else {
                        None
                    },
                    end_stream: h.kind == HEADERS && h.flags & END_STREAM != 0,
                    buf: frag.map(<[u8]>::to_vec).unwrap_or_default(),
                    start_ts: f.start_ts,
                };
                if h.flags & END_HEADERS != 0 {
                    self.complete_block(block, ts, sh);
                } else {
                    self.block = Some(block);
                }
            }
            CONTINUATION => {
                let Some(mut block) = self.block.take() else {
                    sh.stats.parse_errors += 1;
                    return;
                };
                if !usable || block.buf.len() + payload.len() > sh.limits.max_header_bytes {
                    self.lose_hpack(
                        "hpack: header block too large or lost (rest of the connection)",
                    );
                    block.buf.clear();
                } else {
                    block.buf.extend_from_slice(&payload);
                }
                if h.flags & END_HEADERS != 0 {
                    self.complete_block(block, ts, sh);
                } else {
                    self.block = Some(block);
                }
            }
            SETTINGS if usable && h.flags & ACK == 0 => {
                for s in payload.chunks_exact(6) {
                    if u16::from_be_bytes([s[0], s[1]]) == HEADER_TABLE_SIZE {
                        sh.table_size = Some(u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
                    }
                }
            }
            RST_STREAM if usable => {
                if let Some(c) = payload.get(..4) {
                    let code = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                    sh.reset(self.side, h.stream, code, ts);
                }
            }
            // PRIORITY, PING, GOAWAY, WINDOW_UPDATE, SETTINGS ACK, unknown types: nothing to
            // record.
            _ => {}
        }
    }

    fn complete_block(&mut self, b: Block, ts: u64, sh: &mut Shared) {
        let mut why = self.hpack_lost.clone();
        let headers = if why.is_none() {
            let mut out = Vec::new();
            let max = sh.limits.max_headers;
            let mut extra = 0usize;
            let r = self.decoder.0.decode_with_cb(&b.buf, |k, v| {
                if out.len() < max {
                    out.push((
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    ));
                } else {
                    extra += 1;
                }
            });
            match r {
                Ok(()) => {
                    if extra > 0 {
                        why = Some(format!("{extra} headers over the limit dropped"));
                    }
                    Some(out)
                }
                Err(e) => {
                    sh.stats.parse_errors += 1;
                    let w = format!("hpack: {e} (no headers for the rest of the connection)");
                    self.lose_hpack(&w);
                    why = Some(w);
                    None
                }
            }
        } else {
            sh.stats.undecoded_blocks += 1;
            None
        };
        match b.promised {
            Some(p) => sh.headers(
                Side::Request,
                p,
                headers,
                why.as_deref(),
                true,
                b.start_ts,
                ts,
            ),
            None => sh.headers(
                self.side,
                b.stream,
                headers,
                why.as_deref(),
                b.end_stream,
                b.start_ts,
                ts,
            ),
        }
    }

    fn set_table_size(&mut self, v: u32, limits: &Limits) {
        let allowed = (v as usize)
            .max(DEFAULT_TABLE_SIZE)
            .min(limits.max_table_size.max(DEFAULT_TABLE_SIZE));
        self.decoder.0.set_max_allowed_table_size(allowed);
    }

    fn buffered(&self) -> usize {
        self.payload.len() + self.block.as_ref().map_or(0, |b| b.buf.len())
    }
}

/// The header block fragment of a HEADERS (`skip` 0 or 5 priority bytes) or PUSH_PROMISE
/// (`skip` 4, the promised id) payload, without padding.
fn fragment(p: &[u8], flags: u8, skip: usize) -> Option<&[u8]> {
    let (pad, p) = if flags & PADDED != 0 {
        let (&pad, rest) = p.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, p)
    };
    let end = p.len().checked_sub(pad)?;
    p.get(skip..end)
}

/// Both directions of one HTTP/2 connection, and its streams.
#[derive(Debug)]
pub struct Conn {
    requests: Dir,
    responses: Dir,
    sh: Shared,
}

impl Conn {
    /// A connection with no bytes seen yet.
    pub fn new(limits: Limits) -> Self {
        Self {
            requests: Dir::new(Side::Request),
            responses: Dir::new(Side::Response),
            sh: Shared {
                limits,
                streams: Vec::new(),
                records: VecDeque::new(),
                stats: Stats::default(),
                req_max_id: 0,
                table_size: None,
            },
        }
    }

    /// Bytes the client sent, in order.
    pub fn push_requests(&mut self, chunk: Chunk<'_>) {
        match chunk {
            Chunk::Data {
                bytes,
                first_ts,
                last_ts,
            } => self.requests.data(bytes, first_ts, last_ts, &mut self.sh),
            Chunk::Gap { len, ts } => self.requests.gap(len, ts, &mut self.sh),
        }
        if let Some(v) = self.sh.table_size.take() {
            // The client's table size bounds the server's encoder, i.e. the response decoder.
            self.responses.set_table_size(v, &self.sh.limits);
        }
    }

    /// Bytes the server sent, in order.
    pub fn push_responses(&mut self, chunk: Chunk<'_>) {
        match chunk {
            Chunk::Data {
                bytes,
                first_ts,
                last_ts,
            } => self.responses.data(bytes, first_ts, last_ts, &mut self.sh),
            Chunk::Gap { len, ts } => self.responses.gap(len, ts, &mut self.sh),
        }
        if let Some(v) = self.sh.table_size.take() {
            self.requests.set_table_size(v, &self.sh.limits);
        }
    }

    /// Moves completed records to `out`, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        out.extend(self.sh.records.drain(..));
    }

    /// The connection closed: streams whose response ended become records (noted when the
    /// request had not ended); the rest are counted unmatched.
    pub fn close(&mut self) {
        for s in std::mem::take(&mut self.sh.streams) {
            if s.req.is_some() && s.resp.is_some() && s.resp_done {
                let why = (!s.req_done).then_some("request incomplete at close");
                self.sh.emit(s, why);
            } else {
                self.sh.stats.unmatched += 1;
            }
        }
        self.requests.block = None;
        self.responses.block = None;
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.sh.stats
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.sh.streams.len()
    }

    /// Bytes held now (control frame payloads and header blocks in progress, headers and kept
    /// bodies of open streams and undrained records), for memory accounting. The HPACK tables
    /// add at most [`Limits::max_table_size`] per direction.
    pub fn buffered_bytes(&self) -> usize {
        let msg = |m: &Message| {
            m.body.len()
                + m.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        };
        let opt = |m: &Option<Message>| m.as_ref().map_or(0, msg);
        let streams = self
            .sh
            .streams
            .iter()
            .map(|s| opt(&s.req) + opt(&s.resp))
            .sum::<usize>();
        let records = self
            .sh
            .records
            .iter()
            .map(|r| msg(&r.req) + msg(&r.resp))
            .sum::<usize>();
        self.requests.buffered() + self.responses.buffered() + streams + records
    }
}

/// The fuzz body shared by the cargo-fuzz target and the stand-in test: `data` split at 0xff
/// into chunks alternating request/response, a chunk starting with 0xfe being a gap of its
/// length. Panics only if an invariant breaks (memory bound, records out of thin air).
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) -> Stats {
    let limits = Limits {
        max_body: 64,
        max_header_bytes: 1024,
        max_headers: 16,
        max_streams: 8,
        max_table_size: 4096,
    };
    let mut c = Conn::new(limits);
    let mut out = Vec::new();
    let mut parts = data.split(|&b| b == 0xff);
    // A first part that is not a preface is prefixed with one, so the fuzzer starts from a
    // known HPACK state as often as from an unknown one.
    let first = parts.next().unwrap_or_default();
    let mut with_preface = PREFACE.to_vec();
    with_preface.extend_from_slice(first);
    let first: &[u8] = if first.first() == Some(&0xfd) {
        &first[1..]
    } else {
        &with_preface
    };
    // Decoded headers can outgrow their encoding (indexed names), up to a table entry each.
    let per_msg = limits.max_body + limits.max_headers * limits.max_table_size.max(4096);
    let bound = 2 * limits.max_header_bytes + (2 * limits.max_streams + 64) * 2 * per_msg;
    for (i, part) in std::iter::once(first).chain(parts).enumerate() {
        let ts = i as u64;
        let chunk = if part.first() == Some(&0xfe) {
            Chunk::Gap {
                len: part.len() as u64,
                ts,
            }
        } else {
            Chunk::Data {
                bytes: part,
                first_ts: ts,
                last_ts: ts,
            }
        };
        if i % 2 == 0 {
            c.push_requests(chunk);
        } else {
            c.push_responses(chunk);
        }
        assert!(c.open_streams() <= limits.max_streams);
        assert!(c.buffered_bytes() <= bound, "{}", c.buffered_bytes());
        c.drain(&mut out);
    }
    c.close();
    c.drain(&mut out);
    let stats = c.stats().clone();
    assert_eq!(stats.records, out.len() as u64);
    for r in &out {
        assert!(r.req.body.len() <= limits.max_body && r.resp.body.len() <= limits.max_body);
        assert!(r.req.body_size >= r.req.body.len() as u64);
        assert!(r.req.headers.len() <= limits.max_headers);
        assert_eq!(r.req.major_version, 2);
    }
    stats
}

#[cfg(test)]
mod tests;
