//! Ingest: socket tracer events → connections → per-direction streams → protocol parsers →
//! rows in the table store.
//!
//! Pure apart from the store: no probes are needed to drive it, so tests replay events.

use std::{borrow::Cow, net::SocketAddr, sync::Arc};

use pxtop_metadata::LocalMetadata;
use pxtop_probes::{CloseEvent, DataEvent, Direction, Event, OpenEvent, Role};
use pxtop_protocols::{Chunk, MessageKind, Protocol, http1, infer::infer, pgsql, redis};
use pxtop_store::{
    CmdEvent, CmdEventsBuilder, ConnStatsRow, HttpEvent, HttpEventsBuilder, Store,
    schema::{self, content_type, format_upid, protocol, trace_role},
};

/// Which client-side records to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientSide {
    /// Pixie's rule: keep a client's record only when the server is not on this node (where
    /// its own server-side record already counts the request), so a request counts once.
    #[default]
    RemoteOnly,
    /// Keep every client-side record.
    All,
}

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// This node's id in upids.
    pub asid: u32,
    /// Bytes of bodies kept in tables.
    pub body_limit: usize,
    /// Which client-side records to keep.
    pub client_side: ClientSide,
    /// Add this to a monotonic timestamp to get ns since the epoch.
    pub clock_offset_ns: i64,
    /// Data events to look at before giving up on recognising a connection's protocol.
    pub infer_attempts: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            asid: 1,
            body_limit: 1024,
            client_side: ClientSide::RemoteOnly,
            clock_offset_ns: pxtop_probes::clock::monotonic_to_realtime_offset(),
            infer_attempts: 8,
        }
    }
}

/// Ingest's own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Connections tracked now.
    pub conns: u64,
    /// Data events handled.
    pub data_events: u64,
    /// Bytes the kernel did not hand over, by stream positions (capture cap, sendfile, loss).
    pub gap_bytes: u64,
    /// Data events that arrived behind bytes already seen (reordered or duplicated).
    pub late_events: u64,
    /// Connections given up on (no protocol recognised).
    pub opaque_conns: u64,
    /// Rows produced.
    pub rows: u64,
    /// Client-side rows dropped because the server side on this node records them.
    pub client_rows_deduplicated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    tgid: u32,
    fd: i32,
    generation: u64,
}

#[derive(Debug)]
enum ProtoState {
    Unknown {
        attempts: u32,
    },
    Opaque,
    Parsing {
        parser: Parser,
        /// The direction that carries requests, seen from this process.
        requests: Direction,
    },
}

/// One connection's parser. NB: a protocol is one arm here (its parser, fed by the shared
/// reassembly in [`Ingest::feed`]) and one in [`Ingest::emit`] (its records to its table).
#[derive(Debug)]
enum Parser {
    Http1(Box<http1::Conn>),
    Redis(Box<redis::Conn>),
    Pgsql(Box<pgsql::Conn>),
}

impl Parser {
    fn new(protocol: Protocol, config: &IngestConfig) -> Option<Self> {
        match protocol {
            Protocol::Http1 => Some(Self::Http1(Box::new(http1::Conn::new(http1::Limits {
                max_body: config.body_limit,
                ..http1::Limits::default()
            })))),
            Protocol::Redis => Some(Self::Redis(Box::new(redis::Conn::new(redis::Limits {
                max_text: config.body_limit,
                ..redis::Limits::default()
            })))),
            Protocol::Pgsql => Some(Self::Pgsql(Box::new(pgsql::Conn::new(pgsql::Limits {
                max_text: config.body_limit.max(4096),
                ..pgsql::Limits::default()
            })))),
            _ => None,
        }
    }

    fn push(&mut self, chunk: Chunk<'_>, is_requests: bool) {
        match self {
            Self::Http1(h) if is_requests => h.push_requests(chunk),
            Self::Http1(h) => h.push_responses(chunk),
            Self::Redis(r) if is_requests => r.push_requests(chunk),
            Self::Redis(r) => r.push_responses(chunk),
            Self::Pgsql(p) if is_requests => p.push_requests(chunk),
            Self::Pgsql(p) => p.push_responses(chunk),
        }
    }

    fn close(&mut self) {
        match self {
            Self::Http1(h) => h.close(),
            Self::Redis(r) => r.close(),
            Self::Pgsql(p) => p.close(),
        }
    }
}

#[derive(Debug)]
struct Conn {
    upid: String,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    /// The addresses' IPs as table text, formatted once per connection.
    local_ip: String,
    remote_ip: String,
    role: Role,
    /// Next expected stream offset per direction (egress, ingress); `None` until the parser
    /// has taken a first chunk in that direction.
    next_pos: [Option<u64>; 2],
    proto: ProtoState,
    /// For `conn_stats`: whether its open was seen, its address family, and the bytes moved
    /// per direction (egress = sent, ingress = received) as far as events told.
    opened: bool,
    family: i64,
    bytes: [u64; 2],
}

/// A `conn_stats` key: process, remote endpoint, role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StatKey {
    upid: String,
    remote_addr: String,
    remote_port: i64,
    role: i64,
}

/// Counters of the closed connections of one key, kept until reported.
#[derive(Debug, Clone, Default)]
struct StatAgg {
    family: i64,
    protocol: i64,
    open: i64,
    close: i64,
    active: i64,
    sent: u64,
    recv: u64,
    /// Changed since the last sample.
    dirty: bool,
}

fn role_code(role: Role) -> i64 {
    match role {
        Role::Client => trace_role::CLIENT,
        Role::Server => trace_role::SERVER,
        Role::Unknown => trace_role::UNKNOWN,
    }
}

impl Conn {
    fn stat_key(&self) -> StatKey {
        StatKey {
            upid: self.upid.clone(),
            remote_addr: self.remote_ip.clone(),
            remote_port: self.remote.map_or(0, |a| i64::from(a.port())),
            role: role_code(self.role),
        }
    }

    fn protocol_code(&self) -> i64 {
        match &self.proto {
            ProtoState::Parsing {
                parser: Parser::Http1(_),
                ..
            } => protocol::HTTP,
            ProtoState::Parsing {
                parser: Parser::Redis(_),
                ..
            } => protocol::REDIS,
            ProtoState::Parsing {
                parser: Parser::Pgsql(_),
                ..
            } => protocol::PGSQL,
            _ => protocol::UNKNOWN,
        }
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

/// Turns socket tracer events into table rows.
#[derive(Debug)]
pub struct Ingest {
    config: IngestConfig,
    metadata: Arc<LocalMetadata>,
    // NB: foldhash, not SipHash: two lookups per captured event, keys from the local kernel.
    conns: foldhash::HashMap<ConnKey, Conn>,
    /// Process start ticks by pid, as the kernel reported them.
    starts: foldhash::HashMap<u32, u64>,
    local_ips: Vec<std::net::IpAddr>,
    records: Vec<http1::Record>,
    http: HttpEventsBuilder,
    redis_records: Vec<redis::Record>,
    redis: CmdEventsBuilder,
    pgsql_records: Vec<pgsql::Record>,
    pgsql: CmdEventsBuilder,
    /// `conn_stats` counters of closed connections, until reported.
    closed: foldhash::HashMap<StatKey, StatAgg>,
    stats: IngestStats,
}

impl Ingest {
    /// Ingest with `config`, naming processes in `metadata`.
    pub fn new(config: IngestConfig, metadata: Arc<LocalMetadata>) -> Self {
        Self {
            config,
            metadata,
            conns: foldhash::HashMap::default(),
            starts: foldhash::HashMap::default(),
            local_ips: local_ips(),
            records: Vec::new(),
            http: HttpEventsBuilder::with_capacity(1024),
            redis_records: Vec::new(),
            redis: CmdEventsBuilder::with_capacity(schema::redis_events(), 256),
            pgsql_records: Vec::new(),
            pgsql: CmdEventsBuilder::with_capacity(schema::pgsql_events(), 256),
            closed: foldhash::HashMap::default(),
            stats: IngestStats::default(),
        }
    }

    /// Ingest's counters.
    pub fn stats(&self) -> IngestStats {
        IngestStats {
            conns: self.conns.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Handles one event.
    pub fn handle(&mut self, ev: Event<'_>) {
        match ev {
            Event::Open(o) => self.open(o),
            Event::Data(d) => self.data(d),
            Event::Close(c) => self.close(c),
        }
    }

    /// Appends the rows parsed so far to `store`. Returns how many.
    pub fn flush(&mut self, store: &Store) -> Result<usize, pxtop_store::StoreError> {
        let r = self.redis.len();
        if r > 0 {
            let next = CmdEventsBuilder::with_capacity(schema::redis_events(), r.max(256));
            let batch = std::mem::replace(&mut self.redis, next).finish();
            store.append("redis_events", batch)?;
        }
        let pg = self.pgsql.len();
        if pg > 0 {
            let next = CmdEventsBuilder::with_capacity(schema::pgsql_events(), pg.max(256));
            let batch = std::mem::replace(&mut self.pgsql, next).finish();
            store.append("pgsql_events", batch)?;
        }
        let n = self.http.len();
        if n > 0 {
            // NB: a finished Arrow builder restarts from zero capacity and regrows by
            // doubling (copies and fresh pages, ~15% of the agent's CPU under wrk); the next
            // interval likely sees as many rows as this one, so size it for them up front.
            let next = HttpEventsBuilder::with_capacity(n.max(1024));
            let batch = std::mem::replace(&mut self.http, next).finish();
            store.append("http_events", batch)?;
        }
        Ok(n + r + pg)
    }

    /// Rows parsed and not yet flushed.
    pub fn pending_rows(&self) -> usize {
        self.http.len() + self.redis.len() + self.pgsql.len()
    }

    fn open(&mut self, o: OpenEvent) {
        let ticks = o.process_start_boottime_ns / (1_000_000_000 / pxtop_probes::clock::USER_HZ);
        self.starts.insert(o.tgid, ticks);
        self.metadata.observe(o.tgid, &o.comm);
        let key = ConnKey {
            tgid: o.tgid,
            fd: o.fd,
            generation: o.generation,
        };
        let conn = Conn {
            upid: format_upid(self.config.asid, o.tgid, ticks),
            local: Some(o.local),
            remote: Some(o.remote),
            local_ip: o.local.ip().to_string(),
            remote_ip: o.remote.ip().to_string(),
            role: o.role,
            next_pos: [None, None],
            proto: ProtoState::Unknown { attempts: 0 },
            opened: true,
            family: if o.remote.is_ipv4() { 2 } else { 10 },
            bytes: [0, 0],
        };
        self.conns.insert(key, conn);
    }

    fn close(&mut self, c: CloseEvent) {
        let key = ConnKey {
            tgid: c.tgid,
            fd: c.fd,
            generation: c.generation,
        };
        if let Some(mut conn) = self.conns.remove(&key) {
            if let ProtoState::Parsing { parser, .. } = &mut conn.proto {
                parser.close();
            }
            // NB: the kernel's totals count every byte, also of ends that send no data events.
            let agg = self.closed.entry(conn.stat_key()).or_default();
            agg.family = conn.family;
            agg.protocol = agg.protocol.max(conn.protocol_code());
            agg.open += i64::from(conn.opened);
            agg.close += 1;
            agg.sent += conn.bytes[0].max(c.wr_bytes);
            agg.recv += conn.bytes[1].max(c.rd_bytes);
            agg.dirty = true;
            self.emit(&mut conn);
        }
    }

    fn data(&mut self, d: DataEvent<'_>) {
        self.stats.data_events += 1;
        let key = ConnKey {
            tgid: d.tgid,
            fd: d.fd,
            generation: d.generation,
        };
        let asid = self.config.asid;
        let start = self.starts.get(&d.tgid).copied().unwrap_or(0);
        // NB: the open event can be lost (ring full); the connection is still worth parsing.
        let mut conn = self.conns.remove(&key).unwrap_or_else(|| Conn {
            upid: format_upid(asid, d.tgid, start),
            local: None,
            remote: None,
            local_ip: String::new(),
            remote_ip: String::new(),
            role: d.role,
            next_pos: [None, None],
            proto: ProtoState::Unknown { attempts: 0 },
            opened: false,
            family: 0,
            bytes: [0, 0],
        });
        let i = dir_index(d.dir);
        conn.bytes[i] = conn.bytes[i].max(d.pos + d.size);
        self.feed(&mut conn, &d);
        self.emit(&mut conn);
        self.conns.insert(key, conn);
    }

    fn feed(&mut self, conn: &mut Conn, d: &DataEvent<'_>) {
        if let ProtoState::Unknown { attempts } = &mut conn.proto {
            *attempts += 1;
            let attempts = *attempts;
            match infer(d.data) {
                Some((protocol, kind)) => {
                    let Some(parser) = Parser::new(protocol, &self.config) else {
                        self.stats.opaque_conns += 1;
                        conn.proto = ProtoState::Opaque;
                        return;
                    };
                    let requests = match (kind, d.dir) {
                        (MessageKind::Request, dir) => dir,
                        (MessageKind::Response, Direction::Egress) => Direction::Ingress,
                        (MessageKind::Response, Direction::Ingress) => Direction::Egress,
                    };
                    if conn.role == Role::Unknown {
                        conn.role = if requests == Direction::Egress {
                            Role::Client
                        } else {
                            Role::Server
                        };
                    }
                    conn.proto = ProtoState::Parsing { parser, requests };
                }
                None if attempts >= self.config.infer_attempts => {
                    self.stats.opaque_conns += 1;
                    conn.proto = ProtoState::Opaque;
                }
                None => return,
            }
        }
        let ProtoState::Parsing { parser, requests } = &mut conn.proto else {
            return;
        };
        let i = dir_index(d.dir);
        let end = d.pos + d.size;
        let expected = *conn.next_pos[i].get_or_insert(d.pos);
        if end <= expected {
            self.stats.late_events += 1;
            return;
        }
        // Egress bytes start leaving at syscall entry; ingress bytes exist at exit.
        let first_ts = match d.dir {
            Direction::Egress => d.enter_ts,
            Direction::Ingress => d.exit_ts,
        };
        let mut chunks: [Option<Chunk<'_>>; 3] = [None, None, None];
        if d.pos > expected {
            self.stats.gap_bytes += d.pos - expected;
            chunks[0] = Some(Chunk::Gap {
                len: d.pos - expected,
                ts: first_ts,
            });
        }
        // A late event partly overlapping what was seen: keep only the new bytes.
        let skip = expected.saturating_sub(d.pos);
        let captured = d.data.len() as u64;
        if skip < captured {
            chunks[1] = Some(Chunk::Data {
                bytes: &d.data[skip as usize..],
                first_ts,
                last_ts: d.exit_ts,
            });
        }
        let uncaptured = d.size.saturating_sub(captured.max(skip));
        if uncaptured > 0 && d.size > captured {
            self.stats.gap_bytes += uncaptured;
            chunks[2] = Some(Chunk::Gap {
                len: uncaptured,
                ts: d.exit_ts,
            });
        }
        conn.next_pos[i] = Some(end);
        let is_requests = d.dir == *requests;
        for chunk in chunks.into_iter().flatten() {
            parser.push(chunk, is_requests);
        }
    }

    /// `conn_stats` rows at `time_ns`: per (process, remote endpoint, role), the connections
    /// open now plus those closed since the last sample, with cumulative counts and bytes.
    /// Keys with nothing open and nothing new are not repeated, and their closed counters
    /// are then forgotten (memory stays bounded by what is open).
    pub fn sample_conn_stats(&mut self, time_ns: i64) -> Vec<ConnStatsRow> {
        let mut now: foldhash::HashMap<StatKey, StatAgg> = foldhash::HashMap::default();
        for conn in self.conns.values() {
            let agg = now.entry(conn.stat_key()).or_default();
            agg.family = conn.family;
            agg.protocol = agg.protocol.max(conn.protocol_code());
            agg.open += i64::from(conn.opened);
            agg.active += 1;
            agg.sent += conn.bytes[0];
            agg.recv += conn.bytes[1];
        }
        // Closed counters stay while their key has open connections or news to report.
        self.closed
            .retain(|k, a| std::mem::take(&mut a.dirty) || now.contains_key(k));
        for (key, closed) in &self.closed {
            let agg = now.entry(key.clone()).or_default();
            agg.family = closed.family;
            agg.protocol = agg.protocol.max(closed.protocol);
            agg.open += closed.open;
            agg.close += closed.close;
            agg.sent += closed.sent;
            agg.recv += closed.recv;
        }
        now.into_iter()
            .map(|(k, a)| ConnStatsRow {
                time_ns,
                upid: k.upid,
                remote_addr: k.remote_addr,
                remote_port: k.remote_port,
                trace_role: k.role,
                addr_family: a.family,
                protocol: a.protocol,
                ssl: false,
                conn_open: a.open,
                conn_close: a.close,
                conn_active: a.active,
                bytes_sent: a.sent as i64,
                bytes_recv: a.recv as i64,
            })
            .collect()
    }

    /// Whether this connection's records are kept (Pixie's one-row-per-request rule).
    fn keep_records(&self, conn: &Conn) -> bool {
        match (self.config.client_side, conn.role) {
            (ClientSide::RemoteOnly, Role::Client) => !conn
                .remote
                .is_some_and(|r| r.ip().is_loopback() || self.local_ips.contains(&r.ip())),
            _ => true,
        }
    }

    fn emit(&mut self, conn: &mut Conn) {
        let ProtoState::Parsing { parser, .. } = &mut conn.proto else {
            return;
        };
        match parser {
            Parser::Http1(h) => {
                h.drain(&mut self.records);
                if h.upgraded() {
                    conn.proto = ProtoState::Opaque;
                }
                self.emit_http1(conn);
            }
            Parser::Redis(r) => {
                r.drain(&mut self.redis_records);
                self.emit_redis(conn);
            }
            Parser::Pgsql(p) => {
                p.drain(&mut self.pgsql_records);
                if p.encrypted() {
                    conn.proto = ProtoState::Opaque;
                }
                self.emit_pgsql(conn);
            }
        }
    }

    fn emit_pgsql(&mut self, conn: &Conn) {
        if self.pgsql_records.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pgsql_records);
        if self.keep_records(conn) {
            for r in &records {
                self.pgsql.append(&cmd_event(
                    conn,
                    &self.config,
                    r.end_ts,
                    r.latency_ns(),
                    (&r.cmd, &r.req, &r.resp),
                    "",
                ));
                self.stats.rows += 1;
            }
        } else {
            self.stats.client_rows_deduplicated += records.len() as u64;
        }
        self.pgsql_records = records;
        self.pgsql_records.clear();
    }

    fn emit_redis(&mut self, conn: &Conn) {
        if self.redis_records.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.redis_records);
        if self.keep_records(conn) {
            for r in &records {
                let notes = r.notes.join("; ");
                self.redis.append(&cmd_event(
                    conn,
                    &self.config,
                    r.end_ts,
                    r.latency_ns(),
                    (&r.cmd, &r.args, &r.resp),
                    &notes,
                ));
                self.stats.rows += 1;
            }
        } else {
            self.stats.client_rows_deduplicated += records.len() as u64;
        }
        self.redis_records = records;
        self.redis_records.clear();
    }

    fn emit_http1(&mut self, conn: &Conn) {
        if self.records.is_empty() {
            return;
        }
        let keep = self.keep_records(conn);
        let records = std::mem::take(&mut self.records);
        if !keep {
            self.stats.client_rows_deduplicated += records.len() as u64;
            self.records = records;
            self.records.clear();
            return;
        }
        for r in &records {
            let row = to_row(r, conn, &self.config);
            self.http.append(&row);
            self.stats.rows += 1;
        }
        self.records = records;
        self.records.clear();
    }
}

/// A row of a command/request/response table (`redis_events`, `pgsql_events`).
fn cmd_event<'a>(
    conn: &'a Conn,
    cfg: &IngestConfig,
    end_ts: u64,
    latency_ns: u64,
    (cmd, req, resp): (&'a str, &'a str, &'a str),
    notes: &'a str,
) -> CmdEvent<'a> {
    CmdEvent {
        time_ns: end_ts as i64 + cfg.clock_offset_ns,
        upid: conn.upid.as_str().into(),
        remote_addr: conn.remote_ip.as_str().into(),
        remote_port: conn.remote.map_or(0, |a| i64::from(a.port())),
        local_addr: conn.local_ip.as_str().into(),
        local_port: conn.local.map_or(0, |a| i64::from(a.port())),
        trace_role: role_code(conn.role),
        encrypted: false,
        cmd: cmd.into(),
        req: req.into(),
        resp: resp.into(),
        latency: latency_ns as i64,
        px_info: notes.into(),
    }
}

fn to_row<'a>(r: &'a http1::Record, conn: &'a Conn, cfg: &IngestConfig) -> HttpEvent<'a> {
    let (method, path) = match &r.req.start {
        http1::Start::Request { method, path } => (method.as_str(), path.as_str()),
        http1::Start::Response { .. } => ("", ""),
    };
    let (status, reason) = match &r.resp.start {
        http1::Start::Response { status, reason } => (i64::from(*status), reason.as_str()),
        http1::Start::Request { .. } => (0, ""),
    };
    let px_info: Cow<'_, str> = match (r.req.notes.is_empty(), r.resp.notes.is_empty()) {
        (true, true) => "".into(),
        _ => {
            let mut notes: Vec<&str> = r.req.notes.iter().map(String::as_str).collect();
            notes.extend(r.resp.notes.iter().map(String::as_str));
            notes.join("; ").into()
        }
    };
    let ctype = header(&r.resp.headers, "content-type")
        .or_else(|| header(&r.req.headers, "content-type"))
        .map_or(content_type::UNKNOWN, |v| {
            if v.contains("grpc") {
                content_type::GRPC
            } else if v.contains("json") {
                content_type::JSON
            } else {
                content_type::UNKNOWN
            }
        });
    HttpEvent {
        time_ns: r.resp.end_ts as i64 + cfg.clock_offset_ns,
        upid: conn.upid.as_str().into(),
        remote_addr: conn.remote_ip.as_str().into(),
        remote_port: conn.remote.map_or(0, |a| i64::from(a.port())),
        local_addr: conn.local_ip.as_str().into(),
        local_port: conn.local.map_or(0, |a| i64::from(a.port())),
        trace_role: role_code(conn.role),
        encrypted: false,
        major_version: 1,
        minor_version: i64::from(r.req.minor_version),
        content_type: ctype,
        req_headers: http1::headers_json(&r.req.headers).into(),
        req_method: method.into(),
        req_path: path.into(),
        req_body: body_text(&r.req.body, r.req.body_size, cfg.body_limit),
        req_body_size: r.req.body_size as i64,
        resp_headers: http1::headers_json(&r.resp.headers).into(),
        resp_status: status,
        resp_message: reason.into(),
        resp_body: body_text(&r.resp.body, r.resp.body_size, cfg.body_limit),
        resp_body_size: r.resp.body_size as i64,
        latency: r.latency_ns() as i64,
        px_info,
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A body as table text: UTF-8 (lossy for binary), cut at `limit` bytes with Pixie's marker
/// when the body was longer.
fn body_text(body: &[u8], size: u64, limit: usize) -> Cow<'_, str> {
    let kept = &body[..body.len().min(limit)];
    let s = String::from_utf8_lossy(kept);
    if size > kept.len() as u64 {
        let mut s = s.into_owned();
        s.push_str("... [TRUNCATED]");
        return s.into();
    }
    s
}

fn local_ips() -> Vec<std::net::IpAddr> {
    // NB: /proc/net/fib_trie marks each address of this host as "/32 host LOCAL" under the
    // line that names it; no netlink needed. Loopback is checked separately.
    let mut ips = Vec::new();
    if let Ok(s) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<std::net::IpAddr> = None;
        for line in s.lines() {
            let t = line.trim();
            if let Some(ip) = t.strip_prefix("|-- ").and_then(|x| x.parse().ok()) {
                last = Some(ip);
            } else if t.contains("/32 host LOCAL")
                && let Some(ip) = last.take()
                && !ips.contains(&ip)
            {
                ips.push(ip);
            }
        }
    }
    ips
}
