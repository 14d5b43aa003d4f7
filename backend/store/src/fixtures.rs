//! Deterministic, realistic rows for tests, benchmarks and the scripts' golden outputs (feature
//! `fixtures`): four services (upids of pids 1001..=1004: frontend, cart, checkout, users in the
//! engine's tests), mostly successful with errors and a slow tail mixed in.
//!
//! [`http_events`] is one row per millisecond (the benchmarks' load); [`fill`] puts every table
//! the store holds into a store, spread over [`SPAN_NS`] as a small live system would.

use arrow::array::RecordBatch;

use crate::{
    Store, StoreError,
    rows::{
        CmdEvent, CmdEventsBuilder, ConnStatsBuilder, ConnStatsRow, HttpEvent, HttpEventsBuilder,
        NetworkStatsBuilder, NetworkStatsRow, ProbeStatusBuilder, ProbeStatusRow,
        ProcessStatsBuilder, ProcessStatsRow, StackTraceRow, StackTracesBuilder, TcpStatsBuilder,
        TcpStatsRow, Val,
    },
    schema::{self, content_type, format_upid, mysql_status, protocol, tcp_event, trace_role},
};

/// Rows per batch, as the store seals them.
const BATCH_ROWS: usize = 8192;

const PATHS: &[(&str, &str)] = &[
    ("GET", "/api/users"),
    ("GET", "/api/users/42"),
    ("POST", "/api/users"),
    ("GET", "/api/orders"),
    ("PUT", "/api/orders/7"),
    ("DELETE", "/api/orders/7"),
    ("GET", "/healthz"),
    ("GET", "/static/app.js"),
    ("GET", "/search?q=rust"),
    ("POST", "/checkout"),
    ("GET", "/cart"),
    ("PATCH", "/api/users/42"),
];

/// A xorshift64* generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The upid fixtures use for service `i` (0..4).
pub fn upid(i: u32) -> String {
    format_upid(1, 1001 + i, 5000 + u64::from(i))
}

/// `n` rows, one per millisecond from `start_ns`, in batches of up to 8192 rows.
pub fn http_events(n: usize, start_ns: i64, seed: u64) -> Vec<RecordBatch> {
    http_events_every(n, start_ns, 1_000_000, seed)
}

/// `n` rows, one per `step_ns` from `start_ns`, in batches of up to 8192 rows.
pub fn http_events_every(n: usize, start_ns: i64, step_ns: i64, seed: u64) -> Vec<RecordBatch> {
    let mut rng = Rng(seed | 1);
    let upids: Vec<String> = (0..4).map(upid).collect();
    let mut out = Vec::with_capacity(n / BATCH_ROWS + 1);
    let mut b = HttpEventsBuilder::with_capacity(BATCH_ROWS.min(n));
    for i in 0..n {
        let r = rng.next();
        let (method, path) = PATHS[(r % PATHS.len() as u64) as usize];
        let status = match (r >> 8) % 100 {
            0..=79 => 200,
            80..=84 => 201,
            85..=87 => 204,
            88..=89 => 301,
            90..=95 => 404,
            _ => 500,
        };
        // Long tail: most requests take ~1 ms, a few 10-100x longer.
        let base = 200_000 + ((r >> 16) % 1_800_000) as i64;
        let latency = if (r >> 40).is_multiple_of(50) {
            base * 40
        } else {
            base
        };
        let body_size = if method == "POST" || method == "PUT" {
            ((r >> 24) % 2048) as i64
        } else {
            0
        };
        let resp_size = if status == 204 {
            0
        } else {
            ((r >> 32) % 8192) as i64
        };
        b.append(&HttpEvent {
            time_ns: start_ns + i as i64 * step_ns,
            upid: upids[((r >> 48) % 4) as usize].as_str().into(),
            remote_addr: format!("10.0.0.{}", (r >> 52) % 32 + 1).into(),
            remote_port: 30_000 + ((r >> 20) % 20_000) as i64,
            local_addr: "10.0.1.1".into(),
            local_port: 8080,
            trace_role: trace_role::SERVER,
            encrypted: false,
            major_version: 1,
            minor_version: 1,
            content_type: content_type::JSON,
            req_headers: r#"{"Host":"shop","User-Agent":"curl/8.0"}"#.into(),
            req_method: method.into(),
            req_path: path.into(),
            req_body: if body_size > 0 {
                r#"{"name":"ada"}"#.into()
            } else {
                "".into()
            },
            req_body_size: body_size,
            resp_headers: r#"{"Content-Type":"application/json"}"#.into(),
            resp_status: status,
            resp_message: match status {
                200 => "OK",
                201 => "Created",
                204 => "No Content",
                301 => "Moved Permanently",
                404 => "Not Found",
                _ => "Internal Server Error",
            }
            .into(),
            resp_body: if resp_size > 0 {
                r#"{"ok":true}"#.into()
            } else {
                "".into()
            },
            resp_body_size: resp_size,
            latency,
            px_info: "".into(),
        });
        if b.len() == BATCH_ROWS {
            out.push(b.finish());
        }
    }
    if !b.is_empty() {
        out.push(b.finish());
    }
    out
}

const SEC: i64 = 1_000_000_000;

/// How long [`fill`]'s rows span from its start time.
pub const SPAN_NS: i64 = 240 * SEC;

/// The agent's own upid, which `probe_status` rows carry.
pub fn agent_upid() -> String {
    format_upid(1, 900, 4000)
}

/// Every table the store holds, filled from `start_ns` over [`SPAN_NS`]: ~2,400 HTTP requests
/// served by the four services, their clients' database, cache and DNS traffic, connection
/// counters every 10 s, the probes' health every 10 s, process and network namespace
/// figures every 10 s, TCP health (retransmits, drops, state changes) every second and the CPU
/// profiler's stacks every 10 s. One batch per table, so queries over it see the rows in one order whatever the machine (aggregates merge deterministically).
pub fn fill(store: &Store, start_ns: i64) -> Result<(), StoreError> {
    for b in http_events_every(2400, start_ns, SPAN_NS / 2400, 42) {
        store.append("http_events", b)?;
    }
    store.append("conn_stats", conn_stats(start_ns))?;
    store.append("pgsql_events", pgsql_events(600, start_ns, 7))?;
    store.append("mysql_events", mysql_events(500, start_ns, 11))?;
    store.append("redis_events", redis_events(900, start_ns, 13))?;
    store.append("cql_events", cql_events(300, start_ns, 17))?;
    store.append("dns_events", dns_events(400, start_ns, 19))?;
    store.append("probe_status", probe_status(start_ns))?;
    store.append("process_stats", process_stats(start_ns))?;
    store.append("network_stats", network_stats(start_ns))?;
    store.append("tcp_stats_events", tcp_stats_events(start_ns))?;
    store.append("stack_traces", stack_traces(start_ns))?;
    Ok(())
}

/// A service's address (service `i`, 0..4), as its peers see it.
fn service_addr(i: u32) -> String {
    format!("10.0.1.{}", i + 1)
}

/// Latency in ns: `base_us` microseconds ±50%, and one in 40 taking 30x as long.
fn latency(r: u64, base_us: i64) -> i64 {
    let base = base_us * 1000;
    let jitter = ((r >> 16) % 1000) as i64;
    let ns = base / 2 + base * jitter / 1000;
    if (r >> 40).is_multiple_of(40) {
        ns * 30
    } else {
        ns
    }
}

/// One protocol table: `n` client-side rows from `clients` (service indexes) to the server at
/// `remote`, evenly spread over [`SPAN_NS`]; `row` gives the protocol columns and a base
/// latency (µs) from a random draw.
fn client_rows(
    schema: arrow::datatypes::SchemaRef,
    (n, start_ns, seed): (usize, i64, u64),
    clients: &[u32],
    remote: (&str, i64),
    row: impl Fn(u64) -> (Vec<Val<'static>>, i64),
) -> RecordBatch {
    let mut rng = Rng(seed | 1);
    let mut b = CmdEventsBuilder::with_capacity(schema, n);
    let step = SPAN_NS / n.max(1) as i64;
    for i in 0..n {
        let r = rng.next();
        let client = clients[((r >> 48) % clients.len() as u64) as usize];
        let (proto, base_us) = row(r);
        b.append(&CmdEvent {
            time_ns: start_ns + i as i64 * step,
            upid: upid(client).into(),
            remote_addr: remote.0.into(),
            remote_port: remote.1,
            local_addr: service_addr(client).into(),
            local_port: 40_000 + i64::from(client) * 100 + ((r >> 24) % 8) as i64,
            trace_role: trace_role::CLIENT,
            encrypted: false,
            proto: &proto,
            latency: latency(r, base_us),
            px_info: "".into(),
        });
    }
    b.finish()
}

/// Picks from `choices` by weight with the draw `r`.
fn weighted<T: Clone>(r: u64, choices: &[(u64, T)]) -> T {
    let total: u64 = choices.iter().map(|(w, _)| w).sum();
    let mut x = r % total.max(1);
    for (w, c) in choices {
        if x < *w {
            return c.clone();
        }
        x -= w;
    }
    choices[0].1.clone()
}

/// `pgsql_events`: checkout and users query PostgreSQL; some inserts hit a duplicate key, the
/// report query is slow.
pub fn pgsql_events(n: usize, start_ns: i64, seed: u64) -> RecordBatch {
    type Q = (&'static str, &'static str, &'static str, i64);
    let queries: &[(u64, Q)] = &[
        (
            30,
            (
                "QUERY",
                "SELECT id, name, email FROM users WHERE id = 42",
                "SELECT 1",
                400,
            ),
        ),
        (
            20,
            (
                "QUERY",
                "SELECT id, name, email FROM users WHERE id = 7",
                "SELECT 1",
                400,
            ),
        ),
        (
            15,
            (
                "EXECUTE",
                "query=[INSERT INTO orders (user_id, total) VALUES ($1, $2)] params=[42, 19.99]",
                "INSERT 0 1",
                900,
            ),
        ),
        (
            3,
            (
                "EXECUTE",
                "query=[INSERT INTO orders (user_id, total) VALUES ($1, $2)] params=[42, 19.99]",
                "ERROR 23505: duplicate key value violates unique constraint \"orders_pkey\"",
                700,
            ),
        ),
        (
            15,
            (
                "QUERY",
                "UPDATE carts SET qty = 3 WHERE id = 9",
                "UPDATE 1",
                800,
            ),
        ),
        (
            5,
            (
                "QUERY",
                "SELECT count(*) FROM orders WHERE created_at > '2024-01-01'",
                "SELECT 1",
                25_000,
            ),
        ),
        (
            2,
            (
                "QUERY",
                "SELECT * FROM order_items WHERE sku = 'X-1'",
                "ERROR 42P01: relation \"order_items\" does not exist",
                300,
            ),
        ),
    ];
    client_rows(
        schema::pgsql_events(),
        (n, start_ns, seed),
        &[2, 3],
        ("10.0.2.10", 5432),
        |r| {
            let (cmd, req, resp, us) = weighted(r, queries);
            (vec![cmd.into(), req.into(), resp.into()], us)
        },
    )
}

/// `mysql_events`: cart reads and writes its inventory in MySQL, with a missing table now and
/// then.
pub fn mysql_events(n: usize, start_ns: i64, seed: u64) -> RecordBatch {
    type Q = (i64, &'static str, i64, &'static str, i64);
    let queries: &[(u64, Q)] = &[
        (
            40,
            (
                3,
                "SELECT sku, qty FROM inventory WHERE sku = 'A-100'",
                mysql_status::OK,
                "Resultset rows = 1",
                500,
            ),
        ),
        (
            20,
            (
                3,
                "SELECT sku, qty FROM inventory WHERE sku = 'B-200'",
                mysql_status::OK,
                "Resultset rows = 1",
                500,
            ),
        ),
        (
            15,
            (
                23,
                "query=[UPDATE inventory SET qty = qty - ? WHERE sku = ?] params=[1, 'A-100']",
                mysql_status::OK,
                "Affected rows = 1, last insert id = 0",
                1200,
            ),
        ),
        (
            5,
            (
                3,
                "SELECT * FROM inventory_archive WHERE year = 2019",
                mysql_status::ERR,
                "ERROR 1146 (42S02): Table 'shop.inventory_archive' doesn't exist",
                300,
            ),
        ),
        (
            5,
            (
                3,
                "SELECT sku, SUM(qty) FROM inventory GROUP BY sku",
                mysql_status::OK,
                "Resultset rows = 250",
                30_000,
            ),
        ),
        (5, (14, "", mysql_status::OK, "", 100)),
    ];
    client_rows(
        schema::mysql_events(),
        (n, start_ns, seed),
        &[1],
        ("10.0.2.11", 3306),
        |r| {
            let (cmd, req, status, resp, us) = weighted(r, queries);
            (vec![cmd.into(), req.into(), status.into(), resp.into()], us)
        },
    )
}

/// `redis_events`: frontend and cart use Redis as a cache and session store.
pub fn redis_events(n: usize, start_ns: i64, seed: u64) -> RecordBatch {
    type C = (&'static str, &'static str, &'static str, i64);
    let cmds: &[(u64, C)] = &[
        (40, ("GET", r#"["session:42"]"#, r#"{"user":42}"#, 150)),
        (15, ("GET", r#"["session:7"]"#, "<NULL>", 120)),
        (
            20,
            (
                "SET",
                r#"["session:42","{\"user\":42}","EX","3600"]"#,
                "OK",
                200,
            ),
        ),
        (
            10,
            (
                "HGETALL",
                r#"["cart:42"]"#,
                r#"["sku","A-100","qty","2"]"#,
                250,
            ),
        ),
        (8, ("INCR", r#"["visits"]"#, "1042", 100)),
        (
            2,
            (
                "LPUSH",
                r#"["cart:7","A-100"]"#,
                "-WRONGTYPE Operation against a key holding the wrong kind of value",
                100,
            ),
        ),
        (
            5,
            ("KEYS", r#"["cart:*"]"#, r#"["cart:42","cart:7"]"#, 8_000),
        ),
    ];
    client_rows(
        schema::redis_events(),
        (n, start_ns, seed),
        &[0, 1],
        ("10.0.2.12", 6379),
        |r| {
            let (cmd, args, resp, us) = weighted(r, cmds);
            (vec![cmd.into(), args.into(), resp.into()], us)
        },
    )
}

/// `cql_events`: users reads profiles from Cassandra, with an occasional unconfigured table.
pub fn cql_events(n: usize, start_ns: i64, seed: u64) -> RecordBatch {
    type Q = (i64, &'static str, i64, &'static str, i64);
    let reqs: &[(u64, Q)] = &[
        (
            50,
            (
                7,
                "SELECT * FROM profiles WHERE user_id = 42",
                8,
                "Response type = ROWS\nNumber of columns = 3\n[\"user_id\",\"name\",\"avatar\"]\nNumber of rows = 1",
                900,
            ),
        ),
        (
            20,
            (
                10,
                "INSERT INTO events (user_id, kind) VALUES (?, ?)\n[\"0000002A\",\"6C6F67696E\"]",
                8,
                "Response type = VOID",
                1200,
            ),
        ),
        (
            5,
            (
                7,
                "SELECT * FROM sessions WHERE id = 1",
                0,
                "[8704] unconfigured table sessions",
                400,
            ),
        ),
        (
            5,
            (
                5,
                "",
                6,
                r#"{"CQL_VERSION":["3.0.0"],"COMPRESSION":["lz4"]}"#,
                200,
            ),
        ),
    ];
    client_rows(
        schema::cql_events(),
        (n, start_ns, seed),
        &[3],
        ("10.0.2.13", 9042),
        |r| {
            let (op, req, rop, resp, us) = weighted(r, reqs);
            (vec![op.into(), req.into(), rop.into(), resp.into()], us)
        },
    )
}

/// `dns_events`: every service resolves its peers; a few names do not exist.
pub fn dns_events(n: usize, start_ns: i64, seed: u64) -> RecordBatch {
    type Q = (&'static str, &'static str, u8, &'static str, i64);
    let names: &[(u64, Q)] = &[
        (
            30,
            (
                "postgres.shop.svc",
                "A",
                0,
                r#"[{"name":"postgres.shop.svc","type":"A","addr":"10.0.2.10"}]"#,
                300,
            ),
        ),
        (
            20,
            (
                "redis.shop.svc",
                "A",
                0,
                r#"[{"name":"redis.shop.svc","type":"A","addr":"10.0.2.12"}]"#,
                300,
            ),
        ),
        (
            15,
            (
                "api.example.com",
                "AAAA",
                0,
                r#"[{"name":"api.example.com","type":"AAAA","addr":"2001:db8::1"}]"#,
                2_000,
            ),
        ),
        (
            15,
            (
                "api.example.com",
                "A",
                0,
                r#"[{"name":"api.example.com","type":"A","addr":"93.184.216.34"}]"#,
                2_000,
            ),
        ),
        (5, ("pyments.example.com", "A", 3, "[]", 1_500)),
        (
            10,
            (
                "mysql.shop.svc",
                "A",
                0,
                r#"[{"name":"mysql.shop.svc","type":"A","addr":"10.0.2.11"}]"#,
                300,
            ),
        ),
    ];
    client_rows(
        schema::dns_events(),
        (n, start_ns, seed),
        &[0, 1, 2, 3],
        ("10.0.0.53", 53),
        |r| {
            let (name, ty, rcode, answers, us) = weighted(r, names);
            let txid = (r >> 8) % 65536;
            let num_answers = usize::from(answers != "[]");
            let header = |qr: u8, rcode: u8, an: usize| {
                format!(
                    r#"{{"txid":{txid},"qr":{qr},"opcode":0,"aa":0,"tc":0,"rd":1,"ra":{qr},"ad":0,"cd":0,"rcode":{rcode},"num_queries":1,"num_answers":{an},"num_auth":0,"num_addl":0}}"#
                )
            };
            (
                vec![
                    header(0, 0, 0).into(),
                    format!(r#"{{"queries":[{{"name":"{name}","type":"{ty}"}}]}}"#).into(),
                    header(1, rcode, num_answers).into(),
                    format!(r#"{{"answers":{answers}}}"#).into(),
                ],
                us,
            )
        },
    )
}

/// `conn_stats`: every 10 s, cumulative counters per (service, remote endpoint, role):
/// inbound HTTP from the load balancer and an outside client, outbound to the databases, the
/// cache, DNS and an outside API over TLS.
pub fn conn_stats(start_ns: i64) -> RecordBatch {
    // (service, remote address, remote port, role, protocol, ssl, new connections per sample,
    // bytes sent and received per connection)
    type E = (u32, &'static str, i64, i64, i64, bool, i64, i64, i64);
    let (c, s) = (trace_role::CLIENT, trace_role::SERVER);
    let endpoints: &[E] = &[
        (
            0,
            "10.0.0.2",
            51234,
            s,
            protocol::HTTP,
            false,
            40,
            4_096,
            900,
        ),
        (
            0,
            "203.0.113.7",
            60412,
            s,
            protocol::HTTP,
            false,
            6,
            8_192,
            1_200,
        ),
        (
            1,
            "10.0.1.1",
            41002,
            s,
            protocol::HTTP,
            false,
            25,
            2_048,
            700,
        ),
        (
            2,
            "10.0.1.1",
            41003,
            s,
            protocol::HTTP,
            false,
            10,
            3_000,
            2_500,
        ),
        (
            3,
            "10.0.1.2",
            41004,
            s,
            protocol::HTTP,
            false,
            20,
            1_500,
            400,
        ),
        (
            2,
            "10.0.2.10",
            5432,
            c,
            protocol::PGSQL,
            false,
            1,
            600,
            3_000,
        ),
        (
            3,
            "10.0.2.10",
            5432,
            c,
            protocol::PGSQL,
            false,
            1,
            500,
            2_000,
        ),
        (
            1,
            "10.0.2.11",
            3306,
            c,
            protocol::MYSQL,
            false,
            1,
            700,
            4_000,
        ),
        (0, "10.0.2.12", 6379, c, protocol::REDIS, false, 1, 300, 500),
        (1, "10.0.2.12", 6379, c, protocol::REDIS, false, 1, 250, 400),
        (3, "10.0.2.13", 9042, c, protocol::CQL, false, 1, 800, 2_400),
        (0, "10.0.0.53", 53, c, protocol::DNS, false, 4, 60, 120),
        (
            2,
            "93.184.216.34",
            443,
            c,
            protocol::HTTP,
            true,
            2,
            1_800,
            5_200,
        ),
    ];
    let samples = SPAN_NS / (10 * SEC);
    let mut b = ConnStatsBuilder::with_capacity(endpoints.len() * samples as usize);
    for k in 1..=samples {
        for (j, &(svc, addr, port, role, proto, ssl, per, sent, recv)) in
            endpoints.iter().enumerate()
        {
            let opened = per * k;
            // Short-lived connections (HTTP, DNS) close within a sample; pools stay open.
            let closed = if per > 1 { opened - per / 4 } else { 0 };
            b.append(&ConnStatsRow {
                time_ns: start_ns + k * 10 * SEC + j as i64,
                upid: upid(svc),
                remote_addr: addr.to_string(),
                remote_port: port,
                trace_role: role,
                addr_family: 2,
                protocol: proto,
                ssl,
                conn_open: opened,
                conn_close: closed,
                conn_active: opened - closed,
                bytes_sent: sent * opened * 10,
                bytes_recv: recv * opened * 10,
            });
        }
    }
    b.finish()
}

/// `probe_status`: every 10 s, the socket tracer attached (counting events, a little loss and
/// truncation) and the TLS tracer not attached (no TLS library found).
pub fn probe_status(start_ns: i64) -> RecordBatch {
    let samples = SPAN_NS / (10 * SEC);
    let mut b = ProbeStatusBuilder::with_capacity(2 * samples as usize);
    for k in 1..=samples {
        b.append(&ProbeStatusRow {
            time_ns: start_ns + k * 10 * SEC,
            upid: agent_upid(),
            probe: "socket_tracer".into(),
            attached: true,
            error: String::new(),
            events: 2_000 * k,
            lost: if k > samples / 2 {
                3 * (k - samples / 2)
            } else {
                0
            },
            truncated: 5 * k,
            bytes: 1_250_000 * k,
        });
        b.append(&ProbeStatusRow {
            time_ns: start_ns + k * 10 * SEC + 1,
            upid: agent_upid(),
            probe: "tls_tracer".into(),
            attached: false,
            error: "no process links libssl.so.3; TLS plaintext is not captured".into(),
            events: 0,
            lost: 0,
            truncated: 0,
            bytes: 0,
        });
    }
    b.finish()
}

/// The network namespaces of [`network_stats`]: the host's (the agent's) and one per service,
/// as the inode numbers the kernel gives them.
pub const NETNS: [&str; 5] = [
    "4026531840",
    "4026532301",
    "4026532302",
    "4026532303",
    "4026532304",
];

/// `process_stats`: every 10 s, the four services and the agent. CPU time grows with each
/// service's load, `cart` leaks memory, `checkout` writes to disk; counters are cumulative.
pub fn process_stats(start_ns: i64) -> RecordBatch {
    // (upid, user and kernel CPU ms per second, threads, vsize MiB, rss MiB, rss growth KiB per
    // sample, bytes read and written per second, of which from/to storage)
    type P = (String, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);
    let procs: Vec<P> = vec![
        (upid(0), 180, 40, 24, 1_200, 210, 0, 90_000, 120_000, 0, 0),
        (upid(1), 60, 15, 8, 900, 140, 512, 30_000, 25_000, 0, 0),
        (
            upid(2),
            90,
            30,
            16,
            1_100,
            180,
            0,
            40_000,
            60_000,
            0,
            40_960,
        ),
        (upid(3), 45, 10, 8, 700, 95, 0, 20_000, 15_000, 4_096, 0),
        (agent_upid(), 25, 35, 6, 600, 70, 0, 500_000, 8_000, 0, 0),
    ];
    let samples = SPAN_NS / (10 * SEC);
    let mut b = ProcessStatsBuilder::with_capacity(procs.len() * samples as usize);
    let (ms, mib, kib) = (1_000_000, 1 << 20, 1 << 10);
    for k in 1..=samples {
        // Since each process started, an hour before the first sample.
        let secs = 3_600 + k * 10;
        for (j, (upid, user, kern, threads, vsize, rss, grow, rchar, wchar, read, write)) in
            procs.iter().enumerate()
        {
            b.append(&ProcessStatsRow {
                time_ns: start_ns + k * 10 * SEC + j as i64,
                upid: upid.clone(),
                major_faults: 40 + j as i64 * 3,
                minor_faults: secs * (20 + j as i64 * 5),
                cpu_utime_ns: secs * user * ms,
                cpu_ktime_ns: secs * kern * ms,
                num_threads: *threads,
                vsize_bytes: vsize * mib,
                rss_bytes: rss * mib + k * grow * kib,
                rchar_bytes: secs * rchar,
                wchar_bytes: secs * wchar,
                read_bytes: secs * read,
                write_bytes: secs * write,
            });
        }
    }
    b.finish()
}

/// `network_stats`: every 10 s, one row per network namespace ([`NETNS`]), cumulative
/// counters; the host's carries the most traffic, `users` drops a few packets.
pub fn network_stats(start_ns: i64) -> RecordBatch {
    // (bytes received and sent per second, mean packet size)
    let rates: [(i64, i64, i64); 5] = [
        (2_500_000, 1_200_000, 900),
        (800_000, 1_600_000, 700),
        (300_000, 250_000, 400),
        (450_000, 500_000, 600),
        (200_000, 150_000, 300),
    ];
    let samples = SPAN_NS / (10 * SEC);
    let mut b = NetworkStatsBuilder::with_capacity(NETNS.len() * samples as usize);
    for k in 1..=samples {
        let secs = 3_600 + k * 10;
        for (j, (pod_id, (rx, tx, size))) in NETNS.iter().zip(rates).enumerate() {
            b.append(&NetworkStatsRow {
                time_ns: start_ns + k * 10 * SEC + j as i64,
                pod_id: (*pod_id).to_string(),
                rx_bytes: secs * rx,
                rx_packets: secs * rx / size,
                rx_errors: 0,
                rx_drops: if j == 4 { 2 + k } else { 0 },
                tx_bytes: secs * tx,
                tx_packets: secs * tx / size,
                tx_errors: if j == 0 { 1 } else { 0 },
                tx_drops: 0,
            });
        }
    }
    b.finish()
}

/// `tcp_stats_events`: one row per connection and second with something to report. `checkout`'s
/// TLS connection to an outside API loses segments (retransmits, then the peer's duplicates
/// dropped as `TCP_OLD_DATA`); `users` retransmits to Cassandra now and then; `cart` is a slow
/// reader (`TCP_ZEROWINDOW`); the host firewall drops a scanner (`NETFILTER_DROP`, no process);
/// segments for a closed port of `users` find no socket; `checkout` reconnects every 30 s
/// (state changes with the bytes each connection moved).
pub fn tcp_stats_events(start_ns: i64) -> RecordBatch {
    let mut rng = Rng(23);
    let mut b = TcpStatsBuilder::with_capacity(512);
    let row = |t: i64, upid: String, remote: (&str, i64), local: (String, i64)| TcpStatsRow {
        time_ns: t,
        upid,
        remote_addr: remote.0.to_string(),
        remote_port: remote.1,
        local_addr: local.0,
        local_port: local.1,
        ..TcpStatsRow::default()
    };
    let api = ("93.184.216.34", 443);
    for sec in 0..SPAN_NS / SEC {
        let t = start_ns + sec * SEC;
        let r = rng.next();
        // checkout's connection of the moment to the API (a new local port every 30 s).
        let conn = sec / 30;
        let api_local = (service_addr(2), 45_000 + conn);
        if sec % 30 == 0 {
            for (j, (old, new)) in [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]
                .into_iter()
                .enumerate()
            {
                b.append(&TcpStatsRow {
                    event: tcp_event::STATE_CHANGE,
                    old_state: old.into(),
                    state: new.into(),
                    tx: if j == 1 { 517 } else { 0 },
                    rx: if j == 1 { 1 } else { 0 },
                    ..row(t + j as i64 * 2_000_000, upid(2), api, api_local.clone())
                });
            }
        }
        if sec % 30 == 29 {
            for (j, (old, new)) in [("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2")]
                .into_iter()
                .enumerate()
            {
                b.append(&TcpStatsRow {
                    event: tcp_event::STATE_CHANGE,
                    old_state: old.into(),
                    state: new.into(),
                    tx: if j == 0 { 180_000 } else { 0 },
                    rx: if j == 0 { 520_000 } else { 31 },
                    ..row(t + 500_000_000 + j as i64, upid(2), api, api_local.clone())
                });
            }
        }
        // Loss towards the API in the second half: retransmits, then duplicates dropped.
        if sec >= SPAN_NS / SEC / 2 && !r.is_multiple_of(3) {
            b.append(&TcpStatsRow {
                event: tcp_event::RETRANSMIT,
                retransmits: 1 + (r >> 8) as i64 % 4,
                state: "ESTABLISHED".into(),
                tx: 2_800 + (r >> 16) as i64 % 4_000,
                rx: 6_000 + (r >> 24) as i64 % 9_000,
                ..row(t + 100_000_000, upid(2), api, api_local.clone())
            });
            if (r >> 32).is_multiple_of(4) {
                b.append(&TcpStatsRow {
                    event: tcp_event::DROP,
                    drops: 1,
                    drop_reason: "TCP_OLD_DATA".into(),
                    state: "ESTABLISHED".into(),
                    ..row(t + 150_000_000, upid(2), api, api_local.clone())
                });
            }
        }
        if sec % 20 == 7 {
            b.append(&TcpStatsRow {
                event: tcp_event::RETRANSMIT,
                retransmits: 1,
                state: "ESTABLISHED".into(),
                tx: 1_200,
                rx: 3_400,
                ..row(
                    t + 300_000_000,
                    upid(3),
                    ("10.0.2.13", 9042),
                    (service_addr(3), 40_301),
                )
            });
        }
        if sec % 15 == 3 {
            b.append(&TcpStatsRow {
                event: tcp_event::DROP,
                drops: 2 + (r >> 40) as i64 % 3,
                drop_reason: "TCP_ZEROWINDOW".into(),
                state: "ESTABLISHED".into(),
                ..row(
                    t + 400_000_000,
                    upid(1),
                    (&service_addr(0), 41_002),
                    (service_addr(1), 8080),
                )
            });
        }
        if sec % 10 == 5 {
            b.append(&TcpStatsRow {
                event: tcp_event::DROP,
                drops: 3 + (r >> 44) as i64 % 5,
                drop_reason: "NETFILTER_DROP".into(),
                ..row(
                    t + 600_000_000,
                    String::new(),
                    ("198.51.100.23", 51_344),
                    (service_addr(0), 22),
                )
            });
        }
        if sec % 40 == 11 {
            b.append(&TcpStatsRow {
                event: tcp_event::DROP,
                drops: 1,
                drop_reason: "NO_SOCKET".into(),
                ..row(
                    t + 700_000_000,
                    String::new(),
                    ("10.0.0.2", 51_990),
                    (service_addr(3), 8081),
                )
            });
        }
    }
    b.finish()
}

/// The folded stacks of [`stack_traces`]: (process: service index, 4 for the agent; stack;
/// samples per 10 s). Kernel frames end in `_[k]`; frames without a symbol show the module and
/// file offset, or the bare address.
pub const STACKS: &[(u32, &str, i64)] = &[
    (
        0,
        "_start;__libc_start_main;main;server::serve;server::handle;template::render",
        31,
    ),
    (
        0,
        "_start;__libc_start_main;main;server::serve;server::handle;json::encode",
        12,
    ),
    (
        0,
        "_start;__libc_start_main;main;server::serve;epoll_wait;entry_SYSCALL_64_after_hwframe_[k];\
         do_syscall_64_[k];__x64_sys_epoll_wait_[k]",
        4,
    ),
    (
        1,
        "_start;__libc_start_main;main;cart::handler;cart::db::query;__libc_write;\
         entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];ksys_write_[k];tcp_sendmsg_[k]",
        9,
    ),
    (
        1,
        "_start;__libc_start_main;main;cart::handler;cart::price;libcrypto.so.3+0x1a2b40",
        6,
    ),
    (
        2,
        "_start;__libc_start_main;main;checkout::run;checkout::tax;checkout::round",
        18,
    ),
    (2, "clone3;start_thread;worker;0x7f3c2a1b3c40", 3),
    (
        3,
        "_start;__libc_start_main;main;users::lookup;hash_find",
        7,
    ),
    (
        4,
        "_start;__libc_start_main;main;pxtopd::pem::drain;bpf;entry_SYSCALL_64_after_hwframe_[k];\
         do_syscall_64_[k];__sys_bpf_[k]",
        2,
    ),
];

/// `stack_traces`: every 10 s (one push period), one row per [`STACKS`] entry, its count
/// varying a little from period to period.
pub fn stack_traces(start_ns: i64) -> RecordBatch {
    let samples = SPAN_NS / (10 * SEC);
    let mut b = StackTracesBuilder::with_capacity(STACKS.len() * samples as usize);
    for k in 1..=samples {
        for (j, (proc, stack, count)) in STACKS.iter().enumerate() {
            b.append(&StackTraceRow {
                time_ns: start_ns + k * 10 * SEC + j as i64,
                upid: if *proc == 4 {
                    agent_upid()
                } else {
                    upid(*proc)
                },
                stack_trace_id: schema::stack_trace_id(stack),
                stack_trace: (*stack).to_string(),
                count: count + (k + j as i64) % 3,
            });
        }
    }
    b.finish()
}
