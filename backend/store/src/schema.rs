//! Table schemas, after Pixie's (`shared/reference/pixie-tables.md`), so PxL habits carry over.
//!
//! Every table starts with `time_` (ns since the Unix epoch) and, but for `network_stats` (per
//! network namespace, `pod_id`), `upid` (rendered as Pixie does: `asid:pid:start_ticks` packed
//! into 128 bits and printed as a UUID-like string).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// `trace_role` values (Pixie's; scripts rely on them).
pub mod trace_role {
    /// This process opened the connection.
    pub const CLIENT: i64 = 1;
    /// This process accepted the connection.
    pub const SERVER: i64 = 2;
    /// Not known (connection predates the agent and inference could not tell).
    pub const UNKNOWN: i64 = 4;
}

/// `content_type` values of `http_events` (Pixie's enum).
pub mod content_type {
    /// Anything else.
    pub const UNKNOWN: i64 = 0;
    /// `application/json`.
    pub const JSON: i64 = 1;
    /// `application/grpc*`.
    pub const GRPC: i64 = 2;
}

/// `protocol` values of `conn_stats` (Pixie's `traffic_protocol_t`).
pub mod protocol {
    /// Not (yet) recognised.
    pub const UNKNOWN: i64 = 0;
    /// HTTP/1.x.
    pub const HTTP: i64 = 1;
    /// HTTP/2 (and gRPC).
    pub const HTTP2: i64 = 2;
    /// MySQL.
    pub const MYSQL: i64 = 3;
    /// Cassandra CQL.
    pub const CQL: i64 = 4;
    /// PostgreSQL.
    pub const PGSQL: i64 = 5;
    /// DNS.
    pub const DNS: i64 = 6;
    /// Redis.
    pub const REDIS: i64 = 7;
}

/// The `time_` column's type: nanoseconds since the Unix epoch, no time zone.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, None)
}

fn f(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, false)
}

static HTTP_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Boolean, Int64, Utf8};
    Arc::new(Schema::new(vec![
        f("time_", time_type()),
        f("upid", Utf8),
        f("remote_addr", Utf8),
        f("remote_port", Int64),
        f("local_addr", Utf8),
        f("local_port", Int64),
        f("trace_role", Int64),
        f("encrypted", Boolean),
        f("major_version", Int64),
        f("minor_version", Int64),
        f("content_type", Int64),
        f("req_headers", Utf8),
        f("req_method", Utf8),
        f("req_path", Utf8),
        f("req_body", Utf8),
        f("req_body_size", Int64),
        f("resp_headers", Utf8),
        f("resp_status", Int64),
        f("resp_message", Utf8),
        f("resp_body", Utf8),
        f("resp_body_size", Int64),
        f("latency", Int64),
        f("px_info_", Utf8),
    ]))
});

static PROBE_STATUS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Boolean, Int64, Utf8};
    Arc::new(Schema::new(vec![
        f("time_", time_type()),
        f("upid", Utf8),
        f("probe", Utf8),
        f("attached", Boolean),
        f("error", Utf8),
        f("events", Int64),
        f("lost", Int64),
        f("truncated", Int64),
        f("bytes", Int64),
    ]))
});

/// The shared columns of a protocol table around its own protocol columns (named and typed as
/// Pixie has them per table): see `rows::CmdEvent`.
fn cmd_events(proto: &[(&str, DataType)]) -> SchemaRef {
    use DataType::{Boolean, Int64, Utf8};
    let mut fields = vec![
        f("time_", time_type()),
        f("upid", Utf8),
        f("remote_addr", Utf8),
        f("remote_port", Int64),
        f("local_addr", Utf8),
        f("local_port", Int64),
        f("trace_role", Int64),
        f("encrypted", Boolean),
    ];
    fields.extend(proto.iter().map(|(name, t)| f(name, t.clone())));
    fields.push(f("latency", Int64));
    fields.push(f("px_info_", Utf8));
    Arc::new(Schema::new(fields))
}

static REDIS_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::Utf8;
    cmd_events(&[("req_cmd", Utf8), ("req_args", Utf8), ("resp", Utf8)])
});
static PGSQL_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::Utf8;
    cmd_events(&[("req_cmd", Utf8), ("req", Utf8), ("resp", Utf8)])
});
static MYSQL_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Int64, Utf8};
    cmd_events(&[
        ("req_cmd", Int64),
        ("req_body", Utf8),
        ("resp_status", Int64),
        ("resp_body", Utf8),
    ])
});
static CQL_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Int64, Utf8};
    cmd_events(&[
        ("req_op", Int64),
        ("req_body", Utf8),
        ("resp_op", Int64),
        ("resp_body", Utf8),
    ])
});
static DNS_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::Utf8;
    cmd_events(&[
        ("req_header", Utf8),
        ("req_body", Utf8),
        ("resp_header", Utf8),
        ("resp_body", Utf8),
    ])
});

/// `redis_events`: one row per Redis command and its reply.
pub fn redis_events() -> SchemaRef {
    REDIS_EVENTS.clone()
}

/// `pgsql_events`: one row per PostgreSQL query or executed statement and its outcome.
pub fn pgsql_events() -> SchemaRef {
    PGSQL_EVENTS.clone()
}

/// `mysql_events`: one row per MySQL command and its outcome (`req_cmd` the `COM_` byte,
/// `resp_status` one of [`mysql_status`]).
pub fn mysql_events() -> SchemaRef {
    MYSQL_EVENTS.clone()
}

/// `cql_events`: one row per Cassandra CQL request and its response (opcodes as integers).
pub fn cql_events() -> SchemaRef {
    CQL_EVENTS.clone()
}

/// `dns_events`: one row per DNS query and its answer (headers and bodies as JSON).
pub fn dns_events() -> SchemaRef {
    DNS_EVENTS.clone()
}

/// `mysql_events.resp_status` values (Pixie's).
pub mod mysql_status {
    /// Not known.
    pub const UNKNOWN: i64 = 0;
    /// The command has no response.
    pub const NONE: i64 = 1;
    /// OK or a result set.
    pub const OK: i64 = 2;
    /// An error.
    pub const ERR: i64 = 3;
}

static CONN_STATS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Boolean, Int64, Utf8};
    Arc::new(Schema::new(vec![
        f("time_", time_type()),
        f("upid", Utf8),
        f("remote_addr", Utf8),
        f("remote_port", Int64),
        f("trace_role", Int64),
        f("addr_family", Int64),
        f("protocol", Int64),
        f("ssl", Boolean),
        f("conn_open", Int64),
        f("conn_close", Int64),
        f("conn_active", Int64),
        f("bytes_sent", Int64),
        f("bytes_recv", Int64),
    ]))
});

/// `conn_stats`: cumulative connection counters per (process, remote endpoint, role), sampled
/// periodically.
pub fn conn_stats() -> SchemaRef {
    CONN_STATS.clone()
}

/// `http_events`: one row per HTTP request/response pair.
pub fn http_events() -> SchemaRef {
    HTTP_EVENTS.clone()
}

/// `probe_status`: the capture's own health, sampled periodically: cumulative event, loss and
/// truncation counters per probe, so loss is never silent.
pub fn probe_status() -> SchemaRef {
    PROBE_STATUS.clone()
}

static PROCESS_STATS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Int64, Utf8};
    let mut fields = vec![f("time_", time_type()), f("upid", Utf8)];
    fields.extend(
        [
            "major_faults",
            "minor_faults",
            "cpu_utime_ns",
            "cpu_ktime_ns",
            "num_threads",
            "vsize_bytes",
            "rss_bytes",
            "rchar_bytes",
            "wchar_bytes",
            "read_bytes",
            "write_bytes",
        ]
        .map(|name| f(name, Int64)),
    );
    Arc::new(Schema::new(fields))
});

static NETWORK_STATS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Int64, Utf8};
    let mut fields = vec![f("time_", time_type()), f("pod_id", Utf8)];
    fields.extend(
        [
            "rx_bytes",
            "rx_packets",
            "rx_errors",
            "rx_drops",
            "tx_bytes",
            "tx_packets",
            "tx_errors",
            "tx_drops",
        ]
        .map(|name| f(name, Int64)),
    );
    Arc::new(Schema::new(fields))
});

/// `process_stats`: per process, sampled periodically from `/proc/PID/{stat,io}`: cumulative
/// page faults, CPU time in user and kernel mode (ns), threads, virtual and resident memory
/// (bytes) and I/O counters (`rchar`/`wchar`: all reads and writes; `read_bytes`/`write_bytes`:
/// those that reached storage). The I/O columns are 0 where `/proc/PID/io` is not readable (a
/// process of another user when the agent is not root).
pub fn process_stats() -> SchemaRef {
    PROCESS_STATS.clone()
}

/// `network_stats`: per network namespace, sampled periodically from `/proc/PID/net/dev` of one
/// process in it: cumulative bytes, packets, errors and drops each way, summed over its
/// interfaces but `lo`. `pod_id` is, until cluster metadata maps namespaces to pods, the network
/// namespace's inode number as text (as `ls -L -i /proc/PID/ns/net` shows it).
pub fn network_stats() -> SchemaRef {
    NETWORK_STATS.clone()
}

static TCP_STATS_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Int64, Utf8};
    Arc::new(Schema::new(vec![
        f("time_", time_type()),
        f("upid", Utf8),
        f("remote_addr", Utf8),
        f("remote_port", Int64),
        f("local_addr", Utf8),
        f("local_port", Int64),
        f("event", Utf8),
        f("retransmits", Int64),
        f("drops", Int64),
        f("drop_reason", Utf8),
        f("old_state", Utf8),
        f("state", Utf8),
        f("tx", Int64),
        f("rx", Int64),
    ]))
});

/// `tcp_stats_events.event` values.
pub mod tcp_event {
    /// Segments retransmitted (`tcp:tcp_retransmit_skb`).
    pub const RETRANSMIT: &str = "retransmit";
    /// TCP segments dropped, with the kernel's reason (`skb:kfree_skb`).
    pub const DROP: &str = "drop";
    /// The socket changed state (`sock:inet_sock_set_state`).
    pub const STATE_CHANGE: &str = "state_change";
}

/// `tcp_stats_events`: TCP health per connection and flush window (Pixie's `time_`, `upid`,
/// addresses, `tx`, `rx`, `retransmits`, plus): `event` ([`tcp_event`]), the counts of
/// `retransmits` and `drops`, the `drop_reason` (the kernel's `skb_drop_reason` name), and for
/// state changes `old_state` → `state` (TCP state names without `TCP_`; for retransmits and
/// drops `state` is the connection's state). `tx`/`rx` are the bytes the connection moved since
/// its previous row, read from the kernel's counters at retransmits and state changes. `upid`
/// is the process that connected, listened or accepted, "" when the agent did not see that.
pub fn tcp_stats_events() -> SchemaRef {
    TCP_STATS_EVENTS.clone()
}

static STACK_TRACES: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::{Int64, Utf8};
    Arc::new(Schema::new(vec![
        f("time_", time_type()),
        f("upid", Utf8),
        f("stack_trace_id", Int64),
        f("stack_trace", Utf8),
        f("count", Int64),
    ]))
});

/// `stack_traces` (Pixie's `stack_traces.beta`): CPU profiler samples, one row per (process,
/// distinct stack) per push period. `stack_trace` is folded, root first, frames separated by
/// `;`; kernel frames end in `_[k]`; frames without a symbol show `module+0xOFFSET` (file
/// offset) or `0xADDRESS`; a stack the kernel could not store (its stack-map bucket was taken)
/// shows as `[user stack lost]` or `[kernel stack lost]_[k]`. `stack_trace_id` is a hash of that
/// text, the same on every node.
/// `count` is the samples of that stack in the period.
pub fn stack_traces() -> SchemaRef {
    STACK_TRACES.clone()
}

/// `stack_traces.stack_trace_id` of a folded stack: its 64-bit FNV-1a hash. Hand-written (six
/// lines) because the id must be the same on every node and in every build, which std's and
/// foldhash's hashers do not promise.
pub fn stack_trace_id(folded: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in folded.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// A table the store knows, with its share of the node budget.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Pixie's name (without a `.beta` suffix).
    pub name: &'static str,
    /// Other names accepted for it (Pixie's `.beta` spellings).
    pub aliases: &'static [&'static str],
    /// Its schema.
    pub schema: SchemaRef,
    /// Its share of the node budget, in percent. The shares of all tables add up to 100.
    pub budget_percent: u8,
}

/// Every table the store holds, in a stable order.
pub fn all_tables() -> Vec<TableDef> {
    vec![
        TableDef {
            name: "http_events",
            aliases: &[],
            schema: http_events(),
            budget_percent: 52,
        },
        TableDef {
            name: "conn_stats",
            aliases: &[],
            schema: conn_stats(),
            budget_percent: 5,
        },
        TableDef {
            name: "pgsql_events",
            aliases: &[],
            schema: pgsql_events(),
            budget_percent: 6,
        },
        TableDef {
            name: "mysql_events",
            aliases: &[],
            schema: mysql_events(),
            budget_percent: 6,
        },
        TableDef {
            name: "redis_events",
            aliases: &[],
            schema: redis_events(),
            budget_percent: 6,
        },
        TableDef {
            name: "cql_events",
            aliases: &[],
            schema: cql_events(),
            budget_percent: 5,
        },
        TableDef {
            name: "dns_events",
            aliases: &[],
            schema: dns_events(),
            budget_percent: 6,
        },
        TableDef {
            name: "probe_status",
            aliases: &[],
            schema: probe_status(),
            budget_percent: 2,
        },
        TableDef {
            name: "process_stats",
            aliases: &[],
            schema: process_stats(),
            budget_percent: 5,
        },
        TableDef {
            name: "network_stats",
            aliases: &[],
            schema: network_stats(),
            budget_percent: 1,
        },
        TableDef {
            name: "tcp_stats_events",
            aliases: &["tcp_stats"],
            schema: tcp_stats_events(),
            budget_percent: 3,
        },
        TableDef {
            name: "stack_traces",
            aliases: &[],
            schema: stack_traces(),
            budget_percent: 3,
        },
    ]
}

/// A table scripts may name whose data source is not built yet: naming it is an error that
/// says which feature brings it, not an empty result that looks like "no traffic".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedTable {
    /// Pixie's name (without a `.beta` suffix).
    pub name: &'static str,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// The feature that will collect it, as in "it comes with ...".
    pub feature: &'static str,
}

/// Tables Pixie has and pxtop will collect, with the feature that brings each.
pub fn planned_tables() -> &'static [PlannedTable] {
    // Every table pxtop set out to collect has its source now; the next one goes here.
    &[]
}

/// Formats a upid as Pixie does: the 128-bit value `(asid << 96) | (pid << 64) | start_ticks`
/// as a UUID-like hex string, e.g. `00000001-0000-1a2b-0000-0000000f4240`.
pub fn format_upid(asid: u32, pid: u32, start_ticks: u64) -> String {
    let hi = (u64::from(asid) << 32) | u64::from(pid);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        start_ticks >> 48,
        start_ticks & 0xffff_ffff_ffff
    )
}

/// Parses [`format_upid`]'s output back to `(asid, pid, start_ticks)`.
pub fn parse_upid(s: &str) -> Option<(u32, u32, u64)> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let hi = u64::from_str_radix(&hex[..16], 16).ok()?;
    let lo = u64::from_str_radix(&hex[16..], 16).ok()?;
    Some(((hi >> 32) as u32, hi as u32, lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_trace_ids_are_fnv1a() {
        // The reference vectors of FNV-1a 64.
        assert_eq!(stack_trace_id(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(stack_trace_id("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_ne!(stack_trace_id("main;hot"), stack_trace_id("main;cold"));
    }

    #[test]
    fn upid_round_trips() {
        let s = format_upid(1, 4242, 123_456_789);
        assert_eq!(s.len(), 36);
        assert_eq!(parse_upid(&s), Some((1, 4242, 123_456_789)));
    }

    #[test]
    fn budgets_add_up_and_tables_start_with_time_and_a_key() {
        let defs = all_tables();
        assert_eq!(
            defs.iter()
                .map(|d| u32::from(d.budget_percent))
                .sum::<u32>(),
            100
        );
        for d in defs {
            assert_eq!(d.schema.field(0).name(), "time_");
            let key = if d.name == "network_stats" {
                "pod_id"
            } else {
                "upid"
            };
            assert_eq!(d.schema.field(1).name(), key, "{}", d.name);
        }
    }

    #[test]
    fn planned_tables_are_not_tables_yet() {
        let defs = all_tables();
        for p in planned_tables() {
            assert!(
                !defs
                    .iter()
                    .any(|d| d.name == p.name || p.aliases.contains(&d.name)),
                "{} is planned and held",
                p.name
            );
        }
    }
}
