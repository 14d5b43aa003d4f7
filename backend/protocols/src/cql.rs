//! Cassandra CQL native protocol (v3, v4 and v5): requests stitched to their responses by
//! stream id, after Pixie's `cql_events`.
//!
//! Records, after Pixie's stitcher (`protocols/cql/stitcher.cc`): `req_op` / `resp_op` are the
//! opcodes; `req_body` is the STARTUP options as JSON (`{"CQL_VERSION":"3.0.0"}`), the query text
//! of a QUERY or PREPARE (a QUERY's bound values follow on a second line as a JSON array of
//! upper-case hex strings, `null` for NULL/unset), an EXECUTE's values as that JSON array (here
//! also preceded by the statement text when its PREPARE was seen on this connection, which
//! Pixie does not do), a BATCH as a JSON array of `{"query":..,"values":[..]}` (or `"id"` when a
//! prepared statement is unknown), the REGISTER event types as JSON, empty for OPTIONS, and
//! `<redacted>` for AUTH_RESPONSE (Pixie prints the SASL token, which holds the password).
//! `resp_body` is `[code] message` for ERROR (decimal code, as Pixie: `[8704] unconfigured
//! table foo`), empty for READY, the authenticator for AUTHENTICATE, the options as JSON for
//! SUPPORTED, hex tokens for AUTH_CHALLENGE/AUTH_SUCCESS, and for RESULT `Response type = VOID`,
//! `Response type = ROWS\nNumber of columns = N\n["c1",..]\nNumber of rows = M`,
//! `Response type = SET_KEYSPACE\nKeyspace = ks`, `Response type = PREPARED` or
//! `Response type = SCHEMA_CHANGE`. Server-pushed EVENTs (stream -1) are records with the
//! REGISTER opcode, request body `-` and zero latency, as Pixie does, and are counted. The
//! consistency level of QUERY/EXECUTE/BATCH, which Pixie drops, is a separate field.
//!
//! Hand-written rather than with `cassandra-protocol` (which the tests use as the encoder):
//! its `Envelope::from_buffer` needs whole envelopes in memory and decodes every row of a
//! result, while the agent sees partial captures with gaps and must not buffer large row sets;
//! only a body prefix (`Limits::max_body`) is kept and the rest skipped unbuffered. The v5
//! segment framing is detected per direction by the header CRC24 (so a connection joined
//! mid-stream is picked up), segments are reassembled into envelopes (non-self-contained ones
//! included), and the payload CRC32 is not checked. LZ4-compressed v5 segments and v4
//! envelopes with the compression flag cannot be read: the former are counted and skipped
//! (the envelope stream resynchronises at the next self-contained plain segment), the latter
//! give records with empty bodies and `compressed` set.
//!
//! After a gap or garbage a direction drops its bytes and waits for a chunk that starts with a
//! plausible header. A gap on the client side also drops outstanding requests (a stream id could
//! otherwise be matched to a stale request); responses are matched by stream id, so a gap on
//! the server side loses only the responses in it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::Chunk;

/// Bounds on what one connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of an envelope body decoded; the rest of larger bodies is skipped unbuffered.
    pub max_body: usize,
    /// Characters of a rendered body kept.
    pub max_text: usize,
    /// Outstanding requests, at most; the oldest is dropped and counted.
    pub max_pending: usize,
    /// Prepared statement ids remembered per connection, at most.
    pub max_statements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 64 << 10,
            max_text: 4096,
            max_pending: 1024,
            max_statements: 4096,
        }
    }
}

/// Request opcodes.
pub mod req_op {
    /// STARTUP.
    pub const STARTUP: u8 = 0x01;
    /// OPTIONS.
    pub const OPTIONS: u8 = 0x05;
    /// QUERY.
    pub const QUERY: u8 = 0x07;
    /// PREPARE.
    pub const PREPARE: u8 = 0x09;
    /// EXECUTE.
    pub const EXECUTE: u8 = 0x0A;
    /// REGISTER (also the request opcode of pushed EVENT records).
    pub const REGISTER: u8 = 0x0B;
    /// BATCH.
    pub const BATCH: u8 = 0x0D;
    /// AUTH_RESPONSE.
    pub const AUTH_RESPONSE: u8 = 0x0F;
}

/// Response opcodes.
pub mod resp_op {
    /// ERROR.
    pub const ERROR: u8 = 0x00;
    /// READY.
    pub const READY: u8 = 0x02;
    /// AUTHENTICATE.
    pub const AUTHENTICATE: u8 = 0x03;
    /// SUPPORTED.
    pub const SUPPORTED: u8 = 0x06;
    /// RESULT.
    pub const RESULT: u8 = 0x08;
    /// EVENT.
    pub const EVENT: u8 = 0x0C;
    /// AUTH_CHALLENGE.
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    /// AUTH_SUCCESS.
    pub const AUTH_SUCCESS: u8 = 0x10;
}

/// Whether `op` is a request opcode.
pub fn is_request_op(op: u8) -> bool {
    matches!(op, 0x01 | 0x05 | 0x07 | 0x09 | 0x0A | 0x0B | 0x0D | 0x0F)
}

/// Whether `op` is a response opcode.
pub fn is_response_op(op: u8) -> bool {
    matches!(op, 0x00 | 0x02 | 0x03 | 0x06 | 0x08 | 0x0C | 0x0E | 0x10)
}

/// A request and its response (or a pushed event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Request opcode (`req_op`); REGISTER for pushed events.
    pub req_op: u8,
    /// Rendered request (`req_body`).
    pub req_body: String,
    /// Response opcode (`resp_op`); `0` (ERROR) means failure.
    pub resp_op: u8,
    /// Rendered response (`resp_body`).
    pub resp_body: String,
    /// Stream id the pair travelled on (-1 for events).
    pub stream: i16,
    /// Protocol version of the request (3, 4 or 5).
    pub version: u8,
    /// Consistency level of a QUERY, EXECUTE or BATCH (`ONE`, `QUORUM`, ...).
    pub consistency: Option<&'static str>,
    /// A body was compressed and not decoded.
    pub compressed: bool,
    /// When the request's first byte moved (ns).
    pub start_ts: u64,
    /// When the response's last byte moved (ns).
    pub end_ts: u64,
}

impl Record {
    /// From the request's first byte to the response's last, in ns (`latency`).
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start_ts)
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Request envelopes parsed.
    pub requests: u64,
    /// Response envelopes parsed (events included).
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Envelopes or segments that did not frame or decode.
    pub parse_errors: u64,
    /// Times a direction dropped its bytes to resynchronise (gaps included).
    pub resyncs: u64,
    /// Responses with no request, and requests dropped without a response.
    pub unmatched: u64,
    /// Server-pushed EVENT envelopes.
    pub events: u64,
    /// Compressed v4 envelopes and LZ4 v5 segments, which are not decoded.
    pub compressed: u64,
}

const HEADER: usize = 9;
const MAX_ENVELOPE: usize = 256 << 20;
const SEGMENT_MAX_PAYLOAD: usize = (1 << 17) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Not yet known: v5 handshakes use envelopes, then segments.
    Unknown,
    /// v3/v4: envelopes only.
    Legacy,
    /// v5 segments (`lz4` when compressed).
    Segments { lz4: bool },
}

#[derive(Debug, Default)]
struct Stream {
    buf: Vec<u8>,
    start_ts: u64,
    /// Bytes of an oversized envelope body still to skip.
    skip: usize,
    broken: bool,
}

#[derive(Debug)]
struct Dir {
    /// Bytes as they came off the wire (envelopes in legacy framing, else segments).
    raw: Stream,
    /// Envelope bytes reassembled from v5 segment payloads.
    env: Stream,
    framing: Framing,
}

impl Dir {
    fn new() -> Self {
        Self {
            raw: Stream::default(),
            env: Stream::default(),
            framing: Framing::Unknown,
        }
    }
}

#[derive(Debug)]
struct Pending {
    op: u8,
    body: String,
    version: u8,
    consistency: Option<&'static str>,
    compressed: bool,
    start_ts: u64,
    /// An EXECUTE whose id was not known yet: id and rendered values.
    exec: Option<(Vec<u8>, String)>,
    /// The text of a PREPARE, remembered against the id its result returns.
    prepare: Option<String>,
    /// Prepared ids of a BATCH not known yet (rendered as `"id":"HEX"`).
    batch_ids: Vec<Vec<u8>>,
}

/// One connection's CQL state.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    req: Dir,
    resp: Dir,
    pending: HashMap<i16, Pending>,
    prepared: HashMap<Vec<u8>, String>,
    out: Vec<Record>,
    stats: Stats,
}

/// A 9-byte envelope header.
#[derive(Debug, Clone, Copy)]
struct Header {
    version: u8,
    flags: u8,
    stream: i16,
    op: u8,
    len: usize,
}

enum Env {
    /// Header, bytes of body available to decode, bytes used, body bytes still to skip.
    Ready(Header, usize, usize, usize),
    Incomplete,
    Garbage,
}

fn header(b: &[u8], request: bool) -> Option<Result<Header, ()>> {
    if b.len() < HEADER {
        return None;
    }
    let version = b[0] & 0x7f;
    let is_resp = b[0] & 0x80 != 0;
    let op = b[4];
    let len = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) as usize;
    let op_ok = if request {
        is_request_op(op)
    } else {
        is_response_op(op)
    };
    if !(3..=5).contains(&version) || is_resp == request || b[1] > 0x1f || !op_ok {
        return Some(Err(()));
    }
    if len > MAX_ENVELOPE {
        return Some(Err(()));
    }
    Some(Ok(Header {
        version,
        flags: b[1],
        stream: i16::from_be_bytes([b[2], b[3]]),
        op,
        len,
    }))
}

fn envelope(b: &[u8], request: bool, max_body: usize) -> Env {
    match header(b, request) {
        None => Env::Incomplete,
        Some(Err(())) => Env::Garbage,
        Some(Ok(h)) => {
            let take = h.len.min(max_body);
            if b.len() < HEADER + take {
                Env::Incomplete
            } else {
                Env::Ready(h, take, HEADER + take, h.len - take)
            }
        }
    }
}

/// CRC24 of the v5 segment header (polynomial 0x1974F0B, init 0x875060).
fn crc24(bytes: &[u8]) -> u32 {
    let mut crc: u32 = 0x87_5060;
    for &b in bytes {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x197_4f0b;
            }
        }
    }
    crc & 0xff_ffff
}

fn le(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// A v5 segment header at the start of `b`: (header length, payload length, self-contained,
/// uncompressed length for LZ4 segments).
fn segment_header(b: &[u8], lz4: bool) -> Option<(usize, usize, bool, usize)> {
    if lz4 {
        let h = b.get(..8)?;
        if le(&h[5..8]) as u32 != crc24(&h[..5]) {
            return None;
        }
        let v = le(&h[..5]);
        Some((
            8,
            (v & 0x1ffff) as usize,
            v & (1 << 34) != 0,
            ((v >> 17) & 0x1ffff) as usize,
        ))
    } else {
        let h = b.get(..6)?;
        if le(&h[3..6]) as u32 != crc24(&h[..3]) {
            return None;
        }
        let v = le(&h[..3]);
        Some((6, (v & 0x1ffff) as usize, v & (1 << 17) != 0, 0))
    }
}

/// Whether a resynchronising chunk starts plausibly: envelope headers chaining to its end (the
/// last may be incomplete), or a v5 segment header with a good CRC.
fn plausible_start(bytes: &[u8], request: bool, framing: Framing) -> bool {
    match framing {
        Framing::Segments { lz4 } => segment_header(bytes, lz4).is_some(),
        _ => {
            if segment_header(bytes, false).is_some() || segment_header(bytes, true).is_some() {
                return framing == Framing::Unknown;
            }
            let mut at = 0;
            let mut n = 0;
            while at < bytes.len() {
                match header(&bytes[at..], request) {
                    Some(Ok(h)) => {
                        at += HEADER + h.len;
                        n += 1;
                    }
                    Some(Err(())) => return false,
                    None => break,
                }
            }
            n > 0
        }
    }
}

/// A cursor over a body.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        let s = self.take(4)?;
        Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// `[string]`.
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    /// `[long string]`.
    fn long_string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.i32()?).ok()?;
        self.take(n)
    }

    /// `[bytes]`: `None` inside for null (-1) or unset (-2).
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?))
    }

    /// `[short bytes]`.
    fn short_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    fn string_list(&mut self) -> Option<Vec<String>> {
        let n = self.u16()?;
        let mut v = Vec::with_capacity(usize::from(n).min(64));
        for _ in 0..n {
            v.push(lossy(self.string()?));
        }
        Some(v)
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hex_upper(b: &[u8], max_bytes: usize) -> String {
    let mut s = String::with_capacity(b.len().min(max_bytes) * 2 + 3);
    for x in b.iter().take(max_bytes) {
        let _ = write!(s, "{x:02X}");
    }
    if b.len() > max_bytes {
        s.push_str("...");
    }
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max
        && let Some((i, _)) = s.char_indices().nth(max)
    {
        s.truncate(i);
        s.push_str("...");
    }
    s
}

fn consistency_name(c: u16) -> &'static str {
    match c {
        0 => "ANY",
        1 => "ONE",
        2 => "TWO",
        3 => "THREE",
        4 => "QUORUM",
        5 => "ALL",
        6 => "LOCAL_QUORUM",
        7 => "EACH_QUORUM",
        8 => "SERIAL",
        9 => "LOCAL_SERIAL",
        10 => "LOCAL_ONE",
        _ => "UNKNOWN",
    }
}

/// Skips the prefix the header flags announce: tracing id (responses), warnings (responses),
/// custom payload.
fn skip_prefix(c: &mut Cur<'_>, flags: u8, request: bool) -> Option<()> {
    if !request && flags & 0x02 != 0 {
        c.take(16)?;
    }
    if !request && flags & 0x08 != 0 {
        c.string_list()?;
    }
    if flags & 0x04 != 0 {
        let n = c.u16()?;
        for _ in 0..n {
            c.string()?;
            c.bytes()?;
        }
    }
    Some(())
}

/// Query parameters: consistency and the bound values as a JSON array (empty when none). A
/// truncated body ends the array with `"..."`.
fn query_params(c: &mut Cur<'_>, version: u8, max: usize) -> (Option<&'static str>, String) {
    let Some(cons) = c.u16() else {
        return (None, String::new());
    };
    let flags = if version >= 5 {
        c.i32().map(|f| f as u32)
    } else {
        c.u8().map(u32::from)
    };
    let Some(flags) = flags else {
        return (Some(consistency_name(cons)), String::new());
    };
    let mut values = String::new();
    if flags & 0x01 != 0 {
        values = values_json(c, flags & 0x40 != 0, max);
    }
    (Some(consistency_name(cons)), values)
}

/// `[short] n` then n `[bytes]` values (each after a `[string]` name when `names`).
fn values_json(c: &mut Cur<'_>, names: bool, max: usize) -> String {
    let Some(n) = c.u16() else {
        return String::new();
    };
    let mut s = String::from("[");
    for i in 0..n {
        if s.len() > max {
            s.push_str(",\"...\"");
            break;
        }
        if names && c.string().is_none() {
            s.push_str(if i > 0 { ",\"...\"" } else { "\"...\"" });
            break;
        }
        if i > 0 {
            s.push(',');
        }
        match c.bytes() {
            Some(Some(v)) => {
                s.push('"');
                s.push_str(&hex_upper(v, max / 2));
                s.push('"');
            }
            Some(None) => s.push_str("null"),
            None => {
                s.push_str("\"...\"");
                break;
            }
        }
    }
    s.push(']');
    s
}

fn with_values(text: String, values: &str) -> String {
    if values.is_empty() || values == "[]" {
        text
    } else {
        format!("{text}\n{values}")
    }
}

/// Skips a `[option]` type.
fn skip_type(c: &mut Cur<'_>, depth: u8) -> Option<()> {
    if depth > 16 {
        return None;
    }
    match c.u16()? {
        0x0000 => {
            c.string()?;
        }
        0x0020 | 0x0022 => skip_type(c, depth + 1)?,
        0x0021 => {
            skip_type(c, depth + 1)?;
            skip_type(c, depth + 1)?;
        }
        0x0030 => {
            c.string()?;
            c.string()?;
            for _ in 0..c.u16()? {
                c.string()?;
                skip_type(c, depth + 1)?;
            }
        }
        0x0031 => {
            for _ in 0..c.u16()? {
                skip_type(c, depth + 1)?;
            }
        }
        _ => {}
    }
    Some(())
}

/// A ROWS result as Pixie renders it.
fn rows(c: &mut Cur<'_>, max: usize) -> Option<String> {
    let flags = c.i32()?;
    let ncols = c.i32()?;
    if flags & 0x0002 != 0 {
        c.bytes()?;
    }
    if flags & 0x0008 != 0 {
        c.short_bytes()?;
    }
    let mut names = Vec::new();
    if flags & 0x0004 == 0 {
        let global = flags & 0x0001 != 0;
        if global {
            c.string()?;
            c.string()?;
        }
        for _ in 0..ncols.max(0) {
            if !global {
                c.string()?;
                c.string()?;
            }
            let name = c.string()?;
            if names.len() < max / 4 {
                names.push(lossy(name));
            }
            skip_type(c, 0)?;
        }
    }
    let nrows = c.i32()?;
    let names = serde_json::to_string(&names).unwrap_or_default();
    Some(format!(
        "Response type = ROWS\nNumber of columns = {ncols}\n{names}\nNumber of rows = {nrows}"
    ))
}

fn event(c: &mut Cur<'_>) -> Option<String> {
    let kind = lossy(c.string()?);
    match kind.as_str() {
        "TOPOLOGY_CHANGE" | "STATUS_CHANGE" => {
            let change = lossy(c.string()?);
            let n = c.u8()?;
            let a = c.take(usize::from(n))?;
            let port = c.i32()?;
            let ip = match a.len() {
                4 => std::net::IpAddr::from([a[0], a[1], a[2], a[3]]).to_string(),
                16 => {
                    let mut x = [0u8; 16];
                    x.copy_from_slice(a);
                    std::net::IpAddr::from(x).to_string()
                }
                _ => hex_upper(a, 16),
            };
            Some(format!("{kind} {change} {ip}:{port}"))
        }
        "SCHEMA_CHANGE" => {
            let change = lossy(c.string()?);
            let target = c.string()?;
            let ks = lossy(c.string()?);
            let name = if target == b"KEYSPACE" {
                String::new()
            } else {
                lossy(c.string()?)
            };
            Some(format!("{kind} {change} keyspace={ks} name={name}"))
        }
        _ => None,
    }
}

impl Conn {
    /// A connection with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            req: Dir::new(),
            resp: Dir::new(),
            pending: HashMap::new(),
            prepared: HashMap::new(),
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

    /// Bytes held waiting for envelopes and segments to complete.
    pub fn buffered_bytes(&self) -> usize {
        self.req.raw.buf.len()
            + self.req.env.buf.len()
            + self.resp.raw.buf.len()
            + self.resp.env.buf.len()
    }

    /// Whether a direction switched to the v5 segment framing.
    pub fn v5_framing(&self) -> bool {
        matches!(self.req.framing, Framing::Segments { .. })
            || matches!(self.resp.framing, Framing::Segments { .. })
    }

    fn dir(&mut self, request: bool) -> &mut Dir {
        if request {
            &mut self.req
        } else {
            &mut self.resp
        }
    }

    fn push(&mut self, chunk: Chunk<'_>, request: bool) {
        match chunk {
            Chunk::Gap { .. } => {
                self.stats.resyncs += 1;
                let d = self.dir(request);
                d.raw = Stream {
                    broken: true,
                    ..Stream::default()
                };
                d.env = Stream::default();
                if request {
                    self.stats.unmatched += self.pending.len() as u64;
                    self.pending.clear();
                }
            }
            Chunk::Data {
                mut bytes,
                first_ts,
                last_ts,
            } => {
                let d = self.dir(request);
                if d.raw.skip > 0 {
                    let n = d.raw.skip.min(bytes.len());
                    d.raw.skip -= n;
                    bytes = &bytes[n..];
                }
                if bytes.is_empty() {
                    return;
                }
                if d.raw.broken {
                    if !plausible_start(bytes, request, d.framing) {
                        self.stats.resyncs += 1;
                        return;
                    }
                    d.raw.broken = false;
                }
                if d.raw.buf.is_empty() {
                    d.raw.start_ts = first_ts;
                }
                d.raw.buf.extend_from_slice(bytes);
                self.parse_raw(request, first_ts, last_ts);
            }
        }
    }

    fn resync_raw(&mut self, request: bool) {
        self.stats.parse_errors += 1;
        self.stats.resyncs += 1;
        let d = self.dir(request);
        d.raw = Stream {
            broken: true,
            ..Stream::default()
        };
        d.env = Stream::default();
    }

    fn parse_raw(&mut self, request: bool, first_ts: u64, last_ts: u64) {
        let max_body = self.limits.max_body;
        let mut buf = std::mem::take(&mut self.dir(request).raw.buf);
        let mut at = 0;
        let mut broke = false;
        while at < buf.len() {
            let start_ts = if at == 0 {
                self.dir(request).raw.start_ts
            } else {
                first_ts
            };
            let rest = &buf[at..];
            let framing = self.dir(request).framing;
            if framing == Framing::Unknown {
                if rest.len() < HEADER {
                    break;
                }
                let legacy = matches!(header(rest, request), Some(Ok(h)) if h.version < 5);
                if !legacy {
                    let lz4 = if segment_header(rest, false).is_some() {
                        Some(false)
                    } else if segment_header(rest, true).is_some() {
                        Some(true)
                    } else {
                        None
                    };
                    if let Some(lz4) = lz4 {
                        self.dir(request).framing = Framing::Segments { lz4 };
                        continue;
                    }
                }
            }
            if let Framing::Segments { lz4 } = self.dir(request).framing {
                if rest.len() < if lz4 { 8 } else { 6 } {
                    break;
                }
                let Some((hl, plen, self_contained, ulen)) = segment_header(rest, lz4) else {
                    broke = true;
                    break;
                };
                let total = hl + plen + 4;
                if rest.len() < total {
                    break;
                }
                let payload = &rest[hl..hl + plen];
                at += total;
                if lz4 && ulen != 0 {
                    // Compressed: the envelopes in it are lost; resume at a self-contained one.
                    self.stats.compressed += 1;
                    let env = &mut self.dir(request).env;
                    *env = Stream {
                        broken: true,
                        ..Stream::default()
                    };
                    continue;
                }
                let payload = payload.to_vec();
                self.feed_env(request, &payload, self_contained, start_ts, last_ts);
                continue;
            }
            match envelope(rest, request, max_body) {
                Env::Incomplete => break,
                Env::Garbage => {
                    broke = true;
                    break;
                }
                Env::Ready(h, take, used, skip) => {
                    if h.version < 5 {
                        self.dir(request).framing = Framing::Legacy;
                    }
                    let body = rest[HEADER..HEADER + take].to_vec();
                    at += used;
                    let truncated = skip > 0;
                    if truncated {
                        let n = skip.min(buf.len() - at);
                        at += n;
                        self.dir(request).raw.skip = skip - n;
                    }
                    self.on_envelope(request, h, &body, truncated, start_ts, last_ts);
                }
            }
        }
        if broke {
            self.resync_raw(request);
            return;
        }
        let consumed = at.min(buf.len());
        buf.drain(..consumed);
        let d = self.dir(request);
        if consumed > 0 && !buf.is_empty() {
            d.raw.start_ts = first_ts;
        }
        d.raw.buf = buf;
    }

    /// Appends a v5 segment payload to the envelope stream and parses what completes.
    fn feed_env(
        &mut self,
        request: bool,
        payload: &[u8],
        self_contained: bool,
        start_ts: u64,
        last_ts: u64,
    ) {
        let max_body = self.limits.max_body;
        let mut payload = payload;
        let env = &mut self.dir(request).env;
        if env.broken {
            if !self_contained {
                return;
            }
            *env = Stream::default();
        }
        if self_contained && (!env.buf.is_empty() || env.skip > 0) {
            // A self-contained segment starts at an envelope boundary: anything pending is lost.
            *env = Stream::default();
            self.stats.parse_errors += 1;
        }
        let env = &mut self.dir(request).env;
        if env.skip > 0 {
            let n = env.skip.min(payload.len());
            env.skip -= n;
            payload = &payload[n..];
        }
        if env.buf.is_empty() {
            env.start_ts = start_ts;
        }
        env.buf.extend_from_slice(payload);
        if env.buf.len() > max_body + HEADER + SEGMENT_MAX_PAYLOAD {
            // Cannot happen with a sane peer: envelopes are taken as soon as their prefix is in.
            *env = Stream {
                broken: true,
                ..Stream::default()
            };
            self.stats.parse_errors += 1;
            return;
        }
        let mut buf = std::mem::take(&mut env.buf);
        let mut at = 0;
        while at < buf.len() {
            let ts = if at == 0 {
                self.dir(request).env.start_ts
            } else {
                start_ts
            };
            match envelope(&buf[at..], request, max_body) {
                Env::Incomplete => break,
                Env::Garbage => {
                    self.stats.parse_errors += 1;
                    self.stats.resyncs += 1;
                    self.dir(request).env = Stream {
                        broken: true,
                        ..Stream::default()
                    };
                    return;
                }
                Env::Ready(h, take, used, skip) => {
                    let body = buf[at + HEADER..at + HEADER + take].to_vec();
                    at += used;
                    let truncated = skip > 0;
                    if truncated {
                        let have = buf.len() - at;
                        self.dir(request).env.skip = skip.saturating_sub(have);
                        at = buf.len();
                    }
                    self.on_envelope(request, h, &body, truncated, ts, last_ts);
                }
            }
        }
        buf.drain(..at.min(buf.len()));
        let env = &mut self.dir(request).env;
        if at > 0 && !buf.is_empty() {
            env.start_ts = start_ts;
        }
        env.buf = buf;
    }

    fn on_envelope(
        &mut self,
        request: bool,
        h: Header,
        body: &[u8],
        truncated: bool,
        start_ts: u64,
        end_ts: u64,
    ) {
        if request {
            self.stats.requests += 1;
            self.on_request(h, body, truncated, start_ts);
        } else {
            self.stats.responses += 1;
            self.on_response(h, body, end_ts);
        }
    }

    fn on_request(&mut self, h: Header, body: &[u8], truncated: bool, start_ts: u64) {
        let max = self.limits.max_text;
        let mut p = Pending {
            op: h.op,
            body: String::new(),
            version: h.version,
            consistency: None,
            compressed: false,
            start_ts,
            exec: None,
            prepare: None,
            batch_ids: Vec::new(),
        };
        if h.flags & 0x01 != 0 && !body.is_empty() {
            self.stats.compressed += 1;
            p.compressed = true;
        } else {
            let mut c = Cur::new(body);
            let ok = skip_prefix(&mut c, h.flags, true).is_some()
                && self.render_request(&mut p, &mut c, h.version).is_some();
            if !ok && !truncated {
                self.stats.parse_errors += 1;
            }
        }
        p.body = truncate(std::mem::take(&mut p.body), max);
        if self.pending.len() >= self.limits.max_pending
            && !self.pending.contains_key(&h.stream)
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.start_ts)
                .map(|(k, _)| *k)
        {
            self.pending.remove(&oldest);
            self.stats.unmatched += 1;
        }
        if self.pending.insert(h.stream, p).is_some() {
            self.stats.unmatched += 1;
        }
    }

    fn render_request(&mut self, p: &mut Pending, c: &mut Cur<'_>, version: u8) -> Option<()> {
        let max = self.limits.max_text;
        match p.op {
            req_op::STARTUP => {
                let n = c.u16()?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let k = lossy(c.string()?);
                    let v = lossy(c.string()?);
                    m.insert(k, v);
                }
                p.body = serde_json::to_string(&m).unwrap_or_default();
            }
            req_op::AUTH_RESPONSE => p.body = "<redacted>".into(),
            req_op::OPTIONS => {}
            req_op::REGISTER => {
                p.body = serde_json::to_string(&c.string_list()?).unwrap_or_default();
            }
            req_op::QUERY => {
                let text = truncate(lossy(c.long_string()?), max);
                let (cons, values) = query_params(c, version, max);
                p.consistency = cons;
                p.body = with_values(text, &values);
            }
            req_op::PREPARE => {
                let text = lossy(c.long_string()?);
                p.body = truncate(text.clone(), max);
                p.prepare = Some(text);
            }
            req_op::EXECUTE => {
                let id = c.short_bytes()?;
                if version >= 5 {
                    c.short_bytes()?;
                }
                let (cons, values) = query_params(c, version, max);
                p.consistency = cons;
                let values = if values.is_empty() {
                    "[]".to_string()
                } else {
                    values
                };
                match self.prepared.get(id) {
                    Some(text) => p.body = with_values(text.clone(), &values),
                    None => {
                        p.body = values.clone();
                        p.exec = Some((id.to_vec(), values));
                    }
                }
            }
            req_op::BATCH => {
                c.u8()?;
                let n = c.u16()?;
                let mut s = String::from("[");
                for i in 0..n {
                    if s.len() > max {
                        s.push_str(",\"...\"");
                        break;
                    }
                    if i > 0 {
                        s.push(',');
                    }
                    let kind = c.u8()?;
                    let stmt = if kind == 0 {
                        format!("\"query\":{}", json_str(&lossy(c.long_string()?)))
                    } else {
                        let id = c.short_bytes()?;
                        match self.prepared.get(id) {
                            Some(t) => format!("\"query\":{}", json_str(t)),
                            None => {
                                if p.batch_ids.len() < 16 {
                                    p.batch_ids.push(id.to_vec());
                                }
                                format!("\"id\":\"{}\"", hex_upper(id, 64))
                            }
                        }
                    };
                    let values = values_json(c, false, max);
                    let _ = write!(s, "{{{stmt},\"values\":{values}}}");
                }
                s.push(']');
                p.body = s;
                p.consistency = c.u16().map(consistency_name);
            }
            _ => {}
        }
        Some(())
    }

    fn on_response(&mut self, h: Header, body: &[u8], end_ts: u64) {
        let max = self.limits.max_text;
        let compressed = h.flags & 0x01 != 0 && !body.is_empty();
        if h.op == resp_op::EVENT {
            self.stats.events += 1;
        }
        let pending = if h.op == resp_op::EVENT {
            None
        } else {
            match self.pending.remove(&h.stream) {
                Some(p) => Some(p),
                None => {
                    self.stats.unmatched += 1;
                    if compressed {
                        self.stats.compressed += 1;
                    }
                    return;
                }
            }
        };
        let mut resp_body = String::new();
        let mut prepared_id: Option<Vec<u8>> = None;
        if compressed {
            self.stats.compressed += 1;
        } else {
            let mut c = Cur::new(body);
            let r = skip_prefix(&mut c, h.flags, false).and_then(|()| match h.op {
                resp_op::ERROR => {
                    let code = c.i32()?;
                    let msg = lossy(c.string()?);
                    Some(format!("[{code}] {msg}"))
                }
                resp_op::READY => Some(String::new()),
                resp_op::AUTHENTICATE => Some(lossy(c.string()?)),
                resp_op::SUPPORTED => {
                    let n = c.u16()?;
                    let mut m = BTreeMap::new();
                    for _ in 0..n {
                        let k = lossy(c.string()?);
                        m.insert(k, c.string_list()?);
                    }
                    Some(serde_json::to_string(&m).unwrap_or_default())
                }
                resp_op::AUTH_CHALLENGE | resp_op::AUTH_SUCCESS => {
                    Some(c.bytes()?.map_or(String::new(), |t| hex_upper(t, max / 2)))
                }
                resp_op::EVENT => event(&mut c),
                resp_op::RESULT => match c.i32()? {
                    1 => Some("Response type = VOID".into()),
                    2 => rows(&mut c, max),
                    3 => Some(format!(
                        "Response type = SET_KEYSPACE\nKeyspace = {}",
                        lossy(c.string()?)
                    )),
                    4 => {
                        prepared_id = c.short_bytes().map(<[u8]>::to_vec);
                        Some("Response type = PREPARED".into())
                    }
                    5 => Some("Response type = SCHEMA_CHANGE".into()),
                    _ => None,
                },
                _ => None,
            });
            match r {
                Some(s) => resp_body = truncate(s, max),
                None => self.stats.parse_errors += 1,
            }
        }
        let Some(mut p) = pending else {
            self.out.push(Record {
                req_op: req_op::REGISTER,
                req_body: "-".into(),
                resp_op: h.op,
                resp_body,
                stream: h.stream,
                version: h.version,
                consistency: None,
                compressed,
                start_ts: end_ts,
                end_ts,
            });
            self.stats.records += 1;
            return;
        };
        if let (Some(id), Some(text)) = (prepared_id, p.prepare.take()) {
            if self.prepared.len() >= self.limits.max_statements && !self.prepared.contains_key(&id)
            {
                self.prepared.clear();
            }
            self.prepared.insert(id, text);
        }
        if let Some((id, values)) = p.exec.take()
            && let Some(text) = self.prepared.get(&id)
        {
            p.body = truncate(with_values(text.clone(), &values), max);
        }
        for id in std::mem::take(&mut p.batch_ids) {
            if let Some(text) = self.prepared.get(&id) {
                let from = format!("\"id\":\"{}\"", hex_upper(&id, 64));
                let to = format!("\"query\":{}", json_str(text));
                p.body = truncate(p.body.replace(&from, &to), max);
            }
        }
        self.out.push(Record {
            req_op: p.op,
            req_body: p.body,
            resp_op: h.op,
            resp_body,
            stream: h.stream,
            version: p.version,
            consistency: p.consistency,
            compressed: p.compressed || compressed,
            start_ts: p.start_ts,
            end_ts,
        });
        self.stats.records += 1;
    }
}

/// Feeds `data` to a connection as alternating client/server chunks (split at 0xff, a leading
/// 0xfe makes a gap), for fuzzing: must never panic, whatever the input.
pub fn fuzz_one(data: &[u8]) -> Stats {
    let mut c = Conn::new(Limits {
        max_body: 4096,
        max_pending: 64,
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
    assert!(
        c.buffered_bytes() <= 2 * (4096 + HEADER + SEGMENT_MAX_PAYLOAD + 16) + data.len(),
        "buffer bound"
    );
    c.close();
    c.stats().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(version: u8, stream: i16, op: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![version, 0];
        v.extend_from_slice(&stream.to_be_bytes());
        v.push(op);
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn query_body(q: &str) -> Vec<u8> {
        let mut b = (q.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(q.as_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        b.push(0);
        b
    }

    fn req(stream: i16, q: &str) -> Vec<u8> {
        env(4, stream, req_op::QUERY, &query_body(q))
    }

    fn void(stream: i16) -> Vec<u8> {
        env(0x84, stream, resp_op::RESULT, &1i32.to_be_bytes())
    }

    fn error(stream: i16, code: i32, msg: &str) -> Vec<u8> {
        let mut b = code.to_be_bytes().to_vec();
        b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        b.extend_from_slice(msg.as_bytes());
        env(0x84, stream, resp_op::ERROR, &b)
    }

    fn data(b: &[u8], ts: u64) -> Chunk<'_> {
        Chunk::Data {
            bytes: b,
            first_ts: ts,
            last_ts: ts + 1,
        }
    }

    fn pairs(out: &[Record]) -> Vec<(String, String)> {
        out.iter()
            .map(|r| (r.req_body.clone(), r.resp_body.clone()))
            .collect()
    }

    #[test]
    fn crc24_matches_the_drivers() {
        for b in [&b""[..], b"\x01\x02\x03", b"\xff\xff\x02", b"hello"] {
            assert_eq!(crc24(b), cassandra_protocol::crc::crc24(b) as u32);
        }
    }

    #[test]
    fn out_of_order_responses_match_by_stream_and_streams_are_reused() {
        let mut c = Conn::new(Limits::default());
        let mut reqs = req(1, "SELECT a");
        reqs.extend(req(2, "SELECT b"));
        c.push_requests(data(&reqs, 10));
        let mut resps = error(2, 0x2200, "unconfigured table b");
        resps.extend(void(1));
        c.push_responses(data(&resps, 20));
        c.push_requests(data(&req(1, "SELECT c"), 30));
        c.push_responses(data(&void(1), 40));
        c.push_responses(data(&void(7), 50));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(
            pairs(&out),
            [
                ("SELECT b".into(), "[8704] unconfigured table b".into()),
                ("SELECT a".into(), "Response type = VOID".into()),
                ("SELECT c".into(), "Response type = VOID".into()),
            ]
        );
        assert_eq!(out[0].resp_op, resp_op::ERROR);
        assert_eq!(out[2].latency_ns(), 11);
        assert_eq!(out[0].consistency, Some("ONE"));
        assert_eq!((c.stats().unmatched, c.stats().parse_errors), (1, 0));
    }

    #[test]
    fn events_are_pushes_with_zero_latency() {
        let mut b = Vec::new();
        for s in ["STATUS_CHANGE", "UP"] {
            b.extend_from_slice(&(s.len() as u16).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(&[4, 10, 0, 0, 7]);
        b.extend_from_slice(&9042i32.to_be_bytes());
        let mut c = Conn::new(Limits::default());
        c.push_responses(data(&env(0x84, -1, resp_op::EVENT, &b), 5));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].resp_body, "STATUS_CHANGE UP 10.0.0.7:9042");
        assert_eq!(
            (out[0].req_op, out[0].req_body.as_str()),
            (req_op::REGISTER, "-")
        );
        assert_eq!(out[0].latency_ns(), 0);
        assert_eq!((c.stats().events, c.stats().unmatched), (1, 0));
    }

    #[test]
    fn splits_at_every_offset_give_the_same_records() {
        let mut reqs = Vec::new();
        let mut resps = Vec::new();
        for i in 0..8i16 {
            reqs.extend(req(i, &format!("SELECT {i}")));
            resps.extend(void(7 - i));
        }
        let mut c = Conn::new(Limits::default());
        c.push_requests(data(&reqs, 1));
        c.push_responses(data(&resps, 2));
        let mut want = Vec::new();
        c.drain(&mut want);
        assert_eq!(want.len(), 8);
        for cut in 0..reqs.len().max(resps.len()) {
            let mut c = Conn::new(Limits::default());
            let (a, b) = reqs.split_at(cut.min(reqs.len()));
            c.push_requests(data(a, 1));
            c.push_requests(data(b, 1));
            let (a, b) = resps.split_at(cut.min(resps.len()));
            c.push_responses(data(a, 2));
            c.push_responses(data(b, 2));
            let mut got = Vec::new();
            c.drain(&mut got);
            assert_eq!(pairs(&got), pairs(&want), "cut {cut}");
        }
    }

    #[test]
    fn gaps_garbage_and_huge_lengths_never_give_wrong_records() {
        let mut c = Conn::new(Limits::default());
        c.push_requests(data(&req(1, "SELECT lost"), 1));
        // The client side loses bytes: outstanding requests go (their stream ids may be reused
        // in what was lost).
        c.push_requests(Chunk::Gap { len: 30, ts: 2 });
        c.push_responses(data(&void(1), 3));
        // Garbage and an absurd length on both sides.
        c.push_requests(data(b"\x04\0\0\x01\x07\xff\xff\xff\xffxx", 4));
        c.push_responses(data(b"HTTP/1.1 200 OK\r\n\r\n", 5));
        // Mid-envelope bytes after the gap are not taken for a header.
        let r = req(2, "SELECT ok");
        c.push_requests(data(&r[3..], 6));
        c.push_requests(data(&r, 7));
        c.push_responses(data(&void(2), 8));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(
            pairs(&out),
            [("SELECT ok".into(), "Response type = VOID".into())]
        );
        let s = c.stats();
        assert_eq!(s.unmatched, 2, "{s:?}");
        assert!(s.parse_errors >= 1 && s.resyncs >= 3, "{s:?}");
        assert_eq!(c.buffered_bytes(), 0);
    }

    #[test]
    fn pending_requests_are_bounded() {
        let mut c = Conn::new(Limits {
            max_pending: 4,
            ..Limits::default()
        });
        for i in 0..10 {
            c.push_requests(data(&req(i, "SELECT 1"), u64::from(i as u16)));
        }
        assert_eq!(c.pending.len(), 4);
        assert_eq!(c.stats().unmatched, 6);
        c.push_responses(data(&void(9), 20));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(out.len(), 1);
        c.close();
        assert_eq!(c.stats().unmatched, 9);
    }

    #[test]
    fn fuzz_one_survives_mutations() {
        let mut seed = env(4, 0, req_op::STARTUP, b"\0\x01\0\x0bCQL_VERSION\0\x053.0.0");
        seed.extend(req(1, "SELECT 1"));
        seed.push(0xff);
        seed.extend(env(0x84, 0, resp_op::READY, b""));
        seed.extend(void(1));
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
