//! Row types and builders for the tables the agent writes, so producers fill typed structs
//! instead of juggling Arrow builders and column order.

use std::{borrow::Cow, sync::Arc};

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};

use crate::schema;

/// One `http_events` row. Text borrows from the producer where it can (`Cow`): the agent
/// builds one per captured request, and each owned copy was an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpEvent<'a> {
    /// When the response completed, ns since the Unix epoch.
    pub time_ns: i64,
    /// The traced process.
    pub upid: Cow<'a, str>,
    /// Peer address.
    pub remote_addr: Cow<'a, str>,
    /// Peer port.
    pub remote_port: i64,
    /// This side's address.
    pub local_addr: Cow<'a, str>,
    /// This side's port.
    pub local_port: i64,
    /// [`schema::trace_role`].
    pub trace_role: i64,
    /// Whether the bytes were captured from a TLS library (plaintext).
    pub encrypted: bool,
    /// HTTP major version.
    pub major_version: i64,
    /// HTTP minor version.
    pub minor_version: i64,
    /// [`schema::content_type`].
    pub content_type: i64,
    /// Request headers as a JSON object.
    pub req_headers: Cow<'a, str>,
    /// Request method.
    pub req_method: Cow<'a, str>,
    /// Request target.
    pub req_path: Cow<'a, str>,
    /// Request body (cut, marked when cut).
    pub req_body: Cow<'a, str>,
    /// True request body size.
    pub req_body_size: i64,
    /// Response headers as a JSON object.
    pub resp_headers: Cow<'a, str>,
    /// Status code.
    pub resp_status: i64,
    /// Reason phrase.
    pub resp_message: Cow<'a, str>,
    /// Response body (cut, marked when cut).
    pub resp_body: Cow<'a, str>,
    /// True response body size.
    pub resp_body_size: i64,
    /// Request start to response end, ns.
    pub latency: i64,
    /// Parser notes (gaps, resyncs).
    pub px_info: Cow<'a, str>,
}

/// A protocol column's value in a [`CmdEvent`]: Pixie's protocol tables mix texts and integer
/// codes (`mysql_events.req_cmd`, `cql_events.req_op`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val<'a> {
    /// An `Int64` column.
    Int(i64),
    /// A `Utf8` column.
    Text(Cow<'a, str>),
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(s: &'a str) -> Self {
        Val::Text(s.into())
    }
}

impl From<String> for Val<'_> {
    fn from(s: String) -> Self {
        Val::Text(s.into())
    }
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}

/// One row of a table shaped by `schema::cmd_events` (`redis_events`, `pgsql_events`,
/// `mysql_events`, `cql_events`, `dns_events`): the shared protocol columns plus the table's
/// own protocol columns, in schema order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdEvent<'a> {
    /// When the response completed, ns since the Unix epoch.
    pub time_ns: i64,
    /// The traced process.
    pub upid: Cow<'a, str>,
    /// Peer address.
    pub remote_addr: Cow<'a, str>,
    /// Peer port.
    pub remote_port: i64,
    /// This side's address.
    pub local_addr: Cow<'a, str>,
    /// This side's port.
    pub local_port: i64,
    /// [`schema::trace_role`].
    pub trace_role: i64,
    /// Whether the bytes were captured from a TLS library (plaintext).
    pub encrypted: bool,
    /// The table's protocol columns (`req_cmd`, `req`, `resp` of pgsql_events, ...), in schema
    /// order; a missing or mistyped value is a null.
    pub proto: &'a [Val<'a>],
    /// Request start to response end, ns.
    pub latency: i64,
    /// Parser notes.
    pub px_info: Cow<'a, str>,
}

#[derive(Debug)]
enum ProtoCol {
    Int(Int64Builder),
    Text(StringBuilder),
}

/// Column builders for a `schema::cmd_events` table.
#[derive(Debug)]
pub struct CmdEventsBuilder {
    schema: arrow::datatypes::SchemaRef,
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    remote_addr: StringBuilder,
    remote_port: Int64Builder,
    local_addr: StringBuilder,
    local_port: Int64Builder,
    trace_role: Int64Builder,
    encrypted: BooleanBuilder,
    proto: Vec<ProtoCol>,
    latency: Int64Builder,
    px_info: StringBuilder,
    len: usize,
}

/// Columns of a `cmd_events` schema before and after the protocol ones.
const CMD_HEAD: usize = 8;
const CMD_TAIL: usize = 2;

impl CmdEventsBuilder {
    /// Builders for `schema` (one of `schema`'s protocol tables built by `cmd_events`) sized
    /// for `n` rows.
    pub fn with_capacity(schema: arrow::datatypes::SchemaRef, n: usize) -> Self {
        let fields = schema.fields();
        let proto = fields
            .iter()
            .skip(CMD_HEAD)
            .take(fields.len().saturating_sub(CMD_HEAD + CMD_TAIL))
            .map(|f| match f.data_type() {
                arrow::datatypes::DataType::Int64 => ProtoCol::Int(Int64Builder::with_capacity(n)),
                _ => ProtoCol::Text(strings(n)),
            })
            .collect();
        Self {
            schema,
            time: TimestampNanosecondBuilder::with_capacity(n),
            upid: strings(n),
            remote_addr: strings(n),
            remote_port: Int64Builder::with_capacity(n),
            local_addr: strings(n),
            local_port: Int64Builder::with_capacity(n),
            trace_role: Int64Builder::with_capacity(n),
            encrypted: BooleanBuilder::with_capacity(n),
            proto,
            latency: Int64Builder::with_capacity(n),
            px_info: strings(n),
            len: 0,
        }
    }

    /// Adds one row.
    pub fn append(&mut self, r: &CmdEvent<'_>) {
        self.time.append_value(r.time_ns);
        self.upid.append_value(&r.upid);
        self.remote_addr.append_value(&r.remote_addr);
        self.remote_port.append_value(r.remote_port);
        self.local_addr.append_value(&r.local_addr);
        self.local_port.append_value(r.local_port);
        self.trace_role.append_value(r.trace_role);
        self.encrypted.append_value(r.encrypted);
        for (i, col) in self.proto.iter_mut().enumerate() {
            match (col, r.proto.get(i)) {
                (ProtoCol::Int(b), Some(Val::Int(v))) => b.append_value(*v),
                (ProtoCol::Text(b), Some(Val::Text(v))) => b.append_value(v),
                (ProtoCol::Int(b), _) => b.append_null(),
                (ProtoCol::Text(b), _) => b.append_null(),
            }
        }
        self.latency.append_value(r.latency);
        self.px_info.append_value(&r.px_info);
        self.len += 1;
    }

    /// Rows added since the last finish.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no rows were added since the last finish.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        self.len = 0;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.upid.finish()),
            Arc::new(self.remote_addr.finish()),
            Arc::new(self.remote_port.finish()),
            Arc::new(self.local_addr.finish()),
            Arc::new(self.local_port.finish()),
            Arc::new(self.trace_role.finish()),
            Arc::new(self.encrypted.finish()),
        ];
        for col in &mut self.proto {
            cols.push(match col {
                ProtoCol::Int(b) => Arc::new(b.finish()),
                ProtoCol::Text(b) => Arc::new(b.finish()),
            });
        }
        cols.push(Arc::new(self.latency.finish()));
        cols.push(Arc::new(self.px_info.finish()));
        batch(self.schema.clone(), cols)
    }
}

/// One `conn_stats` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnStatsRow {
    /// When sampled, ns since the Unix epoch.
    pub time_ns: i64,
    /// The process.
    pub upid: String,
    /// Peer address.
    pub remote_addr: String,
    /// Peer port.
    pub remote_port: i64,
    /// [`schema::trace_role`].
    pub trace_role: i64,
    /// `AF_INET` (2) or `AF_INET6` (10); 0 if not known.
    pub addr_family: i64,
    /// [`schema::protocol`].
    pub protocol: i64,
    /// Whether TLS was seen.
    pub ssl: bool,
    /// Connections opened since start.
    pub conn_open: i64,
    /// Connections closed since start.
    pub conn_close: i64,
    /// Connections open now.
    pub conn_active: i64,
    /// Bytes this process sent since start.
    pub bytes_sent: i64,
    /// Bytes this process received since start.
    pub bytes_recv: i64,
}

/// Column builders for `conn_stats`.
#[derive(Debug)]
pub struct ConnStatsBuilder {
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    remote_addr: StringBuilder,
    ints: [Int64Builder; 4],
    ssl: BooleanBuilder,
    counts: [Int64Builder; 5],
}

impl ConnStatsBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(n),
            upid: strings(n),
            remote_addr: strings(n),
            ints: std::array::from_fn(|_| Int64Builder::with_capacity(n)),
            ssl: BooleanBuilder::with_capacity(n),
            counts: std::array::from_fn(|_| Int64Builder::with_capacity(n)),
        }
    }

    /// Adds one row.
    pub fn append(&mut self, r: &ConnStatsRow) {
        self.time.append_value(r.time_ns);
        self.upid.append_value(&r.upid);
        self.remote_addr.append_value(&r.remote_addr);
        let ints = [r.remote_port, r.trace_role, r.addr_family, r.protocol];
        for (b, v) in self.ints.iter_mut().zip(ints) {
            b.append_value(v);
        }
        self.ssl.append_value(r.ssl);
        let counts = [
            r.conn_open,
            r.conn_close,
            r.conn_active,
            r.bytes_sent,
            r.bytes_recv,
        ];
        for (b, v) in self.counts.iter_mut().zip(counts) {
            b.append_value(v);
        }
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.upid.finish()),
            Arc::new(self.remote_addr.finish()),
        ];
        cols.extend(
            self.ints
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.push(Arc::new(self.ssl.finish()));
        cols.extend(
            self.counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        batch(schema::conn_stats(), cols)
    }
}

/// Column builders for `http_events`.
#[derive(Debug)]
pub struct HttpEventsBuilder {
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    remote_addr: StringBuilder,
    remote_port: Int64Builder,
    local_addr: StringBuilder,
    local_port: Int64Builder,
    trace_role: Int64Builder,
    encrypted: BooleanBuilder,
    major_version: Int64Builder,
    minor_version: Int64Builder,
    content_type: Int64Builder,
    req_headers: StringBuilder,
    req_method: StringBuilder,
    req_path: StringBuilder,
    req_body: StringBuilder,
    req_body_size: Int64Builder,
    resp_headers: StringBuilder,
    resp_status: Int64Builder,
    resp_message: StringBuilder,
    resp_body: StringBuilder,
    resp_body_size: Int64Builder,
    latency: Int64Builder,
    px_info: StringBuilder,
    len: usize,
}

fn strings(n: usize) -> StringBuilder {
    StringBuilder::with_capacity(n, n * 16)
}

impl HttpEventsBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(n),
            upid: strings(n),
            remote_addr: strings(n),
            remote_port: Int64Builder::with_capacity(n),
            local_addr: strings(n),
            local_port: Int64Builder::with_capacity(n),
            trace_role: Int64Builder::with_capacity(n),
            encrypted: BooleanBuilder::with_capacity(n),
            major_version: Int64Builder::with_capacity(n),
            minor_version: Int64Builder::with_capacity(n),
            content_type: Int64Builder::with_capacity(n),
            req_headers: strings(n),
            req_method: strings(n),
            req_path: strings(n),
            req_body: strings(n),
            req_body_size: Int64Builder::with_capacity(n),
            resp_headers: strings(n),
            resp_status: Int64Builder::with_capacity(n),
            resp_message: strings(n),
            resp_body: strings(n),
            resp_body_size: Int64Builder::with_capacity(n),
            latency: Int64Builder::with_capacity(n),
            px_info: strings(n),
            len: 0,
        }
    }

    /// Adds one row.
    pub fn append(&mut self, r: &HttpEvent<'_>) {
        self.time.append_value(r.time_ns);
        self.upid.append_value(&r.upid);
        self.remote_addr.append_value(&r.remote_addr);
        self.remote_port.append_value(r.remote_port);
        self.local_addr.append_value(&r.local_addr);
        self.local_port.append_value(r.local_port);
        self.trace_role.append_value(r.trace_role);
        self.encrypted.append_value(r.encrypted);
        self.major_version.append_value(r.major_version);
        self.minor_version.append_value(r.minor_version);
        self.content_type.append_value(r.content_type);
        self.req_headers.append_value(&r.req_headers);
        self.req_method.append_value(&r.req_method);
        self.req_path.append_value(&r.req_path);
        self.req_body.append_value(&r.req_body);
        self.req_body_size.append_value(r.req_body_size);
        self.resp_headers.append_value(&r.resp_headers);
        self.resp_status.append_value(r.resp_status);
        self.resp_message.append_value(&r.resp_message);
        self.resp_body.append_value(&r.resp_body);
        self.resp_body_size.append_value(r.resp_body_size);
        self.latency.append_value(r.latency);
        self.px_info.append_value(&r.px_info);
        self.len += 1;
    }

    /// Rows added since the last [`HttpEventsBuilder::finish`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no rows were added since the last finish.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        self.len = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.upid.finish()),
            Arc::new(self.remote_addr.finish()),
            Arc::new(self.remote_port.finish()),
            Arc::new(self.local_addr.finish()),
            Arc::new(self.local_port.finish()),
            Arc::new(self.trace_role.finish()),
            Arc::new(self.encrypted.finish()),
            Arc::new(self.major_version.finish()),
            Arc::new(self.minor_version.finish()),
            Arc::new(self.content_type.finish()),
            Arc::new(self.req_headers.finish()),
            Arc::new(self.req_method.finish()),
            Arc::new(self.req_path.finish()),
            Arc::new(self.req_body.finish()),
            Arc::new(self.req_body_size.finish()),
            Arc::new(self.resp_headers.finish()),
            Arc::new(self.resp_status.finish()),
            Arc::new(self.resp_message.finish()),
            Arc::new(self.resp_body.finish()),
            Arc::new(self.resp_body_size.finish()),
            Arc::new(self.latency.finish()),
            Arc::new(self.px_info.finish()),
        ];
        batch(schema::http_events(), cols)
    }
}

/// One `probe_status` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStatusRow {
    /// Sample time, ns since the Unix epoch.
    pub time_ns: i64,
    /// The agent.
    pub upid: String,
    /// Probe name.
    pub probe: String,
    /// Whether it is attached.
    pub attached: bool,
    /// Why it is not, when it is not.
    pub error: String,
    /// Events delivered since start.
    pub events: i64,
    /// Events lost (ring buffer full) since start.
    pub lost: i64,
    /// Events whose bytes were cut at the capture cap since start.
    pub truncated: i64,
    /// Bytes moved by traced syscalls since start.
    pub bytes: i64,
}

/// Column builders for `probe_status`.
#[derive(Debug)]
pub struct ProbeStatusBuilder {
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    probe: StringBuilder,
    attached: BooleanBuilder,
    error: StringBuilder,
    events: Int64Builder,
    lost: Int64Builder,
    truncated: Int64Builder,
    bytes: Int64Builder,
}

impl ProbeStatusBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(n),
            upid: strings(n),
            probe: strings(n),
            attached: BooleanBuilder::with_capacity(n),
            error: strings(n),
            events: Int64Builder::with_capacity(n),
            lost: Int64Builder::with_capacity(n),
            truncated: Int64Builder::with_capacity(n),
            bytes: Int64Builder::with_capacity(n),
        }
    }

    /// Adds one row.
    pub fn append(&mut self, r: &ProbeStatusRow) {
        self.time.append_value(r.time_ns);
        self.upid.append_value(&r.upid);
        self.probe.append_value(&r.probe);
        self.attached.append_value(r.attached);
        self.error.append_value(&r.error);
        self.events.append_value(r.events);
        self.lost.append_value(r.lost);
        self.truncated.append_value(r.truncated);
        self.bytes.append_value(r.bytes);
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.upid.finish()),
            Arc::new(self.probe.finish()),
            Arc::new(self.attached.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.lost.finish()),
            Arc::new(self.truncated.finish()),
            Arc::new(self.bytes.finish()),
        ];
        batch(schema::probe_status(), cols)
    }
}

/// One `process_stats` row: cumulative counters and current sizes of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessStatsRow {
    /// When sampled, ns since the Unix epoch.
    pub time_ns: i64,
    /// The process.
    pub upid: String,
    /// Page faults that needed I/O, since the process started.
    pub major_faults: i64,
    /// Page faults served from memory, since the process started.
    pub minor_faults: i64,
    /// CPU time in user mode, ns.
    pub cpu_utime_ns: i64,
    /// CPU time in kernel mode, ns.
    pub cpu_ktime_ns: i64,
    /// Threads now.
    pub num_threads: i64,
    /// Virtual memory size now, bytes.
    pub vsize_bytes: i64,
    /// Resident set size now, bytes.
    pub rss_bytes: i64,
    /// Bytes read by any read-like syscall.
    pub rchar_bytes: i64,
    /// Bytes written by any write-like syscall.
    pub wchar_bytes: i64,
    /// Bytes fetched from storage.
    pub read_bytes: i64,
    /// Bytes sent to storage.
    pub write_bytes: i64,
}

impl ProcessStatsRow {
    fn counts(&self) -> [i64; 11] {
        [
            self.major_faults,
            self.minor_faults,
            self.cpu_utime_ns,
            self.cpu_ktime_ns,
            self.num_threads,
            self.vsize_bytes,
            self.rss_bytes,
            self.rchar_bytes,
            self.wchar_bytes,
            self.read_bytes,
            self.write_bytes,
        ]
    }
}

/// One `network_stats` row: cumulative interface counters of one network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkStatsRow {
    /// When sampled, ns since the Unix epoch.
    pub time_ns: i64,
    /// The network namespace (locally its inode number as text).
    pub pod_id: String,
    /// Bytes received.
    pub rx_bytes: i64,
    /// Packets received.
    pub rx_packets: i64,
    /// Receive errors.
    pub rx_errors: i64,
    /// Received packets dropped.
    pub rx_drops: i64,
    /// Bytes sent.
    pub tx_bytes: i64,
    /// Packets sent.
    pub tx_packets: i64,
    /// Send errors.
    pub tx_errors: i64,
    /// Packets dropped on send.
    pub tx_drops: i64,
}

impl NetworkStatsRow {
    fn counts(&self) -> [i64; 8] {
        [
            self.rx_bytes,
            self.rx_packets,
            self.rx_errors,
            self.rx_drops,
            self.tx_bytes,
            self.tx_packets,
            self.tx_errors,
            self.tx_drops,
        ]
    }
}

/// Column builders for a table of `time_`, one text key and `N` integer columns.
#[derive(Debug)]
struct KeyedCounts<const N: usize> {
    time: TimestampNanosecondBuilder,
    key: StringBuilder,
    counts: [Int64Builder; N],
}

impl<const N: usize> KeyedCounts<N> {
    fn with_capacity(n: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(n),
            key: strings(n),
            counts: std::array::from_fn(|_| Int64Builder::with_capacity(n)),
        }
    }

    fn append(&mut self, time_ns: i64, key: &str, counts: [i64; N]) {
        self.time.append_value(time_ns);
        self.key.append_value(key);
        for (b, v) in self.counts.iter_mut().zip(counts) {
            b.append_value(v);
        }
    }

    fn finish(&mut self, schema: arrow::datatypes::SchemaRef) -> RecordBatch {
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(self.time.finish()), Arc::new(self.key.finish())];
        cols.extend(
            self.counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        batch(schema, cols)
    }
}

/// Column builders for `process_stats`.
#[derive(Debug)]
pub struct ProcessStatsBuilder(KeyedCounts<11>);

impl ProcessStatsBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self(KeyedCounts::with_capacity(n))
    }

    /// Adds one row.
    pub fn append(&mut self, r: &ProcessStatsRow) {
        self.0.append(r.time_ns, &r.upid, r.counts());
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        self.0.finish(schema::process_stats())
    }
}

/// Column builders for `network_stats`.
#[derive(Debug)]
pub struct NetworkStatsBuilder(KeyedCounts<8>);

impl NetworkStatsBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self(KeyedCounts::with_capacity(n))
    }

    /// Adds one row.
    pub fn append(&mut self, r: &NetworkStatsRow) {
        self.0.append(r.time_ns, &r.pod_id, r.counts());
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        self.0.finish(schema::network_stats())
    }
}

/// One `tcp_stats_events` row: what happened to one TCP connection in one flush window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStatsRow {
    /// The window's last event, ns since the Unix epoch.
    pub time_ns: i64,
    /// The process that set the connection up; "" when not known.
    pub upid: String,
    /// The other end's address.
    pub remote_addr: String,
    /// The other end's port.
    pub remote_port: i64,
    /// This host's address.
    pub local_addr: String,
    /// This host's port.
    pub local_port: i64,
    /// [`schema::tcp_event`].
    pub event: &'static str,
    /// Segments retransmitted.
    pub retransmits: i64,
    /// Segments dropped.
    pub drops: i64,
    /// Drops: the kernel's reason (`NETFILTER_DROP`, ...); "" otherwise.
    pub drop_reason: String,
    /// State changes: the state before; "" otherwise.
    pub old_state: String,
    /// The state after a change; for retransmits and drops the socket's state ("" unknown).
    pub state: String,
    /// Bytes sent on the connection since its previous row (or since the agent first saw it).
    pub tx: i64,
    /// Bytes received on the connection since its previous row.
    pub rx: i64,
}

/// Column builders for `tcp_stats_events`.
#[derive(Debug)]
pub struct TcpStatsBuilder {
    time: TimestampNanosecondBuilder,
    // upid, remote_addr
    text_a: [StringBuilder; 2],
    remote_port: Int64Builder,
    local_addr: StringBuilder,
    local_port: Int64Builder,
    event: StringBuilder,
    // retransmits, drops
    counts: [Int64Builder; 2],
    // drop_reason, old_state, state
    text_b: [StringBuilder; 3],
    // tx, rx
    bytes: [Int64Builder; 2],
}

impl TcpStatsBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(n),
            text_a: std::array::from_fn(|_| strings(n)),
            remote_port: Int64Builder::with_capacity(n),
            local_addr: strings(n),
            local_port: Int64Builder::with_capacity(n),
            event: strings(n),
            counts: std::array::from_fn(|_| Int64Builder::with_capacity(n)),
            text_b: std::array::from_fn(|_| strings(n)),
            bytes: std::array::from_fn(|_| Int64Builder::with_capacity(n)),
        }
    }

    /// Adds one row.
    pub fn append(&mut self, r: &TcpStatsRow) {
        self.time.append_value(r.time_ns);
        self.text_a[0].append_value(&r.upid);
        self.text_a[1].append_value(&r.remote_addr);
        self.remote_port.append_value(r.remote_port);
        self.local_addr.append_value(&r.local_addr);
        self.local_port.append_value(r.local_port);
        self.event.append_value(r.event);
        self.counts[0].append_value(r.retransmits);
        self.counts[1].append_value(r.drops);
        self.text_b[0].append_value(&r.drop_reason);
        self.text_b[1].append_value(&r.old_state);
        self.text_b[2].append_value(&r.state);
        self.bytes[0].append_value(r.tx);
        self.bytes[1].append_value(r.rx);
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let [upid, remote_addr] = &mut self.text_a;
        let [retransmits, drops] = &mut self.counts;
        let [reason, old_state, state] = &mut self.text_b;
        let [tx, rx] = &mut self.bytes;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(upid.finish()),
            Arc::new(remote_addr.finish()),
            Arc::new(self.remote_port.finish()),
            Arc::new(self.local_addr.finish()),
            Arc::new(self.local_port.finish()),
            Arc::new(self.event.finish()),
            Arc::new(retransmits.finish()),
            Arc::new(drops.finish()),
            Arc::new(reason.finish()),
            Arc::new(old_state.finish()),
            Arc::new(state.finish()),
            Arc::new(tx.finish()),
            Arc::new(rx.finish()),
        ];
        batch(schema::tcp_stats_events(), cols)
    }
}

/// One `stack_traces` row: how often one process was sampled in one stack in a push period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackTraceRow {
    /// End of the push period, ns since the Unix epoch.
    pub time_ns: i64,
    /// The process.
    pub upid: String,
    /// A hash of `stack_trace`.
    pub stack_trace_id: i64,
    /// Folded stack, root first, `;`-separated.
    pub stack_trace: String,
    /// Samples.
    pub count: i64,
}

/// Column builders for `stack_traces`.
#[derive(Debug)]
pub struct StackTracesBuilder {
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    id: Int64Builder,
    stack: StringBuilder,
    count: Int64Builder,
}

impl StackTracesBuilder {
    /// Builders sized for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(n),
            upid: strings(n),
            id: Int64Builder::with_capacity(n),
            stack: strings(n),
            count: Int64Builder::with_capacity(n),
        }
    }

    /// Adds one row.
    pub fn append(&mut self, r: &StackTraceRow) {
        self.time.append_value(r.time_ns);
        self.upid.append_value(&r.upid);
        self.id.append_value(r.stack_trace_id);
        self.stack.append_value(&r.stack_trace);
        self.count.append_value(r.count);
    }

    /// The rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.upid.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.stack.finish()),
            Arc::new(self.count.finish()),
        ];
        batch(schema::stack_traces(), cols)
    }
}

#[expect(
    clippy::expect_used,
    reason = "the columns are built in the static schema's order with its types; a mismatch is a bug caught by the tests"
)]
fn batch(schema: arrow::datatypes::SchemaRef, cols: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, cols).expect("builder columns match the schema")
}
