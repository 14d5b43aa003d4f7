//! TCP health for real: a PEM with the TCP health probe, two network namespaces joined by a
//! veth pair, a client (namespace A) and a server (namespace B) in Python, and packets dropped
//! on their way into B by iptables; the `tcp_stats_events` rows must name exactly that
//! connection, its process, and `NETFILTER_DROP`. Needs root: skipped with a reason outside CI,
//! a failure in CI.
//!
//! NB: the issue asks for loss from `tc qdisc ... netem loss`; this kernel is built without
//! netem (`CONFIG_NET_SCH_NETEM` is not set), so random loss comes from an iptables rule with
//! the `statistic` match (`--mode random --probability 0.3`), which drops packets on the path
//! just as netem would, one in three at random.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use arrow::{
    array::{AsArray, RecordBatch},
    compute::concat_batches,
    datatypes::Int64Type,
};
use pxtop_metadata::LocalMetadata;
use pxtop_pem::PemConfig;
use pxtop_store::{Store, StoreConfig, TimeRange, schema};

fn may_run() -> bool {
    match pxtop_probes::preflight() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            false
        }
        Err(e) => panic!("CI must run the eBPF tests: {e}"),
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (install it with tools/setup-debian.sh)"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two network namespaces joined by a veth pair (A 10.77.x.1, B 10.77.x.2), deleted on drop
/// (which deletes the pair and the rules), panics included.
struct Netns {
    a: String,
    b: String,
    ip_a: String,
    ip_b: String,
}

impl Netns {
    fn new() -> Self {
        let id = std::process::id();
        let n = Netns {
            a: format!("pxtop-tcp-{id}-a"),
            b: format!("pxtop-tcp-{id}-b"),
            ip_a: format!("10.77.{}.1", id % 250),
            ip_b: format!("10.77.{}.2", id % 250),
        };
        let (va, vb) = (
            format!("pxa{}", id % 1_000_000),
            format!("pxb{}", id % 1_000_000),
        );
        run(&["ip", "netns", "add", &n.a]);
        run(&["ip", "netns", "add", &n.b]);
        run(&[
            "ip", "link", "add", &va, "netns", &n.a, "type", "veth", "peer", "name", &vb, "netns",
            &n.b,
        ]);
        for (ns, dev, ip) in [(&n.a, &va, &n.ip_a), (&n.b, &vb, &n.ip_b)] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        n
    }

    fn exec(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all);
    }

    fn spawn_python(&self, ns: &str, script: &str, args: &[&str]) -> Proc {
        // NB: `ip netns exec` execs the command in place (no fork): the child's pid is Python's.
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", script])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (tools/setup-debian.sh installs it)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Proc {
            child,
            stdin,
            stdout,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A Python peer, killed on drop.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "the Python peer exited early");
        l.trim().to_string()
    }

    fn tell(&mut self) {
        self.stdin.write_all(b"go\n").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVER: &str = r#"
import socket, sys
ip, p1, p2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ls = []
for p in (p1, p2):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((ip, p))
    l.listen()
    ls.append(l)
print("ready", flush=True)
s, _ = ls[0].accept()
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
s.sendall(b"ok")
s.close()
print("got", n, flush=True)
s, _ = ls[1].accept()
s.recv(16)
s.sendall(b"ok")
sys.stdin.readline()
"#;

const CLIENT: &str = r#"
import socket, sys, time
ip, p1, p2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = socket.create_connection((ip, p1), timeout=60)
print("conn1", c.getsockname()[1], flush=True)
c.sendall(b"x" * (2 << 20))
c.shutdown(socket.SHUT_WR)
assert c.recv(16) == b"ok"
c.close()
c = socket.create_connection((ip, p2), timeout=60)
c.sendall(b"hello")
assert c.recv(16) == b"ok"
print("conn2", c.getsockname()[1], flush=True)
sys.stdin.readline()
c.sendall(b"dropped")
time.sleep(2)
print("done", flush=True)
sys.stdin.readline()
"#;

/// A row of `tcp_stats_events`, the columns the test checks.
#[derive(Debug, Clone)]
struct Row {
    upid: String,
    local: String,
    remote: String,
    event: String,
    retransmits: i64,
    drops: i64,
    reason: String,
}

fn rows(store: &Store) -> Vec<Row> {
    let snap = store
        .scan("tcp_stats_events", TimeRange::ALL)
        .expect("scan");
    let b: RecordBatch =
        concat_batches(&schema::tcp_stats_events(), &snap.batches).expect("concat");
    let s = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
    let i = |c: &str| {
        b.column_by_name(c)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone()
    };
    let (upid, la, ra, ev, reason) = (
        s("upid"),
        s("local_addr"),
        s("remote_addr"),
        s("event"),
        s("drop_reason"),
    );
    let (lp, rp, rt, dr) = (
        i("local_port"),
        i("remote_port"),
        i("retransmits"),
        i("drops"),
    );
    (0..b.num_rows())
        .map(|k| Row {
            upid: upid.value(k).to_string(),
            local: format!("{}:{}", la.value(k), lp.value(k)),
            remote: format!("{}:{}", ra.value(k), rp.value(k)),
            event: ev.value(k).to_string(),
            retransmits: rt.value(k),
            drops: dr.value(k),
            reason: reason.value(k).to_string(),
        })
        .collect()
}

fn pid_of(upid: &str) -> Option<u32> {
    schema::parse_upid(upid).map(|(_, pid, _)| pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmits_and_drops_name_the_connection_and_its_process() {
    if !may_run() {
        return;
    }
    let store = Arc::new(Store::new(StoreConfig::default()));
    let pem = pxtop_pem::start(
        PemConfig {
            tls_scan_interval: None,
            process_stats_interval: None,
            tcp_stats_interval: Some(Duration::from_millis(200)),
            ..PemConfig::default()
        },
        store.clone(),
        LocalMetadata::new(),
    )
    .await
    .expect("start the PEM");
    let tcp = pem
        .health()
        .into_iter()
        .find(|p| p.name == "tcp_stats")
        .expect("a tcp_stats probe entry");
    assert!(tcp.attached && tcp.error.is_none(), "{tcp:?}");

    let net = Netns::new();
    let (p1, p2) = ("7001", "7002");
    // One in three packets into the server's first port dropped at random (see the module doc).
    net.exec(
        &net.b,
        &[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            p1,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.3",
            "-j",
            "DROP",
        ],
    );
    // NB: block_in_place: the peers are driven with blocking reads while the PEM's tasks run.
    let (mut server, mut client, port1, port2) = tokio::task::block_in_place(|| {
        let mut server = net.spawn_python(&net.b, SERVER, &[&net.ip_b, p1, p2]);
        assert_eq!(server.line(), "ready");
        let mut client = net.spawn_python(&net.a, CLIENT, &[&net.ip_b, p1, p2]);
        let conn1 = client.line();
        assert_eq!(server.line(), format!("got {}", 2 << 20));
        let conn2 = client.line();
        // The second connection is up; from now on everything into its port is dropped.
        net.exec(
            &net.b,
            &[
                "iptables", "-A", "INPUT", "-p", "tcp", "--dport", p2, "-j", "DROP",
            ],
        );
        client.tell();
        assert_eq!(client.line(), "done");
        let port = |l: &str| l.split_whitespace().nth(1).unwrap().to_string();
        (server, client, port(&conn1), port(&conn2))
    });
    let (client_pid, server_pid) = (client.child.id(), server.child.id());

    // A window or two for the last events to be drained and flushed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    pem.shutdown().await;
    client.tell();
    server.tell();
    drop((client, server));

    let all = rows(&store);
    let (a1, b1) = (
        format!("{}:{port1}", net.ip_a),
        format!("{}:{p1}", net.ip_b),
    );
    let (a2, b2) = (
        format!("{}:{port2}", net.ip_a),
        format!("{}:{p2}", net.ip_b),
    );
    let sum = |event: &str, local: &str, remote: &str| -> (i64, i64, Vec<Row>) {
        let rs: Vec<Row> = all
            .iter()
            .filter(|r| r.event == event && r.local == local && r.remote == remote)
            .cloned()
            .collect();
        (
            rs.iter().map(|r| r.retransmits).sum(),
            rs.iter().map(|r| r.drops).sum(),
            rs,
        )
    };

    // The lossy connection: the sender (this client process) retransmitted, the receiver's
    // firewall dropped, and both sides' rows name exactly that connection.
    let (retrans1, _, rows) = sum("retransmit", &a1, &b1);
    assert!(retrans1 > 0, "no retransmits on {a1} -> {b1}: {all:#?}");
    for r in &rows {
        assert_eq!(pid_of(&r.upid), Some(client_pid), "{r:?}");
    }
    let (_, drops1, rows) = sum("drop", &b1, &a1);
    assert!(drops1 > 0, "no drops on {b1} <- {a1}: {all:#?}");
    // NB: the kernel may drop a segment of this connection for its own reasons too (a
    // duplicate after a retransmission, say); the firewall's drops must be there.
    assert!(
        rows.iter().any(|r| r.reason == "NETFILTER_DROP"),
        "no NETFILTER_DROP: {rows:#?}"
    );
    for r in &rows {
        // NB: a handshake segment dropped before the server accepted the connection has no
        // process yet ("" upid); the data segments after it name the server.
        assert!(
            r.upid.is_empty() || pid_of(&r.upid) == Some(server_pid),
            "{r:?}"
        );
    }
    assert!(
        rows.iter().any(|r| pid_of(&r.upid) == Some(server_pid)),
        "no drop names the server: {rows:#?}"
    );
    // Nothing was dropped or retransmitted on any other connection of these addresses but
    // the two this test made.
    for r in all.iter().filter(|r| r.event != "state_change") {
        if r.local.starts_with(&format!("{}:", net.ip_a))
            || r.local.starts_with(&format!("{}:", net.ip_b))
        {
            assert!(
                [&a1, &b1, &a2, &b2].contains(&&r.local),
                "a row for a connection this test did not make: {r:?}"
            );
        }
    }

    // The blocked connection: every segment after the DROP rule is dropped at the server, and
    // each retransmission of it is dropped again.
    let (_, drops2, rows) = sum("drop", &b2, &a2);
    for r in &rows {
        assert_eq!(r.reason, "NETFILTER_DROP", "{r:?}");
        assert_eq!(pid_of(&r.upid), Some(server_pid), "{r:?}");
    }
    let (retrans2, _, rows) = sum("retransmit", &a2, &b2);
    for r in &rows {
        assert_eq!(pid_of(&r.upid), Some(client_pid), "{r:?}");
    }
    assert!(
        drops2 >= 2 && retrans2 >= 1,
        "{drops2} drops, {retrans2} retransmits on {a2} -> {b2}: {all:#?}"
    );
    eprintln!(
        "lossy connection: {retrans1} retransmits, {drops1} drops; blocked connection: \
         {retrans2} retransmits, {drops2} drops; {} rows",
        all.len()
    );
}

/// `n` loopback connections opened, used for one byte each way and closed; returns the time.
fn connections(n: usize) -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            let mut b = [0u8; 1];
            std::io::Read::read_exact(&mut s, &mut b).unwrap();
            s.write_all(&b).unwrap();
        }
    });
    let start = std::time::Instant::now();
    for _ in 0..n {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut c, &mut b).unwrap();
    }
    server.join().unwrap();
    start.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bursts of loopback connections (10 state changes each) with the probe loaded, drained only
/// afterwards: none may be lost, and the drain (decode, count per connection, append rows) is
/// timed per event; so is each connection against the same loop with no probe loaded. Figures
/// printed for BENCHMARKS.md (`-- --nocapture`), never asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_bursts_without_loss_and_prints_the_cost() {
    if !may_run() {
        return;
    }
    const N: usize = 2_000;
    let store = Store::new(StoreConfig::default());
    let (mut drain_ns, mut added_ns) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let without = tokio::task::block_in_place(|| connections(N));
        let mut probe = pxtop_probes::TcpStatsProbe::load(&pxtop_probes::TcpStatsConfig {
            ring_bytes: 32 << 20,
        })
        .expect("load the probe");
        let mut collector = pxtop_pem::tcp_stats::TcpStatsCollector::new(
            1,
            pxtop_probes::DropReasons::from_tracefs().unwrap(),
        );
        let with = tokio::task::block_in_place(|| connections(N));
        let start = std::time::Instant::now();
        let mut events = 0;
        loop {
            let n = probe
                .next_batch(Duration::ZERO, 1 << 20, |e| collector.add(e))
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            events += n;
        }
        let rows = collector.flush(&store);
        let took = start.elapsed();
        let c = probe.counters();
        assert_eq!((c.lost, c.malformed), (0, 0), "{c:?}");
        assert!(events >= 10 * N, "{events} events for {N} connections");
        assert!(rows >= 10 * N, "{rows} rows for {N} connections");
        print_bpf_stats();
        drain_ns.push(took.as_nanos() as f64 / events as f64);
        added_ns.push((with.as_nanos() as f64 - without.as_nanos() as f64) / N as f64);
        eprintln!(
            "{events} events ({rows} rows) drained in {took:?}; per connection: {:.0} ns \
             without the probe, {:.0} ns with it",
            without.as_nanos() as f64 / N as f64,
            with.as_nanos() as f64 / N as f64
        );
    }
    let d = median(&mut drain_ns);
    eprintln!(
        "median drain cost {d:.0} ns per event ({:.0} events/s on one thread); median added \
         per loopback connection (10 state changes, 1 accept) {:.0} ns",
        1e9 / d,
        median(&mut added_ns)
    );
}

/// With `sysctl kernel.bpf_stats_enabled=1` (off by default: it costs every BPF program on the
/// host), the kernel's own time per run of each of the probe's programs, from bpftool.
fn print_bpf_stats() {
    let Ok(out) = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
    else {
        return;
    };
    let Ok(serde_json::Value::Array(progs)) = serde_json::from_slice(&out.stdout) else {
        return;
    };
    for p in progs {
        let name = p["name"].as_str().unwrap_or_default();
        let (Some(ns), Some(runs)) = (p["run_time_ns"].as_u64(), p["run_cnt"].as_u64()) else {
            continue;
        };
        // NB: the kernel keeps 15 characters of a program's name.
        let ours = pxtop_probes::tcp_stats::TRACEPOINTS
            .iter()
            .any(|(prog, _, _)| prog.starts_with(name) && !name.is_empty());
        if ours && runs > 0 {
            eprintln!("  bpf_stats {name}: {runs} runs, {} ns per run", ns / runs);
        }
    }
}
