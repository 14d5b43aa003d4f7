//! MySQL/MariaDB client/server protocol, command phase: each command stitched to its outcome.
//!
//! Written here rather than with `mysql_common`: that crate decodes well-formed packets of a
//! session it drives (and pulls in regex, flate2, sha1/sha2, num-bigint and more), while the
//! agent reads both directions of captured traffic that may start mid-stream, lose bytes in
//! gaps, and carry result sets far larger than it may buffer. What is needed here is small:
//! the 4-byte packet header, OK/ERR/EOF, column counts, the prepare answer and the binary
//! parameter encoding of `COM_STMT_EXECUTE`.
//!
//! Records, after Pixie's `mysql_events`: `cmd` is the command byte (`COM_QUERY` = 3, ...);
//! `req_body` the SQL text (`COM_QUERY`, `COM_STMT_PREPARE`), for `COM_STMT_EXECUTE` the
//! prepared statement and its bound parameters as `query=[...] params=[...]` (integers,
//! floats, quoted strings, `x'..'` for binary, quoted dates and times, `NULL`; the types come
//! with the execute's new-params-bound flag and are remembered per statement), the statement
//! text for `COM_STMT_CLOSE`/`RESET`/`SEND_LONG_DATA`, the schema for `COM_INIT_DB`, the
//! table for `COM_FIELD_LIST`. `status` is Pixie's enum (unknown/none/OK/ERR): commands the
//! server never answers (`COM_STMT_CLOSE`, `COM_STMT_SEND_LONG_DATA`, `COM_QUIT`) are recorded
//! with status none in their turn (records come in request order). `resp_body` is `Resultset rows = N` for result sets (the rows of
//! every result of a multi-result answer, `SERVER_MORE_RESULTS_EXISTS`, summed),
//! `ERROR 1146 (42S02): Table 'test.nope' doesn't exist` for errors, `Affected rows = N, last
//! insert id = M` for OK, `Statement id = I, params = P, columns = C` for a prepare, the text
//! of other answers (`COM_STATISTICS`) with status unknown unless they are OK.
//!
//! The handshake (greeting, handshake response, auth switch and more-data, the final OK) yields
//! no record; the capabilities it negotiates tell whether result sets end with EOF or OK
//! (`CLIENT_DEPRECATE_EOF`). Without the handshake both are accepted: an intermediate EOF is
//! exactly 5 bytes, an OK terminator at least 7. An SSLRequest (a 32-byte handshake response
//! with `CLIENT_SSL`) ends parsing: what follows is TLS; so does negotiated compression
//! (`CLIENT_COMPRESS`), whose packets are not parsed.
//!
//! Framing and resynchronisation: a packet is a 3-byte little-endian length and a sequence id;
//! payloads of 16 MiB - 1 continue in the next packet. A connection may be joined mid-stream,
//! so a direction starts unsynchronised: its first bytes must open a conversation (a client
//! command that looks the part: fixed lengths, printable SQL, an execute's iteration count of
//! 1; or a handshake response; a greeting or a response's first packet from the server).
//! After a gap or garbage a direction drops its buffer and waits for a chunk made of whole
//! packets (client commands again plausible). A response must start with sequence id 1, no
//! earlier than its request's first byte (an answer older than the request belongs to one lost
//! in a gap), and continue with consecutive ids (wrapping); anything else is stray or breaks
//! sync. Server bytes dropped while resynchronising also drop the requests sent before them,
//! whose outcomes may be gone. Requests queue in order (pipelined commands pair FIFO);
//! statement commands render when their turn comes, so an execute sent before its prepare's
//! answer was parsed still finds the statement. Rows are counted packet by packet; packets
//! larger than the buffer are handled from their first bytes and the rest skipped unbuffered.
//!
//! Not handled: MySQL 8's optional result-set metadata (`CLIENT_OPTIONAL_RESULTSET_METADATA`)
//! and query attributes other than none, MariaDB's bulk execute parameters (recorded without
//! them), compressed connections (above; joined mid-stream, their packets rarely look
//! plausible and are then dropped as garbage).

use std::collections::{HashMap, VecDeque};

use crate::Chunk;

/// Bounds on what one connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes buffered per direction for one packet; larger packets are handled from their
    /// first bytes and the rest skipped unbuffered.
    pub max_buffer: usize,
    /// Characters of statement text, of each parameter and of response text kept.
    pub max_text: usize,
    /// Outstanding requests, at most; older ones are dropped and counted.
    pub max_pending: usize,
    /// Prepared statements remembered per connection, at most.
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

/// Command bytes (`req_cmd`), as in MySQL's `enum_server_command`.
pub mod command {
    /// Close the connection (no response).
    pub const QUIT: u8 = 0x01;
    /// Change the default schema.
    pub const INIT_DB: u8 = 0x02;
    /// A text-protocol statement.
    pub const QUERY: u8 = 0x03;
    /// A table's column definitions (deprecated).
    pub const FIELD_LIST: u8 = 0x04;
    /// Server statistics as a string.
    pub const STATISTICS: u8 = 0x09;
    /// Liveness check.
    pub const PING: u8 = 0x0e;
    /// Re-authenticate as another user.
    pub const CHANGE_USER: u8 = 0x11;
    /// Prepare a statement.
    pub const STMT_PREPARE: u8 = 0x16;
    /// Execute a prepared statement with bound parameters.
    pub const STMT_EXECUTE: u8 = 0x17;
    /// Send a parameter's data in pieces (no response).
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    /// Deallocate a prepared statement (no response).
    pub const STMT_CLOSE: u8 = 0x19;
    /// Reset a prepared statement's long data and cursor.
    pub const STMT_RESET: u8 = 0x1a;
    /// Fetch rows from a cursor.
    pub const STMT_FETCH: u8 = 0x1c;
    /// Reset the session.
    pub const RESET_CONNECTION: u8 = 0x1f;
    /// MariaDB's bulk execute.
    pub const STMT_BULK_EXECUTE: u8 = 0xfa;
}

/// Whether `b` is a command byte a client sends.
fn known_command(b: u8) -> bool {
    (0x01..=0x1f).contains(&b) || b == command::STMT_BULK_EXECUTE
}

/// Whether `p` (a payload's first bytes) of `len` bytes looks like a command today's clients
/// send, strictly enough to synchronise on: the fixed lengths, printable text, an execute's
/// iteration count of 1.
pub(crate) fn plausible_command(p: &[u8], len: usize) -> bool {
    let Some((&cmd, body)) = p.split_first() else {
        return false;
    };
    let printable = |b: &[u8]| {
        !b.is_empty()
            && b.iter()
                .take(32)
                .all(|&c| c >= 0x20 || matches!(c, b'\t' | b'\n' | b'\r'))
    };
    match cmd {
        command::QUIT | command::STATISTICS | 0x0a | 0x0d | command::PING => len == 1,
        command::RESET_CONNECTION => len == 1,
        command::QUERY => {
            // MySQL 8 query attributes: no parameters, one set.
            printable(body.strip_prefix(&[0, 1]).unwrap_or(body))
        }
        command::INIT_DB | 0x05 | 0x06 | command::STMT_PREPARE | command::CHANGE_USER => {
            printable(body)
        }
        command::FIELD_LIST => body
            .iter()
            .position(|&b| b == 0)
            .is_some_and(|i| printable(&body[..i])),
        command::STMT_CLOSE | command::STMT_RESET | 0x0c => len == 5,
        0x1b => len == 3,
        command::STMT_FETCH => len == 9,
        command::STMT_SEND_LONG_DATA => len >= 7,
        command::STMT_EXECUTE => len >= 10 && body.get(5..9) == Some(&[1, 0, 0, 0]),
        _ => false,
    }
}

const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_COMPRESS: u32 = 0x20;
const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// An execute opened a cursor: its rows come with `COM_STMT_FETCH`.
const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;
/// A payload this long continues in the next packet.
const MAX_PACKET: usize = 0xff_ffff;

/// Outcome of a command (`resp_status`), Pixie's `RespStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespStatus {
    /// Answered, but not with OK or ERR (0).
    Unknown = 0,
    /// The command has no response (1).
    None = 1,
    /// OK, a result set, or a prepared statement (2).
    Ok = 2,
    /// ERR (3).
    Err = 3,
}

impl RespStatus {
    /// The value of the `resp_status` column.
    pub fn as_i64(self) -> i64 {
        self as i64
    }
}

/// A command and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The command byte (`req_cmd`), see [`command`].
    pub cmd: u8,
    /// The statement, with bound parameters for executes (`req_body`).
    pub req_body: String,
    /// The outcome (`resp_status`).
    pub status: RespStatus,
    /// `Resultset rows = N`, the error, OK's counts or the prepared statement (`resp_body`).
    pub resp_body: String,
    /// Rows of the result set(s) returned (no column; for row-count metrics).
    pub rows: u64,
    /// Affected rows of the OK(s) (no column).
    pub affected_rows: u64,
    /// Last insert id of the final OK (no column).
    pub last_insert_id: u64,
    /// When the request's first byte moved (ns; `time_` is derived from it).
    pub start_ts: u64,
    /// When the outcome's last byte moved (ns).
    pub end_ts: u64,
}

impl Record {
    /// From the request's first byte to the outcome's last, in ns (`latency`).
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start_ts)
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Client packets parsed.
    pub requests: u64,
    /// Server packets parsed.
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Packets that did not parse or broke the sequence.
    pub parse_errors: u64,
    /// Times a direction dropped its bytes to resynchronise (gaps included).
    pub resyncs: u64,
    /// Responses with no request, and requests dropped without an outcome.
    pub unmatched: u64,
}

/// Where a response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resp {
    /// Nothing seen yet (or the next result of a multi-result answer).
    First,
    /// Column definitions still to come.
    Columns(u64),
    /// After the column definitions: an EOF, unless deprecated.
    MaybeEof,
    /// Rows until EOF/OK or ERR.
    Rows,
    /// Until an OK or ERR whatever the sequence ids (LOCAL INFILE, auth exchange).
    UntilOkErr,
    /// Column definitions of a `COM_FIELD_LIST`, until EOF.
    FieldList,
    /// Prepare: definitions left, then this many column definitions.
    PrepDefs(u32, u32),
    /// Prepare: after a block of definitions, an EOF unless deprecated, then columns.
    PrepEof(u32),
}

#[derive(Debug)]
struct Pending {
    cmd: u8,
    req: String,
    start_ts: u64,
    state: Resp,
    started: bool,
    next_seq: u8,
    rows: u64,
    affected: u64,
    insert_id: u64,
    resultset: bool,
    /// The prepared statement's text (prepare only).
    sql: String,
    /// A prepare's answer: statement id, params, columns.
    prepared: Option<(u32, u16, u16)>,
    /// Statement commands: the payload after the command byte, rendered into `req` once the
    /// requests before it are answered (their prepares known).
    raw: Vec<u8>,
    /// The server does not answer: recorded once it reaches the head of the queue.
    unanswered: bool,
}

#[derive(Debug, Clone)]
struct Stmt {
    sql: String,
    params: u16,
    /// Parameter types and unsigned flags, once an execute sent them.
    types: Vec<(u8, bool)>,
}

#[derive(Debug)]
struct Dir {
    buf: Vec<u8>,
    start_ts: u64,
    broken: bool,
    /// Bytes of an oversized packet still to skip.
    skip: usize,
    /// The last packet was 16 MiB - 1: the next continues it.
    continuing: bool,
    /// Nothing seen yet: a chunk that starts like a conversation is enough to synchronise.
    fresh: bool,
}

impl Dir {
    /// After a gap or garbage: wait for a chunk of whole packets.
    fn lost() -> Self {
        Self {
            fresh: false,
            ..Self::default()
        }
    }
}

impl Default for Dir {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            start_ts: 0,
            // NB: a capture may start anywhere: wait for a chunk of whole packets.
            broken: true,
            skip: 0,
            continuing: false,
            fresh: true,
        }
    }
}

/// One connection's MySQL state.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    req: Dir,
    resp: Dir,
    pending: VecDeque<Pending>,
    statements: HashMap<u32, Stmt>,
    last_stmt: Option<u32>,
    server_caps: Option<u32>,
    client_caps: Option<u32>,
    /// Whether result sets end with OK instead of EOF, once known.
    deprecate_eof: Option<bool>,
    encrypted: bool,
    /// Compression negotiated: nothing more is parsed.
    compressed: bool,
    out: Vec<Record>,
    stats: Stats,
}

enum Frame<'a> {
    /// Sequence id, payload (only its first bytes if the packet is larger than the buffer),
    /// payload length, bytes used.
    Packet(u8, &'a [u8], usize, usize),
    Incomplete,
}

/// The packet at the start of `buf`; packets over `max` bytes give their first `prefix`.
fn frame(buf: &[u8], max: usize, prefix: usize) -> Frame<'_> {
    if buf.len() < 4 {
        return Frame::Incomplete;
    }
    let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
    let seq = buf[3];
    let want = if len + 4 > max { len.min(prefix) } else { len };
    match buf.get(4..4 + want) {
        Some(p) => Frame::Packet(seq, p, len, 4 + want),
        None => Frame::Incomplete,
    }
}

/// Whether `bytes` is whole packets and nothing else (client packets of sequence 0 carrying a
/// known command).
fn whole(bytes: &[u8], client: bool, max: usize) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        match frame(&bytes[at..], max, 0) {
            Frame::Packet(seq, p, len, n) if p.len() == len => {
                if client && seq == 0 && !plausible_command(p, len) {
                    return false;
                }
                at += n;
            }
            _ => return false,
        }
    }
    at > 0
}

/// Whether a connection's first bytes start like a conversation: a command or handshake
/// response from the client, a greeting or the start of a response from the server. `None`
/// if too few bytes to tell.
fn opening(bytes: &[u8], client: bool) -> Option<bool> {
    let h = bytes.get(..5)?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let need = match (client, h[3]) {
        (true, 0) => 4 + len.min(33),
        (true, 1) => 36,
        _ => 5,
    };
    if bytes.len() < need {
        return None;
    }
    Some(match (client, h[3]) {
        (true, 0) => plausible_command(&bytes[4..bytes.len().min(4 + len)], len),
        // A handshake response: protocol 4.1 and the zero filler.
        (true, 1) => {
            let caps = bytes
                .get(4..8)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            (32..=8192).contains(&len)
                && caps.is_some_and(|c| c & CLIENT_PROTOCOL_41 != 0)
                && bytes.get(13..32).is_some_and(|f| f.iter().all(|&b| b == 0))
        }
        (false, 0) => h[4] == 0x0a,
        // The first packet of a response: OK, ERR, LOCAL INFILE, EOF or a column count.
        (false, 1) => match h[4] {
            0x00 => (7..=0xffff).contains(&len),
            0xff => (9..=0xffff).contains(&len),
            0xfb => (2..=4096).contains(&len),
            0xfe => len < 9,
            0xfc => matches!(len, 3 | 4),
            // A column definition (`COM_FIELD_LIST`): catalog "def".
            0x03 if bytes.get(5..8) == Some(b"def") => len > 20,
            n => n > 0 && matches!(len, 1 | 2),
        },
        _ => false,
    })
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

/// A quoted SQL string literal, or `x'..'` if not UTF-8.
fn quoted(b: &[u8], max: usize) -> String {
    match std::str::from_utf8(b) {
        Ok(_) => format!("'{}'", text(b, max).replace('\'', "''")),
        Err(_) => {
            let hex: String = b.iter().take(max / 2).map(|b| format!("{b:02x}")).collect();
            let more = if b.len() > max / 2 { "..." } else { "" };
            format!("x'{hex}'{more}")
        }
    }
}

/// Reads little-endian integers and length-encoded values from a payload.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        let v = self.bytes(n)?;
        Some(v.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b)))
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-encoded integer (`0xfb`, NULL in rows, and `0xff` are not).
    fn lenenc(&mut self) -> Option<u64> {
        match self.u8()? {
            n @ 0..=0xfa => Some(u64::from(n)),
            0xfc => self.uint(2),
            0xfd => self.uint(3),
            0xfe => self.uint(8),
            _ => None,
        }
    }

    fn lenenc_bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.lenenc()?).ok()?;
        self.bytes(n)
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.at..).unwrap_or_default()
    }
}

/// An ERR packet as `ERROR code (sqlstate): message`.
fn error_text(p: &[u8], max: usize) -> String {
    let mut r = Reader::new(p.get(1..).unwrap_or_default());
    let code = r.u16().unwrap_or(0);
    let rest = r.rest();
    match rest.strip_prefix(b"#") {
        Some(s) if s.len() >= 5 => format!(
            "ERROR {code} ({}): {}",
            String::from_utf8_lossy(&s[..5]),
            text(&s[5..], max)
        ),
        _ => format!("ERROR {code}: {}", text(rest, max)),
    }
}

/// An OK packet's affected rows, last insert id and status flags.
fn ok_fields(p: &[u8]) -> (u64, u64, u16) {
    let mut r = Reader::new(p.get(1..).unwrap_or_default());
    let affected = r.lenenc().unwrap_or(0);
    let id = r.lenenc().unwrap_or(0);
    (affected, id, r.u16().unwrap_or(0))
}

/// The status flags of an EOF (5 bytes) or OK-as-EOF terminator.
fn terminator_flags(p: &[u8]) -> u16 {
    if p.len() == 5 {
        u16::from_le_bytes([p[3], p[4]])
    } else {
        ok_fields(p).2
    }
}

fn is_eof(p: &[u8]) -> bool {
    p.len() == 5 && p[0] == 0xfe
}

/// One binary-protocol value of type `t`, rendered.
fn binary_value(r: &mut Reader<'_>, t: u8, unsigned: bool, max: usize) -> Option<String> {
    Some(match t {
        0x01 => {
            let v = r.u8()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i8).to_string()
            }
        }
        0x02 | 0x0d => {
            let v = r.u16()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i16).to_string()
            }
        }
        0x03 | 0x09 => {
            let v = r.u32()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i32).to_string()
            }
        }
        0x08 => {
            let v = r.uint(8)?;
            if unsigned {
                v.to_string()
            } else {
                (v as i64).to_string()
            }
        }
        0x04 => {
            let b = r.bytes(4)?;
            f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string()
        }
        0x05 => {
            let b = r.bytes(8)?;
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).to_string()
        }
        0x06 => "NULL".into(),
        0x07 | 0x0a | 0x0c => {
            let n = usize::from(r.u8()?);
            let mut d = Reader::new(r.bytes(n)?);
            let (y, mo, da) = (d.u16(), d.u8(), d.u8());
            let (h, mi, s) = (d.u8(), d.u8(), d.u8());
            let us = d.u32();
            let mut out = format!(
                "{:04}-{:02}-{:02}",
                y.unwrap_or(0),
                mo.unwrap_or(0),
                da.unwrap_or(0)
            );
            if t != 0x0a || n > 4 {
                out.push_str(&format!(
                    " {:02}:{:02}:{:02}",
                    h.unwrap_or(0),
                    mi.unwrap_or(0),
                    s.unwrap_or(0)
                ));
            }
            if let Some(us) = us {
                out.push_str(&format!(".{us:06}"));
            }
            format!("'{out}'")
        }
        0x0b => {
            let n = usize::from(r.u8()?);
            let mut d = Reader::new(r.bytes(n)?);
            let neg = d.u8().unwrap_or(0) == 1;
            let days = d.u32().unwrap_or(0);
            let (h, mi, s) = (d.u8(), d.u8(), d.u8());
            let hours = u64::from(days) * 24 + u64::from(h.unwrap_or(0));
            let mut out = format!(
                "{}{hours:02}:{:02}:{:02}",
                if neg { "-" } else { "" },
                mi.unwrap_or(0),
                s.unwrap_or(0)
            );
            if let Some(us) = d.u32() {
                out.push_str(&format!(".{us:06}"));
            }
            format!("'{out}'")
        }
        // Decimals, strings, blobs, enums, sets, bits, JSON, geometry: length-encoded bytes.
        _ => {
            let b = r.lenenc_bytes()?;
            if matches!(t, 0x00 | 0xf6) {
                text(b, max)
            } else {
                quoted(b, max)
            }
        }
    })
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
            last_stmt: None,
            server_caps: None,
            client_caps: None,
            deprecate_eof: None,
            encrypted: false,
            compressed: false,
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

    /// Bytes held waiting for packets to complete.
    pub fn buffered_bytes(&self) -> usize {
        self.req.buf.len() + self.resp.buf.len()
    }

    /// Whether the connection switched to TLS (nothing more is parsed).
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Whether the connection negotiated compression (nothing more is parsed).
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    fn dir(&mut self, client: bool) -> &mut Dir {
        if client {
            &mut self.req
        } else {
            &mut self.resp
        }
    }

    fn push(&mut self, chunk: Chunk<'_>, client: bool) {
        if self.encrypted || self.compressed {
            return;
        }
        match chunk {
            Chunk::Gap { ts, .. } => {
                self.stats.resyncs += 1;
                *self.dir(client) = Dir::lost();
                if !client {
                    self.lost_responses(ts);
                }
            }
            Chunk::Data {
                mut bytes,
                first_ts,
                last_ts,
            } => {
                let max = self.limits.max_buffer;
                let dir = self.dir(client);
                if dir.skip > 0 {
                    let n = dir.skip.min(bytes.len());
                    dir.skip -= n;
                    bytes = &bytes[n..];
                }
                if bytes.is_empty() {
                    return;
                }
                if dir.broken && dir.fresh {
                    // The first bytes may wait for a few more; if they and the chunk do not
                    // open a conversation, the chunk alone may.
                    if dir.buf.is_empty() {
                        dir.start_ts = first_ts;
                    }
                    dir.buf.extend_from_slice(bytes);
                    let mut verdict = opening(&dir.buf, client);
                    if verdict != Some(true)
                        && dir.buf.len() > bytes.len()
                        && (verdict == Some(false) || opening(bytes, client) == Some(true))
                    {
                        dir.buf.clear();
                        dir.buf.extend_from_slice(bytes);
                        dir.start_ts = first_ts;
                        verdict = opening(bytes, client);
                    }
                    match verdict {
                        None => return,
                        Some(true) => {
                            dir.broken = false;
                            dir.fresh = false;
                            self.parse(client, first_ts, last_ts);
                            return;
                        }
                        Some(false) => {
                            *dir = Dir::lost();
                        }
                    }
                }
                if dir.broken {
                    if !whole(bytes, client, max) {
                        self.stats.resyncs += 1;
                        if !client {
                            self.lost_responses(last_ts);
                        }
                        return;
                    }
                    dir.broken = false;
                }
                if dir.buf.is_empty() {
                    dir.start_ts = first_ts;
                }
                dir.buf.extend_from_slice(bytes);
                self.parse(client, first_ts, last_ts);
            }
        }
    }

    /// Server bytes up to `ts` were lost: requests sent by then may have lost their outcome.
    fn lost_responses(&mut self, ts: u64) {
        while self.pending.front().is_some_and(|h| h.start_ts <= ts) {
            self.drop_head();
        }
    }

    /// The head request lost its outcome.
    fn drop_head(&mut self) {
        self.render_head();
        if self.pending.pop_front().is_some() {
            self.stats.unmatched += 1;
        }
        self.flush_unanswered();
    }

    /// Renders the head's statement command now that the prepares before it are known.
    fn render_head(&mut self) {
        let Some(h) = self.pending.front_mut() else {
            return;
        };
        if h.raw.is_empty() {
            return;
        }
        let raw = std::mem::take(&mut h.raw);
        let cmd = h.cmd;
        let req = if cmd == command::STMT_EXECUTE {
            self.execute_text(&raw)
        } else {
            let id = Reader::new(&raw).u32().unwrap_or(u32::MAX);
            if cmd == command::STMT_CLOSE {
                self.statements
                    .remove(&id)
                    .map_or_else(|| self.stmt_text(id), |s| s.sql)
            } else {
                self.stmt_text(id)
            }
        };
        if let Some(h) = self.pending.front_mut() {
            h.req = req;
        }
    }

    /// Records the commands without a response that reached the head of the queue.
    fn flush_unanswered(&mut self) {
        while self.pending.front().is_some_and(|h| h.unanswered) {
            self.render_head();
            let Some(h) = self.pending.pop_front() else {
                return;
            };
            self.emit(Record {
                cmd: h.cmd,
                req_body: h.req,
                status: RespStatus::None,
                resp_body: String::new(),
                rows: 0,
                affected_rows: 0,
                last_insert_id: 0,
                start_ts: h.start_ts,
                end_ts: h.start_ts,
            });
        }
    }

    fn parse(&mut self, client: bool, first_ts: u64, last_ts: u64) {
        let max = self.limits.max_buffer;
        let prefix = if client {
            (max.saturating_sub(4)).min(4 * self.limits.max_text + 1024)
        } else {
            16
        };
        let dir = self.dir(client);
        // NB: taken out so the handlers may borrow self while reading payloads in place.
        let buf = std::mem::take(&mut dir.buf);
        let buf_ts = dir.start_ts;
        let mut at = 0;
        let mut broke = false;
        while at < buf.len() {
            let start_ts = if at == 0 { buf_ts } else { first_ts };
            let Frame::Packet(seq, payload, len, used) = frame(&buf[at..], max, prefix) else {
                break;
            };
            at += used;
            if payload.len() < len {
                // Too large to buffer: handled from its first bytes, the rest skipped.
                let skip = len - payload.len();
                let here = skip.min(buf.len() - at);
                at += here;
                self.dir(client).skip = skip - here;
            }
            let dir = self.dir(client);
            let continuation = dir.continuing;
            dir.continuing = len == MAX_PACKET;
            let ok = if client {
                self.on_request(seq, payload, len, continuation, start_ts)
            } else {
                self.on_response(seq, payload, len, continuation, start_ts, last_ts)
            };
            if !ok {
                broke = true;
                break;
            }
            if self.encrypted || self.compressed {
                break;
            }
        }
        let encrypted = self.encrypted || self.compressed;
        let dir = self.dir(client);
        if broke || encrypted {
            *dir = Dir::lost();
            if !encrypted {
                self.stats.parse_errors += 1;
                self.stats.resyncs += 1;
            }
            return;
        }
        let mut buf = buf;
        let consumed = at.min(buf.len());
        buf.drain(..consumed);
        if consumed > 0 && !buf.is_empty() {
            dir.start_ts = first_ts;
        }
        dir.buf = buf;
    }

    fn expect(&mut self, cmd: u8, req: String, sql: String, start_ts: u64) {
        self.expect_raw(cmd, req, sql, Vec::new(), false, start_ts);
    }

    fn expect_raw(
        &mut self,
        cmd: u8,
        req: String,
        sql: String,
        raw: Vec<u8>,
        unanswered: bool,
        start_ts: u64,
    ) {
        if self.pending.len() >= self.limits.max_pending {
            self.drop_head();
        }
        let state = if cmd == command::STMT_FETCH {
            Resp::Rows
        } else {
            Resp::First
        };
        self.pending.push_back(Pending {
            cmd,
            req,
            start_ts,
            state,
            started: false,
            next_seq: 1,
            rows: 0,
            affected: 0,
            insert_id: 0,
            resultset: cmd == command::STMT_FETCH,
            sql,
            prepared: None,
            raw,
            unanswered,
        });
        self.flush_unanswered();
    }

    fn emit(&mut self, r: Record) {
        self.stats.records += 1;
        self.out.push(r);
    }

    fn stmt_text(&self, id: u32) -> String {
        match self.statements.get(&id) {
            Some(s) => s.sql.clone(),
            None => format!("<statement {id} prepared before capture>"),
        }
    }

    /// A client packet; false if it is garbage.
    fn on_request(
        &mut self,
        seq: u8,
        p: &[u8],
        len: usize,
        continuation: bool,
        start_ts: u64,
    ) -> bool {
        self.stats.requests += 1;
        if continuation {
            return true;
        }
        if seq == 1 {
            self.handshake_response(p);
            return true;
        }
        if seq != 0 {
            // Auth data, LOCAL INFILE contents: not commands.
            return true;
        }
        let Some((&cmd, body)) = p.split_first() else {
            return false;
        };
        if !known_command(cmd) {
            return false;
        }
        let max = self.limits.max_text;
        let truncated = p.len() < len;
        match cmd {
            command::QUERY => {
                let mut sql = body;
                let attrs = self.client_caps.map(|c| c & CLIENT_QUERY_ATTRIBUTES != 0);
                if attrs == Some(true) || (attrs.is_none() && sql.starts_with(&[0, 1])) {
                    // Query attributes: parameter count, set count, then (none here) the
                    // attributes.
                    let mut r = Reader::new(sql);
                    if r.lenenc() == Some(0) && r.lenenc() == Some(1) {
                        sql = r.rest();
                    }
                }
                let mut req = text(sql, max);
                if truncated && !req.ends_with("...") {
                    req.push_str("...");
                }
                self.expect(cmd, req, String::new(), start_ts);
            }
            command::STMT_PREPARE => {
                let sql = text(body, max);
                self.expect(cmd, sql.clone(), sql, start_ts);
            }
            command::STMT_EXECUTE
            | command::STMT_CLOSE
            | command::STMT_RESET
            | command::STMT_FETCH
            | command::STMT_SEND_LONG_DATA => {
                let raw = if body.len() >= 4 {
                    body.to_vec()
                } else {
                    u32::MAX.to_le_bytes().to_vec()
                };
                let unanswered = matches!(cmd, command::STMT_CLOSE | command::STMT_SEND_LONG_DATA);
                self.expect_raw(cmd, String::new(), String::new(), raw, unanswered, start_ts);
            }
            command::QUIT => {
                self.expect_raw(
                    cmd,
                    String::new(),
                    String::new(),
                    Vec::new(),
                    true,
                    start_ts,
                );
            }
            command::FIELD_LIST => {
                let table = body.split(|&b| b == 0).next().unwrap_or_default();
                self.expect(cmd, text(table, max), String::new(), start_ts);
            }
            command::INIT_DB | 0x05 | 0x06 => {
                self.expect(cmd, text(body, max), String::new(), start_ts)
            }
            _ => self.expect(cmd, String::new(), String::new(), start_ts),
        }
        true
    }

    /// A handshake response (sequence 1): the client's capabilities; an SSLRequest ends
    /// parsing.
    fn handshake_response(&mut self, p: &[u8]) {
        let Some(caps) = Reader::new(p).u32() else {
            return;
        };
        // After capabilities, max packet size and charset: 19 zero bytes (MariaDB uses the
        // last 4 of the 23-byte filler for its own capabilities).
        let filler = p.get(9..28).is_some_and(|f| f.iter().all(|&b| b == 0));
        if caps & CLIENT_PROTOCOL_41 == 0 || !filler {
            return;
        }
        if caps & CLIENT_SSL != 0 && p.len() == 32 {
            self.encrypted = true;
            return;
        }
        self.client_caps = Some(caps);
        let negotiated = caps & self.server_caps.unwrap_or(u32::MAX);
        self.deprecate_eof = Some(negotiated & CLIENT_DEPRECATE_EOF != 0);
        // NB: compression starts after the handshake's final OK, which is not needed.
        self.compressed = negotiated & CLIENT_COMPRESS != 0;
    }

    /// A server greeting (protocol 10): its capabilities.
    fn greeting(&mut self, p: &[u8]) {
        let Some(nul) = p.iter().position(|&b| b == 0) else {
            return;
        };
        let mut r = Reader::new(&p[nul + 1..]);
        let low = r.bytes(4 + 8 + 1).and_then(|_| r.u16());
        let high = r.bytes(1 + 2).and_then(|_| r.u16());
        if let Some(low) = low {
            self.server_caps = Some(u32::from(low) | u32::from(high.unwrap_or(0)) << 16);
        }
    }

    /// `query=[...] params=[...]` of an execute's payload (after the command byte).
    fn execute_text(&mut self, body: &[u8]) -> String {
        let max = self.limits.max_text;
        let mut r = Reader::new(body);
        let Some(mut id) = r.u32() else {
            return "query=[<truncated>] params=[]".into();
        };
        if id == u32::MAX
            && let Some(last) = self.last_stmt
        {
            // MariaDB: the statement prepared last.
            id = last;
        }
        let Some(stmt) = self.statements.get_mut(&id) else {
            return format!("query=[<statement {id} prepared before capture>] params=[]");
        };
        let n = usize::from(stmt.params);
        let mut params = Vec::with_capacity(n.min(64));
        let _flags_and_iterations = r.bytes(5);
        if n > 0 {
            let nulls = r.bytes(n.div_ceil(8)).unwrap_or_default().to_vec();
            if r.u8() == Some(1) {
                let mut types = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let Some(t) = r.bytes(2) else { break };
                    types.push((t[0], t[1] & 0x80 != 0));
                }
                if types.len() == n {
                    stmt.types = types;
                }
            }
            for i in 0..n {
                if nulls.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                    params.push("NULL".to_string());
                    continue;
                }
                let Some(&(t, unsigned)) = stmt.types.get(i) else {
                    params.push("<type unknown>".into());
                    break;
                };
                match binary_value(&mut r, t, unsigned, max) {
                    Some(v) => params.push(v),
                    None => {
                        params.push("...".into());
                        break;
                    }
                }
            }
        }
        format!("query=[{}] params=[{}]", stmt.sql, params.join(", "))
    }

    /// A server packet; false if it breaks the response's sequence.
    fn on_response(
        &mut self,
        seq: u8,
        p: &[u8],
        len: usize,
        continuation: bool,
        start_ts: u64,
        end_ts: u64,
    ) -> bool {
        self.stats.responses += 1;
        let started = self.pending.front().is_some_and(|h| h.started);
        if !started {
            if continuation || seq != 1 {
                if seq == 0 && p.first() == Some(&0x0a) && self.pending.is_empty() {
                    self.greeting(p);
                }
                // Handshake, auth exchange, or the tail of a response we did not follow.
                return true;
            }
            // NB: a response older than the request is the answer to one lost before it.
            match self.pending.front_mut() {
                Some(h) if h.start_ts <= start_ts => h.started = true,
                _ => {
                    self.stats.unmatched += 1;
                    return true;
                }
            }
            self.render_head();
        }
        let Some(head) = self.pending.front_mut() else {
            return true;
        };
        if seq != head.next_seq && head.state != Resp::UntilOkErr {
            self.drop_head();
            return false;
        }
        head.next_seq = seq.wrapping_add(1);
        if continuation {
            return true;
        }
        self.advance(p, len, end_ts);
        true
    }

    fn finish(&mut self, status: RespStatus, body: String, end_ts: u64) {
        let Some(h) = self.pending.pop_front() else {
            return;
        };
        self.emit(Record {
            cmd: h.cmd,
            req_body: h.req,
            status,
            resp_body: body,
            rows: h.rows,
            affected_rows: h.affected,
            last_insert_id: h.insert_id,
            start_ts: h.start_ts,
            end_ts,
        });
        self.flush_unanswered();
    }

    fn finish_ok(&mut self, end_ts: u64) {
        let Some(h) = self.pending.front() else {
            return;
        };
        let body = if let Some((id, params, cols)) = h.prepared {
            format!("Statement id = {id}, params = {params}, columns = {cols}")
        } else if h.resultset {
            format!("Resultset rows = {}", h.rows)
        } else {
            format!(
                "Affected rows = {}, last insert id = {}",
                h.affected, h.insert_id
            )
        };
        self.finish(RespStatus::Ok, body, end_ts);
    }

    /// The prepared statement is answered: remembered for executes.
    fn remember(&mut self, id: u32, params: u16, sql: String) {
        if self.statements.len() >= self.limits.max_statements && !self.statements.contains_key(&id)
        {
            self.statements.clear();
        }
        self.statements.insert(
            id,
            Stmt {
                sql,
                params,
                types: Vec::new(),
            },
        );
        self.last_stmt = Some(id);
    }

    /// One packet of the head's response, in sequence.
    fn advance(&mut self, p: &[u8], len: usize, end_ts: u64) {
        let max = self.limits.max_text;
        let deprecate = self.deprecate_eof;
        let Some(h) = self.pending.front_mut() else {
            return;
        };
        let first = p.first().copied();
        // A terminator: `0xfe` in a packet shorter than a 16 MiB row.
        let fe_end = first == Some(0xfe) && len < MAX_PACKET && len < 0xff_ff;
        let err = first == Some(0xff) && len < 0xff_ff;
        if err {
            let body = error_text(p, max);
            self.finish(RespStatus::Err, body, end_ts);
            return;
        }
        match h.state {
            Resp::First => match (h.cmd, first) {
                (command::STMT_PREPARE, Some(0x00)) if len >= 12 => {
                    let mut r = Reader::new(&p[1..]);
                    let (id, cols, params) = (
                        r.u32().unwrap_or(0),
                        r.u16().unwrap_or(0),
                        r.u16().unwrap_or(0),
                    );
                    h.prepared = Some((id, params, cols));
                    let sql = std::mem::take(&mut h.sql);
                    h.state = match (params, cols) {
                        (0, 0) => Resp::First,
                        (0, c) => Resp::PrepDefs(u32::from(c), 0),
                        (n, c) => Resp::PrepDefs(u32::from(n), u32::from(c)),
                    };
                    let done = params == 0 && cols == 0;
                    self.remember(id, params, sql);
                    if done {
                        self.finish_ok(end_ts);
                    }
                }
                (_, Some(0x00)) => {
                    let (affected, id, flags) = ok_fields(p);
                    h.affected += affected;
                    h.insert_id = id;
                    if flags & SERVER_MORE_RESULTS_EXISTS == 0 {
                        self.finish_ok(end_ts);
                    }
                }
                (command::QUERY, Some(0xfb)) => h.state = Resp::UntilOkErr,
                (command::CHANGE_USER, Some(0xfe | 0x01)) => h.state = Resp::UntilOkErr,
                (command::QUERY | command::STMT_EXECUTE | command::STMT_BULK_EXECUTE | 0x0a, _)
                    if !fe_end =>
                {
                    let mut r = Reader::new(p);
                    match r.lenenc() {
                        Some(n @ 1..=4096) => {
                            h.resultset = true;
                            // MariaDB's cached metadata: a trailing 0 says no definitions
                            // follow.
                            h.state = if r.rest() == [0] {
                                Resp::Rows
                            } else {
                                Resp::Columns(n)
                            };
                        }
                        _ => {
                            self.stats.parse_errors += 1;
                            self.finish(RespStatus::Unknown, String::new(), end_ts);
                        }
                    }
                }
                (command::FIELD_LIST, _) if !fe_end => h.state = Resp::FieldList,
                (command::STATISTICS, _) => {
                    let body = text(p, max);
                    self.finish(RespStatus::Ok, body, end_ts);
                }
                (_, _) if fe_end && len < 9 => self.finish_ok(end_ts),
                _ => {
                    let body = text(p, max);
                    self.finish(RespStatus::Unknown, body, end_ts);
                }
            },
            Resp::Columns(n) => {
                h.state = match (n, deprecate) {
                    (2.., _) => Resp::Columns(n - 1),
                    (_, Some(true)) => Resp::Rows,
                    _ => Resp::MaybeEof,
                };
            }
            Resp::MaybeEof | Resp::Rows => {
                if h.state == Resp::MaybeEof {
                    h.state = Resp::Rows;
                    if is_eof(p) {
                        self.deprecate_eof.get_or_insert(false);
                        if terminator_flags(p) & SERVER_STATUS_CURSOR_EXISTS != 0 {
                            self.finish_ok(end_ts);
                        }
                        return;
                    }
                    self.deprecate_eof.get_or_insert(true);
                }
                if fe_end {
                    if terminator_flags(p) & SERVER_MORE_RESULTS_EXISTS != 0 {
                        h.state = Resp::First;
                    } else {
                        self.finish_ok(end_ts);
                    }
                } else {
                    h.rows += 1;
                }
            }
            Resp::UntilOkErr => {
                if first == Some(0x00) {
                    let (affected, id, _) = ok_fields(p);
                    h.affected += affected;
                    h.insert_id = id;
                    self.finish_ok(end_ts);
                }
            }
            Resp::FieldList => {
                if fe_end {
                    self.finish_ok(end_ts);
                }
            }
            Resp::PrepDefs(left, cols) => {
                if left > 1 {
                    h.state = Resp::PrepDefs(left - 1, cols);
                } else if deprecate == Some(true) {
                    if cols > 0 {
                        h.state = Resp::PrepDefs(cols, 0);
                    } else {
                        self.finish_ok(end_ts);
                    }
                } else if cols > 0 {
                    h.state = Resp::PrepEof(cols);
                } else {
                    // NB: if EOF is not deprecated it follows, and is then ignored as stray
                    // (sequence id not 1); finishing now never holds the record back.
                    self.finish_ok(end_ts);
                }
            }
            Resp::PrepEof(cols) => {
                if is_eof(p) {
                    self.deprecate_eof.get_or_insert(false);
                    h.state = Resp::PrepDefs(cols, 0);
                } else {
                    // A column definition: EOF is deprecated.
                    self.deprecate_eof.get_or_insert(true);
                    if cols > 1 {
                        h.state = Resp::PrepDefs(cols - 1, 0);
                    } else {
                        self.finish_ok(end_ts);
                    }
                }
            }
        }
    }
}

/// Feeds `data` to a connection as alternating client/server chunks (split at 0xff, a leading
/// 0xfe makes a gap), for fuzzing: must never panic, whatever the input.
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
        assert!(c.buffered_bytes() <= 2 * 4096 + 2 * data.len());
    }
    c.close();
    c.stats().clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        v.push(seq);
        v.extend_from_slice(payload);
        v
    }

    fn cmd(c: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![c];
        p.extend_from_slice(body);
        pkt(0, &p)
    }

    fn lenenc_str(s: &[u8]) -> Vec<u8> {
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s);
        v
    }

    fn ok(seq: u8, affected: u8, id: u8, flags: u16) -> Vec<u8> {
        let mut p = vec![0, affected, id];
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        pkt(seq, &p)
    }

    /// The OK that ends a result set under CLIENT_DEPRECATE_EOF.
    fn ok_eof(seq: u8, flags: u16) -> Vec<u8> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        pkt(seq, &p)
    }

    fn eof(seq: u8, flags: u16) -> Vec<u8> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&flags.to_le_bytes());
        pkt(seq, &p)
    }

    fn err(seq: u8, code: u16, state: &str, msg: &str) -> Vec<u8> {
        let mut p = vec![0xff];
        p.extend_from_slice(&code.to_le_bytes());
        p.push(b'#');
        p.extend_from_slice(state.as_bytes());
        p.extend_from_slice(msg.as_bytes());
        pkt(seq, &p)
    }

    fn coldef(seq: u8, name: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for s in [
            &b"def"[..],
            b"test",
            b"t",
            b"t",
            name.as_bytes(),
            name.as_bytes(),
        ] {
            p.extend(lenenc_str(s));
        }
        p.extend_from_slice(&[0x0c, 0x21, 0, 0x40, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
        pkt(seq, &p)
    }

    fn row(seq: u8, vals: &[&str]) -> Vec<u8> {
        let p: Vec<u8> = vals.iter().flat_map(|v| lenenc_str(v.as_bytes())).collect();
        pkt(seq, &p)
    }

    /// A text result set of `cols` columns and `rows` rows, EOF-style or OK-style.
    fn resultset(cols: u8, rows: u8, deprecate: bool, flags: u16) -> Vec<u8> {
        let mut v = pkt(1, &[cols]);
        let mut seq = 2;
        for i in 0..cols {
            v.extend(coldef(seq, &format!("c{i}")));
            seq += 1;
        }
        if !deprecate {
            v.extend(eof(seq, 0));
            seq += 1;
        }
        for i in 0..rows {
            let vals: Vec<String> = (0..cols).map(|c| format!("{i}-{c}")).collect();
            let vals: Vec<&str> = vals.iter().map(String::as_str).collect();
            v.extend(row(seq, &vals));
            seq = seq.wrapping_add(1);
        }
        v.extend(if deprecate {
            ok_eof(seq, flags)
        } else {
            eof(seq, flags)
        });
        v
    }

    fn greeting(caps: u32) -> Vec<u8> {
        let mut p = vec![0x0a];
        p.extend_from_slice(b"5.5.5-10.11.19-MariaDB\0");
        p.extend_from_slice(&[9, 0, 0, 0]);
        p.extend_from_slice(b"12345678\0");
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.extend_from_slice(&[0x21, 2, 0]);
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.extend_from_slice(&[21; 11]);
        pkt(0, &p)
    }

    fn handshake_response(caps: u32, ssl_only: bool) -> Vec<u8> {
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        p.extend_from_slice(&[0; 23]);
        if !ssl_only {
            p.extend_from_slice(b"root\0\0test\0mysql_native_password\0");
        }
        pkt(1, &p)
    }

    fn data(b: &[u8], ts: u64) -> Chunk<'_> {
        Chunk::Data {
            bytes: b,
            first_ts: ts,
            last_ts: ts + 1,
        }
    }

    fn run_with(c: &mut Conn, reqs: &[u8], resps: &[u8]) -> Vec<Record> {
        c.push_requests(data(reqs, 100));
        c.push_responses(data(resps, 200));
        let mut out = Vec::new();
        c.drain(&mut out);
        out
    }

    fn run(reqs: &[u8], resps: &[u8]) -> (Vec<Record>, Stats) {
        let mut c = Conn::new(Limits::default());
        let r = run_with(&mut c, reqs, resps);
        (r, c.stats().clone())
    }

    fn summary(r: &[Record]) -> Vec<(u8, String, RespStatus, String)> {
        r.iter()
            .map(|r| (r.cmd, r.req_body.clone(), r.status, r.resp_body.clone()))
            .collect()
    }

    fn s(cmd: u8, req: &str, status: RespStatus, resp: &str) -> (u8, String, RespStatus, String) {
        (cmd, req.into(), status, resp.into())
    }

    #[test]
    fn text_queries_give_result_sets_oks_and_errors_without_a_handshake() {
        let mut reqs = cmd(command::QUERY, b"SELECT a, b FROM t");
        reqs.extend(cmd(command::QUERY, b"INSERT INTO t VALUES (1, 2)"));
        reqs.extend(cmd(command::QUERY, b"SELECT * FROM nope"));
        reqs.extend(cmd(command::INIT_DB, b"test"));
        reqs.extend(cmd(command::PING, b""));
        reqs.extend(cmd(command::QUIT, b""));
        let mut resps = resultset(2, 3, false, 0);
        resps.extend(ok(1, 1, 7, 2));
        resps.extend(err(1, 1146, "42S02", "Table 'test.nope' doesn't exist"));
        resps.extend(ok(1, 0, 0, 2));
        resps.extend(ok(1, 0, 0, 2));
        let (r, st) = run(&reqs, &resps);
        use RespStatus as R;
        assert_eq!(
            summary(&r),
            [
                s(
                    command::QUERY,
                    "SELECT a, b FROM t",
                    R::Ok,
                    "Resultset rows = 3"
                ),
                s(
                    command::QUERY,
                    "INSERT INTO t VALUES (1, 2)",
                    R::Ok,
                    "Affected rows = 1, last insert id = 7"
                ),
                s(
                    command::QUERY,
                    "SELECT * FROM nope",
                    R::Err,
                    "ERROR 1146 (42S02): Table 'test.nope' doesn't exist"
                ),
                s(
                    command::INIT_DB,
                    "test",
                    R::Ok,
                    "Affected rows = 0, last insert id = 0"
                ),
                s(
                    command::PING,
                    "",
                    R::Ok,
                    "Affected rows = 0, last insert id = 0"
                ),
                s(command::QUIT, "", R::None, ""),
            ]
        );
        assert_eq!(r[0].rows, 3);
        assert_eq!((r[1].affected_rows, r[1].last_insert_id), (1, 7));
        assert_eq!(r[0].latency_ns(), 101);
        assert_eq!(r[5].status.as_i64(), 1);
        assert_eq!(
            (st.parse_errors, st.unmatched, st.resyncs),
            (0, 0, 0),
            "{st:?}"
        );
    }

    #[test]
    fn deprecate_eof_from_the_handshake_and_learned_without_it() {
        let caps = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF;
        let mut reqs = handshake_response(caps, false);
        reqs.extend(cmd(command::QUERY, b"SELECT 1"));
        reqs.extend(cmd(command::QUERY, b"SELECT 1 WHERE 0"));
        let mut resps = greeting(caps);
        resps.extend(ok(2, 0, 0, 2));
        resps.extend(resultset(1, 2, true, 0));
        resps.extend(resultset(1, 0, true, 0));
        let (r, st) = run(&reqs, &resps);
        let got: Vec<_> = r.iter().map(|r| r.resp_body.as_str()).collect();
        assert_eq!(got, ["Resultset rows = 2", "Resultset rows = 0"]);
        assert_eq!((st.parse_errors, st.unmatched), (0, 0));

        // No handshake seen: the OK terminator right after the definitions is told from an
        // intermediate EOF by its length.
        for deprecate in [true, false] {
            let mut reqs = cmd(command::QUERY, b"SELECT 1 WHERE 0");
            reqs.extend(cmd(command::QUERY, b"SELECT 1"));
            let mut resps = resultset(1, 0, deprecate, 0);
            resps.extend(resultset(1, 2, deprecate, 0));
            let (r, st) = run(&reqs, &resps);
            let got: Vec<_> = r.iter().map(|r| r.resp_body.as_str()).collect();
            assert_eq!(got, ["Resultset rows = 0", "Resultset rows = 2"]);
            assert_eq!((st.parse_errors, st.unmatched), (0, 0));
        }
    }

    fn prepare_ok(id: u32, cols: u16, params: u16, deprecate: bool) -> Vec<u8> {
        let mut p = vec![0];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&cols.to_le_bytes());
        p.extend_from_slice(&params.to_le_bytes());
        p.extend_from_slice(&[0, 0, 0]);
        let mut v = pkt(1, &p);
        let mut seq = 2;
        for (n, _) in [(params, 0), (cols, 1)] {
            for _ in 0..n {
                v.extend(coldef(seq, "?"));
                seq += 1;
            }
            if n > 0 && !deprecate {
                v.extend(eof(seq, 2));
                seq += 1;
            }
        }
        v
    }

    fn execute(id: u32, nulls: &[u8], types: Option<&[u8]>, values: &[u8]) -> Vec<u8> {
        let mut p = id.to_le_bytes().to_vec();
        p.extend_from_slice(&[0, 1, 0, 0, 0]);
        p.extend_from_slice(nulls);
        match types {
            Some(t) => {
                p.push(1);
                p.extend_from_slice(t);
            }
            None => p.push(0),
        }
        p.extend_from_slice(values);
        cmd(command::STMT_EXECUTE, &p)
    }

    #[test]
    fn prepared_statements_render_bound_parameters_and_remember_types() {
        for deprecate in [false, true] {
            let mut reqs = cmd(command::STMT_PREPARE, b"SELECT ? + ?, ?, ?, ?, ?, ?, ?");
            let types = [
                8u8, 0, 3, 0x80, 0xfd, 0, 5, 0, 0x0c, 0, 6, 0, 0x0b, 0, 0xfc, 0,
            ];
            let mut values = (-5i64).to_le_bytes().to_vec();
            values.extend_from_slice(&7u32.to_le_bytes());
            values.extend(lenenc_str(b"it's"));
            values.extend_from_slice(&2.5f64.to_le_bytes());
            values.extend_from_slice(&[11, 0xe8, 7, 5, 6, 7, 8, 9]);
            values.extend_from_slice(&123_456u32.to_le_bytes());
            // The NULL (bit 5) has no value; then a negative TIME of 1 day 2:03:04.
            values.extend_from_slice(&[8, 1, 1, 0, 0, 0, 2, 3, 4]);
            values.extend(lenenc_str(&[0xff, 0x00]));
            reqs.extend(execute(1, &[0b0010_0000], Some(&types), &values));
            // The same statement again: types remembered.
            let mut values = 1i64.to_le_bytes().to_vec();
            values.extend_from_slice(&u32::MAX.to_le_bytes());
            values.extend(lenenc_str(b"x"));
            values.extend_from_slice(&0.5f64.to_le_bytes());
            values.extend_from_slice(&[4, 0xe8, 7, 1, 2]);
            values.extend_from_slice(&[0]);
            values.extend(lenenc_str(b"y"));
            reqs.extend(execute(1, &[0b0010_0000], None, &values));
            reqs.extend(cmd(command::STMT_RESET, &1u32.to_le_bytes()));
            reqs.extend(cmd(command::STMT_CLOSE, &1u32.to_le_bytes()));
            reqs.extend(execute(9, &[], None, &[]));
            let mut resps = prepare_ok(1, 1, 8, deprecate);
            resps.extend(pkt(1, &[1]));
            resps.extend(coldef(2, "x"));
            let mut seq = 3;
            if !deprecate {
                resps.extend(eof(3, 0));
                seq += 1;
            }
            resps.extend(pkt(seq, &[0, 0, 1, 2]));
            resps.extend(if deprecate {
                ok_eof(seq + 1, 0)
            } else {
                eof(seq + 1, 0)
            });
            resps.extend(ok(1, 0, 0, 0));
            resps.extend(ok(1, 0, 0, 0));
            resps.extend(err(1, 1243, "HY000", "Unknown prepared statement handler"));
            let (r, st) = run(&reqs, &resps);
            use RespStatus as R;
            let q = "SELECT ? + ?, ?, ?, ?, ?, ?, ?";
            assert_eq!(
                summary(&r),
                [
                    s(
                        command::STMT_PREPARE,
                        q,
                        R::Ok,
                        "Statement id = 1, params = 8, columns = 1"
                    ),
                    s(
                        command::STMT_EXECUTE,
                        &format!(
                            "query=[{q}] params=[-5, 7, 'it''s', 2.5, \
                             '2024-05-06 07:08:09.123456', NULL, '-26:03:04', x'ff00']"
                        ),
                        R::Ok,
                        "Resultset rows = 1"
                    ),
                    s(
                        command::STMT_EXECUTE,
                        &format!(
                            "query=[{q}] params=[1, 4294967295, 'x', 0.5, '2024-01-02 00:00:00', NULL, \
                             '00:00:00', 'y']"
                        ),
                        R::Ok,
                        "Affected rows = 0, last insert id = 0"
                    ),
                    s(
                        command::STMT_RESET,
                        q,
                        R::Ok,
                        "Affected rows = 0, last insert id = 0"
                    ),
                    s(command::STMT_CLOSE, q, R::None, ""),
                    s(
                        command::STMT_EXECUTE,
                        "query=[<statement 9 prepared before capture>] params=[]",
                        R::Err,
                        "ERROR 1243 (HY000): Unknown prepared statement handler"
                    ),
                ],
                "deprecate {deprecate}"
            );
            assert_eq!((st.parse_errors, st.unmatched), (0, 0), "{st:?}");
        }
    }

    #[test]
    fn multi_results_and_local_infile() {
        let mut reqs = cmd(
            command::QUERY,
            b"SELECT 1; SELECT 2; INSERT INTO t VALUES (3)",
        );
        reqs.extend(cmd(
            command::QUERY,
            b"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t",
        ));
        // The file's contents and the empty packet that ends them.
        reqs.extend(pkt(2, b"1\n2\n"));
        reqs.extend(pkt(3, b""));
        reqs.extend(cmd(command::PING, b""));
        let mut resps = resultset(1, 1, false, SERVER_MORE_RESULTS_EXISTS);
        let mut second = resultset(1, 1, false, SERVER_MORE_RESULTS_EXISTS);
        // Continues the sequence: 1 + 1 column + EOF + row + EOF = seq 1..=5, then 6.. .
        let mut at = 0;
        let mut seq = 6;
        while at < second.len() {
            let len = usize::from(second[at]) | usize::from(second[at + 1]) << 8;
            second[at + 3] = seq;
            seq += 1;
            at += 4 + len;
        }
        resps.extend(second);
        resps.extend(ok(seq, 1, 3, 2));
        resps.extend(pkt(1, b"\xfbx.csv"));
        resps.extend(ok(4, 2, 0, 2));
        resps.extend(ok(1, 0, 0, 2));
        let (r, st) = run(&reqs, &resps);
        let got: Vec<_> = r.iter().map(|r| (r.resp_body.as_str(), r.rows)).collect();
        assert_eq!(
            got,
            [
                ("Resultset rows = 2", 2),
                ("Affected rows = 2, last insert id = 0", 0),
                ("Affected rows = 0, last insert id = 0", 0)
            ]
        );
        assert_eq!(r[0].affected_rows, 1);
        assert_eq!((st.parse_errors, st.unmatched), (0, 0), "{st:?}");
    }

    #[test]
    fn field_list_statistics_cursors_and_fetches() {
        let mut reqs = cmd(command::FIELD_LIST, b"items\0");
        reqs.extend(cmd(command::STATISTICS, b""));
        reqs.extend(cmd(command::STMT_PREPARE, b"SELECT a FROM t"));
        // Execute with a read-only cursor, then fetch 10 rows.
        let mut exec = 3u32.to_le_bytes().to_vec();
        exec.extend_from_slice(&[1, 1, 0, 0, 0]);
        reqs.extend(cmd(command::STMT_EXECUTE, &exec));
        let mut fetch = 3u32.to_le_bytes().to_vec();
        fetch.extend_from_slice(&10u32.to_le_bytes());
        reqs.extend(cmd(command::STMT_FETCH, &fetch));
        let mut resps = coldef(1, "id");
        resps.extend(coldef(2, "name"));
        resps.extend(eof(3, 2));
        resps.extend(pkt(1, b"Uptime: 12  Threads: 1"));
        resps.extend(prepare_ok(3, 1, 0, false));
        resps.extend(pkt(1, &[1]));
        resps.extend(coldef(2, "a"));
        resps.extend(eof(3, 2 | SERVER_STATUS_CURSOR_EXISTS));
        resps.extend(pkt(1, &[0, 0, 1, b'x']));
        resps.extend(pkt(2, &[0, 0, 1, b'y']));
        resps.extend(eof(3, 2 | 0x80));
        let (r, st) = run(&reqs, &resps);
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.cmd, r.req_body.as_str(), r.resp_body.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    command::FIELD_LIST,
                    "items",
                    "Affected rows = 0, last insert id = 0"
                ),
                (command::STATISTICS, "", "Uptime: 12  Threads: 1"),
                (
                    command::STMT_PREPARE,
                    "SELECT a FROM t",
                    "Statement id = 3, params = 0, columns = 1"
                ),
                (
                    command::STMT_EXECUTE,
                    "query=[SELECT a FROM t] params=[]",
                    "Resultset rows = 0"
                ),
                (command::STMT_FETCH, "SELECT a FROM t", "Resultset rows = 2"),
            ]
        );
        assert_eq!((st.parse_errors, st.unmatched), (0, 0), "{st:?}");
    }

    #[test]
    fn ssl_request_stops_parsing() {
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SSL;
        let mut c = Conn::new(Limits::default());
        c.push_responses(data(&greeting(caps), 1));
        c.push_requests(data(&handshake_response(caps, true), 2));
        assert!(c.encrypted());
        c.push_requests(data(b"\x16\x03\x01\x00\x05hello", 3));
        c.push_responses(data(b"\x16\x03\x03\x00\x05world", 4));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert!(out.is_empty());
        assert_eq!(c.stats().parse_errors, 0);
        assert_eq!(c.buffered_bytes(), 0);

        // Compression negotiated: likewise.
        let caps = CLIENT_PROTOCOL_41 | CLIENT_COMPRESS;
        let mut c = Conn::new(Limits::default());
        c.push_responses(data(&greeting(caps), 1));
        c.push_requests(data(&handshake_response(caps, false), 2));
        c.push_responses(data(&ok(2, 0, 0, 2), 3));
        c.push_requests(data(b"\x0d\0\0\0\0\0\0\x09\0\0\0\x03SELECT 1", 4));
        assert!(c.compressed() && !c.encrypted());
        c.drain(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_mid_stream_join_syncs_on_the_next_command() {
        let mut c = Conn::new(Limits::default());
        // The tail of a long query, then the middle of its result set.
        c.push_requests(data(b"E id > 10 ORDER BY name LIMIT 500", 1));
        let rest = resultset(2, 40, false, 0);
        c.push_responses(data(&rest[100..], 2));
        c.push_responses(data(&row(30, &["a", "b"]), 3));
        c.push_responses(data(&eof(31, 0), 4));
        // Then whole exchanges.
        c.push_requests(data(&cmd(command::QUERY, b"SELECT 2"), 5));
        c.push_responses(data(&resultset(1, 1, false, 0), 6));
        c.push_requests(data(&cmd(command::PING, b""), 7));
        c.push_responses(data(&ok(1, 0, 0, 2), 8));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<_> = out.iter().map(|r| r.req_body.as_str()).collect();
        assert_eq!(got, ["SELECT 2", ""]);
        assert_eq!(out[0].resp_body, "Resultset rows = 1");
    }

    #[test]
    fn splits_at_every_offset_give_the_same_records() {
        let mut reqs = Vec::new();
        let mut resps = Vec::new();
        for i in 0..6 {
            reqs.extend(cmd(command::QUERY, format!("SELECT {i}").as_bytes()));
            resps.extend(resultset(2, i, i % 2 == 0, 0));
        }
        reqs.extend(cmd(command::STMT_PREPARE, b"SELECT ?"));
        reqs.extend(execute(4, &[0], Some(&[8, 0]), &3i64.to_le_bytes()));
        resps.extend(prepare_ok(4, 1, 1, false));
        resps.extend(ok(1, 0, 0, 2));
        let (want, _) = run(&reqs, &resps);
        assert_eq!(want.len(), 8);
        assert_eq!(want[7].req_body, "query=[SELECT ?] params=[3]");
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
            assert_eq!(summary(&got), summary(&want), "cut {cut}");
        }
    }

    #[test]
    fn gaps_garbage_and_huge_packets_never_give_wrong_records() {
        let mut c = Conn::new(Limits {
            max_buffer: 64,
            ..Limits::default()
        });
        // A row larger than the buffer: skipped unbuffered, counted.
        c.push_requests(data(&cmd(command::QUERY, b"SELECT big"), 1));
        let mut resps = pkt(1, &[1]);
        resps.extend(coldef(2, "x"));
        resps.extend(eof(3, 0));
        resps.extend(pkt(4, &[b'y'; 300]));
        resps.extend(eof(5, 0));
        for part in resps.chunks(50) {
            c.push_responses(data(part, 2));
        }
        assert!(c.buffered_bytes() <= 64 + 50);
        // A gap on the server side loses the outcome of the next query.
        c.push_requests(data(&cmd(command::QUERY, b"SELECT lost"), 4));
        c.push_responses(Chunk::Gap { len: 9, ts: 5 });
        c.push_responses(data(b"\x05\0\0\x02garbage", 6));
        // Garbage from the client: not a command.
        c.push_requests(data(&pkt(0, b"\x00\x01\x02"), 7));
        // A request lost in a client gap: its late-processed answer is older than the next
        // request and goes unmatched.
        c.push_requests(Chunk::Gap { len: 12, ts: 8 });
        c.push_requests(data(&cmd(command::QUERY, b"SELECT 2"), 10));
        c.push_responses(data(&ok(1, 5, 0, 2), 9));
        c.push_responses(data(&ok(1, 1, 0, 2), 11));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<(&str, &str, u64)> = out
            .iter()
            .map(|r| (r.req_body.as_str(), r.resp_body.as_str(), r.rows))
            .collect();
        assert_eq!(
            got,
            [
                ("SELECT big", "Resultset rows = 1", 1),
                ("SELECT 2", "Affected rows = 1, last insert id = 0", 0)
            ]
        );
        assert_eq!(c.stats().unmatched, 2, "{:?}", c.stats());
    }

    #[test]
    fn sixteen_mib_payloads_continue_in_the_next_packet() {
        let mut c = Conn::new(Limits {
            max_text: 16,
            ..Limits::default()
        });
        // Both directions synchronise on a first small exchange.
        c.push_requests(data(&cmd(command::PING, b""), 1));
        c.push_responses(data(&ok(1, 0, 0, 2), 2));
        let mut q = vec![command::QUERY];
        q.extend(std::iter::repeat_n(b'a', MAX_PACKET - 1));
        let mut reqs = pkt(0, &q);
        // The continuation: seq 1, must not be taken for a handshake response or command.
        reqs.extend(pkt(1, &[b'b'; 40]));
        reqs.extend(cmd(command::PING, b""));
        let mut resps = pkt(1, &[1]);
        resps.extend(coldef(2, "x"));
        resps.extend(eof(3, 0));
        let mut big = vec![0xfe];
        big.extend((MAX_PACKET as u64 + 10).to_le_bytes());
        big.resize(MAX_PACKET, b'z');
        resps.extend(pkt(4, &big));
        // The continuation starts with 0xfe and is short: not a terminator.
        resps.extend(pkt(5, &[0xfe; 18]));
        resps.extend(row(6, &["r"]));
        resps.extend(eof(7, 0));
        resps.extend(ok(1, 0, 0, 2));
        for part in reqs.chunks(16 << 10) {
            c.push_requests(data(part, 1));
        }
        for part in resps.chunks(16 << 10) {
            c.push_responses(data(part, 2));
            assert!(c.buffered_bytes() <= (1 << 20) + (32 << 10));
        }
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|r| (r.req_body.as_str(), r.resp_body.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("", "Affected rows = 0, last insert id = 0"),
                ("aaaaaaaaaaaaaaaa...", "Resultset rows = 2"),
                ("", "Affected rows = 0, last insert id = 0")
            ]
        );
        assert_eq!(c.stats().parse_errors, 0);
    }

    #[test]
    fn fuzz_one_survives_mutations() {
        let mut seed = cmd(command::QUERY, b"SELECT 1");
        seed.extend(cmd(command::STMT_PREPARE, b"SELECT ?"));
        seed.extend(execute(1, &[0], Some(&[0xfd, 0]), &lenenc_str(b"abc")));
        seed.push(0xff);
        seed.extend(resultset(1, 2, false, 0));
        seed.extend(prepare_ok(1, 1, 1, false));
        seed.extend(err(1, 1064, "42000", "syntax"));
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
        fuzz_one(&seed);
    }
}
