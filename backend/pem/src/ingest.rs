//! Ingest: socket tracer events → connections → per-direction streams → protocol parsers →
//! rows in the table store.
//!
//! Pure apart from the store: no probes are needed to drive it, so tests replay events.

use std::{borrow::Cow, net::SocketAddr, sync::Arc};

use pxtop_metadata::LocalMetadata;
use pxtop_probes::{CloseEvent, DataEvent, Direction, Event, OpenEvent, Role};
use pxtop_protocols::{
    Chunk, MessageKind, Protocol, cql, dns, http1, http2, infer::infer, mysql, pgsql, redis,
};
use pxtop_store::{
    CmdEvent, CmdEventsBuilder, ConnStatsRow, HttpEvent, HttpEventsBuilder, Store, Val,
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
    /// Only processes in this network namespace (its inode), when several PEMs share one
    /// kernel, each in its own namespace (tests, dev clusters); `None`: every process.
    pub only_netns: Option<u64>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            asid: 1,
            body_limit: 1024,
            client_side: ClientSide::RemoteOnly,
            clock_offset_ns: pxtop_probes::clock::monotonic_to_realtime_offset(),
            infer_attempts: 8,
            only_netns: None,
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
    /// Events of processes outside the network namespace this PEM is limited to.
    pub other_netns_events: u64,
    /// Client-side rows dropped because the server side on this node records them.
    pub client_rows_deduplicated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    tgid: u32,
    fd: i32,
    generation: u64,
}

/// A data event held while a connection's protocol is not yet known, replayed into the parser
/// once it is (a server that speaks first, like an HTTP/2 server's SETTINGS, must not lose its
/// first bytes to inference).
#[derive(Debug)]
struct Held {
    dir: Direction,
    enter_ts: u64,
    exit_ts: u64,
    pos: u64,
    size: u64,
    data: Vec<u8>,
}

/// Bytes held per connection before its protocol is known, at most.
const MAX_HELD_BYTES: usize = 16 * 1024;

#[derive(Debug)]
enum ProtoState {
    Unknown {
        attempts: u32,
        held: Vec<Held>,
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
    Http2(Box<http2::Conn>),
    Redis(Box<redis::Conn>),
    Pgsql(Box<pgsql::Conn>),
    Mysql(Box<mysql::Conn>),
    Cql(Box<cql::Conn>),
    Dns(Box<dns::Conn>),
}

impl Parser {
    /// A parser for `protocol`, recognised from `first` (the bytes inference looked at).
    fn new(protocol: Protocol, config: &IngestConfig, first: &[u8]) -> Option<Self> {
        match protocol {
            Protocol::Http2 => Some(Self::Http2(Box::new(http2::Conn::new(http2::Limits {
                max_body: config.body_limit,
                ..http2::Limits::default()
            })))),
            Protocol::Mysql => Some(Self::Mysql(Box::new(mysql::Conn::new(mysql::Limits {
                max_text: config.body_limit.max(4096),
                ..mysql::Limits::default()
            })))),
            Protocol::Cql => Some(Self::Cql(Box::new(cql::Conn::new(cql::Limits {
                max_text: config.body_limit.max(4096),
                ..cql::Limits::default()
            })))),
            Protocol::Dns => {
                // NB: a DNS message over TCP starts with its length; a datagram does not.
                let tcp = first.len() > 2
                    && usize::from(u16::from_be_bytes([first[0], first[1]])) == first.len() - 2;
                let transport = if tcp {
                    dns::Transport::Tcp
                } else {
                    dns::Transport::Udp
                };
                Some(Self::Dns(Box::new(dns::Conn::new(
                    dns::Limits::default(),
                    transport,
                ))))
            }
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
            Self::Http2(h) if is_requests => h.push_requests(chunk),
            Self::Http2(h) => h.push_responses(chunk),
            Self::Mysql(m) if is_requests => m.push_requests(chunk),
            Self::Mysql(m) => m.push_responses(chunk),
            Self::Cql(c) if is_requests => c.push_requests(chunk),
            Self::Cql(c) => c.push_responses(chunk),
            Self::Dns(d) if is_requests => d.push_requests(chunk),
            Self::Dns(d) => d.push_responses(chunk),
        }
    }

    fn close(&mut self) {
        match self {
            Self::Http1(h) => h.close(),
            Self::Redis(r) => r.close(),
            Self::Pgsql(p) => p.close(),
            Self::Http2(h) => h.close(),
            Self::Mysql(m) => m.close(),
            Self::Cql(c) => c.close(),
            Self::Dns(d) => d.close(),
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
    /// Plaintext from a TLS library was seen: only such events are parsed from then on.
    tls: bool,
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
    /// Some connection carried TLS (plaintext captured from the library).
    ssl: bool,
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
        let ProtoState::Parsing { parser, .. } = &self.proto else {
            return protocol::UNKNOWN;
        };
        match parser {
            Parser::Http1(_) => protocol::HTTP,
            Parser::Http2(_) => protocol::HTTP2,
            Parser::Redis(_) => protocol::REDIS,
            Parser::Pgsql(_) => protocol::PGSQL,
            Parser::Mysql(_) => protocol::MYSQL,
            Parser::Cql(_) => protocol::CQL,
            Parser::Dns(_) => protocol::DNS,
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
    mysql_records: Vec<mysql::Record>,
    mysql: CmdEventsBuilder,
    cql_records: Vec<cql::Record>,
    cql: CmdEventsBuilder,
    dns_records: Vec<dns::Record>,
    dns: CmdEventsBuilder,
    /// `conn_stats` counters of closed connections, until reported.
    closed: foldhash::HashMap<StatKey, StatAgg>,
    stats: IngestStats,
    /// The latest event time seen (monotonic ns), the clock for parsers' expiries.
    now_ts: u64,
    /// With `only_netns`: whether each process is in that namespace.
    in_netns: foldhash::HashMap<u32, bool>,
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
            mysql_records: Vec::new(),
            mysql: CmdEventsBuilder::with_capacity(schema::mysql_events(), 256),
            cql_records: Vec::new(),
            cql: CmdEventsBuilder::with_capacity(schema::cql_events(), 256),
            dns_records: Vec::new(),
            dns: CmdEventsBuilder::with_capacity(schema::dns_events(), 256),
            closed: foldhash::HashMap::default(),
            stats: IngestStats::default(),
            now_ts: 0,
            in_netns: foldhash::HashMap::default(),
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
        if let Some(ns) = self.config.only_netns {
            let tgid = match &ev {
                Event::Open(o) => o.tgid,
                Event::Data(d) => d.tgid,
                Event::Close(c) => c.tgid,
            };
            // NB: a process gone before its first event is looked up as "not ours".
            let ours = *self
                .in_netns
                .entry(tgid)
                .or_insert_with(|| netns_inode(tgid).ok() == Some(ns));
            if !ours {
                self.stats.other_netns_events += 1;
                return;
            }
            if let Event::Close(_) = ev
                && self.in_netns.len() > 65_536
            {
                // Bounded: pids are reused, and a stale entry only costs one re-read.
                self.in_netns.clear();
            }
        }
        match ev {
            Event::Open(o) => self.open(o),
            Event::Data(d) => self.data(d),
            Event::Close(c) => self.close(c),
        }
    }

    /// Appends the rows parsed so far to `store`. Returns how many.
    pub fn flush(&mut self, store: &Store) -> Result<usize, pxtop_store::StoreError> {
        let mut cmd_rows = 0;
        for (builder, table, schema) in [
            (&mut self.redis, "redis_events", schema::redis_events()),
            (&mut self.pgsql, "pgsql_events", schema::pgsql_events()),
            (&mut self.mysql, "mysql_events", schema::mysql_events()),
            (&mut self.cql, "cql_events", schema::cql_events()),
            (&mut self.dns, "dns_events", schema::dns_events()),
        ] {
            let r = builder.len();
            if r > 0 {
                let next = CmdEventsBuilder::with_capacity(schema, r.max(256));
                let batch = std::mem::replace(builder, next).finish();
                store.append(table, batch)?;
                cmd_rows += r;
            }
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
        Ok(n + cmd_rows)
    }

    /// Rows parsed and not yet flushed.
    pub fn pending_rows(&self) -> usize {
        self.http.len()
            + self.redis.len()
            + self.pgsql.len()
            + self.mysql.len()
            + self.cql.len()
            + self.dns.len()
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
            proto: ProtoState::Unknown {
                attempts: 0,
                held: Vec::new(),
            },
            opened: true,
            family: if o.remote.is_ipv4() { 2 } else { 10 },
            bytes: [0, 0],
            tls: false,
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
            agg.ssl |= conn.tls;
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
        self.now_ts = self.now_ts.max(d.exit_ts);
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
            proto: ProtoState::Unknown {
                attempts: 0,
                held: Vec::new(),
            },
            opened: false,
            family: 0,
            bytes: [0, 0],
            tls: false,
        });
        if d.encrypted && !conn.tls {
            // The first plaintext of a TLS connection: what was seen so far was ciphertext
            // (the handshake); start over on the plaintext stream, whose positions are its own.
            conn.tls = true;
            if let ProtoState::Parsing { parser, .. } = &mut conn.proto {
                parser.close();
            }
            self.emit(&mut conn);
            conn.next_pos = [None, None];
            conn.proto = ProtoState::Unknown {
                attempts: 0,
                held: Vec::new(),
            };
        }
        if !d.encrypted {
            let i = dir_index(d.dir);
            conn.bytes[i] = conn.bytes[i].max(d.pos + d.size);
        }
        // NB: ciphertext of a TLS connection still in flight when its plaintext began.
        if d.encrypted == conn.tls {
            self.feed(&mut conn, &d);
        }
        self.emit(&mut conn);
        self.conns.insert(key, conn);
    }

    fn feed(&mut self, conn: &mut Conn, d: &DataEvent<'_>) {
        if let ProtoState::Unknown { attempts, held } = &mut conn.proto {
            *attempts += 1;
            let attempts = *attempts;
            // NB: a message can arrive in pieces before anything is recognised (dnsmasq
            // reads a DNS-over-TCP length prefix a byte at a time): try this direction's held
            // bytes joined with these first.
            let joined: Option<Vec<u8>> = held.iter().any(|h| h.dir == d.dir).then(|| {
                let mut v: Vec<u8> = held
                    .iter()
                    .filter(|h| h.dir == d.dir)
                    .flat_map(|h| h.data.iter().copied())
                    .collect();
                v.extend_from_slice(d.data);
                v
            });
            let found = joined
                .as_deref()
                .and_then(|j| infer(j).map(|r| (r, j)))
                .or_else(|| infer(d.data).map(|r| (r, d.data)));
            match found {
                Some(((protocol, kind), first)) => {
                    let parser = Parser::new(protocol, &self.config, first);
                    let held = std::mem::take(held);
                    let Some(parser) = parser else {
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
                    for h in &held {
                        self.feed_parser(
                            conn,
                            &DataEvent {
                                dir: h.dir,
                                enter_ts: h.enter_ts,
                                exit_ts: h.exit_ts,
                                pos: h.pos,
                                size: h.size,
                                data: &h.data,
                                ..*d
                            },
                        );
                    }
                }
                None if attempts >= self.config.infer_attempts => {
                    self.stats.opaque_conns += 1;
                    conn.proto = ProtoState::Opaque;
                    return;
                }
                None => {
                    let bytes: usize = held.iter().map(|h| h.data.len()).sum();
                    if bytes + d.data.len() <= MAX_HELD_BYTES {
                        held.push(Held {
                            dir: d.dir,
                            enter_ts: d.enter_ts,
                            exit_ts: d.exit_ts,
                            pos: d.pos,
                            size: d.size,
                            data: d.data.to_vec(),
                        });
                    }
                    return;
                }
            }
        }
        self.feed_parser(conn, d);
    }

    /// Feeds one event to the connection's parser, with the gaps its positions reveal.
    fn feed_parser(&mut self, conn: &mut Conn, d: &DataEvent<'_>) {
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
            agg.ssl |= conn.tls;
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
            agg.ssl |= closed.ssl;
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
                ssl: a.ssl,
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
            Parser::Http2(h) => {
                h.drain(&mut self.records);
                self.emit_http1(conn);
            }
            Parser::Redis(r) => {
                r.drain(&mut self.redis_records);
                let keep = self.keep_records(conn);
                append_cmd_rows(
                    &mut self.redis_records,
                    (&mut self.redis, &mut self.stats),
                    (conn, &self.config, keep),
                    |r| CmdRow {
                        ts: (r.end_ts, r.latency_ns()),
                        proto: [
                            r.cmd.as_str().into(),
                            r.args.as_str().into(),
                            r.resp.as_str().into(),
                            Val::Int(0),
                        ],
                        cols: 3,
                        notes: r.notes.join("; ").into(),
                    },
                );
            }
            Parser::Pgsql(p) => {
                p.drain(&mut self.pgsql_records);
                if p.encrypted() {
                    conn.proto = ProtoState::Opaque;
                }
                let keep = self.keep_records(conn);
                append_cmd_rows(
                    &mut self.pgsql_records,
                    (&mut self.pgsql, &mut self.stats),
                    (conn, &self.config, keep),
                    |r| CmdRow {
                        ts: (r.end_ts, r.latency_ns()),
                        proto: [
                            r.cmd.as_str().into(),
                            r.req.as_str().into(),
                            r.resp.as_str().into(),
                            Val::Int(0),
                        ],
                        cols: 3,
                        notes: "".into(),
                    },
                );
            }
            Parser::Mysql(m) => {
                m.drain(&mut self.mysql_records);
                if m.encrypted() || m.compressed() {
                    conn.proto = ProtoState::Opaque;
                }
                let keep = self.keep_records(conn);
                append_cmd_rows(
                    &mut self.mysql_records,
                    (&mut self.mysql, &mut self.stats),
                    (conn, &self.config, keep),
                    |r| CmdRow {
                        ts: (r.end_ts, r.latency_ns()),
                        proto: [
                            Val::Int(i64::from(r.cmd)),
                            r.req_body.as_str().into(),
                            Val::Int(r.status.as_i64()),
                            r.resp_body.as_str().into(),
                        ],
                        cols: 4,
                        notes: "".into(),
                    },
                );
            }
            Parser::Cql(c) => {
                c.drain(&mut self.cql_records);
                let keep = self.keep_records(conn);
                append_cmd_rows(
                    &mut self.cql_records,
                    (&mut self.cql, &mut self.stats),
                    (conn, &self.config, keep),
                    |r| CmdRow {
                        ts: (r.end_ts, r.latency_ns()),
                        proto: [
                            Val::Int(i64::from(r.req_op)),
                            r.req_body.as_str().into(),
                            Val::Int(i64::from(r.resp_op)),
                            r.resp_body.as_str().into(),
                        ],
                        cols: 4,
                        notes: if r.compressed { "compressed body" } else { "" }.into(),
                    },
                );
            }
            Parser::Dns(d) => {
                // NB: a lost UDP reply never completes its query; expire it (counted).
                d.expire(self.now_ts);
                d.drain(&mut self.dns_records);
                let keep = self.keep_records(conn);
                append_cmd_rows(
                    &mut self.dns_records,
                    (&mut self.dns, &mut self.stats),
                    (conn, &self.config, keep),
                    |r| CmdRow {
                        ts: (r.end_ts, r.latency_ns()),
                        proto: [
                            r.req_header.as_str().into(),
                            r.req_body.as_str().into(),
                            r.resp_header.as_str().into(),
                            r.resp_body.as_str().into(),
                        ],
                        cols: 4,
                        notes: r.notes.join("; ").into(),
                    },
                );
            }
        }
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

/// A record's row in a protocol table shaped by `schema::cmd_events`: end time and latency,
/// its protocol columns (the first `cols` of `proto`) and notes.
struct CmdRow<'r> {
    ts: (u64, u64),
    proto: [Val<'r>; 4],
    cols: usize,
    notes: Cow<'r, str>,
}

/// Appends the rows of one connection's drained `records` to `out` (or counts them as left to
/// the server side when `keep` is false), and empties `records`, keeping its capacity.
fn append_cmd_rows<R>(
    records: &mut Vec<R>,
    (out, stats): (&mut CmdEventsBuilder, &mut IngestStats),
    (conn, cfg, keep): (&Conn, &IngestConfig, bool),
    to_row: impl for<'r> Fn(&'r R) -> CmdRow<'r>,
) {
    if records.is_empty() {
        return;
    }
    if keep {
        for r in records.iter() {
            let row = to_row(r);
            let cols = row.cols.min(row.proto.len());
            out.append(&cmd_event(
                conn,
                cfg,
                row.ts,
                &row.proto[..cols],
                &row.notes,
            ));
            stats.rows += 1;
        }
    } else {
        stats.client_rows_deduplicated += records.len() as u64;
    }
    records.clear();
}

/// A row of a protocol table shaped by `schema::cmd_events` (`redis_events`, `pgsql_events`,
/// `mysql_events`, `cql_events`, `dns_events`), with its protocol columns `proto`.
fn cmd_event<'a>(
    conn: &'a Conn,
    cfg: &IngestConfig,
    (end_ts, latency_ns): (u64, u64),
    proto: &'a [Val<'a>],
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
        encrypted: conn.tls,
        proto,
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
    let grpc = ctype == content_type::GRPC;
    HttpEvent {
        time_ns: r.resp.end_ts as i64 + cfg.clock_offset_ns,
        upid: conn.upid.as_str().into(),
        remote_addr: conn.remote_ip.as_str().into(),
        remote_port: conn.remote.map_or(0, |a| i64::from(a.port())),
        local_addr: conn.local_ip.as_str().into(),
        local_port: conn.local.map_or(0, |a| i64::from(a.port())),
        trace_role: role_code(conn.role),
        encrypted: conn.tls,
        major_version: i64::from(r.req.major_version),
        minor_version: i64::from(r.req.minor_version),
        content_type: ctype,
        req_headers: http1::headers_json(&r.req.headers).into(),
        req_method: method.into(),
        req_path: path.into(),
        req_body: body_text(&r.req.body, r.req.body_size, cfg.body_limit, grpc),
        req_body_size: r.req.body_size as i64,
        resp_headers: http1::headers_json(&r.resp.headers).into(),
        resp_status: status,
        resp_message: reason.into(),
        resp_body: body_text(&r.resp.body, r.resp.body_size, cfg.body_limit, grpc),
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
/// when the body was longer. gRPC bodies (length-prefixed protobuf) are escaped instead:
/// printable ASCII as is, every other byte as `\xNN`, so no byte is lost to lossy UTF-8.
fn body_text(body: &[u8], size: u64, limit: usize, escaped: bool) -> Cow<'_, str> {
    let kept = &body[..body.len().min(limit)];
    let s: Cow<'_, str> = if escaped {
        use std::fmt::Write;
        let mut t = String::with_capacity(kept.len() * 2);
        for &b in kept {
            if b.is_ascii_graphic() || b == b' ' {
                t.push(char::from(b));
            } else {
                let _ = write!(t, "\\x{b:02x}");
            }
        }
        t.into()
    } else {
        String::from_utf8_lossy(kept)
    };
    if size > kept.len() as u64 {
        let mut s = s.into_owned();
        s.push_str("... [TRUNCATED]");
        return s.into();
    }
    s
}

/// The inode of `pid`'s network namespace (`/proc/PID/ns/net`); `pid` 0 is this process.
pub fn netns_inode(pid: u32) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let path = if pid == 0 {
        "/proc/self/ns/net".to_string()
    } else {
        format!("/proc/{pid}/ns/net")
    };
    std::fs::metadata(path).map(|m| m.ino())
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
