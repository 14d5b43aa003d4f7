//! DNS over UDP and TCP: queries stitched to their responses by transaction id and question,
//! whatever the order, with retries, losses and duplicates counted.
//!
//! Decoding uses `hickory-proto` (no default features: no std, rand, DNSSEC or serde) for the
//! questions and resource records: names with compression pointers (hickory only follows
//! pointers backwards, so loops cannot happen), record types and rdata. Done here by hand:
//! - the 12-byte header, read directly so its flag bits render exactly as Pixie shows them
//!   (hickory folds them into typed fields and an EDNS-merged response code);
//! - a bound on the header's counts against the message length before hickory sees them
//!   (`Message::read` reserves `qdcount` entries up front), and decoding only the question and
//!   answer sections, record by record, so a bad record in the authority or additional
//!   sections (or past a capture cut) costs only what follows it;
//! - TCP framing (2-byte length prefixes, reassembled across chunks) and resynchronisation;
//! - stitching, expiry and rendering.
//!
//! Without its `std` feature (which would pull in rand with the OS RNG and url's std), hickory
//! reaches `once_cell` through `critical-section`, whose implementation the final binary must
//! link: this crate depends on `critical-section` with its `std` feature for that alone.
//!
//! Rendering, after Pixie's `dns_events` (`protocols/dns/stitcher.cc`):
//! - `req_header`/`resp_header`: `{"txid":…,"qr":…,"opcode":…,"aa":…,"tc":…,"rd":…,"ra":…,
//!   "ad":…,"cd":…,"rcode":…,"num_queries":…,"num_answers":…,"num_auth":…,"num_addl":…}`, the
//!   raw header bits and counts.
//! - `req_body`: `{"queries":[{"name":"example.com","type":"A"}]}`. Pixie only names `A` and
//!   `AAAA` (other types render as `""`); here every type has its mnemonic (`MX`, `TXT`,
//!   `TYPE65280` when unknown).
//! - `resp_body`: `{"answers":[…]}`, the answer section only, one object per record with
//!   `name` and `type` and, by type: `addr` (A, AAAA), `cname` (CNAME, as Pixie), `ns` (NS),
//!   `ptr` (PTR), `preference` and `exchange` (MX), `txt` (TXT: its strings concatenated),
//!   `priority`, `weight`, `port` and `target` (SRV), `mname`, `rname`, `serial` (SOA), and
//!   `data` (hickory's presentation text) for any other type. Names are shown without the
//!   trailing dot (`.` for the root).
//!
//! Matching: Pixie matches a response to the earliest earlier query with its `txid`. Here the
//! question (name, case-insensitively, type and class) must match too, unless the response
//! carries none, so concurrent clients sharing a socket and reused ids are told apart. A query
//! repeated while pending (a retry: same id and question) keeps the first attempt's time and is
//! counted in [`Stats::duplicates`], as is a second response to an already answered query.
//! Responses with no query are counted in [`Stats::unmatched`], not emitted (as Pixie, which
//! counts them as errors). Queries without a response are dropped after
//! [`Limits::request_timeout_ns`], beyond [`Limits::max_pending`], or at close, counted in
//! [`Stats::expired`] (Pixie drops them too unless `include_respless_dns_requests`).
//!
//! A message whose QR bit contradicts its direction is a parse error. On TCP, after a gap or
//! garbage a direction drops its buffer and waits for a chunk that starts with a plausible
//! length prefix and header; on UDP every datagram stands alone.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;

use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RData, Record as Rr, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::Chunk;

/// How the connection carries DNS messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One message per datagram: each `Chunk::Data` is exactly one datagram.
    Udp,
    /// A stream of messages, each after a 2-byte big-endian length (RFC 1035 §4.2.2).
    Tcp,
}

/// Bounds on what one connection may hold and render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TCP bytes buffered per direction waiting for a message to complete; beyond, the
    /// direction drops them (counted) and resynchronises.
    pub max_buffer: usize,
    /// Queries waiting for a response, at most; older ones are dropped and counted.
    pub max_pending: usize,
    /// A query unanswered this long (ns, by the timestamps of later traffic or
    /// [`Conn::expire`]) is dropped and counted.
    pub request_timeout_ns: u64,
    /// Questions and answers rendered per message, at most; the rest are counted in a note.
    pub max_records: usize,
    /// Characters per rendered name or text; longer ones are cut with `...`.
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_buffer: 128 * 1024,
            max_pending: 1024,
            // NB: Pixie waits 2 s; more here because the agent may feed a batch of requests
            // before the responses that came between them.
            request_timeout_ns: 5_000_000_000,
            max_records: 64,
            max_text: 256,
        }
    }
}

/// Answered (txid, question) pairs remembered to tell duplicate responses from unmatched ones.
const RECENT_ANSWERED: usize = 64;
/// Smallest question: the root name (1 byte), type and class.
const MIN_QUESTION: usize = 5;
/// Smallest resource record: root name, type, class, TTL, rdlength.
const MIN_RR: usize = 11;

/// A query and its response: one `dns_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The query's header as JSON (`req_header`).
    pub req_header: String,
    /// The query's questions as JSON, `{"queries":[{"name","type"}]}` (`req_body`).
    pub req_body: String,
    /// The response's header as JSON (`resp_header`).
    pub resp_header: String,
    /// The response's answers as JSON, `{"answers":[…]}` (`resp_body`).
    pub resp_body: String,
    /// The response code of the response header, 0-15 (also inside `resp_header`).
    pub rcode: u8,
    /// The response code's mnemonic: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, … (for filtering
    /// without parsing JSON; Pixie scripts get it from `px.dns_rcode_name`).
    pub rcode_name: &'static str,
    /// The first question's name, without the trailing dot (empty if none).
    pub query_name: String,
    /// The first question's type mnemonic (`A`, `AAAA`, `MX`, …; empty if none).
    pub query_type: String,
    /// When the query (its first attempt, if retried) moved (ns): `time_` is `end_ts`.
    pub start_ts: u64,
    /// When the response's last byte moved (ns).
    pub end_ts: u64,
    /// What went wrong around it, if anything (`px_info_`).
    pub notes: Vec<String>,
}

impl Record {
    /// From the query to the response, in ns (`latency`).
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start_ts)
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Queries parsed (retries included).
    pub requests: u64,
    /// Responses parsed (duplicates included).
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Messages that did not parse, were in the wrong direction, or did not fit the limits.
    pub parse_errors: u64,
    /// Gaps, and chunks dropped while a TCP direction resynchronises.
    pub resyncs: u64,
    /// Responses with no query to match.
    pub unmatched: u64,
    /// Queries dropped unanswered: timed out, beyond `max_pending`, or pending at close.
    pub expired: u64,
    /// Queries repeated while pending (retries) and responses repeated once answered.
    pub duplicates: u64,
}

/// The question a query asks: lower-cased name, type, class.
type QKey = (String, u16, u16);

#[derive(Debug)]
struct Pending {
    txid: u16,
    key: Option<QKey>,
    header: String,
    body: String,
    query_name: String,
    query_type: String,
    start_ts: u64,
    notes: Vec<String>,
}

#[derive(Debug, Default)]
struct Dir {
    buf: Vec<u8>,
    /// When the first buffered byte moved.
    start_ts: u64,
    /// Waiting for a chunk that starts a message (TCP).
    broken: bool,
}

/// One connection's (or UDP socket's) DNS state.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    transport: Transport,
    req: Dir,
    resp: Dir,
    pending: VecDeque<Pending>,
    answered: VecDeque<(u16, Option<QKey>)>,
    out: Vec<Record>,
    stats: Stats,
}

/// A decoded message, rendered.
struct Msg {
    txid: u16,
    qr: bool,
    rcode: u8,
    header: String,
    /// `req_body` or `resp_body`.
    body: String,
    key: Option<QKey>,
    query_name: String,
    query_type: String,
    notes: Vec<String>,
}

impl Conn {
    /// A connection carried over `transport`, with `limits`.
    pub fn new(limits: Limits, transport: Transport) -> Self {
        Self {
            limits,
            transport,
            req: Dir::default(),
            resp: Dir::default(),
            pending: VecDeque::new(),
            answered: VecDeque::new(),
            out: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Bytes the client sent (one datagram per chunk on UDP).
    pub fn push_requests(&mut self, chunk: Chunk<'_>) {
        self.push(chunk, true);
    }

    /// Bytes the server sent (one datagram per chunk on UDP).
    pub fn push_responses(&mut self, chunk: Chunk<'_>) {
        self.push(chunk, false);
    }

    /// Moves the finished records to `out`.
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        out.append(&mut self.out);
    }

    /// Drops (and counts) queries that have waited longer than the timeout at `now_ns`; for
    /// quiet connections, where no later traffic moves the clock.
    pub fn expire(&mut self, now_ns: u64) {
        while let Some(p) = self.pending.front() {
            if p.start_ts.saturating_add(self.limits.request_timeout_ns) >= now_ns {
                break;
            }
            self.pending.pop_front();
            self.stats.expired += 1;
        }
    }

    /// The connection closed: queries still waiting are counted as expired.
    pub fn close(&mut self) {
        self.stats.expired += self.pending.len() as u64;
        self.pending.clear();
        self.req = Dir::default();
        self.resp = Dir::default();
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes held waiting for messages to complete.
    pub fn buffered_bytes(&self) -> usize {
        self.req.buf.len() + self.resp.buf.len()
    }

    fn dir(&mut self, requests: bool) -> &mut Dir {
        if requests {
            &mut self.req
        } else {
            &mut self.resp
        }
    }

    fn push(&mut self, chunk: Chunk<'_>, requests: bool) {
        match chunk {
            Chunk::Gap { ts, .. } => {
                self.stats.resyncs += 1;
                if self.transport == Transport::Tcp {
                    let dir = self.dir(requests);
                    dir.buf.clear();
                    dir.broken = true;
                }
                self.expire(ts);
            }
            Chunk::Data {
                bytes,
                first_ts,
                last_ts,
            } => {
                match self.transport {
                    Transport::Udp => {
                        if !bytes.is_empty() {
                            self.on_message(bytes, requests, first_ts, last_ts);
                        }
                    }
                    Transport::Tcp => self.push_tcp(bytes, requests, first_ts, last_ts),
                }
                self.expire(last_ts);
            }
        }
    }

    fn push_tcp(&mut self, bytes: &[u8], requests: bool, first_ts: u64, last_ts: u64) {
        if bytes.is_empty() {
            return;
        }
        let dir = self.dir(requests);
        if dir.broken {
            // Only a chunk that starts like a message of this direction puts it back in step.
            if !tcp_start(bytes, !requests) {
                self.stats.resyncs += 1;
                return;
            }
            dir.broken = false;
        }
        if dir.buf.is_empty() {
            dir.start_ts = first_ts;
        }
        dir.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let dir = if requests { &self.req } else { &self.resp };
            let rest = &dir.buf[at..];
            let Some(len) = rest
                .get(..2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                break;
            };
            if len < 12 {
                self.stats.parse_errors += 1;
                self.break_dir(requests);
                return;
            }
            if rest.len() < 2 + len {
                if rest.len() > self.limits.max_buffer {
                    self.stats.parse_errors += 1;
                    self.break_dir(requests);
                    return;
                }
                break;
            }
            let start_ts = if at == 0 { dir.start_ts } else { first_ts };
            // NB: the message is copied out so the buffer can be borrowed again below.
            let msg = rest[2..2 + len].to_vec();
            at += 2 + len;
            self.on_message(&msg, requests, start_ts, last_ts);
        }
        let dir = self.dir(requests);
        dir.buf.drain(..at);
        if at > 0 && !dir.buf.is_empty() {
            dir.start_ts = first_ts;
        }
    }

    fn break_dir(&mut self, requests: bool) {
        self.stats.resyncs += 1;
        let dir = self.dir(requests);
        dir.buf.clear();
        dir.broken = true;
    }

    fn on_message(&mut self, bytes: &[u8], requests: bool, start_ts: u64, end_ts: u64) {
        let Some(m) = decode(bytes, &self.limits) else {
            self.stats.parse_errors += 1;
            return;
        };
        if m.qr == requests {
            // A response among the queries or the reverse: not ours to guess.
            self.stats.parse_errors += 1;
            return;
        }
        if requests {
            self.on_query(m, start_ts);
        } else {
            self.on_response(m, end_ts);
        }
    }

    fn on_query(&mut self, m: Msg, start_ts: u64) {
        self.stats.requests += 1;
        if self
            .pending
            .iter()
            .any(|p| p.txid == m.txid && p.key == m.key)
        {
            self.stats.duplicates += 1;
            return;
        }
        if self.pending.len() >= self.limits.max_pending {
            self.pending.pop_front();
            self.stats.expired += 1;
        }
        self.pending.push_back(Pending {
            txid: m.txid,
            key: m.key,
            header: m.header,
            body: m.body,
            query_name: m.query_name,
            query_type: m.query_type,
            start_ts,
            notes: m.notes,
        });
    }

    fn on_response(&mut self, m: Msg, end_ts: u64) {
        self.stats.responses += 1;
        let found = self
            .pending
            .iter()
            .position(|p| p.txid == m.txid && (m.key.is_none() || p.key == m.key));
        let Some(p) = found.and_then(|i| self.pending.remove(i)) else {
            if self
                .answered
                .iter()
                .any(|(t, k)| *t == m.txid && (m.key.is_none() || *k == m.key))
            {
                self.stats.duplicates += 1;
            } else {
                self.stats.unmatched += 1;
            }
            return;
        };
        if self.answered.len() >= RECENT_ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back((p.txid, p.key));
        let mut notes = p.notes;
        notes.extend(m.notes);
        self.stats.records += 1;
        self.out.push(Record {
            req_header: p.header,
            req_body: p.body,
            resp_header: m.header,
            resp_body: m.body,
            rcode: m.rcode,
            rcode_name: rcode_name(m.rcode),
            query_name: p.query_name,
            query_type: p.query_type,
            start_ts: p.start_ts,
            end_ts,
            notes,
        });
    }
}

/// The header fields that matter before decoding the rest.
struct Header {
    txid: u16,
    qr: bool,
    opcode: u8,
    rcode: u8,
    counts: [u16; 4],
}

fn header(b: &[u8]) -> Option<Header> {
    let b: &[u8; 12] = b.get(..12)?.try_into().ok()?;
    let be = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    Some(Header {
        txid: be(0),
        qr: b[2] & 0x80 != 0,
        opcode: (b[2] >> 3) & 0x0f,
        rcode: b[3] & 0x0f,
        counts: [be(4), be(6), be(8), be(10)],
    })
}

/// Pixie's header JSON.
fn header_json(b: &[u8; 12]) -> String {
    let be = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let bit = |byte: u8, mask: u8| u8::from(byte & mask != 0);
    format!(
        "{{\"txid\":{},\"qr\":{},\"opcode\":{},\"aa\":{},\"tc\":{},\"rd\":{},\"ra\":{},\"ad\":{},\"cd\":{},\"rcode\":{},\"num_queries\":{},\"num_answers\":{},\"num_auth\":{},\"num_addl\":{}}}",
        be(0),
        bit(b[2], 0x80),
        (b[2] >> 3) & 0x0f,
        bit(b[2], 0x04),
        bit(b[2], 0x02),
        bit(b[2], 0x01),
        bit(b[3], 0x80),
        bit(b[3], 0x20),
        bit(b[3], 0x10),
        b[3] & 0x0f,
        be(4),
        be(6),
        be(8),
        be(10),
    )
}

/// Decodes and renders one message; None if it is not DNS enough to match (no header, or
/// questions that do not fit or do not decode).
fn decode(bytes: &[u8], limits: &Limits) -> Option<Msg> {
    let h = header(bytes)?;
    let raw: &[u8; 12] = bytes.get(..12)?.try_into().ok()?;
    let [qd, an, ns, ar] = h.counts.map(usize::from);
    // NB: hickory reserves room for every counted question: bound them by the bytes first.
    if 12 + qd * MIN_QUESTION > bytes.len() {
        return None;
    }
    let mut notes = Vec::new();
    let mut dec = BinDecoder::new(bytes);
    // NB: the decoder starts at the message's first byte, which compression pointers count
    // from; the header, read above, is skipped.
    dec.read_slice(12).ok()?;
    let mut key = None;
    let (mut query_name, mut query_type) = (String::new(), String::new());
    let mut body = String::from(if h.qr {
        "{\"answers\":["
    } else {
        "{\"queries\":["
    });
    for i in 0..qd {
        let q = Query::read(&mut dec).ok()?;
        let name = name_text(q.name(), limits.max_text);
        let ty = type_name(q.query_type());
        if i == 0 {
            key = Some((
                name.to_ascii_lowercase(),
                u16::from(q.query_type()),
                u16::from(q.query_class()),
            ));
            query_name.clone_from(&name);
            query_type = ty.clone().into_owned();
        }
        if h.qr {
            continue;
        }
        if i < limits.max_records {
            if i > 0 {
                body.push(',');
            }
            body.push_str("{\"name\":");
            json_str(&mut body, &name);
            body.push_str(",\"type\":");
            json_str(&mut body, &ty);
            body.push('}');
        } else if i == limits.max_records {
            notes.push(format!("{} more questions not rendered", qd - i));
        }
    }
    if h.qr {
        if 12 + qd * MIN_QUESTION + (an + ns + ar) * MIN_RR > bytes.len() {
            notes.push(format!(
                "record counts ({an}/{ns}/{ar}) beyond the message's {} bytes",
                bytes.len()
            ));
        }
        for i in 0..an {
            let rr = match Rr::<RData>::read(&mut dec) {
                Ok(rr) => rr,
                Err(e) => {
                    notes.push(format!("answer {i} of {an} did not decode: {e}"));
                    break;
                }
            };
            if i < limits.max_records {
                if i > 0 {
                    body.push(',');
                }
                answer_json(&mut body, &rr, limits.max_text);
            } else {
                notes.push(format!("{} more answers not rendered", an - i));
                break;
            }
        }
    }
    body.push_str("]}");
    Some(Msg {
        txid: h.txid,
        qr: h.qr,
        rcode: h.rcode,
        header: header_json(raw),
        body,
        key,
        query_name,
        query_type,
        notes,
    })
}

fn answer_json(out: &mut String, rr: &Rr<RData>, max: usize) {
    out.push_str("{\"name\":");
    json_str(out, &name_text(&rr.name, max));
    out.push_str(",\"type\":");
    json_str(out, &type_name(rr.record_type()));
    let field = |out: &mut String, key: &str, value: &str| {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        json_str(out, value);
    };
    match &rr.data {
        // NB: addresses print no characters JSON escapes.
        RData::A(a) => {
            let _ = write!(out, ",\"addr\":\"{}\"", a.0);
        }
        RData::AAAA(a) => {
            let _ = write!(out, ",\"addr\":\"{}\"", a.0);
        }
        RData::CNAME(n) => field(out, "cname", &name_text(&n.0, max)),
        RData::NS(n) => field(out, "ns", &name_text(&n.0, max)),
        RData::PTR(n) => field(out, "ptr", &name_text(&n.0, max)),
        RData::MX(mx) => {
            let _ = write!(out, ",\"preference\":{}", mx.preference);
            field(out, "exchange", &name_text(&mx.exchange, max));
        }
        RData::TXT(txt) => {
            let joined: Vec<u8> = txt.txt_data.iter().flatten().copied().collect();
            field(
                out,
                "txt",
                &cut(String::from_utf8_lossy(&joined).into_owned(), max),
            );
        }
        RData::SRV(srv) => {
            let _ = write!(
                out,
                ",\"priority\":{},\"weight\":{},\"port\":{}",
                srv.priority, srv.weight, srv.port
            );
            field(out, "target", &name_text(&srv.target, max));
        }
        RData::SOA(soa) => {
            field(out, "mname", &name_text(&soa.mname, max));
            field(out, "rname", &name_text(&soa.rname, max));
            let _ = write!(out, ",\"serial\":{}", soa.serial);
        }
        // Empty rdata (RFC 2136 prerequisites): nothing to show.
        RData::Update0(_) => {}
        // NB: some of hickory's `Display` impls fail on records that decoded (an SVCB
        // parameter it can't print, found by fuzzing); `to_string` would panic on that.
        other => {
            let mut text = String::new();
            if write!(text, "{other}").is_err() {
                text = format!("<{} rdata not printable>", type_name(other.record_type()));
            }
            field(out, "data", &cut(text, max));
        }
    }
    out.push('}');
}

/// A name as text without the trailing dot (`.` for the root), cut at `max` characters.
fn name_text(n: &Name, max: usize) -> String {
    if n.is_root() {
        return ".".into();
    }
    let mut s = n.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    cut(s, max)
}

fn type_name(t: RecordType) -> Cow<'static, str> {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}").into(),
        t => Cow::Borrowed(t.into()),
    }
}

/// `s`, cut at `max` characters with `...`.
fn cut(mut s: String, max: usize) -> String {
    // NB: no more bytes than `max` means no more characters: skip the count.
    if s.len() > max
        && let Some((i, _)) = s.char_indices().nth(max)
    {
        s.truncate(i);
        s.push_str("...");
    }
    s
}

/// `s` as a JSON string.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 1035/6895 response code mnemonics (the 4 header bits).
pub fn rcode_name(rcode: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
        "RCODE12",
        "RCODE13",
        "RCODE14",
        "RCODE15",
    ];
    NAMES[usize::from(rcode & 0x0f)]
}

/// Whether a TCP chunk starts like a message of this direction: a length prefix, and a header
/// with the right QR bit, a known opcode, the Z bit clear and counts that fit the length.
fn tcp_start(bytes: &[u8], qr: bool) -> bool {
    let Some(len) = bytes
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return false;
    };
    let Some(h) = header(&bytes[2..]) else {
        return false;
    };
    let [qd, an, ns, ar] = h.counts.map(usize::from);
    let flags = bytes[5];
    len >= 12
        && h.qr == qr
        && h.opcode <= 6
        && h.opcode != 3
        && flags & 0x40 == 0
        && 12 + qd * MIN_QUESTION + (an + ns + ar) * MIN_RR <= len
}

/// Whether `msg` (one whole message, without a TCP length prefix) is a plain DNS query: QR 0,
/// opcode QUERY, no AA/TC/RA/Z/RCODE bits, one question, no answers or authorities, at most one
/// additional (the EDNS OPT record), a question name of letters, digits, `-` and `_` labels with
/// no compression, and nothing after. For protocol inference, where it must never take other
/// protocols' bytes.
pub(crate) fn is_plain_query(msg: &[u8]) -> bool {
    let Some(h) = header(msg) else {
        return false;
    };
    if !(17..=512).contains(&msg.len())
        || msg[2] & 0xfe != 0
        || msg[3] & 0xcf != 0
        || h.counts[..3] != [1, 0, 0]
        || h.counts[3] > 1
    {
        return false;
    }
    let mut at = 12;
    loop {
        let Some(&l) = msg.get(at) else {
            return false;
        };
        at += 1;
        if l == 0 {
            break;
        }
        let l = usize::from(l);
        let Some(label) = msg.get(at..at + l) else {
            return false;
        };
        if l > 63
            || !label
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return false;
        }
        at += l;
        if at > 12 + 255 {
            return false;
        }
    }
    let Some(tc) = msg.get(at..at + 4) else {
        return false;
    };
    let qtype = u16::from_be_bytes([tc[0], tc[1]]);
    let qclass = u16::from_be_bytes([tc[2], tc[3]]);
    let rest = &msg[at + 4..];
    qtype != 0
        && matches!(qclass, 1 | 3 | 254 | 255)
        && if h.counts[3] == 0 {
            rest.is_empty()
        } else {
            // The EDNS OPT pseudo-record (root name, type 41), its rdata to the end.
            rest.len() >= MIN_RR
                && rest[..3] == [0, 0, 41]
                && rest.len() == MIN_RR + usize::from(u16::from_be_bytes([rest[9], rest[10]]))
        }
}

/// Feeds `data` to a connection as alternating request/response chunks split at 0xff (a part
/// starting 0xfe is a gap), over TCP if the first byte is odd else UDP, for fuzzing: must never
/// panic, whatever the input, and hold no more than its buffer bound.
pub fn fuzz_one(data: &[u8]) -> Stats {
    let Some((&mode, data)) = data.split_first() else {
        return Stats::default();
    };
    let transport = if mode & 1 == 1 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let limits = Limits {
        max_buffer: 4096,
        max_pending: 8,
        ..Limits::default()
    };
    let mut c = Conn::new(limits, transport);
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
        assert!(c.buffered_bytes() <= 2 * limits.max_buffer);
        assert!(c.pending.len() <= limits.max_pending);
    }
    c.close();
    c.stats().clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

    use super::*;

    fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    fn hdr(txid: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut v = txid.to_be_bytes().to_vec();
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        v
    }

    fn query(txid: u16, qname: &str, qtype: u16) -> Vec<u8> {
        let mut v = hdr(txid, 0x0100, [1, 0, 0, 0]);
        v.extend(name(qname));
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v
    }

    /// A response to `query(txid, qname, qtype)` with `rcode` and answers (owner, type, rdata).
    fn response(
        txid: u16,
        qname: &str,
        qtype: u16,
        rcode: u16,
        answers: &[(&str, u16, Vec<u8>)],
    ) -> Vec<u8> {
        let mut v = hdr(txid, 0x8180 | rcode, [1, answers.len() as u16, 0, 0]);
        v.extend(name(qname));
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        for (owner, ty, rdata) in answers {
            v.extend(name(owner));
            v.extend_from_slice(&ty.to_be_bytes());
            v.extend_from_slice(&1u16.to_be_bytes());
            v.extend_from_slice(&300u32.to_be_bytes());
            v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            v.extend_from_slice(rdata);
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

    fn tcp(msgs: &[Vec<u8>]) -> Vec<u8> {
        msgs.iter()
            .flat_map(|m| {
                let mut v = (m.len() as u16).to_be_bytes().to_vec();
                v.extend_from_slice(m);
                v
            })
            .collect()
    }

    fn one(q: &[u8], r: &[u8]) -> (Vec<Record>, Stats) {
        let mut c = Conn::new(Limits::default(), Transport::Udp);
        c.push_requests(data(q, 100));
        c.push_responses(data(r, 200));
        let mut out = Vec::new();
        c.drain(&mut out);
        (out, c.stats().clone())
    }

    fn answers_of(ans: &[(&str, u16, Vec<u8>)], qtype: u16) -> String {
        let (r, s) = one(
            &query(7, "x.test", qtype),
            &response(7, "x.test", qtype, 0, ans),
        );
        assert_eq!(r.len(), 1, "{s:?}");
        assert!(r[0].notes.is_empty(), "{:?}", r[0].notes);
        serde_json::from_str::<serde_json::Value>(&r[0].resp_body).unwrap();
        r[0].resp_body.clone()
    }

    #[test]
    fn renders_headers_and_bodies_as_pixie() {
        let (r, s) = one(
            &query(12345, "example.com", 1),
            &response(
                12345,
                "example.com",
                1,
                0,
                &[("example.com", 1, vec![93, 184, 216, 34])],
            ),
        );
        assert_eq!(s.records, 1);
        let r = &r[0];
        assert_eq!(
            r.req_header,
            r#"{"txid":12345,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":0,"cd":0,"rcode":0,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":0}"#
        );
        assert_eq!(
            r.req_body,
            r#"{"queries":[{"name":"example.com","type":"A"}]}"#
        );
        assert_eq!(
            r.resp_header,
            r#"{"txid":12345,"qr":1,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":1,"ad":0,"cd":0,"rcode":0,"num_queries":1,"num_answers":1,"num_auth":0,"num_addl":0}"#
        );
        assert_eq!(
            r.resp_body,
            r#"{"answers":[{"name":"example.com","type":"A","addr":"93.184.216.34"}]}"#
        );
        assert_eq!((r.rcode, r.rcode_name), (0, "NOERROR"));
        assert_eq!(
            (r.query_name.as_str(), r.query_type.as_str()),
            ("example.com", "A")
        );
        assert_eq!((r.start_ts, r.end_ts, r.latency_ns()), (100, 201, 101));
    }

    #[test]
    fn renders_every_common_answer_type() {
        let mut v6 = vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v6[15] = 5;
        assert_eq!(
            answers_of(&[("x.test", 28, v6)], 28),
            r#"{"answers":[{"name":"x.test","type":"AAAA","addr":"fd00::5"}]}"#
        );
        assert_eq!(
            answers_of(
                &[
                    ("x.test", 5, name("www.x.test")),
                    ("www.x.test", 5, name("host.x.test")),
                    ("host.x.test", 1, vec![10, 0, 0, 5]),
                ],
                1
            ),
            r#"{"answers":[{"name":"x.test","type":"CNAME","cname":"www.x.test"},{"name":"www.x.test","type":"CNAME","cname":"host.x.test"},{"name":"host.x.test","type":"A","addr":"10.0.0.5"}]}"#
        );
        let mut mx = 10u16.to_be_bytes().to_vec();
        mx.extend(name("mail.x.test"));
        assert_eq!(
            answers_of(&[("x.test", 15, mx)], 15),
            r#"{"answers":[{"name":"x.test","type":"MX","preference":10,"exchange":"mail.x.test"}]}"#
        );
        let txt = [&[10u8][..], b"v=spf1 \"-a", &[3], b"ll\\"].concat();
        assert_eq!(
            answers_of(&[("x.test", 16, txt)], 16),
            r#"{"answers":[{"name":"x.test","type":"TXT","txt":"v=spf1 \"-all\\"}]}"#
        );
        let mut srv = [0u16, 100, 389].map(u16::to_be_bytes).concat();
        srv.extend(name("host.x.test"));
        assert_eq!(
            answers_of(&[("_ldap._tcp.x.test", 33, srv)], 33),
            r#"{"answers":[{"name":"_ldap._tcp.x.test","type":"SRV","priority":0,"weight":100,"port":389,"target":"host.x.test"}]}"#
        );
        assert_eq!(
            answers_of(&[("5.0.0.10.in-addr.arpa", 12, name("host.x.test"))], 12),
            r#"{"answers":[{"name":"5.0.0.10.in-addr.arpa","type":"PTR","ptr":"host.x.test"}]}"#
        );
        assert_eq!(
            answers_of(&[("x.test", 2, name("ns1.x.test"))], 2),
            r#"{"answers":[{"name":"x.test","type":"NS","ns":"ns1.x.test"}]}"#
        );
        let mut soa = name("ns1.x.test");
        soa.extend(name("admin.x.test"));
        soa.extend([7u32, 3600, 600, 86400, 60].map(u32::to_be_bytes).concat());
        assert_eq!(
            answers_of(&[("x.test", 6, soa)], 6),
            r#"{"answers":[{"name":"x.test","type":"SOA","mname":"ns1.x.test","rname":"admin.x.test","serial":7}]}"#
        );
        let body = answers_of(&[("x.test", 65280, vec![1, 2, 3])], 65280);
        assert!(
            body.starts_with(r#"{"answers":[{"name":"x.test","type":"TYPE65280","data":"#),
            "{body}"
        );
        // Root owner, no answers.
        assert_eq!(answers_of(&[], 1), r#"{"answers":[]}"#);
        assert_eq!(
            answers_of(&[(".", 2, name("a.root-servers.net"))], 2),
            r#"{"answers":[{"name":".","type":"NS","ns":"a.root-servers.net"}]}"#
        );
    }

    #[test]
    fn compressed_names_and_rcodes() {
        // Answer owner and CNAME target as pointers to the question name (offset 12).
        let mut r = hdr(9, 0x8183, [1, 1, 0, 0]);
        r.extend(name("Nope.Example.test"));
        r.extend_from_slice(&[0, 1, 0, 1]);
        r.extend_from_slice(&[
            0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 9, 0, 6, 3, b'w', b'w', b'w', 0xc0, 17,
        ]);
        let (out, _) = one(&query(9, "nope.example.test", 1), &r);
        assert_eq!(out.len(), 1, "case-insensitive question match");
        assert_eq!(
            out[0].resp_body,
            r#"{"answers":[{"name":"Nope.Example.test","type":"CNAME","cname":"www.Example.test"}]}"#
        );
        assert_eq!((out[0].rcode, out[0].rcode_name), (3, "NXDOMAIN"));
        assert_eq!(rcode_name(2), "SERVFAIL");
        assert_eq!(rcode_name(5), "REFUSED");
        assert_eq!(rcode_name(15), "RCODE15");
    }

    #[test]
    fn udp_responses_match_by_txid_and_question_in_any_order() {
        let mut c = Conn::new(Limits::default(), Transport::Udp);
        // Two clients on one socket reuse id 1; a third query is never answered.
        c.push_requests(data(&query(1, "a.test", 1), 10));
        c.push_requests(data(&query(1, "b.test", 28), 20));
        c.push_requests(data(&query(2, "c.test", 1), 30));
        c.push_requests(data(&query(3, "lost.test", 1), 35));
        c.push_responses(data(&response(2, "c.test", 1, 0, &[]), 40));
        c.push_responses(data(&response(1, "b.test", 28, 0, &[]), 50));
        c.push_responses(data(&response(1, "a.test", 1, 3, &[]), 60));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|r| {
                (
                    r.query_name.as_str(),
                    r.query_type.as_str(),
                    r.rcode_name,
                    r.latency_ns(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("c.test", "A", "NOERROR", 11),
                ("b.test", "AAAA", "NOERROR", 31),
                ("a.test", "A", "NXDOMAIN", 51)
            ]
        );
        c.close();
        assert_eq!(c.stats().expired, 1);
        assert_eq!(c.stats().unmatched, 0);
    }

    #[test]
    fn retries_and_duplicate_responses_are_counted_and_emitted_once() {
        let mut c = Conn::new(Limits::default(), Transport::Udp);
        let q = query(5, "a.test", 1);
        let r = response(5, "a.test", 1, 0, &[("a.test", 1, vec![1, 2, 3, 4])]);
        c.push_requests(data(&q, 10));
        c.push_requests(data(&q, 1_000_010));
        c.push_responses(data(&r, 1_000_100));
        c.push_responses(data(&r, 1_000_200));
        // A response nobody asked for.
        c.push_responses(data(&response(6, "z.test", 1, 0, &[]), 1_000_300));
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start_ts, 10, "latency from the first attempt");
        let s = c.stats();
        assert_eq!((s.requests, s.responses, s.records), (2, 3, 1));
        assert_eq!((s.duplicates, s.unmatched, s.expired), (2, 1, 0));
    }

    #[test]
    fn unanswered_queries_expire_by_time_and_by_count() {
        let mut c = Conn::new(
            Limits {
                max_pending: 3,
                request_timeout_ns: 1000,
                ..Limits::default()
            },
            Transport::Udp,
        );
        for i in 0..5 {
            c.push_requests(data(&query(i, "a.test", 1), 10 + u64::from(i)));
        }
        assert_eq!(c.stats().expired, 2, "beyond max_pending");
        // Later traffic moves the clock: the rest time out, and their late answer is unmatched.
        c.push_requests(data(&query(100, "b.test", 1), 5000));
        assert_eq!(c.stats().expired, 5);
        c.push_responses(data(&response(4, "a.test", 1, 0, &[]), 5001));
        assert_eq!(c.stats().unmatched, 1);
        c.expire(10_000);
        assert_eq!(c.stats().expired, 6);
        let mut out = Vec::new();
        c.drain(&mut out);
        assert!(out.is_empty());
    }

    fn tcp_exchange() -> (Vec<u8>, Vec<u8>) {
        let names = ["a.test", "b.test", "c.test", "d.test", "e.test"];
        let qs: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| query(i as u16, n, 1))
            .collect();
        // Answered in reverse order, as a TCP server may.
        let rs: Vec<_> = names
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| response(i as u16, n, 1, 0, &[(n, 1, vec![10, 0, 0, i as u8])]))
            .collect();
        (tcp(&qs), tcp(&rs))
    }

    fn summary(v: &[Record]) -> Vec<(String, String, String)> {
        v.iter()
            .map(|r| {
                (
                    r.req_body.clone(),
                    r.resp_header.clone(),
                    r.resp_body.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn tcp_split_at_every_offset_gives_the_same_records() {
        let (qs, rs) = tcp_exchange();
        let run = |cut: usize| {
            let mut c = Conn::new(Limits::default(), Transport::Tcp);
            let (a, b) = qs.split_at(cut.min(qs.len()));
            c.push_requests(data(a, 100));
            c.push_requests(data(b, 110));
            let (a, b) = rs.split_at(cut.min(rs.len()));
            c.push_responses(data(a, 200));
            c.push_responses(data(b, 210));
            let mut out = Vec::new();
            c.drain(&mut out);
            assert_eq!(c.stats().parse_errors, 0);
            assert_eq!(c.buffered_bytes(), 0);
            out
        };
        let want = run(0);
        assert_eq!(want.len(), 5);
        assert_eq!(want[0].query_name, "e.test");
        for cut in 1..=qs.len().max(rs.len()) {
            assert_eq!(summary(&run(cut)), summary(&want), "cut at {cut}");
        }
        // Byte by byte.
        let mut c = Conn::new(Limits::default(), Transport::Tcp);
        for b in qs.chunks(1) {
            c.push_requests(data(b, 100));
        }
        for b in rs.chunks(1) {
            c.push_responses(data(b, 200));
        }
        let mut out = Vec::new();
        c.drain(&mut out);
        assert_eq!(summary(&out), summary(&want));
    }

    #[test]
    fn tcp_gaps_and_garbage_resync_without_wrong_records() {
        let mut c = Conn::new(Limits::default(), Transport::Tcp);
        let q1 = tcp(&[query(1, "a.test", 1)]);
        let r1 = tcp(&[response(
            1,
            "a.test",
            1,
            0,
            &[("a.test", 1, vec![1, 1, 1, 1])],
        )]);
        c.push_requests(data(&q1, 1));
        c.push_responses(data(&r1[..10], 2));
        c.push_responses(Chunk::Gap { len: 5, ts: 3 });
        // The tail of the lost response: not a message start, dropped.
        c.push_responses(data(&r1[15..], 4));
        let q2 = tcp(&[query(2, "b.test", 1)]);
        let r2 = tcp(&[response(2, "b.test", 1, 0, &[])]);
        c.push_requests(data(&q2, 5));
        c.push_responses(data(&r2, 6));
        // Garbage (a length below a header) on the request side, then a whole query.
        c.push_requests(data(b"\x00\x03abc", 7));
        c.push_requests(data(
            b"\x00\x40 not dns at all, but a plausible length.......",
            8,
        ));
        let q3 = tcp(&[query(3, "c.test", 1)]);
        c.push_requests(data(&q3, 9));
        c.push_responses(data(&tcp(&[response(3, "c.test", 1, 0, &[])]), 10));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<&str> = out.iter().map(|r| r.query_name.as_str()).collect();
        assert_eq!(got, ["b.test", "c.test"]);
        let s = c.stats();
        assert!(s.resyncs >= 3 && s.parse_errors >= 1, "{s:?}");
        c.close();
        assert_eq!(c.stats().expired, 1, "a.test's answer was lost");
    }

    #[test]
    fn a_response_among_queries_is_an_error_not_a_record() {
        let (out, s) = one(
            &response(1, "a.test", 1, 0, &[]),
            &response(1, "a.test", 1, 0, &[]),
        );
        assert!(out.is_empty());
        assert_eq!((s.parse_errors, s.unmatched), (1, 1));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic_or_allocation() {
        let q = query(1, "a.test", 1);
        // Truncated everywhere.
        for n in 0..q.len() {
            let (out, _) = one(&q[..n], &response(1, "a.test", 1, 0, &[]));
            assert!(out.is_empty(), "cut at {n}");
        }
        // 65535 questions claimed in 24 bytes: refused before hickory reserves anything.
        let mut huge = q.clone();
        huge[4..6].copy_from_slice(&[0xff, 0xff]);
        assert!(decode(&huge, &Limits::default()).is_none());
        // A compression loop: the question name points at itself.
        let mut looped = hdr(1, 0x0100, [1, 0, 0, 0]);
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(decode(&looped, &Limits::default()).is_none());
        // A pointer loop between two answers, huge answer counts, a cut answer: the record
        // keeps what decoded and says why the rest is missing.
        let mut r = response(1, "a.test", 1, 0, &[("a.test", 1, vec![1, 2, 3, 4])]);
        r[6..8].copy_from_slice(&[0xff, 0xff]);
        r.extend_from_slice(&[0xc0, 36, 0xc0, 34]);
        let (out, s) = one(&q, &r);
        assert_eq!(out.len(), 1, "{s:?}");
        assert_eq!(
            out[0].resp_body,
            r#"{"answers":[{"name":"a.test","type":"A","addr":"1.2.3.4"}]}"#
        );
        assert!(
            out[0].notes.iter().any(|n| n.contains("beyond")),
            "{:?}",
            out[0].notes
        );
        assert!(out[0].notes.iter().any(|n| n.contains("did not decode")));
        // Long names and many answers are capped and counted.
        let long = ["a"; 60].join(".");
        let many: Vec<_> = (0..100)
            .map(|_| (long.as_str(), 1, vec![1, 2, 3, 4]))
            .collect();
        let limits = Limits {
            max_records: 3,
            max_text: 20,
            ..Limits::default()
        };
        let mut c = Conn::new(limits, Transport::Udp);
        c.push_requests(data(&query(2, &long, 1), 1));
        c.push_responses(data(&response(2, &long, 1, 0, &many), 2));
        let mut out = Vec::new();
        c.drain(&mut out);
        let v: serde_json::Value = serde_json::from_str(&out[0].resp_body).unwrap();
        assert_eq!(v["answers"].as_array().unwrap().len(), 3);
        assert_eq!(v["answers"][0]["name"], "a.a.a.a.a.a.a.a.a.a....");
        assert!(
            out[0]
                .notes
                .iter()
                .any(|n| n == "97 more answers not rendered")
        );
    }

    #[test]
    fn a_tcp_message_beyond_the_buffer_limit_is_dropped() {
        let mut c = Conn::new(
            Limits {
                max_buffer: 64,
                ..Limits::default()
            },
            Transport::Tcp,
        );
        let mut big = vec![0x01, 0x00];
        big.extend_from_slice(&hdr(1, 0x0100, [1, 0, 0, 0]));
        c.push_requests(data(&big, 1));
        c.push_requests(data(&[b'x'; 100], 2));
        assert_eq!(c.stats().parse_errors, 1);
        assert_eq!(c.buffered_bytes(), 0);
    }

    #[test]
    fn plain_query_recogniser_accepts_what_the_parser_reads() {
        assert!(is_plain_query(&query(1, "a.example.test", 1)));
        assert!(!is_plain_query(&response(1, "a.test", 1, 0, &[])));
        assert!(is_plain_query(&query(1, "", 2)), "root NS (priming)");
    }

    #[test]
    fn fuzz_one_survives_mutations() {
        let mut seed = vec![0u8];
        seed.extend(query(1, "a.test", 1));
        seed.push(0xff);
        seed.extend(response(
            1,
            "a.test",
            1,
            0,
            &[("a.test", 5, vec![0xc0, 12])],
        ));
        let mut tcp_seed = vec![1u8];
        tcp_seed.extend(tcp(&[query(2, "b.test", 15)]));
        tcp_seed.push(0xff);
        let mut mx = 10u16.to_be_bytes().to_vec();
        mx.extend(name("m.b.test"));
        tcp_seed.extend(tcp(&[response(2, "b.test", 15, 0, &[("b.test", 15, mx)])]));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for seed in [&seed, &tcp_seed] {
            assert_eq!(fuzz_one(seed).records, 1);
            for _ in 0..3000 {
                let mut d = seed.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = 1 + (x as usize) % (d.len() - 1);
                    d[i] = (x >> 32) as u8;
                }
                fuzz_one(&d);
            }
        }
    }
}
