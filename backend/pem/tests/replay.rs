//! Ingest driven by replayed socket tracer events (no probes, no root): connection tracking,
//! reassembly with gaps and late events, protocol inference, role inference, stitching and
//! the rows that land in the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use arrow::{
    array::{AsArray, RecordBatch},
    compute::concat_batches,
    datatypes::Int64Type,
};
use pxtop_metadata::LocalMetadata;
use pxtop_pem::{ClientSide, Ingest, IngestConfig};
use pxtop_probes::{CloseEvent, DataEvent, Direction, Event, OpenEvent, Role};
use pxtop_store::{Store, StoreConfig, TimeRange, schema};

const TGID: u32 = 4242;
const FD: i32 = 7;
const GEN: u64 = 1000;

struct Replay {
    ingest: Ingest,
    pos: [u64; 2],
    tls_pos: [u64; 2],
    ts: u64,
}

impl Replay {
    fn new(client_side: ClientSide) -> Self {
        let cfg = IngestConfig {
            clock_offset_ns: 1_700_000_000_000_000_000,
            client_side,
            ..IngestConfig::default()
        };
        Self {
            ingest: Ingest::new(cfg, LocalMetadata::new()),
            pos: [0, 0],
            tls_pos: [0, 0],
            ts: 10_000,
        }
    }

    fn open(&mut self, role: Role, remote: Ipv4Addr) {
        self.ingest.handle(Event::Open(OpenEvent {
            tgid: TGID,
            fd: FD,
            generation: GEN,
            ts: self.ts,
            role,
            process_start_boottime_ns: 5_000_000_000,
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 8080),
            remote: SocketAddr::new(IpAddr::V4(remote), 50000),
            comm: "server".into(),
        }));
    }

    /// Bytes moved in `dir`; `size` may exceed `data` (truncated capture).
    fn data(&mut self, dir: Direction, data: &[u8], size: u64) {
        self.data_as(dir, data, size, false);
    }

    /// TLS plaintext from the library's calls: a stream with positions of its own.
    fn plaintext(&mut self, dir: Direction, data: &[u8]) {
        let i = usize::from(dir == Direction::Ingress);
        self.ts += 1_000;
        self.ingest.handle(Event::Data(DataEvent {
            tgid: TGID,
            fd: FD,
            generation: GEN,
            dir,
            role: Role::Unknown,
            enter_ts: self.ts,
            exit_ts: self.ts + 500,
            pos: self.tls_pos[i],
            size: data.len() as u64,
            encrypted: true,
            data,
        }));
        self.tls_pos[i] += data.len() as u64;
    }

    fn data_as(&mut self, dir: Direction, data: &[u8], size: u64, encrypted: bool) {
        let i = usize::from(dir == Direction::Ingress);
        self.ts += 1_000;
        self.ingest.handle(Event::Data(DataEvent {
            tgid: TGID,
            fd: FD,
            generation: GEN,
            dir,
            role: Role::Unknown,
            enter_ts: self.ts,
            exit_ts: self.ts + 500,
            pos: self.pos[i],
            size,
            encrypted,
            data,
        }));
        self.pos[i] += size;
    }

    /// Skips `n` bytes of a direction, as lost events do.
    fn lose(&mut self, dir: Direction, n: u64) {
        self.pos[usize::from(dir == Direction::Ingress)] += n;
    }

    fn close(&mut self) {
        self.ingest.handle(Event::Close(CloseEvent {
            tgid: TGID,
            fd: FD,
            generation: GEN,
            ts: self.ts + 10_000,
            role: Role::Unknown,
            wr_bytes: self.pos[0],
            rd_bytes: self.pos[1],
        }));
    }

    fn rows(&mut self) -> RecordBatch {
        let store = Store::new(StoreConfig::default());
        self.ingest.flush(&store).expect("flush");
        let snap = store
            .scan("http_events", TimeRange::default())
            .expect("scan");
        concat_batches(&schema::http_events(), &snap.batches).expect("concat")
    }
}

fn strings(b: &RecordBatch, col: &str) -> Vec<String> {
    let a = b.column_by_name(col).expect(col).as_string::<i32>();
    (0..b.num_rows()).map(|i| a.value(i).to_string()).collect()
}

fn ints(b: &RecordBatch, col: &str) -> Vec<i64> {
    let a = b
        .column_by_name(col)
        .expect(col)
        .as_primitive::<Int64Type>();
    (0..b.num_rows()).map(|i| a.value(i)).collect()
}

#[test]
fn server_side_keep_alive_requests_become_rows_with_latency() {
    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Server, Ipv4Addr::LOCALHOST);
    r.data(
        Direction::Ingress,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        28,
    );
    r.data(
        Direction::Egress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        40,
    );
    r.data(
        Direction::Ingress,
        b"POST /b HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
        78,
    );
    r.data(
        Direction::Egress,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        45,
    );
    let b = r.rows();
    assert_eq!(b.num_rows(), 2);
    assert_eq!(strings(&b, "req_method"), ["GET", "POST"]);
    assert_eq!(strings(&b, "req_path"), ["/a", "/b"]);
    assert_eq!(ints(&b, "resp_status"), [200, 404]);
    assert_eq!(ints(&b, "trace_role"), [2, 2]);
    assert_eq!(strings(&b, "resp_body"), ["hi", ""]);
    assert_eq!(strings(&b, "req_body")[1], "{\"a\":1}");
    assert_eq!(ints(&b, "content_type")[1], schema::content_type::JSON);
    // Ingress request starts at its read's exit; the response ends at its write's exit.
    assert_eq!(ints(&b, "latency"), [1_000, 1_000]);
    assert_eq!(strings(&b, "remote_addr"), ["127.0.0.1", "127.0.0.1"]);
    assert_eq!(ints(&b, "local_port"), [8080, 8080]);
    let upid = &strings(&b, "upid")[0];
    assert_eq!(schema::parse_upid(upid), Some((1, TGID, 500)));
    let headers: serde_json::Value =
        serde_json::from_str(&strings(&b, "req_headers")[0]).expect("json");
    assert_eq!(headers["Host"], "x");
}

#[test]
fn role_is_inferred_for_connections_that_predate_the_agent() {
    // No open event: the connection was there before pxtopd; the first bytes say who is who.
    let mut r = Replay::new(ClientSide::All);
    r.data(Direction::Egress, b"GET /x HTTP/1.1\r\n\r\n", 19);
    r.data(Direction::Ingress, b"HTTP/1.1 204 No Content\r\n\r\n", 27);
    let b = r.rows();
    assert_eq!(ints(&b, "trace_role"), [1]);
    assert_eq!(ints(&b, "resp_status"), [204]);
}

#[test]
fn client_rows_to_local_servers_are_left_to_the_server_side() {
    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Client, Ipv4Addr::LOCALHOST);
    r.data(Direction::Egress, b"GET /x HTTP/1.1\r\n\r\n", 19);
    r.data(
        Direction::Ingress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        38,
    );
    assert_eq!(r.rows().num_rows(), 0);
    assert_eq!(r.ingest.stats().client_rows_deduplicated, 1);

    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Client, Ipv4Addr::new(93, 184, 216, 34));
    r.data(Direction::Egress, b"GET /x HTTP/1.1\r\n\r\n", 19);
    r.data(
        Direction::Ingress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        38,
    );
    assert_eq!(
        r.rows().num_rows(),
        1,
        "a remote server's traffic is counted client-side"
    );
}

#[test]
fn truncated_captures_and_lost_events_keep_bodies_sized_and_streams_in_sync() {
    let mut r = Replay::new(ClientSide::All);
    r.open(Role::Server, Ipv4Addr::LOCALHOST);
    r.data(Direction::Ingress, b"GET /big HTTP/1.1\r\n\r\n", 21);
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    let mut first = head.to_vec();
    first.extend(std::iter::repeat_n(b'z', 4096 - head.len()));
    // The kernel captured 4 KiB of a 60 000-byte write, then a write's event was lost.
    r.data(Direction::Egress, &first, 60_000);
    r.lose(Direction::Egress, 30_000);
    let rest = 100_000 + head.len() as u64 - 90_000;
    r.data(Direction::Egress, &vec![b'z'; rest as usize], rest);
    // The stream is still in sync: the next exchange parses.
    r.data(Direction::Ingress, b"GET /next HTTP/1.1\r\n\r\n", 22);
    r.data(
        Direction::Egress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
        39,
    );
    let b = r.rows();
    assert_eq!(strings(&b, "req_path"), ["/big", "/next"]);
    assert_eq!(ints(&b, "resp_body_size"), [100_000, 1]);
    assert!(strings(&b, "resp_body")[0].ends_with("... [TRUNCATED]"));
    assert_eq!(r.ingest.stats().gap_bytes, 60_000 - 4096 + 30_000);
}

#[test]
fn non_http_connections_are_given_up_on_without_rows_or_panics() {
    let mut r = Replay::new(ClientSide::All);
    r.open(Role::Server, Ipv4Addr::LOCALHOST);
    for i in 0..20u8 {
        r.data(Direction::Ingress, &[0x16, 0x03, 0x01, i, 0xff, 0x00], 6);
        r.data(Direction::Egress, &[0x00, 0x01, i], 3);
    }
    r.close();
    assert_eq!(r.rows().num_rows(), 0);
    assert_eq!(r.ingest.stats().opaque_conns, 1);
    assert_eq!(
        r.ingest.stats().conns,
        0,
        "closed connections are forgotten"
    );
}

#[test]
fn close_finishes_a_close_delimited_response() {
    let mut r = Replay::new(ClientSide::All);
    r.open(Role::Server, Ipv4Addr::LOCALHOST);
    r.data(Direction::Ingress, b"GET /old HTTP/1.0\r\n\r\n", 21);
    r.data(Direction::Egress, b"HTTP/1.0 200 OK\r\n\r\nuntil close", 30);
    assert_eq!(
        r.ingest.pending_rows(),
        0,
        "no length: the body ends at close"
    );
    r.close();
    let b = r.rows();
    assert_eq!(strings(&b, "resp_body"), ["until close"]);
    assert_eq!(ints(&b, "minor_version"), [0]);
}

#[test]
fn conn_stats_count_opens_closes_and_bytes_per_endpoint_and_role() {
    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Server, Ipv4Addr::new(10, 0, 0, 9));
    r.data(
        Direction::Ingress,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        28,
    );
    r.data(
        Direction::Egress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        40,
    );
    let rows = r.ingest.sample_conn_stats(1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let s = &rows[0];
    assert_eq!(
        (s.remote_addr.as_str(), s.remote_port, s.trace_role),
        ("10.0.0.9", 50000, schema::trace_role::SERVER)
    );
    assert_eq!((s.addr_family, s.protocol), (2, schema::protocol::HTTP));
    assert_eq!((s.conn_open, s.conn_close, s.conn_active), (1, 0, 1));
    assert_eq!((s.bytes_sent, s.bytes_recv), (40, 28));

    // The kernel's totals at close count bytes no event carried.
    r.lose(Direction::Egress, 100);
    r.close();
    let rows = r.ingest.sample_conn_stats(2);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let s = &rows[0];
    assert_eq!((s.conn_open, s.conn_close, s.conn_active), (1, 1, 0));
    assert_eq!((s.bytes_sent, s.bytes_recv), (140, 28));

    // Nothing open, nothing new: not repeated.
    assert!(r.ingest.sample_conn_stats(3).is_empty());
}

#[test]
fn redis_commands_become_redis_events_rows() {
    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Server, Ipv4Addr::new(10, 0, 0, 9));
    let cmds = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    r.data(Direction::Ingress, cmds, cmds.len() as u64);
    r.data(Direction::Egress, b"+OK\r\n$1\r\nv\r\n", 12);
    let store = Store::new(StoreConfig::default());
    r.ingest.flush(&store).expect("flush");
    let snap = store
        .scan("redis_events", TimeRange::default())
        .expect("scan");
    let b = concat_batches(&schema::redis_events(), &snap.batches).expect("concat");
    assert_eq!(strings(&b, "req_cmd"), ["SET", "GET"]);
    assert_eq!(strings(&b, "req_args"), [r#"["k","v"]"#, r#"["k"]"#]);
    assert_eq!(strings(&b, "resp"), ["OK", "v"]);
    assert_eq!(ints(&b, "trace_role"), [2, 2]);
    assert!(ints(&b, "latency").iter().all(|&l| l > 0));
    let stats = r.ingest.sample_conn_stats(1);
    assert_eq!(stats[0].protocol, schema::protocol::REDIS);
}

#[test]
fn tls_plaintext_restarts_the_connection_on_its_own_stream() {
    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Server, Ipv4Addr::LOCALHOST);
    // The handshake: ciphertext the syscalls saw before any SSL_read/SSL_write.
    r.data(Direction::Ingress, b"\x16\x03\x01\x00\x05hello", 10);
    r.data(Direction::Egress, b"\x16\x03\x03\x00\x05world", 10);
    // Then the library's plaintext, positions from 0; late ciphertext is ignored.
    r.plaintext(
        Direction::Ingress,
        b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    r.data(
        Direction::Ingress,
        b"\x17\x03\x03\x00\x20garbage-ciphertext",
        25,
    );
    r.plaintext(
        Direction::Egress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let b = r.rows();
    assert_eq!(strings(&b, "req_path"), ["/secret"]);
    assert_eq!(ints(&b, "resp_status"), [200]);
    let enc = b
        .column_by_name("encrypted")
        .expect("encrypted")
        .as_boolean()
        .value(0);
    assert!(enc, "rows from TLS plaintext are marked encrypted");
}

#[test]
fn bytes_before_inference_are_replayed_into_the_parser() {
    // The server speaks first with something no recogniser takes; the client's request is
    // recognised; the server's first bytes must still reach the parser (here: a response
    // split so that its head arrived before the request was seen).
    let mut r = Replay::new(ClientSide::RemoteOnly);
    r.open(Role::Server, Ipv4Addr::LOCALHOST);
    r.data(Direction::Ingress, b"\x00\x01", 2);
    r.data(Direction::Ingress, b"GET /late HTTP/1.1\r\n\r\n", 22);
    r.data(
        Direction::Egress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        38,
    );
    let b = r.rows();
    // The held garbage is replayed first and resynchronised over; the request still counts.
    assert_eq!(strings(&b, "req_path"), ["/late"]);
}
