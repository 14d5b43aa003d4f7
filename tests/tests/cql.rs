//! End to end for the Cassandra CQL parser. No Cassandra server is packaged for Debian, so the
//! frames come from a real CQL encoder (`cassandra-protocol`, the encoder of the `cdrs-tokio`
//! driver) on both ends of a loopback TCP connection, not from a Cassandra server: a "server"
//! (this test binary re-executed in a child process, so the agent, which ignores its own
//! process, captures it) answers each request with an encoded response — READY to STARTUP,
//! RESULT rows/void/prepared to QUERY, PREPARE, EXECUTE and BATCH, an ERROR for a table that
//! does not exist — in reverse order within each read, so records must be stitched by stream
//! id. The client here sends STARTUP, two PREPAREs, then a pipelined burst of 2000 requests
//! with distinct stream ids. The rows `pxtop run px/cql_data -o json` prints must match what
//! was sent, each request exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::Duration,
};

use cassandra_protocol::{
    compression::Compression,
    consistency::Consistency,
    frame::{
        Direction, Envelope, Flags, Opcode, Serialize, Version,
        message_batch::{BatchQuery, BatchQuerySubj, BatchType, BodyReqBatch},
        message_error::{ErrorBody, ErrorType},
        message_request::RequestBody,
        message_response::ResponseBody,
        message_result::{
            BodyResResultPrepared, BodyResResultRows, ColSpec, ColType, ColTypeOption,
            PreparedMetadata, ResResultBody, RowsMetadata, RowsMetadataFlags, TableSpec,
        },
    },
    query::{QueryParamsBuilder, query_values::QueryValues},
    types::{CBytes, CBytesShort, value::Value},
};
use pxtop_e2e::{Backend, may_use_ebpf, pxtop_bin};

const V: Version = Version::V4;
/// The environment variable that makes `cql_server_peer` serve on this port.
const PEER_ENV: &str = "PXTOP_E2E_CQL_PEER_PORT";
const BURST: usize = 2000;
/// Requests written at once (distinct stream ids) before their responses are read.
const PIPELINE: usize = 50;

const INSERT: &str = "INSERT INTO users (id, name) VALUES (?, ?)";
const SELECT: &str = "SELECT id, name FROM users WHERE id = ?";
const ROWS_1: &str =
    "Response type = ROWS\nNumber of columns = 2\n[\"id\",\"name\"]\nNumber of rows = 1";
const VOID: &str = "Response type = VOID";
const PREPARED: &str = "Response type = PREPARED";
const NO_TABLE: &str = "[8704] unconfigured table nope";

// Opcodes as the table has them.
const OP_ERROR: i64 = 0x00;
const OP_STARTUP: i64 = 0x01;
const OP_READY: i64 = 0x02;
const OP_QUERY: i64 = 0x07;
const OP_RESULT: i64 = 0x08;
const OP_PREPARE: i64 = 0x09;
const OP_EXECUTE: i64 = 0x0A;
const OP_BATCH: i64 = 0x0D;

fn encode(mut e: Envelope, stream: i16) -> Vec<u8> {
    e.stream_id = stream;
    e.encode_with(Compression::None).unwrap()
}

/// The complete envelopes at the start of `buf`, removed from it.
fn take_envelopes(buf: &mut Vec<u8>) -> Vec<Envelope> {
    let mut out = Vec::new();
    let mut used = 0;
    while let Ok(p) = Envelope::from_buffer(&buf[used..], Compression::None) {
        used += p.envelope_len;
        out.push(p.envelope);
    }
    buf.drain(..used);
    out
}

// ---------------------------------------------------------------------------------------------
// The server peer (a child process).

fn response(op: Opcode, stream: i16, body: Vec<u8>) -> Vec<u8> {
    encode(
        Envelope::new(
            V,
            Direction::Response,
            Flags::empty(),
            op,
            stream,
            body,
            None,
            vec![],
        ),
        stream,
    )
}

fn col(name: &str, id: ColType) -> ColSpec {
    ColSpec {
        table_spec: None,
        name: name.into(),
        col_type: ColTypeOption { id, value: None },
    }
}

fn users() -> Option<TableSpec> {
    Some(TableSpec {
        ks_name: "ks".into(),
        table_name: "users".into(),
    })
}

/// A ROWS result of one user row.
fn one_row(stream: i16, id: i32) -> Vec<u8> {
    let cols = vec![col("id", ColType::Int), col("name", ColType::Varchar)];
    let body = ResResultBody::Rows(BodyResResultRows {
        metadata: RowsMetadata {
            flags: RowsMetadataFlags::GLOBAL_TABLE_SPACE,
            columns_count: 2,
            paging_state: None,
            new_metadata_id: None,
            global_table_spec: users(),
            col_specs: cols,
        },
        rows_count: 1,
        rows_content: vec![vec![
            CBytes::new(id.to_be_bytes().to_vec()),
            CBytes::new(format!("user-{id}").into_bytes()),
        ]],
        protocol_version: V,
    });
    response(Opcode::Result, stream, body.serialize_to_vec(V))
}

fn void(stream: i16) -> Vec<u8> {
    response(
        Opcode::Result,
        stream,
        ResResultBody::Void.serialize_to_vec(V),
    )
}

fn prepared(stream: i16, id: &[u8]) -> Vec<u8> {
    let body = ResResultBody::Prepared(BodyResResultPrepared {
        id: CBytesShort::new(id.to_vec()),
        result_metadata_id: None,
        metadata: PreparedMetadata {
            pk_indexes: vec![0],
            global_table_spec: users(),
            col_specs: vec![col("id", ColType::Int), col("name", ColType::Varchar)],
        },
        result_metadata: RowsMetadata {
            flags: RowsMetadataFlags::NO_METADATA,
            columns_count: 0,
            paging_state: None,
            new_metadata_id: None,
            global_table_spec: None,
            col_specs: vec![],
        },
    });
    response(Opcode::Result, stream, body.serialize_to_vec(V))
}

fn no_table(stream: i16) -> Vec<u8> {
    let body = ErrorBody {
        message: "unconfigured table nope".into(),
        ty: ErrorType::Invalid,
    };
    response(Opcode::Error, stream, body.serialize_to_vec(V))
}

/// What the peer answers to `req`, as Cassandra would in kind (not in content).
fn answer(req: &Envelope, statements: &mut HashMap<Vec<u8>, String>) -> Vec<u8> {
    let s = req.stream_id;
    match req.request_body().expect("a request the encoder made") {
        RequestBody::Startup(_) => response(Opcode::Ready, s, vec![]),
        RequestBody::Query(q) if q.query.contains("FROM nope") => no_table(s),
        RequestBody::Query(q) if q.query.starts_with("SELECT") => one_row(s, 1),
        RequestBody::Query(_) | RequestBody::Batch(_) => void(s),
        RequestBody::Prepare(p) => {
            let n = u16::try_from(statements.len()).unwrap();
            let id = [[0xab, 0xcd], n.to_be_bytes()].concat();
            statements.insert(id.clone(), p.query);
            prepared(s, &id)
        }
        RequestBody::Execute(e) => {
            let id = e.id.into_bytes().unwrap_or_default();
            match statements.get(&id) {
                Some(q) if q.starts_with("SELECT") => one_row(s, 1),
                Some(_) => void(s),
                None => panic!("EXECUTE of an unknown statement {id:?}"),
            }
        }
        other => panic!("unexpected request {other:?}"),
    }
}

/// Serves one connection on `port`: every read's complete requests are answered in reverse
/// order, in one write.
fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("cql-peer listening {port}");
    std::io::stdout().flush().unwrap();
    let (mut s, _) = listener.accept().expect("accept");
    let mut statements = HashMap::new();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut chunk).expect("read");
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let reqs = take_envelopes(&mut buf);
        let out: Vec<u8> = reqs
            .iter()
            .rev()
            .flat_map(|r| answer(r, &mut statements))
            .collect();
        if !out.is_empty() {
            s.write_all(&out).expect("write");
        }
    }
}

/// Not a test of its own: the server peer, when the test below re-executes this binary with
/// `PEER_ENV` set; otherwise it returns at once.
#[test]
fn cql_server_peer() {
    if let Ok(port) = std::env::var(PEER_ENV) {
        serve(port.parse().expect("a port"));
    }
}

/// The peer in a child process; killed on drop.
struct Peer {
    port: u16,
    child: Child,
}

impl Peer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "cql_server_peer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PEER_ENV, port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-execute the test binary as the peer");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the peer exited");
            // NB: libtest may print "test cql_server_peer ... " on the same line first.
            if line
                .trim_end()
                .ends_with(&format!("cql-peer listening {port}"))
            {
                break;
            }
        }
        // NB: keep reading (and dropping) its output so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { port, child }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The client (this process) and what the table must show.

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn query(stream: i16, text: &str) -> Vec<u8> {
    encode(
        Envelope::new_req_query(
            text.into(),
            Consistency::LocalQuorum,
            None,
            false,
            Some(5000),
            None,
            None,
            None,
            None,
            None,
            Flags::empty(),
            V,
        ),
        stream,
    )
}

fn prepare(stream: i16, text: &str) -> Vec<u8> {
    encode(
        Envelope::new_req_prepare(text.into(), None, Flags::empty(), V),
        stream,
    )
}

fn execute(stream: i16, id: &[u8], values: Vec<Value>) -> Vec<u8> {
    let params = QueryParamsBuilder::new()
        .with_consistency(Consistency::One)
        .with_values(QueryValues::SimpleValues(values))
        .build();
    encode(
        Envelope::new_req_execute(
            &CBytesShort::new(id.to_vec()),
            None,
            &params,
            Flags::empty(),
            V,
        ),
        stream,
    )
}

fn batch(stream: i16, i: usize, insert_id: &[u8]) -> Vec<u8> {
    let body = BodyReqBatch {
        batch_type: BatchType::Logged,
        queries: vec![
            BatchQuery {
                subject: BatchQuerySubj::QueryString(format!("DELETE FROM users WHERE id = {i}")),
                values: QueryValues::SimpleValues(vec![]),
            },
            BatchQuery {
                subject: BatchQuerySubj::PreparedId(CBytesShort::new(insert_id.to_vec())),
                values: QueryValues::SimpleValues(vec![
                    Value::new(i as i32),
                    Value::new(format!("user-{i}")),
                ]),
            },
        ],
        consistency: Consistency::Quorum,
        serial_consistency: None,
        timestamp: None,
        keyspace: None,
        now_in_seconds: None,
    };
    encode(Envelope::new_req_batch(body, Flags::empty(), V), stream)
}

/// One request sent and the row it must give: (req_op, req_body, resp_op, resp_body).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Want {
    req_op: i64,
    req_body: String,
    resp_op: i64,
    resp_body: String,
}

fn want(req_op: i64, req_body: String, resp_op: i64, resp_body: &str) -> Want {
    Want {
        req_op,
        req_body,
        resp_op,
        resp_body: resp_body.into(),
    }
}

/// Request `i` of the burst on `stream`: its bytes and the row it must give. Every request
/// body is unique, so each row is matched to exactly one request.
fn burst_request(i: usize, stream: i16, insert_id: &[u8], select_id: &[u8]) -> (Vec<u8>, Want) {
    let name = format!("user-{i}");
    let values = format!("[\"{:08X}\",\"{}\"]", i, hex(name.as_bytes()));
    match i % 10 {
        0 | 5 => {
            let t = format!("SELECT id, name FROM users WHERE id = {i}");
            (query(stream, &t), want(OP_QUERY, t, OP_RESULT, ROWS_1))
        }
        1 | 6 => {
            let t = format!("INSERT INTO users (id, name) VALUES ({i}, '{name}')");
            (query(stream, &t), want(OP_QUERY, t, OP_RESULT, VOID))
        }
        2 | 7 => {
            let t = format!("SELECT name FROM users WHERE id = ? AND k = {i}");
            (
                prepare(stream, &t),
                want(OP_PREPARE, t, OP_RESULT, PREPARED),
            )
        }
        3 => (
            execute(
                stream,
                insert_id,
                vec![Value::new(i as i32), Value::new(name.as_str())],
            ),
            want(OP_EXECUTE, format!("{INSERT}\n{values}"), OP_RESULT, VOID),
        ),
        8 => (
            execute(stream, select_id, vec![Value::new(i as i32)]),
            want(
                OP_EXECUTE,
                format!("{SELECT}\n[\"{i:08X}\"]"),
                OP_RESULT,
                ROWS_1,
            ),
        ),
        4 => (
            batch(stream, i, insert_id),
            want(
                OP_BATCH,
                format!(
                    "[{{\"query\":\"DELETE FROM users WHERE id = {i}\",\"values\":[]}},\
                     {{\"query\":\"{INSERT}\",\"values\":{values}}}]"
                ),
                OP_RESULT,
                VOID,
            ),
        ),
        _ => {
            let t = format!("SELECT * FROM nope WHERE id = {i}");
            (query(stream, &t), want(OP_QUERY, t, OP_ERROR, NO_TABLE))
        }
    }
}

/// Reads responses until `n` have come; returns them by stream id.
fn read_responses(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> HashMap<i16, (Opcode, ResponseBody)> {
    let mut out = HashMap::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while out.len() < n {
        for e in take_envelopes(buf) {
            let body = e.response_body().expect("a response the encoder made");
            assert!(
                out.insert(e.stream_id, (e.opcode, body)).is_none(),
                "stream {} answered twice",
                e.stream_id
            );
        }
        if out.len() >= n {
            break;
        }
        let got = s.read(&mut chunk).expect("read");
        assert!(got > 0, "the peer closed the connection");
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

fn prepared_id(r: &(Opcode, ResponseBody)) -> Vec<u8> {
    match r {
        (_, ResponseBody::Result(ResResultBody::Prepared(p))) => p.id.clone().into_bytes().unwrap(),
        other => panic!("not a PREPARED result: {other:?}"),
    }
}

/// The whole client session; returns every request's expected row (handshake included).
fn client(port: u16) -> Vec<Want> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the peer");
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut sent = Vec::new();

    s.write_all(&encode(Envelope::new_req_startup(None, V), 0))
        .unwrap();
    let r = read_responses(&mut s, &mut buf, 1);
    assert!(matches!(r[&0], (Opcode::Ready, _)), "{r:?}");
    sent.push(want(
        OP_STARTUP,
        r#"{"CQL_VERSION":"3.0.0"}"#.into(),
        OP_READY,
        "",
    ));

    s.write_all(&[prepare(1, INSERT), prepare(2, SELECT)].concat())
        .unwrap();
    let r = read_responses(&mut s, &mut buf, 2);
    let (insert_id, select_id) = (prepared_id(&r[&1]), prepared_id(&r[&2]));
    sent.push(want(OP_PREPARE, INSERT.into(), OP_RESULT, PREPARED));
    sent.push(want(OP_PREPARE, SELECT.into(), OP_RESULT, PREPARED));

    for start in (0..BURST).step_by(PIPELINE) {
        let mut bytes = Vec::new();
        let mut wants = HashMap::new();
        for i in start..(start + PIPELINE).min(BURST) {
            let stream = i16::try_from(10 + i - start).unwrap();
            let (b, w) = burst_request(i, stream, &insert_id, &select_id);
            bytes.extend(b);
            wants.insert(stream, w);
        }
        s.write_all(&bytes).unwrap();
        let got = read_responses(&mut s, &mut buf, wants.len());
        // The client's own view first: each answer is the kind its request asked for.
        for (stream, w) in wants {
            let (op, _) = &got[&stream];
            let op = i64::from(u8::from(*op));
            assert_eq!(op, w.resp_op, "stream {stream}: {w:?}");
            sent.push(w);
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_requests_are_captured_exactly_and_served_by_pxtop_run() {
    if std::env::var_os(PEER_ENV).is_some() || !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    let peer = Peer::start();
    let port = peer.port;
    let sent = tokio::task::spawn_blocking(move || client(port))
        .await
        .expect("join");
    assert_eq!(sent.len(), BURST + 3);

    // Rows are flushed every 100 ms; give the agent a moment, longer if it is slow.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut rows = captured(&backend, port);
    for _ in 0..20 {
        if rows.len() >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rows = captured(&backend, port);
    }
    let mut got: HashMap<Want, usize> = HashMap::new();
    for r in &rows {
        let w = Want {
            req_op: r["req_op"].as_i64().unwrap(),
            req_body: r["req_body"].as_str().unwrap().to_string(),
            resp_op: r["resp_op"].as_i64().unwrap(),
            resp_body: r["resp_body"].as_str().unwrap().to_string(),
        };
        *got.entry(w).or_default() += 1;
    }
    let found = sent.iter().filter(|w| got.contains_key(w)).count();
    eprintln!(
        "cql fidelity: {found}/{} requests captured with the exact row ({} rows for port {port})",
        sent.len(),
        rows.len()
    );
    // Only the peer's (server) side: the client end is this process, which the agent ignores.
    assert!(
        rows.iter().all(|r| r["trace_role"] == 2),
        "{:?}",
        rows.iter().find(|r| r["trace_role"] != 2)
    );
    assert!(
        rows.iter().all(|r| r["latency"].as_i64().unwrap_or(0) > 0),
        "{:?}",
        rows.iter()
            .find(|r| r["latency"].as_i64().unwrap_or(0) <= 0)
    );
    let missing: Vec<&Want> = sent.iter().filter(|w| !got.contains_key(w)).collect();
    if !missing.is_empty() {
        let unexpected: Vec<_> = got.keys().filter(|w| !sent.contains(w)).take(5).collect();
        panic!(
            "{} of {} requests without their exact row, e.g. {:?}; rows not sent, e.g. {unexpected:?}",
            missing.len(),
            sent.len(),
            &missing[..missing.len().min(5)]
        );
    }
    for w in &sent {
        assert_eq!(got[w], 1, "{w:?} captured more than once");
    }
    assert_eq!(rows.len(), sent.len(), "one row per request");
    drop(peer);
    backend.stop().await.expect("pxtopd stopped cleanly");
}

/// The `cql_events` rows of the peer on `port`, as `pxtop run px/cql_data` prints them.
fn captured(backend: &Backend, port: u16) -> Vec<serde_json::Value> {
    let out = Command::new(pxtop_bin())
        .args(["--addr", &backend.url, "run", "px/cql_data"])
        .args([
            "--arg",
            "start_time=-10m",
            "--arg",
            "max_rows=100000",
            "-o",
            "json",
        ])
        .env("PXTOP_TOKEN", &backend.token)
        .output()
        .expect("run pxtop (build it first: cargo build --workspace)");
    assert!(
        out.status.success(),
        "pxtop run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .filter(|v| v["local_port"] == serde_json::json!(port))
        .collect()
}
